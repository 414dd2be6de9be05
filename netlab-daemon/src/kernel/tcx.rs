//! TCX links with the bpf(2) syscall directly: create, pin, reopen from a pin, swap the
//! program of an existing link, and ask which program a link runs.
//!
//! aya's `attach` needs `&mut` access to the program for every link; and each TCX attach
//! or release waits for an RCU grace period in the kernel (tens of milliseconds), under the
//! RTNL lock. With plain file descriptors, interfaces are attached on a thread of their own
//! while the rest of a start-up goes on (more threads would only queue on that lock).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};
use std::path::Path;

const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_LINK_UPDATE: libc::c_long = 29;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_TCX_INGRESS: u32 = 46;
const BPF_TCX_EGRESS: u32 = 47;

/// `union bpf_attr`, large enough for the commands used here (the kernel zero-checks the
/// bytes it does not know, so the tail stays zeroed).
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Self {
        Attr([0; 128])
    }
    fn put_u32(&mut self, off: usize, v: u32) {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    }
    fn put_u64(&mut self, off: usize, v: u64) {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, initialised buffer of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            std::mem::size_of::<Attr>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("bpf returned a bad fd"))?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Attaches `prog` to `ifindex` (ingress or egress) as the last TCX program; closing the
/// returned link detaches it (unless it is pinned).
pub fn link_create(prog: BorrowedFd<'_>, ifindex: u32, ingress: bool) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.put_u32(0, prog.as_raw_fd() as u32);
    a.put_u32(4, ifindex);
    a.put_u32(
        8,
        if ingress {
            BPF_TCX_INGRESS
        } else {
            BPF_TCX_EGRESS
        },
    );
    // flags 0, relative_fd 0, expected_revision 0: append after every other program.
    owned(bpf(BPF_LINK_CREATE, &mut a)?)
}

/// Pins `fd` (a link) at `path` on bpffs.
pub fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in pin path"))?;
    let mut a = Attr::new();
    a.put_u64(0, c.as_ptr() as u64);
    a.put_u32(8, fd.as_raw_fd() as u32);
    bpf(BPF_OBJ_PIN, &mut a).map(drop)
}

/// Opens the object pinned at `path`.
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in pin path"))?;
    let mut a = Attr::new();
    a.put_u64(0, c.as_ptr() as u64);
    owned(bpf(BPF_OBJ_GET, &mut a)?)
}

/// Replaces the program of link `link` with `prog`, atomically.
pub fn link_update(link: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut a = Attr::new();
    a.put_u32(0, link.as_raw_fd() as u32);
    a.put_u32(4, prog.as_raw_fd() as u32);
    bpf(BPF_LINK_UPDATE, &mut a).map(drop)
}

/// The ids of the programs attached to the TCX hook of `ifindex` (in the caller's network
/// namespace), in the order they run.
pub fn query_prog_ids(ifindex: u32, ingress: bool) -> io::Result<Vec<u32>> {
    let mut ids = [0u32; 64];
    let mut a = Attr::new();
    a.put_u32(0, ifindex);
    a.put_u32(
        4,
        if ingress {
            BPF_TCX_INGRESS
        } else {
            BPF_TCX_EGRESS
        },
    );
    a.put_u64(16, ids.as_mut_ptr() as u64);
    a.put_u32(24, ids.len() as u32);
    bpf(BPF_PROG_QUERY, &mut a)?;
    let count = u32::from_ne_bytes([a.0[24], a.0[25], a.0[26], a.0[27]]) as usize;
    Ok(ids[..count.min(ids.len())].to_vec())
}

/// `BPF_OBJ_GET_INFO_BY_FD` of `fd` into `info` (a `bpf_prog_info` or `bpf_link_info`
/// buffer).
fn obj_info(fd: BorrowedFd<'_>, info: &mut [u8]) -> io::Result<()> {
    let mut a = Attr::new();
    a.put_u32(0, fd.as_raw_fd() as u32);
    a.put_u32(4, info.len() as u32);
    a.put_u64(8, info.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a).map(drop)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// The kernel's id of program `prog`.
pub fn prog_id(prog: BorrowedFd<'_>) -> io::Result<u32> {
    // `struct bpf_prog_info` begins with type, id.
    #[repr(C, align(8))]
    struct Info([u8; 8]);
    let mut info = Info([0; 8]);
    obj_info(prog, &mut info.0)?;
    Ok(u32_at(&info.0, 4))
}

/// Of a TCX link: the id of the program it runs, and the interface it is attached to (0 once
/// that interface is gone).
pub fn link_prog_and_ifindex(link: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    // `struct bpf_link_info`: type, id, prog_id at 8, then the union at 16, whose `tcx`
    // member is ifindex, attach_type.
    #[repr(C, align(8))]
    struct Info([u8; 64]);
    let mut info = Info([0; 64]);
    obj_info(link, &mut info.0)?;
    Ok((u32_at(&info.0, 8), u32_at(&info.0, 16)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_descriptors_are_errors_not_crashes() {
        use std::os::fd::AsFd as _;
        // A descriptor that is no BPF object: the kernel refuses it.
        let file = std::fs::File::open("/dev/null").expect("/dev/null");
        let bad = file.as_fd();
        assert!(link_create(bad, 1, true).is_err());
        assert!(obj_get(Path::new("/nonexistent/netlab-pin")).is_err());
        assert!(obj_pin(bad, Path::new("/nonexistent/netlab-pin")).is_err());
        assert!(link_update(bad, bad).is_err());
        // No interface has index 0.
        assert!(query_prog_ids(0, true).is_err());
        assert!(prog_id(bad).is_err());
        assert!(link_prog_and_ifindex(bad).is_err());
    }
}

//! Programs that do nothing, attached where netlab's programs attach: the floor every cost
//! of netlab's own is measured against (what the kernel charges for running *a* program on
//! a hook, before netlab's code does anything).
//!
//! They are two instructions each, loaded and attached with the raw `bpf(2)` commands aya
//! uses for netlab's programs (`BPF_PROG_LOAD`, then `BPF_LINK_CREATE` for a TCX hook and
//! `BPF_RAW_TRACEPOINT_OPEN` for a raw tracepoint), so the kernel takes the same path for
//! both. Each attachment is a file descriptor: closing it (dropping the value) detaches.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use anyhow::{Context, Result};

use super::tcx::Hook;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_LINK_CREATE: libc::c_long = 28;

/// `BPF_F_BEFORE`, a flag of `BPF_LINK_CREATE` for TCX (uapi `bpf.h`).
const BPF_F_BEFORE: u32 = 1 << 3;

/// `enum bpf_prog_type` values.
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_PROG_TYPE_RAW_TRACEPOINT: u32 = 17;

/// Size of the `union bpf_attr` passed: larger than every member used here, the rest zero
/// (the kernel accepts a larger attribute whose tail is zero).
const ATTR_LEN: usize = 128;

/// `r0 = imm; exit`: the whole program.
fn return_imm(imm: i32) -> [u64; 2] {
    // BPF_ALU64 | BPF_MOV | BPF_K (0xb7), dst r0; BPF_JMP | BPF_EXIT (0x95).
    let mov = 0xb7u64 | (u64::from(imm as u32) << 32);
    [mov, 0x95]
}

fn bpf(cmd: libc::c_long, attr: &mut [u8; ATTR_LEN]) -> std::io::Result<OwnedFd> {
    // SAFETY: bpf(2) reads and writes at most ATTR_LEN bytes of `attr`, which outlives the
    // call; every pointer stored in it points to memory that outlives the call too.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), ATTR_LEN) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: on success these commands return a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as i32) })
}

fn put_u32(attr: &mut [u8; ATTR_LEN], off: usize, v: u32) {
    attr[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(attr: &mut [u8; ATTR_LEN], off: usize, v: u64) {
    attr[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

/// Loads a program of `prog_type` that returns `ret`, named `name` (as fdinfo and bpftool
/// show it).
fn load(prog_type: u32, ret: i32, name: &str) -> Result<OwnedFd> {
    let insns = return_imm(ret);
    let license = CString::new("GPL").expect("no NUL");
    let mut attr = [0u8; ATTR_LEN];
    // The `BPF_PROG_LOAD` member: prog_type, insn_cnt, insns, license, ..., prog_name[16]
    // at 48.
    put_u32(&mut attr, 0, prog_type);
    put_u32(&mut attr, 4, insns.len() as u32);
    put_u64(&mut attr, 8, insns.as_ptr() as u64);
    put_u64(&mut attr, 16, license.as_ptr() as u64);
    let name = name.as_bytes();
    let n = name.len().min(15);
    attr[48..48 + n].copy_from_slice(&name[..n]);
    bpf(BPF_PROG_LOAD, &mut attr).with_context(|| {
        format!(
            "loading the empty program {:?}",
            std::str::from_utf8(&name[..n]).unwrap_or("?")
        )
    })
}

/// An empty tc program (it returns "next", as netlab's do) and its TCX links.
pub struct EmptyTc {
    prog: OwnedFd,
    links: Vec<OwnedFd>,
}

impl EmptyTc {
    /// Loads the program; nothing is attached yet.
    pub fn load() -> Result<Self> {
        // TCX_NEXT (-1), the same value netlab's programs return.
        let prog = load(BPF_PROG_TYPE_SCHED_CLS, -1, "nlbench_empty")?;
        Ok(EmptyTc {
            prog,
            links: Vec::new(),
        })
    }

    /// Attaches it to `hook` of interface `ifindex` (of the calling thread's network
    /// namespace), after the programs already there.
    pub fn attach(&mut self, ifindex: u32, hook: Hook) -> Result<()> {
        self.attach_at(ifindex, hook, Position::Last)
    }

    /// Attaches it to `hook` of interface `ifindex`, first or last among the programs
    /// already there.
    pub fn attach_at(&mut self, ifindex: u32, hook: Hook, at: Position) -> Result<()> {
        let link = tcx_link_create_at(self.prog.as_fd(), ifindex, hook, at).with_context(|| {
            format!("attaching the empty program to tcx {hook} of ifindex {ifindex}")
        })?;
        self.links.push(link);
        Ok(())
    }

    /// The program, to attach it elsewhere (see [`tcx_link_create`]).
    pub fn prog(&self) -> BorrowedFd<'_> {
        self.prog.as_fd()
    }

    /// Hooks attached so far.
    pub fn attached(&self) -> usize {
        self.links.len()
    }

    /// Detaches every hook (closing the links), in the order they were attached.
    pub fn detach_all(&mut self) {
        self.links.clear();
    }
}

/// An empty program on a raw tracepoint (it returns 0, as netlab's do).
pub struct EmptyRawTp {
    _prog: OwnedFd,
    _link: OwnedFd,
}

impl EmptyRawTp {
    /// Loads the program alone (attach it with [`raw_tracepoint_open`]): to attach and detach
    /// it many times, without a program freed in between.
    pub fn load() -> Result<OwnedFd> {
        load(BPF_PROG_TYPE_RAW_TRACEPOINT, 0, "nlbench_empty_tp")
    }

    /// Loads it and attaches it to raw tracepoint `name` (e.g. `kfree_skb`).
    pub fn attach(name: &str) -> Result<Self> {
        let prog = Self::load()?;
        let link = raw_tracepoint_open(prog.as_fd(), Some(name))
            .with_context(|| format!("attaching the empty program to raw tracepoint {name}"))?;
        Ok(EmptyRawTp {
            _prog: prog,
            _link: link,
        })
    }
}

/// The program, map or link pinned at `path` in bpffs (`BPF_OBJ_GET`).
pub fn obj_get(path: &Path) -> Result<OwnedFd> {
    let p = CString::new(path.as_os_str().as_bytes()).context("a path with a NUL")?;
    let mut attr = [0u8; ATTR_LEN];
    // The `BPF_OBJ_*` member: pathname, bpf_fd, file_flags.
    put_u64(&mut attr, 0, p.as_ptr() as u64);
    bpf(BPF_OBJ_GET, &mut attr).with_context(|| format!("opening the pin {}", path.display()))
}

/// Attaches tc program `prog` to `hook` of interface `ifindex` (of the calling thread's
/// network namespace) by `BPF_LINK_CREATE`, after the programs already there. Closing the
/// link detaches it.
pub fn tcx_link_create(prog: BorrowedFd<'_>, ifindex: u32, hook: Hook) -> std::io::Result<OwnedFd> {
    tcx_link_create_at(prog, ifindex, hook, Position::Last)
}

/// Where in a hook's chain of TCX programs a new one goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Before every program already there: it runs first.
    First,
    /// After them.
    Last,
}

/// [`tcx_link_create`], first or last in the hook's chain.
pub fn tcx_link_create_at(
    prog: BorrowedFd<'_>,
    ifindex: u32,
    hook: Hook,
    at: Position,
) -> std::io::Result<OwnedFd> {
    let mut attr = [0u8; ATTR_LEN];
    // The `BPF_LINK_CREATE` member: prog_fd, target_ifindex, attach_type, flags, then
    // tcx { relative_fd, expected_revision } (zero: no relative program, any revision).
    // Without a relative program, BPF_F_BEFORE puts it at the front, and no flag at the end.
    put_u32(&mut attr, 0, prog.as_raw_fd() as u32);
    put_u32(&mut attr, 4, ifindex);
    put_u32(&mut attr, 8, hook.attach_type());
    if at == Position::First {
        put_u32(&mut attr, 12, BPF_F_BEFORE);
    }
    bpf(BPF_LINK_CREATE, &mut attr)
}

/// Attaches `prog` to a raw tracepoint (`BPF_RAW_TRACEPOINT_OPEN`): raw tracepoint `name`,
/// or, with `None`, the one a BTF-typed (`tp_btf`) program was loaded for. Closing the link
/// detaches it.
pub fn raw_tracepoint_open(prog: BorrowedFd<'_>, name: Option<&str>) -> std::io::Result<OwnedFd> {
    let name = name
        .map(CString::new)
        .transpose()
        .map_err(std::io::Error::other)?;
    let mut attr = [0u8; ATTR_LEN];
    // The `raw_tracepoint` member: name, prog_fd.
    put_u64(&mut attr, 0, name.as_ref().map_or(0, |n| n.as_ptr() as u64));
    put_u32(&mut attr, 8, prog.as_raw_fd() as u32);
    bpf(BPF_RAW_TRACEPOINT_OPEN, &mut attr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_instructions() {
        // mov64 r0, -1 (imm 0xffffffff in the high half); exit.
        assert_eq!(return_imm(-1), [0xffff_ffff_0000_00b7, 0x95]);
        assert_eq!(return_imm(0), [0xb7, 0x95]);
    }
}

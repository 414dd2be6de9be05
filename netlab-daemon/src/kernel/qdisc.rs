//! Removing a `clsact` qdisc over rtnetlink (aya can add one but not remove it).

use std::io;
use std::mem::size_of;

const TC_H_CLSACT: u32 = 0xFFFF_FFF1;
const CLSACT_HANDLE: u32 = 0xFFFF_0000;
const TCA_KIND: u16 = 1;

#[repr(C)]
struct TcMsg {
    family: u8,
    pad1: u8,
    pad2: u16,
    ifindex: i32,
    handle: u32,
    parent: u32,
    info: u32,
}

#[repr(C)]
struct DelQdisc {
    hdr: libc::nlmsghdr,
    tc: TcMsg,
    kind_len: u16,
    kind_type: u16,
    kind: [u8; 8],
}

/// Deletes the `clsact` qdisc of `ifindex` (and with it every tc filter under it) in the
/// caller's network namespace. A missing qdisc or interface is not an error.
pub fn delete_clsact(ifindex: u32) -> io::Result<()> {
    let req = DelQdisc {
        hdr: libc::nlmsghdr {
            nlmsg_len: size_of::<DelQdisc>() as u32,
            nlmsg_type: libc::RTM_DELQDISC,
            nlmsg_flags: (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16,
            nlmsg_seq: 1,
            nlmsg_pid: 0,
        },
        tc: TcMsg {
            family: libc::AF_UNSPEC as u8,
            pad1: 0,
            pad2: 0,
            ifindex: ifindex as i32,
            handle: CLSACT_HANDLE,
            parent: TC_H_CLSACT,
            info: 0,
        },
        kind_len: 4 + 7,
        kind_type: TCA_KIND,
        kind: *b"clsact\0\0",
    };
    // SAFETY: plain socket(2) call; the fd is closed by OwnedFd below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    // SAFETY: `req` is a fully initialised repr(C) value of the length we pass.
    let sent = unsafe {
        libc::send(
            raw,
            (&req as *const DelQdisc).cast(),
            size_of::<DelQdisc>(),
            0,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 1024];
    // SAFETY: `buf` is writable for its whole length.
    let n = unsafe { libc::recv(raw, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    let hdr_len = size_of::<libc::nlmsghdr>();
    if n < hdr_len + 4 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short rtnetlink reply",
        ));
    }
    let msg_type = u16::from_ne_bytes([buf[4], buf[5]]);
    if msg_type != libc::NLMSG_ERROR as u16 {
        return Ok(());
    }
    let errno = -i32::from_ne_bytes([
        buf[hdr_len],
        buf[hdr_len + 1],
        buf[hdr_len + 2],
        buf[hdr_len + 3],
    ]);
    match errno {
        0 | libc::ENOENT | libc::ENODEV | libc::EINVAL => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

//! The kernel's notices of new bridge ports: a netlink socket subscribed to link changes in
//! one network namespace, read on a thread of its own, handing every interface reported
//! with a master (it joined a bridge) to a callback as the notice arrives.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use anyhow::{ensure, Result};

/// A running reader of link notices; dropping it stops and joins the reader.
pub(super) struct PortNotices {
    _fd: OwnedFd,
    stop: Arc<AtomicBool>,
    reader: Option<thread::JoinHandle<()>>,
}

impl PortNotices {
    /// Subscribes, in the calling thread's network namespace, to link notices, and calls
    /// `on_port(ifindex, when the notice was read)` for each interface a notice reports with
    /// a master, on a reader thread that starts in the calling thread's namespace too.
    pub(super) fn start(on_port: impl FnMut(u32, Instant) + Send + 'static) -> Result<Self> {
        // SAFETY: plain socket(2); the descriptor is owned below.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        ensure!(
            raw >= 0,
            "netlink socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a descriptor we just created and nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an all-zero sockaddr_nl is valid; the group is set below.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        addr.nl_groups = 1; // RTMGRP_LINK
                            // SAFETY: `addr` is a valid sockaddr_nl of the size passed.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        ensure!(r == 0, "netlink bind: {}", std::io::Error::last_os_error());
        // A receive timeout, so the reader sees `stop` (netlink sockets ignore shutdown).
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 50_000,
        };
        // SAFETY: a valid timeval of the size passed.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        ensure!(r == 0, "SO_RCVTIMEO: {}", std::io::Error::last_os_error());
        let stop = Arc::new(AtomicBool::new(false));
        let reader_fd = fd.try_clone()?;
        let stopped = Arc::clone(&stop);
        let mut on_port = on_port;
        // A new thread starts in its creator's network namespace: the callback acts there.
        let reader = thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while !stopped.load(Ordering::Relaxed) {
                // SAFETY: `buf` is writable for its whole length.
                let n = unsafe {
                    libc::recv(reader_fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
                };
                if n <= 0 {
                    continue;
                }
                let at = Instant::now();
                for idx in new_ports(&buf[..n as usize]) {
                    on_port(idx, at);
                }
            }
        });
        Ok(Self {
            _fd: fd,
            stop,
            reader: Some(reader),
        })
    }
}

impl Drop for PortNotices {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// The interface indexes of the RTM_NEWLINK messages in `buf` that carry a non-zero
/// IFLA_MASTER.
fn new_ports(buf: &[u8]) -> Vec<u32> {
    const NLMSG_HDR: usize = 16;
    const IFINFO: usize = 16;
    const IFLA_MASTER: u16 = 10;
    let u16_at = |b: &[u8], o: usize| b.get(o..o + 2).map(|x| u16::from_ne_bytes([x[0], x[1]]));
    let u32_at = |b: &[u8], o: usize| {
        b.get(o..o + 4)
            .map(|x| u32::from_ne_bytes([x[0], x[1], x[2], x[3]]))
    };
    let mut out = Vec::new();
    let mut off = 0;
    while let (Some(len), Some(kind)) = (u32_at(buf, off), u16_at(buf, off + 4)) {
        let len = len as usize;
        if len < NLMSG_HDR || off + len > buf.len() {
            break;
        }
        let msg = &buf[off..off + len];
        if kind == libc::RTM_NEWLINK {
            let ifindex = u32_at(msg, NLMSG_HDR + 4).unwrap_or(0);
            let mut a = NLMSG_HDR + IFINFO;
            while let (Some(alen), Some(atype)) = (u16_at(msg, a), u16_at(msg, a + 2)) {
                let alen = usize::from(alen);
                if alen < 4 {
                    break;
                }
                if atype & 0x3fff == IFLA_MASTER && u32_at(msg, a + 4).unwrap_or(0) != 0 {
                    out.push(ifindex);
                }
                a += (alen + 3) & !3;
            }
        }
        off += (len + 3) & !3;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One netlink message: header (`kind`), ifinfomsg for `ifindex`, then `attrs`
    /// (type, u32 value) each padded to 4 bytes.
    fn message(kind: u16, ifindex: u32, attrs: &[(u16, u32)]) -> Vec<u8> {
        let mut body = vec![0u8; 16];
        body[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        for (t, v) in attrs {
            body.extend_from_slice(&8u16.to_ne_bytes());
            body.extend_from_slice(&t.to_ne_bytes());
            body.extend_from_slice(&v.to_ne_bytes());
        }
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn only_new_links_with_a_master_are_ports() {
        const IFLA_MTU: u16 = 4;
        const IFLA_MASTER: u16 = 10;
        let mut buf = message(libc::RTM_NEWLINK, 7, &[(IFLA_MTU, 1500), (IFLA_MASTER, 3)]);
        buf.extend(message(libc::RTM_NEWLINK, 8, &[(IFLA_MTU, 1500)]));
        buf.extend(message(libc::RTM_NEWLINK, 9, &[(IFLA_MASTER, 0)]));
        buf.extend(message(libc::RTM_DELLINK, 10, &[(IFLA_MASTER, 3)]));
        buf.extend(message(libc::RTM_NEWLINK, 11, &[(IFLA_MASTER, 3)]));
        assert_eq!(new_ports(&buf), [7, 11]);
    }

    #[test]
    fn a_truncated_message_ends_the_walk() {
        let mut buf = message(libc::RTM_NEWLINK, 7, &[(10, 3)]);
        let mut cut = message(libc::RTM_NEWLINK, 8, &[(10, 3)]);
        cut.truncate(20);
        buf.extend(cut);
        assert_eq!(new_ports(&buf), [7]);
        assert!(new_ports(&[1, 2, 3]).is_empty());
    }
}

//! [`send_raw_frames`]: write whole Ethernet frames on an interface of a test namespace.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{anyhow, bail, ensure, Context, Result};

use crate::host::netns;

/// Sends each frame, unchanged, out of `ifname` in network namespace `ns` with an
/// `AF_PACKET`/`SOCK_RAW` socket.
///
/// The work runs on a new thread that joins `ns` and ends afterwards, so the calling thread
/// never changes namespace.
pub fn send_raw_frames(ns: &str, ifname: &str, frames: &[Vec<u8>]) -> Result<()> {
    let ns = ns.to_owned();
    let c_ifname = CString::new(ifname).context("interface name contains NUL")?;
    let frames = frames.to_vec();
    let ifname = ifname.to_owned();
    std::thread::spawn(move || -> Result<()> {
        // Only this short-lived thread moves.
        netns::enter(&ns)?;
        // Protocol 0: the socket receives nothing, it only sends.
        // SAFETY: plain syscall with constant arguments.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            bail!("socket(AF_PACKET): {}", io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket() and is owned by nobody else.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: `c_ifname` is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(c_ifname.as_ptr()) };
        if ifindex == 0 {
            bail!(
                "no interface {ifname} in {ns}: {}",
                io::Error::last_os_error()
            );
        }
        for (i, frame) in frames.iter().enumerate() {
            ensure!(
                frame.len() >= 14,
                "frame {i} is shorter than an Ethernet header"
            );
            // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
            let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            addr.sll_family = libc::AF_PACKET as libc::c_ushort;
            // Already in network byte order, as the frame carries it.
            addr.sll_protocol = u16::from_ne_bytes([frame[12], frame[13]]);
            addr.sll_ifindex = i32::try_from(ifindex).context("ifindex out of range")?;
            addr.sll_halen = 6;
            addr.sll_addr[..6].copy_from_slice(&frame[..6]);
            // SAFETY: `frame` and `addr` outlive the call; the lengths given are theirs.
            let sent = unsafe {
                libc::sendto(
                    socket.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    std::ptr::from_ref(&addr).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if sent < 0 {
                bail!(
                    "sendto frame {i} on {ifname}: {}",
                    io::Error::last_os_error()
                );
            }
            ensure!(
                sent as usize == frame.len(),
                "frame {i}: sent {sent} of {} bytes",
                frame.len()
            );
        }
        Ok(())
    })
    .join()
    .map_err(|_| anyhow!("raw frame writer thread panicked"))?
}

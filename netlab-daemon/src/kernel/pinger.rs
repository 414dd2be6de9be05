//! Sending ICMP echo requests from inside a container's network namespace, without
//! `docker exec` and without a ping binary in the image.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::time::{Duration, Instant};

use netlab_common::checksum;

/// An ICMP (or ICMPv6) echo request with `payload`; the ICMPv6 checksum is left to the
/// kernel, which computes it for raw ICMPv6 sockets.
pub fn echo_request(v6: bool, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + payload.len());
    p.extend_from_slice(&[if v6 { 128 } else { 8 }, 0, 0, 0]);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    if !v6 {
        let c = checksum::internet(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// A raw ICMP socket living in a container's network namespace.
pub struct Pinger {
    fd: OwnedFd,
    dst: IpAddr,
    /// Echo identifier of our requests.
    pub id: u16,
    /// ICMP data bytes of each request.
    payload: usize,
}

/// What every request carries unless a size is asked for (`ping`'s 56 bytes).
const PAYLOAD: &[u8; 56] = b"netlab diagnose: echo request, 56 bytes of payload......";

/// A reply to one of our requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub seq: u16,
    pub rtt: Duration,
}

impl Pinger {
    /// Opens the socket inside the network namespace of process `pid`.
    pub fn open_in(pid: u32, dst: IpAddr, id: u16) -> io::Result<Self> {
        let v6 = dst.is_ipv6();
        let fd = crate::kernel::links::in_netns_of(pid, move || {
            let (domain, proto) = if v6 {
                (libc::AF_INET6, libc::IPPROTO_ICMPV6)
            } else {
                (libc::AF_INET, libc::IPPROTO_ICMP)
            };
            // SAFETY: plain socket(2); the fd is owned right below.
            let fd = unsafe { libc::socket(domain, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a fresh descriptor nobody else owns.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        })?;
        Ok(Pinger {
            fd,
            dst,
            id,
            payload: PAYLOAD.len(),
        })
    }

    /// Sends `payload` bytes of ICMP data per request, never fragmented on the way: with
    /// IPv4's "don't fragment" set, a request that does not fit the route's MTU fails to
    /// send (`EMSGSIZE`) and one that does not fit a later link is refused there.
    pub fn with_size(mut self, payload: usize) -> io::Result<Self> {
        self.payload = payload;
        let (level, opt, val) = if self.dst.is_ipv6() {
            (
                libc::IPPROTO_IPV6,
                libc::IPV6_MTU_DISCOVER,
                libc::IPV6_PMTUDISC_DO,
            )
        } else {
            (
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                libc::IP_PMTUDISC_DO,
            )
        };
        // SAFETY: setsockopt with an int option value of the right size.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                opt,
                (&val as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(self)
    }

    /// The MTU of the route to the destination, as the kernel knows it (it connects the
    /// socket, which only filters what it reads to the destination's packets).
    pub fn path_mtu(&self) -> io::Result<u32> {
        let (storage, len) = sockaddr(&SocketAddr::new(self.dst, 0));
        // SAFETY: `storage` is valid for `len` bytes.
        if unsafe {
            libc::connect(
                self.fd.as_raw_fd(),
                (&storage as *const libc::sockaddr_storage).cast(),
                len,
            )
        } != 0
        {
            return Err(io::Error::last_os_error());
        }
        let (level, opt) = if self.dst.is_ipv6() {
            (libc::IPPROTO_IPV6, libc::IPV6_MTU)
        } else {
            (libc::IPPROTO_IP, libc::IP_MTU)
        };
        let mut mtu: libc::c_int = 0;
        let mut l = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt into an int of the size given.
        if unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                level,
                opt,
                (&mut mtu as *mut libc::c_int).cast(),
                &mut l,
            )
        } != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(mtu as u32)
    }

    /// Sends echo request `seq`.
    pub fn send(&self, seq: u16) -> io::Result<()> {
        let payload: Vec<u8> = PAYLOAD.iter().copied().cycle().take(self.payload).collect();
        let pkt = echo_request(self.dst.is_ipv6(), self.id, seq, &payload);
        let addr: SocketAddr = SocketAddr::new(self.dst, 0);
        let (storage, len) = sockaddr(&addr);
        // SAFETY: `pkt` and `storage` are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                (&storage as *const libc::sockaddr_storage).cast(),
                len,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until `deadline` for replies to our requests; `sent` holds the send time of
    /// each sequence number.
    pub fn replies(&self, sent: &[(u16, Instant)], deadline: Instant) -> io::Result<Vec<Reply>> {
        let mut out: Vec<Reply> = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            let now = Instant::now();
            if now >= deadline || out.len() == sent.len() {
                return Ok(out);
            }
            let ms = (deadline - now).as_millis().clamp(1, i32::MAX as u128) as i32;
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if r == 0 {
                continue;
            }
            // SAFETY: `buf` is writable for its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let at = Instant::now();
            if let Some(seq) = parse_reply(&buf[..n as usize], self.dst.is_ipv6(), self.id) {
                if let Some((_, t0)) = sent.iter().find(|(s, _)| *s == seq) {
                    if !out.iter().any(|r| r.seq == seq) {
                        out.push(Reply { seq, rtt: at - *t0 });
                    }
                }
            }
        }
    }
}

/// The sequence number of an echo reply to identifier `id` in a received datagram (an
/// IPv4 raw socket delivers the IP header too; an IPv6 one does not).
pub fn parse_reply(buf: &[u8], v6: bool, id: u16) -> Option<u16> {
    let icmp = if v6 {
        buf
    } else {
        let ihl = usize::from(buf.first()? & 0x0f) * 4;
        buf.get(ihl..)?
    };
    let reply_type = if v6 { 129 } else { 0 };
    if *icmp.first()? != reply_type || icmp.len() < 8 {
        return None;
    }
    let got_id = u16::from_be_bytes([icmp[4], icmp[5]]);
    (got_id == id).then(|| u16::from_be_bytes([icmp[6], icmp[7]]))
}

fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_known_packet() {
        // RFC 1071's example words.
        assert_eq!(
            checksum::internet(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        // A request with its checksum in place sums to zero.
        let p = echo_request(false, 0x1234, 7, b"abc");
        assert_eq!(checksum::internet(&p), 0);
        assert_eq!(&p[..2], &[8, 0]);
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
        assert_eq!(echo_request(true, 1, 1, b"")[0], 128);
        assert_eq!(checksum::internet(&[]), 0xffff);
        assert_eq!(checksum::internet(&[0xff]), !0xff00);
    }

    #[test]
    fn replies_are_matched_by_id() {
        let mut v4 = vec![0x45u8; 20];
        v4.extend_from_slice(&[0, 0, 0, 0, 0x12, 0x34, 0, 9]);
        assert_eq!(parse_reply(&v4, false, 0x1234), Some(9));
        assert_eq!(parse_reply(&v4, false, 0x9999), None);
        let v6 = [129u8, 0, 0, 0, 0x12, 0x34, 0, 3];
        assert_eq!(parse_reply(&v6, true, 0x1234), Some(3));
        // Our own request (seen on a raw socket too) is not a reply.
        let req = [128u8, 0, 0, 0, 0x12, 0x34, 0, 3];
        assert_eq!(parse_reply(&req, true, 0x1234), None);
        assert_eq!(parse_reply(&[], false, 1), None);
        assert_eq!(parse_reply(&[0x4f], false, 1), None);
    }
}

//! Bursts of new ports on the 500-veth bridge (part 5): veths made and enslaved together,
//! a frame on each every millisecond, and when the kernel said each joined the bridge.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Result};

use netlab_tests::host::netns::{ip_batch, rx_counters};

use super::kernel::tcx_attached;
use super::port_notices::PortNotices;
use super::process::{check_stop, pause};
use super::NS_SCALE;

/// Veths made and enslaved at once in a burst (as when containers start together).
pub(super) const BURST_SIZE: usize = 20;
/// Bursts measured.
pub(super) const BURST_ROUNDS: usize = 3;

/// The MAC address of `iface` in the calling thread's network namespace.
fn mac_of(iface: &str) -> Result<[u8; 6]> {
    // SAFETY: plain socket(2); closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    ensure!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: an all-zero ifreq is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, b) in req.ifr_name.iter_mut().zip(iface.bytes()) {
        *d = b as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR fills `req`, which lives across the call.
    let r = unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) };
    let err = std::io::Error::last_os_error();
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    ensure!(r == 0, "SIOCGIFHWADDR {iface}: {err}");
    // SAFETY: the kernel wrote a hardware address into the union.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *m = *b as u8;
    }
    Ok(mac)
}

/// Frames sent on each new port of a burst, one a millisecond from the moment the burst
/// is made: how many of them netlab counts tells how long a port went unobserved.
pub(super) const BURST_FRAMES: u64 = 100;

/// Raw sockets on interfaces of the calling thread's network namespace, each sending ARP
/// requests (from 10.255.255.1 for 10.255.255.254, nobody's address) to `dst`.
struct ArpProbes {
    socks: Vec<(std::os::fd::OwnedFd, libc::sockaddr_ll)>,
    frame: Vec<u8>,
}

impl ArpProbes {
    fn new(ifindexes: &[u32], dst: [u8; 6]) -> Result<Self> {
        use std::os::fd::FromRawFd as _;
        const SRC: [u8; 6] = [0x02, 0x6e, 0x6c, 0x62, 0x75, 0x72];
        let mut frame = Vec::with_capacity(42);
        frame.extend_from_slice(&dst);
        frame.extend_from_slice(&SRC);
        frame.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        frame.extend_from_slice(&SRC);
        frame.extend_from_slice(&[10, 255, 255, 1]);
        frame.extend_from_slice(&[0; 6]);
        frame.extend_from_slice(&[10, 255, 255, 254]);
        let mut socks = Vec::with_capacity(ifindexes.len());
        for &ifindex in ifindexes {
            // SAFETY: plain socket(2); owned below.
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    i32::from(0x0806u16.to_be()),
                )
            };
            ensure!(
                fd >= 0,
                "packet socket: {}",
                std::io::Error::last_os_error()
            );
            // SAFETY: a descriptor just created, owned by nothing else.
            let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
            // SAFETY: an all-zero sockaddr_ll is valid; the fields used are set below.
            let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            to.sll_family = libc::AF_PACKET as u16;
            to.sll_protocol = 0x0806u16.to_be();
            to.sll_ifindex = ifindex as i32;
            to.sll_halen = 6;
            to.sll_addr[..6].copy_from_slice(&dst);
            socks.push((fd, to));
        }
        Ok(Self { socks, frame })
    }

    /// Sends one frame on every socket, `rounds` times, a millisecond apart.
    fn send(&self, rounds: u64) -> Result<()> {
        use std::os::fd::AsRawFd as _;
        let t0 = Instant::now();
        for round in 0..rounds {
            let at = t0 + Duration::from_millis(round);
            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            for (fd, to) in &self.socks {
                // SAFETY: `frame` and `to` are valid for the lengths passed.
                let sent = unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        self.frame.as_ptr().cast(),
                        self.frame.len(),
                        0,
                        (to as *const libc::sockaddr_ll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    )
                };
                ensure!(
                    sent == self.frame.len() as isize,
                    "sending on ifindex {}: {}",
                    to.sll_ifindex,
                    std::io::Error::last_os_error()
                );
            }
        }
        Ok(())
    }
}

/// When each interface was first reported with a master (joined a bridge), from the
/// kernel's link notices as they arrive.
struct PortJoins {
    _notices: PortNotices,
    seen: Arc<Mutex<HashMap<u32, Instant>>>,
}

impl PortJoins {
    /// Listens (in the calling thread's network namespace) to link notices.
    fn listen() -> Result<Self> {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let sink = Arc::clone(&seen);
        let notices = PortNotices::start(move |idx, at| {
            if let Ok(mut m) = sink.lock() {
                m.entry(idx).or_insert(at);
            }
        })?;
        Ok(Self {
            _notices: notices,
            seen,
        })
    }

    /// When `ifindex` joined a bridge, if it was seen to.
    fn joined(&self, ifindex: u32) -> Option<Instant> {
        self.seen.lock().ok()?.get(&ifindex).copied()
    }
}

/// What [`burst_latencies`] measured.
pub(super) struct Bursts {
    /// For every veth, ms from the kernel's notice that it joined br0 to both programs
    /// attached.
    pub(super) attached_ms: Vec<f64>,
    /// Veths not attached within 3 s.
    pub(super) missed: usize,
    /// Every port, with the frames it received by its own counter.
    pub(super) ports: Vec<(String, u64)>,
}

/// In the scale namespace (the calling thread must be in it): `rounds` times, makes `size`
/// veth pairs `b<i>`/`c<i>` and puts each `b<i>` on br0 in one `ip -batch` (a burst of
/// links appearing, as when containers start together), then polls every millisecond
/// until each has TCX programs on both directions. Returns, for every veth, the time from
/// the kernel's notification that it joined br0 to both programs attached (the gap in
/// which its packets cross uncounted), how many were not attached within 3 s, and each
/// port with the frames it received by its own counter. The veths are deleted after each
/// round.
pub(super) fn burst_latencies(first: u32, rounds: usize, size: usize) -> Result<Bursts> {
    let (mut gaps, mut missed, mut ports) = (Vec::new(), 0, Vec::new());
    for round in 0..rounds {
        let names: Vec<u32> = (0..size as u32)
            .map(|j| first + (round * size) as u32 + j)
            .collect();
        let batch: String = names
            .iter()
            .map(|n| {
                format!(
                    "link add b{n} type veth peer name c{n}\nlink set c{n} up\nlink set b{n} master br0 up\n"
                )
            })
            .collect();
        let joins = PortJoins::listen()?;
        let t0 = Instant::now();
        ip_batch(NS_SCALE, &batch)?;
        let batch_ms = t0.elapsed().as_secs_f64() * 1e3;
        let mut pending: Vec<(u32, u32)> = Vec::new();
        for n in &names {
            // The calling thread is in the scale namespace: the ioctl looks there.
            let name = std::ffi::CString::new(format!("b{n}"))?;
            // SAFETY: a valid NUL-terminated name.
            let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
            ensure!(ifindex != 0, "b{n} does not exist after the burst");
            pending.push((*n, ifindex));
        }
        // The first frame of each new port, at once: an ARP request from its peer to br0
        // (for an address nobody has, so nothing answers). The tc programs cannot be
        // attached yet; whether it is counted all the same is what covering is for.
        let br0 = mac_of("br0")?;
        let mut peers = Vec::with_capacity(names.len());
        for n in &names {
            let name = std::ffi::CString::new(format!("c{n}"))?;
            // SAFETY: a valid NUL-terminated name.
            peers.push(unsafe { libc::if_nametoindex(name.as_ptr()) });
        }
        let probes = ArpProbes::new(&peers, br0)?;
        let sender = thread::spawn(move || probes.send(BURST_FRAMES));
        eprintln!("xtask: bench: burst {round}: `ip -batch` took {batch_ms:.1} ms");
        let deadline = t0 + Duration::from_secs(3);
        while !pending.is_empty() && Instant::now() < deadline {
            let mut still = Vec::new();
            for (n, idx) in pending {
                if tcx_attached(idx)? {
                    // From the moment the kernel said it joined the bridge (packets can
                    // cross it from then on) to both programs attached.
                    let from = joins.joined(idx).unwrap_or(t0);
                    gaps.push(from.elapsed().as_secs_f64() * 1e3);
                } else {
                    still.push((n, idx));
                }
            }
            pending = still;
            thread::sleep(Duration::from_millis(1));
        }
        missed += pending.len();
        sender
            .join()
            .map_err(|_| anyhow!("the frame sender panicked"))??;
        // The witness of what crossed each port: its own receive counter. A peer queues
        // nothing until the kernel's link watch has seen its carrier come on (under the
        // RTNL lock, which the burst's attaches also take): frames sent before that are
        // dropped by the peer and never reach the port.
        let received = rx_counters(NS_SCALE)?;
        for n in &names {
            let port = format!("b{n}");
            let rx = *received
                .get(&port)
                .ok_or_else(|| anyhow!("no receive counter for {port}"))?;
            ports.push((port, rx));
        }
        check_stop()?;
        let del: String = names.iter().map(|n| format!("link del b{n}\n")).collect();
        ip_batch(NS_SCALE, &del)?;
        pause(Duration::from_millis(500))?;
    }
    eprintln!(
        "xtask: bench: bursts of {size}: {} veths attached, {missed} not within 3 s",
        gaps.len()
    );
    Ok(Bursts {
        attached_ms: gaps,
        missed,
        ports,
    })
}

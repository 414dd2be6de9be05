//! Traffic: a UDP sender and receiver and an ICMP sender (hidden xtask subcommands run
//! inside the namespaces), and ping.

use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsRawFd as _, FromRawFd as _};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context, Result};
use netlab_common::checksum;

use netlab_tests::host::netns::in_ns;

use super::parse::word_after;
use super::process::{quiet, spawn, wait_for, TAIL};
use super::{ADDR_B, BENCH_NETS, NS_A, NS_B, UDP_PAYLOAD, UDP_PORT};

/// `cargo xtask bench-udp-send`: sends `UDP_PAYLOAD`-byte datagrams to `dst` for `secs`
/// seconds, as fast as it can or, with `pps` > 0, at that rate; prints
/// `sent N errors E secs T`. The socket is not connected, so ICMP errors that come back
/// (a closed port) do not fail the sends.
pub fn udp_send(dst: Ipv4Addr, port: u16, secs: f64, pps: u64) -> Result<()> {
    check_send_args(dst, secs)?;
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).context("binding a UDP socket")?;
    let to = std::net::SocketAddrV4::new(dst, port);
    let payload = [0u8; UDP_PAYLOAD];
    paced(secs, pps, || sock.send_to(&payload, to).is_ok());
    Ok(())
}

/// `cargo xtask bench-icmp-send`: sends ICMP echo requests (56 bytes of data, like `ping`)
/// to `dst` for `secs` seconds at `pps` (0: as fast as it can), from a raw socket that
/// takes none of the replies back (`ICMP_FILTER`): each reply is then freed by the kernel's
/// ping handler, as `ping -f`'s are. Prints `sent N errors E secs T`.
pub fn icmp_send(dst: Ipv4Addr, secs: f64, pps: u64) -> Result<()> {
    check_send_args(dst, secs)?;
    // SAFETY: plain socket(2); the result is checked and owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMP,
        )
    };
    ensure!(
        fd >= 0,
        "opening a raw ICMP socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fd` was just opened and nothing else owns it.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // ICMP_FILTER (level SOL_RAW): one bit per ICMP type not to deliver; all of them.
    let filter: u32 = u32::MAX;
    // SAFETY: the option value is a u32 that lives across the call, with its size.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_RAW,
            ICMP_FILTER,
            (&filter as *const u32).cast(),
            4,
        )
    };
    ensure!(
        r == 0,
        "setting ICMP_FILTER: {}",
        std::io::Error::last_os_error()
    );
    let to = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(dst.octets()),
        },
        sin_zero: [0; 8],
    };
    let id = (std::process::id() & 0xffff) as u16;
    let mut seq: u16 = 0;
    let mut packet = [0u8; 64];
    paced(secs, pps, || {
        seq = seq.wrapping_add(1);
        echo_request(&mut packet, id, seq);
        // SAFETY: the buffer and the address live across the call, with their sizes.
        let sent = unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&to as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        sent == packet.len() as isize
    });
    Ok(())
}

/// `ICMP_FILTER` of `<linux/icmp.h>` (libc does not export it).
const ICMP_FILTER: libc::c_int = 1;

/// An ICMP echo request (type 8) with `id`, `seq` and a zero payload, checksum filled in.
fn echo_request(packet: &mut [u8; 64], id: u16, seq: u16) {
    packet.fill(0);
    packet[0] = 8;
    packet[4..6].copy_from_slice(&id.to_be_bytes());
    packet[6..8].copy_from_slice(&seq.to_be_bytes());
    let sum = checksum::internet(packet);
    packet[2..4].copy_from_slice(&sum.to_be_bytes());
}

/// The senders' shared checks: only the bench's own subnets, for a bounded time.
fn check_send_args(dst: Ipv4Addr, secs: f64) -> Result<()> {
    ensure!(
        BENCH_NETS.iter().any(|net| dst.octets()[..3] == *net),
        "the bench's senders only send to its own subnets 10.200.0.0/24 and 10.200.1.0/24, not {dst}"
    );
    ensure!(
        secs > 0.0 && secs <= 60.0,
        "--secs must be in (0, 60], not {secs}"
    );
    Ok(())
}

/// Calls `send` (true: sent) for `secs` seconds, as fast as possible or, with `pps` > 0, at
/// that rate: it catches up with the schedule in bursts of at most 64, sleeping a little
/// whenever it is met; the deadline is checked between bursts. Prints
/// `sent N errors E secs T`.
fn paced(secs: f64, pps: u64, mut send: impl FnMut() -> bool) {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let (mut sent, mut errors) = (0u64, 0u64);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let done = sent + errors;
        let due = if pps == 0 {
            done + 64
        } else {
            (now.duration_since(start).as_secs_f64() * pps as f64) as u64
        };
        if done >= due {
            thread::sleep(Duration::from_micros(200));
            continue;
        }
        for _ in 0..(due - done).min(64) {
            if send() {
                sent += 1;
            } else {
                errors += 1;
            }
        }
    }
    println!(
        "sent {sent} errors {errors} secs {:.6}",
        start.elapsed().as_secs_f64()
    );
}

/// `cargo xtask bench-udp-recv`: counts datagrams on `port` until `secs` pass or none came
/// for 300 ms after the first; says `ready` on stderr once bound, prints `received N` last.
/// With `hold`, it reads nothing: once its socket buffer is full, the kernel drops every
/// datagram (`RcvbufErrors`), until `secs` pass or it is stopped.
pub fn udp_recv(port: u16, secs: f64, hold: bool) -> Result<()> {
    ensure!(
        secs > 0.0 && secs <= 120.0,
        "--secs must be in (0, 120], not {secs}"
    );
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))
        .with_context(|| format!("binding UDP port {port}"))?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    eprintln!("ready");
    let end = Instant::now() + Duration::from_secs_f64(secs);
    if hold {
        thread::sleep(Duration::from_secs_f64(secs));
        println!("received 0");
        return Ok(());
    }
    let mut buf = [0u8; 2048];
    let mut received = 0u64;
    let mut last = Instant::now();
    while Instant::now() < end {
        match sock.recv(&mut buf) {
            Ok(_) => {
                received += 1;
                if received & 0xff == 0 {
                    last = Instant::now();
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if received > 0 && last.elapsed() > Duration::from_millis(300) {
                    break;
                }
            }
            Err(e) => return Err(e).context("receiving"),
        }
    }
    println!("received {received}");
    Ok(())
}

/// One UDP window from a to b.
#[derive(Debug, Clone, Copy)]
pub(super) struct UdpWindow {
    pub(super) sent: u64,
    /// Datagrams that reached b's UDP layer: read by the receiver, or dropped because its
    /// socket buffer was full (`InDatagrams` + `RcvbufErrors` of b's /proc/net/snmp).
    arrived: u64,
    /// Read by the receiver.
    pub(super) received: u64,
    pub(super) secs: f64,
}

impl UdpWindow {
    /// The rate of the path a → b: what arrived at b's UDP layer per second of sending.
    pub(super) fn pps(&self) -> f64 {
        self.arrived as f64 / self.secs
    }
}

/// `InDatagrams` and `RcvbufErrors` of the `Udp:` lines of /proc/net/snmp.
pub(super) fn udp_snmp(snmp: &str) -> Option<(u64, u64)> {
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let get = |name: &str| -> Option<u64> {
        values
            .get(names.iter().position(|n| *n == name)?)?
            .parse()
            .ok()
    };
    Some((get("InDatagrams")?, get("RcvbufErrors")?))
}

fn udp_counters_of_b() -> Result<(u64, u64)> {
    let snmp = quiet(in_ns(NS_B, "cat").arg("/proc/net/snmp"))?;
    udp_snmp(&snmp).ok_or_else(|| anyhow!("no Udp counters in {NS_B}'s /proc/net/snmp"))
}

/// Which end of the traffic a helper is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    Sender,
    Receiver,
}

/// `ip netns exec <ns> nice -n -20 [taskset -c <cpu>] <xtask>`: at the highest CFS weight,
/// so that other jobs of the machine take as little CPU from it as possible during a window;
/// with two CPUs or more, the sender on CPU 0 (where the whole path a → b then runs, in its
/// softirqs) and the receiver on CPU 1.
pub(super) fn xtask_in(ns: &str, xtask: &Path, end: End) -> Command {
    let mut c = in_ns(ns, "nice");
    c.args(["-n", "-20"]);
    if thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        let cpu = match end {
            End::Sender => "0",
            End::Receiver => "1",
        };
        c.args(["taskset", "-c", cpu]);
    }
    c.arg(xtask);
    c
}

/// What b does with the datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Receiver {
    /// A receiver reads them all.
    Reads,
    /// Nobody reads: b's socket buffer stays full and b drops (frees) every datagram.
    Drops,
}

/// The receiver in b on the bench's port, for at most `secs`; with `hold`, reading nothing.
pub(super) fn udp_receiver(xtask: &Path, secs: f64, hold: bool) -> Command {
    let mut c = xtask_in(NS_B, xtask, End::Receiver);
    c.args([
        "bench-udp-recv",
        "--port",
        &UDP_PORT.to_string(),
        "--secs",
        &format!("{secs}"),
    ]);
    if hold {
        c.arg("--hold");
    }
    c
}

/// The sender in a, to b's port as fast as it can for `secs`.
pub(super) fn udp_sender(xtask: &Path, secs: f64) -> Command {
    let mut c = xtask_in(NS_A, xtask, End::Sender);
    c.args([
        "bench-udp-send",
        "--dst",
        ADDR_B,
        "--port",
        &UDP_PORT.to_string(),
        "--secs",
        &format!("{secs}"),
    ]);
    c
}

pub(super) fn udp_window(xtask: &Path, secs: f64, receiver: Receiver) -> Result<UdpWindow> {
    let before = udp_counters_of_b()?;
    let mut recv = spawn(
        &mut udp_receiver(xtask, secs + 10.0, receiver == Receiver::Drops),
        TAIL,
    )?;
    wait_for(&mut recv, "ready", Duration::from_secs(10))?;
    let out = quiet(&mut udp_sender(xtask, secs))?;
    let received = match receiver {
        Receiver::Reads => {
            let ended = recv.wait(Duration::from_secs_f64(secs + 15.0))?;
            word_after(ended.last_line(), "received")
                .ok_or_else(|| anyhow!("receiver said {:?}", ended.stdout))?
        }
        Receiver::Drops => {
            recv.stop_within(libc::SIGTERM, Duration::from_secs(10))?;
            0.0
        }
    };
    let after = udp_counters_of_b()?;
    let sent = word_after(&out, "sent").ok_or_else(|| anyhow!("sender said {out:?}"))?;
    let secs = word_after(&out, "secs").ok_or_else(|| anyhow!("sender said {out:?}"))?;
    Ok(UdpWindow {
        sent: sent as u64,
        arrived: (after.0 + after.1).saturating_sub(before.0 + before.1),
        received: received as u64,
        secs,
    })
}

/// `ping -f -q -l <preload> -c <count> -w <deadline> 10.200.0.2` from a.
pub(super) fn ping_cmd(preload: u32, count: u32, deadline: u32) -> Command {
    let mut c = in_ns(NS_A, "ping");
    c.args(["-f", "-q", "-n"]);
    if preload > 1 {
        c.args(["-l", &preload.to_string()]);
    }
    c.args([
        "-c",
        &count.to_string(),
        "-w",
        &deadline.to_string(),
        ADDR_B,
    ]);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tool_output() {
        assert_eq!(word_after("sent 12 errors 0 secs 1.5", "secs"), Some(1.5));
        assert_eq!(
            word_after("netlab: info: watching 501 interfaces (tcx)", "watching"),
            Some(501.0)
        );
        assert_eq!(word_after("", "sent"), None);
    }

    #[test]
    fn parses_snmp() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\nUdp: 120 3 40 0 38 0 0 0 0\nUdpLite: InDatagrams NoPorts\nUdpLite: 0 0\n";
        assert_eq!(udp_snmp(snmp), Some((120, 38)));
        assert_eq!(udp_snmp(""), None);
    }

    #[test]
    fn udp_sender_refuses_other_addresses() {
        assert!(udp_send(Ipv4Addr::new(192, 0, 2, 1), UDP_PORT, 0.01, 0).is_err());
        assert!(udp_send(Ipv4Addr::new(10, 200, 0, 2), UDP_PORT, 0.0, 0).is_err());
        assert!(udp_send(Ipv4Addr::new(10, 200, 0, 2), UDP_PORT, 61.0, 0).is_err());
        assert!(icmp_send(Ipv4Addr::new(192, 0, 2, 1), 0.01, 0).is_err());
        assert!(icmp_send(Ipv4Addr::new(10, 200, 0, 2), 61.0, 0).is_err());
    }

    #[test]
    fn echo_requests_carry_a_valid_checksum() {
        let mut p = [0u8; 64];
        echo_request(&mut p, 0x1234, 7);
        assert_eq!((p[0], p[1]), (8, 0));
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
        // A packet with its checksum in place sums to zero.
        assert_eq!(checksum::internet(&p), 0);
        // RFC 1071's example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2 (checksum 220d).
        assert_eq!(
            checksum::internet(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
        assert_eq!(checksum::internet(&[0xff]), 0x00ff);
    }
}

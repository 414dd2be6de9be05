//! Exact attribution of netfilter drops through nf_tables tracing.
//!
//! Counters say which rule rose while drops happened; tracing says which rule decided each
//! packet. Where the rules live in nf_tables (iptables-nft, Docker's nftables backend),
//! netlab adds a table of its own, `inet netlab-trace-<pid>`, whose two chains run first at
//! prerouting and output (priority -350, before the raw table) and hold one rule each:
//! ICMP and ICMPv6 get `meta nftrace set 1`. The rule has no verdict, so a packet's fate
//! never changes. For such packets the kernel reports every rule verdict on the netlink
//! group NFNLGRP_NFTRACE: table, chain, rule handle, verdict, and the packet's network and
//! transport headers (in the first message of each hook). A `drop` verdict is joined to
//! netlab's drop event by the packet itself: addresses, ICMP type, id and sequence.
//!
//! The table is removed when netlab exits (and by `netlab daemon --cleanup` if netlab was
//! killed). Other tools that listen to traces (`nft monitor trace`) see these packets too.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// `NETLINK_NETFILTER`.
const NETLINK_NETFILTER: libc::c_int = 12;
/// `NFNLGRP_NFTRACE`.
const NFNLGRP_NFTRACE: libc::c_int = 9;
/// `NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_TRACE`.
const NFT_TRACE_MSG: u16 = (10 << 8) | 17;
/// `enum nft_trace_attributes`.
const NFTA_TRACE_TABLE: u16 = 1;
const NFTA_TRACE_CHAIN: u16 = 2;
const NFTA_TRACE_RULE_HANDLE: u16 = 3;
const NFTA_TRACE_TYPE: u16 = 4;
const NFTA_TRACE_VERDICT: u16 = 5;
const NFTA_TRACE_ID: u16 = 6;
const NFTA_TRACE_NETWORK_HEADER: u16 = 8;
const NFTA_TRACE_TRANSPORT_HEADER: u16 = 9;
const NFTA_TRACE_NFPROTO: u16 = 15;
const NFTA_TRACE_POLICY: u16 = 16;
/// `NFTA_VERDICT_CODE`.
const NFTA_VERDICT_CODE: u16 = 1;
/// `enum nft_trace_types`.
const NFT_TRACETYPE_POLICY: u32 = 1;
const NFT_TRACETYPE_RULE: u32 = 3;
/// `NF_DROP`.
const NF_DROP: u32 = 0;
/// `NFPROTO_*` of a table family.
const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_BRIDGE: u8 = 7;
const NFPROTO_IPV6: u8 = 10;

/// Prefix of netlab's trace tables; the pid follows.
pub const TABLE_PREFIX: &str = "netlab-trace-";
/// How long a verdict waits for its drop event.
const KEEP: Duration = Duration::from_secs(10);
/// Verdicts kept at most while waiting.
const KEEP_AT_MOST: usize = 4096;

/// What identifies a traced ICMP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PacketKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub icmp_type: u8,
    pub id: u16,
    pub seq: u16,
}

/// A drop verdict the kernel traced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceVerdict {
    /// The table's family as nft names it (`ip`, `ip6`, `inet`, `bridge`).
    pub family: &'static str,
    pub table: String,
    pub chain: String,
    /// The rule's handle; `None` for a chain policy.
    pub handle: Option<u64>,
    /// The packet.
    pub key: PacketKey,
}

/// One netlink attribute: type (without flags) and payload.
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let payload = &b[4..len];
        let aligned = (len + 3) & !3;
        b = b.get(aligned..).unwrap_or_default();
        Some((ty, payload))
    })
}

fn be32(p: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(p.get(..4)?.try_into().ok()?))
}

fn be64(p: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(p.get(..8)?.try_into().ok()?))
}

fn name(p: &[u8]) -> String {
    let end = p.iter().position(|&c| c == 0).unwrap_or(p.len());
    String::from_utf8_lossy(&p[..end]).into_owned()
}

fn family_name(nfproto: u8) -> &'static str {
    match nfproto {
        NFPROTO_INET => "inet",
        NFPROTO_IPV4 => "ip",
        NFPROTO_IPV6 => "ip6",
        NFPROTO_BRIDGE => "bridge",
        _ => "unknown",
    }
}

/// The ICMP packet of a network and a transport header, if it is one.
fn packet_key(network: &[u8], transport: &[u8]) -> Option<PacketKey> {
    let (src, dst) = match network.first()? >> 4 {
        4 => {
            let proto = *network.get(9)?;
            if proto != 1 {
                return None;
            }
            let a: [u8; 4] = network.get(12..16)?.try_into().ok()?;
            let b: [u8; 4] = network.get(16..20)?.try_into().ok()?;
            (IpAddr::V4(Ipv4Addr::from(a)), IpAddr::V4(Ipv4Addr::from(b)))
        }
        6 => {
            let a: [u8; 16] = network.get(8..24)?.try_into().ok()?;
            let b: [u8; 16] = network.get(24..40)?.try_into().ok()?;
            (IpAddr::V6(Ipv6Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => return None,
    };
    let icmp_type = *transport.first()?;
    let id = u16::from_be_bytes(transport.get(4..6)?.try_into().ok()?);
    let seq = u16::from_be_bytes(transport.get(6..8)?.try_into().ok()?);
    Some(PacketKey {
        src,
        dst,
        icmp_type,
        id,
        seq,
    })
}

/// Reads the trace messages of one netlink datagram: remembers each traced packet by its
/// trace id (the headers come in the first message of each hook) and returns the drop
/// verdicts.
pub fn parse(buf: &[u8], packets: &mut HashMap<u32, PacketKey>) -> Vec<TraceVerdict> {
    let mut out = Vec::new();
    let mut b = buf;
    while b.len() >= 16 {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let ty = u16::from_ne_bytes([b[4], b[5]]);
        if len < 16 || len > b.len() {
            break;
        }
        let msg = &b[16..len];
        b = b.get(((len + 3) & !3)..).unwrap_or_default();
        if ty != NFT_TRACE_MSG || msg.len() < 4 {
            continue;
        }
        let table_family = msg[0];
        let (mut table, mut chain, mut handle, mut kind, mut verdict, mut id) =
            (None, None, None, None, None, None);
        let (mut network, mut transport, mut policy) = (None, None, None);
        for (t, p) in attrs(&msg[4..]) {
            match t {
                NFTA_TRACE_TABLE => table = Some(name(p)),
                NFTA_TRACE_CHAIN => chain = Some(name(p)),
                NFTA_TRACE_RULE_HANDLE => handle = be64(p),
                NFTA_TRACE_TYPE => kind = be32(p),
                NFTA_TRACE_ID => id = be32(p),
                NFTA_TRACE_NETWORK_HEADER => network = Some(p),
                NFTA_TRACE_TRANSPORT_HEADER => transport = Some(p),
                NFTA_TRACE_POLICY => policy = be32(p),
                NFTA_TRACE_VERDICT => {
                    verdict = attrs(p)
                        .find(|(t, _)| *t == NFTA_VERDICT_CODE)
                        .and_then(|(_, v)| be32(v));
                }
                NFTA_TRACE_NFPROTO => {}
                _ => {}
            }
        }
        let Some(id) = id else { continue };
        if let (Some(n), Some(t)) = (network, transport) {
            match packet_key(n, t) {
                Some(k) => {
                    if packets.len() >= KEEP_AT_MOST {
                        packets.clear();
                    }
                    packets.insert(id, k);
                }
                None => {
                    packets.remove(&id);
                }
            }
        }
        let dropped = match kind {
            Some(NFT_TRACETYPE_RULE) => verdict == Some(NF_DROP),
            Some(NFT_TRACETYPE_POLICY) => policy.or(verdict) == Some(NF_DROP),
            _ => false,
        };
        if !dropped {
            continue;
        }
        let (Some(table), Some(chain), Some(key)) = (table, chain, packets.remove(&id)) else {
            continue;
        };
        out.push(TraceVerdict {
            family: family_name(table_family),
            table,
            chain,
            handle: (kind == Some(NFT_TRACETYPE_RULE))
                .then_some(handle)
                .flatten(),
            key,
        });
    }
    out
}

/// Runs `nft -f -` with `script`.
fn nft_script(script: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("running nft: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("writing to nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The trace table's ruleset.
fn table_script(table: &str) -> String {
    format!(
        "table inet {table} {{\n\
         \tchain prerouting {{\n\
         \t\ttype filter hook prerouting priority -350; policy accept;\n\
         \t\tmeta l4proto {{ icmp, ipv6-icmp }} meta nftrace set 1\n\
         \t}}\n\
         \tchain output {{\n\
         \t\ttype filter hook output priority -350; policy accept;\n\
         \t\tmeta l4proto {{ icmp, ipv6-icmp }} meta nftrace set 1\n\
         \t}}\n\
         }}\n"
    )
}

/// A netlink socket subscribed to the trace group.
fn trace_socket() -> Result<OwnedFd, String> {
    // SAFETY: plain socket(2); the fd is owned right after.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_NETFILTER,
        )
    };
    if fd < 0 {
        return Err(format!(
            "netfilter netlink socket: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: fd is a new socket nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: a zeroed sockaddr_nl is valid (family set below, pid 0: the kernel picks).
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: addr is a sockaddr_nl of the size given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::addr_of!(addr).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if rc < 0 {
        return Err(format!("binding: {}", std::io::Error::last_os_error()));
    }
    let group = NFNLGRP_NFTRACE;
    let rcvbuf: libc::c_int = 4 << 20;
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: setsockopt with pointers to values of the sizes given.
    unsafe {
        if libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_NETLINK,
            libc::NETLINK_ADD_MEMBERSHIP,
            std::ptr::addr_of!(group).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        ) < 0
        {
            return Err(format!(
                "joining the nftables trace group: {}",
                std::io::Error::last_os_error()
            ));
        }
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::addr_of!(rcvbuf).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        );
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::addr_of!(timeout).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
    }
    Ok(fd)
}

/// Tracing on: netlab's table installed and a thread reading the verdicts. Dropping it
/// stops the thread and removes the table.
pub struct NfTrace {
    table: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    rx: mpsc::Receiver<(Instant, TraceVerdict)>,
    recent: VecDeque<(Instant, TraceVerdict)>,
    /// Trace messages the socket could not hold (ENOBUFS).
    pub overflows: Arc<AtomicU64>,
}

impl NfTrace {
    /// Subscribes to the trace group, then installs the table (so no verdict is missed).
    pub fn start() -> Result<NfTrace, String> {
        let fd = trace_socket()?;
        let table = format!("{TABLE_PREFIX}{}", std::process::id());
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let overflows = Arc::new(AtomicU64::new(0));
        let thread = {
            let stop = Arc::clone(&stop);
            let overflows = Arc::clone(&overflows);
            std::thread::Builder::new()
                .name("nftrace".into())
                .spawn(move || read_loop(&fd, &stop, &overflows, &tx))
                .map_err(|e| format!("starting the trace reader: {e}"))?
        };
        let mut t = NfTrace {
            table,
            stop,
            thread: Some(thread),
            rx,
            recent: VecDeque::new(),
            overflows,
        };
        if let Err(e) = nft_script(&table_script(&t.table)) {
            // Nothing to remove on drop.
            let table = std::mem::take(&mut t.table);
            return Err(format!("adding table inet {table}: {e}"));
        }
        log::info!(
            "nftables tracing on (table inet {}): netfilter drops are attributed per packet",
            t.table
        );
        Ok(t)
    }

    /// The drop verdict of packet `key`, if the kernel traced one; waits up to `wait` for
    /// it to arrive.
    pub fn take(&mut self, key: &PacketKey, wait: Duration) -> Option<TraceVerdict> {
        let deadline = Instant::now() + wait;
        loop {
            while let Ok(v) = self.rx.try_recv() {
                self.recent.push_back(v);
            }
            let now = Instant::now();
            while self
                .recent
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > KEEP)
                || self.recent.len() > KEEP_AT_MOST
            {
                self.recent.pop_front();
            }
            if let Some(i) = self.recent.iter().position(|(_, v)| v.key == *key) {
                return self.recent.remove(i).map(|(_, v)| v);
            }
            if now >= deadline {
                return None;
            }
            match self.rx.recv_timeout(deadline - now) {
                Ok(v) => self.recent.push_back(v),
                Err(_) => return None,
            }
        }
    }
}

fn read_loop(
    fd: &OwnedFd,
    stop: &AtomicBool,
    overflows: &AtomicU64,
    tx: &mpsc::Sender<(Instant, TraceVerdict)>,
) {
    let mut buf = vec![0u8; 1 << 16];
    let mut packets = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: recv into a buffer of the length given.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => continue,
                Some(libc::ENOBUFS) => {
                    overflows.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                _ => {
                    log::warn!("reading nftables traces: {e}; drops are attributed by counters");
                    return;
                }
            }
        }
        for v in parse(&buf[..n as usize], &mut packets) {
            if tx.send((Instant::now(), v)).is_err() {
                return;
            }
        }
    }
}

impl Drop for NfTrace {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if !self.table.is_empty() {
            if let Err(e) = nft_script(&format!("delete table inet {}\n", self.table)) {
                log::warn!("removing table inet {}: {e}", self.table);
            }
        }
    }
}

/// Removes trace tables left by netlab processes that no longer run; returns how many.
pub fn remove_stale_tables() -> usize {
    let Ok(tables) = crate::explain::nftables::list_tables(crate::explain::nftables::NFT_TIMEOUT)
    else {
        return 0;
    };
    let mut removed = 0;
    for line in tables.lines() {
        let Some(table) = line.strip_prefix("table inet ") else {
            continue;
        };
        let Some(pid) = table.trim().strip_prefix(TABLE_PREFIX) else {
            continue;
        };
        if pid
            .parse::<u32>()
            .is_ok_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        {
            continue;
        }
        if nft_script(&format!("delete table inet {}\n", table.trim())).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A netlink attribute.
    fn attr(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&ty.to_ne_bytes());
        a.extend_from_slice(payload);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    /// A trace message as the kernel writes it (nf_tables_trace.c).
    fn message(family: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = attrs.concat();
        let len = 16 + 4 + body.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&NFT_TRACE_MSG.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&[family, 0, 0, 0]);
        m.extend_from_slice(&body);
        m
    }

    fn ipv4_icmp(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 84, 0, 0, 0x40, 0, 64, 1, 0, 0];
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h
    }

    fn echo(id: u16, seq: u16) -> Vec<u8> {
        let mut t = vec![8, 0, 0, 0];
        t.extend_from_slice(&id.to_be_bytes());
        t.extend_from_slice(&seq.to_be_bytes());
        t
    }

    fn verdict(code: u32) -> Vec<u8> {
        attr(NFTA_VERDICT_CODE, &code.to_be_bytes())
    }

    fn cstr(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    }

    #[test]
    fn a_drop_verdict_is_joined_to_the_packet_of_its_first_message() {
        let id = 0xdead_beef_u32.to_be_bytes();
        // First message of the hook: the packet, and a rule that continues.
        let first = message(
            NFPROTO_INET,
            &[
                attr(NFTA_TRACE_ID, &id),
                attr(NFTA_TRACE_TYPE, &NFT_TRACETYPE_RULE.to_be_bytes()),
                attr(NFTA_TRACE_TABLE, &cstr("netlab-trace-1")),
                attr(NFTA_TRACE_CHAIN, &cstr("prerouting")),
                attr(NFTA_TRACE_RULE_HANDLE, &2u64.to_be_bytes()),
                attr(NFTA_TRACE_VERDICT | 0x8000, &verdict(0xffff_ffff)),
                attr(
                    NFTA_TRACE_NETWORK_HEADER,
                    &ipv4_icmp([10, 77, 1, 2], [10, 77, 2, 2]),
                ),
                attr(NFTA_TRACE_TRANSPORT_HEADER, &echo(801, 3)),
            ],
        );
        // Docker's raw rule drops it.
        let drop = message(
            NFPROTO_IPV4,
            &[
                attr(NFTA_TRACE_ID, &id),
                attr(NFTA_TRACE_TYPE, &NFT_TRACETYPE_RULE.to_be_bytes()),
                attr(NFTA_TRACE_TABLE, &cstr("docker-bridges")),
                attr(NFTA_TRACE_CHAIN, &cstr("raw-PREROUTING")),
                attr(NFTA_TRACE_RULE_HANDLE, &38u64.to_be_bytes()),
                attr(NFTA_TRACE_VERDICT | 0x8000, &verdict(NF_DROP)),
                attr(NFTA_TRACE_NFPROTO, &2u32.to_be_bytes()),
            ],
        );
        let mut packets = HashMap::new();
        let buf = [first, drop].concat();
        let got = parse(&buf, &mut packets);
        assert_eq!(
            got,
            vec![TraceVerdict {
                family: "ip",
                table: "docker-bridges".into(),
                chain: "raw-PREROUTING".into(),
                handle: Some(38),
                key: PacketKey {
                    src: "10.77.1.2".parse().expect("literal"),
                    dst: "10.77.2.2".parse().expect("literal"),
                    icmp_type: 8,
                    id: 801,
                    seq: 3,
                },
            }]
        );
        assert!(packets.is_empty(), "a decided packet is forgotten");
    }

    #[test]
    fn policies_accepts_and_unknown_packets_are_not_drops() {
        let id = 7u32.to_be_bytes();
        let head = |kind: u32| {
            vec![
                attr(NFTA_TRACE_ID, &id),
                attr(NFTA_TRACE_TYPE, &kind.to_be_bytes()),
                attr(NFTA_TRACE_TABLE, &cstr("filter")),
                attr(NFTA_TRACE_CHAIN, &cstr("FORWARD")),
            ]
        };
        let mut packets = HashMap::new();
        // A drop of a packet whose headers were never seen: nothing to join.
        let mut m = head(NFT_TRACETYPE_RULE);
        m.push(attr(NFTA_TRACE_VERDICT | 0x8000, &verdict(NF_DROP)));
        assert!(parse(&message(NFPROTO_IPV4, &m), &mut packets).is_empty());
        // An accept, then a policy drop.
        let mut m = head(NFT_TRACETYPE_RULE);
        m.push(attr(NFTA_TRACE_VERDICT | 0x8000, &verdict(1)));
        m.push(attr(
            NFTA_TRACE_NETWORK_HEADER,
            &ipv4_icmp([1, 1, 1, 1], [2, 2, 2, 2]),
        ));
        m.push(attr(NFTA_TRACE_TRANSPORT_HEADER, &echo(1, 1)));
        assert!(parse(&message(NFPROTO_IPV4, &m), &mut packets).is_empty());
        let mut m = head(NFT_TRACETYPE_POLICY);
        m.push(attr(NFTA_TRACE_POLICY, &NF_DROP.to_be_bytes()));
        let got = parse(&message(NFPROTO_IPV4, &m), &mut packets);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].handle, None);
        assert_eq!(got[0].chain, "FORWARD");
    }

    #[test]
    fn truncated_and_foreign_messages_are_skipped() {
        let mut packets = HashMap::new();
        let id = 9u32.to_be_bytes();
        let full = message(
            NFPROTO_IPV6,
            &[
                attr(NFTA_TRACE_ID, &id),
                attr(NFTA_TRACE_TYPE, &NFT_TRACETYPE_RULE.to_be_bytes()),
                attr(NFTA_TRACE_TABLE, &cstr("docker-bridges")),
                attr(NFTA_TRACE_CHAIN, &cstr("raw-PREROUTING")),
                attr(NFTA_TRACE_RULE_HANDLE, &5u64.to_be_bytes()),
                attr(NFTA_TRACE_VERDICT | 0x8000, &verdict(NF_DROP)),
            ],
        );
        for cut in 0..full.len() {
            let _ = parse(&full[..cut], &mut packets);
        }
        let mut foreign = full.clone();
        foreign[4] = 0;
        assert!(parse(&foreign, &mut packets).is_empty());
        // IPv6 headers become an IPv6 key.
        let mut h6 = vec![0x60, 0, 0, 0, 0, 16, 58, 64];
        h6.extend_from_slice(&"fd00:1::2".parse::<Ipv6Addr>().expect("literal").octets());
        h6.extend_from_slice(&"fd00:2::2".parse::<Ipv6Addr>().expect("literal").octets());
        let mut t6 = echo(4, 5);
        t6[0] = 128;
        let k = packet_key(&h6, &t6).expect("key");
        assert_eq!(k.dst, "fd00:2::2".parse::<IpAddr>().expect("literal"));
        assert_eq!((k.icmp_type, k.id, k.seq), (128, 4, 5));
        assert_eq!(packet_key(&h6[..30], &t6), None);
        assert_eq!(packet_key(&ipv4_icmp([1; 4], [2; 4]), &t6[..6]), None);
    }
}

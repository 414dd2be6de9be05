//! `--peer`: another host's netlab daemon, whose echo packets and drops join this host's
//! journeys, so that one ping between containers on two hosts (a Swarm overlay) is one
//! journey with its hops on both, saying which host lost it.
//!
//! Each peer is read from its API (`netlab daemon --listen ADDR:PORT`): its `/v1/events`
//! stream, echo requests and replies and drops only, one JSON line each. A line's `ts`
//! (Unix time, by the peer's clock) is mapped to this host's monotonic clock, which
//! journeys are timed by, through this host's wall clock: the hosts' wall clocks are taken
//! to agree (NTP keeps them within milliseconds; hops on two hosts are ordered no better
//! than that). A peer that does not answer, or goes away, is tried again every
//! [`RETRY`]; the journeys go on with this host's hops meanwhile.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::client::Client;
use crate::kernel::clock::UnixNanos;
use crate::model::kind::{Direction, Kind};

/// How long after a failure a peer is tried again.
pub const RETRY: Duration = Duration::from_secs(2);

/// How long journeys wait for peers' sightings: a peer's events come through its
/// daemon's stream (written within 100 ms) and its drops after their attribution
/// (150 ms), then over the network. Journeys finish this much later with peers.
pub const PEER_LAG: Duration = Duration::from_secs(1);

/// What is asked of a peer: its echo packets and its drops.
const EVENTS: &str = "/v1/events?kind=icmp-echo-request&kind=icmp-echo-reply\
                      &kind=icmp6-echo-request&kind=icmp6-echo-reply&kind=drop";

/// Items waiting for the session, across all peers; a peer whose items are not taken in
/// time loses the excess (counted in [`Peers::lost`]), it does not stall its stream.
const QUEUE: usize = 65_536;

/// A `--peer`: `[NAME=]HOST:PORT`, or with `http://` before HOST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSpec {
    /// What its hops are labelled with: NAME, else HOST.
    pub name: String,
    /// Host name or address.
    pub host: String,
    pub port: u16,
}

impl std::str::FromStr for PeerSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, addr) = match s.split_once('=') {
            Some((n, a)) => (Some(n.trim()), a.trim()),
            None => (None, s.trim()),
        };
        if name.is_some_and(|n| n.is_empty() || n.contains([':', ' ', '/'])) {
            return Err(format!(
                "'{s}': the name before '=' must be non-empty, without ':', '/' or spaces"
            ));
        }
        let rest = addr.strip_prefix("http://").unwrap_or(addr);
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || addr.starts_with("https://") {
            return Err(format!(
                "'{s}' is not [NAME=]HOST:PORT (a netlab daemon's --listen address, plain HTTP)"
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() => (h, p),
            _ => return Err(format!("'{s}' has no port: use [NAME=]HOST:PORT")),
        };
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) if v6.parse::<std::net::Ipv6Addr>().is_ok() => v6,
            Some(_) => return Err(format!("'{s}': '{host}' is not an IPv6 address")),
            None if host.contains(':') => {
                return Err(format!(
                    "'{s}': write an IPv6 address in brackets, [ADDR]:PORT"
                ))
            }
            None => host,
        };
        let port: u16 = match port.parse() {
            Ok(p) if p > 0 => p,
            _ => return Err(format!("'{s}': '{port}' is not a port (1-65535)")),
        };
        Ok(PeerSpec {
            name: name.unwrap_or(host).to_owned(),
            host: host.to_owned(),
            port,
        })
    }
}

impl PeerSpec {
    /// `HOST:PORT` as one writes it, an IPv6 address in brackets.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Something a peer saw: an echo packet at one of its observation points, or a drop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerItem {
    /// The peer's name ([`PeerSpec::name`]).
    pub host: Arc<str>,
    /// When, in Unix time by the peer's clock.
    pub ts: UnixNanos,
    pub kind: Kind,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub src_container: Option<String>,
    pub dst_container: Option<String>,
    pub id: u16,
    pub seq: u16,
    /// Interface name (always for a packet; a drop's when known).
    pub iface: Option<String>,
    pub ifindex: u32,
    /// `Some` for a packet: its direction on the interface.
    pub direction: Option<Direction>,
    pub vni: Option<u32>,
    /// `Some` for a drop.
    pub drop: Option<PeerDrop>,
}

/// A peer's drop: why and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerDrop {
    pub reason: String,
    pub location: Option<String>,
    pub rule: Option<String>,
    pub hook: Option<String>,
}

/// The members of a peer's event line that journeys use (packets and drops alike).
#[derive(Deserialize)]
struct Line {
    kind: String,
    ts: String,
    #[serde(default)]
    packet: Option<String>,
    iface: LineIface,
    #[serde(default)]
    direction: Option<String>,
    src: LineEnd,
    dst: LineEnd,
    #[serde(default)]
    icmp: Option<LineIcmp>,
    #[serde(default)]
    vxlan: Option<LineVxlan>,
    #[serde(default)]
    drop: Option<LineDrop>,
}

#[derive(Deserialize)]
struct LineIface {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    ifindex: u32,
}

#[derive(Deserialize)]
struct LineEnd {
    #[serde(default)]
    ip: Option<IpAddr>,
    #[serde(default)]
    container: Option<String>,
}

#[derive(Deserialize)]
struct LineIcmp {
    #[serde(default)]
    id: Option<u16>,
    #[serde(default)]
    seq: Option<u16>,
}

#[derive(Deserialize)]
struct LineVxlan {
    vni: u32,
}

#[derive(Deserialize)]
struct LineDrop {
    reason: String,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    rule: Option<LineRule>,
    #[serde(default)]
    hook: Option<String>,
}

#[derive(Deserialize)]
struct LineRule {
    rule: String,
}

/// The item of one of a peer's event lines; `None` for a line that is not an echo packet
/// or an echo drop with its addresses, id and sequence number (or not netlab's JSON).
pub fn parse_line(host: &Arc<str>, line: &[u8]) -> Option<PeerItem> {
    let l: Line = serde_json::from_slice(line).ok()?;
    let (kind, direction, drop) = match l.kind.as_str() {
        "drop" => {
            let d = l.drop?;
            let info = PeerDrop {
                reason: d.reason,
                location: d.location,
                rule: d.rule.map(|r| r.rule),
                hook: d.hook,
            };
            (Kind::from_name(l.packet.as_deref()?)?, None, Some(info))
        }
        k => (
            Kind::from_name(k)?,
            Some(Direction::from_name(l.direction.as_deref()?)?),
            None,
        ),
    };
    if !kind.is_echo() {
        return None;
    }
    let icmp = l.icmp?;
    Some(PeerItem {
        host: Arc::clone(host),
        ts: l.ts.parse().ok()?,
        kind,
        src_ip: l.src.ip?,
        dst_ip: l.dst.ip?,
        src_container: l.src.container,
        dst_container: l.dst.container,
        id: icmp.id?,
        seq: icmp.seq?,
        iface: l.iface.name,
        ifindex: l.iface.ifindex,
        direction,
        vni: l.vxlan.map(|v| v.vni),
        drop,
    })
}

/// The peers being read, each by its own task; their items come out of [`Peers::recv`].
/// Dropping it stops the tasks.
pub struct Peers {
    rx: mpsc::Receiver<PeerItem>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    lost: Arc<std::sync::atomic::AtomicU64>,
}

impl Peers {
    /// Starts reading every peer of `specs`; `None` without any.
    pub fn start(specs: &[PeerSpec]) -> Option<Self> {
        if specs.is_empty() {
            return None;
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let lost = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let tasks = specs
            .iter()
            .map(|s| tokio::spawn(follow(s.clone(), tx.clone(), Arc::clone(&lost))))
            .collect();
        Some(Peers { rx, tasks, lost })
    }

    /// The next item of any peer (cancel-safe); pending for ever once every task ended.
    pub async fn recv(&mut self) -> PeerItem {
        match self.rx.recv().await {
            Some(item) => item,
            None => std::future::pending().await,
        }
    }

    /// The next item already waiting, if any.
    pub fn try_recv(&mut self) -> Option<PeerItem> {
        self.rx.try_recv().ok()
    }

    /// Items left out because the session did not take them in time.
    pub fn lost(&self) -> u64 {
        self.lost.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Reads one peer for as long as the session runs: connects, streams, and after a failure
/// or the stream's end, tries again every [`RETRY`]. Says once when it is lost and once
/// when it is back.
async fn follow(
    spec: PeerSpec,
    tx: mpsc::Sender<PeerItem>,
    lost: Arc<std::sync::atomic::AtomicU64>,
) {
    let host: Arc<str> = Arc::from(spec.name.as_str());
    let mut failing = false;
    loop {
        let result = async {
            let mut client = connect(&spec).await?;
            log::info!(
                "peer {}: reading the echo packets and drops of the netlab at {}",
                spec.name,
                spec.addr()
            );
            failing = false;
            client
                .stream_lines(EVENTS, |line| {
                    let Some(item) = parse_line(&host, line) else {
                        return Ok(true);
                    };
                    match tx.try_send(item) {
                        Ok(()) => Ok(true),
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            lost.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            Ok(true)
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => Ok(false),
                    }
                })
                .await?;
            anyhow::Ok(())
        }
        .await;
        if tx.is_closed() {
            return;
        }
        let why = match result {
            Ok(()) => "its event stream ended".to_owned(),
            Err(e) => format!("{e:#}"),
        };
        if !failing {
            log::warn!(
                "peer {} ({}): {why}; its hops are missing from journeys until it answers \
                 (tried every {} s)",
                spec.name,
                spec.addr(),
                RETRY.as_secs()
            );
            failing = true;
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// The drop reports of peers, whole (reason, rule, meaning), gathered while `diagnose`
/// probes: each peer's `/v1/events?kind=drop`, subscribed before the first probe leaves.
pub struct PeerDrops {
    got: Arc<std::sync::Mutex<Vec<(String, crate::model::event::DropRecord)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl PeerDrops {
    /// Subscribes to every peer's drops; a peer that does not answer is said and left
    /// out. Returns once each is subscribed or failed.
    pub async fn start(specs: &[PeerSpec]) -> Self {
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for spec in specs {
            let (on, subscribed) = tokio::sync::oneshot::channel::<()>();
            let (spec, got) = (spec.clone(), Arc::clone(&got));
            tasks.push(tokio::spawn(async move {
                let mut on = Some(on);
                let read = async {
                    let mut c = connect(&spec).await?;
                    c.stream_lines("/v1/events?kind=drop", |line| {
                        if let Some(on) = on.take() {
                            let _ = on.send(());
                        }
                        if let Ok(d) = serde_json::from_slice(line) {
                            if let Ok(mut g) = got.lock() {
                                g.push((spec.name.clone(), d));
                            }
                        }
                        Ok(true)
                    })
                    .await
                };
                if let Err(e) = read.await {
                    log::warn!(
                        "peer {} ({}): {e:#}; its drops are not part of the verdict",
                        spec.name,
                        spec.addr()
                    );
                }
            }));
            // Subscribed, failed (the sender dropped), or too slow: go on either way.
            let _ = tokio::time::timeout(RETRY, subscribed).await;
        }
        PeerDrops { got, tasks }
    }

    /// What came so far, with the name of the peer that reported each.
    pub fn take(&self) -> Vec<(String, crate::model::event::DropRecord)> {
        self.got
            .lock()
            .map(|mut g| std::mem::take(&mut *g))
            .unwrap_or_default()
    }
}

impl Drop for PeerDrops {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The echo requests the peer counted arriving inside VXLAN with `vni` (ingress, on any
/// interface: its Swarm uplink), from its exact counters (`/v1/counters`). tc sees them
/// before the peer's firewall does, so a datagram its firewall drops is counted too.
pub async fn vxlan_requests_in(spec: &PeerSpec, vni: u32) -> anyhow::Result<u64> {
    #[derive(Deserialize)]
    struct Counters {
        #[serde(default)]
        vxlan: Vec<crate::model::summary::VxlanRow>,
    }
    let mut c = connect(spec).await?;
    let counters: Counters = c.get_json("/v1/counters").await?;
    Ok(counters
        .vxlan
        .iter()
        .filter(|r| r.vni == vni && r.direction == "ingress")
        .filter(|r| matches!(r.kind.as_str(), "icmp-echo-request" | "icmp6-echo-request"))
        .map(|r| r.packets)
        .sum())
}

/// A connection to the peer's API, once it answered as netlab.
async fn connect(spec: &PeerSpec) -> anyhow::Result<Client> {
    let stream = tokio::time::timeout(
        RETRY,
        tokio::net::TcpStream::connect((spec.host.as_str(), spec.port)),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no answer within {} s", RETRY.as_secs()))?
    .with_context(|| format!("connecting to {}", spec.addr()))?;
    let _ = stream.set_nodelay(true);
    Client::handshake(stream)
        .await
        .context("it does not answer as a netlab daemon")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_read_from_the_command_line() {
        let p = |s: &str| s.parse::<PeerSpec>();
        assert_eq!(
            p("node2=10.231.9.2:9464"),
            Ok(PeerSpec {
                name: "node2".into(),
                host: "10.231.9.2".into(),
                port: 9464
            })
        );
        assert_eq!(
            p("http://host-b.example:80/"),
            Ok(PeerSpec {
                name: "host-b.example".into(),
                host: "host-b.example".into(),
                port: 80
            })
        );
        assert_eq!(
            p("b=[fd00::2]:9464").map(|s| (s.name.clone(), s.host.clone(), s.addr())),
            Ok(("b".into(), "fd00::2".into(), "[fd00::2]:9464".into()))
        );
        assert_eq!(
            p("n=10.0.0.2:9464").map(|s| s.addr()),
            Ok("10.0.0.2:9464".into())
        );
        for bad in [
            "10.231.9.2",
            "=10.0.0.1:1",
            "a:b=10.0.0.1:1",
            "10.0.0.1:0",
            "10.0.0.1:70000",
            "https://10.0.0.1:443",
            "10.0.0.1:1/v1/events",
            "fd00::2:9464",
            "[fd00::zz]:9464",
            ":9464",
        ] {
            let e = p(bad).expect_err(bad);
            assert!(!e.contains('\n') && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn a_peers_packets_and_drops_become_items() {
        let host: Arc<str> = Arc::from("node2");
        let packet = br#"{"ts":"2026-12-02T12:00:00.000000100Z","iface":{"name":"link0","ifindex":2},"direction":"ingress","kind":"icmp-echo-request","len":148,"sample_rate":1,"src":{"ip":"10.0.1.3","container":"a"},"dst":{"ip":"10.0.1.4"},"icmp":{"type":8,"code":0,"id":7,"seq":1},"vxlan":{"vni":4097,"network":"ovl","outer_src":"10.231.9.1","outer_dst":"10.231.9.2"}}"#;
        let item = parse_line(&host, packet).expect("a packet");
        assert_eq!(
            item,
            PeerItem {
                host: Arc::clone(&host),
                ts: "2026-12-02T12:00:00.000000100Z".parse().expect("time"),
                kind: Kind::IcmpEchoRequest,
                src_ip: "10.0.1.3".parse().expect("ip"),
                dst_ip: "10.0.1.4".parse().expect("ip"),
                src_container: Some("a".into()),
                dst_container: None,
                id: 7,
                seq: 1,
                iface: Some("link0".into()),
                ifindex: 2,
                direction: Some(Direction::Ingress),
                vni: Some(4097),
                drop: None,
            }
        );
        let drop = br#"{"ts":"2026-12-02T12:00:00.5Z","kind":"drop","packet":"icmp-echo-request","len":148,"iface":{"name":"link0","ifindex":2,"netns":"host"},"src":{"ip":"10.0.1.3"},"dst":{"ip":"10.0.1.4","container":"b"},"icmp":{"type":8,"code":0,"id":7,"seq":2},"drop":{"reason":"NETFILTER_DROP","location":"nf_hook_slow+0x8c","hook":"input","rule":{"rule":"INPUT -p udp -m udp --dport 4789 -j DROP","backend":"iptables"}}}"#;
        let item = parse_line(&host, drop).expect("a drop");
        assert_eq!(item.kind, Kind::IcmpEchoRequest);
        assert_eq!((item.seq, item.direction), (2, None));
        assert_eq!(
            item.drop,
            Some(PeerDrop {
                reason: "NETFILTER_DROP".into(),
                location: Some("nf_hook_slow+0x8c".into()),
                rule: Some("INPUT -p udp -m udp --dport 4789 -j DROP".into()),
                hook: Some("input".into()),
            })
        );
        // Not echo, not netlab's, or without what joins a journey: left out.
        for other in [
            &br#"{"ts":"2026-12-02T12:00:00Z","iface":{"name":"v","ifindex":2},"direction":"ingress","kind":"arp-request","src":{},"dst":{}}"#[..],
            br#"{"ts":"2026-12-02T12:00:00Z","iface":{"name":"v","ifindex":2},"direction":"ingress","kind":"icmp-echo-request","src":{"ip":"10.0.0.1"},"dst":{"ip":"10.0.0.2"}}"#,
            br#"{"kind":"journey","ts":"2026-12-02T12:00:00Z"}"#,
            b"not json",
        ] {
            assert_eq!(parse_line(&host, other), None);
        }
    }
}

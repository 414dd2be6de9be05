//! The daemon's `/metrics` page: a pure renderer for the Prometheus text exposition
//! format, version 0.0.4 (`Content-Type: text/plain; version=0.0.4`).
//!
//! The module is std-only and has no I/O: callers fill a [`Snapshot`] and [`render`] turns
//! it into the page. The output is deterministic so it can be compared byte for byte:
//!
//! - families always appear in the same order, each exactly once, each with `# HELP` and
//!   `# TYPE` lines, **even when it has no series** (an empty family is just its two
//!   comment lines, which the format and `promtool check metrics` accept);
//! - series are sorted by their label values (lexicographically, in label order), and
//!   series with identical label sets are merged (counters are summed, see [`render`]) so
//!   a scrape never sees a duplicate sample;
//! - label values are escaped (`\` → `\\`, `"` → `\"`, newline → `\n`) and may be empty
//!   (`container=""`);
//! - floats are written in plain decimal notation (`0.00005`, never `5e-5`), with
//!   `+Inf`, `-Inf` and `NaN` spelled the way Prometheus expects.
//!
//! Label cardinality is bounded by the caller: [`aggregate_unlabelled`] folds the packet
//! series of interfaces that belong to no container into one `iface="other"` series per
//! (network, direction, kind).
//!
//! Why not `prometheus-client` (0.26): its text encoder writes OpenMetrics 1.0, not this
//! page. A counter family is declared without `_total` (`# TYPE netlab_packets counter`,
//! samples `netlab_packets_total{...}`), which `promtool check metrics` reads as samples
//! without help text; the registry appends `.` to every help text; histograms come out as
//! `_sum`, `_count`, then buckets with `le` first (`{le="0.0001",src=..,dst=..}`) and
//! bounds like `le="1.0"` or `1e-9`; a labelled family's series follow a hash map's order;
//! and the page ends in `# EOF`. Keeping the page as scrapers and the tests see it would
//! leave only its label-value escaping, which is the same as [`escape_label_value`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Packets seen on one interface, in one direction, of one kind
/// (`netlab_packets_total`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketSeries {
    /// Container name, or empty for interfaces that belong to no container.
    pub container: String,
    /// Docker network name, or empty when unknown.
    pub network: String,
    /// Interface name (`iface="other"` after [`aggregate_unlabelled`]).
    pub iface: String,
    /// Direction of the packets, e.g. `ingress` or `egress`.
    pub direction: &'static str,
    /// Packet kind, e.g. `icmp-echo-request` or `arp-request`.
    pub kind: &'static str,
    /// Packets counted since the daemon started.
    pub packets: u64,
}

/// Packets the kernel dropped, by reason and place (`netlab_drops_total`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropSeries {
    /// Kernel drop reason, e.g. `NETFILTER_DROP`.
    pub reason: String,
    /// Container name, or empty when the drop is not attributed to a container.
    pub container: String,
    /// Docker network name, or empty when unknown.
    pub network: String,
    /// Packets dropped since the daemon started.
    pub packets: u64,
}

/// Ping round-trip times between two endpoints (`netlab_ping_rtt_seconds`).
#[derive(Debug, Clone, PartialEq)]
pub struct RttSeries {
    /// Source of the echo request (container name or address).
    pub src: String,
    /// Destination of the echo request (container name or address).
    pub dst: String,
    /// `(le, cumulative count)` pairs: upper bound in seconds and the number of
    /// observations less than or equal to it. The `+Inf` bucket is implied by `count`
    /// and need not be listed (a listed non-finite bound is ignored).
    pub buckets: Vec<(f64, u64)>,
    /// Sum of all observations, in seconds.
    pub sum_seconds: f64,
    /// Number of observations.
    pub count: u64,
}

/// Everything `/metrics` shows at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// `netlab_packets_total` series.
    pub packets: Vec<PacketSeries>,
    /// `netlab_drops_total` series.
    pub drops: Vec<DropSeries>,
    /// `netlab_events_lost_total` by cause (`ring_full`, `rate_limited`,
    /// `drop_ring_full`).
    pub lost: Vec<(&'static str, u64)>,
    /// `netlab_ping_rtt_seconds` histograms, one per (src, dst) pair.
    pub rtt: Vec<RttSeries>,
    /// `netlab_attached_interfaces`: interfaces the eBPF programs are attached to now.
    pub attached_interfaces: u64,
    /// `netlab_journeys_total` by result (e.g. `answered`, `dropped`, `timeout`).
    pub journeys: Vec<(&'static str, u64)>,
    /// `netlab_hooks_lost_total`: hooks found no longer running netlab's program (something
    /// else detached it), by interface and hook; each was attached again.
    pub hooks_lost: Vec<(String, &'static str, u64)>,
    /// `netlab_frees_not_drops_total`: packets the kernel freed that nobody wanted
    /// delivered, by packet kind and reason; never counted as drops.
    pub not_drops: Vec<(String, String, u64)>,
    /// `netlab_vxlan_packets_total`: packets inside VXLAN, by interface and VNI.
    pub vxlan: Vec<crate::model::summary::VxlanRow>,
}

/// Default upper bounds (seconds) of the RTT histogram: 50 µs to 1 s.
///
/// Container-to-container pings on one host take tens to hundreds of microseconds, so
/// the ladder is dense there; the upper rungs catch loaded hosts, netem delays and
/// ARP resolution on the first ping.
pub fn rtt_buckets() -> &'static [f64] {
    &[
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
        1.0,
    ]
}

/// An in-memory RTT histogram for one (src, dst) pair, ready for [`RttHistogram::series`].
#[derive(Debug, Clone, PartialEq)]
pub struct RttHistogram {
    /// Finite upper bounds, strictly increasing.
    bounds: Vec<f64>,
    /// Non-cumulative counts per bound; observations above the last bound only count
    /// towards `count` (the `+Inf` bucket).
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Default for RttHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl RttHistogram {
    /// An empty histogram with the [`rtt_buckets`] ladder.
    pub fn new() -> Self {
        Self::with_buckets(rtt_buckets())
    }

    /// An empty histogram with custom upper bounds (seconds). Bounds are sorted and
    /// deduplicated; non-finite bounds are dropped (`+Inf` is always implied).
    pub fn with_buckets(bounds: &[f64]) -> Self {
        let mut bounds: Vec<f64> = bounds.iter().copied().filter(|b| b.is_finite()).collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        let counts = vec![0; bounds.len()];
        RttHistogram {
            bounds,
            counts,
            sum: 0.0,
            count: 0,
        }
    }

    /// Records one round trip of `seconds`. Values that cannot be a round-trip time
    /// (negative, NaN or infinite) are ignored so they cannot poison `_sum`; returns
    /// whether the value was recorded.
    pub fn observe(&mut self, seconds: f64) -> bool {
        if !seconds.is_finite() || seconds < 0.0 {
            return false;
        }
        if let Some(i) = self.bounds.iter().position(|&b| seconds <= b) {
            if let Some(c) = self.counts.get_mut(i) {
                *c = c.saturating_add(1);
            }
        }
        self.sum += seconds;
        self.count = self.count.saturating_add(1);
        true
    }

    /// Number of recorded observations.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The histogram as a series labelled `src`, `dst`, with cumulative buckets.
    pub fn series(&self, src: impl Into<String>, dst: impl Into<String>) -> RttSeries {
        let mut running = 0u64;
        let buckets = self
            .bounds
            .iter()
            .zip(&self.counts)
            .map(|(&le, &c)| {
                running = running.saturating_add(c);
                (le, running)
            })
            .collect();
        RttSeries {
            src: src.into(),
            dst: dst.into(),
            buckets,
            sum_seconds: self.sum,
            count: self.count,
        }
    }
}

/// Folds the series of interfaces without a container (empty `container`) into one
/// series per (network, direction, kind) with `iface="other"`, summing their packets.
///
/// Container series are returned unchanged and in their original order, followed by the
/// aggregated series sorted by (network, direction, kind). This bounds the label set to
/// what containers and networks exist, however many host interfaces come and go.
pub fn aggregate_unlabelled(packets: Vec<PacketSeries>) -> Vec<PacketSeries> {
    let mut kept = Vec::with_capacity(packets.len());
    let mut other: BTreeMap<(String, &'static str, &'static str), u64> = BTreeMap::new();
    for p in packets {
        if p.container.is_empty() {
            let total = other.entry((p.network, p.direction, p.kind)).or_insert(0);
            *total = total.saturating_add(p.packets);
        } else {
            kept.push(p);
        }
    }
    kept.extend(
        other
            .into_iter()
            .map(|((network, direction, kind), packets)| PacketSeries {
                container: String::new(),
                network,
                iface: "other".to_string(),
                direction,
                kind,
                packets,
            }),
    );
    kept
}

/// Renders `s` as a Prometheus text-format (0.0.4) page ending in a newline.
///
/// Families, in this order: `netlab_packets_total`, `netlab_drops_total`,
/// `netlab_events_lost_total` (counters), `netlab_ping_rtt_seconds` (histogram),
/// `netlab_attached_interfaces` (gauge), `netlab_journeys_total`, `netlab_hooks_lost_total`
/// (counters). Every family
/// prints its `# HELP` and `# TYPE` lines even without series.
///
/// Input is normalised so the page is always valid: counter series with identical label
/// sets are summed (saturating); RTT series of the same (src, dst) are merged when their
/// bucket bounds agree, otherwise the first one given wins. Within a histogram, buckets
/// are sorted by bound, non-finite bounds dropped (the `+Inf` bucket is written from
/// `count`), cumulative counts made non-decreasing, and `count` raised to the largest
/// bucket count if it was smaller, so `le="+Inf"` always equals `_count`.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();

    header(
        &mut out,
        "netlab_packets_total",
        "ICMP, ICMPv6 and ARP packets seen, by container, network, interface, direction and kind.",
        "counter",
    );
    let mut packets: BTreeMap<(&str, &str, &str, &str, &str), u64> = BTreeMap::new();
    for p in &s.packets {
        let key = (
            p.container.as_str(),
            p.network.as_str(),
            p.iface.as_str(),
            p.direction,
            p.kind,
        );
        let v = packets.entry(key).or_insert(0);
        *v = v.saturating_add(p.packets);
    }
    for ((container, network, iface, direction, kind), v) in packets {
        sample(
            &mut out,
            "netlab_packets_total",
            &[
                ("container", container),
                ("network", network),
                ("iface", iface),
                ("direction", direction),
                ("kind", kind),
            ],
            &v.to_string(),
        );
    }

    header(
        &mut out,
        "netlab_drops_total",
        "ICMP, ICMPv6 and ARP packets dropped by the kernel, by reason, container and network.",
        "counter",
    );
    let mut drops: BTreeMap<(&str, &str, &str), u64> = BTreeMap::new();
    for d in &s.drops {
        let v = drops
            .entry((d.reason.as_str(), d.container.as_str(), d.network.as_str()))
            .or_insert(0);
        *v = v.saturating_add(d.packets);
    }
    for ((reason, container, network), v) in drops {
        sample(
            &mut out,
            "netlab_drops_total",
            &[
                ("reason", reason),
                ("container", container),
                ("network", network),
            ],
            &v.to_string(),
        );
    }

    header(
        &mut out,
        "netlab_events_lost_total",
        "Events that were due but not delivered to the daemon, by cause.",
        "counter",
    );
    for (cause, v) in summed(&s.lost) {
        sample(
            &mut out,
            "netlab_events_lost_total",
            &[("cause", cause)],
            &v.to_string(),
        );
    }

    header(
        &mut out,
        "netlab_ping_rtt_seconds",
        "Ping round-trip time between two endpoints, in seconds.",
        "histogram",
    );
    let mut rtt: BTreeMap<(&str, &str), Hist> = BTreeMap::new();
    for r in &s.rtt {
        let h = Hist::from_series(r);
        match rtt.entry((r.src.as_str(), r.dst.as_str())) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(h);
            }
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&h),
        }
    }
    for ((src, dst), h) in rtt {
        for &(le, c) in &h.buckets {
            let le = format_float(le);
            sample(
                &mut out,
                "netlab_ping_rtt_seconds_bucket",
                &[("src", src), ("dst", dst), ("le", &le)],
                &c.to_string(),
            );
        }
        sample(
            &mut out,
            "netlab_ping_rtt_seconds_bucket",
            &[("src", src), ("dst", dst), ("le", "+Inf")],
            &h.count.to_string(),
        );
        sample(
            &mut out,
            "netlab_ping_rtt_seconds_sum",
            &[("src", src), ("dst", dst)],
            &format_float(h.sum),
        );
        sample(
            &mut out,
            "netlab_ping_rtt_seconds_count",
            &[("src", src), ("dst", dst)],
            &h.count.to_string(),
        );
    }

    header(
        &mut out,
        "netlab_attached_interfaces",
        "Interfaces the eBPF programs are currently attached to.",
        "gauge",
    );
    sample(
        &mut out,
        "netlab_attached_interfaces",
        &[],
        &s.attached_interfaces.to_string(),
    );

    header(
        &mut out,
        "netlab_journeys_total",
        "Finished ping journeys, by result.",
        "counter",
    );
    for (result, v) in summed(&s.journeys) {
        sample(
            &mut out,
            "netlab_journeys_total",
            &[("result", result)],
            &v.to_string(),
        );
    }

    header(
        &mut out,
        "netlab_hooks_lost_total",
        "Hooks found no longer running netlab's program (something else detached it; attached again), by interface and hook.",
        "counter",
    );
    let mut lost: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for (iface, hook, n) in &s.hooks_lost {
        let v = lost.entry((iface.as_str(), hook)).or_insert(0);
        *v = v.saturating_add(*n);
    }
    for ((iface, hook), v) in lost {
        sample(
            &mut out,
            "netlab_hooks_lost_total",
            &[("iface", iface), ("hook", hook)],
            &v.to_string(),
        );
    }

    header(
        &mut out,
        "netlab_frees_not_drops_total",
        "Packets the kernel freed that nobody wanted delivered (neighbour discovery for a group nobody joined, replies to exited pings), by kind and reason; not drops.",
        "counter",
    );
    let mut frees: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for (packet, reason, n) in &s.not_drops {
        let v = frees.entry((packet.as_str(), reason.as_str())).or_insert(0);
        *v = v.saturating_add(*n);
    }
    for ((packet, reason), v) in frees {
        sample(
            &mut out,
            "netlab_frees_not_drops_total",
            &[("packet", packet), ("reason", reason)],
            &v.to_string(),
        );
    }

    header(
        &mut out,
        "netlab_vxlan_packets_total",
        "ICMP, ICMPv6 and ARP packets seen inside VXLAN (overlay networks between hosts), by interface, VNI, overlay network, direction and kind.",
        "counter",
    );
    let mut vxlan: BTreeMap<(&str, u32, &str, &str, &str), u64> = BTreeMap::new();
    for p in &s.vxlan {
        let v = vxlan
            .entry((
                p.iface.as_str(),
                p.vni,
                p.network.as_deref().unwrap_or_default(),
                p.direction.as_str(),
                p.kind.as_str(),
            ))
            .or_insert(0);
        *v = v.saturating_add(p.packets);
    }
    for ((iface, vni, network, direction, kind), v) in vxlan {
        sample(
            &mut out,
            "netlab_vxlan_packets_total",
            &[
                ("iface", iface),
                ("vni", &vni.to_string()),
                ("network", network),
                ("direction", direction),
                ("kind", kind),
            ],
            &v.to_string(),
        );
    }

    out
}

/// A histogram normalised for output.
struct Hist {
    buckets: Vec<(f64, u64)>,
    sum: f64,
    count: u64,
}

impl Hist {
    fn from_series(r: &RttSeries) -> Self {
        let mut buckets: Vec<(f64, u64)> = r
            .buckets
            .iter()
            .copied()
            .filter(|(le, _)| le.is_finite())
            .map(|(le, c)| (if le == 0.0 { 0.0 } else { le }, c))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Equal bounds: keep the largest count (it is cumulative).
        let mut deduped: Vec<(f64, u64)> = Vec::with_capacity(buckets.len());
        for (le, c) in buckets {
            match deduped.last_mut() {
                Some(last) if last.0 == le => last.1 = last.1.max(c),
                _ => deduped.push((le, c)),
            }
        }
        let mut running = 0u64;
        for b in &mut deduped {
            running = running.max(b.1);
            b.1 = running;
        }
        Hist {
            buckets: deduped,
            sum: r.sum_seconds,
            count: r.count.max(running),
        }
    }

    fn merge(&mut self, other: &Hist) {
        let same_ladder = self.buckets.len() == other.buckets.len()
            && self
                .buckets
                .iter()
                .zip(&other.buckets)
                .all(|(a, b)| a.0 == b.0);
        if !same_ladder {
            return;
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            a.1 = a.1.saturating_add(b.1);
        }
        self.sum += other.sum;
        self.count = self.count.saturating_add(other.count);
    }
}

/// Sums values of equal keys, sorted by key.
fn summed(pairs: &[(&'static str, u64)]) -> BTreeMap<&'static str, u64> {
    let mut m = BTreeMap::new();
    for &(k, v) in pairs {
        let e: &mut u64 = m.entry(k).or_insert(0);
        *e = e.saturating_add(v);
    }
    m
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: &str) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            out.push_str(&escape_label_value(v));
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// Escapes a label value: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub fn escape_label_value(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Escapes `# HELP` text: `\` → `\\`, newline → `\n` (quotes stay as they are).
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Formats a float for the text format: plain decimal (Rust's shortest round-trip
/// `Display`, which never uses an exponent), or `+Inf`, `-Inf`, `NaN`.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(
        container: &str,
        network: &str,
        iface: &str,
        direction: &'static str,
        kind: &'static str,
        packets: u64,
    ) -> PacketSeries {
        PacketSeries {
            container: container.to_string(),
            network: network.to_string(),
            iface: iface.to_string(),
            direction,
            kind,
            packets,
        }
    }

    fn small() -> Snapshot {
        let mut h = RttHistogram::with_buckets(&[0.0001, 0.0005, 0.001]);
        h.observe(0.00008);
        h.observe(0.0003);
        h.observe(0.002);
        Snapshot {
            packets: vec![
                pkt(
                    "web",
                    "frontend",
                    "veth1a",
                    "ingress",
                    "icmp_echo_request",
                    3,
                ),
                pkt("", "frontend", "br-1234", "egress", "arp_request", 1),
                pkt("db", "backend", "veth2b", "egress", "icmp_echo_reply", 2),
            ],
            drops: vec![DropSeries {
                reason: "NETFILTER_DROP".to_string(),
                container: "db".to_string(),
                network: "backend".to_string(),
                packets: 4,
            }],
            lost: vec![("rate_limited", 0), ("ring_full", 5)],
            rtt: vec![h.series("web", "db")],
            attached_interfaces: 7,
            journeys: vec![("timeout", 1), ("answered", 2)],
            hooks_lost: vec![("veth1a".to_string(), "ingress", 1)],
            not_drops: vec![(
                "ndp-router-solicit".to_string(),
                "NOT_SPECIFIED".to_string(),
                2,
            )],
            vxlan: vec![crate::model::summary::VxlanRow {
                iface: "eth0".into(),
                ifindex: 2,
                vni: 4097,
                network: Some("ovl".into()),
                direction: "egress".into(),
                kind: "icmp-echo-request".into(),
                packets: 5,
            }],
        }
    }

    const GOLDEN: &str = r#"# HELP netlab_packets_total ICMP, ICMPv6 and ARP packets seen, by container, network, interface, direction and kind.
# TYPE netlab_packets_total counter
netlab_packets_total{container="",network="frontend",iface="br-1234",direction="egress",kind="arp_request"} 1
netlab_packets_total{container="db",network="backend",iface="veth2b",direction="egress",kind="icmp_echo_reply"} 2
netlab_packets_total{container="web",network="frontend",iface="veth1a",direction="ingress",kind="icmp_echo_request"} 3
# HELP netlab_drops_total ICMP, ICMPv6 and ARP packets dropped by the kernel, by reason, container and network.
# TYPE netlab_drops_total counter
netlab_drops_total{reason="NETFILTER_DROP",container="db",network="backend"} 4
# HELP netlab_events_lost_total Events that were due but not delivered to the daemon, by cause.
# TYPE netlab_events_lost_total counter
netlab_events_lost_total{cause="rate_limited"} 0
netlab_events_lost_total{cause="ring_full"} 5
# HELP netlab_ping_rtt_seconds Ping round-trip time between two endpoints, in seconds.
# TYPE netlab_ping_rtt_seconds histogram
netlab_ping_rtt_seconds_bucket{src="web",dst="db",le="0.0001"} 1
netlab_ping_rtt_seconds_bucket{src="web",dst="db",le="0.0005"} 2
netlab_ping_rtt_seconds_bucket{src="web",dst="db",le="0.001"} 2
netlab_ping_rtt_seconds_bucket{src="web",dst="db",le="+Inf"} 3
netlab_ping_rtt_seconds_sum{src="web",dst="db"} 0.00238
netlab_ping_rtt_seconds_count{src="web",dst="db"} 3
# HELP netlab_attached_interfaces Interfaces the eBPF programs are currently attached to.
# TYPE netlab_attached_interfaces gauge
netlab_attached_interfaces 7
# HELP netlab_journeys_total Finished ping journeys, by result.
# TYPE netlab_journeys_total counter
netlab_journeys_total{result="answered"} 2
netlab_journeys_total{result="timeout"} 1
# HELP netlab_hooks_lost_total Hooks found no longer running netlab's program (something else detached it; attached again), by interface and hook.
# TYPE netlab_hooks_lost_total counter
netlab_hooks_lost_total{iface="veth1a",hook="ingress"} 1
# HELP netlab_frees_not_drops_total Packets the kernel freed that nobody wanted delivered (neighbour discovery for a group nobody joined, replies to exited pings), by kind and reason; not drops.
# TYPE netlab_frees_not_drops_total counter
netlab_frees_not_drops_total{packet="ndp-router-solicit",reason="NOT_SPECIFIED"} 2
# HELP netlab_vxlan_packets_total ICMP, ICMPv6 and ARP packets seen inside VXLAN (overlay networks between hosts), by interface, VNI, overlay network, direction and kind.
# TYPE netlab_vxlan_packets_total counter
netlab_vxlan_packets_total{iface="eth0",vni="4097",network="ovl",direction="egress",kind="icmp-echo-request"} 5
"#;

    #[test]
    fn golden_small_snapshot() {
        let got = render(&small());
        assert_eq!(got, GOLDEN, "\n--- got ---\n{got}");
    }

    #[test]
    fn render_is_deterministic_regardless_of_input_order() {
        let a = small();
        let mut b = small();
        b.packets.reverse();
        b.lost.reverse();
        b.journeys.reverse();
        assert_eq!(render(&a), render(&b));
    }

    #[test]
    fn empty_snapshot_prints_every_family_header() {
        let got = render(&Snapshot::default());
        let expected = "\
# HELP netlab_packets_total ICMP, ICMPv6 and ARP packets seen, by container, network, interface, direction and kind.
# TYPE netlab_packets_total counter
# HELP netlab_drops_total ICMP, ICMPv6 and ARP packets dropped by the kernel, by reason, container and network.
# TYPE netlab_drops_total counter
# HELP netlab_events_lost_total Events that were due but not delivered to the daemon, by cause.
# TYPE netlab_events_lost_total counter
# HELP netlab_ping_rtt_seconds Ping round-trip time between two endpoints, in seconds.
# TYPE netlab_ping_rtt_seconds histogram
# HELP netlab_attached_interfaces Interfaces the eBPF programs are currently attached to.
# TYPE netlab_attached_interfaces gauge
netlab_attached_interfaces 0
# HELP netlab_journeys_total Finished ping journeys, by result.
# TYPE netlab_journeys_total counter
# HELP netlab_hooks_lost_total Hooks found no longer running netlab's program (something else detached it; attached again), by interface and hook.
# TYPE netlab_hooks_lost_total counter
# HELP netlab_frees_not_drops_total Packets the kernel freed that nobody wanted delivered (neighbour discovery for a group nobody joined, replies to exited pings), by kind and reason; not drops.
# TYPE netlab_frees_not_drops_total counter
# HELP netlab_vxlan_packets_total ICMP, ICMPv6 and ARP packets seen inside VXLAN (overlay networks between hosts), by interface, VNI, overlay network, direction and kind.
# TYPE netlab_vxlan_packets_total counter
";
        assert_eq!(got, expected);
        for family in [
            "netlab_packets_total",
            "netlab_drops_total",
            "netlab_events_lost_total",
            "netlab_ping_rtt_seconds",
            "netlab_attached_interfaces",
            "netlab_journeys_total",
            "netlab_hooks_lost_total",
            "netlab_vxlan_packets_total",
        ] {
            assert_eq!(got.matches(&format!("# TYPE {family} ")).count(), 1);
            assert_eq!(got.matches(&format!("# HELP {family} ")).count(), 1);
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("x\ny"), r"x\ny");
        assert_eq!(escape_label_value(""), "");
        assert_eq!(escape_label_value("ünï{}=,"), "ünï{}=,");
        let s = Snapshot {
            drops: vec![DropSeries {
                reason: "we\"ird\\re\nason".to_string(),
                container: String::new(),
                network: String::new(),
                packets: 1,
            }],
            ..Snapshot::default()
        };
        let got = render(&s);
        assert!(
            got.contains(
                "netlab_drops_total{reason=\"we\\\"ird\\\\re\\nason\",container=\"\",network=\"\"} 1\n"
            ),
            "{got}"
        );
        // No raw newline leaked into a sample line.
        for line in got.lines() {
            assert!(
                line.starts_with('#') || line.starts_with("netlab_"),
                "{line}"
            );
        }
        assert_eq!(escape_help("a\\b\nc\"d"), "a\\\\b\\nc\"d");
    }

    #[test]
    fn floats_never_use_exponents() {
        assert_eq!(format_float(0.00005), "0.00005");
        assert_eq!(format_float(0.0005), "0.0005");
        assert_eq!(format_float(0.0001), "0.0001");
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(0.0), "0");
        assert_eq!(format_float(1e-9), "0.000000001");
        assert_eq!(format_float(1e21), "1000000000000000000000");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_float(f64::NAN), "NaN");
        for &b in rtt_buckets() {
            let s = format_float(b);
            assert!(!s.contains(['e', 'E']), "{s}");
            assert_eq!(s.parse::<f64>().ok(), Some(b), "round trip of {s}");
        }
        let page = render(&big_sample());
        for line in page.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap_or_default();
            assert!(!value.contains(['e', 'E']), "{line}");
            assert!(!value.contains("inf"), "{line}");
            if let Some(i) = line.find("le=\"") {
                let le = &line[i + 4..];
                let le = &le[..le.find('"').expect("closing quote")];
                assert!(le == "+Inf" || !le.contains(['e', 'E', 'i']), "{line}");
                assert!(le == "+Inf" || le.parse::<f64>().is_ok(), "{line}");
            }
        }
    }

    #[test]
    fn default_ladder_spans_50us_to_1s() {
        let b = rtt_buckets();
        assert_eq!(b.first(), Some(&0.00005));
        assert_eq!(b.last(), Some(&1.0));
        assert!(b.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn histogram_is_cumulative_and_inf_equals_count() {
        let mut h = RttHistogram::new();
        let values = [
            0.00001, 0.00005, 0.00007, 0.0003, 0.0003, 0.004, 0.9, 1.0, 2.5,
        ];
        for v in values {
            assert!(h.observe(v));
        }
        assert!(!h.observe(-1.0));
        assert!(!h.observe(f64::NAN));
        assert!(!h.observe(f64::INFINITY));
        assert_eq!(h.count(), values.len() as u64);
        let s = h.series("a", "b");
        assert_eq!(s.buckets.len(), rtt_buckets().len());
        assert!(s.buckets.windows(2).all(|w| w[0].1 <= w[1].1));
        for &(le, c) in &s.buckets {
            let expected = values.iter().filter(|&&v| v <= le).count() as u64;
            assert_eq!(c, expected, "le={le}");
        }
        assert_eq!(s.count, 9);
        assert!((s.sum_seconds - values.iter().sum::<f64>()).abs() < 1e-12);

        let page = render(&Snapshot {
            rtt: vec![s],
            ..Snapshot::default()
        });
        let buckets: Vec<u64> = page
            .lines()
            .filter(|l| l.starts_with("netlab_ping_rtt_seconds_bucket"))
            .map(|l| {
                l.rsplit(' ')
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("bucket value")
            })
            .collect();
        assert_eq!(buckets.len(), rtt_buckets().len() + 1);
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]));
        assert!(
            page.contains("netlab_ping_rtt_seconds_bucket{src=\"a\",dst=\"b\",le=\"0.00005\"} 2\n")
        );
        assert!(page.contains("netlab_ping_rtt_seconds_bucket{src=\"a\",dst=\"b\",le=\"1\"} 8\n"));
        assert!(
            page.contains("netlab_ping_rtt_seconds_bucket{src=\"a\",dst=\"b\",le=\"+Inf\"} 9\n")
        );
        assert!(page.contains("netlab_ping_rtt_seconds_count{src=\"a\",dst=\"b\"} 9\n"));
    }

    #[test]
    fn histogram_input_is_normalised() {
        let s = RttSeries {
            src: "x".to_string(),
            dst: "y".to_string(),
            // Unsorted, a listed +Inf, a NaN bound, a non-monotone count, count too small.
            buckets: vec![
                (0.01, 3),
                (f64::INFINITY, 99),
                (0.001, 4),
                (f64::NAN, 1),
                (0.1, 5),
            ],
            sum_seconds: 0.05,
            count: 2,
        };
        let page = render(&Snapshot {
            rtt: vec![s],
            ..Snapshot::default()
        });
        let expected = "\
netlab_ping_rtt_seconds_bucket{src=\"x\",dst=\"y\",le=\"0.001\"} 4
netlab_ping_rtt_seconds_bucket{src=\"x\",dst=\"y\",le=\"0.01\"} 4
netlab_ping_rtt_seconds_bucket{src=\"x\",dst=\"y\",le=\"0.1\"} 5
netlab_ping_rtt_seconds_bucket{src=\"x\",dst=\"y\",le=\"+Inf\"} 5
netlab_ping_rtt_seconds_sum{src=\"x\",dst=\"y\"} 0.05
netlab_ping_rtt_seconds_count{src=\"x\",dst=\"y\"} 5
";
        assert!(page.contains(expected), "{page}");
    }

    #[test]
    fn duplicate_series_are_merged() {
        let mut h = RttHistogram::with_buckets(&[0.001]);
        h.observe(0.0005);
        let s = Snapshot {
            packets: vec![
                pkt("c", "n", "i", "ingress", "k", 2),
                pkt("c", "n", "i", "ingress", "k", 3),
            ],
            lost: vec![("ring_full", 1), ("ring_full", u64::MAX)],
            rtt: vec![
                h.series("a", "b"),
                h.series("a", "b"),
                RttHistogram::with_buckets(&[0.5]).series("a", "b"),
            ],
            ..Snapshot::default()
        };
        let page = render(&s);
        assert!(page.contains(
            "netlab_packets_total{container=\"c\",network=\"n\",iface=\"i\",direction=\"ingress\",kind=\"k\"} 5\n"
        ));
        assert!(page.contains(&format!(
            "netlab_events_lost_total{{cause=\"ring_full\"}} {}\n",
            u64::MAX
        )));
        assert!(
            page.contains("netlab_ping_rtt_seconds_bucket{src=\"a\",dst=\"b\",le=\"0.001\"} 2\n")
        );
        assert!(page.contains("netlab_ping_rtt_seconds_count{src=\"a\",dst=\"b\"} 2\n"));
        assert_eq!(page.matches("netlab_ping_rtt_seconds_count").count(), 1);
        assert!(!page.contains("le=\"0.5\""));
    }

    #[test]
    fn aggregation_folds_containerless_interfaces() {
        let input = vec![
            pkt("web", "front", "veth1", "ingress", "icmp_echo_request", 3),
            pkt("", "front", "br-a", "ingress", "icmp_echo_request", 4),
            pkt("", "front", "vethX", "ingress", "icmp_echo_request", 5),
            pkt("", "front", "vethX", "egress", "icmp_echo_request", 1),
            pkt("", "back", "br-b", "ingress", "icmp_echo_request", 2),
            pkt("db", "back", "veth2", "egress", "arp_reply", 6),
            pkt("", "", "eth0", "ingress", "arp_request", 7),
        ];
        let got = aggregate_unlabelled(input);
        let expected = vec![
            pkt("web", "front", "veth1", "ingress", "icmp_echo_request", 3),
            pkt("db", "back", "veth2", "egress", "arp_reply", 6),
            pkt("", "", "other", "ingress", "arp_request", 7),
            pkt("", "back", "other", "ingress", "icmp_echo_request", 2),
            pkt("", "front", "other", "egress", "icmp_echo_request", 1),
            pkt("", "front", "other", "ingress", "icmp_echo_request", 9),
        ];
        assert_eq!(got, expected);
        let total_in: u64 = 3 + 4 + 5 + 1 + 2 + 6 + 7;
        assert_eq!(got.iter().map(|p| p.packets).sum::<u64>(), total_in);
        assert!(aggregate_unlabelled(Vec::new()).is_empty());
    }

    fn big_sample() -> Snapshot {
        let mut s = small();
        s.packets.push(pkt(
            "we\"ird\\name",
            "net\nwork",
            "",
            "egress",
            "icmpv6_neighbor_solicitation",
            u64::MAX,
        ));
        s.packets = aggregate_unlabelled(s.packets);
        s.drops.push(DropSeries {
            reason: "NO_SOCKET".to_string(),
            container: String::new(),
            network: String::new(),
            packets: 0,
        });
        s.lost.push(("drop_ring_full", 12));
        let mut h = RttHistogram::new();
        for v in [0.00004, 0.000051, 0.00012, 0.0007, 0.03, 0.7, 3.0] {
            h.observe(v);
        }
        s.rtt.push(h.series("10.0.0.2", "fd00::3"));
        s.rtt.push(RttHistogram::new().series("", ""));
        s
    }

    #[test]
    fn promtool_accepts_the_page() {
        use std::process::{Command, Stdio};
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join("promtool").is_file()))
            .unwrap_or(false);
        if !found {
            println!("skipping: promtool not installed");
            return;
        }
        for (name, snapshot) in [
            ("big", big_sample()),
            ("small", small()),
            ("empty", Snapshot::default()),
        ] {
            let page = render(&snapshot);
            let path = std::env::temp_dir()
                .join(format!("netlab-metrics-{}-{name}.prom", std::process::id()));
            std::fs::write(&path, &page).expect("write sample");
            let file = std::fs::File::open(&path).expect("open sample");
            let out = Command::new("promtool")
                .args(["check", "metrics"])
                .stdin(Stdio::from(file))
                .output()
                .expect("run promtool");
            let _ = std::fs::remove_file(&path);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stderr.trim().is_empty() && stdout.trim().is_empty(),
                "promtool rejected the {name} page: {:?}\nstdout: {stdout}\nstderr: {stderr}\npage:\n{page}",
                out.status
            );
        }
    }
}

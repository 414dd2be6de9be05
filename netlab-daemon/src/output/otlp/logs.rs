//! Drops, journeys and (with `--otlp-packets`) sampled packets as OTLP log records. This is
//! a pipeline output: it builds the record and hands it to the exporter with `try_send`, so
//! the kernel reader never waits for the collector; a record the queue has no room for is
//! counted (`netlab.otlp.log_records.lost`, cause `queue_full`).

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::proto::{self, kv, kv_bool, kv_int, LogRecord};
use super::Stats;
use crate::docker::topology::Topology;
use crate::model::event::{DropRecord, Endpoint, IcmpView, PacketRecord, VxlanView};
use crate::model::journey::{Finished, Journey, Outcome};
use crate::model::kind::Kind;
use crate::output::{Ctx, Event, Output};

/// Sends drops and journeys (and sampled packets when asked) to the exporter.
pub struct OtlpLogs {
    tx: mpsc::Sender<LogRecord>,
    stats: Arc<Stats>,
    packets: bool,
}

impl OtlpLogs {
    pub fn new(tx: mpsc::Sender<LogRecord>, stats: Arc<Stats>, packets: bool) -> Self {
        OtlpLogs { tx, stats, packets }
    }

    fn send(&self, rec: LogRecord) {
        if self.tx.try_send(rec).is_err() {
            self.stats.queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Output for OtlpLogs {
    fn event(&mut self, ev: Event<'_>, ctx: Ctx<'_>) -> anyhow::Result<()> {
        let rec = match ev {
            Event::Drop(d) => drop_record(d, ctx),
            Event::Finished(f @ Finished::Journey(j)) => journey_record(f, j, ctx),
            Event::Packet(p, _) if self.packets => packet_record(p, ctx),
            _ => return Ok(()),
        };
        self.send(rec);
        Ok(())
    }
}

fn now_unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

fn record(
    time: u64,
    event: &str,
    severity: i32,
    body: String,
    attrs: Vec<proto::KeyValue>,
) -> LogRecord {
    LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: now_unix_nanos(),
        severity_number: severity,
        severity_text: severity_text(severity).to_owned(),
        body: Some(proto::string_value(body)),
        attributes: attrs,
        event_name: event.to_owned(),
    }
}

fn severity_text(severity: i32) -> &'static str {
    if severity >= proto::SEVERITY_WARN {
        "WARN"
    } else {
        "INFO"
    }
}

/// `container.name` and `container.id` of a container the topology knows.
fn container_attrs(attrs: &mut Vec<proto::KeyValue>, topo: &Topology, name: Option<&str>) {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return;
    };
    attrs.push(kv("container.name", name));
    if let Some(c) = topo.container_named(name) {
        attrs.push(kv("container.id", c.id.clone()));
    }
}

/// `source.*` / `destination.*` and netlab's container and network of one end.
fn end_attrs(
    attrs: &mut Vec<proto::KeyValue>,
    side: &str,
    ip: Option<IpAddr>,
    container: Option<&str>,
    network: Option<&str>,
) {
    if let Some(ip) = ip {
        attrs.push(kv(&format!("{side}.address"), ip.to_string()));
    }
    if let Some(c) = container {
        attrs.push(kv(&format!("netlab.{side}.container.name"), c));
    }
    if let Some(n) = network {
        attrs.push(kv(&format!("netlab.{side}.network.name"), n));
    }
}

fn endpoint_attrs(attrs: &mut Vec<proto::KeyValue>, side: &str, e: &Endpoint<'_>) {
    end_attrs(attrs, side, e.ip, e.container, e.network);
}

fn network_type(ip: Option<IpAddr>) -> Option<&'static str> {
    match ip? {
        IpAddr::V4(_) => Some("ipv4"),
        IpAddr::V6(_) => Some("ipv6"),
    }
}

/// `netlab.journey.key`: what joins an echo packet, a drop and a journey, on any host
/// (one collector gathering several hosts' records groups by it): the family, requester,
/// responder, id and sequence number, the same for the request and its reply. For
/// example `icmp 10.0.1.3>10.0.1.4 id=7 seq=1`.
pub fn journey_key(kind: Kind, src: IpAddr, dst: IpAddr, id: u16, seq: u16) -> Option<String> {
    let (family, requester, responder) = match kind {
        Kind::IcmpEchoRequest => ("icmp", src, dst),
        Kind::IcmpEchoReply => ("icmp", dst, src),
        Kind::Icmp6EchoRequest => ("icmp6", src, dst),
        Kind::Icmp6EchoReply => ("icmp6", dst, src),
        _ => return None,
    };
    Some(format!(
        "{family} {requester}>{responder} id={id} seq={seq}"
    ))
}

/// The join key of an echo packet or drop with these ends and ICMP header, if it is one.
fn echo_key_attr(
    attrs: &mut Vec<proto::KeyValue>,
    kind: Kind,
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    icmp: Option<&IcmpView>,
) {
    let (Some(src), Some(dst), Some(i)) = (src, dst, icmp) else {
        return;
    };
    if let (Some(id), Some(seq)) = (i.id, i.seq) {
        if let Some(key) = journey_key(kind, src, dst, id, seq) {
            attrs.push(kv("netlab.journey.key", key));
        }
    }
}

/// The tunnel of a packet seen inside VXLAN (a Swarm overlay between hosts).
fn vxlan_attrs(attrs: &mut Vec<proto::KeyValue>, v: &VxlanView<'_>) {
    attrs.push(kv_int("netlab.vxlan.vni", v.vni.into()));
    if let Some(n) = v.network {
        attrs.push(kv("netlab.vxlan.network.name", n));
    }
    attrs.push(kv(
        "netlab.vxlan.outer.source.address",
        v.outer_src.to_string(),
    ));
    attrs.push(kv(
        "netlab.vxlan.outer.destination.address",
        v.outer_dst.to_string(),
    ));
}

/// A drop: what, where, the kernel's reason and the rule with its Docker meaning.
pub fn drop_record(d: &DropRecord, ctx: Ctx<'_>) -> LogRecord {
    let mut a = Vec::with_capacity(32);
    a.push(kv("netlab.event", "drop"));
    a.push(kv("netlab.packet.kind", d.packet.name()));
    container_attrs(&mut a, ctx.topo, d.src.container.or(d.dst.container));
    endpoint_attrs(&mut a, "source", &d.src);
    endpoint_attrs(&mut a, "destination", &d.dst);
    if let Some(t) = network_type(d.src.ip.or(d.dst.ip)) {
        a.push(kv("network.type", t));
    }
    if let Some(name) = &d.iface.name {
        a.push(kv("network.interface.name", name.clone()));
    }
    a.push(kv("netlab.netns", d.iface.netns.clone()));
    if let Some(i) = &d.icmp {
        a.push(kv_int("netlab.icmp.type", i.icmp_type.into()));
        a.push(kv_int("netlab.icmp.code", i.code.into()));
        if let Some(id) = i.id {
            a.push(kv_int("netlab.icmp.id", id.into()));
        }
        if let Some(seq) = i.seq {
            a.push(kv_int("netlab.icmp.seq", seq.into()));
        }
    }
    echo_key_attr(&mut a, d.packet, d.src.ip, d.dst.ip, d.icmp.as_ref());
    if let Some(v) = &d.vxlan {
        vxlan_attrs(&mut a, v);
    }
    a.push(kv("netlab.drop.reason", d.drop.reason.clone()));
    if let Some(l) = &d.drop.location {
        a.push(kv("netlab.drop.location", l.clone()));
    }
    if let Some(h) = &d.drop.hook {
        a.push(kv("netlab.drop.hook", h.clone()));
    }
    if let Some(r) = &d.drop.rule {
        a.push(kv("netlab.rule.text", r.rule.clone()));
        a.push(kv("netlab.rule.backend", r.backend.clone()));
        a.push(kv("netlab.rule.family", r.family.clone()));
        a.push(kv("netlab.rule.table", r.table.clone()));
        a.push(kv("netlab.rule.chain", r.chain.clone()));
        if let Some(h) = r.handle {
            a.push(kv_int("netlab.rule.handle", h as i64));
        }
        if let Some(c) = &r.comment {
            a.push(kv("netlab.rule.comment", c.clone()));
        }
        a.push(kv("netlab.rule.attributed_by", r.attributed_by.clone()));
        a.push(kv_bool("netlab.rule.certain", r.certain));
        if let Some(m) = &r.docker {
            a.push(kv("netlab.rule.docker.meaning", m.meaning.clone()));
            a.push(kv("netlab.rule.docker.summary", m.summary.clone()));
            if !m.remedies.is_empty() {
                a.push(kv("netlab.rule.docker.remedies", m.remedies.join("; ")));
            }
        }
    }
    if !d.drop.candidates.is_empty() {
        a.push(kv("netlab.rule.candidates", d.drop.candidates.join("; ")));
    }
    if let Some(u) = &d.drop.unattributed {
        a.push(kv("netlab.rule.unattributed", u.clone()));
    }
    let mut body = String::new();
    d.write_human(&mut body);
    record(
        d.ts.0,
        "netlab.drop",
        proto::SEVERITY_WARN,
        body.trim_end().to_owned(),
        a,
    )
}

/// A finished ping: its two ends, ICMP id and sequence, result, round trip and path.
pub fn journey_record(f: &Finished, j: &Journey, ctx: Ctx<'_>) -> LogRecord {
    let mut a = Vec::with_capacity(24);
    a.push(kv("netlab.event", "journey"));
    a.push(kv("netlab.journey.result", j.result.name()));
    a.push(kv("netlab.journey.family", j.family.name()));
    container_attrs(&mut a, ctx.topo, j.src.container.as_deref());
    end_attrs(
        &mut a,
        "source",
        Some(j.src.ip),
        j.src.container.as_deref(),
        None,
    );
    end_attrs(
        &mut a,
        "destination",
        Some(j.dst.ip),
        j.dst.container.as_deref(),
        None,
    );
    if let Some(t) = network_type(Some(j.src.ip)) {
        a.push(kv("network.type", t));
    }
    a.push(kv_int("netlab.icmp.id", j.id.into()));
    a.push(kv_int("netlab.icmp.seq", j.seq.into()));
    let request = match j.family {
        crate::model::kind::Family::Icmp6 => Kind::Icmp6EchoRequest,
        _ => Kind::IcmpEchoRequest,
    };
    if let Some(key) = journey_key(request, j.src.ip, j.dst.ip, j.id, j.seq) {
        a.push(kv("netlab.journey.key", key));
    }
    if let Some(vni) = j.vni {
        a.push(kv_int("netlab.vxlan.vni", vni.into()));
    }
    let mut peers: Vec<&str> = j.hops.iter().filter_map(|h| h.host.as_deref()).collect();
    peers.sort_unstable();
    peers.dedup();
    if !peers.is_empty() {
        a.push(kv("netlab.journey.peers", peers.join(", ")));
    }
    if let Some(rtt) = j.rtt_ns {
        a.push(kv_int("netlab.journey.rtt_ns", rtt as i64));
    }
    if let Some(first) = j.hops.first() {
        a.push(kv_int(
            "netlab.journey.first_seen_unix_nano",
            ctx.clock.to_unix(first.ts_ns).0 as i64,
        ));
    }
    if let Some(last) = j.hops.last() {
        a.push(kv_int(
            "netlab.journey.last_seen_unix_nano",
            ctx.clock.to_unix(last.ts_ns).0 as i64,
        ));
    }
    let hops: Vec<String> = j
        .hops
        .iter()
        .map(|h| match &h.host {
            Some(host) => format!(
                "{} {host}:{} {}",
                h.phase.name(),
                h.iface,
                h.direction.name()
            ),
            None => format!("{} {} {}", h.phase.name(), h.iface, h.direction.name()),
        })
        .collect();
    if !hops.is_empty() {
        a.push(kv("netlab.journey.hops", hops.join(", ")));
    }
    if let Some(d) = &j.drop {
        a.push(kv("netlab.drop.reason", d.reason.clone()));
        a.push(kv("netlab.drop.phase", d.phase.name()));
        if let Some(h) = &d.host {
            a.push(kv("netlab.drop.host", h.clone()));
        }
        if let Some(l) = &d.location {
            a.push(kv("netlab.drop.location", l.clone()));
        }
        if let Some(h) = &d.hook {
            a.push(kv("netlab.drop.hook", h.clone()));
        }
        if let Some(i) = &d.iface {
            a.push(kv("network.interface.name", i.clone()));
        }
        if let Some(r) = &d.rule {
            a.push(kv("netlab.rule.text", r.clone()));
        }
    }
    let severity = if j.result == Outcome::Answered {
        proto::SEVERITY_INFO
    } else {
        proto::SEVERITY_WARN
    };
    let mut body = String::new();
    Event::Finished(f).write_human(ctx, &mut body);
    record(
        ctx.clock.to_unix(j.ts_ns).0,
        "netlab.journey",
        severity,
        body.trim_end().to_owned(),
        a,
    )
}

/// A sampled packet (only with `--otlp-packets`).
pub fn packet_record(p: &PacketRecord<'_>, ctx: Ctx<'_>) -> LogRecord {
    let mut a = Vec::with_capacity(16);
    a.push(kv("netlab.event", "packet"));
    a.push(kv("netlab.packet.kind", p.kind.name()));
    container_attrs(&mut a, ctx.topo, p.iface.container);
    a.push(kv("network.interface.name", p.iface.name));
    a.push(kv("network.io.direction", io_direction(p.direction.name())));
    if let Some(n) = p.iface.network {
        a.push(kv("netlab.network.name", n));
    }
    endpoint_attrs(&mut a, "source", &p.src);
    endpoint_attrs(&mut a, "destination", &p.dst);
    if let Some(i) = &p.icmp {
        if let Some(id) = i.id {
            a.push(kv_int("netlab.icmp.id", id.into()));
        }
        if let Some(seq) = i.seq {
            a.push(kv_int("netlab.icmp.seq", seq.into()));
        }
    }
    echo_key_attr(&mut a, p.kind, p.src.ip, p.dst.ip, p.icmp.as_ref());
    if let Some(v) = &p.vxlan {
        vxlan_attrs(&mut a, v);
    }
    a.push(kv_int("netlab.packet.sample_rate", p.sample_rate.into()));
    let mut body = String::new();
    p.write_human(&mut body);
    record(
        p.ts.0,
        "netlab.packet",
        proto::SEVERITY_INFO,
        body.trim_end().to_owned(),
        a,
    )
}

/// OpenTelemetry's `network.io.direction` for a tc hook: ingress is what the interface
/// receives, egress what it transmits.
pub fn io_direction(tc: &str) -> &'static str {
    if tc == "egress" {
        "transmit"
    } else {
        "receive"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::clock::Clock;
    use crate::model::journey::{Hop, JourneyDrop, JourneyEnd, Phase};
    use crate::model::kind::{Direction, Family};

    fn attr(r: &LogRecord, key: &str) -> Option<proto::AnyValue> {
        r.attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.clone())
    }

    #[test]
    fn a_request_and_its_reply_share_the_journey_key() {
        let (a, b): (IpAddr, IpAddr) = (
            "10.0.1.3".parse().expect("ip"),
            "10.0.1.4".parse().expect("ip"),
        );
        let key = journey_key(Kind::IcmpEchoRequest, a, b, 7, 1);
        assert_eq!(key.as_deref(), Some("icmp 10.0.1.3>10.0.1.4 id=7 seq=1"));
        assert_eq!(journey_key(Kind::IcmpEchoReply, b, a, 7, 1), key);
        assert_eq!(journey_key(Kind::ArpRequest, a, b, 7, 1), None);
    }

    /// A journey across two hosts carries what a collector joins it by: the key, the VNI,
    /// the peers and the host that dropped it.
    #[test]
    fn a_journey_across_hosts_carries_its_join_keys() {
        let hop = |host: Option<&str>, iface: &str, ts_ns: u64| Hop {
            iface: iface.into(),
            ifindex: 2,
            direction: Direction::Egress,
            ts_ns,
            phase: Phase::Request,
            host: host.map(str::to_owned),
        };
        let j = Journey {
            kind: "journey",
            ts_ns: 1_000,
            family: Family::Icmp,
            src: JourneyEnd {
                ip: "10.0.1.3".parse().expect("ip"),
                container: Some("a".into()),
            },
            dst: JourneyEnd {
                ip: "10.0.1.4".parse().expect("ip"),
                container: None,
            },
            id: 7,
            seq: 2,
            vni: Some(4097),
            result: Outcome::Dropped,
            rtt_ns: None,
            hops: vec![
                hop(None, "link0", 1_000),
                hop(Some("node2"), "link0", 2_000),
            ],
            drop: Some(JourneyDrop {
                reason: "NETFILTER_DROP".into(),
                location: None,
                iface: Some("link0".into()),
                rule: Some("INPUT -p udp -m udp --dport 4789 -j DROP".into()),
                hook: None,
                phase: Phase::Request,
                host: Some("node2".into()),
            }),
            last_seen: None,
        };
        let f = Finished::Journey(j.clone());
        let topo = Topology::explicit(&[]);
        let r = journey_record(
            &f,
            &j,
            Ctx {
                clock: &Clock::new(),
                topo: &topo,
            },
        );
        assert_eq!(
            attr(&r, "netlab.journey.key"),
            Some(proto::string_value("icmp 10.0.1.3>10.0.1.4 id=7 seq=2"))
        );
        assert_eq!(
            attr(&r, "netlab.vxlan.vni"),
            Some(kv_int("x", 4097).value.expect("value"))
        );
        assert_eq!(
            attr(&r, "netlab.journey.peers"),
            Some(proto::string_value("node2"))
        );
        assert_eq!(
            attr(&r, "netlab.drop.host"),
            Some(proto::string_value("node2"))
        );
        assert_eq!(
            attr(&r, "netlab.journey.hops"),
            Some(proto::string_value(
                "request link0 egress, request node2:link0 egress"
            ))
        );
    }
}

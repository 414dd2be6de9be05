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
use crate::model::event::{DropRecord, Endpoint, PacketRecord};
use crate::model::journey::{Finished, Journey, Outcome};
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
        .map(|h| format!("{} {} {}", h.phase.name(), h.iface, h.direction.name()))
        .collect();
    if !hops.is_empty() {
        a.push(kv("netlab.journey.hops", hops.join(", ")));
    }
    if let Some(d) = &j.drop {
        a.push(kv("netlab.drop.reason", d.reason.clone()));
        a.push(kv("netlab.drop.phase", d.phase.name()));
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

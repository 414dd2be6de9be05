//! The `/metrics` snapshot as OTLP metrics: every counter a cumulative sum (so a value
//! missed while the collector was down is never lost: the next one carries it), the RTT
//! histograms as cumulative histograms. Series with the same attributes are merged the way
//! `/metrics` merges them.
//!
//! Values are sent as doubles (`as_double`), as Prometheus keeps them too: a count is exact
//! up to 2^53, and collectors' debug output (rotel's among them) prints a double's value
//! where it prints nothing for an integer's.

use std::collections::BTreeMap;

use super::logs::io_direction;
use super::proto::{self, kv, kv_int, metric, KeyValue, Metric, NumberDataPoint};
use super::StatsView;
use crate::output::metrics::Snapshot;

/// When the series were read and since when they count.
#[derive(Clone, Copy)]
pub struct Times {
    pub start_ns: u64,
    pub now_ns: u64,
}

fn sum(
    name: &str,
    desc: &str,
    unit: &str,
    monotonic: bool,
    points: Vec<NumberDataPoint>,
) -> Metric {
    Metric {
        name: name.to_owned(),
        description: desc.to_owned(),
        unit: unit.to_owned(),
        data: Some(metric::Data::Sum(proto::Sum {
            data_points: points,
            aggregation_temporality: proto::CUMULATIVE,
            is_monotonic: monotonic,
        })),
    }
}

fn points<K: Ord>(
    t: Times,
    series: BTreeMap<K, u64>,
    attrs: impl Fn(&K) -> Vec<KeyValue>,
) -> Vec<NumberDataPoint> {
    series
        .into_iter()
        .map(|(k, v)| NumberDataPoint {
            attributes: attrs(&k),
            start_time_unix_nano: t.start_ns,
            time_unix_nano: t.now_ns,
            as_double: Some(v as f64),
        })
        .collect()
}

fn merged<K: Ord>(items: impl Iterator<Item = (K, u64)>) -> BTreeMap<K, u64> {
    let mut m = BTreeMap::new();
    for (k, v) in items {
        let e: &mut u64 = m.entry(k).or_insert(0);
        *e = e.saturating_add(v);
    }
    m
}

/// Attributes that are set only when not empty (a series without a container).
fn opt(attrs: &mut Vec<KeyValue>, key: &str, v: &str) {
    if !v.is_empty() {
        attrs.push(kv(key, v));
    }
}

/// Every metric of the snapshot and of the exporter itself.
pub fn metrics(s: &Snapshot, x: &StatsView, t: Times) -> Vec<Metric> {
    let mut out = Vec::new();

    let packets = merged(s.packets.iter().map(|p| {
        (
            (
                p.container.as_str(),
                p.network.as_str(),
                p.iface.as_str(),
                p.direction,
                p.kind,
            ),
            p.packets,
        )
    }));
    out.push(sum(
        "netlab.packets",
        "ICMP, ICMPv6 and ARP packets seen, by container, network, interface, direction and kind.",
        "{packet}",
        true,
        points(t, packets, |(c, n, i, d, k)| {
            let mut a = Vec::with_capacity(6);
            opt(&mut a, "container.name", c);
            opt(&mut a, "netlab.network.name", n);
            a.push(kv("network.interface.name", *i));
            a.push(kv("network.io.direction", io_direction(d)));
            a.push(kv("netlab.packet.kind", *k));
            a
        }),
    ));

    let vxlan = merged(s.vxlan.iter().map(|r| {
        (
            (
                r.iface.as_str(),
                r.vni,
                r.network.as_deref().unwrap_or_default(),
                r.direction.as_str(),
                r.kind.as_str(),
            ),
            r.packets,
        )
    }));
    out.push(sum(
        "netlab.vxlan.packets",
        "ICMP, ICMPv6 and ARP packets seen inside VXLAN (overlay networks between hosts), by interface, VNI, overlay network, direction and kind.",
        "{packet}",
        true,
        points(t, vxlan, |(i, vni, n, d, k)| {
            let mut a = Vec::with_capacity(5);
            a.push(kv("network.interface.name", *i));
            a.push(kv_int("netlab.vxlan.vni", i64::from(*vni)));
            opt(&mut a, "netlab.network.name", n);
            a.push(kv("network.io.direction", io_direction(d)));
            a.push(kv("netlab.packet.kind", *k));
            a
        }),
    ));

    let drops = merged(s.drops.iter().map(|d| {
        (
            (d.reason.as_str(), d.container.as_str(), d.network.as_str()),
            d.packets,
        )
    }));
    out.push(sum(
        "netlab.drops",
        "ICMP, ICMPv6 and ARP packets dropped by the kernel, by reason, container and network.",
        "{packet}",
        true,
        points(t, drops, |(r, c, n)| {
            let mut a = vec![kv("netlab.drop.reason", *r)];
            opt(&mut a, "container.name", c);
            opt(&mut a, "netlab.network.name", n);
            a
        }),
    ));

    out.push(sum(
        "netlab.events.lost",
        "Events the kernel could not hand to user space (counters stay exact), by cause.",
        "{event}",
        true,
        points(t, merged(s.lost.iter().map(|(c, v)| (*c, *v))), |c| {
            vec![kv("netlab.lost.cause", *c)]
        }),
    ));

    let mut rtt = Vec::new();
    for r in &s.rtt {
        // `/metrics` buckets are cumulative (`le`); OTLP's count each bucket alone, with one
        // more for everything above the last bound.
        let mut bounds = Vec::with_capacity(r.buckets.len());
        let mut counts = Vec::with_capacity(r.buckets.len() + 1);
        let mut below = 0u64;
        for (le, c) in r.buckets.iter().filter(|(le, _)| le.is_finite()) {
            bounds.push(*le);
            counts.push(c.saturating_sub(below));
            below = *c;
        }
        counts.push(r.count.saturating_sub(below));
        rtt.push(proto::HistogramDataPoint {
            attributes: vec![
                kv("netlab.ping.source", r.src.clone()),
                kv("netlab.ping.destination", r.dst.clone()),
            ],
            start_time_unix_nano: t.start_ns,
            time_unix_nano: t.now_ns,
            count: r.count,
            sum: Some(r.sum_seconds),
            bucket_counts: counts,
            explicit_bounds: bounds,
        });
    }
    out.push(Metric {
        name: "netlab.ping.rtt".to_owned(),
        description: "Round-trip times of answered pings, by source and destination.".to_owned(),
        unit: "s".to_owned(),
        data: Some(metric::Data::Histogram(proto::Histogram {
            data_points: rtt,
            aggregation_temporality: proto::CUMULATIVE,
        })),
    });

    out.push(sum(
        "netlab.journeys",
        "Finished ping journeys, by result.",
        "{journey}",
        true,
        points(t, merged(s.journeys.iter().map(|(r, v)| (*r, *v))), |r| {
            vec![kv("netlab.journey.result", *r)]
        }),
    ));

    out.push(sum(
        "netlab.attached_interfaces",
        "Interfaces netlab's programs are attached to now.",
        "{interface}",
        false,
        points(t, BTreeMap::from([((), s.attached_interfaces)]), |_| {
            Vec::new()
        }),
    ));

    out.push(sum(
        "netlab.hooks.lost",
        "Hooks found no longer running netlab's program (each was attached again).",
        "{hook}",
        true,
        points(
            t,
            merged(s.hooks_lost.iter().map(|(i, h, v)| ((i.as_str(), *h), *v))),
            |(i, h)| vec![kv("network.interface.name", *i), kv("netlab.hook", *h)],
        ),
    ));

    out.push(sum(
        "netlab.frees_not_drops",
        "Packets the kernel freed that nobody wanted delivered; never counted as drops.",
        "{packet}",
        true,
        points(
            t,
            merged(
                s.not_drops
                    .iter()
                    .map(|(p, r, v)| ((p.as_str(), r.as_str()), *v)),
            ),
            |(p, r)| vec![kv("netlab.packet.kind", *p), kv("netlab.drop.reason", *r)],
        ),
    ));

    exporter_metrics(&mut out, x, t);
    out
}

/// What the exporter could not deliver, so that a gap is never silent.
fn exporter_metrics(out: &mut Vec<Metric>, x: &StatsView, t: Times) {
    out.push(sum(
        "netlab.otlp.log_records.lost",
        "Log records that never reached the collector, by cause.",
        "{record}",
        true,
        points(
            t,
            BTreeMap::from([
                ("queue_full", x.queue_full),
                ("buffer_full", x.buffer_full),
                ("rejected", x.rejected),
            ]),
            |c| vec![kv("netlab.otlp.cause", *c)],
        ),
    ));
    out.push(sum(
        "netlab.otlp.exports.failed",
        "Export requests that failed (each retried with back-off), by signal.",
        "{request}",
        true,
        points(
            t,
            BTreeMap::from([("logs", x.logs_failed), ("metrics", x.metrics_failed)]),
            |s| vec![kv("netlab.otlp.signal", *s)],
        ),
    ));
    out.push(sum(
        "netlab.otlp.metric_exports.missed",
        "Export intervals whose metrics were never sent (the collector was unreachable); the next values carry what they counted.",
        "{interval}",
        true,
        points(t, BTreeMap::from([((), x.metric_intervals_missed)]), |_| Vec::new()),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::metrics::{PacketSeries, RttSeries};

    fn value(p: &NumberDataPoint) -> f64 {
        p.as_double.expect("a value")
    }

    fn metric<'a>(all: &'a [Metric], name: &str) -> &'a Metric {
        all.iter().find(|m| m.name == name).expect("the metric")
    }

    #[test]
    fn vxlan_counters_by_interface_and_vni() {
        let row = |vni, n| crate::model::summary::VxlanRow {
            iface: "eth0".into(),
            ifindex: 2,
            vni,
            network: Some("ovl".into()),
            direction: "egress".into(),
            kind: "icmp-echo-request".into(),
            packets: n,
        };
        let snap = Snapshot {
            vxlan: vec![row(4097, 3), row(4097, 2), row(4098, 1)],
            ..Default::default()
        };
        let t = Times {
            start_ns: 1,
            now_ns: 2,
        };
        let all = metrics(&snap, &StatsView::default(), t);
        let Some(metric::Data::Sum(s)) = &metric(&all, "netlab.vxlan.packets").data else {
            panic!("netlab.vxlan.packets is not a sum");
        };
        assert_eq!(s.data_points.len(), 2);
        assert_eq!(value(&s.data_points[0]), 5.0);
        let vni = s.data_points[0]
            .attributes
            .iter()
            .find(|a| a.key == "netlab.vxlan.vni")
            .and_then(|a| a.value.as_ref())
            .and_then(|v| v.value.clone());
        assert_eq!(vni, Some(proto::any_value::Value::IntValue(4097)));
    }

    #[test]
    fn counters_are_cumulative_and_merged_like_the_prometheus_page() {
        let series = |iface: &str, n| PacketSeries {
            container: "AppDev".into(),
            network: "devops".into(),
            iface: iface.into(),
            direction: "ingress",
            kind: "icmp-echo-request",
            packets: n,
        };
        let snap = Snapshot {
            packets: vec![series("veth1", 3), series("veth1", 4), series("veth2", 1)],
            ..Default::default()
        };
        let t = Times {
            start_ns: 1,
            now_ns: 2,
        };
        let all = metrics(&snap, &StatsView::default(), t);
        let Some(metric::Data::Sum(s)) = &metric(&all, "netlab.packets").data else {
            panic!("netlab.packets is not a sum");
        };
        assert_eq!(s.aggregation_temporality, proto::CUMULATIVE);
        assert!(s.is_monotonic);
        assert_eq!(s.data_points.len(), 2);
        assert_eq!(value(&s.data_points[0]), 7.0);
        assert_eq!(s.data_points[0].start_time_unix_nano, 1);
        let attrs: Vec<&str> = s.data_points[0]
            .attributes
            .iter()
            .map(|kv| kv.key.as_str())
            .collect();
        assert_eq!(
            attrs,
            [
                "container.name",
                "netlab.network.name",
                "network.interface.name",
                "network.io.direction",
                "netlab.packet.kind"
            ]
        );
    }

    #[test]
    fn rtt_buckets_are_counted_each_alone() {
        let snap = Snapshot {
            rtt: vec![RttSeries {
                src: "a".into(),
                dst: "b".into(),
                buckets: vec![(0.001, 2), (0.01, 5), (f64::INFINITY, 9)],
                sum_seconds: 0.5,
                count: 9,
            }],
            ..Default::default()
        };
        let all = metrics(
            &snap,
            &StatsView::default(),
            Times {
                start_ns: 0,
                now_ns: 0,
            },
        );
        let Some(metric::Data::Histogram(h)) = &metric(&all, "netlab.ping.rtt").data else {
            panic!("netlab.ping.rtt is not a histogram");
        };
        let p = &h.data_points[0];
        assert_eq!(p.explicit_bounds, [0.001, 0.01]);
        assert_eq!(p.bucket_counts, [2, 3, 4]);
        assert_eq!(p.count, 9);
    }
}

//! The exact counters printed when `netlab watch` ends.

use std::fmt::Write as _;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::kernel::loader::DeliveryStats;
use crate::model::kind::{Direction, Kind};

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct CounterRow {
    pub iface: String,
    pub ifindex: u32,
    /// What a person reads for the interface (`veth of AppDev (devops, br-…)`), when its
    /// name alone says little.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub direction: &'static str,
    pub kind: &'static str,
    pub packets: u64,
}

/// Packets of one kind seen inside VXLAN on one interface: an overlay network's traffic
/// between hosts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct VxlanRow {
    pub iface: String,
    pub ifindex: u32,
    pub vni: u32,
    /// The overlay network with this VNI, when this host's engine knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    pub direction: String,
    pub kind: String,
    pub packets: u64,
}

/// What `--json` prints last: `{"counters":[...],"lost_events":N,...}`.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub counters: Vec<CounterRow>,
    /// ARP and ICMP packets inside VXLAN (overlay networks), by interface and VNI.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vxlan: Vec<VxlanRow>,
    /// Samples that were due but not delivered (ring full plus rate-limited).
    pub lost_events: u64,
    pub delivery: DeliveryStats,
    /// Events printed.
    pub events: u64,
    /// ARP, ICMP and ICMPv6 packets the kernel dropped, by reason (host-wide).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drops: Vec<DropRow>,
    /// Packets the kernel freed that nobody wanted delivered (multicast neighbour discovery
    /// for a group nobody joined, replies to exited pings, ...): not reported as drops.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_drops: Vec<NotDropRow>,
    /// Ping statistics per (source, destination) pair, from finished journeys.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<crate::model::journey::PairStats>,
}

/// What a client reads of the daemon's `/v1/counters` answer (a [`Summary`] as written):
/// the parts a difference of two answers needs.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DaemonCounters {
    counters: Vec<DaemonRow>,
    delivery: DeliveryStats,
    drops: Vec<DropRow>,
}

/// One row of [`DaemonCounters`], as written.
#[derive(Debug, Deserialize)]
struct DaemonRow {
    iface: String,
    ifindex: u32,
    #[serde(default)]
    label: Option<String>,
    direction: String,
    kind: String,
    packets: u64,
}

impl DaemonCounters {
    /// The rows with their key; a row of a direction or kind this build does not know (a
    /// newer daemon's) is left out.
    fn rows(&self) -> impl Iterator<Item = ((&str, u32, Direction, Kind), &DaemonRow)> {
        self.counters.iter().filter_map(|r| {
            let key = (
                r.iface.as_str(),
                r.ifindex,
                Direction::from_name(&r.direction)?,
                Kind::from_name(&r.kind)?,
            );
            Some((key, r))
        })
    }
}

/// Frees of one packet kind and reason that are not drops, and why.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct NotDropRow {
    pub packet: String,
    pub reason: String,
    pub why: &'static str,
    pub packets: u64,
}

/// Drops of one reason.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DropRow {
    pub reason: String,
    pub packets: u64,
}

impl Summary {
    /// Non-zero rows, ordered by interface, direction and kind.
    pub fn new(mut rows: Vec<CounterRow>, delivery: DeliveryStats, events: u64) -> Self {
        rows.retain(|r| r.packets > 0);
        rows.sort_by(|a, b| {
            (&a.iface, a.ifindex, a.direction, a.kind).cmp(&(
                &b.iface,
                b.ifindex,
                b.direction,
                b.kind,
            ))
        });
        Summary {
            counters: rows,
            vxlan: Vec::new(),
            lost_events: delivery.lost(),
            delivery,
            events,
            drops: Vec::new(),
            not_drops: Vec::new(),
            pairs: Vec::new(),
        }
    }

    /// The difference between two `/v1/counters` answers of the daemon (what happened
    /// between them), with `events` printed meanwhile.
    pub fn from_daemon_diff(
        before: &DaemonCounters,
        after: &DaemonCounters,
        events: u64,
    ) -> Summary {
        type Key<'a> = (&'a str, u32, Direction, Kind);
        let old: HashMap<Key<'_>, u64> = before.rows().map(|(k, r)| (k, r.packets)).collect();
        let rows = after
            .rows()
            .map(|(k, r)| CounterRow {
                iface: r.iface.clone(),
                ifindex: r.ifindex,
                label: r.label.clone(),
                direction: k.2.name(),
                kind: k.3.name(),
                packets: r
                    .packets
                    .saturating_sub(old.get(&k).copied().unwrap_or_default()),
            })
            .collect();
        let (b, a) = (&before.delivery, &after.delivery);
        let delivery = DeliveryStats {
            ring_full: a.ring_full.saturating_sub(b.ring_full),
            rate_limited: a.rate_limited.saturating_sub(b.rate_limited),
            sampled_out: a.sampled_out.saturating_sub(b.sampled_out),
            drop_ring_full: a.drop_ring_full.saturating_sub(b.drop_ring_full),
        };
        let was: HashMap<&str, u64> = before
            .drops
            .iter()
            .map(|r| (r.reason.as_str(), r.packets))
            .collect();
        let mut drops: Vec<(String, u64)> = after
            .drops
            .iter()
            .map(|r| {
                let was = was.get(r.reason.as_str()).copied().unwrap_or_default();
                (r.reason.clone(), r.packets.saturating_sub(was))
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        drops.sort();
        Summary::new(rows, delivery, events).with_drops(drops)
    }

    /// Adds drop counts by reason name.
    pub fn with_drops(mut self, drops: Vec<(String, u64)>) -> Self {
        self.drops = drops
            .into_iter()
            .map(|(reason, packets)| DropRow { reason, packets })
            .collect();
        self
    }

    /// Adds the frees that are not drops.
    pub fn with_not_drops(
        mut self,
        rows: &std::collections::BTreeMap<(String, String, &'static str), u64>,
    ) -> Self {
        self.not_drops = rows
            .iter()
            .map(|((packet, reason, why), n)| NotDropRow {
                packet: packet.clone(),
                reason: reason.clone(),
                why,
                packets: *n,
            })
            .collect();
        self
    }

    /// Adds the VXLAN counters (non-zero rows, in order).
    pub fn with_vxlan(mut self, mut rows: Vec<VxlanRow>) -> Self {
        rows.retain(|r| r.packets > 0);
        rows.sort_by(|a, b| {
            (&a.iface, a.vni, &a.direction, &a.kind).cmp(&(&b.iface, b.vni, &b.direction, &b.kind))
        });
        self.vxlan = rows;
        self
    }

    /// Adds per-pair ping statistics.
    pub fn with_pairs(mut self, pairs: Vec<crate::model::journey::PairStats>) -> Self {
        self.pairs = pairs;
        self
    }

    /// The human-readable table.
    pub fn human(&self) -> String {
        let mut s = String::from("\ncounters (exact, not sampled):\n");
        if self.counters.is_empty() {
            s.push_str("  no ARP, ICMP or ICMPv6 packet seen\n");
        } else {
            // The interface as events name it, its name first when the label does not
            // start with it: `veth4d13db2 veth of AppDev (devops, br-…)`.
            let shown = |r: &CounterRow| match &r.label {
                Some(l) if l.starts_with(r.iface.as_str()) => l.clone(),
                Some(l) => format!("{} {l}", r.iface),
                None => r.iface.clone(),
            };
            let w = self
                .counters
                .iter()
                .map(|r| shown(r).chars().count())
                .max()
                .unwrap_or(0)
                .max(5);
            let _ = writeln!(
                s,
                "  {:<w$}  {:<9}  {:<21}  {:>8}",
                "IFACE", "DIRECTION", "KIND", "PACKETS"
            );
            for r in &self.counters {
                let name = shown(r);
                let pad = w.saturating_sub(name.chars().count());
                let _ = writeln!(
                    s,
                    "  {name}{:pad$}  {:<9}  {:<21}  {:>8}",
                    "", r.direction, r.kind, r.packets
                );
            }
        }
        if !self.vxlan.is_empty() {
            s.push_str("inside VXLAN (overlay networks between hosts):\n");
            let _ = writeln!(
                s,
                "  {:<16}  {:<8}  {:<20}  {:<9}  {:<21}  {:>8}",
                "IFACE", "VNI", "NETWORK", "DIRECTION", "KIND", "PACKETS"
            );
            for r in &self.vxlan {
                let _ = writeln!(
                    s,
                    "  {:<16}  {:<8}  {:<20}  {:<9}  {:<21}  {:>8}",
                    r.iface,
                    r.vni,
                    r.network.as_deref().unwrap_or("?"),
                    r.direction,
                    r.kind,
                    r.packets
                );
            }
        }
        if !self.drops.is_empty() {
            s.push_str("drops (ARP/ICMP/ICMPv6, whole host):\n");
            for d in &self.drops {
                let _ = writeln!(s, "  {:<24} {:>8}", d.reason, d.packets);
            }
        }
        if !self.not_drops.is_empty() {
            s.push_str("freed, not drops (nobody wanted them delivered):\n");
            for d in &self.not_drops {
                let _ = writeln!(
                    s,
                    "  {:<22} {:<14} {:>8}  {}",
                    d.packet, d.reason, d.packets, d.why
                );
            }
        }
        if !self.pairs.is_empty() {
            s.push_str("pings:\n");
            for p in &self.pairs {
                let _ = writeln!(s, "  {}", crate::model::journey::pair_line(p));
            }
        }
        let d = &self.delivery;
        let _ = writeln!(
            s,
            "events: {} shown, {} lost (ring full {}, rate-limited {}), {} not sampled",
            self.events, self.lost_events, d.ring_full, d.rate_limited, d.sampled_out
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        iface: &str,
        ifindex: u32,
        direction: &'static str,
        kind: &'static str,
        packets: u64,
    ) -> CounterRow {
        CounterRow {
            iface: iface.to_owned(),
            ifindex,
            label: None,
            direction,
            kind,
            packets,
        }
    }

    #[test]
    fn rows_are_sorted_and_zero_free() {
        let rows = vec![
            row("vb", 7, "egress", "icmp-echo-reply", 5),
            row("va", 3, "ingress", "icmp-echo-request", 5),
            row("va", 3, "ingress", "arp-request", 0),
        ];
        let d = DeliveryStats {
            ring_full: 2,
            rate_limited: 1,
            sampled_out: 0,
            drop_ring_full: 0,
        };
        let s = Summary::new(rows, d, 10);
        assert_eq!(s.counters.len(), 2);
        assert_eq!(s.counters[0].iface, "va");
        assert_eq!(s.counters[0].kind, "icmp-echo-request");
        assert_eq!(s.lost_events, 3);
        let v = serde_json::to_value(&s).expect("json");
        assert_eq!(v["counters"][1]["packets"], 5);
        assert_eq!(v["counters"][1]["direction"], "egress");
        assert_eq!(v["lost_events"], 3);
        let h = s.human();
        assert!(h.contains("icmp-echo-request"), "{h}");
        assert!(h.contains("3 lost (ring full 2, rate-limited 1)"), "{h}");
    }

    #[test]
    fn daemon_counters_are_diffed() {
        let read = |v: serde_json::Value| -> DaemonCounters {
            serde_json::from_value(v).expect("a counters answer")
        };
        let before = read(serde_json::json!({
            "counters": [{"iface":"va","ifindex":3,"direction":"ingress","kind":"icmp-echo-request","packets":5}],
            "delivery": {"ring_full":1,"rate_limited":0,"sampled_out":0,"drop_ring_full":0},
            "drops": [{"reason":"NETFILTER_DROP","packets":2}]
        }));
        let after = read(serde_json::json!({
            "counters": [
                {"iface":"va","ifindex":3,"direction":"ingress","kind":"icmp-echo-request","packets":8},
                {"iface":"vb","ifindex":4,"direction":"egress","kind":"arp-reply","packets":1},
                {"iface":"vb","ifindex":4,"direction":"sideways","kind":"arp-reply","packets":1}
            ],
            "delivery": {"ring_full":1,"rate_limited":2,"sampled_out":0,"drop_ring_full":0},
            "drops": [{"reason":"NETFILTER_DROP","packets":5}]
        }));
        let s = Summary::from_daemon_diff(&before, &after, 4);
        assert_eq!(s.counters.len(), 2);
        assert_eq!(s.counters[0].packets, 3);
        assert_eq!(s.counters[1].iface, "vb");
        assert_eq!(s.delivery.rate_limited, 2);
        assert_eq!(s.delivery.ring_full, 0);
        assert_eq!(
            s.drops,
            vec![DropRow {
                reason: "NETFILTER_DROP".into(),
                packets: 3
            }]
        );
        assert_eq!(s.events, 4);
    }

    #[test]
    fn what_the_daemon_writes_reads_back_whole() {
        let mut r = row("veth1", 7, "egress", Kind::Icmp6EchoReply.name(), 4);
        r.label = Some("veth of AppDev (devops, br-x)".into());
        let delivery = DeliveryStats {
            ring_full: 1,
            rate_limited: 2,
            sampled_out: 3,
            drop_ring_full: 4,
        };
        let s = Summary::new(
            vec![row("br-x", 3, "ingress", "arp-request", 2), r],
            delivery,
            9,
        )
        .with_drops(vec![("NETFILTER_DROP".into(), 5)]);
        let read: DaemonCounters =
            serde_json::from_str(&serde_json::to_string(&s).expect("json")).expect("read");
        let again = Summary::from_daemon_diff(&DaemonCounters::default(), &read, 9);
        assert_eq!(again.counters, s.counters);
        assert_eq!(again.delivery, s.delivery);
        assert_eq!(again.drops, s.drops);
        // Nothing happened between two equal answers.
        let none = Summary::from_daemon_diff(&read, &read, 0);
        assert!(none.counters.is_empty() && none.drops.is_empty());
        assert_eq!(none.delivery, DeliveryStats::default());
    }

    #[test]
    fn rows_are_named_as_events_name_interfaces() {
        let mut veth = row("veth4d13db2", 9, "egress", "icmp-echo-request", 119);
        veth.label = Some("veth of AppDev (devops, br-3b34dcfb7363)".into());
        let mut leg = row("int_hote", 12, "ingress", "icmp-echo-reply", 3);
        leg.label = Some("int_hote → AppProd eth1 (hand-made, devops, br-3b34dcfb7363)".into());
        let plain = row("va", 3, "ingress", "arp-request", 1);
        let s = Summary::new(vec![veth, leg, plain], DeliveryStats::default(), 0);
        let h = s.human();
        for (name, direction) in [
            (
                "veth4d13db2 veth of AppDev (devops, br-3b34dcfb7363) ",
                "egress",
            ),
            (
                "int_hote → AppProd eth1 (hand-made, devops, br-3b34dcfb7363) ",
                "ingress",
            ),
            ("va ", "ingress"),
        ] {
            assert!(
                h.lines()
                    .any(|l| l.starts_with(&format!("  {name}")) && l.contains(direction)),
                "{name}: {h}"
            );
        }
        // Columns line up whatever the labels' lengths.
        let starts: Vec<usize> = h
            .lines()
            .filter(|l| l.contains("gress "))
            .filter_map(|l| {
                l.find(" egress ")
                    .or_else(|| l.find(" ingress "))
                    .map(|i| l[..i].chars().count())
            })
            .collect();
        assert_eq!(starts.len(), 3, "{h}");
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(
            json["counters"][0]["label"],
            "int_hote → AppProd eth1 (hand-made, devops, br-3b34dcfb7363)"
        );
        assert!(json["counters"][1].get("label").is_none());
    }

    #[test]
    fn empty_counters() {
        let s = Summary::new(Vec::new(), DeliveryStats::default(), 0);
        assert!(s.counters.is_empty());
        assert!(s.human().contains("no ARP, ICMP or ICMPv6 packet seen"));
    }
}

//! The exact counters printed when `netlab watch` ends.

use std::fmt::Write as _;

use serde::Serialize;

use crate::loader::DeliveryStats;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct CounterRow {
    pub iface: String,
    pub ifindex: u32,
    pub direction: &'static str,
    pub kind: &'static str,
    pub packets: u64,
}

/// What `--json` prints last: `{"counters":[...],"lost_events":N,...}`.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub counters: Vec<CounterRow>,
    /// Samples that were due but not delivered (ring full plus rate-limited).
    pub lost_events: u64,
    pub delivery: DeliveryStats,
    /// Events printed.
    pub events: u64,
    /// ARP, ICMP and ICMPv6 packets the kernel dropped, by reason (host-wide).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drops: Vec<DropRow>,
    /// Ping statistics per (source, destination) pair, from finished journeys.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<crate::journey::PairStats>,
}

/// Drops of one reason.
#[derive(Debug, Serialize, PartialEq, Eq)]
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
            lost_events: delivery.lost(),
            delivery,
            events,
            drops: Vec::new(),
            pairs: Vec::new(),
        }
    }

    /// Adds drop counts by reason name.
    pub fn with_drops(mut self, drops: Vec<(String, u64)>) -> Self {
        self.drops = drops
            .into_iter()
            .map(|(reason, packets)| DropRow { reason, packets })
            .collect();
        self
    }

    /// Adds per-pair ping statistics.
    pub fn with_pairs(mut self, pairs: Vec<crate::journey::PairStats>) -> Self {
        self.pairs = pairs;
        self
    }

    /// The human-readable table.
    pub fn human(&self) -> String {
        let mut s = String::from("\ncounters (exact, not sampled):\n");
        if self.counters.is_empty() {
            s.push_str("  no ARP, ICMP or ICMPv6 packet seen\n");
        } else {
            let w = self
                .counters
                .iter()
                .map(|r| r.iface.len())
                .max()
                .unwrap_or(0)
                .max(5);
            let _ = writeln!(
                s,
                "  {:<w$}  {:<9}  {:<21}  {:>8}",
                "IFACE", "DIRECTION", "KIND", "PACKETS"
            );
            for r in &self.counters {
                let _ = writeln!(
                    s,
                    "  {:<w$}  {:<9}  {:<21}  {:>8}",
                    r.iface, r.direction, r.kind, r.packets
                );
            }
        }
        if !self.drops.is_empty() {
            s.push_str("drops (ARP/ICMP/ICMPv6, whole host):\n");
            for d in &self.drops {
                let _ = writeln!(s, "  {:<24} {:>8}", d.reason, d.packets);
            }
        }
        if !self.pairs.is_empty() {
            s.push_str("pings:\n");
            for p in &self.pairs {
                let _ = writeln!(s, "  {}", crate::journey::pair_line(p));
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
    fn empty_counters() {
        let s = Summary::new(Vec::new(), DeliveryStats::default(), 0);
        assert!(s.counters.is_empty());
        assert!(s.human().contains("no ARP, ICMP or ICMPv6 packet seen"));
    }
}

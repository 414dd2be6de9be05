//! The exact counters printed when `netlab watch` ends.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::Serialize;

use crate::kind::{Direction, Kind};
use crate::loader::DeliveryStats;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct CounterRow<'a> {
    pub iface: &'a str,
    pub ifindex: u32,
    pub direction: &'static str,
    pub kind: &'static str,
    pub packets: u64,
}

/// What `--json` prints last: `{"counters":[...],"lost_events":N,...}`.
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    pub counters: Vec<CounterRow<'a>>,
    /// Samples that were due but not delivered (ring full plus rate-limited).
    pub lost_events: u64,
    pub delivery: DeliveryStats,
    /// Events printed.
    pub events: u64,
}

impl<'a> Summary<'a> {
    /// Rows for interfaces in `names` (ifindex → name), ordered by interface, direction, kind.
    pub fn new(
        counters: &BTreeMap<(u32, Direction, Kind), u64>,
        names: &'a HashMap<u32, String>,
        delivery: DeliveryStats,
        events: u64,
    ) -> Self {
        let mut rows: Vec<CounterRow<'a>> = counters
            .iter()
            .filter(|(_, n)| **n > 0)
            .filter_map(|((idx, dir, kind), n)| {
                Some(CounterRow {
                    iface: names.get(idx)?.as_str(),
                    ifindex: *idx,
                    direction: dir.name(),
                    kind: kind.name(),
                    packets: *n,
                })
            })
            .collect();
        rows.sort_by(|a, b| (a.iface, a.direction).cmp(&(b.iface, b.direction)));
        Summary {
            counters: rows,
            lost_events: delivery.lost(),
            delivery,
            events,
        }
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

    #[test]
    fn rows_are_named_sorted_and_zero_free() {
        let mut c = BTreeMap::new();
        c.insert((7, Direction::Egress, Kind::IcmpEchoReply), 5);
        c.insert((3, Direction::Ingress, Kind::IcmpEchoRequest), 5);
        c.insert((3, Direction::Ingress, Kind::ArpRequest), 0);
        c.insert((99, Direction::Ingress, Kind::ArpRequest), 1);
        let names: HashMap<u32, String> = [(3, "va".to_owned()), (7, "vb".to_owned())].into();
        let d = DeliveryStats {
            ring_full: 2,
            rate_limited: 1,
            sampled_out: 0,
        };
        let s = Summary::new(&c, &names, d, 10);
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
        let names = HashMap::new();
        let s = Summary::new(&BTreeMap::new(), &names, DeliveryStats::default(), 0);
        assert!(s.counters.is_empty());
        assert!(s.human().contains("no ARP, ICMP or ICMPv6 packet seen"));
    }
}

//! Counts kept in user space for the daemon's metrics: drops by reason and labels,
//! journeys by result, and round-trip times per (source, destination) pair.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::model::event::DropRecord;
use crate::model::journey::{Finished, Outcome};
use crate::model::jsonw::Ipv4Text;
use crate::output::metrics::RttHistogram;

/// Label sets kept at most, per table; the rest is summed under `other`.
const MAX_SERIES: usize = 4096;

/// The daemon's user-space counts.
#[derive(Clone, Debug, Default)]
pub struct Tallies {
    /// (reason, container, network) → drops reported.
    pub drops: BTreeMap<(String, String, String), u64>,
    /// (packet kind, reason, why it is not a drop) → frees not reported as drops.
    pub not_drops: BTreeMap<(String, String, &'static str), u64>,
    /// Journey result → count.
    pub journeys: BTreeMap<&'static str, u64>,
    /// (source, destination) → RTTs of answered journeys.
    pub rtt: BTreeMap<(String, String), RttHistogram>,
    /// The names of the pair being counted, reused: counting a journey of a known pair
    /// allocates nothing (a ping flood finishes tens of thousands a second).
    pair: (String, String),
}

fn bounded<K: Ord + Clone, V: Default>(map: &mut BTreeMap<K, V>, key: K, other: K) -> &mut V {
    if map.len() >= MAX_SERIES && !map.contains_key(&key) {
        return map.entry(other).or_default();
    }
    map.entry(key).or_default()
}

impl Tallies {
    /// Counts a freed packet that is not reported as a drop, and why.
    pub fn not_a_drop(&mut self, r: &DropRecord, why: &'static str) {
        let other = ("other".to_owned(), "other".to_owned(), why);
        *bounded(
            &mut self.not_drops,
            (r.packet.name().to_owned(), r.drop.reason.clone(), why),
            other,
        ) += 1;
    }

    /// Counts a reported drop, labelled with its source container (else destination).
    pub fn drop(&mut self, r: &DropRecord) {
        let (container, network) = match (r.src.container, r.dst.container) {
            (Some(c), _) => (c, r.src.network.unwrap_or_default()),
            (None, Some(c)) => (c, r.dst.network.unwrap_or_default()),
            (None, None) => ("", r.src.network.or(r.dst.network).unwrap_or_default()),
        };
        let other = (
            r.drop.reason.clone(),
            "other".to_owned(),
            "other".to_owned(),
        );
        *bounded(
            &mut self.drops,
            (
                r.drop.reason.clone(),
                container.to_owned(),
                network.to_owned(),
            ),
            other,
        ) += 1;
    }

    /// Counts a finished journey (and its RTT when answered).
    pub fn finished(&mut self, f: &Finished) {
        let Finished::Journey(j) = f else { return };
        let result = match j.result {
            Outcome::Answered => "answered",
            Outcome::Dropped => "dropped",
            Outcome::Unanswered => "unanswered",
        };
        *self.journeys.entry(result).or_default() += 1;
        let Some(rtt) = j.rtt_ns else { return };
        let name = |out: &mut String, c: &Option<String>, ip: &std::net::IpAddr| {
            out.clear();
            match c {
                Some(c) => out.push_str(c),
                None => match ip {
                    // Without `core::fmt`: this runs for every answered journey.
                    std::net::IpAddr::V4(v4) => {
                        out.push_str(
                            std::str::from_utf8(Ipv4Text::new(*v4).as_bytes()).unwrap_or_default(),
                        );
                    }
                    std::net::IpAddr::V6(_) => {
                        let _ = write!(out, "{ip}");
                    }
                },
            }
        };
        name(&mut self.pair.0, &j.src.container, &j.src.ip);
        name(&mut self.pair.1, &j.dst.container, &j.dst.ip);
        let seconds = rtt as f64 / 1e9;
        if let Some(h) = self.rtt.get_mut(&self.pair) {
            h.observe(seconds);
        } else {
            let other = ("other".into(), "other".into());
            bounded(&mut self.rtt, self.pair.clone(), other).observe(seconds);
        }
    }

    /// Forgets the series of containers that are gone (after their grace period).
    pub fn forget_containers(&mut self, gone: &[String]) {
        self.drops.retain(|(_, c, _), _| !gone.contains(c));
        self.rtt
            .retain(|(s, d), _| !gone.contains(s) && !gone.contains(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_bounded() {
        let mut m: BTreeMap<u32, u64> = BTreeMap::new();
        for i in 0..(MAX_SERIES as u32 + 10) {
            *bounded(&mut m, i, u32::MAX) += 1;
        }
        assert_eq!(m.len(), MAX_SERIES + 1);
        assert_eq!(m.get(&u32::MAX), Some(&10));
    }

    fn answered(src: &str, src_container: Option<&str>, dst: &str) -> Finished {
        use crate::model::journey::{Journey, JourneyEnd};
        let end = |ip: &str, c: Option<&str>| JourneyEnd {
            ip: ip.parse().expect("ip"),
            container: c.map(String::from),
        };
        Finished::Journey(Journey {
            kind: "journey",
            ts_ns: 0,
            family: crate::model::journey::Family::Icmp,
            src: end(src, src_container),
            dst: end(dst, None),
            id: 7,
            seq: 1,
            vni: None,
            result: Outcome::Answered,
            rtt_ns: Some(250_000),
            hops: Vec::new(),
            drop: None,
            last_seen: None,
        })
    }

    #[test]
    fn round_trips_are_named_by_container_else_address() {
        let mut t = Tallies::default();
        for (src, c, dst) in [
            ("10.0.0.1", None, "172.18.0.30"),
            ("10.0.0.1", None, "172.18.0.30"),
            ("255.255.255.255", Some("AppDev"), "0.0.0.0"),
            ("fd00::1", None, "::ffff:10.1.2.3"),
        ] {
            t.finished(&answered(src, c, dst));
        }
        let pairs: Vec<(&str, &str, u64)> = t
            .rtt
            .iter()
            .map(|((s, d), h)| (s.as_str(), d.as_str(), h.count()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("10.0.0.1", "172.18.0.30", 2),
                ("AppDev", "0.0.0.0", 1),
                ("fd00::1", "::ffff:10.1.2.3", 1),
            ]
        );
        assert_eq!(t.journeys.get("answered"), Some(&4));
    }
}

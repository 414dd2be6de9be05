//! Per-pair statistics of finished journeys (sent, answered, lost, round trips), bounded by
//! [`MAX_STAT_PAIRS`]: further pairs are added up under [`OTHER_PAIR`].

use std::net::IpAddr;
use std::sync::Arc;

use super::record::{Outcome, PairStats};
use super::{Map, MAX_STAT_PAIRS, OTHER_PAIR};

/// A statistics endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Label {
    Name(Arc<str>),
    Ip(IpAddr),
    Other,
}

impl Label {
    /// The container's name if known, else the address.
    pub(super) fn new(container: Option<&Arc<str>>, ip: IpAddr) -> Self {
        container.map_or(Label::Ip(ip), |c| Label::Name(Arc::clone(c)))
    }

    fn text(&self) -> String {
        match self {
            Label::Name(n) => String::from(&**n),
            Label::Ip(ip) => ip.to_string(),
            Label::Other => OTHER_PAIR.to_owned(),
        }
    }
}

#[derive(Debug, Default)]
struct Acc {
    sent: u64,
    answered: u64,
    lost: u64,
    rtt_count: u64,
    rtt_sum: u128,
    rtt_min: Option<u64>,
    rtt_max: Option<u64>,
}

/// The statistics of every (requester, responder) pair.
#[derive(Debug, Default)]
pub(super) struct PairTable {
    pairs: Map<(Label, Label), Acc>,
}

impl PairTable {
    /// Counts a finished journey from `src` to `dst`.
    pub(super) fn record(&mut self, src: Label, dst: Label, result: Outcome, rtt_ns: Option<u64>) {
        let mut pair = (src, dst);
        if self.pairs.len() >= MAX_STAT_PAIRS && !self.pairs.contains_key(&pair) {
            pair = (Label::Other, Label::Other);
        }
        let a = self.pairs.entry(pair).or_default();
        a.sent += 1;
        match result {
            Outcome::Answered => a.answered += 1,
            Outcome::Dropped | Outcome::Unanswered => a.lost += 1,
        }
        if let Some(rtt) = rtt_ns {
            a.rtt_count += 1;
            a.rtt_sum += u128::from(rtt);
            a.rtt_min = Some(a.rtt_min.map_or(rtt, |m| m.min(rtt)));
            a.rtt_max = Some(a.rtt_max.map_or(rtt, |m| m.max(rtt)));
        }
    }

    /// One row per pair, ordered by names.
    pub(super) fn rows(&self) -> Vec<PairStats> {
        let mut rows: Vec<PairStats> = self
            .pairs
            .iter()
            .map(|((src, dst), a)| PairStats {
                src: src.text(),
                dst: dst.text(),
                sent: a.sent,
                answered: a.answered,
                lost: a.lost,
                rtt_min_ns: a.rtt_min,
                rtt_avg_ns: u64::try_from(a.rtt_sum / u128::from(a.rtt_count.max(1)))
                    .ok()
                    .filter(|_| a.rtt_count > 0),
                rtt_max_ns: a.rtt_max,
            })
            .collect();
        rows.sort_by(|a, b| (&a.src, &a.dst).cmp(&(&b.src, &b.dst)));
        rows
    }
}

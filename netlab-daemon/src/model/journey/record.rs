//! What the [`Correlator`](super::Correlator) hands out: a ping's [`Journey`] or an
//! [`ArpUnanswered`] report (together [`Finished`]), and the per-pair [`PairStats`]. The
//! field names are those of the public JSON contract (see the [module docs](super)).

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use crate::model::kind::{Direction, Family};

/// Which half of the ping a hop or drop belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The echo request (`request`).
    Request,
    /// The echo reply (`reply`).
    Reply,
}

impl Phase {
    /// Its name in JSON and in human-readable lines.
    pub const fn name(self) -> &'static str {
        match self {
            Phase::Request => "request",
            Phase::Reply => "reply",
        }
    }
}

/// How a journey ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A reply was seen after any drop (`answered`).
    Answered,
    /// The kernel dropped the request or the reply (`dropped`).
    Dropped,
    /// Neither reply nor drop was seen in time (`unanswered`).
    Unanswered,
}

impl Outcome {
    /// Its name in JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Dropped => "dropped",
            Outcome::Unanswered => "unanswered",
        }
    }
}

/// One end of a journey.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JourneyEnd {
    /// Its address.
    pub ip: IpAddr,
    /// Its container, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// An observation point a journey passed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    /// Interface name.
    pub iface: String,
    /// Interface index.
    pub ifindex: u32,
    /// Direction (`ingress` or `egress`).
    pub direction: Direction,
    /// Earliest time it was seen there, ns.
    pub ts_ns: u64,
    /// Request or reply.
    pub phase: Phase,
    /// The peer host it was seen on (`watch --peer`); absent: this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// The drop that ended a journey.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JourneyDrop {
    /// The kernel's drop reason.
    pub reason: String,
    /// Kernel function, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Interface, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    /// Netfilter rule, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Netfilter hook, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    /// Whether the request or the reply was dropped.
    pub phase: Phase,
    /// The peer host that dropped it (`watch --peer`); absent: this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// The story of one ping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journey {
    /// Always `"journey"`.
    #[serde(deserialize_with = "crate::model::jsonw::tag::journey")]
    pub kind: crate::model::jsonw::tag::Name,
    /// Time of the first request sighting (or, without one, of the first sighting or
    /// drop), kernel monotonic ns.
    pub ts_ns: u64,
    /// `icmp` or `icmp6`.
    pub family: Family,
    /// The requester.
    pub src: JourneyEnd,
    /// The responder.
    pub dst: JourneyEnd,
    /// Echo identifier.
    pub id: u16,
    /// Echo sequence number.
    pub seq: u16,
    /// The VXLAN network identifier it was seen inside, between hosts on a Swarm overlay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
    /// How it ended.
    pub result: Outcome,
    /// First request sighting to last reply sighting, when answered.
    pub rtt_ns: Option<u64>,
    /// Every observation point, in time order.
    pub hops: Vec<Hop>,
    /// The (latest) drop, if one was seen.
    pub drop: Option<JourneyDrop>,
    /// For dropped and unanswered journeys, the last hop where it was seen.
    pub last_seen: Option<Hop>,
}

/// An ARP request nobody answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArpUnanswered {
    /// Always `"arp-unanswered"`.
    #[serde(deserialize_with = "crate::model::jsonw::tag::arp_unanswered")]
    pub kind: crate::model::jsonw::tag::Name,
    /// Time of the first request, kernel monotonic ns.
    pub ts_ns: u64,
    /// Who asked (sender address).
    pub who: Ipv4Addr,
    /// The asker's container, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub who_container: Option<String>,
    /// The address asked for (target address).
    pub asked_for: Ipv4Addr,
    /// Docker network, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Interface where the first request was seen.
    pub iface: String,
    /// Requests for the pair in the window.
    pub requests: u32,
}

/// Something [`Correlator::poll`](super::Correlator::poll) or
/// [`Correlator::flush`](super::Correlator::flush) finished.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[expect(
    clippy::large_enum_variant,
    reason = "nearly everything finished is a journey: boxing it would cost an allocation \
              each to save space only for the rare ARP report"
)]
pub enum Finished {
    /// A ping's journey.
    Journey(Journey),
    /// An unanswered ARP request.
    ArpUnanswered(ArpUnanswered),
}

/// Statistics of the finished journeys from one requester to one responder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PairStats {
    /// Requester: container name, else address.
    pub src: String,
    /// Responder: container name, else address.
    pub dst: String,
    /// Finished journeys.
    pub sent: u64,
    /// Answered journeys.
    pub answered: u64,
    /// Dropped plus unanswered journeys.
    pub lost: u64,
    /// Shortest round trip, ns.
    pub rtt_min_ns: Option<u64>,
    /// Mean round trip, ns.
    pub rtt_avg_ns: Option<u64>,
    /// Longest round trip, ns.
    pub rtt_max_ns: Option<u64>,
}

impl Finished {
    /// When it started: the journey's or the first ARP request's `ts_ns`.
    pub fn ts_ns(&self) -> u64 {
        match self {
            Finished::Journey(j) => j.ts_ns,
            Finished::ArpUnanswered(a) => a.ts_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde() {
        for p in [Phase::Request, Phase::Reply] {
            assert_eq!(serde_json::to_value(p).expect("json"), p.name());
        }
        for o in [Outcome::Answered, Outcome::Dropped, Outcome::Unanswered] {
            assert_eq!(serde_json::to_value(o).expect("json"), o.name());
        }
    }
}

//! A journey still collecting sightings: what a sighting or a drop adds to it, when it is
//! due ([`Pending::deadline`], the [`Due`] checks of the correlator's queue), how it ended
//! ([`Pending::outcome`]) and the [`Journey`] it becomes.

use std::cmp::Ordering;
use std::net::IpAddr;
use std::sync::Arc;

use super::interner::Interner;
use super::record::{Hop, Journey, JourneyDrop, JourneyEnd, Outcome, Phase};
use super::sighting::{DropSighting, Sighting};
use super::{Config, Map, MAX_HOPS};
use crate::model::kind::{Direction, Family, Kind};

/// Hop capacity reserved for a new journey (a ping through two veths and a bridge).
const HOPS_CAPACITY: usize = 8;
/// `Pending::scheduled` of a journey with no deadline check queued yet.
const UNSCHEDULED: u64 = u64::MAX;

/// The family and phase of an echo kind.
fn classify(kind: Kind) -> Option<(Family, Phase)> {
    match kind {
        Kind::IcmpEchoRequest => Some((Family::Icmp, Phase::Request)),
        Kind::IcmpEchoReply => Some((Family::Icmp, Phase::Reply)),
        Kind::Icmp6EchoRequest => Some((Family::Icmp6, Phase::Request)),
        Kind::Icmp6EchoReply => Some((Family::Icmp6, Phase::Reply)),
        _ => None,
    }
}

/// What a journey is keyed by: a request and the reply with the same id and seq share it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Key {
    pub(super) family: Family,
    pub(super) requester: IpAddr,
    pub(super) responder: IpAddr,
    pub(super) id: u16,
    pub(super) seq: u16,
}

/// Hashed as three words rather than field by field: the derived hash feeds the hasher
/// nine times (each address as a discriminant, a length and its bytes), and the journeys'
/// table is looked up several times per sighting. Keys equal by `Eq` hash alike.
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        fn bits(ip: IpAddr) -> u128 {
            match ip {
                IpAddr::V4(v4) => u128::from(u32::from(v4)),
                IpAddr::V6(v6) => u128::from(v6),
            }
        }
        state.write_u128(bits(self.requester));
        state.write_u128(bits(self.responder));
        let tags = u64::from(self.family == Family::Icmp6) << 34
            | u64::from(self.requester.is_ipv6()) << 33
            | u64::from(self.responder.is_ipv6()) << 32;
        state.write_u64(tags | u64::from(self.id) << 16 | u64::from(self.seq));
    }
}

impl Key {
    pub(super) fn new(
        family: Family,
        phase: Phase,
        src: IpAddr,
        dst: IpAddr,
        id: u16,
        seq: u16,
    ) -> Self {
        let (requester, responder) = match phase {
            Phase::Request => (src, dst),
            Phase::Reply => (dst, src),
        };
        Key {
            family,
            requester,
            responder,
            id,
            seq,
        }
    }

    /// The key of an echo packet of `kind` from `src` to `dst`, and whether it is the
    /// request or the reply; `None` for other kinds.
    pub(super) fn of_echo(
        kind: Kind,
        src: IpAddr,
        dst: IpAddr,
        id: u16,
        seq: u16,
    ) -> Option<(Self, Phase)> {
        let (family, phase) = classify(kind)?;
        Some((Key::new(family, phase, src, dst, id, seq), phase))
    }
}

/// An observation point of a pending journey.
#[derive(Debug)]
struct PendingHop {
    host: Option<Arc<str>>,
    iface: Arc<str>,
    ifindex: u32,
    direction: Direction,
    phase: Phase,
    ts_ns: u64,
}

impl PendingHop {
    fn to_hop(&self) -> Hop {
        Hop {
            iface: String::from(&*self.iface),
            ifindex: self.ifindex,
            direction: self.direction,
            ts_ns: self.ts_ns,
            phase: self.phase,
            host: self.host.as_deref().map(str::to_owned),
        }
    }
}

/// The latest drop of a pending journey.
#[derive(Debug)]
pub(super) struct PendingDrop {
    ts_ns: u64,
    phase: Phase,
    reason: Arc<str>,
    location: Option<Arc<str>>,
    iface: Option<Arc<str>>,
    rule: Option<Arc<str>>,
    hook: Option<Arc<str>>,
    host: Option<Arc<str>>,
}

/// A journey not finished yet.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) serial: u64,
    /// Time of this journey's live entry in `Correlator::due` (never later than its
    /// deadline), or [`UNSCHEDULED`].
    pub(super) scheduled: u64,
    pub(super) src_container: Option<Arc<str>>,
    pub(super) dst_container: Option<Arc<str>>,
    first_ts: u64,
    last_ts: u64,
    pub(super) first_request_ts: Option<u64>,
    last_reply_ts: Option<u64>,
    hops: Vec<PendingHop>,
    /// The VXLAN network identifier, once seen inside VXLAN.
    vni: Option<u32>,
    /// Whether this host saw it (a hop or a drop here), not only peers.
    pub(super) here: bool,
    /// Boxed: few journeys see a drop, and every journey is moved in and out of the map.
    pub(super) drop: Option<Box<PendingDrop>>,
}

impl Pending {
    pub(super) fn new(serial: u64, ts_ns: u64) -> Self {
        Pending {
            serial,
            scheduled: UNSCHEDULED,
            src_container: None,
            dst_container: None,
            first_ts: ts_ns,
            last_ts: ts_ns,
            first_request_ts: None,
            last_reply_ts: None,
            hops: Vec::with_capacity(HOPS_CAPACITY),
            vni: None,
            here: false,
            drop: None,
        }
    }

    /// Widens the journey's span to a sighting or drop at `ts_ns`.
    pub(super) fn touch(&mut self, ts_ns: u64) {
        self.first_ts = self.first_ts.min(ts_ns);
        self.last_ts = self.last_ts.max(ts_ns);
    }

    /// Adds the sighting `s` of the journey's `phase`: its time, the containers of its
    /// ends if not known yet, and its observation point.
    pub(super) fn see(&mut self, s: &Sighting<'_>, phase: Phase, names: &mut Interner) {
        let (requester, responder) = match phase {
            Phase::Request => {
                self.first_request_ts =
                    Some(self.first_request_ts.map_or(s.ts_ns, |t| t.min(s.ts_ns)));
                (s.src_container, s.dst_container)
            }
            Phase::Reply => {
                self.last_reply_ts = Some(self.last_reply_ts.map_or(s.ts_ns, |t| t.max(s.ts_ns)));
                (s.dst_container, s.src_container)
            }
        };
        if self.src_container.is_none() {
            self.src_container = names.get_opt(requester);
        }
        if self.dst_container.is_none() {
            self.dst_container = names.get_opt(responder);
        }
        self.here |= s.host.is_none();
        if self.vni.is_none() {
            self.vni = s.vni;
        }
        let seen = self.hops.iter().position(|h| {
            h.ifindex == s.ifindex
                && h.direction == s.direction
                && h.phase == phase
                && *h.iface == *s.iface
                && h.host.as_deref() == s.host
        });
        if let Some(h) = seen.and_then(|i| self.hops.get_mut(i)) {
            h.ts_ns = h.ts_ns.min(s.ts_ns);
        } else if self.hops.len() < MAX_HOPS {
            self.hops.push(PendingHop {
                host: names.get_opt(s.host),
                iface: names.get(s.iface),
                ifindex: s.ifindex,
                direction: s.direction,
                phase,
                ts_ns: s.ts_ns,
            });
        }
    }

    /// Adds the drop `d` of the journey's `phase`, unless a later drop is already known.
    pub(super) fn see_drop(&mut self, d: &DropSighting<'_>, phase: Phase, names: &mut Interner) {
        let (requester, responder) = match phase {
            Phase::Request => (d.src_container, d.dst_container),
            Phase::Reply => (d.dst_container, d.src_container),
        };
        if self.src_container.is_none() {
            self.src_container = names.get_opt(requester);
        }
        if self.dst_container.is_none() {
            self.dst_container = names.get_opt(responder);
        }
        self.here |= d.host.is_none();
        if self.drop.as_ref().is_none_or(|old| d.ts_ns >= old.ts_ns) {
            self.drop = Some(Box::new(PendingDrop {
                ts_ns: d.ts_ns,
                phase,
                reason: names.get(d.reason),
                location: names.get_opt(d.location),
                iface: names.get_opt(d.iface),
                rule: names.get_opt(d.rule),
                hook: names.get_opt(d.hook),
                host: names.get_opt(d.host),
            }));
        }
    }

    pub(super) fn deadline(&self, cfg: &Config) -> u64 {
        let natural = if self.last_reply_ts.is_some() || self.drop.is_some() {
            self.last_ts.saturating_add(cfg.settle_ns)
        } else {
            self.first_request_ts
                .unwrap_or(self.first_ts)
                .saturating_add(cfg.timeout_ns)
        };
        let cap = self
            .first_ts
            .saturating_add(cfg.timeout_ns)
            .saturating_add(cfg.settle_ns);
        natural.min(cap)
    }

    /// The check to queue for this journey (`key`) after a sighting, if its deadline is
    /// now earlier than its queued check; it is then recorded as queued.
    ///
    /// A new journey is first checked `settle_ns` after it started (or at its deadline, if
    /// that is earlier). By then an answered ping has usually been seen whole: its deadline
    /// has only moved later, so the check requeues it once. Queued at the request's timeout
    /// instead, the check would go stale when the reply moves the deadline earlier, and
    /// stale checks pile up under a flood until the queue is compacted.
    pub(super) fn next_check(&mut self, cfg: &Config, key: Key) -> Option<Due> {
        let deadline = self.deadline(cfg);
        if deadline >= self.scheduled {
            return None;
        }
        let at = if self.scheduled == UNSCHEDULED {
            deadline.min(self.first_ts.saturating_add(cfg.settle_ns))
        } else {
            deadline
        };
        self.scheduled = at;
        Some(Due {
            at,
            serial: self.serial,
            key,
        })
    }

    fn outcome(&self) -> Outcome {
        match (&self.drop, self.last_reply_ts) {
            (Some(d), Some(r)) if r > d.ts_ns => Outcome::Answered,
            (Some(_), _) => Outcome::Dropped,
            (None, Some(_)) => Outcome::Answered,
            (None, None) => Outcome::Unanswered,
        }
    }

    /// The journey of `key` as it stands: its outcome, round trip, hops in time order and
    /// where it was last seen.
    pub(super) fn into_journey(self, key: &Key) -> Journey {
        let result = self.outcome();
        let rtt_ns = match (result, self.first_request_ts, self.last_reply_ts) {
            (Outcome::Answered, Some(first), Some(last)) => Some(last.saturating_sub(first)),
            _ => None,
        };
        let mut hops = self.hops;
        // Sightings come in time order: the hops are almost always sorted already.
        if !hops.is_sorted_by_key(|h| h.ts_ns) {
            hops.sort_by_key(|h| h.ts_ns);
        }
        let last_seen = match (result, &self.drop) {
            (Outcome::Answered, _) => None,
            (_, Some(d)) => hops.iter().rev().find(|h| h.ts_ns <= d.ts_ns),
            (_, None) => hops.last(),
        }
        .map(PendingHop::to_hop);
        let text = |s: &Option<Arc<str>>| s.as_deref().map(str::to_owned);
        Journey {
            kind: "journey",
            ts_ns: self.first_request_ts.unwrap_or(self.first_ts),
            family: key.family,
            src: JourneyEnd {
                ip: key.requester,
                container: text(&self.src_container),
            },
            dst: JourneyEnd {
                ip: key.responder,
                container: text(&self.dst_container),
            },
            id: key.id,
            seq: key.seq,
            vni: self.vni,
            result,
            rtt_ns,
            hops: hops.iter().map(PendingHop::to_hop).collect(),
            drop: self.drop.as_ref().map(|d| JourneyDrop {
                reason: String::from(&*d.reason),
                location: text(&d.location),
                iface: text(&d.iface),
                rule: text(&d.rule),
                hook: text(&d.hook),
                phase: d.phase,
                host: text(&d.host),
            }),
            last_seen,
        }
    }
}

/// A queued check of a pending journey, at `at` (ordered by `at`, then `serial`). It
/// names its journey, so that the check costs one lookup; it is stale, and skipped, unless
/// the journey is still pending under `serial` with this check as its `scheduled` one.
#[derive(Clone, Copy, Debug)]
pub(super) struct Due {
    pub(super) at: u64,
    pub(super) serial: u64,
    pub(super) key: Key,
}

impl Due {
    pub(super) fn order(&self) -> (u64, u64) {
        (self.at, self.serial)
    }

    /// Whether this is the live check of a pending journey.
    pub(super) fn is_live(&self, journeys: &Map<Key, Pending>) -> bool {
        journeys
            .get(&self.key)
            .is_some_and(|p| p.serial == self.serial && p.scheduled == self.at)
    }
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.order() == other.order()
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        self.order().cmp(&other.order())
    }
}

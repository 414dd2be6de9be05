//! Ping journeys: pairs every echo request with its reply and tells the story of each ping,
//! and reports ARP requests nobody answered.
//!
//! Pure logic: the caller feeds [`Sighting`]s (an echo packet seen at an observation
//! point), [`DropSighting`]s (the kernel dropped one) and [`ArpSighting`]s, all stamped
//! with the kernel's monotonic clock in ns, and calls [`Correlator::poll`] with the current
//! time on the same clock. No I/O, no clock reads.
//!
//! # Journeys
//!
//! A journey is keyed by (family, requester ip, responder ip, id, seq): a request from A to
//! B and the reply from B to A with the same id and seq belong together. It is *finished*
//! (handed out by `poll`):
//!
//! * `settle_ns` after its last sighting once a reply or a drop has been seen, so that the
//!   reply's later hops and stragglers are collected;
//! * `timeout_ns` after the first request sighting when neither was seen (`unanswered`);
//! * never later than `timeout_ns + settle_ns` after its first sighting, so a stream of
//!   duplicates cannot keep it alive;
//! * at once when a sighting of the same key arrives at or after its deadline (the ping is
//!   over; a late reply or a reused seq does not join it), which makes the result
//!   independent of how often `poll` runs;
//! * early, when `max_pending` journeys are pending and a new one starts: the oldest is
//!   finished with what it has (`unanswered` unless a reply or a drop was seen) and
//!   [`Correlator::evicted`] counts it.
//!
//! The result is `answered` when a reply was seen after the last drop (a reply seen only
//! before a drop, e.g. at the responder's veth before the bridge dropped it, did not
//! arrive), `dropped` when a drop was seen otherwise, else `unanswered`. A journey keeps
//! the latest drop. `rtt_ns` (answered only) runs from the first request sighting to the
//! last reply sighting. `hops` lists every observation point in time order; the same
//! (interface, direction, phase) seen again keeps its earliest time; at most [`MAX_HOPS`]
//! points are kept. `last_seen` is, for `dropped`, the last hop at or before the drop and,
//! for `unanswered`, the last hop.
//!
//! **A reply whose request was never seen** (the ping began before observation started,
//! or its request sightings were lost to sampling) is held `settle_ns` in case its request
//! is only delivered late, then discarded: it is not emitted, not counted in
//! [`Correlator::stats`], and counted by [`Correlator::orphan_replies`]. A journey created
//! by a drop is always emitted, even without a request sighting; its `ts_ns` is then its
//! earliest sighting or drop.
//!
//! # Peers
//!
//! Sightings and drops may come from another host's netlab (`watch --peer`), with its name
//! in `host` and its time already on this host's clock. They join journeys like this
//! host's own; their hops and drop keep the host's name, and the same interface on two
//! hosts is two hops. A journey no sighting or drop of this host joined (a ping between
//! two of a peer's own containers) is the peer's: it is not handed out, not counted in
//! the statistics, and counted by [`Correlator::peers_only`]. A journey's `vni` is the
//! VXLAN network identifier of its first sighting inside VXLAN.
//!
//! # ARP
//!
//! A request (sender asks for target) with no reply (sender and target swapped) within
//! `arp_timeout_ns` of the pair's first request yields an [`ArpUnanswered`]; further
//! requests for the pair inside that window coalesce into it (`requests`). One request
//! seen at several points counts once: only sightings at the interface where the pair was
//! first seen are counted. Announcements (sender == target) and probes (sender 0.0.0.0)
//! expect no answer and are ignored. A request sighting not later than a reply already
//! seen for the pair (delivered out of order) is ignored.
//!
//! # JSON
//!
//! [`Journey`], [`ArpUnanswered`] and [`PairStats`] serialize with the field names of the
//! public contract; [`Finished`] serializes as the journey or ARP object itself (each has
//! its own `kind`). Fields marked optional in the contract (`container`, `location`,
//! `iface`, `rule`, `hook`, `who_container`, `network`) are omitted when absent;
//! `rtt_ns`, `drop` and `last_seen` are always present (`null` when absent). All times
//! are kernel monotonic ns; [`write_json`] adds the record's `ts` in RFC 3339 like every
//! other record, [`write_human`] and [`pair_line`] give the human-readable lines.
//! [`write_json`] writes the bytes `serde_json` would write for the derived `Serialize`
//! impls, field by field without serde (it runs for every ping of a flood); the derives
//! remain the reference the tests compare it with.
//!
//! # Memory
//!
//! Pending journeys and pending ARP pairs are each bounded by `max_pending`; the pair
//! statistics by [`MAX_STAT_PAIRS`] (further pairs are added up under `(other)`). Names are
//! interned, so a sighting allocates nothing unless it starts a journey. Finished journeys
//! wait for the next `poll`, which the caller runs regularly.
//!
//! # Where things are
//!
//! - [`Correlator`] (`correlator`): joins sightings into journeys, finishes them on time,
//!   and finds unanswered ARP requests (`correlator/arp`);
//! - `sighting`: what the caller feeds it ([`Sighting`], [`DropSighting`], [`ArpSighting`]);
//! - `record`: what it hands out ([`Finished`], [`Journey`], [`ArpUnanswered`],
//!   [`PairStats`]);
//! - `pending`: a journey still collecting sightings, its deadline and the [`Journey`] it
//!   becomes; `age_queue` keeps pending journeys in creation order for eviction,
//!   `due_queue` their deadline checks in time order, `interner` the shared names,
//!   `stats` the per-pair statistics;
//! - `json` ([`write_json`]) and `human` ([`write_human`], [`pair_line`]) write the records.

use std::collections::{HashMap, HashSet};

pub use crate::model::kind::Family;

mod age_queue;
mod correlator;
mod due_queue;
mod human;
mod interner;
mod json;
mod pending;
mod record;
mod sighting;
mod stats;

#[cfg(test)]
mod fixtures;

pub use correlator::Correlator;
pub use human::{pair_line, write_human};
pub use json::write_json;
pub use record::{
    ArpUnanswered, Finished, Hop, Journey, JourneyDrop, JourneyEnd, Outcome, PairStats, Phase,
};
pub use sighting::{ArpSighting, DropSighting, Sighting};

/// Default [`Config::timeout_ns`]: 5 s.
pub const DEFAULT_TIMEOUT_NS: u64 = 5_000_000_000;
/// Default [`Config::settle_ns`]: 200 ms.
pub const DEFAULT_SETTLE_NS: u64 = 200_000_000;
/// Default [`Config::arp_timeout_ns`]: 1 s.
pub const DEFAULT_ARP_TIMEOUT_NS: u64 = 1_000_000_000;
/// Default [`Config::max_pending`].
pub const DEFAULT_MAX_PENDING: usize = 65_536;
/// Observation points kept per journey; further points are not recorded.
pub const MAX_HOPS: usize = 32;
/// Pairs tracked by [`Correlator::stats`]; journeys of further pairs count under
/// [`OTHER_PAIR`].
pub const MAX_STAT_PAIRS: usize = 4096;
/// The `src` and `dst` of the statistics row that collects pairs beyond [`MAX_STAT_PAIRS`]
/// (not a valid container name).
pub const OTHER_PAIR: &str = "(other)";

/// Stale queue entries (deadline checks, finished journeys in the age queue) tolerated
/// beyond twice the live ones before compaction.
const STALE_SLACK: usize = 1024;

/// Whether a queue of `queued` entries, `live` of them live, holds so many stale ones that
/// it is to be compacted (see [`STALE_SLACK`]).
fn too_stale(queued: usize, live: usize) -> bool {
    queued > live.saturating_mul(2) + STALE_SLACK
}

/// Hash maps and sets keyed by packet fields (addresses, echo ids and sequence numbers)
/// that whoever sends the packets chooses. foldhash is several times faster than std's
/// SipHash on such small keys; each table gets its own random seed, so colliding keys
/// cannot be worked out in advance.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// See [`Map`].
type Set<T> = HashSet<T, foldhash::fast::RandomState>;

/// Timing and bounds of a [`Correlator`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// A request without reply or drop is `unanswered` this long after its first sighting.
    pub timeout_ns: u64,
    /// Once a reply or drop has been seen, the journey finishes this long after its last
    /// sighting.
    pub settle_ns: u64,
    /// An ARP request is unanswered when no reply is seen this long after it.
    pub arp_timeout_ns: u64,
    /// Pending journeys (and, separately, pending ARP pairs) kept at most (at least 1).
    pub max_pending: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout_ns: DEFAULT_TIMEOUT_NS,
            settle_ns: DEFAULT_SETTLE_NS,
            arp_timeout_ns: DEFAULT_ARP_TIMEOUT_NS,
            max_pending: DEFAULT_MAX_PENDING,
        }
    }
}

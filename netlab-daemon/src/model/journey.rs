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

use std::cmp::{Ordering, Reverse};
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::kernel::clock::Clock;
use crate::model::jsonw::Object;
pub use crate::model::kind::Family;
use crate::model::kind::{Direction, Kind};

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

/// Hop capacity reserved for a new journey (a ping through two veths and a bridge).
const HOPS_CAPACITY: usize = 8;
/// Interned names are pruned when the table grows past this size (or twice its live size).
const INTERNER_MIN_LIMIT: usize = 1024;
/// Stale queue entries (deadline checks, finished journeys in the age queue) tolerated
/// beyond twice the live ones before compaction.
const STALE_SLACK: usize = 1024;
/// Most finished records `poll` reserves room for ahead (see `Correlator::last_poll_len`).
const POLL_RESERVE_MAX: usize = 8192;
/// `Pending::scheduled` of a journey with no deadline check queued yet.
const UNSCHEDULED: u64 = u64::MAX;

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

/// One observation of an echo packet at an observation point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sighting<'a> {
    /// Kernel monotonic time of the observation, ns.
    pub ts_ns: u64,
    /// `IcmpEchoRequest`, `IcmpEchoReply`, `Icmp6EchoRequest` or `Icmp6EchoReply`; other
    /// kinds are ignored.
    pub kind: Kind,
    /// Source address of the packet.
    pub src_ip: IpAddr,
    /// Destination address of the packet.
    pub dst_ip: IpAddr,
    /// Echo identifier.
    pub id: u16,
    /// Echo sequence number.
    pub seq: u16,
    /// Interface the packet was seen on.
    pub iface: &'a str,
    /// Its ifindex.
    pub ifindex: u32,
    /// Direction relative to the interface.
    pub direction: Direction,
    /// Container owning the source address, if known.
    pub src_container: Option<&'a str>,
    /// Container owning the destination address, if known.
    pub dst_container: Option<&'a str>,
}

/// The kernel dropped an echo packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropSighting<'a> {
    /// Kernel monotonic time of the drop, ns.
    pub ts_ns: u64,
    /// The dropped packet's kind (echo kinds only; others are ignored).
    pub kind: Kind,
    /// Source address of the dropped packet.
    pub src_ip: IpAddr,
    /// Destination address of the dropped packet.
    pub dst_ip: IpAddr,
    /// Echo identifier.
    pub id: u16,
    /// Echo sequence number.
    pub seq: u16,
    /// The kernel's drop reason.
    pub reason: &'a str,
    /// Where in the kernel it was dropped (function), if known.
    pub location: Option<&'a str>,
    /// Interface it was dropped on, if known.
    pub iface: Option<&'a str>,
    /// Netfilter rule that dropped it, if known.
    pub rule: Option<&'a str>,
    /// Netfilter hook, if known.
    pub hook: Option<&'a str>,
}

/// One observation of an ARP request or reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpSighting<'a> {
    /// Kernel monotonic time of the observation, ns.
    pub ts_ns: u64,
    /// A request (else a reply).
    pub op_request: bool,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
    /// Docker network it was seen on, if known.
    pub network: Option<&'a str>,
    /// Container owning the sender address, if known.
    pub sender_container: Option<&'a str>,
    /// Interface it was seen on.
    pub iface: &'a str,
}

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

/// Something [`Correlator::poll`] or [`Correlator::flush`] finished.
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

/// Appends the JSON line (with its newline) of a finished journey or unanswered ARP
/// request to `out`: its fields, preceded by `ts` (its `ts_ns` as RFC 3339 through
/// `clock`, like every other record).
///
/// The bytes are those `serde_json` writes for the derived `Serialize` impls, written
/// field by field without serde since a ping flood finishes tens of thousands of journeys
/// a second. A field added to the structs must be added here too; the tests compare
/// both. Never fails; the `Result` lets callers treat it like their other writers.
pub fn write_json(f: &Finished, clock: &Clock, out: &mut Vec<u8>) -> serde_json::Result<()> {
    let mut o = Object::begin(out);
    o.ascii("ts", &clock.to_unix(f.ts_ns()).rfc3339());
    match f {
        Finished::Journey(j) => journey_members(&mut o, j),
        Finished::ArpUnanswered(a) => arp_members(&mut o, a),
    }
    o.end();
    out.push(b'\n');
    Ok(())
}

/// The members of a [`Journey`], in the order of its fields.
fn journey_members(o: &mut Object<'_>, j: &Journey) {
    o.str("kind", j.kind);
    o.u64("ts_ns", j.ts_ns);
    o.str("family", j.family.name());
    end_json(o.key("src"), &j.src);
    end_json(o.key("dst"), &j.dst);
    o.u32("id", u32::from(j.id));
    o.u32("seq", u32::from(j.seq));
    o.ascii("result", j.result.name().as_bytes());
    match j.rtt_ns {
        Some(rtt) => o.u64("rtt_ns", rtt),
        None => o.null("rtt_ns"),
    }
    let hops = o.key("hops");
    hops.push(b'[');
    for (i, h) in j.hops.iter().enumerate() {
        if i > 0 {
            hops.push(b',');
        }
        hop_json(hops, h);
    }
    hops.push(b']');
    match &j.drop {
        Some(d) => drop_json(o.key("drop"), d),
        None => o.null("drop"),
    }
    match &j.last_seen {
        Some(h) => hop_json(o.key("last_seen"), h),
        None => o.null("last_seen"),
    }
}

/// The members of an [`ArpUnanswered`], in the order of its fields.
fn arp_members(o: &mut Object<'_>, a: &ArpUnanswered) {
    o.str("kind", a.kind);
    o.u64("ts_ns", a.ts_ns);
    o.ip("who", IpAddr::V4(a.who));
    o.opt_str("who_container", a.who_container.as_deref());
    o.ip("asked_for", IpAddr::V4(a.asked_for));
    o.opt_str("network", a.network.as_deref());
    o.str("iface", &a.iface);
    o.u32("requests", a.requests);
}

/// A [`JourneyEnd`] object.
fn end_json(out: &mut Vec<u8>, e: &JourneyEnd) {
    let mut o = Object::begin(out);
    o.ip("ip", e.ip);
    o.opt_str("container", e.container.as_deref());
    o.end();
}

/// A [`Hop`] object.
fn hop_json(out: &mut Vec<u8>, h: &Hop) {
    let mut o = Object::begin(out);
    o.str("iface", &h.iface);
    o.u32("ifindex", h.ifindex);
    o.ascii("direction", h.direction.name().as_bytes());
    o.u64("ts_ns", h.ts_ns);
    o.ascii("phase", h.phase.name().as_bytes());
    o.end();
}

/// A [`JourneyDrop`] object.
fn drop_json(out: &mut Vec<u8>, d: &JourneyDrop) {
    let mut o = Object::begin(out);
    o.str("reason", &d.reason);
    o.opt_str("location", d.location.as_deref());
    o.opt_str("iface", d.iface.as_deref());
    o.opt_str("rule", d.rule.as_deref());
    o.opt_str("hook", d.hook.as_deref());
    o.ascii("phase", d.phase.name().as_bytes());
    o.end();
}

/// Appends the human-readable line (with its newline) to `out`:
/// `18:25:24.123  alpha → beta  ping id=7 seq=1  answered in 0.412 ms  request: vethA in, vethB out  reply: vethB in, vethA out`.
pub fn write_human(f: &Finished, clock: &Clock, out: &mut String) {
    let _ = write!(out, "{}  ", clock.to_unix(f.ts_ns()).time_of_day());
    match f {
        Finished::Journey(j) => journey_human(j, out),
        Finished::ArpUnanswered(a) => {
            match &a.who_container {
                Some(c) => out.push_str(c),
                None => {
                    let _ = write!(out, "{}", a.who);
                }
            }
            let _ = write!(
                out,
                " asked who has {}: no ARP reply ({} request{}) on {}",
                a.asked_for,
                a.requests,
                if a.requests == 1 { "" } else { "s" },
                a.iface
            );
            if let Some(n) = &a.network {
                let _ = write!(out, " ({n})");
            }
        }
    }
    out.push('\n');
}

fn journey_human(j: &Journey, out: &mut String) {
    let end = |out: &mut String, e: &JourneyEnd| match &e.container {
        Some(c) => out.push_str(c),
        None => {
            let _ = write!(out, "{}", e.ip);
        }
    };
    end(out, &j.src);
    out.push_str(" → ");
    end(out, &j.dst);
    let proto = if j.family == Family::Icmp6 {
        "ping6"
    } else {
        "ping"
    };
    let _ = write!(out, "  {proto} id={} seq={}  ", j.id, j.seq);
    match (j.result, j.rtt_ns) {
        (Outcome::Answered, Some(rtt)) => {
            let _ = write!(out, "answered in {} ms", Millis(rtt));
        }
        (Outcome::Answered, None) => out.push_str("answered"),
        (Outcome::Dropped, _) => out.push_str("DROPPED"),
        (Outcome::Unanswered, _) => out.push_str("unanswered"),
    }
    if let (Outcome::Dropped, Some(d)) = (j.result, &j.drop) {
        let _ = write!(out, " ({}): {}", d.phase.name(), d.reason);
        if let Some(l) = &d.location {
            let _ = write!(out, " at {l}");
        }
        if let Some(i) = &d.iface {
            let _ = write!(out, " on {i}");
        }
        if let Some(h) = &d.hook {
            let _ = write!(out, ", hook {h}");
        }
        if let Some(r) = &d.rule {
            let _ = write!(out, ", rule: {r}");
        }
    }
    if let Some(h) = &j.last_seen {
        let _ = write!(out, ", last seen on {} {}", h.iface, short(h.direction));
    }
    for phase in [Phase::Request, Phase::Reply] {
        let mut hops = j.hops.iter().filter(|h| h.phase == phase).peekable();
        if hops.peek().is_none() {
            continue;
        }
        out.push_str(match phase {
            Phase::Request => "  request: ",
            Phase::Reply => "  reply: ",
        });
        for (i, h) in hops.enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{} {}", h.iface, short(h.direction));
        }
    }
}

fn short(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "in",
        Direction::Egress => "out",
    }
}

/// Nanoseconds shown as milliseconds with three decimals.
struct Millis(u64);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1_000_000, self.0 / 1_000 % 1_000)
    }
}

/// One line of the ping summary:
/// `alpha → beta  sent 4, answered 3, lost 1 (25.0%), rtt min/avg/max 0.100/0.300/0.600 ms`.
pub fn pair_line(p: &PairStats) -> String {
    let permille = p.lost.saturating_mul(1000) / p.sent.max(1);
    let mut s = format!(
        "{} → {}  sent {}, answered {}, lost {} ({}.{}%)",
        p.src,
        p.dst,
        p.sent,
        p.answered,
        p.lost,
        permille / 10,
        permille % 10
    );
    if let (Some(min), Some(avg), Some(max)) = (p.rtt_min_ns, p.rtt_avg_ns, p.rtt_max_ns) {
        let _ = write!(
            s,
            ", rtt min/avg/max {}/{}/{} ms",
            Millis(min),
            Millis(avg),
            Millis(max)
        );
    }
    s
}

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

/// Shared copies of names, so that sightings of known names allocate nothing.
#[derive(Debug, Default)]
struct Interner {
    names: Set<Arc<str>>,
    limit: usize,
}

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.names.get(s) {
            return Arc::clone(a);
        }
        if self.names.len() >= self.limit.max(INTERNER_MIN_LIMIT) {
            // Forget names nothing pending refers to any more.
            self.names.retain(|a| Arc::strong_count(a) > 1);
            self.limit = self.names.len().saturating_mul(2);
        }
        let a: Arc<str> = Arc::from(s);
        self.names.insert(Arc::clone(&a));
        a
    }

    fn get_opt(&mut self, s: Option<&str>) -> Option<Arc<str>> {
        s.map(|s| self.get(s))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    family: Family,
    requester: IpAddr,
    responder: IpAddr,
    id: u16,
    seq: u16,
}

impl Key {
    fn new(family: Family, phase: Phase, src: IpAddr, dst: IpAddr, id: u16, seq: u16) -> Self {
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
    fn of_echo(kind: Kind, src: IpAddr, dst: IpAddr, id: u16, seq: u16) -> Option<(Self, Phase)> {
        let (family, phase) = classify(kind)?;
        Some((Key::new(family, phase, src, dst, id, seq), phase))
    }
}

#[derive(Debug)]
struct PendingHop {
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
        }
    }
}

#[derive(Debug)]
struct PendingDrop {
    ts_ns: u64,
    phase: Phase,
    reason: Arc<str>,
    location: Option<Arc<str>>,
    iface: Option<Arc<str>>,
    rule: Option<Arc<str>>,
    hook: Option<Arc<str>>,
}

#[derive(Debug)]
struct Pending {
    serial: u64,
    /// Time of this journey's live entry in `Correlator::due` (never later than its
    /// deadline), or [`UNSCHEDULED`].
    scheduled: u64,
    src_container: Option<Arc<str>>,
    dst_container: Option<Arc<str>>,
    first_ts: u64,
    last_ts: u64,
    first_request_ts: Option<u64>,
    last_reply_ts: Option<u64>,
    hops: Vec<PendingHop>,
    /// Boxed: few journeys see a drop, and every journey is moved in and out of the map.
    drop: Option<Box<PendingDrop>>,
}

impl Pending {
    fn new(serial: u64, ts_ns: u64) -> Self {
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
            drop: None,
        }
    }

    /// Widens the journey's span to a sighting or drop at `ts_ns`.
    fn touch(&mut self, ts_ns: u64) {
        self.first_ts = self.first_ts.min(ts_ns);
        self.last_ts = self.last_ts.max(ts_ns);
    }

    /// Adds the sighting `s` of the journey's `phase`: its time, the containers of its
    /// ends if not known yet, and its observation point.
    fn see(&mut self, s: &Sighting<'_>, phase: Phase, names: &mut Interner) {
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
        let seen = self.hops.iter().position(|h| {
            h.ifindex == s.ifindex
                && h.direction == s.direction
                && h.phase == phase
                && *h.iface == *s.iface
        });
        if let Some(h) = seen.and_then(|i| self.hops.get_mut(i)) {
            h.ts_ns = h.ts_ns.min(s.ts_ns);
        } else if self.hops.len() < MAX_HOPS {
            self.hops.push(PendingHop {
                iface: names.get(s.iface),
                ifindex: s.ifindex,
                direction: s.direction,
                phase,
                ts_ns: s.ts_ns,
            });
        }
    }

    /// Adds the drop `d` of the journey's `phase`, unless a later drop is already known.
    fn see_drop(&mut self, d: &DropSighting<'_>, phase: Phase, names: &mut Interner) {
        if self.drop.as_ref().is_none_or(|old| d.ts_ns >= old.ts_ns) {
            self.drop = Some(Box::new(PendingDrop {
                ts_ns: d.ts_ns,
                phase,
                reason: names.get(d.reason),
                location: names.get_opt(d.location),
                iface: names.get_opt(d.iface),
                rule: names.get_opt(d.rule),
                hook: names.get_opt(d.hook),
            }));
        }
    }

    fn deadline(&self, cfg: &Config) -> u64 {
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
    fn next_check(&mut self, cfg: &Config, key: Key) -> Option<Due> {
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
    fn into_journey(self, key: &Key) -> Journey {
        let result = self.outcome();
        let rtt_ns = match (result, self.first_request_ts, self.last_reply_ts) {
            (Outcome::Answered, Some(first), Some(last)) => Some(last.saturating_sub(first)),
            _ => None,
        };
        let mut hops = self.hops;
        hops.sort_by_key(|h| h.ts_ns);
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
            }),
            last_seen,
        }
    }
}

/// A queued check of a pending journey, at `at` (ordered by `at`, then `serial`). It
/// names its journey, so that the check costs one lookup; it is stale, and skipped, unless
/// the journey is still pending under `serial` with this check as its `scheduled` one.
#[derive(Clone, Copy, Debug)]
struct Due {
    at: u64,
    serial: u64,
    key: Key,
}

impl Due {
    fn order(&self) -> (u64, u64) {
        (self.at, self.serial)
    }

    /// Whether this is the live check of a pending journey.
    fn is_live(&self, journeys: &Map<Key, Pending>) -> bool {
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

/// Pending journeys in creation order, for eviction. Serials only grow, so the queue stays
/// sorted by serial: a finished journey is found by binary search and leaves a hole, holes
/// at the front are dropped at once and the others once they outnumber the live entries.
/// Cheaper than an ordered map, which allocates and rebalances nodes for every journey.
#[derive(Debug, Default)]
struct AgeQueue {
    /// (serial, key), `None` once finished; the front entry is live.
    entries: VecDeque<(u64, Option<Key>)>,
    live: usize,
}

impl AgeQueue {
    /// Adds a journey with a serial greater than any before.
    fn push(&mut self, serial: u64, key: Key) {
        debug_assert!(self.entries.back().is_none_or(|&(s, _)| s < serial));
        self.entries.push_back((serial, Some(key)));
        self.live += 1;
    }

    /// Forgets the journey with `serial`, if it is here.
    fn remove(&mut self, serial: u64) {
        let Ok(i) = self.entries.binary_search_by_key(&serial, |&(s, _)| s) else {
            return;
        };
        if self.entries[i].1.take().is_none() {
            return;
        }
        self.live -= 1;
        while self.entries.front().is_some_and(|(_, k)| k.is_none()) {
            self.entries.pop_front();
        }
        if too_stale(self.entries.len(), self.live) {
            self.entries.retain(|(_, k)| k.is_some());
        }
    }

    /// The oldest pending journey.
    fn oldest(&self) -> Option<Key> {
        self.entries.front().and_then(|&(_, k)| k)
    }

    /// Pending journeys.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.live
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.live == 0
    }
}

/// (who, asked_for).
type ArpKey = (Ipv4Addr, Ipv4Addr);

#[derive(Debug)]
struct ArpPending {
    serial: u64,
    first_ts: u64,
    deadline: u64,
    who_container: Option<Arc<str>>,
    network: Option<Arc<str>>,
    iface: Arc<str>,
    requests: u32,
}

/// A statistics endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Label {
    Name(Arc<str>),
    Ip(IpAddr),
    Other,
}

impl Label {
    /// The container's name if known, else the address.
    fn new(container: Option<&Arc<str>>, ip: IpAddr) -> Self {
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
struct PairTable {
    pairs: Map<(Label, Label), Acc>,
}

impl PairTable {
    /// Counts a finished journey from `src` to `dst`.
    fn record(&mut self, src: Label, dst: Label, result: Outcome, rtt_ns: Option<u64>) {
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
    fn rows(&self) -> Vec<PairStats> {
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

/// Pairs echo requests with their replies and drops into [`Journey`]s, finds unanswered
/// ARP requests, and keeps per-pair statistics. See the [module docs](self) for the rules.
#[derive(Debug)]
pub struct Correlator {
    config: Config,
    journeys: Map<Key, Pending>,
    /// Pending journeys by creation order (serial), for eviction.
    by_age: AgeQueue,
    /// Checks of pending journeys, earliest first; stale ones are skipped (see [`Due`]).
    due: BinaryHeap<Reverse<Due>>,
    arps: Map<ArpKey, ArpPending>,
    /// (deadline, serial, pair); entries of answered pairs are skipped.
    arp_due: BinaryHeap<Reverse<(u64, u64, ArpKey)>>,
    /// Latest reply time per pair, to ignore request sightings delivered after the reply.
    arp_answered: Map<ArpKey, u64>,
    /// Finished outside `poll` (evicted, closed by a late sighting), in finishing order.
    ready: Vec<Finished>,
    names: Interner,
    stats: PairTable,
    next_serial: u64,
    evicted: u64,
    orphan_replies: u64,
    /// How many the last `poll` returned: the next one reserves room for as many (up to
    /// [`POLL_RESERVE_MAX`]), so that its result (big records, thousands under a flood) is
    /// not grown step by step.
    last_poll_len: usize,
}

impl Correlator {
    /// A correlator whose requests are unanswered after `timeout_ns`, with the default
    /// settings otherwise.
    pub fn with_timeout(timeout_ns: u64) -> Self {
        Self::with_config(Config {
            timeout_ns,
            ..Config::default()
        })
    }

    /// A correlator with the given settings (see [`Config`] for their meaning).
    pub fn new(timeout_ns: u64, settle_ns: u64, arp_timeout_ns: u64, max_pending: usize) -> Self {
        Self::with_config(Config {
            timeout_ns,
            settle_ns,
            arp_timeout_ns,
            max_pending,
        })
    }

    /// A correlator with explicit settings.
    pub fn with_config(config: Config) -> Self {
        Correlator {
            config: Config {
                max_pending: config.max_pending.max(1),
                ..config
            },
            journeys: Map::default(),
            by_age: AgeQueue::default(),
            due: BinaryHeap::new(),
            arps: Map::default(),
            arp_due: BinaryHeap::new(),
            arp_answered: Map::default(),
            ready: Vec::new(),
            names: Interner::default(),
            stats: PairTable::default(),
            next_serial: 0,
            evicted: 0,
            orphan_replies: 0,
            last_poll_len: 0,
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Journeys and ARP pairs finished early because `max_pending` was reached.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Replies discarded because their request was never seen.
    pub fn orphan_replies(&self) -> u64 {
        self.orphan_replies
    }

    /// Journeys and ARP pairs not finished yet.
    pub fn pending(&self) -> usize {
        self.journeys.len() + self.arps.len()
    }

    /// Records an echo request or reply seen at an observation point; other kinds are
    /// ignored.
    pub fn observe(&mut self, s: &Sighting<'_>) {
        let Some((key, phase)) = Key::of_echo(s.kind, s.src_ip, s.dst_ip, s.id, s.seq) else {
            return;
        };
        self.update(key, s.ts_ns, |p, names| p.see(s, phase, names));
    }

    /// Records a kernel drop of an echo request or reply, starting its journey if it is
    /// not known; other kinds are ignored.
    pub fn observe_drop(&mut self, d: &DropSighting<'_>) {
        let Some((key, phase)) = Key::of_echo(d.kind, d.src_ip, d.dst_ip, d.id, d.seq) else {
            return;
        };
        self.update(key, d.ts_ns, |p, names| p.see_drop(d, phase, names));
    }

    /// Records an ARP request or reply.
    pub fn observe_arp(&mut self, a: &ArpSighting<'_>) {
        if a.op_request {
            self.arp_request(a);
        } else {
            self.arp_reply(a);
        }
    }

    /// Finishes what is due at `now_ns` (kernel monotonic ns, after the sightings up to
    /// then were observed), in order of finishing; also returns what finished early since
    /// the last call.
    pub fn poll(&mut self, now_ns: u64) -> Vec<Finished> {
        let mut out = std::mem::take(&mut self.ready);
        out.reserve(self.last_poll_len.min(POLL_RESERVE_MAX));
        loop {
            let journey = self.due.peek().map(|Reverse(d)| d.order());
            let arp = self.arp_due.peek().map(|Reverse((d, s, _))| (*d, *s));
            let take_arp = match (journey, arp) {
                (None, None) => break,
                (Some(j), Some(a)) => a < j,
                (None, Some(_)) => true,
                (Some(_), None) => false,
            };
            if take_arp {
                let Some(&Reverse((deadline, serial, pair))) = self.arp_due.peek() else {
                    break;
                };
                if deadline > now_ns {
                    break;
                }
                self.arp_due.pop();
                if self.arps.get(&pair).is_some_and(|p| p.serial == serial) {
                    out.extend(self.finish_arp(pair));
                }
            } else {
                let Some(&Reverse(due)) = self.due.peek() else {
                    break;
                };
                if due.at > now_ns {
                    break;
                }
                self.due.pop();
                self.expire_journey(due, &mut out);
            }
        }
        let keep = self.config.arp_timeout_ns;
        self.arp_answered
            .retain(|_, t| t.saturating_add(keep) > now_ns);
        self.last_poll_len = out.len();
        out
    }

    /// Finishes everything pending (at exit), in deadline order after what finished early;
    /// journeys without reply or drop become `unanswered`.
    pub fn flush(&mut self) -> Vec<Finished> {
        enum Item {
            Journey(Key),
            Arp(ArpKey),
        }
        let mut out = std::mem::take(&mut self.ready);
        let cfg = self.config;
        let mut rest: Vec<(u64, u64, Item)> = self
            .journeys
            .iter()
            .map(|(k, p)| (p.deadline(&cfg), p.serial, Item::Journey(*k)))
            .chain(
                self.arps
                    .iter()
                    .map(|(k, p)| (p.deadline, p.serial, Item::Arp(*k))),
            )
            .collect();
        rest.sort_unstable_by_key(|(d, s, _)| (*d, *s));
        for (_, _, item) in rest {
            let f = match item {
                Item::Journey(k) => self.finish_journey(&k),
                Item::Arp(k) => self.finish_arp(k),
            };
            out.extend(f);
        }
        self.due.clear();
        self.arp_due.clear();
        self.arp_answered.clear();
        out
    }

    /// Statistics of the finished journeys per (requester, responder), ordered by names.
    pub fn stats(&self) -> Vec<PairStats> {
        self.stats.rows()
    }

    /// Applies a sighting or drop at `ts_ns` to the journey of `key`: the open one, unless
    /// its deadline has passed, else a new one (see [`Correlator::start`]). Then schedules
    /// its check.
    fn update(&mut self, key: Key, ts_ns: u64, see: impl FnOnce(&mut Pending, &mut Interner)) {
        let cfg = self.config;
        let p = match self.journeys.get_mut(&key) {
            Some(p) if ts_ns < p.deadline(&cfg) => p,
            _ => {
                let fresh = self.start(key, ts_ns);
                self.journeys.entry(key).insert_entry(fresh).into_mut()
            }
        };
        p.touch(ts_ns);
        see(p, &mut self.names);
        if let Some(due) = p.next_check(&self.config, key) {
            self.queue(due);
        }
    }

    fn serial(&mut self) -> u64 {
        let s = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        s
    }

    /// A new journey for `key` starting at `ts_ns`, for the caller to insert (no journey
    /// for it is open at that time): makes room for it by finishing a pending one of the
    /// same key whose deadline has passed and, when `max_pending` are pending, the oldest.
    fn start(&mut self, key: Key, ts_ns: u64) -> Pending {
        if self.journeys.contains_key(&key) {
            let f = self.finish_journey(&key);
            self.ready.extend(f);
        }
        if self.journeys.len() >= self.config.max_pending {
            if let Some(oldest) = self.by_age.oldest() {
                let f = self.finish_journey(&oldest);
                self.ready.extend(f);
                self.evicted += 1;
            }
        }
        let serial = self.serial();
        self.by_age.push(serial, key);
        Pending::new(serial, ts_ns)
    }

    /// Queues a journey's check; drops the stale checks (of journeys finished early or
    /// whose deadline moved earlier) once they outnumber the live ones, so that the queue
    /// stays bounded.
    fn queue(&mut self, due: Due) {
        self.due.push(Reverse(due));
        if too_stale(self.due.len(), self.journeys.len()) {
            let journeys = &self.journeys;
            self.due.retain(|Reverse(d)| d.is_live(journeys));
        }
    }

    /// Handles a check that came due: finishes the journey when its deadline is reached,
    /// checks it again at its deadline when that has moved later; skips a stale check.
    fn expire_journey(&mut self, due: Due, out: &mut Vec<Finished>) {
        let Entry::Occupied(mut e) = self.journeys.entry(due.key) else {
            return; // stale
        };
        let p = e.get_mut();
        if p.serial != due.serial || p.scheduled != due.at {
            return; // stale
        }
        let deadline = p.deadline(&self.config);
        if deadline > due.at {
            p.scheduled = deadline;
            self.due.push(Reverse(Due {
                at: deadline,
                ..due
            }));
            return;
        }
        let p = e.remove();
        out.extend(self.finish(&due.key, p));
    }

    /// Removes a pending journey and builds its output; `None` for an orphan reply.
    fn finish_journey(&mut self, key: &Key) -> Option<Finished> {
        let p = self.journeys.remove(key)?;
        self.finish(key, p)
    }

    /// Builds the output of a pending journey just removed from `journeys`; `None` for an
    /// orphan reply.
    fn finish(&mut self, key: &Key, p: Pending) -> Option<Finished> {
        self.by_age.remove(p.serial);
        if p.first_request_ts.is_none() && p.drop.is_none() {
            self.orphan_replies += 1;
            return None;
        }
        let src = Label::new(p.src_container.as_ref(), key.requester);
        let dst = Label::new(p.dst_container.as_ref(), key.responder);
        let journey = p.into_journey(key);
        self.stats.record(src, dst, journey.result, journey.rtt_ns);
        Some(Finished::Journey(journey))
    }

    fn arp_request(&mut self, a: &ArpSighting<'_>) {
        if a.sender_ip == a.target_ip || a.sender_ip.is_unspecified() {
            return; // announcement or probe: no answer expected
        }
        let pair = (a.sender_ip, a.target_ip);
        if self.arp_answered.get(&pair).is_some_and(|&t| a.ts_ns <= t) {
            return; // delivered after its reply
        }
        if let Some(p) = self.arps.get_mut(&pair) {
            if a.ts_ns < p.deadline {
                if *p.iface == *a.iface {
                    p.requests = p.requests.saturating_add(1);
                    p.first_ts = p.first_ts.min(a.ts_ns);
                }
                if p.who_container.is_none() {
                    p.who_container = self.names.get_opt(a.sender_container);
                }
                if p.network.is_none() {
                    p.network = self.names.get_opt(a.network);
                }
                return;
            }
            let f = self.finish_arp(pair);
            self.ready.extend(f);
        }
        if self.arps.len() >= self.config.max_pending {
            while let Some(Reverse((_, serial, oldest))) = self.arp_due.pop() {
                if self.arps.get(&oldest).is_some_and(|p| p.serial == serial) {
                    let f = self.finish_arp(oldest);
                    self.ready.extend(f);
                    self.evicted += 1;
                    break;
                }
            }
        }
        let serial = self.serial();
        let deadline = a.ts_ns.saturating_add(self.config.arp_timeout_ns);
        let names = &mut self.names;
        self.arps.insert(
            pair,
            ArpPending {
                serial,
                first_ts: a.ts_ns,
                deadline,
                who_container: names.get_opt(a.sender_container),
                network: names.get_opt(a.network),
                iface: names.get(a.iface),
                requests: 1,
            },
        );
        self.arp_due.push(Reverse((deadline, serial, pair)));
        if too_stale(self.arp_due.len(), self.arps.len()) {
            let arps = &self.arps;
            self.arp_due.retain(|Reverse((_, serial, pair))| {
                arps.get(pair).is_some_and(|p| p.serial == *serial)
            });
        }
    }

    fn arp_reply(&mut self, a: &ArpSighting<'_>) {
        // The reply's target asked for its sender.
        let pair = (a.target_ip, a.sender_ip);
        if let Some(p) = self.arps.get(&pair) {
            if a.ts_ns < p.deadline {
                self.arps.remove(&pair);
            } else {
                let f = self.finish_arp(pair);
                self.ready.extend(f);
            }
        }
        let cap = self.config.max_pending;
        let known = self.arp_answered.len() < cap || self.arp_answered.contains_key(&pair);
        if known {
            let t = self.arp_answered.entry(pair).or_insert(a.ts_ns);
            *t = (*t).max(a.ts_ns);
        }
    }

    fn finish_arp(&mut self, pair: ArpKey) -> Option<Finished> {
        let p = self.arps.remove(&pair)?;
        Some(Finished::ArpUnanswered(ArpUnanswered {
            kind: "arp-unanswered",
            ts_ns: p.first_ts,
            who: pair.0,
            who_container: p.who_container.as_deref().map(str::to_owned),
            asked_for: pair.1,
            network: p.network.as_deref().map(str::to_owned),
            iface: String::from(&*p.iface),
            requests: p.requests,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const TIMEOUT: u64 = 5_000 * MS;
    const SETTLE: u64 = 200 * MS;
    const ARP_TIMEOUT: u64 = 1_000 * MS;

    const A: &str = "172.20.0.2";
    const B: &str = "172.20.0.3";
    const VETH_A: (&str, u32) = ("vethA", 10);
    const VETH_B: (&str, u32) = ("vethB", 11);
    const BRIDGE: (&str, u32) = ("br-net", 3);

    use Direction::{Egress, Ingress};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().expect("ipv4")
    }

    fn correlator() -> Correlator {
        Correlator::with_config(Config {
            timeout_ns: TIMEOUT,
            settle_ns: SETTLE,
            arp_timeout_ns: ARP_TIMEOUT,
            max_pending: DEFAULT_MAX_PENDING,
        })
    }

    /// An IPv4 echo between A ("alpha") and B ("beta"), id 7.
    fn echo(
        ts_ns: u64,
        phase: Phase,
        seq: u16,
        at: (&'static str, u32),
        direction: Direction,
    ) -> Sighting<'static> {
        let (kind, src, dst, sc, dc) = match phase {
            Phase::Request => (Kind::IcmpEchoRequest, A, B, "alpha", "beta"),
            Phase::Reply => (Kind::IcmpEchoReply, B, A, "beta", "alpha"),
        };
        Sighting {
            ts_ns,
            kind,
            src_ip: ip(src),
            dst_ip: ip(dst),
            id: 7,
            seq,
            iface: at.0,
            ifindex: at.1,
            direction,
            src_container: Some(sc),
            dst_container: Some(dc),
        }
    }

    fn req(ts: u64, seq: u16, at: (&'static str, u32), dir: Direction) -> Sighting<'static> {
        echo(ts, Phase::Request, seq, at, dir)
    }

    fn rep(ts: u64, seq: u16, at: (&'static str, u32), dir: Direction) -> Sighting<'static> {
        echo(ts, Phase::Reply, seq, at, dir)
    }

    /// The four sightings of a complete ping `seq` starting at `t`, answered after `rtt`.
    fn ping(t: u64, seq: u16, rtt: u64) -> [Sighting<'static>; 4] {
        [
            req(t, seq, VETH_A, Ingress),
            req(t + rtt / 4, seq, VETH_B, Egress),
            rep(t + rtt / 2, seq, VETH_B, Ingress),
            rep(t + rtt, seq, VETH_A, Egress),
        ]
    }

    fn drop_of(ts_ns: u64, phase: Phase, seq: u16) -> DropSighting<'static> {
        let (kind, src, dst) = match phase {
            Phase::Request => (Kind::IcmpEchoRequest, A, B),
            Phase::Reply => (Kind::IcmpEchoReply, B, A),
        };
        DropSighting {
            ts_ns,
            kind,
            src_ip: ip(src),
            dst_ip: ip(dst),
            id: 7,
            seq,
            reason: "NETFILTER_DROP",
            location: Some("nf_hook_slow"),
            iface: Some("br-net"),
            rule: Some("filter FORWARD DROP"),
            hook: Some("forward"),
        }
    }

    fn arp(
        ts_ns: u64,
        request: bool,
        sender: &str,
        target: &str,
        iface: &'static str,
    ) -> ArpSighting<'static> {
        ArpSighting {
            ts_ns,
            op_request: request,
            sender_ip: v4(sender),
            target_ip: v4(target),
            network: Some("devnet"),
            sender_container: Some(if request { "alpha" } else { "beta" }),
            iface,
        }
    }

    fn journeys(f: Vec<Finished>) -> Vec<Journey> {
        f.into_iter()
            .map(|f| match f {
                Finished::Journey(j) => j,
                other => panic!("expected a journey, got {other:?}"),
            })
            .collect()
    }

    fn one_journey(f: Vec<Finished>) -> Journey {
        let mut j = journeys(f);
        assert_eq!(j.len(), 1, "{j:?}");
        j.remove(0)
    }

    fn hop(at: (&str, u32), direction: Direction, ts_ns: u64, phase: Phase) -> Hop {
        Hop {
            iface: at.0.to_owned(),
            ifindex: at.1,
            direction,
            ts_ns,
            phase,
        }
    }

    #[test]
    fn complete_ping_through_four_points() {
        let mut c = correlator();
        let t = 1_000 * MS;
        for s in ping(t, 1, 4 * MS) {
            c.observe(&s);
        }
        let last = t + 4 * MS;
        assert!(
            c.poll(last + SETTLE - 1).is_empty(),
            "reply hops still settling"
        );
        let j = one_journey(c.poll(last + SETTLE));
        assert_eq!(j.kind, "journey");
        assert_eq!(j.result, Outcome::Answered);
        assert_eq!(j.ts_ns, t);
        assert_eq!(j.rtt_ns, Some(4 * MS));
        assert_eq!(j.family, Family::Icmp);
        assert_eq!((j.id, j.seq), (7, 1));
        assert_eq!(j.src.ip, ip(A));
        assert_eq!(j.src.container.as_deref(), Some("alpha"));
        assert_eq!(j.dst.ip, ip(B));
        assert_eq!(j.dst.container.as_deref(), Some("beta"));
        assert_eq!(
            j.hops,
            vec![
                hop(VETH_A, Ingress, t, Phase::Request),
                hop(VETH_B, Egress, t + MS, Phase::Request),
                hop(VETH_B, Ingress, t + 2 * MS, Phase::Reply),
                hop(VETH_A, Egress, t + 4 * MS, Phase::Reply),
            ]
        );
        assert_eq!(j.drop, None);
        assert_eq!(j.last_seen, None);
        assert_eq!(c.pending(), 0);
        assert!(c.poll(u64::MAX).is_empty());
    }

    #[test]
    fn journey_json_contract() {
        let mut c = correlator();
        for s in ping(1_000, 1, 400) {
            c.observe(&s);
        }
        let v = serde_json::to_value(c.flush()).expect("json");
        let j = &v[0];
        assert_eq!(j["kind"], "journey");
        assert_eq!(j["ts_ns"], 1_000);
        assert_eq!(j["family"], "icmp");
        assert_eq!(j["src"]["ip"], A);
        assert_eq!(j["src"]["container"], "alpha");
        assert_eq!(j["dst"]["ip"], B);
        assert_eq!(j["id"], 7);
        assert_eq!(j["seq"], 1);
        assert_eq!(j["result"], "answered");
        assert_eq!(j["rtt_ns"], 400);
        assert_eq!(j["hops"][0]["iface"], "vethA");
        assert_eq!(j["hops"][0]["ifindex"], 10);
        assert_eq!(j["hops"][0]["direction"], "ingress");
        assert_eq!(j["hops"][0]["ts_ns"], 1_000);
        assert_eq!(j["hops"][0]["phase"], "request");
        assert_eq!(j["hops"][3]["phase"], "reply");
        assert!(j["drop"].is_null());
        assert!(j["last_seen"].is_null());

        // Optional sub-fields are omitted, the journey's own options are null.
        let mut c = correlator();
        let mut s = req(5, 2, VETH_A, Egress);
        s.src_container = None;
        s.dst_container = None;
        c.observe(&s);
        let mut d = drop_of(9, Phase::Request, 2);
        d.location = None;
        d.rule = None;
        c.observe_drop(&d);
        let v = serde_json::to_value(c.flush()).expect("json");
        let j = &v[0];
        assert_eq!(j["result"], "dropped");
        assert!(j["rtt_ns"].is_null());
        assert!(j["src"].get("container").is_none());
        assert_eq!(j["drop"]["reason"], "NETFILTER_DROP");
        assert_eq!(j["drop"]["phase"], "request");
        assert_eq!(j["drop"]["iface"], "br-net");
        assert_eq!(j["drop"]["hook"], "forward");
        assert!(j["drop"].get("location").is_none());
        assert!(j["drop"].get("rule").is_none());
        assert_eq!(j["last_seen"]["iface"], "vethA");
        assert_eq!(j["last_seen"]["direction"], "egress");
    }

    #[test]
    fn request_dropped_at_the_bridge() {
        let mut c = correlator();
        let t = 50 * MS;
        c.observe(&req(t, 1, VETH_A, Ingress));
        c.observe(&req(t + 10, 1, BRIDGE, Ingress));
        c.observe_drop(&drop_of(t + 20, Phase::Request, 1));
        // A drop finishes the journey settle_ns after it, not at the timeout.
        assert!(c.poll(t + 20 + SETTLE - 1).is_empty());
        let j = one_journey(c.poll(t + 20 + SETTLE));
        assert_eq!(j.result, Outcome::Dropped);
        assert_eq!(j.rtt_ns, None);
        assert_eq!(j.ts_ns, t);
        let d = j.drop.expect("drop joined");
        assert_eq!(d.reason, "NETFILTER_DROP");
        assert_eq!(d.location.as_deref(), Some("nf_hook_slow"));
        assert_eq!(d.iface.as_deref(), Some("br-net"));
        assert_eq!(d.rule.as_deref(), Some("filter FORWARD DROP"));
        assert_eq!(d.hook.as_deref(), Some("forward"));
        assert_eq!(d.phase, Phase::Request);
        assert_eq!(
            j.last_seen,
            Some(hop(BRIDGE, Ingress, t + 10, Phase::Request))
        );
        assert_eq!(j.hops.len(), 2);
    }

    #[test]
    fn drop_stragglers_and_last_seen_before_the_drop() {
        let mut c = correlator();
        let t = 1_000;
        c.observe(&req(t, 1, VETH_A, Ingress));
        c.observe(&req(t + 100, 1, VETH_B, Egress));
        c.observe(&rep(t + 200, 1, VETH_B, Ingress));
        c.observe_drop(&drop_of(t + 300, Phase::Reply, 1));
        // A straggler sighting after the drop extends the settling and joins.
        c.observe(&req(t + 50, 1, BRIDGE, Ingress));
        let j = one_journey(c.poll(t + 300 + SETTLE));
        assert_eq!(
            j.result,
            Outcome::Dropped,
            "the reply never got past the drop"
        );
        assert_eq!(j.drop.as_ref().map(|d| d.phase), Some(Phase::Reply));
        assert_eq!(j.hops.len(), 4);
        assert_eq!(j.hops[1], hop(BRIDGE, Ingress, t + 50, Phase::Request));
        assert_eq!(
            j.last_seen,
            Some(hop(VETH_B, Ingress, t + 200, Phase::Reply))
        );
    }

    #[test]
    fn reply_after_a_dropped_copy_is_answered() {
        let mut c = correlator();
        c.observe(&req(1_000, 1, VETH_A, Ingress));
        c.observe_drop(&drop_of(1_100, Phase::Request, 1));
        c.observe(&rep(1_500, 1, VETH_A, Egress));
        let j = one_journey(c.flush());
        assert_eq!(j.result, Outcome::Answered);
        assert_eq!(j.rtt_ns, Some(500));
        assert!(j.drop.is_some(), "the dropped copy is still reported");
        assert_eq!(j.last_seen, None);
    }

    #[test]
    fn drop_of_an_unknown_journey_starts_one() {
        let mut c = correlator();
        c.observe_drop(&drop_of(7_000, Phase::Request, 9));
        assert_eq!(c.pending(), 1);
        let j = one_journey(c.poll(7_000 + SETTLE));
        assert_eq!(j.result, Outcome::Dropped);
        assert_eq!(j.ts_ns, 7_000);
        assert_eq!(j.seq, 9);
        assert_eq!(j.src.ip, ip(A));
        assert!(j.hops.is_empty());
        assert_eq!(j.last_seen, None);
    }

    #[test]
    fn unanswered_after_timeout_not_before() {
        let mut c = correlator();
        let t = 3_000 * MS;
        c.observe(&req(t, 4, VETH_A, Ingress));
        c.observe(&req(t + 30, 4, BRIDGE, Ingress));
        c.observe(&req(t + 60, 4, VETH_B, Egress));
        assert!(c.poll(t + SETTLE).is_empty());
        assert!(c.poll(t + TIMEOUT - 1).is_empty());
        assert_eq!(c.pending(), 1);
        let j = one_journey(c.poll(t + TIMEOUT));
        assert_eq!(j.result, Outcome::Unanswered);
        assert_eq!(j.rtt_ns, None);
        assert_eq!(j.drop, None);
        assert_eq!(
            j.last_seen,
            Some(hop(VETH_B, Egress, t + 60, Phase::Request))
        );
        assert!(c.poll(t + 2 * TIMEOUT).is_empty());
    }

    #[test]
    fn icmp6_ping() {
        let mut c = correlator();
        let (a, b) = (ip("fd00::2"), ip("fd00::3"));
        let base = Sighting {
            ts_ns: 100,
            kind: Kind::Icmp6EchoRequest,
            src_ip: a,
            dst_ip: b,
            id: 3,
            seq: 1,
            iface: "vethA",
            ifindex: 10,
            direction: Ingress,
            src_container: Some("alpha"),
            dst_container: Some("beta"),
        };
        c.observe(&base);
        c.observe(&Sighting {
            ts_ns: 900,
            kind: Kind::Icmp6EchoReply,
            src_ip: b,
            dst_ip: a,
            direction: Egress,
            src_container: Some("beta"),
            dst_container: Some("alpha"),
            ..base
        });
        // An IPv4 reply with the same id/seq is another family: an orphan.
        c.observe(&rep(500, 1, VETH_A, Egress));
        let j = one_journey(c.flush());
        assert_eq!(j.family, Family::Icmp6);
        assert_eq!(j.result, Outcome::Answered);
        assert_eq!(j.rtt_ns, Some(800));
        assert_eq!((j.src.ip, j.dst.ip), (a, b));
        let v = serde_json::to_value(&j).expect("json");
        assert_eq!(v["family"], "icmp6");
        assert_eq!(v["src"]["ip"], "fd00::2");
        assert_eq!(c.orphan_replies(), 1);
    }

    #[test]
    fn duplicate_sightings_keep_one_hop_each() {
        let mut c = correlator();
        c.observe(&req(1_000, 1, VETH_A, Ingress));
        c.observe(&req(1_000, 1, VETH_A, Ingress));
        c.observe(&req(1_300, 1, VETH_A, Ingress)); // retransmit of the same seq
        c.observe(&req(1_100, 1, VETH_A, Egress)); // same iface, other direction
        c.observe(&rep(2_000, 1, VETH_A, Ingress)); // same iface and direction, other phase
        c.observe(&rep(2_500, 1, VETH_A, Ingress));
        let j = one_journey(c.flush());
        assert_eq!(
            j.hops,
            vec![
                hop(VETH_A, Ingress, 1_000, Phase::Request),
                hop(VETH_A, Egress, 1_100, Phase::Request),
                hop(VETH_A, Ingress, 2_000, Phase::Reply),
            ]
        );
        // rtt is still first request to last reply sighting.
        assert_eq!(j.rtt_ns, Some(1_500));
    }

    #[test]
    fn out_of_order_timestamps() {
        let mut c = correlator();
        let t = 10 * MS;
        let [a, b, r1, r2] = ping(t, 1, 1_000);
        // Delivered reply first, then the later request point, then the first.
        for s in [r2, r1, b, a] {
            c.observe(&s);
        }
        // A duplicate delivered late with an earlier time keeps the earliest.
        c.observe(&req(t - 5, 1, VETH_B, Egress));
        assert!(c.poll(t + 1_000 + SETTLE - 1).is_empty());
        let j = one_journey(c.poll(t + 1_000 + SETTLE));
        assert_eq!(j.result, Outcome::Answered);
        assert_eq!(j.ts_ns, t - 5);
        assert_eq!(j.rtt_ns, Some(1_005));
        let order: Vec<_> = j.hops.iter().map(|h| (h.iface.as_str(), h.ts_ns)).collect();
        assert_eq!(
            order,
            vec![
                ("vethB", t - 5),
                ("vethA", t),
                ("vethB", t + 500),
                ("vethA", t + 1_000)
            ]
        );
        assert_eq!(c.orphan_replies(), 0);
    }

    #[test]
    fn interleaved_pings_with_different_seq() {
        let mut c = correlator();
        let [a1, b1, r1, s1] = ping(1_000, 1, 800);
        let [a2, b2, r2, s2] = ping(1_200, 2, 200);
        for s in [a1, a2, b1, b2, r2, r1, s2, s1] {
            c.observe(&s);
        }
        // A third, different id, never answered.
        let mut other = req(1_300, 1, VETH_A, Ingress);
        other.id = 8;
        c.observe(&other);
        assert_eq!(c.pending(), 3);
        let done = journeys(c.poll(1_800 + SETTLE));
        // Seq 2 settles first (its last reply was earlier).
        assert_eq!(done.iter().map(|j| j.seq).collect::<Vec<_>>(), vec![2, 1]);
        assert_eq!(done[0].rtt_ns, Some(200));
        assert_eq!(done[1].rtt_ns, Some(800));
        assert!(done.iter().all(|j| j.hops.len() == 4 && j.id == 7));
        let j = one_journey(c.poll(1_300 + TIMEOUT));
        assert_eq!((j.id, j.result), (8, Outcome::Unanswered));
    }

    #[test]
    fn reply_without_request_is_discarded() {
        let mut c = correlator();
        c.observe(&rep(1_000, 5, VETH_B, Ingress));
        c.observe(&rep(1_100, 5, VETH_A, Egress));
        assert_eq!(c.pending(), 1, "held in case the request is delivered late");
        assert!(c.poll(1_100 + SETTLE).is_empty());
        assert_eq!(c.orphan_replies(), 1);
        assert_eq!(c.pending(), 0);
        assert!(c.stats().is_empty());
    }

    #[test]
    fn late_reply_does_not_join_a_timed_out_journey() {
        let mut c = correlator();
        c.observe(&req(0, 1, VETH_A, Ingress));
        // No poll in between: the reply after the timeout still does not join.
        c.observe(&rep(TIMEOUT + 1, 1, VETH_A, Egress));
        let j = one_journey(c.poll(TIMEOUT + 1));
        assert_eq!(j.result, Outcome::Unanswered);
        assert!(c.poll(TIMEOUT + 1 + SETTLE).is_empty());
        assert_eq!(c.orphan_replies(), 1);
    }

    #[test]
    fn reused_seq_after_the_journey_ended_starts_a_new_one() {
        let mut c = correlator();
        for s in ping(0, 1, 100) {
            c.observe(&s);
        }
        for s in ping(10 * SETTLE, 1, 300) {
            c.observe(&s);
        }
        let done = journeys(c.poll(u64::MAX));
        assert_eq!(done.len(), 2);
        assert_eq!(done[0].rtt_ns, Some(100));
        assert_eq!(done[1].rtt_ns, Some(300));
        assert_eq!(done[1].ts_ns, 10 * SETTLE);
    }

    #[test]
    fn duplicates_cannot_keep_a_journey_alive() {
        let mut c = correlator();
        c.observe(&req(0, 1, VETH_A, Ingress));
        let (mut t, mut finished_at) = (0, None);
        while t < 2 * TIMEOUT {
            t += SETTLE / 2;
            c.observe(&rep(t, 1, VETH_A, Egress));
            let done = journeys(c.poll(t));
            if !done.is_empty() {
                assert_eq!(done.len(), 1);
                assert_eq!(done[0].result, Outcome::Answered);
                assert!(finished_at.is_none(), "the later replies are orphans");
                finished_at = Some(t);
            }
        }
        assert_eq!(finished_at, Some(TIMEOUT + SETTLE));
        // The replies after it form an orphan, discarded.
        assert!(c.flush().is_empty());
        assert_eq!(c.orphan_replies(), 1);
    }

    #[test]
    fn hops_are_bounded() {
        let mut c = correlator();
        for i in 0..(MAX_HOPS as u32 + 10) {
            let mut s = req(u64::from(i), 1, VETH_A, Ingress);
            s.ifindex = 100 + i;
            c.observe(&s);
        }
        let j = one_journey(c.flush());
        assert_eq!(j.hops.len(), MAX_HOPS);
    }

    #[test]
    fn arp_answered_is_silent() {
        let mut c = correlator();
        let (a, b) = (A, B);
        c.observe_arp(&arp(1_000, true, a, b, "vethA"));
        c.observe_arp(&arp(1_010, true, a, b, "br-net"));
        c.observe_arp(&arp(1_020, true, a, b, "vethB"));
        c.observe_arp(&arp(1_100, false, b, a, "vethB"));
        c.observe_arp(&arp(1_110, false, b, a, "vethA"));
        // A request sighting delivered after its reply is not a new question.
        c.observe_arp(&arp(1_030, true, a, b, "vethC"));
        assert_eq!(c.pending(), 0);
        assert!(c.poll(10 * ARP_TIMEOUT).is_empty());
        // Announcements and probes expect no answer.
        c.observe_arp(&arp(20 * ARP_TIMEOUT, true, a, a, "vethA"));
        c.observe_arp(&arp(20 * ARP_TIMEOUT, true, "0.0.0.0", b, "vethA"));
        assert!(c.poll(30 * ARP_TIMEOUT).is_empty());
    }

    #[test]
    fn arp_unanswered_coalesces_requests() {
        let mut c = correlator();
        let t = 5 * ARP_TIMEOUT;
        let dead = "172.20.0.99";
        for dt in [0, 300 * MS, 600 * MS] {
            c.observe_arp(&arp(t + dt, true, A, dead, "vethA"));
            c.observe_arp(&arp(t + dt + 10, true, A, dead, "br-net"));
        }
        // A reply to someone else does not answer it.
        c.observe_arp(&arp(t + 700 * MS, false, dead, "172.20.0.50", "br-net"));
        assert!(c.poll(t + ARP_TIMEOUT - 1).is_empty());
        let done = c.poll(t + ARP_TIMEOUT);
        assert_eq!(done.len(), 1);
        let Finished::ArpUnanswered(u) = &done[0] else {
            panic!("expected arp, got {done:?}");
        };
        assert_eq!(u.kind, "arp-unanswered");
        assert_eq!(u.ts_ns, t);
        assert_eq!(u.who, v4(A));
        assert_eq!(u.who_container.as_deref(), Some("alpha"));
        assert_eq!(u.asked_for, v4(dead));
        assert_eq!(u.network.as_deref(), Some("devnet"));
        assert_eq!(u.iface, "vethA");
        assert_eq!(u.requests, 3, "one per request, not per observation point");
        let v = serde_json::to_value(&done[0]).expect("json");
        assert_eq!(v["kind"], "arp-unanswered");
        assert_eq!(v["who"], A);
        assert_eq!(v["asked_for"], dead);
        assert_eq!(v["requests"], 3);

        // The next window starts a new report.
        c.observe_arp(&arp(t + ARP_TIMEOUT + 1, true, A, dead, "vethA"));
        let done = c.poll(t + 2 * ARP_TIMEOUT + 1);
        assert!(matches!(&done[..], [Finished::ArpUnanswered(u)] if u.requests == 1));
    }

    #[test]
    fn arp_reply_after_the_window_is_too_late() {
        let mut c = correlator();
        c.observe_arp(&arp(0, true, A, B, "vethA"));
        c.observe_arp(&arp(ARP_TIMEOUT, false, B, A, "vethA"));
        let done = c.poll(ARP_TIMEOUT);
        assert!(matches!(&done[..], [Finished::ArpUnanswered(u)] if u.requests == 1));
    }

    #[test]
    fn eviction_at_max_pending() {
        let mut c = Correlator::with_config(Config {
            max_pending: 2,
            ..Config::default()
        });
        for seq in 1..=3 {
            c.observe(&req(u64::from(seq), seq, VETH_A, Ingress));
        }
        // Sightings of pending journeys evict nothing.
        c.observe(&req(10, 3, VETH_B, Egress));
        assert_eq!(c.evicted(), 1);
        assert_eq!(c.pending(), 2);
        let j = one_journey(c.poll(0));
        assert_eq!((j.seq, j.result), (1, Outcome::Unanswered));
        for seq in 4..=1000 {
            c.observe(&req(u64::from(seq), seq, VETH_A, Ingress));
        }
        assert_eq!(c.pending(), 2);
        assert_eq!(c.evicted(), 998);
        assert_eq!(c.poll(0).len(), 997);
        assert!(c.due.len() <= 2 * 2 + STALE_SLACK + 1);
        // ARP pairs are bounded the same way.
        for i in 0..5u8 {
            c.observe_arp(&arp(
                u64::from(i),
                true,
                A,
                &format!("172.20.1.{i}"),
                "vethA",
            ));
        }
        assert_eq!(c.arps.len(), 2);
        assert_eq!(c.evicted(), 1001);
        let arps = c.poll(0);
        assert_eq!(arps.len(), 3);
        assert!(matches!(&arps[0], Finished::ArpUnanswered(u) if u.asked_for == v4("172.20.1.0")));
    }

    #[test]
    fn floods_stay_bounded() {
        let mut c = Correlator::with_config(Config {
            max_pending: 64,
            ..Config::default()
        });
        let mut t = 0;
        for round in 0..50u16 {
            for i in 0..200u16 {
                t += 1_000;
                let [a, b, r1, r2] = ping(t, round * 200 + i, 500);
                c.observe(&a);
                c.observe(&b);
                c.observe(&r1);
                c.observe(&r2);
            }
            let _ = c.poll(t);
            assert!(c.journeys.len() <= 64);
            assert_eq!(c.journeys.len(), c.by_age.len());
            assert!(c.due.len() <= 2 * 64 + STALE_SLACK + 1);
        }
        let _ = c.flush();
        assert_eq!(c.pending(), 0);
        assert!(c.by_age.is_empty() && c.due.is_empty());
    }

    /// An answered ping's first check comes after its reply, so a flood of them queues
    /// one live check per journey and no stale ones.
    #[test]
    fn answered_pings_leave_no_stale_checks() {
        let mut c = correlator();
        let mut t = 0;
        for seq in 0..5_000u16 {
            t += 20_000;
            for s in ping(t, seq, 30_000) {
                c.observe(&s);
            }
            if seq % 100 == 0 {
                assert!(c
                    .poll(t)
                    .iter()
                    .all(|f| matches!(f, Finished::Journey(j) if j.result == Outcome::Answered)));
            }
            assert_eq!(c.due.len(), c.journeys.len());
        }
        let _ = c.flush();
        let stats = c.stats();
        assert_eq!((stats[0].sent, stats[0].answered), (5_000, 5_000));
    }

    /// Finished journeys behind one that stays pending leave holes in the age queue; they
    /// are compacted away, and the oldest is still the one evicted.
    #[test]
    fn age_queue_holes_stay_bounded() {
        let mut q = AgeQueue::default();
        let key = |seq| Key::new(Family::Icmp, Phase::Request, ip(A), ip(B), 7, seq);
        q.push(0, key(0));
        for serial in 1..10_000u64 {
            q.push(serial, key(serial as u16));
            q.remove(serial);
            assert!(q.entries.len() <= 2 * q.len() + STALE_SLACK + 1);
        }
        assert_eq!((q.len(), q.oldest()), (1, Some(key(0))));
        q.push(10_000, key(1));
        q.remove(0);
        assert_eq!((q.len(), q.oldest()), (1, Some(key(1))));
        assert_eq!(q.entries.len(), 1, "holes at the front are dropped");
        q.remove(10_000);
        assert!(q.is_empty() && q.oldest().is_none());
    }

    #[test]
    fn stats_min_avg_max() {
        let mut c = correlator();
        for (seq, rtt) in [(1, 100), (2, 200), (3, 600)] {
            for s in ping(u64::from(seq) * MS, seq, rtt) {
                c.observe(&s);
            }
        }
        c.observe(&req(10 * MS, 4, VETH_A, Ingress)); // lost
                                                      // Another pair without container names: labelled by address.
        let mut s = req(11 * MS, 1, VETH_A, Ingress);
        s.src_ip = ip("10.0.0.1");
        s.src_container = None;
        s.dst_container = None;
        c.observe(&s);
        let mut d = drop_of(11 * MS + 5, Phase::Request, 1);
        d.src_ip = ip("10.0.0.1");
        c.observe_drop(&d);
        assert!(c.stats().is_empty(), "updated only when journeys finish");
        let done = c.flush();
        assert_eq!(done.len(), 5);
        let stats = c.stats();
        assert_eq!(
            stats,
            vec![
                PairStats {
                    src: "10.0.0.1".into(),
                    dst: B.into(),
                    sent: 1,
                    answered: 0,
                    lost: 1,
                    rtt_min_ns: None,
                    rtt_avg_ns: None,
                    rtt_max_ns: None,
                },
                PairStats {
                    src: "alpha".into(),
                    dst: "beta".into(),
                    sent: 4,
                    answered: 3,
                    lost: 1,
                    rtt_min_ns: Some(100),
                    rtt_avg_ns: Some(300),
                    rtt_max_ns: Some(600),
                },
            ]
        );
        let v = serde_json::to_value(&stats[1]).expect("json");
        assert_eq!(v["rtt_avg_ns"], 300);
        assert_eq!(v["lost"], 1);
    }

    #[test]
    fn flush_finishes_everything_in_deadline_order() {
        let mut c = correlator();
        c.observe(&req(0, 1, VETH_A, Ingress)); // unanswered, due at TIMEOUT
        for s in ping(100, 2, 50) {
            c.observe(&s); // answered, settling
        }
        c.observe_arp(&arp(10, true, A, "172.20.0.99", "vethA"));
        c.observe(&rep(20, 9, VETH_A, Egress)); // orphan
        let done = c.flush();
        assert_eq!(done.len(), 3);
        assert!(
            matches!(&done[0], Finished::Journey(j) if j.seq == 2 && j.result == Outcome::Answered)
        );
        assert!(matches!(&done[1], Finished::ArpUnanswered(_)));
        assert!(
            matches!(&done[2], Finished::Journey(j) if j.seq == 1 && j.result == Outcome::Unanswered)
        );
        assert_eq!(c.orphan_replies(), 1);
        assert_eq!(c.pending(), 0);
        assert!(c.poll(u64::MAX).is_empty());
        assert!(c.flush().is_empty());
    }

    #[test]
    fn poll_orders_journeys_and_arp_by_deadline() {
        let mut c = correlator();
        for s in ping(0, 1, 10) {
            c.observe(&s); // due at 10 + SETTLE
        }
        c.observe_arp(&arp(0, true, A, "172.20.0.99", "vethA")); // due at ARP_TIMEOUT
        c.observe(&req(1, 2, VETH_A, Ingress)); // due at 1 + TIMEOUT
        let done = c.poll(u64::MAX);
        assert_eq!(done.len(), 3);
        assert!(matches!(&done[0], Finished::Journey(j) if j.seq == 1));
        assert!(matches!(&done[1], Finished::ArpUnanswered(_)));
        assert!(matches!(&done[2], Finished::Journey(j) if j.seq == 2));
    }

    #[test]
    fn empty_poll() {
        let mut c = Correlator::with_config(Config::default());
        assert_eq!(c.config().settle_ns, DEFAULT_SETTLE_NS);
        let z = Correlator::new(TIMEOUT, SETTLE, ARP_TIMEOUT, 0);
        assert_eq!(z.config().max_pending, 1);
        assert!(c.poll(0).is_empty());
        assert!(c.poll(u64::MAX).is_empty());
        assert!(c.flush().is_empty());
        assert!(c.stats().is_empty());
        assert_eq!((c.evicted(), c.orphan_replies(), c.pending()), (0, 0, 0));
        // Non-echo kinds are ignored.
        let mut s = req(1, 1, VETH_A, Ingress);
        s.kind = Kind::IcmpUnreachable;
        c.observe(&s);
        let mut d = drop_of(1, Phase::Request, 1);
        d.kind = Kind::ArpRequest;
        c.observe_drop(&d);
        assert_eq!(c.pending(), 0);
        assert!(c.poll(u64::MAX).is_empty());
    }

    #[test]
    fn output_lines() {
        let clock = Clock::new();
        let mut c = correlator();
        for s in ping(1_000, 1, 412_000) {
            c.observe(&s);
        }
        c.observe(&req(2_000_000, 2, VETH_A, Ingress));
        c.observe_drop(&drop_of(2_000_100, Phase::Request, 2));
        c.observe_arp(&arp(0, true, A, "172.20.0.99", "vethA"));
        let done = c.flush();
        assert_eq!(done.len(), 3);

        let mut text = String::new();
        for f in &done {
            write_human(f, &clock, &mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        let tod = clock.to_unix(1_000).time_of_day().to_string();
        assert_eq!(
            lines[0],
            format!(
                "{tod}  alpha → beta  ping id=7 seq=1  answered in 0.412 ms  \
                 request: vethA in, vethB out  reply: vethB in, vethA out"
            )
        );
        assert!(
            lines[1].ends_with(
                "alpha → beta  ping id=7 seq=2  DROPPED (request): NETFILTER_DROP at \
                 nf_hook_slow on br-net, hook forward, rule: filter FORWARD DROP, \
                 last seen on vethA in  request: vethA in"
            ),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].ends_with(
                "alpha asked who has 172.20.0.99: no ARP reply (1 request) on vethA (devnet)"
            ),
            "{}",
            lines[2]
        );

        let mut bytes = Vec::new();
        for f in &done {
            write_json(f, &clock, &mut bytes).expect("json");
        }
        let text = String::from_utf8(bytes).expect("utf-8");
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one object per line"))
            .collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["ts"], clock.to_unix(1_000).to_string());
        assert_eq!(rows[0]["ts_ns"], 1_000);
        assert_eq!(rows[0]["kind"], "journey");
        assert_eq!(rows[0]["rtt_ns"], 412_000);
        assert_eq!(rows[1]["result"], "dropped");
        assert_eq!(rows[2]["kind"], "arp-unanswered");
        assert!(rows[2]["ts"].as_str().expect("ts").ends_with('Z'));

        let stats = c.stats();
        assert_eq!(
            pair_line(&stats[0]),
            "alpha → beta  sent 2, answered 1, lost 1 (50.0%), \
             rtt min/avg/max 0.412/0.412/0.412 ms"
        );
        let none = PairStats {
            src: "10.0.0.1".into(),
            dst: "10.0.0.2".into(),
            sent: 3,
            answered: 0,
            lost: 3,
            rtt_min_ns: None,
            rtt_avg_ns: None,
            rtt_max_ns: None,
        };
        assert_eq!(
            pair_line(&none),
            "10.0.0.1 → 10.0.0.2  sent 3, answered 0, lost 3 (100.0%)"
        );
    }

    /// The JSON line as serde writes it for the derived impls: the reference for
    /// [`write_json`].
    fn serde_line(f: &Finished, clock: &Clock) -> String {
        #[derive(Serialize)]
        struct Stamped<'a, T> {
            ts: crate::kernel::clock::UnixNanos,
            #[serde(flatten)]
            body: &'a T,
        }
        let ts = clock.to_unix(f.ts_ns());
        let mut line = match f {
            Finished::Journey(j) => serde_json::to_string(&Stamped { ts, body: j }),
            Finished::ArpUnanswered(a) => serde_json::to_string(&Stamped { ts, body: a }),
        }
        .expect("json");
        line.push('\n');
        line
    }

    fn assert_json_like_serde(done: &[Finished], clock: &Clock) {
        let mut out = Vec::new();
        for f in done {
            out.clear();
            write_json(f, clock, &mut out).expect("json");
            assert_eq!(String::from_utf8_lossy(&out), serde_line(f, clock), "{f:?}");
        }
    }

    /// A deterministic stream of pseudo-random numbers (xorshift).
    fn rng(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// Names as they come: container and interface names, text that needs escaping,
    /// non-ASCII, empty.
    const NAMES: [&str; 8] = [
        "alpha",
        "veth1a2b3c4",
        "quote\"d",
        "back\\slash",
        "ctl\u{1}\t\n\r\u{1f}\u{7f}",
        "é→日本🦀",
        "",
        "br-8be916360cbc",
    ];

    #[test]
    fn json_matches_serde_for_correlated_journeys() {
        let clock = Clock::new();
        let mut next = rng(0x5eed);
        let mut c = Correlator::with_config(Config {
            timeout_ns: TIMEOUT,
            settle_ns: SETTLE,
            arp_timeout_ns: ARP_TIMEOUT,
            max_pending: 64,
        });
        let addrs = [ip(A), ip(B), ip("10.0.0.1"), ip("fd00::2"), ip("fe80::1:2")];
        let name = |n: u64| ((n & 3) != 0).then(|| NAMES[n as usize % NAMES.len()]);
        let mut done = Vec::new();
        let mut t = 0u64;
        for _ in 0..20_000 {
            t += next() % (SETTLE / 8);
            let r = next();
            let (src, dst) = (addrs[r as usize % 5], addrs[(r >> 3) as usize % 5]);
            let v6 = src.is_ipv6();
            let reply = r >> 6 & 1 == 1;
            let kind = match (v6, reply) {
                (false, false) => Kind::IcmpEchoRequest,
                (false, true) => Kind::IcmpEchoReply,
                (true, false) => Kind::Icmp6EchoRequest,
                (true, true) => Kind::Icmp6EchoReply,
            };
            let (id, seq) = ((r >> 8) as u16 % 3, (r >> 16) as u16 % 40);
            // Now and then delivered late, by up to a timeout.
            let ts = if r >> 24 & 15 == 0 {
                t.saturating_sub(next() % TIMEOUT)
            } else {
                t
            };
            if r >> 28 & 15 == 0 {
                c.observe_drop(&DropSighting {
                    ts_ns: ts,
                    kind,
                    src_ip: src,
                    dst_ip: dst,
                    id,
                    seq,
                    reason: NAMES[(r >> 32) as usize % NAMES.len()],
                    location: name(r >> 36),
                    iface: name(r >> 40),
                    rule: name(r >> 44),
                    hook: name(r >> 48),
                });
            } else if r >> 28 & 15 == 1 {
                c.observe_arp(&ArpSighting {
                    ts_ns: ts,
                    op_request: r >> 32 & 3 != 0,
                    sender_ip: Ipv4Addr::from(0xac14_0000 | ((r >> 34) as u32 % 4)),
                    target_ip: Ipv4Addr::from(0xac14_0000 | ((r >> 36) as u32 % 4)),
                    network: name(r >> 38),
                    sender_container: name(r >> 42),
                    iface: NAMES[(r >> 46) as usize % NAMES.len()],
                });
            } else {
                let iface = NAMES[(r >> 32) as usize % NAMES.len()];
                c.observe(&Sighting {
                    ts_ns: ts,
                    kind,
                    src_ip: src,
                    dst_ip: dst,
                    id,
                    seq,
                    iface,
                    ifindex: (r >> 36) as u32 % 4,
                    direction: if r >> 38 & 1 == 0 { Ingress } else { Egress },
                    src_container: name(r >> 40),
                    dst_container: name(r >> 44),
                });
            }
            if r >> 50 & 15 == 0 {
                done.extend(c.poll(t));
            }
        }
        done.extend(c.flush());
        let count = |f: fn(&Finished) -> bool| done.iter().filter(|j| f(j)).count();
        assert!(count(|f| matches!(f, Finished::ArpUnanswered(_))) > 10);
        for outcome in [Outcome::Answered, Outcome::Dropped, Outcome::Unanswered] {
            let n = done
                .iter()
                .filter(|f| matches!(f, Finished::Journey(j) if j.result == outcome))
                .count();
            assert!(n > 10, "{outcome:?}: {n}");
        }
        assert!(count(|f| matches!(f, Finished::Journey(j) if j.family == Family::Icmp6)) > 10);
        assert_json_like_serde(&done, &clock);
    }

    /// Every optional member present and absent, extreme numbers and times, names that
    /// need escaping, up to [`MAX_HOPS`] hops.
    #[test]
    fn json_matches_serde_for_every_shape() {
        let clock = Clock::new();
        let mut next = rng(42);
        let text = |n: u64| NAMES[n as usize % NAMES.len()].to_owned();
        let opt = |n: u64| ((n & 3) != 0).then(|| text(n >> 2));
        let times = [0, 1, 999_999_999, 1_000_000_000, u64::MAX / 2, u64::MAX];
        let mut all = Vec::new();
        for i in 0..2_000u64 {
            let r = next();
            let ts_ns = if i % 4 == 0 {
                times[(r % 6) as usize]
            } else {
                r >> (r % 64)
            };
            let hop = |n: u64| Hop {
                iface: text(n),
                ifindex: (n >> 8) as u32,
                direction: if n & 1 == 0 { Ingress } else { Egress },
                ts_ns: n >> 3,
                phase: if n & 2 == 0 {
                    Phase::Request
                } else {
                    Phase::Reply
                },
            };
            let family = if r & 1 == 0 {
                Family::Icmp
            } else {
                Family::Icmp6
            };
            let end = |n: u64| JourneyEnd {
                ip: if family == Family::Icmp {
                    IpAddr::from(Ipv4Addr::from(n as u32))
                } else {
                    IpAddr::from(std::net::Ipv6Addr::from(u128::from(n) << (n % 64)))
                },
                container: opt(n >> 32),
            };
            all.push(Finished::Journey(Journey {
                kind: "journey",
                ts_ns,
                family,
                src: end(next()),
                dst: end(next()),
                id: (r >> 8) as u16,
                seq: (r >> 24) as u16,
                result: [Outcome::Answered, Outcome::Dropped, Outcome::Unanswered]
                    [(r >> 40) as usize % 3],
                rtt_ns: (r >> 42 & 1 == 0).then(|| next() >> (r % 64)),
                hops: (0..(r >> 43) as usize % (MAX_HOPS + 1))
                    .map(|_| hop(next()))
                    .collect(),
                drop: (r >> 49 & 1 == 0).then(|| JourneyDrop {
                    reason: text(next()),
                    location: opt(next()),
                    iface: opt(next()),
                    rule: opt(next()),
                    hook: opt(next()),
                    phase: if r >> 50 & 1 == 0 {
                        Phase::Request
                    } else {
                        Phase::Reply
                    },
                }),
                last_seen: (r >> 51 & 1 == 0).then(|| hop(next())),
            }));
            all.push(Finished::ArpUnanswered(ArpUnanswered {
                kind: "arp-unanswered",
                ts_ns,
                who: Ipv4Addr::from(next() as u32),
                who_container: opt(next()),
                asked_for: Ipv4Addr::from(next() as u32),
                network: opt(next()),
                iface: text(next()),
                requests: next() as u32 >> (r % 32),
            }));
        }
        assert_json_like_serde(&all, &clock);
    }

    #[test]
    fn names_match_serde() {
        for p in [Phase::Request, Phase::Reply] {
            assert_eq!(serde_json::to_value(p).expect("json"), p.name());
        }
        for o in [Outcome::Answered, Outcome::Dropped, Outcome::Unanswered] {
            assert_eq!(serde_json::to_value(o).expect("json"), o.name());
        }
    }

    #[test]
    fn interner_forgets_unused_names() {
        let mut n = Interner::default();
        let keep = n.get("keep");
        for i in 0..(INTERNER_MIN_LIMIT * 3) {
            let _ = n.get(&format!("if{i}"));
        }
        assert!(n.names.len() <= INTERNER_MIN_LIMIT + 1);
        assert!(Arc::ptr_eq(&keep, &n.get("keep")));
    }
}

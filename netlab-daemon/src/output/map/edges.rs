//! The map's edges: what the pings of one (source, destination) pair came to, gathered
//! from finished journeys, unanswered ARP requests and drop reports.
//!
//! Pure logic: every call is given the time, so tests need no clock. An edge's state is
//! the outcome of its latest ping (or `unanswered` for an ARP request nobody answered);
//! its rate is the pings finished per second, recomputed at most once a second by
//! [`Edges::roll`]; it is forgotten [`FORGET_AFTER`] after its last ping, and at most
//! [`MAX_EDGES`] are kept (a new pair beyond that replaces the quietest one). Journeys
//! are kept by copying into slots allocated once per edge, so a flood of pings between
//! known pairs allocates nothing.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::explain::firewall::RuleRef;
use crate::model::event::DropRecord;
use crate::model::journey::{ArpUnanswered, Journey, Outcome};
use crate::model::kind::Kind;

/// Edges kept at most.
pub const MAX_EDGES: usize = 1024;
/// Journeys kept per edge (the details' "last journeys").
pub const KEPT_JOURNEYS: usize = 5;
/// An edge with no ping for this long leaves the map.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);
/// An answered edge stays answered through unanswered pings this long after an answered
/// one: under a flood the kernel cannot deliver every sighting (the status line counts
/// them), and a ping whose reply went unseen looks unanswered while its neighbours are
/// answered. A drop is always shown at once.
pub const ANSWERED_HOLDS: Duration = Duration::from_secs(2);

/// One end of an edge: a container's name, else an address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum End {
    Container(String),
    Address(IpAddr),
}

impl End {
    fn of(container: Option<&str>, ip: IpAddr) -> End {
        match container {
            Some(c) => End::Container(c.to_owned()),
            None => End::Address(ip),
        }
    }

    /// How the map names it.
    pub fn name(&self) -> String {
        match self {
            End::Container(c) => c.clone(),
            End::Address(ip) => ip.to_string(),
        }
    }

    /// The container, if it is one.
    pub fn container(&self) -> Option<&str> {
        match self {
            End::Container(c) => Some(c),
            End::Address(_) => None,
        }
    }
}

/// What an edge shows: the latest ping's outcome, or an ARP request nobody answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeState {
    Answered,
    Dropped,
    Unanswered,
}

impl EdgeState {
    /// Its name on the page and in the API (`data-state`).
    pub const fn name(self) -> &'static str {
        match self {
            EdgeState::Answered => "answered",
            EdgeState::Dropped => "dropped",
            EdgeState::Unanswered => "unanswered",
        }
    }
}

/// The latest drop of an edge's pings, as the drop report explains it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LastDrop {
    /// The kernel's drop reason.
    pub reason: String,
    /// Where: kernel function.
    pub location: Option<String>,
    /// The netfilter hook.
    pub hook: Option<String>,
    /// The device it was on.
    pub iface: Option<String>,
    /// `request` or `reply`.
    pub phase: &'static str,
    /// The firewall rule as its backend prints it.
    pub rule: Option<String>,
    /// The rule as the drop report explains it (table, chain, Docker meaning, remedies).
    pub explained: Option<RuleRef>,
}

/// The pings of one pair.
#[derive(Clone, Debug)]
pub struct Edge {
    pub src: End,
    pub dst: End,
    /// The addresses of the latest ping.
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub state: EdgeState,
    /// Whether the latest was an ARP request rather than a ping.
    pub arp: bool,
    pub answered: u64,
    pub dropped: u64,
    pub unanswered: u64,
    /// ARP requests nobody answered.
    pub arp_unanswered: u64,
    /// The latest answered ping's round trip, ns.
    pub rtt_ns: Option<u64>,
    /// When the latest answered ping finished.
    last_answered: Option<Instant>,
    rtt_sum_ns: u64,
    /// Pings finished per second, over the last roll.
    pub rate: f64,
    since_roll: u64,
    /// When the latest ping finished.
    pub last: Instant,
    /// The latest drop.
    pub drop: Option<LastDrop>,
    /// The latest journeys, oldest first (slots reused once full).
    pub journeys: VecDeque<Journey>,
}

impl Edge {
    fn new(src: End, dst: End, src_ip: IpAddr, dst_ip: IpAddr, now: Instant) -> Edge {
        Edge {
            src,
            dst,
            src_ip,
            dst_ip,
            state: EdgeState::Unanswered,
            arp: false,
            answered: 0,
            dropped: 0,
            unanswered: 0,
            arp_unanswered: 0,
            rtt_ns: None,
            last_answered: None,
            rtt_sum_ns: 0,
            rate: 0.0,
            since_roll: 0,
            last: now,
            drop: None,
            journeys: VecDeque::with_capacity(KEPT_JOURNEYS),
        }
    }

    /// Mean round trip of its answered pings, ns.
    pub fn rtt_avg_ns(&self) -> Option<u64> {
        (self.answered > 0).then(|| self.rtt_sum_ns / self.answered)
    }

    fn keep(&mut self, j: &Journey) {
        if self.journeys.len() < KEPT_JOURNEYS {
            self.journeys.push_back(j.clone());
        } else if let Some(mut slot) = self.journeys.pop_front() {
            slot.clone_from(j);
            self.journeys.push_back(slot);
        }
    }
}

/// Every edge of the map.
#[derive(Debug, Default)]
pub struct Edges {
    edges: HashMap<(End, End), Edge>,
    last_roll: Option<Instant>,
}

impl Edges {
    /// The edge of (src, dst), made when new (replacing the quietest one when full).
    fn entry(
        &mut self,
        src: End,
        dst: End,
        src_ip: IpAddr,
        dst_ip: IpAddr,
        now: Instant,
    ) -> &mut Edge {
        let key = (src, dst);
        if !self.edges.contains_key(&key) && self.edges.len() >= MAX_EDGES {
            if let Some(quietest) = self
                .edges
                .iter()
                .min_by_key(|(_, e)| e.last)
                .map(|(k, _)| k.clone())
            {
                self.edges.remove(&quietest);
            }
        }
        let (s, d) = (key.0.clone(), key.1.clone());
        let e = self
            .edges
            .entry(key)
            .or_insert_with(|| Edge::new(s, d, src_ip, dst_ip, now));
        e.src_ip = src_ip;
        e.dst_ip = dst_ip;
        e.last = now;
        e
    }

    /// A finished ping.
    pub fn journey(&mut self, j: &Journey, now: Instant) {
        let src = End::of(j.src.container.as_deref(), j.src.ip);
        let dst = End::of(j.dst.container.as_deref(), j.dst.ip);
        let e = self.entry(src, dst, j.src.ip, j.dst.ip, now);
        e.arp = false;
        e.since_roll += 1;
        match j.result {
            Outcome::Answered => {
                e.state = EdgeState::Answered;
                e.answered += 1;
                e.last_answered = Some(now);
                if let Some(rtt) = j.rtt_ns {
                    e.rtt_ns = Some(rtt);
                    e.rtt_sum_ns = e.rtt_sum_ns.saturating_add(rtt);
                }
            }
            Outcome::Dropped => {
                e.state = EdgeState::Dropped;
                e.dropped += 1;
                if let Some(d) = &j.drop {
                    // The journey knows the reason and the rule's text; a drop report of
                    // the same pair (which may come before or after) adds its meaning.
                    let last = e.drop.get_or_insert_with(LastDrop::default);
                    last.reason.clone_from(&d.reason);
                    last.location.clone_from(&d.location);
                    last.hook.clone_from(&d.hook);
                    last.iface = match (&d.host, &d.iface) {
                        // A peer's drop (`--peer`): on which host.
                        (Some(host), Some(i)) => Some(format!("{host}:{i}")),
                        (Some(host), None) => Some(host.clone()),
                        (None, i) => i.clone(),
                    };
                    last.phase = d.phase.name();
                    if d.rule.is_some() {
                        last.rule.clone_from(&d.rule);
                    }
                    // An explanation of another rule than this one's is stale.
                    if last.explained.as_ref().map(|r| &r.rule) != last.rule.as_ref() {
                        last.explained = None;
                    }
                }
            }
            Outcome::Unanswered => {
                e.unanswered += 1;
                let holds = e.state == EdgeState::Answered
                    && e.last_answered
                        .is_some_and(|t| now.saturating_duration_since(t) < ANSWERED_HOLDS);
                if !holds {
                    e.state = EdgeState::Unanswered;
                }
            }
        }
        e.keep(j);
    }

    /// An ARP request nobody answered: an edge from who asked to whoever has the address
    /// (`owner`, when the topology knows it).
    pub fn arp_unanswered(&mut self, a: &ArpUnanswered, owner: Option<&str>, now: Instant) {
        let who = IpAddr::V4(a.who);
        let asked = IpAddr::V4(a.asked_for);
        let src = End::of(a.who_container.as_deref(), who);
        let dst = End::of(owner, asked);
        let e = self.entry(src, dst, who, asked, now);
        e.arp = true;
        e.state = EdgeState::Unanswered;
        e.arp_unanswered += u64::from(a.requests);
        e.since_roll += 1;
    }

    /// A drop report: the rule and its Docker meaning go on the pair's edge (an echo
    /// reply's drop on the edge of the ping it answers). Other packets are left out.
    pub fn drop_report(&mut self, d: &DropRecord, now: Instant) {
        let reply = matches!(d.packet, Kind::IcmpEchoReply | Kind::Icmp6EchoReply);
        let request = matches!(d.packet, Kind::IcmpEchoRequest | Kind::Icmp6EchoRequest);
        if !(reply || request) {
            return;
        }
        let (Some(sip), Some(dip)) = (d.src.ip, d.dst.ip) else {
            return;
        };
        let (src, dst) = (End::of(d.src.container, sip), End::of(d.dst.container, dip));
        let (src, dst, sip, dip) = if reply {
            (dst, src, dip, sip)
        } else {
            (src, dst, sip, dip)
        };
        // The report usually comes before the ping's journey is finished (which counts
        // it): the edge shows the drop at once.
        let e = self.entry(src, dst, sip, dip, now);
        e.arp = false;
        e.state = EdgeState::Dropped;
        fill_drop(e.drop.get_or_insert_with(LastDrop::default), d, reply);
    }

    /// Recomputes each edge's rate (at most once a second) and forgets quiet edges.
    pub fn roll(&mut self, now: Instant) {
        self.edges
            .retain(|_, e| now.saturating_duration_since(e.last) < FORGET_AFTER);
        let Some(last) = self.last_roll else {
            self.last_roll = Some(now);
            return;
        };
        let secs = now.saturating_duration_since(last).as_secs_f64();
        if secs < 1.0 {
            return;
        }
        for e in self.edges.values_mut() {
            e.rate = e.since_roll as f64 / secs;
            e.since_roll = 0;
        }
        self.last_roll = Some(now);
    }

    /// Forgets the edges whose container end is not in `keep` (a container removed).
    pub fn forget_containers(&mut self, keep: impl Fn(&str) -> bool) {
        self.edges
            .retain(|(s, d), _| s.container().is_none_or(&keep) && d.container().is_none_or(&keep));
    }

    /// The edges, in a stable order (source, then destination).
    pub fn sorted(&self) -> Vec<&Edge> {
        let mut v: Vec<&Edge> = self.edges.values().collect();
        v.sort_by(|a, b| (&a.src, &a.dst).cmp(&(&b.src, &b.dst)));
        v
    }

    pub fn len(&self) -> usize {
        self.edges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }
}

/// Copies what a drop report says into `last`.
fn fill_drop(last: &mut LastDrop, d: &DropRecord, reply: bool) {
    last.reason.clone_from(&d.drop.reason);
    last.location.clone_from(&d.drop.location);
    last.hook.clone_from(&d.drop.hook);
    last.iface.clone_from(&d.iface.name);
    last.phase = if reply { "reply" } else { "request" };
    if let Some(r) = &d.drop.rule {
        last.rule = Some(r.rule.clone());
        last.explained = Some(r.clone());
    }
}

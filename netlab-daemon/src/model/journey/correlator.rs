//! The [`Correlator`]: joins echo sightings and drops into journeys, finishes them when
//! they are due (see the [module docs](super) for the rules), keeps the per-pair
//! statistics, and finds unanswered ARP requests (in `arp`).

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::BinaryHeap;

use super::age_queue::AgeQueue;
use super::due_queue::DueQueue;
use super::interner::Interner;
use super::pending::{Due, Key, Pending};
use super::record::{Finished, PairStats};
use super::sighting::{ArpSighting, DropSighting, Sighting};
use super::stats::{Label, PairTable};
use super::{too_stale, Config, Map};
use arp::{ArpKey, ArpPending};

mod arp;

/// Most finished records `poll` reserves room for ahead (see `Correlator::last_poll_len`).
const POLL_RESERVE_MAX: usize = 8192;

/// Pairs echo requests with their replies and drops into [`Journey`](super::Journey)s,
/// finds unanswered ARP requests, and keeps per-pair statistics. See the
/// [module docs](super) for the rules.
#[derive(Debug)]
pub struct Correlator {
    config: Config,
    journeys: Map<Key, Pending>,
    /// Pending journeys by creation order (serial), for eviction.
    by_age: AgeQueue,
    /// Checks of pending journeys, earliest first; stale ones are skipped (see [`Due`]).
    due: DueQueue,
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
    peers_only: u64,
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
            due: DueQueue::default(),
            arps: Map::default(),
            arp_due: BinaryHeap::new(),
            arp_answered: Map::default(),
            ready: Vec::new(),
            names: Interner::default(),
            stats: PairTable::default(),
            next_serial: 0,
            evicted: 0,
            orphan_replies: 0,
            peers_only: 0,
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

    /// Journeys seen only by peers (`watch --peer`), never on this host: not handed out
    /// (they are the peers' own), only counted here.
    pub fn peers_only(&self) -> u64 {
        self.peers_only
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
        let mut out = Vec::with_capacity(self.last_poll_len.min(POLL_RESERVE_MAX));
        let Ok(()) = self.poll_each(now_ns, |f| {
            out.push(f);
            Ok::<(), std::convert::Infallible>(())
        });
        self.last_poll_len = out.len();
        out
    }

    /// [`Correlator::poll`], handing each finished record to `each` as soon as it is built
    /// rather than collecting them all first: under a flood, one journey's allocations are
    /// then freed before the next one's are made, and come back from the allocator's
    /// per-thread cache instead of its slower paths. Stops at the first error of `each`;
    /// what finished early and was not handed yet is kept for the next call.
    pub fn poll_each<E>(
        &mut self,
        now_ns: u64,
        mut each: impl FnMut(Finished) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut ready = std::mem::take(&mut self.ready).into_iter();
        while let Some(f) = ready.next() {
            if let Err(e) = each(f) {
                self.ready = ready.collect();
                return Err(e);
            }
        }
        loop {
            let journey = self.due.peek().map(Due::order);
            let arp = self.arp_due.peek().map(|Reverse((d, s, _))| (*d, *s));
            let take_arp = match (journey, arp) {
                (None, None) => break,
                (Some(j), Some(a)) => a < j,
                (None, Some(_)) => true,
                (Some(_), None) => false,
            };
            let finished = if take_arp {
                let Some(&Reverse((deadline, serial, pair))) = self.arp_due.peek() else {
                    break;
                };
                if deadline > now_ns {
                    break;
                }
                self.arp_due.pop();
                if self.arps.get(&pair).is_some_and(|p| p.serial == serial) {
                    self.finish_arp(pair)
                } else {
                    None
                }
            } else {
                let Some(&due) = self.due.peek() else {
                    break;
                };
                if due.at > now_ns {
                    break;
                }
                self.due.pop();
                self.expire_journey(due)
            };
            if let Some(f) = finished {
                each(f)?;
            }
        }
        let keep = self.config.arp_timeout_ns;
        self.arp_answered
            .retain(|_, t| t.saturating_add(keep) > now_ns);
        Ok(())
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
            over => {
                let ended = over.is_some();
                let fresh = self.start(key, ts_ns, ended);
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
    /// for it is open at that time): makes room for it by finishing the pending one of the
    /// same key, whose deadline has passed (`ended`: there is one) and, when `max_pending`
    /// are pending, the oldest.
    fn start(&mut self, key: Key, ts_ns: u64, ended: bool) -> Pending {
        if ended {
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
        self.due.push(due);
        if too_stale(self.due.len(), self.journeys.len()) {
            let journeys = &self.journeys;
            self.due.retain(|d| d.is_live(journeys));
        }
    }

    /// Handles a check that came due: finishes the journey when its deadline is reached,
    /// checks it again at its deadline when that has moved later; skips a stale check.
    fn expire_journey(&mut self, due: Due) -> Option<Finished> {
        let Entry::Occupied(mut e) = self.journeys.entry(due.key) else {
            return None; // stale
        };
        let p = e.get_mut();
        if p.serial != due.serial || p.scheduled != due.at {
            return None; // stale
        }
        let deadline = p.deadline(&self.config);
        if deadline > due.at {
            p.scheduled = deadline;
            self.due.push(Due {
                at: deadline,
                ..due
            });
            return None;
        }
        let p = e.remove();
        self.finish(&due.key, p)
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
        if !p.here {
            self.peers_only += 1;
            return None;
        }
        let src = Label::new(p.src_container.as_ref(), key.requester);
        let dst = Label::new(p.dst_container.as_ref(), key.responder);
        let journey = p.into_journey(key);
        self.stats.record(src, dst, journey.result, journey.rtt_ns);
        Some(Finished::Journey(journey))
    }
}

#[cfg(test)]
mod tests;

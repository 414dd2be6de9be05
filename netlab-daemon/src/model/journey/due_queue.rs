//! The journeys' deadline checks, earliest first: a priority queue that is nearly free
//! when checks are queued in a few interleaved time-ordered streams, as they are.
//!
//! Under a ping flood, checks come in streams that are each in time order: a new
//! journey's first check `settle_ns` after its first sighting (sightings come in time
//! order), an answered journey's check moved to its deadline when the first came due, an
//! unanswered one's moved to its timeout. Each stream goes to a FIFO run of its own (a
//! check joins the run whose last check is the latest not after it); only a check that
//! fits no run goes to a binary heap, which therefore stays small. A single heap of every
//! check moved its 56-byte entries up and down ~14 levels of a heap of tens of thousands,
//! twice per journey.
//!
//! [`DueQueue::pop`] returns the checks in exactly the order a single heap would: the
//! earliest of the runs' fronts and the heap's top each time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use super::pending::Due;

/// Runs kept at most; a check that fits none of them goes to the heap.
const MAX_RUNS: usize = 8;

/// Deadline checks of pending journeys, popped earliest first (by [`Due::order`]).
#[derive(Debug, Default)]
pub(super) struct DueQueue {
    /// Runs of checks, each in order (every check not earlier than the one before it).
    runs: Vec<VecDeque<Due>>,
    /// The checks that fit no run.
    heap: BinaryHeap<Reverse<Due>>,
}

/// Where the earliest check is.
#[derive(Clone, Copy)]
enum Front {
    Run(usize),
    Heap,
}

impl DueQueue {
    /// Queues a check: at the end of the run whose last check is the latest not after it
    /// (else an empty run, else a new run), or into the heap.
    pub(super) fn push(&mut self, due: Due) {
        let mut best: Option<(usize, &Due)> = None;
        let mut empty = None;
        for (i, run) in self.runs.iter().enumerate() {
            match run.back() {
                Some(last) if *last <= due => {
                    if best.is_none_or(|(_, b)| b < last) {
                        best = Some((i, last));
                    }
                }
                Some(_) => {}
                None => empty = Some(i),
            }
        }
        match (best.map(|(i, _)| i).or(empty), self.runs.len() < MAX_RUNS) {
            (Some(i), _) => self.runs[i].push_back(due),
            (None, true) => self.runs.push(VecDeque::from([due])),
            (None, false) => self.heap.push(Reverse(due)),
        }
    }

    /// Where the earliest check is, if any.
    fn front(&self) -> Option<(Front, &Due)> {
        let mut min = self.heap.peek().map(|Reverse(d)| (Front::Heap, d));
        for (i, run) in self.runs.iter().enumerate() {
            if let Some(d) = run.front() {
                if min.is_none_or(|(_, m)| d < m) {
                    min = Some((Front::Run(i), d));
                }
            }
        }
        min
    }

    /// The earliest check.
    pub(super) fn peek(&self) -> Option<&Due> {
        self.front().map(|(_, d)| d)
    }

    /// Removes and returns the earliest check.
    pub(super) fn pop(&mut self) -> Option<Due> {
        match self.front()?.0 {
            Front::Run(i) => self.runs[i].pop_front(),
            Front::Heap => self.heap.pop().map(|Reverse(d)| d),
        }
    }

    /// Checks queued (stale ones included).
    pub(super) fn len(&self) -> usize {
        self.runs.iter().map(VecDeque::len).sum::<usize>() + self.heap.len()
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps only the checks `keep` accepts (each run stays in order).
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Due) -> bool) {
        for run in &mut self.runs {
            run.retain(&mut keep);
        }
        self.heap.retain(|Reverse(d)| keep(d));
    }

    /// Forgets every check.
    pub(super) fn clear(&mut self) {
        self.runs.clear();
        self.heap.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::model::journey::pending::Key;
    use crate::model::journey::{Family, Phase};
    use crate::model::jsonw::tests::rng;

    fn due(at: u64, serial: u64) -> Due {
        let a = IpAddr::from([172, 20, 0, 2]);
        Due {
            at,
            serial,
            key: Key::new(Family::Icmp, Phase::Request, a, a, 7, serial as u16),
        }
    }

    /// Pushes from several time-ordered streams and some out of order, pops in between:
    /// the same order as one binary heap gives.
    #[test]
    fn pops_in_heap_order() {
        let mut next = rng(7);
        let mut q = DueQueue::default();
        let mut heap = BinaryHeap::new();
        let mut t = 0u64;
        for serial in 0..20_000u64 {
            let r = next();
            t += r % 100;
            // Streams at three offsets, some checks anywhere before the latest.
            let at = match r >> 8 & 15 {
                0 => t.saturating_sub(r >> 16 & 0xfff),
                1..=4 => t + 200_000,
                5..=6 => t + 2_000_000,
                _ => t,
            };
            q.push(due(at, serial));
            heap.push(Reverse(due(at, serial)));
            for _ in 0..(r >> 32 & 3) {
                assert_eq!(
                    q.peek().map(Due::order),
                    heap.peek().map(|Reverse(d)| d.order())
                );
                let (a, b) = (q.pop(), heap.pop().map(|Reverse(d)| d));
                assert_eq!(a.map(|d| d.order()), b.map(|d| d.order()));
            }
            assert_eq!(q.len(), heap.len());
        }
        q.retain(|d| d.serial % 3 != 0);
        heap.retain(|Reverse(d)| d.serial % 3 != 0);
        while let Some(Reverse(d)) = heap.pop() {
            assert_eq!(q.pop().map(|d| d.order()), Some(d.order()));
        }
        assert!(q.is_empty() && q.pop().is_none());
    }
}

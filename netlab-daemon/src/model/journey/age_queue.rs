//! Pending journeys in the order they started, so that the oldest is the one finished
//! early when `max_pending` are pending.

use std::collections::VecDeque;

use super::pending::Key;
use super::too_stale;

/// Pending journeys in creation order, for eviction. Serials only grow, so the queue stays
/// sorted by serial: a finished journey is found by binary search and leaves a hole, holes
/// at the front are dropped at once and the others once they outnumber the live entries.
/// Cheaper than an ordered map, which allocates and rebalances nodes for every journey.
#[derive(Debug, Default)]
pub(super) struct AgeQueue {
    /// (serial, key), `None` once finished; the front entry is live.
    entries: VecDeque<(u64, Option<Key>)>,
    live: usize,
}

impl AgeQueue {
    /// Adds a journey with a serial greater than any before.
    pub(super) fn push(&mut self, serial: u64, key: Key) {
        debug_assert!(self.entries.back().is_none_or(|&(s, _)| s < serial));
        self.entries.push_back((serial, Some(key)));
        self.live += 1;
    }

    /// Forgets the journey with `serial`, if it is here.
    pub(super) fn remove(&mut self, serial: u64) {
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
    pub(super) fn oldest(&self) -> Option<Key> {
        self.entries.front().and_then(|&(_, k)| k)
    }

    /// Pending journeys.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.live
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.live == 0
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::model::journey::{Family, Phase, STALE_SLACK};

    /// Finished journeys behind one that stays pending leave holes in the age queue; they
    /// are compacted away, and the oldest is still the one evicted.
    #[test]
    fn age_queue_holes_stay_bounded() {
        let mut q = AgeQueue::default();
        let (a, b) = (IpAddr::from([172, 20, 0, 2]), IpAddr::from([172, 20, 0, 3]));
        let key = |seq| Key::new(Family::Icmp, Phase::Request, a, b, 7, seq);
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
}

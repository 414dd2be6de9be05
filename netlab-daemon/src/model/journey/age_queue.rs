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
        let Some(i) = self.position(serial) else {
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

    /// Where the entry of `serial` is, if it is here. Serials are distinct and increasing,
    /// so the entry `k` places after the front has a serial at least `k` greater, and one
    /// `k` places before the back at least `k` smaller: that bounds where `serial` can be.
    /// Where nothing was compacted away, the bounds meet at once; a binary search between
    /// them finds it otherwise.
    fn position(&self, serial: u64) -> Option<usize> {
        let (&(first, _), &(last, _)) = (self.entries.front()?, self.entries.back()?);
        if serial < first || serial > last {
            return None;
        }
        let len = self.entries.len();
        let hi = usize::try_from(serial - first).map_or(len - 1, |d| d.min(len - 1));
        let lo = usize::try_from(last - serial).map_or(0, |d| (len - 1).saturating_sub(d));
        if self.entries[hi].0 == serial {
            return Some(hi);
        }
        let (a, b) = self.entries.as_slices();
        // The deque's two halves, `offset` its first entry's place.
        let find = |s: &[(u64, Option<Key>)], offset: usize| {
            let from = lo.saturating_sub(offset);
            let to = (hi + 1).saturating_sub(offset).min(s.len());
            if from >= to {
                return None;
            }
            s[from..to]
                .binary_search_by_key(&serial, |&(s, _)| s)
                .ok()
                .map(|i| offset + from + i)
        };
        find(a, 0).or_else(|| find(b, a.len()))
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

    /// Every entry is found where it is, whatever was compacted away before it, across
    /// the deque's wrap-around; serials that are not there are not found.
    #[test]
    fn positions_are_found() {
        let mut next = crate::model::jsonw::tests::rng(11);
        let mut q = AgeQueue::default();
        let a = IpAddr::from([172, 20, 0, 2]);
        let mut serial = 0u64;
        for _ in 0..20_000 {
            let r = next();
            // Gaps in the serials (ARP pairs take them too).
            serial += 1 + (r & 3 == 0) as u64 * (r >> 2 & 7);
            q.push(
                serial,
                Key::new(Family::Icmp, Phase::Request, a, a, 7, serial as u16),
            );
            if r >> 8 & 1 == 0 {
                let back = r >> 16 & 255;
                q.remove(serial.saturating_sub(back));
            }
            if r >> 9 & 63 == 0 {
                for (i, &(s, _)) in q.entries.iter().enumerate() {
                    assert_eq!(q.position(s), Some(i));
                    if q.entries.get(i + 1).is_none_or(|&(t, _)| t != s + 1) {
                        assert_eq!(q.position(s + 1), None);
                    }
                }
            }
        }
    }
}

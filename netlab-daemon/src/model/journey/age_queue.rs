//! Pending journeys in the order they started, so that the oldest is the one finished
//! early when `max_pending` are pending.

use std::collections::VecDeque;

use super::pending::Key;
use super::too_stale;

/// Serials the bitmap of finished journeys covers at most (128 KiB): about ten seconds of
/// a flood of 100,000 pings a second. Journeys older than that are found by binary search.
const BITMAP_WORDS: usize = 16_384;

/// Pending journeys in creation order, for eviction. Serials only grow, so the queue stays
/// sorted by serial. A journey that finishes is marked in a bitmap of the latest serials
/// (or, when older than the bitmap reaches, found by binary search and marked in its
/// entry): under a flood the queue spans seconds of journeys (megabytes), its bitmap a few
/// kilobytes, so finishing a journey touches memory that stays in cache. Finished entries
/// at the front are dropped at once, the others once they outnumber the live ones, in one
/// pass from front to back. Cheaper than an ordered map, which allocates and rebalances
/// nodes for every journey.
#[derive(Debug, Default)]
pub(super) struct AgeQueue {
    /// (serial, key) of the journeys pushed and not dropped yet, finished ones included
    /// (`None` when finished before the bitmap's start); the front entry is live.
    entries: VecDeque<(u64, Option<Key>)>,
    /// One bit per serial from `base` on, set once that journey finished (and for the
    /// serials between journeys, taken by ARP pairs).
    finished: VecDeque<u64>,
    /// The serial of bit 0 of `finished[0]`, a multiple of 64.
    base: u64,
    live: usize,
}

impl AgeQueue {
    /// Adds a journey with a serial greater than any before.
    pub(super) fn push(&mut self, serial: u64, key: Key) {
        debug_assert!(self.entries.back().is_none_or(|&(s, _)| s < serial));
        let after = match self.entries.back() {
            Some(&(last, _)) => last + 1,
            None => {
                // Nothing to keep track of before it.
                self.finished.clear();
                self.base = serial & !63;
                serial
            }
        };
        if (serial - self.base) / 64 >= BITMAP_WORDS as u64 {
            // Half the bitmap's reach before this serial stays covered.
            let reach = 64 * (BITMAP_WORDS as u64 / 2);
            self.rebase((serial & !63).saturating_sub(reach).max(self.base));
        }
        while self.base + 64 * self.finished.len() as u64 <= serial {
            self.finished.push_back(0);
        }
        // Serials skipped are no journeys: marked, so that removing one changes nothing.
        self.mark_range(after, serial);
        self.entries.push_back((serial, Some(key)));
        self.live += 1;
    }

    /// Moves the bitmap's start to `base` (a multiple of 64, not before the current one):
    /// entries before it that finished are marked in themselves.
    fn rebase(&mut self, base: u64) {
        for i in 0..self.entries.len() {
            let (s, k) = self.entries[i];
            if s >= base {
                break;
            }
            if self.is_finished(s, k.as_ref()) {
                self.entries[i].1 = None;
            }
        }
        let words = usize::try_from((base - self.base) / 64).unwrap_or(usize::MAX);
        self.finished.drain(..words.min(self.finished.len()));
        self.base = base;
    }

    /// Marks the serials from `from` up to (not including) `to` finished, where the
    /// bitmap covers them.
    fn mark_range(&mut self, from: u64, to: u64) {
        let mut s = from.max(self.base);
        while s < to {
            let Some((w, _)) = self.bit(s) else {
                return;
            };
            let offset = (s - self.base) % 64;
            let n = (to - s).min(64 - offset);
            self.finished[w] |= (u64::MAX >> (64 - n)) << offset;
            s += n;
        }
    }

    /// Where the bit of `serial` is (word, mask), if the bitmap covers it.
    fn bit(&self, serial: u64) -> Option<(usize, u64)> {
        let i = serial.checked_sub(self.base)?;
        let word = usize::try_from(i / 64).ok()?;
        (word < self.finished.len()).then_some((word, 1 << (i % 64)))
    }

    /// Marks `serial` finished in the bitmap; whether it was not yet.
    fn mark(&mut self, serial: u64) -> bool {
        let Some((w, m)) = self.bit(serial) else {
            return false;
        };
        let was = self.finished[w] & m != 0;
        self.finished[w] |= m;
        !was
    }

    /// Whether the entry (`serial`, `key`) is of a finished journey.
    fn is_finished(&self, serial: u64, key: Option<&Key>) -> bool {
        key.is_none()
            || self
                .bit(serial)
                .is_some_and(|(w, m)| self.finished[w] & m != 0)
    }

    /// Forgets the journey with `serial`, if it is here.
    pub(super) fn remove(&mut self, serial: u64) {
        let (Some(&(first, _)), Some(&(last, _))) = (self.entries.front(), self.entries.back())
        else {
            return;
        };
        if serial < first || serial > last {
            return;
        }
        let removed = if serial >= self.base {
            self.mark(serial)
        } else {
            self.position(serial)
                .is_some_and(|i| self.entries[i].1.take().is_some())
        };
        if !removed {
            return;
        }
        self.live -= 1;
        if too_stale(self.entries.len(), self.live) {
            let mut entries = std::mem::take(&mut self.entries);
            entries.retain(|(s, k)| !self.is_finished(*s, k.as_ref()));
            self.entries = entries;
        }
        while let Some((s, k)) = self.entries.front() {
            if !self.is_finished(*s, k.as_ref()) {
                break;
            }
            self.entries.pop_front();
        }
        // Bits below the front entry are never asked for again.
        let front = self.entries.front().map_or(u64::MAX, |&(s, _)| s);
        while self.base.saturating_add(64) <= front && !self.finished.is_empty() {
            self.finished.pop_front();
            self.base += 64;
        }
    }

    /// Where the entry of `serial` is, if it is here.
    fn position(&self, serial: u64) -> Option<usize> {
        let (a, b) = self.entries.as_slices();
        match a.binary_search_by_key(&serial, |&(s, _)| s) {
            Ok(i) => Some(i),
            Err(_) => b
                .binary_search_by_key(&serial, |&(s, _)| s)
                .ok()
                .map(|i| a.len() + i),
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
    use std::collections::BTreeMap;
    use std::net::IpAddr;

    use super::*;
    use crate::model::journey::{Family, Phase, STALE_SLACK};

    fn key(seq: u64) -> Key {
        let (a, b) = (IpAddr::from([172, 20, 0, 2]), IpAddr::from([172, 20, 0, 3]));
        Key::new(Family::Icmp, Phase::Request, a, b, 7, seq as u16)
    }

    /// Finished journeys behind one that stays pending leave holes in the age queue; they
    /// are compacted away, and the oldest is still the one evicted.
    #[test]
    fn age_queue_holes_stay_bounded() {
        let mut q = AgeQueue::default();
        q.push(0, key(0));
        for serial in 1..(64 * BITMAP_WORDS as u64 + 10_000) {
            q.push(serial, key(serial));
            q.remove(serial);
            assert!(q.entries.len() <= 2 * q.len() + STALE_SLACK + 1);
            assert!(q.finished.len() <= BITMAP_WORDS);
        }
        assert_eq!((q.len(), q.oldest()), (1, Some(key(0))));
        let serial = 64 * BITMAP_WORDS as u64 + 10_000;
        q.push(serial, key(1));
        q.remove(0);
        assert_eq!((q.len(), q.oldest()), (1, Some(key(1))));
        assert_eq!(q.entries.len(), 1, "holes at the front are dropped");
        assert!(q.finished.len() <= 1, "and their bits");
        q.remove(serial);
        assert!(q.is_empty() && q.oldest().is_none());
    }

    /// Against a sorted map of the live journeys: pushes with gaps in the serials (ARP
    /// pairs take serials too; some gaps beyond the bitmap's reach), removals of recent
    /// and old journeys (before the bitmap's start), twice, or of serials never pushed;
    /// the oldest is always the live journey with the smallest serial.
    #[test]
    fn oldest_is_the_first_live_one() {
        let mut next = crate::model::jsonw::tests::rng(11);
        let mut q = AgeQueue::default();
        let mut model = BTreeMap::new();
        let mut serial = 0u64;
        for _ in 0..100_000 {
            let r = next();
            if r & 1 == 0 || model.is_empty() {
                serial += 1 + match r >> 1 & 63 {
                    0 => r >> 8 & 0x3f_ffff,
                    1..=15 => r >> 8 & 127,
                    _ => 0,
                };
                q.push(serial, key(serial));
                model.insert(serial, key(serial));
            } else {
                let s = match r >> 8 & 15 {
                    // The oldest, or anywhere back.
                    0 => model.keys().next().copied().unwrap_or_default(),
                    1 => serial.saturating_sub(r >> 16 & 0xff_ffff),
                    _ => serial.saturating_sub(r >> 16 & 63),
                };
                q.remove(s);
                model.remove(&s);
            }
            assert_eq!(q.oldest(), model.values().next().copied());
            assert_eq!(q.len(), model.len());
            assert!(q.entries.len() <= 2 * q.len() + STALE_SLACK + 1);
            assert!(q.finished.len() <= BITMAP_WORDS);
        }
    }
}

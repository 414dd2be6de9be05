//! Counter slots: the exact per-interface packet counters the programs update with two
//! array lookups instead of a hash lookup.
//!
//! User space gives each attached interface a slot of the per-CPU array
//! `NETLAB_SLOT_COUNTERS` and writes `ifindex << 32 | slot` into cell `ifindex %
//! IF_SLOT_CELLS` of `NETLAB_IF_SLOTS`. A program counts a packet in the slot when the
//! cell names its interface, else in the per-CPU hash `NETLAB_COUNTERS` as before (an
//! interface with no slot: slots all taken, its cell held by another interface, or
//! between its first packet and user space's write). Readers add both up, so every packet
//! is counted once, wherever it was counted.
//!
//! A slot is given back when its interface is forgotten: the cell is cleared first (later
//! packets go to the hash), then the slot is read and zeroed, so its next interface starts
//! from zero.

use std::collections::{BTreeMap, HashMap};

use aya::maps::{Array, MapData, PerCpuArray, PerCpuValues};
use netlab_common::{
    slot_cell, SlotCounters, COUNTER_SLOTS, IF_SLOT_CELLS, MAP_IF_SLOTS, MAP_SLOT_COUNTERS,
};

use super::{map_err, Datapath, LoadError};
use crate::model::kind::{Direction, Kind};

/// User space's copy of the slot table.
#[derive(Debug, Default)]
pub(super) struct Slots {
    /// Interface index → slot.
    by_ifindex: HashMap<u32, u32>,
    /// Slots given back, reused first.
    free: Vec<u32>,
    /// Slots never given yet start here.
    next: u32,
}

impl Slots {
    /// The table an earlier run left in pinned maps (cells with a slot in range, each slot
    /// once); empty when the map is new.
    fn read<T: std::borrow::Borrow<MapData>>(table: &Array<T, u64>) -> Self {
        let mut s = Slots::default();
        let mut used = vec![false; COUNTER_SLOTS as usize];
        for cell in 0..IF_SLOT_CELLS {
            let Ok(v) = table.get(&cell, 0) else { continue };
            let (ifindex, slot) = ((v >> 32) as u32, v as u32);
            if v == 0 || slot >= COUNTER_SLOTS || ifindex % IF_SLOT_CELLS != cell {
                continue;
            }
            if !std::mem::replace(&mut used[slot as usize], true) {
                s.by_ifindex.insert(ifindex, slot);
            }
        }
        s.next = used.iter().rposition(|u| *u).map_or(0, |i| i as u32 + 1);
        s.free = (0..s.next).filter(|i| !used[*i as usize]).rev().collect();
        s
    }

    /// A slot for a new interface, if any is left.
    fn take(&mut self) -> Option<u32> {
        self.free.pop().or_else(|| {
            (self.next < COUNTER_SLOTS).then(|| {
                self.next += 1;
                self.next - 1
            })
        })
    }

    /// Whether another interface with a slot holds `ifindex`'s cell.
    fn cell_taken(&self, ifindex: u32) -> bool {
        let cell = ifindex % IF_SLOT_CELLS;
        self.by_ifindex
            .keys()
            .any(|i| *i != ifindex && i % IF_SLOT_CELLS == cell)
    }
}

/// Adds one slot's per-CPU values into `out`.
fn add_up(values: &PerCpuValues<SlotCounters>, out: &mut BTreeMap<(Direction, Kind), u64>) {
    for (d, dir) in [Direction::Ingress, Direction::Egress]
        .into_iter()
        .enumerate()
    {
        for k in 0..netlab_common::kind::COUNT {
            let n: u64 = values.iter().map(|c| c.n[d][usize::from(k)]).sum();
            if let (Some(kind), true) = (Kind::from_id(k), n > 0) {
                *out.entry((dir, kind)).or_insert(0) += n;
            }
        }
    }
}

/// The counters in the slots of the maps a stopped daemon left pinned in `dir`, by
/// interface (nothing when it pinned no slots).
pub fn pinned_slot_counters(
    dir: &std::path::Path,
) -> Result<BTreeMap<(u32, Direction, Kind), u64>, LoadError> {
    use aya::maps::Map;
    let mut out = BTreeMap::new();
    let (table, counters) = (dir.join(MAP_IF_SLOTS), dir.join(MAP_SLOT_COUNTERS));
    if !table.exists() || !counters.exists() {
        return Ok(out);
    }
    let open =
        |path: &std::path::Path, name: &'static str| MapData::from_pin(path).map_err(map_err(name));
    let table: Array<_, u64> =
        Array::try_from(Map::Array(open(&table, MAP_IF_SLOTS)?)).map_err(map_err(MAP_IF_SLOTS))?;
    let arr: PerCpuArray<_, SlotCounters> =
        PerCpuArray::try_from(Map::PerCpuArray(open(&counters, MAP_SLOT_COUNTERS)?))
            .map_err(map_err(MAP_SLOT_COUNTERS))?;
    for (ifindex, slot) in Slots::read(&table).by_ifindex {
        let values = arr.get(&slot, 0).map_err(map_err(MAP_SLOT_COUNTERS))?;
        let mut one = BTreeMap::new();
        add_up(&values, &mut one);
        for ((dir, kind), n) in one {
            *out.entry((ifindex, dir, kind)).or_insert(0) += n;
        }
    }
    Ok(out)
}

impl Datapath {
    /// Reads the slot table an earlier run pinned (or the new, empty one).
    pub(super) fn read_slots(&mut self) -> Result<(), LoadError> {
        let map = self
            .ebpf
            .map(MAP_IF_SLOTS)
            .ok_or(LoadError::MissingProgram(MAP_IF_SLOTS))?;
        let table: Array<_, u64> = Array::try_from(map).map_err(map_err(MAP_IF_SLOTS))?;
        self.slots = Slots::read(&table);
        Ok(())
    }

    /// Gives interface `ifindex` a counter slot (nothing when it has one, when none is
    /// left, or when its cell is another's: it is then counted in the hash).
    pub fn give_slot(&mut self, ifindex: u32) -> Result<(), LoadError> {
        if ifindex == 0
            || self.slots.by_ifindex.contains_key(&ifindex)
            || self.slots.cell_taken(ifindex)
        {
            return Ok(());
        }
        let Some(slot) = self.slots.take() else {
            return Ok(());
        };
        // Its values are zero: never used, or zeroed when given back.
        let map = self
            .ebpf
            .map_mut(MAP_IF_SLOTS)
            .ok_or(LoadError::MissingProgram(MAP_IF_SLOTS))?;
        let mut table: Array<_, u64> = Array::try_from(map).map_err(map_err(MAP_IF_SLOTS))?;
        if let Err(e) = table.set(ifindex % IF_SLOT_CELLS, slot_cell(ifindex, slot), 0) {
            self.slots.free.push(slot);
            return Err(map_err(MAP_IF_SLOTS)(e));
        }
        self.slots.by_ifindex.insert(ifindex, slot);
        Ok(())
    }

    /// The counters of every interface with a slot, summed over CPUs, into `out`.
    pub(super) fn slot_counters(
        &self,
        out: &mut BTreeMap<(u32, Direction, Kind), u64>,
    ) -> Result<(), LoadError> {
        if self.slots.by_ifindex.is_empty() {
            return Ok(());
        }
        let arr = self.slot_array()?;
        for (ifindex, slot) in &self.slots.by_ifindex {
            let values = arr.get(slot, 0).map_err(map_err(MAP_SLOT_COUNTERS))?;
            let mut one = BTreeMap::new();
            add_up(&values, &mut one);
            for ((dir, kind), n) in one {
                *out.entry((*ifindex, dir, kind)).or_insert(0) += n;
            }
        }
        Ok(())
    }

    /// Takes `ifindex`'s slot back: clears its cell, reads and zeroes its counters into
    /// `out`.
    pub(super) fn return_slot(
        &mut self,
        ifindex: u32,
        out: &mut BTreeMap<(Direction, Kind), u64>,
    ) -> Result<(), LoadError> {
        let Some(slot) = self.slots.by_ifindex.remove(&ifindex) else {
            return Ok(());
        };
        {
            let map = self
                .ebpf
                .map_mut(MAP_IF_SLOTS)
                .ok_or(LoadError::MissingProgram(MAP_IF_SLOTS))?;
            let mut table: Array<_, u64> = Array::try_from(map).map_err(map_err(MAP_IF_SLOTS))?;
            table
                .set(ifindex % IF_SLOT_CELLS, 0, 0)
                .map_err(map_err(MAP_IF_SLOTS))?;
        }
        let map = self
            .ebpf
            .map_mut(MAP_SLOT_COUNTERS)
            .ok_or(LoadError::MissingProgram(MAP_SLOT_COUNTERS))?;
        let mut arr: PerCpuArray<_, SlotCounters> =
            PerCpuArray::try_from(map).map_err(map_err(MAP_SLOT_COUNTERS))?;
        let values = arr.get(&slot, 0).map_err(map_err(MAP_SLOT_COUNTERS))?;
        add_up(&values, out);
        let zero = PerCpuValues::try_from(vec![SlotCounters::default(); values.len()])
            .map_err(|e| map_err(MAP_SLOT_COUNTERS)(aya::maps::MapError::IoError(e)))?;
        arr.set(slot, zero, 0).map_err(map_err(MAP_SLOT_COUNTERS))?;
        self.slots.free.push(slot);
        Ok(())
    }

    fn slot_array(&self) -> Result<PerCpuArray<&MapData, SlotCounters>, LoadError> {
        let map = self
            .ebpf
            .map(MAP_SLOT_COUNTERS)
            .ok_or(LoadError::MissingProgram(MAP_SLOT_COUNTERS))?;
        PerCpuArray::try_from(map).map_err(map_err(MAP_SLOT_COUNTERS))
    }

    /// Interfaces with a counter slot.
    pub fn slotted(&self) -> usize {
        self.slots.by_ifindex.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_and_bounded() {
        let mut s = Slots::default();
        assert_eq!((s.take(), s.take()), (Some(0), Some(1)));
        s.free.push(0);
        assert_eq!(s.take(), Some(0));
        s.next = COUNTER_SLOTS;
        assert_eq!(s.take(), None);
    }

    #[test]
    fn a_cell_holds_one_interface() {
        let mut s = Slots::default();
        s.by_ifindex.insert(5, 0);
        assert!(s.cell_taken(5 + IF_SLOT_CELLS));
        assert!(!s.cell_taken(5));
        assert!(!s.cell_taken(6));
    }
}

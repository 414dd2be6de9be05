//! What user space reads from the kernel's maps: exact packet counters, delivery statistics,
//! and the sample ring buffer.

use std::collections::BTreeMap;

use aya::maps::{Array, MapData, PerCpuArray, PerCpuHashMap, RingBuf};
use netlab_common::{
    stat, CounterKey, SampleState, VxlanKey, MAP_COUNTERS, MAP_EVENTS, MAP_RING_WAKE, MAP_SAMPLING,
    MAP_STATS, MAP_VXLAN_COUNTERS, MAP_VXLAN_PORT,
};

use super::{map_err, Datapath, LoadError};
use crate::model::kind::{Direction, Kind};

/// The key of a VXLAN counter: (ifindex, VNI, direction, kind of the inner packet).
pub type VxlanCounter = (u32, u32, Direction, Kind);

/// Delivery statistics summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeliveryStats {
    /// Samples lost because the ring buffer was full.
    pub ring_full: u64,
    /// Samples dropped by the in-kernel rate limit.
    pub rate_limited: u64,
    /// Packets counted but not sampled (1-in-N sampling; not a loss).
    pub sampled_out: u64,
    /// Drop reports lost because the ring buffer was full.
    pub drop_ring_full: u64,
}

impl DeliveryStats {
    /// Samples that were due but never reached user space.
    pub fn lost(&self) -> u64 {
        self.ring_full + self.rate_limited + self.drop_ring_full
    }
}

impl Datapath {
    /// Takes the sample ring buffer (once).
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        let map = self
            .ebpf
            .take_map(MAP_EVENTS)
            .ok_or(LoadError::MissingProgram(MAP_EVENTS))?;
        RingBuf::try_from(map).map_err(map_err(MAP_EVENTS))
    }

    /// Exact packet counters, summed over CPUs, for every (ifindex, direction, kind) seen
    /// (from the hash and the slots).
    pub fn counters(&self) -> Result<BTreeMap<(u32, Direction, Kind), u64>, LoadError> {
        let map = self
            .ebpf
            .map(MAP_COUNTERS)
            .ok_or(LoadError::MissingProgram(MAP_COUNTERS))?;
        let counters: PerCpuHashMap<_, CounterKey, u64> =
            PerCpuHashMap::try_from(map).map_err(map_err(MAP_COUNTERS))?;
        let mut out = BTreeMap::new();
        for entry in counters.iter() {
            let (key, values) = entry.map_err(map_err(MAP_COUNTERS))?;
            let (Some(dir), Some(kind)) =
                (Direction::from_id(key.direction), Kind::from_id(key.kind))
            else {
                continue;
            };
            let total: u64 = values.iter().sum();
            *out.entry((key.ifindex, dir, kind)).or_insert(0) += total;
        }
        self.slot_counters(&mut out)?;
        Ok(out)
    }

    /// Exact counters of the ARP/ICMP packets seen inside VXLAN, summed over CPUs, by
    /// (ifindex, VNI, direction, inner kind).
    pub fn vxlan_counters(&self) -> Result<BTreeMap<VxlanCounter, u64>, LoadError> {
        let map = self
            .ebpf
            .map(MAP_VXLAN_COUNTERS)
            .ok_or(LoadError::MissingProgram(MAP_VXLAN_COUNTERS))?;
        let counters: PerCpuHashMap<_, VxlanKey, u64> =
            PerCpuHashMap::try_from(map).map_err(map_err(MAP_VXLAN_COUNTERS))?;
        let mut out = BTreeMap::new();
        for entry in counters.iter() {
            let (key, values) = entry.map_err(map_err(MAP_VXLAN_COUNTERS))?;
            if let (Some(dir), Some(kind)) =
                (Direction::from_id(key.direction), Kind::from_id(key.kind))
            {
                *out.entry((key.ifindex, key.vni, dir, kind)).or_insert(0) +=
                    values.iter().sum::<u64>();
            }
        }
        Ok(out)
    }

    /// Tells the tc programs the VXLAN port of this host's Swarm (its data-path port) to
    /// look into; 0: none, UDP is skipped.
    pub fn set_vxlan_port(&mut self, port: u16) -> Result<(), LoadError> {
        let map = self
            .ebpf
            .map_mut(MAP_VXLAN_PORT)
            .ok_or(LoadError::MissingProgram(MAP_VXLAN_PORT))?;
        let mut a: Array<_, u32> = Array::try_from(map).map_err(map_err(MAP_VXLAN_PORT))?;
        a.set(0, u32::from(port), 0)
            .map_err(map_err(MAP_VXLAN_PORT))
    }

    /// Removes the counters of interface `ifindex` from the kernel maps (its slot, then
    /// the hash) and returns them (summed over CPUs), so that a gone interface leaves no
    /// entry behind.
    pub fn take_counters(
        &mut self,
        ifindex: u32,
    ) -> Result<BTreeMap<(Direction, Kind), u64>, LoadError> {
        let mut out = BTreeMap::new();
        self.return_slot(ifindex, &mut out)?;
        let map = self
            .ebpf
            .map_mut(MAP_COUNTERS)
            .ok_or(LoadError::MissingProgram(MAP_COUNTERS))?;
        let mut counters: PerCpuHashMap<_, CounterKey, u64> =
            PerCpuHashMap::try_from(map).map_err(map_err(MAP_COUNTERS))?;
        let keys: Vec<CounterKey> = counters
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.ifindex == ifindex)
            .collect();
        for key in keys {
            let Ok(values) = counters.get(&key, 0) else {
                continue;
            };
            if let (Some(dir), Some(kind)) =
                (Direction::from_id(key.direction), Kind::from_id(key.kind))
            {
                *out.entry((dir, kind)).or_insert(0) += values.iter().sum::<u64>();
            }
            counters.remove(&key).map_err(map_err(MAP_COUNTERS))?;
        }
        Ok(out)
    }

    /// Until when the programs take the ring's reader to poll (CLOCK_MONOTONIC ns, see
    /// [`netlab_common::MAP_RING_WAKE`]); `None` when the map cannot be read.
    pub fn ring_poll_until(&self) -> Option<u64> {
        let map = self.ebpf.map(MAP_RING_WAKE)?;
        let a: Array<_, u64> = Array::try_from(map).ok()?;
        a.get(&0, 0).ok()
    }

    /// Tells the programs that the ring's reader polls until `until` (CLOCK_MONOTONIC ns):
    /// until then, their records do not wake it.
    pub fn set_ring_poll_until(&mut self, until: u64) -> Result<(), LoadError> {
        let map = self
            .ebpf
            .map_mut(MAP_RING_WAKE)
            .ok_or(LoadError::MissingProgram(MAP_RING_WAKE))?;
        let mut a: Array<_, u64> = Array::try_from(map).map_err(map_err(MAP_RING_WAKE))?;
        a.set(0, until, 0).map_err(map_err(MAP_RING_WAKE))
    }

    /// Delivery statistics, summed over CPUs.
    pub fn delivery(&self) -> Result<DeliveryStats, LoadError> {
        let map = self
            .ebpf
            .map(MAP_STATS)
            .ok_or(LoadError::MissingProgram(MAP_STATS))?;
        let stats: PerCpuArray<_, u64> = PerCpuArray::try_from(map).map_err(map_err(MAP_STATS))?;
        let slot = |i: u32| -> Result<u64, LoadError> {
            Ok(stats.get(&i, 0).map_err(map_err(MAP_STATS))?.iter().sum())
        };
        let sampled_out = {
            let map = self
                .ebpf
                .map(MAP_SAMPLING)
                .ok_or(LoadError::MissingProgram(MAP_SAMPLING))?;
            let st: PerCpuArray<_, SampleState> =
                PerCpuArray::try_from(map).map_err(map_err(MAP_SAMPLING))?;
            st.get(&0, 0)
                .map_err(map_err(MAP_SAMPLING))?
                .iter()
                .map(|s| s.sampled_out)
                .sum()
        };
        Ok(DeliveryStats {
            ring_full: slot(stat::RING_FULL)?,
            rate_limited: slot(stat::RATE_LIMITED)?,
            sampled_out,
            drop_ring_full: slot(stat::DROP_RING_FULL)?,
        })
    }
}

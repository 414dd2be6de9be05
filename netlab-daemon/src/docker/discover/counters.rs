//! Every counter of an observer: live interfaces' from the kernel, gone interfaces' kept in
//! memory by name (folded into one `(gone)` row per kind after a while), so totals stay exact.

use super::Observer;
use crate::docker::topology::Topology;
use crate::kernel::loader::LoadError;
use crate::model::kind::{Direction, Kind};
use crate::model::summary::{CounterRow, VxlanRow};

/// The interface name under which counters of long-gone interfaces are summed.
pub const GONE: &str = "(gone)";

/// The counters of an interface that went away, kept by name.
#[derive(Clone, Debug)]
pub(super) struct Retired {
    pub(super) ifindex: u32,
    pub(super) iface: String,
    pub(super) label: Option<String>,
    pub(super) dir: Direction,
    pub(super) kind: Kind,
    pub(super) packets: u64,
    pub(super) at: std::time::Instant,
}

impl Observer {
    /// Every counter: live interfaces' from the kernel, gone interfaces' from memory.
    pub fn counter_rows(&self) -> Result<Vec<CounterRow>, LoadError> {
        let mut rows: Vec<CounterRow> = Vec::new();
        for ((idx, dir, kind), n) in self.dp.counters()? {
            let Some(name) = self.name_of(idx) else {
                continue;
            };
            rows.push(CounterRow {
                iface: name.clone(),
                ifindex: idx,
                label: self.labels.get(&idx).cloned(),
                direction: dir.name(),
                kind: kind.name(),
                packets: n,
            });
        }
        for r in &self.retired {
            rows.push(CounterRow {
                iface: r.iface.clone(),
                ifindex: r.ifindex,
                label: r.label.clone(),
                direction: r.dir.name(),
                kind: r.kind.name(),
                packets: r.packets,
            });
        }
        Ok(rows)
    }

    /// The VXLAN counters of the interfaces observed now, each VNI named by `topo`'s
    /// overlays.
    pub fn vxlan_rows(&self, topo: &Topology) -> Result<Vec<VxlanRow>, LoadError> {
        let mut rows = Vec::new();
        for ((idx, vni, dir, kind), n) in self.dp.vxlan_counters()? {
            let Some(name) = self.name_of(idx) else {
                continue;
            };
            rows.push(VxlanRow {
                iface: name.clone(),
                ifindex: idx,
                vni,
                network: topo.overlay_by_vni(vni).map(str::to_owned),
                direction: dir.name().to_owned(),
                kind: kind.name().to_owned(),
                packets: n,
            });
        }
        Ok(rows)
    }

    /// The name of interface `idx`, attached now or detached at the end (its counters are
    /// still in the maps).
    fn name_of(&self, idx: u32) -> Option<&String> {
        self.attached
            .get(&idx)
            .map(|a| &a.iface)
            .or_else(|| self.detached.get(&idx))
    }

    /// Sums the counters of interfaces gone for longer than `grace` into one row per
    /// (direction, kind) named `(gone)`, so label sets stay bounded and totals never drop.
    pub fn fold_retired(&mut self, grace: std::time::Duration) {
        let (old, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retired)
            .into_iter()
            .partition(|r| r.at.elapsed() >= grace && r.iface != GONE);
        self.retired = keep;
        for r in old {
            match self
                .retired
                .iter_mut()
                .find(|g| g.iface == GONE && g.dir == r.dir && g.kind == r.kind)
            {
                Some(g) => g.packets += r.packets,
                None => self.retired.push(Retired {
                    ifindex: 0,
                    iface: GONE.to_owned(),
                    label: None,
                    ..r
                }),
            }
        }
    }
}

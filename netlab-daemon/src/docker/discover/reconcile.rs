//! Keeping the attachments in step with a topology: attaching what it observes, detaching
//! (and taking the counters of) what it no longer does, and the labels a person reads.

use std::collections::BTreeMap;

use super::{Observer, Retired};
use crate::docker::topology::{Role, Topology};
use crate::model::kind::{Direction, Kind};

/// What a person reads for `o`, when its name alone says little (a container's or a
/// hand-made veth, a Docker network's bridge).
pub fn label_of(o: &crate::docker::topology::ObservedIface) -> Option<String> {
    let named = match o.role {
        Role::ContainerVeth | Role::ManualVeth => o.container.is_some() || o.network.is_some(),
        Role::Bridge => o.network.is_some(),
        Role::SwarmUplink
        | Role::OverlayBridge
        | Role::OverlayVxlan
        | Role::LoadBalancerLeg
        | Role::IngressLeg => true,
        Role::Veth | Role::Interface => false,
    };
    named.then(|| {
        let mut s = String::new();
        crate::model::event::IfaceView::of(o).describe(&mut s);
        s
    })
}

/// An interface no longer observed, with its final counters (moved out of the kernel
/// map when it was detached).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forgotten {
    pub ifindex: u32,
    pub name: String,
    pub counters: BTreeMap<(Direction, Kind), u64>,
}

/// What [`Observer::reconcile`] changed beyond attaching.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// Interfaces detached (no longer in the topology), with their counters.
    pub forgotten: Vec<Forgotten>,
    /// Interfaces that could not be attached: ifindex, name, why.
    pub failed: Vec<(u32, String, String)>,
}

impl Observer {
    /// Attaches to `ifaces` (name, ifindex) strictly: the first error is returned and
    /// everything attached so far stays owned (and is detached on drop).
    pub fn attach_all(&mut self, ifaces: &[(u32, String)]) -> anyhow::Result<()> {
        for (idx, _name, r) in self.attach_batch(ifaces) {
            self.attached.insert(idx, r?);
            self.hand_over(idx);
        }
        Ok(())
    }

    /// Attaches to what `topo` observes and is not attached yet, detaches what it no longer
    /// observes. Errors on single interfaces (one that vanished meanwhile) are logged.
    pub fn reconcile(&mut self, topo: &Topology) -> Reconciled {
        let mut done = Reconciled::default();
        let bridges: std::collections::BTreeSet<u32> = topo
            .observed
            .iter()
            .filter(|o| o.role == Role::Bridge)
            .map(|o| o.ifindex)
            .collect();
        if let Err(e) = self.dp.set_cover_bridges(&bridges) {
            log::debug!("listing the bridges to cover new ports of: {e:#}");
        }
        // A Swarm node's overlay traffic: looked into on its data-path port, elsewhere not.
        let port = topo.swarm.as_ref().map_or(0, |s| s.data_path_port);
        if let Err(e) = self.dp.set_vxlan_port(port) {
            log::debug!("setting the VXLAN port: {e:#}");
        }
        if let Err(e) = self.dp.set_drop_vxlan_port(port) {
            log::debug!("setting the VXLAN port of drops: {e:#}");
        }
        for o in &topo.observed {
            match label_of(o) {
                Some(l) => {
                    self.labels.insert(o.ifindex, l);
                }
                None => {
                    self.labels.remove(&o.ifindex);
                }
            }
        }
        let gone: Vec<u32> = self
            .attached
            .keys()
            .copied()
            .filter(|idx| topo.iface(*idx).is_none())
            .collect();
        for idx in gone {
            done.forgotten.extend(self.forget(idx));
        }
        let mut todo: Vec<(u32, String)> = Vec::new();
        for o in &topo.observed {
            if self.in_flight == Some(o.ifindex)
                || self.pending.iter().any(|(i, _)| *i == o.ifindex)
            {
                // Attached in its turn (covered meanwhile).
                continue;
            }
            if let Some(a) = self.attached.get(&o.ifindex) {
                if a.iface == o.name {
                    continue;
                }
                if !self.sandboxed.contains_key(&o.ifindex) && self.still_attached(o.ifindex) {
                    // Renamed: the links follow the interface, only the name changes (a
                    // release and attach of the same programs could fail while the kernel
                    // frees the old links).
                    if let Some(a) = self.attached.get_mut(&o.ifindex) {
                        log::debug!("{} is now called {}", a.iface, o.name);
                        a.rename(&o.name);
                    }
                    continue;
                }
                // The index was reused by another interface: start again.
                done.forgotten.extend(self.forget(o.ifindex));
            }
            if let Some(path) = &o.sandbox {
                match self.attach_in_sandbox(o.index_in_netns(), &o.name, path) {
                    Ok(a) => {
                        log::debug!("attached to {} in {path}", o.name);
                        self.attached.insert(o.ifindex, a);
                        self.sandboxed.insert(o.ifindex, path.clone());
                    }
                    Err(e) => {
                        log::debug!("{e:#}");
                        done.failed
                            .push((o.ifindex, o.name.clone(), format!("{e:#}")));
                    }
                }
                continue;
            }
            todo.push((o.ifindex, o.name.clone()));
        }
        for (idx, name, r) in self.attach_batch(&todo) {
            match r {
                Ok(a) => {
                    log::debug!("attached to {name}");
                    self.attached.insert(idx, a);
                    self.hand_over(idx);
                }
                // Gone between the scan and now (churn): the next scan forgets it.
                Err(e)
                    if matches!(
                        e.downcast_ref(),
                        Some(crate::kernel::attach::AttachError::NoSuchInterface { .. })
                    ) || crate::kernel::attach::ifindex(&name) != Some(idx) =>
                {
                    log::debug!("{e}")
                }
                Err(e) => {
                    log::warn!("{e:#}");
                    done.failed.push((idx, name, format!("{e:#}")));
                }
            }
        }
        done
    }

    /// Detaches from interface `ifindex` (gone or no longer wanted) and moves its counters
    /// out of the kernel map; returns them (`None` when it was not attached).
    pub fn forget(&mut self, ifindex: u32) -> Option<Forgotten> {
        self.pending.retain(|(i, _)| *i != ifindex);
        self.covering.remove(&ifindex);
        if let Err(e) = self.dp.uncover(ifindex, true) {
            log::debug!("uncovering {ifindex}: {e:#}");
        }
        self.sandboxed.remove(&ifindex);
        let mut a = self.attached.remove(&ifindex)?;
        let name = a.iface.clone();
        a.unpin();
        drop(a);
        let label = self.labels.remove(&ifindex);
        let mut forgotten = Forgotten {
            ifindex,
            name: name.clone(),
            counters: BTreeMap::new(),
        };
        match self.dp.take_counters(ifindex) {
            Ok(rows) => {
                let now = std::time::Instant::now();
                forgotten.counters = rows.clone();
                for ((dir, kind), n) in rows {
                    self.retired.push(Retired {
                        ifindex,
                        iface: name.clone(),
                        label: label.clone(),
                        dir,
                        kind,
                        packets: n,
                        at: now,
                    });
                }
            }
            Err(e) => log::warn!("reading the counters of {name}: {e:#}"),
        }
        log::debug!("detached from {name}");
        Some(forgotten)
    }

    /// Detaches everything (also done on drop; pinned links stay); the counters stay
    /// readable.
    pub fn detach_all(&mut self) {
        for (idx, a) in std::mem::take(&mut self.attached) {
            self.detached.insert(idx, a.iface.clone());
        }
    }
}

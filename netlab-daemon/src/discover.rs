//! Finding what to observe (Docker's networks and containers, the host's bridges, each
//! container's veths from inside its namespace), and keeping the attachments in step.

use std::collections::{BTreeMap, HashMap};

use crate::attach::{AttachMode, Attachment};
use crate::docker::DockerSnapshot;
use crate::kind::{Direction, Kind};
use crate::links;
use crate::loader::{Datapath, LoadError};
use crate::summary::CounterRow;
use crate::topology::{NetnsScan, Role, Topology};

/// Reads the host's links and, for each running container, the links and addresses inside
/// its network namespace, and derives the topology. Blocking: it starts one short-lived
/// thread per container (see [`links::in_netns_of`]).
pub fn scan(docker: Option<&DockerSnapshot>) -> std::io::Result<Topology> {
    let host = links::dump_links()?;
    let host_addrs = links::dump_addrs()?;
    let mut scans = HashMap::new();
    let me = links::netns_id(None).ok();
    if let Some(d) = docker {
        for c in &d.containers {
            // A container sharing the host's namespace (--network host) has no veth.
            if links::netns_id(Some(c.pid)).ok() == me {
                continue;
            }
            let inode = links::netns_id(Some(c.pid)).map_or(0, |(_, ino)| ino);
            match links::in_netns_of(c.pid, move || {
                Ok(NetnsScan {
                    inode,
                    links: links::dump_links()?,
                    addrs: links::dump_addrs()?,
                })
            }) {
                Ok(s) => {
                    scans.insert(c.id.clone(), s);
                }
                // It may have stopped since Docker listed it.
                Err(e) => log::debug!("cannot look inside {} (pid {}): {e}", c.name, c.pid),
            }
        }
    }
    let host_inode = me.map_or(0, |(_, ino)| ino);
    Ok(Topology::build(docker, &host, &host_addrs, &scans)
        .with_netns_names(host_inode, &host, docker, &scans))
}

/// The interface name under which counters of long-gone interfaces are summed.
pub const GONE: &str = "(gone)";

/// The attachments of a running observer, kept in step with a [`Topology`].
pub struct Observer {
    dp: Datapath,
    mode: AttachMode,
    attached: BTreeMap<u32, Attachment>,
    /// Counters of interfaces that went away, kept by name so the totals stay exact, with
    /// when they went.
    retired: Vec<(u32, String, Direction, Kind, u64, std::time::Instant)>,
    /// Names of the interfaces detached at the end, whose counters are still in the map.
    detached: HashMap<u32, String>,
    /// Pin links here so they outlive the process (daemon mode).
    pin_dir: Option<std::path::PathBuf>,
}

impl Observer {
    pub fn new(dp: Datapath, mode: AttachMode) -> Self {
        Self {
            dp,
            mode,
            attached: BTreeMap::new(),
            retired: Vec::new(),
            detached: HashMap::new(),
            pin_dir: None,
        }
    }

    /// Pins every link under `dir` (created if needed), adopting links an earlier run
    /// pinned there, and removes pins left for interfaces that no longer exist.
    pub fn persist_in(mut self, dir: &std::path::Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        self.pin_dir = Some(dir.to_owned());
        Ok(self)
    }

    /// Removes pins under the pin directory whose interface is not in `topo`.
    pub fn prune_pins(&self, topo: &Topology) {
        let Some(dir) = &self.pin_dir else { return };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let keep = crate::attach::parse_pin_name(name)
                .is_some_and(|(idx, iface, _)| topo.iface(idx).is_some_and(|o| o.name == iface));
            if !keep {
                log::debug!("removing stale pin {name}");
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Attaches (or adopts, with a pin directory) every interface of `todo`.
    ///
    /// One at a time: each TCX attach and release waits for an RCU grace period under the
    /// kernel's RTNL lock (~15 ms a hook here), so threads would only queue on that lock.
    fn attach_batch(
        &mut self,
        todo: &[(u32, String)],
    ) -> Vec<(u32, String, anyhow::Result<Attachment>)> {
        let tcx = match self.mode {
            AttachMode::Tcx => true,
            AttachMode::Auto => crate::attach::tcx_by_default(),
            AttachMode::Netlink => false,
        };
        let fds = if tcx { self.dp.prog_fds().ok() } else { None };
        let mut out = Vec::with_capacity(todo.len());
        for (idx, name) in todo {
            let r = match &fds {
                Some((ingress, egress)) => {
                    use std::os::fd::AsFd as _;
                    let progs = crate::attach::ProgFds {
                        ingress: ingress.as_fd(),
                        egress: egress.as_fd(),
                    };
                    self.attach_one_tcx(progs, *idx, name).or_else(|e| {
                        // `auto` falls back to netlink where TCX was refused.
                        if self.mode == AttachMode::Auto {
                            log::debug!("{e:#}; falling back to netlink");
                            self.attach_one_netlink(name)
                        } else {
                            Err(e)
                        }
                    })
                }
                None => self.attach_one_netlink(name),
            };
            out.push((*idx, name.clone(), r));
        }
        out
    }

    fn attach_one_tcx(
        &self,
        progs: crate::attach::ProgFds<'_>,
        idx: u32,
        name: &str,
    ) -> anyhow::Result<Attachment> {
        if let Some(dir) = &self.pin_dir {
            if let Some(a) = crate::attach::adopt(progs, dir, name, idx)? {
                log::debug!("adopted the pinned links of {name}");
                return Ok(a);
            }
            return Ok(crate::attach::attach_tcx(progs, name, idx)?.pin(dir)?);
        }
        Ok(crate::attach::attach_tcx(progs, name, idx)?)
    }

    /// Netlink filters cannot be pinned: they always go with the process.
    fn attach_one_netlink(&mut self, name: &str) -> anyhow::Result<Attachment> {
        Ok(self.dp.attach(name, AttachMode::Netlink)?)
    }

    pub fn datapath_mut(&mut self) -> &mut Datapath {
        &mut self.dp
    }

    /// Number of interfaces attached now.
    pub fn attached(&self) -> usize {
        self.attached.len()
    }

    /// The attach mode of the first attachment (what `auto` resolved to).
    pub fn mode_in_use(&self) -> Option<AttachMode> {
        self.attached.values().next().map(|a| a.mode)
    }

    /// Attaches to `ifaces` (name, ifindex) strictly: the first error is returned and
    /// everything attached so far stays owned (and is detached on drop).
    pub fn attach_all(&mut self, ifaces: &[(u32, String)]) -> anyhow::Result<()> {
        for (idx, _name, r) in self.attach_batch(ifaces) {
            self.attached.insert(idx, r?);
        }
        Ok(())
    }

    /// Attaches to what `topo` observes and is not attached yet, detaches what it no longer
    /// observes. Errors on single interfaces (one that vanished meanwhile) are logged.
    pub fn reconcile(&mut self, topo: &Topology) {
        let gone: Vec<u32> = self
            .attached
            .keys()
            .copied()
            .filter(|idx| topo.iface(*idx).is_none())
            .collect();
        for idx in gone {
            self.forget(idx);
        }
        let mut todo: Vec<(u32, String)> = Vec::new();
        for o in &topo.observed {
            if let Some(a) = self.attached.get(&o.ifindex) {
                if a.iface == o.name {
                    continue;
                }
                // Renamed (or the index was reused): start again under the new name.
                self.forget(o.ifindex);
            }
            todo.push((o.ifindex, o.name.clone()));
        }
        for (idx, name, r) in self.attach_batch(&todo) {
            match r {
                Ok(a) => {
                    log::debug!("attached to {name}");
                    self.attached.insert(idx, a);
                }
                // Gone between the scan and now (churn): the next scan forgets it.
                Err(e)
                    if matches!(
                        e.downcast_ref(),
                        Some(crate::attach::AttachError::NoSuchInterface { .. })
                    ) || crate::attach::ifindex(&name) != Some(idx) =>
                {
                    log::debug!("{e}")
                }
                Err(e) => log::warn!("{e:#}"),
            }
        }
    }

    /// Attaches at once to a veth the kernel just reported as a port of an observed bridge,
    /// before the rescan that will label it: counting starts as soon as it joins, not a
    /// settle time and a scan of every namespace later. Returns whether it attached.
    pub fn attach_new_port(&mut self, link: &links::Link, topo: &Topology) -> bool {
        if link.kind != links::LinkKind::Veth || self.attached.contains_key(&link.ifindex) {
            return false;
        }
        let on_observed_bridge = link
            .master
            .and_then(|m| topo.iface(m))
            .is_some_and(|b| b.role == Role::Bridge);
        if !on_observed_bridge {
            return false;
        }
        match self
            .attach_batch(&[(link.ifindex, link.name.clone())])
            .pop()
        {
            Some((idx, name, Ok(a))) => {
                log::debug!("attached to new port {name}");
                self.attached.insert(idx, a);
                true
            }
            Some((_, name, Err(e))) => {
                log::debug!("{name}: {e:#}; the next rescan tries again");
                false
            }
            None => false,
        }
    }

    /// Detaches from interface `ifindex` (gone or no longer wanted) and moves its counters
    /// out of the kernel map.
    pub fn forget(&mut self, ifindex: u32) {
        let Some(mut a) = self.attached.remove(&ifindex) else {
            return;
        };
        let name = a.iface.clone();
        a.unpin();
        drop(a);
        match self.dp.take_counters(ifindex) {
            Ok(rows) => {
                let now = std::time::Instant::now();
                for ((dir, kind), n) in rows {
                    self.retired
                        .push((ifindex, name.clone(), dir, kind, n, now));
                }
            }
            Err(e) => log::warn!("reading the counters of {name}: {e:#}"),
        }
        log::debug!("detached from {name}");
    }

    /// Every counter: live interfaces' from the kernel, gone interfaces' from memory.
    pub fn counter_rows(&self) -> Result<Vec<CounterRow>, LoadError> {
        let mut rows: Vec<CounterRow> = Vec::new();
        for ((idx, dir, kind), n) in self.dp.counters()? {
            let Some(name) = self
                .attached
                .get(&idx)
                .map(|a| &a.iface)
                .or_else(|| self.detached.get(&idx))
            else {
                continue;
            };
            rows.push(CounterRow {
                iface: name.clone(),
                ifindex: idx,
                direction: dir.name(),
                kind: kind.name(),
                packets: n,
            });
        }
        for (idx, name, dir, kind, n, _) in &self.retired {
            rows.push(CounterRow {
                iface: name.clone(),
                ifindex: *idx,
                direction: dir.name(),
                kind: kind.name(),
                packets: *n,
            });
        }
        Ok(rows)
    }

    /// Sums the counters of interfaces gone for longer than `grace` into one row per
    /// (direction, kind) named `(gone)`, so label sets stay bounded and totals never drop.
    pub fn fold_retired(&mut self, grace: std::time::Duration) {
        let (old, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retired)
            .into_iter()
            .partition(|r| r.5.elapsed() >= grace && r.1 != GONE);
        self.retired = keep;
        for (_, _, dir, kind, n, t) in old {
            match self
                .retired
                .iter_mut()
                .find(|r| r.1 == GONE && r.2 == dir && r.3 == kind)
            {
                Some(r) => r.4 += n,
                None => self.retired.push((0, GONE.to_owned(), dir, kind, n, t)),
            }
        }
    }

    /// Detaches everything (also done on drop; pinned links stay); the counters stay
    /// readable.
    pub fn detach_all(&mut self) {
        for (idx, a) in std::mem::take(&mut self.attached) {
            self.detached.insert(idx, a.iface.clone());
        }
    }

    pub fn datapath(&self) -> &Datapath {
        &self.dp
    }
}

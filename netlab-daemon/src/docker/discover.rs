//! Finding what to observe (Docker's networks and containers, the host's bridges, each
//! container's veths from inside its namespace), and keeping the attachments in step.

use std::collections::{BTreeMap, HashMap};

use crate::docker::topology::{NetnsScan, Role, Topology};
use crate::docker::DockerSnapshot;
use crate::kernel::attach::{AttachMode, Attachment};
use crate::kernel::links;
use crate::kernel::loader::{Datapath, LoadError};
use crate::model::kind::{Direction, Kind};
use crate::model::summary::CounterRow;

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
    retired: Vec<Retired>,
    /// What a person reads for each observed interface (`veth of AppDev (devops, br-…)`),
    /// from the last topology, for interfaces whose name alone says little.
    labels: HashMap<u32, String>,
    /// Names of the interfaces detached at the end, whose counters are still in the map.
    detached: HashMap<u32, String>,
    /// Pin links here so they outlive the process (daemon mode).
    pin_dir: Option<std::path::PathBuf>,
    /// The kernel's ids of the ingress and egress programs, once asked.
    prog_ids: Option<(u32, u32)>,
    /// Hooks found no longer running netlab's program (something else detached it), by
    /// interface name and hook; each was attached again.
    pub hooks_lost: BTreeMap<(String, &'static str), u64>,
    /// New bridge ports waiting to be attached (covered meanwhile), in the order they came.
    pending: std::collections::VecDeque<(u32, String)>,
    /// Interfaces covered, with when they stop being covered (`None`: once attached).
    covering: BTreeMap<u32, Option<std::time::Instant>>,
    /// The new port an [`AttachJob`] is attaching now.
    in_flight: Option<u32>,
}

/// How long a hook stays covered after its tc program was attached, if that program has
/// counted no packet there yet (it then removes the hook itself).
const COVER_AFTER_ATTACH: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a port the kernel covered on its own stays covered when user space has not
/// heard of it as a new port (a port of no interest to netlab: not a veth).
const COVER_UNHEARD: std::time::Duration = std::time::Duration::from_secs(5);

/// Attaches both programs to `idx` as TCX links, adopting (with a pin directory) the
/// links an earlier run pinned for it, and pinning new ones.
fn tcx_attach_or_adopt(
    progs: crate::kernel::attach::ProgFds<'_>,
    pin_dir: Option<&std::path::Path>,
    idx: u32,
    name: &str,
) -> anyhow::Result<Attachment> {
    if let Some(dir) = pin_dir {
        if let Some(a) = crate::kernel::attach::adopt(progs, dir, name, idx)? {
            log::debug!("adopted the pinned links of {name}");
            return Ok(a);
        }
        return Ok(crate::kernel::attach::attach_tcx(progs, name, idx)?.pin(dir)?);
    }
    Ok(crate::kernel::attach::attach_tcx(progs, name, idx)?)
}

/// Attaching a new port on a thread of its own: the attach waits for RCU grace periods,
/// and meanwhile the loop goes on covering the next ports that appear.
pub struct AttachJob {
    idx: u32,
    name: String,
    ingress: std::os::fd::OwnedFd,
    egress: std::os::fd::OwnedFd,
    pin_dir: Option<std::path::PathBuf>,
}

/// What an [`AttachJob`] did.
pub struct AttachDone {
    idx: u32,
    name: String,
    result: anyhow::Result<Attachment>,
}

impl AttachJob {
    /// Attaches (blocking).
    pub fn run(self) -> AttachDone {
        use std::os::fd::AsFd as _;
        let progs = crate::kernel::attach::ProgFds {
            ingress: self.ingress.as_fd(),
            egress: self.egress.as_fd(),
        };
        let t0 = std::time::Instant::now();
        let result = tcx_attach_or_adopt(progs, self.pin_dir.as_deref(), self.idx, &self.name);
        log::debug!("attaching {} took {:?}", self.name, t0.elapsed());
        AttachDone {
            idx: self.idx,
            name: self.name,
            result,
        }
    }
}

/// The counters of an interface that went away, kept by name.
#[derive(Clone, Debug)]
struct Retired {
    ifindex: u32,
    iface: String,
    label: Option<String>,
    dir: Direction,
    kind: Kind,
    packets: u64,
    at: std::time::Instant,
}

/// What a person reads for `o`, when its name alone says little (a container's or a
/// hand-made veth, a Docker network's bridge).
pub fn label_of(o: &crate::docker::topology::ObservedIface) -> Option<String> {
    let named = match o.role {
        Role::ContainerVeth | Role::ManualVeth => o.container.is_some() || o.network.is_some(),
        Role::Bridge => o.network.is_some(),
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

/// A hook of an observed interface that no longer runs netlab's program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostHook {
    pub ifindex: u32,
    pub iface: String,
    pub hook: &'static str,
}

impl Observer {
    pub fn new(dp: Datapath, mode: AttachMode) -> Self {
        Self {
            dp,
            mode,
            attached: BTreeMap::new(),
            retired: Vec::new(),
            labels: HashMap::new(),
            detached: HashMap::new(),
            pin_dir: None,
            prog_ids: None,
            hooks_lost: BTreeMap::new(),
            pending: Default::default(),
            covering: BTreeMap::new(),
            in_flight: None,
        }
    }

    /// Pins every link under `dir` (created if needed), adopting links an earlier run
    /// pinned there, and removes pins left for interfaces that no longer exist.
    pub fn persist_in(mut self, dir: &std::path::Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        self.pin_dir = Some(dir.to_owned());
        Ok(self)
    }

    /// Removes pins under the pin directory whose interface is not in `topo` (and kept
    /// netlink filters of interfaces no longer observed).
    pub fn prune_pins(&self, topo: &Topology) {
        if let Some(kept) = self.kept_dir() {
            for e in std::fs::read_dir(&kept).into_iter().flatten().flatten() {
                let name = e.file_name();
                let Some(name) = name.to_str() else { continue };
                let keep = crate::kernel::attach::parse_kept_record(name).is_some_and(
                    |(idx, iface, _)| topo.iface(idx).is_some_and(|o| o.name == iface),
                );
                if !keep {
                    log::debug!("removing kept filters {name}");
                    if let Err(e) = crate::kernel::attach::remove_kept(&kept, name) {
                        log::debug!("{name}: {e}");
                    }
                }
            }
        }
        let Some(dir) = &self.pin_dir else { return };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let keep = crate::kernel::attach::parse_pin_name(name)
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
            AttachMode::Auto => crate::kernel::attach::tcx_by_default(),
            AttachMode::Netlink => false,
        };
        let fds = if tcx { self.dp.prog_fds().ok() } else { None };
        let mut out = Vec::with_capacity(todo.len());
        for (idx, name) in todo {
            let r = match &fds {
                Some((ingress, egress)) => {
                    use std::os::fd::AsFd as _;
                    let progs = crate::kernel::attach::ProgFds {
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
        progs: crate::kernel::attach::ProgFds<'_>,
        idx: u32,
        name: &str,
    ) -> anyhow::Result<Attachment> {
        tcx_attach_or_adopt(progs, self.pin_dir.as_deref(), idx, name)
    }

    /// Netlink filters cannot be pinned: with a pin directory (the daemon) they are kept
    /// attached when the process goes, and recorded beside the pins; otherwise they go
    /// with the process.
    fn attach_one_netlink(&mut self, name: &str) -> anyhow::Result<Attachment> {
        match self.kept_dir() {
            Some(dir) => Ok(self.dp.attach_kept(name, &dir)?),
            None => Ok(self.dp.attach(name, AttachMode::Netlink)?),
        }
    }

    /// Where the records of kept netlink filters live: `netlink/` beside `links/`.
    fn kept_dir(&self) -> Option<std::path::PathBuf> {
        self.pin_dir.as_ref().map(|d| d.with_file_name("netlink"))
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
                if self.still_attached(o.ifindex) {
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

    /// Takes note of a veth the kernel just reported as a port of an observed bridge,
    /// before the rescan that will label it: its packets are counted at once by the cover
    /// programs (when they run), and it is queued to be attached (see
    /// [`Observer::attach_pending`]). Returns whether it is new.
    pub fn note_new_port(&mut self, link: &links::Link, topo: &Topology) -> bool {
        let on_observed_bridge = link
            .master
            .and_then(|m| topo.iface(m))
            .is_some_and(|b| b.role == Role::Bridge);
        if on_observed_bridge
            && matches!(
                link.kind,
                links::LinkKind::Bridge | links::LinkKind::Other(_)
            )
        {
            // Not one netlab attaches to: the cover programs leave it alone. (`Unknown`
            // says nothing: the bridge's own notices of a port carry no kind.)
            self.hand_over(link.ifindex);
        }
        if link.kind != links::LinkKind::Veth
            || self.attached.contains_key(&link.ifindex)
            || self.pending.iter().any(|(i, _)| *i == link.ifindex)
        {
            log::trace!(
                "{}: not a new veth ({:?}, attached {}, pending {})",
                link.name,
                link.kind,
                self.attached.contains_key(&link.ifindex),
                self.pending.len()
            );
            return false;
        }
        if !on_observed_bridge {
            return false;
        }
        if self.dp.covers() {
            match self.dp.cover(link.ifindex) {
                Ok(()) => {
                    self.covering.insert(link.ifindex, None);
                }
                Err(e) => log::debug!("cannot cover {}: {e:#}", link.name),
            }
        }
        log::debug!(
            "new port {} on an observed bridge: covered, to be attached",
            link.name
        );
        self.pending.push_back((link.ifindex, link.name.clone()));
        true
    }

    /// Whether new ports wait to be attached (and none is being attached now).
    pub fn has_pending(&self) -> bool {
        self.in_flight.is_none() && !self.pending.is_empty()
    }

    /// The oldest new port waiting, as a job for another thread when it is attached with
    /// TCX; in netlink mode it is attached here and then `None`. One at a time: TCX
    /// attaches wait for the kernel's RCU grace periods under one lock, so more threads
    /// would only queue.
    pub fn next_attach_job(&mut self) -> Option<AttachJob> {
        while let Some((idx, name)) = self.pending.pop_front() {
            if self.attached.contains_key(&idx) {
                continue;
            }
            let tcx = match self.mode {
                AttachMode::Tcx => true,
                AttachMode::Auto => crate::kernel::attach::tcx_by_default(),
                AttachMode::Netlink => false,
            };
            if tcx {
                match self.dp.prog_fds() {
                    Ok((ingress, egress)) => {
                        self.in_flight = Some(idx);
                        return Some(AttachJob {
                            idx,
                            name,
                            ingress,
                            egress,
                            pin_dir: self.pin_dir.clone(),
                        });
                    }
                    Err(e) => log::warn!("{name}: {e}"),
                }
            }
            let result = self.attach_batch(&[(idx, name.clone())]).pop();
            if let Some((idx, name, result)) = result {
                self.finish_attach(AttachDone { idx, name, result });
            }
            return None;
        }
        None
    }

    /// Takes the result of an [`AttachJob`]: the attachment, unless the interface went away
    /// meanwhile (then it is released).
    pub fn finish_attach(&mut self, done: AttachDone) {
        let AttachDone { idx, name, result } = done;
        if self.in_flight == Some(idx) {
            self.in_flight = None;
        }
        match result {
            Ok(a) if crate::kernel::attach::ifindex(&name) == Some(idx) => {
                log::debug!("attached to new port {name}");
                self.attached.insert(idx, a);
                if let Some(t) = self.covering.get_mut(&idx) {
                    *t = Some(std::time::Instant::now() + COVER_AFTER_ATTACH);
                }
                return;
            }
            Ok(mut a) => {
                log::debug!("{name} went away while it was attached");
                a.unpin();
            }
            Err(e) => log::debug!("{name}: {e:#}; the next rescan tries again"),
        }
        self.stop_covering(idx);
    }

    /// Stops covering interfaces attached for longer than [`COVER_AFTER_ATTACH`] (their
    /// tc programs took over), and gone ones; takes in the ports the kernel covered as
    /// they joined an observed bridge.
    pub fn expire_cover(&mut self) {
        let now = std::time::Instant::now();
        if self.dp.covers_in_kernel() {
            match self.dp.covered_by_kernel() {
                Ok(ports) => {
                    for idx in ports {
                        if self.covering.contains_key(&idx) {
                            continue;
                        }
                        // Covered before the netlink message about it was read: it is
                        // queued then (and this deadline dropped). One attached already
                        // (found by a rescan first) is handed over as usual.
                        let wait = if self.attached.contains_key(&idx) {
                            COVER_AFTER_ATTACH
                        } else {
                            COVER_UNHEARD
                        };
                        log::debug!("interface {idx} covered by the kernel as it joined");
                        self.covering.insert(idx, Some(now + wait));
                    }
                }
                Err(e) => log::debug!("reading covered ports: {e:#}"),
            }
        }
        let done: Vec<u32> = self
            .covering
            .iter()
            .filter(|(idx, t)| {
                t.is_some_and(|t| now >= t)
                    || (t.is_none()
                        && self.in_flight != Some(**idx)
                        && !self.pending.iter().any(|(i, _)| i == *idx))
            })
            .map(|(idx, _)| *idx)
            .collect();
        for idx in done {
            self.stop_covering(idx);
        }
    }

    /// Tells the cover programs that `idx`'s tc programs run, if they find ports per packet.
    fn hand_over(&mut self, idx: u32) {
        if let Err(e) = self.dp.hand_over(idx) {
            log::debug!("handing {idx} over to its tc programs: {e:#}");
        }
    }

    fn stop_covering(&mut self, idx: u32) {
        if self.covering.remove(&idx).is_some() {
            let gone = !self.attached.contains_key(&idx);
            if let Err(e) = self.dp.uncover(idx, gone) {
                log::debug!("uncovering {idx}: {e:#}");
            }
        }
    }

    /// Whether interface `ifindex` is counted: attached, or a new port covered and queued.
    pub fn observes(&self, ifindex: u32) -> bool {
        self.attached.contains_key(&ifindex)
            || self.in_flight == Some(ifindex)
            || self.pending.iter().any(|(i, _)| *i == ifindex)
    }

    /// Interfaces whose packets the cover programs count now.
    pub fn covering(&self) -> usize {
        self.covering.len()
    }

    /// Checks that every TCX hook netlab attached (or only that of `only`) still runs its
    /// program, and attaches again where something else detached it, saying so once per
    /// hook (its counters stay: packets in between were not counted). Returns the hooks
    /// found lost. Netlink filters are not checked.
    pub fn verify(&mut self, only: Option<u32>) -> Vec<LostHook> {
        let ids = match self.prog_ids {
            Some(ids) => ids,
            None => match self.dp.prog_ids() {
                Ok(ids) => *self.prog_ids.insert(ids),
                Err(e) => {
                    log::debug!("cannot check attachments: {e:#}");
                    return Vec::new();
                }
            },
        };
        let mut lost = Vec::new();
        for (idx, a) in &self.attached {
            if a.mode != AttachMode::Tcx || only.is_some_and(|o| o != *idx) {
                continue;
            }
            for (ingress, hook, want) in [(true, "ingress", ids.0), (false, "egress", ids.1)] {
                match crate::kernel::tcx::query_prog_ids(*idx, ingress) {
                    Ok(running) if !running.contains(&want) => lost.push(LostHook {
                        ifindex: *idx,
                        iface: a.iface.clone(),
                        hook,
                    }),
                    Ok(_) => {}
                    // Gone, or renamed into another namespace: link events deal with it.
                    Err(e) => log::debug!("checking {} {hook}: {e}", a.iface),
                }
            }
        }
        if lost.is_empty() {
            return lost;
        }
        let fds = match self.dp.prog_fds() {
            Ok(fds) => fds,
            Err(e) => {
                log::warn!("cannot attach lost hooks again: {e}");
                return lost;
            }
        };
        for l in &lost {
            log::warn!(
                "{}: netlab's {} program is no longer attached (something else detached it); attaching again, packets in between were not counted",
                l.iface,
                l.hook
            );
            *self
                .hooks_lost
                .entry((l.iface.clone(), l.hook))
                .or_default() += 1;
            let Some(a) = self.attached.get_mut(&l.ifindex) else {
                continue;
            };
            use std::os::fd::AsFd as _;
            let (prog, ingress) = match l.hook {
                "ingress" => (fds.0.as_fd(), true),
                _ => (fds.1.as_fd(), false),
            };
            // Its counters stay in the map: the same interface goes on counting.
            if let Err(e) = a.replace_hook(prog, ingress) {
                log::warn!("{}: cannot attach again: {e:#}", l.iface);
            }
        }
        lost
    }

    /// Whether interface `ifindex` runs netlab's programs on both TCX hooks now (false for
    /// netlink attachments, which are not checked).
    fn still_attached(&mut self, ifindex: u32) -> bool {
        if self.attached.get(&ifindex).map(|a| a.mode) != Some(AttachMode::Tcx) {
            return false;
        }
        let Some((i, e)) = self.prog_ids.or_else(|| self.dp.prog_ids().ok()) else {
            return false;
        };
        self.prog_ids = Some((i, e));
        [(true, i), (false, e)].into_iter().all(|(ingress, id)| {
            crate::kernel::tcx::query_prog_ids(ifindex, ingress).is_ok_and(|ids| ids.contains(&id))
        })
    }

    /// Hooks found lost so far, all interfaces together.
    pub fn hooks_lost_total(&self) -> u64 {
        self.hooks_lost.values().sum()
    }

    /// Detaches from interface `ifindex` (gone or no longer wanted) and moves its counters
    /// out of the kernel map; returns them (`None` when it was not attached).
    pub fn forget(&mut self, ifindex: u32) -> Option<Forgotten> {
        self.pending.retain(|(i, _)| *i != ifindex);
        self.covering.remove(&ifindex);
        if let Err(e) = self.dp.uncover(ifindex, true) {
            log::debug!("uncovering {ifindex}: {e:#}");
        }
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

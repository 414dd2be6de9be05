//! New bridge ports: counted by the cover programs from the moment the kernel reports them,
//! attached one at a time on a thread of their own (an [`AttachJob`]), and handed over to
//! their tc programs once those run.

use super::attaching::tcx_attach_or_adopt;
use super::Observer;
use crate::docker::topology::{Role, Topology};
use crate::kernel::attach::Attachment;
use crate::kernel::links;

/// How long a hook stays covered after its tc program was attached, if that program has
/// counted no packet there yet (it then removes the hook itself).
const COVER_AFTER_ATTACH: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a port the kernel covered on its own stays covered when user space has not
/// heard of it as a new port (a port of no interest to netlab: not a veth).
const COVER_UNHEARD: std::time::Duration = std::time::Duration::from_secs(5);

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

impl Observer {
    /// Takes note of a veth the kernel just reported as a port of an observed bridge,
    /// before the rescan that will label it: its packets are counted at once by the cover
    /// programs (when they run), and it is queued to be attached (see
    /// [`Observer::next_attach_job`]). Returns whether it is new.
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
            if self.uses_tcx() {
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

    /// Stops covering interfaces attached for longer than `COVER_AFTER_ATTACH` (their
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

    /// Tells the cover programs that `idx`'s tc programs run, if they find ports per packet,
    /// and gives it a counter slot.
    pub(super) fn hand_over(&mut self, idx: u32) {
        if let Err(e) = self.dp.give_slot(idx) {
            log::debug!("a counter slot for {idx}: {e:#}");
        }
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
}

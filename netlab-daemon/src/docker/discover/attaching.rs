//! Attaching the tc programs to one interface: TCX links (adopting those an earlier run
//! pinned, pinning new ones) or netlink filters (kept beside the pins in the daemon), one
//! interface after another; and removing pins of interfaces that are gone.

use crate::docker::topology::Topology;
use crate::kernel::attach::{AttachMode, Attachment};

use super::Observer;

/// Attaches both programs to `idx` as TCX links, adopting (with a pin directory) the
/// links an earlier run pinned for it, and pinning new ones.
pub(super) fn tcx_attach_or_adopt(
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

/// Results of attaching one interface each: index, name, attachment.
type Attached = Vec<(u32, String, anyhow::Result<Attachment>)>;

/// The first interfaces being attached (TCX) on a thread of its own, while the session
/// loads its other programs: each TCX attach waits for RCU grace periods, which is most of
/// a start-up on many interfaces, and the verifier's work on the other programs fits into
/// those waits. Dropped without [`Observer::take_early`], it waits for the thread (whose
/// attachments then go as any dropped [`Attachment`] does).
pub struct EarlyAttach {
    thread: Option<std::thread::JoinHandle<Attached>>,
}

impl Drop for EarlyAttach {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Observer {
    /// Starts attaching `ifaces` (index, name) with TCX on a thread of its own (see
    /// [`EarlyAttach`]); the next [`Observer::attach_batch`] takes the results instead of
    /// attaching them again. `None` (nothing started) where new attachments do not use TCX.
    pub fn attach_early(&mut self, ifaces: Vec<(u32, String)>) -> Option<EarlyAttach> {
        if !self.uses_tcx() || ifaces.is_empty() {
            return None;
        }
        let (ingress, egress) = self.dp.prog_fds().ok()?;
        let pin_dir = self.pin_dir.clone();
        let thread = std::thread::Builder::new()
            .name("netlab-attach".into())
            .spawn(move || -> Attached {
                use std::os::fd::AsFd as _;
                let progs = crate::kernel::attach::ProgFds {
                    ingress: ingress.as_fd(),
                    egress: egress.as_fd(),
                };
                ifaces
                    .into_iter()
                    .map(|(idx, name)| {
                        let r = tcx_attach_or_adopt(progs, pin_dir.as_deref(), idx, &name);
                        (idx, name, r)
                    })
                    .collect()
            })
            .inspect_err(|e| log::debug!("attaching on the caller's thread: {e}"))
            .ok()?;
        Some(EarlyAttach {
            thread: Some(thread),
        })
    }

    /// Waits for what [`Observer::attach_early`] started and keeps the results for the next
    /// attach batch.
    pub fn take_early(&mut self, mut early: EarlyAttach) {
        let Some(t) = early.thread.take() else { return };
        match t.join() {
            Ok(done) => {
                for (idx, name, r) in done {
                    self.early.insert(idx, (name, r));
                }
            }
            Err(_) => {
                log::warn!("the thread attaching the first interfaces failed; attaching them here")
            }
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

    /// Whether new attachments try TCX first (`auto`: where the kernel has it).
    pub(super) fn uses_tcx(&self) -> bool {
        match self.mode {
            AttachMode::Tcx => true,
            AttachMode::Auto => crate::kernel::attach::tcx_by_default(),
            AttachMode::Netlink => false,
        }
    }

    /// Attaches (or adopts, with a pin directory) every interface of `todo`.
    ///
    /// One at a time: each TCX attach and release waits for an RCU grace period under the
    /// kernel's RTNL lock (~15 ms a hook here), so threads would only queue on that lock.
    pub(super) fn attach_batch(
        &mut self,
        todo: &[(u32, String)],
    ) -> Vec<(u32, String, anyhow::Result<Attachment>)> {
        let fds = if self.uses_tcx() {
            self.dp.prog_fds().ok()
        } else {
            None
        };
        let mut out = Vec::with_capacity(todo.len());
        for (idx, name) in todo {
            let early = match self.early.remove(idx) {
                Some((n, r)) if n == *name => Some(r),
                Some((_, r)) => {
                    // Another name at that index by now: not this interface's.
                    if let Ok(mut a) = r {
                        a.unpin();
                    }
                    None
                }
                None => None,
            };
            let r = match &fds {
                Some((ingress, egress)) => {
                    use std::os::fd::AsFd as _;
                    let progs = crate::kernel::attach::ProgFds {
                        ingress: ingress.as_fd(),
                        egress: egress.as_fd(),
                    };
                    early
                        .unwrap_or_else(|| self.attach_one_tcx(progs, *idx, name))
                        .or_else(|e| {
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
        // Attached early but not wanted after all: as if attached and forgotten at once.
        for (_, (_, r)) in self.early.drain() {
            if let Ok(mut a) = r {
                a.unpin();
            }
        }
        out
    }

    /// Attaches the programs for other namespaces' interfaces (which count under the
    /// interface's key, not `idx`) as TCX links to interface `idx` of the namespace bound
    /// at `path` (an overlay network's sandbox), from a thread inside it. Not pinned: a
    /// restarted daemon attaches again. TCX only: netlink filters would have to be
    /// removed from inside the namespace too, and a removal run in the wrong one would
    /// take another interface's.
    pub(super) fn attach_in_sandbox(
        &mut self,
        idx: u32,
        name: &str,
        path: &str,
    ) -> anyhow::Result<Attachment> {
        anyhow::ensure!(
            self.uses_tcx(),
            "{name} is in an overlay network's sandbox, which netlab observes with TCX links only (Linux 6.6 and later)"
        );
        let (ingress, egress) = self.dp.ns_prog_fds()?;
        let iface = name.to_owned();
        Ok(crate::kernel::links::in_netns_at(path, move || {
            use std::os::fd::AsFd as _;
            let progs = crate::kernel::attach::ProgFds {
                ingress: ingress.as_fd(),
                egress: egress.as_fd(),
            };
            crate::kernel::attach::attach_tcx(progs, &iface, idx).map_err(std::io::Error::other)
        })?)
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
}

//! Checking that every TCX hook netlab attached still runs its program, and attaching again
//! where something else detached it.

use crate::kernel::attach::AttachMode;

use super::Observer;

/// A hook of an observed interface that no longer runs netlab's program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostHook {
    pub ifindex: u32,
    pub iface: String,
    pub hook: &'static str,
}

impl Observer {
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
            // A sandbox's interfaces are not in this namespace: their indexes name others.
            if a.mode != AttachMode::Tcx
                || only.is_some_and(|o| o != *idx)
                || self.sandboxed.contains_key(idx)
            {
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
    pub(super) fn still_attached(&mut self, ifindex: u32) -> bool {
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
}

//! The kernel's own floor for attaching to the 500 veths: an empty tc program
//! (`netlab_tests::host::empty_prog`, two instructions) attached with `BPF_LINK_CREATE` to
//! both TCX hooks of the same interfaces `netlab watch` attaches to (the bridge and every
//! port), in the same order (by interface index: the bridge, then its ports; ingress, then
//! egress), from a thread inside the scale namespace. What netlab's start-up is compared
//! against: each TCX attach waits for an RCU grace period under the RTNL lock, and nothing
//! netlab does can attach faster than this.
//!
//! And the floor for one new port ([`PortFloor`]): the same empty program attached to both
//! hooks of each interface the kernel reports joining a bridge, as soon as the notice is
//! read, in a namespace of its own where no netlab runs.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use anyhow::{anyhow, ensure, Context, Result};
use netlab_tests::host::empty_prog::EmptyTc;
use netlab_tests::host::netns;
use netlab_tests::host::tcx::Hook;

use super::port_notices::PortNotices;
use super::NS_SCALE;

/// One run of the floor.
#[derive(Debug, Clone, Copy)]
pub(super) struct FloorRun {
    /// Interfaces attached (both hooks each).
    pub(super) interfaces: usize,
    /// Seconds from the first attach's start to the last attach's end.
    pub(super) attach_secs: f64,
    /// Seconds to release every link again (closing them, in the order they were made).
    pub(super) release_secs: f64,
}

/// The names the scale namespace's bridge and ports have: `br0`, then `h0`…`h<veths-1>`.
pub(super) fn scale_ifaces(veths: u32) -> Vec<String> {
    std::iter::once("br0".to_owned())
        .chain((0..veths).map(|i| format!("h{i}")))
        .collect()
}

/// Attaches the empty program to both hooks of each of `ifaces` (in order of their index)
/// inside the scale namespace, then releases them all; times both.
pub(super) fn attach_floor(ifaces: &[String]) -> Result<FloorRun> {
    thread::scope(|scope| {
        scope
            .spawn(|| -> Result<FloorRun> {
                netns::enter(NS_SCALE)?;
                let mut order = ifaces
                    .iter()
                    .map(|name| ifindex(name).map(|i| (i, name)))
                    .collect::<Result<Vec<_>>>()?;
                order.sort_unstable();
                let mut tc = EmptyTc::load()?;
                let t0 = Instant::now();
                for (idx, name) in &order {
                    for hook in Hook::BOTH {
                        tc.attach(*idx, hook)
                            .with_context(|| format!("the floor on {name}"))?;
                    }
                }
                let attach_secs = t0.elapsed().as_secs_f64();
                let t1 = Instant::now();
                tc.detach_all();
                Ok(FloorRun {
                    interfaces: order.len(),
                    attach_secs,
                    release_secs: t1.elapsed().as_secs_f64(),
                })
            })
            .join()
    })
    .map_err(|_| anyhow!("the floor's thread panicked"))?
}

/// The kernel's floor for a new port: an empty program attached by `BPF_LINK_CREATE` to
/// both TCX hooks (ingress, then egress, as netlab does) of every interface reported
/// joining a bridge, from the thread that reads the notice, the moment it reads it. What
/// netlab's attaching of a new port is compared against: nothing can attach sooner than
/// the kernel tells it of the port, and each attach waits for an RCU grace period.
pub(super) struct PortFloor {
    _notices: PortNotices,
    failures: Arc<Mutex<Vec<String>>>,
}

impl PortFloor {
    /// Starts, in the calling thread's network namespace.
    pub(super) fn start() -> Result<Self> {
        let mut tc = EmptyTc::load()?;
        let mut seen = HashSet::new();
        let failures = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::clone(&failures);
        let notices = PortNotices::start(move |idx, _| {
            // A port is reported again when it goes up; attach once.
            if !seen.insert(idx) {
                return;
            }
            for hook in Hook::BOTH {
                if let Err(e) = tc.attach(idx, hook) {
                    if let Ok(mut f) = failed.lock() {
                        f.push(format!("{e:#}"));
                    }
                }
            }
        })?;
        Ok(Self {
            _notices: notices,
            failures,
        })
    }

    /// Fails with the first attach that failed, if one did.
    pub(super) fn check(&self) -> Result<()> {
        let failures = self.failures.lock().map_err(|_| anyhow!("poisoned"))?;
        ensure!(
            failures.is_empty(),
            "the floor failed to attach: {}",
            failures[0]
        );
        Ok(())
    }
}

/// The index of interface `name` in the calling thread's network namespace.
fn ifindex(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name).context("interface name with a NUL")?;
    // SAFETY: if_nametoindex reads the NUL-terminated name, which outlives the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    anyhow::ensure!(
        i != 0,
        "no interface {name} in {NS_SCALE}: {}",
        std::io::Error::last_os_error()
    );
    Ok(i)
}

/// Per round, start-up over the floor measured just before it (rounds alternate floor,
/// start-up, so drift of the machine's load cancels out); rounds without both are skipped.
pub(super) fn ratios(startups: &[f64], floors: &[f64]) -> Vec<f64> {
    startups
        .iter()
        .zip(floors)
        .filter(|(_, f)| **f > 0.0)
        .map(|(s, f)| s / f)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bridge_comes_first_then_every_port() {
        assert_eq!(scale_ifaces(3), ["br0", "h0", "h1", "h2"]);
        assert_eq!(scale_ifaces(500).len(), 501);
    }

    #[test]
    fn ratios_pair_rounds() {
        assert_eq!(ratios(&[12.0, 11.0, 10.0], &[10.0, 10.0]), [1.2, 1.1]);
        assert_eq!(ratios(&[1.0], &[0.0]), Vec::<f64>::new());
        assert!(ratios(&[], &[1.0]).is_empty());
    }
}

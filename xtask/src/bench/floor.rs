//! The kernel's own floor for attaching to the 500 veths: an empty tc program
//! (`netlab_tests::host::empty_prog`, two instructions) attached with `BPF_LINK_CREATE` to
//! both TCX hooks of the same interfaces `netlab watch` attaches to (the bridge and every
//! port), in the same order (by interface index: the bridge, then its ports; ingress, then
//! egress), from a thread inside the scale namespace. What netlab's start-up is compared
//! against: each TCX attach waits for an RCU grace period under the RTNL lock, and nothing
//! netlab does can attach faster than this.

use std::thread;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use netlab_tests::host::empty_prog::EmptyTc;
use netlab_tests::host::netns;
use netlab_tests::host::tcx::Hook;

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

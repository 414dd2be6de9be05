//! `cargo xtask lab --netns`: a lab of network namespaces, without Docker. `netlab-lab-br` holds
//! the bridge `br-lab`; `netlab-lab-dev` and `netlab-lab-web` stand in for containers, each with
//! an `eth0` whose host side (`veth-dev`, `veth-web`) is a port of `br-lab`. Traffic never leaves
//! these namespaces. Unlike the Docker lab, it is removed when `netlab watch` ends.

use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};

use anyhow::{bail, Context, Result};
use netlab_tests::host::netns::{self, add_bridge, add_bridge_port, in_ns, ip, Netns};
use netlab_tests::host::root;

use crate::interrupt::{self, interrupted, IgnoreInterrupts};
use crate::{cmd, setup, workspace};

/// The namespace holding the bridge, where netlab runs.
pub const BRIDGE_NS: &str = "netlab-lab-br";
pub const BRIDGE: &str = "br-lab";

/// A namespace that plays a container on the bridge.
struct Member {
    ns: &'static str,
    /// The host side of its veth pair, a port of [`BRIDGE`] in [`BRIDGE_NS`].
    host_veth: &'static str,
    ipv4: &'static str,
    ipv6: &'static str,
}

const DEV: Member = Member {
    ns: "netlab-lab-dev",
    host_veth: "veth-dev",
    ipv4: "10.77.0.2/24",
    ipv6: "fd77::2/64",
};
const WEB: Member = Member {
    ns: "netlab-lab-web",
    host_veth: "veth-web",
    ipv4: "10.77.0.3/24",
    ipv6: "fd77::3/64",
};
const MEMBERS: [Member; 2] = [DEV, WEB];
/// The member side of every veth pair.
const MEMBER_IFACE: &str = "eth0";
/// `netlab-lab-dev` pings this address (WEB's) once a second.
const PING_TARGET: &str = "10.77.0.3";
/// All the lab's namespaces, in the order they are deleted.
const NAMESPACES: [&str; 3] = [DEV.ns, WEB.ns, BRIDGE_NS];

/// Builds the lab, pings across it for `duration` seconds while `netlab watch` shows the traffic
/// in the foreground, then removes it all, also when netlab fails or is stopped with Ctrl-C.
pub fn run(duration: u32) -> Result<()> {
    require_root()?;
    setup::run()?;
    let netlab = workspace::build_daemon(true)?;

    // From here on Ctrl-C stops the children but not xtask, which must clean up.
    let _interrupts = IgnoreInterrupts::new();
    delete_namespaces()?; // leftovers of an earlier run that was killed
    let mut lab = Lab::create()?;
    lab.start_pinger(duration)?;
    eprintln!(
        "xtask: lab up: {} ({}) pings {} ({}) across {BRIDGE} in {BRIDGE_NS}; watching for {duration} s (Ctrl-C stops)",
        DEV.ns, DEV.ipv4, WEB.ns, WEB.ipv4
    );
    let status = watch(&netlab, duration)?;
    drop(lab);
    if interrupted(status) {
        eprintln!("xtask: netlab watch was interrupted; the lab is gone");
        return Ok(());
    }
    if !status.success() {
        bail!("`netlab watch` in {BRIDGE_NS} failed ({status})");
    }
    Ok(())
}

/// `cargo xtask lab --netns --down`: deletes whichever of the lab's namespaces exist.
pub fn down() -> Result<()> {
    require_root()?;
    let deleted = delete_namespaces()?;
    if deleted.is_empty() {
        eprintln!("xtask: no lab namespace exists");
    } else {
        eprintln!("xtask: removed namespaces {}", deleted.join(", "));
    }
    Ok(())
}

/// The running lab; dropping it stops the pinger, then deletes the namespaces.
struct Lab {
    pinger: Option<Child>,
    /// Declared after the pinger: dropped after it.
    _namespaces: Vec<Netns>,
}

impl Lab {
    fn create() -> Result<Self> {
        let namespaces = NAMESPACES
            .into_iter()
            .map(Netns::new)
            .collect::<Result<Vec<_>>>()?;
        add_bridge(BRIDGE_NS, BRIDGE, &[])?;
        for member in &MEMBERS {
            let Member {
                ns,
                host_veth,
                ipv4,
                ipv6,
            } = *member;
            add_bridge_port(BRIDGE_NS, BRIDGE, host_veth, ns, MEMBER_IFACE)?;
            ip(&["-n", ns, "addr", "add", ipv4, "dev", MEMBER_IFACE])?;
            ip(&["-n", ns, "addr", "add", ipv6, "dev", MEMBER_IFACE, "nodad"])?;
            ip(&["-n", ns, "link", "set", MEMBER_IFACE, "up"])?;
        }
        Ok(Self {
            pinger: None,
            _namespaces: namespaces,
        })
    }

    /// `ping -c <duration> -i 1` from DEV to WEB in the background; its output is discarded.
    fn start_pinger(&mut self, duration: u32) -> Result<()> {
        let count = duration.to_string();
        let mut ping = in_ns(DEV.ns, "ping");
        ping.args(["-c", &count, "-i", "1", PING_TARGET])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        interrupt::default_interrupts_in_child(&mut ping);
        eprintln!("xtask: {} >/dev/null &", cmd::display(&ping));
        let child = ping
            .spawn()
            .with_context(|| format!("failed to start `{}`", cmd::display(&ping)))?;
        self.pinger = Some(child);
        Ok(())
    }

    fn stop_pinger(&mut self) {
        if let Some(mut pinger) = self.pinger.take() {
            eprintln!("xtask: stopping the pinger (pid {})", pinger.id());
            // It may have finished its count already; kill() then does nothing harmful.
            let _ = pinger.kill();
            let _ = pinger.wait();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop_pinger();
        // The namespaces go next, each with its guard (which says so if one cannot be
        // deleted; `cargo xtask lab --netns --down` deletes what is left).
    }
}

/// Runs `netlab watch` on the bridge and both host-side veths in the foreground.
fn watch(netlab: &Path, duration: u32) -> Result<ExitStatus> {
    let mut watch = in_ns(BRIDGE_NS, netlab);
    watch.arg("watch").args(["--iface", BRIDGE]);
    for member in &MEMBERS {
        watch.args(["--iface", member.host_veth]);
    }
    watch.args(["--duration", &duration.to_string()]);
    interrupt::default_interrupts_in_child(&mut watch);
    cmd::announce(&watch);
    watch
        .status()
        .with_context(|| format!("failed to start `{}`", cmd::display(&watch)))
}

/// Deletes the lab's namespaces that exist; returns their names.
pub fn delete_namespaces() -> Result<Vec<&'static str>> {
    let mut deleted = Vec::new();
    for ns in NAMESPACES {
        if netns::delete(ns)? {
            deleted.push(ns);
        }
    }
    Ok(deleted)
}

/// The labs create namespaces and links and load eBPF programs: fail early, before a long
/// build, if not root.
pub fn require_root() -> Result<()> {
    root::require_root("`cargo xtask lab` (network namespaces, eBPF)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_differ() {
        assert_ne!(DEV.ns, WEB.ns);
        assert_ne!(DEV.host_veth, WEB.host_veth);
        assert!(WEB.ipv4.starts_with(PING_TARGET));
        assert!(NAMESPACES.iter().all(|ns| ns.starts_with("netlab-lab-")));
    }
}

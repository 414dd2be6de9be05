//! `cargo xtask lab --netns`: a lab of network namespaces, without Docker. `netlab-lab-br` holds
//! the bridge `br-lab`; `netlab-lab-dev` and `netlab-lab-web` stand in for containers, each with
//! an `eth0` whose host side (`veth-dev`, `veth-web`) is a port of `br-lab`. Traffic never leaves
//! these namespaces. Unlike the Docker lab, it is removed when `netlab watch` ends.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

use anyhow::{bail, Context, Result};

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
    let mut lab = Lab { pinger: None };
    delete_namespaces()?; // leftovers of an earlier run that was killed
    lab.create()?;
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

/// The running lab; dropping it stops the pinger and deletes the namespaces.
struct Lab {
    pinger: Option<Child>,
}

impl Lab {
    fn create(&mut self) -> Result<()> {
        for ns in NAMESPACES {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        ip(&["-n", BRIDGE_NS, "link", "add", BRIDGE, "type", "bridge"])?;
        ip(&["-n", BRIDGE_NS, "link", "set", BRIDGE, "up"])?;
        for member in &MEMBERS {
            let Member {
                ns,
                host_veth,
                ipv4,
                ipv6,
            } = *member;
            ip(&[
                "-n",
                BRIDGE_NS,
                "link",
                "add",
                host_veth,
                "type",
                "veth",
                "peer",
                "name",
                MEMBER_IFACE,
                "netns",
                ns,
            ])?;
            ip(&["-n", BRIDGE_NS, "link", "set", host_veth, "master", BRIDGE])?;
            ip(&["-n", BRIDGE_NS, "link", "set", host_veth, "up"])?;
            ip(&["-n", ns, "addr", "add", ipv4, "dev", MEMBER_IFACE])?;
            ip(&["-n", ns, "addr", "add", ipv6, "dev", MEMBER_IFACE, "nodad"])?;
            ip(&["-n", ns, "link", "set", MEMBER_IFACE, "up"])?;
        }
        Ok(())
    }

    /// `ping -c <duration> -i 1` from DEV to WEB in the background; its output is discarded.
    fn start_pinger(&mut self, duration: u32) -> Result<()> {
        let count = duration.to_string();
        let mut ping = Command::new("ip");
        ping.args([
            "netns",
            "exec",
            DEV.ns,
            "ping",
            "-c",
            &count,
            "-i",
            "1",
            PING_TARGET,
        ])
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
        if let Err(err) = delete_namespaces() {
            eprintln!(
                "xtask: cleaning up the lab failed: {err:#}; run `cargo xtask lab --netns --down`"
            );
        }
    }
}

/// Runs `netlab watch` on the bridge and both host-side veths in the foreground.
fn watch(netlab: &Path, duration: u32) -> Result<ExitStatus> {
    let mut watch = Command::new("ip");
    watch
        .args(["netns", "exec", BRIDGE_NS])
        .arg(netlab)
        .arg("watch")
        .args(["--iface", BRIDGE]);
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

fn ip(args: &[&str]) -> Result<()> {
    cmd::run(Command::new("ip").args(args))
}

/// Deletes the lab's namespaces that exist; returns their names.
pub fn delete_namespaces() -> Result<Vec<&'static str>> {
    let mut list = Command::new("ip");
    list.args(["netns", "list"]);
    let out = cmd::output(&mut list)?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            cmd::display(&list),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let listing = String::from_utf8_lossy(&out.stdout);
    let existing = namespace_names(&listing);
    let mut deleted = Vec::new();
    for ns in NAMESPACES.into_iter().filter(|ns| existing.contains(ns)) {
        ip(&["netns", "del", ns])?;
        deleted.push(ns);
    }
    Ok(deleted)
}

/// Names in `ip netns list` output, whose lines look like `name` or `name (id: 3)`.
fn namespace_names(listing: &str) -> Vec<&str> {
    listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect()
}

/// The labs create namespaces and links and load eBPF programs: fail early, before a long
/// build, if not root.
pub fn require_root() -> Result<()> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    match effective_uid(&status) {
        Some(0) => Ok(()),
        Some(uid) => {
            bail!("`cargo xtask lab` needs root (network namespaces, eBPF); effective uid is {uid}")
        }
        None => bail!("no Uid line in /proc/self/status"),
    }
}

/// The effective uid from /proc/self/status (`Uid: real effective saved fs`).
fn effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find_map(|line| line.strip_prefix("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_netns_list() {
        let listing = "netlab-lab-web (id: 2)\nnetlab-lab-br (id: 0)\nother\n";
        assert_eq!(
            namespace_names(listing),
            ["netlab-lab-web", "netlab-lab-br", "other"]
        );
        assert!(namespace_names("").is_empty());
    }

    #[test]
    fn parses_effective_uid() {
        let status = "Name:\txtask\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(effective_uid("Name:\txtask\n"), None);
    }

    #[test]
    fn members_differ() {
        assert_ne!(DEV.ns, WEB.ns);
        assert_ne!(DEV.host_veth, WEB.host_veth);
        assert!(WEB.ipv4.starts_with(PING_TARGET));
        assert!(NAMESPACES.iter().all(|ns| ns.starts_with("netlab-lab-")));
    }
}

//! Network namespaces: [`Netns`], a named namespace that exists exactly as long as its guard;
//! running in one ([`ns_exec`], [`in_ns`], [`enter`]); and wiring them with `ip`: a bridge
//! ([`add_bridge`]) and veth pairs, one end a port of the bridge and the other in a
//! namespace of its own ([`add_bridge_port`]).

use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{ensure, Context, Result};

use crate::host::cmd::{announce_with, display, output, run, stdout_of};

/// Where `ip netns add` mounts a namespace.
pub const NETNS_RUN_DIR: &str = "/var/run/netns";

/// A network namespace created with `ip netns add`; dropping the guard runs `ip netns del`,
/// which also destroys every interface still inside it (and the peers of its veths).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name` with its loopback up; fails if it already exists.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        ensure!(
            !Self::exists(&name),
            "network namespace {name} already exists"
        );
        ip(&["netns", "add", &name])?;
        let netns = Self { name };
        // Loopback up, so tools that probe 127.0.0.1 or ::1 behave as on a normal host.
        ip(&["-n", &netns.name, "link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// Creates a namespace named from `tag`, unique per process and call (see [`unique_name`]).
    pub fn unique(tag: &str) -> Result<Self> {
        Self::new(unique_name(tag))
    }

    /// The name `ip netns` knows it by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `cmd` with `sh -c` inside this namespace; returns its stdout.
    pub fn exec(&self, cmd: &str) -> Result<String> {
        ns_exec(&self.name, cmd)
    }

    /// No IPv6 in this namespace, on the interfaces there now and those made later: no router
    /// solicitations, MLD reports or link-local addresses of its own.
    pub fn disable_ipv6(&self) -> Result<()> {
        run(in_ns(&self.name, "sysctl").args([
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]))
        .map(drop)
    }

    /// What `ip -s -j link show` says of interface `iface` here: `operstate`,
    /// `stats64.rx.packets`, ...
    pub fn link(&self, iface: &str) -> Result<serde_json::Value> {
        let shown = self.exec(&format!("ip -s -j link show dev {iface}"))?;
        let mut links: serde_json::Value = serde_json::from_str(&shown)
            .with_context(|| format!("parsing `ip -j link show dev {iface}`: {shown}"))?;
        ensure!(
            links.as_array().is_some_and(|l| l.len() == 1),
            "no single interface {iface} in {shown}"
        );
        Ok(links[0].take())
    }

    /// Packets interface `iface` here received, by its own counter.
    pub fn rx_packets(&self, iface: &str) -> Result<u64> {
        let link = self.link(iface)?;
        rx_of(&link).with_context(|| format!("no rx counter for {iface} in {link}"))
    }

    /// Operational state of interface `iface` here (`UP`, `DOWN`, `LOWERLAYERDOWN`, ...).
    pub fn operstate(&self, iface: &str) -> Result<String> {
        Ok(self.link(iface)?["operstate"]
            .as_str()
            .unwrap_or("?")
            .to_owned())
    }

    /// Whether `ip netns` has a namespace with this name.
    pub fn exists(name: &str) -> bool {
        Path::new(NETNS_RUN_DIR).join(name).exists()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let mut del = Command::new("ip");
        del.args(["netns", "del", &self.name]);
        match output(&mut del) {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "cannot delete network namespace {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(err) => eprintln!("cannot delete network namespace {}: {err:#}", self.name),
        }
    }
}

/// `nlt-<tag>-<pid>-<n>`: `nlt-` marks the test suite's objects, the pid separates concurrent
/// test binaries, `n` separates calls within one process.
pub fn unique_name(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("nlt-{tag}-{}-{n}", std::process::id())
}

/// Deletes namespace `name` if it exists (what an earlier run that was killed left);
/// returns whether it did.
pub fn delete(name: &str) -> Result<bool> {
    if !Netns::exists(name) {
        return Ok(false);
    }
    ip(&["netns", "del", name])?;
    Ok(true)
}

/// `ip netns exec <ns> <program>`, to add arguments to.
pub fn in_ns(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", ns]).arg(program);
    command
}

/// Runs `cmd` with `sh -c` inside network namespace `ns` and returns its stdout; fails with
/// stdout and stderr on a non-zero exit.
pub fn ns_exec(ns: &str, cmd: &str) -> Result<String> {
    run(in_ns(ns, "sh").args(["-c", cmd]))
}

/// `ip <args>`; returns its stdout, fails with what it printed.
pub fn ip(args: &[&str]) -> Result<String> {
    run(Command::new("ip").args(args))
}

/// Every interface of namespace `ns` with the packets it received, by its own counter: one
/// `ip -s -j link show` for all of them.
pub fn rx_counters(ns: &str) -> Result<std::collections::HashMap<String, u64>> {
    let shown = ip(&["-n", ns, "-s", "-j", "link", "show"])?;
    let links: serde_json::Value = serde_json::from_str(&shown)
        .with_context(|| format!("parsing `ip -j link show`: {shown}"))?;
    Ok(links
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| Some((l["ifname"].as_str()?.to_owned(), rx_of(l)?)))
        .collect())
}

/// The received-packets counter of one interface as `ip -s -j link show` prints it.
fn rx_of(link: &serde_json::Value) -> Option<u64> {
    link["stats64"]["rx"]["packets"].as_u64()
}

/// `ip -n <ns> -batch -` with `lines` (one `ip` command each, without the `ip`) on its stdin:
/// one process for many changes.
pub fn ip_batch(ns: &str, lines: &str) -> Result<()> {
    let mut batch = Command::new("ip");
    batch
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = display(&batch);
    announce_with(
        &batch,
        &format!(" <<< ({} commands)", lines.lines().count()),
    );
    let mut child = batch
        .spawn()
        .with_context(|| format!("failed to start `{shown}`"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(lines.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    stdout_of(&shown, &out).map(drop)
}

/// Bridge `bridge` in namespace `ns`, up; `options` follow `type bridge` (`stp_state 0`, ...).
pub fn add_bridge(ns: &str, bridge: &str, options: &[&str]) -> Result<()> {
    let mut add = vec!["-n", ns, "link", "add", bridge, "type", "bridge"];
    add.extend_from_slice(options);
    ip(&add)?;
    ip(&["-n", ns, "link", "set", bridge, "up"]).map(drop)
}

/// A veth pair whose end `port` is a port of `bridge` in namespace `bridge_ns`, up, and whose
/// other end is `peer` in namespace `peer_ns` (down, without addresses: the caller sets it up).
pub fn add_bridge_port(
    bridge_ns: &str,
    bridge: &str,
    port: &str,
    peer_ns: &str,
    peer: &str,
) -> Result<()> {
    ip(&[
        "-n", bridge_ns, "link", "add", port, "type", "veth", "peer", "name", peer, "netns",
        peer_ns,
    ])?;
    ip(&["-n", bridge_ns, "link", "set", port, "master", bridge, "up"]).map(drop)
}

/// Moves the calling thread into network namespace `ns` (`/var/run/netns/<ns>`); only that
/// thread: run it on a thread of its own.
pub fn enter(ns: &str) -> Result<()> {
    let path = Path::new(NETNS_RUN_DIR).join(ns);
    let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: setns(2) on a namespace fd that `file` keeps open across the call; it changes
    // only this thread's network namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("setns into {ns}"));
    }
    Ok(())
}

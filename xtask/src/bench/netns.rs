//! The network namespaces the bench makes: the pair a–br–b and the 500-veth bridge, and
//! the `ip` commands that build them.

use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::cmd;

use super::process::quiet;
use super::{ADDR_A, ADDR_B, NS_A, NS_B, NS_BR, NS_SCALE};

pub(super) fn ip(args: &[&str]) -> Result<()> {
    quiet(Command::new("ip").args(args)).map(drop)
}

/// `ip -n <ns> -batch -` with `lines` on its stdin.
pub(super) fn ip_batch(ns: &str, lines: &str) -> Result<()> {
    let mut c = Command::new("ip");
    c.args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    eprintln!(
        "xtask: {} <<< ({} commands)",
        cmd::display(&c),
        lines.lines().count()
    );
    let mut child = c
        .spawn()
        .with_context(|| format!("failed to start `{}`", cmd::display(&c)))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(lines.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            cmd::display(&c),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `ip netns exec <ns> <program>`.
pub(super) fn in_ns(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(program);
    c
}

// ---------------------------------------------------------------------------------------------
// Namespaces.
// ---------------------------------------------------------------------------------------------

/// Network namespaces that exist as long as this guard (`ip netns del` on drop, which also
/// removes every interface in them).
struct Namespaces(Vec<&'static str>);

impl Namespaces {
    fn add(&mut self, ns: &'static str) -> Result<()> {
        ip(&["netns", "add", ns])?;
        self.0.push(ns);
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        // No IPv6: no router solicitations or MLD reports; only the bench's own traffic.
        quiet(in_ns(ns, "sysctl").args([
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]))?;
        Ok(())
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in self.0.drain(..).rev() {
            eprintln!("xtask: ip netns del {ns}");
            if let Err(e) = Command::new("ip").args(["netns", "del", ns]).output() {
                eprintln!("xtask: cannot delete namespace {ns}: {e}");
            }
        }
    }
}

/// `nlbench-a` (eth0 10.200.0.1/24) and `nlbench-b` (eth0 10.200.0.2/24), whose host ends
/// `va` and `vb` are ports of bridge `br0` in `nlbench-br`.
pub(super) struct Pair {
    _ns: Namespaces,
}

impl Pair {
    pub(super) fn create() -> Result<Self> {
        let mut ns = Namespaces(Vec::new());
        for n in [NS_A, NS_B, NS_BR] {
            ns.add(n)?;
        }
        ip(&["-n", NS_BR, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", NS_BR, "link", "set", "br0", "up"])?;
        for (port, member, addr) in [("va", NS_A, ADDR_A), ("vb", NS_B, ADDR_B)] {
            ip(&[
                "-n", NS_BR, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns",
                member,
            ])?;
            ip(&["-n", NS_BR, "link", "set", port, "master", "br0", "up"])?;
            let cidr = format!("{addr}/24");
            ip(&["-n", member, "addr", "add", &cidr, "dev", "eth0"])?;
            ip(&["-n", member, "link", "set", "eth0", "up"])?;
        }
        // The bridge forwards at once (no STP); a few pings prove it and fill the ARP caches.
        quiet(in_ns(NS_A, "ping").args(["-c", "3", "-i", "0.2", "-w", "5", ADDR_B]))?;
        Ok(Pair { _ns: ns })
    }
}

/// `nlbench-scale`: bridge `br0` with `veths` veth pairs `h<i>`/`p<i>`, every `h<i>` a port.
pub(super) struct ScaleNs {
    _ns: Namespaces,
    pub(super) veths: u32,
}

impl ScaleNs {
    pub(super) fn create(veths: u32) -> Result<Self> {
        let mut ns = Namespaces(Vec::new());
        ns.add(NS_SCALE)?;
        let mut batch = String::from("link add br0 type bridge\nlink set br0 up\n");
        for i in 0..veths {
            batch.push_str(&format!(
                "link add h{i} type veth peer name p{i}\nlink set h{i} master br0 up\nlink set p{i} up\n"
            ));
        }
        ip_batch(NS_SCALE, &batch)?;
        Ok(ScaleNs { _ns: ns, veths })
    }
}

const CLONE_NEWNET: i32 = 0x4000_0000;

extern "C" {
    /// libc's `setns(2)`.
    fn setns(fd: i32, nstype: i32) -> i32;
}

/// Moves the calling thread into network namespace `ns` (`/var/run/netns/<ns>`).
pub(super) fn enter_netns(ns: &str) -> Result<()> {
    let path = Path::new("/var/run/netns").join(ns);
    let f = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: setns(2) on a valid namespace fd; it changes only this thread's namespace.
    let r = unsafe { setns(f.as_raw_fd(), CLONE_NEWNET) };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context(format!("setns into {ns}"));
    }
    Ok(())
}

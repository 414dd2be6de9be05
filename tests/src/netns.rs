//! [`Netns`]: a named network namespace that exists exactly as long as its guard.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{ensure, Result};

use crate::cmd::{ns_exec, run};

/// Where `ip netns add` mounts a namespace.
pub const NETNS_RUN_DIR: &str = "/var/run/netns";

/// A network namespace created with `ip netns add`; dropping the guard runs `ip netns del`,
/// which also destroys every interface still inside it (and the peers of its veths).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name`; fails if it already exists.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        ensure!(
            !Path::new(NETNS_RUN_DIR).join(&name).exists(),
            "network namespace {name} already exists"
        );
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let netns = Self { name };
        // Loopback up, so tools that probe 127.0.0.1 or ::1 behave as on a normal host.
        netns.exec("ip link set lo up")?;
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

    /// Whether `ip netns` still has a namespace with this name.
    pub fn exists(name: &str) -> bool {
        Path::new(NETNS_RUN_DIR).join(name).exists()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let deleted = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        match deleted {
            Ok(output) if output.status.success() => {}
            Ok(output) => eprintln!(
                "netlab-tests: cannot delete network namespace {}: {}",
                self.name,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            Err(err) => eprintln!(
                "netlab-tests: cannot run `ip netns del {}`: {err}",
                self.name
            ),
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

//! Fixtures for netlab's privileged integration tests.
//!
//! Every kernel object a test creates is owned by a value whose `Drop` removes it:
//! [`Netns`] deletes its network namespace, [`Topology`] its three namespaces (and with them
//! every veth and the bridge), [`Watch`] kills a `netlab watch` that is still running.
//!
//! Traffic only ever flows between namespaces a test created: [`Topology`] is an isolated
//! bridge with two "containers", and [`send_raw_frames`] writes frames on an interface of a
//! test namespace from a short-lived thread, never from the test's own thread.
//!
//! What is not netlab's, acting on the host (commands, processes, namespaces, tcx hooks, BPF
//! file descriptors, ping's statistics, the root check), is in [`host`], which xtask uses too.
//!
//! Tests need root and, for the `netlab watch` tests, the binary named by `NETLAB_BIN`
//! (`cargo xtask test` sets it). Without them a test prints `skipping: <reason>` and passes:
//! see [`netlab_or_skip!`] and [`root_or_skip!`].

pub mod bpf_state;
pub mod browser;
pub mod classify;
pub mod daemon;
pub mod docker;
pub mod frames;
pub mod host;
pub mod podman;
pub mod public_copy;
pub mod raw_socket;
pub mod reliability;
pub mod rotel;
pub mod schemathesis;
pub mod swarm;
pub mod tcpdump;
pub mod topology;
pub mod watch;

use std::path::PathBuf;

pub use host::cmd::{run_with_timeout, sh};
pub use host::netns::{ns_exec, Netns};
pub use public_copy::PublicCopy;
pub use raw_socket::send_raw_frames;
pub use topology::Topology;
pub use watch::{count, lost_events, total, Output, Watch};

/// Environment variable naming the `netlab` binary under test.
pub const NETLAB_BIN_ENV: &str = "NETLAB_BIN";

/// `Err(reason)` unless the tests run with effective uid 0.
pub fn require_root() -> Result<(), String> {
    host::root::require_root("this test").map_err(|err| err.to_string())
}

/// The `netlab` binary to test, or why the `netlab watch` tests cannot run here.
pub fn netlab_env() -> Result<PathBuf, String> {
    require_root()?;
    let bin = std::env::var_os(NETLAB_BIN_ENV)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| format!("{NETLAB_BIN_ENV} is not set (run `cargo xtask test`)"))?;
    let bin = PathBuf::from(bin);
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("{NETLAB_BIN_ENV}={} does not exist", bin.display()))
    }
}

/// Evaluates to the netlab binary path, or prints `skipping: <reason>` and returns `Ok(())`
/// from the enclosing test.
#[macro_export]
macro_rules! netlab_or_skip {
    () => {
        match $crate::netlab_env() {
            Ok(bin) => bin,
            Err(reason) => {
                println!("skipping: {reason}");
                return Ok(());
            }
        }
    };
}

/// Prints `skipping: <reason>` and returns `Ok(())` from the enclosing test unless root.
#[macro_export]
macro_rules! root_or_skip {
    () => {
        if let Err(reason) = $crate::require_root() {
            println!("skipping: {reason}");
            return Ok(());
        }
    };
}

/// Number of CPUs the kernel may run BPF programs on (per-CPU state exists for each).
pub fn possible_cpus() -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 on error.
    let configured = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
    let online = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    u64::try_from(configured).unwrap_or(0).max(online)
}

/// Whether the running kernel is at least `major.minor`.
pub fn kernel_at_least(major: u32, minor: u32) -> anyhow::Result<bool> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|part| part.parse::<u32>().unwrap_or(0));
    let have = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    Ok(have >= (major, minor))
}

//! The lab's map: a `netlab daemon` of the lab's own (its socket, pin directory and log under
//! `/run/netlab`), serving the map on loopback ([`MAP_ADDR`]) while the course runs. The
//! lab's `netlab watch` streams from it, so one set of programs observes both. It outlives
//! `cargo xtask lab` (the course's steps come after the watch), in a process group of its
//! own so that Ctrl-C on the watch leaves it; `cargo xtask lab --down` stops it and detaches
//! what it pinned.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::{cmd, workspace};

/// Where the map is served (loopback only).
pub const MAP_ADDR: &str = "127.0.0.1:9477";
/// The lab daemon's API socket (the lab's `netlab watch` uses it).
pub const SOCKET: &str = "/run/netlab/lab.sock";
const PIN_DIR: &str = "/sys/fs/bpf/netlab-lab";
const PID_FILE: &str = "/run/netlab/lab-daemon.pid";
/// What the lab daemon says.
pub const LOG: &str = "/run/netlab/lab-daemon.log";
/// How long it may take to attach and serve.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// The map's address as a URL.
pub fn url() -> String {
    format!("http://{MAP_ADDR}/")
}

/// Starts the lab daemon (after stopping one left by an earlier lab), talking to the engine
/// at `docker_host` (`None`: Docker's default); `Ok(false)` with a warning when it does not
/// come up (the lab then goes on without the map).
pub fn start(netlab: &Path, docker_host: Option<&str>) -> Result<bool> {
    stop(Some(netlab))?;
    std::fs::create_dir_all("/run/netlab").context("creating /run/netlab")?;
    let log = std::fs::File::create(LOG).with_context(|| format!("creating {LOG}"))?;
    let mut daemon = Command::new(netlab);
    if let Some(host) = docker_host {
        daemon.env("DOCKER_HOST", host);
    }
    daemon
        .args([
            "daemon",
            "--socket",
            SOCKET,
            "--pin-dir",
            PIN_DIR,
            "--listen",
            MAP_ADDR,
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    cmd::announce(&daemon);
    let mut child = daemon
        .spawn()
        .with_context(|| format!("starting `{}`", cmd::display(&daemon)))?;
    std::fs::write(PID_FILE, child.id().to_string())
        .with_context(|| format!("writing {PID_FILE}"))?;
    let deadline = Instant::now() + READY_WITHIN;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            let said = std::fs::read_to_string(LOG).unwrap_or_default();
            eprintln!(
                "xtask: warning: the lab's map is not served: netlab daemon exited ({status}): {}",
                said.lines().last().unwrap_or("").trim()
            );
            let _ = std::fs::remove_file(PID_FILE);
            return Ok(false);
        }
        if std::fs::read_to_string(LOG).is_ok_and(|s| s.contains("daemon: watching ")) {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "xtask: warning: the lab's netlab daemon is not ready after {READY_WITHIN:?}; see {LOG}"
    );
    Ok(false)
}

/// Stops the lab daemon if one runs, and detaches what it pinned (with `netlab`, or the
/// workspace's release build when there is one); `true` if there was one.
pub fn stop(netlab: Option<&Path>) -> Result<bool> {
    let pid = daemon_pid();
    let _ = std::fs::remove_file(PID_FILE);
    let Some(pid) = pid else {
        return Ok(false);
    };
    // SAFETY: kill(2) with a pid read above and a valid signal.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let built: Option<PathBuf> = workspace::target_dir()
        .ok()
        .map(|t| t.join("release/netlab"))
        .filter(|p| p.is_file());
    if let Some(bin) = netlab.map(Path::to_path_buf).or(built) {
        cmd::run(Command::new(bin).args(["daemon", "--cleanup", "--pin-dir", PIN_DIR]))?;
    }
    Ok(true)
}

/// Whether `cargo xtask lab --down` stopped the lab daemon (its pid file is gone; a daemon
/// that died leaves it).
pub fn stopped() -> bool {
    !Path::new(PID_FILE).exists()
}

/// Whether the lab daemon runs.
pub fn running() -> bool {
    daemon_pid().is_some()
}

/// The lab daemon's pid, if its pid file names a running one: only a netlab daemon of the
/// lab's (the pid may have been reused since).
fn daemon_pid() -> Option<i32> {
    let pid = std::fs::read_to_string(PID_FILE)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())?;
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(PIN_DIR))
        .then_some(pid)
}

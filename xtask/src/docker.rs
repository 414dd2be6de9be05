//! A Docker engine that answers: reuse a running one, or start `dockerd` and leave it running.

use std::fs::OpenOptions;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cmd;

/// Where a dockerd started by xtask writes its output.
pub const DOCKERD_LOG: &str = "/var/log/netlab-dockerd.log";
/// How long one `docker info` may take.
const INFO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a freshly started dockerd has to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(500);

fn docker_info() -> Command {
    let mut info = Command::new("docker");
    info.arg("info");
    info
}

/// Returns once `docker info` succeeds. If it does not at first, starts `dockerd` in its own
/// session (output to [`DOCKERD_LOG`]) and waits up to 60 s for it. The engine is left running.
///
/// `setsid --fork` makes dockerd a grandchild that init adopts, not a child of this process:
/// a child that is stopped while xtask waits for something else (the engine-restart test
/// does that) would stay a zombie until xtask exits, and look alive to anyone who checks.
pub fn ensure_docker() -> Result<()> {
    let mut info = docker_info();
    if cmd::succeeds_within(&mut info, INFO_TIMEOUT)? {
        eprintln!("xtask: the Docker engine answers");
        return Ok(());
    }

    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(DOCKERD_LOG)
        .with_context(|| format!("cannot open {DOCKERD_LOG}"))?;
    let log_err = log
        .try_clone()
        .with_context(|| format!("cannot reuse {DOCKERD_LOG} for stderr"))?;
    let mut start = Command::new("setsid");
    start
        .args(["--fork", "dockerd"])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    eprintln!("xtask: {} >>{DOCKERD_LOG} 2>&1 &", cmd::display(&start));
    let mut setsid = start.spawn().with_context(|| {
        format!(
            "failed to start `{}` (is docker.io installed? try `cargo xtask setup`)",
            cmd::display(&start)
        )
    })?;

    eprintln!(
        "xtask: {} (polling for up to {} s)",
        cmd::display(&info),
        START_TIMEOUT.as_secs()
    );
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        // setsid exits as soon as it has forked; only a failing status says dockerd never ran.
        if let Some(status) = setsid.try_wait().context("failed to wait for setsid")? {
            if !status.success() {
                bail!("`setsid --fork dockerd` failed ({status}); see {DOCKERD_LOG}");
            }
        }
        if cmd::succeeds_within(&mut docker_info(), INFO_TIMEOUT)? {
            let _ = setsid.wait();
            eprintln!("xtask: dockerd is up (log {DOCKERD_LOG})");
            return Ok(());
        }
        if Instant::now() >= deadline {
            let _ = setsid.wait();
            bail!(
                "dockerd did not answer `docker info` within {} s; see {DOCKERD_LOG}",
                START_TIMEOUT.as_secs()
            );
        }
        thread::sleep(POLL);
    }
}

/// `docker ARGS`.
pub fn docker<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut docker = Command::new("docker");
    docker.args(args);
    docker
}

/// Whether a Docker engine answers `docker info` now (never starts one).
pub fn answers() -> Result<bool> {
    cmd::succeeds_within(&mut docker_info(), INFO_TIMEOUT)
}

/// Runs `docker ARGS` and returns its stdout; fails with its stderr unless it exits 0.
pub fn output<I, S>(args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    cmd::capture(&mut docker(args))
}

/// Runs `docker ARGS`: its stdout if it exits 0, `None` otherwise (an object that does not exist).
pub fn output_if_ok<I, S>(args: I) -> Result<Option<String>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut docker = docker(args);
    let out = cmd::output(&mut docker)?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
}

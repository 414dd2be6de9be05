//! Podman fixtures: its API service (Docker-compatible, plus Podman's own), networks and
//! containers that exist exactly as long as their guards.
//!
//! The service listens on [`SOCKET`], where rootful Podman's `podman.socket` puts it;
//! netlab is pointed at it with `DOCKER_HOST` ([`DOCKER_HOST`]). `cargo xtask setup`
//! installs Podman, and `cargo xtask test` starts the service ([`ensure_service`]) and
//! copies the lab's busybox image into Podman's store ([`ensure_image`]).
//!
//! Objects are named `nlt-<tag>-<pid>-<n>` like the Docker fixtures'. Dropping a
//! [`Container`] runs `podman rm -f -t 0`, a [`Network`] `podman network rm -f`; declare
//! networks before the containers on them.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::host::cmd::{display, run_with_timeout, stdout_of};
use crate::host::netns::unique_name;

/// Where rootful Podman's API service listens.
pub const SOCKET: &str = "/run/podman/podman.sock";
/// `DOCKER_HOST` for Docker clients (netlab among them) to talk to Podman.
pub const DOCKER_HOST: &str = "unix:///run/podman/podman.sock";
/// The lab's base image as Podman's store names it after `podman load`.
pub const BUSYBOX_IMAGE: &str = "docker.io/netlab/busybox:latest";
/// How long one `podman` command may take.
pub const PODMAN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a freshly started service has to answer.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Options every container needs: busybox's ping needs raw sockets (Podman drops
/// NET_RAW by default), and runc may not raise the open-files and process limits to
/// Podman's defaults inside some VMs, so they are set to values any host allows.
pub const RUN_OPTIONS: &[&str] = &[
    "--cap-add",
    "NET_RAW",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

/// Whether the service answers `GET /_ping` on [`SOCKET`].
pub fn answers() -> bool {
    let ping = || -> std::io::Result<bool> {
        let mut s = UnixStream::connect(SOCKET)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n")?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        Ok(answer.starts_with("HTTP/1.") && answer.contains(" 200 "))
    };
    ping().unwrap_or(false)
}

/// Starts `podman system service` on [`SOCKET`] unless it answers already (output to
/// `log`), in a session of its own so it outlives the caller, and waits until it answers.
pub fn ensure_service(log: &Path) -> Result<()> {
    if answers() {
        return Ok(());
    }
    std::fs::create_dir_all("/run/podman").context("creating /run/podman")?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let mut start = Command::new("setsid");
    start
        .args([
            "--fork",
            "podman",
            "system",
            "service",
            "--time",
            "0",
            DOCKER_HOST,
        ])
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    eprintln!("{} >>{} 2>&1 &", display(&start), log.display());
    let status = start
        .status()
        .with_context(|| format!("starting `{}` (is podman installed?)", display(&start)))?;
    ensure!(status.success(), "`{}` failed: {status}", display(&start));
    let deadline = Instant::now() + START_TIMEOUT;
    while !answers() {
        if Instant::now() > deadline {
            bail!(
                "Podman's service did not answer on {SOCKET} within {} s; see {}",
                START_TIMEOUT.as_secs(),
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Copies Docker's `docker_image` into Podman's store (`docker save | podman load`)
/// unless Podman has the same image already (the same id: `podman load` keeps it).
pub fn ensure_image(docker_image: &str) -> Result<()> {
    let docker_id = crate::host::cmd::tool(
        "docker",
        &["image", "inspect", "--format", "{{.Id}}", docker_image],
        PODMAN_TIMEOUT,
    )?;
    let docker_id = docker_id.trim().trim_start_matches("sha256:");
    let podman_id = podman_status(&["image", "inspect", "--format", "{{.Id}}", docker_image])?;
    if podman_id.status.success() && String::from_utf8_lossy(&podman_id.stdout).trim() == docker_id
    {
        return Ok(());
    }
    let mut copy = Command::new("bash");
    copy.args([
        "-c",
        &format!("set -o pipefail; docker save {docker_image} | podman load -q"),
    ]);
    let out = run_with_timeout(copy, PODMAN_TIMEOUT)?;
    stdout_of(&format!("docker save {docker_image} | podman load"), &out)?;
    Ok(())
}

/// The `netlab` binary to test, or why the Podman tests cannot run here: not root, no
/// `NETLAB_BIN`, no Podman service answering on [`SOCKET`], or no busybox image in
/// Podman's store.
pub fn podman_env() -> Result<PathBuf, String> {
    let bin = crate::netlab_env()?;
    if !answers() {
        return Err(format!(
            "no Podman service answers on {SOCKET} (`cargo xtask test` installs Podman and starts it)"
        ));
    }
    match podman_status(&["image", "exists", BUSYBOX_IMAGE]) {
        Ok(out) if out.status.success() => Ok(bin),
        _ => Err(format!(
            "Podman has no {BUSYBOX_IMAGE} (`cargo xtask test` copies it from Docker)"
        )),
    }
}

/// Evaluates to the netlab binary path, or prints `skipping: <reason>` and returns `Ok(())`
/// from the enclosing test (see [`podman_env`]).
#[macro_export]
macro_rules! podman_or_skip {
    () => {
        match $crate::podman::podman_env() {
            Ok(bin) => bin,
            Err(reason) => {
                println!("skipping: {reason}");
                return Ok(());
            }
        }
    };
}

/// Runs `podman <args>` (bounded by [`PODMAN_TIMEOUT`]) and returns its stdout; fails with
/// stdout and stderr on a non-zero exit.
pub fn podman(args: &[&str]) -> Result<String> {
    crate::host::cmd::tool("podman", args, PODMAN_TIMEOUT)
}

/// Runs `podman <args>` (bounded by [`PODMAN_TIMEOUT`]); the exit status is not checked.
pub fn podman_status(args: &[&str]) -> Result<Output> {
    crate::host::cmd::tool_status("podman", args, PODMAN_TIMEOUT)
}

/// A Podman bridge network; dropping it runs `podman network rm -f`.
#[derive(Debug)]
pub struct Network {
    /// Podman's name for it.
    pub name: String,
    gone: bool,
}

impl Network {
    /// `podman network create <options...> nlt-<tag>-<pid>-<n>`.
    pub fn create(tag: &str, options: &[&str]) -> Result<Self> {
        let name = unique_name(tag);
        let mut args = vec!["network", "create"];
        args.extend_from_slice(options);
        args.push(&name);
        podman(&args)?;
        Ok(Self { name, gone: false })
    }

    /// Its bridge device, as Podman names it (`podman1`, ...).
    pub fn bridge(&self) -> Result<String> {
        let shown = podman(&[
            "network",
            "inspect",
            "--format",
            "{{.NetworkInterface}}",
            &self.name,
        ])?;
        Ok(shown.trim().to_owned())
    }

    /// `podman network rm -f` now.
    pub fn remove(mut self) -> Result<()> {
        podman(&["network", "rm", "-f", &self.name])?;
        self.gone = true;
        Ok(())
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if !self.gone {
            let _ = podman_status(&["network", "rm", "-f", &self.name]);
        }
    }
}

/// A busybox container that sleeps; dropping it runs `podman rm -f -t 0`.
#[derive(Debug)]
pub struct Container {
    /// Podman's name for it.
    pub name: String,
    gone: bool,
}

impl Container {
    /// `podman run -d [RUN_OPTIONS] --name nlt-<tag>-<pid>-<n> --network <network> busybox
    /// sleep 300`.
    pub fn sleeper(tag: &str, network: &Network) -> Result<Self> {
        let name = unique_name(tag);
        let mut args = vec!["run", "-d"];
        args.extend_from_slice(RUN_OPTIONS);
        args.extend_from_slice(&[
            "--name",
            &name,
            "--network",
            &network.name,
            BUSYBOX_IMAGE,
            "sleep",
            "300",
        ]);
        let out = podman_status(&args)?;
        let shown = format!("podman {}", args.join(" "));
        // Even a failed `podman run` may have created the container: the guard removes it.
        let container = Self { name, gone: false };
        stdout_of(&shown, &out)?;
        Ok(container)
    }

    /// Its address on its (only) network.
    pub fn ipv4(&self) -> Result<String> {
        crate::docker::inspect_ipv4("podman", &self.name)
    }

    /// The process id of the container's init, as seen from the host.
    pub fn pid(&self) -> Result<u32> {
        crate::docker::inspect_pid("podman", &self.name)
    }

    /// `ping -c <count> -i 0.2 -W 1 <target>` from inside the container, with the exit
    /// status unchecked: what ping's own statistics say.
    pub fn ping(&self, target: &str, count: u32) -> Result<crate::host::ping::PingTotals> {
        let count_arg = count.to_string();
        let out = podman_status(&[
            "exec", &self.name, "ping", "-c", &count_arg, "-i", "0.2", "-W", "1", target,
        ])?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        crate::host::ping::totals(&stdout).with_context(|| {
            format!(
                "`podman exec {} ping -c {count} {target}` printed no statistics:\n{stdout}{}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// The host end of the veth behind the container's `eth0`.
    pub fn host_veth(&self) -> Result<String> {
        crate::docker::host_veth_of(self.pid()?, &self.name)
    }

    /// `podman rm -f -t 0` now.
    pub fn remove(mut self) -> Result<()> {
        podman(&["rm", "-f", "-t", "0", &self.name])?;
        self.gone = true;
        Ok(())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if !self.gone {
            let _ = podman_status(&["rm", "-f", "-t", "0", &self.name]);
        }
    }
}

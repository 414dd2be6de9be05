//! Docker engines from Debian's archives: the one the host runs (`setup --engine`), and an
//! older one run beside it for the firewall tests.
//!
//! Debian has docker.io 20.10 (bookworm), 26.1 (trixie) and 28.5 (unstable). Another
//! release's package is selected per package (`docker.io/sid`), with the release pinned
//! low so that nothing else of the host ever comes from it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use netlab_tests::host::process::{process_lives, signal};

use crate::{cmd, workspace};

/// An engine version Debian's archives carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// docker.io 20.10 (bookworm).
    #[value(name = "20.10")]
    V20_10,
    /// docker.io 26.1 (trixie).
    #[value(name = "26")]
    V26,
    /// docker.io 28.5 (unstable): the default, what most hosts run now.
    #[value(name = "28")]
    V28,
}

impl Engine {
    /// The Debian release that has it.
    pub const fn suite(self) -> &'static str {
        match self {
            Engine::V20_10 => "bookworm",
            Engine::V26 => "trixie",
            Engine::V28 => "sid",
        }
    }

    /// How its version starts.
    pub const fn prefix(self) -> &'static str {
        match self {
            Engine::V20_10 => "20.10.",
            Engine::V26 => "26.",
            Engine::V28 => "28.",
        }
    }

    /// As `--engine` names it.
    pub const fn name(self) -> &'static str {
        match self {
            Engine::V20_10 => "20.10",
            Engine::V26 => "26",
            Engine::V28 => "28",
        }
    }

    /// Newest first: what to fall back to when an engine cannot be installed.
    const BY_AGE: [Engine; 3] = [Engine::V28, Engine::V26, Engine::V20_10];
}

/// The version of docker.io dpkg has installed.
fn installed_version() -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status} ${Version}", "docker.io"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.strip_prefix("install ok installed ")
        .map(|v| v.trim().to_owned())
}

/// Whether a Debian version (`28.5.2+dfsg4-5`, `20.10.24+dfsg1-1+deb12u1+b6`) is `engine`'s.
pub fn is_version_of(version: &str, engine: Engine) -> bool {
    version.starts_with(engine.prefix())
}

/// Adds Debian `suite` to apt's sources, pinned so that only packages asked for by release
/// come from it, and reads its package lists. Bookworm is the host's own release.
fn add_suite(suite: &str) -> Result<()> {
    if suite == "bookworm" {
        return Ok(());
    }
    let sources = PathBuf::from(format!("/etc/apt/sources.list.d/netlab-{suite}.sources"));
    let pin = PathBuf::from(format!("/etc/apt/preferences.d/netlab-{suite}"));
    if !sources.exists() {
        fs::write(
            &sources,
            format!(
                "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: {suite}\nComponents: main\n\
                 Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
            ),
        )
        .with_context(|| format!("writing {}", sources.display()))?;
    }
    fs::write(
        &pin,
        format!("Package: *\nPin: release n={suite}\nPin-Priority: 100\n"),
    )
    .with_context(|| format!("writing {}", pin.display()))?;
    cmd::run(Command::new("apt-get").arg("update"))
}

/// Stops the host's dockerd (if one runs) and waits for it to be gone: a second dockerd
/// started too early fails with "process with PID N is still running".
pub fn stop_dockerd() -> Result<()> {
    let running = || {
        Command::new("pgrep")
            .args(["-x", "dockerd"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !running() {
        return Ok(());
    }
    cmd::run(Command::new("pkill").args(["-TERM", "-x", "dockerd"]))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while running() {
        if Instant::now() >= deadline {
            bail!("dockerd did not stop within 60 s of SIGTERM");
        }
        thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Installs `engine` as the host's docker.io (if another version is installed), leaving
/// it stopped. When it cannot be installed, says so in one loud line and installs the
/// newest older one that can be. Returns the engine installed.
pub fn ensure_engine(want: Engine) -> Result<Engine> {
    if installed_version().is_some_and(|v| is_version_of(&v, want)) {
        return Ok(want);
    }
    let mut last_error = None;
    for engine in Engine::BY_AGE.into_iter().skip_while(|e| *e != want) {
        match install(engine) {
            Ok(()) => {
                if engine != want {
                    eprintln!(
                        "xtask: WARNING: Docker {} cannot be installed here ({:#}); installed Docker {} instead, and every test follows the engine that runs",
                        want.name(),
                        last_error.unwrap_or_else(|| anyhow::anyhow!("unknown reason")),
                        engine.name()
                    );
                }
                return Ok(engine);
            }
            Err(e) => {
                eprintln!("xtask: Docker {} cannot be installed: {e:#}", engine.name());
                last_error.get_or_insert(e);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no engine could be installed")))
}

fn install(engine: Engine) -> Result<()> {
    add_suite(engine.suite())?;
    stop_dockerd()?;
    let suite = engine.suite();
    let mut packages = vec![format!("docker.io/{suite}")];
    if engine != Engine::V20_10 {
        // From 26 on the client is a package of its own.
        packages.push(format!("docker-cli/{suite}"));
    }
    cmd::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args([
                "install",
                "-y",
                "--no-install-recommends",
                "--allow-downgrades",
            ])
            .args(&packages),
    )?;
    match installed_version() {
        Some(v) if is_version_of(&v, engine) => Ok(()),
        other => bail!("after installing, docker.io is {other:?}"),
    }
}

/// An engine of another version than the host's, unpacked from its Debian package and run
/// with a data root, exec root and socket of its own while the host's dockerd is stopped
/// (two engines would fight over docker0 and the DOCKER chains). Dropping it stops it.
pub struct SideEngine {
    /// `unix:///run/netlab-docker-<v>.sock`, for DOCKER_HOST.
    pub host: String,
    pid: Option<u32>,
    exec_root: PathBuf,
}

/// Where side engines are unpacked.
fn engines_dir() -> PathBuf {
    workspace::root().join("target").join("engines")
}

/// Unpacks `engine`'s docker.io package (downloaded once) and returns the directory.
fn unpack(engine: Engine) -> Result<PathBuf> {
    let dir = engines_dir().join(engine.name());
    let dockerd = dir.join("usr/sbin/dockerd");
    if dockerd.exists() {
        return Ok(dir);
    }
    add_suite(engine.suite())?;
    let downloads = engines_dir().join("debs");
    fs::create_dir_all(&downloads)?;
    cmd::run(
        Command::new("apt-get")
            .current_dir(&downloads)
            .args(["download", &format!("docker.io/{}", engine.suite())]),
    )?;
    let deb = fs::read_dir(&downloads)?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("docker.io_") && n.contains(&format!("_{}", engine.prefix()))
            })
        })
        .with_context(|| {
            format!(
                "no docker.io {} package in {}",
                engine.name(),
                downloads.display()
            )
        })?;
    fs::create_dir_all(&dir)?;
    cmd::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir))?;
    ensure_exists(&dockerd)?;
    Ok(dir)
}

fn ensure_exists(p: &Path) -> Result<()> {
    if p.exists() {
        Ok(())
    } else {
        bail!("{} is missing", p.display())
    }
}

impl SideEngine {
    /// Stops the host's dockerd and starts `engine` beside it; waits until it answers.
    pub fn start(engine: Engine) -> Result<SideEngine> {
        let dir = unpack(engine)?;
        stop_dockerd()?;
        let name = format!("netlab-docker-{}", engine.name());
        let exec_root = PathBuf::from(format!("/run/{name}"));
        let data_root = PathBuf::from(format!("/var/lib/{name}"));
        let host = format!("unix:///run/{name}.sock");
        let log = fs::File::create(format!("/var/log/{name}.log"))?;
        // Its dockerd and docker-proxy first; containerd, runc and docker-init (tini) are
        // the host's.
        let path = format!(
            "{}:{}",
            dir.join("usr/sbin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut start = Command::new("setsid");
        start
            .arg("--fork")
            .arg(dir.join("usr/sbin/dockerd"))
            .arg("--data-root")
            .arg(&data_root)
            .arg("--exec-root")
            .arg(&exec_root)
            .arg("--pidfile")
            .arg(exec_root.join("dockerd.pid"))
            .args(["-H", &host])
            .env("PATH", &path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        cmd::announce(&start);
        start.status().context("starting the side engine")?;
        let mut side = SideEngine {
            host: host.clone(),
            pid: None,
            exec_root: exec_root.clone(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut info = Command::new("docker");
            info.args(["-H", &host, "version", "--format", "{{.Server.Version}}"]);
            if let Ok(out) = info.stderr(Stdio::null()).output() {
                let v = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                if out.status.success() && is_version_of(&v, engine) {
                    eprintln!("xtask: Docker {v} answers on {host}");
                    break;
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "the side engine did not answer on {host} within 60 s; see /var/log/{name}.log"
                );
            }
            thread::sleep(Duration::from_millis(300));
        }
        side.pid = fs::read_to_string(exec_root.join("dockerd.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok());
        Ok(side)
    }

    /// Stops it and waits for it to be gone.
    pub fn stop(mut self) -> Result<()> {
        self.halt()
    }

    fn halt(&mut self) -> Result<()> {
        let Some(pid) = self.pid.take() else {
            return Ok(());
        };
        // The pid its own pidfile names. It is not our child (`setsid --fork`): init reaps it,
        // and until then a zombie counts as stopped.
        let _ = signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        while process_lives(pid) {
            if Instant::now() >= deadline {
                let _ = signal(pid, libc::SIGKILL);
                bail!("the side engine (pid {pid}) did not stop within 60 s");
            }
            thread::sleep(Duration::from_millis(200));
        }
        let _ = fs::remove_dir_all(&self.exec_root);
        Ok(())
    }
}

impl Drop for SideEngine {
    fn drop(&mut self) {
        if let Err(e) = self.halt() {
            eprintln!("xtask: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_told_apart() {
        assert!(is_version_of("28.5.2+dfsg4-5", Engine::V28));
        assert!(is_version_of("20.10.24+dfsg1-1+deb12u1+b6", Engine::V20_10));
        assert!(is_version_of("26.1.5+dfsg1-9+b9", Engine::V26));
        assert!(!is_version_of("20.10.24", Engine::V28));
        assert!(!is_version_of("2.10.1", Engine::V20_10));
    }

    #[test]
    fn fallbacks_are_older_engines_only() {
        let after = |want: Engine| -> Vec<Engine> {
            Engine::BY_AGE
                .into_iter()
                .skip_while(|e| *e != want)
                .collect()
        };
        assert_eq!(
            after(Engine::V28),
            [Engine::V28, Engine::V26, Engine::V20_10]
        );
        assert_eq!(after(Engine::V20_10), [Engine::V20_10]);
    }
}

//! `cargo xtask setup`: install what a fresh machine lacks, and nothing else.

use std::process::Command;

use anyhow::{Context, Result};

use crate::cmd;

/// Debian packages the build, the lab and the tests need.
pub const DEBIAN_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "bpftool",
    "iputils-ping",
    "iproute2",
    "busybox-static",
    "tcpdump",
    "util-linux",
    "procps",
    "iptables",
    "nftables",
    "curl",
    // Tests read netlab's captures and metrics with the ecosystem's own tools.
    "tshark",
    "prometheus",
    // The map's tests drive a real headless browser (tests/browser/).
    "chromium",
    // schemathesis' virtual environment (`ensure_schemathesis`).
    "python3-venv",
    // rotel's wheel is fetched with `pip download` (`ensure_rotel`).
    "python3-pip",
    // The OTLP TLS test makes its own CA and server certificate.
    "openssl",
];

/// Where the map tests' browser driver and its npm packages live.
const BROWSER_DRIVER_DIR: &str = "tests/browser";

/// LLVM that bpf-linker is built against (its major must be >= the nightly rustc's LLVM).
const LLVM_BIN: &str = "/usr/lib/llvm-22/bin";
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Installs whatever is missing, with the default Docker engine (28).
pub fn run() -> Result<()> {
    run_with(crate::engines::Engine::V28).map(drop)
}

/// Installs whatever is missing, and Docker `engine` (or, when it cannot be installed, the
/// newest older one that can: returned); prints what it did, or that nothing was missing.
pub fn run_with(engine: crate::engines::Engine) -> Result<crate::engines::Engine> {
    let mut installed_something = false;
    installed_something |= ensure_rust_src()?;
    installed_something |= ensure_debian_packages()?;
    let before = std::process::Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "docker.io"])
        .output()
        .ok();
    let engine = crate::engines::ensure_engine(engine)?;
    let after = std::process::Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "docker.io"])
        .output()
        .ok();
    installed_something |= before.map(|o| o.stdout) != after.map(|o| o.stdout);
    installed_something |= ensure_packages(PODMAN_PACKAGES)?;
    installed_something |= ensure_bpf_linker()?;
    installed_something |= ensure_browser_driver()?;
    installed_something |= ensure_schemathesis()?;
    installed_something |= ensure_rotel()?;
    if installed_something {
        eprintln!("xtask: setup done (Docker {})", engine.name());
    } else {
        eprintln!(
            "xtask: setup: nothing is missing (Docker {})",
            engine.name()
        );
    }
    Ok(engine)
}

/// `rustup component add rust-src --toolchain nightly` unless it is installed already.
fn ensure_rust_src() -> Result<bool> {
    let mut list = Command::new("rustup");
    list.args(["component", "list", "--toolchain", "nightly", "--installed"]);
    if has_rust_src(&cmd::capture(&mut list)?) {
        return Ok(false);
    }
    cmd::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))?;
    Ok(true)
}

fn has_rust_src(component_list: &str) -> bool {
    component_list
        .lines()
        .map(str::trim)
        .any(|line| line == "rust-src" || line.starts_with("rust-src-"))
}

/// Podman and its network stack (netavark, aardvark-dns: without them Podman 4 would fall
/// back to CNI), installed after the Docker engine as on the hosts where both run. The
/// Podman tests and `cargo xtask lab --engine podman` use them.
pub const PODMAN_PACKAGES: &[&str] = &["podman", "netavark", "aardvark-dns"];

/// `apt-get update` and one `apt-get install` of the packages dpkg does not list as installed.
fn ensure_debian_packages() -> Result<bool> {
    ensure_packages(DEBIAN_PACKAGES)
}

/// [`ensure_debian_packages`] for `packages`.
pub fn ensure_packages(packages: &[&'static str]) -> Result<bool> {
    let missing = missing_debian_packages(packages)?;
    if missing.is_empty() {
        return Ok(false);
    }
    eprintln!("xtask: missing Debian packages: {}", missing.join(" "));
    cmd::run(Command::new("apt-get").arg("update"))?;
    cmd::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing),
    )?;
    Ok(true)
}

/// One `dpkg-query` for all packages (it expands the `\n` itself); a package it does not know
/// prints nothing (and makes it exit 1).
fn missing_debian_packages(packages: &[&'static str]) -> Result<Vec<&'static str>> {
    let mut query = Command::new("dpkg-query");
    query
        .args(["-W", r"--showformat=${Package} ${Status}\n"])
        .args(packages);
    let out = cmd::output(&mut query)?;
    let listing = String::from_utf8_lossy(&out.stdout);
    Ok(packages
        .iter()
        .copied()
        .filter(|package| !is_installed(&listing, package))
        .collect())
}

/// Whether a `${Package} ${Status}` listing shows `package` as "install ok installed".
fn is_installed(listing: &str, package: &str) -> bool {
    listing.lines().any(|line| {
        line.split_once(' ').is_some_and(|(name, status)| {
            name == package && status.contains("install ok installed")
        })
    })
}

/// `cargo install bpf-linker` against LLVM 22 unless `bpf-linker --version` works.
fn ensure_bpf_linker() -> Result<bool> {
    let mut version = Command::new("bpf-linker");
    version.arg("--version");
    cmd::announce(&version);
    if version.output().is_ok_and(|out| out.status.success()) {
        return Ok(false);
    }
    let path = cmd::path_with_prefix(LLVM_BIN)?;
    let install = |locked: bool| {
        let mut install = cmd::cargo();
        install
            .env("PATH", &path)
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION]);
        if locked {
            install.arg("--locked");
        }
        install.args(["--no-default-features", "--features", "llvm-22"]);
        cmd::run(&mut install)
    };
    if let Err(err) = install(true) {
        eprintln!("xtask: {err:#}; retrying without --locked");
        install(false).context("cannot install bpf-linker")?;
    }
    Ok(true)
}

/// `npm ci` in `tests/browser` (playwright-core, at the version its lock file names, from
/// the npm registry; it drives Debian's chromium, so no browser is downloaded) unless it
/// is installed already. Node.js and npm come with the machine; without them this says so.
fn ensure_browser_driver() -> Result<bool> {
    let dir = crate::workspace::root().join(BROWSER_DRIVER_DIR);
    if dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        return Ok(false);
    }
    let mut version = Command::new("npm");
    version.arg("--version");
    if !version.output().is_ok_and(|out| out.status.success()) {
        anyhow::bail!(
            "npm is not installed: the map's browser tests need Node.js 20 or later and npm"
        );
    }
    cmd::run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir),
    )
    .context("installing playwright-core for the browser tests")?;
    Ok(true)
}

/// schemathesis (PyPI), the API's client in the tests, in a virtual environment of its own
/// (`netlab_tests::schemathesis::VENV`), unless `st --version` there says the version asked.
fn ensure_schemathesis() -> Result<bool> {
    use netlab_tests::schemathesis::{st, PYTHON, REQUIREMENT, VENV};
    let mut version = Command::new(st());
    version.arg("--version");
    cmd::announce(&version);
    let wanted = REQUIREMENT.rsplit("==").next().unwrap_or(REQUIREMENT);
    if version.output().is_ok_and(|out| {
        out.status.success() && is_version(&String::from_utf8_lossy(&out.stdout), wanted)
    }) {
        return Ok(false);
    }
    // --clear: whatever a broken or older install left goes.
    cmd::run(Command::new(PYTHON).args(["-m", "venv", "--clear", VENV]))
        .context("cannot make schemathesis' virtual environment")?;
    cmd::run(
        Command::new(std::path::Path::new(VENV).join("bin/pip")).args([
            "install",
            "--quiet",
            REQUIREMENT,
        ]),
    )
    .context("cannot install schemathesis")?;
    Ok(true)
}

/// rotel's `rotel-agent` (the OTLP tests' collector), out of its pinned wheel: `pip
/// download` fetches the wheel alone (no environment: only the binary is used), and
/// Python's zipfile unpacks it under /opt. Only when it is missing.
fn ensure_rotel() -> Result<bool> {
    use netlab_tests::rotel::{agent, DIR, REQUIREMENT, WHEEL_PLATFORM, WHEEL_PYTHON};
    let marker = std::path::Path::new(DIR).join("requirement");
    if agent().is_file() && std::fs::read_to_string(&marker).is_ok_and(|s| s.trim() == REQUIREMENT)
    {
        return Ok(false);
    }
    let download = std::env::temp_dir().join(format!("netlab-rotel-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&download);
    cmd::run(
        Command::new("/usr/bin/python3")
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                WHEEL_PYTHON,
                "--platform",
                WHEEL_PLATFORM,
                "-d",
            ])
            .arg(&download)
            .arg(REQUIREMENT),
    )
    .context("cannot download rotel's wheel")?;
    let wheel = std::fs::read_dir(&download)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .context("pip downloaded no rotel wheel")?;
    let _ = std::fs::remove_dir_all(DIR);
    cmd::run(
        Command::new("/usr/bin/python3")
            .args(["-m", "zipfile", "-e"])
            .arg(&wheel)
            .arg(DIR),
    )
    .context("cannot unpack rotel's wheel")?;
    let _ = std::fs::remove_dir_all(&download);
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(agent(), std::fs::Permissions::from_mode(0o755))?;
    std::fs::write(&marker, REQUIREMENT)?;
    if netlab_tests::rotel::libpython_dir().is_none() {
        eprintln!(
            "xtask: setup: rotel-agent needs {} (CPython 3.13), which is not on this machine: the OTLP tests will skip",
            netlab_tests::rotel::LIBPYTHON
        );
    }
    Ok(true)
}

/// Whether `st --version`'s answer (`st, version 4.32.5`) is `wanted`.
fn is_version(answer: &str, wanted: &str) -> bool {
    answer.split_whitespace().last() == Some(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_src_is_found_in_component_list() {
        let list = "cargo-x86_64-unknown-linux-gnu\nrust-src\nrustc-x86_64-unknown-linux-gnu\n";
        assert!(has_rust_src(list));
        assert!(!has_rust_src(
            "cargo-x86_64-unknown-linux-gnu\nrust-std-x86_64-unknown-linux-gnu\n"
        ));
        assert!(!has_rust_src(""));
    }

    #[test]
    fn only_fully_installed_packages_count() {
        let listing = "bpftool install ok installed\n\
                       tcpdump deinstall ok config-files\n\
                       procps install ok installed\n";
        assert!(is_installed(listing, "bpftool"));
        assert!(is_installed(listing, "procps"));
        assert!(!is_installed(listing, "tcpdump"));
        assert!(!is_installed(listing, "docker.io"));
        assert!(!is_installed("", "bpftool"));
    }

    #[test]
    fn schemathesis_version_is_read_from_its_answer() {
        assert!(is_version("st, version 4.32.5\n", "4.32.5"));
        assert!(!is_version("st, version 4.32.50\n", "4.32.5"));
        assert!(!is_version("", "4.32.5"));
    }

    #[test]
    fn package_names_must_match_exactly() {
        assert!(!is_installed(
            "llvm-22-dev-extra install ok installed\n",
            "llvm-22-dev"
        ));
    }
}

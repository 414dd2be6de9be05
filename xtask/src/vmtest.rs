//! `cargo xtask vmtest`: netlab on the kernels Docker hosts run, each booted in a VM.
//!
//! Debian's bullseye 5.10, bookworm 6.1 and trixie 6.12 (`linux-image-*-cloud-amd64`: BTF,
//! BPF JIT, bridge/veth/tc/netfilter as modules) are booted by qemu under TCG emulation (a KVM
//! guest hangs on this machine kind) from an initramfs written here: busybox, the kernel's
//! network modules, the release `netlab`, and iproute2, iptables-nft, nft, tc and bpftool
//! with their shared libraries. The guest's init (`vmtest/guest.sh`) makes namespaces, veths, a
//! bridge and firewall rules of its own, runs the scenarios and prints one line per scenario
//! on the serial console: `VMTEST <scenario> PASS|FAIL|SKIP <detail>`. No Docker runs inside,
//! no packet leaves the guest.
//!
//! Kernels come from Debian's archive through a private apt configuration under
//! `target/vmtest/apt/<release>/` (the host's own sources are never touched) and are kept
//! extracted in `target/vmtest/kernels/<name>/`: a second run downloads nothing. Delete that
//! directory to fetch the archive's newest kernel of that release again.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::interrupt::{self, interrupted, IgnoreInterrupts};
use crate::{cmd, workspace};

/// A Debian kernel the scenarios run on.
#[derive(Debug)]
pub struct Kernel {
    /// What `--kernel` calls it.
    pub name: &'static str,
    /// The Debian release whose `linux-image-cloud-amd64` it is.
    suite: &'static str,
}

pub const KERNELS: [Kernel; 3] = [
    Kernel {
        name: "5.10",
        suite: "bullseye",
    },
    Kernel {
        name: "6.1",
        suite: "bookworm",
    },
    Kernel {
        name: "6.12",
        suite: "trixie",
    },
];

/// The values `--kernel` takes.
pub const KERNEL_CHOICES: [&str; 4] = ["5.10", "6.1", "6.12", "all"];

/// The guest's scenarios, in the order it runs them.
pub const SCENARIOS: [&str; 8] = [
    "load", "count", "kinds", "drop", "btf", "daemon", "newport", "cleanup",
];

/// How long one kernel's boot and scenarios may take before qemu is killed, by default.
/// (5.10 takes about four minutes on this machine kind, 6.12 under two.)
pub const DEFAULT_TIMEOUT_SECS: u64 = 480;

/// Debian packages the host needs: qemu, what goes into the initramfs, depmod and xz.
const HOST_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "kmod",
    "xz-utils",
    "iproute2",
    "iptables",
    "nftables",
    "bpftool",
];

const MIRROR: &str = "http://deb.debian.org/debian";
const SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// The metapackage that depends on each release's current cloud kernel.
const META_PACKAGE: &str = "linux-image-cloud-amd64";

/// Host programs copied into the guest (with their libraries), looked up on PATH.
const GUEST_PROGRAMS: &[&str] = &[
    "ip",
    "tc",
    "bpftool",
    "nft",
    "iptables",
    "iptables-save",
    "iptables-restore",
    "ip6tables",
    "ip6tables-save",
    "ip6tables-restore",
];
/// iptables' extensions, loaded with dlopen (so ldd of iptables does not name them).
const XTABLES_DIR: &str = "/usr/lib/x86_64-linux-gnu/xtables";
/// Host files the guest's programs read.
const GUEST_ETC: &[&str] = &["/etc/protocols", "/etc/services", "/etc/ethertypes"];

/// Module directories (under `lib/modules/<version>/`) whose modules all go into the
/// initramfs, with whatever they depend on: what the scenarios load, and what netfilter,
/// tc and the bridge may ask `modprobe` for on demand.
const MODULE_DIRS: &[&str] = &[
    "kernel/net/netfilter/",
    "kernel/net/ipv4/netfilter/",
    "kernel/net/ipv6/netfilter/",
    "kernel/net/bridge/",
    "kernel/net/sched/",
    "kernel/net/ipv6/ipv6.ko",
    "kernel/drivers/net/veth.ko",
];

const GUEST_SCRIPT: &str = include_str!("vmtest/guest.sh");

/// Boots each kernel of `kernel` ("all" or a name) and runs `scenarios` (all when empty);
/// fails if any scenario fails or gives no result.
pub fn run(kernel: &str, scenarios: &[String], timeout: Duration) -> Result<()> {
    let kernels: Vec<&Kernel> = KERNELS
        .iter()
        .filter(|k| kernel == "all" || k.name == kernel)
        .collect();
    if kernels.is_empty() {
        bail!(
            "unknown kernel {kernel}: use one of {}",
            KERNEL_CHOICES.join(", ")
        );
    }
    let wanted: Vec<&'static str> = SCENARIOS
        .into_iter()
        .filter(|s| scenarios.is_empty() || scenarios.iter().any(|w| w == s))
        .collect();
    let started = Instant::now();
    let cache = workspace::target_dir()?.join("vmtest");
    ensure_tools(&cache)?;
    let netlab = workspace::build_daemon(true)?;

    let mut reports = Vec::new();
    for k in kernels {
        let report = run_kernel(k, &cache, &netlab, &wanted, timeout);
        report.print();
        let stop = report.interrupted;
        reports.push(report);
        if stop {
            eprintln!("xtask: vmtest interrupted");
            break;
        }
    }

    eprintln!("\nxtask: vmtest results");
    let mut failed = 0;
    for r in &reports {
        failed += r.print_summary();
    }
    eprintln!(
        "xtask: vmtest took {:.0} s in all",
        started.elapsed().as_secs_f64()
    );
    if reports.iter().any(|r| r.interrupted) {
        bail!("vmtest was interrupted");
    }
    if failed > 0 {
        bail!("vmtest: {failed} failed (scenario results or kernels)");
    }
    Ok(())
}

/// Installs the Debian packages of [`HOST_PACKAGES`] that dpkg does not list as installed,
/// never removing one (`--no-remove`).
///
/// This machine kind comes with `qemu-utils` from `<release>-backports`, which bookworm's
/// `qemu-system-x86` would remove (they break each other): qemu is then installed from the
/// same backports release, through a source list of xtask's own (the host's sources are
/// left as they are), as the machine's own qemu-utils was.
pub fn ensure_tools(cache: &Path) -> Result<()> {
    let mut query = Command::new("dpkg-query");
    query
        .args(["-W", r"--showformat=${Package} ${Status} ${Version}\n"])
        .args(HOST_PACKAGES)
        .arg("qemu-utils");
    let out = cmd::output(&mut query)?;
    let listing = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&str> = HOST_PACKAGES
        .iter()
        .copied()
        .filter(|p| installed_version(&listing, p).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: vmtest needs Debian packages: {}", missing.join(" "));
    let backports = installed_version(&listing, "qemu-utils")
        .filter(|v| v.contains("~bpo") && missing.contains(&"qemu-system-x86"))
        .map(|_| host_codename())
        .transpose()?;
    let mut update = Command::new("apt-get");
    let mut install = Command::new("apt-get");
    let mut names: Vec<String> = missing.iter().map(|p| (*p).to_owned()).collect();
    if let Some(codename) = backports {
        let dir = cache.join("apt").join("host-backports");
        fs::create_dir_all(dir.join("lists/partial"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let dir = fs::canonicalize(&dir)?;
        let list = dir.join("sources.list");
        fs::write(&list, host_backports_sources(&codename))
            .with_context(|| format!("writing {}", list.display()))?;
        for c in [&mut update, &mut install] {
            c.arg("-o")
                .arg(format!("Dir::Etc::SourceList={}", list.display()))
                .args(["-o", "Dir::Etc::SourceParts=-", "-o"])
                .arg(format!("Dir::State::Lists={}", dir.join("lists").display()))
                .args(["-o", "APT::Sandbox::User=root"]);
        }
        for name in &mut names {
            if name == "qemu-system-x86" {
                *name = format!("qemu-system-x86/{codename}-backports");
            }
        }
    }
    cmd::run(update.arg("update"))?;
    cmd::run(
        install
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends", "--no-remove"])
            .args(&names),
    )
}

/// The version of `package` in a `${Package} ${Status} ${Version}` listing, if it is
/// "install ok installed".
fn installed_version<'a>(listing: &'a str, package: &str) -> Option<&'a str> {
    listing.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let name = words.next()?;
        let status: Vec<&str> = words.by_ref().take(3).collect();
        (name == package && status == ["install", "ok", "installed"])
            .then(|| words.next())
            .flatten()
    })
}

/// `VERSION_CODENAME` of /etc/os-release (`bookworm`).
fn host_codename() -> Result<String> {
    let text = fs::read_to_string("/etc/os-release").context("reading /etc/os-release")?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
        .context("/etc/os-release has no VERSION_CODENAME")
}

/// The host release's own archive and its backports.
fn host_backports_sources(codename: &str) -> String {
    format!(
        "deb [signed-by={KEYRING}] {MIRROR} {codename} main\n\
         deb [signed-by={KEYRING}] {MIRROR} {codename}-updates main\n\
         deb [signed-by={KEYRING}] {SECURITY_MIRROR} {codename}-security main\n\
         deb [signed-by={KEYRING}] {MIRROR} {codename}-backports main\n"
    )
}

/// One scenario's result line from the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ScenarioResult {
    scenario: String,
    status: Status,
    detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pass,
    Fail,
    Skip,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// What one kernel's run gave.
#[derive(Debug, Default)]
struct KernelReport {
    name: &'static str,
    /// `uname -r` of the kernel, once known.
    release: Option<String>,
    /// Downloading and extracting the kernel (zero when it was cached).
    prepare: Duration,
    /// Writing the initramfs.
    initramfs: Duration,
    /// qemu's run: boot, scenarios, power-off.
    vm: Duration,
    /// Seconds from power-on to the guest's init (the guest's uptime when it started).
    boot_secs: Option<f64>,
    results: Vec<ScenarioResult>,
    /// Why the kernel could not be run to the end, if it could not.
    error: Option<String>,
    interrupted: bool,
    console_log: Option<PathBuf>,
}

impl KernelReport {
    /// The per-kernel block printed as soon as the kernel is done.
    fn print(&self) {
        let release = self.release.as_deref().unwrap_or("?");
        eprintln!(
            "xtask: kernel {} ({release}): prepared in {:.1} s, initramfs in {:.1} s, VM ran {:.1} s{}",
            self.name,
            self.prepare.as_secs_f64(),
            self.initramfs.as_secs_f64(),
            self.vm.as_secs_f64(),
            self.boot_secs
                .map(|s| format!(" (init started {s:.1} s after power-on)"))
                .unwrap_or_default()
        );
        if let Some(err) = &self.error {
            eprintln!("xtask: kernel {}: {err}", self.name);
        }
        if let Some(log) = &self.console_log {
            eprintln!("xtask: kernel {}: console log {}", self.name, log.display());
        }
    }

    /// One line per scenario; returns how many failed (a kernel that could not run counts).
    fn print_summary(&self) -> usize {
        let release = self.release.as_deref().unwrap_or("?");
        let passed = self
            .results
            .iter()
            .filter(|r| r.status == Status::Pass)
            .count();
        let failed = self
            .results
            .iter()
            .filter(|r| r.status == Status::Fail)
            .count();
        let skipped = self.results.len() - passed - failed;
        eprintln!(
            "  kernel {} ({release}): {passed} passed, {failed} failed, {skipped} skipped; VM {:.0} s",
            self.name,
            self.vm.as_secs_f64()
        );
        for r in &self.results {
            eprintln!(
                "    {:<5} {:<8} {} {}",
                self.name,
                r.scenario,
                r.status.name(),
                r.detail
            );
        }
        if let Some(err) = &self.error {
            eprintln!("    {:<5} error: {err}", self.name);
        }
        failed + usize::from(self.error.is_some() && failed == 0)
    }
}

/// Prepares, boots and tests one kernel; every error ends up in the report.
fn run_kernel(
    k: &'static Kernel,
    cache: &Path,
    netlab: &Path,
    wanted: &[&'static str],
    timeout: Duration,
) -> KernelReport {
    let mut report = KernelReport {
        name: k.name,
        ..KernelReport::default()
    };
    eprintln!("\nxtask: === kernel {} (Debian {}) ===", k.name, k.suite);
    let t = Instant::now();
    let prepared = match prepare_kernel(k, cache) {
        Ok(p) => p,
        Err(e) => {
            report.error = Some(format!("cannot prepare the kernel: {e:#}"));
            return report;
        }
    };
    report.prepare = t.elapsed();
    report.release = Some(prepared.release.clone());
    let t = Instant::now();
    let initrd = match build_initramfs(&prepared, netlab) {
        Ok(p) => p,
        Err(e) => {
            report.error = Some(format!("cannot build the initramfs: {e:#}"));
            return report;
        }
    };
    report.initramfs = t.elapsed();
    let console_log = prepared.dir.join("console.log");
    report.console_log = Some(console_log.clone());
    let t = Instant::now();
    let outcome = boot(&prepared, &initrd, &console_log, wanted, timeout);
    report.vm = t.elapsed();
    match outcome {
        Ok(run) => {
            report.boot_secs = run.boot_secs;
            report.interrupted = run.interrupted;
            report.results = complete_results(run.results, wanted);
            report.error = run.problem;
        }
        Err(e) => {
            report.error = Some(format!("{e:#}"));
            report.results = complete_results(Vec::new(), wanted);
        }
    }
    report
}

/// `results` in scenario order, with a FAIL for each wanted scenario the guest never reported.
fn complete_results(results: Vec<ScenarioResult>, wanted: &[&str]) -> Vec<ScenarioResult> {
    let mut out: Vec<ScenarioResult> = Vec::new();
    for s in wanted {
        match results.iter().rev().find(|r| r.scenario == *s) {
            Some(r) => out.push(r.clone()),
            None => out.push(ScenarioResult {
                scenario: (*s).to_owned(),
                status: Status::Fail,
                detail: "no result line from the guest".to_owned(),
            }),
        }
    }
    out
}

/// A kernel extracted in the cache, with its modules decompressed and indexed by depmod.
#[derive(Debug)]
struct PreparedKernel {
    /// `target/vmtest/kernels/<name>/`.
    dir: PathBuf,
    /// The package's files (`boot/`, `lib/modules/<release>/`).
    root: PathBuf,
    /// `uname -r`.
    release: String,
    vmlinuz: PathBuf,
}

/// The marker written last once a kernel is extracted: its release, then the package.
const READY: &str = "ready";

/// Downloads and extracts `k` unless the cache has it already.
fn prepare_kernel(k: &Kernel, cache: &Path) -> Result<PreparedKernel> {
    let dir = cache.join("kernels").join(k.name);
    let root = dir.join("root");
    let prepared = |release: &str| PreparedKernel {
        dir: dir.clone(),
        root: root.clone(),
        release: release.to_owned(),
        vmlinuz: root.join("boot").join(format!("vmlinuz-{release}")),
    };
    if let Ok(text) = fs::read_to_string(dir.join(READY)) {
        if let Some(release) = text.lines().next().filter(|r| !r.is_empty()) {
            let p = prepared(release);
            if p.vmlinuz.is_file() {
                eprintln!(
                    "xtask: kernel {} is cached: {} ({})",
                    k.name,
                    release,
                    dir.display()
                );
                return Ok(p);
            }
        }
    }

    let apt = PrivateApt::new(&cache.join("apt").join(k.suite), k.suite)?;
    apt.update()?;
    let package = apt.kernel_package()?;
    let downloads = cache.join("downloads");
    let deb = apt.download(&package, &downloads)?;

    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    cmd::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    fs::remove_file(&deb).with_context(|| format!("removing {}", deb.display()))?;
    // Trixie's packages put modules in /usr/lib/modules; depmod -b wants <root>/lib/modules.
    let usr_modules = root.join("usr/lib/modules");
    let modules = root.join("lib/modules");
    if !modules.exists() && usr_modules.is_dir() {
        fs::create_dir_all(root.join("lib"))?;
        fs::rename(&usr_modules, &modules).with_context(|| {
            format!("moving {} to {}", usr_modules.display(), modules.display())
        })?;
    }
    let release = single_subdir(&modules)?;
    let p = prepared(&release);
    if !p.vmlinuz.is_file() {
        bail!("{} has no {}", package, p.vmlinuz.display());
    }
    decompress_modules(&modules.join(&release))?;
    cmd::run(Command::new("depmod").arg("-b").arg(&root).arg(&release))?;
    fs::write(dir.join(READY), format!("{release}\n{package}\n"))
        .with_context(|| format!("writing {}", dir.join(READY).display()))?;
    Ok(p)
}

/// The name of the only directory in `dir`.
fn single_subdir(dir: &Path) -> Result<String> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    match names.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!(
            "expected one kernel release in {}, found {names:?}",
            dir.display()
        ),
    }
}

/// Decompresses `*.ko.xz` / `*.ko.zst` / `*.ko.gz` in place, so that busybox's modprobe in
/// the guest loads them whatever compression it was built with.
fn decompress_modules(dir: &Path) -> Result<()> {
    let mut found = BTreeSet::new();
    walk(dir, &mut |path| {
        let name = path.to_string_lossy();
        for ext in [".ko.xz", ".ko.zst", ".ko.gz"] {
            if name.ends_with(ext) {
                found.insert(ext);
            }
        }
    })?;
    for ext in found {
        let tool: &[&str] = match ext {
            ".ko.xz" => &["xz", "-d"],
            ".ko.zst" => &["zstd", "-d", "-q", "--rm"],
            _ => &["gzip", "-d"],
        };
        let mut find = Command::new("find");
        find.arg(dir)
            .args(["-name", &format!("*{ext}"), "-exec"])
            .args(tool)
            .args(["{}", "+"]);
        cmd::run(&mut find)?;
    }
    Ok(())
}

/// Calls `f` on every file under `dir` (symlinks are not followed).
fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, f)?;
        } else {
            f(&path);
        }
    }
    Ok(())
}

/// An apt configuration of its own for one Debian release: its sources, lists and cache
/// live in one directory, and nothing of the host's apt configuration is read.
struct PrivateApt {
    dir: PathBuf,
    conf: PathBuf,
}

impl PrivateApt {
    fn new(dir: &Path, suite: &str) -> Result<Self> {
        for sub in [
            "apt.conf.d",
            "preferences.d",
            "sources.list.d",
            "state/lists/partial",
            "cache/archives/partial",
        ] {
            fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        let dir = fs::canonicalize(dir)?;
        let sources = dir.join("sources.list");
        fs::write(&sources, sources_list(suite))
            .with_context(|| format!("writing {}", sources.display()))?;
        let status = dir.join("state/status");
        if !status.exists() {
            fs::write(&status, "")?;
        }
        let conf = dir.join("apt.conf");
        fs::write(&conf, apt_conf(&dir)).with_context(|| format!("writing {}", conf.display()))?;
        Ok(Self { dir, conf })
    }

    fn apt(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("APT_CONFIG", &self.conf);
        c
    }

    fn update(&self) -> Result<()> {
        cmd::run(self.apt("apt-get").args(["-q", "update"]))
    }

    /// The versioned kernel package the release's metapackage depends on now.
    fn kernel_package(&self) -> Result<String> {
        let mut depends = self.apt("apt-cache");
        depends.args(["depends", META_PACKAGE]);
        let out = cmd::output(&mut depends)?;
        if !out.status.success() {
            bail!(
                "`{}` failed ({}): {}",
                cmd::display(&depends),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        kernel_dependency(&String::from_utf8_lossy(&out.stdout)).with_context(|| {
            format!(
                "{META_PACKAGE} depends on no linux-image package (apt lists in {})",
                self.dir.display()
            )
        })
    }

    /// `apt-get download package` into `into`; returns the .deb's path.
    fn download(&self, package: &str, into: &Path) -> Result<PathBuf> {
        fs::create_dir_all(into).with_context(|| format!("creating {}", into.display()))?;
        let prefix = format!("{package}_");
        let find = || -> Result<Option<PathBuf>> {
            for entry in fs::read_dir(into)? {
                let name = entry?.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix) && name.ends_with(".deb") {
                    return Ok(Some(into.join(name)));
                }
            }
            Ok(None)
        };
        if let Some(deb) = find()? {
            return Ok(deb);
        }
        cmd::run(
            self.apt("apt-get")
                .args(["-q", "download", package])
                .current_dir(into),
        )?;
        find()?.with_context(|| {
            format!(
                "apt-get download left no {prefix}*.deb in {}",
                into.display()
            )
        })
    }
}

fn sources_list(suite: &str) -> String {
    format!(
        "deb [arch=amd64 signed-by={KEYRING}] {MIRROR} {suite} main\n\
         deb [arch=amd64 signed-by={KEYRING}] {SECURITY_MIRROR} {suite}-security main\n"
    )
}

fn apt_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "Dir::Etc::SourceList \"{d}/sources.list\";\n\
         Dir::Etc::SourceParts \"{d}/sources.list.d\";\n\
         Dir::Etc::Parts \"{d}/apt.conf.d\";\n\
         Dir::Etc::Main \"{d}/apt.conf.main\";\n\
         Dir::Etc::Preferences \"{d}/preferences\";\n\
         Dir::Etc::PreferencesParts \"{d}/preferences.d\";\n\
         Dir::State \"{d}/state\";\n\
         Dir::State::Lists \"{d}/state/lists\";\n\
         Dir::State::status \"{d}/state/status\";\n\
         Dir::Cache \"{d}/cache\";\n\
         Dir::Cache::pkgcache \"\";\n\
         Dir::Cache::srcpkgcache \"\";\n\
         APT::Architecture \"amd64\";\n\
         APT::Architectures {{ \"amd64\"; }};\n\
         Acquire::Languages \"none\";\n\
         Acquire::GzipIndexes \"true\";\n\
         APT::Sandbox::User \"root\";\n"
    )
}

/// The first `Depends: linux-image-…` of `apt-cache depends` output.
fn kernel_dependency(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-") && !p.contains(' '))
        .map(str::to_owned)
}

/// Writes `<kernel dir>/initramfs.cpio` (uncompressed newc: the kernel unpacks it without
/// decompressing under emulation) and returns its path.
fn build_initramfs(k: &PreparedKernel, netlab: &Path) -> Result<PathBuf> {
    let mut a = Archive::default();
    for dir in ["/bin", "/sbin", "/lib", "/lib64"] {
        a.add_host_path(Path::new(dir))?;
    }
    a.add_host_path(Path::new("/bin/busybox"))?;
    for dir in [
        "dev",
        "proc",
        "sys",
        "run",
        "tmp",
        "root",
        "etc",
        "usr/local/bin",
    ] {
        a.dir(dir);
    }
    a.node("dev/console", 5, 1);
    a.node("dev/null", 1, 3);
    a.bytes("init", GUEST_SCRIPT.as_bytes(), 0o755);
    a.bytes("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644);
    a.bytes("etc/group", b"root:x:0:\n", 0o644);
    for etc in GUEST_ETC {
        if Path::new(etc).exists() {
            a.add_host_path(Path::new(etc))?;
        }
    }

    // Programs and what they load: ldd names the libraries, iptables' extensions are dlopen'ed.
    let mut elves = vec![netlab.to_path_buf()];
    a.host_file("usr/local/bin/netlab", netlab)?;
    for name in GUEST_PROGRAMS {
        let path = find_program(name)
            .with_context(|| format!("{name} is not installed (vmtest copies it into the VM)"))?;
        a.add_host_path(&path)?;
        elves.push(fs::canonicalize(&path)?);
    }
    for entry in fs::read_dir(XTABLES_DIR).with_context(|| format!("reading {XTABLES_DIR}"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "so") {
            a.add_host_path(&path)?;
        }
    }
    elves.sort();
    elves.dedup();
    let mut ldd = Command::new("ldd");
    ldd.args(&elves);
    // The extensions through a shell glob: the same ldd, a shorter command line to print.
    let mut ldd_extensions = Command::new("sh");
    ldd_extensions
        .arg("-c")
        .arg(format!("ldd {XTABLES_DIR}/*.so"));
    for mut c in [ldd, ldd_extensions] {
        for lib in shared_libraries(&mut c)? {
            a.add_host_path(&lib)?;
        }
    }

    // The kernel's modules: MODULE_DIRS and their dependencies, and depmod's indexes.
    let moddir = k.root.join("lib/modules").join(&k.release);
    let dep_text = fs::read_to_string(moddir.join("modules.dep"))
        .with_context(|| format!("reading {}", moddir.join("modules.dep").display()))?;
    let deps = parse_modules_dep(&dep_text);
    let modules = module_closure(&deps, MODULE_DIRS);
    let guest_moddir = format!("lib/modules/{}", k.release);
    for m in &modules {
        a.host_file(&format!("{guest_moddir}/{m}"), &moddir.join(m))?;
    }
    for entry in fs::read_dir(&moddir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("modules.") && entry.file_type()?.is_file() {
            a.host_file(&format!("{guest_moddir}/{name}"), &entry.path())?;
        }
    }

    let path = k.dir.join("initramfs.cpio");
    let size = a.write(&path)?;
    eprintln!(
        "xtask: wrote {} ({} files, {} modules, {:.1} MiB)",
        path.display(),
        a.entries.len(),
        modules.len(),
        size as f64 / (1024.0 * 1024.0)
    );
    Ok(path)
}

/// `name` on PATH, then in /usr/sbin and /sbin (root's programs when PATH lacks them).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The shared libraries an `ldd` command names.
fn shared_libraries(ldd: &mut Command) -> Result<BTreeSet<PathBuf>> {
    // ldd exits non-zero when one of them is static; what it printed still counts.
    let out = cmd::output(ldd)?;
    let text = String::from_utf8_lossy(&out.stdout);
    if let Some(line) = text.lines().find(|l| l.contains("not found")) {
        bail!("`ldd` cannot resolve a library: {}", line.trim());
    }
    Ok(parse_ldd(&text))
}

fn parse_ldd(text: &str) -> BTreeSet<PathBuf> {
    let mut libs = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.trim(),
            None => line,
        };
        let path = path.split(" (").next().unwrap_or_default().trim();
        if path.starts_with('/') && !path.ends_with(':') {
            libs.insert(PathBuf::from(path));
        }
    }
    libs
}

/// `modules.dep`: module path → the paths it depends on.
fn parse_modules_dep(text: &str) -> BTreeMap<String, Vec<String>> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(m, deps)| {
            (
                m.trim().to_owned(),
                deps.split_whitespace().map(str::to_owned).collect(),
            )
        })
        .collect()
}

/// Every module whose path starts with one of `prefixes`, and all they depend on.
fn module_closure(deps: &BTreeMap<String, Vec<String>>, prefixes: &[&str]) -> BTreeSet<String> {
    let mut todo: Vec<&String> = deps
        .keys()
        .filter(|m| prefixes.iter().any(|p| m.starts_with(p)))
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(m) = todo.pop() {
        if seen.insert(m.clone()) {
            todo.extend(deps.get(m).into_iter().flatten());
        }
    }
    seen
}

/// One entry of the initramfs.
#[derive(Debug)]
enum Entry {
    Dir,
    File { source: Source, mode: u32 },
    Symlink(String),
    CharDev { major: u32, minor: u32 },
}

#[derive(Debug)]
enum Source {
    Host(PathBuf),
    Bytes(Vec<u8>),
}

/// An initramfs being assembled: paths are relative to its root, without `.` or `..`, and
/// go through the archive's own symlinks (`lib` → `usr/lib` where the host is merged-/usr).
#[derive(Debug, Default)]
struct Archive {
    entries: BTreeMap<PathBuf, Entry>,
}

impl Archive {
    /// `path` with every leading component that is one of the archive's symlinks replaced by
    /// its target, so that a file is stored where the guest will find it.
    fn resolve(&self, path: &Path) -> PathBuf {
        let mut out = PathBuf::new();
        for (hops, comp) in path.components().enumerate() {
            let Component::Normal(name) = comp else {
                continue;
            };
            out.push(name);
            if hops > 40 {
                break;
            }
            if let Some(Entry::Symlink(target)) = self.entries.get(&out) {
                let target = Path::new(target);
                let base = if target.is_absolute() {
                    PathBuf::new()
                } else {
                    out.parent().map(Path::to_path_buf).unwrap_or_default()
                };
                out = self.resolve(&normalize(&base.join(target)));
            }
        }
        out
    }

    /// Adds `path` (resolved) and its missing parent directories; keeps an existing entry.
    fn insert(&mut self, path: &Path, entry: Entry) {
        let parent = path.parent().map(|p| self.resolve(p)).unwrap_or_default();
        let mut dir = PathBuf::new();
        for comp in parent.components() {
            dir.push(comp);
            self.entries.entry(dir.clone()).or_insert(Entry::Dir);
        }
        let Some(name) = path.file_name() else {
            return;
        };
        self.entries.entry(parent.join(name)).or_insert(entry);
    }

    fn dir(&mut self, path: &str) {
        self.insert(Path::new(path), Entry::Dir);
    }

    fn node(&mut self, path: &str, major: u32, minor: u32) {
        self.insert(Path::new(path), Entry::CharDev { major, minor });
    }

    fn bytes(&mut self, path: &str, data: &[u8], mode: u32) {
        self.insert(
            Path::new(path),
            Entry::File {
                source: Source::Bytes(data.to_vec()),
                mode,
            },
        );
    }

    /// The host file `host` (symlinks followed), stored at `path`.
    fn host_file(&mut self, path: &str, host: &Path) -> Result<()> {
        let meta = fs::metadata(host).with_context(|| format!("reading {}", host.display()))?;
        self.insert(
            Path::new(path),
            Entry::File {
                source: Source::Host(host.to_path_buf()),
                mode: meta.permissions().mode() & 0o7777,
            },
        );
        Ok(())
    }

    /// The host's absolute `path` at the same place, with each symlink on the way stored as
    /// a symlink and its target added too (so `/lib64/ld-linux-x86-64.so.2` works as on the
    /// host). A directory is added empty.
    fn add_host_path(&mut self, path: &Path) -> Result<()> {
        self.add_host_path_depth(path, 0)
    }

    fn add_host_path_depth(&mut self, path: &Path, depth: usize) -> Result<()> {
        if depth > 40 {
            bail!("too many symlinks resolving {}", path.display());
        }
        // `cur` is a host path free of symlinks; `rel` is where it sits in the archive.
        let mut cur = PathBuf::from("/");
        for comp in path.components() {
            match comp {
                Component::Normal(name) => {
                    let next = cur.join(name);
                    let meta = fs::symlink_metadata(&next)
                        .with_context(|| format!("reading {}", next.display()))?;
                    let rel = next.strip_prefix("/").unwrap_or(&next).to_path_buf();
                    if meta.file_type().is_symlink() {
                        let target = fs::read_link(&next)?;
                        self.insert(&rel, Entry::Symlink(target.to_string_lossy().into_owned()));
                        let resolved = normalize(&cur.join(&target));
                        self.add_host_path_depth(&resolved, depth + 1)?;
                        cur = fs::canonicalize(&next)
                            .with_context(|| format!("resolving {}", next.display()))?;
                    } else if meta.is_dir() {
                        self.insert(&rel, Entry::Dir);
                        cur = next;
                    } else {
                        self.insert(
                            &rel,
                            Entry::File {
                                source: Source::Host(next.clone()),
                                mode: meta.permissions().mode() & 0o7777,
                            },
                        );
                        cur = next;
                    }
                }
                Component::ParentDir => {
                    cur.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        Ok(())
    }

    /// Writes the archive as cpio `newc`; returns its size in bytes.
    fn write(&self, path: &Path) -> Result<u64> {
        let file =
            fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = CpioWriter::new(BufWriter::new(file));
        for (name, entry) in &self.entries {
            let name = name.to_string_lossy();
            match entry {
                Entry::Dir => w.entry(&name, 0o040_755, 2, (0, 0), &[])?,
                Entry::Symlink(target) => {
                    w.entry(&name, 0o120_777, 1, (0, 0), target.as_bytes())?
                }
                Entry::CharDev { major, minor } => {
                    w.entry(&name, 0o020_600, 1, (*major, *minor), &[])?
                }
                Entry::File { source, mode } => {
                    let data = match source {
                        Source::Bytes(b) => std::borrow::Cow::Borrowed(b.as_slice()),
                        Source::Host(p) => std::borrow::Cow::Owned(
                            fs::read(p).with_context(|| format!("reading {}", p.display()))?,
                        ),
                    };
                    w.entry(&name, 0o100_000 | mode, 1, (0, 0), &data)?
                }
            }
        }
        let size = w.finish()?;
        Ok(size)
    }
}

/// `path` with `.` and `..` removed lexically (the path is known to be free of symlinks up
/// to each `..`).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for comp in path.components() {
        match comp {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The cpio "new ASCII" format the kernel unpacks: a 110-byte hex header, the name, the
/// data, each padded to 4 bytes, and a `TRAILER!!!` entry.
struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    ino: u32,
}

impl<W: Write> CpioWriter<W> {
    fn new(out: W) -> Self {
        Self {
            out,
            written: 0,
            ino: 0,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> Result<()> {
        let n = (4 - self.written % 4) % 4;
        self.put(&[0u8; 3][..n as usize])
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        (rdev_major, rdev_minor): (u32, u32),
        data: &[u8],
    ) -> Result<()> {
        self.ino += 1;
        let size = u32::try_from(data.len()).context("a file of 4 GiB or more")?;
        let namesize = u32::try_from(name.len() + 1).context("a name too long")?;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev_major, rdev_minor, namesize, 0
        );
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn finish(mut self) -> Result<u64> {
        self.ino = 0;
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[])?;
        self.out.flush()?;
        Ok(self.written)
    }
}

/// What the guest reported.
#[derive(Debug, Default)]
struct VmRun {
    results: Vec<ScenarioResult>,
    boot_secs: Option<f64>,
    /// A timeout, a guest that stopped early, or qemu failing.
    problem: Option<String>,
    interrupted: bool,
}

/// qemu, killed when dropped unless it has exited.
struct Qemu {
    child: Child,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            eprintln!("xtask: stopping qemu (pid {})", self.child.id());
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The guest's lines this side prints as they come (the rest goes to the console log only).
fn is_guest_report(line: &str) -> bool {
    line.starts_with("VMTEST") || line.starts_with("vmtest:")
}

/// Boots the kernel with the initramfs and collects the guest's result lines.
fn boot(
    k: &PreparedKernel,
    initrd: &Path,
    console_log: &Path,
    wanted: &[&str],
    timeout: Duration,
) -> Result<VmRun> {
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "2"])
        .args(["-nographic", "-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(&k.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 mitigations=off random.trust_cpu=on vmtest.only={}",
            wanted.join(",")
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // While qemu runs, Ctrl-C stops it but not xtask, which then reports and stops; the
    // Drop guard kills qemu on every other way out.
    let _interrupts = IgnoreInterrupts::new();
    interrupt::default_interrupts_in_child(&mut qemu);
    // And if xtask itself is killed (SIGTERM, SIGKILL), the kernel kills qemu.
    // SAFETY: the closure runs between fork and exec and only calls prctl(), which is
    // async-signal-safe; it touches no memory of the parent.
    unsafe {
        qemu.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd::announce(&qemu);
    let started = Instant::now();
    let mut child = qemu
        .spawn()
        .with_context(|| format!("failed to start `{}`", cmd::display(&qemu)))?;
    let stdout = child.stdout.take().context("qemu's stdout")?;
    let stderr = child.stderr.take().context("qemu's stderr")?;
    let mut vm = Qemu { child };

    // qemu's own messages are shown as they come; Ctrl-C makes it exit 0 after
    // "terminating on signal 2", which is how an interruption is told from a guest's end.
    let signalled = Arc::new(AtomicBool::new(false));
    let errors = {
        let signalled = Arc::clone(&signalled);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                if line.contains("terminating on signal") {
                    signalled.store(true, Ordering::SeqCst);
                }
            }
        })
    };

    let (tx, rx) = mpsc::channel::<String>();
    let reader = thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\r', '\n'])
                        .replace('\r', "");
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });

    let mut log = BufWriter::new(
        fs::File::create(console_log)
            .with_context(|| format!("creating {}", console_log.display()))?,
    );
    let deadline = started + timeout;
    let mut run = VmRun::default();
    let mut ended = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            log.flush()?;
            run.problem = Some(format!(
                "timed out after {} s (qemu killed); last console lines:\n{}",
                timeout.as_secs(),
                tail(console_log, 25)
            ));
            break;
        }
        match rx.recv_timeout(left.min(Duration::from_secs(1))) {
            Ok(line) => {
                writeln!(log, "{line}")?;
                let line = match line.find("VMTEST") {
                    Some(at) => &line[at..],
                    None => line.as_str(),
                };
                if is_guest_report(line) {
                    eprintln!("  [{}] {line}", started.elapsed().as_secs());
                }
                if let Some(r) = parse_result(line) {
                    run.results.push(r);
                } else if let Some(rest) = line.strip_prefix("VMTEST-BOOT ") {
                    run.boot_secs = rest.split_whitespace().next().and_then(|s| s.parse().ok());
                } else if line.starts_with("VMTEST-END") {
                    ended = true;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    log.flush()?;
    if run.problem.is_some() {
        let _ = vm.child.kill();
    }
    let status: ExitStatus = vm.child.wait().context("waiting for qemu")?;
    let _ = reader.join();
    let _ = errors.join();
    if interrupted(status) || signalled.load(Ordering::SeqCst) {
        run.interrupted = true;
        run.problem.get_or_insert_with(|| "interrupted".to_owned());
    } else if run.problem.is_none() && !ended {
        run.problem = Some(format!(
            "the guest stopped before its last scenario (qemu {status}); last console lines:\n{}",
            tail(console_log, 25)
        ));
    }
    Ok(run)
}

/// `VMTEST <scenario> PASS|FAIL|SKIP <detail>`.
fn parse_result(line: &str) -> Option<ScenarioResult> {
    let rest = line.strip_prefix("VMTEST ")?;
    let (scenario, rest) = rest.split_once(' ')?;
    let (status, detail) = rest.split_once(' ').unwrap_or((rest, ""));
    let status = match status {
        "PASS" => Status::Pass,
        "FAIL" => Status::Fail,
        "SKIP" => Status::Skip,
        _ => return None,
    };
    Some(ScenarioResult {
        scenario: scenario.to_owned(),
        status,
        detail: detail.trim().to_owned(),
    })
}

/// The last `n` lines of a text file (empty if it cannot be read).
fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_parse() {
        assert_eq!(
            parse_result("VMTEST count PASS 4 points exact (3.2 s)"),
            Some(ScenarioResult {
                scenario: "count".into(),
                status: Status::Pass,
                detail: "4 points exact (3.2 s)".into(),
            })
        );
        assert_eq!(
            parse_result("VMTEST drop FAIL").map(|r| (r.status, r.detail)),
            Some((Status::Fail, String::new()))
        );
        assert_eq!(parse_result("VMTEST drop MAYBE x"), None);
        assert_eq!(parse_result("VMTEST-END"), None);
        assert_eq!(parse_result("vmtest: hello"), None);
    }

    #[test]
    fn missing_scenarios_fail() {
        let got = vec![ScenarioResult {
            scenario: "load".into(),
            status: Status::Pass,
            detail: String::new(),
        }];
        let all = complete_results(got, &["load", "count"]);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].status, Status::Pass);
        assert_eq!(all[1].scenario, "count");
        assert_eq!(all[1].status, Status::Fail);
    }

    #[test]
    fn kernel_package_is_found() {
        let text = "linux-image-cloud-amd64\n  Depends: linux-image-6.12.118+deb13-cloud-amd64\n";
        assert_eq!(
            kernel_dependency(text).as_deref(),
            Some("linux-image-6.12.118+deb13-cloud-amd64")
        );
        assert_eq!(kernel_dependency("linux-image-cloud-amd64\n"), None);
    }

    #[test]
    fn ldd_output_parses() {
        let text = "/usr/sbin/ip:\n\tlinux-vdso.so.1 (0x00007ffc)\n\
                    \tlibbpf.so.1 => /lib/x86_64-linux-gnu/libbpf.so.1 (0x00007f96)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f96)\n\
                    /bin/busybox:\n\tnot a dynamic executable\n";
        let libs = parse_ldd(text);
        assert_eq!(
            libs.into_iter().collect::<Vec<_>>(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libbpf.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }

    #[test]
    fn module_closure_follows_dependencies() {
        let deps = parse_modules_dep(
            "kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko\n\
             kernel/net/802/stp.ko: kernel/net/llc/llc.ko\n\
             kernel/net/llc/llc.ko:\n\
             kernel/fs/fuse/fuse.ko:\n",
        );
        let got = module_closure(&deps, &["kernel/net/bridge/"]);
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            [
                "kernel/net/802/stp.ko",
                "kernel/net/bridge/bridge.ko",
                "kernel/net/llc/llc.ko"
            ]
        );
    }

    #[test]
    fn archive_paths_go_through_its_symlinks() {
        let mut a = Archive::default();
        a.insert(Path::new("lib"), Entry::Symlink("usr/lib".into()));
        a.insert(Path::new("lib64"), Entry::Symlink("/usr/lib64".into()));
        a.bytes("lib/modules/6.1/modules.dep", b"", 0o644);
        a.bytes("lib64/ld.so", b"", 0o755);
        let names: Vec<String> = a
            .entries
            .keys()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "lib",
                "lib64",
                "usr",
                "usr/lib",
                "usr/lib/modules",
                "usr/lib/modules/6.1",
                "usr/lib/modules/6.1/modules.dep",
                "usr/lib64",
                "usr/lib64/ld.so"
            ]
        );
        assert_eq!(
            normalize(Path::new("/usr/lib64/../lib/x/./y")),
            Path::new("/usr/lib/x/y")
        );
    }

    #[test]
    fn cpio_entries_are_aligned() {
        let mut out = Vec::new();
        let mut w = CpioWriter::new(&mut out);
        w.entry("init", 0o100_755, 1, (0, 0), b"#!/bin/sh\n")
            .expect("entry");
        let size = w.finish().expect("trailer");
        assert_eq!(size as usize, out.len());
        assert_eq!(out.len() % 4, 0);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("070701"), "{text}");
        // 110-byte header + "init\0" padded to 116, then 10 bytes of data padded to 12.
        assert_eq!(&out[110..115], b"init\0");
        assert_eq!(&out[116..126], b"#!/bin/sh\n");
        assert!(text[128..].starts_with("070701"));
        assert!(text.contains("TRAILER!!!"));
    }

    #[test]
    fn installed_packages_are_recognised() {
        let listing = "qemu-utils install ok installed 1:10.0.2+ds-2+deb13u1~bpo12+1\n\
                       kmod deinstall ok config-files 30+20221128-1\n\
                       qemu-system-x86-extra install ok installed 1\n";
        assert_eq!(
            installed_version(listing, "qemu-utils"),
            Some("1:10.0.2+ds-2+deb13u1~bpo12+1")
        );
        assert_eq!(installed_version(listing, "kmod"), None);
        assert_eq!(installed_version(listing, "qemu-system-x86"), None);
        assert!(host_backports_sources("bookworm").contains(" bookworm-backports main\n"));
    }

    #[test]
    fn private_apt_reads_nothing_of_the_hosts() {
        let conf = apt_conf(Path::new("/c"));
        for key in [
            "Dir::Etc::SourceList \"/c/sources.list\"",
            "Dir::Etc::Parts \"/c/apt.conf.d\"",
            "Dir::State::Lists \"/c/state/lists\"",
            "Dir::Cache \"/c/cache\"",
        ] {
            assert!(conf.contains(key), "{conf}");
        }
        let sources = sources_list("trixie");
        assert!(sources.contains(" trixie main\n"));
        assert!(sources.contains(" trixie-security main\n"));
    }
}

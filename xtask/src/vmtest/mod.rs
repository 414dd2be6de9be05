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
//!
//! Each step has a file: the host's packages (`host.rs`), the kernels (`kernel.rs`), the
//! initramfs (`initramfs.rs`, written by `archive.rs`), qemu and its console (`vm.rs`), and
//! what each kernel's run gave (`report.rs`).

mod archive;
mod host;
mod initramfs;
mod kernel;
mod report;
mod vm;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::workspace;

use host::ensure_tools;
use initramfs::build_initramfs;
use kernel::prepare_kernel;
use report::{complete_results, KernelReport};
use vm::boot;

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

const MIRROR: &str = "http://deb.debian.org/debian";
const SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

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

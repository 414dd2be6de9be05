//! What each kernel's run gave: the scenarios' results, timings and errors.

use std::path::PathBuf;
use std::time::Duration;

/// One scenario's result line from the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ScenarioResult {
    pub(super) scenario: String,
    pub(super) status: Status,
    pub(super) detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
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
pub(super) struct KernelReport {
    pub(super) name: &'static str,
    /// `uname -r` of the kernel, once known.
    pub(super) release: Option<String>,
    /// Downloading and extracting the kernel (zero when it was cached).
    pub(super) prepare: Duration,
    /// Writing the initramfs.
    pub(super) initramfs: Duration,
    /// qemu's run: boot, scenarios, power-off.
    pub(super) vm: Duration,
    /// Seconds from power-on to the guest's init (the guest's uptime when it started).
    pub(super) boot_secs: Option<f64>,
    pub(super) results: Vec<ScenarioResult>,
    /// Why the kernel could not be run to the end, if it could not.
    pub(super) error: Option<String>,
    pub(super) interrupted: bool,
    pub(super) console_log: Option<PathBuf>,
}

impl KernelReport {
    /// The per-kernel block printed as soon as the kernel is done.
    pub(super) fn print(&self) {
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
    pub(super) fn print_summary(&self) -> usize {
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

/// `results` in scenario order, with a FAIL for each wanted scenario the guest never reported.
pub(super) fn complete_results(
    results: Vec<ScenarioResult>,
    wanted: &[&str],
) -> Vec<ScenarioResult> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

//! The machine the numbers were measured on: CPUs, kernel, memory, load, idle time.

use std::process::Command;
use std::thread;
use std::time::Duration;

use super::parse::word_after;

/// The machine the numbers were measured on.
#[derive(Debug, Clone, Default)]
pub(super) struct Machine {
    pub(super) cpus: usize,
    pub(super) model: String,
    pub(super) kernel: String,
    pub(super) memory_gib: f64,
    pub(super) load_before: String,
    pub(super) load_after: String,
    /// Share of CPU time idle over two seconds just before and just after the run (other
    /// jobs of the machine), percent.
    pub(super) idle_before: Option<f64>,
    pub(super) idle_after: Option<f64>,
}

impl Machine {
    pub(super) fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpus: thread::available_parallelism().map_or(0, |n| n.get()),
            model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map_or("?".into(), |(_, m)| m.trim().to_owned()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or("?".into(), |k| k.trim().to_owned()),
            memory_gib: word_after(&meminfo.replace(':', " "), "MemTotal").unwrap_or_default()
                / 1024.0
                / 1024.0,
            load_before: read_loadavg(),
            load_after: String::new(),
            idle_before: cpu_idle(Duration::from_secs(2)),
            idle_after: None,
        }
    }
}

/// The aggregate `cpu` line of /proc/stat: (idle + iowait, total) jiffies.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|w| w.parse().ok())
        .collect();
    Some((fields.get(3)? + fields.get(4)?, fields.iter().sum()))
}

/// Percent of CPU time idle over `d`.
pub(super) fn cpu_idle(d: Duration) -> Option<f64> {
    let (idle0, total0) = cpu_times()?;
    thread::sleep(d);
    let (idle1, total1) = cpu_times()?;
    let total = total1.checked_sub(total0).filter(|t| *t > 0)?;
    Some(100.0 * idle1.saturating_sub(idle0) as f64 / total as f64)
}

pub(super) fn read_loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub(super) fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

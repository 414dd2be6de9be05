//! Process memory, and part 6: the memory of `netlab daemon` on the 500 veths.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};

use super::kernel::{maps_of, MapInfo};
use super::netns::ScaleNs;
use super::parse::{number_at, word_after};
use super::process::{pause, quiet, spawn, wait_for};
use super::{Plan, DAEMON_SOCKET, NO_DOCKER, NS_SCALE, PIN_DIR};
use netlab_tests::host::process::Stdout;

/// A process's memory at one moment, MiB.
#[derive(Debug, Clone, Default)]
pub(super) struct MemSnapshot {
    /// `VmRSS`: what the target is about.
    pub(super) rss: f64,
    /// `VmHWM`: the peak of VmRSS.
    hwm: f64,
    /// `RssAnon`: private memory (heap, stacks).
    anon: f64,
    /// `RssFile`: file-backed pages, which include the BPF maps mapped into the process.
    file: f64,
    /// Resident memory by mapping name (`[heap]`, `anon_inode:bpf-map`, the binary), largest
    /// first.
    by_mapping: Vec<(String, f64)>,
}

impl MemSnapshot {
    pub(super) fn of(pid: u32) -> Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let mib = |key: &str| -> Result<f64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .and_then(number_at)
                .map(|kib| kib / 1024.0)
                .ok_or_else(|| anyhow!("no {key} in /proc/{pid}/status"))
        };
        let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
        Ok(MemSnapshot {
            rss: mib("VmRSS")?,
            hwm: mib("VmHWM")?,
            anon: mib("RssAnon")?,
            file: mib("RssFile")?,
            by_mapping: rss_by_mapping(&smaps),
        })
    }

    /// `VmRSS 47.3 MiB (anon 15.2, file 32.1: anon_inode:bpf-map 16.0, [heap] 15.0, …)`.
    pub(super) fn show(&self) -> String {
        let top: Vec<String> = self
            .by_mapping
            .iter()
            .take(4)
            .map(|(name, mib)| format!("`{name}` {mib:.1}"))
            .collect();
        format!(
            "VmRSS {:.1} MiB (VmHWM {:.1}; RssAnon {:.1}, RssFile {:.1}; largest mappings: {})",
            self.rss,
            self.hwm,
            self.anon,
            self.file,
            top.join(", ")
        )
    }
}

/// Sums the `Rss:` of every mapping of a /proc/PID/smaps by its name, in MiB, largest first.
fn rss_by_mapping(smaps: &str) -> Vec<(String, f64)> {
    let mut sums: Vec<(String, f64)> = Vec::new();
    let mut current = String::from("[anon]");
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            // `start-end perms offset dev inode [name]`
            current = words.nth(4).unwrap_or("[anon]").to_owned();
        } else if first == "Rss:" {
            let kib = words
                .next()
                .and_then(|w| w.parse::<f64>().ok())
                .unwrap_or(0.0);
            match sums.iter_mut().find(|(n, _)| *n == current) {
                Some((_, v)) => *v += kib / 1024.0,
                None => sums.push((current.clone(), kib / 1024.0)),
            }
        }
    }
    sums.sort_by(|a, b| b.1.total_cmp(&a.1));
    sums
}

// ---------------------------------------------------------------------------------------------
// 6. Memory of the daemon.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
pub(super) struct Memory {
    pub(super) interfaces: u64,
    pub(super) mem: MemSnapshot,
    pub(super) maps: Vec<MapInfo>,
}

/// Removes what `netlab daemon` pinned and its socket, also when the measurement fails.
pub(super) struct PinnedDaemon<'a> {
    pub(super) netlab: &'a Path,
}

impl Drop for PinnedDaemon<'_> {
    fn drop(&mut self) {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/var/run/netns/{NS_SCALE}"))
            .arg(self.netlab)
            .args(["daemon", "--cleanup", "--pin-dir", PIN_DIR]);
        if let Err(e) = quiet(&mut c) {
            eprintln!("xtask: {e:#}");
        }
        let _ = std::fs::remove_file(DAEMON_SOCKET);
        let _ = std::fs::remove_dir(PIN_DIR);
    }
}

pub(super) fn memory(_ns: &ScaleNs, netlab: &Path, plan: &Plan) -> Result<Memory> {
    // `ip netns exec` remounts /sys, which hides bpffs; nsenter switches the network only.
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/var/run/netns/{NS_SCALE}"))
        .arg(netlab)
        .args(["daemon", "--socket", DAEMON_SOCKET, "--pin-dir", PIN_DIR])
        .env("DOCKER_HOST", NO_DOCKER);
    let _cleanup = PinnedDaemon { netlab };
    let mut d = spawn(&mut c, Stdout::Discard)?;
    let (_, line) = wait_for(&mut d, "daemon: watching", Duration::from_secs(120))?;
    pause(plan.daemon_settle)?;
    let mem = MemSnapshot::of(d.pid())?;
    let maps = maps_of(d.pid())?;
    d.stop_within(libc::SIGTERM, Duration::from_secs(60))?;
    Ok(Memory {
        interfaces: word_after(&line, "watching").unwrap_or_default() as u64,
        mem,
        maps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_smaps_by_mapping() {
        let smaps = "55d0-55d1 r-xp 00000000 fd:01 123 /usr/bin/netlab\nSize: 8 kB\nRss: 1024 kB\n\
                     55d2-55d3 rw-p 00000000 00:00 0 [heap]\nRss: 3072 kB\n\
                     7f00-7f01 r--s 00000000 00:0e 1038 anon_inode:bpf-map\nRss: 2048 kB\n\
                     7f02-7f03 r--s 00000000 00:0e 1038 anon_inode:bpf-map\nRss: 2048 kB\n\
                     7f04-7f05 rw-p 00000000 00:00 0\nRss: 4 kB\n";
        let m = rss_by_mapping(smaps);
        assert_eq!(m[0], ("anon_inode:bpf-map".to_owned(), 4.0));
        assert_eq!(m[1], ("[heap]".to_owned(), 3.0));
        assert_eq!(m[2], ("/usr/bin/netlab".to_owned(), 1.0));
        assert_eq!(m[3].0, "[anon]");
        assert!(rss_by_mapping("").is_empty());
    }
}

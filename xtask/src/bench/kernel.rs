//! Kernel views: the programs' statistics, their maps, TCX attachments (read with
//! `netlab_tests::host`'s fdinfo and tcx helpers).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use netlab_tests::host::fdinfo::{bpf_fds, number, BpfFd, BpfKind};
use netlab_tests::host::netns::in_ns;
use netlab_tests::host::tcx::{self, Hook};

use super::costs::parse_test_run;
use super::process::quiet;
use super::{BPF_STATS, BPF_STATS_SAVED, NS_BR};

/// `kernel.bpf_stats_enabled=1` while alive; the old value is put back on drop.
pub(super) struct BpfStats {
    old: String,
}

impl BpfStats {
    /// Whether they can be switched off for a moment (they were off before the bench).
    pub(super) fn can_disable(&self) -> bool {
        self.old == "0"
    }

    /// On, or back to the old value.
    pub(super) fn set(&self, on: bool) -> Result<()> {
        std::fs::write(BPF_STATS, if on { "1" } else { self.old.as_str() })
            .with_context(|| format!("writing {BPF_STATS}"))
    }

    pub(super) fn enable() -> Result<Self> {
        let old = std::fs::read_to_string(BPF_STATS)
            .with_context(|| format!("reading {BPF_STATS}"))?
            .trim()
            .to_owned();
        std::fs::write(BPF_STATS_SAVED, &old)
            .with_context(|| format!("writing {BPF_STATS_SAVED}"))?;
        eprintln!("xtask: sysctl kernel.bpf_stats_enabled=1 (was {old})");
        std::fs::write(BPF_STATS, "1").with_context(|| format!("writing {BPF_STATS}"))?;
        Ok(BpfStats { old })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        eprintln!("xtask: sysctl kernel.bpf_stats_enabled={}", self.old);
        match std::fs::write(BPF_STATS, &self.old) {
            Ok(()) => {
                let _ = std::fs::remove_file(BPF_STATS_SAVED);
            }
            Err(e) => eprintln!(
                "xtask: cannot restore kernel.bpf_stats_enabled={}: {e}",
                self.old
            ),
        }
    }
}

/// The fdinfo files of netlab's ingress and egress programs (found through its TCX links).
pub(super) struct TcProgs {
    ingress: PathBuf,
    egress: PathBuf,
    /// The ingress program's id.
    ingress_id: u64,
}

/// Cumulated run time and runs of one program.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct RunStats {
    pub(super) ns: u64,
    pub(super) runs: u64,
}

impl RunStats {
    /// The statistics in a program's fdinfo text (`run_time_ns`, `run_cnt`).
    pub(super) fn parse(fdinfo: &str) -> Option<RunStats> {
        Some(RunStats {
            ns: number(fdinfo, "run_time_ns")?,
            runs: number(fdinfo, "run_cnt")?,
        })
    }

    pub(super) fn since(self, earlier: RunStats) -> RunStats {
        RunStats {
            ns: self.ns.saturating_sub(earlier.ns),
            runs: self.runs.saturating_sub(earlier.runs),
        }
    }

    pub(super) fn plus(self, other: RunStats) -> RunStats {
        RunStats {
            ns: self.ns + other.ns,
            runs: self.runs + other.runs,
        }
    }

    pub(super) fn ns_per_run(self) -> Option<f64> {
        (self.runs > 0).then(|| self.ns as f64 / self.runs as f64)
    }
}

impl TcProgs {
    pub(super) fn of(pid: u32) -> Result<Self> {
        let fds = bpf_fds(pid).with_context(|| format!("reading /proc/{pid}/fd"))?;
        let prog_of = |hook: Hook| -> Option<u64> {
            fds.iter().find_map(|fd| {
                (fd.kind == BpfKind::Link
                    && fd.field("link_type") == Some("tcx")
                    && fd.number("attach_type") == Some(u64::from(hook.attach_type())))
                .then(|| fd.number("prog_id"))
                .flatten()
            })
        };
        let fd_of = |prog_id: u64| prog_fdinfo(&fds, prog_id);
        let ingress_id = prog_of(Hook::Ingress);
        let ingress = ingress_id.and_then(fd_of);
        let egress = prog_of(Hook::Egress).and_then(fd_of);
        match (ingress, egress, ingress_id) {
            (Some(ingress), Some(egress), Some(ingress_id)) => Ok(TcProgs {
                ingress,
                egress,
                ingress_id,
            }),
            _ => bail!("process {pid} holds no TCX-attached ingress and egress programs"),
        }
    }

    /// `bpftool prog run` of the ingress program on `frame`, `repeat` times: the kernel's
    /// average ns per run (BPF_PROG_TEST_RUN), without the statistics' own clock reads.
    pub(super) fn test_run(&self, frame: &Path, repeat: u32) -> Result<f64> {
        let out = quiet(in_ns(NS_BR, "bpftool").args([
            "prog",
            "run",
            "id",
            &self.ingress_id.to_string(),
            "data_in",
            &frame.to_string_lossy(),
            "repeat",
            &repeat.to_string(),
        ]))?;
        parse_test_run(&out).ok_or_else(|| anyhow!("bpftool prog run said {out:?}"))
    }

    /// Ingress's and egress's statistics. One program on both hooks (the empty one) has one
    /// set of statistics: all of it is given as ingress's, none as egress's.
    pub(super) fn read(&self) -> Result<(RunStats, RunStats)> {
        if self.ingress == self.egress {
            return Ok((run_stats(&self.ingress)?, RunStats::default()));
        }
        Ok((run_stats(&self.ingress)?, run_stats(&self.egress)?))
    }
}

/// The fdinfo file of program `prog_id` among a process's BPF file descriptors (one that
/// shows run statistics).
fn prog_fdinfo(fds: &[BpfFd], prog_id: u64) -> Option<PathBuf> {
    fds.iter().find_map(|fd| {
        (fd.kind == BpfKind::Prog
            && fd.number("prog_id") == Some(prog_id)
            && fd.number("run_cnt").is_some())
        .then(|| fd.path.clone())
    })
}

/// The run statistics in the fdinfo file of a program.
fn run_stats(fdinfo: &Path) -> Result<RunStats> {
    let t =
        std::fs::read_to_string(fdinfo).with_context(|| format!("reading {}", fdinfo.display()))?;
    RunStats::parse(&t).ok_or_else(|| anyhow!("no run statistics in {}: {t:?}", fdinfo.display()))
}

/// The fdinfo file of the program a process holds on the `kfree_skb` raw tracepoint
/// (netlab's drop program, or the empty one), found through its link.
pub(super) struct DropProg(PathBuf);

impl DropProg {
    pub(super) fn of(pid: u32) -> Result<Self> {
        let fds = bpf_fds(pid).with_context(|| format!("reading /proc/{pid}/fd"))?;
        let prog_id = fds.iter().find_map(|fd| {
            (fd.kind == BpfKind::Link
                && fd.field("link_type") == Some("raw_tracepoint")
                && fd.field("tp_name") == Some("kfree_skb"))
            .then(|| fd.number("prog_id"))
            .flatten()
        });
        match prog_id.and_then(|id| prog_fdinfo(&fds, id)) {
            Some(p) => Ok(DropProg(p)),
            None => bail!("process {pid} holds no program on the kfree_skb raw tracepoint"),
        }
    }

    pub(super) fn read(&self) -> Result<RunStats> {
        run_stats(&self.0)
    }
}

/// One BPF map held by a process.
#[derive(Debug, Clone)]
pub(super) struct MapInfo {
    id: u64,
    pub(super) name: String,
    pub(super) kind: String,
    pub(super) bytes: u64,
}

/// The maps process `pid` holds: ids and memlock from its fdinfo, names from bpftool.
pub(super) fn maps_of(pid: u32) -> Result<Vec<MapInfo>> {
    let mut maps = Vec::new();
    let fds = bpf_fds(pid).with_context(|| format!("reading /proc/{pid}/fd"))?;
    for map in fds.iter().filter(|fd| fd.kind == BpfKind::Map) {
        let (Some(id), Some(bytes)) = (map.number("map_id"), map.number("memlock")) else {
            continue;
        };
        let shown = quiet(Command::new("bpftool").args(["map", "show", "id", &id.to_string()]))
            .unwrap_or_default();
        let name = word_after_name(&shown).unwrap_or("?").to_owned();
        let kind = shown.split_whitespace().nth(1).unwrap_or("?").to_owned();
        maps.push(MapInfo {
            id,
            name,
            kind,
            bytes,
        });
    }
    maps.sort_by_key(|m| m.id);
    Ok(maps)
}

/// A program a process holds, and the instructions the verifier walked to load it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ProgLoad {
    pub(super) name: String,
    /// fdinfo's `verified_insns` (Linux 5.16 on): the verifier's work, which a process
    /// pays at start-up, on a core the tc attaches' grace periods wait for.
    pub(super) verified_insns: u64,
}

/// The programs process `pid` holds, with their `verified_insns`, by name (a program held
/// twice counted once); empty where the kernel does not report it.
pub(super) fn prog_loads_of(pid: u32) -> Result<Vec<ProgLoad>> {
    let fds = bpf_fds(pid).with_context(|| format!("reading /proc/{pid}/fd"))?;
    let mut seen = std::collections::BTreeSet::new();
    let mut progs = Vec::new();
    for prog in fds.iter().filter(|fd| fd.kind == BpfKind::Prog) {
        let (Some(id), Some(verified_insns)) =
            (prog.number("prog_id"), prog.number("verified_insns"))
        else {
            continue;
        };
        if !seen.insert(id) {
            continue;
        }
        let shown = quiet(Command::new("bpftool").args(["prog", "show", "id", &id.to_string()]))
            .unwrap_or_default();
        progs.push(ProgLoad {
            name: word_after_name(&shown).unwrap_or("?").to_owned(),
            verified_insns,
        });
    }
    progs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(progs)
}

/// The word after `name` on the first line of `bpftool … show`.
fn word_after_name(shown: &str) -> Option<&str> {
    let mut words = shown.lines().next()?.split_whitespace();
    words.by_ref().find(|w| *w == "name")?;
    words.next()
}

/// Whether programs are attached with TCX on both hooks of interface `ifindex` of this
/// thread's namespace.
pub(super) fn tcx_attached(ifindex: u32) -> Result<bool> {
    for hook in Hook::BOTH {
        if tcx::prog_ids(ifindex, hook)?.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_stats() {
        let d = RunStats { ns: 220, runs: 14 }.since(RunStats { ns: 120, runs: 4 });
        assert_eq!(d.ns_per_run(), Some(10.0));
        assert_eq!(RunStats::default().ns_per_run(), None);
    }

    #[test]
    fn names_from_bpftool() {
        let prog = "165: sched_cls  name netlab_ingress  tag 5b4b1c2a9b3be477  gpl\n\tloaded_at 2026-12-03T14:12:02+0000  uid 0\n";
        assert_eq!(word_after_name(prog), Some("netlab_ingress"));
        assert_eq!(
            word_after_name("165: sched_cls  tag 5b4b1c2a9b3be477"),
            None
        );
        assert_eq!(word_after_name(""), None);
    }
}

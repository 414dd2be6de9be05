//! Kernel views: the programs' statistics, their maps, TCX attachments.

use std::ffi::c_long;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};

use super::costs::parse_test_run;
use super::netns::in_ns;
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

/// The fields of one `/proc/PID/fdinfo/FD` (`key:\tvalue` lines).
fn fdinfo_field(info: &str, key: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Every fdinfo of process `pid`, by fd.
fn fdinfos(pid: u32) -> Result<Vec<(PathBuf, String)>> {
    let dir = PathBuf::from(format!("/proc/{pid}/fdinfo"));
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if let Ok(text) = std::fs::read_to_string(&path) {
            out.push((path, text));
        }
    }
    Ok(out)
}

/// The kernel's linux/bpf.h: `BPF_TCX_INGRESS`, `BPF_TCX_EGRESS`.
pub(super) const BPF_TCX_INGRESS: u32 = 46;
pub(super) const BPF_TCX_EGRESS: u32 = 47;

/// The fdinfo files of netlab's ingress and egress programs (found through its TCX links).
pub(super) struct TcProgs {
    ingress: PathBuf,
    egress: PathBuf,
    /// The ingress program's id.
    ingress_id: u64,
}

/// Cumulated run time and runs of one program.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RunStats {
    ns: u64,
    pub(super) runs: u64,
}

impl RunStats {
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
        let infos = fdinfos(pid)?;
        let prog_of = |attach: u32| -> Option<u64> {
            infos.iter().find_map(|(_, t)| {
                (t.contains("link_type:\ttcx")
                    && fdinfo_field(t, "attach_type") == Some(u64::from(attach)))
                .then(|| fdinfo_field(t, "prog_id"))
                .flatten()
            })
        };
        let fd_of = |prog_id: u64| -> Option<PathBuf> {
            infos.iter().find_map(|(p, t)| {
                (fdinfo_field(t, "prog_id") == Some(prog_id)
                    && fdinfo_field(t, "run_cnt").is_some())
                .then(|| p.clone())
            })
        };
        let ingress_id = prog_of(BPF_TCX_INGRESS);
        let ingress = ingress_id.and_then(fd_of);
        let egress = prog_of(BPF_TCX_EGRESS).and_then(fd_of);
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

    pub(super) fn read(&self) -> Result<(RunStats, RunStats)> {
        let one = |p: &Path| -> Result<RunStats> {
            let t =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Ok(RunStats {
                ns: fdinfo_field(&t, "run_time_ns").unwrap_or_default(),
                runs: fdinfo_field(&t, "run_cnt").unwrap_or_default(),
            })
        };
        Ok((one(&self.ingress)?, one(&self.egress)?))
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
    for (_, t) in fdinfos(pid)? {
        let (Some(id), Some(bytes)) = (fdinfo_field(&t, "map_id"), fdinfo_field(&t, "memlock"))
        else {
            continue;
        };
        let shown = quiet(Command::new("bpftool").args(["map", "show", "id", &id.to_string()]))
            .unwrap_or_default();
        let first = shown.lines().next().unwrap_or_default();
        let words: Vec<&str> = first.split_whitespace().collect();
        let name = words
            .iter()
            .position(|w| *w == "name")
            .and_then(|i| words.get(i + 1))
            .map_or("?", |w| w)
            .to_owned();
        let kind = words.get(1).copied().unwrap_or("?").to_owned();
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

const BPF_PROG_QUERY: c_long = 16;
#[cfg(target_arch = "x86_64")]
const SYS_BPF: c_long = 321;
#[cfg(target_arch = "aarch64")]
const SYS_BPF: c_long = 280;

extern "C" {
    /// libc's `syscall(2)`, for `bpf(2)`, which libc does not wrap.
    fn syscall(num: c_long, ...) -> c_long;
}

/// The `query` member of the kernel's `union bpf_attr` (linux/bpf.h, Linux ≥ 6.6).
#[repr(C)]
#[derive(Default)]
struct ProgQuery {
    target_ifindex: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    count: u32,
    _pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    revision: u64,
}

const _: () = assert!(std::mem::size_of::<ProgQuery>() == 64);

/// How many programs are attached with TCX at `attach_type` of interface `ifindex` of this
/// thread's namespace (`BPF_PROG_QUERY`, what `bpftool net` asks).
pub(super) fn tcx_programs(ifindex: u32, attach_type: u32) -> std::io::Result<u32> {
    let mut q = ProgQuery {
        target_ifindex: ifindex,
        attach_type,
        ..Default::default()
    };
    // SAFETY: bpf(BPF_PROG_QUERY) reads and writes only the 64-byte attribute passed with its
    // size; `q` lives across the call. prog_ids is null, so only counts are written.
    let r = unsafe {
        syscall(
            SYS_BPF,
            BPF_PROG_QUERY,
            &mut q as *mut ProgQuery,
            std::mem::size_of::<ProgQuery>() as c_long,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(q.count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fdinfo() {
        let info = "pos:\t0\nprog_type:\t3\nprog_id:\t2478\nrun_time_ns:\t120\nrun_cnt:\t4\n";
        assert_eq!(fdinfo_field(info, "prog_id"), Some(2478));
        assert_eq!(fdinfo_field(info, "run_cnt"), Some(4));
        assert_eq!(
            fdinfo_field("attach_type:\t46 (ingress)\n", "attach_type"),
            Some(46)
        );
        assert_eq!(fdinfo_field(info, "map_id"), None);
        let d = RunStats { ns: 220, runs: 14 }.since(RunStats { ns: 120, runs: 4 });
        assert_eq!(d.ns_per_run(), Some(10.0));
        assert_eq!(RunStats::default().ns_per_run(), None);
    }
}

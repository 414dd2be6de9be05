//! Part 1: the per-packet cost of the tc programs, from the kernel's BPF statistics and
//! BPF_PROG_TEST_RUN; and of the drop program, while b drops every datagram.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, ensure, Result};

use super::kernel::{BpfStats, DropProg, RunStats, TcProgs};
use super::memory::MemSnapshot;
use super::netns::Pair;
use super::parse::number_at;
use netlab_tests::host::ping;
use netlab_tests::host::process::Stdout;

use super::empty::{start_empty, start_empty_at};
use super::process::quiet;
use super::traffic::{ping_cmd, udp_window, Receiver};
use super::{start_watch, Plan, UDP_PAYLOAD, UDP_PORT};
use netlab_tests::host::empty_prog::Position;

/// What the programs did during one traffic window.
#[derive(Debug, Clone, Copy)]
pub(super) struct CostWindow {
    pub(super) round: usize,
    /// `udp` (skipped) or `icmp`.
    pub(super) traffic: &'static str,
    /// netlab's `--sample`, or 0 for the empty programs (`xtask bench-empty`) measured the
    /// same way in the same round: the floor netlab's costs are reported over.
    pub(super) sample: u32,
    pub(super) ingress: RunStats,
    pub(super) egress: RunStats,
    /// Packets sent (UDP datagrams or echo requests).
    pub(super) packets: u64,
    /// The same kind of packet through BPF_PROG_TEST_RUN (ns per run), with the BPF
    /// statistics on (as in the window) and off (only when they were off before the bench).
    pub(super) test_run_stats_on: Option<f64>,
    pub(super) test_run_stats_off: Option<f64>,
}

/// What the program on the `kfree_skb` raw tracepoint did while b dropped every datagram
/// (its socket buffer full): it runs once per datagram, on the sending CPU.
#[derive(Debug, Clone, Copy)]
pub(super) struct DropCostWindow {
    pub(super) round: usize,
    /// netlab's `--sample`, or 0 for the empty program.
    pub(super) sample: u32,
    pub(super) prog: RunStats,
    /// Seconds of sending.
    pub(super) secs: f64,
}

impl DropCostWindow {
    /// The share of the sending CPU's time the program took (it runs on that CPU, in the
    /// softirq that delivers each datagram to b), given what one run costs.
    pub(super) fn cpu_share(&self, ns_per_run: f64) -> f64 {
        ns_per_run * self.prog.runs as f64 / (self.secs * 1e9)
    }
}

/// Skipped UDP with netlab's tc programs and the empty ones on the same hooks at once (the
/// empty ones first or last in each hook's chain): both programs run on every datagram of
/// the window, so their difference is free of what drifts between windows (the machine's
/// other load, the flow's rate, the cache).
#[derive(Debug, Clone, Copy)]
pub(super) struct PairedWindow {
    pub(super) round: usize,
    /// netlab's `--sample`.
    pub(super) sample: u32,
    /// Where the empty programs ran in each hook's chain: first, or after netlab's.
    pub(super) empty_at: Position,
    /// Ingress and egress together.
    pub(super) netlab: RunStats,
    pub(super) empty: RunStats,
}

impl PairedWindow {
    /// netlab's ns per run over the empty programs' in this window.
    pub(super) fn over_empty(&self) -> Option<f64> {
        Some(self.netlab.ns_per_run()? - self.empty.ns_per_run()?)
    }
}

/// Part 1's results.
#[derive(Debug, Clone, Default)]
pub(super) struct Costs {
    pub(super) windows: Vec<CostWindow>,
    /// netlab's tc programs and the empty ones in the same windows.
    pub(super) paired: Vec<PairedWindow>,
    /// The drop programs (netlab's at --sample 100, and the empty one), per round.
    pub(super) drop_windows: Vec<DropCostWindow>,
    /// Memory of the first `netlab watch` on br0, va and vb: just started, and after its
    /// windows (a UDP window, a 20,000-echo `ping -f`, the test runs).
    pub(super) watch_mem_idle: Option<MemSnapshot>,
    pub(super) watch_mem_busy: Option<MemSnapshot>,
}

impl CostWindow {
    pub(super) fn ns_per_run(&self) -> Option<f64> {
        self.ingress.plus(self.egress).ns_per_run()
    }
}

/// Files removed when dropped.
struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// A frame from a to b: Ethernet, IPv4 with `proto`, then `l4`.
fn frame(proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = (20 + l4.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0, 10, 200, 0, 1, 10, 200, 0, 2]);
    f.extend_from_slice(l4);
    f
}

/// The datagram of the UDP sender and an echo request of ping, as frames.
fn test_frames() -> (Vec<u8>, Vec<u8>) {
    let mut udp = Vec::new();
    udp.extend_from_slice(&40000u16.to_be_bytes());
    udp.extend_from_slice(&UDP_PORT.to_be_bytes());
    udp.extend_from_slice(&((8 + UDP_PAYLOAD) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&[0; UDP_PAYLOAD]);
    let mut icmp = vec![8, 0, 0, 0, 0, 7, 0, 1];
    icmp.extend_from_slice(&[0xab; 56]);
    (frame(17, &udp), frame(1, &icmp))
}

pub(super) fn parse_test_run(out: &str) -> Option<f64> {
    let rest = &out[out.find("duration (average):")? + "duration (average):".len()..];
    number_at(rest.trim_start().split("ns").next()?)
}

pub(super) fn costs(_pair: &Pair, netlab: &Path, xtask: &Path, plan: &Plan) -> Result<Costs> {
    let (udp_frame, icmp_frame) = test_frames();
    let files = TempFiles(vec![
        PathBuf::from("/tmp/nlbench-udp.frame"),
        PathBuf::from("/tmp/nlbench-icmp.frame"),
    ]);
    std::fs::write(&files.0[0], udp_frame)?;
    std::fs::write(&files.0[1], icmp_frame)?;
    let stats = BpfStats::enable()?;
    let mut windows = Vec::new();
    let mut drop_windows = Vec::new();
    let mut paired = Vec::new();
    let (mut watch_mem_idle, mut watch_mem_busy) = (None, None);
    for round in 0..plan.cost_rounds {
        // 0: the empty programs, first in each round.
        for sample in [0u32, 1, 100] {
            eprintln!(
                "xtask: bench: per-packet cost, round {}/{}, {}",
                round + 1,
                plan.cost_rounds,
                if sample == 0 {
                    "empty programs".to_owned()
                } else {
                    format!("--sample {sample}")
                }
            );
            let watch = if sample == 0 {
                start_empty(xtask, true)?
            } else {
                start_watch(netlab, &["--sample", &sample.to_string()], Stdout::Discard)?
            };
            let progs = TcProgs::of(watch.pid())?;
            if sample != 0 && watch_mem_idle.is_none() {
                watch_mem_idle = MemSnapshot::of(watch.pid()).ok();
            }
            let t0 = progs.read()?;
            let udp = udp_window(xtask, plan.skip_secs, Receiver::Reads)?;
            let t1 = progs.read()?;
            let out = quiet(&mut ping_cmd(1, plan.pings, 60))?;
            let t2 = progs.read()?;
            // Synthetic runs on lo of nlbench-br: their counts and events land on ifindex 1,
            // after the windows above were read.
            let test = |on: bool| -> Result<(Option<f64>, Option<f64>)> {
                if !on && !stats.can_disable() {
                    return Ok((None, None));
                }
                stats.set(on)?;
                Ok((
                    progs.test_run(&files.0[0], 1_000_000).ok(),
                    progs.test_run(&files.0[1], 20_000).ok(),
                ))
            };
            // The drop program does not depend on --sample: measured beside the empty one.
            if sample != 1 {
                let prog = DropProg::of(watch.pid())?;
                let d0 = prog.read()?;
                let dropped = udp_window(xtask, plan.skip_secs, Receiver::Drops)?;
                drop_windows.push(DropCostWindow {
                    round,
                    sample,
                    prog: prog.read()?.since(d0),
                    secs: dropped.secs,
                });
            }
            if sample != 0 {
                // Each round has one window of each order, the order alternating by round.
                let empty_at = if (round + usize::from(sample == 100)) % 2 == 1 {
                    Position::First
                } else {
                    Position::Last
                };
                paired.push(paired_window(xtask, plan, &progs, round, sample, empty_at)?);
            }
            let (udp_on, icmp_on) = test(true)?;
            let (udp_off, icmp_off) = test(false)?;
            stats.set(true)?;
            if sample != 0 && watch_mem_busy.is_none() {
                watch_mem_busy = MemSnapshot::of(watch.pid()).ok();
            }
            watch.stop_within(libc::SIGINT, Duration::from_secs(20))?;
            let pings = ping::totals(&out).ok_or_else(|| anyhow!("ping said {out:?}"))?;
            ensure!(pings.received > 0, "no echo reply came back: {out}");
            windows.push(CostWindow {
                round,
                traffic: "udp",
                sample,
                ingress: t1.0.since(t0.0),
                egress: t1.1.since(t0.1),
                packets: udp.sent,
                test_run_stats_on: udp_on,
                test_run_stats_off: udp_off,
            });
            windows.push(CostWindow {
                round,
                traffic: "icmp",
                sample,
                ingress: t2.0.since(t1.0),
                egress: t2.1.since(t1.1),
                packets: pings.transmitted,
                test_run_stats_on: icmp_on,
                test_run_stats_off: icmp_off,
            });
        }
    }
    Ok(Costs {
        windows,
        paired,
        drop_windows,
        watch_mem_idle,
        watch_mem_busy,
    })
}

/// One window of skipped UDP with the empty tc programs attached beside netlab's `progs`
/// (first or last on each hook), both read over the same window.
fn paired_window(
    xtask: &Path,
    plan: &Plan,
    progs: &TcProgs,
    round: usize,
    sample: u32,
    empty_at: Position,
) -> Result<PairedWindow> {
    eprintln!(
        "xtask: bench: per-packet cost, round {}/{}, --sample {sample} and the empty programs \
         ({} netlab's) in one window",
        round + 1,
        plan.cost_rounds,
        if empty_at == Position::First {
            "before"
        } else {
            "after"
        }
    );
    let empty = start_empty_at(xtask, false, empty_at)?;
    let empty_progs = TcProgs::of(empty.pid())?;
    let (n0, e0) = (progs.read()?, empty_progs.read()?);
    udp_window(xtask, plan.skip_secs, Receiver::Reads)?;
    let (n1, e1) = (progs.read()?, empty_progs.read()?);
    empty.stop_within(libc::SIGINT, Duration::from_secs(20))?;
    // Both hooks together.
    let both = |now: (RunStats, RunStats), then: (RunStats, RunStats)| {
        now.0.since(then.0).plus(now.1.since(then.1))
    };
    Ok(PairedWindow {
        round,
        sample,
        empty_at,
        netlab: both(n1, n0),
        empty: both(e1, e0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_test_runs() {
        let (udp, icmp) = test_frames();
        assert_eq!(udp.len(), 60);
        assert_eq!(icmp.len(), 98);
        assert_eq!((udp[23], icmp[23]), (17, 1));
        assert_eq!(
            parse_test_run("Return value: 4294967295, duration (average): 24ns\n"),
            Some(24.0)
        );
        assert_eq!(parse_test_run(""), None);
    }
}

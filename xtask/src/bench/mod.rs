//! `cargo xtask bench [--quick] [--json]`: what netlab costs, measured on this machine.
//!
//! Everything here is a measurement, never an assertion: a missed target is reported with the
//! number, not turned into a failure. Traffic only flows between the network namespaces made
//! here (`nlbench-*`), bounded in count and time; nothing is sent to any other address.
//!
//! 1. Per-packet cost of the tc programs, from the kernel's BPF statistics
//!    (`kernel.bpf_stats_enabled`, read from the programs' fdinfo): UDP the programs skip, and
//!    ICMP echo at `--sample 1` and `--sample 100`.
//! 2. UDP packets per second between two namespaces with no observer, netlab, and tcpdump
//!    (filtered and unfiltered), alternating A B C D A B C D so that drift cancels out; then
//!    netlab's drop program switched on and off under one flow that b drops, for the rate
//!    it costs without the noise of separate windows.
//! 3. ICMP floods of rising rate into `netlab watch --rate-limit 0`: events per second
//!    delivered, and where loss starts.
//! 4. The user-space pipeline alone (the criterion bench `netlab-daemon/benches/pipeline.rs`).
//! 5. Attaching to 500 veths: start-up time against the kernel's floor (an empty program
//!    attached to the same hooks), how soon a new veth is observed, and how long a daemon
//!    restart takes to adopt the 500 veths' pinned links.
//! 6. Resident memory of `netlab daemon` on those 500 veths, and the size of its kernel maps;
//!    then again with 1,000 labelled endpoints: a generated Docker topology whose containers
//!    are real processes and namespaces, described by an Engine API responder.
//!
//! It prints a table (on stderr with `--json`, whose single JSON object goes to stdout) and
//! rewrites the results block of BENCH.md, keeping what is written around it. `--only PART`
//! runs some parts alone (`--only scale`: part 5 alone, `--only scale,memory`: the 500-veth
//! namespace's parts) and prints what the block would say instead of writing it.
//!
//! Each part has a file of its own: `costs.rs` (1), `pps.rs` (2), `flood.rs` (3),
//! `pipeline.rs` (4), `scale.rs`, `floor.rs`, `bursts.rs` and `restart.rs` (5), `memory.rs`
//! (6, with the generated topology in `endpoints.rs`, its containers in `containers.rs` and
//! the responder in `engine_api.rs`). `results.rs` and
//! `markdown.rs` make the table, the JSON object and BENCH.md; the namespaces (`netns.rs`),
//! the children and Ctrl-C (`process.rs`), the traffic (`traffic.rs`) and the kernel's views
//! (`kernel.rs`) are shared by the parts.

mod bursts;
mod containers;
mod costs;
mod empty;
mod endpoints;
mod engine_api;
mod flood;
mod floor;
mod kernel;
mod machine;
mod markdown;
mod memory;
mod netns;
mod parse;
mod pipeline;
mod port_notices;
mod pps;
mod process;
mod restart;
mod results;
mod scale;
mod stats;
mod toggle;
mod traffic;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netlab_tests::host::netns::{self as host_netns, in_ns};
use netlab_tests::host::process::{Background, Stdout};
use netlab_tests::host::root;

use crate::workspace;

use costs::costs;
use flood::{flood, FloodLoad};
use machine::{cpu_idle, read_loadavg, utc_now, Machine};
use markdown::{write_bench_md, BENCH_MD};
use memory::{memory, memory_labelled};
use netns::{Pair, ScaleNs};
use pipeline::{build_pipeline_bench, pipeline};
use pps::pps;
use process::{check_stop, quiet, spawn, wait_for, StopFlag};
use restart::restart;
use results::Results;
use scale::scale;
use toggle::{drop_toggle, observer_toggle};

pub use empty::run as empty_run;
pub use traffic::{icmp_send, udp_recv, udp_send};

// ---------------------------------------------------------------------------------------------
// What is built, and how long each part runs.
// ---------------------------------------------------------------------------------------------

/// The sender's namespace (one end of the pair).
const NS_A: &str = "nlbench-a";
/// The receiver's namespace (the other end).
const NS_B: &str = "nlbench-b";
/// The namespace of bridge `br0` with ports `va` and `vb`, where the observers run.
const NS_BR: &str = "nlbench-br";
/// The namespace behind the second bridge `br1` of `nlbench-br`, which routes to it from
/// `br0` (part 3's routed floods).
const NS_C: &str = "nlbench-c";
/// The namespace of the 500-veth bridge.
const NS_SCALE: &str = "nlbench-scale";
/// The namespace of the kernel's floor for a new port (a bridge where no netlab runs).
const NS_PORT_FLOOR: &str = "nlbench-portfloor";
const NAMESPACES: [&str; 6] = [NS_A, NS_B, NS_BR, NS_C, NS_SCALE, NS_PORT_FLOOR];
const ADDR_A: &str = "10.200.0.1";
const ADDR_B: &str = "10.200.0.2";
/// `nlbench-c`'s address, on `br1`'s subnet.
const ADDR_C: &str = "10.200.1.2";
/// The only destinations the bench's senders accept: its own two subnets, 10.200.0.0/24
/// (br0) and 10.200.1.0/24 (br1).
const BENCH_NETS: [[u8; 3]; 2] = [[10, 200, 0], [10, 200, 1]];
const UDP_PORT: u16 = 5001;
/// A port nothing listens on in b: each datagram to it is answered with an ICMP port
/// unreachable (the flood's controlled ICMP source).
const CLOSED_PORT: u16 = 5002;
/// Payload of each datagram: 18 bytes make the smallest Ethernet frame (64 bytes with FCS).
const UDP_PAYLOAD: usize = 18;
const DAEMON_SOCKET: &str = "/tmp/nlbench.sock";
/// Where part 6's Docker Engine API responder listens.
const ENGINE_SOCKET: &str = "/tmp/nlbench-docker.sock";
const PIN_DIR: &str = "/sys/fs/bpf/nlbench";
const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";
/// Where the value of [`BPF_STATS`] before the bench is kept until it is put back, so a
/// killed run is repaired by the next one.
const BPF_STATS_SAVED: &str = "/tmp/nlbench.bpf_stats_enabled";
/// Docker is never consulted: netlab then observes every bridge and its ports by name.
const NO_DOCKER: &str = "unix:///nonexistent.sock";
/// No netlab daemon is used by `netlab watch` either.
const NO_DAEMON: &str = "/nonexistent/nlbench.sock";

/// Lengths of every part: full or `--quick`.
#[derive(Debug, Clone)]
struct Plan {
    /// Rounds of the per-packet costs (each: `--sample 1`, then `--sample 100`).
    cost_rounds: usize,
    /// A/B rounds of the packet rates (each: every observer once, in the same order).
    pps_rounds: usize,
    /// Length of one UDP window of the packet-rate comparison.
    pps_secs: f64,
    /// Blocks of the drop program switched on and off under one flow (four slices each).
    toggle_blocks: usize,
    /// Blocks of netlab and tcpdump switched on and off under one flow (four slices each).
    observer_blocks: usize,
    /// Length of the UDP window of the per-packet cost.
    skip_secs: f64,
    /// Echo requests of one `ping -f` for the per-packet cost.
    pings: u32,
    /// Length of each flood level.
    flood_secs: u32,
    /// Flood levels, in order.
    flood_levels: &'static [FloodLoad],
    /// Veth pairs of the scale test.
    veths: u32,
    /// Start-ups timed on them, each after a run of the kernel's floor.
    startups: usize,
    /// Daemon restarts timed on them (after one cold start).
    restarts: usize,
    /// New veths timed from enslaving to attached.
    latency_samples: usize,
    /// How long the daemon runs before its memory is read.
    daemon_settle: Duration,
    /// Extra arguments of the criterion bench.
    criterion: &'static [&'static str],
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Plan {
                cost_rounds: 2,
                pps_rounds: 2,
                pps_secs: 1.0,
                toggle_blocks: 10,
                observer_blocks: 10,
                skip_secs: 1.0,
                pings: 5_000,
                flood_secs: 2,
                flood_levels: &[
                    FloodLoad::Unreachable { pps: 50_000 },
                    FloodLoad::Unreachable { pps: 100_000 },
                    FloodLoad::Echo { pps: 75_000 },
                    FloodLoad::Echo { pps: 100_000 },
                    FloodLoad::Routed { pps: 50_000 },
                    FloodLoad::Routed { pps: 60_000 },
                    FloodLoad::Ping {
                        procs: 1,
                        preload: 1,
                    },
                ],
                veths: 500,
                startups: 1,
                restarts: 3,
                latency_samples: 20,
                daemon_settle: Duration::from_secs(1),
                criterion: &["--warm-up-time", "1", "--measurement-time", "2"],
            }
        } else {
            Plan {
                cost_rounds: 5,
                pps_rounds: 6,
                pps_secs: 2.0,
                toggle_blocks: 60,
                observer_blocks: 40,
                skip_secs: 3.0,
                pings: 20_000,
                flood_secs: 3,
                flood_levels: &[
                    FloodLoad::Unreachable { pps: 25_000 },
                    FloodLoad::Unreachable { pps: 50_000 },
                    FloodLoad::Unreachable { pps: 75_000 },
                    FloodLoad::Unreachable { pps: 100_000 },
                    FloodLoad::Unreachable { pps: 150_000 },
                    FloodLoad::Unreachable { pps: 200_000 },
                    FloodLoad::Echo { pps: 25_000 },
                    FloodLoad::Echo { pps: 50_000 },
                    FloodLoad::Echo { pps: 75_000 },
                    FloodLoad::Echo { pps: 90_000 },
                    FloodLoad::Echo { pps: 110_000 },
                    FloodLoad::Echo { pps: 130_000 },
                    FloodLoad::Routed { pps: 40_000 },
                    FloodLoad::Routed { pps: 50_000 },
                    FloodLoad::Routed { pps: 60_000 },
                    FloodLoad::Routed { pps: 70_000 },
                    FloodLoad::Ping {
                        procs: 1,
                        preload: 1,
                    },
                    FloodLoad::Ping {
                        procs: 1,
                        preload: 64,
                    },
                ],
                veths: 500,
                startups: 3,
                restarts: 5,
                latency_samples: 100,
                daemon_settle: Duration::from_secs(3),
                criterion: &[],
            }
        }
    }
}

/// The parts of the bench, for `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// 1. Per-packet cost of the tc programs.
    Costs,
    /// 2. UDP packets per second with and without observers.
    Pps,
    /// 3. ICMP floods into `netlab watch`.
    Flood,
    /// 4. The user-space pipeline (criterion).
    Pipeline,
    /// 5. Attaching to 500 veths: start-up and its floor, new veths, a daemon restart.
    Scale,
    /// 6. Memory of `netlab daemon` on 500 veths, without and with 1,000 labelled endpoints.
    Memory,
}

// ---------------------------------------------------------------------------------------------
// The command.
// ---------------------------------------------------------------------------------------------

/// Runs every measurement (or those of `only`), prints the table (and the JSON object),
/// writes BENCH.md (with `only`: prints what its block would say instead).
pub fn run(quick: bool, json: bool, only: &[Part]) -> Result<()> {
    root::require_root("`cargo xtask bench` (namespaces, eBPF, BPF statistics)")?;
    let wants = |p: Part| only.is_empty() || only.contains(&p);
    let plan = Plan::new(quick);
    let started = Instant::now();
    // NETLAB_BIN measures another build of netlab (an earlier commit's, say) with this bench.
    let netlab = match std::env::var_os("NETLAB_BIN").filter(|v| !v.is_empty()) {
        Some(bin) => {
            eprintln!(
                "xtask: bench: measuring NETLAB_BIN={}",
                bin.to_string_lossy()
            );
            std::path::PathBuf::from(bin)
        }
        None => workspace::build_daemon(true)?,
    };
    if wants(Part::Pipeline) {
        build_pipeline_bench()?;
    }
    let built = started.elapsed().as_secs_f64();
    let xtask = std::env::current_exe().context("cannot find the xtask binary")?;
    let _stop = StopFlag::install();
    clean_leftovers(&netlab);

    let mut r = Results {
        quick,
        date: utc_now(),
        machine: Machine::read(),
        ..Default::default()
    };
    r.log.timings.push(("builds".into(), built));
    if wants(Part::Costs) || wants(Part::Pps) || wants(Part::Flood) {
        let pair = part(&mut r.log, "the namespace pair", Pair::create)?;
        if let Some(pair) = &pair {
            if wants(Part::Costs) {
                r.costs = part(&mut r.log, "per-packet cost", || {
                    costs(pair, &netlab, &xtask, &plan)
                })?;
            }
            if wants(Part::Pps) {
                r.pps = part(&mut r.log, "packets per second", || {
                    pps(pair, &netlab, &xtask, &plan)
                })?;
                r.toggle = part(
                    &mut r.log,
                    "the drop program switched under one flow",
                    || drop_toggle(&netlab, &xtask, &plan),
                )?;
                r.observers = part(
                    &mut r.log,
                    "netlab and tcpdump switched under one flow",
                    || observer_toggle(&netlab, &xtask, &plan),
                )?;
            }
            if wants(Part::Flood) {
                r.flood = part(&mut r.log, "ICMP flood", || {
                    flood(pair, &netlab, &xtask, &plan)
                })?;
            }
        }
        let start = Instant::now();
        drop(pair);
        r.log
            .timings
            .push(("removing the pair".into(), start.elapsed().as_secs_f64()));
    }
    if wants(Part::Pipeline) {
        r.pipeline = part(&mut r.log, "pipeline", || pipeline(&plan))?;
    }
    if wants(Part::Scale) || wants(Part::Memory) {
        let scale_ns = part(&mut r.log, "the 500-veth namespace", || {
            ScaleNs::create(plan.veths)
        })?;
        if let Some(ns) = &scale_ns {
            if wants(Part::Scale) {
                r.scale = part(&mut r.log, "scale", || scale(ns, &netlab, &plan))?;
                r.restart = part(&mut r.log, "daemon restart", || restart(&netlab, &plan))?;
            }
            if wants(Part::Memory) {
                r.memory = part(&mut r.log, "memory", || memory(ns, &netlab, &plan))?;
                // Last: its containers take the scale veths with them when they go.
                r.labelled = part(&mut r.log, "memory with 1,000 labelled endpoints", || {
                    memory_labelled(ns, &netlab, &plan)
                })?;
            }
        }
        let start = Instant::now();
        drop(scale_ns);
        r.log.timings.push((
            "removing the 500-veth namespace".into(),
            start.elapsed().as_secs_f64(),
        ));
    }
    r.machine.load_after = read_loadavg();
    r.machine.idle_after = cpu_idle(Duration::from_secs(2));
    r.elapsed_secs = started.elapsed().as_secs_f64();

    let table = r.table();
    if json {
        eprint!("{table}");
        println!("{}", r.json());
    } else {
        print!("{table}");
    }
    let md = workspace::root().join(BENCH_MD);
    if only.is_empty() {
        write_bench_md(&md, &r)?;
        eprintln!("xtask: wrote {}", md.display());
    } else {
        eprintln!(
            "xtask: --only: {} left as it is; the parts run would write:\n\n{}",
            md.display(),
            r.markdown()
        );
    }
    Ok(())
}

/// Runs one part; its failure is recorded (its numbers stay null) and the bench goes on,
/// unless it was interrupted.
fn part<T>(log: &mut PartLog, name: &str, f: impl FnOnce() -> Result<T>) -> Result<Option<T>> {
    eprintln!("xtask: bench: {name}");
    let start = Instant::now();
    let result = f();
    log.timings
        .push((name.to_owned(), start.elapsed().as_secs_f64()));
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            check_stop()?;
            eprintln!("xtask: bench: {name} failed: {e:#}");
            log.failures.push(format!("{name}: {e:#}"));
            Ok(None)
        }
    }
}

/// What went wrong, and how long each part took.
#[derive(Debug, Default)]
struct PartLog {
    failures: Vec<String>,
    timings: Vec<(String, f64)>,
}

/// Removes what an earlier, killed run may have left: namespaces, the daemon's pins and
/// socket, the BPF statistics switch.
fn clean_leftovers(netlab: &Path) {
    for ns in NAMESPACES {
        let _ = host_netns::delete(ns);
    }
    if Path::new(PIN_DIR).exists() {
        let _ = quiet(Command::new(netlab).args(["daemon", "--cleanup", "--pin-dir", PIN_DIR]));
    }
    let _ = std::fs::remove_file(DAEMON_SOCKET);
    let _ = std::fs::remove_file(ENGINE_SOCKET);
    if let Ok(saved) = std::fs::read_to_string(BPF_STATS_SAVED) {
        if std::fs::write(BPF_STATS, saved.trim()).is_ok() {
            let _ = std::fs::remove_file(BPF_STATS_SAVED);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `netlab watch` on the pair's bridge and ports.
// ---------------------------------------------------------------------------------------------

/// `ip netns exec nlbench-br netlab watch --iface br0 --iface va --iface vb --json <extra>`,
/// once it is watching.
fn start_watch(netlab: &Path, extra: &[&str], stdout: Stdout) -> Result<Background> {
    let mut c = in_ns(NS_BR, netlab);
    c.args([
        "watch", "--iface", "br0", "--iface", "va", "--iface", "vb", "--json",
    ])
    .args(extra)
    .env("NETLAB_SOCKET", NO_DAEMON);
    let mut w = spawn(&mut c, stdout)?;
    wait_for(&mut w, "watching ", Duration::from_secs(30))?;
    Ok(w)
}

/// [`start_watch`] at `nice -n -20`: what the flood measures is netlab's own capacity, not
/// the share of a CPU that other jobs of the machine leave it.
fn start_watch_niced(netlab: &Path, extra: &[&str], stdout: Stdout) -> Result<Background> {
    let mut c = in_ns(NS_BR, "nice");
    c.args(["-n", "-20"])
        .arg(netlab)
        .args([
            "watch", "--iface", "br0", "--iface", "va", "--iface", "vb", "--json",
        ])
        .args(extra)
        .env("NETLAB_SOCKET", NO_DAEMON);
    let mut w = spawn(&mut c, stdout)?;
    wait_for(&mut w, "watching ", Duration::from_secs(30))?;
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_is_shorter() {
        let (q, f) = (Plan::new(true), Plan::new(false));
        assert!(q.cost_rounds < f.cost_rounds && q.pps_rounds < f.pps_rounds);
        assert!(q.latency_samples < f.latency_samples && q.restarts < f.restarts);
        assert!(q.pps_secs < f.pps_secs && q.flood_levels.len() < f.flood_levels.len());
        assert_eq!((q.veths, f.veths), (500, 500));
    }
}

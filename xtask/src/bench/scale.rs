//! Part 5: attaching to 500 veths: start-up time (each start-up after a run of the kernel's
//! floor, `floor.rs`), how soon a new veth is observed, and how long the ports of a burst go
//! unobserved. The daemon's restart on them is `restart.rs`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Result};

use crate::cmd;

use super::bursts::{burst_latencies, Bursts, BURST_FRAMES, BURST_ROUNDS, BURST_SIZE};
use super::floor::{attach_floor, scale_ifaces, PortFloor};
use netlab_tests::host::netns::{self, in_ns, ip, ip_batch};
use netlab_tests::host::tcx::{self, Hook};

use super::kernel::tcx_attached;
use super::memory::MemSnapshot;
use super::netns::{PortFloorNs, ScaleNs};
use super::parse::word_after;
use super::process::{check_stop, pause, quiet, spawn, wait_for, TAIL};
use super::{Plan, NO_DAEMON, NO_DOCKER, NS_PORT_FLOOR, NS_SCALE};

#[derive(Debug, Clone, Default)]
pub(super) struct Scale {
    /// Interfaces `netlab watch` said it watches.
    pub(super) interfaces: u64,
    /// Seconds from start to `watching N interfaces`.
    pub(super) startup_secs: Vec<f64>,
    /// The kernel's floor, run just before each start-up: an empty program attached to
    /// both hooks of the same interfaces, first attach to last (see `floor.rs`).
    pub(super) floor_secs: Vec<f64>,
    /// The same floor's links released again, seconds.
    pub(super) floor_release_secs: Vec<f64>,
    /// Interfaces the floor attached to.
    pub(super) floor_interfaces: usize,
    /// Milliseconds from `ip link set … master br0` starting to both TCX programs attached.
    pub(super) latency_ms: Vec<f64>,
    /// How long that `ip` command itself took, ms (part of the latency above).
    pub(super) ip_ms: Vec<f64>,
    /// New veths not attached within 3 s.
    pub(super) missed: usize,
    /// The kernel's floor for the same (`floor.rs`'s [`PortFloor`]), sampled in turn with
    /// netlab's: milliseconds from `ip link set … master br0` starting to both hooks of a
    /// new veth holding the empty program, attached the moment the kernel's notice is read.
    pub(super) floor_latency_ms: Vec<f64>,
    /// How long the floor's `ip` command took, ms (part of the floor above).
    pub(super) floor_ip_ms: Vec<f64>,
    /// Floor samples not attached within 3 s.
    pub(super) floor_missed: usize,
    /// Milliseconds from the start of a burst (20 veths made and enslaved by one `ip -batch`)
    /// to each one's TCX programs attached, every round together.
    pub(super) burst_ms: Vec<f64>,
    /// Veths of a burst not attached within 3 s.
    pub(super) burst_missed: usize,
    /// For each burst port, the milliseconds its frames went uncounted after the burst
    /// (one frame a millisecond from the end of the `ip -batch` on): frames the port
    /// received, by its own counter, less those netlab counted.
    pub(super) unobserved_ms: Vec<f64>,
    /// Of the frames sent on the burst ports, those that never reached them (dropped by the
    /// peer before its queue was active), by the ports' own counters.
    pub(super) burst_not_received: u64,
    /// Memory of `netlab watch` on them.
    pub(super) watch_mem: Option<MemSnapshot>,
    /// The programs `netlab watch` loaded, with the instructions the verifier walked.
    pub(super) prog_loads: Vec<super::kernel::ProgLoad>,
    /// Seconds `netlab watch` took to stop (detach everything) after SIGINT.
    pub(super) stop_secs: Option<f64>,
}

/// `netlab watch --json` without `--iface` in the scale namespace, without Docker.
fn watch_everything(netlab: &Path) -> Command {
    let mut c = in_ns(NS_SCALE, netlab);
    c.args(["watch", "--json"])
        .env("DOCKER_HOST", NO_DOCKER)
        .env("NETLAB_SOCKET", NO_DAEMON);
    c
}

impl Scale {
    /// The instructions the verifier walked for all of [`Scale::prog_loads`], when read.
    pub(super) fn verified_insns(&self) -> Option<u64> {
        (!self.prog_loads.is_empty())
            .then(|| self.prog_loads.iter().map(|p| p.verified_insns).sum())
    }
}

pub(super) fn scale(ns: &ScaleNs, netlab: &Path, plan: &Plan) -> Result<Scale> {
    let mut s = Scale::default();
    let mut last = None;
    let ifaces = scale_ifaces(ns.veths);
    for run in 0..plan.startups {
        let floor = attach_floor(&ifaces)?;
        eprintln!(
            "xtask: bench: floor {}/{}: {:.3} s to attach an empty program to {} interfaces, {:.3} s to release it",
            run + 1,
            plan.startups,
            floor.attach_secs,
            floor.interfaces,
            floor.release_secs
        );
        s.floor_secs.push(floor.attach_secs);
        s.floor_release_secs.push(floor.release_secs);
        s.floor_interfaces = floor.interfaces;
        check_stop()?;
        let t0 = Instant::now();
        let mut w = spawn(&mut watch_everything(netlab), TAIL)?;
        let (at, line) = wait_for(&mut w, "watching ", Duration::from_secs(120))?;
        s.startup_secs.push(at.duration_since(t0).as_secs_f64());
        s.interfaces = word_after(&line, "watching").unwrap_or_default() as u64;
        eprintln!(
            "xtask: bench: start-up {}/{}: {:.3} s to watch {} interfaces",
            run + 1,
            plan.startups,
            at.duration_since(t0).as_secs_f64(),
            s.interfaces
        );
        if run + 1 == plan.startups {
            last = Some(w);
        } else {
            w.stop_within(libc::SIGINT, Duration::from_secs(60))?;
        }
    }
    let w = last.ok_or_else(|| anyhow!("no start-up was run"))?;
    pause(Duration::from_millis(500))?;
    s.watch_mem = MemSnapshot::of(w.pid()).ok();
    s.prog_loads = super::kernel::prog_loads_of(w.pid()).unwrap_or_default();
    let samples = plan.latency_samples;
    let first = ns.veths;
    let measured = thread::scope(|scope| {
        scope
            .spawn(move || -> Result<NewVeths> {
                netns::enter(NS_SCALE)?;
                new_veth_latencies(first, samples)
            })
            .join()
    })
    .map_err(|_| anyhow!("the latency thread panicked"))??;
    (s.latency_ms, s.ip_ms, s.missed) = (measured.latency_ms, measured.ip_ms, measured.missed);
    (s.floor_latency_ms, s.floor_ip_ms, s.floor_missed) = (
        measured.floor_ms,
        measured.floor_ip_ms,
        measured.floor_missed,
    );
    let bursts = thread::scope(|scope| {
        scope
            .spawn(move || -> Result<Bursts> {
                netns::enter(NS_SCALE)?;
                burst_latencies(first + samples as u32, BURST_ROUNDS, BURST_SIZE)
            })
            .join()
    })
    .map_err(|_| anyhow!("the burst thread panicked"))??;
    let ports = bursts.ports;
    (s.burst_ms, s.burst_missed) = (bursts.attached_ms, bursts.missed);
    let t0 = Instant::now();
    let ended = w.stop_within(libc::SIGINT, Duration::from_secs(120))?;
    s.stop_secs = Some(t0.elapsed().as_secs_f64());
    // Each burst port got a frame a millisecond from the end of its burst on: the ones that
    // crossed it (its own counter) and were not counted are the milliseconds it went
    // unobserved.
    let summary: serde_json::Value = serde_json::from_str(ended.last_line()).unwrap_or_default();
    let counted = |iface: &str| -> u64 {
        summary["counters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| {
                r["iface"] == iface && r["direction"] == "ingress" && r["kind"] == "arp-request"
            })
            .filter_map(|r| r["packets"].as_u64())
            .sum()
    };
    s.unobserved_ms = ports
        .iter()
        .map(|(p, received)| received.saturating_sub(counted(p)) as f64)
        .collect();
    s.burst_not_received = ports
        .iter()
        .map(|(_, received)| BURST_FRAMES.saturating_sub(*received))
        .sum();
    // Back to the 500 veths for the daemon.
    let extra: String = (first..first + samples as u32)
        .map(|n| format!("link del n{n}\n"))
        .collect();
    ip_batch(NS_SCALE, &extra)?;
    Ok(s)
}

/// What the new-veth samples measured (see [`new_veth_latencies`]).
#[derive(Debug, Default)]
struct NewVeths {
    latency_ms: Vec<f64>,
    ip_ms: Vec<f64>,
    missed: usize,
    floor_ms: Vec<f64>,
    floor_ip_ms: Vec<f64>,
    floor_missed: usize,
}

/// `samples` times, one new veth on the scale namespace's br0, observed by netlab, and one
/// on the port-floor namespace's br0, observed by the kernel's floor ([`PortFloor`]), taking
/// turns at going first. The calling thread must be in the scale namespace.
fn new_veth_latencies(first: u32, samples: usize) -> Result<NewVeths> {
    let _floor_ns = PortFloorNs::create()?;
    let floor = in_port_floor(PortFloor::start)?;
    let mut out = NewVeths::default();
    for i in 0..samples {
        let n = first as usize + i;
        let netlab = || one_new_veth(NS_SCALE, &format!("n{n}"), &format!("q{n}"));
        let kernel =
            || in_port_floor(|| one_new_veth(NS_PORT_FLOOR, &format!("f{n}"), &format!("g{n}")));
        let (ours, floors) = if i % 2 == 0 {
            let a = netlab()?;
            (a, kernel()?)
        } else {
            let b = kernel()?;
            (netlab()?, b)
        };
        match ours {
            Some((attached, ip)) => {
                out.latency_ms.push(attached);
                out.ip_ms.push(ip);
            }
            None => out.missed += 1,
        }
        match floors {
            Some((attached, ip)) => {
                out.floor_ms.push(attached);
                out.floor_ip_ms.push(ip);
            }
            None => out.floor_missed += 1,
        }
        check_stop()?;
    }
    floor.check()?;
    eprintln!(
        "xtask: bench: {} new veths attached, {} not within 3 s; the floor: {} attached, {} not",
        out.latency_ms.len(),
        out.missed,
        out.floor_ms.len(),
        out.floor_missed
    );
    Ok(out)
}

/// Runs `f` on a thread inside the port-floor namespace.
fn in_port_floor<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    thread::scope(|scope| {
        scope
            .spawn(|| {
                netns::enter(NS_PORT_FLOOR)?;
                f()
            })
            .join()
    })
    .map_err(|_| anyhow!("the port floor's thread panicked"))?
}

/// In namespace `ns` (the calling thread must be in it): makes a veth pair `host`/`peer`,
/// lets the observer see it (not on a bridge, it is not observed), then enslaves `host` to
/// br0 and polls every millisecond until TCX programs are attached to both its directions.
/// Returns the milliseconds from the `ip link set … master` command's start to that, and
/// how long the command itself took; `None` if not attached within 3 s.
fn one_new_veth(ns: &str, host: &str, peer: &str) -> Result<Option<(f64, f64)>> {
    ip(&[
        "-n", ns, "link", "add", host, "type", "veth", "peer", "name", peer,
    ])?;
    // netlab rescans 20 ms after a link event; let that rescan pass.
    pause(Duration::from_millis(100))?;
    let shown = quiet(Command::new("ip").args(["-n", ns, "-o", "link", "show", host]))?;
    let ifindex: u32 = shown
        .split(':')
        .next()
        .and_then(|w| w.trim().parse().ok())
        .ok_or_else(|| anyhow!("no ifindex in {shown:?}"))?;
    ensure!(
        tcx::prog_ids(ifindex, Hook::Ingress)?.is_empty(),
        "{host} is observed before it is on the bridge"
    );
    let t0 = Instant::now();
    let mut enslave = Command::new("ip");
    enslave.args(["-n", ns, "link", "set", host, "master", "br0", "up"]);
    let status = enslave
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()?;
    ensure!(status.success(), "`{}` failed", cmd::display(&enslave));
    let t_ip = t0.elapsed();
    let deadline = t0 + Duration::from_secs(3);
    loop {
        if tcx_attached(ifindex)? {
            return Ok(Some((
                t0.elapsed().as_secs_f64() * 1e3,
                t_ip.as_secs_f64() * 1e3,
            )));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(1));
    }
}

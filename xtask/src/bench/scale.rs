//! Part 5: attaching to 500 veths: start-up time (each start-up after a run of the kernel's
//! floor, `floor.rs`), how soon a new veth is observed, and how long the ports of a burst go
//! unobserved. The daemon's restart on them is `restart.rs`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Result};

use crate::cmd;

use super::bursts::{burst_latencies, BURST_FRAMES, BURST_ROUNDS, BURST_SIZE};
use super::floor::{attach_floor, scale_ifaces};
use netlab_tests::host::netns::{self, in_ns, ip, ip_batch};
use netlab_tests::host::tcx::{self, Hook};

use super::kernel::tcx_attached;
use super::memory::MemSnapshot;
use super::netns::ScaleNs;
use super::parse::word_after;
use super::process::{check_stop, pause, quiet, spawn, wait_for, TAIL};
use super::{Plan, NO_DAEMON, NO_DOCKER, NS_SCALE};

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
    /// Milliseconds from the start of a burst (20 veths made and enslaved by one `ip -batch`)
    /// to each one's TCX programs attached, every round together.
    pub(super) burst_ms: Vec<f64>,
    /// Veths of a burst not attached within 3 s.
    pub(super) burst_missed: usize,
    /// For each burst port, the milliseconds its frames went uncounted after the burst
    /// (one frame a millisecond from the end of the `ip -batch` on).
    pub(super) unobserved_ms: Vec<f64>,
    /// Memory of `netlab watch` on them.
    pub(super) watch_mem: Option<MemSnapshot>,
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
    let samples = plan.latency_samples;
    let first = ns.veths;
    let measured = thread::scope(|scope| {
        scope
            .spawn(move || -> Result<(Vec<f64>, Vec<f64>, usize)> {
                netns::enter(NS_SCALE)?;
                new_veth_latencies(first, samples)
            })
            .join()
    })
    .map_err(|_| anyhow!("the latency thread panicked"))??;
    (s.latency_ms, s.ip_ms, s.missed) = measured;
    let bursts = thread::scope(|scope| {
        scope
            .spawn(move || -> Result<(Vec<f64>, usize, Vec<String>)> {
                netns::enter(NS_SCALE)?;
                burst_latencies(first + samples as u32, BURST_ROUNDS, BURST_SIZE)
            })
            .join()
    })
    .map_err(|_| anyhow!("the burst thread panicked"))??;
    let ports;
    (s.burst_ms, s.burst_missed, ports) = bursts;
    let t0 = Instant::now();
    let ended = w.stop_within(libc::SIGINT, Duration::from_secs(120))?;
    s.stop_secs = Some(t0.elapsed().as_secs_f64());
    // Each burst port got a frame a millisecond from the end of its burst on: the ones not
    // counted are the milliseconds it went unobserved.
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
        .map(|p| BURST_FRAMES.saturating_sub(counted(p)) as f64)
        .collect();
    // Back to the 500 veths for the daemon.
    let extra: String = (first..first + samples as u32)
        .map(|n| format!("link del n{n}\n"))
        .collect();
    ip_batch(NS_SCALE, &extra)?;
    Ok(s)
}

/// In the scale namespace (the calling thread must be in it): `samples` times, makes a veth
/// pair `n<i>`/`q<i>`, lets netlab see it (not on a bridge, it is not observed), then enslaves
/// `n<i>` to br0 and polls every millisecond until TCX programs are attached to both its
/// directions. Returns the latencies, the time the `ip` command took, and how many were
/// not attached within 3 s.
fn new_veth_latencies(first: u32, samples: usize) -> Result<(Vec<f64>, Vec<f64>, usize)> {
    let (mut latency, mut ip_ms, mut missed) = (Vec::new(), Vec::new(), 0);
    for i in 0..samples {
        let n = first as usize + i;
        let (host, peer) = (format!("n{n}"), format!("q{n}"));
        ip(&[
            "-n", NS_SCALE, "link", "add", &host, "type", "veth", "peer", "name", &peer,
        ])?;
        // netlab rescans 20 ms after a link event; let that rescan pass.
        pause(Duration::from_millis(100))?;
        let shown = quiet(Command::new("ip").args(["-n", NS_SCALE, "-o", "link", "show", &host]))?;
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
        enslave.args(["-n", NS_SCALE, "link", "set", &host, "master", "br0", "up"]);
        let status = enslave
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()?;
        ensure!(status.success(), "`{}` failed", cmd::display(&enslave));
        let t_ip = t0.elapsed();
        let deadline = t0 + Duration::from_secs(3);
        let attached = loop {
            if tcx_attached(ifindex)? {
                break Some(t0.elapsed());
            }
            if Instant::now() >= deadline {
                break None;
            }
            thread::sleep(Duration::from_millis(1));
        };
        check_stop()?;
        match attached {
            Some(d) => {
                latency.push(d.as_secs_f64() * 1e3);
                ip_ms.push(t_ip.as_secs_f64() * 1e3);
            }
            None => missed += 1,
        }
    }
    eprintln!(
        "xtask: bench: {} new veths attached, {missed} not within 3 s",
        latency.len()
    );
    Ok((latency, ip_ms, missed))
}

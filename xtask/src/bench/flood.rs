//! Part 3: ICMP floods of rising rate into `netlab watch --rate-limit 0`: events per second
//! delivered, and where loss starts.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Result};

use netlab_tests::host::netns::in_ns;
use netlab_tests::host::ping;
use netlab_tests::host::process::Background;

use super::netns::{Pair, Routed};
use super::parse::{json_number, number_at, word_after};
use super::process::{quiet, spawn, TAIL};
use super::traffic::{ping_cmd, xtask_in, End};
use super::{start_watch_niced, Plan, ADDR_B, ADDR_C, CLOSED_PORT, NS_A, NS_B};

/// What makes the ICMP of one flood level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FloodLoad {
    /// UDP datagrams from a at this rate to a closed port of b, each answered with an ICMP
    /// port unreachable (seen twice: vb ingress, va egress). The rate is under control.
    Unreachable { pps: u64 },
    /// ICMP echo requests from a to b at this rate (`bench-icmp-send`): four events per
    /// echo (request and reply, each on va and vb). The rate is under control.
    Echo { pps: u64 },
    /// `procs` × `ping -f -l preload` from a to b (four events per echo).
    Ping { procs: u32, preload: u32 },
    /// ICMP echo requests from a to c at this rate, routed by `nlbench-br` from `br0` to
    /// `br1` (see `netns::Routed`): eight events per echo, the request and the reply each
    /// on va, br0, br1 and vc, as between two networks of a Docker host. The rate is under
    /// control.
    Routed { pps: u64 },
}

impl FloodLoad {
    pub(super) fn describe(&self) -> String {
        match *self {
            FloodLoad::Unreachable { pps } => format!("{pps} UDP/s → port unreachable"),
            FloodLoad::Echo { pps } => format!("{pps} echo requests/s"),
            FloodLoad::Routed { pps } => format!("{pps} echo requests/s, routed br0 → br1"),
            FloodLoad::Ping { procs, preload } => {
                let one = if preload > 1 {
                    format!("ping -f -l {preload}")
                } else {
                    "ping -f".to_owned()
                };
                if procs > 1 {
                    format!("{procs} × {one}")
                } else {
                    one
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct FloodLevel {
    pub(super) load: FloodLoad,
    pub(super) secs: f64,
    /// Datagrams or echo requests sent.
    pub(super) sent: u64,
    /// Packets counted by the programs (every kind, every interface).
    counted: u64,
    /// Packet events the ring buffer had no room for.
    pub(super) ring_full: u64,
    /// Drop reports the ring buffer had no room for.
    pub(super) drop_ring_full: u64,
    /// `lost_events` of the summary.
    pub(super) lost: u64,
    /// Lines printed (packets, drops, journeys).
    pub(super) printed: u64,
}

impl FloodLevel {
    /// Packet events that reached user space.
    fn delivered(&self) -> u64 {
        self.counted.saturating_sub(self.ring_full)
    }

    pub(super) fn events_per_s(&self) -> f64 {
        self.delivered() as f64 / self.secs
    }

    pub(super) fn offered_per_s(&self) -> f64 {
        self.counted as f64 / self.secs
    }
}

pub(super) fn flood(
    _pair: &Pair,
    netlab: &Path,
    xtask: &Path,
    plan: &Plan,
) -> Result<Vec<FloodLevel>> {
    // b answers every datagram to a closed port, without its ICMP rate limits (this
    // namespace's own settings).
    quiet(in_ns(NS_B, "sysctl").args([
        "-qw",
        "net.ipv4.icmp_ratemask=0",
        "net.ipv4.icmp_ratelimit=0",
    ]))?;
    let mut levels: Vec<FloodLevel> = Vec::new();
    let mut routed: Option<Routed> = None;
    for &load in plan.flood_levels {
        let same_kind =
            |l: &&FloodLevel| std::mem::discriminant(&l.load) == std::mem::discriminant(&load);
        if levels
            .iter()
            .filter(same_kind)
            .filter(|l| l.lost > 0)
            .count()
            >= 2
        {
            continue;
        }
        eprintln!("xtask: bench: flood, {}", load.describe());
        let mut args = vec!["--rate-limit", "0"];
        if matches!(load, FloodLoad::Routed { .. }) {
            if routed.is_none() {
                routed = Some(Routed::create()?);
            }
            args.extend(["--iface", "br1", "--iface", "vc"]);
        }
        let watch = start_watch_niced(netlab, &args, TAIL)?;
        let start = Instant::now();
        let (sent, secs) = match load {
            FloodLoad::Unreachable { pps } => {
                let out = quiet(xtask_in(NS_A, xtask, End::Sender).args([
                    "bench-udp-send",
                    "--dst",
                    ADDR_B,
                    "--port",
                    &CLOSED_PORT.to_string(),
                    "--secs",
                    &plan.flood_secs.to_string(),
                    "--pps",
                    &pps.to_string(),
                ]))?;
                sender_totals(&out)?
            }
            FloodLoad::Echo { pps } | FloodLoad::Routed { pps } => {
                let dst = if matches!(load, FloodLoad::Routed { .. }) {
                    ADDR_C
                } else {
                    ADDR_B
                };
                let out = quiet(xtask_in(NS_A, xtask, End::Sender).args([
                    "bench-icmp-send",
                    "--dst",
                    dst,
                    "--secs",
                    &plan.flood_secs.to_string(),
                    "--pps",
                    &pps.to_string(),
                ]))?;
                sender_totals(&out)?
            }
            FloodLoad::Ping { procs, preload } => {
                let pings: Vec<Background> = (0..procs)
                    .map(|_| spawn(&mut ping_cmd(preload, 10_000_000, plan.flood_secs), TAIL))
                    .collect::<Result<_>>()?;
                let mut sent = 0;
                for p in pings {
                    let ended = p.wait(Duration::from_secs(u64::from(plan.flood_secs) + 10))?;
                    let text = ended.stdout;
                    sent += ping::totals(&text)
                        .ok_or_else(|| anyhow!("ping said {text:?}"))?
                        .transmitted;
                }
                (sent, start.elapsed().as_secs_f64())
            }
        };
        let ended = watch.stop_within(libc::SIGINT, Duration::from_secs(60))?;
        ensure!(
            ended.status.success(),
            "netlab watch ended with {}",
            ended.status
        );
        let s = parse_summary(ended.last_line())
            .ok_or_else(|| anyhow!("no summary from netlab: {:?}", ended.last_line()))?;
        let level = FloodLevel {
            load,
            secs,
            sent,
            counted: s.counted,
            ring_full: s.ring_full,
            drop_ring_full: s.drop_ring_full,
            lost: s.lost,
            printed: s.printed,
        };
        eprintln!(
            "xtask: bench: {:.0} packet events/s offered, {:.0} delivered, lost {} (ring full {}, drop reports {})",
            level.offered_per_s(),
            level.events_per_s(),
            level.lost,
            level.ring_full,
            level.drop_ring_full
        );
        levels.push(level);
    }
    Ok(levels)
}

/// (sent, seconds) from a sender's `sent N errors E secs T`.
fn sender_totals(out: &str) -> Result<(u64, f64)> {
    let sent = word_after(out, "sent").ok_or_else(|| anyhow!("sender said {out:?}"))?;
    let secs = word_after(out, "secs").ok_or_else(|| anyhow!("sender said {out:?}"))?;
    Ok((sent as u64, secs))
}

/// What the summary line of `netlab watch --json` says.
#[derive(Debug, Default, PartialEq, Eq)]
struct Summary {
    counted: u64,
    lost: u64,
    ring_full: u64,
    drop_ring_full: u64,
    printed: u64,
}

fn parse_summary(line: &str) -> Option<Summary> {
    let start = line.find("\"counters\":[")?;
    let rows = &line[start..];
    let rows = &rows[..rows.find(']')?];
    let counted = rows
        .match_indices("\"packets\":")
        .filter_map(|(i, k)| number_at(&rows[i + k.len()..]))
        .sum::<f64>() as u64;
    let field = |key: &str| json_number(line, &[key]).map(|v| v as u64);
    Some(Summary {
        counted,
        lost: field("lost_events")?,
        ring_full: field("ring_full")?,
        drop_ring_full: field("drop_ring_full")?,
        printed: field("events")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_watch_summary() {
        let line = r#"{"counters":[{"iface":"va","ifindex":3,"direction":"egress","kind":"icmp-echo-reply","packets":20000},{"iface":"vb","ifindex":4,"direction":"ingress","kind":"arp-request","packets":1}],"lost_events":7,"delivery":{"ring_full":5,"rate_limited":0,"sampled_out":0,"drop_ring_full":2},"events":100021,"drops":[{"reason":"NO_SOCKET","packets":20000}]}"#;
        assert_eq!(
            parse_summary(line),
            Some(Summary {
                counted: 20001,
                lost: 7,
                ring_full: 5,
                drop_ring_full: 2,
                printed: 100021
            })
        );
        assert_eq!(parse_summary(""), None);
        let empty = r#"{"counters":[],"lost_events":0,"delivery":{"ring_full":0,"rate_limited":0,"sampled_out":0,"drop_ring_full":0},"events":0}"#;
        assert_eq!(parse_summary(empty).map(|s| s.counted), Some(0));
    }
}

//! The results block of BENCH.md, written between its markers.

use std::path::Path;

use anyhow::{Context, Result};

use super::bursts::{BURST_FRAMES, BURST_ROUNDS, BURST_SIZE};
use super::costs::{CostWindow, DropCostWindow};
use super::kernel::RunStats;
use super::pps::{Observer, PpsWindow, PPS_ROUND};
use super::results::{verdict, Results};
use super::stats::{percentile, Spread};
use super::traffic::Receiver;
use netlab_tests::host::empty_prog::Position;

pub(super) const BENCH_MD: &str = "BENCH.md";
const BEGIN: &str = "<!-- bench:results:begin -->";
const END: &str = "<!-- bench:results:end -->";

impl Results {
    /// The results block of BENCH.md (between the markers).
    pub(super) fn markdown(&self) -> String {
        let mut s = self.markdown_parts();
        let times: Vec<String> = self
            .log
            .timings
            .iter()
            .map(|(name, secs)| format!("{name} {secs:.0} s"))
            .collect();
        s.push_str(&format!(
            "\nTime per part: {}; {:.0} s in all.\n",
            times.join(", "),
            self.elapsed_secs
        ));
        s
    }

    fn markdown_parts(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        s.push_str(&format!(
            "## Results ({} run, {}, {:.0} s)\n\n",
            if self.quick { "`--quick`" } else { "full" },
            self.date,
            self.elapsed_secs
        ));
        let idle = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.0} %"));
        s.push_str(&format!(
            "Machine: {} × {} (`nproc` {}), Linux {}, {:.1} GiB of memory. Other jobs shared it: load average {} before, {} after; CPU idle over 2 s just before {}, just after {}.\n\n",
            m.cpus,
            m.model,
            m.cpus,
            m.kernel,
            m.memory_gib,
            m.load_before,
            m.load_after,
            idle(m.idle_before),
            idle(m.idle_after)
        ));
        s.push_str("| measurement | median (min–max, n) | target | |\n|---|---|---|---|\n");
        for r in self.rows() {
            s.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                r.what,
                r.shown,
                r.target,
                verdict(r.met)
            ));
        }
        for f in &self.log.failures {
            s.push_str(&format!("\nFailed: {f}\n"));
        }
        if let Some(c) = self.costs.as_ref().map(|c| &c.windows) {
            s.push_str("\n### 1. Per-packet cost of the tc programs\n\n");
            s.push_str("ns per program run = Δrun_time_ns / Δrun_cnt of each window (one window per round and setting), from the programs' fdinfo with `kernel.bpf_stats_enabled=1`; these include the statistics' own two clock reads per run. The last columns run the ingress program on the same kind of frame with `bpftool prog run … repeat N` (BPF_PROG_TEST_RUN, 1,000,000 UDP or 20,000 ICMP runs timed together), with the statistics on and off: their difference is what the statistics add to every run; each TEST_RUN iteration also pays a `local_bh_disable/enable` pair. The rows \"empty program\" are two-instruction tc programs (`xtask bench-empty`) attached to the same hooks the same way (TCX links), measured in the same rounds: what any program on these hooks costs, the floor the summary's \"over the empty program\" rows subtract, round by round. The empty program is one program on both hooks, with one set of statistics: its ingress column holds both hooks' runs.\n\n");
            s.push_str("| traffic | --sample | ingress ns/run | egress ns/run | both ns/run | runs per window | packets per window | TEST_RUN, stats on | TEST_RUN, stats off |\n|---|---|---|---|---|---|---|---|---|\n");
            for (traffic, sample) in [
                ("udp", 0),
                ("udp", 1),
                ("udp", 100),
                ("icmp", 0),
                ("icmp", 1),
                ("icmp", 100),
            ] {
                let ws: Vec<&CostWindow> = c
                    .iter()
                    .filter(|w| w.traffic == traffic && w.sample == sample)
                    .collect();
                let col = |f: &dyn Fn(&CostWindow) -> Option<f64>, d: usize| {
                    Spread::of(&ws.iter().filter_map(|w| f(w)).collect::<Vec<_>>())
                        .map_or("–".into(), |x| x.show(d))
                };
                s.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    if traffic == "udp" {
                        "UDP (skipped)"
                    } else {
                        "ICMP echo"
                    },
                    if sample == 0 {
                        "empty program".to_owned()
                    } else {
                        sample.to_string()
                    },
                    col(&|w| w.ingress.ns_per_run(), 1),
                    col(&|w| w.egress.ns_per_run(), 1),
                    col(&|w| w.ns_per_run(), 1),
                    col(&|w| Some((w.ingress.runs + w.egress.runs) as f64), 0),
                    col(&|w| Some(w.packets as f64), 0),
                    col(&|w| w.test_run_stats_on, 1),
                    col(&|w| w.test_run_stats_off, 1),
                ));
            }
        }
        if let Some(p) = self.costs.as_ref().map(|c| &c.paired) {
            if !p.is_empty() {
                s.push_str("\nThe same skipped UDP with netlab's programs and the empty ones attached to the same hooks at once (`xtask bench-empty`, with `--first` before netlab's in each chain, else after them; both return \"next\", so both run on every datagram): each window reads both programs' statistics over the same datagrams at the same moments, so their difference carries none of what drifts between two windows. The empty programs run first in one window of each round and last in the other. Whichever program runs first on a hook costs more, and netlab's more than the empty one's, so the median of these differences reads lower than netlab's cost over an empty program when each runs alone (first) on the hooks: that is the summary's target row, which subtracts windows measured one after the other, as the table above does.\n\n");
                s.push_str("| round | --sample | empty programs | netlab ns/run | empty ns/run | netlab over empty | runs (netlab, empty) |\n|---|---|---|---|---|---|---|\n");
                let ns = |r: RunStats| r.ns_per_run().map_or("–".into(), |v| format!("{v:.1}"));
                for w in p {
                    s.push_str(&format!(
                        "| {} | {} | {} | {} | {} | {} | {}, {} |\n",
                        w.round + 1,
                        w.sample,
                        if w.empty_at == Position::First {
                            "first"
                        } else {
                            "after"
                        },
                        ns(w.netlab),
                        ns(w.empty),
                        w.over_empty().map_or("–".into(), |v| format!("{v:.1}")),
                        w.netlab.runs,
                        w.empty.runs,
                    ));
                }
            }
        }
        if let Some(d) = self.costs.as_ref().map(|c| &c.drop_windows) {
            if !d.is_empty() {
                s.push_str("\nThe drop program, measured the same way in the same rounds: a UDP window of the same length while b reads nothing, so that b frees every datagram (socket buffer full) and the `kfree_skb` raw tracepoint runs once per datagram, on the sending CPU (CPU 0, whose softirq delivers the datagram to b and frees it). netlab's program (the `netlab watch --sample 100` of the round) against an empty raw tracepoint program (`xtask bench-empty --drop-tp`). The sending CPU is busy all through the window, so the time the program takes over the empty one is the share of the rate it costs: Δns/run × runs ÷ window, the summary's \"share of the sending CPU\" (the packet-rate ratio of part 2 says the same with the noise of two rates).\n\n");
                s.push_str(
                    "| program | ns/run | runs per window | runs per second |\n|---|---|---|---|\n",
                );
                for empty in [true, false] {
                    let ws: Vec<_> = d.iter().filter(|w| (w.sample == 0) == empty).collect();
                    let col = |f: &dyn Fn(&&DropCostWindow) -> Option<f64>, decimals: usize| {
                        Spread::of(&ws.iter().filter_map(f).collect::<Vec<_>>())
                            .map_or("–".into(), |x| x.show(decimals))
                    };
                    s.push_str(&format!(
                        "| {} | {} | {} | {} |\n",
                        if empty {
                            "empty raw tracepoint program"
                        } else {
                            "netlab's kfree_skb program"
                        },
                        col(&|w| w.prog.ns_per_run(), 1),
                        col(&|w| Some(w.prog.runs as f64), 0),
                        col(&|w| Some(w.prog.runs as f64 / w.secs), 0),
                    ));
                }
            }
        }
        if let Some(p) = &self.pps {
            s.push_str("\n### 2. UDP packets per second, a → b\n\n");
            s.push_str("The sender runs on CPU 0 (with it, in its softirqs, the whole path a → va → br0 → vb → b, where the tc programs run), the receiver on CPU 1, both at `nice -n -20`. Arrived = datagrams that reached b's UDP layer (`InDatagrams` + `RcvbufErrors` of b's /proc/net/snmp) per second of sending. \"b drops\": the receiver reads nothing, so b frees every datagram (socket buffer full), which runs netlab's `kfree_skb` program for each. Each round runs the rows in this order; ratio = the row's arrived rate / the no-observer rate of the same round and receiver.\n\n");
            s.push_str("| b | observer | arrived pps | sent pps | read by receiver pps | ratio to no observer |\n|---|---|---|---|---|---|\n");
            for (receiver, o) in PPS_ROUND {
                let ws: Vec<&PpsWindow> = p
                    .iter()
                    .filter(|w| w.observer == o && w.receiver == receiver)
                    .collect();
                let rx = Spread::of(&ws.iter().map(|w| w.udp.pps()).collect::<Vec<_>>());
                let tx = Spread::of(
                    &ws.iter()
                        .map(|w| w.udp.sent as f64 / w.udp.secs)
                        .collect::<Vec<_>>(),
                );
                let read = Spread::of(
                    &ws.iter()
                        .map(|w| w.udp.received as f64 / w.udp.secs)
                        .collect::<Vec<_>>(),
                );
                let ratio = Spread::of(&self.ratios(receiver, o));
                s.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} |\n",
                    match receiver {
                        Receiver::Reads => "reads",
                        Receiver::Drops => "drops",
                    },
                    o.name(),
                    rx.map_or("–".into(), |x| x.show(0)),
                    tx.map_or("–".into(), |x| x.show(0)),
                    read.map_or("–".into(), |x| x.show(0)),
                    ratio.map_or("–".into(), |x| x.show(3)),
                ));
            }
        }
        if let Some(t) = &self.toggle {
            s.push_str("\n#### The drop program switched on and off under one flow\n\n");
            s.push_str(&format!(
                "Rates of separate windows differ from one window to the next by more than the drop program costs, so one sender runs on while b drops every datagram, and the tracepoint is switched under it. `netlab daemon` attached to br0, va and vb and pinned its programs, then stopped (its tc programs stay attached); its drop link's pin was removed, which detached it, and its pinned, configured program (`{}`) is attached and detached by the bench. Slices of {} ms, each after {} ms for the switch to settle, in blocks of four: off, netlab, empty, off (and off, empty, netlab, off in the next block); a program's slice over the mean of the two off slices of its block is one ratio, so a rate drifting in a straight line cancels out. {} blocks; the empty program is a two-instruction raw tracepoint program on `kfree_skb`.\n\n",
                t.programs.join(", "),
                super::toggle::SLICE.as_millis(),
                super::toggle::SETTLE.as_millis(),
                t.blocks.len()
            ));
            let col = |f: fn(&super::toggle::ToggleBlock) -> f64, decimals| {
                Spread::of(&t.blocks.iter().map(f).collect::<Vec<_>>())
                    .map_or("–".into(), |x| x.show(decimals))
            };
            s.push_str(
                "| on kfree_skb | arrived pps | ratio to off (same block) |\n|---|---|---|\n",
            );
            s.push_str(&format!(
                "| nothing (first and last slice of each block) | {} | {} (last / first) |\n",
                Spread::of(&t.blocks.iter().flat_map(|b| b.off).collect::<Vec<_>>())
                    .map_or("–".into(), |x| x.show(0)),
                col(super::toggle::ToggleBlock::off_ratio, 4)
            ));
            s.push_str(&format!(
                "| netlab's `{}` | {} | {} |\n",
                t.programs.join(", "),
                col(|b| b.netlab, 0),
                col(super::toggle::ToggleBlock::netlab_ratio, 4)
            ));
            s.push_str(&format!(
                "| an empty program | {} | {} |\n",
                col(|b| b.other, 0),
                col(super::toggle::ToggleBlock::other_ratio, 4)
            ));
            s.push_str(&format!(
                "\nWitness: in one more slice with BPF statistics on, netlab's program ran {} times while {} datagrams arrived at b{}.\n",
                t.runs(),
                t.witness_arrived,
                t.runs_per_datagram()
                    .map_or(String::new(), |r| format!(" ({r:.3} runs per datagram)"))
            ));
        }
        if let Some(t) = &self.observers {
            use super::toggle::{ToggleBlock, OBSERVER_EMPTY, OBSERVER_TCPDUMP, TCPDUMP_FILTER};
            s.push_str(
                "\n#### netlab, tcpdump and empty programs switched on and off under one flow\n\n",
            );
            s.push_str(&format!(
                "The same method for the first rows of this part: b reads, and what observes is switched under one sender. netlab is everything a following `netlab daemon` runs here ({} attachments of its pinned, configured programs `{}`: its tc programs on both hooks of br0, va and vb, its cover programs on the tracepoints `netif_receive_skb` and `net_dev_queue`, its drop program on `kfree_skb`), each attached by the bench where the daemon had it. It is compared, in turn, with `tcpdump -i va -w /dev/null '{}'` (started for its slice, timed once it says it listens, stopped after it) and with a two-instruction program at each of netlab's {} attachments (what any program there costs). Blocks of four: off, netlab, the other, off (the other first in every second block; tcpdump for two blocks, then the empty programs for two). {} blocks.\n\n",
                t.attachments,
                t.programs.join("`, `"),
                TCPDUMP_FILTER,
                t.attachments,
                t.blocks.len()
            ));
            let col = |kind: Option<usize>, f: fn(&ToggleBlock) -> f64, decimals| {
                t.spread_of(kind, f)
                    .map_or("–".into(), |x| x.show(decimals))
            };
            s.push_str("| observing | arrived pps | ratio to off (same block) | netlab over it (same block) |\n|---|---|---|---|\n");
            s.push_str(&format!(
                "| nothing (first and last slice of each block) | {} | {} (last / first) | |\n",
                Spread::of(&t.blocks.iter().flat_map(|b| b.off).collect::<Vec<_>>())
                    .map_or("–".into(), |x| x.show(0)),
                col(None, ToggleBlock::off_ratio, 4)
            ));
            s.push_str(&format!(
                "| netlab | {} | {} | |\n",
                col(None, |b| b.netlab, 0),
                col(None, ToggleBlock::netlab_ratio, 4)
            ));
            for (kind, name) in [
                (OBSERVER_TCPDUMP, format!("tcpdump '{TCPDUMP_FILTER}'")),
                (
                    OBSERVER_EMPTY,
                    "empty programs where netlab's are".to_owned(),
                ),
            ] {
                s.push_str(&format!(
                    "| {name} | {} | {} | {} |\n",
                    col(Some(kind), |b| b.other, 0),
                    col(Some(kind), ToggleBlock::other_ratio, 4),
                    col(Some(kind), ToggleBlock::netlab_over_other, 4),
                ));
            }
            s.push_str(&format!(
                "\nWitness: in one more slice with BPF statistics on, netlab's programs ran {} per datagram that arrived at b ({}).\n",
                t.runs_per_datagram().map_or("–".into(), |r| format!("{r:.3} times")),
                t.show_runs()
            ));
        }
        if let Some(f) = &self.flood {
            s.push_str("\n### 3. ICMP flood into `netlab watch --json --rate-limit 0`\n\n");
            s.push_str("Each level is its own `netlab watch` run. Offered = packets counted by the programs on va, vb and br0 (and br1 and vc for the routed levels: echo requests from a to c in `nlbench-c`, routed by `nlbench-br` from br0 to a second bridge br1, as a Docker host routes between two of its networks; eight events per echo) per second; delivered = offered minus ring-buffer overflows. Drop reports are the `kfree_skb` records of ARP/ICMP packets the flood gets freed, which share the ring with packet events and count in `lost_events` too; the echo replies `ping_rcv` frees with `NO_SOCKET` are only counted by reason in the kernel, not reported.\n\n");
            s.push_str("| load | s | sent/s | offered events/s | delivered events/s | packet events lost | drop reports lost | lines printed |\n|---|---|---|---|---|---|---|---|\n");
            for l in f {
                s.push_str(&format!(
                    "| {} | {:.2} | {:.0} | {:.0} | {:.0} | {} | {} | {} |\n",
                    l.load.describe(),
                    l.secs,
                    l.sent as f64 / l.secs,
                    l.offered_per_s(),
                    l.events_per_s(),
                    l.ring_full,
                    l.drop_ring_full,
                    l.printed
                ));
            }
        }
        if let Some(p) = &self.pipeline {
            s.push_str(
                "\n### 4. User-space pipeline (criterion, `PacketRecord::new` + `write_json`)\n\n",
            );
            s.push_str("| bench | events/s (mean) | 95% CI | per-sample min–median–max |\n|---|---|---|---|\n");
            for b in p {
                let sm = Spread::of(&b.samples);
                s.push_str(&format!(
                    "| {} | {:.0} | {:.0}–{:.0} | {} |\n",
                    b.name,
                    b.events_per_s(),
                    b.batch * 1e9 / b.upper_ns,
                    b.batch * 1e9 / b.lower_ns,
                    sm.map_or("–".into(), |x| format!(
                        "{:.0}–{:.0}–{:.0}",
                        x.min, x.median, x.max
                    ))
                ));
            }
        }
        if let Some(sc) = &self.scale {
            s.push_str("\n### 5. Attaching to 500 veths\n\n");
            s.push_str(&format!(
                "- `netlab watch` (no Docker) watched {} interfaces; start to `watching` line: {} s.\n",
                sc.interfaces,
                Spread::of(&sc.startup_secs).map_or("–".into(), |x| x.show(3))
            ));
            s.push_str(&format!(
                "- The kernel's floor, run just before each start-up: an empty two-instruction tc program attached by `BPF_LINK_CREATE` to both TCX hooks of the same {} interfaces in the same order, from a thread in the namespace, first attach to last: {} s; releasing those links: {} s. Start-up over the floor of its round: {}.\n",
                sc.floor_interfaces,
                Spread::of(&sc.floor_secs).map_or("–".into(), |x| x.show(3)),
                Spread::of(&sc.floor_release_secs).map_or("–".into(), |x| x.show(3)),
                Spread::of(&super::floor::ratios(&sc.startup_secs, &sc.floor_secs))
                    .map_or("–".into(), |x| x.show(2)),
            ));
            let lat = Spread::of(&sc.latency_ms);
            s.push_str(&format!(
                "- New veth enslaved → both TCX programs attached: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms (n={}, not attached within 3 s: {}); the `ip link set … master br0` command itself took {} ms of that.\n",
                lat.map_or("–".into(), |x| format!("{:.1}", x.median)),
                percentile(&sc.latency_ms, 90.0).map_or("–".into(), |x| format!("{x:.1}")),
                percentile(&sc.latency_ms, 99.0).map_or("–".into(), |x| format!("{x:.1}")),
                lat.map_or("–".into(), |x| format!("{:.1}", x.max)),
                sc.latency_ms.len(),
                sc.missed,
                Spread::of(&sc.ip_ms).map_or("–".into(), |x| x.show(1))
            ));
            let floor = Spread::of(&sc.floor_latency_ms);
            s.push_str(&format!(
                "- The kernel's floor for the same, sampled in turn with netlab's on a bridge of a namespace of its own where no netlab runs: the empty program attached by `BPF_LINK_CREATE` to both hooks of the new veth (ingress, then egress) by the thread that reads the kernel's link notice, the moment it reads it: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms (n={}, not attached within 3 s: {}); its `ip` command took {} ms of that.\n",
                floor.map_or("–".into(), |x| format!("{:.1}", x.median)),
                percentile(&sc.floor_latency_ms, 90.0).map_or("–".into(), |x| format!("{x:.1}")),
                percentile(&sc.floor_latency_ms, 99.0).map_or("–".into(), |x| format!("{x:.1}")),
                floor.map_or("–".into(), |x| format!("{:.1}", x.max)),
                sc.floor_latency_ms.len(),
                sc.floor_missed,
                Spread::of(&sc.floor_ip_ms).map_or("–".into(), |x| x.show(1))
            ));
            s.push_str(&format!(
                "- Bursts of {BURST_SIZE} veths made and put on br0 by one `ip -batch` ({BURST_ROUNDS} rounds): from the start of the burst to each veth's programs attached (its packets before that are not counted): p50 {} ms, p90 {} ms, p99 {} ms, max {} ms (n={}, not attached within 3 s: {}).\n",
                percentile(&sc.burst_ms, 50.0).map_or("–".into(), |x| format!("{x:.1}")),
                percentile(&sc.burst_ms, 90.0).map_or("–".into(), |x| format!("{x:.1}")),
                percentile(&sc.burst_ms, 99.0).map_or("–".into(), |x| format!("{x:.1}")),
                Spread::of(&sc.burst_ms).map_or("–".into(), |x| format!("{:.1}", x.max)),
                sc.burst_ms.len(),
                sc.burst_missed,
            ));
            if !sc.unobserved_ms.is_empty() {
                s.push_str(&format!(
                    "- Each burst port sent one frame a millisecond from the end of its burst on ({BURST_FRAMES} each); the frames that crossed the port (its own receive counter) and that netlab did not count are the time it went unobserved: p50 {} ms, p99 {} ms, max {} ms; ports counted from their first frame: {} of {}. Frames that never reached their port (dropped by the peer before its queue was active: the kernel's link watch activates it after carrier-on, under the RTNL lock that the attaches also take): {} of {}. New ports are counted by tracepoint programs beside tc until their programs are attached (see netlab-ebpf/src/cover.rs).\n",
                    percentile(&sc.unobserved_ms, 50.0).map_or("–".into(), |x| format!("{x:.0}")),
                    percentile(&sc.unobserved_ms, 99.0).map_or("–".into(), |x| format!("{x:.0}")),
                    Spread::of(&sc.unobserved_ms).map_or("–".into(), |x| format!("{:.0}", x.max)),
                    sc.unobserved_ms.iter().filter(|v| **v == 0.0).count(),
                    sc.unobserved_ms.len(),
                    sc.burst_not_received,
                    sc.unobserved_ms.len() as u64 * BURST_FRAMES,
                ));
            }
            if let Some(all) = sc.verified_insns() {
                let each: Vec<String> = sc
                    .prog_loads
                    .iter()
                    .map(|p| format!("`{}` {}", p.name, p.verified_insns))
                    .collect();
                s.push_str(&format!(
                    "- Instructions the verifier walked to load the programs `netlab watch` holds (fdinfo `verified_insns`; the tc programs are loaded before the first attach, the others while the tc programs attach): {}; {} in all.\n",
                    each.join(", "),
                    all
                ));
            }
            if let Some(m) = &sc.watch_mem {
                s.push_str(&format!("- `netlab watch` memory on them: {}.\n", m.show()));
            }
            if let Some(stop) = sc.stop_secs {
                s.push_str(&format!(
                    "- `netlab watch` took {stop:.1} s to stop (detach everything) after SIGINT.\n"
                ));
            }
        }
        if let Some(r) = &self.restart {
            if self.scale.is_none() {
                s.push_str("\n### 5. Attaching to 500 veths\n\n");
            }
            s.push_str(&format!(
                "- `netlab daemon` (no Docker) attached to {} interfaces and pinned their links in {:.3} s, then stopped, leaving {} links pinned. Restarted {} times, start to `daemon: watching` line: {} s. After each restart, of the {} hooks, attached through the same link as before: {}; running the same program as before: {}; interfaces its `/v1/health` counted: {}.\n",
                r.interfaces,
                r.cold_secs,
                r.pins,
                r.secs.len(),
                Spread::of(&r.secs).map_or("–".into(), |x| x.show(3)),
                r.hooks,
                list(&r.links_kept),
                list(&r.progs_kept),
                list(&r.api_attached),
            ));
        }
        if self.memory.is_some() || self.labelled.is_some() {
            s.push_str("\n### 6. `netlab daemon` memory\n\n");
        }
        if let Some(l) = &self.labelled {
            s.push_str(&format!(
                "- {} interfaces observed ({} veths on {} bridges) with {} labelled endpoints of a generated Docker topology: {} ({:.1} s after it said it watched{}). Before reading it, the daemon's `/v1/topology` listed {} of the {} containers and labelled {} of the {} veths with their container, network and bridge; the engine API answered {} inspects ({} bytes each).\n",
                l.interfaces,
                l.veths,
                l.bridge_networks,
                grouped(l.endpoints),
                l.mem.show(),
                l.settle_secs,
                host_drops(l.host_drops),
                grouped(l.loaded.containers),
                grouped(l.endpoints),
                l.loaded.labelled_veths,
                l.veths,
                grouped(l.inspected as usize),
                grouped(l.inspect_bytes),
            ));
            s.push_str(&format!(
                "- The generated topology: {} running containers of one endpoint each, each a process in a network namespace of its own. {} hold the peer of a scale veth (`p<k>`, the far end of `h<k>`) as `eth0`, on {} bridge networks (`br0`…, 10.201.n.0/24); {} a macvlan `eth0` on `lan0` (network `nlbench-lan`, 10.202.0.0/16), labelled by address and MAC but not observed. Each has Docker's MAC for its address, its address up and no IPv6 (so it sends nothing). The daemon reads them with its own Docker client from an Engine API responder on a unix socket (`DOCKER_HOST`; `xtask/src/bench/engine_api.rs`): `/version` (Docker {}), `/info`, `/networks`, `/containers/json`, `/containers/{{id}}/json`, and `/events` held open without an event; no Docker engine runs. Made in {:.1} s.\n",
                grouped(l.endpoints),
                l.veths,
                l.bridge_networks,
                l.endpoints - l.veths,
                super::endpoints::ENGINE_VERSION,
                l.setup_secs,
            ));
        }
        if let Some(mem) = &self.memory {
            s.push_str(&format!(
                "- {} interfaces observed, no Docker (so no labelled endpoints): {} ({:.1} s after it said it watched{}).\n",
                mem.interfaces,
                mem.mem.show(),
                mem.settle_secs,
                host_drops(mem.host_drops)
            ));
            s.push_str(&format!(
                "- Each daemon's memory is read once its VmRSS has stayed within {:.1} MiB for {} s (at most {} s after it said it watched).\n",
                super::memory::SETTLED_WITHIN,
                super::memory::SETTLED_FOR.as_secs(),
                super::memory::SETTLE_AT_MOST.as_secs()
            ));
            if let Some(c) = &self.costs {
                if let Some(m) = &c.watch_mem_idle {
                    s.push_str(&format!(
                        "- For comparison, `netlab watch` on 3 interfaces (part 1), just started: {}.\n",
                        m.show()
                    ));
                }
                let pps_mem = |o: Observer| {
                    self.pps
                        .iter()
                        .flatten()
                        .find(|w| w.observer == o)
                        .and_then(|w| w.mem.as_ref())
                };
                if let (Some(with), Some(without)) =
                    (pps_mem(Observer::Netlab), pps_mem(Observer::NetlabNoDrops))
                {
                    s.push_str(&format!(
                        "- After a UDP window of part 2: {}; with `--no-drops` (no kernel symbols, BTF or drop program): {}.\n",
                        with.show(),
                        without.show()
                    ));
                }
                if let Some(m) = &c.watch_mem_busy {
                    s.push_str(&format!(
                        "- The same after its first windows ({} UDP datagrams, a {}-echo `ping -f`, the test runs): {}.\n",
                        c.windows.first().map_or(0, |w| w.packets),
                        c.windows.get(1).map_or(0, |w| w.packets),
                        m.show()
                    ));
                }
            }
            let total: u64 = mem.maps.iter().map(|m| m.bytes).sum();
            s.push_str(&format!(
                "- Kernel maps it holds: {:.1} MiB of memlock in all.\n\n| map | type | bytes |\n|---|---|---|\n",
                total as f64 / 1_048_576.0
            ));
            for m in &mem.maps {
                s.push_str(&format!("| {} | {} | {} |\n", m.name, m.kind, m.bytes));
            }
        }
        s
    }
}

/// `a, b, c` of a few counts.
fn list<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `1,000`.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `; 12 drop reports …` (what the daemon handled of the host's other traffic), when its
/// metrics were read.
fn host_drops(d: Option<super::memory::HostDrops>) -> String {
    match d {
        Some(d) => format!(
            "; {:.0} drop reports and {:.0} frees that were not drops from the host's other traffic handled",
            d.drops, d.not_drops
        ),
        None => String::new(),
    }
}

/// Replaces the results block of BENCH.md, keeping everything around it; creates the file
/// with the method and the way to reproduce when it does not exist.
pub(super) fn write_bench_md(path: &Path, r: &Results) -> Result<()> {
    let block = format!("{BEGIN}\n{}{END}", r.markdown());
    let text = match std::fs::read_to_string(path) {
        Ok(old) => splice(&old, &block),
        Err(_) => format!("{}{block}\n{}", MD_HEAD, MD_TAIL),
    };
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// `old` with the text between the markers replaced by `block` (appended when no markers).
fn splice(old: &str, block: &str) -> String {
    match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{block}{}", &old[..b], &old[e + END.len()..])
        }
        _ => format!("{old}\n{block}\n"),
    }
}

const MD_HEAD: &str = "# netlab benchmarks\n\n`cargo xtask bench` measures what netlab costs on the machine it runs on and rewrites the\nresults block below; the text around it is kept.\n\n";

const MD_TAIL: &str = "\n## Reproduce\n\n```sh\ncargo xtask bench            # everything, < 15 minutes\ncargo xtask bench --quick    # shorter windows, < 3 minutes\ncargo xtask bench --quick --json   # and one JSON object on stdout\ncargo bench -p netlab-daemon --bench pipeline   # the user-space pipeline alone\n```\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(4421), "4,421");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    #[test]
    fn results_block_is_replaced_in_place() {
        let old = format!("# t\n\nintro\n{BEGIN}\nold numbers\n{END}\n\n## Analysis\nkept\n");
        let new = splice(&old, &format!("{BEGIN}\nnew\n{END}"));
        assert_eq!(
            new,
            format!("# t\n\nintro\n{BEGIN}\nnew\n{END}\n\n## Analysis\nkept\n")
        );
        let appended = splice("no markers\n", "B");
        assert_eq!(appended, "no markers\n\nB\n");
    }
}

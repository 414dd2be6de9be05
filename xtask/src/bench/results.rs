//! The results of every part, the summary table and the JSON object of `--json`.

use super::costs::{CostWindow, Costs, DropCostWindow, PairedWindow};
use super::flood::FloodLevel;
use super::machine::Machine;
use super::memory::{Labelled, Memory};
use super::pipeline::{CritBench, PIPELINE_BENCHES};
use super::pps::{Observer, PpsWindow};
use super::restart::Restart;
use super::scale::Scale;
use super::stats::{percentile, Spread};
use super::toggle::{Toggle, ToggleBlock, OBSERVER_EMPTY, OBSERVER_TCPDUMP};
use super::traffic::Receiver;
use super::PartLog;
use netlab_tests::host::empty_prog::Position;

#[derive(Debug, Default)]
pub(super) struct Results {
    pub(super) quick: bool,
    pub(super) date: String,
    pub(super) elapsed_secs: f64,
    pub(super) machine: Machine,
    pub(super) costs: Option<Costs>,
    pub(super) pps: Option<Vec<PpsWindow>>,
    pub(super) toggle: Option<Toggle>,
    pub(super) observers: Option<Toggle>,
    pub(super) flood: Option<Vec<FloodLevel>>,
    pub(super) pipeline: Option<Vec<CritBench>>,
    pub(super) scale: Option<Scale>,
    pub(super) memory: Option<Memory>,
    pub(super) restart: Option<Restart>,
    pub(super) labelled: Option<Labelled>,
    pub(super) log: PartLog,
}

/// One line of the summary table.
pub(super) struct Row {
    pub(super) what: &'static str,
    key: &'static str,
    value: Option<f64>,
    pub(super) shown: String,
    pub(super) target: &'static str,
    pub(super) met: Option<bool>,
}

impl Results {
    fn cost_spread(&self, traffic: &str, sample: Option<u32>) -> Option<Spread> {
        let v: Vec<f64> = self
            .costs
            .iter()
            .flat_map(|c| &c.windows)
            .filter(|w| w.traffic == traffic && w.sample != 0)
            .filter(|w| sample.is_none_or(|s| w.sample == s))
            .filter_map(CostWindow::ns_per_run)
            .collect();
        Spread::of(&v)
    }

    /// The empty programs' ns per run on `traffic`.
    fn cost_spread_empty(&self, traffic: &str) -> Option<Spread> {
        let v: Vec<f64> = self
            .costs
            .iter()
            .flat_map(|c| &c.windows)
            .filter(|w| w.traffic == traffic && w.sample == 0)
            .filter_map(CostWindow::ns_per_run)
            .collect();
        Spread::of(&v)
    }

    /// Per round, netlab's ns per run over the empty programs' on the same traffic (the
    /// windows with `sample`, or every netlab window when `None`).
    fn cost_over_empty(&self, traffic: &str, sample: Option<u32>) -> Option<Spread> {
        let windows: Vec<&CostWindow> = self.costs.iter().flat_map(|c| &c.windows).collect();
        let v: Vec<f64> = windows
            .iter()
            .filter(|w| w.traffic == traffic && w.sample != 0)
            .filter(|w| sample.is_none_or(|s| w.sample == s))
            .filter_map(|w| {
                let empty = windows
                    .iter()
                    .find(|e| e.round == w.round && e.traffic == traffic && e.sample == 0)?;
                Some(w.ns_per_run()? - empty.ns_per_run()?)
            })
            .collect();
        Spread::of(&v)
    }

    fn drop_windows(&self) -> Vec<&DropCostWindow> {
        self.costs.iter().flat_map(|c| &c.drop_windows).collect()
    }

    /// The drop program's ns per run (netlab's, or the empty one's) while b drops.
    fn drop_cost(&self, empty: bool) -> Option<Spread> {
        let v: Vec<f64> = self
            .drop_windows()
            .into_iter()
            .filter(|w| (w.sample == 0) == empty)
            .filter_map(|w| w.prog.ns_per_run())
            .collect();
        Spread::of(&v)
    }

    /// Per round: netlab's drop program's ns per run over the empty one's, and the share
    /// of the sending CPU that difference took over the window.
    fn drop_cost_over_empty(&self) -> Vec<(f64, f64)> {
        let windows = self.drop_windows();
        windows
            .iter()
            .filter(|w| w.sample != 0)
            .filter_map(|w| {
                let empty = windows
                    .iter()
                    .find(|e| e.round == w.round && e.sample == 0)?;
                let over = w.prog.ns_per_run()? - empty.prog.ns_per_run()?;
                Some((over, w.cpu_share(over)))
            })
            .collect()
    }

    /// Skipped UDP, netlab's ns per run over the empty programs' on the same hooks in the
    /// same window: every window, or those where the empty programs ran at `empty_at`.
    fn paired_over_empty(&self, empty_at: Option<Position>) -> Option<Spread> {
        let v: Vec<f64> = self
            .costs
            .iter()
            .flat_map(|c| &c.paired)
            .filter(|w| empty_at.is_none_or(|at| w.empty_at == at))
            .filter_map(PairedWindow::over_empty)
            .collect();
        Spread::of(&v)
    }

    /// The skipped UDP through BPF_PROG_TEST_RUN with the statistics off.
    fn skip_test_run(&self) -> Option<Spread> {
        let v: Vec<f64> = self
            .costs
            .iter()
            .flat_map(|c| &c.windows)
            .filter(|w| w.traffic == "udp")
            .filter_map(|w| w.test_run_stats_off)
            .collect();
        Spread::of(&v)
    }

    /// Per round, the observer's packet rate over the no-observer rate of the same round
    /// (and the same receiver).
    pub(super) fn ratios(&self, receiver: Receiver, observer: Observer) -> Vec<f64> {
        let windows = self.pps.as_deref().unwrap_or_default();
        windows
            .iter()
            .filter(|w| w.observer == observer && w.receiver == receiver)
            .filter_map(|w| {
                let base = windows.iter().find(|b| {
                    b.round == w.round && b.receiver == receiver && b.observer == Observer::None
                })?;
                Some(w.udp.pps() / base.udp.pps())
            })
            .collect()
    }

    /// Per round, while b drops every datagram: netlab's rate over netlab's without its
    /// drop program, i.e. what the drop program alone leaves of the rate.
    fn drop_prog_ratios(&self) -> Vec<f64> {
        let windows = self.pps.as_deref().unwrap_or_default();
        windows
            .iter()
            .filter(|w| w.observer == Observer::Netlab && w.receiver == Receiver::Drops)
            .filter_map(|w| {
                let base = windows.iter().find(|b| {
                    b.round == w.round
                        && b.receiver == Receiver::Drops
                        && b.observer == Observer::NetlabNoDrops
                })?;
                Some(w.udp.pps() / base.udp.pps())
            })
            .collect()
    }

    /// One ratio per block of the drop program switched under one flow.
    fn toggled(&self, ratio: fn(&ToggleBlock) -> f64) -> Option<Spread> {
        self.toggle.as_ref().and_then(|t| t.spread(ratio))
    }

    /// One ratio per block of netlab and what it is compared with switched under one flow
    /// (the blocks that compared it with `kind`, or all of them).
    fn observed(&self, kind: Option<usize>, ratio: fn(&ToggleBlock) -> f64) -> Option<Spread> {
        self.observers
            .as_ref()
            .and_then(|t| t.spread_of(kind, ratio))
    }

    fn best_lossless(&self) -> Option<&FloodLevel> {
        self.flood
            .iter()
            .flatten()
            .filter(|l| l.lost == 0)
            .max_by(|a, b| a.events_per_s().total_cmp(&b.events_per_s()))
    }

    /// The level with the lowest offered rate that lost events.
    fn first_lossy(&self) -> Option<&FloodLevel> {
        self.flood
            .iter()
            .flatten()
            .filter(|l| l.lost > 0)
            .min_by(|a, b| a.offered_per_s().total_cmp(&b.offered_per_s()))
    }

    fn headline(&self) -> Option<&CritBench> {
        self.pipeline
            .iter()
            .flatten()
            .find(|b| b.name == PIPELINE_BENCHES[PIPELINE_BENCHES.len() - 1])
    }

    pub(super) fn rows(&self) -> Vec<Row> {
        let spread_row =
            |what, key, s: Option<Spread>, decimals, target, ok: fn(f64) -> bool| Row {
                what,
                key,
                value: s.map(|s| s.median),
                shown: s.map_or("not measured".into(), |s| s.show(decimals)),
                target,
                met: s.map(|s| ok(s.median)),
            };
        let skip = self.cost_spread("udp", None);
        let empty_udp = self.cost_spread_empty("udp");
        let empty_icmp = self.cost_spread_empty("icmp");
        let skip_over = self.cost_over_empty("udp", None);
        let paired = self.paired_over_empty(None);
        let paired_first = self.paired_over_empty(Some(Position::First));
        let paired_after = self.paired_over_empty(Some(Position::Last));
        let icmp100_over = self.cost_over_empty("icmp", Some(100));
        let icmp1_over = self.cost_over_empty("icmp", Some(1));
        let icmp100 = self.cost_spread("icmp", Some(100));
        let icmp1 = self.cost_spread("icmp", Some(1));
        let drop_over = self.drop_cost_over_empty();
        let drop_over_ns = Spread::of(&drop_over.iter().map(|d| d.0).collect::<Vec<_>>());
        let drop_share = Spread::of(&drop_over.iter().map(|d| d.1).collect::<Vec<_>>());
        let netlab = Spread::of(&self.ratios(Receiver::Reads, Observer::Netlab));
        let filtered = Spread::of(&self.ratios(Receiver::Reads, Observer::TcpdumpFiltered));
        let full = Spread::of(&self.ratios(Receiver::Reads, Observer::TcpdumpFull));
        let lossless = self.best_lossless();
        let pipeline = self.headline();
        let scale = self.scale.as_ref();
        let startup = scale.and_then(|s| Spread::of(&s.startup_secs));
        let floor = scale.and_then(|s| Spread::of(&s.floor_secs));
        let over_floor =
            scale.and_then(|s| Spread::of(&super::floor::ratios(&s.startup_secs, &s.floor_secs)));
        let restart = self.restart.as_ref();
        let restarts = restart.and_then(|r| Spread::of(&r.secs));
        let p99 = scale.and_then(|s| percentile(&s.latency_ms, 99.0));
        let verified = scale.and_then(Scale::verified_insns).map(|n| n as f64);
        let floor_p99 = scale.and_then(|s| percentile(&s.floor_latency_ms, 99.0));
        let rss = self.memory.as_ref().map(|m| m.mem.rss);
        let rss_labelled = self.labelled.as_ref().map(|m| m.mem.rss);
        let netlab_flow = self.observed(None, ToggleBlock::netlab_ratio);
        let tcpdump_flow = self.observed(Some(OBSERVER_TCPDUMP), ToggleBlock::other_ratio);
        let netlab_beats_tcpdump = match (netlab_flow, tcpdump_flow) {
            (Some(n), Some(f)) => Some(n.median >= 0.97 && n.median > f.median),
            (Some(n), None) => Some(n.median >= 0.97),
            _ => None,
        };
        vec![
            Row {
                met: None,
                ..spread_row(
                    "empty tc program, UDP (ns/run)",
                    "",
                    empty_udp,
                    1,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "tc programs, UDP they skip (ns/run)",
                    "skip_ns_per_pkt",
                    skip,
                    1,
                    "",
                    |_| true,
                )
            },
            spread_row(
                "same, over the empty program, each alone on the hooks (ns/run)",
                "skip_ns_over_empty",
                skip_over,
                1,
                "≤ 10",
                |v| v <= 10.0,
            ),
            Row {
                shown: match (paired, paired_first, paired_after) {
                    (Some(all), Some(first), Some(after)) => format!(
                        "{}; empty first {:.1}, after {:.1}",
                        all.show(1),
                        first.median,
                        after.median
                    ),
                    (Some(all), _, _) => all.show(1),
                    _ => "not measured".into(),
                },
                met: None,
                ..spread_row(
                    "same, the two beside each other on each hook, same window (ns/run)",
                    "skip_ns_over_empty_paired",
                    paired,
                    1,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "same, BPF_PROG_TEST_RUN, statistics off (ns/run)",
                    "",
                    self.skip_test_run(),
                    1,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "empty tc program, ICMP echo (ns/run)",
                    "",
                    empty_icmp,
                    1,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "tc programs, ICMP at --sample 100 (ns/run)",
                    "icmp_ns_per_pkt_sample100",
                    icmp100,
                    1,
                    "",
                    |_| true,
                )
            },
            spread_row(
                "same, over the empty program (ns/run)",
                "icmp_ns_over_empty_sample100",
                icmp100_over,
                1,
                "≤ 60",
                |v| v <= 60.0,
            ),
            Row {
                met: None,
                ..spread_row(
                    "tc programs, ICMP at --sample 1 (ns/run)",
                    "",
                    icmp1,
                    1,
                    "",
                    |_| true,
                )
            },
            spread_row(
                "same, over the empty program (ns/run)",
                "event_ns_over_empty_sample1",
                icmp1_over,
                1,
                "≤ 250",
                |v| v <= 250.0,
            ),
            Row {
                met: None,
                ..spread_row(
                    "UDP pps, no observer again / no observer (noise)",
                    "",
                    Spread::of(&self.ratios(Receiver::Reads, Observer::NoneAgain)),
                    3,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "UDP pps with netlab / without",
                    "pps_ratio_netlab",
                    netlab,
                    3,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "UDP pps with netlab --no-drops / without",
                    "",
                    Spread::of(&self.ratios(Receiver::Reads, Observer::NetlabNoDrops)),
                    3,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "UDP pps with tcpdump 'icmp or arp' / without",
                    "pps_ratio_tcpdump_filtered",
                    filtered,
                    3,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "UDP pps with tcpdump (all) / without",
                    "pps_ratio_tcpdump_full",
                    full,
                    3,
                    "",
                    |_| true,
                )
            },
            Row {
                met: netlab_beats_tcpdump,
                ..spread_row(
                    "same, one flow: netlab (all its programs) on / off",
                    "pps_ratio_netlab_one_flow",
                    netlab_flow,
                    4,
                    "≥ 0.97, > tcpdump 'icmp or arp'",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "same, one flow: tcpdump 'icmp or arp' on / off",
                    "pps_ratio_tcpdump_filtered_one_flow",
                    tcpdump_flow,
                    4,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "same, one flow: netlab / tcpdump 'icmp or arp', same block",
                    "",
                    self.observed(Some(OBSERVER_TCPDUMP), ToggleBlock::netlab_over_other),
                    4,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "same, one flow: empty programs where netlab's are, on / off",
                    "pps_ratio_empty_one_flow",
                    self.observed(Some(OBSERVER_EMPTY), ToggleBlock::other_ratio),
                    4,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "same, one flow: netlab / empty programs, same block",
                    "",
                    self.observed(Some(OBSERVER_EMPTY), ToggleBlock::netlab_over_other),
                    4,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "same, one flow: off / off (noise floor)",
                    "",
                    self.observed(None, ToggleBlock::off_ratio),
                    4,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "same, netlab's programs' run time per datagram (ns, statistics on)",
                    "",
                    self.observers
                        .as_ref()
                        .and_then(Toggle::ns_per_datagram)
                        .and_then(|v| Spread::of(&[v])),
                    1,
                    "",
                    |_| true,
                )
            },
            Row {
                what: "same, one flow: netlab's program runs per datagram",
                key: "",
                value: self.observers.as_ref().and_then(Toggle::runs_per_datagram),
                shown: self
                    .observers
                    .as_ref()
                    .map_or("not measured".into(), Toggle::show_runs),
                target: "",
                met: None,
            },
            Row {
                met: None,
                ..spread_row(
                    "b drops every datagram: netlab / without",
                    "",
                    Spread::of(&self.ratios(Receiver::Drops, Observer::Netlab)),
                    3,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "b drops every datagram: netlab --no-drops / without",
                    "",
                    Spread::of(&self.ratios(Receiver::Drops, Observer::NetlabNoDrops)),
                    3,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "b drops every datagram: empty programs / without",
                    "",
                    Spread::of(&self.ratios(Receiver::Drops, Observer::Empty)),
                    3,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "b drops every datagram: netlab / netlab --no-drops",
                    "",
                    Spread::of(&self.drop_prog_ratios()),
                    3,
                    "",
                    |_| true,
                )
            },
            spread_row(
                "same, one flow: netlab's drop program on / off",
                "drop_prog_pps_ratio",
                self.toggled(ToggleBlock::netlab_ratio),
                4,
                "≥ 0.98",
                |v| v >= 0.98,
            ),
            Row {
                met: None,
                ..spread_row(
                    "same, one flow: an empty kfree_skb program on / off",
                    "",
                    self.toggled(ToggleBlock::other_ratio),
                    4,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "same, one flow: netlab's drop program / the empty one, same block",
                    "drop_prog_pps_over_empty",
                    self.toggled(ToggleBlock::netlab_over_other),
                    4,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "same, one flow: off / off (noise floor)",
                    "",
                    self.toggled(ToggleBlock::off_ratio),
                    4,
                    "",
                    |_| true,
                )
            },
            Row {
                what: "same, one flow: netlab's program runs per datagram freed",
                key: "",
                value: self.toggle.as_ref().and_then(Toggle::runs_per_datagram),
                shown: self
                    .toggle
                    .as_ref()
                    .map_or("not measured".into(), Toggle::show_runs),
                target: "",
                met: None,
            },
            Row {
                met: None,
                ..spread_row(
                    "kfree_skb program, every datagram dropped (ns/run)",
                    "",
                    self.drop_cost(false),
                    1,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "empty kfree_skb raw tracepoint program, same (ns/run)",
                    "",
                    self.drop_cost(true),
                    1,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "same, over the empty program (ns/run)",
                    "drop_ns_over_empty",
                    drop_over_ns,
                    1,
                    "",
                    |_| true,
                )
            },
            spread_row(
                "same × runs: share of the sending CPU (the rate it costs)",
                "drop_prog_cpu_share",
                drop_share,
                4,
                "≤ 0.02",
                |v| v <= 0.02,
            ),
            Row {
                what: "ICMP events/s delivered without loss",
                key: "events_per_s_no_loss",
                value: lossless.map(FloodLevel::events_per_s),
                shown: match (lossless, self.first_lossy()) {
                    (Some(l), Some(x)) => format!(
                        "{:.0} (loss from {:.0}/s offered)",
                        l.events_per_s(),
                        x.offered_per_s()
                    ),
                    (Some(l), None) => format!("{:.0} (no loss seen)", l.events_per_s()),
                    (None, Some(x)) => {
                        format!("loss at every level (from {:.0}/s)", x.offered_per_s())
                    }
                    (None, None) => "not measured".into(),
                },
                target: "≥ 400,000",
                met: self
                    .flood
                    .as_ref()
                    .map(|_| lossless.is_some_and(|l| l.events_per_s() >= 400_000.0)),
            },
            Row {
                what: "pipeline: label + JSON, one core (events/s)",
                key: "pipeline_events_per_s",
                value: pipeline.map(CritBench::events_per_s),
                shown: pipeline.map_or("not measured".into(), |b| {
                    format!(
                        "{:.0} (95% CI {:.0}–{:.0})",
                        b.events_per_s(),
                        b.batch * 1e9 / b.upper_ns,
                        b.batch * 1e9 / b.lower_ns
                    )
                }),
                target: "≥ 1,000,000",
                met: pipeline.map(|b| b.events_per_s() >= 1_000_000.0),
            },
            Row {
                met: over_floor.map(|r| r.median <= 1.2),
                ..spread_row(
                    "start-up on 500 veths (s)",
                    "attach_500_s",
                    startup,
                    3,
                    "≤ 1.2 × floor (was < 2)",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "kernel floor: empty program on the same 1002 hooks (s)",
                    "attach_500_floor_s",
                    floor,
                    3,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "start-up / floor, per round",
                    "",
                    over_floor,
                    2,
                    "",
                    |_| true,
                )
            },
            Row {
                what: "instructions the verifier walked to load netlab's programs",
                key: "verified_insns_at_startup",
                value: verified,
                shown: verified.map_or("–".into(), |v| format!("{v:.0}")),
                target: "",
                met: None,
            },
            Row {
                met: restarts.map(|s| {
                    s.median < 1.0
                        && restart.is_some_and(|r| {
                            r.links_kept.iter().all(|k| *k == r.hooks)
                                && r.api_attached.iter().all(|a| *a == r.interfaces)
                        })
                }),
                ..spread_row(
                    "daemon restart adopting 500 veths' pinned links (s)",
                    "restart_500_s",
                    restarts,
                    3,
                    "< 1, every link kept",
                    |_| true,
                )
            },
            Row {
                what: "new veth to attached, p99 (ms)",
                key: "attach_p99_ms",
                value: p99,
                shown: match (scale, p99) {
                    (Some(s), Some(p)) => format!(
                        "{p:.1} (median {:.1}, n={}, missed {})",
                        Spread::of(&s.latency_ms).map_or(f64::NAN, |x| x.median),
                        s.latency_ms.len(),
                        s.missed
                    ),
                    _ => "not measured".into(),
                },
                target: "< 50",
                met: scale.map(|s| s.missed == 0 && p99.is_some_and(|p| p < 50.0)),
            },
            Row {
                what: "kernel floor: empty program attached on the kernel's notice, p99 (ms)",
                key: "attach_p99_floor_ms",
                value: floor_p99,
                shown: match (scale, floor_p99) {
                    (Some(s), Some(p)) => format!(
                        "{p:.1} (median {:.1}, n={}, missed {})",
                        Spread::of(&s.floor_latency_ms).map_or(f64::NAN, |x| x.median),
                        s.floor_latency_ms.len(),
                        s.floor_missed
                    ),
                    _ => "not measured".into(),
                },
                target: "",
                met: None,
            },
            Row {
                what: "burst of 20 new ports, unobserved p99 (ms)",
                key: "burst20_unobserved_p99_ms",
                value: scale.and_then(|s| percentile(&s.unobserved_ms, 99.0)),
                shown: match scale.and_then(|s| percentile(&s.unobserved_ms, 99.0).map(|p| (s, p))) {
                    Some((s, p)) => format!(
                        "{p:.0} (p50 {:.0}, n={}; attached p50 {:.0} ms, p99 {:.0} ms after joining)",
                        percentile(&s.unobserved_ms, 50.0).unwrap_or(f64::NAN),
                        s.unobserved_ms.len(),
                        percentile(&s.burst_ms, 50.0).unwrap_or(f64::NAN),
                        percentile(&s.burst_ms, 99.0).unwrap_or(f64::NAN),
                    ),
                    None => "not measured".into(),
                },
                target: "0 (reported)",
                met: scale.and_then(|s| percentile(&s.unobserved_ms, 99.0)).map(|p| p == 0.0),
            },
            Row {
                what: "daemon resident memory, 500 veths (MiB)",
                key: "daemon_rss_mb",
                value: rss,
                shown: rss.map_or("not measured".into(), |r| format!("{r:.1}")),
                target: "< 40",
                met: rss.map(|r| r < 40.0),
            },
            Row {
                what: "daemon resident memory, 500 veths + 1,000 labelled endpoints (MiB)",
                key: "daemon_rss_500_1000_mib",
                value: rss_labelled,
                shown: rss_labelled.map_or("not measured".into(), |r| format!("{r:.1}")),
                target: "< 40",
                met: rss_labelled.map(|r| r < 40.0),
            },
        ]
    }

    /// The one JSON object of `--json`.
    pub(super) fn json(&self) -> String {
        let rows = self.rows();
        let fields: Vec<String> = JSON_KEYS
            .iter()
            .map(|key| {
                let v = rows.iter().find(|r| r.key == *key).and_then(|r| r.value);
                let decimals = match *key {
                    "pps_ratio_netlab"
                    | "pps_ratio_tcpdump_filtered"
                    | "pps_ratio_tcpdump_full"
                    | "pps_ratio_netlab_one_flow"
                    | "pps_ratio_tcpdump_filtered_one_flow"
                    | "pps_ratio_empty_one_flow" => 4,
                    "events_per_s_no_loss" | "pipeline_events_per_s" => 0,
                    "drop_prog_cpu_share" | "drop_prog_pps_ratio" | "drop_prog_pps_over_empty" => 4,
                    "attach_500_s" | "attach_500_floor_s" | "restart_500_s" => 3,
                    "verified_insns_at_startup" => 0,
                    _ => 2,
                };
                format!("\"{key}\":{}", json_value(v, decimals))
            })
            .collect();
        format!("{{{}}}", fields.join(","))
    }

    pub(super) fn table(&self) -> String {
        let mut t = String::new();
        let m = &self.machine;
        t.push_str(&format!(
            "\nnetlab bench ({}) — {} × {}, Linux {}, {:.1} GiB; load {} → {}; idle {} → {}\n\n",
            if self.quick { "quick" } else { "full" },
            m.cpus,
            m.model,
            m.kernel,
            m.memory_gib,
            m.load_before,
            m.load_after,
            m.idle_before.map_or("?".into(), |v| format!("{v:.0}%")),
            m.idle_after.map_or("?".into(), |v| format!("{v:.0}%"))
        ));
        let rows = self.rows();
        let w0 = rows
            .iter()
            .map(|r| r.what.chars().count())
            .max()
            .unwrap_or(0);
        let w1 = rows
            .iter()
            .map(|r| r.shown.chars().count())
            .max()
            .unwrap_or(0);
        for r in &rows {
            t.push_str(&format!(
                "  {:<w0$}  {:<w1$}  {:<32}  {}\n",
                r.what,
                r.shown,
                r.target,
                verdict(r.met)
            ));
        }
        for f in &self.log.failures {
            t.push_str(&format!("  failed: {f}\n"));
        }
        t.push('\n');
        t
    }
}

/// The keys of `--json`, in order.
const JSON_KEYS: [&str; 26] = [
    "skip_ns_per_pkt",
    "icmp_ns_per_pkt_sample100",
    "skip_ns_over_empty",
    "icmp_ns_over_empty_sample100",
    "event_ns_over_empty_sample1",
    "drop_prog_pps_ratio",
    "pps_ratio_netlab",
    "pps_ratio_tcpdump_filtered",
    "pps_ratio_tcpdump_full",
    "events_per_s_no_loss",
    "pipeline_events_per_s",
    "attach_500_s",
    "attach_p99_ms",
    "daemon_rss_mb",
    "attach_500_floor_s",
    "restart_500_s",
    "daemon_rss_500_1000_mib",
    "drop_ns_over_empty",
    "drop_prog_cpu_share",
    "attach_p99_floor_ms",
    "pps_ratio_netlab_one_flow",
    "pps_ratio_tcpdump_filtered_one_flow",
    "pps_ratio_empty_one_flow",
    "skip_ns_over_empty_paired",
    "verified_insns_at_startup",
    "drop_prog_pps_over_empty",
];

fn json_value(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) if x.is_finite() => {
            let s = format!("{x:.decimals$}");
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_owned()
            } else {
                s
            }
        }
        _ => "null".into(),
    }
}

pub(super) fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_exactly_the_keys() {
        let r = Results::default();
        let j = r.json();
        for key in JSON_KEYS {
            assert!(j.contains(&format!("\"{key}\":null")), "{j}");
        }
        assert_eq!(j.matches(':').count(), JSON_KEYS.len());
        assert_eq!(json_value(Some(0.97004), 4), "0.97");
        assert_eq!(json_value(Some(412345.6), 0), "412346");
        assert_eq!(json_value(Some(f64::NAN), 2), "null");
    }
}

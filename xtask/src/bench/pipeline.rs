//! Part 4: the user-space pipeline alone (the criterion bench
//! `netlab-daemon/benches/pipeline.rs`).

use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};

use crate::{cmd, workspace};

use super::parse::{json_number, json_numbers};
use super::process::check_stop;
use super::Plan;

/// The criterion benches of `netlab-daemon/benches/pipeline.rs`; the last one is the headline.
pub(super) const PIPELINE_BENCHES: [&str; 4] = ["icmp", "arp", "icmp6", "mixed"];

#[derive(Debug, Clone)]
pub(super) struct CritBench {
    pub(super) name: String,
    /// Events per iteration.
    pub(super) batch: f64,
    /// Mean time per iteration and its 95 % confidence interval, ns.
    mean_ns: f64,
    pub(super) lower_ns: f64,
    pub(super) upper_ns: f64,
    /// Events per second of each sample.
    pub(super) samples: Vec<f64>,
}

impl CritBench {
    pub(super) fn events_per_s(&self) -> f64 {
        self.batch * 1e9 / self.mean_ns
    }
}

/// `cargo bench -p netlab-daemon --bench pipeline --no-run`: built before anything is
/// measured, so that no compiler runs during the measurements.
pub(super) fn build_pipeline_bench() -> Result<()> {
    let mut c = cmd::cargo();
    c.args([
        "bench",
        "-p",
        "netlab-daemon",
        "--bench",
        "pipeline",
        "--no-run",
    ])
    .current_dir(workspace::root());
    let out = cmd::output(&mut c)?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    cmd::check(&c, out.status)
}

pub(super) fn pipeline(plan: &Plan) -> Result<Vec<CritBench>> {
    let home = workspace::target_dir()?.join("criterion");
    // At the highest CFS weight, like the traffic: it measures the code, not the neighbours.
    let mut c = Command::new("nice");
    c.args(["-n", "-20", "cargo"])
        .args([
            "bench",
            "-p",
            "netlab-daemon",
            "--bench",
            "pipeline",
            "--",
            "--noplot",
        ])
        .args(plan.criterion)
        .env("CRITERION_HOME", &home)
        .current_dir(workspace::root());
    let out = cmd::output(&mut c)?;
    check_stop()?;
    // Criterion reports on stdout; ours may be the JSON object's alone.
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            cmd::display(&c),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut benches = Vec::new();
    for name in PIPELINE_BENCHES {
        let dir = home.join("pipeline").join(name);
        let read = |f: &str| -> Result<String> {
            let p = dir.join(f);
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
        };
        let est = read("new/estimates.json")?;
        let sample = read("new/sample.json")?;
        let bench = read("new/benchmark.json")?;
        let batch = json_number(&bench, &["throughput", "Elements"])
            .ok_or_else(|| anyhow!("no throughput in {name}'s benchmark.json"))?;
        let mean = |k: &[&str]| json_number(&est, k).ok_or_else(|| anyhow!("no {k:?} in {name}"));
        let iters = json_numbers(&sample, "iters");
        let times = json_numbers(&sample, "times");
        benches.push(CritBench {
            name: name.to_owned(),
            batch,
            mean_ns: mean(&["mean", "point_estimate"])?,
            lower_ns: mean(&["mean", "confidence_interval", "lower_bound"])?,
            upper_ns: mean(&["mean", "confidence_interval", "upper_bound"])?,
            samples: iters
                .iter()
                .zip(&times)
                .filter(|(_, t)| **t > 0.0)
                .map(|(i, t)| batch * i * 1e9 / t)
                .collect(),
        });
    }
    Ok(benches)
}

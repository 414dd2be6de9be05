//! The daemon's API as a real client of its description sees it: schemathesis (PyPI,
//! installed by `cargo xtask setup`) reads `/v1/openapi.json` from a live `netlab daemon` on
//! loopback and tests every operation against it with all its checks (status codes, content
//! types, response schemas, valid input accepted, invalid input refused, methods the API
//! does not serve refused with 405 and an `Allow` header). Any failure fails the test, and
//! so does an operation it sent no test case to. It tests every operation but
//! `/v1/openapi.json`, the document it reads the description from (a unit test of the
//! server compares that one with the file).
//! Run by `cargo xtask test` (root, `NETLAB_BIN` set, a Docker engine, the lab's images):
//! `cargo test -p netlab-tests --test openapi -- --test-threads=1`.
//!
//! So that every answer has something in it, the daemon observes two networks of the
//! test's own with containers, and one container pings another on its network (3 echo
//! requests, answered) and one on the other network (1, which Docker's firewall drops):
//! the topology lists them, the counters count them, with a drop and a ping pair.
//!
//! The event stream and the live map last as long as the connection unless the request
//! says otherwise, and schemathesis reads every answer to its end. So its configuration
//! fixes their `duration` parameter (seconds) for every request it sends to `/v1/events`
//! and `/v1/map`: each stream
//! ends by itself after [`STREAM_SECS`], while every other parameter of the operation is
//! generated as usual. A stream that did not end would run into `--request-timeout` and
//! fail the run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use netlab_tests::bpf_state::{assert_detached, BpfSnapshot};
use netlab_tests::daemon::{free_loopback_port, get_json, DaemonPaths};
use netlab_tests::docker::{Container, Network};
use netlab_tests::host::netns::unique_name;
use netlab_tests::{docker_or_skip, run_with_timeout, schemathesis};
use serde_json::Value;

/// How long each event stream schemathesis asks for lasts. Written into the configuration
/// as a TOML number, as the description types it: schemathesis checks the declared
/// parameters of a case it made invalid only by an extra parameter (an extra one that may
/// not reach the wire at all), and a string `"0.2"` fails that check: a valid request
/// the server rightly answered with 200 was once reported as invalid input accepted.
const STREAM_SECS: &str = "0.2";
/// Longest a single request may take (an event stream ends after [`STREAM_SECS`]).
const REQUEST_TIMEOUT_SECS: &str = "10";
/// Test cases per operation and phase (the coverage phase adds its own).
const MAX_EXAMPLES: &str = "30";
/// Longest the whole run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// The document schemathesis reads the description from: it tests every other operation.
const SPEC: &str = "/v1/openapi.json";

/// A directory of the test's own for schemathesis' configuration and what it writes;
/// removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.0) {
            eprintln!("netlab-tests: cannot remove {}: {err}", self.0.display());
        }
    }
}

/// The operations that can stream: schemathesis' configuration fixes their `duration`.
const STREAMS: [&str; 2] = ["/v1/events", "/v1/map"];

/// schemathesis' configuration: the streams' `duration` fixed (see the module's doc).
fn config() -> String {
    STREAMS
        .iter()
        .map(|path| {
            format!(
                "[[operations]]\ninclude-path = \"{path}\"\nparameters = {{ duration = {STREAM_SECS} }}\n"
            )
        })
        .collect()
}

#[test]
fn schemathesis_finds_nothing_wrong_with_the_api() -> Result<()> {
    let bin = docker_or_skip!();
    let st = match schemathesis::installed() {
        Ok(st) => st,
        Err(reason) => {
            println!("skipping: {reason}");
            return Ok(());
        }
    };
    let before = BpfSnapshot::take()?;
    let scratch = Scratch(std::env::temp_dir().join(unique_name("schemathesis")));
    std::fs::create_dir_all(&scratch.0)?;
    let config_file = scratch.0.join("schemathesis.toml");
    std::fs::write(&config_file, config())?;
    let report = scratch.0.join("report.ndjson");

    let net = Network::create("oas")?;
    let other_net = Network::create("oas-other")?;
    let a = Container::sleeper("oas-a", &net)?;
    let b = Container::sleeper("oas-b", &net)?;
    let c = Container::sleeper("oas-c", &other_net)?;
    let port = free_loopback_port()?;
    let paths = DaemonPaths::new(&bin)?;
    let daemon = paths.start(&["--listen", &format!("127.0.0.1:{port}")])?;
    a.ping(&b.ipv4()?, 3)?;
    // Dropped by Docker's isolation of networks: ping's own exit status says nothing here.
    a.exec(&["ping", "-c", "1", "-W", "1", &c.ipv4()?])?;
    // Let the drop's rule be found and the journeys finish.
    std::thread::sleep(Duration::from_secs(3));
    let expected = operations(&get_json(&paths.socket, SPEC)?)?;
    let counters = get_json(&paths.socket, "/v1/counters")?;
    ensure!(
        counters["pairs"].as_array().is_some_and(|p| !p.is_empty())
            && counters["drops"].as_array().is_some_and(|d| !d.is_empty()),
        "the daemon counted no ping pair or no drop: {counters}"
    );

    let mut run = Command::new(&st);
    run.current_dir(&scratch.0)
        .arg("--config-file")
        .arg(&config_file)
        .args([
            "--no-color",
            "run",
            "--checks",
            "all",
            "--request-timeout",
            REQUEST_TIMEOUT_SECS,
            "--max-examples",
            MAX_EXAMPLES,
            "--generation-database",
            "none",
            "--report",
            "ndjson",
            "--report-ndjson-path",
        ])
        .arg(&report)
        .arg(format!("http://127.0.0.1:{port}/v1/openapi.json"));
    let out = run_with_timeout(run, RUN_TIMEOUT)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);

    let stopped = daemon.stop(libc::SIGTERM)?;
    ensure!(stopped.status.success(), "daemon exited {}", stopped.status);
    drop(paths);
    assert_detached("-", &[], &before)?;
    netlab_tests::docker::remove_all(vec![a, b, c])?;
    net.remove()?;
    other_net.remove()?;

    ensure!(
        out.status.success(),
        "schemathesis found the API and its description disagreeing ({}):\n{stdout}{stderr}",
        out.status
    );
    let tested = cases_by_operation(&report)
        .with_context(|| format!("reading {}; schemathesis said:\n{stdout}", report.display()))?;
    let untested: Vec<&String> = expected
        .iter()
        .filter(|op| tested.get(*op).is_none_or(|n| *n == 0))
        .collect();
    ensure!(
        untested.is_empty(),
        "schemathesis sent no test case to {untested:?} (cases sent: {tested:?}):\n{stdout}"
    );
    let generated = stdout.lines().find(|l| l.contains(" generated, "));
    println!(
        "schemathesis: {}; test cases per operation: {tested:?}",
        generated.map_or("", str::trim)
    );
    Ok(())
}

/// `METHOD path` of every operation the description has, but the description itself.
fn operations(spec: &Value) -> Result<BTreeSet<String>> {
    let paths = spec["paths"]
        .as_object()
        .context("the description has no paths")?;
    let mut ops = BTreeSet::new();
    for (path, item) in paths.iter().filter(|(path, _)| *path != SPEC) {
        let item = item.as_object().context("a path item is not an object")?;
        for method in item.keys() {
            ops.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    Ok(ops)
}

/// How many test cases schemathesis' NDJSON report says it sent to each operation
/// (`GET /v1/events`...), over every phase.
fn cases_by_operation(report: &Path) -> Result<BTreeMap<String, usize>> {
    let mut cases = BTreeMap::new();
    for line in std::fs::read_to_string(report)?.lines() {
        let event: Value = serde_json::from_str(line)?;
        let Some(finished) = event.get("ScenarioFinished") else {
            continue;
        };
        let recorder = &finished["recorder"];
        let label = recorder["label"]
            .as_str()
            .context("a scenario without a label")?;
        let n = recorder["cases"]
            .as_object()
            .map_or(0, serde_json::Map::len);
        *cases.entry(label.to_owned()).or_insert(0) += n;
    }
    Ok(cases)
}

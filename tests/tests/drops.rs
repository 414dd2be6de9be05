//! Privileged tests of "explain drops": `netlab diagnose` and the drop events and journeys
//! of `netlab watch`, with a real Docker engine. Run by `cargo xtask test` (root,
//! `NETLAB_BIN` set, a Docker engine, the lab's images):
//! `cargo test -p netlab-tests --test drops -- --test-threads=1`.
//!
//! Each test makes its own networks and containers (`nlt-<tag>-<pid>-<n>`) and removes them
//! when it ends. Packets only go between those containers, a bounded number of times, to
//! names of containers on the same network, to their addresses, or to an unused address of
//! the test's own network (ARP for it stays on that bridge). Every netlab command runs with
//! `NETLAB_SOCKET` pointing at a path where no daemon listens, so none of them talks to a
//! daemon someone else started.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use netlab_tests::daemon::{netlab_command, topology_json, unused_socket, COMMAND_TIMEOUT};
use netlab_tests::docker::{
    add_hand_made_leg, docker, host_veth, subnet_host, topo_network, Container, CourseLab,
    EnvWrapper, HostNetns, Network, HTTP_ECHO_IMAGE,
};
use netlab_tests::host::fdinfo::{bpf_fds, BpfKind};
use netlab_tests::watch::READY_TIMEOUT;
use netlab_tests::{docker_or_skip, run_with_timeout, Output, Watch};
use serde_json::Value;

/// Time for the last events (netfilter drops come ~150 ms late, journeys once answered or
/// timed out after 2 s) to reach netlab's stdout before it is stopped.
const SETTLE: Duration = Duration::from_millis(2500);

/// What one `netlab diagnose` printed.
struct Diagnosis {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Diagnosis {
    /// Stdout as the `--json` verdict.
    fn json(&self) -> Result<Value> {
        serde_json::from_str(self.stdout.trim()).with_context(|| {
            format!(
                "diagnose --json printed no JSON object:\n{}--- stderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Everything printed, for assertion messages.
    fn shown(&self) -> String {
        format!(
            "exit {:?} after {:?}\n--- stdout:\n{}--- stderr:\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// `netlab diagnose <args...>` (bounded), never through a daemon.
fn diagnose(bin: &Path, socket: &Path, args: &[&str]) -> Result<Diagnosis> {
    let mut command = netlab_command(bin, socket);
    command.arg("diagnose").args(args);
    let started = Instant::now();
    let out = run_with_timeout(command, COMMAND_TIMEOUT)?;
    Ok(Diagnosis {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    })
}

/// `netlab watch` in the host's namespace, through a wrapper that sets `NETLAB_SOCKET` (so
/// it runs embedded), plus what keeps the wrapper and the namespace name alive.
struct HostWatch {
    watch: Watch,
    _wrapper: EnvWrapper,
    _host: HostNetns,
}

impl HostWatch {
    fn start(bin: &Path, socket: &Path, args: &[&str]) -> Result<Self> {
        let socket = socket.to_string_lossy();
        let wrapper = EnvWrapper::new(bin, &[("NETLAB_SOCKET", socket.as_ref())])?;
        let host = HostNetns::attach()?;
        let watch = Watch::start_bin(&wrapper.bin, host.name(), args, READY_TIMEOUT)?;
        ensure!(
            !watch.stderr_so_far().contains("through the netlab daemon"),
            "netlab watch went through a daemon:\n{}",
            watch.stderr_so_far()
        );
        Ok(Self {
            watch,
            _wrapper: wrapper,
            _host: host,
        })
    }

    /// Waits [`SETTLE`], checks netlab still runs, stops it with SIGINT and checks it
    /// exited 0.
    fn stop(self) -> Result<Output> {
        self.watch.stop_after(SETTLE)
    }
}

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// The first IPv4 address of `container` on `network`, from `docker inspect`.
fn container_ip(container: &Container, network: &Network) -> Result<String> {
    let format = format!(
        "{{{{with index .NetworkSettings.Networks \"{}\"}}}}{{{{.IPAddress}}}}{{{{end}}}}",
        network.name
    );
    let ip = docker(&["inspect", "--format", &format, &container.name])?
        .trim()
        .to_owned();
    ensure!(
        !ip.is_empty(),
        "{} has no address on {}",
        container.name,
        network.name
    );
    Ok(ip)
}

/// An address of `network`'s subnet with host part `host` that no container of it has:
/// `(address, address/len)`.
fn unused_address(
    bin: &Path,
    socket: &Path,
    network: &Network,
    host: u32,
) -> Result<(String, String)> {
    let topo = topology_json(bin, socket)?;
    let subnet = topo_network(&topo, &network.name)?["subnets"][0]
        .as_str()
        .with_context(|| format!("no subnet for {}: {topo}", network.name))?
        .to_owned();
    let (addr, cidr) = subnet_host(&subnet, host)?;
    let addr = addr.to_string();
    let used = docker(&[
        "network",
        "inspect",
        "--format",
        "{{range .Containers}}{{.IPv4Address}} {{end}}",
        &network.name,
    ])?;
    ensure!(
        !used
            .split_whitespace()
            .any(|a| a.split('/').next() == Some(addr.as_str())),
        "{addr} is already used on {}: {used}",
        network.name
    );
    Ok((addr, cidr))
}

/// How diagnose finds the rule: through nftables tracing where iptables is iptables-nft,
/// by counters where it is iptables-legacy.
fn diagnose_attribution() -> &'static str {
    let version = netlab_tests::sh("iptables --version").unwrap_or_default();
    if version.contains("nf_tables") {
        "trace"
    } else {
        "counters"
    }
}

/// The running engine's version, major and minor (`28.5.2+dfsg4` → (28, 5)).
fn engine_version() -> Result<(u32, u32)> {
    let v = docker(&["version", "--format", "{{.Server.Version}}"])?;
    let mut parts = v
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    Ok((parts.next().unwrap_or(0), parts.next().unwrap_or(0)))
}

/// The packet counter of `rule` (as iptables-save prints it without `-A`) in `table`, read
/// with `iptables-save -c`: the firewall's own witness of what it dropped.
fn rule_counter(table: &str, rule: &str) -> Result<u64> {
    rule_counter_of("ipv4", table, rule)
}

/// The course's lab: AppDev on devops pings AppProd on prod and Docker's firewall drops it,
/// with the rule of the engine running: from 28.2 the raw table's direct-access filter,
/// before that DOCKER-ISOLATION-STAGE-2. diagnose names the rule whose own counter moved by
/// the probes it sent, says what it means and a remedy that works on that engine; watch's
/// drop events and dropped journeys agree.
#[test]
fn isolation_drop_is_explained_with_rule_and_hint() -> Result<()> {
    let bin = docker_or_skip!();
    let socket = unused_socket();
    let lab = CourseLab::new()?;
    let (appdev, appprod) = (lab.appdev.name.as_str(), lab.appprod.name.as_str());
    let prod_bridge = lab.prod.bridge();
    let appprod_ip = container_ip(&lab.appprod, &lab.prod)?;
    let engine = engine_version()?;
    let raw_filter = engine >= (28, 2);
    println!(
        "engine {}.{}: expecting {}",
        engine.0,
        engine.1,
        if raw_filter {
            "the raw direct-access rule"
        } else {
            "DOCKER-ISOLATION-STAGE-2"
        }
    );

    let run = diagnose(&bin, &socket, &[appdev, appprod, "--json"])?;
    ensure!(
        run.code == Some(1),
        "diagnose should exit 1: {}",
        run.shown()
    );
    let v = run.json()?;
    let rule = text(&v, "/drop/rule/rule").unwrap_or_default().to_owned();
    let table = text(&v, "/drop/rule/table").unwrap_or_default().to_owned();
    let meaning = text(&v, "/drop/rule/docker/meaning").unwrap_or_default();
    let expected_hint = format!("docker network connect {} {appdev}", lab.prod.name);
    let shape_ok = if raw_filter {
        table == "raw"
            && rule.starts_with("PREROUTING")
            && rule.contains(&format!("-d {appprod_ip}/32"))
            && rule.contains(&format!("! -i {prod_bridge}"))
            && meaning == "direct-access"
            && v.pointer("/drop/rule/docker/caveats")
                .and_then(Value::as_array)
                .is_some_and(|c| {
                    c.iter()
                        .any(|x| x.as_str().is_some_and(|x| x.contains("DOCKER-USER")))
                })
    } else {
        table == "filter"
            && rule.contains("DOCKER-ISOLATION-STAGE-2")
            && rule.contains(&prod_bridge)
            && meaning == "isolation"
    };
    ensure!(
        v["verdict"] == "dropped"
            && v["reachable"] == false
            && text(&v, "/drop/reason") == Some("NETFILTER_DROP")
            && shape_ok
            && text(&v, "/drop/rule/attributed_by") == Some(diagnose_attribution())
            && v["share_no_network"] == true
            && text(&v, "/hint") == Some(expected_hint.as_str())
            && text(&v, "/dst/container") == Some(appprod)
            && v["answered"] == 0,
        "expected a verdict dropped by {} for {appprod_ip} on {prod_bridge}, hint {expected_hint:?}; got {}",
        if raw_filter { "raw PREROUTING (direct-access)" } else { "DOCKER-ISOLATION-STAGE-2 (isolation)" },
        run.shown()
    );
    println!("diagnose --json (dropped) took {:?}", run.elapsed);

    // The rule's own counter moves by the probes diagnose sends.
    let before = rule_counter(&table, &rule)?;
    let human = diagnose(&bin, &socket, &[appdev, appprod])?;
    let after = rule_counter(&table, &rule)?;
    ensure!(
        human.code == Some(1),
        "diagnose should exit 1: {}",
        human.shown()
    );
    ensure!(
        after - before == 3,
        "the rule {rule:?} counted {} packets while diagnose sent 3",
        after - before
    );
    ensure!(
        human.stdout.contains(&rule)
            && human.stdout.contains(&expected_hint)
            && human.stdout.contains("what it is: "),
        "the human verdict does not mention the rule {rule:?}, what it is and the hint {expected_hint:?}: {}",
        human.shown()
    );

    let watch = HostWatch::start(&bin, &socket, &["--json"])?;
    let ping = lab
        .appdev
        .exec(&["ping", "-c", "2", "-W", "1", &appprod_ip])?;
    ensure!(
        !String::from_utf8_lossy(&ping.stdout).contains(" 0% packet loss"),
        "{appdev} reached {appprod} ({appprod_ip}) across networks:\n{}",
        String::from_utf8_lossy(&ping.stdout)
    );
    let output = watch.stop()?;

    let drops: Vec<&Value> = output
        .events
        .iter()
        .filter(|e| {
            e["kind"] == "drop"
                && text(e, "/drop/reason") == Some("NETFILTER_DROP")
                && text(e, "/src/container") == Some(appdev)
                && text(e, "/dst/container") == Some(appprod)
        })
        .collect();
    ensure!(
        drops.len() >= 2,
        "expected >= 2 NETFILTER_DROP drop events {appdev} -> {appprod}, got {}:\n{}",
        drops.len(),
        output.stdout
    );
    let unattributed: Vec<String> = drops
        .iter()
        .filter(|e| {
            e["packet"] != "icmp-echo-request"
                || text(e, "/drop/rule/rule") != Some(rule.as_str())
                || text(e, "/drop/rule/docker/meaning") != Some(meaning)
        })
        .map(|e| e.to_string())
        .collect();
    ensure!(
        unattributed.is_empty(),
        "drop events that are not echo requests dropped by {rule:?} ({meaning}):\n{}",
        unattributed.join("\n")
    );
    let journeys: Vec<&Value> = output
        .events
        .iter()
        .filter(|e| {
            e["kind"] == "journey"
                && text(e, "/src/container") == Some(appdev)
                && text(e, "/dst/container") == Some(appprod)
        })
        .collect();
    ensure!(
        journeys.len() == 2 && journeys.iter().all(|j| j["result"] == "dropped"),
        "expected 2 dropped journeys {appdev} -> {appprod}, got:\n{}",
        journeys
            .iter()
            .map(|j| j.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    Ok(())
}

/// After the course's hand-made leg (AppProd gets an address on devops), AppDev reaches
/// it, through AppDev's veth, the devops bridge and the hand-made veth.
#[test]
fn hand_made_leg_makes_appprod_reachable() -> Result<()> {
    let bin = docker_or_skip!();
    let socket = unused_socket();
    let lab = CourseLab::new()?;
    let (appdev, appprod) = (lab.appdev.name.as_str(), lab.appprod.name.as_str());
    let (addr, cidr) = unused_address(&bin, &socket, &lab.devops, 200)?;
    let leg = add_hand_made_leg(&lab.devops.bridge(), &lab.appprod, &cidr)?;

    let run = diagnose(&bin, &socket, &[appdev, &addr, "--json"])?;
    ensure!(
        run.code == Some(0),
        "diagnose should exit 0: {}",
        run.shown()
    );
    let v = run.json()?;
    let path: Vec<&str> = v["path"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    ensure!(
        v["verdict"] == "reachable"
            && v["reachable"] == true
            && text(&v, "/dst/ip") == Some(addr.as_str())
            && text(&v, "/dst/container") == Some(appprod)
            && path.iter().any(|p| p.contains(&leg.name)),
        "expected {addr} reachable through {}: {}",
        leg.name,
        run.shown()
    );
    println!("diagnose --json (hand-made leg) took {:?}", run.elapsed);

    // By name too: AppProd now shares devops with AppDev.
    let by_name = diagnose(&bin, &socket, &[appdev, appprod, "--json"])?;
    ensure!(
        by_name.code == Some(0),
        "diagnose by name should exit 0: {}",
        by_name.shown()
    );
    let v = by_name.json()?;
    ensure!(
        v["verdict"] == "reachable"
            && v["share_no_network"] == false
            && text(&v, "/dst/ip") == Some(addr.as_str()),
        "{appprod} by name should be reached at {addr}: {}",
        by_name.shown()
    );
    Ok(())
}

/// An address of devops nobody has: no ARP reply.
#[test]
fn unused_address_has_no_arp_reply() -> Result<()> {
    let bin = docker_or_skip!();
    let socket = unused_socket();
    let devops = Network::create("devops")?;
    let appdev = Container::run("AppDev", &devops, HTTP_ECHO_IMAGE, &["-text", "hi"])?;
    let (addr, _) = unused_address(&bin, &socket, &devops, 250)?;

    let run = diagnose(&bin, &socket, &[&appdev.name, &addr, "--json"])?;
    ensure!(
        run.code == Some(1),
        "diagnose should exit 1: {}",
        run.shown()
    );
    let v = run.json()?;
    let expected = format!("no ARP reply for {addr}");
    ensure!(
        v["verdict"] == "no-arp-reply"
            && v["reachable"] == false
            && v["answered"] == 0
            && text(&v, "/message").is_some_and(|m| m.contains(&expected)),
        "expected verdict no-arp-reply with {expected:?}: {}",
        run.shown()
    );
    println!("diagnose --json (no ARP reply) took {:?}", run.elapsed);
    Ok(())
}

/// Two containers on one network: diagnose gives the path veth → bridge → veth with RTTs;
/// watch pairs each echo with its reply into an answered journey over four hops.
#[test]
fn same_network_path_and_answered_journeys() -> Result<()> {
    const COUNT: u64 = 4;
    const PINGS: u32 = 3;
    let bin = docker_or_skip!();
    let socket = unused_socket();
    let net = Network::create("jn")?;
    let a = Container::sleeper("ja", &net)?;
    let b = Container::sleeper("jb", &net)?;
    let topo = topology_json(&bin, &socket)?;
    let veth_a = host_veth(&topo, &a.name, "eth0")?;
    let veth_b = host_veth(&topo, &b.name, "eth0")?;

    let count = COUNT.to_string();
    let run = diagnose(
        &bin,
        &socket,
        &[&a.name, &b.name, "--count", &count, "--json"],
    )?;
    ensure!(
        run.code == Some(0),
        "diagnose should exit 0: {}",
        run.shown()
    );
    let v = run.json()?;
    let expected_path = [
        format!("veth of {}", a.name),
        format!("{} ({})", net.bridge(), net.name),
        format!("veth of {}", b.name),
    ];
    let path: Vec<&str> = v["path"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let rtt: Vec<f64> = ["min", "avg", "max"]
        .iter()
        .filter_map(|k| v.pointer(&format!("/rtt_ms/{k}")).and_then(Value::as_f64))
        .collect();
    ensure!(
        v["verdict"] == "reachable"
            && v["reachable"] == true
            && v["sent"] == COUNT
            && v["answered"] == COUNT
            && path == expected_path
            && rtt.len() == 3
            && rtt[0] > 0.0
            && rtt[0] <= rtt[1]
            && rtt[1] <= rtt[2],
        "expected {COUNT}/{COUNT} answered, rtt_ms min <= avg <= max and path {expected_path:?}: {}",
        run.shown()
    );
    println!("diagnose --json (same network) took {:?}", run.elapsed);

    let watch = HostWatch::start(&bin, &socket, &["--json", "--kind", "journey"])?;
    a.ping(&b.name, PINGS)?;
    let output = watch.stop()?;
    let others: Vec<&Value> = output
        .events
        .iter()
        .filter(|e| e["kind"] != "journey")
        .collect();
    ensure!(
        others.is_empty(),
        "--kind journey printed other events: {others:?}"
    );
    let journeys: Vec<&Value> = output
        .events
        .iter()
        .filter(|e| {
            text(e, "/src/container") == Some(a.name.as_str())
                && text(e, "/dst/container") == Some(b.name.as_str())
        })
        .collect();
    let expected_hops = [
        (veth_a.as_str(), "ingress", "request"),
        (veth_b.as_str(), "egress", "request"),
        (veth_b.as_str(), "ingress", "reply"),
        (veth_a.as_str(), "egress", "reply"),
    ];
    let wrong: Vec<String> = journeys
        .iter()
        .filter(|j| {
            let hops: Vec<(&str, &str, &str)> = j["hops"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| {
                    (
                        text(h, "/iface").unwrap_or_default(),
                        text(h, "/direction").unwrap_or_default(),
                        text(h, "/phase").unwrap_or_default(),
                    )
                })
                .collect();
            j["result"] != "answered" || hops != expected_hops || !j["rtt_ns"].is_u64()
        })
        .map(|j| j.to_string())
        .collect();
    ensure!(
        journeys.len() == PINGS as usize && wrong.is_empty(),
        "expected {PINGS} answered journeys {} -> {} with hops {expected_hops:?}; \
         got {} journeys, these wrong:\n{}\n--- stdout:\n{}",
        a.name,
        b.name,
        journeys.len(),
        wrong.join("\n"),
        output.stdout
    );
    Ok(())
}

/// An unknown source is an error (exit 2, one line); a stopped destination and one whose
/// eth0 is down are verdicts (exit 1).
#[test]
fn unknown_stopped_and_down_destinations() -> Result<()> {
    let bin = docker_or_skip!();
    let socket = unused_socket();
    let net = Network::create("err")?;
    let a = Container::sleeper("ea", &net)?;
    let stopped = Container::sleeper("estop", &net)?;
    let down = Container::sleeper("edown", &net)?;

    let nosuch = format!("nlt-nosuch-{}", std::process::id());
    let run = diagnose(&bin, &socket, &[&nosuch, &a.name])?;
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    ensure!(
        run.code == Some(2)
            && lines.len() == 1
            && lines[0].contains(&nosuch)
            && run.stdout.trim().is_empty(),
        "an unknown source should exit 2 with one stderr line naming it: {}",
        run.shown()
    );

    docker(&["stop", "-t", "1", &stopped.name])?;
    let run = diagnose(&bin, &socket, &[&a.name, &stopped.name, "--json"])?;
    ensure!(
        run.code == Some(1),
        "diagnose should exit 1: {}",
        run.shown()
    );
    let v = run.json()?;
    ensure!(
        v["verdict"] == "not-running"
            && v["reachable"] == false
            && text(&v, "/message").is_some_and(|m| m.contains(&stopped.name)),
        "expected verdict not-running: {}",
        run.shown()
    );

    down.netns_exec("ip link set eth0 down")?;
    let run = diagnose(&bin, &socket, &[&a.name, &down.name, "--json"])?;
    ensure!(
        run.code == Some(1),
        "diagnose should exit 1: {}",
        run.shown()
    );
    let v = run.json()?;
    ensure!(
        v["verdict"] == "interface-down"
            && v["reachable"] == false
            && text(&v, "/dst/container") == Some(down.name.as_str())
            && text(&v, "/message").is_some_and(|m| m.contains("eth0")),
        "expected verdict interface-down naming eth0: {}",
        run.shown()
    );
    Ok(())
}

/// What `diagnose --json` must say of a ping Docker's firewall drops.
struct Expected<'a> {
    /// `drop.rule.docker.meaning`.
    meaning: &'a str,
    /// `drop.rule.table`.
    table: &'a str,
    /// `ipv4` or `ipv6`: `drop.rule.family`, and which iptables-save is the witness.
    family: &'a str,
    /// Pieces `drop.rule.rule` must contain.
    rule_has: Vec<String>,
    /// A remedy that must be offered (a prefix of one of `drop.rule.docker.remedies`).
    remedy: Option<String>,
}

/// The packet counter of `rule` in `table` of the `family` ruleset.
fn rule_counter_of(family: &str, table: &str, rule: &str) -> Result<u64> {
    netlab_tests::host::iptables::rule_counter(family, table, rule)
}

/// `diagnose --json <flags> src dst` must find the ping dropped by a rule as `expected` says,
/// and the rule's own counter must move by the 3 probes of a second run. Returns the verdict.
fn dropped_as_expected(
    bin: &Path,
    socket: &Path,
    flags: &[&str],
    src: &str,
    dst: &str,
    expected: &Expected<'_>,
) -> Result<Value> {
    let mut args: Vec<&str> = flags.to_vec();
    args.extend([src, dst, "--json"]);
    let run = diagnose(bin, socket, &args)?;
    ensure!(
        run.code == Some(1),
        "diagnose should exit 1: {}",
        run.shown()
    );
    let v = run.json()?;
    let rule = text(&v, "/drop/rule/rule").unwrap_or_default().to_owned();
    let remedies: Vec<&str> = v
        .pointer("/drop/rule/docker/remedies")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    ensure!(
        v["verdict"] == "dropped"
            && text(&v, "/drop/reason") == Some("NETFILTER_DROP")
            && text(&v, "/drop/rule/table") == Some(expected.table)
            && text(&v, "/drop/rule/family") == Some(expected.family)
            && text(&v, "/drop/rule/docker/meaning") == Some(expected.meaning)
            && text(&v, "/drop/rule/attributed_by") == Some(diagnose_attribution())
            && v.pointer("/drop/rule/certain") == Some(&Value::Bool(true))
            && expected.rule_has.iter().all(|p| rule.contains(p.as_str()))
            && expected
                .remedy
                .as_ref()
                .is_none_or(|want| remedies.iter().any(|r| r.starts_with(want.as_str()))),
        "{src} → {dst}: expected a drop by a {} rule of table {} ({}) containing {:?}, remedy {:?}; got {}",
        expected.meaning,
        expected.table,
        expected.family,
        expected.rule_has,
        expected.remedy,
        run.shown()
    );
    let before = rule_counter_of(expected.family, expected.table, &rule)?;
    let again = diagnose(bin, socket, &args)?;
    let after = rule_counter_of(expected.family, expected.table, &rule)?;
    ensure!(
        again.code == Some(1),
        "diagnose should exit 1: {}",
        again.shown()
    );
    ensure!(
        after - before == 3,
        "the rule {rule:?} counted {} packets while diagnose sent 3",
        after - before
    );
    println!(
        "{src} → {dst}: {} by {rule:?} (table {}), counted by the rule itself",
        expected.meaning, expected.table
    );
    Ok(v)
}

/// An internal network: a container outside it cannot reach one inside (Docker's rule for
/// internal networks, whichever engine), and a container inside has no route out at all.
#[test]
fn internal_network_drop_is_explained() -> Result<()> {
    let bin = docker_or_skip!();
    let socket = unused_socket();
    let internal = Network::create_with("int", &["--internal"])?;
    let outside = Network::create("ext")?;
    let inside = Container::sleeper("in", &internal)?;
    let out = Container::sleeper("out", &outside)?;
    dropped_as_expected(
        &bin,
        &socket,
        &["-4"],
        &out.name,
        &inside.name,
        &Expected {
            meaning: "internal-network",
            table: "filter",
            family: "ipv4",
            rule_has: vec![format!("-o {}", internal.bridge()), "-j DROP".into()],
            remedy: Some(format!(
                "docker network connect {} {}",
                internal.name, out.name
            )),
        },
    )?;
    // From inside: newer engines give an internal network's containers no route out at
    // all; older ones (20.10) route the packet and drop it leaving the bridge.
    let run = diagnose(&bin, &socket, &[&inside.name, &out.name, "--json"])?;
    let v = run.json()?;
    let no_route =
        v["verdict"] == "no-route" && text(&v, "/message").is_some_and(|m| m.contains("no route"));
    let dropped_leaving = v["verdict"] == "dropped"
        && text(&v, "/drop/rule/docker/meaning") == Some("internal-network")
        && text(&v, "/drop/rule/rule").is_some_and(|r| {
            r.contains(&format!("-i {}", internal.bridge())) && r.contains("-j DROP")
        });
    ensure!(
        run.code == Some(1) && (no_route || dropped_leaving),
        "from inside an internal network: expected no route, or a drop by the internal network's rule leaving {}; got {}",
        internal.bridge(),
        run.shown()
    );
    Ok(())
}

/// A network with inter-container communication disabled: two of its containers cannot
/// ping each other, and netlab says it is ICC.
#[test]
fn icc_disabled_drop_is_explained() -> Result<()> {
    let bin = docker_or_skip!();
    let socket = unused_socket();
    let net = Network::create_with(
        "noicc",
        &["-o", "com.docker.network.bridge.enable_icc=false"],
    )?;
    let a = Container::sleeper("a", &net)?;
    let b = Container::sleeper("b", &net)?;
    let bridge = net.bridge();
    dropped_as_expected(
        &bin,
        &socket,
        &[],
        &a.name,
        &b.name,
        &Expected {
            meaning: "icc-disabled",
            table: "filter",
            family: "ipv4",
            rule_has: vec![format!("-i {bridge} -o {bridge} -j DROP")],
            remedy: None,
        },
    )?;
    Ok(())
}

/// An administrator's own rule in DOCKER-USER drops pings between two containers of one
/// network: named as theirs, with the command that removes it. (Docker makes bridged
/// traffic traverse iptables once a network needs it, as an ICC-disabled one does.)
#[test]
fn a_users_docker_user_rule_is_named_as_theirs() -> Result<()> {
    let bin = docker_or_skip!();
    let socket = unused_socket();
    let _noicc = Network::create_with(
        "brnf",
        &["-o", "com.docker.network.bridge.enable_icc=false"],
    )?;
    let net = Network::create("user")?;
    let a = Container::sleeper("a", &net)?;
    let b = Container::sleeper("b", &net)?;
    let bridged =
        std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables").unwrap_or_default();
    ensure!(
        bridged.trim() == "1",
        "bridged traffic does not traverse iptables (net.bridge.bridge-nf-call-iptables = {:?}) even with an ICC-disabled network",
        bridged.trim()
    );
    let (a_ip, b_ip) = (container_ip(&a, &net)?, container_ip(&b, &net)?);
    let spec = format!("-s {a_ip}/32 -d {b_ip}/32 -p icmp -j DROP");
    netlab_tests::sh(&format!("iptables -I DOCKER-USER {spec}"))?;
    struct Removed(String);
    impl Drop for Removed {
        fn drop(&mut self) {
            let _ = netlab_tests::sh(&format!("iptables -D DOCKER-USER {}", self.0));
        }
    }
    let _rule = Removed(spec.clone());
    let v = dropped_as_expected(
        &bin,
        &socket,
        &[],
        &a.name,
        &b.name,
        &Expected {
            meaning: "user-rule",
            table: "filter",
            family: "ipv4",
            rule_has: vec![format!("DOCKER-USER {spec}")],
            remedy: Some(format!("iptables -t filter -D DOCKER-USER {spec}")),
        },
    )?;
    ensure!(
        text(&v, "/drop/rule/docker/summary")
            .is_some_and(|s| s.starts_with("Your own rule in DOCKER-USER")),
        "the rule is not named as the user's: {v}"
    );
    Ok(())
}

/// A container on Docker's default network (docker0) pings one on a user network: dropped
/// by the engine's rule for that (raw direct-access filter from 28.2, isolation before),
/// and `docker network connect` is offered.
#[test]
fn default_bridge_to_user_network_drop_is_explained() -> Result<()> {
    let bin = docker_or_skip!();
    let socket = unused_socket();
    let default = Network::default_bridge()?;
    let user = Network::create("usr")?;
    let on_default = Container::sleeper("d0", &default)?;
    let on_user = Container::sleeper("u", &user)?;
    let user_ip = container_ip(&on_user, &user)?;
    let engine = engine_version()?;
    let expected = if engine >= (28, 2) {
        Expected {
            meaning: "direct-access",
            table: "raw",
            family: "ipv4",
            rule_has: vec![format!("-d {user_ip}/32 ! -i {}", user.bridge())],
            remedy: Some(format!(
                "docker network connect {} {}",
                user.name, on_default.name
            )),
        }
    } else {
        Expected {
            meaning: "isolation",
            table: "filter",
            family: "ipv4",
            rule_has: vec![
                "DOCKER-ISOLATION-STAGE-2".into(),
                format!("-o {}", user.bridge()),
            ],
            remedy: Some(format!(
                "docker network connect {} {}",
                user.name, on_default.name
            )),
        }
    };
    dropped_as_expected(
        &bin,
        &socket,
        &[],
        &on_default.name,
        &on_user.name,
        &expected,
    )?;
    Ok(())
}

/// Two IPv6-enabled networks: diagnose probes both families and gives a verdict for each
/// (IPv4 first); the IPv6 echo is dropped by the engine's ip6tables rule, named with its
/// family; `-6` probes IPv6 alone.
#[test]
fn ipv6_networks_get_a_verdict_per_family() -> Result<()> {
    let bin = docker_or_skip!();
    let engine = engine_version()?;
    if engine < (27, 0) {
        println!(
            "skipping: Docker {}.{} writes no ip6tables rules by default (ip6tables is on from 27.0)",
            engine.0, engine.1
        );
        return Ok(());
    }
    let socket = unused_socket();
    let prefix = format!("fd4e:{:x}", std::process::id() & 0xffff);
    let a_net = Network::create_with("v6a", &["--ipv6", "--subnet", &format!("{prefix}:1::/64")])?;
    let b_net = Network::create_with("v6b", &["--ipv6", "--subnet", &format!("{prefix}:2::/64")])?;
    let a = Container::sleeper("a", &a_net)?;
    let b = Container::sleeper("b", &b_net)?;
    let b_ip6 = docker(&[
        "inspect",
        "--format",
        &format!(
            "{{{{with index .NetworkSettings.Networks \"{}\"}}}}{{{{.GlobalIPv6Address}}}}{{{{end}}}}",
            b_net.name
        ),
        &b.name,
    ])?
    .trim()
    .to_owned();
    ensure!(
        b_ip6.starts_with(&prefix),
        "{} has no IPv6 address: {b_ip6:?}",
        b.name
    );

    let both = diagnose(&bin, &socket, &[&a.name, &b.name, "--json"])?;
    let lines: Vec<Value> = both
        .stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("diagnose --json lines: {}", both.shown()))?;
    ensure!(
        both.code == Some(1)
            && lines.len() == 2
            && lines[0]["family"] == "ipv4"
            && lines[1]["family"] == "ipv6"
            && lines.iter().all(|v| v["verdict"] == "dropped")
            && text(&lines[1], "/dst/ip") == Some(b_ip6.as_str()),
        "expected two dropped verdicts, IPv4 then IPv6 (to {b_ip6}); got {}",
        both.shown()
    );
    let expected = if engine >= (28, 2) {
        Expected {
            meaning: "direct-access",
            table: "raw",
            family: "ipv6",
            rule_has: vec![format!("-d {b_ip6}/128 ! -i {}", b_net.bridge())],
            remedy: Some(format!("docker network connect {} {}", b_net.name, a.name)),
        }
    } else {
        Expected {
            meaning: "isolation",
            table: "filter",
            family: "ipv6",
            rule_has: vec![format!("-o {}", b_net.bridge())],
            remedy: Some(format!("docker network connect {} {}", b_net.name, a.name)),
        }
    };
    // Drops seen meanwhile: the echo requests, and no neighbour discovery the kernel merely
    // had no use for (multicast for groups nobody joined is freed, not dropped).
    let watch = HostWatch::start(&bin, &socket, &["--json"])?;
    let v6 = dropped_as_expected(&bin, &socket, &["-6"], &a.name, &b.name, &expected)?;
    let output = watch.stop()?;
    let ndp_noise: Vec<String> = output
        .events
        .iter()
        .filter(|e| {
            e["kind"] == "drop"
                && e["packet"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("ndp-") || p == "icmp6-other")
                && e["drop"]["reason"] != "NETFILTER_DROP"
        })
        .map(Value::to_string)
        .collect();
    ensure!(
        ndp_noise.is_empty(),
        "neighbour discovery reported as drops:\n{}",
        ndp_noise.join("\n")
    );
    let echo_drops = output
        .events
        .iter()
        .filter(|e| {
            e["kind"] == "drop"
                && e["packet"] == "icmp6-echo-request"
                && text(e, "/dst/ip") == Some(b_ip6.as_str())
        })
        .count();
    ensure!(
        echo_drops == 6,
        "watch saw {echo_drops} dropped ICMPv6 echo requests to {b_ip6}, diagnose sent 6:\n{}",
        output.stdout
    );
    ensure!(
        v6["family"] == "ipv6" && v6["drop"]["rule"]["rule"] == lines[1]["drop"]["rule"]["rule"],
        "-6 and the two-family run disagree:\n{v6}\n{}",
        lines[1]
    );
    Ok(())
}

/// On a kernel whose `skb:kfree_skb` gives the drop's reason (Linux 5.17 on), the drop
/// program runs on the raw tracepoint, the cheaper of the two on every drop of the host.
/// The classic tracepoint is only a fallback when the kernel refuses the raw program, so
/// falling back here would be a silent slowdown that every other test would pass with.
#[test]
fn the_drop_program_is_the_raw_tracepoint_where_the_kernel_gives_reasons() -> Result<()> {
    let bin = docker_or_skip!();
    let format = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .find_map(|root| {
            std::fs::read_to_string(format!("{root}/events/skb/kfree_skb/format")).ok()
        })
        .context("the skb:kfree_skb tracepoint's format is not readable")?;
    let gives_reasons = format.contains(" reason;");
    let host = HostNetns::attach()?;
    let watch = host.watch(&bin, &["--iface", "lo", "--json"])?;
    let fds = bpf_fds(watch.pid()).context("reading the watch's file descriptors")?;
    let out = watch.stop()?;
    ensure!(
        out.status.success(),
        "watch exited {}: {}",
        out.status,
        out.stderr
    );
    let raw = fds.iter().any(|fd| {
        fd.kind == BpfKind::Link
            && fd.field("link_type") == Some("raw_tracepoint")
            && fd.field("tp_name") == Some("kfree_skb")
    });
    println!("kfree_skb gives reasons: {gives_reasons}; raw tracepoint link held: {raw}");
    ensure!(
        raw == gives_reasons,
        "the drop program {} the raw tracepoint on a kernel whose kfree_skb {} reasons:\n{}",
        if raw { "is on" } else { "is not on" },
        if gives_reasons { "gives" } else { "gives no" },
        out.stderr
    );
    Ok(())
}

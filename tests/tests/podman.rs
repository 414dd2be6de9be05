//! netlab on a Podman host, through Podman's Docker-compatible API (`DOCKER_HOST` at
//! Podman's socket): its bridges (`podman1`, …) and containers found, labelled and
//! followed, counts exact against ping's and tcpdump's own, netavark's isolation drop
//! explained in Podman's terms and checked against the rule's own counter. Run by
//! `cargo xtask test` (root, `NETLAB_BIN`, Podman's service and the busybox image in its
//! store, `--test-threads=1`):
//! `cargo test -p netlab-tests --test podman -- --test-threads=1`.
//!
//! Packets only go between the test's own containers, a bounded number of times.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use netlab_tests::docker::{host_links, tcx_links_of, EnvWrapper, HostNetns, NO_DAEMON};
use netlab_tests::podman::{Container, Network, DOCKER_HOST};
use netlab_tests::tcpdump::Tcpdump;
use netlab_tests::watch::READY_TIMEOUT;
use netlab_tests::{count, podman_or_skip, Output, Watch};
use serde_json::Value;

/// How long netlab may take to attach to a veth that appeared while it runs.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(15);
/// Long enough for a gone interface to learn why, and for the last lines to reach stdout.
const SETTLE: Duration = Duration::from_secs(4);

/// `netlab watch <args>` in the host's namespace, pointed at Podman, on its own.
fn watch(bin: &Path, host: &HostNetns, args: &[&str]) -> Result<(Watch, EnvWrapper)> {
    let wrapper = EnvWrapper::new(bin, &[NO_DAEMON, ("DOCKER_HOST", DOCKER_HOST)])?;
    let w = Watch::start_bin(&wrapper.bin, host.name(), args, READY_TIMEOUT)?;
    Ok((w, wrapper))
}

/// `netlab topology --json`, pointed at Podman.
fn topology(bin: &Path) -> Result<Value> {
    let shown = netlab_tests::host::cmd::run(
        std::process::Command::new(bin)
            .args(["topology", "--json"])
            .env(NO_DAEMON.0, NO_DAEMON.1)
            .env("DOCKER_HOST", DOCKER_HOST),
    )?;
    serde_json::from_str(&shown)
        .with_context(|| format!("parsing `netlab topology --json`: {shown}"))
}

/// Waits until netlab (pid `pid`) holds its two tcx links on interface `name`.
fn attached(pid: u32, name: &str) -> Result<()> {
    let deadline = Instant::now() + FOLLOW_TIMEOUT;
    loop {
        let ifindex = host_links()?
            .into_iter()
            .find(|(_, n)| n == name)
            .map(|(i, _)| i);
        let held = tcx_links_of(pid)
            .iter()
            .filter(|l| Some(l.ifindex) == ifindex)
            .count();
        if held == 2 {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "netlab holds {held} tcx links on {name} after {FOLLOW_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn of_kind<'a>(output: &'a Output, kind: &str) -> Vec<&'a Value> {
    output.events.iter().filter(|e| e["kind"] == kind).collect()
}

/// Two Podman networks, a container on each before netlab starts and one started after:
/// the topology names Podman's bridges and the containers' veths as the engine's (not
/// hand-made); pings within a network and across them are labelled with container,
/// network and bridge, counted exactly as ping and tcpdump count them, on the container
/// started after netlab too; removing that container is followed (its veth gone, with why).
#[test]
fn podman_networks_are_labelled_counted_and_followed() -> Result<()> {
    const PINGS: u32 = 4;
    let bin = podman_or_skip!();
    let net_a = Network::create("pod-a", &[])?;
    let net_b = Network::create("pod-b", &[])?;
    let a1 = Container::sleeper("pod-a1", &net_a)?;
    let a2 = Container::sleeper("pod-a2", &net_a)?;
    let (bridge_a, bridge_b) = (net_a.bridge()?, net_b.bridge()?);
    ensure!(
        bridge_a.starts_with("podman") && bridge_b.starts_with("podman"),
        "Podman named its bridges {bridge_a} and {bridge_b}"
    );

    let topo = topology(&bin)?;
    ensure!(topo["engine"] == "podman", "engine: {}", topo["engine"]);
    for (net, bridge) in [(&net_a, &bridge_a), (&net_b, &bridge_b)] {
        let n = topo["networks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["name"] == net.name.as_str())
            .with_context(|| format!("{} not in the topology: {topo}", net.name))?;
        ensure!(
            n["bridge"] == bridge.as_str(),
            "{} in the topology: {n}",
            net.name
        );
    }
    let a2_veth = a2.host_veth()?;
    let observed = topo["observed"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["name"] == a2_veth.as_str())
        .with_context(|| format!("{a2_veth} is not observed: {topo}"))?;
    ensure!(
        observed["role"] == "container-veth"
            && observed["container"] == a2.name.as_str()
            && observed["network"] == net_a.name.as_str()
            && observed["bridge"] == bridge_a.as_str(),
        "{a2_veth} in the topology: {observed}"
    );

    let host = HostNetns::attach()?;
    let (w, _wrapper) = watch(&bin, &host, &["--json"])?;
    // Started after netlab: found through Podman's events and the kernel's link events.
    let b1 = Container::sleeper("pod-b1", &net_b)?;
    let b1_veth = b1.host_veth()?;
    attached(w.pid(), &b1_veth)?;
    let witness = Tcpdump::start(None, &b1_veth, "out", "icmp[icmptype] == icmp-echo")?;

    let (a2_ip, b1_ip) = (a2.ipv4()?, b1.ipv4()?);
    let within = a1.ping(&a2_ip, PINGS)?;
    let across = a1.ping(&b1_ip, PINGS)?;
    let seen_by_tcpdump = witness.stop_after(Duration::from_millis(500))?.len() as u64;
    ensure!(
        within.received == u64::from(PINGS) && across.received == u64::from(PINGS),
        "Podman's networks are not isolated by default: every ping should be answered \
         ({within:?} within, {across:?} across)"
    );
    let b1_name = b1.name.clone();
    b1.remove()?;
    std::thread::sleep(SETTLE);
    let out = w.stop_after(Duration::from_millis(200))?;

    // Exact counts, against ping's and tcpdump's own.
    let a1_veth = a1.host_veth()?;
    let sent = count(&out.summary, &a1_veth, "ingress", "icmp-echo-request");
    ensure!(
        sent == within.transmitted + across.transmitted,
        "netlab counted {sent} echo requests from {} on {a1_veth}, ping sent {} + {}\n{}",
        a1.name,
        within.transmitted,
        across.transmitted,
        out.stdout
    );
    let to_a2 = count(&out.summary, &a2_veth, "egress", "icmp-echo-request");
    ensure!(
        to_a2 == within.transmitted,
        "netlab counted {to_a2} echo requests to {} on {a2_veth}, ping sent {}",
        a2.name,
        within.transmitted
    );
    let to_b1 = count(&out.summary, &b1_veth, "egress", "icmp-echo-request");
    ensure!(
        to_b1 == across.transmitted && to_b1 == seen_by_tcpdump,
        "netlab counted {to_b1} echo requests to {b1_name} on {b1_veth}, ping sent {}, \
         tcpdump saw {seen_by_tcpdump}",
        across.transmitted
    );

    // Labels: container, network and Podman's bridge, on the container started after netlab.
    let at_b1: Vec<&Value> = out
        .events
        .iter()
        .filter(|e| e["kind"] == "icmp-echo-request" && e["iface"]["name"] == b1_veth.as_str())
        .collect();
    ensure!(
        !at_b1.is_empty(),
        "no echo request sampled on {b1_veth}:\n{}",
        out.stdout
    );
    for e in at_b1 {
        ensure!(
            e["iface"]["container"] == b1_name.as_str()
                && e["iface"]["network"] == net_b.name.as_str()
                && e["iface"]["bridge"] == bridge_b.as_str()
                && e["dst"]["container"] == b1_name.as_str(),
            "event on {b1_veth}: {e}"
        );
    }
    let within_sampled = out.events.iter().any(|e| {
        e["kind"] == "icmp-echo-request"
            && e["src"]["container"] == a1.name.as_str()
            && e["dst"]["container"] == a2.name.as_str()
            && e["dst"]["network"] == net_a.name.as_str()
    });
    ensure!(
        within_sampled,
        "no labelled echo request {} → {}:\n{}",
        a1.name,
        a2.name,
        out.stdout
    );

    // Removal followed. netavark takes the veth down when the container stops, the moment
    // before Podman removes it: either is why it went.
    let gone: Vec<&Value> = of_kind(&out, "iface-gone")
        .into_iter()
        .filter(|e| e["iface"]["name"] == b1_veth.as_str())
        .collect();
    ensure!(
        gone.len() == 1
            && gone[0]["container"] == b1_name.as_str()
            && (gone[0]["reason"] == "container-stopped"
                || gone[0]["reason"] == "container-removed"),
        "iface-gone of {b1_veth}: {gone:?}\n{}",
        out.stdout
    );
    ensure!(
        of_kind(&out, "container-removed")
            .iter()
            .any(|e| e["container"] == b1_name.as_str()),
        "no container-removed for {b1_name}:\n{}",
        out.stdout
    );
    Ok(())
}

/// The packet counter of netavark's `-A <rule>` in the filter table: the firewall's own
/// witness.
fn rule_counter(rule: &str) -> Result<u64> {
    netlab_tests::host::iptables::rule_counter("ipv4", "filter", rule)
}

/// Two networks created with `--opt isolate=true`: a ping from one to the other is dropped
/// by netavark. netlab names the rule, says what it means in Podman's terms with both
/// networks and the sender, offers `podman network connect`, and counts as many drops as
/// the rule's own counter rose and ping lost; `netlab diagnose` says the same, its probes
/// counted by the rule.
#[test]
fn an_isolated_podman_network_drop_is_named_in_podmans_terms() -> Result<()> {
    const PINGS: u32 = 3;
    let bin = podman_or_skip!();
    let net_i = Network::create("pod-i", &["--opt", "isolate=true"])?;
    let net_j = Network::create("pod-j", &["--opt", "isolate=true"])?;
    let ci = Container::sleeper("pod-ci", &net_i)?;
    let cj = Container::sleeper("pod-cj", &net_j)?;
    let bridge_j = net_j.bridge()?;
    let rule = format!("NETAVARK_ISOLATION_2 -o {bridge_j} -j DROP");
    let host = HostNetns::attach()?;
    let (w, _wrapper) = watch(&bin, &host, &["--json"])?;
    let before = rule_counter(&rule)?;
    let ping = ci.ping(&cj.ipv4()?, PINGS)?;
    let dropped_by_rule = rule_counter(&rule)? - before;
    std::thread::sleep(Duration::from_secs(1));
    let out = w.stop_after(Duration::from_millis(200))?;

    ensure!(
        ping.received == 0 && dropped_by_rule == ping.transmitted,
        "ping {ping:?}, the rule {rule:?} counted {dropped_by_rule}"
    );
    let drops: Vec<&Value> = of_kind(&out, "drop")
        .into_iter()
        .filter(|d| d["src"]["container"] == ci.name.as_str())
        .collect();
    ensure!(
        drops.len() as u64 == dropped_by_rule,
        "{} drop events from {}, the rule counted {dropped_by_rule}:\n{}",
        drops.len(),
        ci.name,
        out.stdout
    );
    let connect = format!("podman network connect {} {}", net_j.name, ci.name);
    for d in drops {
        let r = &d["drop"]["rule"];
        let summary = r["docker"]["summary"].as_str().unwrap_or_default();
        ensure!(
            r["rule"].as_str().is_some_and(|t| t.contains(&rule))
                && r["docker"]["meaning"] == "podman-isolation"
                && summary.starts_with("Podman's network isolation")
                && summary.contains(&format!("network {} (", net_i.name))
                && summary.contains(&format!("network {} ({bridge_j})", net_j.name))
                && summary.contains("--opt isolate=true")
                && d["dst"]["container"] == cj.name.as_str(),
            "drop event: {d}"
        );
        ensure!(
            r["docker"]["remedies"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|x| x == connect.as_str()),
            "no remedy {connect:?}: {d}"
        );
    }

    // diagnose, as a person asks it on a Podman host: the same rule, its counter moved by
    // the probes diagnose sent, and the fix in Podman's words.
    let before = rule_counter(&rule)?;
    let run = netlab_tests::host::cmd::run_with_timeout(
        {
            let mut c = std::process::Command::new(&bin);
            c.args(["diagnose", &ci.name, &cj.name, "--json"])
                .env(NO_DAEMON.0, NO_DAEMON.1)
                .env("DOCKER_HOST", DOCKER_HOST);
            c
        },
        Duration::from_secs(60),
    )?;
    let probed = rule_counter(&rule)? - before;
    let stdout = String::from_utf8_lossy(&run.stdout);
    let v: Value = serde_json::from_str(&stdout).with_context(|| {
        format!(
            "diagnose --json printed {stdout}\n{}",
            String::from_utf8_lossy(&run.stderr)
        )
    })?;
    ensure!(
        run.status.code() == Some(1)
            && v["verdict"] == "dropped"
            && v["share_no_network"] == true
            && v.pointer("/drop/rule/docker/meaning") == Some(&Value::from("podman-isolation"))
            && v["hint"] == connect.as_str()
            && probed == v["sent"].as_u64().unwrap_or(u64::MAX),
        "diagnose {} {} ({}; the rule counted {probed}): {v}",
        ci.name,
        cj.name,
        run.status
    );
    Ok(())
}

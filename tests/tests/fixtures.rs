//! Tests of the fixtures themselves (root only, no netlab needed):
//! `cargo test -p netlab-tests --test fixtures -- --test-threads=1`.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use netlab_tests::host::netns::in_ns;
use netlab_tests::host::process::Background;
use netlab_tests::topology::{
    format_mac, ifindex, CONTAINER_IF, IP6_B, IP_A, IP_B, MAC_A, MAC_B, VETH_A,
};
use netlab_tests::{
    count, frames, ns_exec, root_or_skip, run_with_timeout, send_raw_frames, sh, Netns, PublicCopy,
    Topology, Watch,
};

#[test]
fn topology_connects_containers_and_is_removed_on_drop() -> Result<()> {
    root_or_skip!();
    let topo = Topology::new("fix")?;
    let names = topo.namespace_names();
    for name in &names {
        ensure!(Netns::exists(name), "namespace {name} missing");
    }
    // Fresh caches: a knows no neighbour before the first ping.
    let neighbours = topo.a.exec("ip neigh show dev eth0")?;
    ensure!(
        neighbours.trim().is_empty(),
        "a's neighbour table not empty: {neighbours}"
    );

    topo.a.exec(&format!("ping -c 2 -i 0.2 -w 5 {IP_B}"))?;
    topo.a.exec(&format!("ping -6 -c 2 -i 0.2 -w 5 {IP6_B}"))?;
    // b answered from the MAC the fixture gave it.
    let neighbours = topo.a.exec(&format!("ip neigh show {IP_B}"))?;
    ensure!(
        neighbours.contains(&format_mac(&MAC_B)),
        "a resolved {IP_B} to: {neighbours}"
    );
    // The veths are really bridge ports of br0 in the br namespace.
    let ports = topo.br.exec("bridge link show")?;
    ensure!(
        ports.contains("va") && ports.contains("vb") && ports.contains("master br0"),
        "bridge ports: {ports}"
    );

    drop(topo);
    let listed = sh("ip netns list")?;
    for name in &names {
        ensure!(!Netns::exists(name), "namespace {name} still mounted");
        ensure!(
            !listed.contains(name.as_str()),
            "`ip netns list` still shows {name}"
        );
    }
    Ok(())
}

#[test]
fn netns_guard_deletes_namespace() -> Result<()> {
    root_or_skip!();
    let ns = Netns::unique("guard")?;
    let name = ns.name().to_owned();
    ensure!(sh("ip netns list")?.contains(&name), "{name} not listed");
    ensure!(
        Netns::new(name.clone()).is_err(),
        "a second guard for {name} was allowed"
    );
    drop(ns);
    ensure!(!Netns::exists(&name), "{name} survived its guard");
    Ok(())
}

#[test]
fn command_helpers_report_failures() -> Result<()> {
    root_or_skip!();
    ensure!(sh("echo out")? == "out\n");
    let err = sh("echo to-stdout; echo to-stderr >&2; exit 3")
        .err()
        .context("a failing command succeeded")?;
    let message = format!("{err:#}");
    ensure!(
        message.contains("to-stdout") && message.contains("to-stderr"),
        "error lacks the output: {message}"
    );
    let ns = Netns::unique("cmd")?;
    // Only lo exists in a fresh namespace.
    let links = ns_exec(ns.name(), "ip -o link show | wc -l")?;
    ensure!(links.trim() == "1", "fresh namespace has links: {links}");

    let slow = run_with_timeout(
        {
            let mut command = Command::new("sleep");
            command.arg("5");
            command
        },
        Duration::from_millis(200),
    );
    ensure!(
        slow.is_err(),
        "a command past its deadline was not reported"
    );
    Ok(())
}

/// Starts tcpdump in `ns` on `iface`, to exit after `packets` packets, and returns once it
/// is capturing.
fn capture(ns: &str, iface: &str, packets: usize, filter: &str) -> Result<Background> {
    let mut tcpdump = in_ns(ns, "tcpdump");
    tcpdump
        .args(["-nn", "-e", "-l", "-i", iface])
        .args(["-c", &packets.to_string(), filter]);
    Background::start(tcpdump, "listening on", Duration::from_secs(10))
}

/// Waits for tcpdump to see its packets; returns the lines it printed.
fn finish(capture: Background, timeout: Duration) -> Result<Vec<String>> {
    let finished = capture
        .wait(timeout)
        .with_context(|| format!("tcpdump did not see all packets within {timeout:?}"))?;
    Ok(finished.stdout.lines().map(str::to_owned).collect())
}

#[test]
fn raw_frames_reach_the_bridge_port_unchanged() -> Result<()> {
    root_or_skip!();
    let topo = Topology::new("raw")?;
    let stray = std::net::Ipv4Addr::new(10, 99, 0, 77);
    let nobody = std::net::Ipv4Addr::new(10, 99, 0, 78);
    let sent = [
        frames::truncated_arp(MAC_A, IP_A, IP_B),
        frames::ipv4_ihl3_icmp(MAC_A, MAC_B, IP_A, IP_B),
        frames::ipv4_truncated_icmp(MAC_A, MAC_B, IP_A, IP_B),
        frames::ipv4_icmp_non_first_fragment(MAC_A, MAC_B, IP_A, IP_B),
        frames::vlan_arp_request(MAC_A, stray, nobody),
    ];
    // a's own IPv6 chatter is excluded; nothing else leaves a unless we send it.
    let filter = format!("ether src {} and not ip6", format_mac(&MAC_A));
    let capture = capture(topo.br.name(), VETH_A, sent.len(), &filter)?;
    let rx_before = topo.br.rx_packets(VETH_A)?;

    send_raw_frames(topo.a.name(), CONTAINER_IF, &sent)?;

    let lines = finish(capture, Duration::from_secs(10))?;
    let rx_after = topo.br.rx_packets(VETH_A)?;
    ensure!(
        rx_after - rx_before >= sent.len() as u64,
        "va rx packets went from {rx_before} to {rx_after}"
    );
    ensure!(lines.len() == sent.len(), "tcpdump saw {lines:#?}");
    // tcpdump's own verdict on each frame, in the order sent.
    let expect = [
        ["ethertype ARP", "length 24", "[|arp]"],
        ["ethertype IPv4", "length 42", "bad-hlen 12"],
        ["ethertype IPv4", "length 38", "[|icmp]"],
        // tcpdump does not decode ICMP in a non-first fragment.
        ["ethertype IPv4", "length 42", "ip-proto-1"],
        [
            "802.1Q",
            "vlan 10",
            "Request who-has 10.99.0.78 tell 10.99.0.77",
        ],
    ];
    for (line, marks) in lines.iter().zip(expect) {
        for mark in marks {
            ensure!(line.contains(mark), "expected {mark:?} in: {line}");
        }
    }

    // The writer's thread left the test thread in the initial namespace.
    let here = std::fs::read_link("/proc/thread-self/ns/net")?;
    let main = std::fs::read_link("/proc/self/ns/net")?;
    ensure!(
        here == main,
        "test thread moved to {here:?}, process is in {main:?}"
    );

    // Wrong interface names are reported, not ignored.
    ensure!(send_raw_frames(topo.a.name(), "nlt-nosuch0", &sent).is_err());
    Ok(())
}

/// A shell script that behaves like `netlab watch --json` from the outside.
const STAND_IN: &str = r#"#!/bin/sh
[ "$1" = watch ] || { echo "netlab: error: usage" >&2; exit 2; }
case "$*" in
  *nlt-nosuch0*) echo "netlab: error: no interface nlt-nosuch0" >&2; exit 1 ;;
  *--silent*) exec sleep 30 ;;
esac
netns=$(readlink /proc/self/ns/net)
summary='{"counters":[{"iface":"va","ifindex":3,"direction":"ingress","kind":"icmp-echo-request","packets":5},{"iface":"va","ifindex":3,"direction":"egress","kind":"icmp-echo-reply","packets":4}],"lost_events":0}'
trap 'echo "$summary"; echo "netlab: info: detached" >&2; exit 0' INT
echo "netlab: info: loading" >&2
echo "{\"kind\":\"icmp-echo-request\",\"netns\":\"$netns\",\"iface\":{\"name\":\"va\",\"ifindex\":3},\"direction\":\"ingress\"}"
echo "netlab: info: watching 1 interfaces" >&2
case "$*" in
  *--count*) sleep 0.3; echo '{"kind":"arp-request"}'; echo "$summary"; exit 0 ;;
esac
while :; do sleep 0.05; done
"#;

#[test]
fn watch_fixture_against_a_stand_in() -> Result<()> {
    root_or_skip!();
    let dir = std::env::temp_dir().join(netlab_tests::host::netns::unique_name("stand-in"));
    std::fs::create_dir(&dir)?;
    let script = dir.join("netlab");
    std::fs::write(&script, STAND_IN)?;
    let public = PublicCopy::new(&script);
    std::fs::remove_dir_all(&dir)?;
    let public = public?;
    let bin = public.bin.as_path();
    let ns = Netns::unique("stand")?;

    let mut watch = Watch::start_bin(bin, ns.name(), &["--json"], Duration::from_secs(5))?;
    ensure!(watch.is_running()?, "stand-in exited");
    let output = watch.stop()?;
    ensure!(output.status.success(), "status {}", output.status);
    ensure!(output.events.len() == 1, "events {:?}", output.events);
    ensure!(count(&output.summary, "va", "ingress", "icmp-echo-request") == 5);
    ensure!(count(&output.summary, "va", "egress", "icmp-echo-reply") == 4);
    ensure!(count(&output.summary, "vb", "ingress", "icmp-echo-request") == 0);
    ensure!(
        output.stderr.contains("detached"),
        "stderr {}",
        output.stderr
    );
    // It ran inside the namespace.
    let inside = output.events[0]["netns"].as_str().unwrap_or_default();
    let expected = sh(&format!(
        "ip netns exec {} readlink /proc/self/ns/net",
        ns.name()
    ))?;
    ensure!(
        inside == expected.trim(),
        "ran in {inside}, expected {expected}"
    );

    // Exits by itself (like --count): wait() collects without a signal.
    let watch = Watch::start_bin(bin, ns.name(), &["--count"], Duration::from_secs(5))?;
    let output = watch.wait(Duration::from_secs(5))?;
    ensure!(output.status.success(), "status {}", output.status);
    ensure!(output.events.len() == 2, "events {:?}", output.events);
    ensure!(
        !output.stderr.contains("detached"),
        "got a SIGINT: {}",
        output.stderr
    );

    let failed = Watch::start_bin(
        bin,
        ns.name(),
        &["--iface", "nlt-nosuch0"],
        Duration::from_secs(5),
    )
    .err()
    .context("start accepted a failing netlab")?;
    ensure!(
        format!("{failed:#}").contains("no interface nlt-nosuch0"),
        "{failed:#}"
    );

    let started = Instant::now();
    let silent = Watch::start_bin(bin, ns.name(), &["--silent"], Duration::from_secs(1));
    ensure!(
        silent.is_err(),
        "start accepted a process that never got ready"
    );
    ensure!(
        started.elapsed() < Duration::from_secs(5),
        "ready timeout not honoured"
    );

    // An unprivileged user can run the public copy.
    let uid = run_with_timeout(
        {
            let mut command = Command::new("setpriv");
            command
                .args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "--inh-caps=-all",
                ])
                .args(["sh", "-c", "id -u"]);
            command
        },
        Duration::from_secs(5),
    )?;
    ensure!(String::from_utf8_lossy(&uid.stdout).trim() == "65534");
    let unprivileged = run_with_timeout(
        {
            let mut command = Command::new("setpriv");
            command
                .args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "--inh-caps=-all",
                ])
                .arg(bin)
                .args(["watch", "--iface", "nlt-nosuch0"]);
            command
        },
        Duration::from_secs(5),
    )?;
    ensure!(
        String::from_utf8_lossy(&unprivileged.stderr).contains("nlt-nosuch0"),
        "uid 65534 could not run the copy: {unprivileged:?}"
    );
    ensure!(ifindex(&ns, "lo")? == 1, "lo is not ifindex 1");
    Ok(())
}

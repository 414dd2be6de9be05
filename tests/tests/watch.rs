//! Privileged tests of `netlab watch`, run by `cargo xtask test` (root, `NETLAB_BIN` set,
//! `--test-threads=1`). Each test builds its own namespaces; traffic never leaves them.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use netlab_tests::bpf_state::{assert_detached, netlab_links_of, BpfSnapshot};
use netlab_tests::host::empty_prog::{EmptyTc, Position};
use netlab_tests::host::netns::in_ns;
use netlab_tests::host::tcx::{self, Hook};
use netlab_tests::topology::{
    format_mac, BRIDGE, CONTAINER_IF, IP6_B, IP_A, IP_B, MAC_A, MAC_B, VETH_A, VETH_B,
};
use netlab_tests::{
    count, frames, kernel_at_least, lost_events, netlab_or_skip, possible_cpus, run_with_timeout,
    send_raw_frames, total, Netns, Output, PublicCopy, Topology, Watch,
};
use serde_json::Value;

/// Echo requests per ping run in the IPv4 tests.
const PINGS: u64 = 5;
/// Time for the last packets' events to reach netlab's stdout before it is stopped.
const SETTLE: Duration = Duration::from_millis(500);
/// Deadline for a netlab invocation that is expected to fail at once.
const QUICK_EXIT: Duration = Duration::from_secs(20);

const WATCH_BRIDGE: [&str; 7] = [
    "--json", "--iface", BRIDGE, "--iface", VETH_A, "--iface", VETH_B,
];

/// The four points an echo crosses from a to b and back.
fn assert_echo_path(output: &Output, request: &str, reply: &str, expected: u64) -> Result<()> {
    let summary = &output.summary;
    let seen = [
        (
            VETH_A,
            "ingress",
            request,
            count(summary, VETH_A, "ingress", request),
        ),
        (
            VETH_B,
            "egress",
            request,
            count(summary, VETH_B, "egress", request),
        ),
        (
            VETH_B,
            "ingress",
            reply,
            count(summary, VETH_B, "ingress", reply),
        ),
        (
            VETH_A,
            "egress",
            reply,
            count(summary, VETH_A, "egress", reply),
        ),
    ];
    let wrong: Vec<_> = seen.iter().filter(|(.., n)| *n != expected).collect();
    ensure!(
        wrong.is_empty(),
        "expected {expected} at each point, got {wrong:?}\ncounters:\n{}",
        output.counters_text()
    );
    Ok(())
}

fn str_at<'a>(event: &'a Value, pointer: &str) -> Result<&'a str> {
    event
        .pointer(pointer)
        .and_then(Value::as_str)
        .with_context(|| format!("no string at {pointer} in {event}"))
}

fn ip_at(event: &Value, pointer: &str) -> Result<IpAddr> {
    let text = str_at(event, pointer)?;
    text.parse()
        .with_context(|| format!("{pointer} = {text:?} is not an IP address in {event}"))
}

fn u64_at(event: &Value, pointer: &str) -> Result<u64> {
    event
        .pointer(pointer)
        .and_then(Value::as_u64)
        .with_context(|| format!("no integer at {pointer} in {event}"))
}

/// Watches br0, va and vb while a pings b five times over IPv4; returns netlab's output.
/// `during` runs while netlab is still attached, after the pings.
fn watch_ipv4_ping(
    topo: &Topology,
    extra: &[&str],
    during: impl FnOnce(&Watch) -> Result<()>,
) -> Result<Output> {
    let args: Vec<&str> = WATCH_BRIDGE.iter().chain(extra).copied().collect();
    let mut watch = Watch::start(topo.br.name(), &args)?;
    topo.a
        .exec(&format!("ping -c {PINGS} -i 0.2 -w 10 {IP_B}"))?;
    std::thread::sleep(SETTLE);
    during(&watch)?;
    ensure!(
        watch.is_running()?,
        "netlab exited during the test; stderr:\n{}",
        watch.stderr_so_far()
    );
    let output = watch.stop()?;
    ensure!(
        output.status.success(),
        "netlab exited with {} after SIGINT; stderr:\n{}",
        output.status,
        output.stderr
    );
    Ok(output)
}

#[test]
fn ipv4_ping_counts_and_events() -> Result<()> {
    netlab_or_skip!();
    let topo = Topology::new("v4")?;
    let output = watch_ipv4_ping(&topo, &[], |_| Ok(()))?;
    let summary = &output.summary;

    assert_echo_path(&output, "icmp-echo-request", "icmp-echo-reply", PINGS)?;
    ensure!(
        count(summary, VETH_A, "ingress", "arp-request") >= 1
            && count(summary, VETH_B, "ingress", "arp-reply") >= 1,
        "a's ARP request for b (va ingress) and b's reply (vb ingress) were not counted:\n{}",
        output.counters_text()
    );

    let va_index = topo.br_ifindex(VETH_A)?;
    let requests: Vec<&Value> = output
        .events_at(VETH_A, "ingress", "icmp-echo-request")
        .collect();
    ensure!(
        requests.len() as u64 >= PINGS,
        "expected >= {PINGS} echo-request events on va ingress, got {}:\n{}",
        requests.len(),
        output.stdout
    );
    let mut seqs = BTreeSet::new();
    for event in &requests {
        ensure!(
            ip_at(event, "/src/ip")? == IpAddr::V4(IP_A),
            "src.ip: {event}"
        );
        ensure!(
            ip_at(event, "/dst/ip")? == IpAddr::V4(IP_B),
            "dst.ip: {event}"
        );
        ensure!(
            str_at(event, "/src/mac")?.eq_ignore_ascii_case(&format_mac(&MAC_A))
                && str_at(event, "/dst/mac")?.eq_ignore_ascii_case(&format_mac(&MAC_B)),
            "MAC addresses: {event}"
        );
        ensure!(u64_at(event, "/icmp/type")? == 8, "icmp.type: {event}");
        ensure!(
            u64_at(event, "/iface/ifindex")? == va_index,
            "iface.ifindex: {event}"
        );
        ensure!(u64_at(event, "/sample_rate")? == 1, "sample_rate: {event}");
        // 14 Ethernet + 20 IPv4 + 8 ICMP + 56 bytes of ping data.
        ensure!(u64_at(event, "/len")? == 98, "len: {event}");
        let ts = str_at(event, "/ts")?;
        ensure!(
            ts.ends_with('Z') && ts.contains('T'),
            "ts is not RFC 3339 UTC: {event}"
        );
        seqs.insert(u64_at(event, "/icmp/seq")?);
    }
    let expected: BTreeSet<u64> = (1..=PINGS).collect();
    ensure!(
        seqs == expected,
        "icmp.seq values {seqs:?}, expected {expected:?}"
    );

    let arp_for_b = output
        .events
        .iter()
        .filter(|event| event["kind"] == "arp-request")
        .any(|event| {
            ip_at(event, "/arp/target_ip").ok() == Some(IpAddr::V4(IP_B))
                && ip_at(event, "/arp/sender_ip").ok() == Some(IpAddr::V4(IP_A))
        });
    ensure!(
        arp_for_b,
        "no arp-request event from {IP_A} for {IP_B}:\n{}",
        output.stdout
    );
    Ok(())
}

#[test]
fn ipv6_ping_counts_echo_and_ndp() -> Result<()> {
    netlab_or_skip!();
    let topo = Topology::new("v6")?;
    let watch = Watch::start(topo.br.name(), &WATCH_BRIDGE)?;
    topo.a.exec(&format!("ping -6 -c 3 -i 0.2 -w 10 {IP6_B}"))?;
    let output = watch.stop_after(SETTLE)?;

    assert_echo_path(&output, "icmp6-echo-request", "icmp6-echo-reply", 3)?;
    let over_veths = |kind: &str| -> u64 {
        [VETH_A, VETH_B]
            .iter()
            .flat_map(|iface| {
                ["ingress", "egress"].map(|dir| count(&output.summary, iface, dir, kind))
            })
            .sum()
    };
    ensure!(
        over_veths("ndp-neighbor-solicit") >= 1 && over_veths("ndp-neighbor-advert") >= 1,
        "neighbour discovery between a and b was not counted:\n{}",
        output.counters_text()
    );

    let mut ns_targets = Vec::new();
    for event in output
        .events
        .iter()
        .filter(|event| event["kind"] == "ndp-neighbor-solicit")
    {
        ns_targets.push(ip_at(event, "/ndp/target")?);
    }
    ensure!(
        ns_targets.contains(&IpAddr::V6(IP6_B)),
        "no neighbour solicitation event with ndp.target {IP6_B}; targets {ns_targets:?}"
    );
    Ok(())
}

/// Large pings are how people test MTU: fragmented, an ICMPv6 echo carries a Fragment
/// header before its ICMPv6 header. Each datagram is counted once (its first fragment), on
/// every point, as ping's own statistics say; a multicast listener report (Hop-by-Hop, then
/// ICMPv6) is counted as tcpdump sees it.
#[test]
fn fragmented_pings_and_extension_headers_are_counted() -> Result<()> {
    netlab_or_skip!();
    const LARGE: u64 = 3;
    let topo = Topology::new("frag")?;
    // A report of multicast listening: Hop-by-Hop (router alert) + ICMPv6 type 143.
    let reports = netlab_tests::tcpdump::Tcpdump::start(
        Some(topo.br.name()),
        VETH_A,
        "in",
        "ip6[6] == 0 and ip6[40] == 58 and ip6[48] == 143",
    )?;
    // Reports of the namespace's own start may still come while netlab attaches: those
    // between `starting` and `watching` may or may not be counted.
    let starting = std::time::SystemTime::now();
    let watch = Watch::start(topo.br.name(), &WATCH_BRIDGE)?;
    let watching = std::time::SystemTime::now();
    let v6 = topo
        .a
        .exec(&format!("ping -6 -c {LARGE} -s 3000 -i 0.2 -w 10 {IP6_B}"))?;
    let v4 = topo
        .a
        .exec(&format!("ping -c {LARGE} -s 3000 -i 0.2 -w 10 {IP_B}"))?;
    // A new address joins its solicited-node group: the kernel reports it (twice, within
    // a second).
    topo.a.exec(&format!(
        "ip -6 addr add fd99::99/64 dev {CONTAINER_IF} nodad"
    ))?;
    std::thread::sleep(Duration::from_secs(3));
    let stopping = std::time::SystemTime::now();
    let output = watch.stop_after(SETTLE)?;
    let watched = std::time::SystemTime::now();
    let all_reports = reports.stop_after(Duration::ZERO)?;
    // What tcpdump saw while netlab surely watched, and while it may have.
    let report_lines = netlab_tests::tcpdump::between(&all_reports, watching, stopping);
    let maybe_lines = netlab_tests::tcpdump::between(&all_reports, starting, watched);
    for (family, text) in [("IPv6", &v6), ("IPv4", &v4)] {
        ensure!(
            text.contains(&format!("{LARGE} packets transmitted, {LARGE} received")),
            "{family} large ping did not get every reply:\n{text}"
        );
    }
    assert_echo_path(&output, "icmp6-echo-request", "icmp6-echo-reply", LARGE)?;
    assert_echo_path(&output, "icmp-echo-request", "icmp-echo-reply", LARGE)?;
    let requests: Vec<&Value> = output
        .events_at(VETH_A, "ingress", "icmp6-echo-request")
        .collect();
    ensure!(
        requests.len() as u64 == LARGE && requests.iter().all(|e| e.pointer("/icmp/seq").is_some()),
        "expected {LARGE} fragmented echo requests with their sequence numbers on va: {requests:?}"
    );
    let counted = count(&output.summary, VETH_A, "ingress", "icmp6-other");
    ensure!(
        !report_lines.is_empty()
            && report_lines.len() as u64 <= counted
            && counted <= maybe_lines.len() as u64,
        "listener reports: tcpdump saw {} on va ingress while netlab surely watched ({report_lines:?}), {} while it may have ({maybe_lines:?}); netlab counted {counted} icmp6-other\n{}",
        report_lines.len(),
        maybe_lines.len(),
        output.counters_text()
    );
    Ok(())
}

#[test]
fn sampling_keeps_counters_exact() -> Result<()> {
    netlab_or_skip!();
    const RATE: u64 = 4;
    const REQUESTS: u64 = 20;
    let topo = Topology::new("smp")?;
    let args: Vec<&str> = WATCH_BRIDGE
        .iter()
        .copied()
        .chain(["--sample", "4"])
        .collect();
    let watch = Watch::start(topo.br.name(), &args)?;
    topo.a
        .exec(&format!("ping -c {REQUESTS} -i 0.05 -w 10 {IP_B}"))?;
    let output = watch.stop_after(SETTLE)?;

    assert_echo_path(&output, "icmp-echo-request", "icmp-echo-reply", REQUESTS)?;

    let counted = total(&output.summary);
    // Sampled packet events only: drop reports and journeys are not samples.
    let events = output
        .events
        .iter()
        .filter(|e| e.get("direction").is_some())
        .count() as u64;
    let lost = lost_events(&output.summary);
    let cpus = possible_cpus();
    // 1-in-RATE per CPU: each CPU may be up to RATE-1 packets short of its next sample.
    let mut kinds: std::collections::BTreeMap<String, u64> = Default::default();
    for e in &output.events {
        *kinds
            .entry(format!("{} {}", e["kind"], e["direction"]))
            .or_default() += 1;
    }
    ensure!(
        events * RATE <= counted + RATE,
        "{events} events for {counted} counted packets is more than 1 in {RATE} (+1): {kinds:?}"
    );
    ensure!(
        (events + lost + cpus + 1) * RATE >= counted,
        "{events} events (+{lost} lost) for {counted} counted packets on {cpus} CPUs \
         is fewer than 1 in {RATE}"
    );
    for event in output
        .events
        .iter()
        .filter(|e| e.get("direction").is_some())
    {
        ensure!(
            u64_at(event, "/sample_rate")? == RATE,
            "sample_rate: {event}"
        );
    }
    Ok(())
}

#[test]
fn attach_modes_count_alike_and_detach() -> Result<()> {
    netlab_or_skip!();
    for mode in ["tcx", "netlink"] {
        if mode == "tcx" && !kernel_at_least(6, 6)? {
            println!("skipping: --attach tcx needs Linux 6.6 or later");
            continue;
        }
        let topo = Topology::new(&format!("at{mode}"))?;
        let before = BpfSnapshot::take()?;
        let output = watch_ipv4_ping(&topo, &["--attach", mode], |watch| {
            attached_as(&topo, mode, watch)
        })
        .with_context(|| format!("--attach {mode}"))?;
        assert_echo_path(&output, "icmp-echo-request", "icmp-echo-reply", PINGS)
            .with_context(|| format!("--attach {mode}"))?;
        assert_detached(topo.br.name(), &[BRIDGE, VETH_A, VETH_B], &before)
            .with_context(|| format!("after --attach {mode}"))?;
    }
    Ok(())
}

/// Other TCX programs on the same hooks as netlab's, one in front of them and one behind,
/// both passing every packet on ("next"), as a host's other tools' programs do: netlab's
/// still run exactly once per packet and count exactly what ping says it sent and got back.
#[test]
fn programs_before_and_after_netlabs_leave_counts_exact() -> Result<()> {
    netlab_or_skip!();
    if !kernel_at_least(6, 6)? {
        println!("skipping: TCX needs Linux 6.6 or later");
        return Ok(());
    }
    let topo = Topology::new("order")?;
    let before = BpfSnapshot::take()?;
    let mut watch = Watch::start(topo.br.name(), &WATCH_BRIDGE)?;
    let ifindexes = [topo.br_ifindex(VETH_A)?, topo.br_ifindex(VETH_B)?];
    let ns = topo.br.name().to_owned();
    let (others, netlab_ids) = in_netns(topo.br.name(), move || {
        let mut first = EmptyTc::load()?;
        let mut last = EmptyTc::load()?;
        let mut netlab_ids = Vec::new();
        for ifindex in ifindexes {
            let ifindex = u32::try_from(ifindex)?;
            for hook in Hook::BOTH {
                let alone = tcx::prog_ids(ifindex, hook)?;
                ensure!(
                    alone.len() == 1,
                    "tcx {hook} of ifindex {ifindex} in {ns} runs {alone:?}, expected netlab's alone"
                );
                first.attach_at(ifindex, hook, Position::First)?;
                last.attach_at(ifindex, hook, Position::Last)?;
                let all = tcx::prog_ids(ifindex, hook)?;
                ensure!(
                    all.len() == 3 && all[1] == alone[0] && all[0] != all[1] && all[2] != all[1],
                    "tcx {hook} of ifindex {ifindex}: {all:?}, expected another program on each \
                     side of netlab's {}",
                    alone[0]
                );
                netlab_ids.push(alone[0]);
            }
        }
        Ok(((first, last), netlab_ids))
    })?;
    let out = topo
        .a
        .exec(&format!("ping -c {PINGS} -i 0.2 -w 10 {IP_B}"))?;
    std::thread::sleep(SETTLE);
    drop(others);
    ensure!(
        watch.is_running()?,
        "netlab exited during the test; stderr:\n{}",
        watch.stderr_so_far()
    );
    let output = watch.stop()?;
    let pings =
        netlab_tests::host::ping::totals(&out).with_context(|| format!("ping said {out:?}"))?;
    ensure!(
        pings.transmitted == PINGS && pings.received == PINGS,
        "ping lost echoes with the other programs attached: {out}"
    );
    assert_echo_path(&output, "icmp-echo-request", "icmp-echo-reply", PINGS)
        .with_context(|| format!("netlab's programs {netlab_ids:?} between two others"))?;
    assert_detached(topo.br.name(), &[BRIDGE, VETH_A, VETH_B], &before)
}

/// While netlab runs: `tcx` uses BPF links and no tc filters, `netlink` uses clsact filters.
fn attached_as(topo: &Topology, mode: &str, watch: &Watch) -> Result<()> {
    let ifaces = [BRIDGE, VETH_A, VETH_B];
    for iface in ifaces {
        for hook in ["ingress", "egress"] {
            let filters = topo
                .br
                .exec(&format!("tc filter show dev {iface} {hook}"))?;
            match mode {
                "tcx" if !filters.trim().is_empty() => {
                    bail!("tc {hook} filter on {iface} with tcx:\n{filters}")
                }
                "netlink" if filters.trim().is_empty() => {
                    bail!("no tc {hook} filter on {iface} with netlink")
                }
                _ => {}
            }
        }
    }
    if mode == "tcx" {
        let links = netlab_links_of(watch.pid())?;
        let tcx = links.iter().filter(|link| link.link_type == "tcx").count();
        ensure!(
            tcx >= 2 * ifaces.len(),
            "expected a tcx link per interface and direction, netlab holds {links:?}"
        );
    }
    Ok(())
}

#[test]
fn malformed_frames_are_counted_not_misread() -> Result<()> {
    netlab_or_skip!();
    let topo = Topology::new("mal")?;
    let watch = Watch::start(topo.br.name(), &["--json", "--iface", VETH_A])?;

    // Addresses inside the topology's subnet; 10.99.0.77/.78 belong to nobody, so nothing answers.
    let stray = Ipv4Addr::new(10, 99, 0, 77);
    let nobody = Ipv4Addr::new(10, 99, 0, 78);
    let sent = [
        frames::truncated_arp(MAC_A, IP_A, IP_B),
        frames::ipv4_ihl3_icmp(MAC_A, MAC_B, IP_A, IP_B),
        frames::ipv4_truncated_icmp(MAC_A, MAC_B, IP_A, IP_B),
        frames::ipv4_icmp_non_first_fragment(MAC_A, MAC_B, IP_A, IP_B),
        frames::vlan_arp_request(MAC_A, stray, nobody),
    ];
    send_raw_frames(topo.a.name(), CONTAINER_IF, &sent)?;
    let output = watch.stop_after(SETTLE)?;

    let summary = &output.summary;
    ensure!(
        count(summary, VETH_A, "ingress", "malformed") == 3,
        "expected 3 malformed (short ARP, IHL 3, short ICMP) on va ingress:\n{}",
        output.counters_text()
    );
    // None of the IPv4 frames may be read as ICMP: IHL 3 and the fragment carry an echo
    // request where a careless parser looks, the truncated one starts like one.
    for kind in [
        "icmp-echo-request",
        "icmp-echo-reply",
        "icmp-unreachable",
        "icmp-time-exceeded",
        "icmp-other",
    ] {
        for direction in ["ingress", "egress"] {
            let n = count(summary, VETH_A, direction, kind);
            ensure!(
                n == 0,
                "{kind} on va {direction} is {n}:\n{}",
                output.counters_text()
            );
        }
    }
    ensure!(
        count(summary, VETH_A, "ingress", "arp-request") >= 1,
        "the VLAN-tagged ARP request was not counted as arp-request:\n{}",
        output.counters_text()
    );
    let vlan_arp_seen = output
        .events_at(VETH_A, "ingress", "arp-request")
        .any(|event| ip_at(event, "/arp/sender_ip").ok() == Some(IpAddr::V4(stray)));
    ensure!(
        vlan_arp_seen,
        "no arp-request event from {stray} (the VLAN frame):\n{}",
        output.stdout
    );
    Ok(())
}

/// Runs netlab with `args` inside `ns` (optionally through `setpriv` args), expecting it to exit.
fn run_netlab(
    ns: &Netns,
    prefix: &[&str],
    bin: &Path,
    args: &[&str],
) -> Result<std::process::Output> {
    let mut command = match prefix.split_first() {
        Some((program, rest)) => {
            let mut command = in_ns(ns.name(), program);
            command.args(rest).arg(bin);
            command
        }
        None => in_ns(ns.name(), bin),
    };
    command.args(args);
    run_with_timeout(command, QUICK_EXIT)
}

fn stderr_lines(output: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// A missing interface, a bad `--sample` and an unprivileged user each fail with one line and
/// leave nothing attached; and the line a good run starts with counts its one interface
/// as one (`watching 1 interface`).
#[test]
fn bad_input_fails_cleanly() -> Result<()> {
    let bin = netlab_or_skip!();
    let ns = Netns::unique("bad")?;
    let before = BpfSnapshot::take()?;

    let missing = "nlt-nosuch0";
    let output = run_netlab(&ns, &[], &bin, &["watch", "--iface", missing])?;
    let lines = stderr_lines(&output);
    ensure!(
        !output.status.success(),
        "--iface {missing} exited {}",
        output.status
    );
    ensure!(
        lines.len() == 1 && lines[0].contains(missing),
        "expected one stderr line naming {missing}, got {lines:?}"
    );
    assert_detached(ns.name(), &["lo"], &before)?;

    let output = run_netlab(&ns, &[], &bin, &["watch", "--sample", "0", "--iface", "lo"])?;
    ensure!(
        !output.status.success(),
        "--sample 0 exited {}; stderr: {:?}",
        output.status,
        stderr_lines(&output)
    );
    assert_detached(ns.name(), &["lo"], &before)?;

    let output = run_netlab(
        &ns,
        &[],
        &bin,
        &["watch", "--iface", "lo", "--duration", "0.5"],
    )?;
    let lines = stderr_lines(&output);
    ensure!(
        output.status.success(),
        "--iface lo exited {}; stderr: {lines:?}",
        output.status
    );
    ensure!(
        lines.iter().any(|l| l.contains(" watching 1 interface (")),
        "expected `watching 1 interface (…)` on stderr, got {lines:?}"
    );
    assert_detached(ns.name(), &["lo"], &before)?;

    let public = PublicCopy::new(&bin)?;
    let unprivileged = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
    ];
    let output = run_netlab(&ns, &unprivileged, &public.bin, &["watch", "--iface", "lo"])?;
    let lines = stderr_lines(&output);
    ensure!(
        !output.status.success(),
        "unprivileged run exited {}",
        output.status
    );
    ensure!(
        lines.len() == 1 && lines[0].contains("CAP_BPF"),
        "expected one stderr line mentioning CAP_BPF, got {lines:?}"
    );
    assert_detached(ns.name(), &["lo"], &before)?;
    Ok(())
}

#[test]
fn count_option_stops_after_n_events() -> Result<()> {
    netlab_or_skip!();
    let topo = Topology::new("cnt")?;
    let before = BpfSnapshot::take()?;
    let watch = Watch::start(
        topo.br.name(),
        &["--json", "--count", "3", "--iface", VETH_A],
    )?;
    let mut ping = in_ns(topo.a.name(), "ping");
    ping.args(["-c", "20", "-i", "0.2", "-w", "10"])
        .arg(IP_B.to_string());
    let pinger = std::thread::spawn(move || run_with_timeout(ping, Duration::from_secs(20)));

    let output = watch.wait(Duration::from_secs(15));
    // The ping is bounded by its own deadline; wait for it before judging.
    let ping_result = pinger
        .join()
        .map_err(|_| anyhow::anyhow!("ping thread panicked"))?;
    let output = output.context("netlab --count 3 did not exit by itself")?;
    let ping_output = ping_result?;
    ensure!(ping_output.status.success(), "ping failed: {ping_output:?}");

    ensure!(
        output.status.success(),
        "exit {}: {}",
        output.status,
        output.stderr
    );
    let lines: Vec<&str> = output
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    ensure!(
        lines.len() == 4 && output.events.len() == 3,
        "expected 3 event lines and a summary, got:\n{}",
        output.stdout
    );
    ensure!(
        total(&output.summary) >= 3,
        "summary counts fewer packets than the 3 events:\n{}",
        output.counters_text()
    );
    assert_detached(topo.br.name(), &[VETH_A], &before)?;
    Ok(())
}

/// The `drops` column of the line of `/proc/net/<table>` (in `ns`) whose local port is
/// `port`, or of its only socket.
fn socket_drops(ns: &Netns, table: &str, port: Option<u16>) -> Result<u64> {
    let text = ns.exec(&format!("cat /proc/net/{table}"))?;
    let want = port.map(|p| format!(":{p:04X}"));
    text.lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| {
            want.as_ref()
                .is_none_or(|w| f.get(1).is_some_and(|local| local.ends_with(w.as_str())))
        })
        .and_then(|f| f.last()?.parse().ok())
        .with_context(|| format!("no socket on port {port:?} in /proc/net/{table}:\n{text}"))
}

/// Runs `f` on a thread of its own in network namespace `ns`: the sockets it makes belong
/// to that namespace, wherever they are used later.
fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let name = ns.to_owned();
    std::thread::spawn(move || {
        netlab_tests::host::netns::enter(&name)?;
        f()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the thread in {ns:?} panicked"))?
}

/// Gives `fd` the smallest receive buffer the kernel allows.
fn smallest_rcvbuf(fd: BorrowedFd<'_>) -> Result<()> {
    let zero: libc::c_int = 0;
    // SAFETY: the option value is a c_int that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&zero as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    ensure!(rc == 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
    Ok(())
}

/// A veth whose other end is down has no carrier, and its queue drops what it is given
/// to send. netlab's tc egress program sees each ARP request leave (it runs before the
/// queue), and its drop report names the interface, the kernel's reason (`QDISC_DROP`)
/// and what that means. The witness is the interface's own TX dropped counter.
#[test]
fn a_drop_by_the_senders_queue_is_reported_and_explained() -> Result<()> {
    const SENDER: &str = "q1";
    const REQUESTS: u64 = 3;
    netlab_or_skip!();
    let ns = Netns::unique("qdrop")?;
    ns.disable_ipv6()?;
    // q0 stays down, so q1 never gets a carrier.
    ns.exec(&format!(
        "ip link add q0 type veth peer name {SENDER} && ip link set {SENDER} up"
    ))?;
    let state = ns.operstate(SENDER)?;
    ensure!(
        state == "LOWERLAYERDOWN",
        "{SENDER} is {state}, not without carrier"
    );
    let watch = Watch::start(ns.name(), &["--json", "--iface", SENDER])?;
    let tx_dropped = |ns: &Netns| -> Result<u64> {
        let link = ns.link(SENDER)?;
        link["stats64"]["tx"]["dropped"]
            .as_u64()
            .with_context(|| format!("no tx dropped counter in {link}"))
    };
    let before = tx_dropped(&ns)?;
    let request = frames::ethernet(
        [0xff; 6],
        MAC_A,
        frames::ETH_P_ARP,
        &frames::arp_request(MAC_A, IP_A, IP_B),
    );
    let requests = vec![request; REQUESTS as usize];
    send_raw_frames(ns.name(), SENDER, &requests)?;
    let output = watch.stop_after(SETTLE)?;
    let dropped = tx_dropped(&ns)? - before;
    ensure!(
        dropped == REQUESTS,
        "{SENDER}'s own counter says {dropped} dropped of {REQUESTS} sent: the test proves nothing"
    );
    let drops: Vec<&Value> = output
        .events
        .iter()
        .filter(|e| e["kind"] == "drop" && e["iface"]["name"] == SENDER)
        .collect();
    ensure!(
        drops.len() as u64 == REQUESTS,
        "{dropped} dropped by {SENDER}'s queue, netlab reported {} drops there: {drops:?}",
        drops.len()
    );
    for d in &drops {
        ensure!(
            d["packet"] == "arp-request" && d["drop"]["reason"] == "QDISC_DROP",
            "not an ARP request dropped by the queue: {d}"
        );
        let meaning = d["drop"]["meaning"].as_str().unwrap_or_default();
        ensure!(
            meaning.starts_with(&format!("{SENDER}'s transmit queue dropped it"))
                && meaning.contains("link is down or not up yet"),
            "the drop does not say what it means: {d}"
        );
    }
    let left = count(&output.summary, SENDER, "egress", "arp-request");
    ensure!(
        left == REQUESTS,
        "netlab counted {left} ARP requests leaving {SENDER}, of {REQUESTS} sent"
    );
    Ok(())
}

/// A packet its socket has no room for is dropped there, and the kernel says which socket
/// (Linux 6.12 on): the drop program leaves TCP and UDP at that point, before reading the
/// packet. An ICMP packet dropped at its socket must still be reported. In b, a ping socket
/// (ICMP datagram socket) and a UDP socket, each with the smallest receive buffer, are
/// never read: b's echo requests to a get replies it has no room for, and a's datagrams to
/// b find no room either. Witnesses: each socket's own drop counter (`/proc/net/icmp`,
/// `/proc/net/udp`) and the tracepoint's record of the replies (reason and socket).
#[test]
fn a_socket_without_room_drops_icmp_reported_and_udp_not() -> Result<()> {
    netlab_or_skip!();
    const UDP_PORT: u16 = 5999;
    const ECHOES: u16 = 6;
    const DATAGRAMS: u32 = 20;
    let topo = Topology::new("sockdrop")?;
    // Ping sockets are open to the groups of this range (none by default), per namespace.
    topo.b.exec("sysctl -qw net.ipv4.ping_group_range='0 0'")?;
    // Neither socket is ever read.
    let ping = in_netns(topo.b.name(), || {
        // SAFETY: socket(2) with constant arguments; the new fd is owned below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP) };
        ensure!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` is a new descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        smallest_rcvbuf(fd.as_fd())?;
        Ok(fd)
    })?;
    let _udp = in_netns(topo.b.name(), || {
        let s = std::net::UdpSocket::bind((IP_B, UDP_PORT))?;
        smallest_rcvbuf(s.as_fd())?;
        Ok(s)
    })?;
    let watch = Watch::start(topo.b.name(), &["--json", "--iface", CONTAINER_IF])?;
    for seq in 0..ECHOES {
        let [hi, lo] = seq.to_be_bytes();
        // Type 8 (echo request), code 0; the kernel fills the checksum and identifier.
        let mut echo = vec![8u8, 0, 0, 0, 0, 0, hi, lo];
        echo.extend_from_slice(&[0x5a; 56]);
        // SAFETY: a zeroed sockaddr_in is valid; the fields are set below.
        let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from(IP_A).to_be();
        // SAFETY: `echo` and `sa` outlive the call, their lengths as passed.
        let sent = unsafe {
            libc::sendto(
                ping.as_raw_fd(),
                echo.as_ptr().cast(),
                echo.len(),
                0,
                (&sa as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        ensure!(sent >= 0, "sendto: {}", std::io::Error::last_os_error());
        std::thread::sleep(Duration::from_millis(50));
    }
    in_netns(topo.a.name(), || {
        let s = std::net::UdpSocket::bind((IP_A, 0))?;
        for _ in 0..DATAGRAMS {
            s.send_to(b"0123456789", (IP_B, UDP_PORT))?;
        }
        Ok(())
    })?;
    std::thread::sleep(Duration::from_millis(1500));
    let output = watch.stop()?;
    ensure!(
        output.status.success(),
        "netlab exited with {}: {}",
        output.status,
        output.stderr
    );
    let icmp_drops = socket_drops(&topo.b, "icmp", None)?;
    let udp_drops = socket_drops(&topo.b, "udp", Some(UDP_PORT))?;
    let drops: Vec<&Value> = output
        .events
        .iter()
        .filter(|e| e["kind"] == "drop")
        .collect();
    let at_socket: Vec<&&Value> = drops
        .iter()
        .filter(|e| e["drop"]["reason"] == "SOCKET_RCVBUFF" && e["packet"] == "icmp-echo-reply")
        .collect();
    println!(
        "ping socket dropped {icmp_drops}, UDP socket {udp_drops}; netlab reported {} echo replies dropped at a socket, {} drops in all",
        at_socket.len(),
        drops.len()
    );
    ensure!(
        icmp_drops >= 1 && udp_drops >= 1,
        "the sockets dropped nothing (ping {icmp_drops}, UDP {udp_drops}): the test proves nothing"
    );
    ensure!(
        at_socket.len() as u64 == icmp_drops,
        "the ping socket dropped {icmp_drops} echo replies, netlab reported {}:\n{}",
        at_socket.len(),
        output.stdout
    );
    ensure!(
        drops.len() == at_socket.len(),
        "drops other than the echo replies were reported (UDP is never ours):\n{}",
        output.stdout
    );
    Ok(())
}

//! Docker Swarm hosts, on a two-node Swarm of the test's own (`netlab_tests::swarm`: two
//! engines in two network namespaces of this machine, each with its own /run and bpffs):
//! `cargo test -p netlab-tests --test swarm -- --test-threads=1` (root, the lab's images,
//! run by `cargo xtask test`).
//!
//! netlab runs inside node 1 (its network, mount and UTS namespaces), as it would on that
//! host, and talks to node 1's engine.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use netlab_tests::daemon::{get_json, EventStream};
use netlab_tests::docker::{BUSYBOX_IMAGE, NO_DAEMON};
use netlab_tests::docker_or_skip;
use netlab_tests::host::cmd::run;
use netlab_tests::host::iptables::rule_counter_in;
use netlab_tests::host::netns::unique_name;
use netlab_tests::host::ping::totals;
use netlab_tests::host::process::Background;
use netlab_tests::swarm::{Swarm, NODE_ADDRS};
use netlab_tests::tcpdump::Tcpdump;
use netlab_tests::watch::{parse_output, Output};
use serde_json::Value;

/// How long netlab's daemon on node 1 may take to watch.
const DAEMON_READY: Duration = Duration::from_secs(30);

/// A container on an overlay network also has a leg on docker_gwbridge, which its own
/// inspect does not list. netlab must label that leg as the container's, Docker's own (a
/// `container-veth` on `docker_gwbridge`), and call nothing on the node hand-made.
#[test]
fn an_overlay_containers_gateway_leg_is_dockers() -> Result<()> {
    let bin = docker_or_skip!();
    let swarm = Swarm::create("ovl")?;
    let node = swarm.manager();
    node.load_image(BUSYBOX_IMAGE)?;
    let net = unique_name("ovl-net");
    node.docker(&["network", "create", "-d", "overlay", "--attachable", &net])?;
    let name = unique_name("ovl-a");
    node.sleeper(&name, &net)?;

    let topo = topology_on(node, &bin)?;
    let observed = topo["observed"]
        .as_array()
        .context("no observed interfaces")?;
    let hand_made: Vec<&Value> = observed
        .iter()
        .filter(|o| o["role"] == "manual-veth")
        .collect();
    anyhow::ensure!(
        hand_made.is_empty(),
        "interfaces called hand-made on a Swarm node where nobody made one: {hand_made:#?}"
    );
    let leg = observed.iter().find(|o| {
        o["role"] == "container-veth" && o["container"] == name && o["network"] == "docker_gwbridge"
    });
    anyhow::ensure!(
        leg.is_some(),
        "no docker_gwbridge leg labelled as {name}'s: {observed:#?}"
    );
    println!(
        "{name}'s leg on docker_gwbridge: {}",
        leg.map(|l| l["name"].to_string()).unwrap_or_default()
    );
    // Every leg of Docker's own namespaces is said as what it is: none is a bare veth.
    let bare: Vec<&Value> = observed.iter().filter(|o| o["role"] == "veth").collect();
    anyhow::ensure!(
        bare.is_empty(),
        "veths on a Swarm node said as nothing more: {bare:#?}"
    );
    let mesh = observed
        .iter()
        .find(|o| o["role"] == "ingress-leg" && o["network"] == "docker_gwbridge");
    let lb = observed
        .iter()
        .find(|o| o["role"] == "load-balancer-leg" && o["network"] == net.as_str());
    let (Some(mesh), Some(lb)) = (mesh, lb) else {
        anyhow::bail!("no routing mesh leg on docker_gwbridge or no load balancer leg of {net}: {observed:#?}");
    };
    // Witness: the other ends, as `ip` sees them inside ingress_sbox and lb_<id>.
    let sandbox = lb["sandbox"].as_str().context("the leg's sandbox")?;
    let dir = std::path::Path::new(sandbox)
        .parent()
        .context("the sandboxes' directory")?;
    let id = node.docker(&["network", "inspect", "--format", "{{.Id}}", &net])?;
    let peer_of = |file: &str, iface: &str| -> Result<u64> {
        let mut ip = node.enter()?;
        ip.arg("nsenter")
            .arg(format!("--net={}", dir.join(file).display()))
            .args(["ip", "-o", "link", "show", iface]);
        let line = run(&mut ip)?;
        // `12: eth0@if11: <...`
        line.split_once("@if")
            .and_then(|(_, rest)| rest.split(':').next())
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("{iface} in {file}: {line}"))
    };
    let lb_file = format!("lb_{}", &id.trim()[..9]);
    anyhow::ensure!(
        peer_of(&lb_file, lb["peer"].as_str().unwrap_or("eth0"))? == lb["sandbox_ifindex"]
            && peer_of("ingress_sbox", mesh["peer"].as_str().unwrap_or("eth1"))? == mesh["ifindex"],
        "the load balancer's leg {lb} or the routing mesh's {mesh} is not where ip says"
    );
    println!(
        "{net}'s load balancer leg {} (to {lb_file} {}), the routing mesh's leg {} on \
         docker_gwbridge (to ingress_sbox {})",
        lb["name"], lb["peer"], mesh["name"], mesh["peer"]
    );

    // The overlay is listed, with its VXLAN id and the container with Docker's address.
    let ip = node.ip_on(&name, &net)?;
    let vni = node.docker(&[
        "network",
        "inspect",
        "--format",
        "{{index .Options \"com.docker.network.driver.overlay.vxlanid_list\"}}",
        &net,
    ])?;
    let overlay = topo["overlays"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["name"] == net.as_str())
        .with_context(|| format!("overlay {net} not listed: {}", topo["overlays"]))?;
    let vnis: Vec<String> = overlay["vnis"]
        .as_array()
        .into_iter()
        .flatten()
        .map(Value::to_string)
        .collect();
    let member = overlay["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["name"] == name && c["ips"][0] == ip);
    anyhow::ensure!(
        !vnis.is_empty() && vnis.join(",") == vni.trim() && member,
        "overlay {net} (VNI {}, {name} at {}) listed as {overlay:#}",
        vni.trim(),
        ip
    );
    println!("overlay {net}: VNI {}, {name} at {}", vni.trim(), ip);

    // The map a daemon on node 1 serves lists the overlay with the container too.
    let (daemon, socket) = daemon_on(node, &bin)?;
    let map = get_json(&socket, "/v1/map")?;
    let stopped = daemon.stop(libc::SIGTERM)?;
    anyhow::ensure!(
        stopped.status.success(),
        "the daemon on node 1 exited {}",
        stopped.status
    );
    let listed = map["overlays"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["name"] == net.as_str());
    anyhow::ensure!(
        listed.is_some_and(|o| {
            o["containers"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["name"] == name && c["ips"][0] == ip))
        }),
        "the map lists overlays {}",
        map["overlays"]
    );

    node.docker(&["rm", "-f", &name])?;
    node.docker(&["network", "rm", &net])?;
    drop(swarm);
    Ok(())
}

/// An overlay made while netlab runs is followed: a daemon on node 1, started before the
/// overlay exists, says each interface of the overlay's sandbox observed once a container
/// joins it (its bridge, its VXLAN device, the container's leg), counts the container's
/// pings on its leg as ping says, and says them gone once the container leaves.
#[test]
fn an_overlay_made_while_netlab_runs_is_followed() -> Result<()> {
    let bin = docker_or_skip!();
    let swarm = Swarm::create("fol")?;
    let [n1, n2] = &swarm.nodes;
    for n in [n1, n2] {
        n.load_image(BUSYBOX_IMAGE)?;
    }
    let (daemon, socket) = daemon_on(n1, &bin)?;
    let stream = EventStream::open(&socket, "/v1/events?kind=topology")?;

    let net = unique_name("fol-net");
    n1.docker(&["network", "create", "-d", "overlay", "--attachable", &net])?;
    let (a, b) = (unique_name("fol-a"), unique_name("fol-b"));
    n1.sleeper(&a, &net)?;
    n2.sleeper(&b, &net)?;
    let b_ip = n2.ip_on(&b, &net)?;
    let vni = overlay_vni(n1, &net)?;
    let of_net = |e: &Value, kind: &str, role: &str| {
        e["kind"] == kind && e["iface"]["role"] == role && e["iface"]["network"] == net.as_str()
    };
    let leg_of_a = |e: &Value, kind: &str| {
        of_net(e, kind, "container-veth") && e["iface"]["container"] == a.as_str()
    };
    let events = stream.wait_for(Duration::from_secs(30), |es| {
        ["overlay-bridge", "overlay-vxlan"]
            .iter()
            .all(|r| es.iter().any(|e| of_net(e, "iface-observed", r)))
            && es.iter().any(|e| leg_of_a(e, "iface-observed"))
    })?;
    let leg = events
        .iter()
        .find(|e| leg_of_a(e, "iface-observed"))
        .map(|e| e["iface"].clone())
        .with_context(|| format!("{a}'s leg in {net}'s sandbox not said observed: {events:#?}"))?;
    anyhow::ensure!(
        leg["vni"] == vni
            && ["overlay-bridge", "overlay-vxlan"]
                .iter()
                .all(|r| events.iter().any(|e| of_net(e, "iface-observed", r))),
        "{net} (VNI {vni}) followed as: {events:#?}"
    );

    let (ping, stats) = ping_from(n1, &a, &b_ip, 4)?;
    let counters = get_json(&socket, "/v1/counters")?;
    let count = |dir: &str, kind: &str| -> u64 {
        counters["counters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| {
                c["ifindex"] == leg["ifindex"] && c["direction"] == dir && c["kind"] == kind
            })
            .filter_map(|c| c["packets"].as_u64())
            .sum()
    };
    let (requests, replies) = (
        count("ingress", "icmp-echo-request"),
        count("egress", "icmp-echo-reply"),
    );
    anyhow::ensure!(
        stats.transmitted == 4
            && stats.received == 4
            && requests == stats.transmitted
            && replies == stats.received,
        "{a}'s leg {} counted {requests} requests and {replies} replies; ping: {ping}",
        leg["name"]
    );

    n1.docker(&["rm", "-f", &a])?;
    let events = stream.wait_for(Duration::from_secs(30), |es| {
        es.iter().any(|e| leg_of_a(e, "iface-gone"))
    })?;
    anyhow::ensure!(
        events.iter().any(|e| leg_of_a(e, "iface-gone")),
        "{a}'s leg not said gone after {a} was removed: {events:#?}"
    );
    drop(stream);
    let stopped = daemon.stop(libc::SIGTERM)?;
    anyhow::ensure!(
        stopped.status.success(),
        "the daemon on node 1 exited {}",
        stopped.status
    );
    println!(
        "{net} (VNI {vni}) made while netlab ran: {a}'s leg {} observed, {requests}/{replies} \
         requests/replies counted there, ping {}/{}; gone with {a}",
        leg["name"], stats.transmitted, stats.received
    );
    n2.docker(&["rm", "-f", &b])?;
    n1.docker(&["network", "rm", &net])?;
    drop(swarm);
    Ok(())
}

/// A ping between containers on two nodes crosses node 1's link inside VXLAN. netlab on
/// node 1 observes the link as the Swarm's uplink, reads the ICMP inside each VXLAN
/// packet, labels it with the overlay, its VNI and the local container, and counts it by
/// VNI. Witnesses: ping's own statistics and tcpdump on the same link.
#[test]
fn overlay_pings_between_nodes_are_seen_inside_vxlan() -> Result<()> {
    let bin = docker_or_skip!();
    let pair = OverlayPair::create("vxl")?;
    let n1 = &pair.swarm.nodes[0];
    let net = &pair.net;
    let (a, b, b_ip) = (&pair.a, &pair.b, &pair.b_ip);
    let vni = overlay_vni(n1, net)?;
    // The overlay's bridge in node 1's sandbox, as the topology lists it: its index there
    // is one node 1's own namespace has too (its uplink's or another's), so it goes by a
    // key of its own.
    let br0 = sandbox_bridge(n1, &bin, net)?;
    let sandbox = br0["sandbox"].as_str().context("br0's sandbox")?.to_owned();
    let inside = br0["sandbox_ifindex"].as_u64().context("br0's index")?;
    anyhow::ensure!(
        br0["ifindex"].as_u64().is_some_and(|k| k >= 1 << 31) && br0["vni"] == vni,
        "{net}'s br0 listed as {br0:#}"
    );

    let watch = watch_on(
        n1,
        &bin,
        &["--kind", "icmp", "--kind", "arp", "--kind", "journey"],
    )?;
    // Inner IPv4 protocol and ICMP type, behind UDP (8), VXLAN (8) and Ethernet (14).
    let dump = Tcpdump::start(
        Some(n1.netns.name()),
        "link0",
        "inout",
        "udp port 4789 and udp[39] = 1",
    )?;
    // The container's ARP requests reach the bridge itself (broadcasts go up it too).
    let mut on_br0 = n1.enter()?;
    on_br0
        .arg("nsenter")
        .arg(format!("--net={sandbox}"))
        .arg("tcpdump");
    let br0_dump = Tcpdump::start_with(on_br0, "br0", "in", "arp")?;
    // Forget b's address in a, so that the first ping asks for it.
    let pid = n1.docker(&["inspect", "--format", "{{.State.Pid}}", a])?;
    run(Command::new("nsenter").args(["-t", pid.trim(), "-n", "ip", "neigh", "flush", "all"]))?;
    let sent = 5;
    let (ping, stats) = ping_from(n1, a, b_ip, sent)?;
    let seen = dump.stop_after(Duration::from_secs(1))?;
    let br0_seen = br0_dump.stop_after(Duration::ZERO)?;
    let out = parse_output_of(watch.stop(libc::SIGINT)?)?;

    // br0: netlab's events and exact counters under br0's key, against tcpdump's. Docker
    // announces a container's addresses after it starts (ARP requests for the sender's own
    // address, a second apart), at times the test does not choose: one may come before
    // tcpdump listens, after netlab did. The witness covers the other requests, all asked
    // while it listened; netlab's own events (every ARP request is one, at --sample 1)
    // account for the announcements in its counter.
    let br0_arp: Vec<&Value> = out
        .events
        .iter()
        .filter(|e| {
            e["iface"]["role"] == "overlay-bridge"
                && e["iface"]["network"] == net.as_str()
                && e["iface"]["name"] == "br0"
                && e["direction"] == "ingress"
                && e["kind"] == "arp-request"
        })
        .collect();
    let announces = |e: &Value| e["arp"]["sender_ip"] == e["arp"]["target_ip"];
    let br0_requests = br0_arp
        .iter()
        .filter(|e| e["arp"]["target_ip"] == b_ip.as_str() && !announces(e))
        .count();
    let br0_announced = br0_arp.iter().filter(|e| announces(e)).count();
    let br0_counted: u64 = out.summary["counters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["ifindex"] == br0["ifindex"]
                && c["direction"] == "ingress"
                && c["kind"] == "arp-request"
        })
        .filter_map(|c| c["packets"].as_u64())
        .sum();
    // `ARP, Request who-has 10.0.1.4 tell 10.0.1.2, length 28`: who is asked, who asks.
    let asked = |l: &str| -> Option<(String, String)> {
        let (_, rest) = l.split_once("Request who-has ")?;
        let mut words = rest.split_whitespace();
        let target = words.next()?.to_owned();
        (words.next()? == "tell").then_some(())?;
        let sender = words.next()?.trim_end_matches(',').to_owned();
        Some((target, sender))
    };
    let br0_asked: Vec<(String, String)> = br0_seen
        .iter()
        .filter_map(|l| asked(l))
        .filter(|(target, sender)| target != sender)
        .collect();
    let br0_witness = br0_asked.iter().filter(|(t, _)| t == b_ip).count();
    anyhow::ensure!(
        br0_witness >= 1
            && br0_requests == br0_witness
            && br0_counted == (br0_asked.len() + br0_announced) as u64,
        "on {net}'s br0 (index {inside} in {sandbox}): {br0_requests} ARP request events for \
         {b_ip} and {br0_announced} announcements, {br0_counted} counted, tcpdump saw:\n{}\n\
         events:\n{}",
        br0_seen.join("\n"),
        out.stdout
    );
    println!(
        "{net}'s br0 (index {inside} in its sandbox, key {}): {br0_requests} ARP requests for \
         {b_ip} (tcpdump {br0_witness}), {br0_announced} announcements, {br0_counted} counted \
         (tcpdump {} requests but announcements)",
        br0["ifindex"],
        br0_asked.len()
    );

    let witness = |dir: &str| seen.iter().filter(|l| l.contains(dir)).count() as u64;
    // `IP 10.231.9.1.54321 > 10.231.9.2.4789: UDP, length 106`: by outer source.
    let (w_out, w_in) = (
        witness(&format!("IP {}.", NODE_ADDRS[0])),
        witness(&format!("IP {}.", NODE_ADDRS[1])),
    );
    let inside = |dir: &str, kind: &str| -> Vec<&Value> {
        out.events
            .iter()
            .filter(|e| {
                e["iface"]["name"] == "link0"
                    && e["iface"]["role"] == "swarm-uplink"
                    && e["direction"] == dir
                    && e["kind"] == kind
                    && e["vxlan"]["vni"] == vni
                    && e["vxlan"]["network"] == net.as_str()
            })
            .collect()
    };
    let requests = inside("egress", "icmp-echo-request");
    let replies = inside("ingress", "icmp-echo-reply");
    anyhow::ensure!(
        stats.transmitted == sent && stats.received == sent,
        "ping {a} → {b} ({b_ip}) over {net}: {ping}"
    );
    anyhow::ensure!(
        requests.len() as u64 == stats.transmitted
            && replies.len() as u64 == stats.received
            && w_out == stats.transmitted
            && w_in == stats.received,
        "netlab saw {} requests and {} replies inside VXLAN {vni}, tcpdump {w_out} and {w_in}, \
         ping {stats:?}; tcpdump:\n{}\nevents:\n{}",
        requests.len(),
        replies.len(),
        seen.join("\n"),
        out.stdout
    );
    let r = requests[0];
    anyhow::ensure!(
        r["src"]["container"] == a.as_str()
            && r["src"]["network"] == net.as_str()
            && r["dst"]["ip"] == b_ip.as_str()
            && r["dst"]["network"] == net.as_str()
            && r["vxlan"]["outer_src"] == NODE_ADDRS[0]
            && r["vxlan"]["outer_dst"] == NODE_ADDRS[1],
        "an echo request inside VXLAN labelled {r:#}"
    );
    // Inside node 1's sandbox of the overlay: the container's leg and the VXLAN device,
    // labelled with the overlay and its VNI.
    let in_sandbox = |role: &str, dir: &str, kind: &str| -> u64 {
        out.events
            .iter()
            .filter(|e| {
                e["iface"]["role"] == role
                    && e["iface"]["vni"] == vni
                    && e["iface"]["network"] == net.as_str()
                    && e["direction"] == dir
                    && e["kind"] == kind
                    && e.get("vxlan").is_none()
                    && e["dst"]["ip"] != e["src"]["ip"]
            })
            .filter(|e| role != "container-veth" || e["iface"]["container"] == a.as_str())
            .count() as u64
    };
    let legs = [
        in_sandbox("container-veth", "ingress", "icmp-echo-request"),
        in_sandbox("container-veth", "egress", "icmp-echo-reply"),
        in_sandbox("overlay-vxlan", "egress", "icmp-echo-request"),
        in_sandbox("overlay-vxlan", "ingress", "icmp-echo-reply"),
    ];
    anyhow::ensure!(
        legs == [
            stats.transmitted,
            stats.received,
            stats.transmitted,
            stats.received
        ],
        "in the sandbox: {a}'s veth {}/{} and vxlan0 {}/{} requests/replies, ping {stats:?}; \
         events:\n{}\nstderr:\n{}",
        legs[0],
        legs[1],
        legs[2],
        legs[3],
        out.stdout,
        out.stderr
    );
    // Each ping is one journey through the container's leg, the VXLAN device and the
    // uplink, out and back.
    let journeys: Vec<&Value> = out
        .events
        .iter()
        .filter(|e| e["kind"] == "journey" && e["result"] == "answered")
        .collect();
    let through = |j: &Value, role_iface: &str| {
        j["hops"]
            .as_array()
            .is_some_and(|h| h.iter().filter(|h| h["iface"] == role_iface).count() == 2)
    };
    let vxlan_dev = out
        .events
        .iter()
        .find(|e| e["iface"]["role"] == "overlay-vxlan")
        .map(|e| e["iface"]["name"].clone())
        .context("no event on the sandbox's VXLAN device")?;
    let leg = out
        .events
        .iter()
        .find(|e| e["iface"]["role"] == "container-veth" && e["iface"]["vni"] == vni)
        .map(|e| e["iface"]["name"].clone())
        .context("no event on the container's leg in the sandbox")?;
    let whole = journeys
        .iter()
        .filter(|j| {
            through(j, "link0")
                && through(j, vxlan_dev.as_str().unwrap_or_default())
                && through(j, leg.as_str().unwrap_or_default())
        })
        .count() as u64;
    anyhow::ensure!(
        whole == stats.received,
        "{whole} answered journeys through {leg}, {vxlan_dev} and link0, ping says {}: \
         {journeys:#?}\nevery journey:\n{}\nstderr:\n{}",
        stats.received,
        out.events
            .iter()
            .filter(|e| e["kind"] == "journey")
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        out.stderr
    );
    // The counters by VNI agree with ping and tcpdump.
    let counted = |dir: &str, kind: &str| -> u64 {
        out.summary["vxlan"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| {
                c["iface"] == "link0"
                    && c["vni"] == vni
                    && c["network"] == net.as_str()
                    && c["direction"] == dir
                    && c["kind"] == kind
            })
            .filter_map(|c| c["packets"].as_u64())
            .sum()
    };
    anyhow::ensure!(
        counted("egress", "icmp-echo-request") == w_out
            && counted("ingress", "icmp-echo-reply") == w_in,
        "VXLAN counters {} against tcpdump's {w_out} out, {w_in} in",
        out.summary["vxlan"]
    );
    // diagnose across the overlay: reachable, through the forwarding entry naming node 2,
    // whose gossip port answers.
    let v = diagnose(n1, &bin, a, b_ip)?;
    anyhow::ensure!(
        v["verdict"] == "reachable"
            && v["overlay"]["remote"] == NODE_ADDRS[1]
            && v["overlay"]["gossip"] == true
            && v["overlay"]["vni"] == vni,
        "diagnose {a} {b_ip}: {v:#}"
    );
    println!("diagnose {a} {b_ip}: {}", v["details"]);
    // MTU: 1472 bytes of data with "don't fragment" fit a 1500 link, not the overlay's
    // 1450; 1422 do, and are answered.
    let big = diagnose_args(n1, &bin, &["--size", "1472", a, b_ip])?;
    let fits = diagnose_args(n1, &bin, &["--size", "1422", a, b_ip])?;
    anyhow::ensure!(
        big["verdict"] == "mtu"
            && big["message"]
                .as_str()
                .is_some_and(|m| m.contains("MTU of 1450"))
            && big["details"]
                .to_string()
                .contains("1422 bytes of ICMP data")
            && fits["verdict"] == "reachable",
        "diagnose --size 1472: {big:#}\n--size 1422: {fits:#}"
    );
    println!("diagnose --size 1472 {a} {b_ip}: {}", big["message"]);
    println!(
        "{a} → {b} ({b_ip}) over {net}, VNI {vni}: ping {}/{}, netlab {}/{} inside VXLAN on \
         link0, tcpdump {w_out}/{w_in}",
        stats.transmitted,
        stats.received,
        requests.len(),
        replies.len()
    );
    pair.remove(&[])?;
    Ok(())
}

/// The VXLAN port blocked on node 2 (an iptables rule in its namespace): node 1's pings
/// leave inside VXLAN and get no reply. netlab on node 2 reports each one dropped there,
/// inside VXLAN, by the firewall and its rule, as many as the rule's own counter says.
#[test]
fn vxlan_blocked_on_node_2_is_a_drop_there() -> Result<()> {
    let bin = docker_or_skip!();
    let pair = OverlayPair::create("vxd")?;
    let [n1, n2] = &pair.swarm.nodes;
    let net = &pair.net;
    let (a, b, b_ip) = (&pair.a, &pair.b, &pair.b_ip);
    let rule = "INPUT -p udp -m udp --dport 4789 -j DROP";
    run(Command::new("ip")
        .args(["netns", "exec", n2.netns.name(), "iptables", "-I"])
        .args(rule.split_whitespace()))?;

    let watch = watch_on(n2, &bin, &["--kind", "drop"])?;
    let sent = 3;
    let (ping, stats) = ping_from(n1, a, b_ip, sent)?;
    std::thread::sleep(Duration::from_secs(1));
    let out = parse_output_of(watch.stop(libc::SIGINT)?)?;
    let counted = rule_counter_in(n2.netns.name(), "filter", rule)?;

    let drops: Vec<&Value> = out
        .events
        .iter()
        .filter(|e| {
            e["kind"] == "drop"
                && e["packet"] == "icmp-echo-request"
                && e["vxlan"]["vni"].is_u64()
                && e["vxlan"]["network"] == net.as_str()
                && e["dst"]["container"] == b.as_str()
        })
        .collect();
    anyhow::ensure!(
        stats.transmitted == sent && stats.received == 0,
        "ping across the blocked port: {ping}"
    );
    anyhow::ensure!(
        drops.len() as u64 == sent && counted == sent,
        "netlab on node 2 reported {} drops inside VXLAN, the rule counted {counted}, ping sent \
         {sent}:\n{}\n{}",
        drops.len(),
        out.stdout,
        out.stderr
    );
    let d = drops[0];
    anyhow::ensure!(
        d["drop"]["reason"] == "NETFILTER_DROP"
            && d["drop"]["rule"]["rule"]
                .as_str()
                .is_some_and(|r| r.contains("--dport 4789"))
            && d["vxlan"]["outer_src"] == NODE_ADDRS[0]
            && d["iface"]["name"] == "link0"
            && d["drop"]["meaning"]
                .as_str()
                .is_some_and(|m| m.contains("must accept UDP 4789")),
        "a drop inside VXLAN on node 2: {d:#}"
    );
    println!(
        "{a} → {b} ({b_ip}) with 4789 blocked on node 2: ping {}/{}, node 2's netlab: {} \
         drops, {} by {}, rule counter {counted}",
        stats.transmitted,
        stats.received,
        drops.len(),
        d["drop"]["reason"],
        d["drop"]["rule"]["rule"]
    );
    pair.remove(&[])?;
    Ok(())
}

/// A container removed on node 2: node 1's container still pings its address. netlab on
/// node 1 shows where each ping ends and why.
#[test]
fn a_container_removed_on_node_2_is_explained() -> Result<()> {
    let bin = docker_or_skip!();
    let pair = OverlayPair::create("vxr")?;
    let [n1, n2] = &pair.swarm.nodes;
    let net = &pair.net;
    let (a, b, b_ip) = (&pair.a, &pair.b, &pair.b_ip);
    // Another container keeps the overlay on node 2 after b goes.
    let keep = unique_name("vxr-k");
    n2.sleeper(&keep, net)?;
    // a knows b (its neighbour entry), then b goes.
    n1.docker(&["exec", a, "ping", "-c", "1", "-W", "2", b_ip])?;
    n2.docker(&["rm", "-f", b])?;
    std::thread::sleep(Duration::from_secs(3));

    let watch = watch_on(
        n1,
        &bin,
        &[
            "--kind",
            "icmp",
            "--kind",
            "arp",
            "--kind",
            "drop",
            "--kind",
            "journey",
            "--kind",
            "arp-unanswered",
        ],
    )?;
    let sent = 3;
    let (ping, stats) = ping_from(n1, a, b_ip, sent)?;
    std::thread::sleep(Duration::from_secs(3));
    let out = parse_output_of(watch.stop(libc::SIGINT)?)?;
    anyhow::ensure!(
        stats.transmitted == sent && stats.received == 0,
        "ping to the removed container: {ping}"
    );
    // Each ping is a journey that ends at node 1's VXLAN device, explained.
    let explained: Vec<&Value> = out
        .events
        .iter()
        .filter(|e| {
            e["kind"] == "journey"
                && e["dst"]["ip"] == b_ip.as_str()
                && e["src"]["container"] == a.as_str()
                && e["result"] == "dropped"
        })
        .collect();
    let drops: Vec<&Value> = out
        .events
        .iter()
        .filter(|e| {
            e["kind"] == "drop"
                && e["packet"] == "icmp-echo-request"
                && e["dst"]["ip"] == b_ip.as_str()
                && e["iface"]["netns"] == format!("sandbox:{net}").as_str()
                && e["drop"]["meaning"].as_str().is_some_and(|m| {
                    m.contains(&format!("no container has {b_ip} on overlay {net}"))
                })
        })
        .collect();
    anyhow::ensure!(
        explained.len() as u64 == sent && drops.len() as u64 == sent,
        "{} dropped journeys and {} explained drops for {sent} pings to the removed {b} \
         ({b_ip}):\n{}",
        explained.len(),
        drops.len(),
        out.stdout
    );
    let j = explained[0];
    anyhow::ensure!(
        j["last_seen"]["iface"] == j["drop"]["iface"],
        "the journey's last hop and its drop: {j:#}"
    );
    // diagnose says the same, with the overlay's missing entry.
    let v = diagnose(n1, &bin, a, b_ip)?;
    let details = v["details"].to_string();
    anyhow::ensure!(
        v["verdict"] == "dropped"
            && v["drop"]["reason"] == "NO_TX_TARGET"
            && details.contains(&format!("no entry for {b_ip}"))
            && details.contains("what it means: no container has"),
        "diagnose {a} {b_ip} after {b} went: {v:#}"
    );
    println!(
        "{sent} pings from {a} to the removed {b} ({b_ip}): dropped at {} ({}), {}",
        drops[0]["iface"]["name"], drops[0]["drop"]["reason"], drops[0]["drop"]["meaning"]
    );
    pair.remove(&[&keep])?;
    Ok(())
}

/// One ping from a container on node 1 to one on node 2 is one journey with its hops on
/// both nodes: netlab on node 1 reads node 2's daemon over its API (`--peer`), a second
/// netlab as a second host would run it. With the VXLAN port then blocked on node 2, each
/// journey says node 2 dropped it and by which rule. Witnesses: ping's own statistics and
/// the rule's own counter.
#[test]
fn a_ping_across_hosts_is_one_journey_with_both_nodes_hops() -> Result<()> {
    let bin = docker_or_skip!();
    let pair = OverlayPair::create("vxj")?;
    let [n1, n2] = &pair.swarm.nodes;
    let (a, b, b_ip) = (&pair.a, &pair.b, &pair.b_ip);
    let vni = overlay_vni(n1, &pair.net)?;
    let api = format!("{}:9464", NODE_ADDRS[1]);
    let mut daemon = n2.enter()?;
    daemon.arg(&bin).args([
        "daemon",
        "--cleanup-on-exit",
        "--listen",
        &api,
        "--allow-remote",
    ]);
    let daemon = Background::start(daemon, "daemon: watching", DAEMON_READY)?;
    let peer = format!("node2={api}");
    let mut watch = watch_on(n1, &bin, &["--kind", "journey", "--peer", &peer])?;
    watch.wait_for("peer node2: reading", Duration::from_secs(10))?;

    let sent = 4;
    let (ping, stats) = ping_from(n1, a, b_ip, sent)?;
    let rule = "INPUT -p udp -m udp --dport 4789 -j DROP";
    run(Command::new("ip")
        .args(["netns", "exec", n2.netns.name(), "iptables", "-I"])
        .args(rule.split_whitespace()))?;
    let blocked = 3;
    let (ping_blocked, stats_blocked) = ping_from(n1, a, b_ip, blocked)?;
    // Unanswered after 2 s, finished 1 s behind the clock to wait for the peer.
    std::thread::sleep(Duration::from_secs(4));
    let out = parse_output_of(watch.stop(libc::SIGINT)?)?;
    let counted = rule_counter_in(n2.netns.name(), "filter", rule)?;
    // diagnose on node 1 with node 2 as its peer: the verdict is node 2's drop.
    let v = diagnose_args(n1, &bin, &["--peer", &peer, a, b_ip])?;
    let probed = rule_counter_in(n2.netns.name(), "filter", rule)? - counted;
    let stopped = daemon.stop(libc::SIGTERM)?;
    anyhow::ensure!(
        v["verdict"] == "dropped"
            && v["dropped_on"] == "node2"
            && v["drop"]["reason"] == "NETFILTER_DROP"
            && v["drop"]["rule"]["rule"]
                .as_str()
                .is_some_and(|r| r.contains("--dport 4789"))
            && v["drop"]["meaning"]
                .as_str()
                .is_some_and(|m| m.contains("must accept UDP 4789"))
            && v["sent"] == probed
            && v["details"].as_array().is_some_and(|d| {
                d.iter().any(|l| {
                    l.as_str().is_some_and(|l| {
                        l.starts_with(&format!(
                            "host node2 received the {probed} probes inside VXLAN (VNI {vni})"
                        ))
                    })
                })
            }),
        "diagnose {a} {b_ip} --peer {peer} (node 2's rule counted {probed} probes): {v:#}"
    );
    anyhow::ensure!(
        stopped.status.success(),
        "node 2's daemon exited {}: {}",
        stopped.status,
        stopped.stderr
    );
    anyhow::ensure!(
        stats.transmitted == sent && stats.received == sent,
        "ping {a} → {b} ({b_ip}): {ping}"
    );
    anyhow::ensure!(
        stats_blocked.transmitted == blocked && stats_blocked.received == 0,
        "ping across the blocked port: {ping_blocked}"
    );

    let ours = |result: &str| -> Vec<&Value> {
        out.events
            .iter()
            .filter(|e| {
                e["kind"] == "journey"
                    && e["src"]["container"] == a.as_str()
                    && e["dst"]["ip"] == b_ip.as_str()
                    && e["result"] == result
            })
            .collect()
    };
    let hops = |j: &Value, host: Option<&str>, phase: &str| -> Vec<(String, String, u64)> {
        j["hops"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|h| h["host"].as_str() == host && h["phase"] == phase)
            .map(|h| {
                (
                    h["iface"].as_str().unwrap_or_default().to_owned(),
                    h["direction"].as_str().unwrap_or_default().to_owned(),
                    h["ts_ns"].as_u64().unwrap_or_default(),
                )
            })
            .collect()
    };
    let at = |hs: &[(String, String, u64)], iface: &str, dir: &str| {
        hs.iter()
            .find(|(i, d, _)| i == iface && d == dir)
            .map(|h| h.2)
    };
    // Answered: node 1's hops and node 2's, the VNI, node 2's in the time between.
    let answered = ours("answered");
    anyhow::ensure!(
        answered.len() as u64 == sent,
        "{} answered journeys for {sent} pings answered:\n{}\n{}",
        answered.len(),
        out.stdout,
        out.stderr
    );
    // The clocks are one here; the two daemons' readings of it differ by microseconds.
    let slack = 1_000_000;
    for j in &answered {
        let (req1, rep1) = (hops(j, None, "request"), hops(j, None, "reply"));
        let (req2, rep2) = (
            hops(j, Some("node2"), "request"),
            hops(j, Some("node2"), "reply"),
        );
        let left = at(&req1, "link0", "egress");
        let back = at(&rep1, "link0", "ingress");
        let arrived = at(&req2, "link0", "ingress");
        let answered_there = at(&rep2, "link0", "egress");
        let (Some(left), Some(back), Some(arrived), Some(answered_there)) =
            (left, back, arrived, answered_there)
        else {
            anyhow::bail!("a journey without link0 on both nodes: {j:#}");
        };
        anyhow::ensure!(
            j["vni"] == vni
                && req2.len() >= 3
                && rep2.len() >= 3
                && left <= arrived + slack
                && arrived <= answered_there
                && answered_there <= back + slack,
            "a journey with node 2's hops (request {req2:?}, reply {rep2:?}) between node \
             1's link0 out at {left} and in at {back}: {j:#}"
        );
    }
    // Blocked on node 2: the journeys end there, by the rule.
    let dropped = ours("dropped");
    anyhow::ensure!(
        dropped.len() as u64 == blocked && counted == blocked,
        "{} dropped journeys, the rule counted {counted}, ping sent {blocked}:\n{}",
        dropped.len(),
        out.stdout
    );
    for j in &dropped {
        let d = &j["drop"];
        anyhow::ensure!(
            d["host"] == "node2"
                && d["reason"] == "NETFILTER_DROP"
                && d["iface"] == "link0"
                && d["rule"]
                    .as_str()
                    .is_some_and(|r| r.contains("--dport 4789"))
                && at(&hops(j, None, "request"), "link0", "egress").is_some(),
            "a journey dropped on node 2: {j:#}"
        );
    }
    println!(
        "{a} → {b} ({b_ip}) across two nodes: {} answered journeys, the first with hops {}; \
         {} dropped on {} by `{}` (rule counter {counted})",
        answered.len(),
        answered[0]["hops"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| format!(
                "{}{} {}",
                h["host"]
                    .as_str()
                    .map(|h| format!("{h}:"))
                    .unwrap_or_default(),
                h["iface"].as_str().unwrap_or_default(),
                h["direction"].as_str().unwrap_or_default()
            ))
            .collect::<Vec<_>>()
            .join(", "),
        dropped.len(),
        dropped[0]["drop"]["host"],
        dropped[0]["drop"]["rule"].as_str().unwrap_or_default()
    );
    println!("diagnose --peer: {}", v["message"]);
    pair.remove(&[])?;
    Ok(())
}

/// A two-node Swarm with an attachable overlay network, container `a` on it on node 1
/// and `b` on node 2 (the lab's busybox, sleeping).
struct OverlayPair {
    swarm: Swarm,
    net: String,
    a: String,
    b: String,
    /// `b`'s address on the overlay.
    b_ip: String,
}

impl OverlayPair {
    fn create(tag: &str) -> Result<Self> {
        let swarm = Swarm::create(tag)?;
        let [n1, n2] = &swarm.nodes;
        for n in [n1, n2] {
            n.load_image(BUSYBOX_IMAGE)?;
        }
        let net = unique_name(&format!("{tag}-net"));
        n1.docker(&["network", "create", "-d", "overlay", "--attachable", &net])?;
        let (a, b) = (
            unique_name(&format!("{tag}-a")),
            unique_name(&format!("{tag}-b")),
        );
        n1.sleeper(&a, &net)?;
        n2.sleeper(&b, &net)?;
        let b_ip = n2.ip_on(&b, &net)?;
        Ok(OverlayPair {
            swarm,
            net,
            a,
            b,
            b_ip,
        })
    }

    /// Removes `a`, `b` (unless the test did), the containers `also_on_node2` names, the
    /// network, then the Swarm.
    fn remove(self, also_on_node2: &[&str]) -> Result<()> {
        let [n1, n2] = &self.swarm.nodes;
        n1.docker(&["rm", "-f", &self.a])?;
        if n2
            .docker(&["inspect", "--format", "{{.Id}}", &self.b])
            .is_ok()
        {
            n2.docker(&["rm", "-f", &self.b])?;
        }
        for c in also_on_node2 {
            n2.docker(&["rm", "-f", c])?;
        }
        n1.docker(&["network", "rm", &self.net])?;
        drop(self.swarm);
        Ok(())
    }
}

/// `netlab topology --json` run on `node`, parsed.
fn topology_on(node: &netlab_tests::swarm::Node, bin: &std::path::Path) -> Result<Value> {
    let mut topology = node.enter()?;
    topology
        .arg(bin)
        .args(["topology", "--json"])
        .env(NO_DAEMON.0, NO_DAEMON.1);
    serde_json::from_str(&run(&mut topology)?).context("netlab topology --json")
}

/// `netlab daemon --cleanup-on-exit` on `node`, once it watches, and its API's socket as
/// this namespace reaches it (through the node's mount namespace).
fn daemon_on(
    node: &netlab_tests::swarm::Node,
    bin: &std::path::Path,
) -> Result<(Background, std::path::PathBuf)> {
    let mut daemon = node.enter()?;
    daemon.arg(bin).args(["daemon", "--cleanup-on-exit"]);
    let daemon = Background::start(daemon, "daemon: watching", DAEMON_READY)?;
    let pid = node.pid().context("the node without its dockerd")?;
    let socket = std::path::PathBuf::from(format!("/proc/{pid}/root/run/netlab/netlab.sock"));
    Ok((daemon, socket))
}

/// The bridge of overlay `net`'s sandbox, as `netlab topology --json` on `node` lists it.
fn sandbox_bridge(
    node: &netlab_tests::swarm::Node,
    bin: &std::path::Path,
    net: &str,
) -> Result<Value> {
    let topo = topology_on(node, bin)?;
    topo["observed"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["role"] == "overlay-bridge" && o["network"] == net)
        .cloned()
        .with_context(|| format!("no bridge of {net}'s sandbox observed: {topo:#}"))
}

/// The VNI of overlay `net`, as `node`'s engine gives it.
fn overlay_vni(node: &netlab_tests::swarm::Node, net: &str) -> Result<u64> {
    node.docker(&[
        "network",
        "inspect",
        "--format",
        "{{index .Options \"com.docker.network.driver.overlay.vxlanid_list\"}}",
        net,
    ])?
    .trim()
    .parse()
    .context("the overlay's VNI")
}

/// `netlab watch --json ARGS...` on `node` (in its namespaces, talking to its engine),
/// once it watches.
fn watch_on(
    node: &netlab_tests::swarm::Node,
    bin: &std::path::Path,
    args: &[&str],
) -> Result<Background> {
    let mut watch = node.enter()?;
    watch
        .arg(bin)
        .args(["watch", "--json"])
        .args(args)
        .env(NO_DAEMON.0, NO_DAEMON.1);
    Background::start(watch, "watching ", DAEMON_READY)
}

/// `ping -c COUNT -i 0.3 -W 1 DST` from container `from` of `node`: what it printed and
/// its totals (whatever its exit status: an unanswered ping is a result here).
fn ping_from(
    node: &netlab_tests::swarm::Node,
    from: &str,
    dst: &str,
    count: u64,
) -> Result<(String, netlab_tests::host::ping::PingTotals)> {
    let out = node
        .docker_command()
        .args([
            "exec",
            from,
            "ping",
            "-c",
            &count.to_string(),
            "-i",
            "0.3",
            "-W",
            "1",
            dst,
        ])
        .output()?;
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let totals = totals(&printed).with_context(|| format!("ping printed {printed}"))?;
    Ok((printed, totals))
}

/// `netlab diagnose --json -4 SRC DST` run on `node`: its verdict.
fn diagnose(
    node: &netlab_tests::swarm::Node,
    bin: &std::path::Path,
    src: &str,
    dst: &str,
) -> Result<Value> {
    diagnose_args(node, bin, &[src, dst])
}

/// `netlab diagnose --json -4 --count 2 ARGS...` run on `node`: its verdict.
fn diagnose_args(
    node: &netlab_tests::swarm::Node,
    bin: &std::path::Path,
    args: &[&str],
) -> Result<Value> {
    let mut diag = node.enter()?;
    diag.arg(bin)
        .args(["diagnose", "--json", "-4", "--count", "2"])
        .args(args)
        .env(NO_DAEMON.0, NO_DAEMON.1);
    let d = diag.output()?;
    let out = String::from_utf8_lossy(&d.stdout);
    serde_json::from_str(out.trim()).with_context(|| {
        format!(
            "netlab diagnose {} ({}): {out}\n{}",
            args.join(" "),
            d.status,
            String::from_utf8_lossy(&d.stderr)
        )
    })
}

/// The parsed output of a `netlab watch --json` that was stopped.
fn parse_output_of(f: netlab_tests::host::process::Finished) -> Result<Output> {
    anyhow::ensure!(
        f.status.success(),
        "netlab watch exited {}: {}",
        f.status,
        f.stderr
    );
    parse_output(f.stdout, f.stderr, f.status)
}

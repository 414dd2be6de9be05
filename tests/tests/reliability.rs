//! Reliability and security: churn, restarts, floods, hostile frames and bad input, with
//! nothing lost and nothing left behind (RELIABILITY.md describes each scenario and the
//! figures of the last run).
//!
//! Run by `cargo xtask test` (root, `NETLAB_BIN` set, `--test-threads=1`), or alone:
//! `NETLAB_BIN=target/release/netlab cargo test -p netlab-tests --test reliability --
//! --test-threads=1 --nocapture`. Without root or the binary every test prints
//! `skipping: <reason>` and passes; the Docker ones also skip without an engine.
//!
//! Every netlab run gets `NETLAB_SOCKET` pointing at a socket of its own; daemons use a pin
//! directory of their own (`/sys/fs/bpf/nlt-pin-<pid>-<n>`) and are cleaned up with
//! `--cleanup` by a guard. Packets only go between namespaces and containers the tests
//! create, a bounded number of times (`ping -c`, `-w`). The engine-restart test stops and
//! starts the host's dockerd: its guard always leaves an engine running, and starts again
//! the containers that were running before.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use netlab_common::checksum;
use netlab_tests::bpf_state::{assert_detached, BpfSnapshot};
use netlab_tests::classify::{at_ingress, expected_kind, is_echo, ETH_P_8021AD, ETH_P_8021Q};
use netlab_tests::daemon::{
    get_json, http_get, unused_socket, DaemonPaths, EventStream, COMMAND_TIMEOUT,
};
use netlab_tests::docker::{
    host_links, remove_all, subnet_host, Container, HostLink, Network, BUSYBOX_IMAGE,
};
use netlab_tests::host::netns::{in_ns, ip};
use netlab_tests::host::ping::{self, PingTotals};
use netlab_tests::host::process::{signal, Background, Stdout};
use netlab_tests::host::tcx::{self, Hook};
use netlab_tests::reliability::{
    cap_mask, cap_numbers, engine_answers, pinned_counter_ifindexes, pinned_links, prog_ids_of,
    prog_name, tcx_links_running, Caps, EngineOutage, EventTally, ForeignTc, ProcStats,
};
use netlab_tests::{count, docker_or_skip, netlab_or_skip, run_with_timeout, send_raw_frames};
use netlab_tests::{Netns, PublicCopy, Watch};
use serde_json::Value;

const REQUEST: &str = "icmp-echo-request";
const REPLY: &str = "icmp-echo-reply";
/// Time for the last packets' events to go through netlab.
const SETTLE: Duration = Duration::from_millis(1500);
/// How long netlab may take to notice a change (a container, a link) and act on it.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(20);

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// Polls `check` until it succeeds or `timeout` passes; returns the last error.
fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return Ok(value),
            Err(err) if Instant::now() >= deadline => {
                return Err(err.context(format!("{what} (after {timeout:?})")))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// The daemon's `/v1/counters`.
fn counters(paths: &DaemonPaths) -> Result<Value> {
    get_json(&paths.socket, "/v1/counters")
}

/// `netlab topology --json` asked of the test's daemon: the interfaces it observes now
/// (ifindex → name).
fn observed(paths: &DaemonPaths) -> Result<BTreeMap<u32, String>> {
    let topo = get_json(&paths.socket, "/v1/topology")?;
    Ok(topo["observed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| {
            let idx = u32::try_from(o["ifindex"].as_u64()?).ok()?;
            Some((idx, o["name"].as_str()?.to_owned()))
        })
        .collect())
}

/// Nothing of gone interfaces is left behind by the daemon `pid`: the tcx links running its
/// programs are exactly two per observed interface, one per hook of each; its pin directory
/// has exactly their link files; its counter map has no key for an interface that does
/// not exist. Returns the number of observed interfaces.
fn nothing_left_of_gone_interfaces(paths: &DaemonPaths, pid: u32) -> Result<usize> {
    let observed = observed(paths)?;
    let links = host_links()?;
    let ours = prog_ids_of(pid);
    let running = tcx_links_running(&ours)?;
    ensure!(
        running.len() == 2 * observed.len(),
        "{} tcx links run the daemon's programs {ours:?}; it observes {} interfaces: {observed:?}",
        running.len(),
        observed.len()
    );
    for (ifindex, name) in &observed {
        for hook in Hook::BOTH {
            let mine: Vec<u32> = tcx::prog_ids(*ifindex, hook)?
                .into_iter()
                .filter(|id| ours.contains(id))
                .collect();
            ensure!(
                mine.len() == 1,
                "{} of the daemon's programs on tcx {hook} of {name} ({ifindex}): {mine:?}",
                mine.len()
            );
        }
    }
    let pinned = pinned_links(&paths.pin_dir)?;
    let stale: Vec<_> = pinned
        .iter()
        .filter(|p| links.get(&p.ifindex) != Some(&p.iface))
        .collect();
    ensure!(
        stale.is_empty() && pinned.len() == 2 * observed.len(),
        "{} pinned link files for {} observed interfaces; pins of gone interfaces: {stale:?}",
        pinned.len(),
        observed.len()
    );
    let keys = pinned_counter_ifindexes(&paths.pin_dir)?;
    let gone: BTreeSet<u32> = keys
        .iter()
        .copied()
        .filter(|idx| !links.contains_key(idx))
        .collect();
    ensure!(
        gone.is_empty(),
        "NETLAB_COUNTERS has keys for interfaces that are gone: {gone:?}"
    );
    Ok(observed.len())
}

// ---------------------------------------------------------------------------------------
// 1. Churn
// ---------------------------------------------------------------------------------------

/// Starts `n` busybox sleepers named `<prefix>-<i>` on `net` with parallel `docker run -d`.
fn start_batch(net: &Network, prefix: &str, n: usize) -> Result<Vec<Container>> {
    std::thread::scope(|scope| {
        let started: Vec<_> = (0..n)
            .map(|i| {
                scope.spawn(move || {
                    Container::run_named(
                        format!("{prefix}-{i}"),
                        net,
                        BUSYBOX_IMAGE,
                        &["sleep", "600"],
                    )
                })
            })
            .collect();
        started
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow!("docker run thread panicked"))?
            })
            .collect()
    })
}

/// Every container of `batch` pings `peer` once, in parallel.
fn ping_peer(batch: &[Container], peer: &str) -> Result<()> {
    std::thread::scope(|scope| {
        let pings: Vec<_> = batch
            .iter()
            .map(|c| scope.spawn(move || c.ping(peer, 1)))
            .collect();
        for ping in pings {
            ping.join().map_err(|_| anyhow!("ping thread panicked"))??;
        }
        Ok(())
    })
}

/// Whether an echo request from `name` was seen on its own veth's ingress, labelled.
fn labelled(events: &EventStream, name: &str) -> Result<bool> {
    Ok(events.events()?.iter().any(|e| {
        e["kind"] == REQUEST
            && e["direction"] == "ingress"
            && text(e, "/src/container") == Some(name)
            && text(e, "/iface/container") == Some(name)
    }))
}

/// 200 containers started and removed in batches of 20 while the daemon runs: every one's
/// ping is labelled with its name, every start and removal is said exactly once on the
/// event stream, and afterwards nothing of them is left (links, pins, counter keys), and
/// the daemon's fds, threads and memory are back where they were.
#[test]
fn churn_of_200_containers_leaves_nothing_behind() -> Result<()> {
    const BATCHES: usize = 10;
    const PER_BATCH: usize = 20;
    const TIME_LIMIT: Duration = Duration::from_secs(240);
    let bin = docker_or_skip!();
    let started = Instant::now();
    let net = Network::create("churn")?;
    let peer = Container::sleeper("peer", &net)?;
    let paths = DaemonPaths::new(&bin)?;
    let mut daemon = paths.start(&[])?;
    let pid = daemon.pid();
    let events = EventStream::open(&paths.socket, "/v1/events?kind=icmp-echo-request")?;
    let comings = EventStream::open(
        &paths.socket,
        "/v1/events?kind=container-started&kind=container-removed",
    )?;
    let prefix = netlab_tests::host::netns::unique_name("ch");

    // A warm-up batch, so allocations that happen once (caches, the pools of the runtime)
    // are in the baseline.
    let warm = start_batch(&net, &format!("{prefix}-w"), PER_BATCH)?;
    let mut everyone: Vec<String> = warm.iter().map(|c| c.name.clone()).collect();
    ping_peer(&warm, &peer.name)?;
    remove_all(warm)?;
    let baseline = eventually("the daemon after the warm-up", FOLLOW_TIMEOUT, || {
        nothing_left_of_gone_interfaces(&paths, pid)?;
        ProcStats::of(pid)
    })?;
    println!("baseline after a warm-up batch of {PER_BATCH}: {baseline}");

    let mut names = Vec::new();
    let mut slowest_batch = Duration::ZERO;
    for batch in 0..BATCHES {
        let t0 = Instant::now();
        let current = start_batch(&net, &format!("{prefix}-{batch}"), PER_BATCH)?;
        ping_peer(&current, &peer.name)?;
        names.extend(current.iter().map(|c| c.name.clone()));
        remove_all(current)?;
        slowest_batch = slowest_batch.max(t0.elapsed());
        ensure!(
            daemon.is_running()?,
            "the daemon exited during batch {batch}: {}",
            daemon.stderr_so_far()
        );
    }
    let churned = started.elapsed();

    // Every container's ping, labelled with its name on its own veth.
    let unlabelled = eventually("labelled pings", Duration::from_secs(10), || {
        let missing: Vec<&String> = names
            .iter()
            .filter(|name| !labelled(&events, name).unwrap_or(false))
            .collect();
        ensure!(missing.is_empty(), "{missing:?}");
        Ok(missing.len())
    });
    let all_events = events.events()?;
    let client_lost: u64 = all_events
        .iter()
        .filter(|e| e["kind"] == "lost")
        .filter_map(|e| e["events"].as_u64())
        .sum();
    if let Err(err) = unlabelled {
        // What the daemon said of the requests that are not fully labelled.
        let partly: Vec<String> = all_events
            .iter()
            .filter(|e| e["kind"] == REQUEST && e["direction"] == "ingress")
            .filter(|e| {
                text(e, "/iface/container").is_none() || text(e, "/src/container").is_none()
            })
            .take(5)
            .map(|e| e.to_string())
            .collect();
        bail!(
            "{err:#}: no labelled echo request on their own veth's ingress for these containers \
             ({} request events received, {client_lost} lost by the client); requests not \
             fully labelled: {partly:#?}",
            all_events.len()
        );
    }
    // Every start and every removal said exactly once, through the API.
    everyone.extend(names.iter().cloned());
    let times = |all: &[Value], kind: &str, name: &str| {
        all.iter()
            .filter(|e| e["kind"] == kind && e["container"] == name)
            .count()
    };
    let said = comings.wait_for(Duration::from_secs(10), |all| {
        everyone
            .iter()
            .all(|n| times(all, "container-removed", n) >= 1)
    })?;
    let wrong: Vec<String> = everyone
        .iter()
        .filter_map(|n| {
            let (s, r) = (
                times(&said, "container-started", n),
                times(&said, "container-removed", n),
            );
            (s != 1 || r != 1).then(|| format!("{n}: started {s} times, removed {r} times"))
        })
        .collect();
    ensure!(
        wrong.is_empty(),
        "{} of {} containers were not said started and removed exactly once: {wrong:#?}",
        wrong.len(),
        everyone.len()
    );
    let summary = counters(&paths)?;
    let lost_events = summary["lost_events"]
        .as_u64()
        .context("/v1/counters has no lost_events")?;

    let observed_now = eventually(
        "nothing left of the removed containers",
        FOLLOW_TIMEOUT,
        || nothing_left_of_gone_interfaces(&paths, pid),
    )?;
    let after = eventually(
        "the daemon's fds, threads and memory back to the baseline",
        FOLLOW_TIMEOUT,
        || {
            let now = ProcStats::of(pid)?;
            let rss_limit = baseline.rss_kb + baseline.rss_kb / 10;
            ensure!(
                now.fds <= baseline.fds + 4
                    && now.threads <= baseline.threads + 2
                    && now.rss_kb <= rss_limit,
                "after the churn {now}; baseline {baseline} (bounds: fds +4, threads +2, \
                 VmRSS {rss_limit} KiB)"
            );
            Ok(now)
        },
    )?;
    let stopped = daemon.stop(libc::SIGTERM)?;
    ensure!(
        stopped.status.success(),
        "the daemon exited {} after SIGTERM: {}",
        stopped.status,
        stopped.stderr
    );
    let elapsed = started.elapsed();
    println!(
        "churned {} containers in {churned:?} (slowest batch of {PER_BATCH}: {slowest_batch:?}); \
         all labelled; events lost: kernel {lost_events}, client {client_lost}; \
         left behind: 0 links, 0 pins, 0 counter keys ({observed_now} interfaces observed); \
         before {baseline}; after {after}; whole test {elapsed:?}",
        names.len()
    );
    ensure!(
        client_lost == 0 && lost_events == 0,
        "events were lost: {lost_events} in the kernel, {client_lost} by the client"
    );
    ensure!(
        elapsed < TIME_LIMIT,
        "the churn test took {elapsed:?} (limit {TIME_LIMIT:?})"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 4. Hostile frames
// ---------------------------------------------------------------------------------------

/// Sending end and receiving end of the veth pair the hostile frames cross.
const TX_IF: &str = "h0";
const RX_IF: &str = "h1";
/// First four bytes of every hostile frame's source MAC; the last two number the frame.
const HOSTILE_OUI: [u8; 4] = [0x02, 0x6e, 0x6c, 0x74];

/// A frame to send, and what it is.
struct Hostile {
    /// What it is, for messages (`icmp-echo/802.1Q/cut 37`).
    label: String,
    /// The bytes written on the wire.
    bytes: Vec<u8>,
    /// The outer VLAN id, for tagged frames.
    vid: Option<u16>,
}

/// A frame body before encapsulation: its EtherType and payload, and whether every cut
/// of it is sent too.
struct Body {
    label: &'static str,
    ethertype: u16,
    payload: Vec<u8>,
    cut: bool,
}

/// An IPv4 header whose first byte says `ihl` whatever its real length (20 bytes plus
/// `options`), with `total` as total length and `frag` as flags and fragment offset.
fn ipv4(ihl: u8, total: u16, frag: u16, protocol: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut header = vec![0x40 | (ihl & 0x0f), 0];
    header.extend_from_slice(&total.to_be_bytes());
    header.extend_from_slice(&[0x4e, 0x4c]);
    header.extend_from_slice(&frag.to_be_bytes());
    header.extend_from_slice(&[64, protocol, 0, 0]);
    header.extend_from_slice(&[10, 77, 0, 1, 10, 77, 0, 2]);
    header.extend_from_slice(options);
    let sum = checksum::internet(&header);
    header[10..12].copy_from_slice(&sum.to_be_bytes());
    header.extend_from_slice(payload);
    header
}

/// A well-formed IPv4 packet around `payload` (protocol `protocol`, no options).
fn ipv4_plain(protocol: u8, frag: u16, payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).unwrap_or(u16::MAX);
    ipv4(5, total, frag, protocol, &[], payload)
}

/// An ICMP message: type, code, checksum, `rest` (id and sequence for echo), `data`.
fn icmp(icmp_type: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut msg = vec![icmp_type, code, 0, 0];
    msg.extend_from_slice(&rest);
    msg.extend_from_slice(data);
    let sum = checksum::internet(&msg);
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
    msg
}

/// An IPv6 header with `payload_len` as payload length (not necessarily the real one),
/// `next` as next header, then `payload`; `first` is the version/class byte.
fn ipv6(first: u8, payload_len: u16, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![first, 0, 0, 0];
    packet.extend_from_slice(&payload_len.to_be_bytes());
    packet.extend_from_slice(&[next, 255]);
    for host in [1u8, 2] {
        packet.extend_from_slice(&[0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, host]);
    }
    packet.extend_from_slice(payload);
    packet
}

fn ipv6_plain(next: u8, payload: &[u8]) -> Vec<u8> {
    ipv6(
        0x60,
        u16::try_from(payload.len()).unwrap_or(u16::MAX),
        next,
        payload,
    )
}

/// An IPv6 extension header of the Hop-by-Hop / Routing / Destination Options shape:
/// `next`, length `units` (8-byte units beyond the first 8), padding, then `rest`.
fn ext(next: u8, units: u8, rest: &[u8]) -> Vec<u8> {
    let mut header = vec![next, units];
    // PadN option over the rest of the header (its content is zero).
    let size = 8 * usize::from(units) + 8;
    header.extend_from_slice(&[1, u8::try_from(size - 4).unwrap_or(u8::MAX)]);
    header.resize(size, 0);
    header.extend_from_slice(rest);
    header
}

/// An IPv6 fragment header (offset in 8-byte units, more-fragments flag) before `rest`.
fn fragment6(next: u8, offset: u16, more: bool, rest: &[u8]) -> Vec<u8> {
    let mut header = vec![next, 0];
    header.extend_from_slice(&((offset << 3) | u16::from(more)).to_be_bytes());
    header.extend_from_slice(&[0x4e, 0x4c, 0, 1]);
    header.extend_from_slice(rest);
    header
}

/// An IPv6 Authentication Header (length 4: 24 bytes) before `rest`.
fn ah(next: u8, rest: &[u8]) -> Vec<u8> {
    let mut header = vec![next, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1];
    header.resize(24, 0);
    header.extend_from_slice(rest);
    header
}

/// `n` Destination Options headers in a row, then ICMPv6 `rest`.
fn dstopts_chain(n: usize, rest: &[u8]) -> Vec<u8> {
    (0..n).fold(rest.to_vec(), |inner, i| {
        ext(if i == 0 { 58 } else { 60 }, 0, &inner)
    })
}

/// An ARP body with the given header fields (Ethernet/IPv4 addresses after them).
fn arp(htype: u16, ptype: u16, hlen: u8, plen: u8, op: u16) -> Vec<u8> {
    let mut body = Vec::with_capacity(28);
    body.extend_from_slice(&htype.to_be_bytes());
    body.extend_from_slice(&ptype.to_be_bytes());
    body.extend_from_slice(&[hlen, plen]);
    body.extend_from_slice(&op.to_be_bytes());
    body.extend_from_slice(&[0x02, 0x6e, 0x6c, 0x74, 0xaa, 0xaa, 10, 77, 0, 1]);
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 77, 0, 2]);
    body
}

/// Every frame body: ARP, IPv4/ICMP and IPv6/ICMPv6, good and bad.
fn hostile_bodies() -> Vec<Body> {
    const IP: u16 = 0x0800;
    const IP6: u16 = 0x86dd;
    let data: Vec<u8> = (0u8..56).collect();
    let echo = icmp(8, 0, [0x12, 0x34, 0, 7], &data);
    let echo6 = {
        let mut m = vec![128, 0, 0, 0, 0x12, 0x34, 0, 7];
        m.extend_from_slice(&data);
        m
    };
    let ns = {
        let mut m = vec![135, 0, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&[0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        m
    };
    // Bogus options: 40 bytes that are no valid option list (unknown types, bad lengths).
    let garbage: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
    let body = |label, ethertype, payload, cut| Body {
        label,
        ethertype,
        payload,
        cut,
    };
    let mut bodies = vec![
        body("arp-request", 0x0806, arp(1, IP, 6, 4, 1), true),
        body("arp-reply", 0x0806, arp(1, IP, 6, 4, 2), false),
        body("arp-htype6", 0x0806, arp(6, IP, 6, 4, 1), false),
        body("arp-op3", 0x0806, arp(1, IP, 6, 4, 3), false),
        body("arp-hlen8", 0x0806, arp(1, IP, 8, 4, 1), false),
        body("icmp-echo", IP, ipv4_plain(1, 0, &echo), true),
        body(
            "icmp-unreachable",
            IP,
            ipv4_plain(1, 0, &icmp(3, 1, [0; 4], &ipv4_plain(17, 0, &[0; 8]))),
            false,
        ),
        body(
            "icmp-options",
            IP,
            ipv4(15, 60 + 64, 0, 1, &garbage, &echo),
            true,
        ),
        body(
            "icmp-options-short",
            IP,
            ipv4(15, 60 + 4, 0, 1, &garbage, &echo[..4]),
            false,
        ),
        // IHL beyond the total length: the header would end after the packet.
        body(
            "icmp-ihl15-total28",
            IP,
            ipv4(15, 28, 0, 1, &[], &echo[..8]),
            false,
        ),
        body("icmp-ihl6-total20", IP, ipv4(6, 20, 0, 1, &[], &[]), false),
        body(
            "icmp-total-2000",
            IP,
            ipv4(5, 2000, 0, 1, &[], &echo),
            false,
        ),
        body(
            "icmp-version6",
            IP,
            {
                let mut p = ipv4_plain(1, 0, &echo);
                p[0] = 0x65;
                p
            },
            false,
        ),
        body("frag-first", IP, ipv4_plain(1, 0x2000, &echo), false),
        body(
            "frag-first-short",
            IP,
            ipv4_plain(1, 0x2000, &echo[..4]),
            false,
        ),
        body("frag-middle", IP, ipv4_plain(1, 0x2000 | 100, &echo), false),
        body("frag-last", IP, ipv4_plain(1, 200, &echo), false),
        body("udp", IP, ipv4_plain(17, 0, &[0; 16]), false),
        body("icmp6-echo", IP6, ipv6_plain(58, &echo6), true),
        body("ndp-ns", IP6, ipv6_plain(58, &ns), true),
        body("ndp-ns-short", IP6, ipv6(0x60, 8, 58, &ns[..8]), false),
        body("icmp6-plen-1000", IP6, ipv6(0x60, 1000, 58, &echo6), false),
        body("icmp6-plen-2", IP6, ipv6(0x60, 2, 58, &echo6[..2]), false),
        body("icmp6-version4", IP6, ipv6(0x40, 64, 58, &echo6), false),
        body("ipv6-tcp", IP6, ipv6_plain(6, &[0; 20]), false),
        body(
            "icmp6-hbh-echo",
            IP6,
            ipv6_plain(0, &ext(58, 0, &echo6)),
            true,
        ),
        body(
            "icmp6-frag-first-echo",
            IP6,
            ipv6_plain(44, &fragment6(58, 0, true, &echo6)),
            true,
        ),
        body(
            "icmp6-frag-later",
            IP6,
            ipv6_plain(44, &fragment6(58, 100, false, &echo6)),
            false,
        ),
        body(
            "icmp6-dstopts-ns",
            IP6,
            ipv6_plain(60, &ext(58, 1, &ns)),
            true,
        ),
        body(
            "icmp6-routing-echo",
            IP6,
            ipv6_plain(43, &ext(58, 0, &echo6)),
            false,
        ),
        body("icmp6-ah-echo", IP6, ipv6_plain(51, &ah(58, &echo6)), false),
        body(
            "icmp6-hbh-past-payload",
            IP6,
            ipv6_plain(0, &ext(58, 10, &echo6[..8])),
            false,
        ),
        body(
            "icmp6-hbh-short-icmp",
            IP6,
            ipv6_plain(0, &ext(58, 0, &echo6[..2])),
            false,
        ),
        body(
            "ipv6-hbh-tcp",
            IP6,
            ipv6_plain(0, &ext(6, 0, &[0; 20])),
            false,
        ),
        body(
            "icmp6-8-dstopts-echo",
            IP6,
            ipv6_plain(60, &dstopts_chain(8, &echo6)),
            false,
        ),
        body(
            "icmp6-9-dstopts-echo",
            IP6,
            ipv6_plain(60, &dstopts_chain(9, &echo6)),
            false,
        ),
        body(
            "lldp",
            0x88cc,
            vec![0x02, 0x07, 0x04, 0, 0, 0, 0, 0, 1],
            false,
        ),
    ];
    for ihl in 0..5u8 {
        let mut p = ipv4_plain(1, 0, &echo);
        p[0] = 0x40 | ihl;
        bodies.push(Body {
            label: [
                "icmp-ihl0",
                "icmp-ihl1",
                "icmp-ihl2",
                "icmp-ihl3",
                "icmp-ihl4",
            ][usize::from(ihl)],
            ethertype: IP,
            payload: p,
            cut: false,
        });
    }
    bodies
}

/// The source MAC of frame `i`.
fn hostile_mac(i: usize) -> [u8; 6] {
    let [hi, lo] = u16::try_from(i).unwrap_or(u16::MAX).to_be_bytes();
    [
        HOSTILE_OUI[0],
        HOSTILE_OUI[1],
        HOSTILE_OUI[2],
        HOSTILE_OUI[3],
        hi,
        lo,
    ]
}

/// The frame number in a source MAC printed as `02:6e:6c:74:hh:ll`.
fn hostile_index(mac: &str) -> Option<usize> {
    let bytes: Vec<u8> = mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).ok())
        .collect::<Option<_>>()?;
    (bytes.len() == 6 && bytes[..4] == HOSTILE_OUI)
        .then(|| usize::from(u16::from_be_bytes([bytes[4], bytes[5]])))
}

/// Every hostile frame: each body untagged, 802.1Q-tagged and 802.1ad-tagged, whole and
/// (for those marked) cut at every length from 14 bytes; a few with two tags. Frame `i`
/// has source MAC [`hostile_mac`]`(i)`.
fn hostile_frames(dst: [u8; 6]) -> Vec<Hostile> {
    let mut frames = Vec::new();
    let mut push = |label: String, tags: &[(u16, u16)], body: &Body, cut: bool| {
        let i = frames.len();
        let mut full = dst.to_vec();
        full.extend_from_slice(&hostile_mac(i));
        for (tpid, vid) in tags {
            full.extend_from_slice(&tpid.to_be_bytes());
            full.extend_from_slice(&vid.to_be_bytes());
        }
        full.extend_from_slice(&body.ethertype.to_be_bytes());
        full.extend_from_slice(&body.payload);
        let vid = tags.first().map(|(_, vid)| *vid);
        frames.push(Hostile {
            label: label.clone(),
            bytes: full.clone(),
            vid,
        });
        if cut {
            for n in 14..full.len() {
                let i = frames.len();
                let mut bytes = full[..n].to_vec();
                if n >= 12 {
                    bytes[6..12].copy_from_slice(&hostile_mac(i));
                }
                frames.push(Hostile {
                    label: format!("{label}/cut {n}"),
                    bytes,
                    vid,
                });
            }
        }
    };
    let encapsulations: [(&str, &[(u16, u16)]); 3] = [
        ("untagged", &[]),
        ("802.1Q", &[(ETH_P_8021Q, 10)]),
        ("802.1ad", &[(ETH_P_8021AD, 20)]),
    ];
    let bodies = hostile_bodies();
    for (name, tags) in encapsulations {
        for body in &bodies {
            push(format!("{}/{name}", body.label), tags, body, body.cut);
        }
    }
    for body in bodies
        .iter()
        .filter(|b| matches!(b.label, "arp-request" | "icmp-echo" | "icmp6-echo"))
    {
        push(
            format!("{}/802.1ad+802.1Q", body.label),
            &[(ETH_P_8021AD, 20), (ETH_P_8021Q, 10)],
            body,
            false,
        );
    }
    frames
}

/// The frame as the receiving end's tc ingress sees it, and its expected kind there.
fn ingress_view(frame: &[u8]) -> (Option<Vec<u8>>, Option<&'static str>) {
    let seen = at_ingress(frame);
    let kind = seen.as_deref().and_then(expected_kind);
    (seen, kind)
}

/// Sends every hostile frame on `h0` of a fresh namespace (veth pair h0/h1, no IPv6, no
/// address) while `netlab watch --json --iface h0 --iface h1` runs; returns the frames and
/// what netlab printed. netlab must be alive at the end, exit 0 on SIGINT and leave nothing
/// attached.
fn hostile_run(bin: &Path) -> Result<(Vec<Hostile>, netlab_tests::Output)> {
    const CHUNK: usize = 100;
    let ns = Netns::unique("hostile")?;
    // No IPv6 and no address: the kernel sends nothing of its own on the pair, and nothing
    // answers the frames.
    ns.exec(
        "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
         && ip link add h0 type veth peer name h1 && ip link set h0 up && ip link set h1 up",
    )?;
    let rx_mac_text = ns.exec(&format!("cat /sys/class/net/{RX_IF}/address"))?;
    let mut rx_mac = [0u8; 6];
    for (byte, part) in rx_mac.iter_mut().zip(rx_mac_text.trim().split(':')) {
        *byte = u8::from_str_radix(part, 16)?;
    }
    let frames = hostile_frames(rx_mac);
    let before = BpfSnapshot::take()?;
    let wrapper = netlab_tests::docker::EnvWrapper::new(
        bin,
        &[("NETLAB_SOCKET", &unused_socket().to_string_lossy())],
    )?;
    let mut watch = Watch::start_bin(
        &wrapper.bin,
        ns.name(),
        &["--json", "--iface", TX_IF, "--iface", RX_IF],
        netlab_tests::watch::READY_TIMEOUT,
    )?;
    let bytes: Vec<Vec<u8>> = frames.iter().map(|f| f.bytes.clone()).collect();
    for chunk in bytes.chunks(CHUNK) {
        send_raw_frames(ns.name(), TX_IF, chunk)?;
        // Let the receiving side's backlog (netdev_max_backlog) drain.
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(SETTLE);
    ensure!(
        watch.is_running()?,
        "netlab died on hostile frames; stderr:\n{}",
        watch.stderr_so_far()
    );
    let output = watch.stop()?;
    ensure!(
        output.status.success(),
        "netlab exited with {} after SIGINT; stderr:\n{}",
        output.status,
        output.stderr
    );
    assert_detached(ns.name(), &[TX_IF, RX_IF], &before)?;
    Ok((frames, output))
}

/// Frames written with AF_PACKET on one end of a veth pair, while `netlab watch --json
/// --iface h0 --iface h1` runs: ARP, IPv4/ICMP and IPv6/ICMPv6 cut at every length, bad
/// IHL values, bogus IP options, bad lengths, fragments, 802.1Q/802.1ad tags. Each is
/// counted exactly as the kernel program's rules say (malformed, its kind, or not at all;
/// the model is `netlab_tests::classify`), every packet event's kind is the frame's,
/// malformed events carry no ICMP fields, and netlab is alive and exits 0 on SIGINT.
#[test]
fn hostile_frames_are_counted_by_the_rules_and_never_mislabelled() -> Result<()> {
    let bin = netlab_or_skip!();
    let (frames, output) = hostile_run(&bin)?;

    // (a) Counters: exactly the expected kinds, on the expected hooks.
    let mut expected: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let mut by_kind: BTreeMap<(String, String, String), Vec<&str>> = BTreeMap::new();
    for frame in &frames {
        let hooks = [
            (TX_IF, "egress", expected_kind(&frame.bytes)),
            (RX_IF, "ingress", ingress_view(&frame.bytes).1),
        ];
        for (iface, direction, kind) in hooks {
            if let Some(kind) = kind {
                let key = (iface.to_owned(), direction.to_owned(), kind.to_owned());
                *expected.entry(key.clone()).or_default() += 1;
                by_kind.entry(key).or_default().push(&frame.label);
            }
        }
    }
    let mut actual: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for row in output.summary["counters"].as_array().into_iter().flatten() {
        let key = (
            text(row, "/iface").unwrap_or("?").to_owned(),
            text(row, "/direction").unwrap_or("?").to_owned(),
            text(row, "/kind").unwrap_or("?").to_owned(),
        );
        *actual.entry(key).or_default() += row["packets"].as_u64().unwrap_or(0);
    }
    actual.retain(|_, n| *n > 0);
    let keys: BTreeSet<_> = expected.keys().chain(actual.keys()).cloned().collect();
    let wrong: Vec<String> = keys
        .iter()
        .filter(|k| expected.get(*k) != actual.get(*k))
        .map(|k| {
            format!(
                "{} {} {}: counted {}, expected {} (e.g. {:?})",
                k.0,
                k.1,
                k.2,
                actual.get(k).copied().unwrap_or(0),
                expected.get(k).copied().unwrap_or(0),
                by_kind
                    .get(k)
                    .map(|l| l.iter().take(5).collect::<Vec<_>>())
                    .unwrap_or_default()
            )
        })
        .collect();
    ensure!(
        wrong.is_empty(),
        "counters differ from the rules for {} frames:\n{}\ncounters:\n{}",
        frames.len(),
        wrong.join("\n"),
        output.counters_text()
    );

    // (b) Events: each one is a frame's, on a hook where that frame counts, with its kind.
    let lost = netlab_tests::lost_events(&output.summary);
    let mut problems = Vec::new();
    let mut seen: BTreeMap<(usize, &str), u32> = BTreeMap::new();
    let mut drops = Vec::new();
    for event in &output.events {
        let kind = event["kind"].as_str().unwrap_or("?");
        if kind == "drop" {
            if text(event, "/drop/reason").is_none() {
                problems.push(format!("drop report without a reason: {event}"));
            }
            drops.push(event);
            continue;
        }
        let Some(direction) = event["direction"].as_str() else {
            // Journeys and other summaries of packets are not packet events.
            continue;
        };
        let iface = text(event, "/iface/name").unwrap_or("?");
        let Some(i) = text(event, "/src/mac").and_then(hostile_index) else {
            problems.push(format!("event of no hostile frame: {event}"));
            continue;
        };
        let Some(frame) = frames.get(i) else {
            problems.push(format!("event of frame {i}, which was not sent: {event}"));
            continue;
        };
        let (hook, seen_as, want) = match (iface, direction) {
            (TX_IF, "egress") => (
                "h0 egress",
                Some(frame.bytes.clone()),
                expected_kind(&frame.bytes),
            ),
            (RX_IF, "ingress") => {
                let (seen_as, want) = ingress_view(&frame.bytes);
                ("h1 ingress", seen_as, want)
            }
            _ => {
                problems.push(format!(
                    "{}: event on {iface} {direction}: {event}",
                    frame.label
                ));
                continue;
            }
        };
        *seen.entry((i, hook)).or_default() += 1;
        if want != Some(kind) {
            problems.push(format!(
                "{} on {hook}: event kind {kind}, expected {want:?}: {event}",
                frame.label
            ));
        }
        if kind == "malformed" {
            for field in ["icmp", "arp", "ndp"] {
                if event.get(field).is_some() {
                    problems.push(format!(
                        "{}: malformed event with {field}: {event}",
                        frame.label
                    ));
                }
            }
        }
        if !is_echo(kind)
            && (event.pointer("/icmp/id").is_some() || event.pointer("/icmp/seq").is_some())
        {
            problems.push(format!(
                "{}: {kind} event with an echo id/seq: {event}",
                frame.label
            ));
        }
        let len = seen_as.as_ref().map_or(0, Vec::len) as u64;
        if event["len"].as_u64() != Some(len) {
            problems.push(format!(
                "{}: event len {}, frame {len}: {event}",
                frame.label, event["len"]
            ));
        }
        if hook == "h0 egress" && event["vlan"].as_u64() != frame.vid.map(u64::from) {
            problems.push(format!(
                "{}: event vlan {}, frame {:?}: {event}",
                frame.label, event["vlan"], frame.vid
            ));
        }
    }
    for ((i, hook), n) in &seen {
        if *n > 1 {
            problems.push(format!("{}: {n} events on {hook}", frames[*i].label));
        }
    }
    let mut missing = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        for (hook, want) in [
            ("h0 egress", expected_kind(&frame.bytes)),
            ("h1 ingress", ingress_view(&frame.bytes).1),
        ] {
            if want.is_some() && !seen.contains_key(&(i, hook)) {
                missing.push(format!("{} on {hook}", frame.label));
            }
        }
    }
    if missing.len() as u64 > lost {
        problems.push(format!(
            "{} events missing, {lost} reported lost: {:?}",
            missing.len(),
            missing.iter().take(20).collect::<Vec<_>>()
        ));
    }

    println!(
        "{} hostile frames: {} counted on h0 egress, {} on h1 ingress, {} packet events, \
         {} drop reports, {lost} lost",
        frames.len(),
        actual
            .iter()
            .filter(|(k, _)| k.0 == TX_IF)
            .map(|(_, n)| n)
            .sum::<u64>(),
        actual
            .iter()
            .filter(|(k, _)| k.0 == RX_IF)
            .map(|(_, n)| n)
            .sum::<u64>(),
        seen.len(),
        drops.len()
    );
    ensure!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    Ok(())
}

/// How long the daemon's log says attaching `port` took (`attaching <port> took <Duration>`,
/// at debug level).
fn attach_took(stderr: &str, port: &str) -> Option<Duration> {
    let line = stderr.lines().find_map(|l| {
        l.split_once(&format!("attaching {port} took "))?
            .1
            .split_whitespace()
            .next()
    })?;
    let split = line.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = line.split_at(split);
    let value: f64 = number.parse().ok()?;
    let secs = match unit {
        "s" => value,
        "ms" => value / 1e3,
        "µs" | "us" => value / 1e6,
        "ns" => value / 1e9,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

#[test]
fn attach_times_are_read_from_the_log() {
    let log =
        "netlab: debug: attaching n00 took 2ms\nnetlab: debug: attaching n0 took 28.037283ms\n";
    assert_eq!(
        attach_took(log, "n0"),
        Some(Duration::from_nanos(28_037_283))
    );
    assert_eq!(attach_took(log, "n00"), Some(Duration::from_millis(2)));
    assert_eq!(
        attach_took("attaching p took 950µs", "p"),
        Some(Duration::from_micros(950))
    );
    assert_eq!(
        attach_took("attaching p took 1.5s", "p"),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(attach_took(log, "n1"), None);
    assert_eq!(attach_took("attaching p took soon", "p"), None);
}

/// A port's first frames, sent the moment it joins an observed bridge, are counted before
/// its tc programs are attached, by the cover programs (netlab-ebpf/src/cover.rs). IPv6
/// frames with extension headers take their own reads there, past the copy of the frame's
/// first bytes (`Frame::far_byte`). Each is counted by the same rules as on an attached
/// port (the model is `netlab_tests::classify`). The test checks from netlab's log that the
/// port's programs were attached only after the frames were sent; where the kernel attached
/// them sooner, the cover programs did not run, and it says so and skips.
#[test]
fn a_new_ports_first_ipv6_frames_with_extension_headers_are_counted_by_the_rules() -> Result<()> {
    const PORT: &str = "n0";
    const PEER: &str = "n1";
    let bin = netlab_or_skip!();
    let ns = Netns::unique("cover6")?;
    // Both ends up before the port joins: the peer queues nothing until the kernel has seen
    // its carrier come on (the link watch activates its qdisc after the fact), and until then
    // it drops what it is given to send.
    ns.exec(&format!(
        "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
         && ip link add br0 type bridge && ip link set br0 up \
         && ip link add {PORT} type veth peer name {PEER} \
         && ip link set {PEER} up && ip link set {PORT} up"
    ))?;
    eventually("both ends of the veth up", Duration::from_secs(5), || {
        for end in [PORT, PEER] {
            let state = ns.operstate(end)?;
            ensure!(state == "UP", "{end} is {state}");
        }
        Ok(())
    })?;
    // The hostile set's IPv6 frames, untagged and whole.
    let frames: Vec<Vec<u8>> = hostile_frames([0xff; 6])
        .into_iter()
        .filter(|f| f.vid.is_none() && !f.label.contains("/cut") && f.bytes[12..14] == [0x86, 0xdd])
        .map(|f| f.bytes)
        .collect();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for f in &frames {
        if let Some(kind) = expected_kind(f) {
            *expected.entry(kind.to_owned()).or_default() += 1;
        }
    }
    ensure!(
        expected.len() >= 3,
        "the IPv6 bodies should cover several kinds: {expected:?}"
    );
    let wrapper = netlab_tests::docker::EnvWrapper::new(
        &bin,
        &[
            ("DOCKER_HOST", "unix:///nonexistent.sock"),
            ("NETLAB_SOCKET", &unused_socket().to_string_lossy()),
            ("RUST_LOG", "debug"),
        ],
    )?;
    let watch = Watch::start_bin(
        &wrapper.bin,
        ns.name(),
        &["--json"],
        netlab_tests::watch::READY_TIMEOUT,
    )?;
    let received_before = ns.rx_packets(PORT)?;
    let t0 = Instant::now();
    ip(&["-n", ns.name(), "link", "set", PORT, "master", "br0"])?;
    send_raw_frames(ns.name(), PEER, &frames)?;
    let sent = t0.elapsed();
    let output = watch.stop_after(SETTLE)?;
    // The witness: the port's own counter, so that a frame lost on the way is not blamed on
    // the cover programs.
    let received = ns.rx_packets(PORT)? - received_before;
    ensure!(
        received == frames.len() as u64,
        "{PORT} received {received} frames by its own counter, of {} sent",
        frames.len()
    );

    let took = attach_took(&output.stderr, PORT)
        .ok_or_else(|| anyhow!("no attach of {PORT} in netlab's log:\n{}", output.stderr))?;
    // The ingress link, the first of the two, is made about halfway through.
    if took / 2 <= sent {
        println!(
            "skipping: {PORT}'s programs were attached {took:?} after the port joined, its \
             frames sent within {sent:?}: the cover programs did not count them"
        );
        return Ok(());
    }
    let mut actual: BTreeMap<String, u64> = BTreeMap::new();
    for row in output.summary["counters"].as_array().into_iter().flatten() {
        if text(row, "/iface") == Some(PORT) && text(row, "/direction") == Some("ingress") {
            let kind = text(row, "/kind").unwrap_or("?").to_owned();
            *actual.entry(kind).or_default() += row["packets"].as_u64().unwrap_or(0);
        }
    }
    actual.retain(|_, n| *n > 0);
    ensure!(
        actual == expected,
        "{PORT} ingress, {} frames sent within {sent:?} of joining the bridge (attached after \
         {took:?}): counted {actual:?}, the rules say {expected:?}",
        frames.len()
    );
    Ok(())
}

/// The same hostile frames, as the kernel drops them on the receiving side (no address,
/// no IPv6 there): a drop report names the packet's kind, and that kind must be the one
/// the counters give such a packet: a packet cut short is `malformed`, never an echo
/// request or an ARP request read from bytes beyond its end. Drop reports carry no MAC,
/// so a report of `len` bytes (from the network header) is checked against every frame of
/// that length.
#[test]
fn drop_reports_of_hostile_frames_are_not_mislabelled() -> Result<()> {
    let bin = netlab_or_skip!();
    let (frames, output) = hostile_run(&bin)?;
    let drops: Vec<&Value> = output
        .events
        .iter()
        .filter(|e| e["kind"] == "drop")
        .collect();
    let mut problems = Vec::new();
    let mut drop_kinds: BTreeMap<u64, BTreeSet<&str>> = BTreeMap::new();
    for frame in &frames {
        if let (Some(seen_as), Some(kind)) = ingress_view(&frame.bytes) {
            drop_kinds
                .entry(seen_as.len() as u64 - 14)
                .or_default()
                .insert(kind);
        }
    }
    let mut drop_reasons: BTreeMap<String, u64> = BTreeMap::new();
    for event in &drops {
        let packet = event["packet"].as_str().unwrap_or("?");
        let len = event["len"].as_u64().unwrap_or(0);
        *drop_reasons
            .entry(text(event, "/drop/reason").unwrap_or("?").to_owned())
            .or_default() += 1;
        let possible = drop_kinds.get(&len);
        if !possible.is_some_and(|kinds| kinds.contains(packet)) {
            problems.push(format!(
                "drop report says {packet} for {len} bytes; frames of that length are {possible:?} \
                 at h1 ingress: {event}"
            ));
        }
        if packet == "malformed" && event.get("icmp").is_some() {
            problems.push(format!("malformed drop with icmp fields: {event}"));
        }
    }
    println!(
        "{} drop reports of {} hostile frames, by reason: {drop_reasons:?}; {} mislabelled",
        drops.len(),
        frames.len(),
        problems.len()
    );
    ensure!(
        problems.is_empty(),
        "{} of {} drop reports are mislabelled (first 40):\n{}",
        problems.len(),
        drops.len(),
        problems
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Docker fixtures shared by the daemon scenarios
// ---------------------------------------------------------------------------------------

/// A network with two sleeping containers, their host veths and b's address.
struct Pair {
    a: Container,
    b: Container,
    veth_a: String,
    veth_b: String,
    ip_b: String,
    net: Network,
}

impl Pair {
    fn new(tag: &str) -> Result<Self> {
        let net = Network::create(tag)?;
        let a = Container::sleeper(&format!("{tag}a"), &net)?;
        let b = Container::sleeper(&format!("{tag}b"), &net)?;
        let veth_a = a.host_veth()?;
        let veth_b = b.host_veth()?;
        let ip_b = b.ipv4()?;
        Ok(Self {
            a,
            b,
            veth_a,
            veth_b,
            ip_b,
            net,
        })
    }
}

/// The counter of (`iface`, `direction`, `kind`) in a `/v1/counters` answer.
fn counted(counters: &Value, iface: &str, direction: &str, kind: &str) -> u64 {
    count(counters, iface, direction, kind)
}

/// Every counter of `iface` (all directions and kinds) in a `/v1/counters` answer.
fn counted_on(counters: &Value, iface: &str) -> u64 {
    counters["counters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|row| row["iface"] == iface)
        .filter_map(|row| row["packets"].as_u64())
        .sum()
}

/// Every counter in a `/v1/counters` answer.
fn counted_all(counters: &Value) -> u64 {
    netlab_tests::total(counters)
}

/// A field of `delivery` in a `/v1/counters` answer.
fn delivery(counters: &Value, field: &str) -> Result<u64> {
    counters["delivery"][field]
        .as_u64()
        .with_context(|| format!("/v1/counters has no delivery.{field}: {counters}"))
}

// ---------------------------------------------------------------------------------------
// 3. Flood
// ---------------------------------------------------------------------------------------

/// What one flood showed.
#[derive(Debug)]
struct FloodFigures {
    transmitted: u64,
    received: u64,
    requests_in: u64,
    replies_out: u64,
    counted: u64,
    delivered: u64,
    lost_kernel: u64,
    sampled_out: u64,
    lost_client: u64,
    health_max: Duration,
    health_calls: usize,
    seconds: f64,
}

/// `ping -f -w SECS` from a to b (the host's iputils ping, in a's namespace) while the
/// daemon of `paths` runs and a client reads every event; `/v1/health` is asked every
/// 100 ms meanwhile. Checks the counters against ping's own statistics, and that every
/// counted packet was either delivered to the client or counted as not delivered.
fn flood(paths: &DaemonPaths, pair: &Pair, secs: u32) -> Result<FloodFigures> {
    let pid_a = pair.a.pid()?.to_string();
    // ARP first, so the flood is echo only.
    run_with_timeout(
        {
            let mut warm = Command::new("nsenter");
            warm.args(["-t", &pid_a, "-n", "ping", "-c", "1", "-W", "2", &pair.ip_b]);
            warm
        },
        Duration::from_secs(10),
    )?;
    std::thread::sleep(Duration::from_millis(500));
    let tally = EventTally::open(&paths.socket, "/v1/events")?;
    let before = counters(paths)?;
    ensure!(
        before["lost_events"].is_u64(),
        "/v1/counters has no lost_events: {before}"
    );
    let done = std::sync::atomic::AtomicBool::new(false);
    let (out, health) = std::thread::scope(|scope| -> Result<_> {
        let poller = scope.spawn(|| {
            let mut worst = Duration::ZERO;
            let mut calls = 0;
            let mut failures = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let t0 = Instant::now();
                match http_get(&paths.socket, "/v1/health") {
                    Ok(r) if r.status == 200 => {}
                    Ok(r) => failures.push(format!("HTTP {}", r.status)),
                    Err(e) => failures.push(format!("{e:#}")),
                }
                worst = worst.max(t0.elapsed());
                calls += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            (worst, calls, failures)
        });
        let mut ping = Command::new("nsenter");
        ping.args(["-t", &pid_a, "-n", "ping", "-f", "-q", "-w"])
            .arg(secs.to_string())
            .arg(&pair.ip_b);
        let out = run_with_timeout(ping, Duration::from_secs(u64::from(secs) + 20));
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let health = poller
            .join()
            .map_err(|_| anyhow!("health poller panicked"))?;
        Ok((out?, health))
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let PingTotals {
        transmitted,
        received,
    } = ping::totals(&stdout)
        .with_context(|| format!("no statistics from ping -f: {stdout}{:?}", out.stderr))?;
    std::thread::sleep(SETTLE);
    let after = counters(paths)?;
    let got = tally.close();

    let diff = |iface: &str, direction: &str, kind: &str| {
        counted(&after, iface, direction, kind) - counted(&before, iface, direction, kind)
    };
    let requests_in = diff(&pair.veth_a, "ingress", REQUEST);
    let requests_out = diff(&pair.veth_b, "egress", REQUEST);
    let replies_in = diff(&pair.veth_b, "ingress", REPLY);
    let replies_out = diff(&pair.veth_a, "egress", REPLY);
    let ours = |c: &Value| counted_on(c, &pair.veth_a) + counted_on(c, &pair.veth_b);
    let counted_ours = ours(&after) - ours(&before);
    let counted_everywhere = counted_all(&after) - counted_all(&before);
    let d =
        |field: &str| -> Result<u64> { Ok(delivery(&after, field)? - delivery(&before, field)?) };
    let lost_kernel = d("ring_full")? + d("rate_limited")?;
    let sampled_out = d("sampled_out")?;
    let delivered = got.on(&pair.veth_a) + got.on(&pair.veth_b);
    let (health_max, health_calls, health_failures) = health;
    let figures = FloodFigures {
        transmitted,
        received,
        requests_in,
        replies_out,
        counted: counted_ours,
        delivered,
        lost_kernel,
        sampled_out,
        lost_client: got.lost,
        health_max,
        health_calls,
        seconds: f64::from(secs),
    };
    println!("{figures:?}");

    ensure!(
        transmitted >= 1000,
        "ping -f sent only {transmitted} echo requests in {secs} s: {stdout}"
    );
    ensure!(
        requests_in == transmitted && requests_out == transmitted,
        "ping sent {transmitted} requests; counted {requests_in} on {} ingress, {requests_out} on {} egress",
        pair.veth_a,
        pair.veth_b
    );
    // A reply may still be on its way when ping's deadline ends it: counted, not received.
    ensure!(
        replies_in == replies_out && received <= replies_out && replies_out <= transmitted,
        "ping received {received} of {transmitted}; counted {replies_in} replies on {} ingress, \
         {replies_out} on {} egress",
        pair.veth_b,
        pair.veth_a
    );
    ensure!(
        got.garbage.is_empty(),
        "lines that are not JSON: {:?}",
        got.garbage
    );
    ensure!(
        delivered <= counted_ours,
        "the client got {delivered} events of {} and {}, more than the {counted_ours} packets counted",
        pair.veth_a,
        pair.veth_b
    );
    ensure!(
        counted_ours <= delivered + lost_kernel + sampled_out + got.lost,
        "{counted_ours} packets counted on the pair, but only {delivered} delivered + {lost_kernel} \
         lost in the kernel + {sampled_out} sampled out + {} lost by the client: events vanished",
        got.lost
    );
    ensure!(
        lost_kernel + sampled_out <= counted_everywhere.saturating_sub(got.packet_events),
        "{lost_kernel} lost + {sampled_out} sampled out, but only {counted_everywhere} packets \
         counted and {} delivered everywhere: losses counted that did not happen",
        got.packet_events
    );
    ensure!(
        health_failures.is_empty() && health_max < Duration::from_secs(1),
        "/v1/health during the flood: slowest {health_max:?} of {health_calls} calls; failures: \
         {health_failures:?}"
    );
    Ok(figures)
}

/// `ping -f` between two containers while the daemon runs: the counters equal what ping
/// says it sent and received, every event not delivered is counted (at full rate, then
/// with 1-in-4 sampling and a low rate limit so that events are certainly not all
/// delivered), and `/v1/health` answers within 1 s throughout.
#[test]
fn ping_flood_is_counted_exactly_and_losses_are_accounted() -> Result<()> {
    const SECS: u32 = 3;
    let bin = docker_or_skip!();
    let pair = Pair::new("fl")?;

    let paths = DaemonPaths::new(&bin)?;
    let daemon = paths.start(&[])?;
    let full = flood(&paths, &pair, SECS)?;
    let stopped = daemon.stop(libc::SIGTERM)?;
    ensure!(stopped.status.success(), "daemon exited {}", stopped.status);
    drop(paths);

    let paths = DaemonPaths::new(&bin)?;
    let daemon = paths.start(&["--sample", "4", "--rate-limit", "2000"])?;
    let limited = flood(&paths, &pair, SECS)?;
    ensure!(
        limited.sampled_out > 0 && limited.lost_kernel > 0,
        "with --sample 4 --rate-limit 2000 a flood of {} packets was neither sampled out ({}) \
         nor rate-limited ({})",
        limited.counted,
        limited.sampled_out,
        limited.lost_kernel
    );
    let metrics = http_get(&paths.socket, "/metrics")?;
    ensure!(
        metrics.body.contains("netlab_events_lost_total"),
        "/metrics has no netlab_events_lost_total"
    );
    let stopped = daemon.stop(libc::SIGTERM)?;
    ensure!(stopped.status.success(), "daemon exited {}", stopped.status);
    for (name, f) in [("full rate", &full), ("1:4, 2000/s", &limited)] {
        println!(
            "flood ({name}): {} requests in {:.0} s ({:.0}/s), {} replies; {} packets counted on \
             the pair, {} events delivered, {} lost in the kernel, {} sampled out, {} lost by \
             the client; /v1/health slowest {:?} of {} calls",
            f.transmitted,
            f.seconds,
            f.transmitted as f64 / f.seconds,
            f.received,
            f.counted,
            f.delivered,
            f.lost_kernel,
            f.sampled_out,
            f.lost_client,
            f.health_max,
            f.health_calls
        );
    }
    let _ = (
        &pair.a,
        &pair.b,
        &pair.net,
        full.requests_in,
        full.replies_out,
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 5. Crash
// ---------------------------------------------------------------------------------------

/// Requests counted on `iface` ingress by the daemon of `paths`.
fn requests_on(paths: &DaemonPaths, iface: &str) -> Result<u64> {
    Ok(counted(&counters(paths)?, iface, "ingress", REQUEST))
}

/// Exactly one of the programs of daemon `pid` on each tcx hook of `iface` (no second copy
/// that would count twice), and the foreign filters untouched.
fn attached_once(pid: u32, iface: &str, foreign: &ForeignTc) -> Result<()> {
    netlab_once(pid, iface)?;
    foreign.assert_intact()
}

/// Exactly one of the programs of daemon `pid` on each tcx hook of `iface`, named as it
/// should be. (Other netlab processes may observe the same interface: theirs are ignored.)
fn netlab_once(pid: u32, iface: &str) -> Result<()> {
    let ours = prog_ids_of(pid);
    let ifindex = host_links()?
        .into_iter()
        .find_map(|(idx, name)| (name == iface).then_some(idx))
        .with_context(|| format!("no interface {iface}"))?;
    for (hook, prog) in [
        (Hook::Ingress, "netlab_ingress"),
        (Hook::Egress, "netlab_egress"),
    ] {
        let all = tcx::prog_ids(ifindex, hook)?;
        let mine: Vec<String> = all
            .iter()
            .filter(|id| ours.contains(id))
            .map(|id| prog_name(*id))
            .collect::<Result<_>>()?;
        ensure!(
            mine == [prog],
            "tcx {hook} of {iface} runs {mine:?} of the daemon's programs (all: {all:?}), \
             expected exactly [{prog}]"
        );
    }
    Ok(())
}

/// `netlab daemon` killed with SIGKILL: the next start adopts what it pinned (link files:
/// two per observed interface; one program per hook), pings are counted once, and a tc
/// filter and a BPF program that are not netlab's, on an interface netlab observes, are
/// still there after the crash, the restart and `--cleanup`.
#[test]
fn killed_daemon_is_adopted_and_counts_once() -> Result<()> {
    const BATCH: u32 = 5;
    let bin = docker_or_skip!();
    let before = BpfSnapshot::take()?;
    let pair = Pair::new("cr")?;
    let foreign = ForeignTc::add(&pair.veth_a)?;
    let paths = DaemonPaths::new(&bin)?;

    let first = paths.start(&[])?;
    let first_pid = first.pid();
    pair.a.ping(&pair.b.name, BATCH)?;
    std::thread::sleep(SETTLE);
    let n1 = requests_on(&paths, &pair.veth_a)?;
    ensure!(
        n1 == u64::from(BATCH),
        "{n1} requests counted on {}, expected {BATCH}",
        pair.veth_a
    );
    attached_once(first_pid, &pair.veth_a, &foreign)?;

    // `first_pid` is our unreaped child.
    signal(first_pid, libc::SIGKILL).context("SIGKILL")?;
    let crashed = first.wait(Duration::from_secs(10))?;
    ensure!(
        crashed.status.signal() == Some(libc::SIGKILL),
        "the daemon ended with {} instead of SIGKILL",
        crashed.status
    );
    let left = pinned_links(&paths.pin_dir)?;
    ensure!(
        left.iter().any(|p| p.iface == pair.veth_a),
        "the killed daemon left no pinned link of {}: {left:?}",
        pair.veth_a
    );
    // The pinned links keep counting while no daemon runs.
    pair.a.ping(&pair.b.name, BATCH)?;
    foreign.assert_intact()?;

    let second = paths.start(&[])?;
    let second_pid = second.pid();
    let observed_now = eventually("the adopted links", FOLLOW_TIMEOUT, || {
        nothing_left_of_gone_interfaces(&paths, second_pid)
    })?;
    attached_once(second_pid, &pair.veth_a, &foreign)?;
    netlab_once(second_pid, &pair.veth_b)?;
    let n2 = requests_on(&paths, &pair.veth_a)?;
    ensure!(
        n2 == u64::from(2 * BATCH),
        "after the crash and restart: {n2} requests counted on {}, expected {} (the batch \
         before the crash and the one while no daemon ran)",
        pair.veth_a,
        2 * BATCH
    );
    pair.a.ping(&pair.b.name, BATCH)?;
    std::thread::sleep(SETTLE);
    let n3 = requests_on(&paths, &pair.veth_a)?;
    ensure!(
        n3 - n2 == u64::from(BATCH),
        "{BATCH} pings after the restart were counted {} times on {}",
        n3 - n2,
        pair.veth_a
    );

    let second_progs = prog_ids_of(second_pid);
    let stopped = second.stop(libc::SIGTERM)?;
    ensure!(stopped.status.success(), "daemon exited {}", stopped.status);
    paths.cleanup()?;
    ensure!(
        !paths.pin_dir.exists(),
        "--cleanup left {}",
        paths.pin_dir.display()
    );
    foreign.assert_intact().context("after --cleanup")?;
    let ifindex = host_links()?
        .into_iter()
        .find_map(|(idx, name)| (name == pair.veth_a).then_some(idx))
        .context("veth gone")?;
    for hook in Hook::BOTH {
        let left: Vec<u32> = tcx::prog_ids(ifindex, hook)?
            .into_iter()
            .filter(|id| second_progs.contains(id))
            .collect();
        ensure!(
            left.is_empty(),
            "after --cleanup tcx {hook} of {} still runs the daemon's programs {left:?}",
            pair.veth_a
        );
    }
    assert_detached("-", &[], &before).context("after netlab daemon --cleanup")?;
    println!(
        "crash: {observed_now} interfaces observed, {} link files pinned after the restart; \
         {n1} + {BATCH} (while down) + {BATCH} requests counted = {n3}; foreign filters intact \
         (BPF program {:?})",
        2 * observed_now,
        foreign.prog_id
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 2. Docker engine restarted
// ---------------------------------------------------------------------------------------

/// A hand-made leg: a veth whose host end `host_end` is a port of `bridge` and whose other
/// end is `eth0` with `cidr` in namespace `ns`. Returns the guard of the host end.
fn leg(bridge: &str, ns: &Netns, host_end: &str, cidr: &str) -> Result<HostLink> {
    let peer = format!("{host_end}p");
    let link = HostLink::veth(host_end, &peer)?;
    ip(&["link", "set", host_end, "master", bridge])?;
    ip(&["link", "set", host_end, "up"])?;
    ip(&["link", "set", &peer, "netns", ns.name()])?;
    ns.exec(&format!(
        "ip link set {peer} name eth0 && ip addr add {cidr} dev eth0 && ip link set eth0 up"
    ))?;
    Ok(link)
}

/// A ping that runs until it is told to stop (SIGINT, then its statistics).
struct LongPing {
    process: Background,
}

impl LongPing {
    /// `ip netns exec <ns> ping -i 0.2 -W 1 -w <deadline> <target>`.
    fn start(ns: &Netns, target: &str, deadline: Duration) -> Result<Self> {
        let mut ping = in_ns(ns.name(), "ping");
        ping.args(["-i", "0.2", "-W", "1", "-w"])
            .arg(deadline.as_secs().to_string())
            .arg(target);
        Ok(Self {
            process: Background::spawn(&mut ping, Stdout::Keep)?,
        })
    }

    /// SIGINT (ping prints its statistics and exits); returns (transmitted, received).
    fn stop(self) -> Result<(u64, u64)> {
        // `ip netns exec` execs ping in place: the signal reaches ping.
        let text = self.process.stop(libc::SIGINT)?.stdout;
        let totals =
            ping::totals(&text).with_context(|| format!("no statistics from ping: {text}"))?;
        Ok((totals.transmitted, totals.received))
    }
}

/// The host's dockerd is stopped (SIGTERM) and started again as `cargo xtask` starts it,
/// while the daemon runs: pings between two namespaces on hand-made legs of a Docker bridge
/// keep being counted during the outage (every request sent is counted), the API answers
/// throughout, and once the engine answers again new containers are labelled again (netlab
/// reconnects with a back-off of up to 30 s). The engine is running again at the end
/// whatever happens, with the containers that were running before.
#[test]
fn docker_engine_restart_is_survived() -> Result<()> {
    const RECONNECT_LIMIT: Duration = Duration::from_secs(40);
    let bin = docker_or_skip!();
    let net = Network::create("eng")?;
    let subnet = netlab_tests::docker::docker(&[
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        &net.name,
    ])?;
    let (_, cidr_a) = subnet_host(subnet.trim(), 200)?;
    let (ip_b, cidr_b) = subnet_host(subnet.trim(), 201)?;
    let ns_a = Netns::unique("enga")?;
    let ns_b = Netns::unique("engb")?;
    let tag = std::process::id() % 100_000;
    let leg_a = leg(&net.bridge(), &ns_a, &format!("nlt-ea{tag}"), &cidr_a)?;
    let _leg_b = leg(&net.bridge(), &ns_b, &format!("nlt-eb{tag}"), &cidr_b)?;
    let paths = DaemonPaths::new(&bin)?;
    let mut daemon = paths.start(&[])?;
    eventually("the hand-made legs observed", FOLLOW_TIMEOUT, || {
        let seen = observed(&paths)?;
        ensure!(
            seen.values().any(|n| *n == leg_a.name),
            "{} not observed: {seen:?}",
            leg_a.name
        );
        Ok(())
    })?;
    let events = EventStream::open(&paths.socket, "/v1/events?kind=icmp-echo-request")?;
    let start = requests_on(&paths, &leg_a.name)?;
    let ping = LongPing::start(&ns_a, &ip_b.to_string(), Duration::from_secs(180))?;
    std::thread::sleep(Duration::from_secs(2));

    let mut outage = EngineOutage::begin()?;
    let down_at = Instant::now();
    let restarted_before = outage.running_before().to_vec();
    let during = requests_on(&paths, &leg_a.name)?;
    std::thread::sleep(Duration::from_secs(3));
    let later = requests_on(&paths, &leg_a.name)?;
    let health = get_json(&paths.socket, "/v1/health")?;
    ensure!(
        !engine_answers(),
        "the engine answers again by itself: the outage is not one"
    );
    ensure!(
        later > during,
        "no echo request counted on {} during the outage ({during} then {later})",
        leg_a.name
    );
    let answered = outage.end()?;
    let outage_len = answered - down_at;
    ensure!(
        daemon.is_running()?,
        "the daemon exited during the outage: {}",
        daemon.stderr_so_far()
    );

    // Every request sent across the outage was counted.
    let (transmitted, received) = ping.stop()?;
    std::thread::sleep(SETTLE);
    let end = requests_on(&paths, &leg_a.name)?;
    println!(
        "engine restart: dockerd down for {outage_len:?} (health during it: {health}); \
         {transmitted} requests sent across it, {} counted, {received} answered; {} containers \
         were running before",
        end - start,
        restarted_before.len()
    );
    ensure!(
        end - start == transmitted,
        "ping sent {transmitted} echo requests across the outage; {} counted on {}",
        end - start,
        leg_a.name
    );

    // New containers are labelled once netlab has reconnected.
    let c = Container::sleeper("engc", &net)?;
    let d = Container::sleeper("engd", &net)?;
    let reconnect = loop {
        c.ping(&d.name, 1)?;
        std::thread::sleep(Duration::from_millis(300));
        if labelled(&events, &c.name)? {
            break answered.elapsed();
        }
        ensure!(
            answered.elapsed() < RECONNECT_LIMIT,
            "{} not labelled {RECONNECT_LIMIT:?} after the engine answered again (health: {}); \
             daemon stderr:\n{}",
            c.name,
            get_json(&paths.socket, "/v1/health")?,
            daemon.stderr_so_far()
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    let docker_again = get_json(&paths.socket, "/v1/health")?;
    let stopped = daemon.stop(libc::SIGTERM)?;
    ensure!(stopped.status.success(), "daemon exited {}", stopped.status);
    println!(
        "engine restart: new containers labelled {reconnect:?} after the engine answered \
         (health then: {docker_again})"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 6. Bad input
// ---------------------------------------------------------------------------------------

/// Runs netlab with `args` (and `env`), expecting it to fail at once with exit code 2,
/// nothing on stdout and exactly one stderr line containing `expected`.
fn fails_with_one_line(
    bin: &Path,
    prefix: &[&str],
    args: &[&str],
    env: &[(&str, &str)],
    expected: &str,
) -> Result<String> {
    let mut command = if prefix.is_empty() {
        Command::new(bin)
    } else {
        let mut c = Command::new(prefix[0]);
        c.args(&prefix[1..]).arg(bin);
        c
    };
    command.args(args).env("NETLAB_SOCKET", unused_socket());
    for (key, value) in env {
        command.env(key, value);
    }
    let shown = format!("{} netlab {}", prefix.join(" "), args.join(" "));
    let out = run_with_timeout(command, COMMAND_TIMEOUT)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    ensure!(
        out.status.code() == Some(2) && out.stdout.is_empty(),
        "`{shown}` exited {} (expected 2) with stdout {:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    ensure!(
        lines.len() == 1 && lines[0].contains(expected),
        "`{shown}`: expected one stderr line mentioning {expected:?}, got {} lines:\n{stderr}",
        lines.len()
    );
    Ok(lines[0].to_owned())
}

/// What `netlab watch --help` says `--kind` takes, and what the error for a bad kind
/// offers: each the list from `arp` to the end of the sentence.
fn kinds_listed(text: &str, after: &str) -> Option<String> {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let start = flat.find(after)? + after.len();
    let list = &flat[start..];
    let end = list.find(';').unwrap_or(list.len());
    Some(list[..end].trim().to_owned())
}

/// Invalid option values, missing arguments, an unwritable capture file and an
/// unprivileged user: each is one clear stderr line and exit code 2, and nothing is
/// attached afterwards. The capture file fails before anything else is done: even with
/// `RUST_LOG=debug` its error is the only line.
#[test]
fn bad_flags_and_no_privilege_fail_with_one_line() -> Result<()> {
    let bin = netlab_or_skip!();
    let before = BpfSnapshot::take()?;
    let mut problems = Vec::new();
    let mut shown = Vec::new();
    let unwritable = "/nonexistent/dir/x.pcapng";
    // Arguments, and what the one line must say (all of it).
    let cases: [(&[&str], &[&str]); 11] = [
        (&["watch", "--sample", "0"], &["--sample"]),
        (&["watch", "--peer", "10.0.0.2"], &["10.0.0.2", "HOST:PORT"]),
        (
            &["daemon", "--peer", "b=fd00::2:9464"],
            &["fd00::2", "brackets"],
        ),
        (&["watch", "--duration", "-1"], &["-1"]),
        (&["watch", "--count", "x"], &["--count"]),
        (&["watch", "--kind", "tcp"], &["tcp", "arp-unanswered"]),
        (&["watch", "--attach", "foo"], &["foo", "auto"]),
        (&["daemon", "--sample", "0"], &["--sample"]),
        (
            &["diagnose", "Alpha"],
            &["<DST>", "usage: netlab diagnose <SRC> <DST>"],
        ),
        (&["diagnose"], &["<SRC>", "<DST>", "usage: netlab diagnose"]),
        (&["capture"], &["--write", "usage: netlab capture"]),
    ];
    for (args, expected) in cases {
        match fails_with_one_line(&bin, &[], args, &[], expected[0]) {
            Ok(line) => {
                let missing: Vec<&&str> = expected.iter().filter(|e| !line.contains(**e)).collect();
                if missing.is_empty() {
                    shown.push(line);
                } else {
                    problems.push(format!(
                        "`netlab {}`: {line:?} does not say {missing:?}",
                        args.join(" ")
                    ));
                }
            }
            Err(err) => problems.push(format!("{err:#}")),
        }
    }
    // With every debug line on, a capture that asked Docker or loaded anything before
    // trying its file would print more than its one line.
    let capture = ["capture", "-w", unwritable, "--duration", "1"];
    match fails_with_one_line(&bin, &[], &capture, &[("RUST_LOG", "debug")], unwritable) {
        Ok(line) if line.contains("No such file or directory") => shown.push(line),
        Ok(line) => problems.push(format!("`netlab {}`: {line:?}", capture.join(" "))),
        Err(err) => problems.push(format!("{err:#}")),
    }
    ensure!(
        !Path::new(unwritable).exists(),
        "{unwritable} exists after the refused capture"
    );
    // `--kind`: the help and the error list the same kinds.
    let help = run_with_timeout(
        {
            let mut c = Command::new(&bin);
            c.args(["watch", "--help"]);
            c
        },
        COMMAND_TIMEOUT,
    )?;
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let refused = fails_with_one_line(&bin, &[], &["watch", "--kind", "tcp"], &[], "tcp")?;
    let in_help = kinds_listed(&help, "Only these kinds (repeatable): ");
    let in_error = kinds_listed(&refused, "': use ");
    if in_help.is_none() || in_help != in_error {
        problems.push(format!(
            "--kind: the help lists {in_help:?}, the error {in_error:?}:\n{help}"
        ));
    }
    let public = PublicCopy::new(&bin)?;
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
    ];
    // A daemon refused for lack of privilege must not create its socket or pin directory.
    let refused = DaemonPaths::new(&bin)?;
    let socket = refused.socket.to_string_lossy().into_owned();
    let pin_dir = refused.pin_dir.to_string_lossy().into_owned();
    for args in [
        &["watch", "--duration", "1"][..],
        &["diagnose", "a", "b"],
        &["daemon", "--socket", &socket, "--pin-dir", &pin_dir],
    ] {
        match fails_with_one_line(&public.bin, &nobody, args, &[], "CAP_BPF") {
            Ok(line) => shown.push(line),
            Err(err) => problems.push(format!("{err:#}")),
        }
    }
    ensure!(
        !refused.pin_dir.exists() && !refused.socket.exists(),
        "the refused daemon created {} or {}",
        refused.pin_dir.display(),
        refused.socket.display()
    );
    assert_detached("-", &[], &before)?;
    for line in &shown {
        println!("  {line}");
    }
    ensure!(
        problems.is_empty(),
        "{} of the bad inputs are not one clear line with exit code 2:\n{}",
        problems.len(),
        problems.join("\n")
    );
    Ok(())
}

/// Arguments, extra environment, and what the one stderr line must mention.
type BadCase<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);

/// Unknown containers and networks (in `watch` and `diagnose`), and a Docker socket that
/// does not exist: one clear stderr line each, exit code 2, nothing attached afterwards.
#[test]
fn unknown_names_and_missing_engine_fail_with_one_line() -> Result<()> {
    let bin = docker_or_skip!();
    let before = BpfSnapshot::take()?;
    let nope = netlab_tests::host::netns::unique_name("nope");
    let nope_net = netlab_tests::host::netns::unique_name("nonet");
    let net = Network::create("bad")?;
    let real = Container::sleeper("real", &net)?;
    let cases: Vec<BadCase<'_>> = vec![
        (vec!["watch", "--container", &nope], vec![], &nope),
        (vec!["watch", "--network", &nope_net], vec![], &nope_net),
        (vec!["diagnose", &nope, &real.name], vec![], &nope),
        (vec!["diagnose", &real.name, &nope], vec![], &nope),
        (
            vec!["diagnose", "a", "b"],
            vec![("DOCKER_HOST", "unix:///nonexistent.sock")],
            "nonexistent.sock",
        ),
    ];
    let mut problems = Vec::new();
    let mut shown = Vec::new();
    for (args, env, expected) in &cases {
        match fails_with_one_line(&bin, &[], args, env, expected) {
            Ok(line) => shown.push(line),
            Err(err) => problems.push(format!("{err:#}")),
        }
    }
    assert_detached("-", &[], &before)?;
    for line in &shown {
        println!("  {line}");
    }
    ensure!(
        problems.is_empty(),
        "{} of the bad inputs are not one clear line with exit code 2:\n{}",
        problems.len(),
        problems.join("\n")
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 7. Least privilege
// ---------------------------------------------------------------------------------------

/// `served` or `refused`, for a client's outcome.
fn served(out: &std::process::Output) -> &'static str {
    if out.status.success() {
        "served"
    } else {
        "refused"
    }
}

/// What the daemon keeps: CAP_NET_ADMIN (12), CAP_SYS_PTRACE (19), CAP_SYS_ADMIN (21),
/// CAP_PERFMON (38), CAP_BPF (39).
const DAEMON_CAPS: [u32; 5] = [12, 19, 21, 38, 39];
/// CAP_NET_RAW: kept for the map's diagnose (echo requests from a container's namespace),
/// unless the daemon runs `--read-only`.
const CAP_NET_RAW: u32 = 13;

/// Where the threads of process `pid` differ from exactly `caps` in their effective,
/// permitted and bounding sets (or have any inheritable or ambient one); and how many
/// threads there were and how many had exactly `caps`.
fn caps_problems(pid: u32, caps: &[u32]) -> Result<(Vec<String>, usize, usize)> {
    let want = cap_mask(caps);
    let mut problems = Vec::new();
    let threads = Caps::of_threads(pid)?;
    for (tid, c) in &threads {
        for (set, value) in [
            ("CapEff", c.effective),
            ("CapPrm", c.permitted),
            ("CapBnd", c.bounding),
        ] {
            if value != want {
                problems.push(format!(
                    "thread {tid}: {set} {value:016x} = {:?}, expected {want:016x} = {caps:?}",
                    cap_numbers(value)
                ));
            }
        }
        if c.inheritable != 0 || c.ambient != 0 {
            problems.push(format!(
                "thread {tid}: CapInh {:016x}, CapAmb {:016x}, expected none",
                c.inheritable, c.ambient
            ));
        }
    }
    let exact = threads
        .values()
        .filter(|c| c.effective == want && c.permitted == want && c.bounding == want)
        .count();
    Ok((problems, threads.len(), exact))
}

/// While the daemon runs, every one of its threads has exactly the capabilities it needs in
/// its effective, permitted and bounding sets (none inheritable or ambient): the five it
/// observes with, and CAP_NET_RAW for the map's diagnose unless `--read-only`; its
/// socket is refused to a user outside the socket's group (and served to one in it); it
/// listens on TCP on loopback only, and a non-loopback `--listen` without `--allow-remote`
/// is refused before anything is attached.
#[test]
fn daemon_keeps_least_privilege() -> Result<()> {
    let bin = netlab_or_skip!();
    let before = BpfSnapshot::take()?;
    let port = netlab_tests::daemon::free_loopback_port()?;
    let paths = DaemonPaths::new(&bin)?;
    let daemon = paths.start(&["--listen", &format!("127.0.0.1:{port}")])?;
    let pid = daemon.pid();
    // Let the runtime start whatever threads it starts on the first requests.
    for _ in 0..5 {
        get_json(&paths.socket, "/v1/health")?;
        counters(&paths)?;
    }
    let mut caps = DAEMON_CAPS.to_vec();
    caps.push(CAP_NET_RAW);
    caps.sort_unstable();
    let (mut problems, threads, exact) = caps_problems(pid, &caps)?;

    // The socket: mode 0660, its group's members only.
    let meta = std::fs::metadata(&paths.socket)?;
    let curl_as = |groups: Option<u32>| -> Result<std::process::Output> {
        let mut curl = Command::new("setpriv");
        curl.args(["--reuid=65534", "--regid=65534"]);
        match groups {
            None => curl.arg("--clear-groups"),
            Some(gid) => curl.arg(format!("--groups={gid}")),
        };
        curl.args([
            "--inh-caps=-all",
            "curl",
            "-sS",
            "--max-time",
            "5",
            "--unix-socket",
        ])
        .arg(&paths.socket)
        .arg("http://netlab/v1/health");
        run_with_timeout(curl, COMMAND_TIMEOUT)
    };
    let outsider = curl_as(None)?;
    if outsider.status.success() || !outsider.stdout.is_empty() {
        problems.push(format!(
            "uid 65534 outside group {} got an answer on the socket: {}",
            std::os::unix::fs::MetadataExt::gid(&meta),
            String::from_utf8_lossy(&outsider.stdout)
        ));
    }
    let member = curl_as(Some(std::os::unix::fs::MetadataExt::gid(&meta)))?;
    if !member.status.success() {
        problems.push(format!(
            "uid 65534 in the socket's group {} was refused: {}",
            std::os::unix::fs::MetadataExt::gid(&meta),
            String::from_utf8_lossy(&member.stderr)
        ));
    }

    // TCP: the loopback address it was given, nothing else.
    let listening = netlab_tests::host::cmd::run(Command::new("ss").args(["-Hltnp"]))?;
    let mine: Vec<&str> = listening
        .lines()
        .filter(|l| l.contains(&format!("pid={pid},")))
        .collect();
    let addresses: Vec<&str> = mine
        .iter()
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    if addresses != [format!("127.0.0.1:{port}").as_str()] {
        problems.push(format!(
            "the daemon listens on TCP {addresses:?}, expected only 127.0.0.1:{port}"
        ));
    }
    let stopped = daemon.stop(libc::SIGTERM)?;
    ensure!(stopped.status.success(), "daemon exited {}", stopped.status);
    drop(paths);

    // `--read-only`: it never acts, so CAP_NET_RAW goes with the rest.
    let read_only_paths = DaemonPaths::new(&bin)?;
    let read_only = read_only_paths.start(&["--read-only"])?;
    for _ in 0..5 {
        get_json(&read_only_paths.socket, "/v1/health")?;
    }
    let (ro_problems, ro_threads, ro_exact) = caps_problems(read_only.pid(), &DAEMON_CAPS)?;
    problems.extend(ro_problems.into_iter().map(|p| format!("--read-only: {p}")));
    let stopped = read_only.stop(libc::SIGTERM)?;
    ensure!(stopped.status.success(), "daemon exited {}", stopped.status);
    drop(read_only_paths);

    for listen in ["0.0.0.0", "[::]"] {
        let refused = DaemonPaths::new(&bin)?;
        let addr = format!("{listen}:{port}");
        let mut args = vec!["daemon", "--listen", &addr, "--socket"];
        let socket = refused.socket.to_string_lossy().into_owned();
        let pin_dir = refused.pin_dir.to_string_lossy().into_owned();
        args.extend([socket.as_str(), "--pin-dir", pin_dir.as_str()]);
        match fails_with_one_line(&bin, &[], &args, &[], "--allow-remote") {
            Ok(_) => {}
            Err(err) => problems.push(format!("{err:#}")),
        }
        if refused.pin_dir.exists() || refused.socket.exists() {
            problems.push(format!(
                "the refused daemon (--listen {addr}) created {} or {}",
                refused.pin_dir.display(),
                refused.socket.display()
            ));
        }
    }
    assert_detached("-", &[], &before)?;
    println!(
        "least privilege: {exact} of {threads} threads with exactly CapEff/CapPrm/CapBnd \
         {caps:?} ({ro_exact} of {ro_threads} with {DAEMON_CAPS:?} when --read-only); socket: \
         outsider {}, group member {}; TCP listeners {addresses:?}",
        served(&outsider),
        served(&member),
    );
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

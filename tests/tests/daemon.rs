//! Privileged tests of `netlab daemon` (and of `netlab capture`) with a real Docker engine.
//! Run by `cargo xtask test` (root, `NETLAB_BIN` set, a Docker engine, the lab's images):
//! `cargo test -p netlab-tests --test daemon -- --test-threads=1`.
//!
//! Each test starts its own daemon on its own socket (`/tmp/nlt-sock-<pid>-<n>.sock`) and
//! pin directory (`/sys/fs/bpf/nlt-pin-<pid>-<n>`), and makes its own network and
//! containers; guards stop the daemon, run `netlab daemon --cleanup` and remove the rest.
//! Every netlab command runs with `NETLAB_SOCKET` set to the test's own socket. Packets only
//! go between the test's containers, a bounded number of times; the API is only ever asked
//! over the unix socket and on loopback.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use netlab_tests::bpf_state::{assert_detached, BpfSnapshot};
use netlab_tests::daemon::{
    free_loopback_port, get_json, http_get, parse_metrics, run_with_input, tcp_get, topology_json,
    unused_socket, Background, DaemonPaths, EventStream, StalledClient, COMMAND_TIMEOUT,
    EXIT_TIMEOUT, WATCH_READY_MARKER,
};
use netlab_tests::docker::{host_veth, Container, EnvWrapper, HostNetns, Network};
use netlab_tests::host::process::signal;
use netlab_tests::watch::READY_TIMEOUT;
use netlab_tests::{count, docker_or_skip, run_with_timeout, Output, Watch};
use serde_json::Value;

const REQUEST: &str = "icmp-echo-request";
const REPLY: &str = "icmp-echo-reply";
/// Time for the last packets' events to go through the daemon.
const SETTLE: Duration = Duration::from_millis(1000);
/// How long a client may wait for events it should get.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// A fresh network with two sleeping containers, and their host veths (from `netlab
/// topology --json`, asked without any daemon).
struct Pair {
    a: Container,
    b: Container,
    veth_a: String,
    veth_b: String,
    net: Network,
}

impl Pair {
    fn new(bin: &Path, tag: &str) -> Result<Self> {
        let net = Network::create(tag)?;
        let a = Container::sleeper(&format!("{tag}a"), &net)?;
        let b = Container::sleeper(&format!("{tag}b"), &net)?;
        let topo = topology_json(bin, &unused_socket())?;
        let veth_a = host_veth(&topo, &a.name, "eth0")?;
        let veth_b = host_veth(&topo, &b.name, "eth0")?;
        Ok(Self {
            a,
            b,
            veth_a,
            veth_b,
            net,
        })
    }
}

/// Echo requests counted on `iface` ingress in a summary-shaped value (`/v1/counters`).
fn requests_in(counters: &Value, iface: &str) -> u64 {
    count(counters, iface, "ingress", REQUEST)
}

/// Drops counted with `reason` in a `/v1/counters` answer (0 when none).
fn drops_of(counters: &Value, reason: &str) -> u64 {
    counters["drops"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["reason"] == reason)
        .filter_map(|d| d["packets"].as_u64())
        .sum()
}

/// Runs a command that must fail at once; returns (exit code, stderr lines).
fn failing(command: Command) -> Result<(Option<i32>, Vec<String>)> {
    let out = run_with_timeout(command, COMMAND_TIMEOUT)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    Ok((
        out.status.code(),
        stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect(),
    ))
}

/// One client never reads its event stream; the other still gets every event, and the API
/// keeps answering.
#[test]
fn a_stalled_client_does_not_hold_back_the_others() -> Result<()> {
    const PINGS: u32 = 20;
    let bin = docker_or_skip!();
    let pair = Pair::new(&bin, "st")?;
    let paths = DaemonPaths::new(&bin)?;
    let daemon = paths.start(&[])?;

    let stalled = StalledClient::open(&paths.socket, "/v1/events")?;
    let reader = EventStream::open(&paths.socket, "/v1/events?kind=icmp")?;
    let started = Instant::now();
    pair.a.ping(&pair.b.name, PINGS)?;
    let health = get_json(&paths.socket, "/v1/health")?;
    ensure!(
        health["status"] == "ok" && health["clients"].as_u64().is_some_and(|n| n >= 2),
        "/v1/health during the stall: {health}"
    );

    let is_ours = |e: &Value| {
        e["kind"] == REQUEST
            && e["direction"] == "ingress"
            && text(e, "/iface/name") == Some(pair.veth_a.as_str())
    };
    let events = reader.wait_for(EVENT_TIMEOUT, |events| {
        events.iter().filter(|e| is_ours(e)).count() >= PINGS as usize
    })?;
    std::thread::sleep(SETTLE);
    let events = {
        let later = reader.events()?;
        if later.len() >= events.len() {
            later
        } else {
            events
        }
    };
    let ours: Vec<&Value> = events.iter().filter(|e| is_ours(e)).collect();
    let seqs: BTreeSet<u64> = ours
        .iter()
        .filter_map(|e| e.pointer("/icmp/seq").and_then(Value::as_u64))
        .collect();
    ensure!(
        ours.len() == PINGS as usize && seqs.len() == PINGS as usize,
        "the reading client got {} {REQUEST} events on {} ingress (seqs {seqs:?}), \
         expected {PINGS}; lost notices: {:?}",
        ours.len(),
        pair.veth_a,
        events
            .iter()
            .filter(|e| e["kind"] == "lost")
            .collect::<Vec<_>>()
    );
    let labelled = ours.iter().all(|e| {
        text(e, "/src/container") == Some(pair.a.name.as_str())
            && text(e, "/dst/container") == Some(pair.b.name.as_str())
    });
    ensure!(
        labelled,
        "events not labelled {} -> {}",
        pair.a.name,
        pair.b.name
    );
    let health = get_json(&paths.socket, "/v1/health")?;
    ensure!(
        health["status"] == "ok",
        "/v1/health after the pings: {health}"
    );
    println!(
        "{PINGS} pings with a stalled client: {:?}; health {health}",
        started.elapsed()
    );
    drop(stalled);
    drop(reader);
    let stopped = daemon.stop(libc::SIGTERM)?;
    ensure!(
        stopped.status.success(),
        "daemon exited {}: {}",
        stopped.status,
        stopped.stderr
    );
    Ok(())
}

/// A burst far larger than what the kernel and the daemon buffer for one client: the
/// stalled client's socket fills up, and the reading client still gets every echo request
/// the daemon counted.
#[test]
fn a_stalled_client_with_full_buffers_does_not_hold_back_the_others() -> Result<()> {
    const BURST: u32 = 3000;
    /// Unread bytes that show the daemon really had to hold data back for the stalled client.
    const FULL: usize = 64 * 1024;
    let bin = docker_or_skip!();
    let pair = Pair::new(&bin, "sb")?;
    let paths = DaemonPaths::new(&bin)?;
    let _daemon = paths.start(&[])?;
    let stalled = StalledClient::open(&paths.socket, "/v1/events")?;
    let reader = EventStream::open(&paths.socket, "/v1/events?kind=icmp")?;

    let started = Instant::now();
    let burst = BURST.to_string();
    let ping = pair.a.exec(&[
        "ping",
        "-q",
        "-c",
        &burst,
        "-i",
        "0.002",
        "-W",
        "2",
        &pair.b.name,
    ])?;
    let shown = String::from_utf8_lossy(&ping.stdout).into_owned();
    ensure!(
        shown.contains(&format!("{BURST} packets transmitted")),
        "ping -c {BURST} from {} ({}):\n{shown}{}",
        pair.a.name,
        ping.status,
        String::from_utf8_lossy(&ping.stderr)
    );
    let pinged = started.elapsed();
    std::thread::sleep(SETTLE);
    let counters = get_json(&paths.socket, "/v1/counters")?;
    let counted = requests_in(&counters, &pair.veth_a);
    ensure!(
        counted == u64::from(BURST),
        "/v1/counters: {counted} requests on {} ingress, expected {BURST}; delivery {}",
        pair.veth_a,
        counters["delivery"]
    );
    let is_ours = |e: &Value| {
        e["kind"] == REQUEST
            && e["direction"] == "ingress"
            && text(e, "/iface/name") == Some(pair.veth_a.as_str())
    };
    let events = reader.wait_for(EVENT_TIMEOUT, |events| {
        events.iter().filter(|e| is_ours(e)).count() as u64 >= counted
    })?;
    let received = events.iter().filter(|e| is_ours(e)).count() as u64;
    let lost: Vec<&Value> = events.iter().filter(|e| e["kind"] == "lost").collect();
    ensure!(
        received == counted && lost.is_empty(),
        "the reading client got {received} of {counted} {REQUEST} events on {} ingress; \
         lost notices {lost:?}; delivery {}",
        pair.veth_a,
        counters["delivery"]
    );
    let unread = stalled.unread_bytes()?;
    ensure!(
        unread >= FULL,
        "the stalled client holds only {unread} unread bytes: it never stalled the daemon"
    );
    let health = get_json(&paths.socket, "/v1/health")?;
    ensure!(
        health["status"] == "ok",
        "/v1/health after the burst: {health}"
    );
    println!(
        "burst of {BURST} pings in {pinged:?}; the reader got all {received}; \
         the stalled client has {unread} bytes unread; health {health}"
    );
    Ok(())
}

/// `/metrics` passes `promtool check metrics` and counts exactly the pings sent since the
/// daemon started.
#[test]
fn metrics_pass_promtool_and_count_the_pings() -> Result<()> {
    const PINGS: u32 = 4;
    let bin = docker_or_skip!();
    let pair = Pair::new(&bin, "mt")?;
    let paths = DaemonPaths::new(&bin)?;
    let _daemon = paths.start(&[])?;
    pair.a.ping(&pair.b.name, PINGS)?;
    std::thread::sleep(SETTLE);

    let page = http_get(&paths.socket, "/metrics")?;
    ensure!(
        page.status == 200,
        "/metrics: HTTP {}: {}",
        page.status,
        page.body
    );
    let file = std::env::temp_dir().join(format!("nlt-metrics-{}.txt", std::process::id()));
    std::fs::write(&file, &page.body)?;
    let mut promtool = Command::new("promtool");
    promtool.args(["check", "metrics"]);
    let checked = run_with_input(promtool, &file, COMMAND_TIMEOUT);
    let _ = std::fs::remove_file(&file);
    let checked = checked.context("running promtool (`cargo xtask setup` installs it)")?;
    ensure!(
        checked.status.success() && checked.stderr.is_empty(),
        "promtool check metrics: {}\n--- stdout:\n{}--- stderr:\n{}--- page:\n{}",
        checked.status,
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr),
        page.body
    );

    let samples = parse_metrics(&page.body)?;
    let series = |container: &str, direction: &str, kind: &str| -> Vec<f64> {
        samples
            .iter()
            .filter(|s| {
                s.name == "netlab_packets_total"
                    && s.has(&[
                        ("container", container),
                        ("direction", direction),
                        ("kind", kind),
                    ])
            })
            .map(|s| s.value)
            .collect()
    };
    let n = f64::from(PINGS);
    for (container, direction, kind) in [
        (pair.a.name.as_str(), "ingress", REQUEST),
        (pair.b.name.as_str(), "egress", REQUEST),
        (pair.b.name.as_str(), "ingress", REPLY),
        (pair.a.name.as_str(), "egress", REPLY),
    ] {
        let found = series(container, direction, kind);
        ensure!(
            found == [n],
            "netlab_packets_total{{container=\"{container}\",direction=\"{direction}\",\
             kind=\"{kind}\"}}: {found:?}, expected one series = {n}\n--- page:\n{}",
            page.body
        );
    }
    let labelled = samples.iter().any(|s| {
        s.name == "netlab_packets_total"
            && s.has(&[
                ("container", pair.a.name.as_str()),
                ("network", pair.net.name.as_str()),
                ("iface", pair.veth_a.as_str()),
            ])
    });
    ensure!(
        labelled,
        "no series of {} labelled network {} iface {}:\n{}",
        pair.a.name,
        pair.net.name,
        pair.veth_a,
        page.body
    );
    Ok(())
}

/// The pinned links keep counting while the daemon is down, the next daemon adds up, and
/// `--cleanup` leaves nothing behind.
#[test]
fn counting_continues_across_restarts_and_cleanup_removes_everything() -> Result<()> {
    const BATCH: u32 = 5;
    let bin = docker_or_skip!();
    let before = BpfSnapshot::take()?;
    let pair = Pair::new(&bin, "rs")?;
    let paths = DaemonPaths::new(&bin)?;

    let first = paths.start(&[])?;
    pair.a.ping(&pair.b.name, BATCH)?;
    std::thread::sleep(SETTLE);
    let counters = get_json(&paths.socket, "/v1/counters")?;
    ensure!(
        requests_in(&counters, &pair.veth_a) == u64::from(BATCH),
        "after batch 1: {} requests on {}: {counters}",
        requests_in(&counters, &pair.veth_a),
        pair.veth_a
    );
    // Every echo reply is also freed by the kernel's ping handler (NO_SOCKET: busybox's
    // raw socket already took its copy), a drop counted by reason in a pinned map.
    let no_socket_1 = drops_of(&counters, "NO_SOCKET");
    let stopped = first.stop(libc::SIGTERM)?;
    ensure!(
        stopped.status.success(),
        "daemon exited {} after SIGTERM: {}",
        stopped.status,
        stopped.stderr
    );
    ensure!(
        !paths.socket.exists(),
        "the stopped daemon left {}",
        paths.socket.display()
    );
    let pinned = paths.pinned();
    ensure!(
        pinned
            .iter()
            .any(|p| p.to_string_lossy().contains(pair.veth_a.as_str())),
        "no pinned link of {} under {}: {pinned:?}",
        pair.veth_a,
        paths.pin_dir.display()
    );

    // The drop program's link, which the next daemon of this build takes over as it is.
    let drop_link = paths.pin_dir.join("drops/kfree_skb");
    let drop_link_id = pinned_link_id(&drop_link)?;

    pair.a.ping(&pair.b.name, BATCH)?;
    // No daemon answers: `netlab counters` reads what the stopped one left pinned.
    let mut counters_cmd = paths.netlab();
    counters_cmd
        .args(["counters", "--json", "--pin-dir"])
        .arg(&paths.pin_dir);
    let out = run_with_timeout(counters_cmd, COMMAND_TIMEOUT)?;
    let pinned_counts: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "netlab counters --json ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    ensure!(
        requests_in(&pinned_counts, &pair.veth_a) == u64::from(2 * BATCH),
        "while the daemon is down, the pinned counters show {} requests on {}, expected {}",
        requests_in(&pinned_counts, &pair.veth_a),
        pair.veth_a,
        2 * BATCH
    );

    let second = paths.start(&[])?;
    pair.a.ping(&pair.b.name, BATCH)?;
    std::thread::sleep(SETTLE);
    let counters = get_json(&paths.socket, "/v1/counters")?;
    ensure!(
        requests_in(&counters, &pair.veth_a) == u64::from(3 * BATCH),
        "after a restart: {} requests on {} ingress, expected {} (3 batches of {BATCH}): {counters}",
        requests_in(&counters, &pair.veth_a),
        pair.veth_a,
        3 * BATCH
    );
    ensure!(
        pinned_link_id(&drop_link)? == drop_link_id,
        "the restarted daemon replaced the drop program's link {drop_link_id} at {}",
        drop_link.display()
    );
    // The drop program's link stayed pinned while no daemon ran: the second batch's
    // replies were counted too.
    let no_socket = drops_of(&counters, "NO_SOCKET") - no_socket_1;
    ensure!(
        no_socket == u64::from(2 * BATCH),
        "NO_SOCKET drops of batches 2 (daemon down) and 3: {no_socket}, expected {}: {counters}",
        2 * BATCH
    );
    let stopped = second.stop(libc::SIGTERM)?;
    ensure!(stopped.status.success(), "daemon exited {}", stopped.status);

    paths.cleanup()?;
    let left = paths.pinned();
    ensure!(
        left.is_empty() && !paths.pin_dir.exists(),
        "--cleanup left {} with {left:?}",
        paths.pin_dir.display()
    );
    assert_detached("-", &[], &before).context("after netlab daemon --cleanup")?;
    Ok(())
}

/// The socket is 0660 and gated by its group; `--listen` serves loopback only unless told.
#[test]
fn socket_permissions_and_loopback_listen() -> Result<()> {
    let bin = docker_or_skip!();
    let paths = DaemonPaths::new(&bin)?;
    let port = free_loopback_port()?;
    let listen = format!("127.0.0.1:{port}");
    let _daemon = paths.start(&["--listen", &listen])?;

    let meta = std::fs::metadata(&paths.socket)?;
    ensure!(
        meta.permissions().mode() & 0o7777 == 0o660,
        "{} has mode {:o}, expected 660",
        paths.socket.display(),
        meta.permissions().mode() & 0o7777
    );
    let url = "http://netlab/v1/health";
    let curl_as = |groups: &str| -> Result<std::process::Output> {
        let mut curl = Command::new("setpriv");
        curl.args(["--reuid=65534", "--regid=65534"]);
        if groups.is_empty() {
            curl.arg("--clear-groups");
        } else {
            curl.arg(format!("--groups={groups}"));
        }
        curl.args(["curl", "-sS", "--max-time", "5", "--unix-socket"])
            .arg(&paths.socket)
            .arg(url);
        run_with_timeout(curl, COMMAND_TIMEOUT)
    };
    let outsider = curl_as("")?;
    ensure!(
        !outsider.status.success() && outsider.stdout.is_empty(),
        "uid 65534 outside the socket's group got an answer ({}): {}",
        outsider.status,
        String::from_utf8_lossy(&outsider.stdout)
    );
    // The same user in the socket's group gets in: what kept it out was the group.
    let member = curl_as(&meta.gid().to_string())?;
    let answer: Value = serde_json::from_slice(&member.stdout).with_context(|| {
        format!(
            "uid 65534 in group {} ({}): {}",
            meta.gid(),
            member.status,
            String::from_utf8_lossy(&member.stderr)
        )
    })?;
    ensure!(answer["status"] == "ok", "health for a member: {answer}");

    let addr: SocketAddr = listen.parse()?;
    let health = tcp_get(addr, "/v1/health")?.json()?;
    ensure!(health["status"] == "ok", "/v1/health on {addr}: {health}");

    let remote = DaemonPaths::new(&bin)?;
    let remote_port = free_loopback_port()?;
    let mut command = remote.netlab();
    command
        .arg("daemon")
        .arg("--socket")
        .arg(&remote.socket)
        .arg("--pin-dir")
        .arg(&remote.pin_dir)
        .args(["--listen", &format!("0.0.0.0:{remote_port}")]);
    let (code, lines) = failing(command)?;
    ensure!(
        code.is_some_and(|c| c != 0) && lines.len() == 1 && lines[0].contains("--allow-remote"),
        "--listen 0.0.0.0 without --allow-remote: exit {code:?}, stderr {lines:#?}"
    );
    ensure!(
        !remote.socket.exists() && !remote.pin_dir.exists(),
        "the refused daemon created {} or {}",
        remote.socket.display(),
        remote.pin_dir.display()
    );
    Ok(())
}

/// `netlab capture` writes a pcapng whose echo requests carry the interface and a comment
/// naming both containers.
#[test]
fn capture_writes_commented_pcapng() -> Result<()> {
    const PINGS: u32 = 3;
    let bin = docker_or_skip!();
    let pair = Pair::new(&bin, "cp")?;
    let socket = unused_socket();
    let file = std::env::temp_dir().join(format!("nlt-capture-{}.pcapng", std::process::id()));
    struct Remove<'a>(&'a Path);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let _remove = Remove(&file);

    let mut command = netlab_tests::daemon::netlab_command(&bin, &socket);
    command
        .args(["capture", "-w"])
        .arg(&file)
        .args(["--duration", "4"]);
    let capture = Background::start(command, WATCH_READY_MARKER, READY_TIMEOUT)?;
    pair.a.ping(&pair.b.name, PINGS)?;
    let finished = capture.wait(Duration::from_secs(4) + EXIT_TIMEOUT)?;
    ensure!(
        finished.status.success(),
        "netlab capture exited {}: {}",
        finished.status,
        finished.stderr
    );

    let mut tshark = Command::new("tshark");
    tshark.arg("-r").arg(&file).args([
        "-Y",
        "icmp.type==8",
        "-T",
        "fields",
        "-e",
        "frame.comment",
        "-e",
        "frame.interface_name",
    ]);
    let out = run_with_timeout(tshark, COMMAND_TIMEOUT)
        .context("running tshark (`cargo xtask setup` installs it)")?;
    let rows = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "tshark failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let (a, b) = (pair.a.name.as_str(), pair.b.name.as_str());
    let ours = |iface: &str, direction: &str| {
        rows.lines()
            .filter(|row| {
                let (comment, name) = row.split_once('\t').unwrap_or((row, ""));
                name == iface
                    && comment.contains(a)
                    && comment.contains(b)
                    && comment.contains(REQUEST)
                    && comment.ends_with(direction)
            })
            .count()
    };
    let (at_a, at_b) = (ours(&pair.veth_a, "ingress"), ours(&pair.veth_b, "egress"));
    ensure!(
        at_a == PINGS as usize && at_b == PINGS as usize,
        "expected {PINGS} echo requests {a} -> {b} on {} ingress and on {} egress, \
         got {at_a} and {at_b}:\n{rows}",
        pair.veth_a,
        pair.veth_b
    );
    Ok(())
}

/// `netlab watch --json` with `NETLAB_SOCKET` at a daemon goes through it, with the same
/// labels and an exact summary.
#[test]
fn watch_through_the_daemon_is_labelled_and_counted() -> Result<()> {
    const PINGS: u32 = 3;
    let bin = docker_or_skip!();
    let pair = Pair::new(&bin, "wd")?;
    let paths = DaemonPaths::new(&bin)?;
    let _daemon = paths.start(&[])?;
    let socket = paths.socket.to_string_lossy().into_owned();
    let wrapper = EnvWrapper::new(&bin, &[("NETLAB_SOCKET", socket.as_str())])?;
    let host = HostNetns::attach()?;

    let watch = Watch::start_bin(&wrapper.bin, host.name(), &["--json"], READY_TIMEOUT)?;
    ensure!(
        watch.stderr_so_far().contains("through the netlab daemon"),
        "netlab watch did not use the daemon at {socket}:\n{}",
        watch.stderr_so_far()
    );
    pair.a.ping(&pair.b.name, PINGS)?;
    std::thread::sleep(SETTLE);
    let output: Output = watch.stop()?;
    ensure!(
        output.status.success(),
        "netlab watch exited {}: {}",
        output.status,
        output.stderr
    );

    let n = u64::from(PINGS);
    let (a, b, net) = (
        pair.a.name.as_str(),
        pair.b.name.as_str(),
        pair.net.name.as_str(),
    );
    let expected = [
        (pair.veth_a.as_str(), "ingress", REQUEST),
        (pair.veth_b.as_str(), "egress", REQUEST),
        (pair.veth_b.as_str(), "ingress", REPLY),
        (pair.veth_a.as_str(), "egress", REPLY),
    ];
    let wrong: Vec<String> = expected
        .iter()
        .filter_map(|&(iface, direction, kind)| {
            let counted = count(&output.summary, iface, direction, kind);
            (counted != n).then(|| format!("{kind} on {iface} {direction}: {counted}"))
        })
        .collect();
    ensure!(
        wrong.is_empty(),
        "summary through the daemon, expected {n} each: {}\ncounters:\n{}",
        wrong.join(", "),
        output.counters_text()
    );
    for (iface, direction, kind) in expected {
        let events: Vec<&Value> = output.events_at(iface, direction, kind).collect();
        let owner = if iface == pair.veth_a { a } else { b };
        let (src, dst) = if kind == REQUEST { (a, b) } else { (b, a) };
        let labelled = events.iter().all(|e| {
            text(e, "/src/container") == Some(src)
                && text(e, "/dst/container") == Some(dst)
                && text(e, "/src/network") == Some(net)
                && text(e, "/iface/role") == Some("container-veth")
                && text(e, "/iface/container") == Some(owner)
                && text(e, "/iface/network") == Some(net)
                && text(e, "/iface/bridge") == Some(pair.net.bridge().as_str())
        });
        ensure!(
            events.len() as u64 == n && labelled,
            "expected {n} {kind} events on {iface} {direction} labelled {src} -> {dst} on {net}, \
             got:\n{}",
            events
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(())
}

/// The line `/proc/self/mountinfo` has for `/sys/fs/bpf`, if anything is mounted there.
fn bpffs_mount_line(mountinfo: &str) -> Option<String> {
    mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(netlab_tests::daemon::BPFFS))
        .map(str::to_owned)
}

/// A fresh host where nothing is mounted on /sys/fs/bpf, made in a mount namespace of the
/// test's own (the host's mounts are left alone): the daemon mounts bpffs there itself, says
/// so once, pins its maps and links there and serves; when it and its mount namespace are
/// gone, nothing of it stays attached. A `--pin-dir` elsewhere than on bpffs is one line and
/// exit 2, before anything is attached.
#[test]
fn the_daemon_mounts_bpffs_when_nothing_is_mounted() -> Result<()> {
    let bin = netlab_tests::netlab_or_skip!();
    let before = BpfSnapshot::take()?;
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    let host_bpffs = bpffs_mount_line(&host_mounts);
    let socket = unused_socket();
    let pin_dir = format!(
        "{}/{}",
        netlab_tests::daemon::BPFFS,
        netlab_tests::host::netns::unique_name("pin")
    );
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(
            "umount -l /sys/fs/bpf 2>/dev/null; \
             if grep -q ' /sys/fs/bpf ' /proc/self/mountinfo; then echo 'still mounted' >&2; exit 97; fi; \
             exec \"$0\" daemon --socket \"$1\" --pin-dir \"$2\"",
        )
        .arg(&bin)
        .arg(&socket)
        .arg(&pin_dir)
        .env("NETLAB_SOCKET", &socket);
    let daemon = Background::start(
        command,
        netlab_tests::daemon::DAEMON_READY_MARKER,
        READY_TIMEOUT,
    )?;
    let pid = daemon.pid();
    let said = daemon.stderr_so_far();
    ensure!(
        said.matches("mounted bpffs there").count() == 1,
        "the daemon did not say once that it mounted bpffs:\n{said}"
    );
    // Inside its mount namespace: bpffs on /sys/fs/bpf, and the daemon's counters pinned.
    let inside = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
    let line = bpffs_mount_line(&inside)
        .context("nothing on /sys/fs/bpf in the daemon's mount namespace")?;
    ensure!(line.contains(" - bpf "), "not bpffs: {line}");
    let counters = format!("/proc/{pid}/root{pin_dir}/maps/NETLAB_COUNTERS");
    ensure!(Path::new(&counters).exists(), "{counters} does not exist");
    let health = get_json(&socket, "/v1/health")?;
    ensure!(health["status"] == "ok", "health: {health}");
    // The host's own mount table did not change.
    let host_now = std::fs::read_to_string("/proc/self/mountinfo")?;
    ensure!(
        bpffs_mount_line(&host_now) == host_bpffs,
        "the host's /sys/fs/bpf changed: {:?} -> {:?}",
        host_bpffs,
        bpffs_mount_line(&host_now)
    );
    let stopped = daemon.stop(libc::SIGTERM)?;
    ensure!(
        stopped.status.success(),
        "daemon exited {} after SIGTERM: {}",
        stopped.status,
        stopped.stderr
    );
    // Its bpffs went with its mount namespace, and with it every pinned link.
    assert_detached("", &[], &before)?;

    // A pin directory on another filesystem: one line, exit 2, nothing loaded.
    let not_bpffs = std::env::temp_dir().join(netlab_tests::host::netns::unique_name("notbpf"));
    let mut bad = Command::new(&bin);
    bad.env("NETLAB_SOCKET", unused_socket())
        .args(["daemon", "--socket"])
        .arg(unused_socket())
        .arg("--pin-dir")
        .arg(&not_bpffs);
    let out = run_with_timeout(bad, COMMAND_TIMEOUT)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.code() == Some(2)
            && stderr.lines().count() == 1
            && stderr.contains("not on bpffs"),
        "--pin-dir {}: exit {}, stderr:\n{stderr}",
        not_bpffs.display(),
        out.status
    );
    ensure!(!not_bpffs.exists(), "{} was created", not_bpffs.display());
    assert_detached("", &[], &before)?;
    Ok(())
}

/// Echo requests counted on `iface` ingress and replies on its egress by a `/v1/counters`
/// answer or a watch summary.
fn echo_on(counters: &Value, iface: &str) -> (u64, u64) {
    (
        count(counters, iface, "ingress", REQUEST),
        count(counters, iface, "egress", REPLY),
    )
}

/// People run tcpdump beside an observer all the time: while a daemon and an embedded
/// `netlab watch` both run, pings before, during and after a tcpdump on the same veths are
/// counted by both exactly as ping says, and what they count while tcpdump runs equals what
/// tcpdump itself saw.
#[test]
fn tcpdump_beside_the_daemon_and_watch_does_not_stop_counting() -> Result<()> {
    use netlab_tests::tcpdump::Tcpdump;
    const PINGS: u32 = 5;
    let bin = docker_or_skip!();
    let pair = Pair::new(&bin, "td")?;
    let paths = DaemonPaths::new(&bin)?;
    let daemon = paths.start(&[])?;
    let host = HostNetns::attach()?;
    let watch = host.watch(&bin, &["--json"])?;
    let n = u64::from(PINGS);

    let at_start = get_json(&paths.socket, "/v1/counters")?;
    pair.a.ping(&pair.b.name, PINGS)?;
    std::thread::sleep(SETTLE);
    let before_tcpdump = get_json(&paths.socket, "/v1/counters")?;
    // tcpdump on both veths (promiscuous mode on: a link change netlab sees), then pings.
    let dumps = [&pair.veth_a, &pair.veth_b].map(|veth| {
        Tcpdump::start(
            None,
            veth,
            "inout",
            "icmp[icmptype] == icmp-echo or icmp[icmptype] == icmp-echoreply",
        )
    });
    let [dump_a, dump_b] = dumps;
    let (dump_a, dump_b) = (dump_a?, dump_b?);
    // Let the daemon and watch act on the link changes first.
    std::thread::sleep(SETTLE);
    pair.a.ping(&pair.b.name, PINGS)?;
    let seen_a = dump_a.stop_after(SETTLE)?;
    let seen_b = dump_b.stop_after(Duration::ZERO)?;
    std::thread::sleep(SETTLE);
    let after_tcpdump = get_json(&paths.socket, "/v1/counters")?;
    pair.a.ping(&pair.b.name, PINGS)?;
    std::thread::sleep(SETTLE);
    let at_end = get_json(&paths.socket, "/v1/counters")?;
    let output = watch.stop()?;

    let delta = |from: &Value, to: &Value, iface: &str| {
        let (r0, p0) = echo_on(from, iface);
        let (r1, p1) = echo_on(to, iface);
        (r1 - r0, p1 - p0)
    };
    let witness =
        |lines: &[String], what: &str| lines.iter().filter(|l| l.contains(what)).count() as u64;
    // tcpdump's own count on veth a: requests in, replies out.
    let tcpdump_a = (
        witness(&seen_a, "echo request"),
        witness(&seen_a, "echo reply"),
    );
    let tcpdump_b = (
        witness(&seen_b, "echo request"),
        witness(&seen_b, "echo reply"),
    );
    ensure!(
        tcpdump_a == (n, n) && tcpdump_b == (n, n),
        "tcpdump saw {tcpdump_a:?} on {} and {tcpdump_b:?} on {}, ping sent {n}",
        pair.veth_a,
        pair.veth_b
    );
    let rounds = [
        (
            "before tcpdump",
            delta(&at_start, &before_tcpdump, &pair.veth_a),
            (n, n),
        ),
        (
            "while tcpdump ran",
            delta(&before_tcpdump, &after_tcpdump, &pair.veth_a),
            tcpdump_a,
        ),
        (
            "after tcpdump stopped",
            delta(&after_tcpdump, &at_end, &pair.veth_a),
            (n, n),
        ),
    ];
    let wrong: Vec<String> = rounds
        .iter()
        .filter(|(_, got, want)| got != want)
        .map(|(when, got, want)| format!("{when}: daemon counted {got:?}, expected {want:?}"))
        .collect();
    ensure!(wrong.is_empty(), "on {}: {}", pair.veth_a, wrong.join("; "));
    // The daemon's counts on b: requests out, replies in, all three rounds.
    let b_total = (
        count(&at_end, &pair.veth_b, "egress", REQUEST)
            - count(&at_start, &pair.veth_b, "egress", REQUEST),
        count(&at_end, &pair.veth_b, "ingress", REPLY)
            - count(&at_start, &pair.veth_b, "ingress", REPLY),
    );
    ensure!(
        b_total == (3 * n, 3 * n),
        "daemon on {}: {b_total:?}, expected {}",
        pair.veth_b,
        3 * n
    );
    // The embedded watch saw the same three rounds.
    let watched = echo_on(&output.summary, &pair.veth_a);
    ensure!(
        output.status.success() && watched == (3 * n, 3 * n),
        "netlab watch beside tcpdump counted {watched:?} on {}, expected {}:\n{}",
        pair.veth_a,
        3 * n,
        output.counters_text()
    );
    ensure!(
        !daemon.stderr_so_far().contains("no longer attached"),
        "the daemon reported lost hooks: {}",
        daemon.stderr_so_far()
    );
    Ok(())
}

/// Id of the link pinned at `path` (`bpftool link show pinned`).
fn pinned_link_id(path: &Path) -> Result<u64> {
    let shown = netlab_tests::sh(&format!("bpftool -j link show pinned {}", path.display()))?;
    let link: Value = serde_json::from_str(&shown).with_context(|| format!("bpftool: {shown}"))?;
    link["id"]
        .as_u64()
        .with_context(|| format!("no link id in {shown}"))
}

/// Something else detaches a hook netlab attached (`bpftool link detach`): the daemon and
/// `netlab watch` notice within seconds, say so in one log line, count it in
/// `netlab_hooks_lost_total` and `/v1/health`, attach again, and count the next pings
/// exactly as ping says.
#[test]
fn a_hook_detached_by_something_else_is_noticed_and_attached_again() -> Result<()> {
    const PINGS: u32 = 3;
    const NOTICE: Duration = Duration::from_secs(10);
    let bin = docker_or_skip!();
    let pair = Pair::new(&bin, "dh")?;
    let paths = DaemonPaths::new(&bin)?;
    let daemon = paths.start(&[])?;
    let host = HostNetns::attach()?;
    let watch = host.watch(&bin, &["--json"])?;
    let idx = std::fs::read_to_string(format!("/sys/class/net/{}/ifindex", pair.veth_a))?;
    let pin = paths
        .pin_dir
        .join("links")
        .join(format!("{}-{}-ingress", idx.trim(), pair.veth_a));
    let daemon_link = pinned_link_id(&pin)?;
    let watch_link = netlab_tests::docker::tcx_links_of(watch.pid())
        .into_iter()
        .filter(|l| l.ifindex.to_string() == idx.trim())
        .map(|l| l.link_id)
        .min()
        .context("netlab watch holds no tcx link on veth a")?;
    for id in [daemon_link, watch_link] {
        netlab_tests::sh(&format!("bpftool link detach id {id}"))?;
    }
    let deadline = Instant::now() + NOTICE;
    loop {
        let health = get_json(&paths.socket, "/v1/health")?;
        if health["hooks_lost"].as_u64() == Some(1) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the daemon did not notice within {NOTICE:?}: {health}\n{}",
            daemon.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    while !watch.stderr_so_far().contains("no longer attached") {
        ensure!(
            Instant::now() < deadline,
            "netlab watch did not notice within {NOTICE:?}:\n{}",
            watch.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let before = get_json(&paths.socket, "/v1/counters")?;
    pair.a.ping(&pair.b.name, PINGS)?;
    std::thread::sleep(SETTLE);
    let after = get_json(&paths.socket, "/v1/counters")?;
    let n = u64::from(PINGS);
    ensure!(
        requests_in(&after, &pair.veth_a) - requests_in(&before, &pair.veth_a) == n,
        "after attaching again the daemon counted {} requests on {}, ping sent {n}",
        requests_in(&after, &pair.veth_a) - requests_in(&before, &pair.veth_a),
        pair.veth_a
    );
    let metrics = http_get(&paths.socket, "/metrics")?;
    let samples = parse_metrics(&metrics.body)?;
    ensure!(
        samples.iter().any(|s| s.name == "netlab_hooks_lost_total"
            && s.has(&[("iface", pair.veth_a.as_str()), ("hook", "ingress")])
            && s.value == 1.0),
        "no netlab_hooks_lost_total{{iface={},hook=ingress}} 1 in /metrics:\n{}",
        pair.veth_a,
        metrics.body
    );
    let said = daemon.stderr_so_far();
    ensure!(
        said.matches("no longer attached").count() == 1,
        "the daemon should say it once:\n{said}"
    );
    let output = watch.stop()?;
    ensure!(
        output.status.success() && output.stderr.matches("no longer attached").count() == 1,
        "netlab watch ({}) should say it once:\n{}",
        output.status,
        output.stderr
    );
    // No ping went while the hook was detached: watch counted every one.
    ensure!(
        count(&output.summary, &pair.veth_a, "ingress", REQUEST) == n,
        "watch counted {} requests on {} after attaching again",
        count(&output.summary, &pair.veth_a, "ingress", REQUEST),
        pair.veth_a
    );
    Ok(())
}

/// Twenty containers started at once, each pinging a peer the moment it starts: while the
/// daemon runs, every one's first ARP request and both echo requests are counted on its
/// own veth's ingress exactly as tcpdump on every interface (`-i any`, running before the
/// first container starts) saw them.
#[test]
fn containers_started_in_a_burst_are_counted_from_their_first_packet() -> Result<()> {
    use netlab_tests::tcpdump::Tcpdump;
    const BURST: usize = 20;
    let bin = docker_or_skip!();
    let net = Network::create("bu")?;
    let peer = Container::sleeper("bupeer", &net)?;
    let peer_ip = peer.ipv4()?;
    let paths = DaemonPaths::new(&bin)?;
    let _daemon = paths.start(&[])?;
    let dump = Tcpdump::start(None, "any", "in", "arp or icmp")?;
    let prefix = netlab_tests::host::netns::unique_name("bu");
    let command = format!("ping -c 2 -i 0.2 {peer_ip}; sleep 300");
    let containers: Vec<Container> = std::thread::scope(|scope| {
        let started: Vec<_> = (0..BURST)
            .map(|i| {
                let (name, net, command) = (format!("{prefix}-{i}"), &net, command.as_str());
                scope.spawn(move || {
                    Container::run_named(
                        name,
                        net,
                        netlab_tests::docker::BUSYBOX_IMAGE,
                        &["sh", "-c", command],
                    )
                })
            })
            .collect();
        started
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("docker run panicked"))?
            })
            .collect::<Result<Vec<_>>>()
    })?;
    // Both pings of every container are over within a second of its start.
    std::thread::sleep(Duration::from_secs(3));
    let seen = dump.stop_after(SETTLE)?;
    let counters = get_json(&paths.socket, "/v1/counters")?;
    let topo = topology_json(&bin, &paths.socket)?;
    let mut wrong = Vec::new();
    for c in &containers {
        let veth = host_veth(&topo, &c.name, "eth0")?;
        // tcpdump -i any: `<time> <iface> <In|B|M> <what>`.
        let on = |what: &str| -> u64 {
            seen.iter()
                .filter(|l| l.split_whitespace().nth(1) == Some(veth.as_str()))
                .filter(|l| l.contains(what))
                .count() as u64
        };
        let witness = (on("ARP, Request"), on("ICMP echo request"));
        let counted = (
            count(&counters, &veth, "ingress", "arp-request"),
            count(&counters, &veth, "ingress", REQUEST),
        );
        if witness.0 == 0 || witness.1 != 2 || counted != witness {
            let lines: Vec<&str> = seen
                .iter()
                .filter(|l| l.split_whitespace().nth(1) == Some(veth.as_str()))
                .map(String::as_str)
                .collect();
            wrong.push(format!(
                "{} ({veth}): netlab counted {counted:?} (ARP requests, echo requests), tcpdump saw {witness:?}:\n  {}",
                c.name,
                lines.join("\n  ")
            ));
        }
    }
    ensure!(
        wrong.is_empty(),
        "{} of {BURST} containers not counted as tcpdump saw them:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    drop(peer);
    Ok(())
}

/// The kernel, not the daemon, covers a new port from the moment it joins an observed
/// bridge: with the daemon stopped (SIGSTOP: it reads no netlink message and attaches
/// nothing) while a container starts and pings, its announcements, ARP request and echo
/// requests are all counted on its veth, as tcpdump saw them, once the daemon goes on.
#[test]
fn a_stopped_daemon_misses_no_packet_of_a_container_started_meanwhile() -> Result<()> {
    use netlab_tests::tcpdump::Tcpdump;
    const PINGS: u64 = 3;
    let bin = docker_or_skip!();
    let net = Network::create("st")?;
    let peer = Container::sleeper("stpeer", &net)?;
    let peer_ip = peer.ipv4()?;
    let paths = DaemonPaths::new(&bin)?;
    let daemon = paths.start(&[])?;
    let dump = Tcpdump::start(None, "any", "in", "arp or icmp")?;
    let pid = daemon.pid();
    /// Lets the daemon go on whatever happens below.
    struct Stopped(u32);
    impl Drop for Stopped {
        fn drop(&mut self) {
            // The daemon this test started (still its child).
            let _ = signal(self.0, libc::SIGCONT);
        }
    }
    // The daemon this test started (still its child).
    signal(pid, libc::SIGSTOP).context("cannot stop the daemon")?;
    let stopped = Stopped(pid);
    let pinger = Container::run_named(
        netlab_tests::host::netns::unique_name("st"),
        &net,
        netlab_tests::docker::BUSYBOX_IMAGE,
        &[
            "sh",
            "-c",
            &format!("ping -c {PINGS} -i 0.2 {peer_ip}; sleep 300"),
        ],
    )?;
    // Its pings and Docker's three address announcements (one a second) are over.
    std::thread::sleep(Duration::from_secs(4));
    drop(stopped);
    let seen = dump.stop_after(SETTLE)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let veth = loop {
        let topo = topology_json(&bin, &paths.socket)?;
        match host_veth(&topo, &pinger.name, "eth0") {
            Ok(v) => break v,
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let counters = get_json(&paths.socket, "/v1/counters")?;
    let lines: Vec<&String> = seen
        .iter()
        .filter(|l| l.split_whitespace().nth(1) == Some(veth.as_str()))
        .collect();
    let on = |what: &str| lines.iter().filter(|l| l.contains(what)).count() as u64;
    let witness = (on("ARP, Request"), on("ICMP echo request"));
    let counted = (
        count(&counters, &veth, "ingress", "arp-request"),
        count(&counters, &veth, "ingress", REQUEST),
    );
    ensure!(
        witness.1 == PINGS && witness.0 >= 2 && counted == witness,
        "{veth}: netlab counted {counted:?} (ARP requests, echo requests) while stopped, tcpdump saw {witness:?}:\n  {}",
        lines.iter().map(|l| l.as_str()).collect::<Vec<_>>().join("\n  ")
    );
    drop(peer);
    Ok(())
}

/// The course's last step with `netlab watch` streaming from a daemon: a container is
/// removed, then the daemon stops. The watch shows the container's veth going, with what it
/// counted there (ping's own count, both ways), and then ends by itself (exit 0), saying
/// the daemon stopped: its stream ended with a last line, not a cut connection.
#[test]
fn watch_through_a_daemon_that_stops_shows_the_goings_and_ends() -> Result<()> {
    const PINGS: u32 = 2;
    let bin = docker_or_skip!();
    let net = Network::create("ws")?;
    let a = Container::sleeper("ws-a", &net)?;
    let b = Container::sleeper("ws-b", &net)?;
    let paths = DaemonPaths::new(&bin)?;
    let daemon = paths.start(&[])?;
    let mut command = paths.netlab();
    command.arg("watch");
    let watch = Background::start(command, "through the netlab daemon", READY_TIMEOUT)?;
    a.ping(&b.ipv4()?, PINGS)?;
    let b_name = b.name.clone();
    b.remove()?;
    // netlab waits up to 2 s for Docker to say why an interface went.
    std::thread::sleep(Duration::from_secs(3));
    let stopped = daemon.stop(libc::SIGTERM)?;
    ensure!(stopped.status.success(), "daemon: {}", stopped.stderr);
    let watched = watch.wait(EVENT_TIMEOUT)?;
    let (net_name, bridge) = (net.name.clone(), net.bridge());
    a.remove()?;
    net.remove()?;
    paths.cleanup()?;

    ensure!(
        watched.status.success() && watched.stderr.contains("the daemon stopped; "),
        "netlab watch did not end by itself when the daemon stopped ({}):\n{}",
        watched.status,
        watched.stderr
    );
    let gone = format!(
        "veth of {b_name} ({net_name}, {bridge}) gone: container {b_name} removed; it counted {PINGS} echo requests, {PINGS} replies"
    );
    ensure!(
        watched.stdout.contains(&gone),
        "no {gone:?} in what netlab watch printed:\n{}",
        watched.stdout
    );
    Ok(())
}

//! netlab as a container (root, a Docker engine, the lab's images; under the shared lock):
//! `cargo test -p netlab-tests --test image -- --test-threads=1`.
//!
//! The image is built with `cargo xtask image`, and run with the README's own commands,
//! read from README.md with their names made unique: the `docker run` one, and the Swarm
//! service's flags as a `docker run` (on this machine's engine, which is not made a Swarm).
//! In each, the daemon must label a ping between two containers of the test exactly as on
//! the host, serve its API on the socket the README mounts, and leave nothing behind once
//! `docker stop` stops it. Then the Swarm service itself, as written, on a two-node Swarm of
//! two engines of the test's own (`netlab_tests::swarm`): a netlab on each node, each
//! exporting its node's pings over OTLP with its node's id, nothing left after
//! `docker service rm`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use netlab_tests::bpf_state::{assert_detached, BpfSnapshot};
use netlab_tests::daemon::EventStream;
use netlab_tests::docker::{docker, docker_status, Container, HostNetns, Network, BUSYBOX_IMAGE};
use netlab_tests::docker_or_skip;
use netlab_tests::rotel::{self, Collector};
use netlab_tests::swarm::{self, Node, Swarm, NODE_ADDRS};
use serde_json::Value;

/// Echo requests sent.
const PINGS: u32 = 5;
/// How long the daemon in the container may take to answer on its socket.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the ping's events may take to reach the stream.
const EVENTS_TIMEOUT: Duration = Duration::from_secs(10);
/// The heading of the README's section whose first `docker run` line is the command.
const SECTION: &str = "## netlab as a container";
/// How long the daemons' first exports may take to reach the collector.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(30);
/// The collector's ports on node 1 (a namespace of the test's, where nothing else listens).
const OTLP_GRPC_PORT: u16 = 4317;
const OTLP_HTTP_PORT: u16 = 4318;
/// Where the daemon's pins live (the README mounts the host's bpffs).
const PIN_DIR: &str = "/sys/fs/bpf/netlab";

/// The workspace's root (this crate lives in `tests/`).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
        .to_path_buf()
}

/// The arguments after `docker` of the first command of the README's [`SECTION`] that
/// starts with `start` (e.g. `docker run `), its `\` continuations joined.
fn readme_command(start: &str) -> Result<Vec<String>> {
    let readme = std::fs::read_to_string(workspace().join("README.md"))?;
    let section = readme
        .split_once(&format!("\n{SECTION}\n"))
        .with_context(|| format!("README.md has no section {SECTION:?}"))?
        .1;
    let mut lines = section.lines().skip_while(|l| !l.starts_with(start));
    let mut command = String::new();
    for line in lines.by_ref() {
        match line.trim_end().strip_suffix('\\') {
            Some(part) => command.push_str(part),
            None => {
                command.push_str(line);
                break;
            }
        }
        command.push(' ');
    }
    ensure!(
        !command.is_empty(),
        "no command starting {start:?} in {SECTION:?} of README.md"
    );
    ensure!(
        !command.contains(['"', '\'', '$', '#']),
        "the README's command needs a shell to be read: {command}"
    );
    Ok(command
        .split_whitespace()
        .skip(1)
        .map(str::to_owned)
        .collect())
}

/// The host directory the command mounts at `target` (`-v HOST:TARGET` or
/// `--mount type=bind,source=HOST,target=TARGET`).
fn host_side_of(args: &[String], target: &str) -> Option<PathBuf> {
    args.windows(2).find_map(|w| match w[0].as_str() {
        "-v" | "--volume" => {
            let mut parts = w[1].split(':');
            let host = parts.next()?;
            (parts.next()? == target).then(|| PathBuf::from(host))
        }
        "--mount" => {
            let field = |name: &str| {
                w[1].split(',')
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            };
            (field("target")? == target)
                .then(|| field("source").map(PathBuf::from))
                .flatten()
        }
        _ => None,
    })
}

/// The README's Swarm service as a `docker run -d` with the same flags, so it can be run
/// without turning this machine's engine into a Swarm: `--mode global` (scheduling) goes,
/// and `--stop-grace-period 30s` becomes `--stop-timeout 30`.
fn service_as_run(args: &[String]) -> Result<Vec<String>> {
    ensure!(
        args.starts_with(&["service".to_owned(), "create".to_owned()]),
        "not a `docker service create`: {args:?}"
    );
    let mut out = vec!["run".to_owned(), "-d".to_owned()];
    let mut rest = args[2..].iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--mode" => {
                rest.next();
            }
            "--stop-grace-period" => {
                let period = rest.next().context("--stop-grace-period without a value")?;
                let secs = period
                    .strip_suffix('s')
                    .filter(|n| n.parse::<u32>().is_ok())
                    .with_context(|| format!("--stop-grace-period {period}: not in seconds"))?;
                out.extend(["--stop-timeout".to_owned(), secs.to_owned()]);
            }
            _ => out.push(arg.clone()),
        }
    }
    Ok(out)
}

/// A container of the README's command; stopped and removed when dropped.
struct NetlabContainer {
    name: String,
}

impl Drop for NetlabContainer {
    fn drop(&mut self) {
        // `docker stop` first: SIGTERM lets the daemon detach and unpin; `rm -f` alone
        // would kill it and leave its pins behind after a failed test.
        let _ = docker_status(&["stop", &self.name]);
        let _ = docker_status(&["rm", "-f", &self.name]);
    }
}

/// Its logs, for error messages.
fn logs(name: &str) -> String {
    docker_status(&["logs", name])
        .map(|out| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .unwrap_or_default()
}

/// Events of `kind` seen going `direction` on `iface`, the veth of container `owner` (so
/// labelled: found from inside its namespace), from container `src` to `dst`.
fn count(
    events: &[Value],
    kind: &str,
    (iface, owner): (&str, &str),
    direction: &str,
    src: &str,
    dst: &str,
) -> usize {
    events
        .iter()
        .filter(|e| {
            e["kind"] == kind
                && e["iface"]["name"] == iface
                && e["iface"]["container"] == owner
                && e["direction"] == direction
                && e["src"]["container"] == src
                && e["dst"]["container"] == dst
        })
        .count()
}

/// The number in ping's `N packets received`.
fn received(ping: &str) -> Result<usize> {
    ping.lines()
        .find_map(|l| {
            let (_, after) = l.split_once(" packets transmitted, ")?;
            after.split_whitespace().next()?.parse().ok()
        })
        .with_context(|| format!("no ping statistics in:\n{ping}"))
}

#[test]
fn the_readme_container_labels_pings_and_leaves_nothing_behind() -> Result<()> {
    let _bin = docker_or_skip!();
    let args = readme_command("docker run ")?;
    ensure!(
        args.first().map(String::as_str) == Some("run"),
        "not a `docker run`: {args:?}"
    );
    // Every layer rebuilt: the recipe itself is under test, not a cached image.
    labels_pings_and_leaves_nothing_behind(&args, &["--no-cache"])
}

/// The Swarm recipe's flags (no `--pid host`: the host's procfs through
/// `NETLAB_HOST_PROC`) label pings the same way.
#[test]
fn the_readme_swarm_flags_label_pings_and_leave_nothing_behind() -> Result<()> {
    let _bin = docker_or_skip!();
    let args = service_as_run(&readme_command("docker service create ")?)?;
    ensure!(
        !args.iter().any(|a| a == "--pid"),
        "a Swarm service cannot have --pid: {args:?}"
    );
    labels_pings_and_leaves_nothing_behind(&args, &[])
}

/// Builds the image (`cargo xtask image XTASK_ARGS`), runs `docker ARGS` with a name of
/// this test's, pings between two containers of its own and checks what the daemon in the
/// container said about them, then stops it and checks nothing is left.
fn labels_pings_and_leaves_nothing_behind(args: &[String], xtask_args: &[&str]) -> Result<()> {
    let image = args.last().context("the README's command names no image")?;
    let socket_dir = host_side_of(args, "/run/netlab")
        .context("the README's command mounts no host directory at /run/netlab")?;
    let socket = socket_dir.join("netlab.sock");
    if socket.exists() && std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        println!(
            "skipping: a netlab daemon already answers on {}",
            socket.display()
        );
        return Ok(());
    }
    if Path::new(PIN_DIR).exists() {
        println!("skipping: {PIN_DIR} exists (another daemon's pins)");
        return Ok(());
    }

    let mut xtask = Command::new("cargo");
    xtask
        .args(["xtask", "image"])
        .args(xtask_args)
        .current_dir(workspace());
    let status = xtask.status().context("running `cargo xtask image`")?;
    ensure!(status.success(), "`cargo xtask image` failed ({status})");

    let before = BpfSnapshot::take()?;
    let host = HostNetns::attach()?;
    let net = Network::create("img")?;
    let a = Container::sleeper("img-a", &net)?;
    let b = Container::sleeper("img-b", &net)?;
    let veth_a = a.host_veth()?;
    let veth_b = b.host_veth()?;
    let bridge = net.bridge();
    let b_ip = b.ipv4()?;

    // The README's command as written, with a name of this test's.
    let name = format!("nlt-netlab-{}", std::process::id());
    let mut run_args = args.to_vec();
    let at = run_args
        .iter()
        .position(|a| a == "--name")
        .context("the README's command names no container (--name)")?;
    run_args[at + 1] = name.clone();
    let shown = run_args.join(" ");
    let refs: Vec<&str> = run_args.iter().map(String::as_str).collect();
    let started = docker_status(&refs)?;
    let container = NetlabContainer { name: name.clone() };
    ensure!(
        started.status.success(),
        "`docker {shown}` failed: {}",
        String::from_utf8_lossy(&started.stderr)
    );
    println!("started: docker {shown} (image {image})");

    let deadline = Instant::now() + READY_TIMEOUT;
    let stream = loop {
        match EventStream::open(&socket, "/v1/events?kind=icmp") {
            Ok(stream) => break stream,
            Err(e) if Instant::now() < deadline => {
                let state = docker(&["inspect", "--format", "{{.State.Status}}", &name])?;
                if state.trim() != "running" {
                    bail!(
                        "the netlab container is {} before it answered ({e:#}):\n{}",
                        state.trim(),
                        logs(&name)
                    );
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => bail!(
                "no daemon answered on {} ({e:#}):\n{}",
                socket.display(),
                logs(&name)
            ),
        }
    };

    // ping's own statistics are the witness: every reply it counted must be labelled.
    let ping = a.ping(&b_ip, PINGS)?;
    let replies = received(&ping)?;
    let want = |events: &[Value]| {
        count(
            events,
            "icmp-echo-request",
            (&veth_a, &a.name),
            "ingress",
            &a.name,
            &b.name,
        ) >= PINGS as usize
            && count(
                events,
                "icmp-echo-reply",
                (&veth_a, &a.name),
                "egress",
                &b.name,
                &a.name,
            ) >= replies
    };
    let events = stream.wait_for(EVENTS_TIMEOUT, want)?;
    let requests = count(
        &events,
        "icmp-echo-request",
        (&veth_a, &a.name),
        "ingress",
        &a.name,
        &b.name,
    );
    let labelled_replies = count(
        &events,
        "icmp-echo-reply",
        (&veth_a, &a.name),
        "egress",
        &b.name,
        &a.name,
    );
    ensure!(
        requests == PINGS as usize && labelled_replies == replies,
        "ping sent {PINGS} and received {replies}; netlab in the container labelled \
         {requests} requests {} → {} and {labelled_replies} replies back on {veth_a}:\n{:#?}\n{}",
        a.name,
        b.name,
        events,
        logs(&name)
    );
    // The other end too: the request leaving towards b is labelled on b's veth.
    let at_b = count(
        &events,
        "icmp-echo-request",
        (&veth_b, &b.name),
        "egress",
        &a.name,
        &b.name,
    );
    ensure!(
        at_b == PINGS as usize,
        "{at_b} requests labelled on {veth_b} (b's veth), expected {PINGS}"
    );
    drop(stream);

    let stopped = docker_status(&["stop", &name])?;
    ensure!(
        stopped.status.success(),
        "docker stop failed: {}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    let exit = docker(&["inspect", "--format", "{{.State.ExitCode}}", &name])?;
    let log = logs(&name);
    ensure!(
        exit.trim() == "0",
        "the netlab container exited {} after docker stop:\n{log}",
        exit.trim()
    );
    ensure!(
        log.contains("detached everything"),
        "the daemon did not say it detached everything:\n{log}"
    );
    ensure!(
        !Path::new(PIN_DIR).exists(),
        "{PIN_DIR} is left after docker stop:\n{log}"
    );
    ensure!(
        !socket.exists(),
        "{} is left after docker stop",
        socket.display()
    );
    assert_detached(host.name(), &[&veth_a, &veth_b, &bridge], &before)
        .context("after docker stop")?;
    drop(container);
    drop((a, b));
    net.remove()?;
    Ok(())
}

/// A service's tasks, removed (`docker service rm` on the manager) when dropped.
struct Service<'a> {
    manager: &'a Node,
    name: String,
}

impl Drop for Service<'_> {
    fn drop(&mut self) {
        let _ = self.manager.docker(&["service", "rm", &self.name]);
    }
}

/// The containers of service `name` running on `node`.
fn tasks_on(node: &Node, name: &str) -> Result<Vec<String>> {
    Ok(node
        .docker(&[
            "ps",
            "--filter",
            &format!("label=com.docker.swarm.service.name={name}"),
            "--format",
            "{{.Names}}",
        ])?
        .lines()
        .map(str::to_owned)
        .collect())
}

/// The interfaces of network namespace `ns`.
fn interfaces_of(ns: &str) -> Result<Vec<String>> {
    let listed = netlab_tests::ns_exec(ns, "ip -o link show")?;
    Ok(listed
        .lines()
        .filter_map(|l| {
            let name = l.split(": ").nth(1)?;
            Some(name.split('@').next()?.to_owned())
        })
        .collect())
}

/// The README's Swarm service, run as written (`--mode global`) on a two-node Swarm of two
/// engines of this machine (see `netlab_tests::swarm`), the image's command given OTLP
/// flags: one netlab per node, each counting its own node's pings (ping's statistics the
/// witness) and exporting them to one collector with its node's Swarm id; `docker service
/// rm` leaves nothing of netlab on either node.
#[test]
fn the_readme_service_runs_one_netlab_per_swarm_node() -> Result<()> {
    let _bin = docker_or_skip!();
    if let Err(reason) = rotel::command() {
        println!("skipping: {reason}");
        return Ok(());
    }
    let args = readme_command("docker service create ")?;
    ensure!(
        args.windows(2).any(|w| w == ["--mode", "global"]),
        "the README's service is not global: {args:?}"
    );
    let image = args.last().context("the README's service names no image")?;
    let mut xtask = Command::new("cargo");
    xtask.args(["xtask", "image"]).current_dir(workspace());
    let status = xtask.status().context("running `cargo xtask image`")?;
    ensure!(status.success(), "`cargo xtask image` failed ({status})");

    let before = BpfSnapshot::take()?;
    let swarm = Swarm::create("svc")?;
    for node in &swarm.nodes {
        node.load_image(image)?;
        node.load_image(BUSYBOX_IMAGE)?;
    }
    let ids = swarm.node_ids()?;
    ensure!(
        ids.iter().all(|id| !id.is_empty()) && ids[0] != ids[1],
        "the nodes' Swarm ids: {ids:?}"
    );
    let manager = swarm.manager();
    let collector = Collector::start_in(
        Some(manager.netns.name()),
        NODE_ADDRS[0],
        OTLP_GRPC_PORT,
        OTLP_HTTP_PORT,
    )?;

    // The README's command as written, with a name of this test's, and the image's own
    // command with the collector on node 1 added.
    let name = format!("nlt-netlab-svc-{}", std::process::id());
    let mut svc = args.clone();
    let at = svc
        .iter()
        .position(|a| a == "--name")
        .context("the README's service has no --name")?;
    svc[at + 1] = name.clone();
    let endpoint = format!("http://{}:{OTLP_HTTP_PORT}", NODE_ADDRS[0]);
    svc.extend(
        [
            "daemon",
            "--cleanup-on-exit",
            "--otlp-endpoint",
            &endpoint,
            "--otlp-interval",
            "1",
        ]
        .map(str::to_owned),
    );
    let refs: Vec<&str> = svc.iter().map(String::as_str).collect();
    manager
        .docker(&refs)
        .with_context(|| format!("docker {}", svc.join(" ")))?;
    let service = Service {
        manager,
        name: name.clone(),
    };
    println!("created: docker {}", svc.join(" "));

    // One task per node, each with its daemon's socket in that node's /run/netlab.
    let deadline = Instant::now() + READY_TIMEOUT;
    for node in &swarm.nodes {
        let pid = node.pid().context("a node without dockerd")?;
        loop {
            let tasks = tasks_on(node, &name)?;
            if tasks.len() == 1 && swarm::exists_in(pid, Path::new("/run/netlab/netlab.sock")) {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "no netlab task answering on {} after {} s (tasks there: {tasks:?}):\n{}",
                node.hostname,
                READY_TIMEOUT.as_secs(),
                manager.docker(&["service", "ps", "--no-trunc", &name])?
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    // On each node, two containers of one network, and a ping between them.
    let mut pinged = Vec::new();
    for (i, node) in swarm.nodes.iter().enumerate() {
        let net = format!("nlt-svc-net-{}-{i}", std::process::id());
        node.docker(&["network", "create", &net])?;
        let (a, b) = (format!("{net}-a"), format!("{net}-b"));
        for c in [&a, &b] {
            node.sleeper(c, &net)?;
        }
        let b_ip = node.ip_on(&b, &net)?;
        let ping = node.docker(&["exec", &a, "ping", "-c", &PINGS.to_string(), &b_ip])?;
        ensure!(
            received(&ping)? == PINGS as usize,
            "ping on {}: {ping}",
            node.hostname
        );
        pinged.push(a);
    }

    // Each node's requests, exported by that node's netlab with that node's id.
    let exported = |r: &rotel::Received, i: usize| -> f64 {
        let latest = r.points.iter().rfind(|p| {
            p.metric == "netlab.packets"
                && p.attrs.get("container.name") == Some(&pinged[i])
                && p.attrs.get("netlab.packet.kind").map(String::as_str)
                    == Some("icmp-echo-request")
                && p.attrs.get("network.io.direction").map(String::as_str) == Some("receive")
                && r.resources
                    .get(p.resource)
                    .and_then(|res| res.get("netlab.docker.swarm.node.id"))
                    == Some(&ids[i])
        });
        latest.map_or(0.0, |p| p.value)
    };
    let deadline = Instant::now() + EXPORT_TIMEOUT;
    loop {
        let r = collector.received();
        let got = [exported(&r, 0), exported(&r, 1)];
        if got == [f64::from(PINGS); 2] {
            println!("exported: {got:?} echo requests, node ids {ids:?}");
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "after {} s the collector has {got:?} echo requests from {pinged:?} with node ids \
             {ids:?}, expected {PINGS} each; resources: {:#?}",
            EXPORT_TIMEOUT.as_secs(),
            r.resources
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Removing the service stops both daemons, which detach and unpin on their way out.
    drop(service);
    let deadline = Instant::now() + READY_TIMEOUT;
    for node in &swarm.nodes {
        let pid = node.pid().context("a node without dockerd")?;
        while !tasks_on(node, &name)?.is_empty() {
            ensure!(
                Instant::now() < deadline,
                "netlab still runs on {} {} s after `docker service rm`",
                node.hostname,
                READY_TIMEOUT.as_secs()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        for left in ["/sys/fs/bpf/netlab", "/run/netlab/netlab.sock"] {
            ensure!(
                !swarm::exists_in(pid, Path::new(left)),
                "{left} is left on {} after `docker service rm`",
                node.hostname
            );
        }
        let ifaces = interfaces_of(node.netns.name())?;
        let refs: Vec<&str> = ifaces.iter().map(String::as_str).collect();
        assert_detached(node.netns.name(), &refs, &before)
            .with_context(|| format!("on {} after `docker service rm`", node.hostname))?;
    }
    drop(collector);
    drop(swarm);
    Ok(())
}

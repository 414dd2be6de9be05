//! Topology events on the course lab with a real Docker engine: interfaces observed and
//! gone (with the totals they counted), containers and networks coming and going, the
//! engine lost and regained. Run by `cargo xtask test` (root, `NETLAB_BIN`, a Docker
//! engine, the lab's images, `--test-threads=1`):
//! `cargo test -p netlab-tests --test topology_events -- --test-threads=1`.
//!
//! Packets only go between the test's own containers, a bounded number of times.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use netlab_tests::daemon::{get_json, DaemonPaths, EventStream};
use netlab_tests::docker::{
    add_hand_made_leg, remove_all, subnet_host, topo_network, topology, Container, CourseLab,
    EnvWrapper, HostNetns, Network, BUSYBOX_IMAGE, NO_DAEMON,
};
use netlab_tests::host::netns::unique_name;
use netlab_tests::host::process::stop_child;
use netlab_tests::watch::READY_TIMEOUT;
use netlab_tests::{docker_or_skip, Output, Watch};
use serde_json::Value;

/// Long enough for a gone interface to learn why (netlab waits up to 2 s for Docker to
/// say), and for the last lines to reach stdout.
const EXPLAINED: Duration = Duration::from_secs(4);

/// Topology events of `kind` in the output.
fn of_kind<'a>(output: &'a Output, kind: &str) -> Vec<&'a Value> {
    output.events.iter().filter(|e| e["kind"] == kind).collect()
}

/// The summary's counters of interface `name` (ifindex `ifindex`), as
/// `(direction, kind) -> packets`.
fn summary_counters(output: &Output, name: &str, ifindex: u64) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for c in output.summary["counters"].as_array().into_iter().flatten() {
        if c["iface"] == name && c["ifindex"].as_u64() == Some(ifindex) {
            *out.entry((
                c["direction"].as_str().unwrap_or_default().to_owned(),
                c["kind"].as_str().unwrap_or_default().to_owned(),
            ))
            .or_default() += c["packets"].as_u64().unwrap_or_default();
        }
    }
    out
}

/// A gone event's `counted`, as `(direction, kind) -> packets`.
fn counted(event: &Value) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for c in event["counted"].as_array().into_iter().flatten() {
        *out.entry((
            c["direction"].as_str().unwrap_or_default().to_owned(),
            c["kind"].as_str().unwrap_or_default().to_owned(),
        ))
        .or_default() += c["packets"].as_u64().unwrap_or_default();
    }
    out
}

fn packets(c: &BTreeMap<(String, String), u64>, direction: &str, kind: &str) -> u64 {
    c.get(&(direction.to_owned(), kind.to_owned()))
        .copied()
        .unwrap_or_default()
}

/// The one `iface-gone` event of interface `name`; fails unless there is exactly one.
fn gone_of<'a>(output: &'a Output, name: &str) -> Result<&'a Value> {
    let gone: Vec<&Value> = of_kind(output, "iface-gone")
        .into_iter()
        .filter(|e| e["iface"]["name"] == name)
        .collect();
    ensure!(
        gone.len() == 1,
        "expected one iface-gone event for {name}, got {}:\n{}\n--- stderr:\n{}",
        gone.len(),
        output.stdout,
        output.stderr
    );
    Ok(gone[0])
}

/// Removing the course's three containers, then its devops network, while netlab watches:
/// one `iface-gone` per veth, naming its container and why, with totals equal to the exit
/// summary's counters of that veth, and equal to what ping itself counted; one
/// `container-removed` per container and a `network-removed`. A second netlab watching
/// with `--kind topology --container AppDev` sees only AppDev's events.
#[test]
fn removing_the_course_lab_says_each_veth_gone_with_its_totals() -> Result<()> {
    const PINGS: u32 = 5;
    let bin = docker_or_skip!();
    let lab = CourseLab::new()?;
    let host = HostNetns::attach()?;
    let CourseLab {
        appdev,
        pinger,
        appprod,
        devops,
        prod,
    } = lab;
    let veths: Vec<(String, String)> = [&appdev, &pinger, &appprod]
        .iter()
        .map(|c| Ok((c.name.clone(), c.host_veth()?)))
        .collect::<Result<_>>()?;
    let watch = host.watch(&bin, &["--json"])?;
    let only_appdev = host.watch(
        &bin,
        &["--json", "--kind", "topology", "--container", &appdev.name],
    )?;
    let ping_out = pinger.ping(&appdev.name, PINGS)?;
    let names = [
        appdev.name.clone(),
        pinger.name.clone(),
        appprod.name.clone(),
    ];
    remove_all(vec![appdev, pinger, appprod])?;
    let devops_name = devops.name.clone();
    let devops_bridge = devops.bridge();
    devops.remove()?;
    std::thread::sleep(EXPLAINED);
    let output = watch.stop_after(Duration::from_millis(200))?;
    let filtered = only_appdev.stop_after(Duration::ZERO)?;
    drop(prod);

    for (container, veth) in &veths {
        let gone = gone_of(&output, veth)?;
        ensure!(
            gone["iface"]["role"] == "container-veth"
                && gone["iface"]["container"] == container.as_str()
                && gone["container"] == container.as_str()
                && gone["reason"] == "container-removed",
            "iface-gone of {veth} ({container}): {gone}"
        );
        let ifindex = gone["iface"]["ifindex"].as_u64().context("ifindex")?;
        let summary = summary_counters(&output, veth, ifindex);
        ensure!(
            counted(gone) == summary,
            "{veth}: the gone event counted {:?}, the summary {summary:?}",
            counted(gone)
        );
    }
    // ping's own statistics: every request went out of pinger's veth (ingress on the
    // host side) and every reply came back, and so into and out of AppDev's.
    ensure!(
        ping_out.contains(&format!("{PINGS} packets received")),
        "{ping_out}"
    );
    let n = u64::from(PINGS);
    let pinger_gone = counted(gone_of(&output, &veths[1].1)?);
    let appdev_gone = counted(gone_of(&output, &veths[0].1)?);
    ensure!(
        packets(&pinger_gone, "ingress", "icmp-echo-request") == n
            && packets(&pinger_gone, "egress", "icmp-echo-reply") == n
            && packets(&appdev_gone, "egress", "icmp-echo-request") == n
            && packets(&appdev_gone, "ingress", "icmp-echo-reply") == n,
        "ping counted {n} echoes each way; the gone events: pinger {pinger_gone:?}, AppDev {appdev_gone:?}"
    );
    for name in &names {
        let removed: Vec<_> = of_kind(&output, "container-removed")
            .into_iter()
            .filter(|e| e["container"] == name.as_str())
            .collect();
        ensure!(
            removed.len() == 1,
            "expected one container-removed for {name}, got {}:\n{}",
            removed.len(),
            output.stdout
        );
    }
    let net_removed: Vec<_> = of_kind(&output, "network-removed")
        .into_iter()
        .filter(|e| e["networks"][0] == devops_name.as_str())
        .collect();
    ensure!(
        net_removed.len() == 1,
        "expected one network-removed for {devops_name}:\n{}",
        output.stdout
    );
    let bridge_gone = gone_of(&output, &devops_bridge)?;
    ensure!(
        bridge_gone["reason"] == "network-removed" && bridge_gone["iface"]["role"] == "bridge",
        "iface-gone of {devops_bridge}: {bridge_gone}"
    );

    // The filtered watch: AppDev's veth gone, AppDev stopped and removed, nothing else.
    let appdev = &names[0];
    ensure!(
        !filtered.events.is_empty()
            && filtered.events.iter().all(|e| {
                e["container"] == appdev.as_str()
                    || e["kind"].as_str().is_some_and(|k| k.starts_with("engine-"))
            }),
        "--container {appdev} --kind topology printed:\n{}",
        filtered.stdout
    );
    gone_of(&filtered, &veths[0].1)?;
    Ok(())
}

/// The course's hand-made leg, made and then deleted by hand while netlab watches:
/// `iface-observed` with role manual-veth and both ends, then `iface-gone` (link deleted
/// by hand, although AppProd is removed a moment later) with the echoes ping counted
/// over it.
#[test]
fn hand_made_leg_is_observed_then_gone() -> Result<()> {
    const LEG_PINGS: u32 = 3;
    let bin = docker_or_skip!();
    let lab = CourseLab::new()?;
    let host = HostNetns::attach()?;
    let devops = lab.devops.name.clone();
    let appprod = lab.appprod.name.clone();
    let bridge = lab.devops.bridge();
    let topo = topology(&bin)?;
    let subnet = topo_network(&topo, &devops)?["subnets"][0]
        .as_str()
        .with_context(|| format!("no subnet for {devops}: {topo}"))?
        .to_owned();
    let (addr, cidr) = subnet_host(&subnet, 200)?;

    let watch = host.watch(&bin, &["--json"])?;
    let leg = add_hand_made_leg(&bridge, &lab.appprod, &cidr)?;
    let ping_out = lab.appdev.ping(&addr.to_string(), LEG_PINGS)?;
    Command::new("ip")
        .args(["link", "del", &leg.name])
        .status()
        .context("ip link del")?;
    // AppProd removed right after: that is not why the leg went.
    std::thread::sleep(Duration::from_millis(300));
    // Moved out alone: the rest of the lab drops in its fields' order, containers before
    // their networks (bindings of a destructuring drop in reverse, and `docker network rm`
    // of a network with containers on it fails).
    let appprod_container = lab.appprod;
    remove_all(vec![appprod_container])?;
    std::thread::sleep(EXPLAINED);
    let output = watch.stop_after(Duration::from_millis(200))?;

    let at = |kind: &str| {
        output
            .events
            .iter()
            .position(|e| e["kind"] == kind && e["iface"]["name"] == leg.name.as_str())
    };
    let observed: Vec<_> = of_kind(&output, "iface-observed")
        .into_iter()
        .filter(|e| e["iface"]["name"] == leg.name.as_str())
        .collect();
    ensure!(
        observed.len() == 1,
        "expected one iface-observed for {}:\n{}",
        leg.name,
        output.stdout
    );
    let o = observed[0];
    ensure!(
        o["iface"]["role"] == "manual-veth"
            && o["iface"]["container"] == appprod.as_str()
            && o["iface"]["peer"] == "eth1"
            && o["iface"]["network"] == devops.as_str()
            && o["iface"]["bridge"] == bridge.as_str(),
        "iface-observed of {}: {o}",
        leg.name
    );
    let gone = gone_of(&output, &leg.name)?;
    ensure!(
        at("iface-observed") < at("iface-gone"),
        "observed after gone:\n{}",
        output.stdout
    );
    ensure!(
        gone["reason"] == "link-deleted" && gone["iface"]["role"] == "manual-veth",
        "iface-gone of {}: {gone}",
        leg.name
    );
    let n = u64::from(LEG_PINGS);
    let c = counted(gone);
    ensure!(
        ping_out.contains(&format!("{LEG_PINGS} packets received"))
            && packets(&c, "egress", "icmp-echo-request") == n
            && packets(&c, "ingress", "icmp-echo-reply") == n,
        "ping: {ping_out}\ngone event counted {c:?}"
    );
    let ifindex = gone["iface"]["ifindex"].as_u64().context("ifindex")?;
    ensure!(
        c == summary_counters(&output, &leg.name, ifindex),
        "gone counted {c:?}, summary {:?}",
        summary_counters(&output, &leg.name, ifindex)
    );
    Ok(())
}

/// A Docker engine of this test's own (its own socket, data and exec roots, a bridge of its
/// own for its default network, no firewall rules), stopped on drop. Not `--bridge=none`:
/// with that, dockerd deletes the host's docker0 at start.
struct PrivateEngine {
    dir: std::path::PathBuf,
    socket: String,
    bridge: String,
    child: Option<std::process::Child>,
}

impl PrivateEngine {
    fn start() -> Result<Self> {
        let name = unique_name("engine");
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir)?;
        let bridge = format!("nle{}", std::process::id());
        netlab_tests::sh(&format!(
            "ip link add {bridge} type bridge && ip addr add 10.79.0.1/24 dev {bridge} && ip link set {bridge} up"
        ))?;
        let mut e = Self {
            socket: format!("/run/{name}.sock"),
            dir,
            bridge,
            child: None,
        };
        e.run()?;
        Ok(e)
    }

    fn run(&mut self) -> Result<()> {
        let log = std::fs::File::create(self.dir.join("dockerd.log"))?;
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(self.dir.join("data"))
            .arg("--exec-root")
            .arg(self.dir.join("exec"))
            .arg("--pidfile")
            .arg(self.dir.join("dockerd.pid"))
            .args(["-H", &format!("unix://{}", self.socket)])
            .arg(format!("--bridge={}", self.bridge))
            .args(["--iptables=false", "--ip6tables=false"])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting dockerd")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ok = Command::new("docker")
                .args(["-H", &format!("unix://{}", self.socket), "version"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        anyhow::bail!(
            "the private dockerd did not answer:\n{}",
            std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
        )
    }

    fn stop(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            // SIGKILL after 20 s.
            stop_child(&mut c, libc::SIGTERM, Duration::from_secs(20))?;
        }
        Ok(())
    }
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_file(&self.socket);
        let _ = Command::new("umount").arg("-R").arg(&self.dir).output();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = netlab_tests::sh(&format!("ip link del {}", self.bridge));
    }
}

/// netlab following an engine of the test's own: stopping it says `engine-lost` once,
/// starting it again says `engine-regained` once, in that order.
#[test]
fn engine_lost_and_regained() -> Result<()> {
    let bin = docker_or_skip!();
    if Command::new("dockerd").arg("--version").output().is_err() {
        println!("skipping: no dockerd binary");
        return Ok(());
    }
    let mut engine = PrivateEngine::start()?;
    let host = HostNetns::attach()?;
    let docker_host = format!("unix://{}", engine.socket);
    let wrapper = EnvWrapper::new(&bin, &[NO_DAEMON, ("DOCKER_HOST", docker_host.as_str())])?;
    let watch = Watch::start_bin(&wrapper.bin, host.name(), &["--json"], READY_TIMEOUT)?;
    engine.stop()?;
    std::thread::sleep(Duration::from_secs(1));
    engine.run()?;
    // netlab tries again after 1, 2, 4... s.
    std::thread::sleep(Duration::from_secs(8));
    let output = watch.stop_after(Duration::from_millis(200))?;
    let kinds: Vec<&str> = output
        .events
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .filter(|k| k.starts_with("engine-"))
        .collect();
    ensure!(
        kinds == ["engine-lost", "engine-regained"],
        "engine events: {kinds:?}\n--- stdout:\n{}\n--- stderr:\n{}",
        output.stdout,
        output.stderr
    );
    drop(wrapper);
    Ok(())
}

/// Through the daemon's API: `/v1/events?kind=topology&container=<a>` says a container
/// started, its veth observed, then (after `docker rm -f`) stopped, removed and its veth
/// gone with the echoes ping counted there, equal to what `/v1/counters` keeps of that
/// veth; nothing about the other container on the same network.
#[test]
fn daemon_streams_topology_events_filtered_by_container() -> Result<()> {
    const PINGS: u32 = 3;
    let bin = docker_or_skip!();
    let net = Network::create("tapi")?;
    let peer = Container::sleeper("tpeer", &net)?;
    let paths = DaemonPaths::new(&bin)?;
    let daemon = paths.start(&[])?;
    let name = unique_name("ta");
    let stream = EventStream::open(
        &paths.socket,
        &format!("/v1/events?kind=topology&container={name}"),
    )?;
    let a = Container::run_named(name.clone(), &net, BUSYBOX_IMAGE, &["sleep", "600"])?;
    let ping_out = a.ping(&peer.name, PINGS)?;
    let veth = a.host_veth()?;
    remove_all(vec![a])?;
    let events = stream.wait_for(Duration::from_secs(10), |all| {
        all.iter().any(|e| e["kind"] == "iface-gone")
    })?;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    let once = |k: &str| kinds.iter().filter(|x| **x == k).count() == 1;
    ensure!(
        [
            "container-started",
            "iface-observed",
            "container-stopped",
            "container-removed",
            "iface-gone"
        ]
        .iter()
        .all(|k| once(k))
            && events.iter().all(|e| e["container"] == name.as_str()
                || e["kind"].as_str().is_some_and(|k| k.starts_with("engine-"))),
        "events for {name}: {kinds:?}\n{events:#?}"
    );
    let gone = events
        .iter()
        .find(|e| e["kind"] == "iface-gone")
        .context("iface-gone")?;
    ensure!(
        gone["iface"]["name"] == veth.as_str() && gone["reason"] == "container-removed",
        "{gone}"
    );
    let c = counted(gone);
    let n = u64::from(PINGS);
    ensure!(
        ping_out.contains(&format!("{PINGS} packets received"))
            && packets(&c, "ingress", "icmp-echo-request") == n
            && packets(&c, "egress", "icmp-echo-reply") == n,
        "ping: {ping_out}\ngone counted {c:?}"
    );
    let ifindex = gone["iface"]["ifindex"].as_u64().context("ifindex")?;
    let kept = get_json(&paths.socket, "/v1/counters")?;
    let mut rows = BTreeMap::new();
    for r in kept["counters"].as_array().into_iter().flatten() {
        if r["iface"] == veth.as_str() && r["ifindex"].as_u64() == Some(ifindex) {
            *rows
                .entry((
                    r["direction"].as_str().unwrap_or_default().to_owned(),
                    r["kind"].as_str().unwrap_or_default().to_owned(),
                ))
                .or_insert(0u64) += r["packets"].as_u64().unwrap_or_default();
        }
    }
    ensure!(c == rows, "gone counted {c:?}, /v1/counters {rows:?}");
    let stopped = daemon.stop(libc::SIGTERM)?;
    ensure!(stopped.status.success(), "daemon: {}", stopped.stderr);
    Ok(())
}

//! Docker Swarm hosts, on a two-node Swarm of the test's own (`netlab_tests::swarm`: two
//! engines in two network namespaces of this machine, each with its own /run and bpffs):
//! `cargo test -p netlab-tests --test swarm -- --test-threads=1` (root, the lab's images,
//! run by `cargo xtask test`).
//!
//! netlab runs inside node 1 (its network, mount and UTS namespaces), as it would on that
//! host, and talks to node 1's engine.

use std::time::Duration;

use anyhow::{Context, Result};
use netlab_tests::daemon::get_json;
use netlab_tests::docker::{BUSYBOX_IMAGE, NO_DAEMON};
use netlab_tests::docker_or_skip;
use netlab_tests::host::cmd::run;
use netlab_tests::host::netns::unique_name;
use netlab_tests::host::process::Background;
use netlab_tests::swarm::Swarm;
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

    let mut topology = node.enter()?;
    topology
        .arg(&bin)
        .args(["topology", "--json"])
        .env(NO_DAEMON.0, NO_DAEMON.1);
    let shown = run(&mut topology)?;
    let topo: Value = serde_json::from_str(&shown).context("netlab topology --json")?;
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
    let mut daemon = node.enter()?;
    daemon.arg(&bin).args(["daemon", "--cleanup-on-exit"]);
    let daemon = Background::start(daemon, "daemon: watching", DAEMON_READY)?;
    let pid = node.pid().context("node 1 without its dockerd")?;
    let socket = std::path::PathBuf::from(format!("/proc/{pid}/root/run/netlab/netlab.sock"));
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

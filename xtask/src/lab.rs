//! `cargo xtask lab`: the Docker course lab. Two user-defined bridge networks, `devops` and
//! `prod`; `AppDev` (http-echo) and `pinger` on devops, `AppProd` (http-echo) on prod. pinger
//! pings AppDev by name while `netlab watch` (which finds Docker's bridges and veths itself)
//! shows the traffic. The lab stays up after netlab ends, also on Ctrl-C, so that the user can
//! follow the course steps the banner prints; `cargo xtask lab --down` removes it.
//!
//! Traffic stays between the lab's containers: pinger only resolves `appdev`, a container that
//! exists on its network (Docker's embedded DNS forwards unknown names outside).

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, ExitStatus};

use anyhow::{bail, ensure, Context, Result};

use crate::interrupt::{self, interrupted, IgnoreInterrupts};
use crate::{cmd, docker, images, netns_lab, setup, workspace};

pub const DEVOPS: &str = "devops";
pub const PROD: &str = "prod";
pub const APP_DEV: &str = "AppDev";
pub const APP_PROD: &str = "AppProd";
pub const PINGER: &str = "pinger";
/// The name pinger pings: AppDev's, as Docker's embedded DNS answers it (case-insensitively).
const PING_TARGET: &str = "appdev";
/// The lab's containers, in the order they are removed.
const CONTAINERS: [&str; 3] = [PINGER, APP_DEV, APP_PROD];
const NETWORKS: [&str; 2] = [DEVOPS, PROD];
/// Label put on the lab's networks and containers (`docker ps --filter label=org.netlab.lab`).
const LAB_LABEL: &str = "org.netlab.lab=docker";
/// The host side of the veth pair the course makes by hand; its peer ends up in AppProd.
pub const HAND_VETH: &str = "int_hote";
const HAND_PEER: &str = "int_prod";
/// AppProd's address on devops through the hand-made leg: this host number of the devops subnet
/// (Docker allocates from the bottom), or the next free one.
const HAND_HOST_NUMBER: u32 = 200;

/// The engine a lab runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LabEngine {
    /// Docker Engine.
    Docker,
    /// Podman, through its Docker-compatible API service.
    Podman,
}

impl LabEngine {
    /// Its command-line tool.
    fn cli(self) -> &'static str {
        match self {
            LabEngine::Docker => "docker",
            LabEngine::Podman => "podman",
        }
    }

    /// `<cli> ARGS`'s stdout; fails with its stderr unless it exits 0.
    fn output<I, S>(self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = Command::new(self.cli());
        command.args(args);
        cmd::capture(&mut command)
    }

    /// `<cli> ARGS`'s stdout when it exits 0, `None` otherwise.
    fn output_if_ok<I, S>(self, args: I) -> Result<Option<String>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = Command::new(self.cli());
        command.args(args);
        let out = cmd::output(&mut command)?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    /// Options of `run` for every lab container: Docker's `--init`; on Podman raw sockets
    /// for ping (not granted by default) and limits any host's runc can set.
    fn run_options(self) -> &'static [&'static str] {
        match self {
            LabEngine::Docker => &["--init"],
            LabEngine::Podman => netlab_tests::podman::RUN_OPTIONS,
        }
    }

    /// `DOCKER_HOST` for netlab to reach this engine (`None`: Docker's default socket).
    fn docker_host(self) -> Option<&'static str> {
        match self {
            LabEngine::Docker => None,
            LabEngine::Podman => Some(netlab_tests::podman::DOCKER_HOST),
        }
    }

    /// The name pinger pings: AppDev's, as the engine's DNS answers it (Docker's
    /// case-insensitively, Podman's aardvark-dns as the container is named).
    fn ping_target(self) -> &'static str {
        match self {
            LabEngine::Docker => PING_TARGET,
            LabEngine::Podman => APP_DEV,
        }
    }
}

/// Builds the lab (images first, if missing), starts the pinger and runs `netlab watch` for
/// `duration` seconds in the foreground. Leaves the lab up, whatever netlab does. On
/// Podman, `isolate` creates the networks with `--opt isolate=true`.
pub fn run(duration: u32, rebuild: bool, engine: LabEngine, isolate: bool) -> Result<()> {
    netns_lab::require_root()?;
    ensure!(
        !isolate || engine == LabEngine::Podman,
        "--isolate is for --engine podman: Docker keeps its networks apart already"
    );
    setup::run()?;
    // The images are built with Docker, also for Podman (which gets a copy).
    docker::ensure_docker().context("no Docker engine")?;
    images::ensure_images(rebuild)?;
    if engine == LabEngine::Podman {
        crate::podman::ensure()?;
    }

    let leftovers = remove_lab(engine)?;
    if !leftovers.is_empty() {
        eprintln!(
            "xtask: removed leftovers of an earlier lab: {}",
            leftovers.join(", ")
        );
    }
    for network in NETWORKS {
        let mut args = vec!["network", "create", "--label", LAB_LABEL];
        if isolate {
            args.extend(["--opt", "isolate=true"]);
        }
        args.push(network);
        engine.output(args)?;
    }
    run_http_echo(engine, APP_DEV, DEVOPS)?;
    run_http_echo(engine, APP_PROD, PROD)?;

    let netlab = workspace::build_daemon(true).context(
        "release build of netlab failed; AppDev and AppProd are up, the pinger is not \
         (fix the build and run `cargo xtask lab` again, or `cargo xtask lab --down`)",
    )?;

    // pinger resolves `appdev`: make sure that name exists before it asks.
    ensure_running(engine, APP_DEV)?;
    ensure_running(engine, APP_PROD)?;
    let count = duration.to_string();
    let mut args = vec!["run", "--detach"];
    args.extend_from_slice(engine.run_options());
    args.extend([
        "--label",
        LAB_LABEL,
        "--name",
        PINGER,
        "--network",
        DEVOPS,
        images::BUSYBOX_IMAGE,
        "ping",
        "-c",
        &count,
        "-i",
        "1",
        engine.ping_target(),
    ]);
    engine.output(args)?;

    // The map, served by a daemon of the lab's that the watch below streams from.
    let map = crate::lab_map::start(&netlab, engine.docker_host())?.then(crate::lab_map::url);
    let facts = Facts::inspect(engine)?;
    eprint!(
        "{}",
        banner(&facts, duration, map.as_deref(), engine, isolate)
    );

    // Ctrl-C stops netlab (which gets the default disposition back), not xtask.
    let _interrupts = IgnoreInterrupts::new();
    let status = watch(&netlab, duration, map.is_some(), engine)?;
    if map.is_some() && crate::lab_map::stopped() {
        // `cargo xtask lab --down` ran meanwhile: the watch ended with the map's daemon.
        eprintln!("xtask: the lab was removed; netlab watch ended with it");
        return Ok(());
    }
    let still_up = "the lab is still up; `cargo xtask lab --down` removes it";
    if interrupted(status) {
        eprintln!("xtask: netlab watch was interrupted; {still_up}");
        return Ok(());
    }
    if !status.success() {
        bail!("`netlab watch` failed ({status}); {still_up}");
    }
    eprintln!("xtask: netlab watch ended; {still_up}");
    Ok(())
}

/// `cargo xtask lab --down`: removes the hand-made `int_hote` link, the lab's containers and
/// networks, and the namespace lab's namespaces, whichever exist. Does not start a Docker engine.
/// How long `--down` leaves the map's daemon running after removing the lab, so that its
/// watchers get the interfaces' going: netlab waits up to 2 s for Docker to say why an
/// interface went before it says so.
const GOINGS_SHOWN: std::time::Duration = std::time::Duration::from_secs(3);

pub fn down() -> Result<()> {
    netns_lab::require_root()?;
    let mut removed = Vec::new();
    // A lab on Podman: its CLI works without the API service.
    if Command::new("podman").arg("--version").output().is_ok() {
        removed.extend(remove_lab(LabEngine::Podman)?);
    }
    if docker::answers()? {
        removed.extend(remove_lab(LabEngine::Docker)?);
    } else {
        if remove_hand_veth()? {
            removed.push(format!("link {HAND_VETH}"));
        }
        eprintln!(
            "xtask: no Docker engine answers: skipped the lab's containers and networks \
             (start one with `cargo xtask docker-up`, then run `cargo xtask lab --down` again)"
        );
    }
    removed.extend(
        netns_lab::delete_namespaces()?
            .into_iter()
            .map(|ns| format!("namespace {ns}")),
    );
    // The map's daemon goes last: a `netlab watch` on it (the lab's own, or the person's)
    // shows the course's last step, every interface going and what it counted there.
    if crate::lab_map::running() {
        if !removed.is_empty() {
            std::thread::sleep(GOINGS_SHOWN);
        }
        if crate::lab_map::stop(None)? {
            removed.push("the map's netlab daemon".to_owned());
        }
    }
    if removed.is_empty() {
        eprintln!("xtask: nothing of the lab was left");
    } else {
        eprintln!("xtask: removed {}", removed.join(", "));
    }
    Ok(())
}

/// Removes whichever of `int_hote`, the lab's containers and its networks exist on `engine`;
/// returns what it removed. Needs a Docker engine that answers (Podman's CLI works alone).
fn remove_lab(engine: LabEngine) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    // Deleting it also deletes its peer, wherever that is (in AppProd as eth1, or still here).
    if remove_hand_veth()? {
        removed.push(format!("link {HAND_VETH}"));
    }

    let names = engine.output(["ps", "--all", "--format", "{{.Names}}"])?;
    let present: Vec<&str> = CONTAINERS
        .into_iter()
        .filter(|name| listed(&names, name))
        .collect();
    if !present.is_empty() {
        engine.output(["rm", "--force"].into_iter().chain(present.iter().copied()))?;
        removed.extend(
            present
                .iter()
                .map(|name| format!("{} container {name}", engine.cli())),
        );
    }

    let networks = engine.output(["network", "ls", "--format", "{{.Name}}"])?;
    for network in NETWORKS.into_iter().filter(|name| listed(&networks, name)) {
        engine.output(["network", "rm", network]).with_context(|| {
            format!("cannot remove network {network}: is a container of yours still on it?")
        })?;
        removed.push(format!("{} network {network}", engine.cli()));
    }
    Ok(removed)
}

/// Whether `name` is one of the names in a `docker ... --format {{.Names}}` listing (one line
/// per object, a container with several names has them comma-separated).
fn listed(listing: &str, name: &str) -> bool {
    listing
        .lines()
        .flat_map(|line| line.split(','))
        .any(|listed| listed.trim() == name)
}

/// Deletes `int_hote` if it exists in this network namespace; true if it did.
fn remove_hand_veth() -> Result<bool> {
    if !Path::new("/sys/class/net").join(HAND_VETH).exists() {
        return Ok(false);
    }
    cmd::run(Command::new("ip").args(["link", "del", HAND_VETH]))?;
    Ok(true)
}

/// `docker run -d --init --name NAME --network NETWORK netlab/http-echo -text "hello from NAME"`
/// (or Podman's, with its [`LabEngine::run_options`]).
fn run_http_echo(engine: LabEngine, name: &str, network: &str) -> Result<()> {
    let text = format!("hello from {name}");
    let mut args = vec!["run", "--detach"];
    args.extend_from_slice(engine.run_options());
    args.extend([
        "--label",
        LAB_LABEL,
        "--name",
        name,
        "--network",
        network,
        images::HTTP_ECHO_IMAGE,
        "-text",
        &text,
    ]);
    engine.output(args)?;
    Ok(())
}

/// Fails, with the container's log, unless it is running.
fn ensure_running(engine: LabEngine, name: &str) -> Result<()> {
    let running = engine.output(["inspect", "--format", "{{.State.Running}}", name])?;
    if running.trim() != "true" {
        let logs = engine
            .output_if_ok(["logs", "--tail", "20", name])?
            .unwrap_or_default();
        bail!(
            "container {name} is not running; its log:\n{}",
            logs.trim_end()
        );
    }
    Ok(())
}

/// Runs `netlab watch --duration SECS` in the foreground with inherited stdio. Without
/// `--iface`, netlab discovers Docker's bridges and containers itself; with `via_daemon`,
/// it streams from the lab's daemon (the map's), whose programs observe for both.
fn watch(netlab: &Path, duration: u32, via_daemon: bool, engine: LabEngine) -> Result<ExitStatus> {
    let mut watch = Command::new(netlab);
    watch.args(["watch", "--duration", &duration.to_string()]);
    if let Some(host) = engine.docker_host() {
        watch.env("DOCKER_HOST", host);
    }
    // Never someone else's daemon: the lab's, or a path where none listens (embedded).
    watch.env(
        "NETLAB_SOCKET",
        if via_daemon {
            crate::lab_map::SOCKET
        } else {
            "/run/netlab/no-lab-daemon.sock"
        },
    );
    interrupt::default_interrupts_in_child(&mut watch);
    cmd::announce(&watch);
    watch
        .status()
        .with_context(|| format!("failed to start `{}`", cmd::display(&watch)))
}

/// An IPv4 subnet, `address/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ipv4Net {
    network: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    /// Parses `a.b.c.d/len` (host bits are cleared); `None` for IPv6 or anything malformed.
    fn parse(cidr: &str) -> Option<Self> {
        let (addr, prefix) = cidr.split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        if prefix > 32 {
            return None;
        }
        let network = Ipv4Addr::from(u32::from(addr) & Self::mask(prefix));
        Some(Self { network, prefix })
    }

    fn mask(prefix: u8) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
    }

    /// How many addresses the subnet spans.
    fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The address with host number `number`, if that is a host address of the subnet (neither
    /// the network nor the broadcast address).
    fn host(self, number: u32) -> Option<Ipv4Addr> {
        (number >= 1 && u64::from(number) + 1 < self.size())
            .then(|| Ipv4Addr::from(u32::from(self.network) + number))
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// What `docker network inspect` says about one of the lab's networks.
#[derive(Debug)]
struct NetworkFacts {
    name: &'static str,
    /// Its Linux bridge.
    bridge: String,
    subnet: Ipv4Net,
    gateway: Option<Ipv4Addr>,
    /// Containers on it and their addresses.
    members: Vec<(String, Ipv4Addr)>,
}

/// Prints one `key value...` line per fact; parsed by [`NetworkFacts::parse`].
const NETWORK_FORMAT: &str = concat!(
    r#"{{println "id" .Id}}"#,
    r#"{{range .IPAM.Config}}{{println "subnet" .Subnet .Gateway}}{{end}}"#,
    r#"{{range .Containers}}{{println "member" .Name .IPv4Address}}{{end}}"#,
);

impl NetworkFacts {
    fn inspect(engine: LabEngine, name: &'static str) -> Result<Self> {
        if engine == LabEngine::Podman {
            return Self::inspect_podman(name);
        }
        let out = docker::output(["network", "inspect", "--format", NETWORK_FORMAT, name])?;
        Self::parse(name, &out)
            .with_context(|| format!("unexpected `docker network inspect {name}` output: {out:?}"))
    }

    /// Podman's `network inspect` (its own JSON, which names the bridge) and its
    /// containers' inspects (their addresses on the network).
    fn inspect_podman(name: &'static str) -> Result<Self> {
        let out = LabEngine::Podman.output(["network", "inspect", name])?;
        let filter = format!("network={name}");
        let names =
            LabEngine::Podman.output(["ps", "--filter", &filter, "--format", "{{.Names}}"])?;
        let names: Vec<&str> = names.split_whitespace().collect();
        let containers = if names.is_empty() {
            "[]".to_owned()
        } else {
            LabEngine::Podman.output(["inspect"].into_iter().chain(names.iter().copied()))?
        };
        Self::parse_podman(name, &out, &containers)
            .with_context(|| format!("unexpected `podman network inspect {name}` output: {out:?}"))
    }

    /// Parses Podman's network inspect and container inspects (JSON arrays).
    fn parse_podman(name: &'static str, network: &str, containers: &str) -> Result<Self> {
        let network: serde_json::Value = serde_json::from_str(network)?;
        let n = &network[0];
        let bridge = n["network_interface"]
            .as_str()
            .context("no network_interface")?
            .to_owned();
        let (subnet, gateway) = n["subnets"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|s| {
                let net = Ipv4Net::parse(s["subnet"].as_str()?)?;
                Some((net, s["gateway"].as_str().and_then(|g| g.parse().ok())))
            })
            .context("no IPv4 subnet")?;
        let containers: serde_json::Value = serde_json::from_str(containers)?;
        let members = containers
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let member = c["Name"].as_str()?.trim_start_matches('/').to_owned();
                let addr = c["NetworkSettings"]["Networks"][name]["IPAddress"]
                    .as_str()?
                    .parse()
                    .ok()?;
                Some((member, addr))
            })
            .collect();
        Ok(Self {
            name,
            bridge,
            subnet,
            gateway,
            members,
        })
    }

    /// Parses [`NETWORK_FORMAT`]'s output; the first IPv4 subnet is the one that counts.
    fn parse(name: &'static str, text: &str) -> Result<Self> {
        let mut id = None;
        let mut subnet = None;
        let mut gateway = None;
        let mut members = Vec::new();
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["id", value] => id = Some((*value).to_owned()),
                ["subnet", cidr, rest @ ..] if subnet.is_none() => {
                    if let Some(net) = Ipv4Net::parse(cidr) {
                        subnet = Some(net);
                        gateway = rest.first().and_then(|gw| gw.parse().ok());
                    }
                }
                ["member", member, cidr] => {
                    if let Some(addr) = cidr.split_once('/').and_then(|(addr, _)| addr.parse().ok())
                    {
                        members.push(((*member).to_owned(), addr));
                    }
                }
                _ => {}
            }
        }
        let id = id.context("no network id")?;
        ensure!(
            id.len() >= 12 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "network id {id:?} is not hexadecimal"
        );
        Ok(Self {
            name,
            bridge: format!("br-{}", &id[..12]),
            subnet: subnet.context("no IPv4 subnet")?,
            gateway,
            members,
        })
    }

    /// The Linux bridge: Docker's `br-` and the id's first 12 hex digits, Podman's
    /// `podmanN`.
    fn bridge(&self) -> String {
        self.bridge.clone()
    }

    fn address_of(&self, container: &str) -> Result<Ipv4Addr> {
        self.members
            .iter()
            .find(|(name, _)| name == container)
            .map(|(_, addr)| *addr)
            .with_context(|| format!("container {container} has no address on {}", self.name))
    }

    /// A host address nobody on the network uses: host number `preferred` or the next free one
    /// above it, else the first free one below it.
    fn unused_address(&self, preferred: u32) -> Option<Ipv4Addr> {
        let taken = |addr: &Ipv4Addr| {
            Some(*addr) == self.gateway || self.members.iter().any(|(_, used)| used == addr)
        };
        let last = u32::try_from(self.subnet.size().saturating_sub(2)).unwrap_or(u32::MAX);
        (preferred..=last)
            .chain((2..preferred.min(last + 1)).rev())
            .filter_map(|number| self.subnet.host(number))
            .find(|addr| !taken(addr))
    }
}

/// Everything the banner shows, read from Docker once the lab is up.
#[derive(Debug)]
struct Facts {
    devops: NetworkFacts,
    prod: NetworkFacts,
    app_dev: Ipv4Addr,
    app_prod: Ipv4Addr,
    /// None if pinger already stopped (a very short `--duration`).
    pinger: Option<Ipv4Addr>,
    app_prod_pid: u32,
    /// AppProd's address on devops through the hand-made leg.
    hand_address: Ipv4Addr,
}

impl Facts {
    fn inspect(engine: LabEngine) -> Result<Self> {
        let devops = NetworkFacts::inspect(engine, DEVOPS)?;
        let prod = NetworkFacts::inspect(engine, PROD)?;
        let pid = engine.output(["inspect", "--format", "{{.State.Pid}}", APP_PROD])?;
        let app_prod_pid: u32 = pid
            .trim()
            .parse()
            .with_context(|| format!("{APP_PROD}'s pid {pid:?} is not a number"))?;
        ensure!(app_prod_pid != 0, "{APP_PROD} is not running (pid 0)");
        let hand_address = devops
            .unused_address(HAND_HOST_NUMBER)
            .with_context(|| format!("no free address left in {DEVOPS} ({})", devops.subnet))?;
        let bridge = devops.bridge();
        if !Path::new("/sys/class/net").join(&bridge).exists() {
            eprintln!(
                "xtask: warning: the bridge {bridge} of network {DEVOPS} is not in /sys/class/net"
            );
        }
        Ok(Self {
            app_dev: devops.address_of(APP_DEV)?,
            app_prod: prod.address_of(APP_PROD)?,
            pinger: devops.address_of(PINGER).ok(),
            app_prod_pid,
            hand_address,
            devops,
            prod,
        })
    }
}

/// What the user sees and the next course steps, as commands to paste; `map` is the map's
/// URL when it is served.
fn banner(
    facts: &Facts,
    duration: u32,
    map: Option<&str>,
    engine: LabEngine,
    isolate: bool,
) -> String {
    let Facts {
        devops,
        prod,
        app_dev,
        app_prod,
        pinger,
        app_prod_pid: pid,
        hand_address: hand,
    } = facts;
    let pinger = pinger.map_or_else(|| "stopped".to_owned(), |addr| addr.to_string());
    let (dev_bridge, prod_bridge) = (devops.bridge(), prod.bridge());
    let prefix = devops.subnet.prefix;
    let cli = engine.cli();
    let ping_target = engine.ping_target();
    let (lab, dns, discovered) = match engine {
        LabEngine::Docker => ("Docker", "Docker's DNS", "Docker's bridges and containers"),
        LabEngine::Podman => (
            "Podman",
            "Podman's aardvark-dns",
            "Podman's bridges and containers (through its API)",
        ),
    };
    let step1 = match (engine, isolate) {
        (LabEngine::Docker, _) => format!(
            " 1. devops and prod are isolated: Docker's iptables rules drop what goes from one bridge to\n    \
             the other, so these echo requests get no reply:\n      \
             docker exec {APP_DEV} ping -c 3 {app_prod}"
        ),
        (LabEngine::Podman, true) => format!(
            " 1. devops and prod were created with --opt isolate=true: netavark's rule\n    \
             NETAVARK_ISOLATION_2 drops what goes from one isolated network to another, so these\n    \
             echo requests get no reply (netlab names the rule and what it means):\n      \
             podman exec {APP_DEV} ping -c 3 {app_prod}"
        ),
        (LabEngine::Podman, false) => format!(
            " 1. Here Podman differs from Docker: its networks are not isolated from each other by\n    \
             default, so these echo requests ARE answered (netavark masquerades them: {APP_PROD} sees\n    \
             them come from prod's gateway, {prod_gw}). For the course's isolation, run the lab with\n    \
             `cargo xtask lab --engine podman --isolate` (networks created with --opt isolate=true):\n      \
             podman exec {APP_DEV} ping -c 3 {app_prod}",
            prod_gw = prod
                .gateway
                .map_or_else(|| "its gateway".to_owned(), |g| g.to_string()),
        ),
    };
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        text,
        "\
--------------------------------------------------------------------------------
The netlab {lab} lab is up:
  network {DEVOPS:<6} {devops_subnet:<18} bridge {dev_bridge}: {APP_DEV} {app_dev}, {PINGER} {pinger}
  network {PROD:<6} {prod_subnet:<18} bridge {prod_bridge}: {APP_PROD} {app_prod}
{APP_DEV} and {APP_PROD} serve \"hello from <name>\" over HTTP on port 5678 (netlab/http-echo).
{PINGER} pings {APP_DEV} by name (`ping {ping_target}`, answered by {dns}) once a second
for {duration} s. Below, `netlab watch` finds {discovered} itself and shows
the ARP and ICMP it sees for {duration} s. Ctrl-C stops netlab only: the lab stays up.
{map_line}
Next steps, as root in another terminal:
{step1}
 2. Build a leg by hand: a veth pair from the {DEVOPS} bridge into {APP_PROD} (pid {pid}),
    which gets the unused {DEVOPS} address {hand} on a new eth1:
      ip link add {HAND_VETH} type veth peer name {HAND_PEER}
      ip link set {HAND_VETH} master {dev_bridge}
      ip link set {HAND_VETH} up
      ip link set {HAND_PEER} netns {pid}
      nsenter -t {pid} -n ip link set {HAND_PEER} name eth1
      nsenter -t {pid} -n ip addr add {hand}/{prefix} dev eth1
      nsenter -t {pid} -n ip link set eth1 up
    netlab watch says when it starts observing the leg:
      {HAND_VETH} → {APP_PROD} eth1 (hand-made, {DEVOPS}, {dev_bridge}) observed ({HAND_VETH}, manual-veth)
    Now {APP_DEV} reaches {APP_PROD} over one bridge, {past}:
      {cli} exec {APP_DEV} ping -c 3 {hand}
 3. Remove the lab (containers, networks, {HAND_VETH}): cargo xtask lab --down
    While it watches, netlab prints every interface going, why, and what it counted there,
    like this (with your run's counts):
      veth of {APP_DEV} ({DEVOPS}, {dev_bridge}) gone: container {APP_DEV} removed; it counted 12 echo requests, 12 replies, 3 ARP
    and `container {APP_DEV} removed`{network_removed} (`netlab watch --kind topology`
    shows only these).
--------------------------------------------------------------------------------
",
        devops_subnet = devops.subnet.to_string(),
        past = if engine == LabEngine::Podman && !isolate {
            "without netavark's NAT between networks"
        } else {
            "past the isolation"
        },
        // Podman (4.x) says nothing when a network goes.
        network_removed = if engine == LabEngine::Docker {
            format!(", `network {DEVOPS} removed`")
        } else {
            String::new()
        },
        prod_subnet = prod.subnet.to_string(),
        map_line = match map {
            Some(url) => format!(
                "\nThe map, live in a browser on this host: {url}\n\
                 (networks, containers, the pings: watch the isolation drop and the hand-made leg\n\
                 appear; served by netlab daemon until `cargo xtask lab --down`)\n"
            ),
            None => String::new(),
        },
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVOPS_INSPECT: &str =
        "id 3f6c1d0e2a7b9c8d7e6f5a4b3c2d1e0f3f6c1d0e2a7b9c8d7e6f5a4b3c2d1e0f\n\
        subnet 172.18.0.0/16 172.18.0.1\n\
        subnet fd00:18::/64 fd00:18::1\n\
        member AppDev 172.18.0.2/16\n\
        member pinger 172.18.0.3/16\n";

    fn devops() -> NetworkFacts {
        NetworkFacts::parse(DEVOPS, DEVOPS_INSPECT).expect("parses")
    }

    #[test]
    fn parses_network_inspect() {
        let net = devops();
        assert_eq!(net.bridge(), "br-3f6c1d0e2a7b");
        assert_eq!(net.subnet.to_string(), "172.18.0.0/16");
        assert_eq!(net.gateway, Some(Ipv4Addr::new(172, 18, 0, 1)));
        assert_eq!(
            net.address_of(APP_DEV).expect("member"),
            Ipv4Addr::new(172, 18, 0, 2)
        );
        assert!(net.address_of(APP_PROD).is_err());
    }

    #[test]
    fn network_without_gateway_or_members_parses() {
        let net = NetworkFacts::parse(PROD, "id 0123456789abcdef\nsubnet 10.9.0.0/24 \n")
            .expect("parses");
        assert_eq!(net.gateway, None);
        assert!(net.members.is_empty());
        assert!(NetworkFacts::parse(PROD, "subnet 10.9.0.0/24\n").is_err());
        assert!(NetworkFacts::parse(PROD, "id 0123456789abcdef\n").is_err());
        assert!(NetworkFacts::parse(PROD, "id xyz\nsubnet 10.9.0.0/24\n").is_err());
    }

    #[test]
    fn subnets_parse_and_bound_hosts() {
        let net = Ipv4Net::parse("192.168.5.77/24").expect("parses");
        assert_eq!(net.network, Ipv4Addr::new(192, 168, 5, 0));
        assert_eq!(net.host(200), Some(Ipv4Addr::new(192, 168, 5, 200)));
        assert_eq!(net.host(0), None);
        assert_eq!(net.host(255), None);
        assert_eq!(net.host(254), Some(Ipv4Addr::new(192, 168, 5, 254)));
        assert!(Ipv4Net::parse("fd00::/64").is_none());
        assert!(Ipv4Net::parse("10.0.0.0/33").is_none());
        assert!(Ipv4Net::parse("10.0.0.0").is_none());
        assert_eq!(
            Ipv4Net::parse("0.0.0.0/0").map(Ipv4Net::size),
            Some(1 << 32)
        );
    }

    #[test]
    fn hand_address_is_the_200th_unless_taken() {
        let mut net = devops();
        assert_eq!(
            net.unused_address(HAND_HOST_NUMBER),
            Some(Ipv4Addr::new(172, 18, 0, 200))
        );
        net.members
            .push(("other".to_owned(), Ipv4Addr::new(172, 18, 0, 200)));
        assert_eq!(
            net.unused_address(HAND_HOST_NUMBER),
            Some(Ipv4Addr::new(172, 18, 0, 201))
        );
        // A /28 has hosts 1..=14: fall back below the preferred number, skipping the taken ones.
        let small = NetworkFacts::parse(
            DEVOPS,
            "id 0123456789abcdef\nsubnet 10.1.0.16/28 10.1.0.17\nmember a 10.1.0.30/28\n",
        )
        .expect("parses");
        assert_eq!(
            small.unused_address(HAND_HOST_NUMBER),
            Some(Ipv4Addr::new(10, 1, 0, 29))
        );
    }

    #[test]
    fn listing_matches_whole_names() {
        let listing = "pinger\nAppDevX\nfoo,AppProd\n";
        assert!(listed(listing, PINGER));
        assert!(listed(listing, APP_PROD));
        assert!(!listed(listing, APP_DEV));
        assert!(!listed("", APP_DEV));
    }

    #[test]
    fn banner_has_the_commands_to_paste() {
        let prod = NetworkFacts::parse(
            PROD,
            "id abcdef0123456789abcdef\nsubnet 172.19.0.0/16 172.19.0.1\nmember AppProd 172.19.0.2/16\n",
        )
        .expect("parses");
        let facts = Facts {
            app_dev: Ipv4Addr::new(172, 18, 0, 2),
            app_prod: Ipv4Addr::new(172, 19, 0, 2),
            pinger: Some(Ipv4Addr::new(172, 18, 0, 3)),
            app_prod_pid: 4242,
            hand_address: Ipv4Addr::new(172, 18, 0, 200),
            devops: devops(),
            prod,
        };
        let text = banner(
            &facts,
            120,
            Some("http://127.0.0.1:9477/"),
            LabEngine::Docker,
            false,
        );
        for line in [
            "docker exec AppDev ping -c 3 172.19.0.2\n",
            "ip link add int_hote type veth peer name int_prod\n",
            "ip link set int_hote master br-3f6c1d0e2a7b\n",
            "ip link set int_hote up\n",
            "ip link set int_prod netns 4242\n",
            "nsenter -t 4242 -n ip link set int_prod name eth1\n",
            "nsenter -t 4242 -n ip addr add 172.18.0.200/16 dev eth1\n",
            "nsenter -t 4242 -n ip link set eth1 up\n",
            "docker exec AppDev ping -c 3 172.18.0.200\n",
            "cargo xtask lab --down\n",
            "int_hote → AppProd eth1 (hand-made, devops, br-3f6c1d0e2a7b) observed (int_hote, manual-veth)\n",
            "veth of AppDev (devops, br-3f6c1d0e2a7b) gone: container AppDev removed;",
            "The map, live in a browser on this host: http://127.0.0.1:9477/\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.contains("bridge br-abcdef012345: AppProd 172.19.0.2"));
    }

    /// `podman network inspect devops` and `podman inspect AppDev pinger` of the lab with
    /// `--engine podman --isolate` on Podman 4.3.1, recorded (the inspects cut to the
    /// fields read; pinger had exited).
    const PODMAN_DEVOPS: &str = r#"[{"name":"devops","id":"e216bef05d01cbb24a221fe1244e936d01ba37d3815bf5a710085495e8449dd5","driver":"bridge","network_interface":"podman1","created":"2026-12-02T03:20:12.342039776Z","subnets":[{"subnet":"10.89.0.0/24","gateway":"10.89.0.1"}],"ipv6_enabled":false,"internal":false,"dns_enabled":true,"labels":{"org.netlab.lab":"docker"},"options":{"isolate":"true"},"ipam_options":{"driver":"host-local"}}]"#;
    const PODMAN_MEMBERS: &str = r#"[{"Name":"AppDev","NetworkSettings":{"Networks":{"devops":{"IPAddress":"10.89.0.4","MacAddress":"2e:69:7c:97:6f:71"}}}},{"Name":"pinger","NetworkSettings":{"Networks":{"devops":{"IPAddress":"","MacAddress":""}}}}]"#;

    #[test]
    fn podman_network_facts_and_banner() {
        let devops =
            NetworkFacts::parse_podman(DEVOPS, PODMAN_DEVOPS, PODMAN_MEMBERS).expect("parses");
        assert_eq!(devops.bridge(), "podman1");
        assert_eq!(devops.subnet.to_string(), "10.89.0.0/24");
        assert_eq!(devops.gateway, Some(Ipv4Addr::new(10, 89, 0, 1)));
        assert_eq!(
            devops.members,
            [("AppDev".to_owned(), Ipv4Addr::new(10, 89, 0, 4))]
        );
        let prod = NetworkFacts {
            name: PROD,
            bridge: "podman2".into(),
            subnet: Ipv4Net::parse("10.89.1.0/24").expect("subnet"),
            gateway: Some(Ipv4Addr::new(10, 89, 1, 1)),
            members: vec![("AppProd".into(), Ipv4Addr::new(10, 89, 1, 2))],
        };
        let facts = Facts {
            app_dev: Ipv4Addr::new(10, 89, 0, 4),
            app_prod: Ipv4Addr::new(10, 89, 1, 2),
            pinger: None,
            app_prod_pid: 4242,
            hand_address: Ipv4Addr::new(10, 89, 0, 200),
            devops,
            prod,
        };
        let open = banner(&facts, 60, None, LabEngine::Podman, false);
        for line in [
            "The netlab Podman lab is up:",
            "`ping AppDev`, answered by Podman's aardvark-dns",
            "these echo requests ARE answered",
            "prod's gateway, 10.89.1.1",
            "cargo xtask lab --engine podman --isolate",
            "podman exec AppDev ping -c 3 10.89.1.2\n",
            "ip link set int_hote master podman1\n",
            "podman exec AppDev ping -c 3 10.89.0.200\n",
        ] {
            assert!(open.contains(line), "missing {line:?} in\n{open}");
        }
        assert!(!open.contains("docker exec") && !open.contains("network devops removed"));
        let isolated = banner(&facts, 60, None, LabEngine::Podman, true);
        assert!(isolated.contains("NETAVARK_ISOLATION_2"), "{isolated}");
        assert!(!isolated.contains("ARE answered"));
    }

    #[test]
    fn lab_names_are_distinct() {
        assert!(PING_TARGET.eq_ignore_ascii_case(APP_DEV));
        assert_ne!(DEVOPS, PROD);
        assert_eq!(CONTAINERS.len(), 3);
        assert!(HAND_VETH.len() < 16 && HAND_PEER.len() < 16, "IFNAMSIZ");
    }
}

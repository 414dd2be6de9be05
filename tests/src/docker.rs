//! Docker fixtures: networks, containers and hand-made veths that exist exactly as long as
//! their guards, `netlab watch` in the host's network namespace, and what a running netlab
//! holds in the kernel (its tcx links, its counter map).
//!
//! Every object is named `nlt-<tag>-<pid>-<n>` (see [`unique_name`]), so tests never touch
//! anything else on the host (the course's lab, a user's own containers). Dropping a
//! [`Container`] runs `docker rm -f`, a [`Network`] `docker network rm`, a [`HostLink`]
//! `ip link del`; declare networks before the containers on them, so the containers go first.
//!
//! Traffic rule: tests only ping containers they created, by the name of a container that
//! exists on the same network or by its address. Docker's embedded DNS forwards unknown names
//! to the host's resolver, so a name that does not exist must never be looked up.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use crate::bpf_state::bpftool;
use crate::host::cmd::{display, run, run_with_timeout};
use crate::host::fdinfo::{bpf_fds_of, BpfKind};
use crate::host::netns::{ip, unique_name};
use crate::watch::{Watch, READY_TIMEOUT};

/// The lab's base image (`cargo xtask test` builds it): busybox with its applets.
pub const BUSYBOX_IMAGE: &str = "netlab/busybox";
/// The lab's http-echo stand-in (`-text TEXT` served on port 5678), built on [`BUSYBOX_IMAGE`].
pub const HTTP_ECHO_IMAGE: &str = "netlab/http-echo";
/// How long one `docker` command may take.
pub const DOCKER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `docker info` may take before the engine counts as absent.
const INFO_TIMEOUT: Duration = Duration::from_secs(15);
/// An environment variable for netlab that points it at a socket no `netlab daemon` listens
/// on, so it observes by itself: a daemon that happens to run on the host would otherwise
/// serve `watch`, and the links and maps these tests inspect would be the daemon's.
pub const NO_DAEMON: (&str, &str) = ("NETLAB_SOCKET", "/nonexistent/netlab-tests-no-daemon.sock");

/// The `netlab` binary to test, or why the Docker tests cannot run here: not root, no
/// `NETLAB_BIN`, or no Docker engine answering `docker info`.
pub fn docker_env() -> Result<PathBuf, String> {
    let bin = crate::netlab_env()?;
    let mut info = Command::new("docker");
    info.args(["info", "--format", "{{.ServerVersion}}"]);
    match run_with_timeout(info, INFO_TIMEOUT) {
        Ok(out) if out.status.success() => Ok(bin),
        Ok(out) => Err(format!(
            "no Docker engine (`docker info` failed: {})",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(err) => Err(format!("no Docker engine (`docker info`: {err:#})")),
    }
}

/// Evaluates to the netlab binary path, or prints `skipping: <reason>` and returns `Ok(())`
/// from the enclosing test (see [`docker_env`]). Fails the test if the lab's images are
/// missing: with an engine, `cargo xtask test` builds them.
#[macro_export]
macro_rules! docker_or_skip {
    () => {
        match $crate::docker::docker_env() {
            Ok(bin) => {
                $crate::docker::require_images()?;
                bin
            }
            Err(reason) => {
                println!("skipping: {reason}");
                return Ok(());
            }
        }
    };
}

/// Fails unless both lab images exist locally.
pub fn require_images() -> Result<()> {
    for image in [BUSYBOX_IMAGE, HTTP_ECHO_IMAGE] {
        let out = docker_status(&["image", "inspect", "--format", "{{.Id}}", image])?;
        ensure!(
            out.status.success(),
            "image {image} is missing: `cargo xtask test` builds it (or `cargo xtask images`)"
        );
    }
    Ok(())
}

/// Runs `docker <args>` (bounded by [`DOCKER_TIMEOUT`]) and returns its stdout; fails with
/// stdout and stderr on a non-zero exit.
pub fn docker(args: &[&str]) -> Result<String> {
    crate::host::cmd::tool("docker", args, DOCKER_TIMEOUT)
}

/// Runs `docker <args>` (bounded by [`DOCKER_TIMEOUT`]); the exit status is not checked.
pub fn docker_status(args: &[&str]) -> Result<Output> {
    crate::host::cmd::tool_status("docker", args, DOCKER_TIMEOUT)
}

/// A user-defined bridge network; dropping it runs `docker network rm`.
#[derive(Debug)]
pub struct Network {
    /// Docker's name for it.
    pub name: String,
    /// Full network id.
    pub id: String,
    /// Removed already (by [`Network::remove`]): nothing left for the guard to do.
    gone: bool,
}

impl Network {
    /// `docker network create nlt-<tag>-<pid>-<n>` (the bridge driver, an address pool
    /// Docker picks).
    pub fn create(tag: &str) -> Result<Self> {
        Self::create_with(tag, &[])
    }

    /// Like [`Network::create`], with more options of `docker network create` (`--internal`,
    /// `-o com.docker.network.bridge.enable_icc=false`, `--ipv6 --subnet ...`).
    pub fn create_with(tag: &str, options: &[&str]) -> Result<Self> {
        let name = unique_name(tag);
        let mut args = vec!["network", "create", "--driver", "bridge"];
        args.extend_from_slice(options);
        args.push(&name);
        let id = docker(&args)?.trim().to_owned();
        ensure!(
            id.len() >= 12,
            "`docker network create {name}` printed {id:?}"
        );
        Ok(Self {
            name,
            id,
            gone: false,
        })
    }

    /// `docker network rm` now, failing if it fails (the guard then tries again).
    pub fn remove(mut self) -> Result<()> {
        docker(&["network", "rm", &self.name])?;
        self.gone = true;
        Ok(())
    }

    /// Docker's default network `bridge` (docker0), which the guard never removes.
    pub fn default_bridge() -> Result<Self> {
        let id = docker(&["network", "inspect", "--format", "{{.Id}}", "bridge"])?
            .trim()
            .to_owned();
        Ok(Self {
            name: "bridge".to_owned(),
            id,
            gone: true,
        })
    }

    /// The bridge device: `br-` and the first 12 hex digits of the id (`docker0` for the
    /// default network).
    pub fn bridge(&self) -> String {
        if self.name == "bridge" {
            return "docker0".to_owned();
        }
        format!("br-{}", &self.id[..12])
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if self.gone {
            return;
        }
        report_cleanup(
            &format!("docker network rm {}", self.name),
            docker_status(&["network", "rm", &self.name]),
        );
    }
}

/// A container started with `docker run -d --init`; dropping it runs `docker rm -f`.
#[derive(Debug)]
pub struct Container {
    /// Docker's name for it.
    pub name: String,
    /// Removed already: nothing left for the guard to do.
    gone: bool,
}

impl Container {
    /// `docker run -d --init --name nlt-<tag>-<pid>-<n> --network <network> <image> <args...>`.
    pub fn run(tag: &str, network: &Network, image: &str, args: &[&str]) -> Result<Self> {
        Self::run_named(unique_name(tag), network, image, args)
    }

    /// Its address on its (only) network.
    pub fn ipv4(&self) -> Result<String> {
        inspect_ipv4("docker", &self.name)
    }

    /// A busybox container that sleeps (long enough for any test).
    pub fn sleeper(tag: &str, network: &Network) -> Result<Self> {
        Self::run(tag, network, BUSYBOX_IMAGE, &["sleep", "300"])
    }

    /// Like [`Container::run`], with the exact name `name`.
    pub fn run_named(name: String, network: &Network, image: &str, args: &[&str]) -> Result<Self> {
        let mut run_args = vec![
            "run",
            "-d",
            "--init",
            "--name",
            "",
            "--network",
            &network.name,
        ];
        run_args.push(image);
        run_args.extend_from_slice(args);
        run_args[4] = &name;
        let out = docker_status(&run_args)?;
        let shown = run_args.join(" ");
        // Even a failed `docker run` may have created the container: the guard removes it.
        let container = Self { name, gone: false };
        if !out.status.success() {
            bail!(
                "`docker {shown}` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(container)
    }

    /// The process id of the container's init, as seen from the host.
    pub fn pid(&self) -> Result<u32> {
        inspect_pid("docker", &self.name)
    }

    /// `docker exec <name> <args...>`; the exit status is not checked.
    pub fn exec(&self, args: &[&str]) -> Result<Output> {
        let mut exec_args = vec!["exec", self.name.as_str()];
        exec_args.extend_from_slice(args);
        docker_status(&exec_args)
    }

    /// `ping -c <count> -i 0.2 -W 2 <target>` from inside the container; fails unless every
    /// echo was answered (busybox ping exits 0 when at least one was: the output is checked).
    /// `target` must be a container of this test on the same network, or its address.
    pub fn ping(&self, target: &str, count: u32) -> Result<String> {
        let count_arg = count.to_string();
        let out = self.exec(&["ping", "-c", &count_arg, "-i", "0.2", "-W", "2", target])?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let received = format!("{count} packets received");
        ensure!(
            out.status.success() && stdout.contains(&received),
            "`docker exec {} ping -c {count} {target}` ({}): expected {received:?}\n\
             --- stdout:\n{stdout}--- stderr:\n{}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(stdout)
    }

    /// The host end of the veth behind the container's `eth0`.
    pub fn host_veth(&self) -> Result<String> {
        host_veth_of(self.pid()?, &self.name)
    }

    /// `docker rm -f` now, failing if it fails (the guard then tries again).
    pub fn remove(self) -> Result<()> {
        remove_all(vec![self])
    }

    /// Runs `cmd` with `sh -c` inside the container's network namespace, with the host's
    /// tools (`nsenter -t <pid> -n`); returns its stdout.
    pub fn netns_exec(&self, cmd: &str) -> Result<String> {
        let pid = self.pid()?.to_string();
        run(Command::new("nsenter").args(["-t", &pid, "-n", "sh", "-c", cmd]))
    }
}

/// The address of container `name` on its (only) network, from `<cli> inspect` (Docker's
/// and Podman's answer alike).
pub fn inspect_ipv4(cli: &str, name: &str) -> Result<String> {
    let shown = crate::host::cmd::tool(
        cli,
        &[
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            name,
        ],
        DOCKER_TIMEOUT,
    )?;
    let ip = shown.trim().to_owned();
    ensure!(
        ip.parse::<std::net::Ipv4Addr>().is_ok(),
        "{name} has no IPv4 address: {shown:?}"
    );
    Ok(ip)
}

/// The process id of container `name`'s init as seen from the host, from `<cli> inspect`.
pub fn inspect_pid(cli: &str, name: &str) -> Result<u32> {
    let shown = crate::host::cmd::tool(
        cli,
        &["inspect", "--format", "{{.State.Pid}}", name],
        DOCKER_TIMEOUT,
    )?;
    let pid: u32 = shown
        .trim()
        .parse()
        .with_context(|| format!("pid of {name}: {shown:?}"))?;
    ensure!(pid != 0, "container {name} is not running");
    Ok(pid)
}

/// The host end of the veth behind `eth0` in the namespace of process `pid` (container
/// `name`): the interface whose index is eth0's `link_index`, read inside the namespace over
/// netlink (its `/sys` would be the host's).
pub fn host_veth_of(pid: u32, name: &str) -> Result<String> {
    let pid = pid.to_string();
    let shown =
        run(Command::new("nsenter")
            .args(["-t", &pid, "-n", "ip", "-j", "link", "show", "dev", "eth0"]))?;
    let links: Value = serde_json::from_str(&shown)
        .with_context(|| format!("parsing `ip -j link` in {name}: {shown}"))?;
    let index = links[0]["link_index"]
        .as_u64()
        .and_then(|idx| u32::try_from(idx).ok())
        .with_context(|| format!("{name}'s eth0 has no peer: {shown}"))?;
    host_links()?
        .remove(&index)
        .with_context(|| format!("{name}'s eth0 peer ifindex {index} is not on the host"))
}

/// `docker rm -f` of all `containers` in one command, failing if it fails (their guards
/// then try again one by one).
pub fn remove_all(mut containers: Vec<Container>) -> Result<()> {
    if containers.is_empty() {
        return Ok(());
    }
    let mut args = vec!["rm", "-f"];
    args.extend(containers.iter().map(|c| c.name.as_str()));
    docker(&args)?;
    for container in &mut containers {
        container.gone = true;
    }
    Ok(())
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.gone {
            return;
        }
        report_cleanup(
            &format!("docker rm -f {}", self.name),
            docker_status(&["rm", "-f", &self.name]),
        );
    }
}

fn report_cleanup(what: &str, result: Result<Output>) {
    match result {
        Ok(out) if out.status.success() => {}
        Ok(out) => eprintln!(
            "netlab-tests: `{what}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(err) => eprintln!("netlab-tests: `{what}`: {err:#}"),
    }
}

/// The course's lab, with test names: networks devops and prod; AppDev (http-echo) and
/// pinger on devops, AppProd on prod. Fields drop in order: containers, then networks.
#[derive(Debug)]
pub struct CourseLab {
    /// `nlt-AppDev-...` on devops, running `netlab/http-echo -text hi`.
    pub appdev: Container,
    /// `nlt-pinger-...` on devops.
    pub pinger: Container,
    /// `nlt-AppProd-...` on prod.
    pub appprod: Container,
    /// `nlt-devops-...`.
    pub devops: Network,
    /// `nlt-prod-...`.
    pub prod: Network,
}

impl CourseLab {
    /// Creates the networks and starts the three containers.
    pub fn new() -> Result<Self> {
        let devops = Network::create("devops")?;
        let prod = Network::create("prod")?;
        let appdev = Container::run("AppDev", &devops, HTTP_ECHO_IMAGE, &["-text", "hi"])?;
        let pinger = Container::sleeper("pinger", &devops)?;
        let appprod = Container::sleeper("AppProd", &prod)?;
        Ok(Self {
            appdev,
            pinger,
            appprod,
            devops,
            prod,
        })
    }
}

/// A host interface made by hand (a veth's host end); dropping it runs `ip link del` if it
/// still exists (deleting one end of a veth deletes the pair).
#[derive(Debug)]
pub struct HostLink {
    /// Its name in the host's namespace.
    pub name: String,
}

impl HostLink {
    /// `ip link add <name> type veth peer name <peer>`, both ends in this namespace.
    pub fn veth(name: &str, peer: &str) -> Result<Self> {
        ip(&["link", "add", name, "type", "veth", "peer", "name", peer])?;
        Ok(Self {
            name: name.to_owned(),
        })
    }
}

impl Drop for HostLink {
    fn drop(&mut self) {
        if link_exists(&self.name) {
            report_cleanup(
                &format!("ip link del {}", self.name),
                run_with_timeout(
                    {
                        let mut del = Command::new("ip");
                        del.args(["link", "del", &self.name]);
                        del
                    },
                    DOCKER_TIMEOUT,
                ),
            );
        }
    }
}

/// Whether the host's namespace has an interface called `name`.
pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// The second leg of the course: a veth whose host end is enslaved to `bridge` and whose
/// other end becomes `eth1` with `addr` (`a.b.c.d/len`) inside `container`. The host end is
/// `nlt-h<pid % 10000>`. Returns the guard of the host end.
pub fn add_hand_made_leg(bridge: &str, container: &Container, addr: &str) -> Result<HostLink> {
    let tag = std::process::id() % 10_000;
    let host_end = format!("nlt-h{tag}");
    let peer = format!("nlt-p{tag}");
    let leg = HostLink::veth(&host_end, &peer)?;
    ip(&["link", "set", &host_end, "master", bridge])?;
    ip(&["link", "set", &host_end, "up"])?;
    let pid = container.pid()?.to_string();
    ip(&["link", "set", &peer, "netns", &pid])?;
    container.netns_exec(&format!(
        "ip link set {peer} name eth1 && ip addr add {addr} dev eth1 && ip link set eth1 up"
    ))?;
    Ok(leg)
}

/// The host's network namespace under a name `ip netns exec` accepts (`ip netns attach`),
/// so [`Watch`] can run netlab there. Dropping it runs `ip netns del`, which only removes
/// the name: the namespace itself lives on.
#[derive(Debug)]
pub struct HostNetns {
    name: String,
}

impl HostNetns {
    /// Names the namespace this process runs in (the one Docker's bridges live in).
    pub fn attach() -> Result<Self> {
        let name = unique_name("host");
        let pid = std::process::id().to_string();
        run(Command::new("ip").args(["netns", "attach", &name, &pid]))?;
        Ok(Self { name })
    }

    /// The name `ip netns` knows it by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts `<bin> watch <args...>` in the host's namespace, on its own (see
    /// [`NO_DAEMON`]), and waits until it watches.
    pub fn watch(&self, bin: &Path, args: &[&str]) -> Result<Watch> {
        // The script execs netlab: once it watches, the script is no longer needed.
        let wrapper = EnvWrapper::new(bin, &[NO_DAEMON])?;
        Watch::start_bin(&wrapper.bin, &self.name, args, READY_TIMEOUT)
    }
}

impl Drop for HostNetns {
    fn drop(&mut self) {
        let mut del = Command::new("ip");
        del.args(["netns", "del", &self.name]);
        report_cleanup(
            &display(&del),
            run_with_timeout(del, Duration::from_secs(10)),
        );
    }
}

/// `netlab topology --json` in this namespace, on its own (see [`NO_DAEMON`]).
pub fn topology(bin: &Path) -> Result<Value> {
    let shown = run(Command::new(bin)
        .args(["topology", "--json"])
        .env(NO_DAEMON.0, NO_DAEMON.1))?;
    serde_json::from_str(&shown)
        .with_context(|| format!("parsing `netlab topology --json`: {shown}"))
}

/// The container called `name` in a topology.
pub fn topo_container<'a>(topo: &'a Value, name: &str) -> Result<&'a Value> {
    topo["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .with_context(|| format!("no container {name} in the topology: {topo}"))
}

/// The host veth of interface `iface` (e.g. `eth0`) of container `name`, from a topology.
pub fn host_veth(topo: &Value, name: &str, iface: &str) -> Result<String> {
    let container = topo_container(topo, name)?;
    container["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["name"] == iface)
        .and_then(|i| i["host_veth"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("no host veth for {name}'s {iface}: {container}"))
}

/// The network called `name` in a topology.
pub fn topo_network<'a>(topo: &'a Value, name: &str) -> Result<&'a Value> {
    topo["networks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["name"] == name)
        .with_context(|| format!("no network {name} in the topology: {topo}"))
}

/// Interface indexes of a topology's `observed` list.
pub fn observed_ifindexes(topo: &Value) -> Vec<u32> {
    topo["observed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["ifindex"].as_u64())
        .filter_map(|idx| u32::try_from(idx).ok())
        .collect()
}

/// An address of an IPv4 `subnet` (`a.b.c.d/len`, len 8..=24) with host part `host`, with
/// the prefix length: `(address, "address/len")`.
pub fn subnet_host(subnet: &str, host: u32) -> Result<(Ipv4Addr, String)> {
    let (net, len) = subnet
        .split_once('/')
        .with_context(|| format!("subnet {subnet:?} has no prefix length"))?;
    let net: Ipv4Addr = net.parse().with_context(|| format!("subnet {subnet:?}"))?;
    let len: u32 = len.parse().with_context(|| format!("subnet {subnet:?}"))?;
    ensure!(
        (8..=24).contains(&len),
        "subnet {subnet} is not between /8 and /24"
    );
    let addr = Ipv4Addr::from(u32::from(net) + host);
    Ok((addr, format!("{addr}/{len}")))
}

/// A tcx link a process holds, from `/proc/<pid>/fdinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcxLink {
    /// Link id.
    pub link_id: u64,
    /// The program it attaches.
    pub prog_id: u64,
    /// The interface it is attached to (in the holder's namespace).
    pub ifindex: u32,
}

/// Every tcx link process `pid` holds open (empty if it is gone).
pub fn tcx_links_of(pid: u32) -> Vec<TcxLink> {
    bpf_fds_of(pid, BpfKind::Link)
        .into_iter()
        .filter(|link| link.field("link_type") == Some("tcx"))
        .map(|link| TcxLink {
            link_id: link.number("link_id").unwrap_or(0),
            prog_id: link.number("prog_id").unwrap_or(0),
            ifindex: link
                .number("ifindex")
                .and_then(|i| u32::try_from(i).ok())
                .unwrap_or(0),
        })
        .collect()
}

/// Ids of the BPF maps process `pid` holds open.
pub fn map_ids_of(pid: u32) -> HashSet<u64> {
    bpf_fds_of(pid, BpfKind::Map)
        .iter()
        .map(|map| map.number("map_id").unwrap_or(0))
        .collect()
}

/// Name of netlab's counter map (15 bytes: the kernel keeps it whole).
pub const COUNTER_MAP: &str = "NETLAB_COUNTERS";

/// The interface indexes of every key in the counter map held by netlab process `pid`, or
/// `None` if bpftool shows no such map among the maps `pid` holds.
pub fn counter_map_ifindexes(pid: u32) -> Result<Option<Vec<u32>>> {
    let held = map_ids_of(pid);
    let maps: Value = bpftool(&["map", "show"])?;
    let Some(id) = maps
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| {
            m["name"]
                .as_str()
                .is_some_and(|n| COUNTER_MAP.starts_with(n))
        })
        .filter_map(|m| m["id"].as_u64())
        .find(|id| held.contains(id))
    else {
        return Ok(None);
    };
    let dump = bpftool(&["map", "dump", "id", &id.to_string()])?;
    let mut ifindexes = Vec::new();
    for entry in dump.as_array().into_iter().flatten() {
        ifindexes.push(
            key_ifindex(entry).with_context(|| {
                format!("cannot read the ifindex of a {COUNTER_MAP} key: {entry}")
            })?,
        );
    }
    Ok(Some(ifindexes))
}

/// The key's first four bytes (`CounterKey::ifindex`, little endian), from bpftool's raw
/// `"key": ["0x05", ...]` or its BTF-formatted `{"key": {"ifindex": 5, ...}}`.
pub(crate) fn key_ifindex(entry: &Value) -> Option<u32> {
    if let Some(idx) = entry
        .pointer("/formatted/key/ifindex")
        .and_then(Value::as_u64)
    {
        return u32::try_from(idx).ok();
    }
    let bytes: Vec<u8> = entry["key"]
        .as_array()?
        .iter()
        .take(4)
        .map(|b| {
            let b = b.as_str()?;
            u8::from_str_radix(b.trim_start_matches("0x"), 16).ok()
        })
        .collect::<Option<_>>()?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// Interface indexes of the host's namespace, by name.
pub fn host_links() -> Result<HashMap<u32, String>> {
    let shown = run(Command::new("ip").args(["-j", "link", "show"]))?;
    let links: Value =
        serde_json::from_str(&shown).with_context(|| format!("parsing `ip -j link`: {shown}"))?;
    Ok(links
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| {
            let idx = u32::try_from(l["ifindex"].as_u64()?).ok()?;
            Some((idx, l["ifname"].as_str()?.to_owned()))
        })
        .collect())
}

/// The attach mode netlab reports on stderr (`watching N interfaces (tcx)` → `tcx`).
pub fn attach_mode(stderr: &str) -> Option<String> {
    let line = stderr
        .lines()
        .find(|l| l.contains(crate::watch::READY_MARKER))?;
    let start = line.find('(')? + 1;
    let end = start + line[start..].find(')')?;
    Some(line[start..end].to_owned())
}

/// A shell script that runs a binary with extra environment variables, in a fresh directory
/// under the temp dir (removed on drop): lets [`Watch::start_bin`] run netlab with, say,
/// `DOCKER_HOST` set without touching the test process's environment.
#[derive(Debug)]
pub struct EnvWrapper {
    dir: PathBuf,
    /// The script: `exec env VAR=VALUE... <bin> "$@"`.
    pub bin: PathBuf,
}

impl EnvWrapper {
    /// Wraps `bin` with `vars` (values must not contain a single quote).
    pub fn new(bin: &Path, vars: &[(&str, &str)]) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let quote = |s: &str| -> Result<String> {
            ensure!(!s.contains('\''), "cannot quote {s:?}");
            Ok(format!("'{s}'"))
        };
        let mut script = String::from("#!/bin/sh\nexec env");
        for (key, value) in vars {
            script.push(' ');
            script.push_str(&quote(&format!("{key}={value}"))?);
        }
        script.push(' ');
        script.push_str(&quote(&bin.to_string_lossy())?);
        script.push_str(" \"$@\"\n");
        let dir = std::env::temp_dir().join(unique_name("env"));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let wrapper = Self {
            bin: dir.join("netlab"),
            dir,
        };
        std::fs::write(&wrapper.bin, script)?;
        std::fs::set_permissions(&wrapper.bin, std::fs::Permissions::from_mode(0o755))?;
        Ok(wrapper)
    }
}

impl Drop for EnvWrapper {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_hosts() -> Result<()> {
        let (addr, cidr) = subnet_host("172.20.0.0/16", 200)?;
        assert_eq!(addr, Ipv4Addr::new(172, 20, 0, 200));
        assert_eq!(cidr, "172.20.0.200/16");
        assert!(subnet_host("10.0.0.0/30", 200).is_err());
        assert!(subnet_host("fd00::/64", 200).is_err());
        Ok(())
    }

    #[test]
    fn counter_keys() {
        let raw = serde_json::json!({"key": ["0x2a", "0x01", "0x00", "0x00", "0x01", "0x03", "0x00", "0x00"]});
        assert_eq!(key_ifindex(&raw), Some(0x012a));
        let formatted = serde_json::json!({"formatted": {"key": {"ifindex": 7}}});
        assert_eq!(key_ifindex(&formatted), Some(7));
        assert_eq!(key_ifindex(&serde_json::json!({"key": []})), None);
    }

    #[test]
    fn attach_mode_from_stderr() {
        let stderr = "netlab: info: watching 5 interfaces (tcx), following Docker\n";
        assert_eq!(attach_mode(stderr).as_deref(), Some("tcx"));
        assert_eq!(attach_mode("nothing\n"), None);
    }
}

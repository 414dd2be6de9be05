//! What the Docker Engine API says: bridge networks, running containers, their endpoints,
//! and a feed of the events that change them.

use std::collections::HashMap;
use std::net::IpAddr;

use bollard::{
    models::{ContainerInspectResponse, EventMessage, EventMessageTypeEnum, Network},
    query_parameters::{EventsOptionsBuilder, ListContainersOptionsBuilder},
    Docker,
};
use futures_util::{Stream, StreamExt as _};
use serde::Serialize;

use super::podman::{self, Product};
use crate::model::decode::Mac;

/// Errors from the Docker Engine API.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// No engine answered (no socket, permission denied, engine down).
    #[error("cannot reach the Docker engine at {host}{hint}")]
    Unreachable {
        host: String,
        /// What to try instead (Podman's socket is there), or empty.
        hint: String,
        #[source]
        source: bollard::errors::Error,
    },
    /// A request failed.
    #[error("Docker API request {what} failed")]
    Request {
        what: &'static str,
        #[source]
        source: bollard::errors::Error,
    },
}

/// An IP subnet (serialized as `172.20.0.0/16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(s: &str) -> Option<Subnet> {
        let (a, p) = s.split_once('/')?;
        let addr: IpAddr = a.parse().ok()?;
        let prefix: u8 = p.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Subnet { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A bridge-driver Docker network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    pub driver: String,
    /// The Linux bridge device.
    pub bridge: String,
    pub subnets: Vec<Subnet>,
    pub gateways: Vec<IpAddr>,
    /// `--internal`: nothing enters or leaves its subnet.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// Containers of the network may talk to each other (inter-container communication,
    /// `com.docker.network.bridge.enable_icc`, on unless set to false).
    pub icc: bool,
    /// Podman: created with `--opt isolate=true`, kept apart from other isolated networks
    /// by netavark's firewall.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub isolated: bool,
}

/// A container's endpoint on one network, as Docker describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EndpointInfo {
    pub network_id: String,
    pub network: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
}

/// A running container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContainerInfo {
    pub id: String,
    /// As Docker names it, without the leading `/`.
    pub name: String,
    pub image: String,
    /// PID of its init process, whose network namespace is the container's.
    pub pid: u32,
    /// Where the engine bound its network namespace (`/var/run/docker/netns/<id>`): the
    /// engine's overlay sandboxes are bound beside it.
    pub sandbox_key: Option<String>,
    pub endpoints: Vec<EndpointInfo>,
}

/// A Swarm overlay network: its containers on different hosts reach each other through
/// VXLAN, over a bridge (`br0`) in a namespace of the engine's own, not the host's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OverlayInfo {
    pub id: String,
    pub name: String,
    pub subnets: Vec<Subnet>,
    /// The VXLAN network identifier of each subnet, in order
    /// (`com.docker.network.driver.overlay.vxlanid_list`).
    pub vnis: Vec<u32>,
    /// The ingress network, which carries the published ports of services.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ingress: bool,
}

/// Everything Docker told us at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DockerSnapshot {
    /// Docker, or Podman behind its Docker-compatible API.
    pub engine: Product,
    pub networks: Vec<NetworkInfo>,
    pub containers: Vec<ContainerInfo>,
    /// Swarm overlay networks this engine knows.
    pub overlays: Vec<OverlayInfo>,
    /// This host as a Swarm node, when it is one and has overlays.
    pub swarm: Option<SwarmNode>,
}

/// This host as a node of a Swarm: where its overlays' VXLAN traffic leaves and arrives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SwarmNode {
    /// The node's address (`docker info`'s `Swarm.NodeAddr`), the outer source of its VXLAN.
    pub addr: IpAddr,
    /// The Swarm's VXLAN UDP port (`--data-path-port`, 4789 unless set; workers are not
    /// told and assume 4789).
    pub data_path_port: u16,
}

impl SwarmNode {
    /// From `/info`'s `Swarm` object: `None` when the engine is not in a Swarm.
    pub fn from_info(swarm: &bollard::models::SwarmInfo) -> Option<SwarmNode> {
        let addr = swarm.node_addr.as_deref()?.parse().ok()?;
        let port = swarm
            .cluster
            .as_ref()
            .and_then(|c| c.data_path_port)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .unwrap_or(netlab_common::VXLAN_PORT);
        Some(SwarmNode {
            addr,
            data_path_port: port,
        })
    }
}

/// What the engine says of itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineFacts {
    /// Docker, or Podman behind its Docker-compatible API.
    pub product: Product,
    /// As it reports it, e.g. `28.5.2+dfsg4` (Podman: `4.3.1`).
    pub version: String,
    /// Its `/info` answer, as JSON.
    pub info_json: String,
}

/// The bridge device of a bridge network: `com.docker.network.bridge.name` when set,
/// else `br-` and the first 12 hex digits of the id (the default network sets the option
/// to `docker0`).
pub fn bridge_name(id: &str, options: Option<&HashMap<String, String>>) -> String {
    if let Some(name) = options
        .and_then(|o| o.get("com.docker.network.bridge.name"))
        .filter(|n| !n.is_empty())
    {
        return name.clone();
    }
    let short: String = id.chars().take(12).collect();
    format!("br-{short}")
}

/// The bridge network described by `n`, or `None` for other drivers.
pub fn network_info(n: &Network) -> Option<NetworkInfo> {
    let driver = n.driver.clone().unwrap_or_default();
    if driver != "bridge" {
        return None;
    }
    let id = n.id.clone()?;
    let mut subnets = Vec::new();
    let mut gateways = Vec::new();
    for c in n
        .ipam
        .as_ref()
        .and_then(|i| i.config.as_ref())
        .into_iter()
        .flatten()
    {
        if let Some(s) = c.subnet.as_deref().and_then(Subnet::parse) {
            subnets.push(s);
        }
        if let Some(g) = c.gateway.as_deref().and_then(|g| g.parse().ok()) {
            gateways.push(g);
        }
    }
    let icc = n
        .options
        .as_ref()
        .and_then(|o| o.get("com.docker.network.bridge.enable_icc"))
        .is_none_or(|v| v != "false");
    Some(NetworkInfo {
        internal: n.internal.unwrap_or(false),
        icc,
        isolated: false,
        bridge: bridge_name(&id, n.options.as_ref()),
        name: n.name.clone().unwrap_or_else(|| id.clone()),
        id,
        driver,
        subnets,
        gateways,
    })
}

/// The overlay network described by `n`, or `None` for other drivers.
pub fn overlay_info(n: &Network) -> Option<OverlayInfo> {
    if n.driver.as_deref() != Some("overlay") {
        return None;
    }
    let id = n.id.clone()?;
    let subnets = n
        .ipam
        .as_ref()
        .and_then(|i| i.config.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.subnet.as_deref().and_then(Subnet::parse))
        .collect();
    let vnis = n
        .options
        .as_ref()
        .and_then(|o| o.get("com.docker.network.driver.overlay.vxlanid_list"))
        .map(|l| l.split(',').filter_map(|v| v.trim().parse().ok()).collect())
        .unwrap_or_default();
    Some(OverlayInfo {
        name: n.name.clone().unwrap_or_else(|| id.clone()),
        id,
        subnets,
        vnis,
        ingress: n.ingress.unwrap_or(false),
    })
}

/// The running container described by `c`, or `None` when it is not running.
pub fn container_info(c: &ContainerInspectResponse) -> Option<ContainerInfo> {
    let state = c.state.as_ref()?;
    if state.running != Some(true) {
        return None;
    }
    let pid = u32::try_from(state.pid?).ok().filter(|p| *p > 0)?;
    let id = c.id.clone()?;
    let name = c
        .name
        .as_deref()
        .map(|n| n.trim_start_matches('/').to_owned())
        .unwrap_or_else(|| id.chars().take(12).collect());
    let image = c
        .config
        .as_ref()
        .and_then(|cfg| cfg.image.clone())
        .or_else(|| c.image.clone())
        .unwrap_or_default();
    let mut endpoints: Vec<EndpointInfo> = c
        .network_settings
        .as_ref()
        .and_then(|s| s.networks.as_ref())
        .into_iter()
        .flatten()
        .map(|(net_name, ep)| {
            let mut ips = Vec::new();
            for ip in [&ep.ip_address, &ep.global_ipv6_address] {
                if let Some(ip) = ip.as_deref().and_then(|s| s.parse().ok()) {
                    ips.push(ip);
                }
            }
            EndpointInfo {
                network_id: ep.network_id.clone().unwrap_or_default(),
                network: net_name.clone(),
                ips,
                mac: ep.mac_address.as_deref().and_then(|m| m.parse().ok()),
            }
        })
        .collect();
    endpoints.sort_by(|a, b| a.network.cmp(&b.network));
    let sandbox_key = c
        .network_settings
        .as_ref()
        .and_then(|n| n.sandbox_key.clone())
        .filter(|k| !k.is_empty());
    Some(ContainerInfo {
        id,
        name,
        image,
        pid,
        sandbox_key,
        endpoints,
    })
}

/// The bridge network through which the containers of Swarm overlay networks reach the
/// outside (and the ingress network's sandbox, `ingress_sbox`, its published ports).
pub const GWBRIDGE: &str = "docker_gwbridge";

/// Adds to each of `containers` its endpoint on [`GWBRIDGE`] (`gw`), as the network's
/// inspect lists it (keyed by container id; the container's own inspect omits that leg), so
/// that its veth there is known as Docker's. Endpoints of no running container
/// (`ingress-sbox`) are left out.
pub fn add_gwbridge_endpoints(
    gw: &NetworkInfo,
    inspect: &bollard::models::NetworkInspect,
    containers: &mut [ContainerInfo],
) {
    for (id, ep) in inspect.containers.iter().flatten() {
        let Some(c) = containers.iter_mut().find(|c| &c.id == id) else {
            continue;
        };
        if c.endpoints.iter().any(|e| e.network_id == gw.id) {
            continue;
        }
        let ips = [&ep.ipv4_address, &ep.ipv6_address]
            .into_iter()
            .filter_map(|a| a.as_deref()?.split('/').next()?.parse().ok())
            .collect();
        c.endpoints.push(EndpointInfo {
            network_id: gw.id.clone(),
            network: gw.name.clone(),
            ips,
            mac: ep.mac_address.as_deref().and_then(|m| m.parse().ok()),
        });
        c.endpoints.sort_by(|a, b| a.network.cmp(&b.network));
    }
}

/// How many containers [`DockerClient::snapshot_cached`] inspects at once. Each inspect is a
/// connection of its own with its buffers (~20 KB with the answer and its parsed form): all
/// of a thousand containers at once made a 30 MB peak of heap that stayed resident.
pub const INSPECT_AT_ONCE: usize = 32;

/// A connected Docker Engine API client.
#[derive(Clone)]
pub struct DockerClient {
    docker: Docker,
    /// Which engine answers.
    product: Product,
    /// Its version, as `GET /version` said it when connecting.
    version: Option<String>,
    /// The API's unix socket (Podman's own API is asked there too).
    socket: Option<std::path::PathBuf>,
}

/// Where Docker's API listens by default.
const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// The engine's address: `DOCKER_HOST`, else Docker's socket. Never guessed otherwise: on a
/// host with both engines, Docker's socket is gone while dockerd restarts, and netlab must
/// wait for Docker then, not turn to Podman.
fn engine_host() -> (String, bool) {
    match std::env::var("DOCKER_HOST") {
        Ok(host) => (host, true),
        Err(_) => (format!("unix://{DOCKER_SOCKET}"), false),
    }
}

/// When Docker's default socket does not answer but Podman's is there: how to use it.
fn podman_hint(explicit: bool) -> String {
    if !explicit && std::path::Path::new(podman::DEFAULT_SOCKET).exists() {
        format!(
            " (Podman's API socket is at {}: set DOCKER_HOST=unix://{0} to observe Podman)",
            podman::DEFAULT_SOCKET
        )
    } else {
        String::new()
    }
}

impl DockerClient {
    /// Connects (honouring DOCKER_HOST) and negotiates the API version down to the
    /// engine's.
    pub async fn connect() -> Result<Self, DockerError> {
        let (host, explicit) = engine_host();
        let unreachable = |source| DockerError::Unreachable {
            host: host.clone(),
            hint: podman_hint(explicit),
            source,
        };
        let socket = podman::unix_socket(&host);
        let docker = match &socket {
            Some(path) => Docker::connect_with_unix(
                &path.to_string_lossy(),
                120,
                bollard::API_DEFAULT_VERSION,
            ),
            None => Docker::connect_with_defaults(),
        }
        .map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        let answer = docker.version().await.map_err(unreachable)?;
        let product = Product::of(&answer);
        if product == Product::Podman {
            log::debug!("the engine at {host} is Podman");
        }
        Ok(Self {
            docker,
            product,
            version: answer.version,
            socket,
        })
    }

    /// Docker, or Podman behind its Docker-compatible API.
    pub fn product(&self) -> Product {
        self.product
    }

    /// The engine's version and its `/info` answer as JSON (what the firewall explanation
    /// needs: the version decides Docker's rule layout, `/info` names its backend).
    pub async fn engine_facts(&self) -> Option<EngineFacts> {
        let version = self.version.clone()?;
        let info = self
            .docker
            .info()
            .await
            .ok()
            .and_then(|i| serde_json::to_string(&i).ok())
            .unwrap_or_default();
        Some(EngineFacts {
            product: self.product,
            version,
            info_json: info,
        })
    }

    /// Bridge networks and running containers now.
    pub async fn snapshot(&self) -> Result<DockerSnapshot, DockerError> {
        self.snapshot_cached(&mut HashMap::new()).await
    }

    /// Like [`DockerClient::snapshot`], inspecting only containers not in `cache` (by id);
    /// `cache` is left holding exactly the running containers. Callers remove the ids
    /// that events say changed.
    pub async fn snapshot_cached(
        &self,
        cache: &mut HashMap<String, ContainerInfo>,
    ) -> Result<DockerSnapshot, DockerError> {
        let req = |what| move |source| DockerError::Request { what, source };
        let networks = self
            .docker
            .list_networks(None)
            .await
            .map_err(req("list networks"))?;
        let mut overlays: Vec<OverlayInfo> = networks.iter().filter_map(overlay_info).collect();
        overlays.sort_by(|a, b| a.name.cmp(&b.name));
        let mut networks: Vec<NetworkInfo> = networks.iter().filter_map(network_info).collect();
        if self.product == Product::Podman {
            self.add_podman_facts(&mut networks).await;
        }
        networks.sort_by(|a, b| a.name.cmp(&b.name));
        let list = self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default().all(false).build(),
            ))
            .await
            .map_err(req("list containers"))?;
        let mut containers = Vec::new();
        let mut running = std::collections::HashSet::new();
        let mut new = Vec::new();
        for c in list {
            let Some(id) = c.id else { continue };
            running.insert(id.clone());
            match cache.get(&id) {
                Some(known) => containers.push(known.clone()),
                None => new.push(id),
            }
        }
        // New containers are inspected [`INSPECT_AT_ONCE`] at a time: while the engine
        // starts a burst of containers, one inspect can wait for another container's start,
        // and the others go on meanwhile. Each answer is reduced to what netlab keeps as
        // soon as it arrives.
        let inspected: Vec<_> = futures_util::stream::iter(new)
            .map(|id| async move {
                let r = self.docker.inspect_container(&id, None).await;
                (id, r.map(|full| container_info(&full)))
            })
            .buffer_unordered(INSPECT_AT_ONCE)
            .collect()
            .await;
        for (id, r) in inspected {
            // A container can stop between the list and the inspect: skip it then.
            match r {
                Ok(Some(info)) => {
                    cache.insert(id, info.clone());
                    containers.push(info);
                }
                Ok(None) => {}
                Err(e) => log::debug!("inspect {id}: {e}"),
            }
        }
        cache.retain(|id, _| running.contains(id));
        // A Swarm host: the containers' legs on docker_gwbridge, which their inspect omits.
        if let Some(gw) = networks.iter().find(|n| n.name == GWBRIDGE) {
            match self.docker.inspect_network(&gw.id, None).await {
                Ok(inspect) => add_gwbridge_endpoints(gw, &inspect, &mut containers),
                Err(e) => log::debug!("inspect network {GWBRIDGE}: {e}"),
            }
        }
        if self.product == Product::Podman {
            podman::endpoint_network_ids(&networks, &mut containers);
        }
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        // A Swarm node with overlays: where their VXLAN traffic crosses the host.
        let swarm = if overlays.is_empty() {
            None
        } else {
            match self.docker.info().await {
                Ok(info) => info.swarm.as_ref().and_then(SwarmNode::from_info),
                Err(e) => {
                    log::debug!("info: {e}");
                    None
                }
            }
        };
        Ok(DockerSnapshot {
            engine: self.product,
            networks,
            containers,
            overlays,
            swarm,
        })
    }

    /// Podman: each network's bridge, name and isolation from Podman's own API (the
    /// compatible one does not say them).
    async fn add_podman_facts(&self, networks: &mut [NetworkInfo]) {
        let Some(socket) = &self.socket else {
            log::debug!("Podman over TCP: its own API is not asked, bridges are guessed");
            return;
        };
        match podman::libpod_networks(socket).await {
            Ok(libpod) => podman::apply_libpod(networks, &libpod),
            Err(e) => log::warn!("Podman's own API did not list its networks ({e:#}): their bridges are guessed as Docker's"),
        }
    }

    /// Whether a container called `name` exists and is running (`None`: no such
    /// container). Docker matches the name exactly; callers try case variants first.
    pub async fn container_running(&self, name: &str) -> Result<Option<bool>, DockerError> {
        match self.docker.inspect_container(name, None).await {
            Ok(c) => Ok(Some(
                c.state.as_ref().and_then(|s| s.running).unwrap_or(false),
            )),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(source) => Err(DockerError::Request {
                what: "inspect container",
                source,
            }),
        }
    }

    /// Container and network events that change the topology.
    pub fn events(&self) -> impl Stream<Item = Result<EventMessage, DockerError>> + use<> {
        let filters: HashMap<&str, Vec<&str>> =
            HashMap::from([("type", vec!["container", "network"])]);
        self.docker
            .events(Some(
                EventsOptionsBuilder::default().filters(&filters).build(),
            ))
            .map(|r| {
                r.map_err(|source| DockerError::Request {
                    what: "events",
                    source,
                })
            })
    }
}

/// The container an event is about (for network events: the container connected or
/// disconnected), whose cached description it makes stale.
pub fn event_container(ev: &EventMessage) -> Option<&str> {
    let actor = ev.actor.as_ref()?;
    match ev.typ {
        Some(EventMessageTypeEnum::CONTAINER) => actor.id.as_deref(),
        // Podman's network events name the container as their actor.
        Some(EventMessageTypeEnum::NETWORK) => actor
            .attributes
            .as_ref()
            .and_then(|a| a.get("container"))
            .map(String::as_str)
            .or(actor.id.as_deref()),
        _ => None,
    }
}

/// Whether an event can change what netlab observes or how it labels it.
pub fn event_matters(ev: &EventMessage) -> bool {
    let action = ev.action.as_deref().unwrap_or_default();
    match ev.typ {
        Some(EventMessageTypeEnum::CONTAINER) => {
            matches!(
                action,
                // Podman says `remove` where Docker says `destroy`.
                "start" | "die" | "destroy" | "remove" | "rename" | "kill" | "stop"
            )
        }
        Some(EventMessageTypeEnum::NETWORK) => {
            matches!(action, "create" | "destroy" | "connect" | "disconnect")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The overlay networks of `GET /networks` on node 1 of the Swarm of `tests/swarm.rs`
    /// (Docker 28.5), recorded: an attachable network of the test's and the ingress.
    const OVERLAYS: &str = r#"[{"Name":"nlt-ovl-net-14472-6","Id":"6rocc3q1e4lncjlatzbd0ql6r","Created":"2026-12-02T00:48:36.675511556Z","Scope":"swarm","Driver":"overlay","EnableIPv4":true,"EnableIPv6":false,"IPAM":{"Driver":"default","Options":null,"Config":[{"Subnet":"10.0.1.0/24","Gateway":"10.0.1.1"}]},"Internal":false,"Attachable":true,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":null,"Options":{"com.docker.network.driver.overlay.vxlanid_list":"4097"},"Labels":null},{"Name":"ingress","Id":"842nbhpr15jpaqq9debx7nfyc","Created":"2026-12-02T00:48:36.157944774Z","Scope":"swarm","Driver":"overlay","EnableIPv4":true,"EnableIPv6":false,"IPAM":{"Driver":"default","Options":null,"Config":[{"Subnet":"10.0.0.0/24","Gateway":"10.0.0.1"}]},"Internal":false,"Attachable":false,"Ingress":true,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":null,"Options":{"com.docker.network.driver.overlay.vxlanid_list":"4096"},"Labels":null}]"#;

    #[test]
    fn overlay_networks_with_their_vxlan_ids() {
        let list: Vec<Network> = serde_json::from_str(OVERLAYS).expect("networks");
        let overlays: Vec<OverlayInfo> = list.iter().filter_map(overlay_info).collect();
        assert_eq!(overlays.len(), 2);
        let (ovl, ingress) = (&overlays[0], &overlays[1]);
        assert_eq!(ovl.name, "nlt-ovl-net-14472-6");
        assert_eq!(ovl.subnets[0].to_string(), "10.0.1.0/24");
        assert_eq!((ovl.vnis.as_slice(), ovl.ingress), (&[4097][..], false));
        assert_eq!(
            (ingress.vnis.as_slice(), ingress.ingress),
            (&[4096][..], true)
        );
        // Overlays are not bridge networks, and bridges are not overlays.
        assert!(list.iter().all(|n| network_info(n).is_none()));
        let bridges: Vec<Network> = serde_json::from_str(NETWORKS).expect("networks");
        assert!(bridges.iter().all(|n| overlay_info(n).is_none()));
    }

    /// `GET /networks` of a Docker 20.10 engine (API 1.41), trimmed.
    const NETWORKS: &str = r#"[
      {"Name":"devops","Id":"8be916360cbc5a0e4f3d5c1b2a0e7f6d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f","Created":"2026-11-27T18:25:24.123456789Z","Scope":"local","Driver":"bridge","EnableIPv6":false,
       "IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"172.20.0.0/16","Gateway":"172.20.0.1"}]},
       "Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{},"Options":{},"Labels":{}},
      {"Name":"bridge","Id":"0f3c1a2b3c4d5e6f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f","Created":"2026-11-27T18:00:00.000000000Z","Scope":"local","Driver":"bridge","EnableIPv6":false,
       "IPAM":{"Driver":"default","Options":null,"Config":[{"Subnet":"172.17.0.0/16","Gateway":"172.17.0.1"}]},
       "Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{},
       "Options":{"com.docker.network.bridge.default_bridge":"true","com.docker.network.bridge.name":"docker0"},"Labels":{}},
      {"Name":"host","Id":"aa","Created":"2026-11-27T18:00:00.000000000Z","Scope":"local","Driver":"host","EnableIPv6":false,
       "IPAM":{"Driver":"default","Options":null,"Config":[]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{},"Options":{},"Labels":{}}
    ]"#;

    /// `GET /containers/{id}/json` of a running container, trimmed.
    const CONTAINER: &str = r#"{
      "Id":"3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e",
      "Created":"2026-11-27T18:25:24.123456789Z","Path":"/sbin/docker-init","Args":[],
      "State":{"Status":"running","Running":true,"Paused":false,"Restarting":false,"OOMKilled":false,"Dead":false,"Pid":4242,"ExitCode":0,"Error":"","StartedAt":"2026-11-27T18:25:25.0Z","FinishedAt":"0001-01-01T00:00:00Z"},
      "Image":"sha256:abc","Name":"/AppDev",
      "Config":{"Image":"netlab/http-echo"},
      "NetworkSettings":{"Networks":{"devops":{"IPAMConfig":null,"Links":null,"Aliases":["3f4e5d6c7b8a"],
        "NetworkID":"8be916360cbc5a0e4f3d5c1b2a0e7f6d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f","EndpointID":"e1",
        "Gateway":"172.20.0.1","IPAddress":"172.20.0.2","IPPrefixLen":16,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,
        "MacAddress":"02:42:ac:14:00:02","DriverOpts":null}}}
    }"#;

    #[test]
    fn networks_from_the_api() {
        let nets: Vec<Network> = serde_json::from_str(NETWORKS).expect("fixture parses");
        let infos: Vec<NetworkInfo> = nets.iter().filter_map(network_info).collect();
        assert_eq!(infos.len(), 2, "the host driver is not a bridge");
        assert_eq!(infos[0].name, "devops");
        assert_eq!(infos[0].bridge, "br-8be916360cbc");
        assert_eq!(infos[0].subnets[0].to_string(), "172.20.0.0/16");
        assert_eq!(infos[0].gateways, vec![IpAddr::from([172, 20, 0, 1])]);
        assert_eq!(infos[1].bridge, "docker0");
    }

    #[test]
    fn container_from_the_api() {
        let c: ContainerInspectResponse = serde_json::from_str(CONTAINER).expect("fixture parses");
        let info = container_info(&c).expect("running");
        assert_eq!(info.name, "AppDev");
        assert_eq!(info.pid, 4242);
        assert_eq!(info.image, "netlab/http-echo");
        assert_eq!(info.endpoints.len(), 1);
        let ep = &info.endpoints[0];
        assert_eq!(ep.network, "devops");
        assert_eq!(ep.ips, vec![IpAddr::from([172, 20, 0, 2])]);
        assert_eq!(ep.mac, "02:42:ac:14:00:02".parse().ok());
        let mut stopped = c.clone();
        if let Some(s) = stopped.state.as_mut() {
            s.running = Some(false);
        }
        assert!(container_info(&stopped).is_none());
    }

    #[test]
    fn subnets() {
        let s = Subnet::parse("172.20.0.0/16").expect("subnet");
        assert!(s.contains("172.20.9.9".parse().expect("ip")));
        assert!(!s.contains("172.21.0.1".parse().expect("ip")));
        assert!(!s.contains("fd00::1".parse().expect("ip")));
        let all = Subnet::parse("0.0.0.0/0").expect("subnet");
        assert!(all.contains("8.8.8.8".parse().expect("ip")));
        let v6 = Subnet::parse("fd00:1::/64").expect("subnet");
        assert!(v6.contains("fd00:1::5".parse().expect("ip")));
        assert!(Subnet::parse("10.0.0.0/33").is_none());
        assert!(Subnet::parse("nonsense").is_none());
    }

    #[test]
    fn bridge_names() {
        assert_eq!(bridge_name("0123456789abcdef", None), "br-0123456789ab");
        let opts = HashMap::from([(
            "com.docker.network.bridge.name".to_owned(),
            "mybr".to_owned(),
        )]);
        assert_eq!(bridge_name("0123456789abcdef", Some(&opts)), "mybr");
    }
}

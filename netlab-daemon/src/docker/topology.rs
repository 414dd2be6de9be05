//! Which interfaces to observe and what every address means, from Docker's view, the host's
//! links and each container's own interfaces.
//!
//! This module is pure: [`Topology::build`] takes what was read from the Docker API and
//! from rtnetlink (on the host and inside each container's namespace) and derives the
//! observed interfaces with their roles and the IP/MAC label tables. A container's veth is
//! found from inside the container (its interfaces' peers), never guessed from names, so a
//! second leg added by hand is found like Docker's own.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use serde::Serialize;

use crate::docker::engine::OverlayInfo;
use crate::docker::engine::GWBRIDGE;
use crate::docker::{ContainerInfo, DockerSnapshot, NetworkInfo};
use crate::kernel::links::{Addr, Link, LinkKind};
use crate::model::decode::Mac;

/// The label tables, looked up for every event: foldhash is several times faster than
/// std's SipHash on these small keys. Their keys come from Docker and the host (packets
/// only look them up), and each table gets its own random seed all the same.
type LabelMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// What an observed interface is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A Docker network's bridge device.
    Bridge,
    /// The host end of a veth Docker made for a container endpoint.
    ContainerVeth,
    /// A veth enslaved to a Docker bridge by hand (or not made by Docker).
    ManualVeth,
    /// A bridge port whose other end is unknown: no Docker engine to ask, or a port of
    /// `docker_gwbridge` that is no known container's (the ingress network's sandbox).
    Veth,
    /// An interface named on the command line (`--iface`).
    Interface,
    /// The host interface with the Swarm node's address, where its overlays' VXLAN
    /// traffic to and from other hosts passes.
    SwarmUplink,
    /// The bridge (`br0`) inside an overlay network's sandbox.
    OverlayBridge,
    /// The VXLAN device (`vxlan0`) inside an overlay network's sandbox: its frames to and
    /// from other hosts, before encapsulation and after.
    OverlayVxlan,
    /// The port of an overlay's bridge (`br0`) to the overlay's load balancer, a namespace
    /// of the engine's own (`lb_…`) holding the overlay's service addresses.
    LoadBalancerLeg,
    /// A leg of the Swarm routing mesh's namespace (`ingress_sbox`): its port on
    /// `docker_gwbridge`, or on the ingress overlay's bridge.
    IngressLeg,
}

impl Role {
    pub const fn name(self) -> &'static str {
        match self {
            Role::Bridge => "bridge",
            Role::ContainerVeth => "container-veth",
            Role::ManualVeth => "manual-veth",
            Role::Veth => "veth",
            Role::Interface => "interface",
            Role::SwarmUplink => "swarm-uplink",
            Role::OverlayBridge => "overlay-bridge",
            Role::OverlayVxlan => "overlay-vxlan",
            Role::LoadBalancerLeg => "load-balancer-leg",
            Role::IngressLeg => "ingress-leg",
        }
    }
}

/// An interface netlab observes, with its labels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObservedIface {
    pub ifindex: u32,
    pub name: String,
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// For a veth, the interface at the other end (inside the container).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// A veth on a Docker bridge whose other end is in a namespace no known container
    /// owns (yet): typically a container Docker is starting right now.
    #[serde(skip)]
    pub unresolved: bool,
    /// For an interface of an overlay network's sandbox (a namespace of the engine's own),
    /// the namespace's file (`/var/run/docker/netns/1-…`); `None` in the host's namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// For an interface of a sandbox, its index there. Indexes repeat across namespaces
    /// (each sandbox numbers its bridge 2, and the host may number its uplink 2), so such
    /// an interface's `ifindex` is the key netlab counts and reports it under instead:
    /// [`netlab_common::ns_key`] of (the sandbox's namespace, this index).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox_ifindex: Option<u32>,
    /// The VXLAN id of the overlay network an interface of a sandbox carries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
}

impl ObservedIface {
    /// Its index in its own namespace (the host's, or its sandbox's).
    pub fn index_in_netns(&self) -> u32 {
        self.sandbox_ifindex.unwrap_or(self.ifindex)
    }
}

/// Who is behind an address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EndpointLabel {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The host itself (a network's gateway address or bridge MAC).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub host: bool,
}

/// What was read inside one container's network namespace.
#[derive(Clone, Debug, Default)]
pub struct NetnsScan {
    /// Inode of the namespace (what the kernel calls its `inum`); 0 when unknown.
    pub inode: u64,
    pub links: Vec<Link>,
    pub addrs: Vec<Addr>,
}

/// How drops name the namespace of an overlay network's sandbox: `sandbox:<network>`.
pub const SANDBOX_PREFIX: &str = "sandbox:";

/// What a namespace of the engine's own (bound to a file beside its containers') is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SandboxKind {
    /// An overlay network's sandbox (`1-<id>`): `br0`, `vxlan0`, the containers' legs.
    Overlay,
    /// An overlay's load balancer (`lb_<id>`), one leg on the overlay's `br0`.
    LoadBalancer,
    /// The Swarm routing mesh (`ingress_sbox`): legs on the ingress overlay's `br0` and
    /// on `docker_gwbridge`.
    Ingress,
}

/// A namespace of the engine's own (an overlay network's sandbox, its load balancer, the
/// routing mesh), as scanned from inside.
#[derive(Clone, Debug)]
pub struct SandboxScan {
    pub kind: SandboxKind,
    /// The overlay network's id (empty for [`SandboxKind::Ingress`]).
    pub overlay_id: String,
    /// Its nsfs file (`/var/run/docker/netns/1-…`).
    pub path: String,
    pub scan: NetnsScan,
}

/// Where a network namespace and its interfaces belong.
#[derive(Clone, Debug, Default)]
struct NetnsNames {
    /// `None` for the host's namespace.
    container: Option<String>,
    links: HashMap<u32, String>,
}

/// One interface inside a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContainerIface {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    pub addrs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_veth: Option<String>,
    /// Not one of Docker's endpoints: added by hand.
    pub manual: bool,
    /// Administratively up.
    pub up: bool,
}

/// A running container with its interfaces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContainerView {
    pub name: String,
    pub id: String,
    pub image: String,
    pub pid: u32,
    pub interfaces: Vec<ContainerIface>,
}

/// A Swarm overlay network and this host's containers on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OverlayView {
    #[serde(flatten)]
    pub info: OverlayInfo,
    pub containers: Vec<OverlayMember>,
}

/// A container of this host on an overlay network, with its addresses there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OverlayMember {
    pub name: String,
    pub ips: Vec<IpAddr>,
}

/// A bridge network with its bridge's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NetworkView {
    #[serde(flatten)]
    pub info: NetworkInfo,
    /// Whether the bridge device exists (Docker creates it with the first container).
    pub bridge_present: bool,
}

/// The whole picture at one moment.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Topology {
    /// Whether a Docker engine answered.
    pub docker: bool,
    /// Which: Docker, or Podman behind its Docker-compatible API (absent when none did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<crate::docker::podman::Product>,
    pub networks: Vec<NetworkView>,
    pub containers: Vec<ContainerView>,
    pub observed: Vec<ObservedIface>,
    /// Swarm overlay networks, with this host's containers on them (none on other hosts).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overlays: Vec<OverlayView>,
    /// This host as a Swarm node (when it has overlays).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swarm: Option<crate::docker::engine::SwarmNode>,
    #[serde(skip)]
    by_ifindex: LabelMap<u32, usize>,
    #[serde(skip)]
    by_ip: LabelMap<IpAddr, EndpointLabel>,
    #[serde(skip)]
    by_mac: LabelMap<Mac, EndpointLabel>,
    /// Interface names of the host's and each container's namespace, by namespace inode.
    #[serde(skip)]
    netns: HashMap<u64, NetnsNames>,
}

fn label(container: Option<&str>, network: Option<&str>, host: bool) -> EndpointLabel {
    EndpointLabel {
        container: container.map(str::to_owned),
        network: network.map(str::to_owned),
        host,
    }
}

impl Topology {
    /// Derives the topology. `docker` is `None` when no engine answered: then every bridge
    /// of the host and its ports are observed, with interface names only.
    pub fn build(
        docker: Option<&DockerSnapshot>,
        host_links: &[Link],
        host_addrs: &[Addr],
        scans: &HashMap<String, NetnsScan>,
    ) -> Topology {
        let mut t = Self::build_views(docker, host_links, host_addrs, scans);
        t.by_ifindex = t
            .observed
            .iter()
            .enumerate()
            .map(|(i, o)| (o.ifindex, i))
            .collect();
        t
    }

    /// Records the interface names of the host's namespace (inode `host_inode`) and of
    /// every scanned container namespace, so drops can be placed by (namespace, ifindex).
    pub fn with_netns_names(
        mut self,
        host_inode: u64,
        host_links: &[Link],
        docker: Option<&DockerSnapshot>,
        scans: &HashMap<String, NetnsScan>,
    ) -> Self {
        let names = |links: &[Link]| links.iter().map(|l| (l.ifindex, l.name.clone())).collect();
        self.netns.insert(
            host_inode,
            NetnsNames {
                container: None,
                links: names(host_links),
            },
        );
        for c in docker.map(|d| d.containers.as_slice()).unwrap_or_default() {
            if let Some(s) = scans.get(&c.id).filter(|s| s.inode != 0) {
                self.netns.insert(
                    s.inode,
                    NetnsNames {
                        container: Some(c.name.clone()),
                        links: names(&s.links),
                    },
                );
            }
        }
        self
    }

    /// The interface `ifindex` of namespace `inode`: its name, and the container owning
    /// the namespace (`None` for the host). `None` when the namespace is unknown.
    pub fn place(&self, inode: u64, ifindex: u32) -> Option<(Option<&str>, Option<&str>)> {
        let ns = self.netns.get(&inode)?;
        Some((
            ns.container.as_deref(),
            ns.links.get(&ifindex).map(String::as_str),
        ))
    }

    fn build_views(
        docker: Option<&DockerSnapshot>,
        host_links: &[Link],
        host_addrs: &[Addr],
        scans: &HashMap<String, NetnsScan>,
    ) -> Topology {
        let by_name: HashMap<&str, &Link> =
            host_links.iter().map(|l| (l.name.as_str(), l)).collect();
        let by_index: HashMap<u32, &Link> = host_links.iter().map(|l| (l.ifindex, l)).collect();

        // Bridges to observe, with the network each one carries.
        let mut bridges: BTreeMap<u32, Option<&NetworkInfo>> = BTreeMap::new();
        match docker {
            Some(d) => {
                for n in &d.networks {
                    if let Some(l) = by_name.get(n.bridge.as_str()) {
                        bridges.insert(l.ifindex, Some(n));
                    }
                }
            }
            None => {
                for l in host_links.iter().filter(|l| l.kind == LinkKind::Bridge) {
                    bridges.insert(l.ifindex, None);
                }
            }
        }

        // Container-side interfaces whose peer is a host link: host ifindex → (container, link).
        let mut peer_of: HashMap<u32, (&ContainerInfo, &Link)> = HashMap::new();
        if let Some(d) = docker {
            for c in &d.containers {
                let Some(scan) = scans.get(&c.id) else {
                    continue;
                };
                for l in scan.links.iter().filter(|l| l.kind == LinkKind::Veth) {
                    let Some(host_idx) = l.peer_ifindex else {
                        continue;
                    };
                    // Both ends must point at each other: ifindex values repeat across
                    // namespaces, so one direction alone proves nothing.
                    if let Some(h) = by_index.get(&host_idx) {
                        if h.peer_ifindex == Some(l.ifindex) && h.kind == LinkKind::Veth {
                            peer_of.insert(host_idx, (c, l));
                        }
                    }
                }
            }
        }

        let mut t = Topology {
            docker: docker.is_some(),
            engine: docker.map(|d| d.engine),
            swarm: docker.and_then(|d| d.swarm.clone()),
            ..Default::default()
        };
        for (&idx, net) in &bridges {
            let Some(l) = by_index.get(&idx) else {
                continue;
            };
            t.observed.push(ObservedIface {
                ifindex: idx,
                name: l.name.clone(),
                role: Role::Bridge,
                container: None,
                peer: None,
                network: net.map(|n| n.name.clone()),
                bridge: Some(l.name.clone()),
                sandbox: None,
                sandbox_ifindex: None,
                vni: None,
                unresolved: false,
            });
            if let Some(n) = net {
                if let Some(mac) = l.mac {
                    t.by_mac.insert(mac, label(None, Some(&n.name), true));
                }
                // The host's own addresses on the bridge (the gateway, whatever IPAM says).
                for a in host_addrs.iter().filter(|a| a.ifindex == idx) {
                    t.by_ip.insert(a.ip, label(None, Some(&n.name), true));
                }
            }
        }
        let mut ports: Vec<&Link> = host_links
            .iter()
            .filter(|l| {
                l.kind == LinkKind::Veth && l.master.is_some_and(|m| bridges.contains_key(&m))
            })
            .collect();
        ports.sort_by_key(|l| l.ifindex);
        // Which container interfaces Docker made: by MAC, per container and network.
        let docker_macs: HashSet<(&str, &str, Mac)> = docker
            .map(|d| {
                d.containers
                    .iter()
                    .flat_map(|c| {
                        c.endpoints.iter().filter_map(move |e| {
                            Some((c.id.as_str(), e.network_id.as_str(), e.mac?))
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut container_ifaces: HashMap<&str, Vec<ContainerIface>> = HashMap::new();
        for p in ports {
            let master = p.master.and_then(|m| by_index.get(&m));
            let net = p.master.and_then(|m| bridges.get(&m).copied().flatten());
            let on_gwbridge = net.is_some_and(|n| n.name == GWBRIDGE);
            let (role, container, peer) = match peer_of.get(&p.ifindex) {
                Some((c, inner)) => {
                    let made_by_docker = match (net, inner.mac) {
                        (Some(n), Some(mac)) => {
                            docker_macs.contains(&(c.id.as_str(), n.id.as_str(), mac))
                        }
                        _ => false,
                    };
                    let role = if made_by_docker {
                        Role::ContainerVeth
                    } else {
                        Role::ManualVeth
                    };
                    // Addresses inside the container on this leg belong to it, on this network.
                    let addrs: Vec<&Addr> = scans
                        .get(&c.id)
                        .map(|s| {
                            s.addrs
                                .iter()
                                .filter(|a| a.ifindex == inner.ifindex)
                                .collect()
                        })
                        .unwrap_or_default();
                    let netname = net.map(|n| n.name.as_str());
                    for a in &addrs {
                        if !is_link_local(a.ip) {
                            t.by_ip.insert(a.ip, label(Some(&c.name), netname, false));
                        }
                    }
                    if let Some(mac) = inner.mac {
                        t.by_mac.insert(mac, label(Some(&c.name), netname, false));
                    }
                    container_ifaces
                        .entry(c.id.as_str())
                        .or_default()
                        .push(ContainerIface {
                            name: inner.name.clone(),
                            mac: inner.mac,
                            addrs: addrs
                                .iter()
                                .map(|a| format!("{}/{}", a.ip, a.prefix))
                                .collect(),
                            network: netname.map(str::to_owned),
                            host_veth: Some(p.name.clone()),
                            manual: !made_by_docker,
                            up: inner.up,
                        });
                    (role, Some(c.name.clone()), Some(inner.name.clone()))
                }
                // Docker's port of a sandbox netlab cannot enter (`ingress_sbox`, which no
                // process holds) or of a container not known yet: not hand-made.
                None if on_gwbridge => (Role::Veth, None, None),
                None if docker.is_some() => (Role::ManualVeth, None, None),
                None => (Role::Veth, None, None),
            };
            // Docker makes both ends in this namespace and moves one into the container
            // after the other joined the bridge: a port whose peer is still here is on its
            // way (or a hand-made pair not yet placed), like one whose peer's namespace no
            // known container owns.
            let peer_here = p.peer_netnsid.is_none()
                && p.peer_ifindex
                    .and_then(|i| by_index.get(&i))
                    .is_some_and(|q| q.peer_ifindex == Some(p.ifindex));
            // A port of docker_gwbridge never holds events back: the ingress network's
            // sandbox has one that no container will ever claim.
            let unresolved = docker.is_some()
                && container.is_none()
                && !on_gwbridge
                && (p.peer_netnsid.is_some() || peer_here);
            t.observed.push(ObservedIface {
                ifindex: p.ifindex,
                name: p.name.clone(),
                role,
                container,
                peer,
                network: net.map(|n| n.name.clone()),
                bridge: master.map(|m| m.name.clone()),
                sandbox: None,
                sandbox_ifindex: None,
                vni: None,
                unresolved,
            });
        }

        // A Swarm node's overlays reach other hosts through the interface with its address.
        if let Some(node) = docker
            .filter(|d| !d.overlays.is_empty())
            .and_then(|d| d.swarm.as_ref())
        {
            let uplink = host_addrs
                .iter()
                .find(|a| a.ip == node.addr)
                .and_then(|a| by_index.get(&a.ifindex))
                .filter(|l| !t.observed.iter().any(|o| o.ifindex == l.ifindex));
            if let Some(l) = uplink {
                t.observed.push(ObservedIface {
                    ifindex: l.ifindex,
                    name: l.name.clone(),
                    role: Role::SwarmUplink,
                    container: None,
                    peer: None,
                    network: None,
                    bridge: None,
                    sandbox: None,
                    sandbox_ifindex: None,
                    vni: None,
                    unresolved: false,
                });
                t.by_ip.insert(node.addr, label(None, None, true));
            }
        }
        if let Some(d) = docker {
            for n in &d.networks {
                for g in &n.gateways {
                    t.by_ip.insert(*g, label(None, Some(&n.name), true));
                }
                t.networks.push(NetworkView {
                    info: n.clone(),
                    bridge_present: by_name.contains_key(n.bridge.as_str()),
                });
            }
            for o in &d.overlays {
                let mut containers: Vec<OverlayMember> = d
                    .containers
                    .iter()
                    .filter_map(|c| {
                        let e = c.endpoints.iter().find(|e| e.network_id == o.id)?;
                        Some(OverlayMember {
                            name: c.name.clone(),
                            ips: e.ips.clone(),
                        })
                    })
                    .collect();
                containers.sort_by(|a, b| a.name.cmp(&b.name));
                t.overlays.push(OverlayView {
                    info: o.clone(),
                    containers,
                });
            }
            for c in &d.containers {
                // Docker's own endpoint data (also for endpoints whose veth was not seen).
                for e in &c.endpoints {
                    for ip in &e.ips {
                        t.by_ip
                            .entry(*ip)
                            .or_insert_with(|| label(Some(&c.name), Some(&e.network), false));
                    }
                    if let Some(mac) = e.mac {
                        t.by_mac
                            .entry(mac)
                            .or_insert_with(|| label(Some(&c.name), Some(&e.network), false));
                    }
                }
                let mut interfaces = container_ifaces.remove(c.id.as_str()).unwrap_or_default();
                interfaces.sort_by(|a, b| a.name.cmp(&b.name));
                t.containers.push(ContainerView {
                    name: c.name.clone(),
                    id: c.id.clone(),
                    image: c.image.clone(),
                    pid: c.pid,
                    interfaces,
                });
            }
        }
        t
    }

    /// A topology of explicitly named interfaces, without labels.
    pub fn explicit(ifaces: &[(u32, String)]) -> Topology {
        let mut t = Topology::default();
        for (i, (idx, name)) in ifaces.iter().enumerate() {
            t.observed.push(ObservedIface {
                ifindex: *idx,
                name: name.clone(),
                role: Role::Interface,
                container: None,
                peer: None,
                network: None,
                bridge: None,
                sandbox: None,
                sandbox_ifindex: None,
                vni: None,
                unresolved: false,
            });
            t.by_ifindex.insert(*idx, i);
        }
        t
    }

    /// Whether some observed veth leads into a namespace no known container owns.
    pub fn has_unresolved(&self) -> bool {
        self.observed.iter().any(|o| o.unresolved)
    }

    /// The observed interface events and counters name `ifindex` (an index of this
    /// namespace, or a sandbox interface's key).
    pub fn iface(&self, ifindex: u32) -> Option<&ObservedIface> {
        self.by_ifindex.get(&ifindex).map(|&i| &self.observed[i])
    }

    /// Adds what overlay networks' sandboxes hold: each sandbox's bridge, its VXLAN
    /// device, and the veths on the bridge, labelled with the container at the other end
    /// (found among `scans`, the containers' namespaces), the overlay and its VNI. A veth
    /// whose other end is in a load balancer's or the routing mesh's namespace (among
    /// `sandboxes` too) is labelled as that one's leg, as is the routing mesh's port on
    /// `docker_gwbridge` (`host_links`: the host's links).
    ///
    /// Events name interfaces by index alone, and indexes repeat across namespaces: an
    /// interface whose index is already observed (the host's, another sandbox's) is left
    /// out. Docker makes the veths and the VXLAN device on the host and moves them in, so
    /// they keep indexes the host gave out; only the bridge is numbered inside.
    pub fn with_sandboxes(
        mut self,
        docker: Option<&DockerSnapshot>,
        host_links: &[Link],
        sandboxes: &[SandboxScan],
        scans: &HashMap<String, NetnsScan>,
    ) -> Self {
        let Some(d) = docker else { return self };
        // The other end of `link` in a load balancer's or the routing mesh's namespace.
        let service_end = |link: &Link| {
            sandboxes
                .iter()
                .filter(|s| s.kind != SandboxKind::Overlay)
                .find_map(|s| {
                    let inner = s.scan.links.iter().find(|i| {
                        Some(i.ifindex) == link.peer_ifindex && i.peer_ifindex == Some(link.ifindex)
                    })?;
                    let role = match s.kind {
                        SandboxKind::LoadBalancer => Role::LoadBalancerLeg,
                        _ => Role::IngressLeg,
                    };
                    Some((role, inner.name.clone()))
                })
        };
        // The routing mesh's port on docker_gwbridge (seen from here as a plain veth).
        let gw_ports: Vec<usize> = self
            .observed
            .iter()
            .enumerate()
            .filter(|(_, o)| o.role == Role::Veth && o.sandbox.is_none())
            .filter(|(_, o)| o.network.as_deref() == Some(GWBRIDGE))
            .map(|(i, _)| i)
            .collect();
        for i in gw_ports {
            let ifindex = self.observed[i].ifindex;
            let Some(host_link) = host_links.iter().find(|l| l.ifindex == ifindex) else {
                continue;
            };
            if let Some((Role::IngressLeg, inner)) = service_end(host_link) {
                let o = &mut self.observed[i];
                o.role = Role::IngressLeg;
                o.peer = Some(inner);
            }
        }
        for sb in sandboxes.iter().filter(|s| s.kind == SandboxKind::Overlay) {
            let Some(o) = d.overlays.iter().find(|o| o.id == sb.overlay_id) else {
                continue;
            };
            // Drops inside it are placed by (namespace, index), as in containers.
            if sb.scan.inode != 0 {
                self.netns.insert(
                    sb.scan.inode,
                    NetnsNames {
                        container: Some(format!("{SANDBOX_PREFIX}{}", o.name)),
                        links: sb
                            .scan
                            .links
                            .iter()
                            .map(|l| (l.ifindex, l.name.clone()))
                            .collect(),
                    },
                );
            }
            let bridge = sb.scan.links.iter().find(|l| l.kind == LinkKind::Bridge);
            for l in &sb.scan.links {
                let (role, container, peer) = match &l.kind {
                    LinkKind::Bridge => (Role::OverlayBridge, None, None),
                    LinkKind::Other(k) if k == "vxlan" => (Role::OverlayVxlan, None, None),
                    LinkKind::Veth if bridge.is_some_and(|b| l.master == Some(b.ifindex)) => {
                        let owner = d.containers.iter().find_map(|c| {
                            let inner = scans.get(&c.id)?.links.iter().find(|i| {
                                Some(i.ifindex) == l.peer_ifindex
                                    && i.peer_ifindex == Some(l.ifindex)
                            })?;
                            Some((c.name.clone(), inner.name.clone()))
                        });
                        match (owner, service_end(l)) {
                            (Some((c, inner)), _) => (Role::ContainerVeth, Some(c), Some(inner)),
                            (None, Some((role, inner))) => (role, None, Some(inner)),
                            (None, None) => (Role::Veth, None, None),
                        }
                    }
                    _ => continue,
                };
                // Counted and reported under a key of (namespace, index), never an index
                // of this namespace's.
                let key = u32::try_from(sb.scan.inode)
                    .ok()
                    .filter(|&ino| ino != 0)
                    .map(|ino| netlab_common::ns_key(ino, l.ifindex));
                let Some(key) = key.filter(|k| !self.by_ifindex.contains_key(k)) else {
                    log::debug!(
                        "{} of {}'s sandbox not observed: its namespace is unknown, or its key is another's",
                        l.name,
                        o.name
                    );
                    continue;
                };
                self.by_ifindex.insert(key, self.observed.len());
                self.observed.push(ObservedIface {
                    ifindex: key,
                    sandbox_ifindex: Some(l.ifindex),
                    name: l.name.clone(),
                    role,
                    container,
                    peer,
                    network: Some(o.name.clone()),
                    bridge: bridge.map(|b| b.name.clone()),
                    unresolved: false,
                    sandbox: Some(sb.path.clone()),
                    vni: o.vnis.first().copied(),
                });
            }
        }
        self
    }

    /// The name of the overlay network with VXLAN id `vni`, if this host's engine knows it.
    pub fn overlay_by_vni(&self, vni: u32) -> Option<&str> {
        self.overlays
            .iter()
            .find(|o| o.info.vnis.contains(&vni))
            .map(|o| o.info.name.as_str())
    }

    /// Who is behind `ip` (preferred) or `mac`.
    pub fn endpoint(&self, ip: Option<IpAddr>, mac: Mac) -> Option<&EndpointLabel> {
        ip.and_then(|ip| self.by_ip.get(&ip))
            .or_else(|| self.by_mac.get(&mac))
    }

    /// The container called `name` (case-insensitive), as Docker spells it.
    pub fn container_named(&self, name: &str) -> Option<&ContainerView> {
        self.containers
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The network called `name` (case-insensitive).
    pub fn network_named(&self, name: &str) -> Option<&NetworkView> {
        self.networks
            .iter()
            .find(|n| n.info.name.eq_ignore_ascii_case(name))
    }
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::docker::{EndpointInfo, Subnet};

    fn link(ifindex: u32, name: &str, kind: LinkKind) -> Link {
        Link {
            ifindex,
            name: name.to_owned(),
            kind,
            master: None,
            peer_ifindex: None,
            peer_netnsid: None,
            mac: None,
            up: true,
        }
    }

    fn mac(last: u8) -> Mac {
        Mac([0x02, 0x42, 0xac, 0x14, 0x00, last])
    }

    /// [`course_lab`] as the topology netlab builds of it.
    pub fn course_lab_topology() -> Topology {
        let (snap, links, scans) = course_lab();
        Topology::build(Some(&snap), &links, &[], &scans)
    }

    /// The course's lab after the hand-made leg: devops (AppDev, pinger), prod (AppProd),
    /// and int_hote on the devops bridge leading to AppProd's eth1.
    pub fn course_lab() -> (DockerSnapshot, Vec<Link>, HashMap<String, NetnsScan>) {
        let devops = NetworkInfo {
            isolated: false,
            id: "8be916360cbc0000".into(),
            name: "devops".into(),
            driver: "bridge".into(),
            bridge: "br-8be916360cbc".into(),
            subnets: vec![Subnet::parse("172.20.0.0/16").expect("subnet")],
            gateways: vec!["172.20.0.1".parse().expect("ip")],
            internal: false,
            icc: true,
        };
        let prod = NetworkInfo {
            isolated: false,
            id: "1aa2bb3cc4dd0000".into(),
            name: "prod".into(),
            driver: "bridge".into(),
            bridge: "br-1aa2bb3cc4dd".into(),
            subnets: vec![Subnet::parse("172.21.0.0/16").expect("subnet")],
            gateways: vec!["172.21.0.1".parse().expect("ip")],
            internal: false,
            icc: true,
        };
        let ep = |net: &NetworkInfo, ip: &str, m: u8| EndpointInfo {
            network_id: net.id.clone(),
            network: net.name.clone(),
            ips: vec![ip.parse().expect("ip")],
            mac: Some(mac(m)),
        };
        let snap = DockerSnapshot {
            engine: Default::default(),
            networks: vec![devops.clone(), prod.clone()],
            containers: vec![
                ContainerInfo {
                    id: "c-appdev".into(),
                    name: "AppDev".into(),
                    image: "netlab/http-echo".into(),
                    pid: 100,
                    sandbox_key: None,
                    endpoints: vec![ep(&devops, "172.20.0.2", 2)],
                },
                ContainerInfo {
                    id: "c-appprod".into(),
                    name: "AppProd".into(),
                    image: "netlab/http-echo".into(),
                    pid: 200,
                    sandbox_key: None,
                    endpoints: vec![ep(&prod, "172.21.0.2", 0x12)],
                },
            ],
            overlays: Vec::new(),
            swarm: None,
        };
        let mut br_dev = link(3, "br-8be916360cbc", LinkKind::Bridge);
        br_dev.mac = Some(Mac([0x02, 0x42, 0, 0, 0, 1]));
        let br_prod = link(4, "br-1aa2bb3cc4dd", LinkKind::Bridge);
        let mut veth_dev = link(10, "veth1111111", LinkKind::Veth);
        veth_dev.master = Some(3);
        veth_dev.peer_ifindex = Some(2);
        let mut veth_prod = link(11, "veth2222222", LinkKind::Veth);
        veth_prod.master = Some(4);
        veth_prod.peer_ifindex = Some(2);
        let mut int_hote = link(12, "int_hote", LinkKind::Veth);
        int_hote.master = Some(3);
        int_hote.peer_ifindex = Some(5);
        let eth0 = |m: u8| {
            let mut l = link(2, "eth0", LinkKind::Veth);
            l.peer_ifindex = Some(if m == 2 { 10 } else { 11 });
            l.mac = Some(mac(m));
            l
        };
        let mut eth1 = link(5, "eth1", LinkKind::Veth);
        eth1.peer_ifindex = Some(12);
        eth1.mac = Some(Mac([0x5a, 0, 0, 0, 0, 9]));
        let addr = |ifindex, ip: &str, prefix| Addr {
            ifindex,
            ip: ip.parse().expect("ip"),
            prefix,
        };
        let scans = HashMap::from([
            (
                "c-appdev".to_owned(),
                NetnsScan {
                    inode: 4026532001,
                    links: vec![link(1, "lo", LinkKind::Unknown), eth0(2)],
                    addrs: vec![addr(1, "127.0.0.1", 8), addr(2, "172.20.0.2", 16)],
                },
            ),
            (
                "c-appprod".to_owned(),
                NetnsScan {
                    inode: 4026532002,
                    links: vec![eth0(0x12), eth1],
                    addrs: vec![addr(2, "172.21.0.2", 16), addr(5, "172.20.0.200", 16)],
                },
            ),
        ]);
        (
            snap,
            vec![
                link(1, "lo", LinkKind::Unknown),
                br_dev,
                br_prod,
                veth_dev,
                veth_prod,
                int_hote,
            ],
            scans,
        )
    }

    #[test]
    fn the_course_lab() {
        let (snap, links, scans) = course_lab();
        let t = Topology::build(Some(&snap), &links, &[], &scans);
        let names: Vec<&str> = t.observed.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "br-8be916360cbc",
                "br-1aa2bb3cc4dd",
                "veth1111111",
                "veth2222222",
                "int_hote"
            ]
        );
        let v = t.iface(10).expect("AppDev's veth");
        assert_eq!(v.role, Role::ContainerVeth);
        assert_eq!(v.container.as_deref(), Some("AppDev"));
        assert_eq!(v.network.as_deref(), Some("devops"));
        assert_eq!(v.bridge.as_deref(), Some("br-8be916360cbc"));
        let m = t.iface(12).expect("int_hote");
        assert_eq!(m.role, Role::ManualVeth);
        assert_eq!(m.container.as_deref(), Some("AppProd"));
        assert_eq!(m.peer.as_deref(), Some("eth1"));
        assert_eq!(m.network.as_deref(), Some("devops"));
        assert_eq!(t.iface(3).expect("bridge").role, Role::Bridge);

        let l = t.endpoint(Some("172.20.0.200".parse().expect("ip")), Mac::default());
        assert_eq!(
            l,
            Some(&label(Some("AppProd"), Some("devops"), false)),
            "the hand-made address belongs to AppProd on devops"
        );
        let gw = t.endpoint(Some("172.20.0.1".parse().expect("ip")), Mac::default());
        assert_eq!(gw, Some(&label(None, Some("devops"), true)));
        let by_mac = t.endpoint(None, mac(2));
        assert_eq!(by_mac.and_then(|l| l.container.as_deref()), Some("AppDev"));
        assert!(t
            .endpoint(Some("10.1.1.1".parse().expect("ip")), mac(99))
            .is_none());

        let prod = t.container_named("appprod").expect("case-insensitive");
        assert_eq!(prod.name, "AppProd");
        assert_eq!(prod.interfaces.len(), 2);
        assert!(prod.interfaces.iter().any(|i| i.name == "eth1" && i.manual));
        assert!(t.network_named("DEVOPS").is_some());
    }

    #[test]
    fn host_addresses_on_a_bridge_are_the_host() {
        let (mut snap, links, scans) = course_lab();
        // The default network's IPAM may carry no gateway: the bridge's address still is one.
        snap.networks[0].gateways.clear();
        let addrs = [Addr {
            ifindex: 3,
            ip: "172.20.0.1".parse().expect("ip"),
            prefix: 16,
        }];
        let t = Topology::build(Some(&snap), &links, &addrs, &scans);
        let gw = t.endpoint(Some("172.20.0.1".parse().expect("ip")), Mac::default());
        assert_eq!(gw, Some(&label(None, Some("devops"), true)));
    }

    #[test]
    fn places_by_namespace() {
        let (snap, links, scans) = course_lab();
        let t = Topology::build(Some(&snap), &links, &[], &scans).with_netns_names(
            4026531840,
            &links,
            Some(&snap),
            &scans,
        );
        assert_eq!(
            t.place(4026531840, 3),
            Some((None, Some("br-8be916360cbc")))
        );
        assert_eq!(
            t.place(4026532002, 5),
            Some((Some("AppProd"), Some("eth1")))
        );
        assert_eq!(t.place(4026532001, 99), Some((Some("AppDev"), None)));
        assert_eq!(t.place(1, 1), None);
    }

    #[test]
    fn peers_must_point_at_each_other() {
        let (snap, mut links, scans) = course_lab();
        // Break the back-pointer of AppDev's veth: it must no longer be attributed.
        if let Some(l) = links.iter_mut().find(|l| l.ifindex == 10) {
            l.peer_ifindex = Some(77);
        }
        let t = Topology::build(Some(&snap), &links, &[], &scans);
        let v = t
            .iface(10)
            .expect("still observed: it is on a Docker bridge");
        assert_eq!(v.container, None);
        assert_eq!(v.role, Role::ManualVeth);
    }

    /// The course lab on a Swarm node: AppProd also on an overlay, so with a leg on
    /// docker_gwbridge (eth2 inside, veth5555555 on the bridge), beside the ingress
    /// network's sandbox's leg (veth6666666, its peer in a namespace no process holds).
    /// `gwbridge` is docker_gwbridge's inspect, as the engine answers it.
    fn on_a_swarm_node(gwbridge: &str) -> Topology {
        let (snap, links, scans, host_addrs) = swarm_node_parts(gwbridge);
        Topology::build(Some(&snap), &links, &host_addrs, &scans)
    }

    /// What [`on_a_swarm_node`] builds its topology from.
    fn swarm_node_parts(
        gwbridge: &str,
    ) -> (
        DockerSnapshot,
        Vec<Link>,
        HashMap<String, NetnsScan>,
        [Addr; 1],
    ) {
        let (mut snap, mut links, mut scans) = course_lab();
        let gw = NetworkInfo {
            isolated: false,
            id: "9ea75d54fba2f58799087cdf233e79751ffeed8bd4de3d0d8755c4188afd8352".into(),
            name: GWBRIDGE.into(),
            driver: "bridge".into(),
            bridge: GWBRIDGE.into(),
            subnets: vec![Subnet::parse("172.17.0.0/16").expect("subnet")],
            gateways: vec!["172.17.0.1".parse().expect("ip")],
            internal: false,
            icc: false,
        };
        let inspect: bollard::models::NetworkInspect =
            serde_json::from_str(gwbridge).expect("a network inspect");
        crate::docker::engine::add_gwbridge_endpoints(&gw, &inspect, &mut snap.containers);
        snap.networks.push(gw);
        let overlay = OverlayInfo {
            id: "q9x8w7v6u5t4".into(),
            name: "ovl".into(),
            subnets: vec![Subnet::parse("10.0.1.0/24").expect("subnet")],
            vnis: vec![4097],
            ingress: false,
        };
        if let Some(c) = snap.containers.iter_mut().find(|c| c.name == "AppProd") {
            c.endpoints.push(EndpointInfo {
                network_id: overlay.id.clone(),
                network: overlay.name.clone(),
                ips: vec!["10.0.1.3".parse().expect("ip")],
                mac: Some(Mac([0x02, 0x42, 0x0a, 0, 1, 3])),
            });
        }
        snap.overlays.push(overlay);
        snap.swarm = Some(crate::docker::engine::SwarmNode {
            addr: "10.231.9.1".parse().expect("ip"),
            data_path_port: 4789,
        });
        let mut br = link(30, GWBRIDGE, LinkKind::Bridge);
        br.mac = Some(Mac([0x02, 0x42, 0, 0, 0, 0x30]));
        let mut port = link(31, "veth5555555", LinkKind::Veth);
        port.master = Some(30);
        port.peer_ifindex = Some(6);
        port.peer_netnsid = Some(2);
        let mut sbox = link(32, "veth6666666", LinkKind::Veth);
        sbox.master = Some(30);
        sbox.peer_ifindex = Some(7);
        sbox.peer_netnsid = Some(3);
        // The node's own link to the others, with its Swarm address.
        let uplink = link(40, "eth0", LinkKind::Unknown);
        links.extend([br, port, sbox, uplink]);
        let appprod = scans.get_mut("c-appprod").expect("AppProd's namespace");
        let mut eth2 = link(6, "eth2", LinkKind::Veth);
        eth2.peer_ifindex = Some(31);
        eth2.mac = Some(Mac([0x72, 0xe4, 0x15, 0x3e, 0x5f, 0x32]));
        appprod.links.push(eth2);
        appprod.addrs.push(Addr {
            ifindex: 6,
            ip: "172.17.0.3".parse().expect("ip"),
            prefix: 16,
        });
        let host_addrs = [Addr {
            ifindex: 40,
            ip: "10.231.9.1".parse().expect("ip"),
            prefix: 24,
        }];
        (snap, links, scans, host_addrs)
    }

    /// The overlay's sandbox: its bridge (numbered inside), its VXLAN device and AppProd's
    /// leg (numbered on the host), and a device whose index the host's uplink has.
    #[test]
    fn an_overlay_sandbox_is_observed_with_its_container_and_vni() {
        let (snap, links, mut scans, addrs) =
            swarm_node_parts(&GWBRIDGE_INSPECT.replace(GWBRIDGE_CONTAINER, "c-appprod"));
        let mut eth3 = link(8, "eth3", LinkKind::Veth);
        eth3.peer_ifindex = Some(51);
        scans
            .get_mut("c-appprod")
            .expect("AppProd's namespace")
            .links
            .push(eth3);
        let br0 = link(2, "br0", LinkKind::Bridge);
        let vxlan = link(50, "vxlan0", LinkKind::Other("vxlan".into()));
        let mut leg = link(51, "veth0", LinkKind::Veth);
        leg.master = Some(2);
        leg.peer_ifindex = Some(8);
        let mut stranger = link(40, "veth1", LinkKind::Veth);
        stranger.master = Some(2);
        // The overlay's load balancer, its leg veth2 (52) to its eth0 (9).
        let mut to_lb = link(52, "veth2", LinkKind::Veth);
        to_lb.master = Some(2);
        to_lb.peer_ifindex = Some(9);
        let mut lb_eth0 = link(9, "eth0", LinkKind::Veth);
        lb_eth0.peer_ifindex = Some(52);
        let scanned = |kind, name: &str, links| SandboxScan {
            kind,
            overlay_id: if kind == SandboxKind::Ingress {
                String::new()
            } else {
                "q9x8w7v6u5t4".into()
            },
            path: format!("/var/run/docker/netns/{name}"),
            scan: NetnsScan {
                inode: 4026532999,
                links,
                addrs: Vec::new(),
            },
        };
        let sandbox = scanned(
            SandboxKind::Overlay,
            "1-q9x8w7v6u5",
            vec![br0, vxlan, leg, stranger, to_lb],
        );
        let lb = scanned(SandboxKind::LoadBalancer, "lb_q9x8w7v6u", vec![lb_eth0]);
        // The routing mesh: its eth1 (7) is veth6666666 (32) on docker_gwbridge.
        let mut mesh_eth1 = link(7, "eth1", LinkKind::Veth);
        mesh_eth1.peer_ifindex = Some(32);
        let mesh = scanned(SandboxKind::Ingress, "ingress_sbox", vec![mesh_eth1]);
        let t = Topology::build(Some(&snap), &links, &addrs, &scans).with_sandboxes(
            Some(&snap),
            &links,
            &[sandbox, lb, mesh],
            &scans,
        );
        // The sandbox's interfaces go by the key of (its namespace, their index).
        let key = |i: u32| netlab_common::ns_key(4026532999, i);
        let of = |k: u32| {
            let o = t.iface(k).expect("observed");
            (o.role, o.name.as_str(), o.container.as_deref(), o.vni)
        };
        assert_eq!(of(key(2)), (Role::OverlayBridge, "br0", None, Some(4097)));
        assert_eq!(
            of(key(50)),
            (Role::OverlayVxlan, "vxlan0", None, Some(4097))
        );
        assert_eq!(
            of(key(51)),
            (Role::ContainerVeth, "veth0", Some("AppProd"), Some(4097))
        );
        let leg = t.iface(key(51)).expect("AppProd's leg");
        assert_eq!((leg.sandbox_ifindex, leg.index_in_netns()), (Some(51), 51));
        assert_eq!(
            (
                leg.network.as_deref(),
                leg.bridge.as_deref(),
                leg.peer.as_deref()
            ),
            (Some("ovl"), Some("br0"), Some("eth3"))
        );
        assert_eq!(
            leg.sandbox.as_deref(),
            Some("/var/run/docker/netns/1-q9x8w7v6u5")
        );
        // Index 40 is the host's uplink and a device of the sandbox's: both are observed,
        // neither in place of the other.
        assert_eq!(of(40).0, Role::SwarmUplink);
        assert_eq!(of(key(40)), (Role::Veth, "veth1", None, Some(4097)));
        assert!(t.iface(2).is_none_or(|o| o.sandbox.is_none()));
        let mut s = String::new();
        crate::model::event::IfaceView::of(leg).describe(&mut s);
        assert_eq!(s, "veth of AppProd (ovl, br0, VNI 4097, overlay sandbox)");
        // The load balancer's leg and the routing mesh's port on docker_gwbridge are
        // Docker's, said as what they are.
        let said = |i: u32| {
            let o = t.iface(i).expect("observed");
            let mut s = String::new();
            crate::model::event::IfaceView::of(o).describe(&mut s);
            (o.role, s)
        };
        assert_eq!(
            said(key(52)),
            (
                Role::LoadBalancerLeg,
                "veth2 → load balancer eth0 (of overlay ovl, br0, VNI 4097, overlay sandbox)"
                    .to_owned()
            )
        );
        assert_eq!(
            said(32),
            (
                Role::IngressLeg,
                "veth6666666 → ingress_sbox eth1 (Swarm routing mesh, docker_gwbridge)".to_owned()
            )
        );
        assert!(!t.has_unresolved());
    }

    /// docker_gwbridge's inspect (`GET /networks/{id}`) on node 1 of the Swarm of
    /// `tests/swarm.rs` (Docker 28.5), recorded: a container's endpoint, keyed by its id,
    /// and the ingress sandbox's.
    const GWBRIDGE_INSPECT: &str = r#"{"Name":"docker_gwbridge","Id":"9ea75d54fba2f58799087cdf233e79751ffeed8bd4de3d0d8755c4188afd8352","Created":"2026-12-02T00:48:36.360531409Z","Scope":"local","Driver":"bridge","EnableIPv4":true,"EnableIPv6":false,"IPAM":{"Driver":"default","Options":null,"Config":[{"Subnet":"172.17.0.0/16","Gateway":"172.17.0.1"}]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{"87f26a7bc3f15e8931877fb32ca929d02f4438fe3d984b550473d4e139d70ef3":{"Name":"gateway_758c0a56e4b1","EndpointID":"aa37e98a1322b1a926f720788f85364eaaf8de2d0d8e28028f76422e7613fa3f","MacAddress":"72:e4:15:3e:5f:32","IPv4Address":"172.17.0.3/16","IPv6Address":""},"ingress-sbox":{"Name":"gateway_ingress-sbox","EndpointID":"e81071c47a67f313658b5a316c9ab472cad7fa0bd0d7e4cf977c076218247d8b","MacAddress":"7e:2d:6c:38:a3:ce","IPv4Address":"172.17.0.2/16","IPv6Address":""}},"Options":{"com.docker.network.bridge.enable_icc":"false","com.docker.network.bridge.enable_ip_masquerade":"true","com.docker.network.bridge.name":"docker_gwbridge"},"Labels":{}}"#;
    /// The container whose endpoint [`GWBRIDGE_INSPECT`] lists.
    const GWBRIDGE_CONTAINER: &str =
        "87f26a7bc3f15e8931877fb32ca929d02f4438fe3d984b550473d4e139d70ef3";

    /// [`on_a_swarm_node`] with the recorded docker_gwbridge, AppProd's endpoint on it.
    pub fn swarm_node_topology() -> Topology {
        on_a_swarm_node(&GWBRIDGE_INSPECT.replace(GWBRIDGE_CONTAINER, "c-appprod"))
    }

    #[test]
    fn a_swarm_containers_leg_on_docker_gwbridge_is_dockers() {
        let t = swarm_node_topology();
        let leg = t.iface(31).expect("a port of docker_gwbridge");
        assert_eq!(leg.role, Role::ContainerVeth);
        assert_eq!(leg.container.as_deref(), Some("AppProd"));
        assert_eq!(leg.network.as_deref(), Some(GWBRIDGE));
        assert_eq!(leg.peer.as_deref(), Some("eth2"));
        // The ingress sandbox's leg: Docker's, of no container, and it holds nothing back.
        let sbox = t.iface(32).expect("a port of docker_gwbridge");
        assert_eq!(sbox.role, Role::Veth);
        assert!(sbox.container.is_none() && !sbox.unresolved);
        assert!(!t.has_unresolved());
        // The overlay is listed with AppProd on it, though none of its interfaces is here.
        assert_eq!(t.overlays.len(), 1);
        assert_eq!(t.overlays[0].info.vnis, vec![4097]);
        assert_eq!(
            t.overlays[0].containers,
            vec![OverlayMember {
                name: "AppProd".into(),
                ips: vec!["10.0.1.3".parse().expect("ip")],
            }]
        );
        // The link with the node's address carries the overlay between hosts.
        let uplink = t.iface(40).expect("the Swarm uplink is observed");
        assert_eq!(
            (uplink.role, uplink.name.as_str()),
            (Role::SwarmUplink, "eth0")
        );
        assert_eq!(t.overlay_by_vni(4097), Some("ovl"));
        assert_eq!(t.overlay_by_vni(4098), None);
        let shown = crate::docker::view::render(&t);
        assert!(
            shown.contains("ovl")
                && shown.contains("VNI 4097")
                && shown.contains("AppProd 10.0.1.3")
                && shown.contains("VXLAN on eth0 (10.231.9.1), UDP 4789"),
            "{shown}"
        );
        // Without the network's own list (its inspect failed), AppProd's leg is still named
        // but read as not Docker's: the inspect is what tells them apart.
        let t = on_a_swarm_node(r#"{"Name":"docker_gwbridge","Containers":{}}"#);
        let leg = t.iface(31).expect("a port of docker_gwbridge");
        assert_eq!(
            (leg.role, leg.container.as_deref()),
            (Role::ManualVeth, Some("AppProd"))
        );
    }

    #[test]
    fn a_port_whose_peer_is_still_here_is_unresolved() {
        let (snap, mut links, scans) = course_lab();
        // Docker made a pair, put one end on devops, and has not moved the other yet.
        let mut new_port = link(20, "veth3333333", LinkKind::Veth);
        new_port.master = Some(3);
        new_port.peer_ifindex = Some(21);
        let mut inner = link(21, "veth4444444", LinkKind::Veth);
        inner.peer_ifindex = Some(20);
        links.extend([new_port, inner]);
        let t = Topology::build(Some(&snap), &links, &[], &scans);
        let v = t.iface(20).expect("a port of a Docker bridge");
        assert!(v.unresolved && v.container.is_none());
        assert!(t.has_unresolved());
        // Without it, the course lab resolves.
        let (snap, links, scans) = course_lab();
        assert!(!Topology::build(Some(&snap), &links, &[], &scans).has_unresolved());
    }

    #[test]
    fn without_docker_every_bridge_and_port() {
        let (_, links, _) = course_lab();
        let t = Topology::build(None, &links, &[], &HashMap::new());
        assert!(!t.docker);
        assert_eq!(t.observed.len(), 5);
        assert!(t
            .observed
            .iter()
            .all(|o| o.container.is_none() && o.network.is_none()));
        assert_eq!(t.iface(12).expect("port").role, Role::Veth);
    }

    #[test]
    fn empty_inputs() {
        let t = Topology::build(Some(&DockerSnapshot::default()), &[], &[], &HashMap::new());
        assert!(t.observed.is_empty() && t.containers.is_empty());
        assert!(t.iface(1).is_none());
        let e = Topology::explicit(&[(7, "va".into())]);
        assert_eq!(e.iface(7).map(|o| o.name.as_str()), Some("va"));
    }
}

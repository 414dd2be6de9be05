//! What the map page and `/v1/map` show at one moment: every Docker network as a box with
//! its containers and hand-made legs, the host's other bridges, the edges of the pings, and
//! a status line. Built from the topology, the [`Edges`] and the daemon's figures; the
//! order of everything is stable (by name), so the page's layout does not move when
//! nothing changed.

use std::net::IpAddr;
use std::time::Instant;

use serde::Serialize;

use super::edges::{Edge, Edges, LastDrop};
use crate::docker::topology::{Role, Topology};
use crate::explain::firewall::RuleRef;
use crate::model::decode::Mac;
use crate::model::journey::{Hop, Journey, Phase};

/// The daemon's figures on the status line.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Status {
    /// Events the pipeline handled per second (packets sampled, drops, journeys).
    pub events_per_s: f64,
    /// Events the kernel could not deliver (ring full, rate limited) since it started.
    pub lost_events: u64,
    /// One event per this many packets (`--sample`).
    pub sample: u32,
    pub attached_interfaces: usize,
    /// Whether the Docker engine answers.
    pub docker: bool,
    /// Whether the daemon refuses actions (`--read-only`): no diagnose from the page.
    pub read_only: bool,
    /// Why the map is empty, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub empty: Option<String>,
}

/// The whole map.
#[derive(Clone, Debug, Serialize)]
pub struct MapView {
    /// Always `"map"`.
    pub kind: &'static str,
    pub status: Status,
    pub networks: Vec<NetworkBox>,
    /// Bridges of the host that are no Docker network's (observed without an engine).
    pub bridges: Vec<BridgeBox>,
    /// Swarm overlay networks with this host's containers on them (their pings between
    /// hosts are edges like any other). Absent when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overlays: Vec<OverlayBox>,
    pub edges: Vec<EdgeView>,
}

/// A Swarm overlay network.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OverlayBox {
    pub name: String,
    pub subnets: Vec<String>,
    /// Its VXLAN network identifiers.
    pub vnis: Vec<u32>,
    pub ingress: bool,
    /// This host's containers on it, with their addresses there.
    pub containers: Vec<OverlayMemberBox>,
}

/// A container of this host on an overlay network.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OverlayMemberBox {
    pub name: String,
    pub ips: Vec<String>,
}

/// A Docker network.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NetworkBox {
    pub name: String,
    pub bridge: String,
    /// Whether the bridge device exists (Docker makes it with the first container).
    pub bridge_present: bool,
    pub subnets: Vec<String>,
    pub internal: bool,
    pub containers: Vec<ContainerBox>,
    /// Veths on its bridge that Docker did not make, with the far end.
    pub legs: Vec<LegBox>,
}

/// A container in one of its networks.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ContainerBox {
    pub name: String,
    /// Its interface on this network (`eth0`).
    pub iface: String,
    pub ips: Vec<String>,
    /// The host end of its veth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_veth: Option<String>,
}

/// A veth enslaved to a network's bridge by hand: `int_hote → AppProd eth1`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LegBox {
    /// The host end, on the bridge.
    pub iface: String,
    /// The container at the far end, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The far end's name inside it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
}

/// A bridge of the host that is no Docker network's, with its ports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BridgeBox {
    pub name: String,
    pub ports: Vec<String>,
}

/// The pings of one pair.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EdgeView {
    /// `src→dst`.
    pub id: String,
    /// A container name, else an address.
    pub src: String,
    pub dst: String,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    /// The network each end's address is on, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_network: Option<String>,
    /// A hand-made leg the latest ping crossed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// `answered`, `dropped` or `unanswered`.
    pub state: &'static str,
    /// `ping`, or `arp` for an ARP request nobody answered.
    pub what: &'static str,
    pub answered: u64,
    pub dropped: u64,
    pub unanswered: u64,
    pub arp_unanswered: u64,
    /// Pings per second.
    pub rate: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_avg_ms: Option<f64>,
    /// Seconds since its latest ping.
    pub age_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop: Option<DropView>,
    /// The latest journeys, newest first.
    pub journeys: Vec<JourneyView>,
}

/// Why the pair's pings die.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DropView {
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    pub phase: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The rule with its table and its Docker meaning, when the drop report named it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explained: Option<RuleRef>,
}

/// One ping, hop by hop.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JourneyView {
    pub id: u16,
    pub seq: u16,
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    pub hops: Vec<HopView>,
}

/// An observation point of a ping.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HopView {
    pub iface: String,
    /// What it is: `veth of AppDev`, `int_hote (hand-made, to AppProd)`, `br-… (devops)`.
    pub label: String,
    pub direction: &'static str,
    pub phase: &'static str,
    /// Microseconds after the ping's first sighting.
    pub at_us: u64,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// What the map shows of a hop: this host's interface `ifindex` named `name` by what it
/// is, a peer's (`--peer`) as `host:name`.
fn hop_label(topo: &Topology, h: &Hop) -> String {
    let (ifindex, name) = (h.ifindex, h.iface.as_str());
    if let Some(host) = &h.host {
        return format!("{host}:{name}");
    }
    match topo.iface(ifindex).filter(|o| o.name == name) {
        Some(o) => match (o.role, &o.container, &o.network) {
            (Role::ContainerVeth, Some(c), _) => format!("veth of {c}"),
            (Role::ManualVeth, Some(c), _) => format!("{name} (hand-made, to {c})"),
            (Role::Bridge, _, Some(n)) => format!("{name} ({n})"),
            _ => name.to_owned(),
        },
        None => name.to_owned(),
    }
}

fn journey_view(j: &Journey, topo: &Topology) -> JourneyView {
    let first = j.hops.first().map_or(j.ts_ns, |h| h.ts_ns.min(j.ts_ns));
    JourneyView {
        id: j.id,
        seq: j.seq,
        result: j.result.name(),
        rtt_ms: j.rtt_ns.map(ms),
        hops: j
            .hops
            .iter()
            .map(|h| HopView {
                iface: h.iface.clone(),
                label: hop_label(topo, h),
                direction: h.direction.name(),
                phase: h.phase.name(),
                at_us: h.ts_ns.saturating_sub(first) / 1000,
            })
            .collect(),
    }
}

fn drop_view(d: &LastDrop) -> DropView {
    DropView {
        reason: d.reason.clone(),
        location: d.location.clone(),
        hook: d.hook.clone(),
        iface: d.iface.clone(),
        phase: d.phase,
        rule: d.rule.clone(),
        explained: d.explained.clone(),
    }
}

fn edge_view(e: &Edge, topo: &Topology, now: Instant) -> EdgeView {
    // The network of an address: its owner's, else the one whose subnet holds it.
    let network = |ip: IpAddr| {
        topo.endpoint(Some(ip), Mac::default())
            .and_then(|l| l.network.clone())
            .or_else(|| {
                topo.networks
                    .iter()
                    .find(|n| n.info.subnets.iter().any(|s| s.contains(ip)))
                    .map(|n| n.info.name.clone())
            })
    };
    // A hand-made leg the latest ping's request went out of.
    let via = e.journeys.back().and_then(|j| {
        j.hops.iter().filter(|h| h.host.is_none()).find_map(|h| {
            topo.iface(h.ifindex)
                .filter(|o| o.name == h.iface && o.role == Role::ManualVeth)
                .filter(|_| h.phase == Phase::Request)
                .map(|o| o.name.clone())
        })
    });
    let (src, dst) = (e.src.name(), e.dst.name());
    EdgeView {
        id: format!("{src}→{dst}"),
        src,
        dst,
        src_ip: e.src_ip,
        dst_ip: e.dst_ip,
        src_network: network(e.src_ip),
        dst_network: network(e.dst_ip),
        via,
        state: e.state.name(),
        what: if e.arp { "arp" } else { "ping" },
        answered: e.answered,
        dropped: e.dropped,
        unanswered: e.unanswered,
        arp_unanswered: e.arp_unanswered,
        rate: (e.rate * 10.0).round() / 10.0,
        rtt_ms: e.rtt_ns.map(ms),
        rtt_avg_ms: e.rtt_avg_ns().map(ms),
        age_s: (now.saturating_duration_since(e.last).as_secs_f64() * 10.0).round() / 10.0,
        drop: e.drop.as_ref().map(drop_view),
        journeys: e
            .journeys
            .iter()
            .rev()
            .map(|j| journey_view(j, topo))
            .collect(),
    }
}

/// Why a map with nothing in it is empty.
fn why_empty(topo: &Topology, status: &Status) -> Option<String> {
    if !topo.networks.is_empty() || !topo.observed.is_empty() {
        if topo.containers.is_empty() && topo.observed.iter().all(|o| o.role == Role::Bridge) {
            return Some(
                "no container runs on a Docker bridge network: start one (docker run --network NAME …) and it appears here"
                    .into(),
            );
        }
        return None;
    }
    Some(if status.docker {
        "the Docker engine answers but has no bridge network with a bridge device yet, and the host has no other bridge: create a network and start a container on it".into()
    } else {
        "no Docker engine answers on /var/run/docker.sock and the host has no bridge: start dockerd (or run netlab on the Docker host)".into()
    })
}

impl MapView {
    /// The map of `topo` with `edges`, at `now`.
    pub fn build(topo: &Topology, edges: &Edges, mut status: Status, now: Instant) -> MapView {
        let mut networks: Vec<NetworkBox> = topo
            .networks
            .iter()
            .map(|n| {
                let mut containers: Vec<ContainerBox> = topo
                    .containers
                    .iter()
                    .flat_map(|c| {
                        c.interfaces
                            .iter()
                            .filter(|i| !i.manual && i.network.as_deref() == Some(&n.info.name))
                            .map(|i| ContainerBox {
                                name: c.name.clone(),
                                iface: i.name.clone(),
                                ips: i.addrs.clone(),
                                host_veth: i.host_veth.clone(),
                            })
                    })
                    .collect();
                containers.sort_by(|a, b| (&a.name, &a.iface).cmp(&(&b.name, &b.iface)));
                let mut legs: Vec<LegBox> = topo
                    .observed
                    .iter()
                    .filter(|o| {
                        o.role == Role::ManualVeth && o.bridge.as_deref() == Some(&n.info.bridge)
                    })
                    .map(|o| LegBox {
                        iface: o.name.clone(),
                        container: o.container.clone(),
                        peer: o.peer.clone(),
                    })
                    .collect();
                legs.sort_by(|a, b| a.iface.cmp(&b.iface));
                NetworkBox {
                    name: n.info.name.clone(),
                    bridge: n.info.bridge.clone(),
                    bridge_present: n.bridge_present,
                    subnets: n.info.subnets.iter().map(ToString::to_string).collect(),
                    internal: n.info.internal,
                    containers,
                    legs,
                }
            })
            .collect();
        networks.sort_by(|a, b| a.name.cmp(&b.name));
        let mut bridges: Vec<BridgeBox> = topo
            .observed
            .iter()
            .filter(|o| o.role == Role::Bridge && o.network.is_none())
            .map(|b| {
                let mut ports: Vec<String> = topo
                    .observed
                    .iter()
                    .filter(|o| o.role != Role::Bridge && o.bridge.as_deref() == Some(&b.name))
                    .map(|o| o.name.clone())
                    .collect();
                ports.sort();
                BridgeBox {
                    name: b.name.clone(),
                    ports,
                }
            })
            .collect();
        bridges.sort_by(|a, b| a.name.cmp(&b.name));
        // The topology lists them in name order.
        let overlays = topo
            .overlays
            .iter()
            .map(|o| OverlayBox {
                name: o.info.name.clone(),
                subnets: o.info.subnets.iter().map(ToString::to_string).collect(),
                vnis: o.info.vnis.clone(),
                ingress: o.info.ingress,
                containers: o
                    .containers
                    .iter()
                    .map(|c| OverlayMemberBox {
                        name: c.name.clone(),
                        ips: c.ips.iter().map(ToString::to_string).collect(),
                    })
                    .collect(),
            })
            .collect();
        status.empty = why_empty(topo, &status);
        MapView {
            kind: "map",
            status,
            networks,
            bridges,
            overlays,
            edges: edges
                .sorted()
                .into_iter()
                .map(|e| edge_view(e, topo, now))
                .collect(),
        }
    }
}

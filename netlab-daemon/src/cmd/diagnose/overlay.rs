//! What a ping across a Swarm overlay needs beyond one host, checked from this node: the
//! overlay's forwarding entries for the destination (which host has it), that host's
//! Swarm gossip port, and the way VXLAN leaves this host.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use crate::docker::topology::{ContainerView, Role, Topology};
use crate::kernel::links;

/// The Swarm's gossip port (TCP and UDP), which every node listens on.
pub const GOSSIP_PORT: u16 = 7946;
/// How long the gossip port may take to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The checks of an overlay destination.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct OverlayChecks {
    pub network: String,
    pub vni: Option<u32>,
    /// The destination's MAC address in the overlay's neighbour table, when there.
    pub mac: Option<String>,
    /// The host the overlay's forwarding entry sends that MAC to, when there.
    pub remote: Option<IpAddr>,
    /// Whether the remote host's gossip port answered a TCP connection.
    pub gossip: Option<bool>,
    /// This node's address and VXLAN port, and the interface VXLAN leaves by.
    pub node: Option<String>,
    /// One line per check, as the verdict prints them.
    pub lines: Vec<String>,
}

/// The checks for `ip` when it is on an overlay `src` is on; `None` otherwise.
pub async fn checks(topo: &Topology, src: &ContainerView, ip: IpAddr) -> Option<OverlayChecks> {
    let o = super::overlay_of(topo, src, ip)?;
    let mut c = OverlayChecks {
        network: o.info.name.clone(),
        vni: o.info.vnis.first().copied(),
        ..Default::default()
    };
    let vxlan = topo
        .observed
        .iter()
        .find(|i| i.role == Role::OverlayVxlan && i.network.as_deref() == Some(&c.network));
    let entries = match vxlan.and_then(|v| v.sandbox.clone()) {
        Some(path) => links::in_netns_at(&path, links::dump_neighbours).ok(),
        None => None,
    };
    let vni = c.vni.map_or_else(String::new, |v| format!(" (VNI {v})"));
    match (vxlan, entries) {
        (Some(dev), Some(entries)) => {
            let mac = entries
                .iter()
                .find(|n| n.ifindex == dev.index_in_netns() && n.ip == Some(ip))
                .and_then(|n| n.mac);
            let remote = mac.and_then(|m| {
                entries
                    .iter()
                    .find(|n| n.ifindex == dev.index_in_netns() && n.mac == Some(m) && n.remote.is_some())
                    .and_then(|n| n.remote)
            });
            c.mac = mac.map(|m| m.to_string());
            c.remote = remote;
            c.lines.push(match (mac, remote) {
                (Some(m), Some(r)) => format!(
                    "overlay {}{vni}: {ip} is at {m}, on host {r} (forwarding entries of {})",
                    c.network, dev.name
                ),
                (Some(m), None) => format!(
                    "overlay {}{vni}: {ip} is at {m}, but {} has no forwarding entry for it: no host is known to have it",
                    c.network, dev.name
                ),
                (None, _) => format!(
                    "overlay {}{vni}: no entry for {ip} on {}: no container with that address is known on the overlay (removed, or its node left the Swarm)",
                    c.network, dev.name
                ),
            });
        }
        _ => c.lines.push(format!(
            "overlay {}{vni}: its sandbox on this node is not observed, so its forwarding entries are not read",
            c.network
        )),
    }
    if let Some(r) = c.remote {
        let answered = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect(SocketAddr::new(r, GOSSIP_PORT)),
        )
        .await
        .is_ok_and(|s| s.is_ok());
        c.gossip = Some(answered);
        c.lines.push(if answered {
            format!("host {r}: TCP {GOSSIP_PORT} (Swarm gossip) answers")
        } else {
            format!(
                "host {r}: TCP {GOSSIP_PORT} (Swarm gossip) does not answer within {} s: a firewall between the nodes, or the host is down",
                CONNECT_TIMEOUT.as_secs()
            )
        });
    }
    if let Some(n) = &topo.swarm {
        let uplink = topo
            .observed
            .iter()
            .find(|i| i.role == Role::SwarmUplink)
            .map_or_else(|| "?".to_owned(), |i| i.name.clone());
        c.node = Some(format!("{} UDP {} on {uplink}", n.addr, n.data_path_port));
        c.lines.push(format!(
            "VXLAN leaves this node from {} over UDP {} on {uplink}; the other host must accept it",
            n.addr, n.data_path_port
        ));
    }
    Some(c)
}

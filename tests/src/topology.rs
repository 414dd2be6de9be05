//! [`Topology`]: a Docker-like bridge with two "containers", built from three namespaces.
//!
//! ```text
//!   namespace a                 namespace br                  namespace b
//!   eth0 10.99.0.1/24  <-veth->  va --+-- br0 --+-- vb  <-veth->  eth0 10.99.0.2/24
//!        fd99::1/64                                                fd99::2/64
//! ```
//!
//! Only the three namespaces are named on the host; every interface lives inside one of
//! them, so the fixed interface names never clash between tests or with the host.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::host::netns::{add_bridge, add_bridge_port, unique_name, Netns};

/// Bridge in the `br` namespace.
pub const BRIDGE: &str = "br0";
/// Host side of container a's veth, in the `br` namespace.
pub const VETH_A: &str = "va";
/// Host side of container b's veth, in the `br` namespace.
pub const VETH_B: &str = "vb";
/// Container side of each veth, in namespaces a and b.
pub const CONTAINER_IF: &str = "eth0";

/// Container a's IPv4 address.
pub const IP_A: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// Container a's IPv6 address.
pub const IP6_A: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 1);
/// Container a's MAC address (locally administered).
pub const MAC_A: [u8; 6] = [0x02, 0x99, 0, 0, 0, 0x01];
/// Container b's IPv4 address.
pub const IP_B: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// Container b's IPv6 address.
pub const IP6_B: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 2);
/// Container b's MAC address (locally administered).
pub const MAC_B: [u8; 6] = [0x02, 0x99, 0, 0, 0, 0x02];

/// How long the links may take to come up and the bridge ports to forward.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Three namespaces wired as in the module documentation. ARP and neighbour caches start
/// empty: nothing is sent between a and b before a test does.
///
/// Dropping it deletes the namespaces, which removes the bridge and both veth pairs.
#[derive(Debug)]
pub struct Topology {
    /// Holds `br0`, `va` and `vb` (the "host" side).
    pub br: Netns,
    /// Container a: `eth0` with [`IP_A`], [`IP6_A`], [`MAC_A`].
    pub a: Netns,
    /// Container b: `eth0` with [`IP_B`], [`IP6_B`], [`MAC_B`].
    pub b: Netns,
}

impl Topology {
    /// Builds the topology; `tag` names the test (namespaces are `nlt-<tag>-<pid>-<n>-{br,a,b}`).
    pub fn new(tag: &str) -> Result<Self> {
        let base = unique_name(tag);
        // Each guard deletes its namespace if a later step fails.
        let br = Netns::new(format!("{base}-br"))?;
        let a = Netns::new(format!("{base}-a"))?;
        let b = Netns::new(format!("{base}-b"))?;

        // The "host" side has no addresses: keep its IPv6 quiet so all traffic is a's and b's.
        br.disable_ipv6()?;
        // Multicast snooping off: NDP's solicited-node multicast is flooded like on a hub.
        add_bridge(
            br.name(),
            BRIDGE,
            &["stp_state", "0", "mcast_snooping", "0"],
        )?;

        for (container, veth, ip, ip6, mac) in [
            (&a, VETH_A, IP_A, IP6_A, MAC_A),
            (&b, VETH_B, IP_B, IP6_B, MAC_B),
        ] {
            // No duplicate address detection: addresses are usable at once, and the link-local
            // address does not send DAD probes in the middle of a test.
            container.exec(
                "sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0",
            )?;
            add_bridge_port(br.name(), BRIDGE, veth, container.name(), CONTAINER_IF)?;
            container.exec(&format!(
                "ip link set {CONTAINER_IF} address {mac} \
                 && ip addr add {ip}/24 dev {CONTAINER_IF} \
                 && ip -6 addr add {ip6}/64 dev {CONTAINER_IF} nodad \
                 && ip link set {CONTAINER_IF} up",
                mac = format_mac(&mac)
            ))?;
        }

        let topology = Self { br, a, b };
        topology.wait_ready()?;
        Ok(topology)
    }

    /// Waits until both container links are up and both bridge ports forward.
    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let mut pending = Vec::new();
            for veth in [VETH_A, VETH_B] {
                let port = self.br.exec(&format!("bridge link show dev {veth}"))?;
                if !port.contains("state forwarding") {
                    pending.push(format!("bridge port {veth}: {}", port.trim()));
                }
            }
            for container in [&self.a, &self.b] {
                let link = container.operstate(CONTAINER_IF)?;
                if link != "UP" {
                    pending.push(format!("{} {CONTAINER_IF}: {link}", container.name()));
                }
            }
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("topology not ready after {READY_TIMEOUT:?}: {pending:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Interface index of `ifname` in the `br` namespace.
    pub fn br_ifindex(&self, ifname: &str) -> Result<u64> {
        ifindex(&self.br, ifname)
    }

    /// The namespace names, for checking they are gone after drop.
    pub fn namespace_names(&self) -> [String; 3] {
        [
            self.br.name().to_owned(),
            self.a.name().to_owned(),
            self.b.name().to_owned(),
        ]
    }
}

/// Interface index of `ifname` inside `ns`.
pub fn ifindex(ns: &Netns, ifname: &str) -> Result<u64> {
    let shown = ns.exec(&format!("ip -j link show dev {ifname}"))?;
    let links: serde_json::Value =
        serde_json::from_str(&shown).with_context(|| format!("parsing `ip -j`: {shown}"))?;
    links[0]["ifindex"]
        .as_u64()
        .with_context(|| format!("no ifindex for {ifname} in {}: {shown}", ns.name()))
}

/// `02:99:00:00:00:01` form, lower case.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

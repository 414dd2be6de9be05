//! What the [`Correlator`](super::Correlator) is fed: echo packets seen at an observation
//! point, echo packets the kernel dropped, and ARP requests and replies, each stamped with
//! the kernel's monotonic clock.

use std::net::{IpAddr, Ipv4Addr};

use crate::model::kind::{Direction, Kind};

/// One observation of an echo packet at an observation point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sighting<'a> {
    /// Kernel monotonic time of the observation, ns.
    pub ts_ns: u64,
    /// `IcmpEchoRequest`, `IcmpEchoReply`, `Icmp6EchoRequest` or `Icmp6EchoReply`; other
    /// kinds are ignored.
    pub kind: Kind,
    /// Source address of the packet.
    pub src_ip: IpAddr,
    /// Destination address of the packet.
    pub dst_ip: IpAddr,
    /// Echo identifier.
    pub id: u16,
    /// Echo sequence number.
    pub seq: u16,
    /// Interface the packet was seen on.
    pub iface: &'a str,
    /// Its ifindex.
    pub ifindex: u32,
    /// Direction relative to the interface.
    pub direction: Direction,
    /// Container owning the source address, if known.
    pub src_container: Option<&'a str>,
    /// Container owning the destination address, if known.
    pub dst_container: Option<&'a str>,
    /// The VXLAN network identifier, when it was seen inside VXLAN.
    pub vni: Option<u32>,
    /// The peer host that saw it (`watch --peer`); `None`: this host.
    pub host: Option<&'a str>,
}

/// The kernel dropped an echo packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropSighting<'a> {
    /// Kernel monotonic time of the drop, ns.
    pub ts_ns: u64,
    /// The dropped packet's kind (echo kinds only; others are ignored).
    pub kind: Kind,
    /// Source address of the dropped packet.
    pub src_ip: IpAddr,
    /// Destination address of the dropped packet.
    pub dst_ip: IpAddr,
    /// Container of the source address, if known: a ping dropped before it reached any
    /// observed hook (no ARP reply in the sender's namespace) is known by its drop alone.
    pub src_container: Option<&'a str>,
    /// Container of the destination address, if known.
    pub dst_container: Option<&'a str>,
    /// Echo identifier.
    pub id: u16,
    /// Echo sequence number.
    pub seq: u16,
    /// The kernel's drop reason.
    pub reason: &'a str,
    /// Where in the kernel it was dropped (function), if known.
    pub location: Option<&'a str>,
    /// Interface it was dropped on, if known.
    pub iface: Option<&'a str>,
    /// Netfilter rule that dropped it, if known.
    pub rule: Option<&'a str>,
    /// Netfilter hook, if known.
    pub hook: Option<&'a str>,
    /// The peer host that dropped it (`watch --peer`); `None`: this host.
    pub host: Option<&'a str>,
}

/// One observation of an ARP request or reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpSighting<'a> {
    /// Kernel monotonic time of the observation, ns.
    pub ts_ns: u64,
    /// A request (else a reply).
    pub op_request: bool,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
    /// Docker network it was seen on, if known.
    pub network: Option<&'a str>,
    /// Container owning the sender address, if known.
    pub sender_container: Option<&'a str>,
    /// Interface it was seen on.
    pub iface: &'a str,
}

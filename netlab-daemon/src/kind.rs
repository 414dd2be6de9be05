//! Packet kinds and directions: the stable ids of `netlab_common` with their names.

use netlab_common::{direction as dir, kind as k};

/// What a counted packet is. The discriminants are the kernel's ids and never change.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    ArpRequest = k::ARP_REQUEST,
    ArpReply = k::ARP_REPLY,
    IcmpEchoRequest = k::ICMP_ECHO_REQUEST,
    IcmpEchoReply = k::ICMP_ECHO_REPLY,
    IcmpUnreachable = k::ICMP_UNREACHABLE,
    IcmpTimeExceeded = k::ICMP_TIME_EXCEEDED,
    IcmpOther = k::ICMP_OTHER,
    Icmp6EchoRequest = k::ICMP6_ECHO_REQUEST,
    Icmp6EchoReply = k::ICMP6_ECHO_REPLY,
    NdpNeighborSolicit = k::NDP_NEIGHBOR_SOLICIT,
    NdpNeighborAdvert = k::NDP_NEIGHBOR_ADVERT,
    NdpRouterSolicit = k::NDP_ROUTER_SOLICIT,
    NdpRouterAdvert = k::NDP_ROUTER_ADVERT,
    Icmp6Other = k::ICMP6_OTHER,
    Malformed = k::MALFORMED,
    ArpOther = k::ARP_OTHER,
}

impl Kind {
    /// Every kind, in id order.
    pub const ALL: [Kind; 16] = [
        Kind::ArpRequest,
        Kind::ArpReply,
        Kind::IcmpEchoRequest,
        Kind::IcmpEchoReply,
        Kind::IcmpUnreachable,
        Kind::IcmpTimeExceeded,
        Kind::IcmpOther,
        Kind::Icmp6EchoRequest,
        Kind::Icmp6EchoReply,
        Kind::NdpNeighborSolicit,
        Kind::NdpNeighborAdvert,
        Kind::NdpRouterSolicit,
        Kind::NdpRouterAdvert,
        Kind::Icmp6Other,
        Kind::Malformed,
        Kind::ArpOther,
    ];

    /// The kind with kernel id `id`, if any.
    pub fn from_id(id: u8) -> Option<Kind> {
        Self::ALL.iter().copied().find(|k| *k as u8 == id)
    }

    /// The name used in output and filters (`icmp-echo-request`).
    pub const fn name(self) -> &'static str {
        match self {
            Kind::ArpRequest => "arp-request",
            Kind::ArpReply => "arp-reply",
            Kind::IcmpEchoRequest => "icmp-echo-request",
            Kind::IcmpEchoReply => "icmp-echo-reply",
            Kind::IcmpUnreachable => "icmp-unreachable",
            Kind::IcmpTimeExceeded => "icmp-time-exceeded",
            Kind::IcmpOther => "icmp-other",
            Kind::Icmp6EchoRequest => "icmp6-echo-request",
            Kind::Icmp6EchoReply => "icmp6-echo-reply",
            Kind::NdpNeighborSolicit => "ndp-neighbor-solicit",
            Kind::NdpNeighborAdvert => "ndp-neighbor-advert",
            Kind::NdpRouterSolicit => "ndp-router-solicit",
            Kind::NdpRouterAdvert => "ndp-router-advert",
            Kind::Icmp6Other => "icmp6-other",
            Kind::Malformed => "malformed",
            Kind::ArpOther => "arp-other",
        }
    }

    /// The family a kind belongs to, as used by `--kind arp|icmp|icmp6|ndp`.
    pub const fn family(self) -> &'static str {
        match self {
            Kind::ArpRequest | Kind::ArpReply | Kind::ArpOther => "arp",
            Kind::IcmpEchoRequest
            | Kind::IcmpEchoReply
            | Kind::IcmpUnreachable
            | Kind::IcmpTimeExceeded
            | Kind::IcmpOther => "icmp",
            Kind::Icmp6EchoRequest | Kind::Icmp6EchoReply | Kind::Icmp6Other => "icmp6",
            Kind::NdpNeighborSolicit
            | Kind::NdpNeighborAdvert
            | Kind::NdpRouterSolicit
            | Kind::NdpRouterAdvert => "ndp",
            Kind::Malformed => "malformed",
        }
    }
}

/// Direction of a packet relative to the observed interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    /// The direction with kernel id `id`, if any.
    pub fn from_id(id: u8) -> Option<Direction> {
        match id {
            dir::INGRESS => Some(Direction::Ingress),
            dir::EGRESS => Some(Direction::Egress),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_names_are_unique() {
        let mut names = std::collections::HashSet::new();
        for k in Kind::ALL {
            assert_eq!(Kind::from_id(k as u8), Some(k));
            assert!(names.insert(k.name()), "duplicate name {}", k.name());
        }
        assert_eq!(Kind::ALL.len() + 1, usize::from(k::COUNT));
        assert_eq!(Kind::from_id(k::NONE), None);
        assert_eq!(Kind::from_id(k::COUNT), None);
    }

    #[test]
    fn directions() {
        assert_eq!(Direction::from_id(0), Some(Direction::Ingress));
        assert_eq!(Direction::from_id(1), Some(Direction::Egress));
        assert_eq!(Direction::from_id(2), None);
    }
}

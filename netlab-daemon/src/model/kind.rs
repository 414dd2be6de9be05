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

    /// The kind named `name` (as [`Kind::name`] writes it), if any.
    pub fn from_name(name: &str) -> Option<Kind> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// Whether it is an ICMP or ICMPv6 echo request or reply.
    pub const fn is_echo(self) -> bool {
        matches!(
            self,
            Kind::IcmpEchoRequest
                | Kind::IcmpEchoReply
                | Kind::Icmp6EchoRequest
                | Kind::Icmp6EchoReply
        )
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

    /// The direction named `name`, if any.
    pub fn from_name(name: &str) -> Option<Direction> {
        [Direction::Ingress, Direction::Egress]
            .into_iter()
            .find(|d| d.name() == name)
    }
}

/// The ICMP family of a ping journey.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// ICMP over IPv4.
    Icmp,
    /// ICMPv6.
    Icmp6,
}

impl Family {
    pub const fn name(self) -> &'static str {
        match self {
            Family::Icmp => "icmp",
            Family::Icmp6 => "icmp6",
        }
    }

    /// The family named `name`, if any.
    pub fn from_name(name: &str) -> Option<Family> {
        [Family::Icmp, Family::Icmp6]
            .into_iter()
            .find(|f| f.name() == name)
    }

    /// The family of an echo kind.
    pub const fn of(kind: Kind) -> Family {
        match kind {
            Kind::Icmp6EchoRequest | Kind::Icmp6EchoReply => Family::Icmp6,
            _ => Family::Icmp,
        }
    }
}

/// Kinds, directions and families are written and read by their names.
macro_rules! by_name {
    ($t:ty, $what:literal) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                <$t>::from_name(&name).ok_or_else(|| {
                    serde::de::Error::custom(format_args!(
                        concat!("unknown ", $what, " '{}'"),
                        name
                    ))
                })
            }
        }
    };
}
by_name!(Kind, "kind");
by_name!(Direction, "direction");
by_name!(Family, "family");

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
    fn names_round_trip_through_serde() {
        for k in Kind::ALL {
            let json = serde_json::to_string(&k).expect("serialize");
            assert_eq!(json, format!("\"{}\"", k.name()));
            assert_eq!(serde_json::from_str::<Kind>(&json).expect("deserialize"), k);
        }
        for f in [Family::Icmp, Family::Icmp6] {
            let json = serde_json::to_string(&f).expect("serialize");
            assert_eq!(
                serde_json::from_str::<Family>(&json).expect("deserialize"),
                f
            );
        }
        assert_eq!(
            serde_json::from_str::<Direction>("\"egress\"").expect("deserialize"),
            Direction::Egress
        );
        assert!(serde_json::from_str::<Kind>("\"tcp\"").is_err());
    }

    #[test]
    fn directions() {
        assert_eq!(Direction::from_id(0), Some(Direction::Ingress));
        assert_eq!(Direction::from_id(1), Some(Direction::Egress));
        assert_eq!(Direction::from_id(2), None);
    }
}

//! Event filters: `--container`, `--network`, `--kind`.

use crate::model::event::PacketRecord;
use crate::model::kind::Kind;

/// Errors in filter values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    /// `--kind` names no kind and no family.
    #[error("unknown kind '{0}': use {accepted}", accepted = kinds_accepted())]
    UnknownKind(String),
}

/// The groups `--kind` (and the API's `kind`) accepts besides exact kinds, in the order help
/// and errors list them: the packet families, the record kinds, then `topology`.
pub fn kind_groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for kind in Kind::ALL {
        if !groups.contains(&kind.family()) {
            groups.push(kind.family());
        }
    }
    groups.extend(RECORD_KINDS);
    groups.push(crate::docker::topo_events::FAMILY);
    groups
}

/// What `--kind` accepts, as help and errors say it: `arp, icmp, …, topology or an exact
/// kind such as icmp-echo-request or iface-gone`.
pub fn kinds_accepted() -> String {
    format!(
        "{} or an exact kind such as {} or {}",
        kind_groups().join(", "),
        Kind::IcmpEchoRequest.name(),
        crate::docker::topo_events::KINDS[1],
    )
}

/// Every value `--kind` accepts (in lowercase; it ignores case): the groups, then each exact
/// kind (packets, topology events) that is not a group's name too (`malformed`).
pub fn every_kind_value() -> Vec<&'static str> {
    let mut all = kind_groups();
    let exact = Kind::ALL.iter().map(|k| k.name());
    for name in exact.chain(crate::docker::topo_events::KINDS) {
        if !all.contains(&name) {
            all.push(name);
        }
    }
    all
}

/// Which events to show. Empty lists match everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Container names (lowercase): the event's source, destination or interface.
    containers: Vec<String>,
    /// Network names (lowercase): the event's source, destination or interface network.
    networks: Vec<String>,
    kinds: Vec<Kind>,
    /// Record kinds that are not packets: `drop`, `journey`, `arp-unanswered`, and the
    /// topology events (`iface-gone`...).
    records: Vec<&'static str>,
}

/// Record kinds besides packet kinds that `--kind` accepts.
pub const RECORD_KINDS: [&str; 3] = ["drop", "journey", "arp-unanswered"];

impl Filter {
    pub fn new(
        containers: &[String],
        networks: &[String],
        kinds: &[String],
    ) -> Result<Self, FilterError> {
        let mut ks = Vec::new();
        let mut records = Vec::new();
        for k in kinds {
            let k = k.to_ascii_lowercase();
            if let Some(r) = RECORD_KINDS.iter().find(|r| **r == k) {
                records.push(*r);
                continue;
            }
            if k == crate::docker::topo_events::FAMILY {
                records.extend(crate::docker::topo_events::KINDS);
                continue;
            }
            if let Some(r) = crate::docker::topo_events::KINDS.iter().find(|r| **r == k) {
                records.push(*r);
                continue;
            }
            let matched: Vec<Kind> = Kind::ALL
                .iter()
                .copied()
                .filter(|x| x.name() == k || x.family() == k)
                .collect();
            if matched.is_empty() {
                return Err(FilterError::UnknownKind(k));
            }
            ks.extend(matched);
        }
        Ok(Filter {
            containers: containers.iter().map(|c| c.to_ascii_lowercase()).collect(),
            networks: networks.iter().map(|n| n.to_ascii_lowercase()).collect(),
            kinds: ks,
            records,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
            && self.networks.is_empty()
            && self.kinds.is_empty()
            && self.records.is_empty()
    }

    fn no_kinds(&self) -> bool {
        self.kinds.is_empty() && self.records.is_empty()
    }

    /// Whether a record of `kind` (with the dropped packet's kind, or a journey's family)
    /// passes `--kind`.
    pub(crate) fn kind_selected(
        &self,
        kind: &str,
        packet: Option<&str>,
        family: Option<&str>,
    ) -> bool {
        if self.no_kinds() {
            return true;
        }
        match kind {
            "drop" => {
                self.records.contains(&"drop")
                    || packet.is_some_and(|p| self.kinds.iter().any(|k| k.name() == p))
            }
            "journey" => {
                self.records.contains(&"journey")
                    || family.is_some_and(|f| self.kinds.iter().any(|k| k.family() == f))
            }
            "arp-unanswered" => {
                self.records.contains(&"arp-unanswered")
                    || self.kinds.iter().any(|k| k.family() == "arp")
            }
            "lost" => true,
            k if crate::docker::topo_events::KINDS.contains(&k) => self.records.contains(&k),
            k => self.kinds.iter().any(|x| x.name() == k),
        }
    }

    pub(crate) fn has_networks(&self) -> bool {
        !self.networks.is_empty()
    }

    pub(crate) fn names_match_pub(
        &self,
        containers: [Option<&str>; 3],
        networks: [Option<&str>; 3],
    ) -> bool {
        self.names_match(containers, networks)
    }

    fn names_match(&self, containers: [Option<&str>; 3], networks: [Option<&str>; 3]) -> bool {
        fn any(wanted: &[String], names: [Option<&str>; 3]) -> bool {
            wanted.is_empty()
                || names
                    .into_iter()
                    .flatten()
                    .any(|n| wanted.iter().any(|w| w.eq_ignore_ascii_case(n)))
        }
        any(&self.containers, containers) && any(&self.networks, networks)
    }

    /// A drop matches `--kind drop` or the kind of the packet dropped.
    pub fn matches_drop(&self, r: &crate::model::event::DropRecord) -> bool {
        let kind_ok =
            self.no_kinds() || self.records.contains(&"drop") || self.kinds.contains(&r.packet);
        let netns_container = r.netns_container();
        kind_ok
            && self.names_match(
                [r.src.container, r.dst.container, netns_container],
                [r.src.network, r.dst.network, None],
            )
    }

    /// A finished journey matches `--kind journey` or an ICMP family; an unanswered ARP
    /// request `--kind arp-unanswered` or `arp`.
    pub fn matches_finished(&self, f: &crate::model::journey::Finished) -> bool {
        use crate::model::journey::Finished;
        match f {
            Finished::Journey(j) => {
                let fam = j.family.name();
                (self.no_kinds()
                    || self.records.contains(&"journey")
                    || self.kinds.iter().any(|k| k.family() == fam))
                    && self.names_match(
                        [j.src.container.as_deref(), j.dst.container.as_deref(), None],
                        [None, None, None],
                    )
                    && self.networks.is_empty()
            }
            Finished::ArpUnanswered(a) => {
                (self.no_kinds()
                    || self.records.contains(&"arp-unanswered")
                    || self.kinds.iter().any(|k| k.family() == "arp"))
                    && self.names_match(
                        [a.who_container.as_deref(), None, None],
                        [a.network.as_deref(), None, None],
                    )
            }
        }
    }

    /// A topology event matches `--kind topology` or its own kind, and `--container` and
    /// `--network` by the container and network it is about (engine events match any).
    pub fn matches_topo(&self, e: &crate::docker::topo_events::TopoEvent) -> bool {
        self.kind_selected(e.kind, None, None)
            && (e.about_everything()
                || self.names_match(e.filter_containers(), e.filter_networks()))
    }

    pub fn matches(&self, r: &PacketRecord<'_>) -> bool {
        (self.no_kinds() || self.kinds.contains(&r.kind))
            && self.names_match(
                [r.src.container, r.dst.container, r.iface.container],
                [r.src.network, r.dst.network, r.iface.network],
            )
    }

    /// Per-pair statistics are kept for pairs with a wanted container (any, without
    /// `--container`).
    pub fn matches_pair(&self, src: &str, dst: &str) -> bool {
        self.names_match([Some(src), Some(dst), None], [None, None, None])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::clock::Clock;
    use crate::model::decode::tests::{arp_frame, icmp4_frame};
    use netlab_common::{direction, kind as k, record, PacketEvent, SNAP_LEN};

    fn ev(frame: &[u8], kind: u8, ifindex: u32) -> PacketEvent {
        let mut data = [0u8; SNAP_LEN];
        data[..frame.len()].copy_from_slice(frame);
        PacketEvent {
            ts_ns: 0,
            ifindex,
            pkt_len: frame.len() as u32,
            sample_rate: 1,
            cap_len: frame.len() as u16,
            direction: direction::INGRESS,
            kind,
            record: record::TC_PACKET,
            encap: 0,
            _pad: [0; 5],
            data,
        }
    }

    #[test]
    fn kinds_by_family_or_name() {
        assert!(Filter::new(&[], &[], &["ICMP".into()]).is_ok());
        assert!(Filter::new(&[], &[], &["ndp-neighbor-solicit".into()]).is_ok());
        assert_eq!(
            Filter::new(&[], &[], &["tcp".into()]).err(),
            Some(FilterError::UnknownKind("tcp".into()))
        );
        assert!(Filter::default().is_empty());
    }

    #[test]
    fn every_kind_listed_is_accepted_and_the_list_says_them_all() {
        assert_eq!(
            kinds_accepted(),
            "arp, icmp, icmp6, ndp, malformed, drop, journey, arp-unanswered, topology \
             or an exact kind such as icmp-echo-request or iface-gone"
        );
        for value in every_kind_value() {
            assert!(Filter::new(&[], &[], &[value.into()]).is_ok(), "{value}");
        }
        let message = FilterError::UnknownKind("tcp".into()).to_string();
        assert_eq!(
            message,
            format!("unknown kind 'tcp': use {}", kinds_accepted())
        );
    }

    #[test]
    fn matching() {
        let topo = crate::docker::topology::tests::course_lab_topology();
        let clock = Clock::new();
        let icmp = ev(&icmp4_frame(8, 1, 1), k::ICMP_ECHO_REQUEST, 10);
        let arp = ev(&arp_frame(1), k::ARP_REQUEST, 10);
        let r_icmp = PacketRecord::new(&icmp, &topo, &clock).expect("record");
        let r_arp = PacketRecord::new(&arp, &topo, &clock).expect("record");
        let f = |c: &[&str], n: &[&str], k: &[&str]| {
            let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
            Filter::new(&s(c), &s(n), &s(k)).expect("valid")
        };
        assert!(f(&[], &[], &[]).matches(&r_icmp));
        assert!(f(&[], &[], &["icmp"]).matches(&r_icmp));
        assert!(!f(&[], &[], &["icmp"]).matches(&r_arp));
        assert!(f(&[], &[], &["arp", "icmp"]).matches(&r_arp));
        // AppDev's veth: the interface's container matches, whatever the addresses.
        assert!(f(&["appdev"], &[], &[]).matches(&r_arp));
        assert!(!f(&["AppProd"], &[], &[]).matches(&r_icmp));
        assert!(f(&["AppProd", "appdev"], &[], &[]).matches(&r_icmp));
        assert!(f(&[], &["DEVOPS"], &[]).matches(&r_icmp));
        assert!(!f(&[], &["prod"], &[]).matches(&r_icmp));
        assert!(!f(&["appdev"], &["prod"], &[]).matches(&r_icmp));
        // Record kinds alone select no packet.
        assert!(!f(&[], &[], &["journey", "drop"]).matches(&r_icmp));
        assert!(f(&[], &[], &["journey", "icmp"]).matches(&r_icmp));
        assert!(f(&["appdev"], &[], &[]).matches_pair("AppDev", "AppProd"));
        assert!(!f(&["web"], &[], &[]).matches_pair("AppDev", "AppProd"));
    }
}

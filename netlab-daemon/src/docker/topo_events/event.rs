//! A topology event: what it holds, how it is built, its JSON line and what filters look
//! at.

use serde::Serialize;

use crate::docker::topology::{ObservedIface, Role};

/// A counter of an interface, as the summary's counter rows have it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Counted {
    pub direction: &'static str,
    pub kind: &'static str,
    pub packets: u64,
}

/// One topology event (the JSON line is its serde form).
#[derive(Clone, Debug, Serialize)]
pub struct TopoEvent {
    /// Unix time, nanoseconds (written as RFC 3339 in `ts`).
    #[serde(skip)]
    pub at: crate::kernel::clock::UnixNanos,
    pub ts: String,
    /// One of [`KINDS`](super::KINDS).
    pub kind: &'static str,
    /// The interface (interface events), as packet events describe theirs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iface: Option<IfaceInfo>,
    /// The container the event is about (or whose interface it is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The network(s) the event is about (or the interface's network).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// Why an interface went: `container-removed`, `container-stopped`,
    /// `network-disconnected`, `network-removed`, `link-deleted`, `no-longer-observed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// What a gone interface counted while it was observed (exactly the counters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counted: Option<Vec<Counted>>,
    /// Why an interface could not be observed; the engine's error when it was lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A container's image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// An interface as topology events show it (the fields of a packet event's `iface`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IfaceInfo {
    pub name: String,
    pub ifindex: u32,
    pub role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// For a veth, the interface at the other end (inside the container).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// For an interface of an overlay network's sandbox, the overlay's VXLAN id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
}

impl IfaceInfo {
    pub(super) fn of(o: &ObservedIface) -> Self {
        Self {
            name: o.name.clone(),
            ifindex: o.ifindex,
            role: o.role.name(),
            container: o.container.clone(),
            network: o.network.clone(),
            bridge: o.bridge.clone(),
            peer: o.peer.clone(),
            vni: o.vni,
        }
    }

    pub(super) fn unknown(ifindex: u32, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ifindex,
            role: Role::Veth.name(),
            container: None,
            network: None,
            bridge: None,
            peer: None,
            vni: None,
        }
    }
}

impl TopoEvent {
    pub(super) fn new(kind: &'static str) -> Self {
        let at = crate::kernel::clock::Clock::new()
            .to_unix(crate::kernel::clock::Clock::monotonic_now());
        Self {
            at,
            ts: String::from_utf8_lossy(&at.rfc3339()).into_owned(),
            kind,
            iface: None,
            container: None,
            networks: Vec::new(),
            reason: None,
            counted: None,
            error: None,
            image: None,
        }
    }

    pub(super) fn on_iface(kind: &'static str, i: IfaceInfo) -> Self {
        let mut e = Self::new(kind);
        e.container = i.container.clone();
        e.networks = i.network.iter().cloned().collect();
        e.iface = Some(i);
        e
    }

    /// The JSON line, newline included.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(&mut *out, self)?;
        out.push(b'\n');
        Ok(())
    }

    /// Container names filters look at.
    pub fn filter_containers(&self) -> [Option<&str>; 3] {
        [
            self.container.as_deref(),
            self.iface.as_ref().and_then(|i| i.container.as_deref()),
            None,
        ]
    }

    /// Network names filters look at.
    pub fn filter_networks(&self) -> [Option<&str>; 3] {
        [
            self.networks.first().map(String::as_str),
            self.networks.get(1).map(String::as_str),
            self.networks.get(2).map(String::as_str),
        ]
    }

    /// Engine events concern everything: `--container` and `--network` keep them.
    pub fn about_everything(&self) -> bool {
        self.kind.starts_with("engine-")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::filter::Filter;

    #[test]
    fn filters_select_topology_events() {
        let mut removed = TopoEvent::new("container-removed");
        removed.container = Some("AppDev".into());
        removed.networks = vec!["devops".into()];
        let lost = TopoEvent::new("engine-lost");
        let f = |c: &[&str], n: &[&str], k: &[&str]| {
            let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
            Filter::new(&s(c), &s(n), &s(k)).expect("valid")
        };
        assert!(f(&[], &[], &[]).matches_topo(&removed));
        assert!(f(&[], &[], &["topology"]).matches_topo(&removed));
        assert!(f(&[], &[], &["container-removed"]).matches_topo(&removed));
        assert!(!f(&[], &[], &["iface-gone"]).matches_topo(&removed));
        assert!(!f(&[], &[], &["icmp"]).matches_topo(&removed));
        assert!(f(&["appdev"], &[], &[]).matches_topo(&removed));
        assert!(!f(&["AppProd"], &[], &[]).matches_topo(&removed));
        assert!(f(&[], &["DEVOPS"], &[]).matches_topo(&removed));
        assert!(!f(&[], &["prod"], &[]).matches_topo(&removed));
        assert!(f(&["AppProd"], &["prod"], &[]).matches_topo(&lost));
        assert!(!f(&[], &[], &["icmp"]).matches_topo(&lost));
    }
}

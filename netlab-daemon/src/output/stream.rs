//! Events as the daemon streams them: rendered once (JSON line and human line), with what
//! per-client filters need to select them.

use std::sync::Arc;

use bytes::Bytes;

use crate::model::filter::Filter;

/// What filters look at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventMeta {
    /// Record kind: a packet kind (`icmp-echo-request`), `drop`, `journey`,
    /// `arp-unanswered`, a topology event (`iface-gone`...), or `lost` (a notice to one
    /// client).
    pub kind: String,
    /// For drops: the kind of the packet dropped.
    pub packet: Option<String>,
    /// For journeys: `icmp` or `icmp6`.
    pub family: Option<String>,
    /// Source, destination and interface (or namespace) containers.
    pub containers: Vec<String>,
    /// Source, destination and interface networks.
    pub networks: Vec<String>,
}

/// One event, rendered.
#[derive(Clone, Debug)]
pub struct StreamEvent {
    /// The JSON line, newline included.
    pub json: Bytes,
    /// The human line, newline included.
    pub text: Bytes,
    pub meta: EventMeta,
}

/// The sending side shared by the daemon's pipeline.
pub type Sender = tokio::sync::broadcast::Sender<Arc<StreamEvent>>;

impl Filter {
    /// The same selection as [`Filter::matches`], [`Filter::matches_drop`] and
    /// [`Filter::matches_finished`], on rendered events.
    pub fn matches_meta(&self, m: &EventMeta) -> bool {
        fn pad(v: &[String]) -> [Option<&str>; 3] {
            [
                v.first().map(String::as_str),
                v.get(1).map(String::as_str),
                v.get(2).map(String::as_str),
            ]
        }
        let everything = m.kind.starts_with("engine-");
        self.kind_selected(&m.kind, m.packet.as_deref(), m.family.as_deref())
            && (everything || self.names_match_pub(pad(&m.containers), pad(&m.networks)))
            && !(m.kind == "journey" && self.has_networks())
    }
}

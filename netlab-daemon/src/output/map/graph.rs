//! The map in the shape of Grafana's Node Graph panel (`/v1/graph`): a `nodes` frame and
//! an `edges` frame as arrays of rows whose fields carry the panel's names (`id`, `title`,
//! `subtitle`, `mainstat`, `secondarystat`, `color`, `arc__*`, `detail__*`; `source` and
//! `target` for edges). A JSON data source (Infinity: one query per frame, root selectors
//! `nodes` and `edges`, formats "Nodes - Node Graph" and "Edges - Node Graph") feeds it
//! to the panel as it is.

use std::collections::BTreeMap;

use serde::Serialize;

use super::view::{EdgeView, MapView};

/// The panel's colours for each state.
fn color(state: &str) -> &'static str {
    match state {
        "answered" => "green",
        "dropped" => "red",
        _ => "orange",
    }
}

/// A node: a container (with every network it is on), or an address that is no
/// container's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Node {
    pub id: String,
    pub title: String,
    /// Its networks.
    pub subtitle: String,
    /// Its addresses.
    pub mainstat: String,
    /// Pings from and to it: `3 answered, 1 dropped`.
    pub secondarystat: String,
    /// Shares of its pings (they add up to 1 when it has any).
    #[serde(rename = "arc__answered")]
    pub arc_answered: f64,
    #[serde(rename = "arc__dropped")]
    pub arc_dropped: f64,
    #[serde(rename = "arc__unanswered")]
    pub arc_unanswered: f64,
    #[serde(rename = "detail__kind")]
    pub detail_kind: &'static str,
}

/// An edge: the pings of one pair.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GraphEdge {
    pub id: String,
    pub source: String,
    pub target: String,
    /// `answered 0.12 ms`, `dropped: NETFILTER_DROP`, `unanswered`.
    pub mainstat: String,
    /// `2.0 pings/s`.
    pub secondarystat: String,
    pub color: &'static str,
    #[serde(rename = "detail__state")]
    pub detail_state: &'static str,
    #[serde(rename = "detail__answered")]
    pub detail_answered: u64,
    #[serde(rename = "detail__dropped")]
    pub detail_dropped: u64,
    #[serde(rename = "detail__unanswered")]
    pub detail_unanswered: u64,
    #[serde(rename = "detail__reason")]
    pub detail_reason: String,
    #[serde(rename = "detail__rule")]
    pub detail_rule: String,
    /// What the rule is in Docker's terms.
    #[serde(rename = "detail__meaning")]
    pub detail_meaning: String,
}

/// Both frames.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<GraphEdge>,
}

fn edge_row(e: &EdgeView) -> GraphEdge {
    let reason = e
        .drop
        .as_ref()
        .map(|d| d.reason.clone())
        .unwrap_or_default();
    let mainstat = match (e.state, e.rtt_ms) {
        ("answered", Some(rtt)) => format!("answered {rtt:.3} ms"),
        ("dropped", _) if !reason.is_empty() => format!("dropped: {reason}"),
        (s, _) if e.what == "arp" => format!("{s} (ARP)"),
        (s, _) => s.to_owned(),
    };
    GraphEdge {
        id: e.id.clone(),
        source: e.src.clone(),
        target: e.dst.clone(),
        mainstat,
        secondarystat: format!("{:.1} pings/s", e.rate),
        color: color(e.state),
        detail_state: e.state,
        detail_answered: e.answered,
        detail_dropped: e.dropped,
        detail_unanswered: e.unanswered + e.arp_unanswered,
        detail_reason: reason,
        detail_rule: e
            .drop
            .as_ref()
            .and_then(|d| d.rule.clone())
            .unwrap_or_default(),
        detail_meaning: e
            .drop
            .as_ref()
            .and_then(|d| d.explained.as_ref())
            .and_then(|r| r.docker.as_ref())
            .map(|m| m.summary.clone())
            .unwrap_or_default(),
    }
}

impl Graph {
    /// The frames of `map`: every container, every address an edge names that is no
    /// container's, and every edge.
    pub fn of(map: &MapView) -> Graph {
        // id → (networks, addresses, is a container)
        let mut nodes: BTreeMap<String, (Vec<String>, Vec<String>, bool)> = BTreeMap::new();
        for n in &map.networks {
            for c in &n.containers {
                let e = nodes.entry(c.name.clone()).or_default();
                e.0.push(n.name.clone());
                e.1.extend(c.ips.iter().cloned());
                e.2 = true;
            }
        }
        for e in &map.edges {
            for (name, ip, net) in [
                (&e.src, e.src_ip, &e.src_network),
                (&e.dst, e.dst_ip, &e.dst_network),
            ] {
                let n = nodes.entry(name.clone()).or_default();
                if !n.2 && n.1.is_empty() {
                    n.1.push(ip.to_string());
                    n.0.extend(net.iter().cloned());
                }
            }
        }
        let nodes = nodes
            .into_iter()
            .map(|(id, (networks, ips, container))| {
                let (mut a, mut d, mut u) = (0u64, 0u64, 0u64);
                for e in map.edges.iter().filter(|e| e.src == id || e.dst == id) {
                    a += e.answered;
                    d += e.dropped;
                    u += e.unanswered + e.arp_unanswered;
                }
                let total = (a + d + u) as f64;
                let share = |x: u64| if total > 0.0 { x as f64 / total } else { 0.0 };
                Node {
                    title: id.clone(),
                    id,
                    subtitle: networks.join(", "),
                    mainstat: ips.join(" "),
                    secondarystat: format!("{a} answered, {d} dropped, {u} unanswered"),
                    arc_answered: share(a),
                    arc_dropped: share(d),
                    arc_unanswered: share(u),
                    detail_kind: if container { "container" } else { "address" },
                }
            })
            .collect();
        Graph {
            nodes,
            edges: map.edges.iter().map(edge_row).collect(),
        }
    }
}

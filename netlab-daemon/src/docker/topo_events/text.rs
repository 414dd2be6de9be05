//! The line a person reads for a topology event (`… gone: container AppDev removed; it
//! counted 12 echo requests, 12 replies, 3 ARP`).

use std::fmt::Write as _;

use super::{Counted, IfaceInfo, TopoEvent};
use crate::model::kind::Kind;

impl TopoEvent {
    /// The line a person reads, newline included.
    pub fn write_human(&self, out: &mut String) {
        let _ = write!(out, "{}  ", self.at.time_of_day());
        let container = self.container.as_deref().unwrap_or("?");
        let networks = self.networks.join(", ");
        match self.kind {
            "iface-observed" | "iface-gone" | "iface-unobserved" => {
                let Some(i) = &self.iface else { return };
                i.describe(out);
                match self.kind {
                    "iface-observed" => {
                        let _ = write!(out, " observed ({}, {})", i.name, i.role);
                    }
                    "iface-gone" => {
                        out.push_str(" gone: ");
                        out.push_str(&self.why());
                        out.push_str("; it counted ");
                        counted_text(self.counted.as_deref().unwrap_or_default(), out);
                    }
                    _ => {
                        let _ = write!(
                            out,
                            " ({}) cannot be observed: {}",
                            i.name,
                            self.error.as_deref().unwrap_or("unknown error")
                        );
                    }
                }
            }
            "container-started" => {
                let _ = write!(out, "container {container} started");
                if !networks.is_empty() {
                    let _ = write!(out, " on {networks}");
                }
                if let Some(img) = &self.image {
                    let _ = write!(out, " (image {img})");
                }
            }
            "container-stopped" | "container-removed" => {
                let verb = &self.kind["container-".len()..];
                let _ = write!(out, "container {container} {verb}");
                if !networks.is_empty() {
                    let _ = write!(out, " (was on {networks})");
                }
            }
            "network-created" | "network-removed" => {
                let verb = &self.kind["network-".len()..];
                let _ = write!(out, "network {networks} {verb}");
            }
            "engine-lost" => {
                out.push_str(
                    "Docker engine connection lost: labels stay as they were until it answers again",
                );
                if let Some(e) = &self.error {
                    let _ = write!(out, " ({e})");
                }
            }
            "engine-regained" => {
                out.push_str("Docker engine connection regained: labels are up to date again")
            }
            k => out.push_str(k),
        }
        out.push('\n');
    }

    /// Why an interface went, in words.
    fn why(&self) -> String {
        let c = self.container.as_deref().unwrap_or("?");
        let n = self.networks.first().map_or("?", String::as_str);
        match self.reason {
            Some("container-removed") => format!("container {c} removed"),
            Some("container-stopped") => format!("container {c} stopped"),
            Some("network-disconnected") => format!("{c} disconnected from {n}"),
            Some("network-removed") => format!("network {n} removed"),
            Some("link-deleted") => "link deleted by hand".to_owned(),
            Some("no-longer-observed") => "no longer on an observed bridge".to_owned(),
            Some(r) => r.to_owned(),
            None => "gone".to_owned(),
        }
    }
}

impl IfaceInfo {
    /// `veth of AppDev (devops, br-…)`, as packet lines name it.
    fn describe(&self, out: &mut String) {
        crate::model::event::IfaceView {
            name: &self.name,
            ifindex: self.ifindex,
            role: self.role,
            container: self.container.as_deref(),
            network: self.network.as_deref(),
            bridge: self.bridge.as_deref(),
            peer: self.peer.as_deref(),
            vni: self.vni,
        }
        .describe(out);
    }
}

/// `12 echo requests, 12 replies, 3 ARP` (both directions together); `nothing`.
fn counted_text(rows: &[Counted], out: &mut String) {
    let label = |kind: &str| -> String {
        match kind {
            "icmp-echo-request" => "echo requests".into(),
            "icmp-echo-reply" => "replies".into(),
            "icmp6-echo-request" => "ICMPv6 echo requests".into(),
            "icmp6-echo-reply" => "ICMPv6 replies".into(),
            k => match Kind::ALL.iter().find(|x| x.name() == k).map(|x| x.family()) {
                Some("arp") => "ARP".into(),
                Some("ndp") => "NDP".into(),
                _ => k.to_owned(),
            },
        }
    };
    let mut sums: Vec<(String, u64)> = Vec::new();
    for k in Kind::ALL {
        let n: u64 = rows
            .iter()
            .filter(|r| r.kind == k.name())
            .map(|r| r.packets)
            .sum();
        if n == 0 {
            continue;
        }
        let l = label(k.name());
        match sums.iter_mut().find(|(x, _)| *x == l) {
            Some((_, m)) => *m += n,
            None => sums.push((l, n)),
        }
    }
    // Echoes first: what a person counts with ping.
    let rank = |l: &str| {
        [
            "echo requests",
            "replies",
            "ICMPv6 echo requests",
            "ICMPv6 replies",
        ]
        .iter()
        .position(|x| *x == l)
        .unwrap_or(4)
    };
    sums.sort_by_key(|(l, _)| rank(l));
    if sums.is_empty() {
        out.push_str("nothing");
    }
    for (i, (l, n)) in sums.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        // One echo request, one reply: the singular.
        let one = match l.as_str() {
            "echo requests" => Some("echo request"),
            "replies" => Some("reply"),
            "ICMPv6 echo requests" => Some("ICMPv6 echo request"),
            "ICMPv6 replies" => Some("ICMPv6 reply"),
            _ => None,
        };
        match one {
            Some(singular) if *n == 1 => {
                let _ = write!(out, "1 {singular}");
            }
            _ => {
                let _ = write!(out, "{n} {l}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_echo_is_said_in_the_singular() {
        let row = |direction, kind, packets| Counted {
            direction,
            kind,
            packets,
        };
        let mut out = String::new();
        counted_text(
            &[
                row("egress", "icmp-echo-request", 1),
                row("ingress", "icmp-echo-reply", 1),
                row("ingress", "arp-request", 1),
            ],
            &mut out,
        );
        assert_eq!(out, "1 echo request, 1 reply, 1 ARP");
        out.clear();
        counted_text(&[row("egress", "icmp6-echo-request", 2)], &mut out);
        assert_eq!(out, "2 ICMPv6 echo requests");
        out.clear();
        counted_text(&[], &mut out);
        assert_eq!(out, "nothing");
    }
}

//! From what a run observed ([`Facts`]) to what a person reads ([`Verdict`]): reachable,
//! dropped (where, by which rule, and the fix), no ARP reply, unanswered, with the path the
//! requests took. Pure: tested on recorded facts.

use std::net::IpAddr;

use serde::Serialize;

use crate::kernel::pinger::Reply;
use crate::model::event::DropRecord;
use crate::model::journey::{Hop, Journey, Outcome, Phase};

/// The destination as resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    pub ip: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

/// What a run observed.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub src: String,
    pub src_ip: Option<IpAddr>,
    pub src_networks: Vec<String>,
    pub dst: Option<Target>,
    /// Networks the destination container is on (empty for a bare address).
    pub dst_networks: Vec<String>,
    pub sent: u16,
    pub replies: Vec<Reply>,
    /// Journeys of our echo requests.
    pub journeys: Vec<Journey>,
    /// Drop reports of our echo requests or replies.
    pub drops: Vec<DropRecord>,
    /// Drop reports of them by peers (`--peer`), with the peer's name.
    pub peer_drops: Vec<(String, DropRecord)>,
    /// Across an overlay, how many echo requests each peer counted arriving inside VXLAN
    /// with the overlay's VNI while the probes were sent (`None`: its counters could not
    /// be read).
    pub peer_vxlan: Vec<(String, Option<u64>)>,
    /// An ARP request for the destination got no reply (with the network it was asked on).
    pub arp_unanswered: Option<Option<String>>,
    /// Human descriptions of the hops, by (ifindex) — `veth of AppDev`.
    pub hop_names: Vec<(u32, String)>,
    /// The bridge each observed veth hangs on (ifindex → bridge name and network).
    pub hop_bridges: Vec<(u32, String)>,
    /// The engine's command-line tool, for the commands suggested: `docker`, or `podman`
    /// when Podman answers the API (empty: `docker`).
    pub cli: &'static str,
    /// For a destination across a Swarm overlay: what this node knows of the way there.
    pub overlay: Option<super::overlay::OverlayChecks>,
}

/// The answer.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// `reachable`, `dropped`, `no-arp-reply`, `unanswered`, `no-route`, ...
    pub verdict: &'static str,
    /// `ipv4` or `ipv6`: a verdict is per family.
    pub family: &'static str,
    pub reachable: bool,
    pub src: String,
    pub dst: Option<Target>,
    pub sent: u16,
    pub answered: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<RttMs>,
    /// Observation points of a request, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop: Option<crate::model::event::DropInfo>,
    /// Where the drop happened (device and namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped_at: Option<String>,
    /// The peer host that dropped it (`--peer`); absent: this host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped_on: Option<String>,
    pub share_no_network: bool,
    /// The command that would fix it, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The verdict in one sentence, and the lines that explain it.
    pub message: String,
    pub details: Vec<String>,
    /// For a destination across a Swarm overlay: the checks of the way there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlay: Option<super::overlay::OverlayChecks>,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct RttMs {
    pub min: f64,
    pub avg: f64,
    pub max: f64,
}

fn describe(f: &Facts, h: &Hop) -> String {
    f.hop_names
        .iter()
        .find(|(i, _)| *i == h.ifindex)
        .map_or_else(|| h.iface.clone(), |(_, n)| n.clone())
}

/// The request's path: hops of the request phase, with the bridge between two veths on
/// the same bridge named even though bridged unicast never passes the bridge's own hook.
fn request_path(f: &Facts, j: &Journey) -> Vec<String> {
    let hops: Vec<&Hop> = j
        .hops
        .iter()
        .filter(|h| h.phase == Phase::Request)
        .collect();
    let bridge_of = |h: &Hop| {
        f.hop_bridges
            .iter()
            .find(|(i, _)| *i == h.ifindex)
            .map(|(_, b)| b.clone())
    };
    let mut out: Vec<String> = Vec::new();
    for (n, h) in hops.iter().enumerate() {
        if let Some(prev) = n.checked_sub(1).map(|p| hops[p]) {
            if let (Some(a), Some(b)) = (bridge_of(prev), bridge_of(h)) {
                if a == b && out.last().is_none_or(|l| *l != a) {
                    out.push(a);
                }
            }
        }
        let d = describe(f, h);
        if out.last() != Some(&d) {
            out.push(d);
        }
    }
    out
}

/// Turns what was observed into a verdict.
pub fn verdict(f: &Facts) -> Verdict {
    let dst_name = f
        .dst
        .as_ref()
        .map(|d| match &d.container {
            Some(c) => format!("{c} ({})", d.ip),
            None => d.ip.to_string(),
        })
        .unwrap_or_else(|| "?".into());
    let shared: Vec<&String> = f
        .src_networks
        .iter()
        .filter(|n| f.dst_networks.contains(n))
        .collect();
    let share_no_network = f.dst.as_ref().is_some_and(|d| d.container.is_some())
        && shared.is_empty()
        && !f.dst_networks.is_empty();
    let hint = (share_no_network)
        .then(|| {
            let net = f.src_networks.first()?;
            let c = f.dst.as_ref()?.container.as_ref()?;
            let cli = if f.cli.is_empty() { "docker" } else { f.cli };
            Some(format!("{cli} network connect {net} {c}"))
        })
        .flatten();
    let mut v = Verdict {
        verdict: "unanswered",
        family: family_of(f.dst.as_ref().map(|d| d.ip)),
        reachable: false,
        src: f.src.clone(),
        dst: f.dst.clone(),
        sent: f.sent,
        answered: f.replies.len(),
        rtt_ms: None,
        path: Vec::new(),
        drop: None,
        dropped_at: None,
        dropped_on: None,
        share_no_network,
        hint: None,
        message: String::new(),
        details: Vec::new(),
        overlay: f.overlay.clone(),
    };
    let overlay_lines = f
        .overlay
        .iter()
        .flat_map(|o| o.lines.iter().cloned())
        .chain(peer_vxlan_lines(f));
    // A remedy that works on this engine, from the rule that dropped the probe.
    let mut fixed_by_rule: Option<String> = None;
    let first_answered = f.journeys.iter().find(|j| j.result == Outcome::Answered);
    if !f.replies.is_empty() {
        let ms: Vec<f64> = f
            .replies
            .iter()
            .map(|r| r.rtt.as_secs_f64() * 1e3)
            .collect();
        let min = ms.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ms.iter().copied().fold(0.0, f64::max);
        let avg = ms.iter().sum::<f64>() / ms.len() as f64;
        v.verdict = "reachable";
        v.reachable = true;
        v.rtt_ms = Some(RttMs { min, avg, max });
        if let Some(j) = first_answered.or(f.journeys.first()) {
            v.path = request_path(f, j);
        }
        v.message = format!(
            "{} → {dst_name}: reachable, {}/{} answered, rtt min/avg/max {min:.3}/{avg:.3}/{max:.3} ms",
            f.src,
            f.replies.len(),
            f.sent
        );
        if !v.path.is_empty() {
            v.details.push(format!("path: {}", v.path.join(" → ")));
        }
        v.details.extend(overlay_lines);
        return v;
    }
    // Not answered: no neighbour (ARP) first, as the kernel's NEIGH_FAILED drop of the
    // queued requests says the same; then another drop; then the last point seen.
    let neigh_failed = f.drops.iter().any(|d| d.drop.reason.starts_with("NEIGH_"));
    let arp_network = match (&f.arp_unanswered, neigh_failed) {
        (Some(n), _) => Some(
            n.clone()
                .or_else(|| f.dst.as_ref().and_then(|d| d.network.clone())),
        ),
        (None, true) => Some(f.dst.as_ref().and_then(|d| d.network.clone())),
        (None, false) => None,
    };
    if let Some(net) = &arp_network {
        v.verdict = "no-arp-reply";
        let ip = f
            .dst
            .as_ref()
            .map_or_else(|| "?".into(), |d| d.ip.to_string());
        v.message = match net {
            Some(n) => format!(
                "{} → {dst_name}: not reachable: no ARP reply for {ip} on {n}",
                f.src
            ),
            None => format!(
                "{} → {dst_name}: not reachable: no ARP reply for {ip}",
                f.src
            ),
        };
        v.details
            .push("nobody on the network answers for that address: is it assigned and up?".into());
    } else if let Some((host, d)) = f
        .drops
        .first()
        .map(|d| (None, d))
        .or_else(|| f.peer_drops.first().map(|(h, d)| (Some(h.as_str()), d)))
    {
        v.verdict = "dropped";
        let mut at = match &d.iface.name {
            Some(n) => format!("{n} ({})", d.iface.netns),
            None => d.iface.netns.clone(),
        };
        if let Some(h) = host {
            at.push_str(&format!(" on host {h}"));
            v.dropped_on = Some(h.to_owned());
        }
        v.message = format!(
            "{} → {dst_name}: not reachable: {} dropped by the kernel ({}) at {at}",
            f.src,
            d.packet.name(),
            d.drop.reason
        );
        let mut how = format!("reason {}", d.drop.reason);
        if let Some(l) = &d.drop.location {
            how.push_str(&format!(" in {l}"));
        }
        if let Some(h) = &d.drop.hook {
            how.push_str(&format!(", netfilter hook {h}"));
        }
        v.details.push(how);
        if let Some(r) = &d.drop.rule {
            v.details.push(format!(
                "rule: {}  ({} table {} {}{})",
                r.rule,
                r.backend,
                r.family,
                r.table,
                if r.certain {
                    ""
                } else {
                    "; other rules counted drops too"
                }
            ));
            if let Some(m) = &r.docker {
                v.details.push(format!("what it is: {}", m.summary));
                for c in &m.caveats {
                    v.details.push(format!("note: {c}"));
                }
                if let Some(fix) = m.remedies.first() {
                    v.details.push(format!("to let it through: {fix}"));
                    fixed_by_rule = Some(fix.clone());
                }
            }
        } else if !d.drop.candidates.is_empty() {
            v.details
                .push(format!("rule: one of {}", d.drop.candidates.join(" | ")));
        } else if let Some(why) = &d.drop.unattributed {
            v.details.push(format!("rule: unknown ({why})"));
        }
        if let Some(m) = &d.drop.meaning {
            v.details.push(format!("what it means: {m}"));
        }
        v.dropped_at = Some(at);
        v.drop = Some(d.drop.clone());
        if let Some(j) = f.journeys.first() {
            v.path = request_path(f, j);
            if !v.path.is_empty() {
                v.details.push(format!("seen at: {}", v.path.join(" → ")));
            }
        }
    } else {
        v.message = format!(
            "{} → {dst_name}: not reachable: {} echo requests sent, none answered",
            f.src, f.sent
        );
        if let Some(j) = f.journeys.first() {
            v.path = request_path(f, j);
            if let Some(last) = j.last_seen.as_ref().or(j.hops.last()) {
                v.details
                    .push(format!("last seen at {}", describe(f, last)));
            }
        }
        // Gone to another host inside VXLAN, and nothing came back: that host knows why.
        if let Some(r) = f.overlay.as_ref().and_then(|o| o.remote) {
            let port = f
                .overlay
                .as_ref()
                .and_then(|o| o.node.clone())
                .unwrap_or_default();
            v.details.push(format!(
                "the requests left for host {r} inside VXLAN and no reply came back: that host dropped them or their replies (netlab there says where and why); it must accept VXLAN from this node ({port})"
            ));
        }
    }
    v.details.extend(overlay_lines);
    if share_no_network {
        let dst_c = f
            .dst
            .as_ref()
            .and_then(|d| d.container.clone())
            .unwrap_or_default();
        v.details.push(format!(
            "{} is on {}, {dst_c} on {}: they share no network",
            f.src,
            f.src_networks.join(", "),
            f.dst_networks.join(", ")
        ));
        // The rule's own remedy is the one that works on this engine; the plain
        // suggestion stands in when no rule was named.
        let hint = fixed_by_rule.clone().or(hint);
        if fixed_by_rule.is_none() {
            if let Some(h) = &hint {
                v.details.push(format!("to connect them: {h}"));
            }
        }
        v.hint = hint;
    }
    v
}

/// `ipv6` for an IPv6 destination, else `ipv4`.
fn family_of(ip: Option<IpAddr>) -> &'static str {
    if ip.is_some_and(|ip| ip.is_ipv6()) {
        "ipv6"
    } else {
        "ipv4"
    }
}

/// What the peers' VXLAN counters say of the probes: whether UDP 4789 from this node
/// reaches the host of the destination.
fn peer_vxlan_lines(f: &Facts) -> Vec<String> {
    let Some(vni) = f.overlay.as_ref().and_then(|o| o.vni) else {
        return Vec::new();
    };
    let sent = u64::from(f.sent);
    let got: Vec<(&str, u64)> = f
        .peer_vxlan
        .iter()
        .filter_map(|(h, n)| Some((h.as_str(), (*n)?)))
        .collect();
    let mut lines: Vec<String> = f
        .peer_vxlan
        .iter()
        .filter(|(_, n)| n.is_none())
        .map(|(h, _)| format!("host {h}: its counters could not be read"))
        .collect();
    let arrived: Vec<String> = got
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(h, n)| {
            let of = if *n >= sent {
                format!("the {sent}")
            } else {
                format!("{n} of the {sent}")
            };
            format!(
                "host {h} received {of} probes inside VXLAN (VNI {vni}): UDP 4789 from this node reaches it"
            )
        })
        .collect();
    if arrived.is_empty() && !got.is_empty() {
        let hosts: Vec<&str> = got.iter().map(|(h, _)| *h).collect();
        lines.push(format!(
            "no probe arrived inside VXLAN (VNI {vni}) at {}: UDP 4789 from this node does not reach {} (a firewall between the hosts, or the overlay sends elsewhere)",
            hosts.join(", "),
            if hosts.len() == 1 { "it" } else { "them" }
        ));
    }
    lines.extend(arrived);
    lines
}

/// The verdict of [`early`].
pub(super) fn early_verdict(
    src: &str,
    dst: Option<Target>,
    verdict: &'static str,
    message: String,
) -> Verdict {
    Verdict {
        verdict,
        family: family_of(dst.as_ref().map(|d| d.ip)),
        reachable: false,
        src: src.to_owned(),
        dst,
        sent: 0,
        answered: 0,
        rtt_ms: None,
        path: Vec::new(),
        drop: None,
        dropped_at: None,
        dropped_on: None,
        share_no_network: false,
        hint: None,
        message,
        details: Vec::new(),
        overlay: None,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::event::{DropInfo, DropPlace, Endpoint, IcmpView};
    use crate::model::journey::Finished;
    use crate::model::journey::JourneyEnd;
    use crate::model::kind::Direction;

    fn hop(iface: &str, ifindex: u32, direction: Direction, ts_ns: u64, phase: Phase) -> Hop {
        Hop {
            iface: iface.into(),
            ifindex,
            direction,
            ts_ns,
            phase,
            host: None,
        }
    }

    fn journey(result: Outcome, hops: Vec<Hop>) -> Journey {
        Journey {
            kind: "journey",
            ts_ns: 0,
            family: crate::model::journey::Family::Icmp,
            src: JourneyEnd {
                ip: "172.18.0.2".parse().expect("ip"),
                container: Some("AppDev".into()),
            },
            dst: JourneyEnd {
                ip: "172.18.0.3".parse().expect("ip"),
                container: Some("AppWeb".into()),
            },
            id: 7,
            seq: 1,
            vni: None,
            result,
            rtt_ns: None,
            last_seen: hops.last().cloned(),
            hops,
            drop: None,
        }
    }

    fn base() -> Facts {
        Facts {
            src: "AppDev".into(),
            src_ip: Some("172.18.0.2".parse().expect("ip")),
            src_networks: vec!["devops".into()],
            dst: Some(Target {
                ip: "172.18.0.3".parse().expect("ip"),
                container: Some("AppWeb".into()),
                network: Some("devops".into()),
            }),
            dst_networks: vec!["devops".into()],
            sent: 3,
            hop_names: vec![(10, "veth of AppDev".into()), (11, "veth of AppWeb".into())],
            hop_bridges: vec![(10, "br-x (devops)".into()), (11, "br-x (devops)".into())],
            ..Default::default()
        }
    }

    #[test]
    fn reachable_with_path_and_rtt() {
        let mut f = base();
        f.replies = vec![
            Reply {
                seq: 1,
                rtt: Duration::from_micros(100),
            },
            Reply {
                seq: 2,
                rtt: Duration::from_micros(300),
            },
            Reply {
                seq: 3,
                rtt: Duration::from_micros(200),
            },
        ];
        f.journeys = vec![journey(
            Outcome::Answered,
            vec![
                hop("veth1", 10, Direction::Ingress, 1, Phase::Request),
                hop("veth2", 11, Direction::Egress, 2, Phase::Request),
                hop("veth2", 11, Direction::Ingress, 3, Phase::Reply),
                hop("veth1", 10, Direction::Egress, 4, Phase::Reply),
            ],
        )];
        let v = verdict(&f);
        assert!(v.reachable);
        assert_eq!(v.verdict, "reachable");
        assert_eq!(v.answered, 3);
        assert_eq!(
            v.path,
            ["veth of AppDev", "br-x (devops)", "veth of AppWeb"]
        );
        let rtt = v.rtt_ms.expect("rtt");
        assert!((rtt.min - 0.1).abs() < 1e-9 && (rtt.max - 0.3).abs() < 1e-9);
        assert!((rtt.avg - 0.2).abs() < 1e-9);
        assert!(
            v.message.contains("reachable, 3/3 answered"),
            "{}",
            v.message
        );
        assert!(v.details[0].contains("veth of AppDev → br-x (devops) → veth of AppWeb"));
    }

    fn isolation_drop() -> DropRecord {
        DropRecord {
            ts: crate::kernel::clock::UnixNanos(0),
            ts_ns: 0,
            kind: "drop",
            packet: crate::model::kind::Kind::IcmpEchoRequest,
            len: 98,
            iface: DropPlace {
                name: Some("br-devops".into()),
                ifindex: 3,
                netns: "host".into(),
                bridge: true,
            },
            src: Endpoint {
                mac: crate::model::decode::Mac::default(),
                ip: Some("172.18.0.2".parse().expect("ip")),
                container: Some("AppDev"),
                network: Some("devops"),
                host: false,
            },
            dst: Endpoint {
                mac: crate::model::decode::Mac::default(),
                ip: Some("172.19.0.2".parse().expect("ip")),
                container: Some("AppProd"),
                network: Some("prod"),
                host: false,
            },
            icmp: Some(IcmpView {
                icmp_type: 8,
                code: 0,
                id: Some(7),
                seq: Some(1),
            }),
            arp: None,
            vxlan: None,
            drop: DropInfo {
                reason: "NETFILTER_DROP".into(),
                location: Some("nft_do_chain+0x3e8".into()),
                hook: Some("forward".into()),
                rule: Some("DOCKER-ISOLATION-STAGE-2 -o br-prod -j DROP".into()),
                candidates: Vec::new(),
                unattributed: None,
                meaning: None,
            },
        }
    }

    #[test]
    fn dropped_by_docker_isolation_with_the_connect_hint() {
        let mut f = base();
        f.dst = Some(Target {
            ip: "172.19.0.2".parse().expect("ip"),
            container: Some("AppProd".into()),
            network: Some("prod".into()),
        });
        f.dst_networks = vec!["prod".into()];
        f.drops = vec![isolation_drop()];
        let v = verdict(&f);
        assert!(!v.reachable);
        assert_eq!(v.verdict, "dropped");
        assert!(v.share_no_network);
        // A rule netlab cannot explain: the plain suggestion.
        assert_eq!(
            v.hint.as_deref(),
            Some("docker network connect devops AppProd")
        );
        // On Podman, in its own words.
        f.cli = "podman";
        assert_eq!(
            verdict(&f).hint.as_deref(),
            Some("podman network connect devops AppProd")
        );
        f.cli = "";
        let text = format!("{}\n{}", v.message, v.details.join("\n"));
        assert!(text.contains("NETFILTER_DROP"), "{text}");
        assert!(
            text.contains("DOCKER-ISOLATION-STAGE-2 -o br-prod -j DROP"),
            "{text}"
        );
        assert!(text.contains("they share no network"), "{text}");
        assert!(
            text.contains("docker network connect devops AppProd"),
            "{text}"
        );

        // Explained: its meaning is said, and its own remedy (one that works on the
        // engine running) replaces the plain suggestion.
        let mut explained = isolation_drop();
        if let Some(r) = explained.drop.rule.as_mut() {
            r.docker = Some(crate::explain::firewall::DockerMeaning {
                meaning: "isolation".into(),
                summary: "Docker's network isolation drops packets from devops to prod".into(),
                remedies: vec!["docker network connect prod AppDev".into()],
                caveats: vec!["not the raw table".into()],
            });
        }
        f.drops = vec![explained];
        let v = verdict(&f);
        let text = format!("{}\n{}", v.message, v.details.join("\n"));
        assert!(
            text.contains(
                "what it is: Docker's network isolation drops packets from devops to prod"
            ),
            "{text}"
        );
        assert!(text.contains("note: not the raw table"), "{text}");
        assert!(
            text.contains("to let it through: docker network connect prod AppDev"),
            "{text}"
        );
        assert!(!text.contains("to connect them"), "{text}");
        assert_eq!(
            v.hint.as_deref(),
            Some("docker network connect prod AppDev")
        );
        assert_eq!(v.dropped_at.as_deref(), Some("br-devops (host)"));
    }

    #[test]
    fn no_arp_reply() {
        let mut f = base();
        f.dst = Some(Target {
            ip: "172.18.0.99".parse().expect("ip"),
            container: None,
            network: None,
        });
        f.dst_networks.clear();
        f.arp_unanswered = Some(Some("devops".into()));
        let v = verdict(&f);
        assert_eq!(v.verdict, "no-arp-reply");
        assert!(
            v.message.contains("no ARP reply for 172.18.0.99 on devops"),
            "{}",
            v.message
        );
        assert!(!v.share_no_network);
    }

    #[test]
    fn a_neighbour_failure_is_no_arp_reply() {
        let mut f = base();
        f.dst = Some(Target {
            ip: "172.18.0.99".parse().expect("ip"),
            container: None,
            network: Some("devops".into()),
        });
        let mut d = isolation_drop();
        d.drop.reason = "NEIGH_FAILED".into();
        d.drop.rule = None;
        f.drops = vec![d];
        let v = verdict(&f);
        assert_eq!(v.verdict, "no-arp-reply");
        assert!(
            v.message.contains("no ARP reply for 172.18.0.99 on devops"),
            "{}",
            v.message
        );
    }

    #[test]
    fn unanswered_says_where_it_was_last_seen() {
        let mut f = base();
        f.journeys = vec![journey(
            Outcome::Unanswered,
            vec![hop("veth1", 10, Direction::Ingress, 1, Phase::Request)],
        )];
        let v = verdict(&f);
        assert_eq!(v.verdict, "unanswered");
        assert!(
            v.details.iter().any(|d| d == "last seen at veth of AppDev"),
            "{:?}",
            v.details
        );
    }

    /// Requests that left inside VXLAN for another node and got no reply: the verdict
    /// points at that node and lists what this one knows of the way.
    #[test]
    fn unanswered_across_an_overlay_points_at_the_other_host() {
        let mut f = base();
        f.journeys = vec![journey(
            Outcome::Unanswered,
            vec![hop("link0", 40, Direction::Egress, 1, Phase::Request)],
        )];
        f.overlay = Some(super::super::overlay::OverlayChecks {
            network: "ovl".into(),
            vni: Some(4097),
            mac: Some("02:42:0a:00:01:04".into()),
            remote: Some("10.231.9.2".parse().expect("ip")),
            gossip: Some(true),
            node: Some("10.231.9.1 UDP 4789 on link0".into()),
            lines: vec!["overlay ovl (VNI 4097): 172.18.0.3 is at 02:42:0a:00:01:04, on host 10.231.9.2 (forwarding entries of vxlan0)".into()],
        });
        let v = verdict(&f);
        assert_eq!(v.verdict, "unanswered");
        assert!(
            v.details.iter().any(|d| d.starts_with(
                "the requests left for host 10.231.9.2 inside VXLAN and no reply came back"
            ) && d.ends_with("(10.231.9.1 UDP 4789 on link0)")),
            "{:?}",
            v.details
        );
        assert!(
            v.details
                .last()
                .is_some_and(|d| d.contains("on host 10.231.9.2")),
            "{:?}",
            v.details
        );
        assert_eq!(v.overlay.as_ref().and_then(|o| o.gossip), Some(true));
    }

    /// Across an overlay, the probes a peer dropped (`--peer`): the verdict is that drop,
    /// on that host.
    #[test]
    fn a_drop_on_a_peer_host_is_the_verdict() {
        let mut f = base();
        f.journeys = vec![journey(
            Outcome::Unanswered,
            vec![hop("link0", 40, Direction::Egress, 1, Phase::Request)],
        )];
        f.peer_drops = vec![("node2".into(), isolation_drop())];
        let v = verdict(&f);
        assert_eq!(v.verdict, "dropped");
        assert_eq!(v.dropped_on.as_deref(), Some("node2"));
        assert!(
            v.dropped_at
                .as_deref()
                .is_some_and(|a| a.ends_with(" on host node2"))
                && v.message.ends_with(" on host node2"),
            "{v:?}"
        );
        // A drop on this host comes first.
        f.drops = vec![isolation_drop()];
        assert_eq!(verdict(&f).dropped_on, None);
    }

    /// Across an overlay, the peers' VXLAN counters say whether the probes got there.
    #[test]
    fn the_peers_vxlan_counters_say_whether_udp_4789_gets_through() {
        let mut f = base();
        f.overlay = Some(super::super::overlay::OverlayChecks {
            network: "ovl".into(),
            vni: Some(4097),
            ..Default::default()
        });
        let lines = |f: &Facts| verdict(f).details;
        f.peer_vxlan = vec![("node2".into(), Some(0))];
        assert!(
            lines(&f).iter().any(|l| l.starts_with(
                "no probe arrived inside VXLAN (VNI 4097) at node2: UDP 4789 from this node \
                 does not reach it"
            )),
            "{:?}",
            lines(&f)
        );
        f.peer_vxlan = vec![("node2".into(), Some(3)), ("node3".into(), Some(0))];
        let got = lines(&f);
        assert!(
            got.iter().any(|l| l
                == "host node2 received the 3 probes inside VXLAN (VNI 4097): UDP 4789 from \
                    this node reaches it")
                && !got
                    .iter()
                    .any(|l| l.contains("node3") || l.starts_with("no probe")),
            "{got:?}"
        );
        f.peer_vxlan = vec![("node2".into(), Some(1)), ("node3".into(), None)];
        let got = lines(&f);
        assert!(
            got.iter()
                .any(|l| l.starts_with("host node2 received 1 of the 3 probes"))
                && got
                    .iter()
                    .any(|l| l == "host node3: its counters could not be read"),
            "{got:?}"
        );
    }

    /// AppDev's ARP request for 172.20.0.9 on devops, unanswered.
    pub(in crate::cmd::diagnose) fn unanswered_arp() -> Finished {
        Finished::ArpUnanswered(crate::model::journey::ArpUnanswered {
            kind: "arp-unanswered",
            ts_ns: 5,
            who: "172.20.0.2".parse().expect("ip"),
            who_container: Some("AppDev".into()),
            asked_for: "172.20.0.9".parse().expect("ip"),
            network: Some("devops".into()),
            iface: "br-x".into(),
            requests: 3,
        })
    }

    #[test]
    fn daemon_json_round_trips() {
        let mut j = journey(
            Outcome::Dropped,
            vec![
                hop("veth1", 10, Direction::Ingress, 1, Phase::Request),
                hop("br-x", 3, Direction::Ingress, 2, Phase::Request),
            ],
        );
        j.drop = Some(crate::model::journey::JourneyDrop {
            reason: "NETFILTER_DROP".into(),
            location: Some("nft_do_chain+0x3e8".into()),
            iface: Some("br-x".into()),
            rule: Some("DOCKER-ISOLATION-STAGE-2 -o br-prod -j DROP".into()),
            hook: Some("forward".into()),
            phase: Phase::Request,
            host: None,
        });
        let clock = crate::kernel::clock::Clock::new();
        let mut out = Vec::new();
        crate::model::journey::write_json(&Finished::Journey(j.clone()), &clock, &mut out)
            .expect("json");
        let back: Finished = serde_json::from_slice(&out).expect("a journey");
        assert_eq!(back, Finished::Journey(j));
        let arp = unanswered_arp();
        let mut out = Vec::new();
        crate::model::journey::write_json(&arp, &clock, &mut out).expect("json");
        assert_eq!(
            serde_json::from_slice::<Finished>(&out).expect("an ARP report"),
            arp
        );

        let d = isolation_drop();
        let mut out = Vec::new();
        d.write_json(&mut out).expect("json");
        let back: DropRecord = serde_json::from_slice(&out).expect("a drop");
        assert_eq!(back.drop.rule, d.drop.rule);
        assert_eq!(back.drop.hook, d.drop.hook);
        assert_eq!(back.iface.name, d.iface.name);
        assert_eq!(back.src.container, Some("AppDev"));
        assert_eq!(back.icmp.and_then(|i| i.id), Some(7));
        assert_eq!(back.packet, crate::model::kind::Kind::IcmpEchoRequest);
        assert!(serde_json::from_str::<DropRecord>(r#"{"kind":"drop"}"#).is_err());
        // Another kind is not read as a drop, nor a drop as a journey.
        let mut other = out.clone();
        let at = other
            .windows(13)
            .position(|w| w == br#""kind":"drop""#)
            .expect("the tag");
        other.splice(at..at + 13, br#""kind":"jump""#.iter().copied());
        assert!(serde_json::from_slice::<DropRecord>(&other).is_err());
        assert!(serde_json::from_slice::<Finished>(&out).is_err());
    }

    #[test]
    fn a_drop_explains_and_nothing_is_reachable_without_replies() {
        let mut f = base();
        f.drops = vec![isolation_drop()];
        assert_eq!(verdict(&f).verdict, "dropped");
        let empty = Facts::default();
        let v = verdict(&empty);
        assert!(!v.reachable);
        assert_eq!(v.verdict, "unanswered");
    }
}

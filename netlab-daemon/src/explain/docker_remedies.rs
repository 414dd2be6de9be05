//! A sentence and remedies for each [`Meaning`], that hold on the engine at hand.
//!
//! Remedies differ by engine version and backend (all checked in moby's sources at the tags
//! named in [`crate::explain::docker_backend::EngineVersion`]'s feature methods):
//! - a DOCKER-USER rule runs in filter FORWARD: it can accept what Docker's filter chains
//!   would drop (isolation, unpublished ports, ICC, internal networks, the FORWARD policy),
//!   never what the raw table dropped (the direct-access filter of 28.2+), and it does not
//!   exist with the nftables backend (an accept in another nftables table does not undo a
//!   drop in `docker-bridges`; 29's `bridge-accept-fwmark` is the way in);
//! - `allow-direct-routing` (28.2+) and `trusted_host_interfaces` remove or bypass the raw
//!   rule only: ICMP to another network is then still dropped (STAGE-2 on 28.x, the DOCKER
//!   chain / "UNPUBLISHED PORT DROP" on 29), so they are not remedies for a ping;
//! - gateway mode `routed` accepts ICMP from other networks from 28.0 on; `nat-unprotected`
//!   does so on 29 only (on 28.x STAGE-2 still drops packets from other networks);
//! - `docker network connect` always works: the sender then shares the network.
//!
//! Nothing here says DOCKER-ISOLATION-STAGE-2 unless the meaning is [`Meaning::Isolation`],
//! or as what would drop the packet next on 28.x.

use serde::Serialize;

use crate::explain::docker_backend::{Backend, Engine};
use crate::explain::docker_rules::{Direction, Meaning, NetworkRef, Peer};

/// What kind of change a [`Remedy`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RemedyKind {
    /// `docker network connect <network> <container>`.
    ConnectNetwork,
    /// Publish a port (`-p`) and use it through a host address.
    PublishPort,
    /// Re-create the network with `gateway_mode_ipv4=routed` (or `_ipv6`).
    GatewayModeRouted,
    /// Re-create the network with `gateway_mode_ipv4=nat-unprotected`.
    GatewayModeNatUnprotected,
    /// `"allow-direct-routing": true` in daemon.json.
    AllowDirectRouting,
    /// `com.docker.network.bridge.trusted_host_interfaces` on the network.
    TrustedHostInterfaces,
    /// An ACCEPT rule in DOCKER-USER (iptables backends).
    DockerUserRule,
    /// `"bridge-accept-fwmark"` in daemon.json plus a mark set in your own nftables chain.
    AcceptFwMark,
    /// `"ip-forward-no-drop": true`, or IP forwarding enabled before Docker starts.
    ForwardPolicy,
    /// Re-create the network with other options (`--internal`, `enable_icc`).
    RecreateNetwork,
    /// Remove or narrow the administrator's own rule.
    EditUserRule,
}

/// One way to let the packet through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Remedy {
    /// What kind of change it is.
    pub kind: RemedyKind,
    /// The command or configuration, e.g. `docker network connect prod AppDev`.
    pub action: String,
    /// Whether an ICMP echo like the dropped one would pass afterwards.
    pub fixes_ping: bool,
    /// What else it does or what it does not fix.
    pub note: String,
}

/// The explanation of one dropping rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// One line: who dropped what and why.
    pub summary: String,
    /// What would let the packet through on this engine, most direct first.
    pub remedies: Vec<Remedy>,
    /// What does not help, and why (e.g. a DOCKER-USER rule against a raw-table drop).
    pub caveats: Vec<String>,
}

/// Explains `meaning` on `engine`: [`summary`], [`remedies`] and [`caveats`]. Podman's
/// rules are explained in Podman's terms, whatever the engine.
pub fn explain(meaning: &Meaning, engine: &Engine) -> Explanation {
    if let Some(e) = crate::explain::podman_remedies::explain(meaning) {
        return e;
    }
    Explanation {
        summary: summary(meaning, engine),
        remedies: remedies(meaning, engine),
        caveats: caveats(meaning, engine),
    }
}

/// `" (sent by AppDev (172.18.0.2) on devops (br-x))"`, or empty.
fn sender(from: Option<&Peer>) -> String {
    match from {
        Some(p) => match &p.network {
            Some(n) => format!(", sent by {p} on network {n}"),
            None => format!(", sent by {p}"),
        },
        None => String::new(),
    }
}

/// Whether the sender is on another Docker network than `network`.
fn from_other_network(from: Option<&Peer>, network: &NetworkRef) -> bool {
    from.and_then(|p| p.network.as_ref())
        .is_some_and(|n| n.bridge != network.bridge)
}

/// One line saying which rule dropped the packet and why, in the engine's own terms.
pub fn summary(meaning: &Meaning, engine: &Engine) -> String {
    let nft = engine.backend == Backend::Nftables;
    match meaning {
        Meaning::DirectAccess {
            container,
            network,
            port,
            from,
        } => {
            let rule = if nft {
                "nftables raw-PREROUTING, rule \"DROP DIRECT ACCESS\""
            } else {
                "raw PREROUTING"
            };
            let what = match port {
                Some(p) => format!("packets for port {p} of {container}"),
                None => format!("packets for {container}"),
            };
            format!(
                "Docker's direct-access filter ({rule}) drops {what} arriving from outside \
                 network {network}{}",
                sender(from.as_ref())
            )
        }
        Meaning::Isolation {
            from_network,
            to_network,
            from,
            ..
        } => {
            let src = match from_network {
                Some(n) => format!("network {n}"),
                None => "another network".to_string(),
            };
            format!(
                "Docker's network isolation (DOCKER-ISOLATION-STAGE-2) drops packets from {src} \
                 to network {to_network}{}",
                sender(from.as_ref())
            )
        }
        Meaning::UnpublishedPort { network, from, .. } => {
            let rule = if nft {
                format!(
                    "nftables filter-forward-in__{}, rule \"UNPUBLISHED PORT DROP\"",
                    network.bridge
                )
            } else {
                format!("DOCKER ! -i {0} -o {0} -j DROP", network.bridge)
            };
            let mut s = format!(
                "Docker drops packets entering network {network} from outside it that are not \
                 for a published port ({rule}){}",
                sender(from.as_ref())
            );
            if !engine.version.has_isolation_chains() && from_other_network(from.as_ref(), network)
            {
                s.push_str(
                    "; Docker 29 keeps networks apart with this rule and the direct-access \
                     filter (it has no DOCKER-ISOLATION chains)",
                );
            }
            s
        }
        Meaning::InternalNetwork {
            network, direction, ..
        } => {
            let which = match direction {
                Direction::Ingress => "entering it from outside its subnet",
                Direction::Egress => "leaving it for outside its subnet",
            };
            let chain = if nft {
                match direction {
                    Direction::Ingress => "\"INTERNAL NETWORK INGRESS\"",
                    Direction::Egress => "\"INTERNAL NETWORK EGRESS\"",
                }
            } else if engine.version.has_docker_internal_chain() {
                "DOCKER-INTERNAL"
            } else {
                "DOCKER-ISOLATION-STAGE-1"
            };
            format!(
                "Network {network} is internal (--internal): Docker drops packets {which} ({chain})"
            )
        }
        Meaning::IccDisabled { network } => format!(
            "Inter-container communication is disabled on network {network} \
             (com.docker.network.bridge.enable_icc=false): Docker drops packets between its \
             containers"
        ),
        Meaning::RemoteLoopback { address, port } => format!(
            "Docker drops packets for {} published on loopback address {address} that do not \
             come from the host itself (lo)",
            port.as_deref().unwrap_or("a port")
        ),
        Meaning::ForwardPolicyDrop { chain } => format!(
            "The {chain} chain's policy is DROP (Docker sets it when it enabled IP forwarding \
             itself) and no rule accepted the packet"
        ),
        Meaning::PodmanIsolation { .. } => crate::explain::podman_remedies::explain(meaning)
            .map(|e| e.summary)
            .unwrap_or_default(),
        Meaning::UserRule { table, chain, rule } if chain == "DOCKER-USER" => format!(
            "Your own rule in DOCKER-USER (the chain Docker leaves to you, run before its own \
             rules) drops it: table {table}: {rule}"
        ),
        Meaning::UserRule { table, chain, rule } => {
            format!("A rule that is not Docker's drops it: table {table}, chain {chain}: {rule}")
        }
        Meaning::Unknown { table, chain, rule } if chain.starts_with("NETAVARK") => format!(
            "A rule of Podman's (netavark) netlab does not recognise drops it: table {table}, \
             chain {chain}: {rule}"
        ),
        Meaning::Unknown { table, chain, rule } => format!(
            "A Docker rule netlab does not recognise drops it: table {table}, chain {chain}: \
             {rule}"
        ),
    }
}

fn remedy(kind: RemedyKind, action: String, fixes_ping: bool, note: &str) -> Remedy {
    Remedy {
        kind,
        action,
        fixes_ping,
        note: note.to_string(),
    }
}

/// `docker network connect` for a sender that is (or may be) a container.
fn connect(network: &NetworkRef, from: Option<&Peer>) -> Option<Remedy> {
    let who = match from {
        Some(p) if p.container.is_none() && p.network.is_none() => return None,
        Some(p) => p
            .container
            .clone()
            .unwrap_or_else(|| "<source container>".to_string()),
        None => "<source container>".to_string(),
    };
    Some(remedy(
        RemedyKind::ConnectNetwork,
        format!("docker network connect {} {who}", network.cli_name()),
        true,
        "the sender gets an interface on that network and reaches the destination over the \
         bridge, at its address on that network, without crossing Docker's filters",
    ))
}

/// `iptables` or `ip6tables`, after the sender's or destination's family.
fn ipt(peers: [Option<&Peer>; 2]) -> &'static str {
    if peers.into_iter().flatten().any(|p| p.address.is_ipv6()) {
        "ip6tables"
    } else {
        "iptables"
    }
}

fn gateway_opt(peers: [Option<&Peer>; 2]) -> &'static str {
    if peers.into_iter().flatten().any(|p| p.address.is_ipv6()) {
        "com.docker.network.bridge.gateway_mode_ipv6"
    } else {
        "com.docker.network.bridge.gateway_mode_ipv4"
    }
}

fn routed(network: &NetworkRef, engine: &Engine, peers: [Option<&Peer>; 2]) -> Option<Remedy> {
    let v = engine.version;
    if !v.has_gateway_modes() {
        return None;
    }
    let fixes = v.routed_accepts_icmp_from_other_networks();
    let note = if fixes {
        "re-create the network (the gateway mode is set at creation); its containers are then \
         routed, not NATed: Docker accepts ICMP to them and exempts the network from the \
         direct-access filter; other ports still need -p"
    } else {
        "before 28.0 a routed network is still isolated from other bridge networks \
         (DOCKER-ISOLATION-STAGE-2)"
    };
    Some(remedy(
        RemedyKind::GatewayModeRouted,
        format!(
            "docker network create -o {}=routed ... {}",
            gateway_opt(peers),
            network.cli_name()
        ),
        fixes,
        note,
    ))
}

fn unprotected(
    network: &NetworkRef,
    engine: &Engine,
    from: Option<&Peer>,
    peers: [Option<&Peer>; 2],
) -> Option<Remedy> {
    let v = engine.version;
    if !v.has_nat_unprotected() {
        return None;
    }
    let other = from_other_network(from, network);
    let fixes = v.unprotected_accepts_other_networks() || !other;
    let note = if fixes {
        "re-create the network; every port of its containers becomes reachable from anywhere \
         that can route to them"
    } else {
        "on 28.x packets from other bridge networks are still dropped by \
         DOCKER-ISOLATION-STAGE-2; it only opens the containers to other hosts"
    };
    Some(remedy(
        RemedyKind::GatewayModeNatUnprotected,
        format!(
            "docker network create -o {}=nat-unprotected ... {}",
            gateway_opt(peers),
            network.cli_name()
        ),
        fixes,
        note,
    ))
}

fn publish(target: &str) -> Remedy {
    remedy(
        RemedyKind::PublishPort,
        format!("docker run -p <host port>:<container port> ... ({target})"),
        false,
        "TCP/UDP only: reach the container at a host address and the published port; ICMP \
         cannot be published",
    )
}

/// Remedies that work on `engine`, most direct first.
pub fn remedies(meaning: &Meaning, engine: &Engine) -> Vec<Remedy> {
    let v = engine.version;
    let iptables = engine.backend.is_iptables();
    let mut out = Vec::new();
    if let Some(e) = crate::explain::podman_remedies::explain(meaning) {
        return e.remedies;
    }
    match meaning {
        Meaning::DirectAccess {
            container,
            network,
            port,
            from,
        } => {
            let peers = [from.as_ref(), Some(container)];
            out.extend(connect(network, from.as_ref()));
            if port.is_some() {
                out.push(publish(&format!(
                    "already published: use the host port instead of {}",
                    container.address
                )));
            }
            out.extend(routed(network, engine, peers));
            out.extend(unprotected(network, engine, from.as_ref(), peers));
            if v.has_allow_direct_routing() {
                let next = if v.has_isolation_chains() {
                    "DOCKER-ISOLATION-STAGE-2 (from other networks) or the DOCKER chain"
                } else if engine.backend == Backend::Nftables {
                    "\"UNPUBLISHED PORT DROP\""
                } else {
                    "the DOCKER chain's `! -i br -o br -j DROP`"
                };
                out.push(remedy(
                    RemedyKind::AllowDirectRouting,
                    "\"allow-direct-routing\": true in /etc/docker/daemon.json, then restart \
                     dockerd"
                        .to_string(),
                    false,
                    &format!(
                        "removes the direct-access rules of every network; ICMP and unpublished \
                         ports are then dropped by {next}: it only opens published ports on \
                         container addresses"
                    ),
                ));
            }
            if v.has_trusted_host_interfaces() && !from_other_network(from.as_ref(), network) {
                out.push(remedy(
                    RemedyKind::TrustedHostInterfaces,
                    format!(
                        "docker network create -o \
                         com.docker.network.bridge.trusted_host_interfaces=<host interface> ... {}",
                        network.cli_name()
                    ),
                    false,
                    "packets arriving on that host interface skip the direct-access filter; \
                     ICMP and unpublished ports are still dropped further on",
                ));
            }
            if port.is_none() {
                out.push(publish(&container.to_string()));
            }
        }
        Meaning::Isolation {
            from_network,
            to_network,
            from,
            to,
        } => {
            let peers = [from.as_ref(), to.as_ref()];
            out.extend(connect(to_network, from.as_ref()));
            if iptables {
                let src = from_network
                    .as_ref()
                    .map_or("<source bridge>".to_string(), |n| n.bridge.clone());
                let dst = &to_network.bridge;
                let cmd = ipt(peers);
                out.push(remedy(
                    RemedyKind::DockerUserRule,
                    format!(
                        "{cmd} -I DOCKER-USER -i {src} -o {dst} -j ACCEPT; {cmd} -I DOCKER-USER \
                         -i {dst} -o {src} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
                    ),
                    true,
                    "DOCKER-USER runs before Docker's own chains in filter FORWARD; Docker keeps \
                     the rule across restarts but you must persist it yourself",
                ));
            }
            out.extend(routed(to_network, engine, peers));
            out.push(publish("on the destination container"));
        }
        Meaning::UnpublishedPort { network, from, to } => {
            let peers = [from.as_ref(), to.as_ref()];
            out.extend(connect(network, from.as_ref()));
            out.extend(routed(network, engine, peers));
            out.extend(unprotected(network, engine, from.as_ref(), peers));
            if iptables {
                let dst = to
                    .as_ref()
                    .map(|p| format!(" -d {}", p.address))
                    .unwrap_or_default();
                let proto = if peers.into_iter().flatten().any(|p| p.address.is_ipv6()) {
                    "ipv6-icmp"
                } else {
                    "icmp"
                };
                out.push(remedy(
                    RemedyKind::DockerUserRule,
                    format!(
                        "{} -I DOCKER-USER -o {}{dst} -p {proto} -j ACCEPT",
                        ipt(peers),
                        network.bridge
                    ),
                    true,
                    "DOCKER-USER runs before Docker's own chains in filter FORWARD (it cannot \
                     undo the raw-table direct-access filter, which did not drop this packet)",
                ));
            } else if v.has_accept_fwmark() {
                out.push(fwmark());
            }
            out.push(publish("for TCP/UDP services"));
        }
        Meaning::InternalNetwork {
            network,
            direction,
            from,
            ..
        } => {
            match direction {
                Direction::Ingress => out.extend(connect(network, from.as_ref())),
                Direction::Egress => {
                    let who = from
                        .as_ref()
                        .and_then(|p| p.container.clone())
                        .unwrap_or_else(|| "<container>".to_string());
                    out.push(remedy(
                        RemedyKind::ConnectNetwork,
                        format!("docker network connect <a non-internal network> {who}"),
                        true,
                        "the container keeps its internal network and gets a way out",
                    ));
                }
            }
            out.push(remedy(
                RemedyKind::RecreateNetwork,
                format!(
                    "docker network rm {0}; docker network create ... {0} (without --internal)",
                    network.cli_name()
                ),
                true,
                "gives up the isolation the network was created for",
            ));
            if iptables {
                out.push(remedy(
                    RemedyKind::DockerUserRule,
                    format!(
                        "iptables -I DOCKER-USER {} {} -j ACCEPT (narrowed to the addresses \
                         concerned)",
                        if *direction == Direction::Egress {
                            "-i"
                        } else {
                            "-o"
                        },
                        network.bridge
                    ),
                    true,
                    "DOCKER-USER runs before Docker's internal-network rules",
                ));
            }
        }
        Meaning::IccDisabled { network } => {
            out.push(remedy(
                RemedyKind::RecreateNetwork,
                format!(
                    "docker network rm {0}; docker network create -o \
                     com.docker.network.bridge.enable_icc=true ... {0}",
                    network.cli_name()
                ),
                true,
                "ICC is a creation option (true by default)",
            ));
            if iptables {
                out.push(remedy(
                    RemedyKind::DockerUserRule,
                    format!(
                        "iptables -I DOCKER-USER -i {0} -o {0} -j ACCEPT (narrowed to the \
                         containers concerned)",
                        network.bridge
                    ),
                    true,
                    "DOCKER-USER runs before Docker's ICC rule",
                ));
            } else if v.has_accept_fwmark() {
                out.push(fwmark());
            }
        }
        Meaning::RemoteLoopback { address, port } => {
            out.push(remedy(
                RemedyKind::PublishPort,
                format!(
                    "publish {} on a non-loopback host address (-p <host ip>:<port>:<port>) \
                     instead of {address}",
                    port.as_deref().unwrap_or("the port")
                ),
                false,
                "a port published on a loopback address is meant for the host only",
            ));
        }
        Meaning::ForwardPolicyDrop { .. } => {
            if iptables {
                out.push(remedy(
                    RemedyKind::DockerUserRule,
                    "iptables -I DOCKER-USER -i <in interface> -o <out interface> -j ACCEPT"
                        .to_string(),
                    true,
                    "DOCKER-USER runs in FORWARD before the policy applies",
                ));
            }
            if v.has_ip_forward_no_drop() {
                out.push(remedy(
                    RemedyKind::ForwardPolicy,
                    "\"ip-forward-no-drop\": true in /etc/docker/daemon.json, restart dockerd, \
                     then set the policy back (iptables -P FORWARD ACCEPT)"
                        .to_string(),
                    true,
                    "Docker then leaves the FORWARD policy alone; mind what else the host routes",
                ));
            }
            out.push(remedy(
                RemedyKind::ForwardPolicy,
                "enable forwarding before Docker starts (net.ipv4.ip_forward=1 in \
                 /etc/sysctl.d/)"
                    .to_string(),
                true,
                "Docker sets the DROP policy only when it had to enable forwarding itself",
            ));
        }
        Meaning::UserRule { table, chain, rule } => {
            let action = if table.split_whitespace().count() > 1 || !iptables {
                format!(
                    "nft -a list chain {table} {chain}, then nft delete rule {table} {chain} \
                     handle <handle> (or narrow it)"
                )
            } else {
                let spec = rule
                    .strip_prefix(chain.as_str())
                    .map_or(rule.as_str(), str::trim_start);
                format!("iptables -t {table} -D {chain} {spec} (or narrow it)")
            };
            out.push(remedy(
                RemedyKind::EditUserRule,
                action,
                true,
                "this rule is the host's own, not Docker's",
            ));
        }
        // Answered above, by podman_remedies.
        Meaning::PodmanIsolation { .. } | Meaning::Unknown { .. } => {}
    }
    out
}

fn fwmark() -> Remedy {
    remedy(
        RemedyKind::AcceptFwMark,
        "\"bridge-accept-fwmark\": \"0x1\" in /etc/docker/daemon.json, and `meta mark set 0x1` \
         for the flow in a forward-hook chain of your own table with a priority below 0"
            .to_string(),
        true,
        "Docker 29 accepts marked packets before its ICC and unpublished-port drops (not \
         before the direct-access filter)",
    )
}

/// What does not help on `engine`, and why.
pub fn caveats(meaning: &Meaning, engine: &Engine) -> Vec<String> {
    if let Some(e) = crate::explain::podman_remedies::explain(meaning) {
        return e.caveats;
    }
    let mut out = Vec::new();
    match meaning {
        Meaning::DirectAccess { .. } => {
            out.push(if engine.backend.is_iptables() {
                "A DOCKER-USER rule cannot help: the raw table drops the packet in PREROUTING, \
                 before filter FORWARD (where DOCKER-USER runs) sees it."
                    .to_string()
            } else {
                "An accept in your own nftables table cannot help: Docker's drop in \
                 raw-PREROUTING applies whatever other tables decide (and the nftables backend \
                 has no DOCKER-USER chain)."
                    .to_string()
            });
        }
        Meaning::Isolation { .. } | Meaning::UnpublishedPort { .. }
            if engine.backend == Backend::Nftables =>
        {
            out.push(
                "The nftables backend has no DOCKER-USER chain; an accept in another table does \
                 not undo Docker's drop."
                    .to_string(),
            );
        }
        Meaning::UserRule { .. } => out.push(
            "Docker's own rules did not drop this packet; changing Docker's configuration will \
             not help."
                .to_string(),
        ),
        Meaning::Unknown { .. } => out.push(format!(
            "netlab does not know this rule of Docker {}; see `docker network inspect` and the \
             engine's release notes.",
            engine.version
        )),
        _ => {}
    }
    out
}

#[cfg(test)]
mod docker_rules_tests;

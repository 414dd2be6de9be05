//! What a Docker firewall rule means, for every engine version netlab meets.
//!
//! [`crate::explain::netfilter`] and [`crate::explain::nftables`] name the rule whose counter rose when
//! netfilter dropped a packet; this module says what that rule is for in Docker's terms
//! ([`classify`] → [`Meaning`]), with container and network names resolved from what
//! netlab knows of the host ([`DockerFacts`]). [`crate::explain::docker_remedies`] turns a meaning
//! into a sentence and remedies that work on the engine at hand.
//!
//! The shapes, as iptables-save prints them (checked against moby's generated
//! iptablesdoc/nftablesdoc pages and golden files, see tests/fixtures/firewall/README.md):
//!
//! | meaning | 20.10 – 26.1 | 28.0 – 28.1 | 28.2 – 28.5 | 29 iptables | 29 nftables (comment) |
//! |---|---|---|---|---|---|
//! | direct access | – | raw `PREROUTING -d ip/32 ! -i br -p tcp -m tcp --dport p -j DROP` (published ports only) | raw `PREROUTING -d ip/32 ! -i br -j DROP` | same | raw-PREROUTING "DROP DIRECT ACCESS" |
//! | isolation | `DOCKER-ISOLATION-STAGE-2 -o br -j DROP` | same | same | – | – |
//! | unpublished port | – | `DOCKER ! -i br -o br -j DROP` | same | same | filter-forward-in__br "UNPUBLISHED PORT DROP" |
//! | internal network | `DOCKER-ISOLATION-STAGE-1 ! -d net -i br -j DROP`, `! -s net -o br` | same | same | in DOCKER-INTERNAL | "INTERNAL NETWORK INGRESS/EGRESS" |
//! | ICC disabled | `FORWARD -i br -o br -j DROP` | in DOCKER-FORWARD | same | same | "ICC" with `drop` |
//! | remote loopback | – | raw `PREROUTING -d 127.0.0.1/32 ! -i lo -p tcp --dport p -j DROP` | same | same | "DROP REMOTE LOOPBACK" |
//!
//! A ping from one user network to another dies in STAGE-2 up to 28.1, in the raw table
//! from 28.2 on (STAGE-2 is never reached), and on 29 with the raw rules off
//! (`allow-direct-routing`) in `DOCKER ! -i br -o br -j DROP`: Docker 29 keeps networks
//! apart with the direct-access and unpublished-port rules only.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use crate::docker::{DockerSnapshot, Subnet};

mod parse;

use parse::{host_addr, nft_match, nft_tokens, parse_ipt};

/// A container attached to a network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContainerFacts {
    /// Its name, without the leading `/`.
    pub name: String,
    /// Its addresses on the network.
    pub addresses: Vec<IpAddr>,
}

/// A Docker bridge network as far as its firewall rules are concerned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NetworkFacts {
    /// The network's name, e.g. `devops`.
    pub name: String,
    /// Its bridge device, e.g. `br-8be916360cbc` or `docker0`.
    pub bridge: String,
    /// Its subnets.
    pub subnets: Vec<Subnet>,
    /// Created with `--internal`.
    pub internal: bool,
    /// Inter-container communication (`com.docker.network.bridge.enable_icc`, default true).
    pub icc: bool,
    /// The containers attached to it.
    pub containers: Vec<ContainerFacts>,
}

/// What netlab knows of the host's Docker networks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DockerFacts {
    /// The bridge networks.
    pub networks: Vec<NetworkFacts>,
}

impl DockerFacts {
    /// The networks and containers of a [`DockerSnapshot`]. The snapshot does not carry
    /// `--internal` nor the ICC option: they are taken as false and true, callers that
    /// know better set them afterwards.
    pub fn from_snapshot(snapshot: &DockerSnapshot) -> DockerFacts {
        let networks = snapshot
            .networks
            .iter()
            .map(|n| NetworkFacts {
                name: n.name.clone(),
                bridge: n.bridge.clone(),
                subnets: n.subnets.clone(),
                internal: n.internal,
                icc: n.icc,
                containers: snapshot
                    .containers
                    .iter()
                    .flat_map(|c| {
                        c.endpoints
                            .iter()
                            .filter(|e| e.network_id == n.id || e.network == n.name)
                            .map(|e| ContainerFacts {
                                name: c.name.clone(),
                                addresses: e.ips.clone(),
                            })
                    })
                    .collect(),
            })
            .collect();
        DockerFacts { networks }
    }

    /// The same, from a topology: Docker's networks, and each container's addresses on
    /// them as found inside its namespace (a hand-made leg's included).
    pub fn from_topology(topo: &crate::docker::topology::Topology) -> DockerFacts {
        let networks = topo
            .networks
            .iter()
            .map(|n| NetworkFacts {
                name: n.info.name.clone(),
                bridge: n.info.bridge.clone(),
                subnets: n.info.subnets.clone(),
                internal: n.info.internal,
                icc: n.info.icc,
                containers: topo
                    .containers
                    .iter()
                    .filter_map(|c| {
                        let addresses: Vec<IpAddr> = c
                            .interfaces
                            .iter()
                            .filter(|i| i.network.as_deref() == Some(n.info.name.as_str()))
                            .flat_map(|i| &i.addrs)
                            .filter_map(|a| a.split('/').next()?.parse().ok())
                            .collect();
                        (!addresses.is_empty()).then(|| ContainerFacts {
                            name: c.name.clone(),
                            addresses,
                        })
                    })
                    .collect(),
            })
            .collect();
        DockerFacts { networks }
    }

    /// The network whose bridge is `bridge`.
    pub fn network_by_bridge(&self, bridge: &str) -> Option<&NetworkFacts> {
        self.networks.iter().find(|n| n.bridge == bridge)
    }

    /// A reference to the network of `bridge`, named if known.
    pub fn network_ref(&self, bridge: &str) -> NetworkRef {
        NetworkRef {
            bridge: bridge.to_string(),
            name: self.network_by_bridge(bridge).map(|n| n.name.clone()),
        }
    }

    /// Who `address` is: the container holding it and its network, or the network whose
    /// subnet contains it (the gateway, or a container netlab does not know).
    pub fn peer(&self, address: IpAddr) -> Peer {
        for n in &self.networks {
            if let Some(c) = n.containers.iter().find(|c| c.addresses.contains(&address)) {
                return Peer {
                    address,
                    container: Some(c.name.clone()),
                    network: Some(self.network_ref(&n.bridge)),
                };
            }
        }
        let network = self
            .networks
            .iter()
            .find(|n| n.subnets.iter().any(|s| s.contains(address)))
            .map(|n| self.network_ref(&n.bridge));
        Peer {
            address,
            container: None,
            network,
        }
    }
}

/// A Docker network as a rule names it: by bridge, with the network's name if known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NetworkRef {
    /// The bridge device.
    pub bridge: String,
    /// The network's name, if netlab knows the bridge.
    pub name: Option<String>,
}

impl NetworkRef {
    /// What to pass to `docker network ...`: the name, or a placeholder naming the bridge.
    pub fn cli_name(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => format!("<network of {}>", self.bridge),
        }
    }
}

impl fmt::Display for NetworkRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} ({})", self.bridge),
            None => write!(f, "on bridge {}", self.bridge),
        }
    }
}

/// One end of a packet: its address, and the container and network it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Peer {
    /// The address.
    pub address: IpAddr,
    /// The container holding the address, if any is known.
    pub container: Option<String>,
    /// The Docker network whose subnet holds the address, if any.
    pub network: Option<NetworkRef>,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.container {
            Some(c) => write!(f, "{c} ({})", self.address),
            None => write!(f, "{}", self.address),
        }
    }
}

/// What is known of the dropped packet (both optional).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketHint {
    /// The packet's source address.
    pub src: Option<IpAddr>,
    /// The packet's destination address.
    pub dst: Option<IpAddr>,
}

/// How a rule was printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleSyntax {
    /// As `iptables-save` prints it.
    Iptables,
    /// As `nft list` prints it.
    Nftables,
}

/// A dropping rule to classify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleInput<'a> {
    /// How `text` is written.
    pub syntax: RuleSyntax,
    /// iptables: `raw`, `filter`, ...; nftables: `docker-bridges` (a leading family, as in
    /// `ip docker-bridges`, is allowed).
    pub table: &'a str,
    /// The chain, e.g. `DOCKER-ISOLATION-STAGE-2` or `raw-PREROUTING`.
    pub chain: &'a str,
    /// iptables: the iptables-save line without counters and `-A`, with or without the
    /// chain name in front (`DOCKER ! -i br-x -o br-x -j DROP`), or `policy FORWARD DROP`
    /// for a chain policy. nftables: the rule's expressions as `nft` prints them, without
    /// the comment (`ip daddr 10.0.0.2 iifname != "br-x" counter drop`), or `policy drop`.
    pub text: &'a str,
    /// nftables: the rule's comment, e.g. `DROP DIRECT ACCESS`.
    pub comment: Option<&'a str>,
}

impl<'a> RuleInput<'a> {
    /// An iptables rule (`spec` as in [`crate::explain::netfilter::Culprit::rule`]).
    pub fn iptables(table: &'a str, chain: &'a str, spec: &'a str) -> RuleInput<'a> {
        RuleInput {
            syntax: RuleSyntax::Iptables,
            table,
            chain,
            text: spec,
            comment: None,
        }
    }

    /// An nftables rule.
    pub fn nftables(
        table: &'a str,
        chain: &'a str,
        comment: Option<&'a str>,
        expr: &'a str,
    ) -> RuleInput<'a> {
        RuleInput {
            syntax: RuleSyntax::Nftables,
            table,
            chain,
            text: expr,
            comment,
        }
    }
}

/// Which way an internal network's rule stops packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Packets entering the network from outside its subnet.
    Ingress,
    /// Packets leaving the network for outside its subnet.
    Egress,
}

/// What a dropping rule is for, in Docker's terms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Meaning {
    /// Docker's direct-access filter in the raw table: packets for a container's address
    /// that do not arrive over its own bridge (28.2+: every packet; 28.0–28.1: packets
    /// for a published port, `port` set).
    DirectAccess {
        /// The container the packet was addressed to.
        container: Peer,
        /// Its network.
        network: NetworkRef,
        /// `tcp/80` on 28.0–28.1's per-port rules.
        port: Option<String>,
        /// The packet's sender, if known.
        from: Option<Peer>,
    },
    /// DOCKER-ISOLATION-STAGE-2 (engines before 29): packets between two networks.
    Isolation {
        /// The sender's network, if known (STAGE-2's rule only names the destination).
        from_network: Option<NetworkRef>,
        /// The destination network.
        to_network: NetworkRef,
        /// The sender, if known.
        from: Option<Peer>,
        /// The destination, if known.
        to: Option<Peer>,
    },
    /// `DOCKER ! -i br -o br -j DROP` / "UNPUBLISHED PORT DROP": packets entering a
    /// network from outside it, not for a published port (28+). On 29 this is also how
    /// networks are kept apart.
    UnpublishedPort {
        /// The destination network.
        network: NetworkRef,
        /// The sender, if known.
        from: Option<Peer>,
        /// The destination, if known.
        to: Option<Peer>,
    },
    /// An `--internal` network's rules: nothing enters or leaves its subnet.
    InternalNetwork {
        /// The internal network.
        network: NetworkRef,
        /// Entering or leaving.
        direction: Direction,
        /// The sender, if known.
        from: Option<Peer>,
        /// The destination, if known.
        to: Option<Peer>,
    },
    /// `com.docker.network.bridge.enable_icc=false`: containers of the network may not
    /// talk to each other.
    IccDisabled {
        /// The network.
        network: NetworkRef,
    },
    /// A port published on a loopback address, reached from elsewhere than `lo`.
    RemoteLoopback {
        /// The loopback address, e.g. `127.0.0.1`.
        address: String,
        /// `tcp/8080`, if the rule names it.
        port: Option<String>,
    },
    /// The FORWARD policy DROP Docker sets when it enabled IP forwarding itself.
    ForwardPolicyDrop {
        /// The chain, `FORWARD` or `filter-FORWARD`.
        chain: String,
    },
    /// Podman's network isolation, in netavark's chains (`NETAVARK_ISOLATION_2`/`_3` with
    /// iptables, `NETAVARK-ISOLATION-2`/`-3` in table `inet netavark` with nftables): a
    /// network created with `--opt isolate=true` may not reach another isolated network,
    /// one with `isolate=strict` (newer netavark) no other network at all.
    PodmanIsolation {
        /// The drop is ISOLATION-3's: the sender's network is strictly isolated and the
        /// destination's is not isolated at all.
        strict: bool,
        /// The sender's network, if known (the rule names only the destination bridge).
        from_network: Option<NetworkRef>,
        /// The destination network.
        to_network: NetworkRef,
        /// The sender, if known.
        from: Option<Peer>,
        /// The destination, if known.
        to: Option<Peer>,
    },
    /// A rule Docker did not write (DOCKER-USER, or any other non-Docker chain/table).
    UserRule {
        /// The table.
        table: String,
        /// The chain.
        chain: String,
        /// The rule as printed.
        rule: String,
    },
    /// A rule in Docker's chains that netlab does not recognise.
    Unknown {
        /// The table.
        table: String,
        /// The chain.
        chain: String,
        /// The rule as printed.
        rule: String,
    },
}

/// Says what a dropping rule means. `packet` adds the sender and destination where the
/// rule itself does not name them (STAGE-2 names only the destination bridge).
pub fn classify(rule: &RuleInput<'_>, facts: &DockerFacts, packet: &PacketHint) -> Meaning {
    match rule.syntax {
        RuleSyntax::Iptables => classify_iptables(rule, facts, packet),
        RuleSyntax::Nftables => classify_nftables(rule, facts, packet),
    }
}

fn user_rule(rule: &RuleInput<'_>) -> Meaning {
    Meaning::UserRule {
        table: rule.table.to_string(),
        chain: rule.chain.to_string(),
        rule: rule.text.to_string(),
    }
}

fn unknown(rule: &RuleInput<'_>) -> Meaning {
    Meaning::Unknown {
        table: rule.table.to_string(),
        chain: rule.chain.to_string(),
        rule: rule.text.to_string(),
    }
}

fn peers(facts: &DockerFacts, packet: &PacketHint) -> (Option<Peer>, Option<Peer>) {
    (
        packet.src.map(|a| facts.peer(a)),
        packet.dst.map(|a| facts.peer(a)),
    )
}

fn direct_access(
    facts: &DockerFacts,
    packet: &PacketHint,
    address: IpAddr,
    bridge: &str,
    port: Option<String>,
) -> Meaning {
    let mut container = facts.peer(address);
    let network = facts.network_ref(bridge);
    if container.network.is_none() {
        container.network = Some(network.clone());
    }
    Meaning::DirectAccess {
        container,
        network,
        port,
        from: packet.src.map(|a| facts.peer(a)),
    }
}

fn classify_iptables(rule: &RuleInput<'_>, facts: &DockerFacts, packet: &PacketHint) -> Meaning {
    let chain = rule.chain;
    let docker_chain = chain.starts_with("DOCKER") && chain != "DOCKER-USER";
    if let Some(policy) = rule.text.strip_prefix("policy ") {
        let words: Vec<&str> = policy.split_whitespace().collect();
        return match words.as_slice() {
            [c, "DROP"] if *c == chain && chain == "FORWARD" && rule.table == "filter" => {
                Meaning::ForwardPolicyDrop {
                    chain: chain.to_string(),
                }
            }
            _ => user_rule(rule),
        };
    }
    if chain == "DOCKER-USER" {
        return user_rule(rule);
    }
    let r = parse_ipt(chain, rule.text);
    if let Some(level) = chain.strip_prefix("NETAVARK_ISOLATION_") {
        if let (Some(oif), "DROP") = (r.pos_oif(), r.target.as_str()) {
            return podman_isolation(facts, packet, level, oif);
        }
        return unknown(rule);
    }
    let (from, to) = peers(facts, packet);
    if r.target == "DROP" {
        match (rule.table, chain) {
            ("raw", "PREROUTING") => {
                let dst = r.dst.as_ref().filter(|d| !d.negated);
                if let (Some(dst), Some(iif)) = (dst, r.neg_iif()) {
                    if iif == "lo" {
                        let address = dst.value.split('/').next().unwrap_or_default();
                        return Meaning::RemoteLoopback {
                            address: address.to_string(),
                            port: r.port(),
                        };
                    }
                    if let Some(address) = host_addr(&dst.value) {
                        return direct_access(facts, packet, address, iif, r.port());
                    }
                }
            }
            ("filter", "DOCKER-ISOLATION-STAGE-2") => {
                if let (Some(oif), None) = (r.pos_oif(), &r.iif) {
                    return Meaning::Isolation {
                        from_network: from.as_ref().and_then(|p| p.network.clone()),
                        to_network: facts.network_ref(oif),
                        from,
                        to,
                    };
                }
            }
            ("filter", "DOCKER-ISOLATION-STAGE-1" | "DOCKER-INTERNAL") => {
                let neg_dst = r.dst.as_ref().is_some_and(|a| a.negated);
                let neg_src = r.src.as_ref().is_some_and(|a| a.negated);
                let internal = match (r.pos_iif(), r.pos_oif()) {
                    (Some(br), _) if neg_dst && r.neg_oif().is_none_or(|o| o == br) => {
                        Some((br, Direction::Egress))
                    }
                    (_, Some(br)) if neg_src && r.neg_iif().is_none_or(|i| i == br) => {
                        Some((br, Direction::Ingress))
                    }
                    _ => None,
                };
                if let Some((br, direction)) = internal {
                    return Meaning::InternalNetwork {
                        network: facts.network_ref(br),
                        direction,
                        from,
                        to,
                    };
                }
            }
            ("filter", "FORWARD" | "DOCKER-FORWARD") => {
                if let (Some(i), Some(o)) = (r.pos_iif(), r.pos_oif()) {
                    let icc_on = facts.network_by_bridge(i).is_some_and(|n| n.icc);
                    if i == o && r.src.is_none() && r.dst.is_none() {
                        // A FORWARD rule of this shape on a network with ICC on is not
                        // Docker's (Docker 28+ writes its own into DOCKER-FORWARD).
                        if !(chain == "FORWARD" && icc_on) {
                            return Meaning::IccDisabled {
                                network: facts.network_ref(i),
                            };
                        }
                    }
                }
            }
            ("filter", "DOCKER") => {
                if let (Some(i), Some(o)) = (r.neg_iif(), r.pos_oif()) {
                    if i == o && r.dst.is_none() && r.dport.is_none() {
                        return Meaning::UnpublishedPort {
                            network: facts.network_ref(o),
                            from,
                            to,
                        };
                    }
                }
            }
            _ => {}
        }
    }
    if docker_chain {
        unknown(rule)
    } else {
        // Built-in chains and chains of the administrator's own.
        user_rule(rule)
    }
}

/// A drop in netavark's isolation chain `level` ("2" or "3") of a packet leaving through
/// `oif`.
fn podman_isolation(facts: &DockerFacts, packet: &PacketHint, level: &str, oif: &str) -> Meaning {
    let (from, to) = peers(facts, packet);
    Meaning::PodmanIsolation {
        strict: level == "3",
        from_network: from.as_ref().and_then(|p| p.network.clone()),
        to_network: facts.network_ref(oif),
        from,
        to,
    }
}

fn classify_nftables(rule: &RuleInput<'_>, facts: &DockerFacts, packet: &PacketHint) -> Meaning {
    let table = rule.table.split_whitespace().last().unwrap_or_default();
    if table == "netavark" {
        let tokens = nft_tokens(rule.text.trim());
        let oif = nft_match(&tokens, "oifname")
            .filter(|(neg, v)| !neg && v.len() == 1)
            .and_then(|(_, v)| v.into_iter().next());
        let level = rule.chain.strip_prefix("NETAVARK-ISOLATION-");
        if let (Some(level), Some(oif), true) = (level, oif, tokens.iter().any(|t| t == "drop")) {
            return podman_isolation(facts, packet, level, &oif);
        }
        return unknown(rule);
    }
    if table != "docker-bridges" {
        return user_rule(rule);
    }
    let text = rule.text.trim();
    if text.starts_with("policy drop") {
        return if rule.chain == "filter-FORWARD" {
            Meaning::ForwardPolicyDrop {
                chain: rule.chain.to_string(),
            }
        } else {
            unknown(rule)
        };
    }
    let tokens = nft_tokens(text);
    let drops = tokens.iter().any(|t| t == "drop" || t == "reject");
    let fwd_in = rule.chain.strip_prefix("filter-forward-in__");
    let fwd_out = rule.chain.strip_prefix("filter-forward-out__");
    let (from, to) = peers(facts, packet);
    let port = || {
        let (_, ports) = nft_match(&tokens, "dport")?;
        let i = tokens.iter().position(|t| t == "dport")?;
        let proto = i.checked_sub(1).and_then(|p| tokens.get(p))?;
        Some(format!("{proto}/{}", ports.join(",")))
    };
    let daddr = || {
        let (negated, v) = nft_match(&tokens, "daddr")?;
        (!negated).then(|| v.into_iter().next()).flatten()
    };
    match (rule.comment.unwrap_or_default(), drops) {
        ("DROP DIRECT ACCESS", _) | ("", true) if rule.chain == "raw-PREROUTING" => {
            let address = daddr().and_then(|a| a.parse::<IpAddr>().ok());
            let iifs = nft_match(&tokens, "iifname").filter(|(neg, _)| *neg);
            if let (Some(address), Some((_, iifs))) = (address, iifs) {
                // With trusted host interfaces the set holds those too: prefer the bridge
                // of the container's own network.
                let own = facts
                    .peer(address)
                    .network
                    .map(|n| n.bridge)
                    .filter(|b| iifs.contains(b));
                let bridge = own
                    .or_else(|| {
                        iifs.iter()
                            .find(|i| facts.network_by_bridge(i).is_some())
                            .cloned()
                    })
                    .or_else(|| iifs.first().cloned())
                    .unwrap_or_default();
                return direct_access(facts, packet, address, &bridge, port());
            }
        }
        ("DROP REMOTE LOOPBACK", _) => {
            return Meaning::RemoteLoopback {
                address: daddr().unwrap_or_default(),
                port: port(),
            };
        }
        ("UNPUBLISHED PORT DROP", _) => {
            if let Some(br) = fwd_in {
                return Meaning::UnpublishedPort {
                    network: facts.network_ref(br),
                    from,
                    to,
                };
            }
        }
        ("ICC", true) => {
            if let Some(br) = fwd_in {
                return Meaning::IccDisabled {
                    network: facts.network_ref(br),
                };
            }
        }
        ("INTERNAL NETWORK INGRESS", _) | ("INTERNAL NETWORK EGRESS", _) => {
            let (direction, br) = if rule.comment == Some("INTERNAL NETWORK INGRESS") {
                (Direction::Ingress, fwd_in)
            } else {
                (Direction::Egress, fwd_out)
            };
            if let Some(br) = br {
                return Meaning::InternalNetwork {
                    network: facts.network_ref(br),
                    direction,
                    from,
                    to,
                };
            }
        }
        _ => {}
    }
    unknown(rule)
}

#[cfg(test)]
mod tests;

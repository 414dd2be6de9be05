//! Tests of [`super::classify`] on rule lines of every engine version (fixtures under
//! tests/fixtures/firewall/, their sources in that directory's README.md).

use std::collections::BTreeSet;

use super::parse::Arg;
use super::*;
use crate::explain::netfilter::{parse_save, Family};

const D20_10: &str = include_str!("../../../tests/fixtures/firewall/docker20.10-iptables-save.txt");
const D26_1: &str = include_str!("../../../tests/fixtures/firewall/docker26.1-iptables-save.txt");
const D28_0: &str = include_str!("../../../tests/fixtures/firewall/docker28.0-iptables.txt");
const D28_5: &str = include_str!("../../../tests/fixtures/firewall/docker28.5-iptables.txt");
const D28_5_HOST: &str =
    include_str!("../../../tests/fixtures/firewall/docker28.5-host-iptables-save.txt");
const PODMAN_4_3: &str =
    include_str!("../../../tests/fixtures/firewall/podman4.3-docker28.5-iptables-save.txt");
const D29: &str = include_str!("../../../tests/fixtures/firewall/docker29-iptables.txt");

fn subnet(s: &str) -> Subnet {
    Subnet::parse(s).unwrap_or_else(|| panic!("bad subnet {s}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("bad address {s}"))
}

fn network(
    name: &str,
    bridge: &str,
    subnets: &[&str],
    containers: &[(&str, &str)],
) -> NetworkFacts {
    NetworkFacts {
        name: name.into(),
        bridge: bridge.into(),
        subnets: subnets.iter().map(|s| subnet(s)).collect(),
        internal: false,
        icc: true,
        containers: containers
            .iter()
            .map(|(n, a)| ContainerFacts {
                name: (*n).into(),
                addresses: vec![ip(a)],
            })
            .collect(),
    }
}

/// The networks of moby's iptablesdoc/nftablesdoc scenarios.
fn moby_facts() -> DockerFacts {
    let mut icc = network("bridgeICC", "bridgeICC", &["192.0.2.0/24"], &[]);
    icc.internal = true;
    let mut noicc = network("bridgeNoICC", "bridgeNoICC", &["198.51.100.0/24"], &[]);
    noicc.internal = true;
    noicc.icc = false;
    DockerFacts {
        networks: vec![
            network("bridge", "docker0", &["172.17.0.0/16"], &[]),
            network(
                "bridge1",
                "bridge1",
                &["192.0.2.0/24"],
                &[("c1", "192.0.2.2")],
            ),
            icc,
            noicc,
        ],
    }
}

/// The networks of the 20.10 / 26.1 fixtures.
fn lab_facts() -> DockerFacts {
    let mut vault = network(
        "vault",
        "br-5ec2e7a90001",
        &["172.30.0.0/16", "fd00:30::/64"],
        &[("Vault", "172.30.0.2")],
    );
    vault.internal = true;
    let mut quiet = network(
        "quiet",
        "br-0c0ffee00002",
        &["172.31.0.0/16"],
        &[("Q1", "172.31.0.2"), ("Q2", "172.31.0.3")],
    );
    quiet.icc = false;
    DockerFacts {
        networks: vec![
            network("bridge", "docker0", &["172.17.0.0/16"], &[]),
            network(
                "devops",
                "br-8be916360cbc",
                &["172.18.0.0/16"],
                &[("AppDev", "172.18.0.2")],
            ),
            network(
                "prod",
                "br-1aa2bb3cc4dd",
                &["172.19.0.0/16"],
                &[("AppProd", "172.19.0.2")],
            ),
            vault,
            quiet,
        ],
    }
}

/// The networks of this host when docker28.5-host-iptables-save.txt was recorded.
fn host_facts() -> DockerFacts {
    DockerFacts {
        networks: vec![
            network("bridge", "docker0", &["172.17.0.0/16"], &[]),
            network(
                "devops",
                "br-eb1c80035c3b",
                &["172.18.0.0/16"],
                &[("AppDev", "172.18.0.2")],
            ),
            network(
                "prod",
                "br-083e0f8d1ecb",
                &["172.19.0.0/16"],
                &[("AppProd", "172.19.0.2")],
            ),
            network("bnet", "br-55bfefd7a115", &["172.20.0.0/16"], &[]),
        ],
    }
}

/// A short, stable description of a meaning for set comparisons.
fn describe(m: &Meaning) -> String {
    let net = |n: &NetworkRef| n.name.clone().unwrap_or_else(|| format!("?{}", n.bridge));
    match m {
        Meaning::DirectAccess {
            container,
            network,
            port,
            ..
        } => format!(
            "direct-access {} {}{}",
            container.container.as_deref().unwrap_or("?"),
            net(network),
            port.as_deref().map(|p| format!(" {p}")).unwrap_or_default()
        ),
        Meaning::Isolation { to_network, .. } => format!("isolation -> {}", net(to_network)),
        Meaning::UnpublishedPort { network, .. } => format!("unpublished {}", net(network)),
        Meaning::InternalNetwork {
            network, direction, ..
        } => format!("internal {direction:?} {}", net(network)),
        Meaning::IccDisabled { network } => format!("icc-off {}", net(network)),
        Meaning::RemoteLoopback { address, port } => {
            format!("loopback {address} {}", port.as_deref().unwrap_or("-"))
        }
        Meaning::ForwardPolicyDrop { chain } => format!("policy {chain}"),
        Meaning::PodmanIsolation {
            strict, to_network, ..
        } => format!(
            "podman-isolation{} -> {}",
            if *strict { " (strict)" } else { "" },
            net(to_network)
        ),
        Meaning::UserRule { chain, .. } => format!("user {chain}"),
        Meaning::Unknown { chain, rule, .. } => format!("unknown {chain}: {rule}"),
    }
}

/// Every DROP/REJECT rule and DROP policy of an iptables-save text, classified.
fn meanings(text: &str, facts: &DockerFacts) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for family in [Family::Ipv4, Family::Ipv6] {
        let set = parse_save(family, text);
        for r in set.rules.iter().filter(|r| r.drops()) {
            let input = RuleInput::iptables(&r.table, &r.chain, &r.spec);
            out.insert(describe(&classify(&input, facts, &PacketHint::default())));
        }
        for p in set.policies.iter().filter(|p| p.policy == "DROP") {
            let spec = format!("policy {} DROP", p.chain);
            let input = RuleInput::iptables(&p.table, &p.chain, &spec);
            out.insert(describe(&classify(&input, facts, &PacketHint::default())));
        }
    }
    out
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn docker_20_10() {
    assert_eq!(
        meanings(D20_10, &lab_facts()),
        set(&[
            "icc-off quiet",
            "internal Egress vault",
            "internal Ingress vault",
            "isolation -> bridge",
            "isolation -> devops",
            "isolation -> prod",
            "isolation -> quiet",
            "policy FORWARD",
            "user DOCKER-USER",
        ])
    );
}

#[test]
fn docker_26_1_with_ipv6_internal_rules() {
    let facts = lab_facts();
    assert_eq!(meanings(D26_1, &facts), meanings(D20_10, &facts));
    let spec = "DOCKER-ISOLATION-STAGE-1 ! -s fd00:30::/64 ! -i br-5ec2e7a90001 -o br-5ec2e7a90001 -j DROP";
    let m = classify(
        &RuleInput::iptables("filter", "DOCKER-ISOLATION-STAGE-1", spec),
        &facts,
        &PacketHint::default(),
    );
    assert_eq!(describe(&m), "internal Ingress vault");
}

#[test]
fn docker_28_0_per_port_direct_access() {
    assert_eq!(
        meanings(D28_0, &moby_facts()),
        set(&[
            "direct-access c1 bridge1 tcp/80",
            "icc-off bridge1",
            "icc-off bridgeNoICC",
            "internal Egress bridgeICC",
            "internal Egress bridgeNoICC",
            "internal Ingress bridgeICC",
            "internal Ingress bridgeNoICC",
            "isolation -> bridge",
            "isolation -> bridge1",
            "loopback 127.0.0.1 tcp/8080",
            "unpublished bridge",
            "unpublished bridge1",
        ])
    );
}

#[test]
fn docker_28_5_per_container_direct_access() {
    let m = meanings(D28_5, &moby_facts());
    assert!(m.contains("direct-access c1 bridge1"));
    assert!(!m
        .iter()
        .any(|d| d.starts_with("direct-access") && d.contains("tcp/")));
    assert!(m.contains("isolation -> bridge1"));
    assert_eq!(m.len(), 12);
}

#[test]
fn docker_28_5_this_host() {
    let (v4, v6) = D28_5_HOST
        .split_once("# --- ip6tables-save -c")
        .unwrap_or((D28_5_HOST, ""));
    let facts = host_facts();
    let m = meanings(v4, &facts);
    assert_eq!(
        m,
        set(&[
            "direct-access AppDev devops",
            "direct-access AppProd prod",
            "isolation -> bnet",
            "isolation -> bridge",
            "isolation -> devops",
            "isolation -> prod",
            "policy FORWARD",
            "unpublished bnet",
            "unpublished bridge",
            "unpublished devops",
            "unpublished prod",
        ])
    );
    assert!(meanings(v6, &facts).is_empty());
}

/// Podman's networks on a host that runs Docker too: netavark's isolation drops are
/// Podman's, named after its networks; Docker's rules keep their meanings.
#[test]
fn podman_4_3_beside_docker_28_5() {
    let mut facts = DockerFacts::default();
    for (name, bridge, sub) in [
        ("pnet-i", "podman3", "10.89.2.0/24"),
        ("pnet-j", "podman4", "10.89.3.0/24"),
    ] {
        facts.networks.push(network(name, bridge, &[sub], &[]));
    }
    let m = meanings(PODMAN_4_3, &facts);
    assert_eq!(
        m,
        set(&[
            "isolation -> ?docker0",
            "podman-isolation -> pnet-i",
            "podman-isolation -> pnet-j",
            "policy FORWARD",
            "unpublished ?docker0",
        ])
    );
    // The dropped ping pi -> pj, with its sender known.
    let rule = RuleInput::iptables("filter", "NETAVARK_ISOLATION_2", "-o podman4 -j DROP");
    let hint = PacketHint {
        src: Some(ip("10.89.2.2")),
        dst: Some(ip("10.89.3.2")),
    };
    match classify(&rule, &facts, &hint) {
        Meaning::PodmanIsolation {
            strict: false,
            from_network: Some(from),
            to_network,
            ..
        } => {
            assert_eq!(from.name.as_deref(), Some("pnet-i"));
            assert_eq!(to_network.bridge, "podman4");
        }
        other => panic!("{other:?}"),
    }
    // netavark's nftables driver, as its own tests list the chains.
    for (chain, text, want) in [
        (
            "NETAVARK-ISOLATION-2",
            "oifname \"podman4\" drop",
            "podman-isolation -> pnet-j",
        ),
        (
            "NETAVARK-ISOLATION-3",
            "oifname \"podman3\" drop",
            "podman-isolation (strict) -> pnet-i",
        ),
        (
            "NETAVARK-ISOLATION-3",
            "jump NETAVARK-ISOLATION-2",
            "unknown NETAVARK-ISOLATION-3: jump NETAVARK-ISOLATION-2",
        ),
    ] {
        let rule = RuleInput::nftables("inet netavark", chain, None, text);
        assert_eq!(
            describe(&classify(&rule, &facts, &PacketHint::default())),
            want
        );
    }
}

#[test]
fn docker_29_iptables() {
    let m = meanings(D29, &moby_facts());
    assert_eq!(
        m,
        set(&[
            "direct-access c1 bridge1",
            "icc-off bridge1",
            "icc-off bridgeNoICC",
            "internal Egress bridgeICC",
            "internal Egress bridgeNoICC",
            "internal Ingress bridgeICC",
            "internal Ingress bridgeNoICC",
            "loopback 127.0.0.1 tcp/8080",
            "unpublished bridge",
            "unpublished bridge1",
        ])
    );
    assert!(!m.iter().any(|d| d.starts_with("isolation")));
}

#[test]
fn ping_between_networks_by_version() {
    let facts = host_facts();
    let ping = PacketHint {
        src: Some(ip("172.18.0.2")),
        dst: Some(ip("172.19.0.2")),
    };
    // 20.10 – 28.1: STAGE-2, with the sender's network from the packet.
    let stage2 = RuleInput::iptables(
        "filter",
        "DOCKER-ISOLATION-STAGE-2",
        "DOCKER-ISOLATION-STAGE-2 -o br-083e0f8d1ecb -j DROP",
    );
    match classify(&stage2, &facts, &ping) {
        Meaning::Isolation {
            from_network,
            to_network,
            from,
            to,
        } => {
            assert_eq!(from_network.and_then(|n| n.name).as_deref(), Some("devops"));
            assert_eq!(to_network.name.as_deref(), Some("prod"));
            assert_eq!(from.and_then(|p| p.container).as_deref(), Some("AppDev"));
            assert_eq!(to.and_then(|p| p.container).as_deref(), Some("AppProd"));
        }
        other => panic!("{other:?}"),
    }
    // 28.2+: the raw rule, named after the destination container.
    let raw = RuleInput::iptables(
        "raw",
        "PREROUTING",
        "PREROUTING -d 172.19.0.2/32 ! -i br-083e0f8d1ecb -j DROP",
    );
    match classify(&raw, &facts, &ping) {
        Meaning::DirectAccess {
            container,
            network,
            port,
            from,
        } => {
            assert_eq!(container.to_string(), "AppProd (172.19.0.2)");
            assert_eq!(network.to_string(), "prod (br-083e0f8d1ecb)");
            assert_eq!(port, None);
            let from = from.unwrap_or_else(|| panic!("no sender"));
            assert_eq!(from.container.as_deref(), Some("AppDev"));
            assert_eq!(
                from.network.map(|n| n.cli_name()).as_deref(),
                Some("devops")
            );
        }
        other => panic!("{other:?}"),
    }
    // 29 with allow-direct-routing: the DOCKER chain (spec given without the chain name).
    let docker = RuleInput::iptables(
        "filter",
        "DOCKER",
        "! -i br-083e0f8d1ecb -o br-083e0f8d1ecb -j DROP",
    );
    assert_eq!(
        describe(&classify(&docker, &facts, &ping)),
        "unpublished prod"
    );
}

#[test]
fn unknown_bridges_and_containers_keep_their_raw_names() {
    let facts = DockerFacts::default();
    let raw = RuleInput::iptables(
        "raw",
        "PREROUTING",
        "PREROUTING -d fd00:1::5/128 ! -i br-0123456789ab -j DROP",
    );
    match classify(&raw, &facts, &PacketHint::default()) {
        Meaning::DirectAccess {
            container, network, ..
        } => {
            assert_eq!(container.address, ip("fd00:1::5"));
            assert_eq!(container.container, None);
            assert_eq!(network.cli_name(), "<network of br-0123456789ab>");
            assert_eq!(network.to_string(), "on bridge br-0123456789ab");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn user_rules_and_unknown_docker_rules() {
    let facts = lab_facts();
    let none = PacketHint::default();
    let c = |table, chain, spec| {
        describe(&classify(
            &RuleInput::iptables(table, chain, spec),
            &facts,
            &none,
        ))
    };
    assert_eq!(
        c("filter", "DOCKER-USER", "DOCKER-USER -p icmp -j DROP"),
        "user DOCKER-USER"
    );
    assert_eq!(
        c("filter", "FORWARD", "FORWARD -s 10.0.0.0/8 -j DROP"),
        "user FORWARD"
    );
    assert_eq!(
        c(
            "filter",
            "INPUT",
            "INPUT -p icmp -j REJECT --reject-with icmp-host-prohibited"
        ),
        "user INPUT"
    );
    assert_eq!(
        c("raw", "PREROUTING", "PREROUTING -s 192.0.2.9/32 -j DROP"),
        "user PREROUTING"
    );
    assert_eq!(c("filter", "MY-CHAIN", "MY-CHAIN -j DROP"), "user MY-CHAIN");
    assert_eq!(c("filter", "INPUT", "policy INPUT DROP"), "user INPUT");
    // The ICC shape in FORWARD on a network whose ICC is on is the administrator's.
    assert_eq!(
        c(
            "filter",
            "FORWARD",
            "FORWARD -i br-8be916360cbc -o br-8be916360cbc -j DROP"
        ),
        "user FORWARD"
    );
    assert_eq!(
        c("filter", "DOCKER-INGRESS", "DOCKER-INGRESS -p tcp -j DROP"),
        "unknown DOCKER-INGRESS: DOCKER-INGRESS -p tcp -j DROP"
    );
    assert_eq!(
        c("filter", "DOCKER", "DOCKER -j REJECT"),
        "unknown DOCKER: DOCKER -j REJECT"
    );
}

#[test]
fn parses_iptables_specs() {
    let r = parse_ipt(
        "DOCKER",
        "DOCKER -d 192.0.2.2/32 ! -i bridge1 -o bridge1 -p tcp -m tcp --dport 80 -j ACCEPT",
    );
    assert_eq!(
        r.dst,
        Some(Arg {
            negated: false,
            value: "192.0.2.2/32".into()
        })
    );
    assert_eq!(r.neg_iif(), Some("bridge1"));
    assert_eq!(r.pos_oif(), Some("bridge1"));
    assert_eq!(r.port().as_deref(), Some("tcp/80"));
    assert_eq!(r.target, "ACCEPT");
    let r = parse_ipt(
        "DOCKER-USER",
        r#"-s 203.0.113.0/24 -m comment --comment "block \"lab\" scanners" -j DROP"#,
    );
    assert_eq!(r.src.map(|a| a.value).as_deref(), Some("203.0.113.0/24"));
    assert_eq!(r.target, "DROP");
    let r = parse_ipt(
        "X",
        "X -m conntrack --ctstate RELATED,ESTABLISHED ! -o br-1 -j ACCEPT",
    );
    assert_eq!(r.neg_oif(), Some("br-1"));
    assert_eq!(host_addr("192.0.2.2/32"), Some(ip("192.0.2.2")));
    assert_eq!(host_addr("fd00::1/128"), Some(ip("fd00::1")));
    assert_eq!(host_addr("192.0.2.0/24"), None);
    assert_eq!(host_addr("nonsense"), None);
    // Nothing panics on odd input.
    let _ = parse_ipt("", "! ! -j");
    let _ = parse_ipt("A", "\"unterminated -d");
}

#[test]
fn nftables_rules() {
    let facts = DockerFacts {
        networks: vec![
            network(
                "nlt-a",
                "nlt-br-a",
                &["10.77.1.0/24"],
                &[("ca", "10.77.1.2")],
            ),
            network(
                "nlt-b",
                "nlt-br-b",
                &["10.77.2.0/24"],
                &[("cb", "10.77.2.2")],
            ),
        ],
    };
    let ping = PacketHint {
        src: Some(ip("10.77.1.2")),
        dst: Some(ip("10.77.2.2")),
    };
    let c = |table, chain, comment, expr| {
        describe(&classify(
            &RuleInput::nftables(table, chain, comment, expr),
            &facts,
            &ping,
        ))
    };
    let t = "ip docker-bridges";
    assert_eq!(
        c(
            t,
            "raw-PREROUTING",
            Some("DROP DIRECT ACCESS"),
            r#"ip daddr 10.77.2.2 iifname != "nlt-br-b" counter drop"#
        ),
        "direct-access cb nlt-b"
    );
    // Trusted host interfaces: a set; the container's own bridge is picked.
    assert_eq!(
        c(
            "docker-bridges",
            "raw-PREROUTING",
            Some("DROP DIRECT ACCESS"),
            r#"ip daddr 10.77.2.2 iifname != { "eth1", "nlt-br-b" } counter drop"#
        ),
        "direct-access cb nlt-b"
    );
    // Without the comment, by shape.
    assert_eq!(
        c(
            t,
            "raw-PREROUTING",
            None,
            r#"ip6 daddr fd49:efd7:54aa::1 iifname != "br-dummy" counter drop"#
        ),
        "direct-access ? ?br-dummy"
    );
    assert_eq!(
        c(
            t,
            "filter-forward-in__nlt-br-b",
            Some("UNPUBLISHED PORT DROP"),
            "counter drop"
        ),
        "unpublished nlt-b"
    );
    assert_eq!(
        c(
            t,
            "filter-forward-in__nlt-br-a",
            Some("ICC"),
            r#"iifname "nlt-br-a" counter drop"#
        ),
        "icc-off nlt-a"
    );
    assert_eq!(
        c(
            t,
            "filter-forward-in__nlt-br-a",
            Some("ICC"),
            r#"iifname "nlt-br-a" counter accept"#
        ),
        r#"unknown filter-forward-in__nlt-br-a: iifname "nlt-br-a" counter accept"#
    );
    assert_eq!(
        c(
            t,
            "filter-forward-in__nlt-br-a",
            Some("INTERNAL NETWORK INGRESS"),
            r#"iifname != "nlt-br-a" counter drop"#
        ),
        "internal Ingress nlt-a"
    );
    assert_eq!(
        c(
            t,
            "filter-forward-out__nlt-br-a",
            Some("INTERNAL NETWORK EGRESS"),
            r#"oifname != "nlt-br-a" counter drop"#
        ),
        "internal Egress nlt-a"
    );
    assert_eq!(
        c(
            t,
            "raw-PREROUTING",
            Some("DROP REMOTE LOOPBACK"),
            r#"iifname != "lo" ip daddr 127.0.0.1 tcp dport 8080 counter drop"#
        ),
        "loopback 127.0.0.1 tcp/8080"
    );
    assert_eq!(
        c(t, "filter-FORWARD", None, "policy drop"),
        "policy filter-FORWARD"
    );
    assert_eq!(
        c(
            "inet netlab-user",
            "user-forward",
            None,
            "ip saddr 10.77.1.2 counter drop"
        ),
        "user user-forward"
    );
    assert_eq!(
        c(
            t,
            "filter-forward-in__nlt-br-b",
            Some("SOMETHING NEW"),
            "counter drop"
        ),
        "unknown filter-forward-in__nlt-br-b: counter drop"
    );
}

#[test]
fn facts_from_a_snapshot() {
    use crate::docker::{ContainerInfo, EndpointInfo, NetworkInfo};
    let devops = NetworkInfo {
        isolated: false,
        id: "8be916360cbc0000".into(),
        name: "devops".into(),
        driver: "bridge".into(),
        bridge: "br-8be916360cbc".into(),
        subnets: vec![subnet("172.18.0.0/16")],
        gateways: vec![ip("172.18.0.1")],
        internal: false,
        icc: true,
    };
    let snapshot = DockerSnapshot {
        engine: Default::default(),
        networks: vec![devops],
        containers: vec![ContainerInfo {
            id: "c-appdev".into(),
            name: "AppDev".into(),
            image: "busybox".into(),
            pid: 100,
            sandbox_key: None,
            endpoints: vec![EndpointInfo {
                network_id: "8be916360cbc0000".into(),
                network: "devops".into(),
                ips: vec![ip("172.18.0.2")],
                mac: None,
            }],
        }],
        overlays: Vec::new(),
        swarm: None,
    };
    let facts = DockerFacts::from_snapshot(&snapshot);
    assert_eq!(facts.networks.len(), 1);
    let n = &facts.networks[0];
    assert!(n.icc && !n.internal);
    assert_eq!(n.containers[0].name, "AppDev");
    let p = facts.peer(ip("172.18.0.2"));
    assert_eq!(p.to_string(), "AppDev (172.18.0.2)");
    assert_eq!(
        p.network.map(|r| r.to_string()).as_deref(),
        Some("devops (br-8be916360cbc)")
    );
    // The gateway is in the subnet but no container's.
    let gw = facts.peer(ip("172.18.0.1"));
    assert_eq!((gw.container, gw.network.is_some()), (None, true));
    assert_eq!(facts.peer(ip("8.8.8.8")).network, None);
}

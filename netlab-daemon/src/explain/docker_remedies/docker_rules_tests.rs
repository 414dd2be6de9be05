//! Tests of the explanations and remedies per engine version and backend.

use super::*;
use crate::explain::docker_backend::EngineVersion;
use std::net::IpAddr;

fn engine(v: &str, backend: Backend) -> Engine {
    Engine::new(
        EngineVersion::parse(v).unwrap_or(EngineVersion::new(0, 0, 0)),
        backend,
    )
}

fn net(name: &str, bridge: &str) -> NetworkRef {
    NetworkRef {
        bridge: bridge.into(),
        name: Some(name.into()),
    }
}

fn peer(ip: &str, name: &str, network: NetworkRef) -> Peer {
    Peer {
        address: ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
        container: Some(name.into()),
        network: Some(network),
    }
}

fn direct_access() -> Meaning {
    let (devops, prod) = (net("devops", "br-dev"), net("prod", "br-prod"));
    Meaning::DirectAccess {
        container: peer("172.19.0.2", "AppProd", prod.clone()),
        network: prod,
        port: None,
        from: Some(peer("172.18.0.2", "AppDev", devops)),
    }
}

fn kinds(e: &Explanation) -> Vec<(RemedyKind, bool)> {
    e.remedies.iter().map(|r| (r.kind, r.fixes_ping)).collect()
}

#[test]
fn direct_access_on_28_5() {
    let e = explain(
        &direct_access(),
        &engine("28.5.2+dfsg4", Backend::IptablesNft),
    );
    assert_eq!(
        e.summary,
        "Docker's direct-access filter (raw PREROUTING) drops packets for AppProd \
         (172.19.0.2) arriving from outside network prod (br-prod), sent by AppDev \
         (172.18.0.2) on network devops (br-dev)"
    );
    assert!(!e.summary.contains("STAGE-2"));
    assert_eq!(e.remedies[0].action, "docker network connect prod AppDev");
    assert_eq!(
        kinds(&e),
        [
            (RemedyKind::ConnectNetwork, true),
            (RemedyKind::GatewayModeRouted, true),
            // 28.x: STAGE-2 would still drop packets from devops.
            (RemedyKind::GatewayModeNatUnprotected, false),
            (RemedyKind::AllowDirectRouting, false),
            (RemedyKind::PublishPort, false),
        ]
    );
    assert!(e.remedies[3].note.contains("DOCKER-ISOLATION-STAGE-2"));
    assert!(e.caveats[0].contains("DOCKER-USER rule cannot help"));
    assert!(!e
        .remedies
        .iter()
        .any(|r| r.kind == RemedyKind::DockerUserRule));
}

#[test]
fn direct_access_on_29_nftables() {
    let e = explain(&direct_access(), &engine("29.0.1", Backend::Nftables));
    assert!(e
        .summary
        .contains("nftables raw-PREROUTING, rule \"DROP DIRECT ACCESS\""));
    assert_eq!(
        kinds(&e),
        [
            (RemedyKind::ConnectNetwork, true),
            (RemedyKind::GatewayModeRouted, true),
            (RemedyKind::GatewayModeNatUnprotected, true),
            (RemedyKind::AllowDirectRouting, false),
            (RemedyKind::PublishPort, false),
        ]
    );
    assert!(e.remedies[3].note.contains("UNPUBLISHED PORT DROP"));
    assert!(e.caveats[0].contains("own nftables table"));
    assert!(e.remedies.iter().all(|r| !r.note.contains("STAGE-2")));
}

#[test]
fn direct_access_from_outside_the_host() {
    let prod = net("prod", "br-prod");
    let m = Meaning::DirectAccess {
        container: peer("172.19.0.2", "AppProd", prod.clone()),
        network: prod,
        port: None,
        from: Some(Peer {
            address: IpAddr::from([192, 0, 2, 50]),
            container: None,
            network: None,
        }),
    };
    let e = explain(&m, &engine("28.5.2", Backend::IptablesNft));
    // No container to connect; nat-unprotected helps from outside; trusted interfaces too.
    assert_eq!(
        kinds(&e),
        [
            (RemedyKind::GatewayModeRouted, true),
            (RemedyKind::GatewayModeNatUnprotected, true),
            (RemedyKind::AllowDirectRouting, false),
            (RemedyKind::TrustedHostInterfaces, false),
            (RemedyKind::PublishPort, false),
        ]
    );
}

#[test]
fn isolation_on_20_10_and_28_0() {
    let (devops, prod) = (net("devops", "br-dev"), net("prod", "br-prod"));
    let m = Meaning::Isolation {
        from_network: Some(devops.clone()),
        to_network: prod.clone(),
        from: Some(peer("172.18.0.2", "AppDev", devops)),
        to: Some(peer("172.19.0.2", "AppProd", prod)),
    };
    let e = explain(&m, &engine("20.10.24+dfsg1", Backend::IptablesNft));
    assert_eq!(
        e.summary,
        "Docker's network isolation (DOCKER-ISOLATION-STAGE-2) drops packets from network \
         devops (br-dev) to network prod (br-prod), sent by AppDev (172.18.0.2) on network \
         devops (br-dev)"
    );
    // No gateway modes before 27.
    assert_eq!(
        kinds(&e),
        [
            (RemedyKind::ConnectNetwork, true),
            (RemedyKind::DockerUserRule, true),
            (RemedyKind::PublishPort, false),
        ]
    );
    assert_eq!(
        e.remedies[1].action,
        "iptables -I DOCKER-USER -i br-dev -o br-prod -j ACCEPT; iptables -I DOCKER-USER \
         -i br-prod -o br-dev -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    );
    let e = explain(&m, &engine("27.5.1", Backend::IptablesLegacy));
    assert!(e.remedies.contains(&Remedy {
        kind: RemedyKind::GatewayModeRouted,
        action: "docker network create -o com.docker.network.bridge.gateway_mode_ipv4=routed \
                 ... prod"
            .into(),
        fixes_ping: false,
        note: "before 28.0 a routed network is still isolated from other bridge networks \
               (DOCKER-ISOLATION-STAGE-2)"
            .into(),
    }));
    let e = explain(&m, &engine("28.0.1", Backend::IptablesNft));
    assert!(kinds(&e).contains(&(RemedyKind::GatewayModeRouted, true)));
}

#[test]
fn unpublished_port_on_29() {
    let (a, b) = (net("nlt-a", "nlt-br-a"), net("nlt-b", "nlt-br-b"));
    let m = Meaning::UnpublishedPort {
        network: b.clone(),
        from: Some(peer("10.77.1.2", "ca", a)),
        to: Some(peer("10.77.2.2", "cb", b)),
    };
    let e = explain(&m, &engine("29.0.0", Backend::IptablesNft));
    assert!(e
        .summary
        .contains("DOCKER ! -i nlt-br-b -o nlt-br-b -j DROP"));
    assert!(e.summary.contains("no DOCKER-ISOLATION chains"));
    assert_eq!(
        kinds(&e),
        [
            (RemedyKind::ConnectNetwork, true),
            (RemedyKind::GatewayModeRouted, true),
            (RemedyKind::GatewayModeNatUnprotected, true),
            (RemedyKind::DockerUserRule, true),
            (RemedyKind::PublishPort, false),
        ]
    );
    assert_eq!(
        e.remedies[3].action,
        "iptables -I DOCKER-USER -o nlt-br-b -d 10.77.2.2 -p icmp -j ACCEPT"
    );
    let e = explain(&m, &engine("29.0.0", Backend::Nftables));
    assert!(e.summary.contains("filter-forward-in__nlt-br-b"));
    assert!(kinds(&e).contains(&(RemedyKind::AcceptFwMark, true)));
    assert!(!kinds(&e)
        .iter()
        .any(|(k, _)| *k == RemedyKind::DockerUserRule));
    assert!(e.caveats[0].contains("no DOCKER-USER"));
    // On 28.5 the same rule from another network: nat-unprotected would not help.
    let e = explain(&m, &engine("28.5.2", Backend::IptablesNft));
    assert!(!e.summary.contains("Docker 29"));
    assert!(kinds(&e).contains(&(RemedyKind::GatewayModeNatUnprotected, false)));
}

#[test]
fn internal_icc_policy_and_user_rules() {
    let v = net("vault", "br-vault");
    let m = Meaning::InternalNetwork {
        network: v.clone(),
        direction: Direction::Egress,
        from: Some(peer("172.30.0.2", "Vault", v.clone())),
        to: None,
    };
    let e = explain(&m, &engine("26.1.5", Backend::IptablesNft));
    assert!(
        e.summary.contains("(DOCKER-ISOLATION-STAGE-1)"),
        "{}",
        e.summary
    );
    assert_eq!(
        e.remedies[0].action,
        "docker network connect <a non-internal network> Vault"
    );
    let e = explain(&m, &engine("29.0.0", Backend::IptablesNft));
    assert!(e.summary.contains("(DOCKER-INTERNAL)"));
    let e = explain(&m, &engine("29.0.0", Backend::Nftables));
    assert!(e.summary.contains("\"INTERNAL NETWORK EGRESS\""));
    assert_eq!(e.remedies.len(), 2);

    let m = Meaning::IccDisabled { network: v };
    let e = explain(&m, &engine("28.5.2", Backend::IptablesNft));
    assert!(e.summary.contains("enable_icc=false"));
    assert_eq!(
        kinds(&e),
        [
            (RemedyKind::RecreateNetwork, true),
            (RemedyKind::DockerUserRule, true)
        ]
    );

    let m = Meaning::ForwardPolicyDrop {
        chain: "FORWARD".into(),
    };
    let e = explain(&m, &engine("20.10.24", Backend::IptablesNft));
    assert_eq!(e.remedies.len(), 2, "no ip-forward-no-drop before 28");
    let e = explain(&m, &engine("28.5.2", Backend::IptablesNft));
    assert_eq!(e.remedies.len(), 3);

    let m = Meaning::UserRule {
        table: "filter".into(),
        chain: "DOCKER-USER".into(),
        rule: "DOCKER-USER -s 203.0.113.0/24 -j DROP".into(),
    };
    let e = explain(&m, &engine("28.5.2", Backend::IptablesNft));
    assert!(
        e.summary.starts_with("Your own rule in DOCKER-USER"),
        "{}",
        e.summary
    );
    assert_eq!(
        e.remedies[0].action,
        "iptables -t filter -D DOCKER-USER -s 203.0.113.0/24 -j DROP (or narrow it)"
    );
    let m = Meaning::UserRule {
        table: "inet netlab-user".into(),
        chain: "user-forward".into(),
        rule: "ip saddr 10.77.1.2 drop".into(),
    };
    let e = explain(&m, &engine("29.0.0", Backend::Nftables));
    assert!(e.remedies[0]
        .action
        .starts_with("nft -a list chain inet netlab-user"));

    let m = Meaning::Unknown {
        table: "filter".into(),
        chain: "DOCKER-INGRESS".into(),
        rule: "DOCKER-INGRESS -j DROP".into(),
    };
    let e = explain(&m, &engine("28.5.2", Backend::IptablesNft));
    assert!(e.remedies.is_empty());
    assert!(e.caveats[0].contains("28.5.2"));
}

#[test]
fn per_port_direct_access_on_28_0() {
    let b = net("bridge1", "bridge1");
    let m = Meaning::DirectAccess {
        container: peer("192.0.2.2", "c1", b.clone()),
        network: b,
        port: Some("tcp/80".into()),
        from: None,
    };
    let e = explain(&m, &engine("28.0.1", Backend::IptablesNft));
    assert!(e
        .summary
        .contains("packets for port tcp/80 of c1 (192.0.2.2)"));
    assert_eq!(
        e.remedies[0].action,
        "docker network connect bridge1 <source container>"
    );
    assert!(!kinds(&e)
        .iter()
        .any(|(k, _)| *k == RemedyKind::AllowDirectRouting));
}

//! The map on the course's lab (devops: AppDev; prod: AppProd; int_hote from the devops
//! bridge to AppProd's eth1): boxes, edges, their states and rates, and the Node Graph
//! frames.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::edges::{Edges, ANSWERED_HOLDS, FORGET_AFTER, KEPT_JOURNEYS, MAX_EDGES};
use super::*;
use crate::docker::topology::Topology;
use crate::explain::firewall::{DockerMeaning, RuleRef};
use crate::kernel::clock::UnixNanos;
use crate::model::event::{DropInfo, DropPlace, DropRecord, Endpoint, IcmpView};
use crate::model::journey::{
    ArpUnanswered, Family, Hop, Journey, JourneyDrop, JourneyEnd, Outcome, Phase,
};
use crate::model::kind::{Direction, Kind};

const DEV: &str = "172.20.0.2";
const PROD: &str = "172.21.0.2";
const LEG: &str = "172.20.0.200";
const RULE: &str = "PREROUTING -d 172.21.0.2/32 ! -i br-1aa2bb3cc4dd -j DROP";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn lab() -> Topology {
    crate::docker::topology::tests::course_lab_topology()
}

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

fn journey(dst: &str, seq: u16, result: Outcome) -> Journey {
    let mut hops = vec![hop(
        "veth1111111",
        10,
        Direction::Ingress,
        1_000,
        Phase::Request,
    )];
    if dst == LEG {
        hops.push(hop(
            "int_hote",
            12,
            Direction::Egress,
            2_000,
            Phase::Request,
        ));
        hops.push(hop(
            "int_hote",
            12,
            Direction::Ingress,
            40_000,
            Phase::Reply,
        ));
    }
    if result == Outcome::Answered {
        hops.push(hop(
            "veth1111111",
            10,
            Direction::Egress,
            71_000,
            Phase::Reply,
        ));
    }
    Journey {
        kind: "journey",
        ts_ns: 1_000,
        family: Family::Icmp,
        src: JourneyEnd {
            ip: ip(DEV),
            container: Some("AppDev".into()),
        },
        dst: JourneyEnd {
            ip: ip(dst),
            container: Some("AppProd".into()),
        },
        id: 9,
        seq,
        vni: None,
        result,
        rtt_ns: (result == Outcome::Answered).then_some(70_000),
        last_seen: hops.last().cloned(),
        hops,
        drop: (result == Outcome::Dropped).then(|| JourneyDrop {
            reason: "NETFILTER_DROP".into(),
            location: Some("nft_do_chain+0x46f".into()),
            iface: Some("br-8be916360cbc".into()),
            rule: Some(RULE.into()),
            hook: Some("prerouting".into()),
            phase: Phase::Request,
            host: None,
        }),
    }
}

fn drop_report(packet: Kind) -> DropRecord {
    let (s, d) = match packet {
        Kind::IcmpEchoReply => ((PROD, "AppProd"), (DEV, "AppDev")),
        _ => ((DEV, "AppDev"), (PROD, "AppProd")),
    };
    let end = |(a, c): (&str, &'static str)| Endpoint {
        mac: Mac::default(),
        ip: Some(ip(a)),
        container: Some(c),
        network: None,
        host: false,
    };
    DropRecord {
        ts: UnixNanos(0),
        ts_ns: 0,
        kind: "drop",
        packet,
        len: 98,
        iface: DropPlace {
            name: Some("br-8be916360cbc".into()),
            ifindex: 3,
            netns: "host".into(),
            bridge: true,
        },
        src: end(s),
        dst: end(d),
        icmp: Some(IcmpView {
            icmp_type: 8,
            code: 0,
            id: Some(9),
            seq: Some(0),
        }),
        arp: None,
        vxlan: None,
        drop: DropInfo {
            reason: "NETFILTER_DROP".into(),
            location: Some("nft_do_chain+0x46f".into()),
            hook: Some("prerouting".into()),
            rule: Some(RuleRef {
                docker: Some(DockerMeaning {
                    meaning: "direct-access".into(),
                    summary:
                        "Docker's direct-access filter (raw PREROUTING) drops packets for AppProd"
                            .into(),
                    remedies: vec!["docker network connect prod AppDev".into()],
                    caveats: Vec::new(),
                }),
                ..RuleRef::from(RULE)
            }),
            candidates: Vec::new(),
            unattributed: None,
            meaning: None,
        },
    }
}

fn status() -> Status {
    Status {
        sample: 1,
        attached_interfaces: 5,
        docker: true,
        ..Status::default()
    }
}

#[test]
fn networks_hold_their_containers_and_hand_made_legs() {
    let topo = lab();
    let t0 = Instant::now();
    let map = MapView::build(&topo, &Edges::default(), status(), t0);
    let names: Vec<&str> = map.networks.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["devops", "prod"]);
    let devops = &map.networks[0];
    assert_eq!(devops.bridge, "br-8be916360cbc");
    assert_eq!(devops.subnets, ["172.20.0.0/16"]);
    let in_devops: Vec<(&str, &str, Option<&str>)> = devops
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.iface.as_str(), c.host_veth.as_deref()))
        .collect();
    // AppProd's hand-made eth1 is a leg of devops, not a Docker endpoint.
    assert_eq!(in_devops, [("AppDev", "eth0", Some("veth1111111"))]);
    assert_eq!(
        devops.legs,
        [view::LegBox {
            iface: "int_hote".into(),
            container: Some("AppProd".into()),
            peer: Some("eth1".into()),
        }]
    );
    assert_eq!(map.networks[1].containers[0].name, "AppProd");
    assert!(map.networks[1].legs.is_empty());
    assert_eq!(map.status.empty, None);
    assert!(map.edges.is_empty());
}

#[test]
fn on_a_swarm_node_overlays_are_listed_and_gateway_legs_are_dockers() {
    let topo = crate::docker::topology::tests::swarm_node_topology();
    let map = MapView::build(&topo, &Edges::default(), status(), Instant::now());
    assert_eq!(
        map.overlays,
        [view::OverlayBox {
            name: "ovl".into(),
            subnets: vec!["10.0.1.0/24".into()],
            vnis: vec![4097],
            ingress: false,
            containers: vec![view::OverlayMemberBox {
                name: "AppProd".into(),
                ips: vec!["10.0.1.3".into()],
            }],
        }]
    );
    // AppProd's way out on docker_gwbridge is drawn as a container of it, not a leg.
    let gw = map
        .networks
        .iter()
        .find(|n| n.name == "docker_gwbridge")
        .expect("docker_gwbridge's box");
    assert_eq!(gw.containers.len(), 1);
    assert_eq!(
        (
            gw.containers[0].name.as_str(),
            gw.containers[0].iface.as_str()
        ),
        ("AppProd", "eth2")
    );
    assert!(gw.legs.is_empty());
    // Hosts without overlays keep the map's JSON as it was.
    let json = serde_json::to_value(MapView::build(
        &lab(),
        &Edges::default(),
        status(),
        Instant::now(),
    ))
    .expect("JSON");
    assert!(json.get("overlays").is_none());
}

#[test]
fn an_empty_map_says_why() {
    let t0 = Instant::now();
    let none = Topology::default();
    let mut s = status();
    s.docker = false;
    let map = MapView::build(&none, &Edges::default(), s, t0);
    let why = map.status.empty.expect("a reason");
    assert!(why.contains("no Docker engine answers"), "{why}");
    let map = MapView::build(&none, &Edges::default(), status(), t0);
    assert!(map
        .status
        .empty
        .expect("a reason")
        .contains("no bridge network"));
}

#[test]
fn an_edge_shows_its_latest_ping_and_counts_them_all() {
    let topo = lab();
    let t0 = Instant::now();
    let mut edges = Edges::default();
    edges.roll(t0);
    for seq in 0..3 {
        edges.journey(&journey(PROD, seq, Outcome::Dropped), t0);
    }
    let map = MapView::build(&topo, &edges, status(), t0);
    let [e] = map.edges.as_slice() else {
        panic!("one edge: {:?}", map.edges)
    };
    assert_eq!((e.src.as_str(), e.dst.as_str()), ("AppDev", "AppProd"));
    assert_eq!((e.state, e.what), ("dropped", "ping"));
    assert_eq!((e.answered, e.dropped, e.unanswered), (0, 3, 0));
    assert_eq!(e.src_network.as_deref(), Some("devops"));
    assert_eq!(e.dst_network.as_deref(), Some("prod"));
    let d = e.drop.as_ref().expect("the drop");
    assert_eq!(
        (d.reason.as_str(), d.rule.as_deref()),
        ("NETFILTER_DROP", Some(RULE))
    );
    assert_eq!(d.explained, None, "no drop report yet");
    // The report adds the rule's Docker meaning.
    edges.drop_report(&drop_report(Kind::IcmpEchoRequest), t0);
    let map = MapView::build(&topo, &edges, status(), t0);
    let explained = map.edges[0].drop.as_ref().and_then(|d| d.explained.clone());
    let meaning = explained.and_then(|r| r.docker).expect("a Docker meaning");
    assert_eq!(meaning.meaning, "direct-access");
    // Two answered pings later, the edge is answered, with both counted.
    let t1 = t0 + Duration::from_millis(1500);
    edges.journey(&journey(PROD, 3, Outcome::Answered), t1);
    edges.journey(&journey(PROD, 4, Outcome::Answered), t1);
    edges.roll(t1);
    let map = MapView::build(&topo, &edges, status(), t1 + Duration::from_millis(500));
    let e = &map.edges[0];
    assert_eq!((e.state, e.answered, e.dropped), ("answered", 2, 3));
    assert_eq!((e.rtt_ms, e.rtt_avg_ms), (Some(0.07), Some(0.07)));
    // 5 pings in the 1.5 s since the first roll.
    assert!((e.rate - 3.3).abs() < 1e-9, "{}", e.rate);
    assert!((e.age_s - 0.5).abs() < 1e-9, "{}", e.age_s);
    assert_eq!(e.journeys.len(), KEPT_JOURNEYS);
    assert_eq!(e.journeys[0].seq, 4, "newest first");
    assert_eq!(e.journeys[0].hops[0].label, "veth of AppDev");
    assert_eq!(e.journeys[0].hops[1].at_us, 70);
}

#[test]
fn a_drop_report_before_its_journey_shows_the_drop_at_once() {
    let topo = lab();
    let t0 = Instant::now();
    let mut edges = Edges::default();
    // A dropped reply goes on the edge of the ping it answers.
    edges.drop_report(&drop_report(Kind::IcmpEchoReply), t0);
    let map = MapView::build(&topo, &edges, status(), t0);
    let e = &map.edges[0];
    assert_eq!((e.src.as_str(), e.dst.as_str()), ("AppDev", "AppProd"));
    assert_eq!((e.state, e.dropped), ("dropped", 0));
    assert_eq!(e.drop.as_ref().map(|d| d.phase), Some("reply"));
    // Other packets (ARP, neighbour discovery) make no edge.
    edges.drop_report(&drop_report(Kind::ArpRequest), t0);
    assert_eq!(edges.len(), 1);
}

#[test]
fn a_ping_over_the_hand_made_leg_names_it() {
    let topo = lab();
    let t0 = Instant::now();
    let mut edges = Edges::default();
    edges.journey(&journey(LEG, 0, Outcome::Answered), t0);
    let map = MapView::build(&topo, &edges, status(), t0);
    let e = &map.edges[0];
    assert_eq!(e.via.as_deref(), Some("int_hote"));
    assert_eq!(e.dst_network.as_deref(), Some("devops"));
    let labels: Vec<&str> = e.journeys[0]
        .hops
        .iter()
        .map(|h| h.label.as_str())
        .collect();
    assert_eq!(
        labels,
        [
            "veth of AppDev",
            "int_hote (hand-made, to AppProd)",
            "int_hote (hand-made, to AppProd)",
            "veth of AppDev"
        ]
    );
}

#[test]
fn unanswered_arp_is_an_edge_to_the_address_owner() {
    let t0 = Instant::now();
    let mut edges = Edges::default();
    let arp = ArpUnanswered {
        kind: "arp-unanswered",
        ts_ns: 0,
        who: DEV.parse().expect("ip"),
        who_container: Some("AppDev".into()),
        asked_for: "172.20.0.99".parse().expect("ip"),
        network: Some("devops".into()),
        iface: "veth1111111".into(),
        requests: 3,
    };
    edges.arp_unanswered(&arp, None, t0);
    let map = MapView::build(&lab(), &edges, status(), t0);
    let e = &map.edges[0];
    assert_eq!((e.src.as_str(), e.dst.as_str()), ("AppDev", "172.20.0.99"));
    assert_eq!(
        (e.state, e.what, e.arp_unanswered),
        ("unanswered", "arp", 3)
    );
    assert_eq!(e.dst_network.as_deref(), Some("devops"), "by subnet");
}

#[test]
fn edges_fade_out_and_leave_with_their_containers() {
    let topo = lab();
    let t0 = Instant::now();
    let mut out = MapOutput::default();
    out.edges.journey(&journey(PROD, 0, Outcome::Answered), t0);
    let mut gone = journey(PROD, 1, Outcome::Answered);
    gone.src.container = Some("pinger".into());
    out.edges.journey(&gone, t0);
    // pinger is not in the topology any more: its edge goes.
    let map = out.view(&topo, status(), t0);
    assert_eq!(map.edges.len(), 1);
    assert_eq!(map.edges[0].src, "AppDev");
    let later = t0 + FORGET_AFTER - Duration::from_secs(1);
    assert_eq!(out.view(&topo, status(), later).edges.len(), 1);
    assert!(out
        .view(&topo, status(), t0 + FORGET_AFTER)
        .edges
        .is_empty());
}

#[test]
fn edges_are_bounded_and_the_quietest_makes_room() {
    let t0 = Instant::now();
    let mut edges = Edges::default();
    for i in 0..MAX_EDGES as u32 {
        let mut j = journey(PROD, 0, Outcome::Answered);
        j.src.container = None;
        j.src.ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000u32 + i));
        let at = t0 + Duration::from_millis(u64::from(i));
        edges.journey(&j, at);
    }
    assert_eq!(edges.len(), MAX_EDGES);
    let late = t0 + Duration::from_secs(10);
    edges.journey(&journey(PROD, 0, Outcome::Answered), late);
    assert_eq!(edges.len(), MAX_EDGES);
    let names: Vec<String> = edges.sorted().iter().map(|e| e.src.name()).collect();
    assert!(!names.contains(&"10.0.0.0".to_owned()), "the quietest left");
    assert!(names.contains(&"AppDev".to_owned()));
}

#[test]
fn the_output_counts_events_per_second() {
    let topo = lab();
    let t0 = Instant::now();
    let mut out = MapOutput::default();
    assert_eq!(out.view(&topo, status(), t0).status.events_per_s, 0.0);
    out.events += 40;
    // Not a second yet: the figure stays.
    assert_eq!(
        out.view(&topo, status(), t0 + Duration::from_millis(300))
            .status
            .events_per_s,
        0.0
    );
    let s = out
        .view(&topo, status(), t0 + Duration::from_secs(2))
        .status;
    assert_eq!(s.events_per_s, 20.0);
}

#[test]
fn the_node_graph_frames_carry_the_panel_fields() {
    let topo = lab();
    let t0 = Instant::now();
    let mut edges = Edges::default();
    edges.journey(&journey(PROD, 0, Outcome::Dropped), t0);
    edges.drop_report(&drop_report(Kind::IcmpEchoRequest), t0);
    edges.journey(&journey(LEG, 1, Outcome::Answered), t0);
    let map = MapView::build(&topo, &edges, status(), t0);
    let g = serde_json::to_value(Graph::of(&map)).expect("json");
    let nodes = g["nodes"].as_array().expect("nodes");
    let ids: Vec<&str> = nodes.iter().filter_map(|n| n["id"].as_str()).collect();
    assert_eq!(ids, ["AppDev", "AppProd"]);
    let prod = &nodes[1];
    assert_eq!(prod["subtitle"], "prod");
    assert_eq!(prod["arc__dropped"], 0.5);
    assert_eq!(prod["arc__answered"], 0.5);
    let e = &g["edges"][0];
    assert_eq!(e["id"], "AppDev→AppProd");
    assert_eq!(
        (e["source"].as_str(), e["target"].as_str()),
        (Some("AppDev"), Some("AppProd"))
    );
    assert_eq!(e["color"], "green", "the latest ping was answered");
    assert_eq!(e["mainstat"], "answered 0.070 ms");
    assert_eq!(e["detail__rule"], RULE);
    assert!(e["detail__meaning"]
        .as_str()
        .is_some_and(|m| m.starts_with("Docker's direct-access filter")));
    for field in ["secondarystat", "detail__state", "detail__reason"] {
        assert!(e.get(field).is_some(), "{field}");
    }
}

#[test]
fn pings_lost_in_a_flood_do_not_turn_an_answered_edge_unanswered() {
    let t0 = Instant::now();
    let mut edges = Edges::default();
    let state = |edges: &Edges| edges.sorted()[0].state.name();
    edges.journey(&journey(PROD, 0, Outcome::Answered), t0);
    edges.journey(
        &journey(PROD, 1, Outcome::Unanswered),
        t0 + Duration::from_millis(10),
    );
    assert_eq!(state(&edges), "answered");
    assert_eq!(edges.sorted()[0].unanswered, 1, "counted all the same");
    // Once answers stop coming, unanswered it is.
    edges.journey(&journey(PROD, 2, Outcome::Unanswered), t0 + ANSWERED_HOLDS);
    assert_eq!(state(&edges), "unanswered");
    // A drop shows at once.
    edges.journey(&journey(PROD, 3, Outcome::Answered), t0 + ANSWERED_HOLDS);
    edges.journey(&journey(PROD, 4, Outcome::Dropped), t0 + ANSWERED_HOLDS);
    assert_eq!(state(&edges), "dropped");
}

/// A peer's hops (`--peer`) are shown as the peer's, even where their index and name are
/// those of an interface of this host, and a peer's drop says on which host.
#[test]
fn a_peers_hops_and_drop_are_named_by_its_host() {
    let topo = lab();
    let t0 = Instant::now();
    let mut edges = Edges::default();
    let mut j = journey(PROD, 0, Outcome::Dropped);
    j.hops.push(Hop {
        host: Some("node2".into()),
        ..hop("veth1111111", 10, Direction::Egress, 3_000, Phase::Request)
    });
    if let Some(d) = j.drop.as_mut() {
        d.host = Some("node2".into());
        d.iface = Some("link0".into());
    }
    edges.journey(&j, t0);
    let map = MapView::build(&topo, &edges, status(), t0);
    let e = &map.edges[0];
    let labels: Vec<&str> = e.journeys[0]
        .hops
        .iter()
        .map(|h| h.label.as_str())
        .collect();
    assert_eq!(labels, ["veth of AppDev", "node2:veth1111111"]);
    assert_eq!(
        e.drop.as_ref().and_then(|d| d.iface.as_deref()),
        Some("node2:link0")
    );
}

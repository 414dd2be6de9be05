//! The correlator's rules, case by case: answered, dropped and unanswered pings, late and
//! out-of-order sightings, ARP, bounds and statistics.

use super::*;
use crate::model::journey::fixtures::{
    arp, correlator, drop_of, ip, ping, rep, req, v4, A, ARP_TIMEOUT, B, BRIDGE, MS, SETTLE,
    TIMEOUT, VETH_A, VETH_B,
};
use crate::model::journey::{
    Family, Hop, Journey, Outcome, Phase, DEFAULT_SETTLE_NS, MAX_HOPS, STALE_SLACK,
};
use crate::model::kind::{Direction, Kind};

use Direction::{Egress, Ingress};

fn journeys(f: Vec<Finished>) -> Vec<Journey> {
    f.into_iter()
        .map(|f| match f {
            Finished::Journey(j) => j,
            other => panic!("expected a journey, got {other:?}"),
        })
        .collect()
}

fn one_journey(f: Vec<Finished>) -> Journey {
    let mut j = journeys(f);
    assert_eq!(j.len(), 1, "{j:?}");
    j.remove(0)
}

fn hop(at: (&str, u32), direction: Direction, ts_ns: u64, phase: Phase) -> Hop {
    Hop {
        iface: at.0.to_owned(),
        ifindex: at.1,
        direction,
        ts_ns,
        phase,
        host: None,
    }
}

#[test]
fn complete_ping_through_four_points() {
    let mut c = correlator();
    let t = 1_000 * MS;
    for s in ping(t, 1, 4 * MS) {
        c.observe(&s);
    }
    let last = t + 4 * MS;
    assert!(
        c.poll(last + SETTLE - 1).is_empty(),
        "reply hops still settling"
    );
    let j = one_journey(c.poll(last + SETTLE));
    assert_eq!(j.kind, "journey");
    assert_eq!(j.result, Outcome::Answered);
    assert_eq!(j.ts_ns, t);
    assert_eq!(j.rtt_ns, Some(4 * MS));
    assert_eq!(j.family, Family::Icmp);
    assert_eq!((j.id, j.seq), (7, 1));
    assert_eq!(j.src.ip, ip(A));
    assert_eq!(j.src.container.as_deref(), Some("alpha"));
    assert_eq!(j.dst.ip, ip(B));
    assert_eq!(j.dst.container.as_deref(), Some("beta"));
    assert_eq!(
        j.hops,
        vec![
            hop(VETH_A, Ingress, t, Phase::Request),
            hop(VETH_B, Egress, t + MS, Phase::Request),
            hop(VETH_B, Ingress, t + 2 * MS, Phase::Reply),
            hop(VETH_A, Egress, t + 4 * MS, Phase::Reply),
        ]
    );
    assert_eq!(j.drop, None);
    assert_eq!(j.last_seen, None);
    assert_eq!(c.pending(), 0);
    assert!(c.poll(u64::MAX).is_empty());
}

#[test]
fn journey_json_contract() {
    let mut c = correlator();
    for s in ping(1_000, 1, 400) {
        c.observe(&s);
    }
    let v = serde_json::to_value(c.flush()).expect("json");
    let j = &v[0];
    assert_eq!(j["kind"], "journey");
    assert_eq!(j["ts_ns"], 1_000);
    assert_eq!(j["family"], "icmp");
    assert_eq!(j["src"]["ip"], A);
    assert_eq!(j["src"]["container"], "alpha");
    assert_eq!(j["dst"]["ip"], B);
    assert_eq!(j["id"], 7);
    assert_eq!(j["seq"], 1);
    assert_eq!(j["result"], "answered");
    assert_eq!(j["rtt_ns"], 400);
    assert_eq!(j["hops"][0]["iface"], "vethA");
    assert_eq!(j["hops"][0]["ifindex"], 10);
    assert_eq!(j["hops"][0]["direction"], "ingress");
    assert_eq!(j["hops"][0]["ts_ns"], 1_000);
    assert_eq!(j["hops"][0]["phase"], "request");
    assert_eq!(j["hops"][3]["phase"], "reply");
    assert!(j["drop"].is_null());
    assert!(j["last_seen"].is_null());

    // Optional sub-fields are omitted, the journey's own options are null.
    let mut c = correlator();
    let mut s = req(5, 2, VETH_A, Egress);
    s.src_container = None;
    s.dst_container = None;
    c.observe(&s);
    let mut d = drop_of(9, Phase::Request, 2);
    d.location = None;
    d.rule = None;
    c.observe_drop(&d);
    let v = serde_json::to_value(c.flush()).expect("json");
    let j = &v[0];
    assert_eq!(j["result"], "dropped");
    assert!(j["rtt_ns"].is_null());
    assert!(j["src"].get("container").is_none());
    assert_eq!(j["drop"]["reason"], "NETFILTER_DROP");
    assert_eq!(j["drop"]["phase"], "request");
    assert_eq!(j["drop"]["iface"], "br-net");
    assert_eq!(j["drop"]["hook"], "forward");
    assert!(j["drop"].get("location").is_none());
    assert!(j["drop"].get("rule").is_none());
    assert_eq!(j["last_seen"]["iface"], "vethA");
    assert_eq!(j["last_seen"]["direction"], "egress");
}

/// A ping dropped in the sender's own namespace (no ARP reply there) reaches no observed
/// hook: its journey knows it by its drop alone, and names both ends from the drop's
/// labels (a reply's drop: the other way round).
#[test]
fn a_journey_known_by_its_drop_alone_names_its_containers() {
    let mut c = correlator();
    let mut d = drop_of(5 * MS, Phase::Request, 1);
    d.src_container = Some("AppDev");
    c.observe_drop(&d);
    let mut d = drop_of(6 * MS, Phase::Reply, 2);
    d.src_container = Some("AppProd");
    d.dst_container = Some("AppDev");
    c.observe_drop(&d);
    let js = journeys(c.flush());
    assert_eq!(js.len(), 2);
    assert!(js
        .iter()
        .all(|j| j.hops.is_empty() && j.result == Outcome::Dropped));
    assert_eq!(js[0].src.container.as_deref(), Some("AppDev"));
    assert_eq!(js[0].dst.container, None);
    assert_eq!(js[1].src.container.as_deref(), Some("AppDev"));
    assert_eq!(js[1].dst.container.as_deref(), Some("AppProd"));
}

#[test]
fn request_dropped_at_the_bridge() {
    let mut c = correlator();
    let t = 50 * MS;
    c.observe(&req(t, 1, VETH_A, Ingress));
    c.observe(&req(t + 10, 1, BRIDGE, Ingress));
    c.observe_drop(&drop_of(t + 20, Phase::Request, 1));
    // A drop finishes the journey settle_ns after it, not at the timeout.
    assert!(c.poll(t + 20 + SETTLE - 1).is_empty());
    let j = one_journey(c.poll(t + 20 + SETTLE));
    assert_eq!(j.result, Outcome::Dropped);
    assert_eq!(j.rtt_ns, None);
    assert_eq!(j.ts_ns, t);
    let d = j.drop.expect("drop joined");
    assert_eq!(d.reason, "NETFILTER_DROP");
    assert_eq!(d.location.as_deref(), Some("nf_hook_slow"));
    assert_eq!(d.iface.as_deref(), Some("br-net"));
    assert_eq!(d.rule.as_deref(), Some("filter FORWARD DROP"));
    assert_eq!(d.hook.as_deref(), Some("forward"));
    assert_eq!(d.phase, Phase::Request);
    assert_eq!(
        j.last_seen,
        Some(hop(BRIDGE, Ingress, t + 10, Phase::Request))
    );
    assert_eq!(j.hops.len(), 2);
}

#[test]
fn drop_stragglers_and_last_seen_before_the_drop() {
    let mut c = correlator();
    let t = 1_000;
    c.observe(&req(t, 1, VETH_A, Ingress));
    c.observe(&req(t + 100, 1, VETH_B, Egress));
    c.observe(&rep(t + 200, 1, VETH_B, Ingress));
    c.observe_drop(&drop_of(t + 300, Phase::Reply, 1));
    // A straggler sighting after the drop extends the settling and joins.
    c.observe(&req(t + 50, 1, BRIDGE, Ingress));
    let j = one_journey(c.poll(t + 300 + SETTLE));
    assert_eq!(
        j.result,
        Outcome::Dropped,
        "the reply never got past the drop"
    );
    assert_eq!(j.drop.as_ref().map(|d| d.phase), Some(Phase::Reply));
    assert_eq!(j.hops.len(), 4);
    assert_eq!(j.hops[1], hop(BRIDGE, Ingress, t + 50, Phase::Request));
    assert_eq!(
        j.last_seen,
        Some(hop(VETH_B, Ingress, t + 200, Phase::Reply))
    );
}

#[test]
fn reply_after_a_dropped_copy_is_answered() {
    let mut c = correlator();
    c.observe(&req(1_000, 1, VETH_A, Ingress));
    c.observe_drop(&drop_of(1_100, Phase::Request, 1));
    c.observe(&rep(1_500, 1, VETH_A, Egress));
    let j = one_journey(c.flush());
    assert_eq!(j.result, Outcome::Answered);
    assert_eq!(j.rtt_ns, Some(500));
    assert!(j.drop.is_some(), "the dropped copy is still reported");
    assert_eq!(j.last_seen, None);
}

#[test]
fn drop_of_an_unknown_journey_starts_one() {
    let mut c = correlator();
    c.observe_drop(&drop_of(7_000, Phase::Request, 9));
    assert_eq!(c.pending(), 1);
    let j = one_journey(c.poll(7_000 + SETTLE));
    assert_eq!(j.result, Outcome::Dropped);
    assert_eq!(j.ts_ns, 7_000);
    assert_eq!(j.seq, 9);
    assert_eq!(j.src.ip, ip(A));
    assert!(j.hops.is_empty());
    assert_eq!(j.last_seen, None);
}

#[test]
fn unanswered_after_timeout_not_before() {
    let mut c = correlator();
    let t = 3_000 * MS;
    c.observe(&req(t, 4, VETH_A, Ingress));
    c.observe(&req(t + 30, 4, BRIDGE, Ingress));
    c.observe(&req(t + 60, 4, VETH_B, Egress));
    assert!(c.poll(t + SETTLE).is_empty());
    assert!(c.poll(t + TIMEOUT - 1).is_empty());
    assert_eq!(c.pending(), 1);
    let j = one_journey(c.poll(t + TIMEOUT));
    assert_eq!(j.result, Outcome::Unanswered);
    assert_eq!(j.rtt_ns, None);
    assert_eq!(j.drop, None);
    assert_eq!(
        j.last_seen,
        Some(hop(VETH_B, Egress, t + 60, Phase::Request))
    );
    assert!(c.poll(t + 2 * TIMEOUT).is_empty());
}

#[test]
fn icmp6_ping() {
    let mut c = correlator();
    let (a, b) = (ip("fd00::2"), ip("fd00::3"));
    let base = Sighting {
        ts_ns: 100,
        kind: Kind::Icmp6EchoRequest,
        src_ip: a,
        dst_ip: b,
        id: 3,
        seq: 1,
        iface: "vethA",
        ifindex: 10,
        direction: Ingress,
        src_container: Some("alpha"),
        dst_container: Some("beta"),
        vni: None,
        host: None,
    };
    c.observe(&base);
    c.observe(&Sighting {
        ts_ns: 900,
        kind: Kind::Icmp6EchoReply,
        src_ip: b,
        dst_ip: a,
        direction: Egress,
        src_container: Some("beta"),
        dst_container: Some("alpha"),
        ..base
    });
    // An IPv4 reply with the same id/seq is another family: an orphan.
    c.observe(&rep(500, 1, VETH_A, Egress));
    let j = one_journey(c.flush());
    assert_eq!(j.family, Family::Icmp6);
    assert_eq!(j.result, Outcome::Answered);
    assert_eq!(j.rtt_ns, Some(800));
    assert_eq!((j.src.ip, j.dst.ip), (a, b));
    let v = serde_json::to_value(&j).expect("json");
    assert_eq!(v["family"], "icmp6");
    assert_eq!(v["src"]["ip"], "fd00::2");
    assert_eq!(c.orphan_replies(), 1);
}

#[test]
fn duplicate_sightings_keep_one_hop_each() {
    let mut c = correlator();
    c.observe(&req(1_000, 1, VETH_A, Ingress));
    c.observe(&req(1_000, 1, VETH_A, Ingress));
    c.observe(&req(1_300, 1, VETH_A, Ingress)); // retransmit of the same seq
    c.observe(&req(1_100, 1, VETH_A, Egress)); // same iface, other direction
    c.observe(&rep(2_000, 1, VETH_A, Ingress)); // same iface and direction, other phase
    c.observe(&rep(2_500, 1, VETH_A, Ingress));
    let j = one_journey(c.flush());
    assert_eq!(
        j.hops,
        vec![
            hop(VETH_A, Ingress, 1_000, Phase::Request),
            hop(VETH_A, Egress, 1_100, Phase::Request),
            hop(VETH_A, Ingress, 2_000, Phase::Reply),
        ]
    );
    // rtt is still first request to last reply sighting.
    assert_eq!(j.rtt_ns, Some(1_500));
}

#[test]
fn out_of_order_timestamps() {
    let mut c = correlator();
    let t = 10 * MS;
    let [a, b, r1, r2] = ping(t, 1, 1_000);
    // Delivered reply first, then the later request point, then the first.
    for s in [r2, r1, b, a] {
        c.observe(&s);
    }
    // A duplicate delivered late with an earlier time keeps the earliest.
    c.observe(&req(t - 5, 1, VETH_B, Egress));
    assert!(c.poll(t + 1_000 + SETTLE - 1).is_empty());
    let j = one_journey(c.poll(t + 1_000 + SETTLE));
    assert_eq!(j.result, Outcome::Answered);
    assert_eq!(j.ts_ns, t - 5);
    assert_eq!(j.rtt_ns, Some(1_005));
    let order: Vec<_> = j.hops.iter().map(|h| (h.iface.as_str(), h.ts_ns)).collect();
    assert_eq!(
        order,
        vec![
            ("vethB", t - 5),
            ("vethA", t),
            ("vethB", t + 500),
            ("vethA", t + 1_000)
        ]
    );
    assert_eq!(c.orphan_replies(), 0);
}

#[test]
fn interleaved_pings_with_different_seq() {
    let mut c = correlator();
    let [a1, b1, r1, s1] = ping(1_000, 1, 800);
    let [a2, b2, r2, s2] = ping(1_200, 2, 200);
    for s in [a1, a2, b1, b2, r2, r1, s2, s1] {
        c.observe(&s);
    }
    // A third, different id, never answered.
    let mut other = req(1_300, 1, VETH_A, Ingress);
    other.id = 8;
    c.observe(&other);
    assert_eq!(c.pending(), 3);
    let done = journeys(c.poll(1_800 + SETTLE));
    // Seq 2 settles first (its last reply was earlier).
    assert_eq!(done.iter().map(|j| j.seq).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(done[0].rtt_ns, Some(200));
    assert_eq!(done[1].rtt_ns, Some(800));
    assert!(done.iter().all(|j| j.hops.len() == 4 && j.id == 7));
    let j = one_journey(c.poll(1_300 + TIMEOUT));
    assert_eq!((j.id, j.result), (8, Outcome::Unanswered));
}

#[test]
fn reply_without_request_is_discarded() {
    let mut c = correlator();
    c.observe(&rep(1_000, 5, VETH_B, Ingress));
    c.observe(&rep(1_100, 5, VETH_A, Egress));
    assert_eq!(c.pending(), 1, "held in case the request is delivered late");
    assert!(c.poll(1_100 + SETTLE).is_empty());
    assert_eq!(c.orphan_replies(), 1);
    assert_eq!(c.pending(), 0);
    assert!(c.stats().is_empty());
}

#[test]
fn late_reply_does_not_join_a_timed_out_journey() {
    let mut c = correlator();
    c.observe(&req(0, 1, VETH_A, Ingress));
    // No poll in between: the reply after the timeout still does not join.
    c.observe(&rep(TIMEOUT + 1, 1, VETH_A, Egress));
    let j = one_journey(c.poll(TIMEOUT + 1));
    assert_eq!(j.result, Outcome::Unanswered);
    assert!(c.poll(TIMEOUT + 1 + SETTLE).is_empty());
    assert_eq!(c.orphan_replies(), 1);
}

#[test]
fn reused_seq_after_the_journey_ended_starts_a_new_one() {
    let mut c = correlator();
    for s in ping(0, 1, 100) {
        c.observe(&s);
    }
    for s in ping(10 * SETTLE, 1, 300) {
        c.observe(&s);
    }
    let done = journeys(c.poll(u64::MAX));
    assert_eq!(done.len(), 2);
    assert_eq!(done[0].rtt_ns, Some(100));
    assert_eq!(done[1].rtt_ns, Some(300));
    assert_eq!(done[1].ts_ns, 10 * SETTLE);
}

#[test]
fn duplicates_cannot_keep_a_journey_alive() {
    let mut c = correlator();
    c.observe(&req(0, 1, VETH_A, Ingress));
    let (mut t, mut finished_at) = (0, None);
    while t < 2 * TIMEOUT {
        t += SETTLE / 2;
        c.observe(&rep(t, 1, VETH_A, Egress));
        let done = journeys(c.poll(t));
        if !done.is_empty() {
            assert_eq!(done.len(), 1);
            assert_eq!(done[0].result, Outcome::Answered);
            assert!(finished_at.is_none(), "the later replies are orphans");
            finished_at = Some(t);
        }
    }
    assert_eq!(finished_at, Some(TIMEOUT + SETTLE));
    // The replies after it form an orphan, discarded.
    assert!(c.flush().is_empty());
    assert_eq!(c.orphan_replies(), 1);
}

#[test]
fn hops_are_bounded() {
    let mut c = correlator();
    for i in 0..(MAX_HOPS as u32 + 10) {
        let mut s = req(u64::from(i), 1, VETH_A, Ingress);
        s.ifindex = 100 + i;
        c.observe(&s);
    }
    let j = one_journey(c.flush());
    assert_eq!(j.hops.len(), MAX_HOPS);
}

#[test]
fn arp_answered_is_silent() {
    let mut c = correlator();
    let (a, b) = (A, B);
    c.observe_arp(&arp(1_000, true, a, b, "vethA"));
    c.observe_arp(&arp(1_010, true, a, b, "br-net"));
    c.observe_arp(&arp(1_020, true, a, b, "vethB"));
    c.observe_arp(&arp(1_100, false, b, a, "vethB"));
    c.observe_arp(&arp(1_110, false, b, a, "vethA"));
    // A request sighting delivered after its reply is not a new question.
    c.observe_arp(&arp(1_030, true, a, b, "vethC"));
    assert_eq!(c.pending(), 0);
    assert!(c.poll(10 * ARP_TIMEOUT).is_empty());
    // Announcements and probes expect no answer.
    c.observe_arp(&arp(20 * ARP_TIMEOUT, true, a, a, "vethA"));
    c.observe_arp(&arp(20 * ARP_TIMEOUT, true, "0.0.0.0", b, "vethA"));
    assert!(c.poll(30 * ARP_TIMEOUT).is_empty());
}

#[test]
fn arp_unanswered_coalesces_requests() {
    let mut c = correlator();
    let t = 5 * ARP_TIMEOUT;
    let dead = "172.20.0.99";
    for dt in [0, 300 * MS, 600 * MS] {
        c.observe_arp(&arp(t + dt, true, A, dead, "vethA"));
        c.observe_arp(&arp(t + dt + 10, true, A, dead, "br-net"));
    }
    // A reply to someone else does not answer it.
    c.observe_arp(&arp(t + 700 * MS, false, dead, "172.20.0.50", "br-net"));
    assert!(c.poll(t + ARP_TIMEOUT - 1).is_empty());
    let done = c.poll(t + ARP_TIMEOUT);
    assert_eq!(done.len(), 1);
    let Finished::ArpUnanswered(u) = &done[0] else {
        panic!("expected arp, got {done:?}");
    };
    assert_eq!(u.kind, "arp-unanswered");
    assert_eq!(u.ts_ns, t);
    assert_eq!(u.who, v4(A));
    assert_eq!(u.who_container.as_deref(), Some("alpha"));
    assert_eq!(u.asked_for, v4(dead));
    assert_eq!(u.network.as_deref(), Some("devnet"));
    assert_eq!(u.iface, "vethA");
    assert_eq!(u.requests, 3, "one per request, not per observation point");
    let v = serde_json::to_value(&done[0]).expect("json");
    assert_eq!(v["kind"], "arp-unanswered");
    assert_eq!(v["who"], A);
    assert_eq!(v["asked_for"], dead);
    assert_eq!(v["requests"], 3);

    // The next window starts a new report.
    c.observe_arp(&arp(t + ARP_TIMEOUT + 1, true, A, dead, "vethA"));
    let done = c.poll(t + 2 * ARP_TIMEOUT + 1);
    assert!(matches!(&done[..], [Finished::ArpUnanswered(u)] if u.requests == 1));
}

#[test]
fn arp_reply_after_the_window_is_too_late() {
    let mut c = correlator();
    c.observe_arp(&arp(0, true, A, B, "vethA"));
    c.observe_arp(&arp(ARP_TIMEOUT, false, B, A, "vethA"));
    let done = c.poll(ARP_TIMEOUT);
    assert!(matches!(&done[..], [Finished::ArpUnanswered(u)] if u.requests == 1));
}

#[test]
fn eviction_at_max_pending() {
    let mut c = Correlator::with_config(Config {
        max_pending: 2,
        ..Config::default()
    });
    for seq in 1..=3 {
        c.observe(&req(u64::from(seq), seq, VETH_A, Ingress));
    }
    // Sightings of pending journeys evict nothing.
    c.observe(&req(10, 3, VETH_B, Egress));
    assert_eq!(c.evicted(), 1);
    assert_eq!(c.pending(), 2);
    let j = one_journey(c.poll(0));
    assert_eq!((j.seq, j.result), (1, Outcome::Unanswered));
    for seq in 4..=1000 {
        c.observe(&req(u64::from(seq), seq, VETH_A, Ingress));
    }
    assert_eq!(c.pending(), 2);
    assert_eq!(c.evicted(), 998);
    assert_eq!(c.poll(0).len(), 997);
    assert!(c.due.len() <= 2 * 2 + STALE_SLACK + 1);
    // ARP pairs are bounded the same way.
    for i in 0..5u8 {
        c.observe_arp(&arp(
            u64::from(i),
            true,
            A,
            &format!("172.20.1.{i}"),
            "vethA",
        ));
    }
    assert_eq!(c.arps.len(), 2);
    assert_eq!(c.evicted(), 1001);
    let arps = c.poll(0);
    assert_eq!(arps.len(), 3);
    assert!(matches!(&arps[0], Finished::ArpUnanswered(u) if u.asked_for == v4("172.20.1.0")));
}

#[test]
fn floods_stay_bounded() {
    let mut c = Correlator::with_config(Config {
        max_pending: 64,
        ..Config::default()
    });
    let mut t = 0;
    for round in 0..50u16 {
        for i in 0..200u16 {
            t += 1_000;
            let [a, b, r1, r2] = ping(t, round * 200 + i, 500);
            c.observe(&a);
            c.observe(&b);
            c.observe(&r1);
            c.observe(&r2);
        }
        let _ = c.poll(t);
        assert!(c.journeys.len() <= 64);
        assert_eq!(c.journeys.len(), c.by_age.len());
        assert!(c.due.len() <= 2 * 64 + STALE_SLACK + 1);
    }
    let _ = c.flush();
    assert_eq!(c.pending(), 0);
    assert!(c.by_age.is_empty() && c.due.is_empty());
}

/// An answered ping's first check comes after its reply, so a flood of them queues
/// one live check per journey and no stale ones.
#[test]
fn answered_pings_leave_no_stale_checks() {
    let mut c = correlator();
    let mut t = 0;
    for seq in 0..5_000u16 {
        t += 20_000;
        for s in ping(t, seq, 30_000) {
            c.observe(&s);
        }
        if seq % 100 == 0 {
            assert!(c
                .poll(t)
                .iter()
                .all(|f| matches!(f, Finished::Journey(j) if j.result == Outcome::Answered)));
        }
        assert_eq!(c.due.len(), c.journeys.len());
    }
    let _ = c.flush();
    let stats = c.stats();
    assert_eq!((stats[0].sent, stats[0].answered), (5_000, 5_000));
}

#[test]
fn stats_min_avg_max() {
    let mut c = correlator();
    for (seq, rtt) in [(1, 100), (2, 200), (3, 600)] {
        for s in ping(u64::from(seq) * MS, seq, rtt) {
            c.observe(&s);
        }
    }
    c.observe(&req(10 * MS, 4, VETH_A, Ingress)); // lost
                                                  // Another pair without container names: labelled by address.
    let mut s = req(11 * MS, 1, VETH_A, Ingress);
    s.src_ip = ip("10.0.0.1");
    s.src_container = None;
    s.dst_container = None;
    c.observe(&s);
    let mut d = drop_of(11 * MS + 5, Phase::Request, 1);
    d.src_ip = ip("10.0.0.1");
    c.observe_drop(&d);
    assert!(c.stats().is_empty(), "updated only when journeys finish");
    let done = c.flush();
    assert_eq!(done.len(), 5);
    let stats = c.stats();
    assert_eq!(
        stats,
        vec![
            PairStats {
                src: "10.0.0.1".into(),
                dst: B.into(),
                sent: 1,
                answered: 0,
                lost: 1,
                rtt_min_ns: None,
                rtt_avg_ns: None,
                rtt_max_ns: None,
            },
            PairStats {
                src: "alpha".into(),
                dst: "beta".into(),
                sent: 4,
                answered: 3,
                lost: 1,
                rtt_min_ns: Some(100),
                rtt_avg_ns: Some(300),
                rtt_max_ns: Some(600),
            },
        ]
    );
    let v = serde_json::to_value(&stats[1]).expect("json");
    assert_eq!(v["rtt_avg_ns"], 300);
    assert_eq!(v["lost"], 1);
}

#[test]
fn flush_finishes_everything_in_deadline_order() {
    let mut c = correlator();
    c.observe(&req(0, 1, VETH_A, Ingress)); // unanswered, due at TIMEOUT
    for s in ping(100, 2, 50) {
        c.observe(&s); // answered, settling
    }
    c.observe_arp(&arp(10, true, A, "172.20.0.99", "vethA"));
    c.observe(&rep(20, 9, VETH_A, Egress)); // orphan
    let done = c.flush();
    assert_eq!(done.len(), 3);
    assert!(
        matches!(&done[0], Finished::Journey(j) if j.seq == 2 && j.result == Outcome::Answered)
    );
    assert!(matches!(&done[1], Finished::ArpUnanswered(_)));
    assert!(
        matches!(&done[2], Finished::Journey(j) if j.seq == 1 && j.result == Outcome::Unanswered)
    );
    assert_eq!(c.orphan_replies(), 1);
    assert_eq!(c.pending(), 0);
    assert!(c.poll(u64::MAX).is_empty());
    assert!(c.flush().is_empty());
}

#[test]
fn poll_orders_journeys_and_arp_by_deadline() {
    let mut c = correlator();
    for s in ping(0, 1, 10) {
        c.observe(&s); // due at 10 + SETTLE
    }
    c.observe_arp(&arp(0, true, A, "172.20.0.99", "vethA")); // due at ARP_TIMEOUT
    c.observe(&req(1, 2, VETH_A, Ingress)); // due at 1 + TIMEOUT
    let done = c.poll(u64::MAX);
    assert_eq!(done.len(), 3);
    assert!(matches!(&done[0], Finished::Journey(j) if j.seq == 1));
    assert!(matches!(&done[1], Finished::ArpUnanswered(_)));
    assert!(matches!(&done[2], Finished::Journey(j) if j.seq == 2));
}

#[test]
fn empty_poll() {
    let mut c = Correlator::with_config(Config::default());
    assert_eq!(c.config().settle_ns, DEFAULT_SETTLE_NS);
    let z = Correlator::new(TIMEOUT, SETTLE, ARP_TIMEOUT, 0);
    assert_eq!(z.config().max_pending, 1);
    assert!(c.poll(0).is_empty());
    assert!(c.poll(u64::MAX).is_empty());
    assert!(c.flush().is_empty());
    assert!(c.stats().is_empty());
    assert_eq!((c.evicted(), c.orphan_replies(), c.pending()), (0, 0, 0));
    // Non-echo kinds are ignored.
    let mut s = req(1, 1, VETH_A, Ingress);
    s.kind = Kind::IcmpUnreachable;
    c.observe(&s);
    let mut d = drop_of(1, Phase::Request, 1);
    d.kind = Kind::ArpRequest;
    c.observe_drop(&d);
    assert_eq!(c.pending(), 0);
    assert!(c.poll(u64::MAX).is_empty());
}

/// A ping from this host to a peer's container (`watch --peer`): the peer's hops join the
/// journey under the peer's name, the same interface on both hosts stays two hops, and a
/// drop on the peer names it.
#[test]
fn a_peers_hops_and_drop_join_the_journey() {
    let mut c = correlator();
    let t = 1_000 * MS;
    let mut here = req(t, 1, ("link0", 2), Egress);
    here.vni = Some(4097);
    c.observe(&req(t - MS, 1, VETH_A, Ingress));
    c.observe(&here);
    // The peer: the same interface name and index, on the other host.
    let there = Sighting {
        host: Some("node2"),
        direction: Ingress,
        ts_ns: t + MS,
        ..here
    };
    c.observe(&there);
    c.observe_drop(&DropSighting {
        host: Some("node2"),
        iface: Some("link0"),
        ..drop_of(t + 2 * MS, Phase::Request, 1)
    });
    let j = one_journey(c.poll(t + 2 * MS + SETTLE));
    assert_eq!(j.result, Outcome::Dropped);
    assert_eq!(j.vni, Some(4097));
    let hosts: Vec<(Option<&str>, &str)> = j
        .hops
        .iter()
        .map(|h| (h.host.as_deref(), h.iface.as_str()))
        .collect();
    assert_eq!(
        hosts,
        [(None, "vethA"), (None, "link0"), (Some("node2"), "link0")]
    );
    let d = j.drop.expect("the drop");
    assert_eq!(d.host.as_deref(), Some("node2"));
    assert_eq!(
        j.last_seen.and_then(|h| h.host),
        Some("node2".to_owned()),
        "last seen on the peer"
    );
}

/// What only a peer saw (a ping between two of its own containers) is its journey, not
/// this host's: not handed out, counted.
#[test]
fn a_ping_only_a_peer_saw_is_left_to_it() {
    let mut c = correlator();
    let t = 1_000 * MS;
    for s in ping(t, 1, 4 * MS) {
        c.observe(&Sighting {
            host: Some("node2"),
            ..s
        });
    }
    assert!(c.poll(t + 4 * MS + SETTLE).is_empty());
    assert_eq!(c.peers_only(), 1);
    assert!(c.stats().is_empty(), "not in this host's statistics");
}

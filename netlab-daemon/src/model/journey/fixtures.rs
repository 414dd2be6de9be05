//! What the journey tests share: timings, two containers `alpha` (A) and `beta` (B) on
//! one bridge, and builders of their echo, drop and ARP sightings.

use std::net::{IpAddr, Ipv4Addr};

use super::{
    ArpSighting, Config, Correlator, DropSighting, Finished, Phase, Sighting, DEFAULT_MAX_PENDING,
};
use crate::model::kind::{Direction, Kind};

use Direction::{Egress, Ingress};

pub(super) const MS: u64 = 1_000_000;
pub(super) const TIMEOUT: u64 = 5_000 * MS;
pub(super) const SETTLE: u64 = 200 * MS;
pub(super) const ARP_TIMEOUT: u64 = 1_000 * MS;

pub(super) const A: &str = "172.20.0.2";
pub(super) const B: &str = "172.20.0.3";
pub(super) const VETH_A: (&str, u32) = ("vethA", 10);
pub(super) const VETH_B: (&str, u32) = ("vethB", 11);
pub(super) const BRIDGE: (&str, u32) = ("br-net", 3);

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

pub(super) fn v4(s: &str) -> Ipv4Addr {
    s.parse().expect("ipv4")
}

pub(super) fn correlator() -> Correlator {
    Correlator::with_config(Config {
        timeout_ns: TIMEOUT,
        settle_ns: SETTLE,
        arp_timeout_ns: ARP_TIMEOUT,
        max_pending: DEFAULT_MAX_PENDING,
    })
}

/// An IPv4 echo between A ("alpha") and B ("beta"), id 7.
pub(super) fn echo(
    ts_ns: u64,
    phase: Phase,
    seq: u16,
    at: (&'static str, u32),
    direction: Direction,
) -> Sighting<'static> {
    let (kind, src, dst, sc, dc) = match phase {
        Phase::Request => (Kind::IcmpEchoRequest, A, B, "alpha", "beta"),
        Phase::Reply => (Kind::IcmpEchoReply, B, A, "beta", "alpha"),
    };
    Sighting {
        ts_ns,
        kind,
        src_ip: ip(src),
        dst_ip: ip(dst),
        id: 7,
        seq,
        iface: at.0,
        ifindex: at.1,
        direction,
        src_container: Some(sc),
        dst_container: Some(dc),
        vni: None,
        host: None,
    }
}

pub(super) fn req(ts: u64, seq: u16, at: (&'static str, u32), dir: Direction) -> Sighting<'static> {
    echo(ts, Phase::Request, seq, at, dir)
}

pub(super) fn rep(ts: u64, seq: u16, at: (&'static str, u32), dir: Direction) -> Sighting<'static> {
    echo(ts, Phase::Reply, seq, at, dir)
}

/// The four sightings of a complete ping `seq` starting at `t`, answered after `rtt`.
pub(super) fn ping(t: u64, seq: u16, rtt: u64) -> [Sighting<'static>; 4] {
    [
        req(t, seq, VETH_A, Ingress),
        req(t + rtt / 4, seq, VETH_B, Egress),
        rep(t + rtt / 2, seq, VETH_B, Ingress),
        rep(t + rtt, seq, VETH_A, Egress),
    ]
}

pub(super) fn drop_of(ts_ns: u64, phase: Phase, seq: u16) -> DropSighting<'static> {
    let (kind, src, dst) = match phase {
        Phase::Request => (Kind::IcmpEchoRequest, A, B),
        Phase::Reply => (Kind::IcmpEchoReply, B, A),
    };
    DropSighting {
        ts_ns,
        kind,
        src_ip: ip(src),
        dst_ip: ip(dst),
        src_container: None,
        dst_container: None,
        id: 7,
        seq,
        reason: "NETFILTER_DROP",
        location: Some("nf_hook_slow"),
        iface: Some("br-net"),
        rule: Some("filter FORWARD DROP"),
        hook: Some("forward"),
        host: None,
    }
}

pub(super) fn arp(
    ts_ns: u64,
    request: bool,
    sender: &str,
    target: &str,
    iface: &'static str,
) -> ArpSighting<'static> {
    ArpSighting {
        ts_ns,
        op_request: request,
        sender_ip: v4(sender),
        target_ip: v4(target),
        network: Some("devnet"),
        sender_container: Some(if request { "alpha" } else { "beta" }),
        iface,
    }
}

/// A correlator that has finished an answered ping (seq 1, rtt 0.412 ms), a ping whose
/// request was dropped (seq 2) and an unanswered ARP request, with what
/// [`Correlator::flush`] returned.
pub(super) fn answered_dropped_and_arp() -> (Correlator, Vec<Finished>) {
    let mut c = correlator();
    for s in ping(1_000, 1, 412_000) {
        c.observe(&s);
    }
    c.observe(&req(2_000_000, 2, VETH_A, Ingress));
    c.observe_drop(&drop_of(2_000_100, Phase::Request, 2));
    c.observe_arp(&arp(0, true, A, "172.20.0.99", "vethA"));
    let done = c.flush();
    assert_eq!(done.len(), 3);
    (c, done)
}

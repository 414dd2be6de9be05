//! The JSON line of a finished journey or unanswered ARP request, written field by field
//! without serde: a ping flood finishes tens of thousands of journeys a second. The bytes
//! are those `serde_json` writes for the derived `Serialize` impls of the records; the
//! tests here hold it to that.

use std::net::IpAddr;

use super::record::{ArpUnanswered, Finished, Hop, Journey, JourneyDrop, JourneyEnd};
use crate::kernel::clock::Clock;
use crate::model::jsonw::Object;

/// Appends the JSON line (with its newline) of a finished journey or unanswered ARP
/// request to `out`: its fields, preceded by `ts` (its `ts_ns` as RFC 3339 through
/// `clock`, like every other record).
///
/// The bytes are those `serde_json` writes for the derived `Serialize` impls, written
/// field by field without serde since a ping flood finishes tens of thousands of journeys
/// a second. A field added to the structs must be added here too; the tests compare
/// both. Never fails; the `Result` lets callers treat it like their other writers.
pub fn write_json(f: &Finished, clock: &Clock, out: &mut Vec<u8>) -> serde_json::Result<()> {
    let mut o = Object::begin(out);
    o.ascii("ts", &clock.to_unix(f.ts_ns()).rfc3339());
    match f {
        Finished::Journey(j) => journey_members(&mut o, j),
        Finished::ArpUnanswered(a) => arp_members(&mut o, a),
    }
    o.end();
    out.push(b'\n');
    Ok(())
}

/// The members of a [`Journey`], in the order of its fields.
fn journey_members(o: &mut Object<'_>, j: &Journey) {
    o.str("kind", j.kind);
    o.u64("ts_ns", j.ts_ns);
    o.str("family", j.family.name());
    end_json(o.key("src"), &j.src);
    end_json(o.key("dst"), &j.dst);
    o.u32("id", u32::from(j.id));
    o.u32("seq", u32::from(j.seq));
    o.opt_u32("vni", j.vni);
    o.ascii("result", j.result.name().as_bytes());
    match j.rtt_ns {
        Some(rtt) => o.u64("rtt_ns", rtt),
        None => o.null("rtt_ns"),
    }
    let hops = o.key("hops");
    hops.push(b'[');
    for (i, h) in j.hops.iter().enumerate() {
        if i > 0 {
            hops.push(b',');
        }
        hop_json(hops, h);
    }
    hops.push(b']');
    match &j.drop {
        Some(d) => drop_json(o.key("drop"), d),
        None => o.null("drop"),
    }
    match &j.last_seen {
        Some(h) => hop_json(o.key("last_seen"), h),
        None => o.null("last_seen"),
    }
}

/// The members of an [`ArpUnanswered`], in the order of its fields.
fn arp_members(o: &mut Object<'_>, a: &ArpUnanswered) {
    o.str("kind", a.kind);
    o.u64("ts_ns", a.ts_ns);
    o.ip("who", IpAddr::V4(a.who));
    o.opt_str("who_container", a.who_container.as_deref());
    o.ip("asked_for", IpAddr::V4(a.asked_for));
    o.opt_str("network", a.network.as_deref());
    o.str("iface", &a.iface);
    o.u32("requests", a.requests);
}

/// A [`JourneyEnd`] object.
fn end_json(out: &mut Vec<u8>, e: &JourneyEnd) {
    let mut o = Object::begin(out);
    o.ip("ip", e.ip);
    o.opt_str("container", e.container.as_deref());
    o.end();
}

/// A [`Hop`] object.
fn hop_json(out: &mut Vec<u8>, h: &Hop) {
    let mut o = Object::begin(out);
    o.str("iface", &h.iface);
    o.u32("ifindex", h.ifindex);
    o.ascii("direction", h.direction.name().as_bytes());
    o.u64("ts_ns", h.ts_ns);
    o.ascii("phase", h.phase.name().as_bytes());
    o.opt_str("host", h.host.as_deref());
    o.end();
}

/// A [`JourneyDrop`] object.
fn drop_json(out: &mut Vec<u8>, d: &JourneyDrop) {
    let mut o = Object::begin(out);
    o.str("reason", &d.reason);
    o.opt_str("location", d.location.as_deref());
    o.opt_str("iface", d.iface.as_deref());
    o.opt_str("rule", d.rule.as_deref());
    o.opt_str("hook", d.hook.as_deref());
    o.ascii("phase", d.phase.name().as_bytes());
    o.opt_str("host", d.host.as_deref());
    o.end();
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use serde::Serialize;

    use super::*;
    use crate::model::journey::fixtures::{self, ip, A, ARP_TIMEOUT, B, SETTLE, TIMEOUT};
    use crate::model::journey::{
        ArpSighting, Config, Correlator, DropSighting, Family, Outcome, Phase, Sighting, MAX_HOPS,
    };
    use crate::model::jsonw::tests::rng;
    use crate::model::kind::{Direction, Kind};

    use Direction::{Egress, Ingress};

    #[test]
    fn json_lines() {
        let clock = Clock::new();
        let (_, done) = fixtures::answered_dropped_and_arp();
        let mut bytes = Vec::new();
        for f in &done {
            write_json(f, &clock, &mut bytes).expect("json");
        }
        let text = String::from_utf8(bytes).expect("utf-8");
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one object per line"))
            .collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["ts"], clock.to_unix(1_000).to_string());
        assert_eq!(rows[0]["ts_ns"], 1_000);
        assert_eq!(rows[0]["kind"], "journey");
        assert_eq!(rows[0]["rtt_ns"], 412_000);
        assert_eq!(rows[1]["result"], "dropped");
        assert_eq!(rows[2]["kind"], "arp-unanswered");
        assert!(rows[2]["ts"].as_str().expect("ts").ends_with('Z'));
    }

    /// The JSON line as serde writes it for the derived impls: the reference for
    /// [`write_json`].
    fn serde_line(f: &Finished, clock: &Clock) -> String {
        #[derive(Serialize)]
        struct Stamped<'a, T> {
            ts: crate::kernel::clock::UnixNanos,
            #[serde(flatten)]
            body: &'a T,
        }
        let ts = clock.to_unix(f.ts_ns());
        let mut line = match f {
            Finished::Journey(j) => serde_json::to_string(&Stamped { ts, body: j }),
            Finished::ArpUnanswered(a) => serde_json::to_string(&Stamped { ts, body: a }),
        }
        .expect("json");
        line.push('\n');
        line
    }

    fn assert_json_like_serde(done: &[Finished], clock: &Clock) {
        let mut out = Vec::new();
        for f in done {
            out.clear();
            write_json(f, clock, &mut out).expect("json");
            assert_eq!(String::from_utf8_lossy(&out), serde_line(f, clock), "{f:?}");
        }
    }

    /// Names as they come: container and interface names, text that needs escaping,
    /// non-ASCII, empty.
    const NAMES: [&str; 8] = [
        "alpha",
        "veth1a2b3c4",
        "quote\"d",
        "back\\slash",
        "ctl\u{1}\t\n\r\u{1f}\u{7f}",
        "é→日本🦀",
        "",
        "br-8be916360cbc",
    ];

    #[test]
    fn json_matches_serde_for_correlated_journeys() {
        let clock = Clock::new();
        let mut next = rng(0x5eed);
        let mut c = Correlator::with_config(Config {
            timeout_ns: TIMEOUT,
            settle_ns: SETTLE,
            arp_timeout_ns: ARP_TIMEOUT,
            max_pending: 64,
        });
        let addrs = [ip(A), ip(B), ip("10.0.0.1"), ip("fd00::2"), ip("fe80::1:2")];
        let name = |n: u64| ((n & 3) != 0).then(|| NAMES[n as usize % NAMES.len()]);
        let mut done = Vec::new();
        let mut t = 0u64;
        for _ in 0..20_000 {
            t += next() % (SETTLE / 8);
            let r = next();
            let (src, dst) = (addrs[r as usize % 5], addrs[(r >> 3) as usize % 5]);
            let v6 = src.is_ipv6();
            let reply = r >> 6 & 1 == 1;
            let kind = match (v6, reply) {
                (false, false) => Kind::IcmpEchoRequest,
                (false, true) => Kind::IcmpEchoReply,
                (true, false) => Kind::Icmp6EchoRequest,
                (true, true) => Kind::Icmp6EchoReply,
            };
            let (id, seq) = ((r >> 8) as u16 % 3, (r >> 16) as u16 % 40);
            // Now and then delivered late, by up to a timeout.
            let ts = if r >> 24 & 15 == 0 {
                t.saturating_sub(next() % TIMEOUT)
            } else {
                t
            };
            if r >> 28 & 15 == 0 {
                c.observe_drop(&DropSighting {
                    ts_ns: ts,
                    kind,
                    src_ip: src,
                    dst_ip: dst,
                    src_container: None,
                    dst_container: None,
                    id,
                    seq,
                    reason: NAMES[(r >> 32) as usize % NAMES.len()],
                    location: name(r >> 36),
                    iface: name(r >> 40),
                    rule: name(r >> 44),
                    hook: name(r >> 48),
                    host: None,
                });
            } else if r >> 28 & 15 == 1 {
                c.observe_arp(&ArpSighting {
                    ts_ns: ts,
                    op_request: r >> 32 & 3 != 0,
                    sender_ip: Ipv4Addr::from(0xac14_0000 | ((r >> 34) as u32 % 4)),
                    target_ip: Ipv4Addr::from(0xac14_0000 | ((r >> 36) as u32 % 4)),
                    network: name(r >> 38),
                    sender_container: name(r >> 42),
                    iface: NAMES[(r >> 46) as usize % NAMES.len()],
                });
            } else {
                let iface = NAMES[(r >> 32) as usize % NAMES.len()];
                c.observe(&Sighting {
                    ts_ns: ts,
                    kind,
                    src_ip: src,
                    dst_ip: dst,
                    id,
                    seq,
                    iface,
                    ifindex: (r >> 36) as u32 % 4,
                    direction: if r >> 38 & 1 == 0 { Ingress } else { Egress },
                    src_container: name(r >> 40),
                    dst_container: name(r >> 44),
                    vni: None,
                    host: None,
                });
            }
            if r >> 50 & 15 == 0 {
                done.extend(c.poll(t));
            }
        }
        done.extend(c.flush());
        let count = |f: fn(&Finished) -> bool| done.iter().filter(|j| f(j)).count();
        assert!(count(|f| matches!(f, Finished::ArpUnanswered(_))) > 10);
        for outcome in [Outcome::Answered, Outcome::Dropped, Outcome::Unanswered] {
            let n = done
                .iter()
                .filter(|f| matches!(f, Finished::Journey(j) if j.result == outcome))
                .count();
            assert!(n > 10, "{outcome:?}: {n}");
        }
        assert!(count(|f| matches!(f, Finished::Journey(j) if j.family == Family::Icmp6)) > 10);
        assert_json_like_serde(&done, &clock);
    }

    /// Every optional member present and absent, extreme numbers and times, names that
    /// need escaping, up to [`MAX_HOPS`] hops.
    #[test]
    fn json_matches_serde_for_every_shape() {
        let clock = Clock::new();
        let mut next = rng(42);
        let text = |n: u64| NAMES[n as usize % NAMES.len()].to_owned();
        let opt = |n: u64| ((n & 3) != 0).then(|| text(n >> 2));
        let times = [0, 1, 999_999_999, 1_000_000_000, u64::MAX / 2, u64::MAX];
        let mut all = Vec::new();
        for i in 0..2_000u64 {
            let r = next();
            let ts_ns = if i % 4 == 0 {
                times[(r % 6) as usize]
            } else {
                r >> (r % 64)
            };
            let hop = |n: u64| Hop {
                iface: text(n),
                ifindex: (n >> 8) as u32,
                direction: if n & 1 == 0 { Ingress } else { Egress },
                ts_ns: n >> 3,
                phase: if n & 2 == 0 {
                    Phase::Request
                } else {
                    Phase::Reply
                },
                host: opt(n >> 40),
            };
            let family = if r & 1 == 0 {
                Family::Icmp
            } else {
                Family::Icmp6
            };
            let end = |n: u64| JourneyEnd {
                ip: if family == Family::Icmp {
                    IpAddr::from(Ipv4Addr::from(n as u32))
                } else {
                    IpAddr::from(std::net::Ipv6Addr::from(u128::from(n) << (n % 64)))
                },
                container: opt(n >> 32),
            };
            all.push(Finished::Journey(Journey {
                kind: "journey",
                ts_ns,
                family,
                src: end(next()),
                dst: end(next()),
                id: (r >> 8) as u16,
                seq: (r >> 24) as u16,
                vni: (r >> 52 & 1 == 0).then_some((r >> 53) as u32 & 0xff_ffff),
                result: [Outcome::Answered, Outcome::Dropped, Outcome::Unanswered]
                    [(r >> 40) as usize % 3],
                rtt_ns: (r >> 42 & 1 == 0).then(|| next() >> (r % 64)),
                hops: (0..(r >> 43) as usize % (MAX_HOPS + 1))
                    .map(|_| hop(next()))
                    .collect(),
                drop: (r >> 49 & 1 == 0).then(|| JourneyDrop {
                    reason: text(next()),
                    location: opt(next()),
                    iface: opt(next()),
                    rule: opt(next()),
                    hook: opt(next()),
                    phase: if r >> 50 & 1 == 0 {
                        Phase::Request
                    } else {
                        Phase::Reply
                    },
                    host: opt(next()),
                }),
                last_seen: (r >> 51 & 1 == 0).then(|| hop(next())),
            }));
            all.push(Finished::ArpUnanswered(ArpUnanswered {
                kind: "arp-unanswered",
                ts_ns,
                who: Ipv4Addr::from(next() as u32),
                who_container: opt(next()),
                asked_for: Ipv4Addr::from(next() as u32),
                network: opt(next()),
                iface: text(next()),
                requests: next() as u32 >> (r % 32),
            }));
        }
        assert_json_like_serde(&all, &clock);
    }
}

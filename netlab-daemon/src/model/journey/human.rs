//! The human-readable lines: one per finished journey or unanswered ARP request, and one
//! per pair of the ping summary.

use std::fmt::{self, Write as _};

use super::record::{Finished, Journey, JourneyEnd, Outcome, PairStats, Phase};
use crate::kernel::clock::Clock;
use crate::model::kind::{Direction, Family};

/// Appends the human-readable line (with its newline) to `out`:
/// `18:25:24.123  alpha → beta  ping id=7 seq=1  answered in 0.412 ms  request: vethA in, vethB out  reply: vethB in, vethA out`.
pub fn write_human(f: &Finished, clock: &Clock, out: &mut String) {
    let _ = write!(out, "{}  ", clock.to_unix(f.ts_ns()).time_of_day());
    match f {
        Finished::Journey(j) => journey_human(j, out),
        Finished::ArpUnanswered(a) => {
            match &a.who_container {
                Some(c) => out.push_str(c),
                None => {
                    let _ = write!(out, "{}", a.who);
                }
            }
            let _ = write!(
                out,
                " asked who has {}: no ARP reply ({} request{}) on {}",
                a.asked_for,
                a.requests,
                if a.requests == 1 { "" } else { "s" },
                a.iface
            );
            if let Some(n) = &a.network {
                let _ = write!(out, " ({n})");
            }
        }
    }
    out.push('\n');
}

fn journey_human(j: &Journey, out: &mut String) {
    let end = |out: &mut String, e: &JourneyEnd| match &e.container {
        Some(c) => out.push_str(c),
        None => {
            let _ = write!(out, "{}", e.ip);
        }
    };
    end(out, &j.src);
    out.push_str(" → ");
    end(out, &j.dst);
    let proto = if j.family == Family::Icmp6 {
        "ping6"
    } else {
        "ping"
    };
    let _ = write!(out, "  {proto} id={} seq={}  ", j.id, j.seq);
    if let Some(vni) = j.vni {
        let _ = write!(out, "vxlan {vni}  ");
    }
    match (j.result, j.rtt_ns) {
        (Outcome::Answered, Some(rtt)) => {
            let _ = write!(out, "answered in {} ms", Millis(rtt));
        }
        (Outcome::Answered, None) => out.push_str("answered"),
        (Outcome::Dropped, _) => {
            out.push_str("DROPPED");
            if let Some(host) = j.drop.as_ref().and_then(|d| d.host.as_deref()) {
                let _ = write!(out, " on host {host}");
            }
        }
        (Outcome::Unanswered, _) => out.push_str("unanswered"),
    }
    if let (Outcome::Dropped, Some(d)) = (j.result, &j.drop) {
        let _ = write!(out, " ({}): {}", d.phase.name(), d.reason);
        if let Some(l) = &d.location {
            let _ = write!(out, " at {l}");
        }
        if let Some(i) = &d.iface {
            let _ = write!(out, " on {i}");
        }
        if let Some(h) = &d.hook {
            let _ = write!(out, ", hook {h}");
        }
        if let Some(r) = &d.rule {
            let _ = write!(out, ", rule: {r}");
        }
    }
    if let Some(h) = &j.last_seen {
        out.push_str(", last seen on ");
        hop_at(out, h);
    }
    for phase in [Phase::Request, Phase::Reply] {
        let mut hops = j.hops.iter().filter(|h| h.phase == phase).peekable();
        if hops.peek().is_none() {
            continue;
        }
        out.push_str(match phase {
            Phase::Request => "  request: ",
            Phase::Reply => "  reply: ",
        });
        for (i, h) in hops.enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            hop_at(out, h);
        }
    }
}

/// `vethA in`, or `node2:link0 in` for a peer's hop.
fn hop_at(out: &mut String, h: &super::record::Hop) {
    if let Some(host) = &h.host {
        out.push_str(host);
        out.push(':');
    }
    let _ = write!(out, "{} {}", h.iface, short(h.direction));
}

fn short(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "in",
        Direction::Egress => "out",
    }
}

/// Nanoseconds shown as milliseconds with three decimals.
struct Millis(u64);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1_000_000, self.0 / 1_000 % 1_000)
    }
}

/// One line of the ping summary:
/// `alpha → beta  sent 4, answered 3, lost 1 (25.0%), rtt min/avg/max 0.100/0.300/0.600 ms`.
pub fn pair_line(p: &PairStats) -> String {
    let permille = p.lost.saturating_mul(1000) / p.sent.max(1);
    let mut s = format!(
        "{} → {}  sent {}, answered {}, lost {} ({}.{}%)",
        p.src,
        p.dst,
        p.sent,
        p.answered,
        p.lost,
        permille / 10,
        permille % 10
    );
    if let (Some(min), Some(avg), Some(max)) = (p.rtt_min_ns, p.rtt_avg_ns, p.rtt_max_ns) {
        let _ = write!(
            s,
            ", rtt min/avg/max {}/{}/{} ms",
            Millis(min),
            Millis(avg),
            Millis(max)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::journey::fixtures;

    #[test]
    fn human_lines() {
        let clock = Clock::new();
        let (c, done) = fixtures::answered_dropped_and_arp();
        let mut text = String::new();
        for f in &done {
            write_human(f, &clock, &mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        let tod = clock.to_unix(1_000).time_of_day().to_string();
        assert_eq!(
            lines[0],
            format!(
                "{tod}  alpha → beta  ping id=7 seq=1  answered in 0.412 ms  \
                 request: vethA in, vethB out  reply: vethB in, vethA out"
            )
        );
        assert!(
            lines[1].ends_with(
                "alpha → beta  ping id=7 seq=2  DROPPED (request): NETFILTER_DROP at \
                 nf_hook_slow on br-net, hook forward, rule: filter FORWARD DROP, \
                 last seen on vethA in  request: vethA in"
            ),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].ends_with(
                "alpha asked who has 172.20.0.99: no ARP reply (1 request) on vethA (devnet)"
            ),
            "{}",
            lines[2]
        );

        // A peer's hops and drop (`watch --peer`) are named by their host.
        let Some(Finished::Journey(mut j)) = done.get(1).cloned() else {
            panic!("the dropped journey");
        };
        j.vni = Some(4097);
        j.hops[0].host = Some("node2".into());
        if let Some(d) = j.drop.as_mut() {
            d.host = Some("node2".into());
        }
        j.last_seen = j.hops.first().cloned();
        let mut peer = String::new();
        write_human(&Finished::Journey(j), &clock, &mut peer);
        assert!(
            peer.contains(
                "ping id=7 seq=2  vxlan 4097  DROPPED on host node2 (request): NETFILTER_DROP"
            ) && peer
                .trim_end()
                .ends_with("last seen on node2:vethA in  request: node2:vethA in"),
            "{peer}"
        );

        let stats = c.stats();
        assert_eq!(
            pair_line(&stats[0]),
            "alpha → beta  sent 2, answered 1, lost 1 (50.0%), \
             rtt min/avg/max 0.412/0.412/0.412 ms"
        );
        let none = PairStats {
            src: "10.0.0.1".into(),
            dst: "10.0.0.2".into(),
            sent: 3,
            answered: 0,
            lost: 3,
            rtt_min_ns: None,
            rtt_avg_ns: None,
            rtt_max_ns: None,
        };
        assert_eq!(
            pair_line(&none),
            "10.0.0.1 → 10.0.0.2  sent 3, answered 0, lost 3 (100.0%)"
        );
    }
}

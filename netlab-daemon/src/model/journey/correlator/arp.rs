//! The ARP half of the [`Correlator`]: requests nobody answered within `arp_timeout_ns`
//! (see the [module docs](crate::model::journey) for the rules).

use std::cmp::Reverse;
use std::net::Ipv4Addr;
use std::sync::Arc;

use super::Correlator;
use crate::model::journey::record::{ArpUnanswered, Finished};
use crate::model::journey::sighting::ArpSighting;
use crate::model::journey::too_stale;

/// (who, asked_for).
pub(super) type ArpKey = (Ipv4Addr, Ipv4Addr);

/// A request pair waiting for its reply.
#[derive(Debug)]
pub(super) struct ArpPending {
    pub(super) serial: u64,
    first_ts: u64,
    pub(super) deadline: u64,
    who_container: Option<Arc<str>>,
    network: Option<Arc<str>>,
    iface: Arc<str>,
    requests: u32,
}

impl Correlator {
    /// Records an ARP request: it starts its pair's window or counts in the open one.
    pub(super) fn arp_request(&mut self, a: &ArpSighting<'_>) {
        if a.sender_ip == a.target_ip || a.sender_ip.is_unspecified() {
            return; // announcement or probe: no answer expected
        }
        let pair = (a.sender_ip, a.target_ip);
        if self.arp_answered.get(&pair).is_some_and(|&t| a.ts_ns <= t) {
            return; // delivered after its reply
        }
        if let Some(p) = self.arps.get_mut(&pair) {
            if a.ts_ns < p.deadline {
                if *p.iface == *a.iface {
                    p.requests = p.requests.saturating_add(1);
                    p.first_ts = p.first_ts.min(a.ts_ns);
                }
                if p.who_container.is_none() {
                    p.who_container = self.names.get_opt(a.sender_container);
                }
                if p.network.is_none() {
                    p.network = self.names.get_opt(a.network);
                }
                return;
            }
            let f = self.finish_arp(pair);
            self.ready.extend(f);
        }
        if self.arps.len() >= self.config.max_pending {
            while let Some(Reverse((_, serial, oldest))) = self.arp_due.pop() {
                if self.arps.get(&oldest).is_some_and(|p| p.serial == serial) {
                    let f = self.finish_arp(oldest);
                    self.ready.extend(f);
                    self.evicted += 1;
                    break;
                }
            }
        }
        let serial = self.serial();
        let deadline = a.ts_ns.saturating_add(self.config.arp_timeout_ns);
        let names = &mut self.names;
        self.arps.insert(
            pair,
            ArpPending {
                serial,
                first_ts: a.ts_ns,
                deadline,
                who_container: names.get_opt(a.sender_container),
                network: names.get_opt(a.network),
                iface: names.get(a.iface),
                requests: 1,
            },
        );
        self.arp_due.push(Reverse((deadline, serial, pair)));
        if too_stale(self.arp_due.len(), self.arps.len()) {
            let arps = &self.arps;
            self.arp_due.retain(|Reverse((_, serial, pair))| {
                arps.get(pair).is_some_and(|p| p.serial == *serial)
            });
        }
    }

    /// Records an ARP reply: it answers the request of the pair it replies to.
    pub(super) fn arp_reply(&mut self, a: &ArpSighting<'_>) {
        // The reply's target asked for its sender.
        let pair = (a.target_ip, a.sender_ip);
        if let Some(p) = self.arps.get(&pair) {
            if a.ts_ns < p.deadline {
                self.arps.remove(&pair);
            } else {
                let f = self.finish_arp(pair);
                self.ready.extend(f);
            }
        }
        let cap = self.config.max_pending;
        let known = self.arp_answered.len() < cap || self.arp_answered.contains_key(&pair);
        if known {
            let t = self.arp_answered.entry(pair).or_insert(a.ts_ns);
            *t = (*t).max(a.ts_ns);
        }
    }

    /// Removes a pending pair and reports its requests unanswered.
    pub(super) fn finish_arp(&mut self, pair: ArpKey) -> Option<Finished> {
        let p = self.arps.remove(&pair)?;
        Some(Finished::ArpUnanswered(ArpUnanswered {
            kind: "arp-unanswered",
            ts_ns: p.first_ts,
            who: pair.0,
            who_container: p.who_container.as_deref().map(str::to_owned),
            asked_for: pair.1,
            network: p.network.as_deref().map(str::to_owned),
            iface: String::from(&*p.iface),
            requests: p.requests,
        }))
    }
}

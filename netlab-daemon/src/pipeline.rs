//! From ring-buffer records to events: decode, label, explain, correlate, then hand each
//! event to every output.
//!
//! One [`Pipeline`] owns everything between the kernel's records and the outputs: the
//! topology used for labels, the drop context (reason names, kernel symbols, firewall
//! attribution), the ping-journey correlator, and the records held while a new port's
//! owner is looked up. What happens to an event (a line, a frame in a file, a message to
//! API clients, a counter) is up to the outputs ([`crate::output`]).

use std::any::Any;
use std::sync::Arc;

use anyhow::Context as _;
use netlab_common::{record, DropEvent, PacketEvent, RECORD_OFFSET};

use crate::docker::topology::Topology;
use crate::kernel::btf::Kallsyms;
use crate::kernel::clock::Clock;
use crate::kernel::loader::DropReasons;
use crate::model::event::{DropRecord, PacketRecord};
use crate::model::journey::{self, Correlator, Finished};
use crate::model::kind::Kind;
use crate::output::{Ctx, Event, Output};

/// What drop reports need to be explained.
pub struct DropContext {
    pub reasons: DropReasons,
    pub kallsyms: Option<Kallsyms>,
    /// The namespace netlab runs in (its inode).
    pub own_netns: u64,
    /// Only drops on observed interfaces of netlab's own namespace (explicit `--iface`).
    pub only_observed: bool,
    /// The firewall and its counters at the last attribution.
    pub firewall: crate::explain::firewall::Firewall,
    /// Netfilter drops waiting for the next counter snapshot.
    pub pending: Vec<DropRecord>,
}

impl DropContext {
    /// The context of a run that reports drops: the kernel's reason names, its symbols,
    /// netlab's namespace, and the firewall read once (for `engine`, the Docker engine's
    /// facts, when one answers).
    pub async fn new(
        reasons: crate::kernel::loader::DropReasons,
        kallsyms: Option<Kallsyms>,
        only_observed: bool,
        engine: Option<&crate::docker::EngineFacts>,
        nftrace: bool,
    ) -> Self {
        DropContext {
            reasons,
            kallsyms,
            own_netns: crate::kernel::links::netns_id(None).map_or(0, |(_, ino)| ino),
            only_observed,
            firewall: crate::explain::firewall::Firewall::read(engine, nftrace).await,
            pending: Vec::new(),
        }
    }
}

/// From kernel records to events, handed to every output.
pub struct Pipeline {
    /// Where events go, in order.
    outputs: Vec<Box<dyn Output>>,
    pub topo: Arc<Topology>,
    pub clock: Clock,
    pub drops: Option<DropContext>,
    pub journeys: Option<Correlator>,
    /// While a new veth's owner is being looked up, records wait here (raw) so that they
    /// are labelled with it; released when it is known, or at this deadline.
    hold_until: Option<std::time::Instant>,
    /// When the latest reason to hold came (a link change).
    held_since: Option<std::time::Instant>,
    held: Vec<Vec<u8>>,
    /// Interfaces a packet came from before the topology had them (each holds records
    /// once: one gone before a scan saw it stays unknown).
    unknown_ports: std::collections::HashSet<u32>,
}

/// The record type of a ring-buffer record (`record::*`).
fn record_kind(bytes: &[u8]) -> Option<u16> {
    bytes
        .get(RECORD_OFFSET..RECORD_OFFSET + 2)
        .map(|b| u16::from_ne_bytes([b[0], b[1]]))
}

/// How long records wait at most for a new veth's owner to be known.
/// Long enough for a rescan while the engine starts and removes containers in bursts
/// (its API then answers in seconds); records go out as soon as the owner is known.
const HOLD_AT_MOST: std::time::Duration = std::time::Duration::from_millis(3000);
/// Records held at most (beyond, they are released unlabelled rather than piling up).
const HOLD_MAX_RECORDS: usize = 65_536;

/// Name of the netfilter drop reason.
const NETFILTER_DROP: &str = "NETFILTER_DROP";

impl Pipeline {
    /// A pipeline without outputs (add them with [`Pipeline::with_output`]).
    pub fn new(
        topo: Arc<Topology>,
        drops: Option<DropContext>,
        journeys: Option<Correlator>,
    ) -> Self {
        Pipeline {
            outputs: Vec::new(),
            topo,
            clock: Clock::new(),
            drops,
            journeys,
            hold_until: None,
            held_since: None,
            held: Vec::new(),
            unknown_ports: Default::default(),
        }
    }

    /// Adds an output: it gets every event after those added before it.
    pub fn with_output(mut self, o: impl Output) -> Self {
        self.outputs.push(Box::new(o));
        self
    }

    /// The output of type `T`, if the pipeline has one.
    pub fn output<T: Output>(&self) -> Option<&T> {
        self.outputs
            .iter()
            .find_map(|o| (o.as_ref() as &dyn Any).downcast_ref::<T>())
    }

    /// The output of type `T`, if the pipeline has one, to change.
    pub fn output_mut<T: Output>(&mut self) -> Option<&mut T> {
        self.outputs
            .iter_mut()
            .find_map(|o| (o.as_mut() as &mut dyn Any).downcast_mut::<T>())
    }

    /// Whether an output wants nothing more (`--count` reached).
    pub fn full(&self) -> bool {
        self.outputs.iter().any(|o| o.done())
    }

    /// Events written by the outputs (lines, frames).
    pub fn printed(&self) -> u64 {
        self.outputs.iter().map(|o| o.written()).sum()
    }

    /// Hands `ev` to every output.
    fn emit(&mut self, ev: Event<'_>) -> anyhow::Result<()> {
        let ctx = Ctx {
            clock: &self.clock,
            topo: &self.topo,
        };
        emit_to(&mut self.outputs, ev, ctx)
    }

    /// Starts holding records back (a new link appeared: its owner is being looked up).
    pub fn hold(&mut self) {
        let now = std::time::Instant::now();
        if self.hold_until.is_none() {
            self.hold_until = Some(now + HOLD_AT_MOST);
        }
        self.held_since = Some(now);
    }

    /// Whether records are held back.
    pub fn holding(&self) -> bool {
        self.hold_until.is_some()
    }

    /// Uses `topo` for labels from now on; held records are released once no observed
    /// veth is unresolved any more.
    pub fn set_topology(&mut self, topo: Arc<Topology>) -> anyhow::Result<()> {
        self.set_scanned_topology(topo, std::time::Instant::now())
    }

    /// [`Pipeline::set_topology`] for a topology scanned from `started` on: a link that
    /// appeared after that is not in it, so what was held for it stays held (until a
    /// later scan, or the deadline).
    pub fn set_scanned_topology(
        &mut self,
        topo: Arc<Topology>,
        started: std::time::Instant,
    ) -> anyhow::Result<()> {
        self.topo = topo;
        let newer_links = self.held_since.is_some_and(|h| h > started);
        if self.topo.has_unresolved() {
            self.hold();
            Ok(())
        } else if newer_links && self.hold_until.is_some() {
            Ok(())
        } else {
            self.release()
        }
    }

    /// Releases held records if their deadline passed (call periodically).
    pub fn release_if_due(&mut self) -> anyhow::Result<()> {
        match self.hold_until {
            Some(t) if std::time::Instant::now() >= t => self.release(),
            _ => Ok(()),
        }
    }

    /// Labels and emits every held record, in order.
    pub fn release(&mut self) -> anyhow::Result<()> {
        self.hold_until = None;
        self.held_since = None;
        for bytes in std::mem::take(&mut self.held) {
            self.process(&bytes)?;
        }
        Ok(())
    }

    /// Handles one ring-buffer record.
    pub fn record(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        if self.hold_until.is_none() {
            if let Some(idx) = self.unknown_port(bytes) {
                // The kernel covered a port as it joined an observed bridge, and this
                // packet came before the netlink message about the port was read: held
                // until a scan says whose port it is.
                if self.unknown_ports.len() >= HOLD_MAX_RECORDS {
                    self.unknown_ports.clear();
                }
                if self.unknown_ports.insert(idx) {
                    self.hold();
                }
            }
        }
        if self.hold_until.is_some() {
            if self.held.len() < HOLD_MAX_RECORDS {
                self.held.push(bytes.to_vec());
                return Ok(());
            }
            self.release()?;
        }
        self.process(bytes)
    }

    /// Handles one ring-buffer record now.
    fn process(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let Some(kind) = record_kind(bytes) else {
            return Ok(());
        };
        match kind {
            record::TC_PACKET if bytes.len() >= std::mem::size_of::<PacketEvent>() => {
                let at = bytes.as_ptr();
                if at.align_offset(std::mem::align_of::<PacketEvent>()) == 0 {
                    // Ring-buffer records are 8-byte aligned: read in place, not copied.
                    // SAFETY: at least one PacketEvent of bytes at an address aligned for
                    // it, borrowed from `bytes` for no longer than `bytes`; any bit
                    // pattern is valid for this plain-integer repr(C) type.
                    let ev: &PacketEvent = unsafe { &*at.cast::<PacketEvent>() };
                    self.packet(ev)
                } else {
                    // SAFETY: as above; read_unaligned copes with the alignment.
                    let ev: PacketEvent = unsafe { std::ptr::read_unaligned(at.cast()) };
                    self.packet(&ev)
                }
            }
            record::DROP if bytes.len() >= std::mem::size_of::<DropEvent>() => {
                // SAFETY: as above, for DropEvent.
                let ev: DropEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
                self.drop_report(&ev)
            }
            _ => Ok(()),
        }
    }

    /// The interface of `bytes`, a packet record, if the topology does not have it.
    fn unknown_port(&self, bytes: &[u8]) -> Option<u32> {
        if record_kind(bytes) != Some(record::TC_PACKET)
            || bytes.len() < std::mem::size_of::<PacketEvent>()
        {
            return None;
        }
        let at = std::mem::offset_of!(PacketEvent, ifindex);
        let ifindex = u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
        self.topo.iface(ifindex).is_none().then_some(ifindex)
    }

    fn packet(&mut self, ev: &PacketEvent) -> anyhow::Result<()> {
        // Fields borrowed apart, so that the record borrows the topology while the
        // correlator and the outputs change (no reference count touched per packet).
        let Pipeline {
            outputs,
            topo,
            clock,
            journeys,
            ..
        } = self;
        let Some(rec) = PacketRecord::new(ev, topo, clock) else {
            return Ok(());
        };
        if let Some(c) = journeys.as_mut() {
            observe(c, &rec, ev.ts_ns);
        }
        emit_to(outputs, Event::Packet(&rec, ev), Ctx { clock, topo })
    }

    fn drop_report(&mut self, ev: &DropEvent) -> anyhow::Result<()> {
        let Some(ctx) = self.drops.as_mut() else {
            return Ok(());
        };
        let netns = u64::from(ev.netns);
        if ctx.only_observed && (netns != ctx.own_netns || self.topo.iface(ev.ifindex).is_none()) {
            return Ok(());
        }
        // Following: drops on this host's namespace or in a known container's, not in
        // namespaces netlab has nothing to do with.
        if netns != ctx.own_netns && self.topo.place(netns, ev.ifindex).is_none() {
            return Ok(());
        }
        let reason = ctx.reasons.name(ev.reason);
        let location = ctx.kallsyms.as_ref().and_then(|k| k.symbolize(ev.location));
        let Some(mut rec) =
            DropRecord::new(ev, &self.topo, &self.clock, reason, location, ctx.own_netns)
        else {
            return Ok(());
        };
        if let Some(why) = not_a_drop(&rec) {
            return self.emit(Event::NotADrop(&rec, why));
        }
        if by_netfilter(&rec) {
            if ctx.firewall.readable() {
                // Shown once the firewall counters tell which rule it was.
                ctx.pending.push(rec);
                return Ok(());
            }
            rec.drop.unattributed = ctx.firewall.unreadable.clone();
        }
        self.emit_drop(rec)
    }

    fn emit_drop(&mut self, rec: DropRecord) -> anyhow::Result<()> {
        if let Some(c) = self.journeys.as_mut() {
            observe_drop(c, &rec);
        }
        self.emit(Event::Drop(&rec))
    }

    /// Whether netfilter drops wait for attribution.
    pub fn has_pending_drops(&self) -> bool {
        self.drops.as_ref().is_some_and(|d| !d.pending.is_empty())
    }

    /// Attributes the waiting netfilter drops to rules with a fresh counter snapshot.
    pub async fn attribute_pending(&mut self) -> anyhow::Result<()> {
        let Some(ctx) = self.drops.as_mut() else {
            return Ok(());
        };
        if ctx.pending.is_empty() {
            return Ok(());
        }
        let mut pending = std::mem::take(&mut ctx.pending);
        let a = ctx.firewall.attribute(pending.len() as u64).await;
        let facts = crate::explain::docker_rules::DockerFacts::from_topology(&self.topo);
        let ctx = self.drops.as_mut().context("drop context")?;
        // Named with their comments: Docker's say what each rule is for.
        let rules: Vec<String> = a
            .culprits
            .iter()
            .map(|c| match &c.comment {
                Some(comment) => format!("{} comment {comment:?}", c.rule),
                None => c.rule.clone(),
            })
            .collect();
        let mut said_not_sure = false;
        for rec in &mut pending {
            // Exact first: the rule the kernel traced this very packet to.
            let hint = crate::explain::docker_rules::PacketHint {
                src: rec.src.ip,
                dst: rec.dst.ip,
            };
            if let Some(key) = trace_key(rec) {
                if let Some((r, hook)) = ctx.firewall.traced(&key, &facts, &hint).await {
                    if hook.is_some() {
                        rec.drop.hook = hook;
                    }
                    rec.drop.rule = Some(r);
                    continue;
                }
            }
            if let Some(why) = a.not_sure.as_ref().filter(|_| !said_not_sure) {
                log::info!("{why}: the rule behind these drops is not sure");
                said_not_sure = true;
            }
            let Some(first) = a.culprits.first() else {
                rec.drop.unattributed = Some(a.unattributed.clone().unwrap_or_else(|| {
                    "no rule's counter rose (a chain policy, or a rule without a counter)"
                        .to_owned()
                }));
                continue;
            };
            rec.drop.hook.clone_from(&first.hook);
            if a.not_sure.is_none() && (a.certain || a.culprits.len() == 1) {
                let hint = crate::explain::docker_rules::PacketHint {
                    src: rec.src.ip,
                    dst: rec.dst.ip,
                };
                rec.drop.rule = Some(ctx.firewall.rule_ref(first, a.certain, &facts, &hint));
            } else {
                rec.drop.candidates = rules.clone();
            }
        }
        for rec in pending {
            self.emit_drop(rec)?;
        }
        Ok(())
    }

    /// Journeys and unanswered ARP requests that are complete at `now_ns` (monotonic),
    /// each handed to the outputs as soon as it is finished.
    pub fn poll_journeys(&mut self, now_ns: u64) -> anyhow::Result<()> {
        let Pipeline {
            outputs,
            topo,
            clock,
            journeys,
            ..
        } = self;
        let Some(c) = journeys.as_mut() else {
            return Ok(());
        };
        let ctx = Ctx { clock, topo };
        c.poll_each(now_ns, |f| emit_to(outputs, Event::Finished(&f), ctx))
    }

    /// Adds what a peer saw (`--peer`) to the journeys: its time mapped to this host's
    /// monotonic clock, its hops and drop labelled with the peer's name.
    pub fn peer(&mut self, item: &crate::api::peer::PeerItem) {
        let Some(c) = self.journeys.as_mut() else {
            return;
        };
        let ts_ns = self.clock.to_monotonic(item.ts);
        let host = Some(&*item.host);
        match (&item.drop, item.direction, item.iface.as_deref()) {
            (Some(d), _, iface) => c.observe_drop(&journey::DropSighting {
                ts_ns,
                kind: item.kind,
                src_ip: item.src_ip,
                dst_ip: item.dst_ip,
                src_container: item.src_container.as_deref(),
                dst_container: item.dst_container.as_deref(),
                id: item.id,
                seq: item.seq,
                reason: &d.reason,
                location: d.location.as_deref(),
                iface,
                rule: d.rule.as_deref(),
                hook: d.hook.as_deref(),
                host,
            }),
            (None, Some(direction), Some(iface)) => c.observe(&journey::Sighting {
                ts_ns,
                kind: item.kind,
                src_ip: item.src_ip,
                dst_ip: item.dst_ip,
                id: item.id,
                seq: item.seq,
                iface,
                ifindex: item.ifindex,
                direction,
                src_container: item.src_container.as_deref(),
                dst_container: item.dst_container.as_deref(),
                vni: item.vni,
                host,
            }),
            (None, _, _) => {}
        }
    }

    /// Finishes every pending journey (at exit).
    pub fn flush_journeys(&mut self) -> anyhow::Result<()> {
        let Some(c) = self.journeys.as_mut() else {
            return Ok(());
        };
        let done = c.flush();
        self.emit_finished(done)
    }

    fn emit_finished(&mut self, done: Vec<Finished>) -> anyhow::Result<()> {
        for f in &done {
            self.emit(Event::Finished(f))?;
        }
        Ok(())
    }

    /// Emits topology events (an interface observed or gone, a container started...),
    /// under the same filters and `--count` as packets.
    pub fn topology(
        &mut self,
        events: Vec<crate::docker::topo_events::TopoEvent>,
    ) -> anyhow::Result<()> {
        for e in &events {
            self.emit(Event::Topology(e))?;
        }
        Ok(())
    }

    /// Writes out what the outputs gathered; `false` when a reader is gone (a closed
    /// pipe).
    pub fn flush(&mut self) -> anyhow::Result<bool> {
        let mut open = true;
        for o in &mut self.outputs {
            open &= o.flush()?;
        }
        Ok(open)
    }

    /// At the end of a run: the outputs complete what is open (a file).
    pub fn finish(&mut self) -> anyhow::Result<()> {
        for o in &mut self.outputs {
            o.finish()?;
        }
        Ok(())
    }
}

/// Hands `ev` to every output of `outputs`.
fn emit_to(outputs: &mut [Box<dyn Output>], ev: Event<'_>, ctx: Ctx<'_>) -> anyhow::Result<()> {
    for o in outputs {
        o.event(ev, ctx)?;
    }
    Ok(())
}

/// An echo reply freed with `NO_SOCKET` by `ping_rcv` had no *ping socket* waiting; a
/// ping using a raw socket (busybox, iputils without ping sockets, `netlab diagnose`) got
/// its own copy already. Reporting it as lost would contradict the ping that succeeded.
///
/// Likewise, neighbour discovery the kernel sends on its own into a container whose IPv6
/// is disabled (Docker's default) is freed with `IPV6DISABLED` every time a veth comes up:
/// noise, not a problem anyone asked about. Both still count in the per-reason counters.
/// The kernel program already leaves out the echo replies (`DropConfig::quiet_reason`,
/// which keeps a ping flood's replies out of the ring); this is the check for both.
/// Why a packet the kernel freed is not a drop anyone would want reported, if it is not:
/// nobody wanted it delivered. Such frees are counted apart (`not_drops`), never reported
/// as drops. An echo request or anything a firewall rule dropped is always a drop.
pub fn not_a_drop(rec: &DropRecord) -> Option<&'static str> {
    let reason = rec.drop.reason.as_str();
    let neighbour_or_listener = rec.packet.family() == "ndp" || rec.packet == Kind::Icmp6Other;
    if reason == "NO_SOCKET" && matches!(rec.packet, Kind::IcmpEchoReply | Kind::Icmp6EchoReply) {
        // A reply whose ping has exited: nobody waits for it any more.
        return Some("echo reply nobody waits for");
    }
    if reason == "OTHERHOST" && rec.iface.bridge {
        // A bridge hands itself every frame it forwards while it is promiscuous (tcpdump
        // on it): its copy of a frame for another device ends here, the frame went on.
        return Some("copy of a forwarded frame, handed up a promiscuous bridge");
    }
    if reason == "IPV6DISABLED" && neighbour_or_listener {
        // Neighbour discovery and multicast listener reports reach namespaces whose IPv6
        // is off (the host side of Docker's bridges, containers on IPv4-only networks).
        return Some("IPv6 is off where it arrived");
    }
    // Neighbour discovery and listener messages the IPv6 stack read and had no use for:
    // multicast for a group nobody joined here (ip6_mc_input), or messages ndisc ignored
    // (icmpv6_rcv). The kernel frees them without a specific reason (NOT_SPECIFIED), or,
    // before 5.17, without any.
    let unspecific = reason == "NOT_SPECIFIED" || reason == crate::kernel::loader::UNKNOWN_REASON;
    let freed_in = |f: &str| {
        rec.drop
            .location
            .as_deref()
            .and_then(|l| l.strip_prefix(f))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('+'))
    };
    if unspecific
        && neighbour_or_listener
        && (freed_in("ip6_mc_input") || freed_in("icmpv6_rcv") || freed_in("ndisc_rcv"))
    {
        return Some("neighbour discovery the kernel read and had no use for");
    }
    None
}

/// What a traced verdict of this drop would carry: its ICMP packet.
fn trace_key(rec: &DropRecord) -> Option<crate::explain::nftrace::PacketKey> {
    let icmp = rec.icmp.as_ref()?;
    Some(crate::explain::nftrace::PacketKey {
        src: rec.src.ip?,
        dst: rec.dst.ip?,
        icmp_type: icmp.icmp_type,
        id: icmp.id?,
        seq: icmp.seq?,
    })
}

/// Whether netfilter dropped it: by reason, or, on kernels without drop reasons, because
/// it was freed where netfilter frees a verdict's drop (`nf_hook_slow`).
fn by_netfilter(rec: &DropRecord) -> bool {
    rec.drop.reason == NETFILTER_DROP
        || (rec.drop.reason == crate::kernel::loader::UNKNOWN_REASON
            && rec
                .drop
                .location
                .as_deref()
                .is_some_and(|l| l.starts_with("nf_hook_slow+")))
}

/// Feeds an echo packet or an ARP packet to the correlator.
fn observe(c: &mut Correlator, rec: &PacketRecord<'_>, ts_ns: u64) {
    let kind = rec.kind;
    if kind.is_echo() {
        let (Some(src_ip), Some(dst_ip), Some(icmp)) = (rec.src.ip, rec.dst.ip, rec.icmp.as_ref())
        else {
            return;
        };
        let (Some(id), Some(seq)) = (icmp.id, icmp.seq) else {
            return;
        };
        c.observe(&journey::Sighting {
            ts_ns,
            kind,
            src_ip,
            dst_ip,
            id,
            seq,
            iface: rec.iface.name,
            ifindex: rec.iface.ifindex,
            direction: rec.direction,
            src_container: rec.src.container,
            dst_container: rec.dst.container,
            vni: rec.vxlan.as_ref().map(|v| v.vni),
            host: None,
        });
    } else if let Some(a) = rec.arp.as_ref() {
        if matches!(kind, Kind::ArpRequest | Kind::ArpReply) {
            c.observe_arp(&journey::ArpSighting {
                ts_ns,
                op_request: kind == Kind::ArpRequest,
                sender_ip: a.sender_ip,
                target_ip: a.target_ip,
                network: rec.iface.network.or(rec.src.network),
                sender_container: rec.src.container,
                iface: rec.iface.name,
            });
        }
    }
}

fn observe_drop(c: &mut Correlator, rec: &DropRecord) {
    let kind = rec.packet;
    if !kind.is_echo() {
        return;
    }
    let (Some(src_ip), Some(dst_ip), Some(icmp)) = (rec.src.ip, rec.dst.ip, rec.icmp.as_ref())
    else {
        return;
    };
    let (Some(id), Some(seq)) = (icmp.id, icmp.seq) else {
        return;
    };
    c.observe_drop(&journey::DropSighting {
        ts_ns: rec.ts_ns,
        kind,
        src_ip,
        dst_ip,
        src_container: rec.src.container,
        dst_container: rec.dst.container,
        id,
        seq,
        reason: &rec.drop.reason,
        location: rec.drop.location.as_deref(),
        iface: rec.iface.name.as_deref(),
        rule: rec.drop.rule.as_ref().map(|r| r.rule.as_str()),
        hook: rec.drop.hook.as_deref(),
        host: None,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::clock::UnixNanos;
    use crate::model::event::{DropInfo, DropPlace, Endpoint};

    fn freed(packet: &'static str, dst: &str, reason: &str, location: Option<&str>) -> DropRecord {
        let ep = |ip: &str| Endpoint {
            mac: crate::model::decode::Mac::default(),
            ip: ip.parse().ok(),
            container: None,
            network: None,
            host: false,
        };
        DropRecord {
            ts: UnixNanos(0),
            ts_ns: 0,
            kind: "drop",
            packet: Kind::from_name(packet).expect("a kind"),
            len: 72,
            iface: DropPlace {
                name: Some("br-1".into()),
                ifindex: 3,
                netns: "host".into(),
                bridge: true,
            },
            src: ep("fe80::1"),
            dst: ep(dst),
            icmp: None,
            arp: None,
            vxlan: None,
            drop: DropInfo {
                reason: reason.into(),
                location: location.map(str::to_owned),
                hook: None,
                rule: None,
                candidates: Vec::new(),
                unattributed: None,
                meaning: None,
            },
        }
    }

    #[test]
    fn multicast_neighbour_discovery_nobody_joined_is_not_a_drop() {
        // Seen on 6.18 on IPv6 Docker networks: solicitations and listener reports for
        // groups nobody joined, freed by ip6_mc_input; messages ndisc ignored, by
        // icmpv6_rcv. Before 5.17 the same frees come without a reason.
        for (packet, reason, at) in [
            ("ndp-router-solicit", "NOT_SPECIFIED", "ip6_mc_input+0x15e"),
            ("ndp-neighbor-solicit", "NOT_SPECIFIED", "icmpv6_rcv+0x2c1"),
            ("ndp-neighbor-advert", "NOT_SPECIFIED", "icmpv6_rcv+0x2c1"),
            ("icmp6-other", "NOT_SPECIFIED", "ip6_mc_input+0x15e"),
            (
                "ndp-neighbor-solicit",
                crate::kernel::loader::UNKNOWN_REASON,
                "icmpv6_rcv+0x90",
            ),
            ("ndp-neighbor-solicit", "IPV6DISABLED", "ipv6_rcv+0x10"),
        ] {
            let rec = freed(packet, "ff02::2", reason, Some(at));
            assert!(not_a_drop(&rec).is_some(), "{packet} {reason} at {at}");
        }
    }

    #[test]
    fn what_someone_wanted_delivered_stays_a_drop() {
        for (packet, reason, at) in [
            // A firewall rule dropped it: always reported.
            (
                "ndp-neighbor-solicit",
                "NETFILTER_DROP",
                Some("nf_hook_slow+0x8c"),
            ),
            // An echo request freed without a reason is a lost ping.
            (
                "icmp6-echo-request",
                "NOT_SPECIFIED",
                Some("ip6_mc_input+0x15e"),
            ),
            (
                "icmp-echo-request",
                crate::kernel::loader::UNKNOWN_REASON,
                Some("icmp_rcv+0x1"),
            ),
            // Neighbour discovery freed somewhere else, for another reason.
            (
                "ndp-neighbor-solicit",
                "NOT_SPECIFIED",
                Some("ip6_rcv_core+0x10"),
            ),
            (
                "ndp-neighbor-solicit",
                "NOT_SPECIFIED",
                Some("icmpv6_rcv_extra+0x1"),
            ),
            ("ndp-neighbor-solicit", "NOT_SPECIFIED", None),
            (
                "ndp-neighbor-advert",
                "PKT_TOO_SMALL",
                Some("icmpv6_rcv+0x20"),
            ),
            (
                "icmp-echo-reply",
                "NETFILTER_DROP",
                Some("nf_hook_slow+0x8c"),
            ),
        ] {
            let rec = freed(packet, "fd00::2", reason, at);
            assert_eq!(not_a_drop(&rec), None, "{packet} {reason} at {at:?}");
        }
    }

    /// Seen on 6.18 with tcpdump on an overlay sandbox's br0: every echo the bridge
    /// forwarded was also handed up it and freed by `ip_rcv_core`, while the ping was
    /// answered. On a device that is not a bridge, a frame for another MAC is a drop.
    #[test]
    fn a_promiscuous_bridges_copy_is_not_a_drop() {
        let mut rec = freed(
            "icmp-echo-request",
            "10.0.1.4",
            "OTHERHOST",
            Some("ip_rcv_core+0x22c"),
        );
        assert!(not_a_drop(&rec).is_some());
        rec.iface.bridge = false;
        assert_eq!(not_a_drop(&rec), None);
    }

    /// The real pipeline over the course's lab, its outputs read back.
    mod outputs {
        use super::super::*;
        use crate::model::decode::tests::{arp_frame, icmp4_frame};
        use crate::model::filter::Filter;
        use crate::output::{Broadcast, Collect, Format, Lines};
        use netlab_common::{direction, kind as k, record, PacketEvent, SNAP_LEN};

        /// AppDev's veth in the course's lab.
        const APPDEV_VETH: u32 = 10;

        fn lab() -> Arc<Topology> {
            Arc::new(crate::docker::topology::tests::course_lab_topology())
        }

        fn ev(frame: &[u8], kind: u8, dir: u8, ts_ns: u64) -> PacketEvent {
            let mut data = [0u8; SNAP_LEN];
            data[..frame.len()].copy_from_slice(frame);
            PacketEvent {
                ts_ns,
                ifindex: APPDEV_VETH,
                pkt_len: frame.len() as u32,
                sample_rate: 1,
                cap_len: frame.len() as u16,
                direction: dir,
                kind,
                record: record::TC_PACKET,
                encap: 0,
                _pad: [0; 5],
                data,
            }
        }

        fn bytes(ev: &PacketEvent) -> Vec<u8> {
            // SAFETY: a plain-integer repr(C) struct with explicit padding: every byte is
            // initialised.
            unsafe {
                std::slice::from_raw_parts(
                    (ev as *const PacketEvent).cast::<u8>(),
                    std::mem::size_of::<PacketEvent>(),
                )
            }
            .to_vec()
        }

        fn request(seq: u16) -> PacketEvent {
            ev(
                &icmp4_frame(8, 7, seq),
                k::ICMP_ECHO_REQUEST,
                direction::INGRESS,
                1_000 + u64::from(seq),
            )
        }

        fn lines(format: Format, filter: Filter, limit: Option<u64>) -> Lines<Vec<u8>> {
            Lines::new(Vec::new(), format, filter, limit)
        }

        fn written(p: &mut Pipeline) -> String {
            let out = p.output_mut::<Lines<Vec<u8>>>().expect("a lines output");
            String::from_utf8(std::mem::take(out.get_mut())).expect("utf-8")
        }

        #[test]
        fn a_packet_becomes_the_json_line_of_its_record() {
            let topo = lab();
            let mut p = Pipeline::new(Arc::clone(&topo), None, None).with_output(lines(
                Format::Json,
                Filter::default(),
                None,
            ));
            let e = request(1);
            p.record(&bytes(&e)).expect("record");
            assert!(p.flush().expect("flush"));
            let mut want = Vec::new();
            PacketRecord::new(&e, &topo, &p.clock)
                .expect("a record")
                .write_json(&mut want)
                .expect("json");
            let got = written(&mut p);
            assert_eq!(got.as_bytes(), want.as_slice());
            let v: serde_json::Value = serde_json::from_str(&got).expect("a JSON line");
            assert_eq!(v["iface"]["container"], "AppDev");
            assert_eq!(v["kind"], "icmp-echo-request");
            assert_eq!(p.printed(), 1);
        }

        #[test]
        fn each_output_filters_and_counts_for_itself() {
            let prod = Filter::new(&["AppProd".into()], &[], &[]).expect("filter");
            let arp = Filter::new(&[], &[], &["arp".into()]).expect("filter");
            let mut p = Pipeline::new(lab(), None, None)
                .with_output(lines(Format::Text, prod, None))
                .with_output(Lines::new(Vec::<u8>::new(), Format::Text, arp, Some(1)))
                .with_output(Collect::default());
            let arp_ev = ev(&arp_frame(1), k::ARP_REQUEST, direction::INGRESS, 5);
            for e in [request(1), arp_ev, arp_ev, request(2)] {
                p.record(&bytes(&e)).expect("record");
            }
            p.flush().expect("flush");
            // AppProd is on neither end nor on the interface: nothing for the first.
            assert_eq!(written(&mut p), "");
            // The second took the first ARP request and is full.
            let second = p.outputs[1].as_mut() as &mut dyn std::any::Any;
            let second = second.downcast_mut::<Lines<Vec<u8>>>().expect("lines");
            let text = String::from_utf8(second.get_mut().clone()).expect("utf-8");
            assert_eq!(text.lines().count(), 1, "{text}");
            assert!(
                text.contains("arp who-has 172.20.0.3 tell 172.20.0.2"),
                "{text}"
            );
            assert!(p.full());
            assert_eq!(p.printed(), 1);
        }

        #[test]
        fn journeys_reach_every_output() {
            let mut p = Pipeline::new(lab(), None, Some(Correlator::with_timeout(1_000_000)))
                .with_output(lines(Format::Json, Filter::default(), None))
                .with_output(Collect::default());
            let mut reply = ev(
                &icmp4_frame(0, 7, 1),
                k::ICMP_ECHO_REPLY,
                direction::EGRESS,
                2_000,
            );
            // The reply goes back from .3 to .2.
            for (a, b) in (26..30).zip(30..34) {
                reply.data.swap(a, b);
            }
            for e in [request(1), reply] {
                p.record(&bytes(&e)).expect("record");
            }
            p.flush_journeys().expect("journeys");
            p.flush().expect("flush");
            let got = written(&mut p);
            let journeys: Vec<serde_json::Value> = got
                .lines()
                .map(|l| serde_json::from_str(l).expect("JSON"))
                .filter(|v: &serde_json::Value| v["kind"] == "journey")
                .collect();
            assert_eq!(journeys.len(), 1, "{got}");
            assert_eq!(journeys[0]["seq"], 1);
            assert_eq!(journeys[0]["result"], "answered", "{got}");
            assert_eq!(journeys[0]["src"]["ip"], "172.20.0.2");
            let kept = p.output::<Collect>().expect("collect");
            assert_eq!(kept.finished.len(), 1);
            assert!(kept.drops.is_empty());
        }

        #[test]
        fn api_clients_get_the_same_line_and_what_their_filters_need() {
            let (tx, mut rx) = tokio::sync::broadcast::channel(8);
            let topo = lab();
            let mut p = Pipeline::new(Arc::clone(&topo), None, None)
                .with_output(Broadcast::new(tx))
                .with_output(lines(Format::Json, Filter::default(), None));
            p.record(&bytes(&request(3))).expect("record");
            p.flush().expect("flush");
            let sent = rx.try_recv().expect("one event");
            assert_eq!(sent.json.as_ref(), written(&mut p).as_bytes());
            assert!(sent.text.ends_with(b"\n"));
            assert_eq!(sent.meta.kind, "icmp-echo-request");
            assert!(sent.meta.containers.iter().any(|c| c == "AppDev"));
            assert!(Filter::new(&["appdev".into()], &[], &[])
                .expect("filter")
                .matches_meta(&sent.meta));
            assert!(rx.try_recv().is_err(), "sent once");
        }

        /// A writer whose reader went away.
        struct Closed;

        impl std::io::Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        #[test]
        fn a_closed_reader_ends_the_output_without_an_error() {
            let mut p = Pipeline::new(lab(), None, None).with_output(Lines::new(
                Closed,
                Format::Text,
                Filter::default(),
                None,
            ));
            assert!(p.flush().expect("nothing to write"));
            p.record(&bytes(&request(1))).expect("record");
            assert!(!p.flush().expect("a closed pipe is not an error"));
        }
    }
}

//! From ring-buffer records to output lines: decode, label, filter, correlate, format.
//!
//! One [`Pipeline`] owns everything between the kernel's records and stdout: the topology
//! used for labels, the drop context (reason names, kernel symbols, firewall attribution),
//! the ping-journey correlator and the output buffer.

use std::sync::Arc;

use anyhow::Context as _;
use netlab_common::{record, DropEvent, PacketEvent, RECORD_OFFSET};

use crate::btf::Kallsyms;
use crate::clock::Clock;
use crate::event::{DropRecord, PacketRecord};
use crate::filter::Filter;
use crate::journey::{self, Correlator, Finished};
use crate::kind::Kind;
use crate::loader::DropReasons;
use crate::topology::Topology;

/// What drop reports need to be explained.
pub struct DropContext {
    pub reasons: DropReasons,
    pub kallsyms: Option<Kallsyms>,
    /// The namespace netlab runs in (its inode).
    pub own_netns: u64,
    /// Only drops on observed interfaces of netlab's own namespace (explicit `--iface`).
    pub only_observed: bool,
    /// The firewall and its counters at the last attribution.
    pub firewall: crate::firewall::Firewall,
    /// Netfilter drops waiting for the next counter snapshot.
    pub pending: Vec<DropRecord>,
}

impl DropContext {
    /// The context of a run that reports drops: the kernel's reason names, its symbols,
    /// netlab's namespace, and the firewall read once (for `engine`, the Docker engine's
    /// facts, when one answers).
    pub async fn new(
        reasons: crate::loader::DropReasons,
        kallsyms: Option<Kallsyms>,
        only_observed: bool,
        engine: Option<&crate::docker::EngineFacts>,
        nftrace: bool,
    ) -> Self {
        DropContext {
            reasons,
            kallsyms,
            own_netns: crate::links::netns_id(None).map_or(0, |(_, ino)| ino),
            only_observed,
            firewall: crate::firewall::Firewall::read(engine, nftrace).await,
            pending: Vec::new(),
        }
    }
}

/// Sampled frames written to a pcapng file (`netlab capture`).
pub struct PcapSink {
    w: crate::pcapng::PcapngWriter<std::io::BufWriter<std::fs::File>>,
    /// ifindex → pcapng interface id.
    ifaces: std::collections::HashMap<(u32, String), u32>,
    pub written: u64,
}

impl PcapSink {
    pub fn create(path: &std::path::Path) -> anyhow::Result<Self> {
        let f =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(PcapSink {
            w: crate::pcapng::PcapngWriter::new(std::io::BufWriter::new(f), "netlab")?,
            ifaces: Default::default(),
            written: 0,
        })
    }

    fn write(&mut self, rec: &PacketRecord<'_>, ev: &PacketEvent) -> anyhow::Result<()> {
        let i = &rec.iface;
        let key = (i.ifindex, i.name.to_owned());
        let id = match self.ifaces.get(&key) {
            Some(id) => *id,
            None => {
                let mut desc = i.role.to_owned();
                if let Some(c) = i.container {
                    desc.push_str(&format!(" of {c}"));
                }
                if let Some(n) = i.network {
                    desc.push_str(&format!(", network {n}"));
                }
                if let Some(b) = i.bridge {
                    desc.push_str(&format!(", bridge {b}"));
                }
                let id = self
                    .w
                    .add_interface(i.name, &desc, netlab_common::SNAP_LEN as u32)?;
                self.ifaces.insert(key, id);
                id
            }
        };
        let end = |e: &crate::event::Endpoint<'_>| match (e.container, e.ip) {
            (Some(c), _) => c.to_owned(),
            (None, Some(ip)) if e.host => format!("{ip} (host)"),
            (None, Some(ip)) => ip.to_string(),
            (None, None) => e.mac.to_string(),
        };
        let comment = format!(
            "{} → {} {} {}",
            end(&rec.src),
            end(&rec.dst),
            rec.kind,
            rec.direction
        );
        let cap = usize::from(ev.cap_len).min(ev.data.len());
        self.w.write_packet(
            id,
            rec.ts.0,
            &ev.data[..cap],
            ev.pkt_len.max(cap as u32),
            Some(&comment),
        )?;
        self.written += 1;
        Ok(())
    }

    pub fn finish(&mut self) -> anyhow::Result<()> {
        self.w.flush()?;
        Ok(())
    }
}

/// What a pipeline in capture mode keeps instead of printing.
#[derive(Default)]
pub struct Capture {
    pub finished: Vec<Finished>,
    pub drops: Vec<DropRecord>,
}

/// Output sink with filters and limits.
pub struct Pipeline {
    /// When set (daemon), every event is rendered once and sent here instead of stdout;
    /// each client filters for itself.
    pub broadcast: Option<crate::stream::Sender>,
    /// When set, nothing is printed: drops and finished journeys are kept here.
    pub capture: Option<Capture>,
    /// When set, matching sampled frames go to a pcapng file and nothing is printed.
    pub pcap: Option<PcapSink>,
    pub topo: Arc<Topology>,
    pub clock: Clock,
    pub filter: Filter,
    pub json: bool,
    pub drops: Option<DropContext>,
    pub journeys: Option<Correlator>,
    bytes: Vec<u8>,
    text: String,
    /// Events written (packets, drops, journeys).
    pub printed: u64,
    /// Counts for metrics: drops by reason and labels, journeys by result, RTTs.
    pub tallies: crate::tally::Tallies,
    /// While a new veth's owner is being looked up, records wait here (raw) so that they
    /// are labelled with it; released when it is known, or at this deadline.
    hold_until: Option<std::time::Instant>,
    /// When the latest reason to hold came (a link change).
    held_since: Option<std::time::Instant>,
    held: Vec<Vec<u8>>,
    /// Interfaces a packet came from before the topology had them (each holds records
    /// once: one gone before a scan saw it stays unknown).
    unknown_ports: std::collections::HashSet<u32>,
    limit: Option<u64>,
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
    pub fn new(
        topo: Arc<Topology>,
        filter: Filter,
        json: bool,
        limit: Option<u64>,
        drops: Option<DropContext>,
        journeys: Option<Correlator>,
    ) -> Self {
        Pipeline {
            broadcast: None,
            capture: None,
            pcap: None,
            topo,
            clock: Clock::new(),
            filter,
            json,
            drops,
            journeys,
            bytes: Vec::with_capacity(64 * 1024),
            text: String::with_capacity(256),
            printed: 0,
            tallies: crate::tally::Tallies::default(),
            hold_until: None,
            held_since: None,
            held: Vec::new(),
            unknown_ports: Default::default(),
            limit,
        }
    }

    /// Whether `--count` is reached.
    pub fn full(&self) -> bool {
        self.limit.is_some_and(|l| self.printed >= l)
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
                // SAFETY: at least one PacketEvent of bytes; any bit pattern is valid for
                // this plain-integer repr(C) type; read_unaligned copes with alignment.
                let ev: PacketEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
                self.packet(&ev)
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
        let topo = Arc::clone(&self.topo);
        let Some(rec) = PacketRecord::new(ev, &topo, &self.clock) else {
            return Ok(());
        };
        if let Some(c) = self.journeys.as_mut() {
            observe(c, &rec, ev.ts_ns);
        }
        if let Some(tx) = &self.broadcast {
            let mut json = Vec::with_capacity(512);
            rec.write_json(&mut json)?;
            let mut text = String::with_capacity(160);
            rec.write_human(&mut text);
            let meta = crate::stream::EventMeta {
                kind: rec.kind.to_owned(),
                packet: None,
                family: None,
                containers: [rec.src.container, rec.dst.container, rec.iface.container]
                    .into_iter()
                    .map(|c| c.unwrap_or_default().to_owned())
                    .collect(),
                networks: [rec.src.network, rec.dst.network, rec.iface.network]
                    .into_iter()
                    .map(|c| c.unwrap_or_default().to_owned())
                    .collect(),
            };
            send(tx, json, text, meta);
            return Ok(());
        }
        if self.capture.is_some() || self.full() || !self.filter.matches(&rec) {
            return Ok(());
        }
        if let Some(pcap) = self.pcap.as_mut() {
            pcap.write(&rec, ev)?;
            self.printed += 1;
            return Ok(());
        }
        if self.json {
            rec.write_json(&mut self.bytes)?;
        } else {
            self.text.clear();
            rec.write_human(&mut self.text);
            self.bytes.extend_from_slice(self.text.as_bytes());
        }
        self.printed += 1;
        Ok(())
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
            self.tallies.not_a_drop(&rec, why);
            return Ok(());
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
            observe_drop(c, &rec, &self.clock);
        }
        if let Some(cap) = self.capture.as_mut() {
            cap.drops.push(rec);
            return Ok(());
        }
        if self.pcap.is_some() {
            return Ok(());
        }
        self.tallies.drop(&rec);
        if let Some(tx) = &self.broadcast {
            let mut json = Vec::with_capacity(512);
            rec.write_json(&mut json)?;
            let mut text = String::with_capacity(160);
            rec.write_human(&mut text);
            let netns_container = (rec.iface.netns != "host"
                && !rec.iface.netns.starts_with("netns:"))
            .then(|| rec.iface.netns.clone());
            let meta = crate::stream::EventMeta {
                kind: "drop".to_owned(),
                packet: Some(rec.packet.to_owned()),
                family: None,
                containers: vec![
                    rec.src.container.unwrap_or_default().to_owned(),
                    rec.dst.container.unwrap_or_default().to_owned(),
                    netns_container.unwrap_or_default(),
                ],
                networks: vec![
                    rec.src.network.unwrap_or_default().to_owned(),
                    rec.dst.network.unwrap_or_default().to_owned(),
                ],
            };
            send(tx, json, text, meta);
            return Ok(());
        }
        if self.full() || !self.filter.matches_drop(&rec) {
            return Ok(());
        }
        if self.json {
            rec.write_json(&mut self.bytes)?;
        } else {
            self.text.clear();
            rec.write_human(&mut self.text);
            self.bytes.extend_from_slice(self.text.as_bytes());
        }
        self.printed += 1;
        Ok(())
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
        let facts = crate::docker_rules::DockerFacts::from_topology(&self.topo);
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
            let hint = crate::docker_rules::PacketHint {
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
                let hint = crate::docker_rules::PacketHint {
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

    /// Journeys and unanswered ARP requests that are complete at `now_ns` (monotonic).
    pub fn poll_journeys(&mut self, now_ns: u64) -> anyhow::Result<()> {
        let Some(c) = self.journeys.as_mut() else {
            return Ok(());
        };
        let done = c.poll(now_ns);
        self.emit_finished(done)
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
        for f in done {
            if let Some(cap) = self.capture.as_mut() {
                cap.finished.push(f);
                continue;
            }
            if self.pcap.is_some() {
                continue;
            }
            self.tallies.finished(&f);
            if let Some(tx) = &self.broadcast {
                let mut json = Vec::with_capacity(512);
                journey::write_json(&f, &self.clock, &mut json)?;
                let mut text = String::with_capacity(160);
                journey::write_human(&friendly(&f, &self.topo), &self.clock, &mut text);
                let meta = match &f {
                    Finished::Journey(j) => crate::stream::EventMeta {
                        kind: "journey".to_owned(),
                        packet: None,
                        family: Some(j.family.to_owned()),
                        containers: vec![
                            j.src.container.clone().unwrap_or_default(),
                            j.dst.container.clone().unwrap_or_default(),
                        ],
                        networks: Vec::new(),
                    },
                    Finished::ArpUnanswered(a) => crate::stream::EventMeta {
                        kind: "arp-unanswered".to_owned(),
                        packet: None,
                        family: None,
                        containers: vec![a.who_container.clone().unwrap_or_default()],
                        networks: vec![a.network.clone().unwrap_or_default()],
                    },
                };
                send(tx, json, text, meta);
                continue;
            }
            if self.full() || !self.filter.matches_finished(&f) {
                continue;
            }
            if self.json {
                journey::write_json(&f, &self.clock, &mut self.bytes)?;
            } else {
                self.text.clear();
                journey::write_human(&friendly(&f, &self.topo), &self.clock, &mut self.text);
                self.bytes.extend_from_slice(self.text.as_bytes());
            }
            self.printed += 1;
        }
        Ok(())
    }

    /// Emits topology events (an interface observed or gone, a container started...),
    /// under the same filters and `--count` as packets.
    pub fn topology(&mut self, events: Vec<crate::topo_events::TopoEvent>) -> anyhow::Result<()> {
        for e in events {
            if self.capture.is_some() || self.pcap.is_some() {
                continue;
            }
            if let Some(tx) = &self.broadcast {
                let mut json = Vec::with_capacity(256);
                e.write_json(&mut json)?;
                let mut text = String::with_capacity(160);
                e.write_human(&mut text);
                let meta = crate::stream::EventMeta {
                    kind: e.kind.to_owned(),
                    packet: None,
                    family: None,
                    containers: e
                        .filter_containers()
                        .into_iter()
                        .map(|c| c.unwrap_or_default().to_owned())
                        .collect(),
                    networks: e
                        .filter_networks()
                        .into_iter()
                        .map(|c| c.unwrap_or_default().to_owned())
                        .collect(),
                };
                send(tx, json, text, meta);
                continue;
            }
            if self.full() || !self.filter.matches_topo(&e) {
                continue;
            }
            if self.json {
                e.write_json(&mut self.bytes)?;
            } else {
                self.text.clear();
                e.write_human(&mut self.text);
                self.bytes.extend_from_slice(self.text.as_bytes());
            }
            self.printed += 1;
        }
        Ok(())
    }

    /// Writes out what was gathered; `false` when stdout is gone (a closed pipe).
    pub fn flush(&mut self) -> anyhow::Result<bool> {
        use std::io::Write as _;
        if self.bytes.is_empty() {
            return Ok(true);
        }
        let mut out = std::io::stdout().lock();
        let r = out.write_all(&self.bytes).and_then(|()| out.flush());
        self.bytes.clear();
        match r {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(e).context("writing to stdout"),
        }
    }

    /// Appends raw text (the summary) to the output.
    pub fn push_raw(&mut self, s: &[u8]) {
        self.bytes.extend_from_slice(s);
    }
}

/// A copy of a finished journey whose hops read `veth of AppDev` rather than the veth's
/// kernel name (for human lines; JSON keeps the interface names).
fn friendly(f: &Finished, topo: &Topology) -> Finished {
    let mut f = f.clone();
    if let Finished::Journey(j) = &mut f {
        let name = |ifindex: u32, iface: &mut String| {
            if let Some(o) = topo.iface(ifindex).filter(|o| o.name == *iface) {
                match (o.role, &o.container) {
                    (crate::topology::Role::ContainerVeth, Some(c)) => {
                        *iface = format!("veth of {c}")
                    }
                    (crate::topology::Role::ManualVeth, Some(c)) => {
                        *iface = format!("{} (hand-made, to {c})", o.name)
                    }
                    _ => {}
                }
            }
        };
        for h in j.hops.iter_mut().chain(j.last_seen.iter_mut()) {
            name(h.ifindex, &mut h.iface);
        }
    }
    f
}

/// Sends one rendered event to every client; with no client listening it is dropped.
fn send(tx: &crate::stream::Sender, json: Vec<u8>, text: String, meta: crate::stream::EventMeta) {
    let _ = tx.send(Arc::new(crate::stream::StreamEvent {
        json: bytes::Bytes::from(json),
        text: bytes::Bytes::from(text.into_bytes()),
        meta,
    }));
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
    let neighbour_or_listener = rec.packet.starts_with("ndp-") || rec.packet == "icmp6-other";
    if reason == "NO_SOCKET" && matches!(rec.packet, "icmp-echo-reply" | "icmp6-echo-reply") {
        // A reply whose ping has exited: nobody waits for it any more.
        return Some("echo reply nobody waits for");
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
    let unspecific = reason == "NOT_SPECIFIED" || reason == crate::loader::UNKNOWN_REASON;
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
fn trace_key(rec: &DropRecord) -> Option<crate::nftrace::PacketKey> {
    let icmp = rec.icmp.as_ref()?;
    Some(crate::nftrace::PacketKey {
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
        || (rec.drop.reason == crate::loader::UNKNOWN_REASON
            && rec
                .drop
                .location
                .as_deref()
                .is_some_and(|l| l.starts_with("nf_hook_slow+")))
}

fn is_echo(k: Kind) -> bool {
    matches!(
        k,
        Kind::IcmpEchoRequest | Kind::IcmpEchoReply | Kind::Icmp6EchoRequest | Kind::Icmp6EchoReply
    )
}

fn kind_named(name: &str) -> Option<Kind> {
    Kind::ALL.iter().copied().find(|k| k.name() == name)
}

/// Feeds an echo packet or an ARP packet to the correlator.
fn observe(c: &mut Correlator, rec: &PacketRecord<'_>, ts_ns: u64) {
    let Some(kind) = kind_named(rec.kind) else {
        return;
    };
    if is_echo(kind) {
        let (Some(src_ip), Some(dst_ip), Some(icmp)) = (rec.src.ip, rec.dst.ip, rec.icmp.as_ref())
        else {
            return;
        };
        let (Some(id), Some(seq)) = (icmp.id, icmp.seq) else {
            return;
        };
        let direction = if rec.direction == "ingress" {
            crate::kind::Direction::Ingress
        } else {
            crate::kind::Direction::Egress
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
            direction,
            src_container: rec.src.container,
            dst_container: rec.dst.container,
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

fn observe_drop(c: &mut Correlator, rec: &DropRecord, clock: &Clock) {
    let Some(kind) = kind_named(rec.packet).filter(|k| is_echo(*k)) else {
        return;
    };
    let (Some(src_ip), Some(dst_ip), Some(icmp)) = (rec.src.ip, rec.dst.ip, rec.icmp.as_ref())
    else {
        return;
    };
    let (Some(id), Some(seq)) = (icmp.id, icmp.seq) else {
        return;
    };
    c.observe_drop(&journey::DropSighting {
        ts_ns: clock.to_monotonic(rec.ts),
        kind,
        src_ip,
        dst_ip,
        id,
        seq,
        reason: &rec.drop.reason,
        location: rec.drop.location.as_deref(),
        iface: rec.iface.name.as_deref(),
        rule: rec.drop.rule.as_ref().map(|r| r.rule.as_str()),
        hook: rec.drop.hook.as_deref(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::UnixNanos;
    use crate::event::{DropInfo, DropPlace, Endpoint};

    fn freed(packet: &'static str, dst: &str, reason: &str, location: Option<&str>) -> DropRecord {
        let ep = |ip: &str| Endpoint {
            mac: crate::decode::Mac::default(),
            ip: ip.parse().ok(),
            container: None,
            network: None,
            host: false,
        };
        DropRecord {
            ts: UnixNanos(0),
            kind: "drop",
            packet,
            len: 72,
            iface: DropPlace {
                name: Some("br-1".into()),
                ifindex: 3,
                netns: "host".into(),
            },
            src: ep("fe80::1"),
            dst: ep(dst),
            icmp: None,
            arp: None,
            drop: DropInfo {
                reason: reason.into(),
                location: location.map(str::to_owned),
                hook: None,
                rule: None,
                candidates: Vec::new(),
                unattributed: None,
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
                crate::loader::UNKNOWN_REASON,
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
                crate::loader::UNKNOWN_REASON,
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
}

//! Where events go: one [`Output`] trait, many outputs.
//!
//! The pipeline turns kernel records into [`Event`]s and hands every event to each of its
//! outputs in turn: text or JSON lines ([`Lines`]), the daemon's API clients
//! ([`Broadcast`]), a pcapng file ([`Pcap`]), the metrics tallies
//! ([`crate::model::tally::Tallies`]), or what `diagnose` keeps ([`Collect`]). A new output (a
//! web map, an exporter) is one more implementation, added with
//! [`crate::pipeline::Pipeline::with_output`].

mod broadcast;
mod collect;
mod lines;
pub mod map;
pub mod metrics;
pub mod otlp;
mod pcap;
pub mod pcapng;
mod plural;
pub mod stream;

use std::any::Any;

pub use broadcast::Broadcast;
pub use collect::Collect;
pub use lines::{write_or_closed, Format, Lines};
pub use pcap::Pcap;
pub use plural::plural;

use crate::docker::topo_events::TopoEvent;
use crate::docker::topology::Topology;
use crate::kernel::clock::Clock;
use crate::model::event::{DropRecord, PacketRecord};
use crate::model::filter::Filter;
use crate::model::journey::{self, Finished};
use crate::model::label_json::LabelJson;
use crate::output::stream::EventMeta;
use netlab_common::PacketEvent;

/// One event of the pipeline, borrowed for the time outputs look at it.
#[derive(Clone, Copy)]
pub enum Event<'a> {
    /// A sampled packet, labelled, with the kernel's record (its frame bytes).
    Packet(&'a PacketRecord<'a>, &'a PacketEvent),
    /// A packet the kernel dropped, explained.
    Drop(&'a DropRecord),
    /// A packet the kernel freed that nobody wanted delivered, and why it is not a drop
    /// (counted, never shown).
    NotADrop(&'a DropRecord, &'static str),
    /// A finished ping journey or an unanswered ARP request.
    Finished(&'a Finished),
    /// An interface, container or network came or went.
    Topology(&'a TopoEvent),
}

/// What outputs may need besides the event: the clock (journey times) and the topology
/// (friendly interface names).
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub clock: &'a Clock,
    pub topo: &'a Topology,
}

/// A destination of events.
pub trait Output: Any {
    /// Takes one event.
    fn event(&mut self, ev: Event<'_>, ctx: Ctx<'_>) -> anyhow::Result<()>;

    /// Writes out what was gathered; `false` when the reader is gone (a closed pipe).
    fn flush(&mut self) -> anyhow::Result<bool> {
        Ok(true)
    }

    /// Events written (the count `--count` limits).
    fn written(&self) -> u64 {
        0
    }

    /// Whether this output wants nothing more (`--count` reached).
    fn done(&self) -> bool {
        false
    }

    /// At the end of a run: completes what is open (a file).
    fn finish(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

impl Event<'_> {
    /// Whether it is shown at all (a freed packet that is not a drop is only counted).
    pub fn shown(&self) -> bool {
        !matches!(self, Event::NotADrop(..))
    }

    /// Whether `--container`, `--network` and `--kind` select it.
    pub fn selected_by(&self, f: &Filter) -> bool {
        match self {
            Event::Packet(rec, _) => f.matches(rec),
            Event::Drop(rec) => f.matches_drop(rec),
            Event::NotADrop(..) => false,
            Event::Finished(done) => f.matches_finished(done),
            Event::Topology(e) => f.matches_topo(e),
        }
    }

    /// Appends its JSON line; a packet's labelled parts come from `labels` (see
    /// [`LabelJson`]).
    pub fn write_json(
        &self,
        ctx: Ctx<'_>,
        out: &mut Vec<u8>,
        labels: &mut LabelJson,
    ) -> serde_json::Result<()> {
        match self {
            Event::Packet(rec, _) => rec.write_json_cached(out, labels),
            Event::Drop(rec) => rec.write_json(out),
            Event::NotADrop(..) => Ok(()),
            Event::Finished(done) => journey::write_json(done, ctx.clock, out),
            Event::Topology(e) => e.write_json(out),
        }
    }

    /// Appends its human line.
    pub fn write_human(&self, ctx: Ctx<'_>, out: &mut String) {
        match self {
            Event::Packet(rec, _) => rec.write_human(out),
            Event::Drop(rec) => rec.write_human(out),
            Event::NotADrop(..) => {}
            Event::Finished(done) => {
                journey::write_human(&friendly(done, ctx.topo), ctx.clock, out);
            }
            Event::Topology(e) => e.write_human(out),
        }
    }

    /// What the daemon's per-client filters look at.
    pub fn meta(&self) -> EventMeta {
        let owned = |v: &[Option<&str>]| -> Vec<String> {
            v.iter().map(|c| c.unwrap_or_default().to_owned()).collect()
        };
        match self {
            Event::Packet(rec, _) => EventMeta {
                kind: rec.kind.name().to_owned(),
                packet: None,
                family: None,
                containers: owned(&[rec.src.container, rec.dst.container, rec.iface.container]),
                networks: owned(&[rec.src.network, rec.dst.network, rec.iface.network]),
            },
            Event::Drop(rec) | Event::NotADrop(rec, _) => EventMeta {
                kind: "drop".to_owned(),
                packet: Some(rec.packet.name().to_owned()),
                family: None,
                containers: owned(&[rec.src.container, rec.dst.container, rec.netns_container()]),
                networks: owned(&[rec.src.network, rec.dst.network]),
            },
            Event::Finished(Finished::Journey(j)) => EventMeta {
                kind: "journey".to_owned(),
                packet: None,
                family: Some(j.family.name().to_owned()),
                containers: owned(&[j.src.container.as_deref(), j.dst.container.as_deref()]),
                networks: Vec::new(),
            },
            Event::Finished(Finished::ArpUnanswered(a)) => EventMeta {
                kind: "arp-unanswered".to_owned(),
                packet: None,
                family: None,
                containers: owned(&[a.who_container.as_deref()]),
                networks: owned(&[a.network.as_deref()]),
            },
            Event::Topology(e) => EventMeta {
                kind: e.kind.to_owned(),
                packet: None,
                family: None,
                containers: owned(&e.filter_containers()),
                networks: owned(&e.filter_networks()),
            },
        }
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
                    (crate::docker::topology::Role::ContainerVeth, Some(c)) => {
                        *iface = format!("veth of {c}")
                    }
                    (crate::docker::topology::Role::ManualVeth, Some(c)) => {
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

impl Output for crate::model::tally::Tallies {
    fn event(&mut self, ev: Event<'_>, _: Ctx<'_>) -> anyhow::Result<()> {
        match ev {
            Event::Drop(rec) => self.drop(rec),
            Event::NotADrop(rec, why) => self.not_a_drop(rec, why),
            Event::Finished(done) => self.finished(done),
            Event::Packet(..) | Event::Topology(_) => {}
        }
        Ok(())
    }
}

//! The live map of Docker networks and pings: an [`Output`] that gathers finished journeys,
//! unanswered ARP requests and drop reports into one edge per (source, destination) pair
//! ([`edges`]), and counts the events it sees for the status line. The daemon asks it for
//! a [`MapView`] a few times a second (and for `/v1/map` and `/v1/graph`), never once per
//! packet: however many pings flood in, the page gets a few small updates a second.

pub mod edges;
pub mod graph;
pub mod view;

use std::time::Instant;

pub use graph::Graph;
pub use view::{MapView, Status};

use super::{Ctx, Event, Output};
use crate::docker::topology::Topology;
use crate::model::decode::Mac;
use crate::model::journey::Finished;
use edges::Edges;

/// The map's output: edges, and the events seen (for events per second).
#[derive(Debug, Default)]
pub struct MapOutput {
    edges: Edges,
    /// Events seen since the start.
    events: u64,
    /// Events and time at the last view (for events per second).
    last_view: Option<(u64, Instant)>,
    events_per_s: f64,
}

impl MapOutput {
    /// The map now: `topo` with the edges, and `status` (whose events per second and
    /// emptiness are filled in here). Edges of containers no longer in `topo` are
    /// forgotten; rates are recomputed at most once a second.
    pub fn view(&mut self, topo: &Topology, mut status: Status, now: Instant) -> MapView {
        self.edges
            .forget_containers(|c| topo.container_named(c).is_some());
        self.edges.roll(now);
        match self.last_view {
            Some((n, t)) if now.saturating_duration_since(t).as_secs_f64() >= 1.0 => {
                let secs = now.saturating_duration_since(t).as_secs_f64();
                self.events_per_s = (self.events - n) as f64 / secs;
                self.last_view = Some((self.events, now));
            }
            Some(_) => {}
            None => self.last_view = Some((self.events, now)),
        }
        status.events_per_s = self.events_per_s.round();
        MapView::build(topo, &self.edges, status, now)
    }

    /// The edges gathered so far.
    pub fn edges(&self) -> &Edges {
        &self.edges
    }
}

impl Output for MapOutput {
    fn event(&mut self, ev: Event<'_>, ctx: Ctx<'_>) -> anyhow::Result<()> {
        self.events += 1;
        // Packets (nearly every event) only count: no clock read, no lookup.
        match ev {
            Event::Finished(Finished::Journey(j)) => self.edges.journey(j, Instant::now()),
            Event::Finished(Finished::ArpUnanswered(a)) => {
                let owner = ctx
                    .topo
                    .endpoint(Some(std::net::IpAddr::V4(a.asked_for)), Mac::default())
                    .and_then(|l| l.container.as_deref());
                self.edges.arp_unanswered(a, owner, Instant::now());
            }
            Event::Drop(d) => self.edges.drop_report(d, Instant::now()),
            Event::Packet(..) | Event::NotADrop(..) | Event::Topology(_) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

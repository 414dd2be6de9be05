//! What `netlab diagnose` keeps instead of printing: drops and finished journeys.

use super::{Ctx, Event, Output};
use crate::model::event::DropRecord;
use crate::model::journey::Finished;

/// The drops and finished journeys (and unanswered ARP requests) of a run.
#[derive(Default)]
pub struct Collect {
    pub finished: Vec<Finished>,
    pub drops: Vec<DropRecord>,
}

impl Output for Collect {
    fn event(&mut self, ev: Event<'_>, _: Ctx<'_>) -> anyhow::Result<()> {
        match ev {
            Event::Drop(rec) => self.drops.push(rec.clone()),
            Event::Finished(done) => self.finished.push(done.clone()),
            Event::Packet(..) | Event::NotADrop(..) | Event::Topology(_) => {}
        }
        Ok(())
    }
}

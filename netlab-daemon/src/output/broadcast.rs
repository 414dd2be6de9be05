//! The daemon's API clients: every event rendered once (JSON and text) and sent to all;
//! each client filters for itself.

use std::sync::Arc;

use super::{Ctx, Event, Output};
use crate::model::label_json::LabelJson;
use crate::output::stream::{Sender, StreamEvent};

/// Sends every shown event to the daemon's clients.
pub struct Broadcast {
    tx: Sender,
    /// The labelled parts of packet lines, written once each.
    labels: LabelJson,
}

impl Broadcast {
    pub fn new(tx: Sender) -> Self {
        Broadcast {
            tx,
            labels: LabelJson::default(),
        }
    }
}

impl Output for Broadcast {
    fn event(&mut self, ev: Event<'_>, ctx: Ctx<'_>) -> anyhow::Result<()> {
        if !ev.shown() {
            return Ok(());
        }
        let mut json = Vec::with_capacity(512);
        ev.write_json(ctx, &mut json, &mut self.labels)?;
        let mut text = String::with_capacity(160);
        ev.write_human(ctx, &mut text);
        // With no client listening the event is dropped.
        let _ = self.tx.send(Arc::new(StreamEvent {
            json: bytes::Bytes::from(json),
            text: bytes::Bytes::from(text.into_bytes()),
            meta: ev.meta(),
        }));
        Ok(())
    }
}

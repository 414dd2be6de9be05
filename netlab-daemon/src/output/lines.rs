//! Text or JSON lines (`netlab watch`), filtered, up to `--count`, to any writer.

use std::io::Write;

use anyhow::Context as _;

use super::{Ctx, Event, Output};
use crate::model::filter::Filter;
use crate::model::label_json::LabelJson;

/// How each event is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One human-readable line.
    Text,
    /// One JSON object per line.
    Json,
}

/// Lines of the selected events, buffered until [`Output::flush`].
pub struct Lines<W: Write> {
    out: W,
    format: Format,
    filter: Filter,
    limit: Option<u64>,
    bytes: Vec<u8>,
    text: String,
    written: u64,
    /// The labelled parts of packet lines, written once each.
    labels: LabelJson,
}

impl<W: Write> Lines<W> {
    pub fn new(out: W, format: Format, filter: Filter, limit: Option<u64>) -> Self {
        Lines {
            out,
            format,
            filter,
            limit,
            bytes: Vec::with_capacity(64 * 1024),
            text: String::with_capacity(256),
            written: 0,
            labels: LabelJson::default(),
        }
    }

    /// The writer (what a test or a benchmark reads back).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }
}

impl<W: Write + 'static> Output for Lines<W> {
    fn event(&mut self, ev: Event<'_>, ctx: Ctx<'_>) -> anyhow::Result<()> {
        if !ev.shown() || self.done() || !ev.selected_by(&self.filter) {
            return Ok(());
        }
        match self.format {
            Format::Json => ev.write_json(ctx, &mut self.bytes, &mut self.labels)?,
            Format::Text => {
                self.text.clear();
                ev.write_human(ctx, &mut self.text);
                self.bytes.extend_from_slice(self.text.as_bytes());
            }
        }
        self.written += 1;
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<bool> {
        if self.bytes.is_empty() {
            return Ok(true);
        }
        let r = write_or_closed(&mut self.out, &self.bytes);
        self.bytes.clear();
        r
    }

    fn written(&self) -> u64 {
        self.written
    }

    fn done(&self) -> bool {
        self.limit.is_some_and(|l| self.written >= l)
    }
}

/// Writes `bytes` and flushes; `false` when the reader is gone (a closed pipe).
pub fn write_or_closed(out: &mut impl Write, bytes: &[u8]) -> anyhow::Result<bool> {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).context("writing the output"),
    }
}

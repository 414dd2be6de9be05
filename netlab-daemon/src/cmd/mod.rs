//! The commands: `watch` (and `capture`), `topology`, `diagnose`, `daemon`, `counters`.

pub mod counters;
pub mod daemon;
pub mod diagnose;
pub mod topology;
pub mod watch;

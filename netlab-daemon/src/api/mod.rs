//! The daemon's API: the client that commands use to reach a running daemon.

pub mod client;

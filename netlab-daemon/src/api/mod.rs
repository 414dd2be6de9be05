//! The daemon's API: its HTTP server, and the client that commands use to reach a running
//! daemon.

pub mod actions;
pub mod client;
pub mod map;
pub mod server;

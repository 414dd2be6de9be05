//! The daemon's API: its HTTP server, the client that commands use to reach a running
//! daemon, and the peers (other hosts' daemons) whose sightings join this host's journeys.

pub mod actions;
pub mod client;
pub mod map;
pub mod peer;
pub mod server;

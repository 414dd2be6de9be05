//! Topology events: interfaces observed and gone (with what they counted), containers
//! started, stopped and removed, networks created and removed, the Docker engine lost and
//! regained, interfaces netlab could not observe. [`Tracker`] turns link changes, Docker
//! events and rescans into [`TopoEvent`]s, one per thing that happened.
//!
//! Where things are: `topo_events/event.rs` the event and its JSON, `topo_events/text.rs`
//! the line a person reads, `topo_events/happening.rs` what a Docker event says happened,
//! and `topo_events/tracker.rs` the [`Tracker`].

use std::time::Duration;

mod event;
mod happening;
mod text;
mod tracker;

pub use event::{Counted, IfaceInfo, TopoEvent};
pub use happening::Happening;
pub use tracker::Tracker;

/// The `--kind` family of every topology event.
pub const FAMILY: &str = "topology";

/// Every topology event kind (what `--kind` accepts besides the family).
pub const KINDS: [&str; 10] = [
    "iface-observed",
    "iface-gone",
    "iface-unobserved",
    "container-started",
    "container-stopped",
    "container-removed",
    "network-created",
    "network-removed",
    "engine-lost",
    "engine-regained",
];

/// How long a gone interface waits for the Docker event that says why (a container's
/// `destroy` comes a moment after its veth is deleted), and a started container for the
/// rescan that names its networks.
pub const EXPLAIN_WITHIN: Duration = Duration::from_secs(2);

//! The Docker side: the Engine API, what to observe and who every address is (the
//! topology), following Docker and link changes, keeping attachments in step with them,
//! the topology events (what came and went) and the human view of a topology.

pub mod discover;
pub mod follow;
pub mod topo_events;
pub mod topology;
pub mod view;

mod engine;
pub mod podman;
pub use engine::*;

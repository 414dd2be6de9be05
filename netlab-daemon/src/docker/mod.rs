//! The Docker side: the Engine API, what to observe and who every address is (the
//! topology), following Docker and link changes, keeping attachments in step with them,
//! and the topology events (what came and went).

pub mod discover;
pub mod follow;
pub mod topo_events;
pub mod topology;

mod engine;
pub use engine::*;

//! netlab: watch ICMP, ARP, ICMPv6 and neighbour discovery on bridges and veths with eBPF.
//!
//! Where things are, by concern:
//! - [`kernel`]: loading the eBPF object and reading its maps, attaching it to interfaces,
//!   bpffs, the kernel's interfaces and namespaces, capabilities, the kernel clock.
//! - [`docker`]: the Engine API, the topology (what to observe, who every address is),
//!   following Docker and link changes, keeping the attachments in step, topology events.
//! - [`model`]: decoding frames, the public event records, kinds, filters, ping journeys,
//!   tallies and the summary.
//! - [`explain`]: the firewall rule behind a drop, in Docker's terms, and the fix.
//! - [`pipeline`] turns kernel records into events and hands them to the [`output`]s
//!   (lines, API clients, pcapng, metrics); a [`session`] owns the datapath, the ring
//!   reader, following and the pipeline.
//! - [`api`]: the daemon's HTTP API, its server and the client that reaches a running
//!   daemon; [`cmd`]: the commands, each a session and its own part.

pub mod api;
pub mod cmd;
pub mod docker;
pub mod explain;
pub mod kernel;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod session;

//! netlab: watch ICMP, ARP, ICMPv6 and neighbour discovery on bridges and veths with eBPF.
//!
//! Module map: [`loader`] loads the embedded eBPF object and reads its maps, [`attach`]
//! hooks it to interfaces (and [`qdisc`] cleans up netlink mode). [`docker`] reads the
//! Docker Engine API, [`links`] the kernel's interfaces (also inside container namespaces),
//! [`topology`] derives from both what to observe and who every address is, and
//! [`discover`] keeps the attachments in step with it, [`topo_events`] says what came and
//! went (with what a gone interface counted). [`decode`] reads captured frames,
//! [`event`] is the public event model, [`filter`] selects events; [`watch`] and
//! [`topology_cmd`] are the commands.

pub mod attach;
pub mod bpffs;
pub mod btf;
pub mod client;
pub mod clock;
pub mod counters_cmd;
pub mod daemon;
pub mod decode;
pub mod diagnose;
pub mod discover;
pub mod docker;
pub mod docker_backend;
pub mod docker_remedies;
pub mod docker_rules;
pub mod event;
pub mod filter;
pub mod firewall;
pub mod follow;
pub mod journey;
pub mod jsonw;
pub mod kind;
pub mod links;
pub mod loader;
pub mod metrics;
pub mod netfilter;
pub mod nftables;
pub mod nftrace;
pub mod output;
pub mod pcapng;
pub mod pinger;
pub mod pipeline;
pub mod privilege;
pub mod qdisc;
pub mod session;
pub mod stream;
pub mod summary;
pub mod tally;
pub mod tcx;
pub mod topo_events;
pub mod topology;
pub mod topology_cmd;
pub mod watch;

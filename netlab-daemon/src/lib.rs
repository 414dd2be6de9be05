//! netlab: watch ICMP, ARP, ICMPv6 and neighbour discovery on bridges and veths with eBPF.
//!
//! Module map: [`loader`] loads the embedded eBPF object and reads its maps, [`attach`]
//! hooks it to interfaces (and [`qdisc`] cleans up netlink mode), [`decode`] reads captured
//! frames, [`event`] is the public event model, [`watch`] is the `netlab watch` command.

pub mod attach;
pub mod clock;
pub mod decode;
pub mod event;
pub mod kind;
pub mod loader;
pub mod privilege;
pub mod qdisc;
pub mod summary;
pub mod watch;

//! The kernel side: loading the eBPF object and reading its maps, attaching it to
//! interfaces (TCX or tc netlink), bpffs, the kernel's interfaces and namespaces,
//! capabilities, the kernel clock, and the echo requests `diagnose` sends.

pub mod attach;
pub mod bpffs;
pub mod btf;
pub mod clock;
pub mod links;
pub mod loader;
pub mod pinger;
pub mod privilege;
pub mod qdisc;
pub mod tcx;

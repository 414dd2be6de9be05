//! Acting on this host, for the integration tests and for xtask alike: running commands
//! ([`cmd`]) and background processes ([`process`]), network namespaces and the links between
//! them ([`netns`]), the BPF objects a process holds ([`fdinfo`]) and the programs on an
//! interface's tcx hooks ([`tcx`]), programs that do nothing to measure against
//! ([`empty_prog`]), ping's statistics ([`ping`]), a firewall rule's counter ([`iptables`]) and the root check
//! ([`root`]).
//!
//! Nothing here knows netlab: what is netlab's (its daemon, its output, Docker fixtures)
//! stays in the crate's other modules.

pub mod cmd;
pub mod empty_prog;
pub mod fdinfo;
pub mod iptables;
pub mod netns;
pub mod ping;
pub mod process;
pub mod root;
pub mod tcx;

//! Explanations of drops: the firewall behind a drop (iptables, nftables, tracing, and
//! [`command`] to run their tools), what a rule means in Docker's terms, and the fix.

pub mod command;
pub mod docker_backend;
pub mod docker_remedies;
pub mod docker_rules;
pub mod firewall;
pub mod netfilter;
pub mod nftables;
pub mod nftrace;
pub mod podman_remedies;

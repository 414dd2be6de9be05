//! The firewall's own witness: a rule's packet counter as `iptables-save -c` prints it.

use anyhow::{Context, Result};

/// The packet counter of `rule` (as iptables-save prints it without `-A`) in `table` of the
/// `family` ruleset (`iptables-save -c`, or `ip6tables-save -c` for `ipv6`).
pub fn rule_counter(family: &str, table: &str, rule: &str) -> Result<u64> {
    let save = if family == "ipv6" {
        "ip6tables-save"
    } else {
        "iptables-save"
    };
    let saved = super::cmd::sh(&format!("{save} -c -t {table}"))?;
    counter_in(&saved, rule)
        .with_context(|| format!("no rule {rule:?} in {save} table {table}:\n{saved}"))
}

/// [`rule_counter`] of an IPv4 rule in network namespace `ns` (`ip netns exec`).
pub fn rule_counter_in(ns: &str, table: &str, rule: &str) -> Result<u64> {
    let saved = super::cmd::sh(&format!("ip netns exec {ns} iptables-save -c -t {table}"))?;
    counter_in(&saved, rule)
        .with_context(|| format!("no rule {rule:?} in {ns}'s table {table}:\n{saved}"))
}

/// The packet counter of `-A <rule>` in an `iptables-save -c` listing.
fn counter_in(saved: &str, rule: &str) -> Option<u64> {
    let line = saved.lines().find(|l| l.ends_with(&format!("-A {rule}")))?;
    line.trim_start_matches('[').split(':').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_from_the_listing() {
        let saved = "*filter\n:FORWARD DROP [0:0]\n[2:168] -A NETAVARK_ISOLATION_2 -o podman4 -j DROP\n[0:0] -A NETAVARK_ISOLATION_2 -o podman3 -j DROP\nCOMMIT\n";
        assert_eq!(
            counter_in(saved, "NETAVARK_ISOLATION_2 -o podman4 -j DROP"),
            Some(2)
        );
        assert_eq!(
            counter_in(saved, "NETAVARK_ISOLATION_2 -o podman3 -j DROP"),
            Some(0)
        );
        assert_eq!(
            counter_in(saved, "NETAVARK_ISOLATION_2 -o podman9 -j DROP"),
            None
        );
    }
}

//! Naming the iptables rule that dropped a packet, from rule counter deltas.
//!
//! When the `skb:kfree_skb` tracepoint reports a drop with reason `NETFILTER_DROP`, the
//! kernel only says "netfilter dropped it", not which table, chain or rule. This module
//! answers that question the way an administrator would: it reads the packet counters of
//! every rule (`iptables-save -c` and `ip6tables-save -c`) before and after the drops were
//! seen, and names the rules whose target is `DROP` or `REJECT`, and the chains whose
//! policy is `DROP`, whose counters rose in between ([`snapshot`], then [`attribute`]). A
//! rule is printed as iptables prints it, without the `-A`, e.g.
//! `DOCKER-ISOLATION-STAGE-2 -o br-8be916360cbc -j DROP`, or `policy FORWARD DROP` for a
//! chain policy. [`hook_of`] adds the netfilter hook the chain runs at (`forward` for
//! Docker's isolation chains), found by following `-j`/`-g` jumps from the built-in chains.
//!
//! What it can attribute: drops by rules that iptables-save shows with counters, which is
//! every rule written by `iptables`: legacy x_tables counts every rule, and iptables-nft
//! gives every rule a `counter` expression (Docker 20.10 writes its rules this way), e.g.
//! Docker's network isolation. Drops by a chain's `DROP` policy are attributed when the
//! policy counter rises, which it does with iptables-legacy.
//!
//! What it cannot attribute, honestly:
//! - `DROP` policies under iptables-nft: iptables-nft creates base chains without
//!   counters, so `:FORWARD DROP [0:0]` stays at zero however many packets the policy
//!   drops (on this project's Docker 20.10 / iptables 1.8.9 host `:INPUT ACCEPT [0:0]`
//!   stayed at zero while thousands of packets were delivered locally). Such a drop
//!   yields no culprit; [`drop_policies`] lists the policies that remain as candidates;
//! - rules written with `nft` directly: tables that iptables-save does not own are not
//!   printed at all, and a native nft rule without a `counter` statement has nothing that
//!   rises; such drops yield no culprit;
//! - rules iptables-nft cannot translate back (it prints a warning comment instead, kept
//!   in [`Ruleset::warnings`]), and tables of the other backend (iptables-nft only warns
//!   that legacy tables exist; this module reads whichever backend `iptables-save`
//!   resolves to);
//! - arptables and ebtables rules, which are not read;
//! - ambiguity: counters are totals over all traffic. If other packets are dropped by the
//!   same rule (or by other DROP rules) while we watch, the attribution lists several
//!   culprits, or one culprit whose delta exceeds our drops, and
//!   [`Attribution::certain`] is false. Only one culprit whose delta equals the drops we
//!   saw is reported as certain;
//! - drops whose reason is not `NETFILTER_DROP` are not netfilter's, and counter deltas
//!   say nothing about them.
//!
//! Rules are matched between the two snapshots by family, table, chain, rule text and
//! occurrence among identical rules; rules added or removed in between, and counters that
//! went down (a reset, `iptables -Z`), are ignored. iptables-save shows no rule handles,
//! so a rule deleted and re-added with the same text between the snapshots (Docker
//! re-inserts `-A FORWARD -j DOCKER-USER` and rewrites its isolation rules when networks
//! come and go) is taken for the same rule: its fresh counter reads as a reset (ignored)
//! or, if it climbed past the old value, as a wrong, smaller delta.
//!
//! This file reads the rulesets ([`snapshot`]); `ruleset` holds what iptables-save prints
//! and its parser ([`parse_save`]), `attribution` the comparison of two snapshots
//! ([`attribute`], [`drop_policies`], [`hook_of`]).

use std::time::Duration;

use crate::explain::command::{self, CommandError, Shown};

mod attribution;
mod ruleset;

pub use attribution::{attribute, drop_policies, hook_of, Attribution, Culprit};
pub(crate) use ruleset::tokenize;
pub use ruleset::{parse_save, Family, Policy, Rule, Ruleset};

/// How long one `iptables-save` run may take before it is killed.
pub const SAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors from reading the rulesets.
#[derive(Debug, thiserror::Error)]
pub enum NetfilterError {
    /// Running `iptables-save` or `ip6tables-save` failed.
    #[error(transparent)]
    Run(#[from] CommandError),
    /// Neither the IPv4 nor the IPv6 ruleset could be read.
    #[error(
        "cannot read any netfilter ruleset (ipv4: {}; ipv6: {})",
        error_chain(ipv4),
        error_chain(ipv6)
    )]
    Unavailable {
        /// Why the IPv4 ruleset could not be read.
        ipv4: Box<NetfilterError>,
        /// Why the IPv6 ruleset could not be read.
        ipv6: Box<NetfilterError>,
    },
    /// The blocking task of [`snapshot_async`] panicked or was cancelled.
    #[error("the netfilter snapshot task failed")]
    Join {
        /// What happened to the task.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Reads the IPv4 and IPv6 rulesets with `iptables-save -c` and `ip6tables-save -c`,
/// each bounded by [`SAVE_TIMEOUT`]. A family whose program is absent or fails is skipped
/// (logged at debug level); it is an error only if both fail.
pub fn snapshot() -> Result<Ruleset, NetfilterError> {
    let mut out = Ruleset::default();
    let mut failed = Vec::new();
    for family in [Family::Ipv4, Family::Ipv6] {
        match save(family, SAVE_TIMEOUT) {
            Ok(text) => {
                let set = parse_save(family, &text);
                for warning in &set.warnings {
                    log::debug!("{}: {warning}", family.save_program());
                }
                out.extend(set);
            }
            Err(e) => {
                log::debug!("skipping {family} netfilter rules: {}", error_chain(&e));
                failed.push(e);
            }
        }
    }
    match <[NetfilterError; 2]>::try_from(failed) {
        Ok([ipv4, ipv6]) => Err(NetfilterError::Unavailable {
            ipv4: Box::new(ipv4),
            ipv6: Box::new(ipv6),
        }),
        Err(_) => Ok(out),
    }
}

/// [`snapshot`] on tokio's blocking pool.
pub async fn snapshot_async() -> Result<Ruleset, NetfilterError> {
    tokio::task::spawn_blocking(snapshot)
        .await
        .map_err(|source| NetfilterError::Join { source })?
}

/// Runs `<family>-save -c`, looking in the PATH first, then in /usr/sbin and /sbin
/// (which a non-root PATH may lack).
fn save(family: Family, timeout: Duration) -> Result<String, NetfilterError> {
    command::run_installed(family.save_program(), &["-c"], timeout, Shown::Program)
        .map_err(NetfilterError::from)
}

/// `error: cause: cause` for logs and for [`NetfilterError::Unavailable`].
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests;

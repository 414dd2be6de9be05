//! Counter-delta attribution between two nftables snapshots (see [`super`]).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{hook_of, NftRule, NftRuleset};
use crate::explain::docker_rules::{classify, DockerFacts, Meaning, PacketHint, RuleInput};

/// A dropping rule or drop policy whose counter rose between two snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NftCulprit {
    /// The table's family.
    pub family: String,
    /// The table.
    pub table: String,
    /// The chain.
    pub chain: String,
    /// The rule's handle in the later snapshot (`None` for a policy).
    pub handle: Option<u64>,
    /// The rule's text (see [`NftRule::text`]), or `policy drop`.
    pub rule: String,
    /// The rule's comment.
    pub comment: Option<String>,
    /// The hook the chain runs at (see [`hook_of`]).
    pub hook: Option<String>,
    /// How many packets its counter rose by.
    pub delta: u64,
    /// The chain was rewritten or created between the reads: `delta` counts from then.
    pub since_rewrite: bool,
}

impl NftCulprit {
    /// `ip docker-bridges`.
    pub fn qualified_table(&self) -> String {
        format!("{} {}", self.family, self.table)
    }

    /// What the rule means in Docker's terms (see [`crate::explain::docker_rules::classify`]).
    pub fn meaning(&self, facts: &DockerFacts, packet: &PacketHint) -> Meaning {
        let table = self.qualified_table();
        let input = RuleInput::nftables(&table, &self.chain, self.comment.as_deref(), &self.rule);
        classify(&input, facts, packet)
    }
}

/// How a chain changed between two snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum Change {
    /// The chain's rule handles differ: it was flushed and refilled, or rules were added
    /// or deleted.
    Rewritten {
        /// The handles before.
        before: Vec<u64>,
        /// The handles after.
        after: Vec<u64>,
    },
    /// A rule's counter went down (reset).
    CounterWentDown {
        /// The rule.
        handle: u64,
    },
    /// The chain is gone: its drops in between cannot be counted.
    Removed,
    /// The table was deleted and re-created (its handle changed).
    TableRecreated,
}

/// A chain that can drop and changed between the reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainChange {
    /// The table's family.
    pub family: String,
    /// The table.
    pub table: String,
    /// The chain.
    pub chain: String,
    /// What happened.
    pub change: Change,
}

/// Which dropping rules may have dropped the packets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum NftAttribution {
    /// The counters compare cleanly.
    Counted {
        /// Candidates, largest delta first.
        culprits: Vec<NftCulprit>,
        /// Exactly one culprit, whose delta equals the drops seen (or none were given).
        certain: bool,
    },
    /// A chain that can drop changed between the reads: not sure.
    NotSure {
        /// The changed chains.
        changed: Vec<ChainChange>,
        /// Rules whose counters rose anyway (in changed chains: since the change).
        culprits: Vec<NftCulprit>,
    },
}

impl NftAttribution {
    /// The candidates, whatever the result.
    pub fn culprits(&self) -> &[NftCulprit] {
        match self {
            NftAttribution::Counted { culprits, .. } | NftAttribution::NotSure { culprits, .. } => {
                culprits
            }
        }
    }

    /// Whether one rule is named with certainty.
    pub fn certain(&self) -> bool {
        matches!(self, NftAttribution::Counted { certain: true, .. })
    }
}

type ChainKey<'a> = (&'a str, &'a str, &'a str);

fn by_chain(set: &NftRuleset) -> BTreeMap<ChainKey<'_>, Vec<&NftRule>> {
    let mut out: BTreeMap<ChainKey<'_>, Vec<&NftRule>> = BTreeMap::new();
    for c in &set.chains {
        out.entry((&c.family, &c.table, &c.name)).or_default();
    }
    for r in &set.rules {
        out.entry((&r.family, &r.table, &r.chain))
            .or_default()
            .push(r);
    }
    out
}

fn drop_policy(set: &NftRuleset, (f, t, c): ChainKey<'_>) -> bool {
    set.chain(f, t, c)
        .and_then(|c| c.base.as_ref())
        .is_some_and(|b| b.policy == "drop")
}

/// Compares the counters of dropping rules between two snapshots. `drops` is how many
/// `NETFILTER_DROP` drops were seen in between (0 if unknown).
pub fn attribute(before: &NftRuleset, after: &NftRuleset, drops: u64) -> NftAttribution {
    let old = by_chain(before);
    let new = by_chain(after);
    let table_handle = |set: &NftRuleset, f: &str, t: &str| {
        set.tables
            .iter()
            .find(|x| x.family == f && x.name == t)
            .map(|x| x.handle)
    };
    let mut changed = Vec::new();
    let mut culprits = Vec::new();
    let culprit = |r: &NftRule, delta: u64, since_rewrite: bool| NftCulprit {
        family: r.family.clone(),
        table: r.table.clone(),
        chain: r.chain.clone(),
        handle: Some(r.handle),
        rule: r.text.clone(),
        comment: r.comment.clone(),
        hook: hook_of(after, &r.family, &r.table, &r.chain),
        delta,
        since_rewrite,
    };
    let packets = |r: &NftRule| r.counter.map_or(0, |c| c.packets);

    for (key, rules) in &new {
        let (f, t, c) = *key;
        let can_drop = |rs: &[&NftRule]| rs.iter().any(|r| r.drops());
        let change = |change| ChainChange {
            family: f.to_string(),
            table: t.to_string(),
            chain: c.to_string(),
            change,
        };
        let Some(was) = old.get(key) else {
            // Created in between: its counters started at zero.
            for r in rules.iter().filter(|r| r.drops() && packets(r) > 0) {
                culprits.push(culprit(r, packets(r), true));
            }
            continue;
        };
        let relevant = can_drop(rules) || can_drop(was) || drop_policy(after, *key);
        let recreated = table_handle(before, f, t) != table_handle(after, f, t);
        let handles = |rs: &[&NftRule]| rs.iter().map(|r| r.handle).collect::<Vec<_>>();
        let (hb, ha) = (handles(was), handles(rules));
        if recreated || hb != ha {
            if relevant {
                changed.push(change(if recreated {
                    Change::TableRecreated
                } else {
                    Change::Rewritten {
                        before: hb,
                        after: ha,
                    }
                }));
            }
            for r in rules.iter().filter(|r| r.drops() && packets(r) > 0) {
                culprits.push(culprit(r, packets(r), true));
            }
            continue;
        }
        let mut went_down = None;
        for (r, w) in rules.iter().zip(was) {
            match packets(r).checked_sub(packets(w)) {
                Some(0) => {}
                Some(delta) if r.drops() => culprits.push(culprit(r, delta, false)),
                Some(_) => {}
                None => {
                    went_down.get_or_insert(r.handle);
                }
            }
        }
        if let (Some(handle), true) = (went_down, relevant) {
            changed.push(change(Change::CounterWentDown { handle }));
        }
    }
    for (key, rules) in &old {
        if !new.contains_key(key) && (rules.iter().any(|r| r.drops()) || drop_policy(before, *key))
        {
            let (f, t, c) = *key;
            changed.push(ChainChange {
                family: f.to_string(),
                table: t.to_string(),
                chain: c.to_string(),
                change: Change::Removed,
            });
        }
    }
    culprits.sort_by_key(|c| std::cmp::Reverse(c.delta));
    if !changed.is_empty() {
        return NftAttribution::NotSure { changed, culprits };
    }
    let certain = match culprits.as_slice() {
        [only] => drops == 0 || only.delta == drops,
        _ => false,
    };
    NftAttribution::Counted { culprits, certain }
}

/// Base chains whose policy is `drop`, as candidates with delta 0: nftables keeps no
/// counter for a policy, so such drops cannot be counted.
pub fn drop_policies(ruleset: &NftRuleset) -> Vec<NftCulprit> {
    ruleset
        .chains
        .iter()
        .filter(|c| c.base.as_ref().is_some_and(|b| b.policy == "drop"))
        .map(|c| NftCulprit {
            family: c.family.clone(),
            table: c.table.clone(),
            chain: c.name.clone(),
            handle: None,
            rule: "policy drop".to_string(),
            comment: None,
            hook: c.base.as_ref().map(|b| b.hook.clone()),
            delta: 0,
            since_rewrite: false,
        })
        .collect()
}

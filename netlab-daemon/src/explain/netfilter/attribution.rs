//! Naming the culprits: the dropping rules and `DROP` policies whose counters rose between
//! two snapshots ([`attribute`], [`drop_policies`]), and the netfilter hook a chain runs at
//! ([`hook_of`]).

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::ruleset::{Family, Rule, Ruleset};

/// The order in which the hooks of built-in chains are tried by [`hook_of`].
const HOOKS: [(&str, &str); 5] = [
    ("FORWARD", "forward"),
    ("INPUT", "input"),
    ("OUTPUT", "output"),
    ("PREROUTING", "prerouting"),
    ("POSTROUTING", "postrouting"),
];

/// A rule or policy whose counter rose between two snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Culprit {
    /// The family of the rule.
    pub family: Family,
    /// The table, e.g. `filter`.
    pub table: String,
    /// The chain, e.g. `DOCKER-ISOLATION-STAGE-2`.
    pub chain: String,
    /// The rule as iptables prints it without `-A`, e.g.
    /// `DOCKER-ISOLATION-STAGE-2 -o br-8be916360cbc -j DROP`, or `policy FORWARD DROP`.
    pub rule: String,
    /// The netfilter hook the chain runs at, if known (see [`hook_of`]).
    pub hook: Option<&'static str>,
    /// How many packets its counter rose by.
    pub delta: u64,
}

/// Which dropping rules may have dropped the packets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Attribution {
    /// The candidates, largest delta first (ties in ruleset order).
    pub culprits: Vec<Culprit>,
    /// Exactly one culprit, whose delta equals the drops seen (or no drop count was given).
    pub certain: bool,
}

/// The hook of a built-in chain name.
fn builtin_hook(chain: &str) -> Option<&'static str> {
    HOOKS.iter().find(|(c, _)| *c == chain).map(|(_, h)| *h)
}

/// The netfilter hook `chain` of `table` runs at: a built-in chain's own hook, or for a
/// user chain the hook of a built-in chain that reaches it through `-j`/`-g` jumps
/// (transitively). If several do, the first of forward, input, output, prerouting,
/// postrouting wins. `None` if no built-in chain reaches it.
pub fn hook_of(
    ruleset: &Ruleset,
    family: Family,
    table: &str,
    chain: &str,
) -> Option<&'static str> {
    if let Some(hook) = builtin_hook(chain) {
        return Some(hook);
    }
    let mut edges: HashMap<&str, Vec<String>> = HashMap::new();
    for rule in ruleset
        .rules
        .iter()
        .filter(|r| r.family == family && r.table == table)
    {
        let next = edges.entry(rule.chain.as_str()).or_default();
        if !rule.target.is_empty() {
            next.push(rule.target.clone());
        }
        if let Some(goto) = rule.goto() {
            next.push(goto);
        }
    }
    HOOKS
        .iter()
        .find(|(builtin, _)| reaches(&edges, builtin, chain))
        .map(|(_, hook)| *hook)
}

/// Whether `to` is reachable from `from` over `edges` (cycle-safe).
fn reaches(edges: &HashMap<&str, Vec<String>>, from: &str, to: &str) -> bool {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut stack: Vec<&str> = vec![from];
    while let Some(chain) = stack.pop() {
        if !seen.insert(chain) {
            continue;
        }
        for next in edges.get(chain).into_iter().flatten() {
            if next == to {
                return true;
            }
            stack.push(next.as_str());
        }
    }
    false
}

/// Key of a rule between snapshots: family, table, chain, spec and occurrence index.
type RuleKey<'a> = (Family, &'a str, &'a str, &'a str, usize);

/// Every rule with its [`RuleKey`].
fn keyed(rules: &[Rule]) -> Vec<(RuleKey<'_>, &Rule)> {
    let mut seen: HashMap<(Family, &str, &str, &str), usize> = HashMap::new();
    rules
        .iter()
        .map(|r| {
            let n = seen
                .entry((r.family, &r.table, &r.chain, &r.spec))
                .or_default();
            let key = (
                r.family,
                r.table.as_str(),
                r.chain.as_str(),
                r.spec.as_str(),
                *n,
            );
            *n += 1;
            (key, r)
        })
        .collect()
}

/// Compares the counters of dropping rules (`DROP`, `REJECT`) and `DROP` policies
/// between two snapshots, and lists those that rose (a rule added in between from zero). `drops` is how many
/// `NETFILTER_DROP` drops were seen in between (0 if unknown); the attribution is
/// certain only if exactly one counter rose, by exactly that much.
pub fn attribute(before: &Ruleset, after: &Ruleset, drops: u64) -> Attribution {
    let mut culprits = Vec::new();

    let old: HashMap<RuleKey<'_>, u64> = keyed(&before.rules)
        .into_iter()
        .map(|(k, r)| (k, r.packets))
        .collect();
    for (key, rule) in keyed(&after.rules) {
        if !rule.drops() {
            continue;
        }
        // A rule added since `before` (`iptables -I` while netlab runs, Docker's rules for
        // a new network) started counting at zero.
        let was = old.get(&key).copied().unwrap_or(0);
        if rule.packets > was {
            culprits.push(Culprit {
                family: rule.family,
                table: rule.table.clone(),
                chain: rule.chain.clone(),
                rule: rule.spec.clone(),
                hook: hook_of(after, rule.family, &rule.table, &rule.chain),
                delta: rule.packets - was,
            });
        }
    }

    for policy in after.policies.iter().filter(|p| p.policy == "DROP") {
        let was = before.policies.iter().find(|p| {
            p.family == policy.family
                && p.table == policy.table
                && p.chain == policy.chain
                && p.policy == "DROP"
        });
        let Some(was) = was else {
            continue;
        };
        if policy.packets > was.packets {
            culprits.push(Culprit {
                family: policy.family,
                table: policy.table.clone(),
                chain: policy.chain.clone(),
                rule: format!("policy {} {}", policy.chain, policy.policy),
                hook: hook_of(after, policy.family, &policy.table, &policy.chain),
                delta: policy.packets - was.packets,
            });
        }
    }

    culprits.sort_by_key(|c| std::cmp::Reverse(c.delta));
    let certain = match culprits.as_slice() {
        [only] => drops == 0 || only.delta == drops,
        _ => false,
    };
    Attribution { culprits, certain }
}

/// The chains whose policy is `DROP`, as [`Culprit`]s with delta 0: the candidates left
/// when netfilter dropped packets but no counter rose (iptables-nft keeps no policy
/// counters, see the module documentation).
pub fn drop_policies(ruleset: &Ruleset) -> Vec<Culprit> {
    ruleset
        .policies
        .iter()
        .filter(|p| p.policy == "DROP")
        .map(|p| Culprit {
            family: p.family,
            table: p.table.clone(),
            chain: p.chain.clone(),
            rule: format!("policy {} {}", p.chain, p.policy),
            hook: builtin_hook(&p.chain),
            delta: 0,
        })
        .collect()
}

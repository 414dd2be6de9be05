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

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;

use crate::explain::command::{self, CommandError, Shown};

/// How long one `iptables-save` run may take before it is killed.
pub const SAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The order in which the hooks of built-in chains are tried by [`hook_of`].
const HOOKS: [(&str, &str); 5] = [
    ("FORWARD", "forward"),
    ("INPUT", "input"),
    ("OUTPUT", "output"),
    ("PREROUTING", "prerouting"),
    ("POSTROUTING", "postrouting"),
];

/// Rule targets that drop the packet (REJECT drops it too, after answering).
const DROP_TARGETS: [&str; 2] = ["DROP", "REJECT"];

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

/// An address family of netfilter rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// iptables (`iptables-save`).
    Ipv4,
    /// ip6tables (`ip6tables-save`).
    Ipv6,
}

impl Family {
    /// `"ipv4"` or `"ipv6"`.
    pub const fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }

    /// The program that prints this family's rules.
    pub const fn save_program(self) -> &'static str {
        match self {
            Family::Ipv4 => "iptables-save",
            Family::Ipv6 => "ip6tables-save",
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One rule with its counters, as `iptables-save -c` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// The family of the ruleset it belongs to.
    pub family: Family,
    /// The table, e.g. `filter`.
    pub table: String,
    /// The chain it is appended to, e.g. `DOCKER-ISOLATION-STAGE-2`.
    pub chain: String,
    /// The rule as `CHAIN args`: the iptables-save line without counters and `-A `, e.g.
    /// `DOCKER-ISOLATION-STAGE-2 -o br-8be916360cbc -j DROP`.
    pub spec: String,
    /// The value of `-j`, e.g. `DROP`; empty if the rule has none.
    pub target: String,
    /// Packets that matched the rule (0 if the line had no counters).
    pub packets: u64,
    /// Bytes that matched the rule (0 if the line had no counters).
    pub bytes: u64,
}

impl Rule {
    /// The chain the rule continues in with `-g`, if any.
    pub fn goto(&self) -> Option<String> {
        option_value(&tokenize(&self.spec), &["-g", "--goto"])
    }

    /// Whether the rule's target drops the packet (`DROP` or `REJECT`).
    pub fn drops(&self) -> bool {
        DROP_TARGETS.contains(&self.target.as_str())
    }
}

/// The policy of a built-in chain, from a `:FORWARD DROP [pkts:bytes]` line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// The family of the ruleset it belongs to.
    pub family: Family,
    /// The table, e.g. `filter`.
    pub table: String,
    /// The built-in chain, e.g. `FORWARD`.
    pub chain: String,
    /// The policy, `ACCEPT` or `DROP`.
    pub policy: String,
    /// Packets the policy decided (0 if the line had no counters).
    pub packets: u64,
}

/// The rules and chain policies of one or both families.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Ruleset {
    /// Every rule, in the order iptables-save printed them.
    pub rules: Vec<Rule>,
    /// The policies of built-in chains (user chains, printed with policy `-`, are left out).
    pub policies: Vec<Policy>,
    /// Warning comments iptables-save printed (`# Warning: ...`), e.g. about legacy tables
    /// or rules it cannot show.
    pub warnings: Vec<String>,
}

impl Ruleset {
    /// Appends the rules, policies and warnings of `other`.
    pub fn extend(&mut self, other: Ruleset) {
        self.rules.extend(other.rules);
        self.policies.extend(other.policies);
        self.warnings.extend(other.warnings);
    }

    /// Whether there are neither rules nor policies.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.policies.is_empty()
    }
}

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

/// Parses the output of `iptables-save -c` (or `ip6tables-save -c`) of `family`.
///
/// Comments, `COMMIT`, blank lines and lines that are neither a chain declaration nor an
/// `-A` rule are ignored, as are rules outside a `*table` section. Rules without a
/// `[pkts:bytes]` prefix get zero counters.
pub fn parse_save(family: Family, text: &str) -> Ruleset {
    let mut out = Ruleset::default();
    let mut table: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if let Some(comment) = line.strip_prefix('#') {
            let comment = comment.trim();
            if comment.starts_with("Warning") || comment.contains("incompatible") {
                out.warnings.push(comment.to_string());
            }
            continue;
        }
        if line == "COMMIT" {
            table = None;
            continue;
        }
        if let Some(name) = line.strip_prefix('*') {
            let name = name.trim();
            table =
                (!name.is_empty() && !name.contains(char::is_whitespace)).then(|| name.to_string());
            continue;
        }
        let Some(table) = table.as_deref() else {
            continue;
        };
        if let Some(decl) = line.strip_prefix(':') {
            if let Some(policy) = parse_policy(family, table, decl) {
                out.policies.push(policy);
            }
            continue;
        }
        if let Some(rule) = parse_rule(family, table, line) {
            out.rules.push(rule);
        }
    }
    out
}

/// Parses `FORWARD DROP [pkts:bytes]` (the text after `:`); `None` for user chains.
fn parse_policy(family: Family, table: &str, decl: &str) -> Option<Policy> {
    let mut words = decl.split_whitespace();
    let chain = words.next()?;
    let policy = words.next()?;
    if policy == "-" || !policy.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let packets = match words.next() {
        Some(counters) => parse_counters(counters)?.0,
        None => 0,
    };
    Some(Policy {
        family,
        table: table.to_string(),
        chain: chain.to_string(),
        policy: policy.to_string(),
        packets,
    })
}

/// Parses `[pkts:bytes] -A CHAIN args` (the counters being optional).
fn parse_rule(family: Family, table: &str, line: &str) -> Option<Rule> {
    let (packets, bytes, rest) = if line.starts_with('[') {
        let end = line.find(']')?;
        let (packets, bytes) = parse_counters(&line[..=end])?;
        (packets, bytes, line[end + 1..].trim_start())
    } else {
        (0, 0, line)
    };
    let spec = rest
        .strip_prefix("-A")
        .or_else(|| rest.strip_prefix("--append"))?;
    if !spec.starts_with(char::is_whitespace) {
        return None;
    }
    let spec = spec.trim();
    let tokens = tokenize(spec);
    let chain = tokens.first()?.clone();
    let target = option_value(&tokens[1..], &["-j", "--jump"]).unwrap_or_default();
    Some(Rule {
        family,
        table: table.to_string(),
        chain,
        spec: spec.to_string(),
        target,
        packets,
        bytes,
    })
}

/// Parses `[pkts:bytes]`.
fn parse_counters(s: &str) -> Option<(u64, u64)> {
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    let (packets, bytes) = inner.split_once(':')?;
    Some((packets.trim().parse().ok()?, bytes.trim().parse().ok()?))
}

/// Splits a rule into arguments the way iptables-restore does: on whitespace, with
/// double quotes grouping and backslash escaping the next character.
fn tokenize(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_token = false;
    let mut quoted = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    cur.push(next);
                }
                in_token = true;
            }
            '"' => {
                quoted = !quoted;
                in_token = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_token {
                    out.push(std::mem::take(&mut cur));
                    in_token = false;
                }
            }
            c => {
                cur.push(c);
                in_token = true;
            }
        }
    }
    if in_token {
        out.push(cur);
    }
    out
}

/// The argument following the first of `names` in `tokens`.
fn option_value(tokens: &[String], names: &[&str]) -> Option<String> {
    let i = tokens.iter().position(|t| names.contains(&t.as_str()))?;
    tokens.get(i + 1).cloned()
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
/// between two snapshots, and lists those that rose. `drops` is how many
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
        let Some(&was) = old.get(&key) else {
            continue;
        };
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
mod tests {
    use super::*;

    const DEVOPS: &str = "br-8be916360cbc";
    const PROD: &str = "br-1aa2bb3cc4dd";
    const STAGE2_DEVOPS: &str = "DOCKER-ISOLATION-STAGE-2 -o br-8be916360cbc -j DROP";
    const STAGE2_PROD: &str = "DOCKER-ISOLATION-STAGE-2 -o br-1aa2bb3cc4dd -j DROP";

    /// `iptables-save -c` of Docker 20.10 (iptables-nft) with the networks devops
    /// (172.18.0.0/16 on br-8be916360cbc) and prod (172.19.0.0/16 on br-1aa2bb3cc4dd), a
    /// published port in prod, and one rule an administrator put into DOCKER-USER. The
    /// counters of both isolation DROP rules and of the FORWARD policy are parameters.
    fn docker_save(devops: u64, prod: u64, policy: u64) -> String {
        let (db, pb, fb) = (devops * 84, prod * 84, policy * 84);
        format!(
            r#"# Generated by iptables-save v1.8.9 (nf_tables) on Fri Nov 27 19:13:37 2026
*filter
:INPUT ACCEPT [15203:2013348]
:FORWARD DROP [{policy}:{fb}]
:OUTPUT ACCEPT [14172:1800924]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
[412:34608] -A FORWARD -j DOCKER-USER
[410:34440] -A FORWARD -j DOCKER-ISOLATION-STAGE-1
[180:15120] -A FORWARD -o {PROD} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
[3:180] -A FORWARD -o {PROD} -j DOCKER
[190:15960] -A FORWARD -i {PROD} ! -o {PROD} -j ACCEPT
[0:0] -A FORWARD -i {PROD} -o {PROD} -j ACCEPT
[12:1008] -A FORWARD -o {DEVOPS} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
[0:0] -A FORWARD -o {DEVOPS} -j DOCKER
[14:1176] -A FORWARD -i {DEVOPS} ! -o {DEVOPS} -j ACCEPT
[6:504] -A FORWARD -i {DEVOPS} -o {DEVOPS} -j ACCEPT
[0:0] -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
[0:0] -A FORWARD -o docker0 -j DOCKER
[0:0] -A FORWARD -i docker0 ! -o docker0 -j ACCEPT
[0:0] -A FORWARD -i docker0 -o docker0 -j ACCEPT
[3:180] -A DOCKER -d 172.19.0.2/32 ! -i {PROD} -o {PROD} -p tcp -m tcp --dport 80 -j ACCEPT
[20:1680] -A DOCKER-ISOLATION-STAGE-1 -i {PROD} ! -o {PROD} -j DOCKER-ISOLATION-STAGE-2
[9:756] -A DOCKER-ISOLATION-STAGE-1 -i {DEVOPS} ! -o {DEVOPS} -j DOCKER-ISOLATION-STAGE-2
[0:0] -A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
[381:32004] -A DOCKER-ISOLATION-STAGE-1 -j RETURN
[{devops}:{db}] -A DOCKER-ISOLATION-STAGE-2 -o {DEVOPS} -j DROP
[{prod}:{pb}] -A DOCKER-ISOLATION-STAGE-2 -o {PROD} -j DROP
[0:0] -A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
[20:1680] -A DOCKER-ISOLATION-STAGE-2 -j RETURN
[2:120] -A DOCKER-USER -s 203.0.113.0/24 -m comment --comment "block \"lab\" scanners" -j DROP
[410:34440] -A DOCKER-USER -j RETURN
COMMIT
# Completed on Fri Nov 27 19:13:37 2026
# Generated by iptables-save v1.8.9 (nf_tables) on Fri Nov 27 19:13:37 2026
*nat
:PREROUTING ACCEPT [230:17921]
:INPUT ACCEPT [4:240]
:OUTPUT ACCEPT [512:38745]
:POSTROUTING ACCEPT [515:38925]
:DOCKER - [0:0]
[31:1860] -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
[2:120] -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
[1:84] -A POSTROUTING -s 172.19.0.0/16 ! -o {PROD} -j MASQUERADE
[5:420] -A POSTROUTING -s 172.18.0.0/16 ! -o {DEVOPS} -j MASQUERADE
[0:0] -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
[0:0] -A DOCKER -i {PROD} -j RETURN
[0:0] -A DOCKER -i {DEVOPS} -j RETURN
[0:0] -A DOCKER -i docker0 -j RETURN
[3:180] -A DOCKER ! -i {PROD} -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.19.0.2:80
COMMIT
# Completed on Fri Nov 27 19:13:37 2026
"#
        )
    }

    fn fixture(devops: u64, prod: u64, policy: u64) -> Ruleset {
        parse_save(Family::Ipv4, &docker_save(devops, prod, policy))
    }

    fn find<'a>(set: &'a Ruleset, spec: &str) -> &'a Rule {
        set.rules
            .iter()
            .find(|r| r.spec == spec)
            .unwrap_or_else(|| panic!("no rule {spec}"))
    }

    #[test]
    fn parses_docker_ruleset() {
        let text = docker_save(5, 0, 1);
        let set = parse_save(Family::Ipv4, &text);
        let appends = text.lines().filter(|l| l.contains("] -A ")).count();
        assert_eq!(set.rules.len(), appends);
        assert_eq!(set.rules.len(), 34);
        assert_eq!(set.rules.iter().filter(|r| r.table == "filter").count(), 25);
        assert_eq!(set.rules.iter().filter(|r| r.table == "nat").count(), 9);
        // Built-in chains only: 3 in filter, 4 in nat.
        assert_eq!(set.policies.len(), 7);
        let forward = &set.policies[1];
        assert_eq!(
            (forward.table.as_str(), forward.chain.as_str()),
            ("filter", "FORWARD")
        );
        assert_eq!((forward.policy.as_str(), forward.packets), ("DROP", 1));
        assert!(set.warnings.is_empty());

        let drop = find(&set, STAGE2_DEVOPS);
        assert_eq!(drop.family, Family::Ipv4);
        assert_eq!(drop.table, "filter");
        assert_eq!(drop.chain, "DOCKER-ISOLATION-STAGE-2");
        assert_eq!(drop.target, "DROP");
        assert_eq!((drop.packets, drop.bytes), (5, 420));
        assert!(drop.drops());

        let jump = &set.rules[0];
        assert_eq!(jump.spec, "FORWARD -j DOCKER-USER");
        assert_eq!(jump.target, "DOCKER-USER");
        assert_eq!((jump.packets, jump.bytes), (412, 34608));

        let dnat = set.rules.last().map(|r| r.target.as_str());
        assert_eq!(dnat, Some("DNAT"));
    }

    #[test]
    fn parses_quoted_arguments() {
        let set = fixture(0, 0, 0);
        let spec = r#"DOCKER-USER -s 203.0.113.0/24 -m comment --comment "block \"lab\" scanners" -j DROP"#;
        let rule = find(&set, spec);
        assert_eq!(rule.target, "DROP");
        assert_eq!(rule.chain, "DOCKER-USER");
        assert_eq!(
            tokenize(spec),
            [
                "DOCKER-USER",
                "-s",
                "203.0.113.0/24",
                "-m",
                "comment",
                "--comment",
                "block \"lab\" scanners",
                "-j",
                "DROP"
            ]
        );
        // A quoted "-j X" inside a comment is not the target.
        let text = "*filter\n-A INPUT -m comment --comment \"-j ACCEPT\" -j REJECT --reject-with icmp-port-unreachable\nCOMMIT\n";
        let set = parse_save(Family::Ipv4, text);
        assert_eq!(set.rules.len(), 1);
        assert_eq!(set.rules[0].target, "REJECT");
    }

    #[test]
    fn missing_counters_are_zero() {
        let text = "*filter\n:FORWARD DROP\n-A FORWARD -o br-x -j DROP\n[7:588] -A FORWARD -j ACCEPT\nCOMMIT\n";
        let set = parse_save(Family::Ipv6, text);
        assert_eq!(set.rules.len(), 2);
        assert_eq!((set.rules[0].packets, set.rules[0].bytes), (0, 0));
        assert_eq!(set.rules[0].spec, "FORWARD -o br-x -j DROP");
        assert_eq!(set.rules[0].family, Family::Ipv6);
        assert_eq!(set.rules[1].packets, 7);
        assert_eq!(set.policies.len(), 1);
        assert_eq!(set.policies[0].packets, 0);
    }

    #[test]
    fn garbage_and_empty_input() {
        assert_eq!(parse_save(Family::Ipv4, ""), Ruleset::default());
        assert!(parse_save(Family::Ipv4, "\n\n  \n").is_empty());
        let junk = "\
-A FORWARD -j DROP
hello world
*filter
[1:2 -A FORWARD -j DROP
[x:y] -A FORWARD -j DROP
-AFORWARD -j DROP
-A
[3:4]
:
:: [1:2
random text -A FORWARD -j DROP
\u{0}\u{7f}ünïcode
-A   FORWARD   -j   DROP  \r
COMMIT
-A INPUT -j DROP
*
*two words
-A INPUT -j DROP
";
        let set = parse_save(Family::Ipv4, junk);
        assert_eq!(set.rules.len(), 1, "{set:?}");
        assert_eq!(set.rules[0].spec, "FORWARD   -j   DROP");
        assert_eq!(set.rules[0].chain, "FORWARD");
        assert_eq!(set.rules[0].target, "DROP");
        assert!(set.policies.is_empty());
        // Nothing panics on arbitrary bytes either.
        let bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let _ = parse_save(Family::Ipv4, &String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn keeps_warnings() {
        let text = "# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\n*filter\nCOMMIT\n";
        let set = parse_save(Family::Ipv4, text);
        assert_eq!(set.warnings.len(), 1);
        assert!(set.warnings[0].contains("iptables-legacy"));
    }

    #[test]
    fn hooks_of_docker_chains() {
        let set = fixture(0, 0, 0);
        let hook = |table, chain| hook_of(&set, Family::Ipv4, table, chain);
        assert_eq!(hook("filter", "DOCKER-ISOLATION-STAGE-2"), Some("forward"));
        assert_eq!(hook("filter", "DOCKER-ISOLATION-STAGE-1"), Some("forward"));
        assert_eq!(hook("filter", "DOCKER-USER"), Some("forward"));
        assert_eq!(hook("filter", "DOCKER"), Some("forward"));
        assert_eq!(hook("filter", "FORWARD"), Some("forward"));
        assert_eq!(hook("filter", "INPUT"), Some("input"));
        // nat DOCKER is reached from PREROUTING and OUTPUT: output comes first.
        assert_eq!(hook("nat", "DOCKER"), Some("output"));
        assert_eq!(hook("nat", "POSTROUTING"), Some("postrouting"));
        assert_eq!(hook("filter", "NO-SUCH-CHAIN"), None);
        // Other family, other table: no rules there.
        assert_eq!(
            hook_of(&set, Family::Ipv6, "filter", "DOCKER-ISOLATION-STAGE-2"),
            None
        );
        assert_eq!(hook("mangle", "DOCKER-ISOLATION-STAGE-2"), None);
    }

    #[test]
    fn hook_of_follows_goto_and_survives_cycles() {
        let text = "\
*filter
:INPUT ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
:C - [0:0]
:LOOP1 - [0:0]
:LOOP2 - [0:0]
-A INPUT -p icmp -g A
-A A -j B
-A B -j A
-A B -j C
-A LOOP1 -j LOOP2
-A LOOP2 -j LOOP1
COMMIT
";
        let set = parse_save(Family::Ipv4, text);
        assert_eq!(set.rules[0].goto().as_deref(), Some("A"));
        assert_eq!(set.rules[0].target, "");
        for chain in ["A", "B", "C"] {
            assert_eq!(hook_of(&set, Family::Ipv4, "filter", chain), Some("input"));
        }
        assert_eq!(hook_of(&set, Family::Ipv4, "filter", "LOOP1"), None);
    }

    #[test]
    fn one_rule_rising_by_the_drops_is_certain() {
        let a = attribute(&fixture(0, 0, 0), &fixture(3, 0, 0), 3);
        assert!(a.certain);
        assert_eq!(
            a.culprits,
            [Culprit {
                family: Family::Ipv4,
                table: "filter".into(),
                chain: "DOCKER-ISOLATION-STAGE-2".into(),
                rule: STAGE2_DEVOPS.into(),
                hook: Some("forward"),
                delta: 3,
            }]
        );
        // Without a drop count one culprit is still certain.
        assert!(attribute(&fixture(0, 0, 0), &fixture(3, 0, 0), 0).certain);
    }

    #[test]
    fn larger_delta_than_drops_is_not_certain() {
        let a = attribute(&fixture(10, 0, 0), &fixture(15, 0, 0), 3);
        assert_eq!(a.culprits.len(), 1);
        assert_eq!(a.culprits[0].delta, 5);
        assert!(!a.certain);
    }

    #[test]
    fn two_rules_rising_is_not_certain() {
        let a = attribute(&fixture(1, 1, 0), &fixture(2, 4, 0), 4);
        assert!(!a.certain);
        let rules: Vec<(&str, u64)> = a
            .culprits
            .iter()
            .map(|c| (c.rule.as_str(), c.delta))
            .collect();
        assert_eq!(rules, [(STAGE2_PROD, 3), (STAGE2_DEVOPS, 1)]);
    }

    #[test]
    fn nothing_rising_means_no_culprit() {
        let a = attribute(&fixture(4, 4, 4), &fixture(4, 4, 4), 1);
        assert!(a.culprits.is_empty());
        assert!(!a.certain);
        // Non-dropping rules rising (the RETURN and ACCEPT counters) are no culprits.
        let before = fixture(0, 0, 0);
        let mut after = before.clone();
        for r in &mut after.rules {
            r.packets += 100;
        }
        for (r, b) in after.rules.iter_mut().zip(&before.rules) {
            if r.drops() {
                r.packets = b.packets;
            }
        }
        assert!(attribute(&before, &after, 1).culprits.is_empty());
    }

    #[test]
    fn policy_drop() {
        let a = attribute(&fixture(0, 0, 7), &fixture(0, 0, 9), 2);
        assert!(a.certain);
        assert_eq!(a.culprits.len(), 1);
        let c = &a.culprits[0];
        assert_eq!(c.rule, "policy FORWARD DROP");
        assert_eq!((c.table.as_str(), c.chain.as_str()), ("filter", "FORWARD"));
        assert_eq!((c.hook, c.delta), (Some("forward"), 2));
        // ACCEPT policies rising are no culprits.
        let before = fixture(0, 0, 0);
        let mut after = before.clone();
        for p in &mut after.policies {
            if p.policy == "ACCEPT" {
                p.packets += 50;
            }
        }
        assert!(attribute(&before, &after, 1).culprits.is_empty());
    }

    #[test]
    fn drop_policies_are_listed() {
        let set = fixture(0, 0, 0);
        let policies = drop_policies(&set);
        assert_eq!(policies.len(), 1);
        assert_eq!(policies[0].rule, "policy FORWARD DROP");
        assert_eq!((policies[0].hook, policies[0].delta), (Some("forward"), 0));
        assert!(drop_policies(&Ruleset::default()).is_empty());
    }

    #[test]
    fn counter_reset_is_ignored() {
        // iptables -Z between the snapshots: everything went down, then one rose.
        let a = attribute(&fixture(100, 50, 30), &fixture(2, 0, 0), 2);
        assert!(a.culprits.is_empty());
        assert!(!a.certain);
    }

    #[test]
    fn identical_rules_are_matched_by_occurrence() {
        let save = |first: u64, second: u64| {
            format!(
                "*filter\n:DOCKER-USER - [0:0]\n\
                 [{first}:0] -A DOCKER-USER -s 198.51.100.7/32 -j DROP\n\
                 [{second}:0] -A DOCKER-USER -s 198.51.100.7/32 -j DROP\n\
                 [0:0] -A DOCKER-USER -j RETURN\nCOMMIT\n"
            )
        };
        let before = parse_save(Family::Ipv4, &save(10, 0));
        let after = parse_save(Family::Ipv4, &save(10, 2));
        let a = attribute(&before, &after, 2);
        assert!(a.certain);
        assert_eq!(a.culprits.len(), 1);
        assert_eq!(a.culprits[0].delta, 2);
        assert_eq!(a.culprits[0].rule, "DOCKER-USER -s 198.51.100.7/32 -j DROP");
        // Without the occurrence index the second rule would look like 10 -> 2 (a reset).
        let a = attribute(&before, &parse_save(Family::Ipv4, &save(12, 0)), 2);
        assert_eq!(a.culprits.len(), 1);
        assert_eq!(a.culprits[0].delta, 2);
    }

    #[test]
    fn added_and_removed_rules_are_ignored() {
        let before = fixture(0, 0, 0);
        let mut after = fixture(0, 0, 0);
        after.rules.push(Rule {
            family: Family::Ipv4,
            table: "filter".into(),
            chain: "DOCKER-USER".into(),
            spec: "DOCKER-USER -p icmp -j DROP".into(),
            target: "DROP".into(),
            packets: 5,
            bytes: 420,
        });
        after.rules.retain(|r| r.spec != STAGE2_PROD);
        assert!(attribute(&before, &after, 5).culprits.is_empty());
        // A rule of the other family with the same text is a different rule.
        let mut v6 = fixture(3, 0, 0);
        for r in &mut v6.rules {
            r.family = Family::Ipv6;
        }
        assert!(attribute(&before, &v6, 3).culprits.is_empty());
    }

    #[test]
    fn unavailable_names_both_causes() {
        let both = NetfilterError::Unavailable {
            ipv4: Box::new(NetfilterError::Run(CommandError::Start {
                program: "iptables-save".into(),
                source: std::io::ErrorKind::NotFound.into(),
            })),
            ipv6: Box::new(NetfilterError::Run(CommandError::Timeout {
                program: "ip6tables-save".into(),
                timeout: SAVE_TIMEOUT,
            })),
        };
        let msg = both.to_string();
        assert!(
            msg.starts_with("cannot read any netfilter ruleset"),
            "{msg}"
        );
        assert!(
            msg.contains("cannot run iptables-save: entity not found"),
            "{msg}"
        );
        assert!(msg.contains("within 5000 ms"), "{msg}");
    }

    fn real_save_skip_reason() -> Option<String> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Some("not root".into());
        }
        None
    }

    #[test]
    fn parses_real_iptables_save() {
        if let Some(reason) = real_save_skip_reason() {
            println!("skipping: {reason}");
            return;
        }
        let mut read_any = false;
        for family in [Family::Ipv4, Family::Ipv6] {
            let text = match save(family, SAVE_TIMEOUT) {
                Ok(text) => text,
                Err(e) => {
                    println!("skipping {family}: {}", error_chain(&e));
                    continue;
                }
            };
            read_any = true;
            let set = parse_save(family, &text);
            let appends = text
                .lines()
                .filter(|l| {
                    let l = l.trim_start();
                    let l = match l.strip_prefix('[') {
                        Some(rest) => rest.split_once(']').map_or(l, |(_, r)| r.trim_start()),
                        None => l,
                    };
                    l.starts_with("-A ")
                })
                .count();
            assert_eq!(set.rules.len(), appends, "{family}:\n{text}");
            assert!(set.rules.iter().all(|r| r.family == family));
            for rule in &set.rules {
                assert!(rule.spec.starts_with(rule.chain.as_str()), "{rule:?}");
            }
            println!(
                "{family}: {} rules, {} policies, {} warnings",
                set.rules.len(),
                set.policies.len(),
                set.warnings.len()
            );
        }
        if !read_any {
            println!("skipping: neither iptables-save nor ip6tables-save ran");
            return;
        }
        let now = snapshot();
        assert!(now.is_ok(), "{now:?}");
        // Two snapshots in a row: nothing added, nothing reset, so deltas are well-formed.
        let later = snapshot();
        if let (Ok(a), Ok(b)) = (now, later) {
            let attribution = attribute(&a, &b, 0);
            for c in &attribution.culprits {
                assert!(c.delta > 0);
            }
        }
    }

    #[tokio::test]
    async fn snapshot_async_matches_snapshot_outcome() {
        let sync_ok = snapshot().is_ok();
        let result = snapshot_async().await;
        match &result {
            Ok(set) => println!("snapshot: {} rules", set.rules.len()),
            Err(e) => println!("snapshot unavailable: {}", error_chain(e)),
        }
        assert_eq!(result.is_ok(), sync_ok);
    }
}

//! Reading Docker 29's nftables firewall backend, and naming the rule that dropped a packet.
//!
//! With `"firewall-backend": "nftables"` Docker 29 writes its rules into the tables
//! `ip docker-bridges` and `ip6 docker-bridges`, which `iptables-save` does not show (see
//! [`crate::explain::netfilter`] for the iptables backends). Base chains `filter-FORWARD`,
//! `raw-PREROUTING` and `nat-*` dispatch to per-network chains `filter-forward-in__<bridge>`
//! and `filter-forward-out__<bridge>` through verdict maps keyed by interface name; every
//! dropping rule has a `counter` and a comment ("DROP DIRECT ACCESS", "UNPUBLISHED PORT
//! DROP", "ICC", "INTERNAL NETWORK INGRESS", ...).
//!
//! [`snapshot`] reads both tables with `nft -j list table` (bounded by [`NFT_TIMEOUT`]),
//! [`parse_json`] turns `nft -j` output into [`NftRule`]s with a readable expression text as
//! `nft` prints it, and [`attribute`] compares two snapshots the way
//! [`crate::explain::netfilter::attribute`] does, by counter deltas of dropping rules.
//!
//! Rules are matched between snapshots by family, table, chain and handle. Docker flushes
//! and refills a chain whenever it changes it (daemon/libnetwork/internal/nftables at
//! docker-v29.0.0): the counters restart at zero and the handles change. A drop counted
//! by a rule of the old chain before the rewrite is then lost, so when a chain that can
//! drop was rewritten between the reads (its handles changed, a counter went down, the
//! table was re-created, or the chain disappeared) the answer is
//! [`NftAttribution::NotSure`], never a guess. Chains created between the reads count
//! from zero, so their counters are deltas. nftables keeps no counter for a chain policy:
//! [`drop_policies`] lists base chains with policy `drop` as candidates only.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::explain::command::CommandError;

mod attribution;
mod render;
mod run;

pub use attribution::{attribute, drop_policies, ChainChange, Change, NftAttribution, NftCulprit};
pub use render::{render_expr, render_statement};
use run::{run_nft, table_missing};

/// How long one `nft` run may take before it is killed.
pub const NFT_TIMEOUT: Duration = Duration::from_secs(5);

/// The tables Docker's nftables backend writes, as (family, name).
pub const DOCKER_TABLES: [(&str, &str); 2] = [("ip", "docker-bridges"), ("ip6", "docker-bridges")];

/// Errors from reading nftables.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// `nft` is not installed (neither in the PATH nor in /usr/sbin or /sbin).
    #[error("nft is not installed")]
    NftMissing,
    /// Running `nft` failed (e.g. `Operation not permitted` when not root).
    #[error(transparent)]
    Run(#[from] CommandError),
    /// None of the tables exists: Docker does not use its nftables backend here (or has
    /// no bridge network yet).
    #[error("no nftables table {tables} (Docker's nftables backend is not in use)")]
    NoDockerTables {
        /// The tables looked for, e.g. `ip docker-bridges, ip6 docker-bridges`.
        tables: String,
    },
    /// The output is not `nft -j` JSON.
    #[error("cannot parse nft JSON output")]
    Json {
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// The JSON has no top-level `nftables` array.
    #[error("nft JSON output has no \"nftables\" array")]
    NotNftJson,
    /// The blocking task of [`snapshot_async`] panicked or was cancelled.
    #[error("the nftables snapshot task failed")]
    Join {
        /// What happened to the task.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// A table, whose handle changes when it is deleted and re-created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NftTable {
    /// `ip`, `ip6`, `inet`, ...
    pub family: String,
    /// The table's name, e.g. `docker-bridges`.
    pub name: String,
    /// Its handle.
    pub handle: u64,
}

/// What makes a chain a base chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BaseChain {
    /// `filter`, `nat` or `route`.
    pub kind: String,
    /// The hook, e.g. `forward` or `prerouting`.
    pub hook: String,
    /// The priority, e.g. -300 for `raw`.
    pub prio: i64,
    /// `accept` or `drop`.
    pub policy: String,
}

/// A chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NftChain {
    /// The table's family.
    pub family: String,
    /// The table.
    pub table: String,
    /// The chain's name, e.g. `filter-forward-in__br-x`.
    pub name: String,
    /// Its handle.
    pub handle: u64,
    /// Hook, priority and policy, for base chains.
    pub base: Option<BaseChain>,
}

/// What a rule does with a packet it matches, from its last verdict statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum Verdict {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `reject` (drops after answering).
    Reject,
    /// `jump <chain>`.
    Jump {
        /// The chain.
        target: String,
    },
    /// `goto <chain>`.
    Goto {
        /// The chain.
        target: String,
    },
    /// `return`.
    Return,
    /// `continue`.
    Continue,
    /// `queue`.
    Queue,
    /// `<key> vmap @map` or an anonymous verdict map.
    Vmap {
        /// The named map, without `@`.
        map: Option<String>,
        /// The chains an anonymous map jumps or goes to.
        targets: Vec<String>,
    },
    /// No verdict statement (counting, logging, NAT statements).
    None,
}

/// A packet and byte counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counter {
    /// Packets counted.
    pub packets: u64,
    /// Bytes counted.
    pub bytes: u64,
}

/// A rule, with what `nft -a list` shows of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NftRule {
    /// The table's family.
    pub family: String,
    /// The table.
    pub table: String,
    /// The chain.
    pub chain: String,
    /// The rule's handle (unique within the table).
    pub handle: u64,
    /// Its comment, e.g. `DROP DIRECT ACCESS`.
    pub comment: Option<String>,
    /// Its `counter` statement, if any.
    pub counter: Option<Counter>,
    /// What it does.
    pub verdict: Verdict,
    /// Its statements as `nft` prints them, with `counter` for the counter and without the
    /// comment, e.g. `ip daddr 10.77.2.2 iifname != "nlt-br-b" counter drop`.
    pub text: String,
}

impl NftRule {
    /// Whether the rule drops what it matches (`drop` or `reject`).
    pub fn drops(&self) -> bool {
        matches!(self.verdict, Verdict::Drop | Verdict::Reject)
    }
}

/// A verdict map (`type ifname : verdict`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NftMap {
    /// The table's family.
    pub family: String,
    /// The table.
    pub table: String,
    /// The map's name.
    pub name: String,
    /// Its elements: key as printed, and verdict.
    pub elements: Vec<(String, Verdict)>,
}

/// Tables, chains, verdict maps and rules of one or more `nft -j` listings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NftRuleset {
    /// The tables.
    pub tables: Vec<NftTable>,
    /// The chains, in listing order.
    pub chains: Vec<NftChain>,
    /// The verdict maps.
    pub maps: Vec<NftMap>,
    /// The rules, in listing order.
    pub rules: Vec<NftRule>,
}

impl NftRuleset {
    /// Appends everything of `other`.
    pub fn extend(&mut self, other: NftRuleset) {
        self.tables.extend(other.tables);
        self.chains.extend(other.chains);
        self.maps.extend(other.maps);
        self.rules.extend(other.rules);
    }

    /// Whether there is no table.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// The chain `name` of `family table`.
    pub fn chain(&self, family: &str, table: &str, name: &str) -> Option<&NftChain> {
        self.chains
            .iter()
            .find(|c| c.family == family && c.table == table && c.name == name)
    }
}

fn str_of(o: &Value, key: &str) -> String {
    o.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn u64_of(o: &Value, key: &str) -> u64 {
    o.get(key).and_then(Value::as_u64).unwrap_or_default()
}

/// The verdict of a verdict object (`{"jump": {"target": "x"}}`, `{"drop": null}`).
fn verdict_of(v: &Value) -> Option<Verdict> {
    let (key, inner) = v.as_object()?.iter().next()?;
    let target = || str_of(inner, "target");
    Some(match key.as_str() {
        "accept" => Verdict::Accept,
        "drop" => Verdict::Drop,
        "reject" => Verdict::Reject,
        "return" => Verdict::Return,
        "continue" => Verdict::Continue,
        "queue" => Verdict::Queue,
        "jump" => Verdict::Jump { target: target() },
        "goto" => Verdict::Goto { target: target() },
        "vmap" => {
            let data = inner.get("data");
            let map = data
                .and_then(Value::as_str)
                .map(|s| s.trim_start_matches('@').to_string());
            let targets = data
                .and_then(|d| d.get("set"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| verdict_of(e.as_array()?.get(1)?))
                .filter_map(|v| match v {
                    Verdict::Jump { target } | Verdict::Goto { target } => Some(target),
                    _ => None,
                })
                .collect();
            Verdict::Vmap { map, targets }
        }
        _ => return None,
    })
}

/// Parses `nft -j list ruleset` / `nft -j list table ...` output.
pub fn parse_json(text: &str) -> Result<NftRuleset, NftError> {
    let root: Value = serde_json::from_str(text).map_err(|source| NftError::Json { source })?;
    let items = root
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or(NftError::NotNftJson)?;
    let mut out = NftRuleset::default();
    for item in items {
        let Some((kind, o)) = item.as_object().and_then(|m| m.iter().next()) else {
            continue;
        };
        match kind.as_str() {
            "table" => out.tables.push(NftTable {
                family: str_of(o, "family"),
                name: str_of(o, "name"),
                handle: u64_of(o, "handle"),
            }),
            "chain" => out.chains.push(NftChain {
                family: str_of(o, "family"),
                table: str_of(o, "table"),
                name: str_of(o, "name"),
                handle: u64_of(o, "handle"),
                base: o.get("hook").map(|_| BaseChain {
                    kind: str_of(o, "type"),
                    hook: str_of(o, "hook"),
                    prio: o.get("prio").and_then(Value::as_i64).unwrap_or_default(),
                    policy: o
                        .get("policy")
                        .and_then(Value::as_str)
                        .unwrap_or("accept")
                        .to_string(),
                }),
            }),
            "map" if o.get("map").and_then(Value::as_str) == Some("verdict") => {
                let elements = o
                    .get("elem")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| {
                        let pair = e.as_array()?;
                        let key = render_expr(pair.first()?, true);
                        Some((key, verdict_of(pair.get(1)?)?))
                    })
                    .collect();
                out.maps.push(NftMap {
                    family: str_of(o, "family"),
                    table: str_of(o, "table"),
                    name: str_of(o, "name"),
                    elements,
                });
            }
            "rule" => out.rules.push(parse_rule(o)),
            _ => {}
        }
    }
    Ok(out)
}

fn parse_rule(o: &Value) -> NftRule {
    let exprs: &[Value] = o
        .get("expr")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let mut counter = None;
    let mut verdict = Verdict::None;
    let mut parts = Vec::new();
    for stmt in exprs {
        if let Some(c) = stmt.get("counter") {
            counter = Some(Counter {
                packets: u64_of(c, "packets"),
                bytes: u64_of(c, "bytes"),
            });
        }
        if let Some(v) = verdict_of(stmt) {
            verdict = v;
        }
        parts.push(render_statement(stmt));
    }
    NftRule {
        family: str_of(o, "family"),
        table: str_of(o, "table"),
        chain: str_of(o, "chain"),
        handle: u64_of(o, "handle"),
        comment: o.get("comment").and_then(Value::as_str).map(str::to_string),
        counter,
        verdict,
        text: parts
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// The order in which hooks are preferred when several base chains reach a chain.
const HOOK_ORDER: [&str; 6] = [
    "forward",
    "input",
    "output",
    "prerouting",
    "postrouting",
    "ingress",
];

/// The hook `chain` of `family table` runs at: a base chain's own, or the hook of a base
/// chain reaching it through jumps, gotos and verdict maps. `None` if none reaches it.
pub fn hook_of(ruleset: &NftRuleset, family: &str, table: &str, chain: &str) -> Option<String> {
    let in_table = |f: &str, t: &str| f == family && t == table;
    if let Some(base) = ruleset
        .chain(family, table, chain)
        .and_then(|c| c.base.as_ref())
    {
        return Some(base.hook.clone());
    }
    let maps: HashMap<&str, Vec<&str>> = ruleset
        .maps
        .iter()
        .filter(|m| in_table(&m.family, &m.table))
        .map(|m| {
            let targets = m
                .elements
                .iter()
                .filter_map(|(_, v)| match v {
                    Verdict::Jump { target } | Verdict::Goto { target } => Some(target.as_str()),
                    _ => None,
                })
                .collect();
            (m.name.as_str(), targets)
        })
        .collect();
    let mut edges: HashMap<&str, Vec<&str>> = HashMap::new();
    for r in ruleset
        .rules
        .iter()
        .filter(|r| in_table(&r.family, &r.table))
    {
        let next = edges.entry(r.chain.as_str()).or_default();
        match &r.verdict {
            Verdict::Jump { target } | Verdict::Goto { target } => next.push(target),
            Verdict::Vmap { map, targets } => {
                next.extend(targets.iter().map(String::as_str));
                if let Some(m) = map.as_deref().and_then(|m| maps.get(m)) {
                    next.extend(m.iter().copied());
                }
            }
            _ => {}
        }
    }
    let reaches = |from: &str| {
        let mut seen = HashSet::new();
        let mut stack = vec![from];
        while let Some(c) = stack.pop() {
            if c == chain {
                return true;
            }
            if seen.insert(c) {
                stack.extend(edges.get(c).into_iter().flatten().copied());
            }
        }
        false
    };
    let mut hooks: Vec<&str> = ruleset
        .chains
        .iter()
        .filter(|c| in_table(&c.family, &c.table))
        .filter_map(|c| Some((c.base.as_ref()?.hook.as_str(), c.name.as_str())))
        .filter(|(_, name)| reaches(name))
        .map(|(hook, _)| hook)
        .collect();
    hooks.sort_by_key(|h| {
        HOOK_ORDER
            .iter()
            .position(|o| o == h)
            .unwrap_or(HOOK_ORDER.len())
    });
    hooks.first().map(|h| h.to_string())
}

/// Reads Docker's tables `ip docker-bridges` and `ip6 docker-bridges` with
/// `nft -j list table`, each bounded by [`NFT_TIMEOUT`]. A missing table is skipped; it is
/// an error ([`NftError::NoDockerTables`]) if both are missing, and [`NftError::NftMissing`]
/// if `nft` is not installed.
pub fn snapshot() -> Result<NftRuleset, NftError> {
    snapshot_tables(&DOCKER_TABLES, NFT_TIMEOUT)
}

/// [`snapshot`] on tokio's blocking pool.
pub async fn snapshot_async() -> Result<NftRuleset, NftError> {
    tokio::task::spawn_blocking(snapshot)
        .await
        .map_err(|source| NftError::Join { source })?
}

/// Reads the given (family, table) pairs; see [`snapshot`].
pub fn snapshot_tables(tables: &[(&str, &str)], timeout: Duration) -> Result<NftRuleset, NftError> {
    let mut out = NftRuleset::default();
    let mut found = false;
    for (family, table) in tables {
        match run_nft(&["-j", "list", "table", family, table], timeout) {
            Ok(text) => {
                out.extend(parse_json(&text)?);
                found = true;
            }
            Err(NftError::Run(CommandError::Status { ref stderr, .. }))
                if table_missing(stderr) =>
            {
                log::debug!("no nftables table {family} {table}");
            }
            Err(e) => return Err(e),
        }
    }
    if found {
        Ok(out)
    } else {
        Err(NftError::NoDockerTables {
            tables: tables
                .iter()
                .map(|(f, t)| format!("{f} {t}"))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// `nft list tables` (for [`crate::explain::docker_backend::detect_backend`]).
pub fn list_tables(timeout: Duration) -> Result<String, NftError> {
    run_nft(&["list", "tables"], timeout)
}

#[cfg(test)]
mod tests;

//! What `iptables-save -c` prints: the rules with their counters, the policies of the
//! built-in chains and the warnings, per address [`Family`], and the parser that reads it
//! ([`parse_save`]).

use serde::Serialize;

/// Rule targets that drop the packet (REJECT drops it too, after answering).
const DROP_TARGETS: [&str; 2] = ["DROP", "REJECT"];

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
pub(crate) fn tokenize(s: &str) -> Vec<String> {
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

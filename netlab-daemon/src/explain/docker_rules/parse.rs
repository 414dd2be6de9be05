//! Reading rule text: iptables-save specs and `nft` expressions (see [`super::classify`]).

use std::net::IpAddr;

use crate::explain::netfilter::tokenize;

/// An iptables address or interface match, possibly negated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Arg {
    pub(super) negated: bool,
    pub(super) value: String,
}

/// The parts of an iptables rule that Docker's rules use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct IptRule {
    pub(super) src: Option<Arg>,
    pub(super) dst: Option<Arg>,
    pub(super) iif: Option<Arg>,
    pub(super) oif: Option<Arg>,
    pub(super) proto: Option<String>,
    pub(super) dport: Option<String>,
    pub(super) target: String,
}

impl IptRule {
    pub(super) fn pos_iif(&self) -> Option<&str> {
        self.iif
            .as_ref()
            .filter(|a| !a.negated)
            .map(|a| a.value.as_str())
    }
    pub(super) fn neg_iif(&self) -> Option<&str> {
        self.iif
            .as_ref()
            .filter(|a| a.negated)
            .map(|a| a.value.as_str())
    }
    pub(super) fn pos_oif(&self) -> Option<&str> {
        self.oif
            .as_ref()
            .filter(|a| !a.negated)
            .map(|a| a.value.as_str())
    }
    pub(super) fn neg_oif(&self) -> Option<&str> {
        self.oif
            .as_ref()
            .filter(|a| a.negated)
            .map(|a| a.value.as_str())
    }
    pub(super) fn port(&self) -> Option<String> {
        self.dport
            .as_ref()
            .map(|p| format!("{}/{p}", self.proto.as_deref().unwrap_or("tcp")))
    }
}

/// Parses an iptables rule spec (the chain name in front, if any, is skipped).
pub(super) fn parse_ipt(chain: &str, spec: &str) -> IptRule {
    let tokens = tokenize(spec);
    let mut rule = IptRule::default();
    let mut i = usize::from(tokens.first().is_some_and(|t| t == chain));
    let mut negated = false;
    while i < tokens.len() {
        let t = tokens[i].as_str();
        let value = tokens.get(i + 1).cloned();
        let arg = || {
            value.clone().map(|value| Arg {
                negated,
                value: value.clone(),
            })
        };
        let mut takes_value = true;
        match t {
            "!" => {
                negated = true;
                i += 1;
                continue;
            }
            "-s" | "--source" => rule.src = arg(),
            "-d" | "--destination" => rule.dst = arg(),
            "-i" | "--in-interface" => rule.iif = arg(),
            "-o" | "--out-interface" => rule.oif = arg(),
            "-p" | "--protocol" => rule.proto = value.clone(),
            "--dport" | "--destination-port" => rule.dport = value.clone(),
            "-j" | "--jump" => rule.target = value.clone().unwrap_or_default(),
            _ if t.starts_with('-') => {
                // An option of a match: it takes a value unless another option follows.
                takes_value = value
                    .as_deref()
                    .is_some_and(|v| !v.starts_with('-') && v != "!");
            }
            _ => takes_value = false,
        }
        negated = false;
        i += if takes_value { 2 } else { 1 };
    }
    rule
}

/// A host address from `192.0.2.2/32`, `fd00::1/128` or `192.0.2.2`; `None` for a subnet.
pub(super) fn host_addr(s: &str) -> Option<IpAddr> {
    match s.split_once('/') {
        Some((a, p)) => {
            let addr: IpAddr = a.parse().ok()?;
            let full = if addr.is_ipv4() { "32" } else { "128" };
            (p == full).then_some(addr)
        }
        None => s.parse().ok(),
    }
}

/// Tokens of an nft rule: quoted strings (unquoted), braces and commas on their own.
pub(super) fn nft_tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        if !cur.is_empty() {
            out.push(std::mem::take(cur));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                flush(&mut cur, &mut out);
                let mut q = String::new();
                for n in chars.by_ref() {
                    if n == '"' {
                        break;
                    }
                    q.push(n);
                }
                out.push(q);
            }
            '{' | '}' | ',' => {
                flush(&mut cur, &mut out);
                out.push(c.to_string());
            }
            c if c.is_whitespace() => flush(&mut cur, &mut out),
            c => cur.push(c),
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// The value(s) after `key` in nft tokens, and whether the match is negated (`!=`).
pub(super) fn nft_match(tokens: &[String], key: &str) -> Option<(bool, Vec<String>)> {
    let i = tokens.iter().position(|t| t == key)?;
    let mut j = i + 1;
    let negated = tokens.get(j).is_some_and(|t| t == "!=");
    if negated || tokens.get(j).is_some_and(|t| t == "==") {
        j += 1;
    }
    if tokens.get(j).is_some_and(|t| t == "{") {
        let values = tokens[j + 1..]
            .iter()
            .take_while(|t| *t != "}")
            .filter(|t| *t != ",")
            .cloned()
            .collect();
        Some((negated, values))
    } else {
        Some((negated, vec![tokens.get(j)?.clone()]))
    }
}

//! Printing `nft -j` statements and expressions the way `nft list` prints them.
//!
//! Covers what Docker's nftables backend and common hand-written rules use: payload, meta,
//! ct and fib matches, prefixes, ranges, sets, verdict maps, counters, verdicts, NAT, log,
//! limit and mangle statements. Anything else is printed compactly as its key and JSON
//! value, so no rule is lost. Counters print as `counter` without values (they change).

use serde_json::Value;

/// Meta keys `nft` prints without `meta`.
const UNQUALIFIED_META: [&str; 6] = ["iif", "iifname", "oif", "oifname", "iifgroup", "oifgroup"];

/// How to print the constants of a match.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    /// As they are.
    Plain,
    /// Strings in double quotes (interface names).
    Quoted,
    /// Numbers as 0x%08x (marks).
    Hex,
}

/// The style of the right-hand side of a match on `left`.
fn style_of(left: &Value) -> Style {
    if let Some(m) = left.get("meta") {
        let key = m.get("key").and_then(Value::as_str).unwrap_or_default();
        if key.ends_with("ifname") || key == "iif" || key == "oif" {
            return Style::Quoted;
        }
        if key == "mark" {
            return Style::Hex;
        }
    }
    if left
        .get("ct")
        .and_then(|c| c.get("key"))
        .and_then(Value::as_str)
        == Some("mark")
    {
        return Style::Hex;
    }
    for op in ["&", "|", "^"] {
        if let Some(first) = left
            .get(op)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            return style_of(first);
        }
    }
    Style::Plain
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Prints one expression; `quote` puts strings in double quotes (as for interface names).
pub fn render_expr(v: &Value, quote: bool) -> String {
    expr(v, if quote { Style::Quoted } else { Style::Plain })
}

fn expr(v: &Value, style: Style) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => if *b { "exists" } else { "missing" }.to_string(),
        Value::Number(n) => match (style, n.as_u64()) {
            (Style::Hex, Some(x)) => format!("0x{x:08x}"),
            _ => n.to_string(),
        },
        Value::String(s) if style == Style::Quoted && !s.starts_with('@') => format!("\"{s}\""),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| expr(i, style))
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(map) => {
            let Some((key, inner)) = map.iter().next() else {
                return String::new();
            };
            let s = |k: &str| inner.get(k).and_then(Value::as_str).unwrap_or_default();
            match key.as_str() {
                "meta" => {
                    let k = s("key");
                    if UNQUALIFIED_META.contains(&k) {
                        k.to_string()
                    } else {
                        format!("meta {k}")
                    }
                }
                "payload" => {
                    if inner.get("protocol").is_some() {
                        format!("{} {}", s("protocol"), s("field"))
                    } else {
                        format!(
                            "@{},{},{}",
                            s("base"),
                            inner.get("offset").map(compact).unwrap_or_default(),
                            inner.get("len").map(compact).unwrap_or_default()
                        )
                    }
                }
                "ct" => match inner.get("dir").and_then(Value::as_str) {
                    Some(dir) => format!("ct {dir} {}", s("key")),
                    None => format!("ct {}", s("key")),
                },
                "fib" => {
                    let flags = inner
                        .get("flags")
                        .map(|f| match f {
                            Value::Array(a) => a
                                .iter()
                                .map(|x| expr(x, Style::Plain))
                                .collect::<Vec<_>>()
                                .join(" . "),
                            other => expr(other, Style::Plain),
                        })
                        .unwrap_or_default();
                    format!("fib {flags} {}", s("result"))
                }
                "prefix" => format!(
                    "{}/{}",
                    inner
                        .get("addr")
                        .map(|a| expr(a, style))
                        .unwrap_or_default(),
                    inner.get("len").map(compact).unwrap_or_default()
                ),
                "range" => match inner.as_array().map(Vec::as_slice) {
                    Some([a, b]) => format!("{}-{}", expr(a, style), expr(b, style)),
                    _ => compact(v),
                },
                "set" => {
                    let elems: Vec<String> = match inner {
                        Value::Array(items) => items.iter().map(|e| set_elem(e, style)).collect(),
                        other => vec![set_elem(other, style)],
                    };
                    format!("{{ {} }}", elems.join(", "))
                }
                "elem" => inner.get("val").map(|x| expr(x, style)).unwrap_or_default(),
                "concat" => inner
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| expr(x, style))
                    .collect::<Vec<_>>()
                    .join(" . "),
                "&" | "|" | "^" | "<<" | ">>" => match inner.as_array().map(Vec::as_slice) {
                    Some([a, b]) => {
                        let st = style_of(a);
                        format!("{} {key} {}", expr(a, st), expr(b, st))
                    }
                    _ => compact(v),
                },
                "accept" | "drop" | "continue" | "return" | "queue" => key.clone(),
                "jump" | "goto" => format!("{key} {}", s("target")),
                _ => format!("{key} {}", compact(inner)),
            }
        }
    }
}

/// An element of a set or map: `"br" : jump chain` for map elements.
fn set_elem(e: &Value, style: Style) -> String {
    match e.as_array().map(Vec::as_slice) {
        Some([k, v]) => format!("{} : {}", expr(k, style), expr(v, Style::Plain)),
        _ => expr(e, style),
    }
}

/// Prints one statement of a rule's `expr` array.
pub fn render_statement(stmt: &Value) -> String {
    let Some((key, inner)) = stmt.as_object().and_then(|m| m.iter().next()) else {
        return compact(stmt);
    };
    let s = |k: &str| inner.get(k).and_then(Value::as_str).unwrap_or_default();
    match key.as_str() {
        "match" => {
            let left = inner.get("left").unwrap_or(&Value::Null);
            let right = inner.get("right").unwrap_or(&Value::Null);
            let op = s("op");
            let binop = left
                .as_object()
                .and_then(|m| m.keys().next())
                .is_some_and(|k| ["&", "|", "^", "<<", ">>"].contains(&k.as_str()));
            let op = match op {
                "==" | "in" if !binop => String::new(),
                "" => String::new(),
                other => format!("{other} "),
            };
            format!(
                "{} {op}{}",
                expr(left, Style::Plain),
                expr(right, style_of(left))
            )
        }
        "counter" => "counter".to_string(),
        "accept" | "drop" | "continue" | "return" | "queue" | "notrack" | "masquerade"
            if inner.is_null() =>
        {
            key.clone()
        }
        "reject" => match inner.get("type").and_then(Value::as_str) {
            Some("tcp reset") => "reject with tcp reset".to_string(),
            Some(t) => format!("reject with {t} {}", s("expr")),
            None => "reject".to_string(),
        },
        "jump" | "goto" => format!("{key} {}", s("target")),
        "vmap" => {
            let k = inner.get("key").unwrap_or(&Value::Null);
            let data = inner.get("data").unwrap_or(&Value::Null);
            format!("{} vmap {}", expr(k, Style::Plain), expr(data, style_of(k)))
        }
        "snat" | "dnat" => {
            let addr = inner.get("addr").map(|a| expr(a, Style::Plain));
            let port = inner.get("port").map(|p| expr(p, Style::Plain));
            let family = inner
                .get("family")
                .and_then(Value::as_str)
                .map(|f| format!("{f} "))
                .unwrap_or_default();
            let to = match (addr, port) {
                (Some(a), Some(p)) if a.contains(':') => format!("[{a}]:{p}"),
                (Some(a), Some(p)) => format!("{a}:{p}"),
                (Some(a), None) => a,
                (None, Some(p)) => format!(":{p}"),
                (None, None) => String::new(),
            };
            format!("{key} {family}to {to}")
        }
        "log" => match inner.get("prefix").and_then(Value::as_str) {
            Some(p) => format!("log prefix \"{p}\""),
            None => "log".to_string(),
        },
        "limit" => format!(
            "limit rate {}/{}",
            inner.get("rate").map(compact).unwrap_or_default(),
            s("per")
        ),
        "mangle" => {
            let k = inner.get("key").unwrap_or(&Value::Null);
            let v = inner.get("value").unwrap_or(&Value::Null);
            format!("{} set {}", expr(k, Style::Plain), expr(v, style_of(k)))
        }
        "xt" => format!("xt {} \"{}\"", s("type"), s("name")),
        _ if inner.is_null() => key.clone(),
        _ => format!("{key} {}", compact(inner)),
    }
}

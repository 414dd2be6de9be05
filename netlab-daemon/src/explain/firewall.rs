//! The firewall behind a netfilter drop, in Docker's terms.
//!
//! Reads what the host's firewall counts before and after a batch of drops, on whichever
//! backend holds the rules: iptables (`iptables-save -c`, every table, IPv4 and IPv6; see
//! [`crate::explain::netfilter`]) and Docker's own nftables tables (`ip/ip6 docker-bridges`; see
//! [`crate::explain::nftables`]). The rules whose counters rose are named as the backend prints
//! them, with their table, chain and hook, then classified ([`crate::explain::docker_rules`]) and
//! explained with the remedies that work on the engine running ([`crate::explain::docker_remedies`]).

use serde::{Deserialize, Serialize};

use crate::docker::EngineFacts;
use crate::explain::docker_backend::{
    detect_backend, Backend, BackendEvidence, Engine, EngineVersion,
};
use crate::explain::docker_remedies::explain;
use crate::explain::docker_rules::{classify, DockerFacts, Meaning, PacketHint, RuleInput};
use crate::explain::netfilter::{self, Ruleset};
use crate::explain::nftables::{self, NftAttribution, NftRuleset};

/// A rule that dropped a packet, as the drop event carries it (`drop.rule`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRef {
    /// `iptables-nft`, `iptables-legacy` or `nftables`.
    pub backend: String,
    /// `ipv4`/`ipv6` (iptables), or the nftables table family (`ip`, `ip6`, `inet`).
    pub family: String,
    /// `raw`, `filter`, ... or the nftables table (`docker-bridges`).
    pub table: String,
    pub chain: String,
    /// The rule as the backend prints it: `PREROUTING -d 172.19.0.2/32 ! -i br-… -j DROP`
    /// (iptables-save without `-A`), or the nftables expression.
    pub rule: String,
    /// The nftables rule handle.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub handle: Option<u64>,
    /// The nftables rule comment (Docker's say what a rule is for).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub comment: Option<String>,
    /// How netlab knows: `counters` (the rule's counter rose by the drops seen).
    pub attributed_by: String,
    /// Whether no other rule's counter rose meanwhile.
    pub certain: bool,
    /// What it is in Docker's terms, when netlab recognises it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub docker: Option<DockerMeaning>,
}

/// A filter-table iptables rule found by counters, unexplained (for tests of what carries
/// rules).
#[cfg(test)]
impl From<&str> for RuleRef {
    fn from(rule: &str) -> Self {
        RuleRef {
            backend: "iptables-nft".into(),
            family: "ipv4".into(),
            table: "filter".into(),
            chain: rule.split_whitespace().next().unwrap_or_default().into(),
            rule: rule.into(),
            handle: None,
            comment: None,
            attributed_by: "counters".into(),
            certain: true,
            docker: None,
        }
    }
}

/// A rule's meaning in Docker's terms, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerMeaning {
    /// `direct-access`, `isolation`, `unpublished-port`, `internal-network`,
    /// `icc-disabled`, `remote-loopback`, `forward-policy`, `user-rule` or `unknown`.
    pub meaning: String,
    /// One line: who dropped what and why, on this engine.
    pub summary: String,
    /// Commands or settings that let such a packet through here, most direct first.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub remedies: Vec<String>,
    /// What does not help, and why.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub caveats: Vec<String>,
}

/// The stable name of a meaning.
pub fn meaning_id(m: &Meaning) -> &'static str {
    match m {
        Meaning::DirectAccess { .. } => "direct-access",
        Meaning::Isolation { .. } => "isolation",
        Meaning::UnpublishedPort { .. } => "unpublished-port",
        Meaning::InternalNetwork { .. } => "internal-network",
        Meaning::IccDisabled { .. } => "icc-disabled",
        Meaning::RemoteLoopback { .. } => "remote-loopback",
        Meaning::ForwardPolicyDrop { .. } => "forward-policy",
        Meaning::PodmanIsolation { .. } => "podman-isolation",
        Meaning::UserRule { .. } => "user-rule",
        Meaning::Unknown { .. } => "unknown",
    }
}

/// A rule whose counter rose, before it is explained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Culprit {
    pub backend: Backend,
    pub family: String,
    pub table: String,
    pub chain: String,
    pub rule: String,
    pub handle: Option<u64>,
    pub comment: Option<String>,
    pub hook: Option<String>,
    pub delta: u64,
}

/// What the counters say about a batch of netfilter drops.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributed {
    /// Rules whose counters rose, largest delta first.
    pub culprits: Vec<Culprit>,
    /// Exactly one rule rose, by the drops seen.
    pub certain: bool,
    /// Why netlab cannot be sure (a chain Docker rewrote between the reads), if so.
    pub not_sure: Option<String>,
    /// Why no counters could be read this time, if so.
    pub unattributed: Option<String>,
}

/// The firewall as netlab reads it: the engine whose rules these are, and the counters at
/// the last read.
pub struct Firewall {
    /// The Docker engine and its backend, when an engine answered.
    pub engine: Option<Engine>,
    /// The iptables flavour on the host (`iptables --version`).
    pub iptables: Option<Backend>,
    /// How the backend was told, one line per piece of evidence.
    pub reasons: Vec<String>,
    /// Docker's nftables tables hold the bridge rules (told with or without an engine).
    nftables: bool,
    /// Why no counters can be read (said once, as a warning, and on every netfilter drop).
    pub unreadable: Option<String>,
    /// Read errors already warned about: each is said once.
    warned: std::collections::BTreeSet<String>,
    /// Per-packet attribution through nftables tracing, when asked for and possible.
    trace: Option<crate::explain::nftrace::NfTrace>,
    iptables_counters: Option<Ruleset>,
    nft_counters: Option<NftRuleset>,
}

/// Runs a command with a short deadline; its stdout when it exits 0.
async fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::process::Command::new(program)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Firewall {
    /// Tells the backend (from the engine's `/info`, `iptables --version` and Docker's
    /// nftables tables) and reads the counters once.
    pub async fn read(engine: Option<&EngineFacts>, nftrace: bool) -> Firewall {
        let iptables_version = output_of("iptables", &["--version"]).await;
        let tables = output_of("nft", &["list", "tables"]).await;
        let d = detect_backend(&BackendEvidence {
            info_json: engine.map(|e| e.info_json.as_str()),
            iptables_version: iptables_version.as_deref(),
            nft_tables: tables.as_deref(),
        });
        let version = d
            .version
            .or_else(|| engine.and_then(|e| EngineVersion::parse(&e.version)));
        let nftables = d.backend == Some(Backend::Nftables);
        // Podman's version says nothing of Docker's rule layout, and it writes none of
        // Docker's rules (netavark's are recognised by their chains alone).
        let docker = engine.filter(|e| e.product == crate::docker::podman::Product::Docker);
        let engine = match (docker, version) {
            (Some(_), Some(v)) => Some(Engine::new(
                v,
                d.backend
                    .unwrap_or(crate::explain::docker_backend::Backend::IptablesNft),
            )),
            _ => None,
        };
        let mut fw = Firewall {
            engine,
            iptables: iptables_version
                .as_deref()
                .and_then(crate::explain::docker_backend::iptables_variant),
            reasons: d.reasons,
            nftables,
            unreadable: None,
            warned: Default::default(),
            trace: None,
            iptables_counters: None,
            nft_counters: None,
        };
        if nftrace {
            match tokio::task::spawn_blocking(crate::explain::nftrace::NfTrace::start).await {
                Ok(Ok(t)) => fw.trace = Some(t),
                Ok(Err(e)) => log::warn!(
                    "nftables tracing is not available ({e}): drops are attributed by counters"
                ),
                Err(e) => log::warn!("starting nftables tracing: {e}"),
            }
        }
        let mut why = Vec::new();
        fw.iptables_counters = netfilter::snapshot_async()
            .await
            .inspect_err(|e| why.push(format!("{e:#}")))
            .ok();
        if fw.uses_nftables() {
            fw.nft_counters = nftables::snapshot_async()
                .await
                .inspect_err(|e| why.push(format!("{e}")))
                .ok();
        }
        if !fw.readable() {
            let why = why.join("; ");
            log::warn!(
                "the firewall's counters cannot be read ({why}): netfilter drops are reported without their rule"
            );
            fw.unreadable = Some(why);
        }
        fw
    }

    /// Logs a counter read error once (the same error again is only a debug line).
    fn warn_once(&mut self, what: &str, e: String) {
        if self.warned.insert(e.clone()) {
            log::warn!("{what}: {e}; drops meanwhile have no rule");
        } else {
            log::debug!("{what}: {e}");
        }
    }

    /// Whether Docker's rules are in its nftables tables: the engine says so, or (no engine
    /// answering) the tables are there.
    fn uses_nftables(&self) -> bool {
        self.nftables || self.engine.is_some_and(|e| e.backend == Backend::Nftables)
    }

    /// Whether any counters could be read, or drops are traced.
    pub fn readable(&self) -> bool {
        self.iptables_counters.is_some() || self.nft_counters.is_some() || self.trace.is_some()
    }

    /// Whether nftables tracing is on.
    pub fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    /// The rule that dropped packet `key`, from the kernel's trace of it, explained, and its
    /// hook; `None` when tracing is off or the kernel traced no drop of it (a rule of
    /// iptables-legacy, or no ICMP).
    pub async fn traced(
        &mut self,
        key: &crate::explain::nftrace::PacketKey,
        facts: &DockerFacts,
        hint: &PacketHint,
    ) -> Option<(RuleRef, Option<String>)> {
        let v = self
            .trace
            .as_mut()?
            .take(key, std::time::Duration::from_millis(50))?;
        let c = culprit_of(&v).await;
        let mut r = self.rule_ref(&c, true, facts, hint);
        r.attributed_by = "trace".to_owned();
        Some((r, c.hook))
    }

    /// Reads the counters again and names the dropping rules whose counters rose since the
    /// last read, for a batch of `drops` netfilter drops.
    pub async fn attribute(&mut self, drops: u64) -> Attributed {
        let mut out = Attributed::default();
        if self.iptables_counters.is_some() {
            match netfilter::snapshot_async().await {
                Ok(after) => {
                    if let Some(before) = &self.iptables_counters {
                        let a = netfilter::attribute(before, &after, drops);
                        out.certain = a.certain;
                        let backend = self.iptables.unwrap_or(Backend::IptablesNft);
                        out.culprits.extend(a.culprits.into_iter().map(|c| Culprit {
                            backend,
                            family: c.family.to_string(),
                            table: c.table,
                            chain: c.chain,
                            rule: c.rule,
                            handle: None,
                            comment: None,
                            hook: c.hook.map(str::to_owned),
                            delta: c.delta,
                        }));
                    }
                    self.iptables_counters = Some(after);
                }
                Err(e) => {
                    let e = format!("{e:#}");
                    out.unattributed = Some(e.clone());
                    self.warn_once("reading iptables counters", e);
                }
            }
        }
        if self.uses_nftables() {
            match nftables::snapshot_async().await {
                Ok(after) => {
                    if let Some(before) = &self.nft_counters {
                        let (culprits, certain) = match nftables::attribute(before, &after, drops) {
                            NftAttribution::Counted { culprits, certain } => (culprits, certain),
                            NftAttribution::NotSure { changed, culprits } => {
                                out.not_sure = Some(format!(
                                    "Docker rewrote {} between the reads",
                                    changed
                                        .iter()
                                        .map(|c| c.chain.clone())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ));
                                (culprits, false)
                            }
                        };
                        let only_nft = out.culprits.is_empty();
                        out.culprits.extend(culprits.into_iter().map(|c| Culprit {
                            backend: Backend::Nftables,
                            family: c.family,
                            table: c.table,
                            chain: c.chain,
                            rule: c.rule,
                            handle: c.handle,
                            comment: c.comment,
                            hook: c.hook,
                            delta: c.delta,
                        }));
                        out.certain = if only_nft {
                            certain && out.not_sure.is_none()
                        } else {
                            false
                        };
                    }
                    self.nft_counters = Some(after);
                }
                Err(e) => {
                    let e = e.to_string();
                    out.unattributed = Some(e.clone());
                    self.warn_once("reading Docker's nftables counters", e);
                }
            }
        }
        out.culprits.sort_by_key(|c| std::cmp::Reverse(c.delta));
        if out.culprits.len() != 1 {
            out.certain = false;
        }
        out
    }

    /// `c` as a drop event carries it, explained for the packet `hint` in the Docker world
    /// `facts` describes.
    pub fn rule_ref(
        &self,
        c: &Culprit,
        certain: bool,
        facts: &DockerFacts,
        hint: &PacketHint,
    ) -> RuleRef {
        let input = match c.backend {
            Backend::Nftables => {
                RuleInput::nftables(&c.table, &c.chain, c.comment.as_deref(), &c.rule)
            }
            _ => RuleInput::iptables(&c.table, &c.chain, &c.rule),
        };
        let meaning = classify(&input, facts, hint);
        // Podman's rules are explained whichever engine answers (or none); Docker's need
        // the Docker engine's version for their layout.
        let explained = match self.engine {
            Some(engine) => Some(explain(&meaning, &engine)),
            None => crate::explain::podman_remedies::explain(&meaning),
        };
        let docker = explained.map(|e| DockerMeaning {
            meaning: meaning_id(&meaning).to_owned(),
            summary: e.summary,
            remedies: e
                .remedies
                .iter()
                .filter(|r| r.fixes_ping)
                .map(|r| r.action.clone())
                .collect(),
            caveats: e.caveats,
        });
        RuleRef {
            backend: c.backend.name().to_owned(),
            family: c.family.clone(),
            table: c.table.clone(),
            chain: c.chain.clone(),
            rule: c.rule.clone(),
            handle: c.handle,
            comment: c.comment.clone(),
            attributed_by: "counters".to_owned(),
            certain,
            docker,
        }
    }
}

/// The rule a traced verdict names, as the backend prints it: Docker's nftables rules and
/// other nft tables by their nft text and comment; iptables-nft's tables (`ip filter`,
/// `ip raw`, ...) as iptables-save prints the rule at the same place in the chain.
async fn culprit_of(v: &crate::explain::nftrace::TraceVerdict) -> Culprit {
    let (family, table) = (v.family, v.table.clone());
    let listing = tokio::task::spawn_blocking(move || {
        nftables::snapshot_tables(
            &[(family, table.as_str())],
            std::time::Duration::from_secs(5),
        )
    })
    .await
    .ok()
    .and_then(Result::ok)
    .unwrap_or_default();
    let hook = nftables::hook_of(&listing, v.family, &v.table, &v.chain);
    let in_chain: Vec<&nftables::NftRule> = listing
        .rules
        .iter()
        .filter(|r| r.family == v.family && r.table == v.table && r.chain == v.chain)
        .collect();
    let found = v.handle.and_then(|h| {
        in_chain
            .iter()
            .position(|r| r.handle == h)
            .map(|i| (i, in_chain[i]))
    });
    let iptables_family = match (v.family, v.table.as_str()) {
        ("ip", "filter" | "raw" | "nat" | "mangle" | "security") => Some(netfilter::Family::Ipv4),
        ("ip6", "filter" | "raw" | "nat" | "mangle" | "security") => Some(netfilter::Family::Ipv6),
        _ => None,
    };
    if let Some(fam) = iptables_family {
        let spec = match found {
            Some((index, _)) => netfilter::snapshot_async().await.ok().and_then(|rs| {
                rs.rules
                    .into_iter()
                    .filter(|r| r.family == fam && r.table == v.table && r.chain == v.chain)
                    .nth(index)
                    .map(|r| r.spec)
            }),
            None => None,
        };
        let rule = match (spec, v.handle) {
            (Some(spec), _) => spec,
            (None, None) => format!("{} policy DROP", v.chain),
            (None, Some(h)) => found.map_or(format!("{} handle {h}", v.chain), |(_, r)| {
                format!("{} {}", v.chain, r.text)
            }),
        };
        return Culprit {
            backend: Backend::IptablesNft,
            family: fam.name().to_owned(),
            table: v.table.clone(),
            chain: v.chain.clone(),
            rule,
            handle: v.handle,
            comment: None,
            hook,
            delta: 1,
        };
    }
    Culprit {
        backend: Backend::Nftables,
        family: v.family.to_owned(),
        table: v.table.clone(),
        chain: v.chain.clone(),
        rule: match (found, v.handle) {
            (Some((_, r)), _) => r.text.clone(),
            (None, None) => "policy drop".to_owned(),
            (None, Some(h)) => format!("handle {h} (gone before it could be read)"),
        },
        handle: v.handle,
        comment: found.and_then(|(_, r)| r.comment.clone()),
        hook,
        delta: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::docker_rules::{ContainerFacts, NetworkFacts};

    fn facts() -> DockerFacts {
        let net = |name: &str, bridge: &str, subnet: &str, c: &str, ip: &str| NetworkFacts {
            name: name.into(),
            bridge: bridge.into(),
            subnets: vec![crate::docker::Subnet::parse(subnet).expect("subnet")],
            internal: false,
            icc: true,
            containers: vec![ContainerFacts {
                name: c.into(),
                addresses: vec![ip.parse().expect("ip")],
            }],
        };
        DockerFacts {
            networks: vec![
                net("devops", "br-dev", "172.18.0.0/16", "AppDev", "172.18.0.2"),
                net("prod", "br-prod", "172.19.0.0/16", "AppProd", "172.19.0.2"),
            ],
        }
    }

    fn firewall(version: &str, backend: Backend) -> Firewall {
        Firewall {
            engine: EngineVersion::parse(version).map(|v| Engine::new(v, backend)),
            iptables: Some(Backend::IptablesNft),
            reasons: Vec::new(),
            nftables: backend == Backend::Nftables,
            unreadable: None,
            warned: Default::default(),
            trace: None,
            iptables_counters: None,
            nft_counters: None,
        }
    }

    fn culprit(table: &str, chain: &str, rule: &str) -> Culprit {
        Culprit {
            backend: Backend::IptablesNft,
            family: "ipv4".into(),
            table: table.into(),
            chain: chain.into(),
            rule: rule.into(),
            handle: None,
            comment: None,
            hook: Some("prerouting".into()),
            delta: 1,
        }
    }

    fn hint() -> PacketHint {
        PacketHint {
            src: "172.18.0.2".parse().ok(),
            dst: "172.19.0.2".parse().ok(),
        }
    }

    #[test]
    fn the_raw_rule_of_28_5_is_direct_access_with_a_remedy_that_works() {
        let fw = firewall("28.5.2+dfsg4", Backend::IptablesNft);
        let c = culprit(
            "raw",
            "PREROUTING",
            "PREROUTING -d 172.19.0.2/32 ! -i br-prod -j DROP",
        );
        let r = fw.rule_ref(&c, true, &facts(), &hint());
        let d = r.docker.clone().expect("explained");
        assert_eq!(d.meaning, "direct-access");
        assert!(d.summary.contains("AppProd"), "{}", d.summary);
        assert!(!d.summary.contains("STAGE-2"), "{}", d.summary);
        assert!(
            d.remedies
                .iter()
                .any(|r| r == "docker network connect prod AppDev"),
            "{:?}",
            d.remedies
        );
        assert!(
            d.caveats.iter().any(|c| c.contains("DOCKER-USER")),
            "{:?}",
            d.caveats
        );
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["table"], "raw");
        assert_eq!(json["attributed_by"], "counters");
        let back: RuleRef = serde_json::from_value(json).expect("read back");
        assert_eq!(back.rule, c.rule);
    }

    #[test]
    fn stage_2_on_20_10_is_isolation() {
        let fw = firewall("20.10.24+dfsg1", Backend::IptablesNft);
        let c = culprit(
            "filter",
            "DOCKER-ISOLATION-STAGE-2",
            "DOCKER-ISOLATION-STAGE-2 -o br-prod -j DROP",
        );
        let d = fw
            .rule_ref(&c, true, &facts(), &hint())
            .docker
            .expect("explained");
        assert_eq!(d.meaning, "isolation");
    }

    #[test]
    fn without_an_engine_the_rule_is_named_but_not_explained() {
        let mut fw = firewall("x", Backend::IptablesNft);
        fw.engine = None;
        let c = culprit("filter", "INPUT", "INPUT -p icmp -j DROP");
        let r = fw.rule_ref(&c, false, &facts(), &hint());
        assert!(r.docker.is_none());
        assert!(!r.certain);
    }
}

//! Tests of the nftables reader on recorded `nft -j` output (tests/fixtures/firewall/,
//! sources in that directory's README.md).

use super::*;
use crate::explain::command::{run_with_timeout, Shown};
use crate::explain::docker_rules::{DockerFacts, Meaning, NetworkFacts, PacketHint};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../../tests/fixtures/firewall/", $name))
    };
}

const BEFORE: &str = fixture!("docker29-nftables.before.json");
const AFTER_PING: &str = fixture!("docker29-nftables.after-ping.json");
const REWRITTEN: &str = fixture!("docker29-nftables.rewritten.json");
const NO_RAW_BEFORE: &str = fixture!("docker29-nftables.no-raw.before.json");
const NO_RAW_AFTER: &str = fixture!("docker29-nftables.no-raw.after-ping.json");
const USER_JSON: &str = fixture!("user-table.json");
const MOBY: [(&str, &str); 4] = [
    (
        fixture!("moby29-nftables-usernet-portmap.json"),
        fixture!("moby29-nftables-usernet-portmap.nft"),
    ),
    (
        fixture!("moby29-nftables-usernet-internal.json"),
        fixture!("moby29-nftables-usernet-internal.nft"),
    ),
    (
        fixture!("moby29-nftables-usernet-portmap-noicc.json"),
        fixture!("moby29-nftables-usernet-portmap-noicc.nft"),
    ),
    (
        fixture!("moby29-nftables-usernet-portmap-lo.json"),
        fixture!("moby29-nftables-usernet-portmap-lo.nft"),
    ),
];

fn parse(text: &str) -> NftRuleset {
    parse_json(text).unwrap_or_else(|e| panic!("fixture does not parse: {e}"))
}

fn facts() -> DockerFacts {
    let net = |name: &str, bridge: &str, subnet: &str, c: &str, ip: &str| NetworkFacts {
        name: name.into(),
        bridge: bridge.into(),
        subnets: crate::docker::Subnet::parse(subnet).into_iter().collect(),
        internal: false,
        icc: true,
        containers: vec![crate::explain::docker_rules::ContainerFacts {
            name: c.into(),
            addresses: ip.parse().into_iter().collect(),
        }],
    };
    DockerFacts {
        networks: vec![
            net("nlt-a", "nlt-br-a", "10.77.1.0/24", "ca", "10.77.1.2"),
            net("nlt-b", "nlt-br-b", "10.77.2.0/24", "cb", "10.77.2.2"),
        ],
    }
}

fn ping() -> PacketHint {
    PacketHint {
        src: "10.77.1.2".parse().ok(),
        dst: "10.77.2.2".parse().ok(),
    }
}

fn rule<'a>(set: &'a NftRuleset, chain: &str, text: &str) -> &'a NftRule {
    set.rules
        .iter()
        .find(|r| r.chain == chain && r.text == text)
        .unwrap_or_else(|| panic!("no rule {chain}: {text}"))
}

#[test]
fn parses_docker29_fixture() {
    let set = parse(BEFORE);
    assert_eq!(set.tables.len(), 2);
    assert_eq!(set.chains.iter().filter(|c| c.family == "ip").count(), 14);
    assert_eq!(set.maps.len(), 8);
    let raw = set
        .chain("ip", "docker-bridges", "raw-PREROUTING")
        .and_then(|c| c.base.clone())
        .unwrap_or_else(|| panic!("no raw-PREROUTING base chain"));
    assert_eq!(
        (raw.hook.as_str(), raw.prio, raw.policy.as_str()),
        ("prerouting", -300, "accept")
    );
    let r = rule(
        &set,
        "raw-PREROUTING",
        r#"ip daddr 10.77.2.2 iifname != "nlt-br-b" counter drop"#,
    );
    assert_eq!(r.comment.as_deref(), Some("DROP DIRECT ACCESS"));
    assert_eq!(r.verdict, Verdict::Drop);
    assert_eq!(r.counter, Some(Counter::default()));
    assert!(r.drops());
    let fwd = rule(
        &set,
        "filter-FORWARD",
        "oifname vmap @filter-forward-in-jumps",
    );
    assert_eq!(
        fwd.verdict,
        Verdict::Vmap {
            map: Some("filter-forward-in-jumps".into()),
            targets: vec![]
        }
    );
    let m = &set.maps[0];
    assert_eq!(m.name, "filter-forward-in-jumps");
    assert_eq!(
        m.elements[1],
        (
            "\"nlt-br-b\"".to_string(),
            Verdict::Jump {
                target: "filter-forward-in__nlt-br-b".into()
            }
        )
    );
    assert_eq!(
        hook_of(&set, "ip", "docker-bridges", "filter-forward-in__nlt-br-b").as_deref(),
        Some("forward")
    );
    assert_eq!(
        hook_of(
            &set,
            "ip",
            "docker-bridges",
            "nat-postrouting-out__nlt-br-a"
        )
        .as_deref(),
        Some("postrouting")
    );
    assert_eq!(
        hook_of(&set, "ip", "docker-bridges", "nat-prerouting-and-output").as_deref(),
        Some("output")
    );
    assert_eq!(
        hook_of(&set, "ip6", "docker-bridges", "filter-forward-in__nlt-br-b"),
        None
    );
}

/// Every rule renders exactly as in the listing moby's documentation shows.
#[test]
fn renders_like_nft_list() {
    for (json, listing) in MOBY {
        let set = parse(json);
        assert!(!set.rules.is_empty());
        let lines: Vec<&str> = listing.lines().map(str::trim).collect();
        for r in &set.rules {
            let printed = match &r.comment {
                Some(c) => format!("{} comment \"{c}\"", r.text),
                None => r.text.clone(),
            };
            assert!(
                lines.contains(&printed.as_str()),
                "not in the listing: {printed}"
            );
        }
    }
}

#[test]
fn renders_user_rules() {
    let set = parse(USER_JSON);
    let texts: Vec<&str> = set.rules.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            r#"iifname != { "eth1", "nlt-br-a" } ip daddr 10.77.2.2 counter drop"#,
            "ip saddr 198.51.100.0/24 counter reject with icmp port-unreachable",
            "ip6 daddr fd00::/64 meta l4proto ipv6-icmp counter reject with icmpx admin-prohibited",
            "ip protocol icmp counter accept",
            "meta mark 0x00000001 counter accept",
            "tcp dport { 80, 443 } ct state new counter goto user-sub",
            r#"ip daddr 10.0.0.1-10.0.0.9 log prefix "x " limit rate 5/second counter return"#,
            "meta mark & 0x000000ff == 0x00000002 counter accept",
            r#"ip saddr 10.77.1.2 ip daddr != 10.77.2.0/24 iifname "nlt-br-a" oifname "nlt-br-b" counter drop"#,
            "udp dport 53 counter jump user-sub",
            "fib daddr type local counter accept",
            "counter drop",
        ]
    );
    let verdicts: Vec<&Verdict> = set.rules.iter().map(|r| &r.verdict).collect();
    assert_eq!(verdicts[1], &Verdict::Reject);
    assert_eq!(
        verdicts[5],
        &Verdict::Goto {
            target: "user-sub".into()
        }
    );
    assert_eq!(verdicts[6], &Verdict::Return);
    assert_eq!(
        set.rules[8].counter,
        Some(Counter {
            packets: 7,
            bytes: 588
        })
    );
    assert_eq!(
        hook_of(&set, "inet", "netlab-user", "user-sub").as_deref(),
        Some("forward")
    );
    // The base chain's policy is drop: a candidate without a counter.
    let p = drop_policies(&set);
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0].chain.as_str(), p[0].rule.as_str()),
        ("user-forward", "policy drop")
    );
    assert!(drop_policies(&parse(BEFORE)).is_empty());
    // Not Docker's table: the administrator's rule.
    let m = NftCulprit {
        family: "inet".into(),
        table: "netlab-user".into(),
        chain: "user-forward".into(),
        handle: Some(11),
        rule: set.rules[8].text.clone(),
        comment: None,
        hook: Some("forward".into()),
        delta: 1,
        since_rewrite: false,
    }
    .meaning(&facts(), &ping());
    assert!(
        matches!(m, Meaning::UserRule { ref table, .. } if table == "inet netlab-user"),
        "{m:?}"
    );
}

/// The hand check in a namespace: one ping 10.77.1.2 -> 10.77.2.2 between the reads.
#[test]
fn ping_counted_by_direct_access_rule() {
    let a = attribute(&parse(BEFORE), &parse(AFTER_PING), 1);
    assert!(a.certain(), "{a:?}");
    let NftAttribution::Counted { culprits, .. } = &a else {
        panic!("{a:?}");
    };
    let c = &culprits[0];
    assert_eq!(c.chain, "raw-PREROUTING");
    assert_eq!(c.comment.as_deref(), Some("DROP DIRECT ACCESS"));
    assert_eq!(
        (c.delta, c.hook.as_deref(), c.since_rewrite),
        (1, Some("prerouting"), false)
    );
    assert_eq!(c.qualified_table(), "ip docker-bridges");
    match c.meaning(&facts(), &ping()) {
        Meaning::DirectAccess {
            container,
            network,
            from,
            ..
        } => {
            assert_eq!(container.container.as_deref(), Some("cb"));
            assert_eq!(network.name.as_deref(), Some("nlt-b"));
            assert_eq!(from.and_then(|p| p.container).as_deref(), Some("ca"));
        }
        other => panic!("{other:?}"),
    }
    // Two drops seen but one counted: not certain.
    assert!(!attribute(&parse(BEFORE), &parse(AFTER_PING), 2).certain());
}

/// Docker rewrote raw-PREROUTING (flush and refill) between the reads: not sure.
#[test]
fn rewrite_between_reads_is_not_sure() {
    let a = attribute(&parse(AFTER_PING), &parse(REWRITTEN), 1);
    let NftAttribution::NotSure { changed, culprits } = &a else {
        panic!("{a:?}");
    };
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].chain, "raw-PREROUTING");
    match &changed[0].change {
        Change::Rewritten { before, after } => {
            assert_eq!(before.len(), 2);
            assert_eq!(after.len(), 3);
            assert!(before.iter().all(|h| !after.contains(h)));
        }
        other => panic!("{other:?}"),
    }
    // The refilled rule counted the ping sent after the rewrite.
    assert_eq!(culprits.len(), 1);
    assert!(culprits[0].since_rewrite);
    assert_eq!(
        culprits[0].rule,
        r#"ip daddr 10.77.2.2 iifname != "nlt-br-b" counter drop"#
    );
    assert!(!a.certain());
}

/// With the raw rules gone (allow-direct-routing), the ping dies in the network's chain.
#[test]
fn ping_counted_by_unpublished_port_rule() {
    let before = parse(NO_RAW_BEFORE);
    assert!(before.rules.iter().all(|r| r.chain != "raw-PREROUTING"));
    let a = attribute(&before, &parse(NO_RAW_AFTER), 1);
    assert!(a.certain(), "{a:?}");
    let c = &a.culprits()[0];
    assert_eq!(c.chain, "filter-forward-in__nlt-br-b");
    assert_eq!(c.comment.as_deref(), Some("UNPUBLISHED PORT DROP"));
    assert_eq!(c.hook.as_deref(), Some("forward"));
    assert!(matches!(
        c.meaning(&facts(), &ping()),
        Meaning::UnpublishedPort { ref network, .. } if network.name.as_deref() == Some("nlt-b")
    ));
}

#[test]
fn counter_reset_table_recreation_and_removed_chains() {
    let (before, after) = (parse(BEFORE), parse(AFTER_PING));
    // Backwards: the counter went down.
    let a = attribute(&after, &before, 0);
    let NftAttribution::NotSure { changed, culprits } = &a else {
        panic!("{a:?}");
    };
    assert!(matches!(changed[0].change, Change::CounterWentDown { .. }));
    assert!(culprits.is_empty());
    // The table re-created: same handles, other table handle.
    let mut recreated = after.clone();
    for t in &mut recreated.tables {
        t.handle += 100;
    }
    let a = attribute(&before, &recreated, 1);
    let NftAttribution::NotSure { changed, .. } = &a else {
        panic!("{a:?}");
    };
    assert!(changed.iter().all(|c| c.change == Change::TableRecreated));
    assert!(changed.iter().any(|c| c.chain == "raw-PREROUTING"));
    // A chain with drop rules removed between the reads.
    let mut removed = before.clone();
    removed
        .chains
        .retain(|c| c.name != "filter-forward-in__nlt-br-a");
    removed
        .rules
        .retain(|r| r.chain != "filter-forward-in__nlt-br-a");
    let a = attribute(&before, &removed, 0);
    assert!(
        matches!(&a, NftAttribution::NotSure { changed, .. } if changed[0].change == Change::Removed)
    );
    // The same chain created between the reads counts from zero.
    let mut added = after.clone();
    for r in added
        .rules
        .iter_mut()
        .filter(|r| r.chain == "filter-forward-in__nlt-br-a" && r.drops())
    {
        r.counter = Some(Counter {
            packets: 2,
            bytes: 168,
        });
    }
    let a = attribute(&removed, &added, 3);
    let NftAttribution::Counted { culprits, certain } = &a else {
        panic!("{a:?}");
    };
    assert!(!certain);
    assert_eq!(culprits.iter().map(|c| c.delta).collect::<Vec<_>>(), [2, 1]);
    assert!(culprits[0].since_rewrite && !culprits[1].since_rewrite);
    // Nothing changed, nothing rose.
    assert_eq!(
        attribute(&before, &before, 1),
        NftAttribution::Counted {
            culprits: vec![],
            certain: false
        }
    );
}

#[test]
fn a_chain_that_cannot_drop_may_change() {
    let before = parse(BEFORE);
    let mut after = parse(AFTER_PING);
    for r in after
        .rules
        .iter_mut()
        .filter(|r| r.chain == "nat-postrouting-out__nlt-br-a")
    {
        r.handle += 1000;
    }
    assert!(attribute(&before, &after, 1).certain());
}

#[test]
fn bad_json() {
    assert!(matches!(parse_json("not json"), Err(NftError::Json { .. })));
    assert!(matches!(
        parse_json("{\"x\": []}"),
        Err(NftError::NotNftJson)
    ));
    let set = parse(r#"{"nftables": [{"metainfo": {}}, {"rule": {}}, 5, {"chain": {"name": 1}}]}"#);
    assert_eq!(set.rules.len(), 1);
    assert_eq!(set.rules[0].verdict, Verdict::None);
    assert_eq!(set.rules[0].text, "");
    let e = NftError::NoDockerTables {
        tables: "ip docker-bridges, ip6 docker-bridges".into(),
    };
    assert_eq!(
        e.to_string(),
        "no nftables table ip docker-bridges, ip6 docker-bridges (Docker's nftables backend is not in use)"
    );
}

#[test]
fn recognises_a_missing_table() {
    let missing = "Error: No such file or directory\nlist table ip docker-bridges";
    match run_with_timeout(
        "sh",
        &["-c", &format!("echo '{missing}' >&2; exit 1")],
        NFT_TIMEOUT,
        Shown::CommandLine,
    ) {
        Err(CommandError::Status { stderr, .. }) => assert!(table_missing(&stderr)),
        other => panic!("{other:?}"),
    }
    assert!(!table_missing("Operation not permitted (you must be root)"));
}

/// On this host (iptables backend) the tables do not exist; with Docker's nftables
/// backend they parse.
#[test]
fn real_snapshot() {
    match snapshot() {
        Ok(set) => {
            assert!(set.tables.iter().all(|t| t.name == "docker-bridges"));
            println!("docker-bridges: {} rules", set.rules.len());
        }
        Err(
            e @ (NftError::NoDockerTables { .. }
            | NftError::NftMissing
            | NftError::Run(CommandError::Status { .. })),
        ) => {
            println!("no snapshot: {e}")
        }
        Err(e) => panic!("unexpected: {e:?}"),
    }
}

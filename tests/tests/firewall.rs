//! The firewall behind netfilter drops, in namespaces of the tests' own.
//!
//! Docker 29's nftables firewall backend, without a Docker 29: a ruleset shaped like the one
//! it writes (`ip docker-bridges`, verdict maps, rules with counters and comments) loaded with
//! the real `nft` into a network namespace, two bridges and two "containers" behind it, and
//! `netlab watch` run in that namespace. netlab must name the rule that dropped a ping by
//! table, chain and Docker's comment, check it against the rule's own counter, and, when the
//! chain is flushed and refilled between two drops (as Docker does whenever it changes one:
//! counters back to zero, new handles), say "not sure" rather than name a rule that no
//! longer exists.
//!
//! And a host where the firewall cannot be read (no iptables-save, no nft): drops are still
//! reported, each saying why its rule is unknown, with one warning.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use netlab_tests::host::netns::in_ns;
use netlab_tests::{netlab_or_skip, Netns, Watch};
use serde_json::Value;

/// Time for netfilter drops (reported once the counters are read again) to reach stdout.
const SETTLE: Duration = Duration::from_millis(1500);

fn fixture() -> PathBuf {
    fixture_named("docker29-nftables.nft")
}

fn fixture_named(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../netlab-daemon/tests/fixtures/firewall")
        .join(name)
}

/// The namespace holding the bridges and the ruleset, and the two "containers".
struct Lab {
    host: Netns,
    a: Netns,
    b: Netns,
}

impl Lab {
    /// Bridges `nlt-br-a` 10.77.1.1/24 and `nlt-br-b` 10.77.2.1/24 with one veth each, whose
    /// peers are `eth0` 10.77.{1,2}.2 in the two containers; forwarding on; the ruleset loaded.
    fn new() -> Result<Lab> {
        Self::with_ruleset(&fixture())
    }

    /// The same with the ruleset at `ruleset`.
    fn with_ruleset(ruleset: &Path) -> Result<Lab> {
        let lab = Lab {
            host: Netns::unique("nfh")?,
            a: Netns::unique("nfa")?,
            b: Netns::unique("nfb")?,
        };
        lab.host.exec("sysctl -qw net.ipv4.ip_forward=1")?;
        for (x, n, c) in [("a", 1, &lab.a), ("b", 2, &lab.b)] {
            lab.host.exec(&format!(
                "ip link add nlt-br-{x} type bridge && ip addr add 10.77.{n}.1/24 dev nlt-br-{x} \
                 && ip link set nlt-br-{x} up \
                 && ip link add veth-{x} type veth peer name eth0 netns {c} \
                 && ip link set veth-{x} master nlt-br-{x} up",
                c = c.name()
            ))?;
            c.exec(&format!(
                "ip addr add 10.77.{n}.2/24 dev eth0 && ip link set eth0 up \
                 && ip route add default via 10.77.{n}.1"
            ))?;
        }
        lab.host
            .exec(&format!("nft -f {}", ruleset.display()))
            .with_context(|| format!("loading {}", ruleset.display()))?;
        Ok(lab)
    }

    /// `netlab watch --json <extra>` in the lab's namespace, on its two bridges and veths.
    fn watch(&self, bin: &Path, extra: &[&str]) -> Result<Watch> {
        let mut args = vec![
            "--iface", "nlt-br-a", "--iface", "veth-a", "--iface", "nlt-br-b", "--iface", "veth-b",
            "--json",
        ];
        args.extend_from_slice(extra);
        Watch::start_bin(
            bin,
            self.host.name(),
            &args,
            netlab_tests::watch::READY_TIMEOUT,
        )
    }

    /// One ping from container a to container b; it must not be answered.
    fn ping_b(&self) -> Result<()> {
        let out = in_ns(self.a.name(), "ping")
            .args(["-c", "1", "-W", "1", "10.77.2.2"])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(
            text.contains("1 packets transmitted, 0 received"),
            "the ruleset let the ping through:\n{text}"
        );
        Ok(())
    }

    /// `(handle, packets)` of the rules of `chain` whose comment is `comment`, from
    /// `nft -j`: the firewall's own witness.
    fn counted(&self, chain: &str, comment: &str) -> Result<Vec<(u64, u64)>> {
        let json = self
            .host
            .exec(&format!("nft -j list chain ip docker-bridges {chain}"))?;
        let v: Value = serde_json::from_str(&json).context("nft -j output")?;
        let mut out = Vec::new();
        for item in v["nftables"].as_array().into_iter().flatten() {
            let rule = &item["rule"];
            if rule["comment"] != comment {
                continue;
            }
            let packets = rule["expr"]
                .as_array()
                .into_iter()
                .flatten()
                .find_map(|e| e["counter"]["packets"].as_u64())
                .unwrap_or(0);
            out.push((rule["handle"].as_u64().unwrap_or(0), packets));
        }
        Ok(out)
    }

    /// The handle of the rule dropping what goes to 10.77.2.2 in raw-PREROUTING, and its
    /// counter.
    fn direct_access_rule(&self) -> Result<(u64, u64)> {
        let json = self
            .host
            .exec("nft -j list chain ip docker-bridges raw-PREROUTING")?;
        let v: Value = serde_json::from_str(&json)?;
        v["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| &i["rule"])
            .filter(|r| r.is_object() && r.to_string().contains("10.77.2.2"))
            .map(|r| {
                let packets = r["expr"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find_map(|e| e["counter"]["packets"].as_u64())
                    .unwrap_or(0);
                (r["handle"].as_u64().unwrap_or(0), packets)
            })
            .next()
            .context("no raw-PREROUTING rule for 10.77.2.2")
    }

    /// What Docker does when a container joins: raw-PREROUTING flushed and written again,
    /// with one more rule (its counters at zero, every handle new).
    fn rewrite_raw_prerouting(&self) -> Result<()> {
        self.host.exec(
            "nft -f - <<'EOF'\n\
             flush chain ip docker-bridges raw-PREROUTING\n\
             add rule ip docker-bridges raw-PREROUTING ip daddr 10.77.1.3 iifname != \"nlt-br-a\" counter drop comment \"DROP DIRECT ACCESS\"\n\
             add rule ip docker-bridges raw-PREROUTING ip daddr 10.77.1.2 iifname != \"nlt-br-a\" counter drop comment \"DROP DIRECT ACCESS\"\n\
             add rule ip docker-bridges raw-PREROUTING ip daddr 10.77.2.2 iifname != \"nlt-br-b\" counter drop comment \"DROP DIRECT ACCESS\"\n\
             EOF",
        )?;
        Ok(())
    }
}

/// Whether the nft binary is missing (then the test that asks is skipped, and says so).
fn nft_missing() -> bool {
    let missing = netlab_tests::sh("command -v nft").is_err();
    if missing {
        println!("skipping: the nft binary is not installed");
    }
    missing
}

/// The drop events of echo requests a → b, in order.
fn echo_drops(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| {
            e["kind"] == "drop"
                && e["packet"] == "icmp-echo-request"
                && e["src"]["ip"] == "10.77.1.2"
                && e["dst"]["ip"] == "10.77.2.2"
        })
        .collect()
}

fn show(events: &[&Value]) -> String {
    events
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A ping dropped by "DROP DIRECT ACCESS" is named by Docker's comment, table and chain, with
/// the handle whose own counter moved; after Docker-style rewrites of the chain netlab says it
/// is not sure (naming no vanished handle), then, counters read again, is sure of the new
/// rule; with the raw rules gone (allow-direct-routing) the same ping dies by "UNPUBLISHED
/// PORT DROP" in the destination bridge's forward chain, and is named so.
#[test]
fn docker_29_nftables_rules_are_named_by_their_comments_through_rewrites() -> Result<()> {
    let bin = netlab_or_skip!();
    if nft_missing() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let watch = lab.watch(&bin, &[])?;

    // 1. One ping, one drop: named, and certain.
    lab.ping_b()?;
    std::thread::sleep(SETTLE);
    let (first_handle, first_count) = lab.direct_access_rule()?;
    ensure!(
        first_count == 1,
        "the raw rule counted {first_count}, not 1"
    );

    // 2. Docker rewrites the chain; the next drop comes after new handles.
    lab.rewrite_raw_prerouting()?;
    let (second_handle, _) = lab.direct_access_rule()?;
    ensure!(
        second_handle != first_handle,
        "the rewrite kept handle {first_handle}"
    );
    lab.ping_b()?;
    std::thread::sleep(SETTLE);

    // 3. Counters read again: the next drop is certain again, with the new handle.
    lab.ping_b()?;
    std::thread::sleep(SETTLE);
    let (_, second_count) = lab.direct_access_rule()?;
    ensure!(
        second_count == 2,
        "the rewritten raw rule counted {second_count}, not 2"
    );

    // 4. The raw rules flushed, as with allow-direct-routing: two pings, the first across
    // the change, the second after it.
    lab.host
        .exec("nft flush chain ip docker-bridges raw-PREROUTING")?;
    lab.ping_b()?;
    std::thread::sleep(SETTLE);
    lab.ping_b()?;
    let output = watch.stop_after(SETTLE)?;
    let unpublished = lab.counted("filter-forward-in__nlt-br-b", "UNPUBLISHED PORT DROP")?;
    ensure!(
        unpublished.len() == 1 && unpublished[0].1 == 2,
        "UNPUBLISHED PORT DROP counted {unpublished:?}, not 2"
    );

    let drops = echo_drops(&output.events);
    ensure!(
        drops.len() == 5,
        "expected 5 drop events for 5 dropped pings, got {}:\n{}\nstderr:\n{}",
        drops.len(),
        show(&drops),
        output.stderr
    );
    let named = |e: &Value, chain: &str, comment: &str, handle: Option<u64>| {
        let r = &e["drop"]["rule"];
        e["drop"]["reason"] == "NETFILTER_DROP"
            && r["backend"] == "nftables"
            && r["family"] == "ip"
            && r["table"] == "docker-bridges"
            && r["chain"] == chain
            && r["comment"] == comment
            && r["attributed_by"] == "counters"
            && r["certain"] == true
            && handle.is_none_or(|h| r["handle"] == h)
    };
    let not_sure = |e: &Value, comment: &str| {
        e["drop"]["rule"].is_null()
            && e["drop"]["candidates"].as_array().is_some_and(|c| {
                !c.is_empty()
                    && c.iter().all(|x| {
                        x.as_str().is_some_and(|x| {
                            x.contains(comment) && !x.contains(&format!("handle {first_handle}"))
                        })
                    })
            })
    };
    ensure!(
        named(drops[0], "raw-PREROUTING", "DROP DIRECT ACCESS", Some(first_handle)),
        "the first drop is not named raw-PREROUTING \"DROP DIRECT ACCESS\" handle {first_handle}:\n{}",
        drops[0]
    );
    ensure!(
        not_sure(drops[1], "DROP DIRECT ACCESS"),
        "the drop across the rewrite should be 'not sure', with DROP DIRECT ACCESS as candidate:\n{}",
        drops[1]
    );
    ensure!(
        named(
            drops[2],
            "raw-PREROUTING",
            "DROP DIRECT ACCESS",
            Some(second_handle)
        ),
        "the drop after the rewrite is not named with the new handle {second_handle}:\n{}",
        drops[2]
    );
    ensure!(
        drops[3]["drop"]["rule"].is_null(),
        "the drop across the flush named a rule although the ruleset changed:\n{}",
        drops[3]
    );
    ensure!(
        named(
            drops[4],
            "filter-forward-in__nlt-br-b",
            "UNPUBLISHED PORT DROP",
            Some(unpublished[0].0)
        ),
        "the drop without raw rules is not named filter-forward-in__nlt-br-b \"UNPUBLISHED PORT DROP\":\n{}",
        drops[4]
    );
    ensure!(
        output.stderr.contains("not sure"),
        "netlab did not say it was not sure:\n{}",
        output.stderr
    );
    Ok(())
}

/// A wrapper that runs netlab in a mount namespace of its own where /usr/sbin (and /sbin,
/// a link to it) is a tmpfs: empty (no iptables-save, ip6tables-save or nft to run), or
/// holding those three as files nobody may execute.
struct WithoutFirewallTools {
    dir: PathBuf,
    bin: PathBuf,
}

impl WithoutFirewallTools {
    fn new(netlab: &Path, unexecutable: bool) -> Result<Self> {
        let dir = std::env::temp_dir().join(netlab_tests::host::netns::unique_name("nosbin"));
        std::fs::create_dir_all(&dir)?;
        let bin = dir.join("netlab");
        let fill = if unexecutable {
            " && for f in iptables-save ip6tables-save nft; do : > /usr/sbin/$f; done"
        } else {
            ""
        };
        std::fs::write(
            &bin,
            format!(
                "#!/bin/sh\nexec unshare -m --propagation private sh -c 'mount -t tmpfs none /usr/sbin{fill} && exec \"$0\" \"$@\"' {} \"$@\"\n",
                netlab.display()
            ),
        )?;
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))?;
        Ok(Self { dir, bin })
    }
}

impl Drop for WithoutFirewallTools {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Pings dropped by an iptables rule on a host without iptables-save and nft: every drop is
/// reported (as many as ping lost and the rule's own counter counted), each with the reason
/// its rule is unknown; netlab warns once and exits cleanly.
#[test]
fn drops_are_reported_when_the_firewall_cannot_be_read() -> Result<()> {
    let bin = netlab_or_skip!();
    unreadable_firewall(&bin, false, "iptables-save")
}

/// The same when the tools are there but may not be run (permission denied).
#[test]
fn drops_are_reported_when_the_firewall_tools_may_not_run() -> Result<()> {
    let bin = netlab_or_skip!();
    unreadable_firewall(&bin, true, "ermission denied")
}

/// Three pings dropped by an iptables rule, netlab watching through [`WithoutFirewallTools`];
/// every drop must carry `unattributed` containing `why`.
fn unreadable_firewall(bin: &Path, unexecutable: bool, why: &str) -> Result<()> {
    let (a, b) = (Netns::unique("fwa")?, Netns::unique("fwb")?);
    a.exec(&format!(
        "ip link add a0 type veth peer name b0 netns {} && ip addr add 10.78.0.1/24 dev a0 && ip link set a0 up",
        b.name()
    ))?;
    b.exec("ip addr add 10.78.0.2/24 dev b0 && ip link set b0 up")?;
    b.exec("iptables -A INPUT -p icmp --icmp-type echo-request -j DROP")?;
    let wrapper = WithoutFirewallTools::new(bin, unexecutable)?;
    let watch = Watch::start_bin(
        &wrapper.bin,
        b.name(),
        &["--iface", "b0", "--json"],
        netlab_tests::watch::READY_TIMEOUT,
    )?;
    let ping = a.exec("ping -c 3 -i 0.3 -W 1 10.78.0.2 || true")?;
    ensure!(
        ping.contains("3 packets transmitted, 0 received"),
        "the rule let pings through:\n{ping}"
    );
    let output = watch.stop_after(SETTLE)?;
    let counted: u64 = b
        .exec("iptables -L INPUT -v -x -n")?
        .lines()
        .find(|l| l.contains("DROP"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .context("no counter on the DROP rule")?;
    let drops: Vec<&Value> = output
        .events
        .iter()
        .filter(|e| e["kind"] == "drop" && e["packet"] == "icmp-echo-request")
        .collect();
    ensure!(
        counted == 3 && drops.len() == 3,
        "the rule counted {counted}, netlab reported {} drops:\n{}\nstderr:\n{}",
        drops.len(),
        show(&drops),
        output.stderr
    );
    ensure!(
        drops.iter().all(|e| {
            e["drop"]["reason"] == "NETFILTER_DROP"
                && e["drop"]["rule"].is_null()
                && e["drop"]["unattributed"]
                    .as_str()
                    .is_some_and(|w| w.contains(why))
        }),
        "each drop should say why its rule is unknown:\n{}",
        show(&drops)
    );
    let warnings = output
        .stderr
        .lines()
        .filter(|l| l.contains("counters cannot be read"))
        .count();
    ensure!(
        warnings == 1,
        "expected one warning about the firewall, got {warnings}:\n{}",
        output.stderr
    );
    Ok(())
}

/// With `--nftrace`, each drop is joined to the rule verdict the kernel traced for that very
/// packet: named exactly (attributed_by "trace") right across a rewrite of the chain, and
/// never confused by drops of the same rule that netlab does not observe (a third
/// "container" on a bridge netlab does not watch, pinging the same address meanwhile).
/// netlab's trace table is gone when it exits.
#[test]
fn nftrace_names_each_drop_exactly_through_rewrites_and_concurrent_drops() -> Result<()> {
    let bin = netlab_or_skip!();
    if nft_missing() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let c = Netns::unique("nfc")?;
    lab.host.exec(&format!(
        "ip link add nlt-br-c type bridge && ip addr add 10.77.3.1/24 dev nlt-br-c \
         && ip link set nlt-br-c up \
         && ip link add veth-c type veth peer name eth0 netns {} \
         && ip link set veth-c master nlt-br-c up",
        c.name()
    ))?;
    c.exec(
        "ip addr add 10.77.3.2/24 dev eth0 && ip link set eth0 up \
         && ip route add default via 10.77.3.1",
    )?;
    let watch = lab.watch(&bin, &["--nftrace"])?;
    let tables = lab.host.exec("nft list tables")?;
    ensure!(
        tables.contains("table inet netlab-trace-"),
        "no trace table while netlab runs:\n{tables}"
    );
    let (first_handle, before) = lab.direct_access_rule()?;

    // The unobserved neighbour pings the same address, dropped by the same rule, while a
    // sends three pings.
    let mut neighbour = in_ns(c.name(), "ping")
        .args(["-c", "15", "-i", "0.2", "-W", "1", "10.77.2.2"])
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let out = in_ns(lab.a.name(), "ping")
        .args(["-c", "3", "-i", "0.3", "-W", "1", "10.77.2.2"])
        .output()?;
    ensure!(
        String::from_utf8_lossy(&out.stdout).contains("3 packets transmitted, 0 received"),
        "the ruleset let a's pings through"
    );
    neighbour.wait()?;
    let (_, after) = lab.direct_access_rule()?;
    ensure!(
        after - before >= 3 + 15,
        "the raw rule counted {} drops, not a's 3 plus the neighbour's 15",
        after - before
    );

    // Docker rewrites the chain; the very next drop is named with its new handle.
    lab.rewrite_raw_prerouting()?;
    let (second_handle, _) = lab.direct_access_rule()?;
    lab.ping_b()?;
    let output = watch.stop_after(SETTLE)?;

    let drops = echo_drops(&output.events);
    ensure!(
        drops.len() == 4,
        "expected 4 drop events for a's 4 dropped pings, got {}:\n{}\nstderr:\n{}",
        drops.len(),
        show(&drops),
        output.stderr
    );
    for (i, e) in drops.iter().enumerate() {
        let handle = if i < 3 { first_handle } else { second_handle };
        let r = &e["drop"]["rule"];
        ensure!(
            r["attributed_by"] == "trace"
                && r["certain"] == true
                && r["table"] == "docker-bridges"
                && r["chain"] == "raw-PREROUTING"
                && r["comment"] == "DROP DIRECT ACCESS"
                && r["handle"] == handle,
            "drop {i} is not traced to raw-PREROUTING handle {handle}:\n{e}"
        );
    }
    let neighbours = output
        .events
        .iter()
        .filter(|e| e["kind"] == "drop" && e["src"]["ip"] == "10.77.3.2")
        .count();
    ensure!(
        neighbours == 0,
        "{neighbours} drops of the unobserved neighbour were reported"
    );
    let tables = lab.host.exec("nft list tables")?;
    ensure!(
        !tables.contains("netlab-trace"),
        "the trace table is left after netlab exited:\n{tables}"
    );
    Ok(())
}

/// A chain policy (`iptables -P FORWARD DROP` in a router namespace) has no rule and, under
/// iptables-nft, no counter: traced, each drop is named as that chain's policy.
#[test]
fn a_forward_policy_drop_is_traced_to_the_policy() -> Result<()> {
    let bin = netlab_or_skip!();
    let version = netlab_tests::sh("iptables --version").unwrap_or_default();
    if !version.contains("nf_tables") {
        println!(
            "skipping: iptables is not iptables-nft here ({})",
            version.trim()
        );
        return Ok(());
    }
    let (r, a, b) = (
        Netns::unique("pr")?,
        Netns::unique("pa")?,
        Netns::unique("pb")?,
    );
    r.exec("sysctl -qw net.ipv4.ip_forward=1")?;
    for (x, n, ns) in [("a", 1, &a), ("b", 2, &b)] {
        r.exec(&format!(
            "ip link add r{x} type veth peer name eth0 netns {} && ip addr add 10.76.{n}.1/24 dev r{x} && ip link set r{x} up",
            ns.name()
        ))?;
        ns.exec(&format!(
            "ip addr add 10.76.{n}.2/24 dev eth0 && ip link set eth0 up && ip route add default via 10.76.{n}.1"
        ))?;
    }
    r.exec("iptables -P FORWARD DROP")?;
    let watch = Watch::start_bin(
        &bin,
        r.name(),
        &["--iface", "ra", "--iface", "rb", "--json", "--nftrace"],
        netlab_tests::watch::READY_TIMEOUT,
    )?;
    let ping = a.exec("ping -c 2 -i 0.3 -W 1 10.76.2.2 || true")?;
    ensure!(
        ping.contains("2 packets transmitted, 0 received"),
        "the policy let pings through:\n{ping}"
    );
    let output = watch.stop_after(SETTLE)?;
    let drops: Vec<&Value> = output
        .events
        .iter()
        .filter(|e| e["kind"] == "drop" && e["packet"] == "icmp-echo-request")
        .collect();
    ensure!(
        drops.len() == 2
            && drops.iter().all(|e| {
                let r = &e["drop"]["rule"];
                r["backend"] == "iptables-nft"
                    && r["family"] == "ipv4"
                    && r["table"] == "filter"
                    && r["chain"] == "FORWARD"
                    && r["rule"] == "FORWARD policy DROP"
                    && r["attributed_by"] == "trace"
                    && r["certain"] == true
            }),
        "expected 2 drops traced to the FORWARD policy:\n{}\nstderr:\n{}",
        show(&drops),
        output.stderr
    );
    Ok(())
}

/// Podman's firewall with netavark's nftables driver (a ruleset of its shape: two networks
/// created with `--opt isolate=true`, whose rules carry no counters): each dropped ping is
/// traced to `NETAVARK-ISOLATION-2` of `table inet netavark` and explained in Podman's terms,
/// with no engine answering.
#[test]
fn netavark_nftables_isolation_drops_are_traced_and_explained() -> Result<()> {
    let bin = netlab_or_skip!();
    if nft_missing() {
        return Ok(());
    }
    let lab = Lab::with_ruleset(&fixture_named("netavark-nftables.nft"))?;
    let watch = lab.watch(&bin, &["--nftrace"])?;
    let out = in_ns(lab.a.name(), "ping")
        .args(["-c", "2", "-i", "0.3", "-W", "1", "10.77.2.2"])
        .output()?;
    ensure!(
        String::from_utf8_lossy(&out.stdout).contains("2 packets transmitted, 0 received"),
        "the ruleset let a's pings through"
    );
    let output = watch.stop_after(SETTLE)?;
    let drops = echo_drops(&output.events);
    ensure!(
        drops.len() == 2,
        "expected 2 drop events for a's 2 dropped pings, got {}:\n{}\nstderr:\n{}",
        drops.len(),
        show(&drops),
        output.stderr
    );
    for e in drops {
        let r = &e["drop"]["rule"];
        let summary = r["docker"]["summary"].as_str().unwrap_or_default();
        ensure!(
            r["attributed_by"] == "trace"
                && r["table"] == "netavark"
                && r["chain"] == "NETAVARK-ISOLATION-2"
                && r["rule"]
                    .as_str()
                    .is_some_and(|t| t.contains("oifname \"nlt-br-b\" drop"))
                && r["docker"]["meaning"] == "podman-isolation"
                && summary.starts_with("Podman's network isolation (netavark, ISOLATION-2)")
                && summary.contains("nlt-br-b"),
            "drop not traced to netavark's isolation:\n{e}"
        );
    }
    Ok(())
}

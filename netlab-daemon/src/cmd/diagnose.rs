//! `netlab diagnose SRC DST`: send echo requests from inside SRC's network namespace,
//! watch where they go, and say why DST is or is not reachable.
//!
//! The run gathers [`Facts`] (replies on our socket, ping journeys, drop reports,
//! unanswered ARP); [`verdict`] turns them into a verdict a person can act on. The verdict
//! logic is pure and tested on recorded facts.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::docker::discover::{self};
use crate::docker::topology::{Role, Topology};
use crate::docker::DockerClient;
use crate::kernel::pinger::{Pinger, Reply};
use crate::model::event::DropRecord;
use crate::model::journey::{Finished, Hop, Journey, Outcome, Phase};
use crate::output::Collect;
use crate::session::{Options, Session, Source};

/// Options of `netlab diagnose`.
#[derive(Debug, Clone, clap::Args)]
pub struct DiagnoseArgs {
    /// The container that sends (name, case-insensitive).
    pub src: String,
    /// The destination: a container name or an IP address.
    pub dst: String,
    /// Echo requests to send.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub count: u16,
    /// One JSON object per family probed instead of the human verdict.
    #[arg(long)]
    pub json: bool,
    /// Probe over IPv4 only (by default: every family both containers have an address of).
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Probe over IPv6 only.
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,
    /// Find the dropping rule by counters only, without nftables tracing (which diagnose
    /// uses for its own probes where nf_tables holds the rules).
    #[arg(long)]
    pub no_nftrace: bool,
}

/// The destination as resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    pub ip: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

/// What a run observed.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub src: String,
    pub src_ip: Option<IpAddr>,
    pub src_networks: Vec<String>,
    pub dst: Option<Target>,
    /// Networks the destination container is on (empty for a bare address).
    pub dst_networks: Vec<String>,
    pub sent: u16,
    pub replies: Vec<Reply>,
    /// Journeys of our echo requests.
    pub journeys: Vec<Journey>,
    /// Drop reports of our echo requests or replies.
    pub drops: Vec<DropRecord>,
    /// An ARP request for the destination got no reply (with the network it was asked on).
    pub arp_unanswered: Option<Option<String>>,
    /// Human descriptions of the hops, by (ifindex) — `veth of AppDev`.
    pub hop_names: Vec<(u32, String)>,
    /// The bridge each observed veth hangs on (ifindex → bridge name and network).
    pub hop_bridges: Vec<(u32, String)>,
}

/// The answer.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// `reachable`, `dropped`, `no-arp-reply`, `unanswered`, `no-route`, ...
    pub verdict: &'static str,
    /// `ipv4` or `ipv6`: a verdict is per family.
    pub family: &'static str,
    pub reachable: bool,
    pub src: String,
    pub dst: Option<Target>,
    pub sent: u16,
    pub answered: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<RttMs>,
    /// Observation points of a request, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop: Option<crate::model::event::DropInfo>,
    /// Where the drop happened (device and namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped_at: Option<String>,
    pub share_no_network: bool,
    /// The command that would fix it, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The verdict in one sentence, and the lines that explain it.
    pub message: String,
    pub details: Vec<String>,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct RttMs {
    pub min: f64,
    pub avg: f64,
    pub max: f64,
}

fn describe(f: &Facts, h: &Hop) -> String {
    f.hop_names
        .iter()
        .find(|(i, _)| *i == h.ifindex)
        .map_or_else(|| h.iface.clone(), |(_, n)| n.clone())
}

/// The request's path: hops of the request phase, with the bridge between two veths on
/// the same bridge named even though bridged unicast never passes the bridge's own hook.
fn request_path(f: &Facts, j: &Journey) -> Vec<String> {
    let hops: Vec<&Hop> = j
        .hops
        .iter()
        .filter(|h| h.phase == Phase::Request)
        .collect();
    let bridge_of = |h: &Hop| {
        f.hop_bridges
            .iter()
            .find(|(i, _)| *i == h.ifindex)
            .map(|(_, b)| b.clone())
    };
    let mut out: Vec<String> = Vec::new();
    for (n, h) in hops.iter().enumerate() {
        if let Some(prev) = n.checked_sub(1).map(|p| hops[p]) {
            if let (Some(a), Some(b)) = (bridge_of(prev), bridge_of(h)) {
                if a == b && out.last().is_none_or(|l| *l != a) {
                    out.push(a);
                }
            }
        }
        let d = describe(f, h);
        if out.last() != Some(&d) {
            out.push(d);
        }
    }
    out
}

/// Turns what was observed into a verdict.
pub fn verdict(f: &Facts) -> Verdict {
    let dst_name = f
        .dst
        .as_ref()
        .map(|d| match &d.container {
            Some(c) => format!("{c} ({})", d.ip),
            None => d.ip.to_string(),
        })
        .unwrap_or_else(|| "?".into());
    let shared: Vec<&String> = f
        .src_networks
        .iter()
        .filter(|n| f.dst_networks.contains(n))
        .collect();
    let share_no_network = f.dst.as_ref().is_some_and(|d| d.container.is_some())
        && shared.is_empty()
        && !f.dst_networks.is_empty();
    let hint = (share_no_network)
        .then(|| {
            let net = f.src_networks.first()?;
            let c = f.dst.as_ref()?.container.as_ref()?;
            Some(format!("docker network connect {net} {c}"))
        })
        .flatten();
    let mut v = Verdict {
        verdict: "unanswered",
        family: family_of(f.dst.as_ref().map(|d| d.ip)),
        reachable: false,
        src: f.src.clone(),
        dst: f.dst.clone(),
        sent: f.sent,
        answered: f.replies.len(),
        rtt_ms: None,
        path: Vec::new(),
        drop: None,
        dropped_at: None,
        share_no_network,
        hint: None,
        message: String::new(),
        details: Vec::new(),
    };
    // A remedy that works on this engine, from the rule that dropped the probe.
    let mut fixed_by_rule: Option<String> = None;
    let first_answered = f.journeys.iter().find(|j| j.result == Outcome::Answered);
    if !f.replies.is_empty() {
        let ms: Vec<f64> = f
            .replies
            .iter()
            .map(|r| r.rtt.as_secs_f64() * 1e3)
            .collect();
        let min = ms.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ms.iter().copied().fold(0.0, f64::max);
        let avg = ms.iter().sum::<f64>() / ms.len() as f64;
        v.verdict = "reachable";
        v.reachable = true;
        v.rtt_ms = Some(RttMs { min, avg, max });
        if let Some(j) = first_answered.or(f.journeys.first()) {
            v.path = request_path(f, j);
        }
        v.message = format!(
            "{} → {dst_name}: reachable, {}/{} answered, rtt min/avg/max {min:.3}/{avg:.3}/{max:.3} ms",
            f.src,
            f.replies.len(),
            f.sent
        );
        if !v.path.is_empty() {
            v.details.push(format!("path: {}", v.path.join(" → ")));
        }
        return v;
    }
    // Not answered: no neighbour (ARP) first, as the kernel's NEIGH_FAILED drop of the
    // queued requests says the same; then another drop; then the last point seen.
    let neigh_failed = f.drops.iter().any(|d| d.drop.reason.starts_with("NEIGH_"));
    let arp_network = match (&f.arp_unanswered, neigh_failed) {
        (Some(n), _) => Some(
            n.clone()
                .or_else(|| f.dst.as_ref().and_then(|d| d.network.clone())),
        ),
        (None, true) => Some(f.dst.as_ref().and_then(|d| d.network.clone())),
        (None, false) => None,
    };
    if let Some(net) = &arp_network {
        v.verdict = "no-arp-reply";
        let ip = f
            .dst
            .as_ref()
            .map_or_else(|| "?".into(), |d| d.ip.to_string());
        v.message = match net {
            Some(n) => format!(
                "{} → {dst_name}: not reachable: no ARP reply for {ip} on {n}",
                f.src
            ),
            None => format!(
                "{} → {dst_name}: not reachable: no ARP reply for {ip}",
                f.src
            ),
        };
        v.details
            .push("nobody on the network answers for that address: is it assigned and up?".into());
    } else if let Some(d) = f.drops.first() {
        v.verdict = "dropped";
        let at = match &d.iface.name {
            Some(n) => format!("{n} ({})", d.iface.netns),
            None => d.iface.netns.clone(),
        };
        v.message = format!(
            "{} → {dst_name}: not reachable: {} dropped by the kernel ({}) at {at}",
            f.src,
            d.packet.name(),
            d.drop.reason
        );
        let mut how = format!("reason {}", d.drop.reason);
        if let Some(l) = &d.drop.location {
            how.push_str(&format!(" in {l}"));
        }
        if let Some(h) = &d.drop.hook {
            how.push_str(&format!(", netfilter hook {h}"));
        }
        v.details.push(how);
        if let Some(r) = &d.drop.rule {
            v.details.push(format!(
                "rule: {}  ({} table {} {}{})",
                r.rule,
                r.backend,
                r.family,
                r.table,
                if r.certain {
                    ""
                } else {
                    "; other rules counted drops too"
                }
            ));
            if let Some(m) = &r.docker {
                v.details.push(format!("what it is: {}", m.summary));
                for c in &m.caveats {
                    v.details.push(format!("note: {c}"));
                }
                if let Some(fix) = m.remedies.first() {
                    v.details.push(format!("to let it through: {fix}"));
                    fixed_by_rule = Some(fix.clone());
                }
            }
        } else if !d.drop.candidates.is_empty() {
            v.details
                .push(format!("rule: one of {}", d.drop.candidates.join(" | ")));
        } else if let Some(why) = &d.drop.unattributed {
            v.details.push(format!("rule: unknown ({why})"));
        }
        v.dropped_at = Some(at);
        v.drop = Some(d.drop.clone());
        if let Some(j) = f.journeys.first() {
            v.path = request_path(f, j);
            if !v.path.is_empty() {
                v.details.push(format!("seen at: {}", v.path.join(" → ")));
            }
        }
    } else {
        v.message = format!(
            "{} → {dst_name}: not reachable: {} echo requests sent, none answered",
            f.src, f.sent
        );
        if let Some(j) = f.journeys.first() {
            v.path = request_path(f, j);
            if let Some(last) = j.last_seen.as_ref().or(j.hops.last()) {
                v.details
                    .push(format!("last seen at {}", describe(f, last)));
            }
        }
    }
    if share_no_network {
        let dst_c = f
            .dst
            .as_ref()
            .and_then(|d| d.container.clone())
            .unwrap_or_default();
        v.details.push(format!(
            "{} is on {}, {dst_c} on {}: they share no network",
            f.src,
            f.src_networks.join(", "),
            f.dst_networks.join(", ")
        ));
        // The rule's own remedy is the one that works on this engine; the plain
        // suggestion stands in when no rule was named.
        let hint = fixed_by_rule.clone().or(hint);
        if fixed_by_rule.is_none() {
            if let Some(h) = &hint {
                v.details.push(format!("to connect them: {h}"));
            }
        }
        v.hint = hint;
    }
    v
}

/// `ipv6` for an IPv6 destination, else `ipv4`.
fn family_of(ip: Option<IpAddr>) -> &'static str {
    if ip.is_some_and(|ip| ip.is_ipv6()) {
        "ipv6"
    } else {
        "ipv4"
    }
}

/// Prints the verdict; returns whether DST is reachable.
fn report(v: &Verdict, json: bool) -> anyhow::Result<bool> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, v)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{}", v.message)?;
        for d in &v.details {
            writeln!(out, "  {d}")?;
        }
    }
    out.flush()?;
    Ok(v.reachable)
}

/// A one-line "not reachable" verdict decided before sending anything.
fn early(
    src: &str,
    dst: Option<Target>,
    verdict: &'static str,
    message: String,
    json: bool,
) -> anyhow::Result<bool> {
    report(&early_verdict(src, dst, verdict, message), json)
}

/// The verdict of [`early`].
fn early_verdict(
    src: &str,
    dst: Option<Target>,
    verdict: &'static str,
    message: String,
) -> Verdict {
    Verdict {
        verdict,
        family: family_of(dst.as_ref().map(|d| d.ip)),
        reachable: false,
        src: src.to_owned(),
        dst,
        sent: 0,
        answered: 0,
        rtt_ms: None,
        path: Vec::new(),
        drop: None,
        dropped_at: None,
        share_no_network: false,
        hint: None,
        message,
        details: Vec::new(),
    }
}

/// Whether `ip` is on a Docker bridge network of this host, or on a subnet of one of
/// `src`'s own interfaces (a leg added by hand): probes never leave the host.
pub fn on_docker_networks(
    topo: &Topology,
    src: &crate::docker::topology::ContainerView,
    ip: IpAddr,
) -> bool {
    let in_docker = topo
        .networks
        .iter()
        .flat_map(|n| n.info.subnets.iter())
        .any(|s| s.contains(ip));
    let on_link = src
        .interfaces
        .iter()
        .flat_map(|i| i.addrs.iter())
        .filter_map(|a| crate::docker::Subnet::parse(a))
        .any(|s| s.contains(ip));
    in_docker || on_link
}

/// Container `name` from the topology, or a clear error saying why not.
async fn find_container<'t>(
    topo: &'t Topology,
    client: &DockerClient,
    name: &str,
) -> anyhow::Result<Result<&'t crate::docker::topology::ContainerView, String>> {
    if let Some(c) = topo.container_named(name) {
        return Ok(Ok(c));
    }
    Ok(Err(match client.container_running(name).await? {
        Some(false) => format!("container {name} is not running"),
        Some(true) => format!("container {name} has no network namespace netlab can enter"),
        None => format!("no container named {name}"),
    }))
}

/// Sends `count` echo requests 200 ms apart and gathers the replies (waiting 1.5 s after
/// the last one).
fn spawn_sender(
    pinger: Pinger,
    count: u16,
) -> tokio::task::JoinHandle<std::io::Result<Vec<Reply>>> {
    tokio::task::spawn_blocking(move || -> std::io::Result<Vec<Reply>> {
        let mut pending: Vec<(u16, Instant)> = Vec::new();
        let mut got: Vec<Reply> = Vec::new();
        let mut take = |pending: &mut Vec<(u16, Instant)>, until: Instant| -> std::io::Result<()> {
            for r in pinger.replies(pending, until)? {
                pending.retain(|(s, _)| *s != r.seq);
                got.push(r);
            }
            Ok(())
        };
        for seq in 1..=count {
            pending.push((seq, Instant::now()));
            pinger.send(seq)?;
            let until = Instant::now() + Duration::from_millis(200);
            take(&mut pending, until)?;
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
        }
        take(&mut pending, Instant::now() + Duration::from_millis(1500))?;
        Ok(got)
    })
}

/// Observes with programs of its own (no daemon runs).
async fn observe_embedded(
    topo: &Topology,
    pinger: Pinger,
    count: u16,
    engine: Option<crate::docker::EngineFacts>,
    nftrace: bool,
) -> anyhow::Result<(Vec<Reply>, Collect)> {
    let opts = Options {
        nftrace,
        engine,
        ..Options::everything()
    };
    let mut session = Session::start(Source::Fixed(topo.clone()), opts)
        .await?
        .with_output(Collect::default());
    let sender = spawn_sender(pinger, count);
    tokio::pin!(sender);
    let replies = loop {
        tokio::select! {
            wake = session.wait() => {
                session.handle(wake?).await?;
            }
            r = &mut sender => break r.context("sender task")?.context("sending echo requests")?,
        }
    };
    // Let the last observations and the firewall counters settle.
    tokio::time::sleep(Duration::from_millis(250)).await;
    session.finish().await?;
    let collected = session
        .pipeline
        .output_mut::<Collect>()
        .map(std::mem::take)
        .unwrap_or_default();
    Ok((replies, collected))
}

/// Observes through the running daemon's event stream: its journeys, drops and
/// unanswered ARP requests.
async fn observe_via_daemon(
    mut c: crate::api::client::Client,
    pinger: Pinger,
    count: u16,
) -> anyhow::Result<(Vec<Reply>, Collect)> {
    let (tx, mut rx) = mpsc::unbounded_channel::<serde_json::Value>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        c.stream_lines(
            "/v1/events?kind=journey&kind=drop&kind=arp-unanswered",
            |line| {
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) {
                    let _ = tx.send(v);
                }
                Ok(true)
            },
        )
        .await
    });
    // The first line says the stream is on: nothing sent after it can be missed.
    tokio::time::timeout(Duration::from_secs(5), ready_rx)
        .await
        .context("the daemon did not start the event stream")?
        .context("the daemon closed the event stream")?;
    let replies = spawn_sender(pinger, count)
        .await
        .context("sender task")?
        .context("sending echo requests")?;
    // Unanswered journeys finish 2 s after their request, attributed drops ~150 ms late.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    reader.abort();
    let mut cap = Collect::default();
    while let Ok(v) = rx.try_recv() {
        match v["kind"].as_str() {
            Some("journey" | "arp-unanswered") => match serde_json::from_value(v) {
                Ok(f) => cap.finished.push(f),
                Err(e) => log::debug!("unreadable journey from the daemon: {e}"),
            },
            Some("drop") => match serde_json::from_value(v) {
                Ok(d) => cap.drops.push(d),
                Err(e) => log::debug!("unreadable drop from the daemon: {e}"),
            },
            _ => {}
        }
    }
    Ok((replies, cap))
}

/// Runs `netlab diagnose`; `Ok(true)` when DST is reachable.
pub async fn run(args: DiagnoseArgs) -> anyhow::Result<bool> {
    crate::kernel::privilege::require()?;
    let client = DockerClient::connect().await?;
    let snapshot = client.snapshot().await?;
    let snap2 = snapshot.clone();
    let topo = tokio::task::spawn_blocking(move || discover::scan(Some(&snap2)))
        .await
        .context("topology scan")?
        .context("reading network interfaces")?;
    let src = match find_container(&topo, &client, &args.src).await? {
        Ok(c) => c.clone(),
        Err(msg) => anyhow::bail!("{msg}"),
    };
    let src_info = snapshot
        .containers
        .iter()
        .find(|c| c.id == src.id)
        .context("source container vanished")?;
    let src_networks: Vec<String> = src_info
        .endpoints
        .iter()
        .map(|e| e.network.clone())
        .collect();
    let mut facts = Facts {
        src: src.name.clone(),
        src_networks: src_networks.clone(),
        sent: args.count,
        ..Default::default()
    };

    // The destinations, one per family: an address, or the addresses of a container (on a
    // network we share, if any).
    let wanted = |ip: &IpAddr| (!args.ipv4 || ip.is_ipv4()) && (!args.ipv6 || ip.is_ipv6());
    let mut targets: Vec<Result<Target, Verdict>> = Vec::new();
    match args.dst.parse::<IpAddr>() {
        Ok(ip) => {
            if !wanted(&ip) {
                anyhow::bail!(
                    "{ip} is an IPv{} address, and {} was given",
                    if ip.is_ipv4() { 4 } else { 6 },
                    if args.ipv4 { "-4" } else { "-6" }
                );
            }
            if !on_docker_networks(&topo, &src, ip) {
                anyhow::bail!(
                    "{ip} is on no Docker network of this host: netlab diagnose only probes addresses on Docker's bridges, so its packets never leave the host"
                );
            }
            let l = topo.endpoint(Some(ip), crate::model::decode::Mac::default());
            let by_subnet = topo
                .networks
                .iter()
                .find(|n| n.info.subnets.iter().any(|s| s.contains(ip)))
                .map(|n| n.info.name.clone());
            targets.push(Ok(Target {
                ip,
                container: l.and_then(|l| l.container.clone()),
                network: l.and_then(|l| l.network.clone()).or(by_subnet),
            }));
        }
        Err(_) => {
            let dst = match find_container(&topo, &client, &args.dst).await? {
                Ok(c) => c.clone(),
                Err(msg) if msg.contains("is not running") => {
                    return early(
                        &src.name,
                        None,
                        "not-running",
                        format!("{} → {}: not reachable: {msg}", src.name, args.dst),
                        args.json,
                    );
                }
                Err(msg) => anyhow::bail!("{msg}"),
            };
            let dst_info = snapshot.containers.iter().find(|c| c.id == dst.id);
            facts.dst_networks = dst_info
                .map(|c| c.endpoints.iter().map(|e| e.network.clone()).collect())
                .unwrap_or_default();
            // Addresses per network: Docker's endpoints and hand-made legs alike (IPv6
            // link-local addresses left out: they are the same on every link).
            let mut by_net: Vec<(Option<String>, IpAddr, bool)> = Vec::new();
            for i in &dst.interfaces {
                for a in &i.addrs {
                    if let Some(ip) = a.split('/').next().and_then(|s| s.parse::<IpAddr>().ok()) {
                        if !is_link_local(ip) {
                            by_net.push((i.network.clone(), ip, i.up));
                        }
                    }
                }
                if let Some(n) = &i.network {
                    if !facts.dst_networks.contains(n) {
                        facts.dst_networks.push(n.clone());
                    }
                }
            }
            if let Some(info) = dst_info {
                for e in &info.endpoints {
                    for ip in &e.ips {
                        if !by_net.iter().any(|(_, x, _)| x == ip) {
                            by_net.push((Some(e.network.clone()), *ip, true));
                        }
                    }
                }
            }
            let src_has = |v6: bool| {
                src.interfaces
                    .iter()
                    .flat_map(|i| i.addrs.iter())
                    .filter_map(|a| a.split('/').next()?.parse::<IpAddr>().ok())
                    .any(|ip| ip.is_ipv6() == v6 && !is_link_local(ip))
            };
            let explicit = args.ipv4 || args.ipv6;
            for v6 in [false, true] {
                if (v6 && args.ipv4) || (!v6 && args.ipv6) {
                    continue;
                }
                let of_family = |ip: &IpAddr| ip.is_ipv6() == v6;
                let pick = by_net
                    .iter()
                    .filter(|(n, ip, _)| {
                        of_family(ip) && n.as_ref().is_some_and(|n| src_networks.contains(n))
                    })
                    .chain(by_net.iter().filter(|(_, ip, _)| of_family(ip)))
                    .next()
                    .cloned();
                let family = if v6 { "IPv6" } else { "IPv4" };
                let Some((network, ip, up)) = pick else {
                    if explicit {
                        targets.push(Err(early_verdict(
                            &src.name,
                            None,
                            "no-address",
                            format!(
                                "{} → {}: not reachable: {} has no {family} address on a Docker network",
                                src.name, dst.name, dst.name
                            ),
                        )));
                    }
                    continue;
                };
                let target = Target {
                    ip,
                    container: Some(dst.name.clone()),
                    network,
                };
                if !src_has(v6) && (explicit || v6) {
                    // IPv6 is probed only when asked or when both ends have it.
                    if explicit {
                        targets.push(Err(early_verdict(
                            &src.name,
                            Some(target),
                            "no-address",
                            format!(
                                "{} → {}: not reachable: {} has no {family} address",
                                src.name, dst.name, src.name
                            ),
                        )));
                    }
                    continue;
                }
                if !up {
                    let iface = dst
                        .interfaces
                        .iter()
                        .find(|i| i.addrs.iter().any(|a| a.starts_with(&format!("{ip}/"))))
                        .map_or("its interface".to_owned(), |i| {
                            format!("interface {}", i.name)
                        });
                    targets.push(Err(early_verdict(
                        &src.name,
                        Some(target),
                        "interface-down",
                        format!(
                            "{} → {}: not reachable: {} of {} ({ip}) is down",
                            src.name, dst.name, iface, dst.name
                        ),
                    )));
                    continue;
                }
                targets.push(Ok(target));
            }
            if targets.is_empty() {
                return early(
                    &src.name,
                    None,
                    "no-address",
                    format!(
                        "{} → {}: not reachable: {} has no IP address on a Docker network",
                        src.name, dst.name, dst.name
                    ),
                    args.json,
                );
            }
        }
    }
    let mut reachable = true;
    for (i, target) in targets.into_iter().enumerate() {
        let v = match target {
            Ok(target) => probe(&args, &client, &topo, &src, facts.clone(), target).await?,
            Err(v) => v,
        };
        if i > 0 && !args.json {
            // One paragraph per family.
            println!();
        }
        reachable &= report(&v, args.json)?;
    }
    Ok(reachable)
}

/// Whether sending failed because the source has no route to the destination.
fn no_route(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| {
            matches!(
                io.raw_os_error(),
                Some(libc::ENETUNREACH | libc::EHOSTUNREACH)
            )
        })
}

/// Whether `ip` is an IPv6 link-local address (`fe80::/10`).
fn is_link_local(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local())
}

/// Sends echo requests from `src` to `target`, observes them and gives the verdict.
async fn probe(
    args: &DiagnoseArgs,
    client: &DockerClient,
    topo: &Topology,
    src: &crate::docker::topology::ContainerView,
    mut facts: Facts,
    target: Target,
) -> anyhow::Result<Verdict> {
    facts.dst = Some(target.clone());
    facts.src_ip = src
        .interfaces
        .iter()
        .flat_map(|i| i.addrs.iter())
        .filter_map(|a| a.split('/').next()?.parse::<IpAddr>().ok())
        .find(|ip| ip.is_ipv4() == target.ip.is_ipv4());
    for o in &topo.observed {
        let name = match (o.role, &o.container) {
            (Role::ContainerVeth, Some(c)) => format!("veth of {c}"),
            (Role::ManualVeth, Some(c)) => format!("{} (hand-made veth to {c})", o.name),
            (Role::Bridge, _) => match &o.network {
                Some(n) => format!("{} ({n})", o.name),
                None => o.name.clone(),
            },
            _ => o.name.clone(),
        };
        facts.hop_names.push((o.ifindex, name));
        if let Some(b) = &o.bridge {
            if o.role != Role::Bridge {
                let bname = match &o.network {
                    Some(n) => format!("{b} ({n})"),
                    None => b.clone(),
                };
                facts.hop_bridges.push((o.ifindex, bname));
            }
        }
    }

    let id = (std::process::id() as u16) ^ 0x4e4c;
    let pinger = Pinger::open_in(src.pid, target.ip, id)
        .with_context(|| format!("opening an ICMP socket in {}'s namespace", src.name))?;
    let observed = match crate::api::client::Client::connect().await {
        Some(c) => observe_via_daemon(c, pinger, args.count).await,
        None => {
            let engine = client.engine_facts().await;
            observe_embedded(topo, pinger, args.count, engine.clone(), !args.no_nftrace).await
        }
    };
    let observed = match observed {
        Err(e) if no_route(&e) => {
            let networks = facts.src_networks.join(", ");
            return Ok(early_verdict(
                &src.name,
                Some(target.clone()),
                "no-route",
                format!(
                    "{} → {}: not reachable: {} has no route to {} (its networks: {networks}; an internal network has no gateway)",
                    src.name,
                    target.container.as_deref().unwrap_or("it"),
                    src.name,
                    target.ip
                ),
            ));
        }
        other => other?,
    };
    let (replies, cap) = observed;
    facts.replies = replies;
    let ours = |src_ip: IpAddr, dst_ip: IpAddr, jid: u16| {
        jid == id && (dst_ip == target.ip || src_ip == target.ip)
    };
    for f in cap.finished {
        match f {
            Finished::Journey(j) if ours(j.src.ip, j.dst.ip, j.id) => facts.journeys.push(j),
            Finished::ArpUnanswered(a) if IpAddr::V4(a.asked_for) == target.ip => {
                facts.arp_unanswered = Some(a.network.clone());
            }
            _ => {}
        }
    }
    facts.journeys.sort_by_key(|j| j.seq);
    facts.drops = cap
        .drops
        .into_iter()
        .filter(|d| {
            d.icmp.as_ref().and_then(|i| i.id) == Some(id)
                && (d.dst.ip == Some(target.ip) || d.src.ip == Some(target.ip))
        })
        .collect();
    Ok(verdict(&facts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::{DropInfo, DropPlace, Endpoint, IcmpView};
    use crate::model::journey::JourneyEnd;
    use crate::model::kind::Direction;

    fn hop(iface: &str, ifindex: u32, direction: Direction, ts_ns: u64, phase: Phase) -> Hop {
        Hop {
            iface: iface.into(),
            ifindex,
            direction,
            ts_ns,
            phase,
        }
    }

    fn journey(result: Outcome, hops: Vec<Hop>) -> Journey {
        Journey {
            kind: "journey",
            ts_ns: 0,
            family: crate::model::journey::Family::Icmp,
            src: JourneyEnd {
                ip: "172.18.0.2".parse().expect("ip"),
                container: Some("AppDev".into()),
            },
            dst: JourneyEnd {
                ip: "172.18.0.3".parse().expect("ip"),
                container: Some("AppWeb".into()),
            },
            id: 7,
            seq: 1,
            result,
            rtt_ns: None,
            last_seen: hops.last().cloned(),
            hops,
            drop: None,
        }
    }

    fn base() -> Facts {
        Facts {
            src: "AppDev".into(),
            src_ip: Some("172.18.0.2".parse().expect("ip")),
            src_networks: vec!["devops".into()],
            dst: Some(Target {
                ip: "172.18.0.3".parse().expect("ip"),
                container: Some("AppWeb".into()),
                network: Some("devops".into()),
            }),
            dst_networks: vec!["devops".into()],
            sent: 3,
            hop_names: vec![(10, "veth of AppDev".into()), (11, "veth of AppWeb".into())],
            hop_bridges: vec![(10, "br-x (devops)".into()), (11, "br-x (devops)".into())],
            ..Default::default()
        }
    }

    #[test]
    fn reachable_with_path_and_rtt() {
        let mut f = base();
        f.replies = vec![
            Reply {
                seq: 1,
                rtt: Duration::from_micros(100),
            },
            Reply {
                seq: 2,
                rtt: Duration::from_micros(300),
            },
            Reply {
                seq: 3,
                rtt: Duration::from_micros(200),
            },
        ];
        f.journeys = vec![journey(
            Outcome::Answered,
            vec![
                hop("veth1", 10, Direction::Ingress, 1, Phase::Request),
                hop("veth2", 11, Direction::Egress, 2, Phase::Request),
                hop("veth2", 11, Direction::Ingress, 3, Phase::Reply),
                hop("veth1", 10, Direction::Egress, 4, Phase::Reply),
            ],
        )];
        let v = verdict(&f);
        assert!(v.reachable);
        assert_eq!(v.verdict, "reachable");
        assert_eq!(v.answered, 3);
        assert_eq!(
            v.path,
            ["veth of AppDev", "br-x (devops)", "veth of AppWeb"]
        );
        let rtt = v.rtt_ms.expect("rtt");
        assert!((rtt.min - 0.1).abs() < 1e-9 && (rtt.max - 0.3).abs() < 1e-9);
        assert!((rtt.avg - 0.2).abs() < 1e-9);
        assert!(
            v.message.contains("reachable, 3/3 answered"),
            "{}",
            v.message
        );
        assert!(v.details[0].contains("veth of AppDev → br-x (devops) → veth of AppWeb"));
    }

    fn isolation_drop() -> DropRecord {
        DropRecord {
            ts: crate::kernel::clock::UnixNanos(0),
            kind: "drop",
            packet: crate::model::kind::Kind::IcmpEchoRequest,
            len: 98,
            iface: DropPlace {
                name: Some("br-devops".into()),
                ifindex: 3,
                netns: "host".into(),
            },
            src: Endpoint {
                mac: crate::model::decode::Mac::default(),
                ip: Some("172.18.0.2".parse().expect("ip")),
                container: Some("AppDev"),
                network: Some("devops"),
                host: false,
            },
            dst: Endpoint {
                mac: crate::model::decode::Mac::default(),
                ip: Some("172.19.0.2".parse().expect("ip")),
                container: Some("AppProd"),
                network: Some("prod"),
                host: false,
            },
            icmp: Some(IcmpView {
                icmp_type: 8,
                code: 0,
                id: Some(7),
                seq: Some(1),
            }),
            arp: None,
            drop: DropInfo {
                reason: "NETFILTER_DROP".into(),
                location: Some("nft_do_chain+0x3e8".into()),
                hook: Some("forward".into()),
                rule: Some("DOCKER-ISOLATION-STAGE-2 -o br-prod -j DROP".into()),
                candidates: Vec::new(),
                unattributed: None,
            },
        }
    }

    #[test]
    fn dropped_by_docker_isolation_with_the_connect_hint() {
        let mut f = base();
        f.dst = Some(Target {
            ip: "172.19.0.2".parse().expect("ip"),
            container: Some("AppProd".into()),
            network: Some("prod".into()),
        });
        f.dst_networks = vec!["prod".into()];
        f.drops = vec![isolation_drop()];
        let v = verdict(&f);
        assert!(!v.reachable);
        assert_eq!(v.verdict, "dropped");
        assert!(v.share_no_network);
        // A rule netlab cannot explain: the plain suggestion.
        assert_eq!(
            v.hint.as_deref(),
            Some("docker network connect devops AppProd")
        );
        let text = format!("{}\n{}", v.message, v.details.join("\n"));
        assert!(text.contains("NETFILTER_DROP"), "{text}");
        assert!(
            text.contains("DOCKER-ISOLATION-STAGE-2 -o br-prod -j DROP"),
            "{text}"
        );
        assert!(text.contains("they share no network"), "{text}");
        assert!(
            text.contains("docker network connect devops AppProd"),
            "{text}"
        );

        // Explained: its meaning is said, and its own remedy (one that works on the
        // engine running) replaces the plain suggestion.
        let mut explained = isolation_drop();
        if let Some(r) = explained.drop.rule.as_mut() {
            r.docker = Some(crate::explain::firewall::DockerMeaning {
                meaning: "isolation".into(),
                summary: "Docker's network isolation drops packets from devops to prod".into(),
                remedies: vec!["docker network connect prod AppDev".into()],
                caveats: vec!["not the raw table".into()],
            });
        }
        f.drops = vec![explained];
        let v = verdict(&f);
        let text = format!("{}\n{}", v.message, v.details.join("\n"));
        assert!(
            text.contains(
                "what it is: Docker's network isolation drops packets from devops to prod"
            ),
            "{text}"
        );
        assert!(text.contains("note: not the raw table"), "{text}");
        assert!(
            text.contains("to let it through: docker network connect prod AppDev"),
            "{text}"
        );
        assert!(!text.contains("to connect them"), "{text}");
        assert_eq!(
            v.hint.as_deref(),
            Some("docker network connect prod AppDev")
        );
        assert_eq!(v.dropped_at.as_deref(), Some("br-devops (host)"));
    }

    #[test]
    fn no_arp_reply() {
        let mut f = base();
        f.dst = Some(Target {
            ip: "172.18.0.99".parse().expect("ip"),
            container: None,
            network: None,
        });
        f.dst_networks.clear();
        f.arp_unanswered = Some(Some("devops".into()));
        let v = verdict(&f);
        assert_eq!(v.verdict, "no-arp-reply");
        assert!(
            v.message.contains("no ARP reply for 172.18.0.99 on devops"),
            "{}",
            v.message
        );
        assert!(!v.share_no_network);
    }

    #[test]
    fn a_neighbour_failure_is_no_arp_reply() {
        let mut f = base();
        f.dst = Some(Target {
            ip: "172.18.0.99".parse().expect("ip"),
            container: None,
            network: Some("devops".into()),
        });
        let mut d = isolation_drop();
        d.drop.reason = "NEIGH_FAILED".into();
        d.drop.rule = None;
        f.drops = vec![d];
        let v = verdict(&f);
        assert_eq!(v.verdict, "no-arp-reply");
        assert!(
            v.message.contains("no ARP reply for 172.18.0.99 on devops"),
            "{}",
            v.message
        );
    }

    #[test]
    fn unanswered_says_where_it_was_last_seen() {
        let mut f = base();
        f.journeys = vec![journey(
            Outcome::Unanswered,
            vec![hop("veth1", 10, Direction::Ingress, 1, Phase::Request)],
        )];
        let v = verdict(&f);
        assert_eq!(v.verdict, "unanswered");
        assert!(
            v.details.iter().any(|d| d == "last seen at veth of AppDev"),
            "{:?}",
            v.details
        );
    }

    #[test]
    fn daemon_json_round_trips() {
        let mut j = journey(
            Outcome::Dropped,
            vec![
                hop("veth1", 10, Direction::Ingress, 1, Phase::Request),
                hop("br-x", 3, Direction::Ingress, 2, Phase::Request),
            ],
        );
        j.drop = Some(crate::model::journey::JourneyDrop {
            reason: "NETFILTER_DROP".into(),
            location: Some("nft_do_chain+0x3e8".into()),
            iface: Some("br-x".into()),
            rule: Some("DOCKER-ISOLATION-STAGE-2 -o br-prod -j DROP".into()),
            hook: Some("forward".into()),
            phase: Phase::Request,
        });
        let clock = crate::kernel::clock::Clock::new();
        let mut out = Vec::new();
        crate::model::journey::write_json(&Finished::Journey(j.clone()), &clock, &mut out)
            .expect("json");
        let back: Finished = serde_json::from_slice(&out).expect("a journey");
        assert_eq!(back, Finished::Journey(j));
        let arp = Finished::ArpUnanswered(crate::model::journey::ArpUnanswered {
            kind: "arp-unanswered",
            ts_ns: 5,
            who: "172.20.0.2".parse().expect("ip"),
            who_container: Some("AppDev".into()),
            asked_for: "172.20.0.9".parse().expect("ip"),
            network: Some("devops".into()),
            iface: "br-x".into(),
            requests: 3,
        });
        let mut out = Vec::new();
        crate::model::journey::write_json(&arp, &clock, &mut out).expect("json");
        assert_eq!(
            serde_json::from_slice::<Finished>(&out).expect("an ARP report"),
            arp
        );

        let d = isolation_drop();
        let mut out = Vec::new();
        d.write_json(&mut out).expect("json");
        let back: DropRecord = serde_json::from_slice(&out).expect("a drop");
        assert_eq!(back.drop.rule, d.drop.rule);
        assert_eq!(back.drop.hook, d.drop.hook);
        assert_eq!(back.iface.name, d.iface.name);
        assert_eq!(back.src.container, Some("AppDev"));
        assert_eq!(back.icmp.and_then(|i| i.id), Some(7));
        assert_eq!(back.packet, crate::model::kind::Kind::IcmpEchoRequest);
        assert!(serde_json::from_str::<DropRecord>(r#"{"kind":"drop"}"#).is_err());
        // Another kind is not read as a drop, nor a drop as a journey.
        let mut other = out.clone();
        let at = other
            .windows(13)
            .position(|w| w == br#""kind":"drop""#)
            .expect("the tag");
        other.splice(at..at + 13, br#""kind":"jump""#.iter().copied());
        assert!(serde_json::from_slice::<DropRecord>(&other).is_err());
        assert!(serde_json::from_slice::<Finished>(&out).is_err());
    }

    #[test]
    fn only_docker_networks_are_probed() {
        let (snap, links, scans) = crate::docker::topology::tests::course_lab();
        let topo = Topology::build(Some(&snap), &links, &[], &scans);
        let dev = topo.container_named("AppDev").expect("AppDev").clone();
        let prod = topo.container_named("AppProd").expect("AppProd").clone();
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(on_docker_networks(&topo, &dev, ip("172.20.0.99")));
        assert!(on_docker_networks(&topo, &dev, ip("172.21.0.2")));
        assert!(!on_docker_networks(&topo, &dev, ip("10.1.2.3")));
        assert!(!on_docker_networks(&topo, &dev, ip("8.8.8.8")));
        // The hand-made leg's subnet counts for the container that has it.
        assert!(on_docker_networks(&topo, &prod, ip("172.20.0.7")));
    }

    #[test]
    fn a_drop_explains_and_nothing_is_reachable_without_replies() {
        let mut f = base();
        f.drops = vec![isolation_drop()];
        assert_eq!(verdict(&f).verdict, "dropped");
        let empty = Facts::default();
        let v = verdict(&empty);
        assert!(!v.reachable);
        assert_eq!(v.verdict, "unanswered");
    }
}

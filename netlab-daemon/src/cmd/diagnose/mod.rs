//! `netlab diagnose SRC DST`: send echo requests from inside SRC's network namespace,
//! watch where they go, and say why DST is or is not reachable.
//!
//! The run picks one destination address per family ([`run`]), sends and observes
//! ([`observe`]: with programs of its own, or through a running daemon's event stream),
//! gathers [`Facts`] (replies on our socket, ping journeys, drop reports, unanswered ARP),
//! and [`verdict`] turns them into a verdict a person can act on. The verdict logic is pure
//! and tested on recorded facts.

mod observe;
mod verdict;

pub use verdict::{verdict, Facts, RttMs, Target, Verdict};

use std::net::IpAddr;

use anyhow::Context as _;

use crate::docker::discover::{self};
use crate::docker::topology::Topology;
use crate::docker::DockerClient;
use observe::probe;

mod overlay;
use verdict::early_verdict;

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
    /// ICMP data bytes per echo request, sent with IPv4's "don't fragment" set (IPv6 never
    /// fragments on the way): does a packet of this size fit the path? Default: 56.
    #[arg(long, value_parser = clap::value_parser!(u16).range(0..=65000))]
    pub size: Option<u16>,
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
    /// Another host's netlab daemon (`--listen ADDR:PORT --allow-remote` there): a drop
    /// of the probes it reports is part of the verdict, with the host's name NAME
    /// (default: HOST). Repeatable. For a destination on another Swarm node.
    #[arg(long = "peer", value_name = "[NAME=]HOST:PORT")]
    pub peers: Vec<crate::api::peer::PeerSpec>,
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
        .any(|s| s.contains(ip))
        || overlay_of(topo, src, ip).is_some();
    let on_link = src
        .interfaces
        .iter()
        .flat_map(|i| i.addrs.iter())
        .filter_map(|a| crate::docker::Subnet::parse(a))
        .any(|s| s.contains(ip));
    in_docker || on_link
}

/// The Swarm overlay network `src` is on whose subnet holds `ip` (a container of this or
/// another node on it).
pub fn overlay_of<'t>(
    topo: &'t Topology,
    src: &crate::docker::topology::ContainerView,
    ip: IpAddr,
) -> Option<&'t crate::docker::topology::OverlayView> {
    topo.overlays.iter().find(|o| {
        o.containers.iter().any(|c| c.name == src.name)
            && o.info.subnets.iter().any(|s| s.contains(ip))
    })
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
        cli: snapshot.engine.cli(),
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
                .map(|n| n.info.name.clone())
                .or_else(|| overlay_of(&topo, &src, ip).map(|o| o.info.name.clone()));
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
            Ok(target) => {
                let mut facts = facts.clone();
                facts.overlay = overlay::checks(&topo, &src, target.ip).await;
                probe(&args, &client, &topo, &src, facts, target).await?
            }
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

/// Whether `ip` is an IPv6 link-local address (`fe80::/10`).
fn is_link_local(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

//! Sending diagnose's echo requests from inside the source's namespace and watching them:
//! with programs of its own ([`Session`]) or, when a daemon runs, through its event stream.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::verdict::{early_verdict, verdict, Facts, Target, Verdict};
use super::DiagnoseArgs;
use crate::docker::topology::{ContainerView, Role, Topology};
use crate::docker::DockerClient;
use crate::kernel::pinger::{Pinger, Reply};
use crate::model::journey::Finished;
use crate::output::Collect;
use crate::session::{Options, Session, Source};

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

/// Adds one line of the daemon's event stream to `cap` when it is a journey, an unanswered
/// ARP request or a drop, read by its `kind`; other kinds (the stream's first line says it
/// is on) and lines it cannot read are left out. Returns whether the line was taken.
fn read_streamed(line: &[u8], cap: &mut Collect) -> bool {
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(borrow)]
        kind: &'a str,
    }
    let Ok(Kind { kind }) = serde_json::from_slice::<Kind<'_>>(line) else {
        return false;
    };
    let read = match kind {
        "journey" | "arp-unanswered" => serde_json::from_slice(line).map(|f| cap.finished.push(f)),
        "drop" => serde_json::from_slice(line).map(|d| cap.drops.push(d)),
        _ => return false,
    };
    read.inspect_err(|e| log::debug!("unreadable {kind} from the daemon: {e}"))
        .is_ok()
}

/// Observes through the running daemon's event stream: its journeys, drops and
/// unanswered ARP requests.
async fn observe_via_daemon(
    mut c: crate::api::client::Client,
    pinger: Pinger,
    count: u16,
) -> anyhow::Result<(Vec<Reply>, Collect)> {
    let collected = Arc::new(Mutex::new(Collect::default()));
    let into = Arc::clone(&collected);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        c.stream_lines(
            "/v1/events?kind=journey&kind=drop&kind=arp-unanswered",
            |line| {
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
                read_streamed(
                    line,
                    &mut into.lock().unwrap_or_else(PoisonError::into_inner),
                );
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
    let _ = reader.await;
    let cap = std::mem::take(&mut *collected.lock().unwrap_or_else(PoisonError::into_inner));
    Ok((replies, cap))
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

/// The verdict of a probe too big for the route's MTU: why, and the largest that fits.
fn mtu_verdict(
    src: &str,
    target: &Target,
    size: u16,
    mtu: u32,
    headers: u32,
    overlay: Option<&super::overlay::OverlayChecks>,
) -> super::verdict::Verdict {
    let dst = target
        .container
        .clone()
        .unwrap_or_else(|| target.ip.to_string());
    let mut v = early_verdict(
        src,
        Some(target.clone()),
        "mtu",
        format!(
            "{src} → {dst}: not reachable with {size} bytes of data and \"don't fragment\": {} bytes do not fit the MTU of {mtu} on {src}'s route to {}",
            u32::from(size) + headers,
            target.ip
        ),
    );
    v.details.push(format!(
        "the largest that fits: {} bytes of ICMP data ({mtu} less {headers} bytes of headers)",
        mtu.saturating_sub(headers)
    ));
    if let Some(o) = overlay {
        v.details.push(format!(
            "overlay {} carries at most {mtu} bytes per packet: VXLAN adds 50 bytes on the link between hosts (1500 there leaves 1450); larger packets must be split by the sender, or every host's link MTU raised and the overlay created with com.docker.network.driver.mtu",
            o.network
        ));
        v.details.extend(o.lines.iter().cloned());
        v.overlay = Some(o.clone());
    }
    v
}

/// Sends echo requests from `src` to `target`, observes them and gives the verdict.
pub(super) async fn probe(
    args: &DiagnoseArgs,
    client: &DockerClient,
    topo: &Topology,
    src: &ContainerView,
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
    let mut pinger = Pinger::open_in(src.pid, target.ip, id)
        .with_context(|| format!("opening an ICMP socket in {}'s namespace", src.name))?;
    if let Some(size) = args.size {
        pinger = pinger
            .with_size(usize::from(size))
            .context("setting \"don't fragment\" on the ICMP socket")?;
        // A request that cannot leave the container: the route's MTU says why at once.
        let v6 = target.ip.is_ipv6();
        let headers: u32 = if v6 { 48 } else { 28 };
        if let Ok(mtu) = pinger.path_mtu() {
            if u32::from(size) + headers > mtu {
                return Ok(mtu_verdict(
                    &src.name,
                    &target,
                    size,
                    mtu,
                    headers,
                    facts.overlay.as_ref(),
                ));
            }
        }
    }
    // Subscribed to the peers' drops before the first probe leaves; across an overlay,
    // their VXLAN counters read before and after.
    let peer_drops = crate::api::peer::PeerDrops::start(&args.peers).await;
    let vni = facts.overlay.as_ref().and_then(|o| o.vni);
    let vxlan_in = |vni: Option<u32>| async move {
        let mut counts = Vec::new();
        if let Some(vni) = vni {
            for p in &args.peers {
                let n = crate::api::peer::vxlan_requests_in(p, vni)
                    .await
                    .inspect_err(|e| log::debug!("peer {}: counters: {e:#}", p.name))
                    .ok();
                counts.push((p.name.clone(), n));
            }
        }
        counts
    };
    let vxlan_before = vxlan_in(vni).await;
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
    if !args.peers.is_empty() {
        // The peers' last drops, after their attribution and the way here.
        tokio::time::sleep(crate::api::peer::PEER_LAG).await;
    }
    let probe = |d: &crate::model::event::DropRecord| {
        d.icmp.as_ref().and_then(|i| i.id) == Some(id)
            && (d.dst.ip == Some(target.ip) || d.src.ip == Some(target.ip))
    };
    let vxlan_after = vxlan_in(vni).await;
    facts.peer_vxlan = vxlan_before
        .into_iter()
        .zip(vxlan_after)
        .map(|((host, before), (_, after))| {
            let delta = match (before, after) {
                (Some(b), Some(a)) => Some(a.saturating_sub(b)),
                _ => None,
            };
            (host, delta)
        })
        .collect();
    facts.peer_drops = peer_drops
        .take()
        .into_iter()
        .filter(|(_, d)| probe(d))
        .collect();
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
    facts.drops = cap.drops.into_iter().filter(|d| probe(d)).collect();
    Ok(verdict(&facts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_stream_is_read_by_kind() {
        let arp = super::super::verdict::tests::unanswered_arp();
        let mut line = Vec::new();
        crate::model::journey::write_json(&arp, &crate::kernel::clock::Clock::new(), &mut line)
            .expect("json");
        let mut cap = Collect::default();
        assert!(read_streamed(&line, &mut cap));
        assert_eq!(cap.finished, vec![arp]);
        // The stream's greeting, other kinds, a drop missing its fields, and noise.
        for other in [
            &br#"{"kind":"subscribed"}"#[..],
            br#"{"kind":"packet"}"#,
            br#"{"kind":"drop"}"#,
            b"not json",
        ] {
            assert!(!read_streamed(other, &mut cap));
        }
        assert_eq!((cap.finished.len(), cap.drops.len()), (1, 0));
    }
}

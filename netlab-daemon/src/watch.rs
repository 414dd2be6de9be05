//! `netlab watch`: attach, stream sampled packets, print exact counters on exit.
//!
//! With `--iface`, exactly those interfaces are observed. Without it, netlab observes
//! everything Docker has (every bridge network's bridge and every veth on it) and follows
//! changes from Docker events and kernel link events while it runs.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use netlab_common::Config;
use tokio::io::{unix::AsyncFd, Interest};
use tokio::signal::unix::{signal, SignalKind};

use crate::attach::{self, AttachMode};
use crate::btf::Kallsyms;
use crate::clock::Clock;
use crate::discover::Observer;
use crate::filter::Filter;
use crate::follow::{scan, Change, DockerFeed, Follower};
use crate::journey::Correlator;
use crate::loader::Datapath;
use crate::pipeline::{DropContext, Pipeline};
use crate::summary::Summary;
use crate::topo_events::Tracker;
use crate::topology::Topology;

/// Options of `netlab watch`.
#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// Interface to observe, both directions (repeatable). Without it: everything Docker
    /// has, followed as it changes.
    #[arg(long = "iface", value_name = "IFACE")]
    pub ifaces: Vec<String>,
    /// Only events from, to or on this container (repeatable; case-insensitive).
    #[arg(long = "container", value_name = "NAME")]
    pub containers: Vec<String>,
    /// Only events from, to or on this network (repeatable; case-insensitive).
    #[arg(long = "network", value_name = "NAME")]
    pub networks: Vec<String>,
    /// Only these kinds: arp, icmp, icmp6, ndp, malformed, drop, journey, arp-unanswered,
    /// topology (interfaces, containers, networks coming and going) or an exact kind
    /// (repeatable).
    #[arg(long = "kind", value_name = "KIND")]
    pub kinds: Vec<String>,
    /// One JSON object per line instead of human-readable lines.
    #[arg(long)]
    pub json: bool,
    /// Stop after printing N events.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<Duration>,
    /// Emit one event for every N packets (counters stay exact).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub sample: u32,
    /// At most N events per second reach user space (0: no limit); the rest are counted.
    #[arg(long = "rate-limit", value_name = "N", default_value_t = 200_000)]
    pub rate_limit: u32,
    /// How to hook the programs to each interface.
    #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
    pub attach: AttachMode,
    /// Do not report packets the kernel drops (skb:kfree_skb).
    #[arg(long)]
    pub no_drops: bool,
    /// Attribute each netfilter drop to its rule through the kernel's nftables tracing
    /// (adds a table `inet netlab-trace-<pid>` that marks ICMP for tracing, removed on exit;
    /// never changes a packet's fate). Without it, rules are found by their counters.
    #[arg(long)]
    pub nftrace: bool,
    /// Do not pair echo requests with replies into journeys.
    #[arg(long)]
    pub no_journeys: bool,
    /// An echo request without reply after SECS seconds is reported unanswered.
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs)]
    pub journey_timeout: Duration,
}

/// Options of `netlab capture`: those of `watch`, and the file.
#[derive(Debug, Clone, clap::Args)]
pub struct CaptureArgs {
    /// Write the sampled frames (first 128 bytes) here, as pcapng.
    #[arg(short = 'w', long = "write", value_name = "FILE.pcapng")]
    pub file: std::path::PathBuf,
    #[command(flatten)]
    pub watch: WatchArgs,
}

/// Runs `netlab capture`: like `watch`, with frames going to a pcapng file.
pub async fn capture(args: CaptureArgs) -> anyhow::Result<()> {
    run_inner(args.watch, Some(args.file)).await
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(v.is_finite() && v > 0.0 && v < 1e9) {
        return Err(format!("'{s}' must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// The per-CPU share of a host-wide event rate (rounded up, 0 stays "unlimited").
fn per_cpu_rate(rate: u32) -> u32 {
    let cpus = aya::util::nr_cpus().unwrap_or(1).max(1) as u32;
    rate.div_ceil(cpus)
}

/// Reads every record available now. Returns `false` once no more output is wanted.
fn drain(ring: &mut RingBuf<MapData>, p: &mut Pipeline) -> anyhow::Result<bool> {
    while let Some(item) = ring.next() {
        p.record(&item)?;
        drop(item);
        if p.full() {
            break;
        }
    }
    Ok(p.flush()? && !p.full())
}

/// Whether these options can be served by a running daemon (which observes everything
/// Docker has with its own settings).
fn daemon_can_serve(a: &WatchArgs) -> bool {
    a.ifaces.is_empty()
        && a.sample == 1
        && a.attach == AttachMode::Auto
        && !a.no_drops
        && !a.no_journeys
        && a.journey_timeout == Duration::from_secs(2)
}

/// `netlab watch` through a running daemon: the same lines, the same summary (counted
/// from the daemon's counters at start and end).
async fn run_via_daemon(args: &WatchArgs, mut c: crate::client::Client) -> anyhow::Result<()> {
    use crate::client::encode;
    use std::io::Write as _;
    Filter::new(&args.containers, &args.networks, &args.kinds)?;
    let topo = c.get_json("/v1/topology").await?;
    let names = |key: &str, field: &str| -> Vec<String> {
        topo[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x[field].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    if topo["docker"].as_bool() == Some(true) {
        let (cs, ns) = (names("containers", "name"), names("networks", "name"));
        for want in &args.containers {
            if !cs.iter().any(|c| c.eq_ignore_ascii_case(want)) {
                anyhow::bail!("no running container named {want}");
            }
        }
        for want in &args.networks {
            if !ns.iter().any(|n| n.eq_ignore_ascii_case(want)) {
                anyhow::bail!("no Docker network named {want}");
            }
        }
    }
    let before = c.get_json("/v1/counters").await?;
    let health = c.get_json("/v1/health").await?;
    log::info!(
        "watching {} interfaces (through the netlab daemon at {})",
        health["attached_interfaces"].as_u64().unwrap_or_default(),
        crate::client::socket_path().display()
    );
    let mut q: Vec<String> = Vec::new();
    for (k, vs) in [
        ("container", &args.containers),
        ("network", &args.networks),
        ("kind", &args.kinds),
    ] {
        for v in vs {
            q.push(format!("{k}={}", encode(v)));
        }
    }
    if !args.json {
        q.push("format=text".into());
    }
    let path = format!("/v1/events?{}", q.join("&"));
    let mut sigint = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let deadline = tokio::time::sleep(args.duration.unwrap_or(Duration::MAX / 4));
    tokio::pin!(deadline);
    let mut printed = 0u64;
    let limit = args.count;
    {
        let stream = c.stream_lines(&path, |line| {
            let notice = line.starts_with(b"{\"kind\":\"subscribed\"}")
                || line.starts_with(b"{\"kind\":\"lost\"");
            if notice {
                if line.starts_with(b"{\"kind\":\"lost\"") {
                    log::warn!("{}", String::from_utf8_lossy(line).trim());
                }
                return Ok(true);
            }
            if line.starts_with(b"netlab: ") {
                log::warn!("{}", String::from_utf8_lossy(line).trim());
                return Ok(true);
            }
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(line).and_then(|()| out.flush()) {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(false);
                }
                return Err(e.into());
            }
            printed += 1;
            Ok(limit.is_none_or(|l| printed < l))
        });
        tokio::select! {
            r = stream => r?,
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
            () = &mut deadline, if args.duration.is_some() => {}
        }
    }
    let mut c2 = crate::client::Client::connect()
        .await
        .context("the daemon went away")?;
    let after = c2.get_json("/v1/counters").await?;
    let summary = Summary::from_daemon_diff(&before, &after, printed);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &summary)?;
        writeln!(out)?;
    } else {
        out.write_all(summary.human().as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

/// Starts the programs that count a new bridge port's packets until its own are attached;
/// without them (an old kernel, no bridge module), says what that means, once.
pub(crate) fn enable_cover(dp: &mut Datapath) {
    if let Err(e) = dp.enable_cover() {
        log::info!(
            "{:#}: a new veth's packets are counted from when its programs are attached (tens of milliseconds after it joins its bridge)",
            anyhow::Error::from(e)
        );
    }
}

/// Acts on one change of links or of Docker.
fn on_change(
    change: Change,
    obs: &mut Observer,
    p: &mut Pipeline,
    ring: &mut RingBuf<MapData>,
    topo_events: &mut Tracker,
) -> anyhow::Result<()> {
    match change {
        Change::LinkGone { ifindex } => {
            // Events already queued for it are shown first, with its labels.
            drain(ring, p)?;
            topo_events.gone(obs.forget(ifindex).into_iter().collect(), &p.topo);
        }
        Change::Link(link) => {
            if !obs.note_new_port(&link, &p.topo) {
                obs.verify(Some(link.ifindex));
            }
            p.hold();
        }
        Change::Overrun => p.hold(),
        Change::Engine { connected } => topo_events.engine(connected, None),
        Change::Docker(h) => topo_events.docker(h),
        Change::Rescanned { topo: t, started } => {
            drain(ring, p)?;
            let done = obs.reconcile(&t);
            topo_events.gone(done.forgotten, &p.topo);
            topo_events.unobserved(done.failed, &t);
            topo_events.rescanned(&t, |i| obs.observes(i));
            p.set_scanned_topology(Arc::new(t), started)?;
        }
    }
    p.topology(topo_events.take())
}

/// Runs `netlab watch` until a signal, `--duration` or `--count`.
pub async fn run(args: WatchArgs) -> anyhow::Result<()> {
    run_inner(args, None).await
}

async fn run_inner(args: WatchArgs, pcap_file: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    if pcap_file.is_none() && daemon_can_serve(&args) {
        if let Some(c) = crate::client::Client::connect().await {
            return run_via_daemon(&args, c).await;
        }
    }
    crate::privilege::require()?;
    let filter = Filter::new(&args.containers, &args.networks, &args.kinds)?;
    let following = args.ifaces.is_empty();

    // What to observe, decided before anything touches the kernel.
    let mut feed = None;
    let mut topo = if following {
        let f = DockerFeed::connect().await;
        let t = scan(f.snapshot.clone()).await?;
        if t.docker {
            for c in &args.containers {
                if t.container_named(c).is_none() {
                    anyhow::bail!("no running container named {c}");
                }
            }
            for n in &args.networks {
                if t.network_named(n).is_none() {
                    anyhow::bail!("no Docker network named {n}");
                }
            }
        }
        feed = Some(f);
        t
    } else {
        let mut named: Vec<(u32, String)> = Vec::new();
        for i in &args.ifaces {
            let idx = attach::ifindex(i).with_context(|| format!("no such interface: {i}"))?;
            if !named.iter().any(|(x, _)| *x == idx) {
                named.push((idx, i.clone()));
            }
        }
        Topology::explicit(&named)
    };

    let mut dp = Datapath::load(Config {
        sample_every: args.sample,
        rate_per_cpu: per_cpu_rate(args.rate_limit),
    })?;
    let drops = if args.no_drops {
        None
    } else {
        let kallsyms = Kallsyms::load()
            .inspect_err(|e| log::debug!("no kernel symbols: {e}"))
            .ok();
        let quiet = kallsyms.as_ref().map_or([0; 4], Kallsyms::echo_reply_frees);
        match dp.enable_drops(quiet) {
            Ok(reasons) => Some(
                DropContext::new(
                    reasons,
                    kallsyms,
                    !following,
                    feed.as_ref().and_then(|f| f.engine.as_ref()),
                    args.nftrace,
                )
                .await,
            ),
            Err(e) => {
                log::warn!("{e:#}; drops are not reported");
                None
            }
        }
    };
    if following {
        enable_cover(&mut dp);
    }
    let mut sigint = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    // The observer owns every attachment: an error below drops it, which detaches all.
    let mut obs = Observer::new(dp, args.attach);
    let mut unobserved_at_start = Vec::new();
    if following {
        unobserved_at_start = obs.reconcile(&topo).failed;
        if obs.attached() == 0 && !topo.observed.is_empty() {
            anyhow::bail!(
                "could not attach to any of the {} interfaces to observe (see the warnings above)",
                topo.observed.len()
            );
        }
    } else {
        let named: Vec<(u32, String)> = topo
            .observed
            .iter()
            .map(|o| (o.ifindex, o.name.clone()))
            .collect();
        obs.attach_all(&named)?;
    }
    let docker_answers = feed.as_ref().is_some_and(DockerFeed::connected);
    let mut follow = match feed {
        Some(f) => Some(Follower::new(f).context("subscribing to link changes")?),
        None => None,
    };
    log::info!(
        "watching {} interfaces ({}){}",
        obs.attached(),
        obs.mode_in_use().map_or("-", AttachMode::name),
        match (following, docker_answers) {
            (true, true) => ", following Docker and link changes",
            (true, false) => ", following link changes",
            (false, _) => "",
        }
    );
    let ring = obs.datapath_mut().take_events()?;
    // SAFETY: the RingBuf owns its map fd, which stays open and unchanged for as long as
    // the AsyncFd (which owns the RingBuf) lives.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
        .context("polling the event ring buffer")?;
    let journeys = (!args.no_journeys).then(|| {
        Correlator::new(
            args.journey_timeout.as_nanos() as u64,
            200_000_000,
            1_000_000_000,
            65_536,
        )
    });
    let mut topo_events = Tracker::new(&topo);
    topo_events.unobserved(unobserved_at_start, &topo);
    let mut p = Pipeline::new(
        Arc::new(std::mem::take(&mut topo)),
        filter,
        args.json,
        args.count,
        drops,
        journeys,
    );
    if let Some(f) = &pcap_file {
        p.pcap = Some(crate::pipeline::PcapSink::create(f)?);
    }
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let attribute = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(attribute);
    let mut attributing = false;
    let deadline = tokio::time::sleep(args.duration.unwrap_or(Duration::MAX / 4));
    tokio::pin!(deadline);
    let mut ticks: u64 = 0;
    let mut attaching: Option<tokio::task::JoinHandle<crate::discover::AttachDone>> = None;
    let mut more = true;
    while more {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            () = &mut deadline, if args.duration.is_some() => break,
            guard = ring.readable_mut() => {
                let mut guard = guard.context("waiting for events")?;
                more = drain(guard.get_inner_mut(), &mut p)?;
                guard.clear_ready();
                if p.has_pending_drops() && !attributing {
                    // Let the firewall counters settle, then read them once for the batch.
                    attributing = true;
                    attribute.as_mut().reset(tokio::time::Instant::now() + Duration::from_millis(150));
                }
            }
            () = &mut attribute, if attributing => {
                attributing = false;
                p.attribute_pending().await?;
                more = p.flush()? && !p.full();
            }
            _ = ticker.tick() => {
                ticks += 1;
                if ticks.is_multiple_of(crate::daemon::VERIFY_EVERY_TICKS) {
                    obs.verify(None);
                }
                obs.expire_cover();
                p.release_if_due()?;
                if p.holding() {
                    // A veth's owner is still unknown: ask Docker again.
                    if let Some(f) = follow.as_mut() {
                        f.rescan_soon();
                    }
                }
                p.poll_journeys(Clock::monotonic_now())?;
                topo_events.poll();
                p.topology(topo_events.take())?;
                more = p.flush()? && !p.full();
            }
            change = async {
                match follow.as_mut() {
                    Some(f) => f.next().await,
                    None => std::future::pending().await,
                }
            }, if follow.is_some() => {
                let mut change = Some(change.context("following links and Docker")?);
                while let Some(c) = change.take() {
                    on_change(c, &mut obs, &mut p, ring.get_mut(), &mut topo_events)?;
                    change = match follow.as_mut() {
                        Some(f) => f.try_link().context("reading link changes")?,
                        None => None,
                    };
                }
            }
            () = std::future::ready(()), if obs.has_pending() => {
                // Every new port already announced is covered before this one is attached.
                if let Some(f) = follow.as_mut() {
                    while let Some(c) = f.try_link().context("reading link changes")? {
                        on_change(c, &mut obs, &mut p, ring.get_mut(), &mut topo_events)?;
                    }
                }
                if let Some(job) = obs.next_attach_job() {
                    attaching = Some(tokio::task::spawn_blocking(move || job.run()));
                }
            }
            done = async {
                match attaching.as_mut() {
                    Some(t) => t.await,
                    None => std::future::pending().await,
                }
            }, if attaching.is_some() => {
                attaching = None;
                obs.finish_attach(done.context("attaching a new port")?);
            }
        }
    }
    // Detach first, so the counters below are final; then show what was already queued.
    obs.detach_all();
    if more {
        topo_events.finish();
        p.topology(topo_events.take())?;
        drain(ring.get_mut(), &mut p)?;
        p.release()?;
        p.attribute_pending().await?;
        p.flush_journeys()?;
    }
    let rows = obs.counter_rows()?;
    let delivery = obs.datapath().delivery()?;
    let drop_rows: Vec<(String, u64)> = match &p.drops {
        Some(ctx) => obs
            .datapath()
            .drop_counts()?
            .into_iter()
            .map(|(r, n)| (ctx.reasons.name(r), n))
            .collect(),
        None => Vec::new(),
    };
    let pairs: Vec<_> = p
        .journeys
        .as_ref()
        .map(|c| c.stats())
        .unwrap_or_default()
        .into_iter()
        .filter(|s| p.filter.matches_pair(&s.src, &s.dst))
        .collect();
    if let Some(pcap) = p.pcap.as_mut() {
        pcap.finish()?;
        if let Some(f) = &pcap_file {
            log::info!("wrote {} frames to {}", pcap.written, f.display());
        }
    }
    let summary = Summary::new(rows, delivery, p.printed)
        .with_drops(drop_rows)
        .with_not_drops(&p.tallies.not_drops)
        .with_pairs(pairs);
    if args.json {
        let mut line = serde_json::to_vec(&summary)?;
        line.push(b'\n');
        p.push_raw(&line);
    } else {
        p.push_raw(summary.human().as_bytes());
    }
    p.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_secs("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_secs("0").is_err());
        assert!(parse_secs("-3").is_err());
        assert!(parse_secs("soon").is_err());
        assert!(parse_secs("inf").is_err());
    }

    #[test]
    fn rate_split() {
        assert_eq!(per_cpu_rate(0), 0);
        assert!(per_cpu_rate(1) >= 1);
    }
}

//! `netlab watch`: attach, stream sampled packets, print exact counters on exit.
//!
//! With `--iface`, exactly those interfaces are observed. Without it, netlab observes
//! everything Docker has (every bridge network's bridge and every veth on it) and follows
//! changes from Docker events and kernel link events while it runs.

use std::time::Duration;

use anyhow::Context as _;
use netlab_common::Config;
use tokio::signal::unix::{signal, SignalKind};

use crate::docker::follow::{scan, DockerFeed};
use crate::kernel::attach::{self, AttachMode};
use crate::model::filter::Filter;
use crate::model::summary::{DaemonCounters, Summary};
use crate::model::tally::Tallies;
use crate::output::{plural, write_or_closed, Format, Lines, Pcap};
use crate::session::{per_cpu_rate, Drops, Options, Session, Source, JOURNEY_TIMEOUT};

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
    // The help and the error list the kinds from one place: `model::filter`.
    #[arg(long = "kind", value_name = "KIND", help = kind_help(), value_parser = parse_kind)]
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
    /// Another host's netlab daemon (started with `--listen ADDR:PORT --allow-remote`):
    /// its echo packets and drops join this host's journeys, its hops named NAME
    /// (default: HOST). Repeatable. Journeys then finish 1 s later.
    #[arg(
        long = "peer",
        value_name = "[NAME=]HOST:PORT",
        conflicts_with = "no_journeys"
    )]
    pub peers: Vec<crate::api::peer::PeerSpec>,
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

/// The capture file, made before the session starts; removed again when this run made it
/// and the session never took it (a container or network not found, an attach error).
struct NewFile {
    pcap: Option<Pcap<std::io::BufWriter<std::fs::File>>>,
    path: std::path::PathBuf,
    made: bool,
}

impl NewFile {
    fn create(path: &std::path::Path, filter: Filter, limit: Option<u64>) -> anyhow::Result<Self> {
        let made = std::fs::symlink_metadata(path).is_err();
        Ok(NewFile {
            pcap: Some(Pcap::create(path, filter, limit)?),
            path: path.to_owned(),
            made,
        })
    }

    /// The output, for the session to write to; the file stays.
    fn keep(mut self) -> Pcap<std::io::BufWriter<std::fs::File>> {
        self.pcap.take().expect("only keep() takes it, once")
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if self.pcap.is_some() && self.made {
            // Best effort: the error that got here is what the user is told.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `--kind`'s help: every group it accepts, as its error lists them.
fn kind_help() -> String {
    format!(
        "Only these kinds (repeatable): {}; topology: interfaces, containers and networks \
         coming and going",
        crate::model::filter::kinds_accepted()
    )
}

/// A `--kind` value, refused at once when it names no kind.
fn parse_kind(s: &str) -> Result<String, String> {
    match Filter::new(&[], &[], &[s.to_owned()]) {
        Ok(_) => Ok(s.to_owned()),
        Err(_) => Err(format!("use {}", crate::model::filter::kinds_accepted())),
    }
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

/// Whether these options can be served by a running daemon (which observes everything
/// Docker has with its own settings).
fn daemon_can_serve(a: &WatchArgs) -> bool {
    a.ifaces.is_empty()
        && a.sample == 1
        && a.attach == AttachMode::Auto
        && !a.no_drops
        && !a.no_journeys
        && a.journey_timeout == JOURNEY_TIMEOUT
        && a.peers.is_empty()
}

/// `netlab watch` through a running daemon: the same lines, the same summary (counted
/// from the daemon's counters at start and end).
async fn run_via_daemon(args: &WatchArgs, mut c: crate::api::client::Client) -> anyhow::Result<()> {
    use crate::api::client::encode;
    use crate::api::server::{STOPPED_JSON, STOPPED_TEXT};
    use std::io::Write as _;
    Filter::new(&args.containers, &args.networks, &args.kinds)?;
    /// What watch reads of `/v1/topology`: whether Docker answers, and the names.
    #[derive(serde::Deserialize)]
    struct Names {
        #[serde(default)]
        docker: bool,
        #[serde(default)]
        containers: Vec<Named>,
        #[serde(default)]
        networks: Vec<Named>,
    }
    #[derive(serde::Deserialize)]
    struct Named {
        name: String,
    }
    /// What watch reads of `/v1/health`.
    #[derive(serde::Deserialize)]
    struct Health {
        #[serde(default)]
        attached_interfaces: u64,
    }
    let topo: Names = c.get_json("/v1/topology").await?;
    if topo.docker {
        let has = |of: &[Named], want: &str| of.iter().any(|x| x.name.eq_ignore_ascii_case(want));
        for want in &args.containers {
            if !has(&topo.containers, want) {
                anyhow::bail!("no running container named {want}");
            }
        }
        for want in &args.networks {
            if !has(&topo.networks, want) {
                anyhow::bail!("no Docker network named {want}");
            }
        }
    }
    let before: DaemonCounters = c.get_json("/v1/counters").await?;
    let health: Health = c.get_json("/v1/health").await?;
    // Before saying it watches: a signal sent as soon as it says so must find the handlers.
    let mut sigint = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    log::info!(
        "watching {} (through the netlab daemon at {})",
        plural(health.attached_interfaces, "interface", "interfaces"),
        crate::api::client::socket_path().display()
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
    let deadline = tokio::time::sleep(args.duration.unwrap_or(Duration::MAX / 4));
    tokio::pin!(deadline);
    let mut printed = 0u64;
    let mut daemon_stopped = false;
    let limit = args.count;
    {
        let stream = c.stream_lines(&path, |line| {
            if line == STOPPED_TEXT.as_bytes() || line == STOPPED_JSON.as_bytes() {
                daemon_stopped = true;
                return Ok(false);
            }
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
    if daemon_stopped {
        // Its counters went with it: what this watch showed is all there is to say.
        log::info!(
            "the daemon stopped; {} shown",
            plural(printed, "event", "events")
        );
        return Ok(());
    }
    let mut c2 = crate::api::client::Client::connect()
        .await
        .context("the daemon went away")?;
    let after: DaemonCounters = c2.get_json("/v1/counters").await?;
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

/// Runs `netlab watch` until a signal, `--duration` or `--count`.
pub async fn run(args: WatchArgs) -> anyhow::Result<()> {
    run_inner(args, None).await
}

async fn run_inner(args: WatchArgs, pcap_file: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    if pcap_file.is_none() && daemon_can_serve(&args) {
        if let Some(c) = crate::api::client::Client::connect().await {
            return run_via_daemon(&args, c).await;
        }
    }
    crate::kernel::privilege::require()?;
    let filter = Filter::new(&args.containers, &args.networks, &args.kinds)?;
    // The capture file is made before anything touches the kernel: a path that cannot be
    // written fails at once, with nothing attached.
    let pcap = match &pcap_file {
        Some(f) => Some(NewFile::create(f, filter.clone(), args.count)?),
        None => None,
    };

    // What to observe, decided before anything touches the kernel.
    let source = if args.ifaces.is_empty() {
        let feed = DockerFeed::connect().await;
        let topo = scan(feed.snapshot.clone()).await?;
        if topo.docker {
            for c in &args.containers {
                if topo.container_named(c).is_none() {
                    anyhow::bail!("no running container named {c}");
                }
            }
            for n in &args.networks {
                if topo.network_named(n).is_none() {
                    anyhow::bail!("no Docker network named {n}");
                }
            }
        }
        Source::Docker {
            feed: Box::new(feed),
            topo,
        }
    } else {
        let mut named: Vec<(u32, String)> = Vec::new();
        for i in &args.ifaces {
            let idx = attach::ifindex(i).with_context(|| format!("no such interface: {i}"))?;
            if !named.iter().any(|(x, _)| *x == idx) {
                named.push((idx, i.clone()));
            }
        }
        Source::Ifaces(named)
    };
    let opts = Options {
        config: Config {
            sample_every: args.sample,
            rate_per_cpu: per_cpu_rate(args.rate_limit),
        },
        attach: args.attach,
        drops: if args.no_drops {
            Drops::Off
        } else {
            Drops::IfAvailable
        },
        nftrace: args.nftrace,
        journey_timeout: (!args.no_journeys).then_some(args.journey_timeout),
        kallsyms: None,
        pin_dir: None,
        engine: None,
        peers: args.peers.clone(),
    };
    let mut sigint = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    // The session owns every attachment: an error below drops it, which detaches all.
    let mut session = Session::start(source, opts)
        .await?
        .with_output(Tallies::default());
    session = match pcap {
        Some(p) => session.with_output(p.keep()),
        None => {
            let format = if args.json {
                Format::Json
            } else {
                Format::Text
            };
            session.with_output(Lines::new(
                std::io::stdout(),
                format,
                filter.clone(),
                args.count,
            ))
        }
    };
    log::info!(
        "watching {} ({}){}",
        plural(session.observer().attached(), "interface", "interfaces"),
        session
            .observer()
            .mode_in_use()
            .map_or("-", AttachMode::name),
        match (session.following(), session.docker_answered()) {
            (true, true) => ", following Docker and link changes",
            (true, false) => ", following link changes",
            (false, _) => "",
        }
    );
    let deadline = tokio::time::sleep(args.duration.unwrap_or(Duration::MAX / 4));
    tokio::pin!(deadline);
    while session.wants_more() {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            () = &mut deadline, if args.duration.is_some() => break,
            wake = session.wait() => {
                session.handle(wake?).await?;
            }
        }
    }
    session.finish().await?;
    let summary = session.summary(|s| filter.matches_pair(&s.src, &s.dst))?;
    let text = if args.json {
        let mut line = serde_json::to_vec(&summary)?;
        line.push(b'\n');
        line
    } else {
        summary.human().into_bytes()
    };
    write_or_closed(&mut std::io::stdout(), &text)?;
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
    fn kind_help_and_kind_error_list_the_same_kinds() {
        let accepted = crate::model::filter::kinds_accepted();
        assert!(kind_help().contains(&accepted), "{}", kind_help());
        assert_eq!(parse_kind("tcp"), Err(format!("use {accepted}")));
        for kind in crate::model::filter::every_kind_value() {
            assert_eq!(parse_kind(kind), Ok(kind.to_owned()));
        }
        assert_eq!(parse_kind("ICMP"), Ok("ICMP".to_owned()));
    }

    #[test]
    fn rate_split() {
        assert_eq!(per_cpu_rate(0), 0);
        assert!(per_cpu_rate(1) >= 1);
    }
}

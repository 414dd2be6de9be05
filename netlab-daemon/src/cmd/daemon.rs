//! `netlab daemon`: load and attach once, keep counting across restarts (pinned maps and
//! links), and serve the API ([`crate::api::server`]) on a unix socket (and, when asked,
//! on TCP). This file is the command: its options, the set-up done with every capability
//! (bind the socket, read kernel symbols), and the loop that owns the session, answers the
//! API's questions and publishes what changed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use netlab_common::Config;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{broadcast, mpsc};

use crate::api::actions::Diagnoser;
use crate::api::client::DEFAULT_SOCKET;
use crate::api::map::MAP_EVERY;
use crate::api::server::{serve, Ask, Shared, CLIENT_QUEUE};
use crate::docker::discover::Observer;
use crate::docker::follow::{scan, DockerFeed};
use crate::docker::topology::Topology;
use crate::kernel::attach::AttachMode;
use crate::kernel::btf::Kallsyms;
use crate::model::summary::Summary;
use crate::model::tally::Tallies;
use crate::output::map::{MapOutput, MapView, Status};
use crate::output::metrics;
use crate::output::otlp::{self, OtlpConfig, OtlpHandle};
use crate::output::{plural, Broadcast};
use crate::pipeline::Pipeline;
use crate::session::{per_cpu_rate, Drops, Handled, Options, Session, Source, JOURNEY_TIMEOUT};

/// Where the daemon pins its maps and links by default.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/netlab";
/// How long a stop waits for its clients' event streams to end.
const STREAMS_END_WITHIN: Duration = Duration::from_millis(500);

/// Options of `netlab daemon`.
#[derive(Debug, Clone, clap::Args)]
pub struct DaemonArgs {
    /// The API's unix socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Also serve the API on TCP (loopback unless --allow-remote).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Allow --listen on a non-loopback address.
    #[arg(long)]
    pub allow_remote: bool,
    /// Where maps and links are pinned (bpffs).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
    /// Remove every pinned object of netlab's (detaching its links) and exit.
    #[arg(long)]
    pub cleanup: bool,
    /// On SIGINT/SIGTERM, detach everything and remove every pinned object instead of
    /// leaving the links counting (what a container should do when it is stopped).
    #[arg(long, conflicts_with = "cleanup")]
    pub cleanup_on_exit: bool,
    /// Attribute each netfilter drop to its rule through the kernel's nftables tracing
    /// (adds a table `inet netlab-trace-<pid>` that marks ICMP for tracing, removed on exit;
    /// never changes a packet's fate). Without it, rules are found by their counters.
    #[arg(long)]
    pub nftrace: bool,
    /// Another host's netlab daemon (`--listen ADDR:PORT --allow-remote` there): its echo
    /// packets and drops join this daemon's journeys, its hops named NAME (default: HOST).
    /// Repeatable. Journeys then finish 1 s later.
    #[arg(long = "peer", value_name = "[NAME=]HOST:PORT")]
    pub peers: Vec<crate::api::peer::PeerSpec>,
    /// Seconds a removed container's series stay in /metrics.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub grace: u64,
    /// Emit one event for every N packets (counters stay exact).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub sample: u32,
    /// At most N events per second reach user space (0: no limit).
    #[arg(long = "rate-limit", value_name = "N", default_value_t = 200_000)]
    pub rate_limit: u32,
    /// How to hook the programs: TCX links (pinned) where the kernel has them, netlink
    /// filters (kept attached while the daemon is down) otherwise.
    #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
    pub attach: AttachMode,
    /// Show, never act: the map's "diagnose" (which sends echo requests from a
    /// container) is refused, and CAP_NET_RAW is dropped with the other capabilities.
    #[arg(long)]
    pub read_only: bool,
    /// Export counters (OTLP metrics) and drops and journeys (OTLP log records) to an
    /// OpenTelemetry Collector over OTLP/HTTP with protobuf; `/v1/metrics` and `/v1/logs`
    /// are appended to this base URL (http:// or https://).
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// A header sent with every export request (authentication), repeatable.
    #[arg(long, value_name = "KEY=VALUE", requires = "otlp_endpoint")]
    pub otlp_header: Vec<String>,
    /// Seconds between two metric exports (log records go as soon as a batch is full, or
    /// after this long).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10,
        requires = "otlp_endpoint"
    )]
    pub otlp_interval: u64,
    /// CA certificates (PEM) to trust for an https:// endpoint instead of the system's.
    #[arg(long, value_name = "FILE", requires = "otlp_endpoint")]
    pub otlp_ca: Option<PathBuf>,
    /// Also export sampled packets as log records (many: off by default).
    #[arg(long, requires = "otlp_endpoint")]
    pub otlp_packets: bool,
    /// OTLP/HTTP with protobuf (the collector's port 4318) or OTLP/gRPC (4317).
    #[arg(long, value_enum, value_name = "PROTOCOL", default_value_t = OtlpProtocol::HttpProtobuf,
          requires = "otlp_endpoint")]
    pub otlp_protocol: OtlpProtocol,
}

/// How OTLP is sent (`--otlp-protocol`), named as `OTEL_EXPORTER_OTLP_PROTOCOL` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OtlpProtocol {
    #[value(name = "http/protobuf")]
    HttpProtobuf,
    #[value(name = "grpc")]
    Grpc,
}

/// Removes every pinned object under `dir`: the tc links and the drop program's link
/// first (which detaches them), then the programs and maps.
pub fn cleanup(dir: &Path) -> anyhow::Result<usize> {
    if dir.exists() && !crate::kernel::bpffs::is_bpffs(dir) {
        anyhow::bail!(
            "--pin-dir {} is not on bpffs: it holds nothing of netlab's to remove",
            dir.display()
        );
    }
    let mut removed = 0;
    for sub in ["links", "drops", "netlink", "maps"] {
        if sub == "maps" {
            // The programs and state maps of each build (see `kernel/loader/pins.rs`), once
            // no link of netlab's runs them any more; the counts go last.
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if crate::kernel::loader::is_object_dir(&e.file_name().to_string_lossy()) {
                    removed += crate::kernel::loader::remove_object_dir(&e.path())
                        .with_context(|| format!("removing {}", e.path().display()))?;
                }
            }
        }
        let d = dir.join(sub);
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if sub == "netlink" {
                // The filters a daemon kept on a kernel without TCX, and their qdiscs.
                let name = e.file_name();
                crate::kernel::attach::remove_kept(&d, &name.to_string_lossy())
                    .with_context(|| format!("removing {}", e.path().display()))?;
            } else {
                std::fs::remove_file(e.path())
                    .with_context(|| format!("removing {}", e.path().display()))?;
            }
            removed += 1;
        }
        let _ = std::fs::remove_dir(&d);
    }
    let _ = std::fs::remove_dir(dir);
    Ok(removed)
}

/// The group id of `name`, if the group exists.
fn group_id(name: &str) -> Option<libc::gid_t> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.next()?;
        f.next()?.parse().ok()
    })
}

/// Binds the unix socket: mode 0660, group `netlab` when it exists. A stale socket file
/// (nothing answering) is replaced; a live one means another daemon runs.
fn bind_socket(path: &Path) -> anyhow::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!("another netlab daemon answers on {}", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    let l = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("binding {}", path.display()))?;
    l.set_nonblocking(true)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    if let Some(gid) = group_id("netlab") {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
        // SAFETY: a valid path; uid -1 leaves the owner as it is.
        if unsafe { libc::chown(c.as_ptr(), u32::MAX, gid) } != 0 {
            log::warn!("cannot give {} to group netlab", path.display());
        }
    }
    Ok(l)
}

/// The live counters, labels and tallies, as `/metrics` and the OTLP export show them.
fn metrics_snapshot(obs: &Observer, p: &Pipeline) -> metrics::Snapshot {
    let topo = &p.topo;
    let none = Tallies::default();
    let tallies = p.output::<Tallies>().unwrap_or(&none);
    let mut packets = Vec::new();
    if let Ok(rows) = obs.counter_rows() {
        for r in rows {
            let o = topo.iface(r.ifindex).filter(|o| o.name == r.iface);
            packets.push(metrics::PacketSeries {
                container: o.and_then(|o| o.container.clone()).unwrap_or_default(),
                network: o.and_then(|o| o.network.clone()).unwrap_or_default(),
                iface: r.iface,
                direction: r.direction,
                kind: r.kind,
                packets: r.packets,
            });
        }
    }
    let drops = tallies
        .drops
        .iter()
        .map(|((reason, container, network), n)| metrics::DropSeries {
            reason: reason.clone(),
            container: container.clone(),
            network: network.clone(),
            packets: *n,
        })
        .collect();
    let d = obs.datapath().delivery().unwrap_or_default();
    let rtt = tallies
        .rtt
        .iter()
        .map(|((s, dst), h)| h.series(s.clone(), dst.clone()))
        .collect();
    metrics::Snapshot {
        packets: metrics::aggregate_unlabelled(packets),
        drops,
        lost: vec![
            ("ring_full", d.ring_full),
            ("rate_limited", d.rate_limited),
            ("drop_ring_full", d.drop_ring_full),
        ],
        rtt,
        attached_interfaces: obs.attached() as u64,
        journeys: tallies.journeys.iter().map(|(k, v)| (*k, *v)).collect(),
        hooks_lost: obs
            .hooks_lost
            .iter()
            .map(|((iface, hook), n)| (iface.clone(), *hook, *n))
            .collect(),
        not_drops: tallies
            .not_drops
            .iter()
            .map(|((packet, reason, _), n)| (packet.clone(), reason.clone(), *n))
            .collect(),
        vxlan: obs.vxlan_rows(topo).unwrap_or_default(),
    }
}

/// The Prometheus page; with OTLP export on, the exporter's own counts follow.
fn metrics_page(obs: &Observer, p: &Pipeline, otlp: Option<&OtlpHandle>) -> String {
    let mut page = metrics::render(&metrics_snapshot(obs, p));
    if let Some(o) = otlp {
        page.push_str(&otlp::prometheus(&o.stats.view()));
    }
    page
}

/// The daemon's counters since it started counting (its pinned maps: across restarts).
fn counters_summary(session: &Session) -> Summary {
    session.summary(|_| true).unwrap_or_else(|e| {
        log::warn!("reading the counters: {e:#}");
        Summary::new(Vec::new(), Default::default(), 0)
    })
}

/// The map now, with the daemon's figures on its status line.
fn map_view(session: &mut Session, args: &DaemonArgs) -> MapView {
    let status = Status {
        lost_events: session
            .observer()
            .datapath()
            .delivery()
            .map_or(0, |d| d.lost()),
        sample: args.sample,
        attached_interfaces: session.observer().attached(),
        docker: session.docker_answered(),
        read_only: args.read_only,
        ..Status::default()
    };
    let topo = Arc::clone(session.topology());
    match session.pipeline.output_mut::<MapOutput>() {
        Some(m) => m.view(&topo, status, Instant::now()),
        None => MapOutput::default().view(&topo, status, Instant::now()),
    }
}

/// Publishes the map to the pages that watch it.
fn publish_map(session: &mut Session, args: &DaemonArgs, shared: &Shared) {
    match serde_json::to_vec(&map_view(session, args)) {
        Ok(json) => {
            shared.map.send_replace(bytes::Bytes::from(json));
        }
        Err(e) => log::warn!("writing the map: {e}"),
    }
}

/// What the API shows of a change the session acted on.
fn publish(session: &Session, handled: &Handled, shared: &Shared) {
    if let Some(connected) = handled.engine {
        shared.docker.store(connected, Ordering::Relaxed);
    }
    if handled.rescanned.is_some() {
        if let Ok(mut w) = shared.topo.write() {
            *w = Arc::clone(session.topology());
        }
    }
    shared
        .attached
        .store(session.observer().attached(), Ordering::Relaxed);
}

/// Containers that left since `before` (their series leave /metrics after the grace
/// period), noted with when they left.
fn note_gone(before: &Topology, now: &Topology, gone: &mut BTreeMap<String, Instant>) {
    for c in &before.containers {
        if now.container_named(&c.name).is_none() {
            gone.entry(c.name.clone()).or_insert_with(Instant::now);
        }
    }
}

/// Lifts `RLIMIT_MEMLOCK` (what the BPF maps are charged to before Linux 5.11).
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid rlimit value.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        log::debug!(
            "cannot lift RLIMIT_MEMLOCK: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// What the daemon sets up while the process is still single-threaded, with every
/// capability it started with: afterwards it keeps only [`crate::kernel::privilege::DAEMON_CAPS`]
/// (capabilities are per thread, so the drop must come before any thread exists).
pub struct Prepared {
    socket: std::os::unix::net::UnixListener,
    kallsyms: Option<Kallsyms>,
    otlp: Option<OtlpConfig>,
}

/// Tunes malloc ([`crate::kernel::loader::tune_malloc`]), checks the arguments, binds the socket (group `netlab`),
/// reads kernel symbols, then drops every capability the daemon does not need any more. `None` for `--cleanup`,
/// which is done here.
pub fn prepare(args: &DaemonArgs) -> anyhow::Result<Option<Prepared>> {
    crate::kernel::privilege::require()?;
    crate::kernel::loader::tune_malloc();
    if args.cleanup {
        let n = cleanup(&args.pin_dir)?;
        log::info!(
            "removed {} under {}",
            plural(n, "pinned object", "pinned objects"),
            args.pin_dir.display()
        );
        let tables = crate::explain::nftrace::remove_stale_tables();
        if tables > 0 {
            log::info!(
                "removed {} of netlab processes that no longer run",
                plural(tables, "nftables trace table", "nftables trace tables")
            );
        }
        return Ok(None);
    }
    if let Some(addr) = args.listen {
        if !addr.ip().is_loopback() && !args.allow_remote {
            anyhow::bail!(
                "--listen {addr} is not a loopback address: add --allow-remote to serve the API there"
            );
        }
    }
    // Checked before anything is set up: a bad flag is one line and exit 2.
    let otlp = args
        .otlp_endpoint
        .as_deref()
        .map(|url| {
            OtlpConfig::new(
                url,
                &args.otlp_header,
                args.otlp_interval,
                args.otlp_ca.clone(),
                args.otlp_packets,
            )
            .map(|c| c.with_grpc(args.otlp_protocol == OtlpProtocol::Grpc))
        })
        .transpose()?;
    crate::kernel::bpffs::ensure(&args.pin_dir)?;
    // Before 5.11 the kernel charges BPF maps to the locked-memory limit, and raising it
    // needs CAP_SYS_RESOURCE, which the daemon is about to give up.
    raise_memlock_limit();
    let socket = bind_socket(&args.socket)?;
    let kallsyms = Kallsyms::load().ok();
    // The map's diagnose sends echo requests from containers (a raw ICMP socket).
    let mut keep = crate::kernel::privilege::DAEMON_CAPS.to_vec();
    if !args.read_only {
        keep.push(crate::kernel::privilege::CAP_NET_RAW);
    }
    crate::kernel::privilege::drop_all_but(&keep).context("dropping capabilities")?;
    Ok(Some(Prepared {
        socket,
        kallsyms,
        otlp,
    }))
}

/// Runs the daemon until SIGINT/SIGTERM (after [`prepare`]).
pub async fn run(args: DaemonArgs, prepared: Prepared) -> anyhow::Result<()> {
    let Prepared {
        socket,
        kallsyms,
        otlp,
    } = prepared;
    let started_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    // Before anything is attached: a SIGTERM during start-up waits for the loop below,
    // which stops cleanly, instead of killing the daemon with its links half made; and
    // one sent as soon as it says it watches finds the handlers.
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let feed = DockerFeed::connect().await;
    let otlp = match otlp {
        Some(config) => {
            let resource = otlp::resource(feed.engine.as_ref());
            Some(otlp::spawn(config, resource, started_ns)?)
        }
        None => None,
    };
    let topo = scan(feed.snapshot.clone()).await?;
    let opts = Options {
        config: Config {
            sample_every: args.sample,
            rate_per_cpu: per_cpu_rate(args.rate_limit),
        },
        attach: args.attach,
        drops: Drops::IfAvailable,
        nftrace: args.nftrace,
        journey_timeout: Some(JOURNEY_TIMEOUT),
        kallsyms,
        pin_dir: Some(args.pin_dir.clone()),
        engine: None,
        peers: args.peers.clone(),
    };
    let (events, _) = broadcast::channel(CLIENT_QUEUE);
    let mut session = Session::start(
        Source::Docker {
            feed: Box::new(feed),
            topo,
        },
        opts,
    )
    .await?
    .with_output(Tallies::default())
    .with_output(MapOutput::default())
    .with_output(Broadcast::new(events.clone()));
    if let Some(o) = &otlp {
        session = session.with_output(otlp::logs::OtlpLogs::new(
            o.logs.clone(),
            std::sync::Arc::clone(&o.stats),
            o.config.packets,
        ));
        log::info!(
            "exporting to {} over {} every {}s",
            o.config.endpoint,
            if o.config.grpc {
                "OTLP/gRPC"
            } else {
                "OTLP/HTTP"
            },
            o.config.interval.as_secs()
        );
    }
    // Each tick hands the exporter a fresh snapshot of the counters (never waits for it).
    let mut otlp_tick = tokio::time::interval(
        otlp.as_ref()
            .map_or(Duration::from_secs(3600), |o| o.config.interval),
    );
    otlp_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (ask_tx, mut ask_rx) = mpsc::channel::<Ask>(64);
    let mut shared = Shared::new(
        Arc::clone(session.topology()),
        events,
        ask_tx,
        session.observer().attached(),
        session.docker_answered(),
    );
    if !args.read_only {
        shared = shared.with_diagnoser(Diagnoser::this_binary(args.socket.clone()));
    }
    let shared = Arc::new(shared);

    let unix = tokio::net::UnixListener::from_std(socket).context("serving the unix socket")?;
    serve(Arc::clone(&shared), unix);
    if let Some(addr) = args.listen {
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        serve(Arc::clone(&shared), tcp);
        log::info!("API also on http://{addr}; the map at http://{addr}/");
    }
    log::info!(
        "daemon: watching {}, API on {}",
        plural(session.observer().attached(), "interface", "interfaces"),
        args.socket.display()
    );

    // Containers that left, and when: their series leave /metrics after the grace period.
    let mut gone: BTreeMap<String, Instant> = BTreeMap::new();
    let grace = Duration::from_secs(args.grace);
    let mut map_published = Instant::now();
    loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            Some(ask) = ask_rx.recv() => match ask {
                Ask::Counters(tx) => { let _ = tx.send(counters_summary(&session)); }
                Ask::Metrics(tx) => {
                    let _ = tx.send(metrics_page(
                        session.observer(),
                        &session.pipeline,
                        otlp.as_ref(),
                    ));
                }
                Ask::Map(tx) => {
                    let _ = tx.send(map_view(&mut session, &args));
                }
            },
            _ = otlp_tick.tick(), if otlp.is_some() => {
                if let Some(o) = &otlp {
                    let snap = metrics_snapshot(session.observer(), &session.pipeline);
                    o.metrics.send_replace(Some(Arc::new(snap)));
                }
            }
            wake = session.wait() => {
                let mut handled = session.handle(wake?).await?;
                if let Some(before) = &handled.rescanned {
                    note_gone(before, session.topology(), &mut gone);
                }
                publish(&session, &handled, &shared);
                if handled.rescanned.take().is_some() {
                    // The topology before the rescan is gone with it: give back the pages it
                    // and the rescan's scratch left free between the new topology's.
                    crate::kernel::loader::release_freed_memory();
                }
                if handled.tick && shared.map_watched() && map_published.elapsed() >= MAP_EVERY {
                    map_published = Instant::now();
                    publish_map(&mut session, &args, &shared);
                }
                if handled.tick {
                    shared
                        .hooks_lost
                        .store(session.observer().hooks_lost_total(), Ordering::Relaxed);
                    let expired: Vec<String> = gone
                        .iter()
                        .filter(|(_, t)| t.elapsed() >= grace)
                        .map(|(c, _)| c.clone())
                        .collect();
                    if !expired.is_empty() {
                        if let Some(t) = session.pipeline.output_mut::<Tallies>() {
                            t.forget_containers(&expired);
                        }
                        for c in &expired {
                            gone.remove(c);
                        }
                    }
                    session.observer_mut().fold_retired(grace);
                }
            }
        }
    }
    // Clients' streams end with a last line, not a cut connection.
    shared.stop_streams(STREAMS_END_WITHIN).await;
    let _ = std::fs::remove_file(&args.socket);
    if let Some(o) = otlp {
        // The final counts, then the exporter's last attempt to send them.
        o.metrics.send_replace(Some(Arc::new(metrics_snapshot(
            session.observer(),
            &session.pipeline,
        ))));
        drop(o.metrics);
        let _ = o.task.await;
    }
    if args.cleanup_on_exit {
        // Our own handles first, then the pins: the last reference to each link goes with
        // its pin, which detaches it.
        drop(session);
        let n = cleanup(&args.pin_dir)?;
        log::info!(
            "daemon stopped; detached everything and removed {} under {}",
            plural(n, "pinned object", "pinned objects"),
            args.pin_dir.display()
        );
        return Ok(());
    }
    let attached = session.observer().attached();
    let (stay, keep) = if attached == 1 {
        ("stays", "keeps")
    } else {
        ("stay", "keep")
    };
    log::info!(
        "daemon stopped; {} {stay} attached ({}) and {keep} counting; `netlab daemon --cleanup` detaches them",
        plural(attached, "interface", "interfaces"),
        match session.observer().mode_in_use() {
            Some(AttachMode::Netlink) => "netlink filters",
            _ => "pinned TCX links",
        }
    );
    // Pinned links stay attached; dropping the session only closes our handles.
    drop(session);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_looked_up_by_name() {
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_id("no-such-group-netlab-test"), None);
    }
}

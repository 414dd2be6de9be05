//! Following Docker: the engine connection, its snapshot and event stream, and scans of
//! the host's and the containers' interfaces.

use std::pin::Pin;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::{Stream, StreamExt as _};

use crate::docker::discover;
use crate::docker::topo_events::Happening;
use crate::docker::topology::Topology;
use crate::docker::{self, DockerClient, DockerSnapshot};
use crate::kernel::links::{self, LinkChange, LinkWatcher};

/// Docker's event stream.
pub type DockerEvents =
    Pin<Box<dyn Stream<Item = Result<bollard::models::EventMessage, docker::DockerError>> + Send>>;

/// Longest wait between two attempts to reach the Docker engine.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The Docker side of following: the client, its last snapshot, its event stream, and
/// reconnection with back-off when the engine goes away (or was not there at start).
pub struct DockerFeed {
    pub client: Option<DockerClient>,
    /// What the engine says of itself (version, `/info`), from the last connection.
    pub engine: Option<docker::EngineFacts>,
    pub snapshot: Option<DockerSnapshot>,
    pub events: Option<DockerEvents>,
    backoff: Duration,
    /// A reconnection attempt running in its own task, so that it completes even though
    /// `next_event` is polled from a `select!` that drops its future over and over.
    reconnect: Option<tokio::task::JoinHandle<Result<Connected, String>>>,
    /// Inspected containers by id, until an event says they changed.
    cache: std::collections::HashMap<String, docker::ContainerInfo>,
}

impl DockerFeed {
    /// Connects; without an engine, warns once and carries on without (and keeps trying
    /// in the background of [`DockerFeed::next_event`]).
    pub async fn connect() -> Self {
        let mut feed = DockerFeed {
            client: None,
            engine: None,
            snapshot: None,
            events: None,
            backoff: Duration::from_secs(1),
            reconnect: None,
            cache: Default::default(),
        };
        if let Err(e) = feed.try_connect().await {
            log::warn!(
                "{e}; no Docker labels: observing every bridge and its veths by interface name only"
            );
        }
        feed
    }

    async fn try_connect(&mut self) -> Result<(), String> {
        let c = connect_fresh().await?;
        self.install(c);
        Ok(())
    }

    fn install(&mut self, c: Connected) {
        self.cache = c.cache;
        self.engine = c.engine;
        self.client = Some(c.client);
        self.events = Some(c.events);
        self.snapshot = Some(c.snapshot);
        self.backoff = Duration::from_secs(1);
    }

    /// Whether the engine answers now.
    pub fn connected(&self) -> bool {
        self.client.is_some()
    }

    /// Asks Docker again (inspecting only containers that are new or changed).
    pub async fn refresh(&mut self) {
        let Some(c) = &self.client else { return };
        match c.snapshot_cached(&mut self.cache).await {
            Ok(s) => self.snapshot = Some(s),
            Err(e) => log::warn!("{e:#}"),
        }
    }

    /// Asks Docker again if `ask_docker`, then scans the interfaces; `None` (after a
    /// warning) when the scan fails, in which case everything stays as it was.
    pub async fn rescan(&mut self, ask_docker: bool) -> Option<Topology> {
        if ask_docker {
            self.refresh().await;
        }
        scan(self.snapshot.clone())
            .await
            .inspect_err(|e| log::warn!("{e:#}"))
            .ok()
    }

    /// Waits for the next change worth a rescan: an event that matters, or the engine
    /// coming back after it went away. Labels stay as they were while it is away; the
    /// kernel keeps counting all along. Returns what the event says happened, if it is a
    /// topology event of its own.
    pub async fn next_event(&mut self) -> Option<Happening> {
        loop {
            match &mut self.events {
                Some(s) => match s.next().await {
                    Some(Ok(ev)) if docker::event_matters(&ev) => {
                        if let Some(id) = docker::event_container(&ev) {
                            self.cache.remove(id);
                        }
                        return Happening::of(&ev);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        log::warn!("{e:#}; labels stay as they were until it answers again");
                        self.events = None;
                        self.client = None;
                        return None;
                    }
                    None => {
                        log::warn!(
                            "the Docker event stream ended; labels stay as they were until the engine answers again"
                        );
                        self.events = None;
                        self.client = None;
                        return None;
                    }
                },
                None => {
                    let backoff = self.backoff;
                    let handle = self.reconnect.get_or_insert_with(|| {
                        tokio::spawn(async move {
                            tokio::time::sleep(backoff).await;
                            connect_fresh().await
                        })
                    });
                    // Polling a JoinHandle by reference is cancel-safe.
                    let r = handle.await;
                    self.reconnect = None;
                    match r {
                        Ok(Ok(c)) => {
                            self.install(c);
                            log::info!("the Docker engine answers: labels are up to date again");
                            return None;
                        }
                        Ok(Err(e)) => {
                            log::debug!("Docker engine still unreachable: {e}");
                            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                        }
                        Err(e) => {
                            log::debug!("Docker reconnection task: {e}");
                            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                        }
                    }
                }
            }
        }
    }
}

/// A fresh connection: client, event stream, snapshot, and the inspected containers.
pub struct Connected {
    client: DockerClient,
    engine: Option<docker::EngineFacts>,
    events: DockerEvents,
    snapshot: DockerSnapshot,
    cache: std::collections::HashMap<String, docker::ContainerInfo>,
}

async fn connect_fresh() -> Result<Connected, String> {
    let describe = |e: &dyn std::error::Error| {
        let cause = e.source().map(|s| format!(": {s}")).unwrap_or_default();
        format!("{e}{cause}")
    };
    let client = DockerClient::connect().await.map_err(|e| describe(&e))?;
    // Subscribe before the snapshot, so no change falls between the two.
    let events: DockerEvents = Box::pin(client.events());
    let mut cache = std::collections::HashMap::new();
    let snapshot = client
        .snapshot_cached(&mut cache)
        .await
        .map_err(|e| describe(&e))?;
    let engine = client.engine_facts().await;
    Ok(Connected {
        client,
        engine,
        events,
        snapshot,
        cache,
    })
}

/// When to look again after a change. Changes come in bursts (a container start is a few
/// link and Docker events within milliseconds): one rescan deals with a burst once it has
/// been quiet for [`Settle::QUIET`].
pub struct Settle {
    timer: Pin<Box<tokio::time::Sleep>>,
    armed: bool,
    ask_docker: bool,
}

impl Default for Settle {
    fn default() -> Self {
        Self {
            timer: Box::pin(tokio::time::sleep(Duration::MAX / 4)),
            armed: false,
            ask_docker: false,
        }
    }
}

impl Settle {
    /// How long after the first change of a burst the rescan runs.
    pub const QUIET: Duration = Duration::from_millis(20);

    /// Something changed: rescan after [`Settle::QUIET`], asking Docker too if
    /// `ask_docker` (for the rest of the burst, once one change asked).
    pub fn soon(&mut self, ask_docker: bool) {
        self.ask_docker |= ask_docker;
        if !self.armed {
            self.armed = true;
            self.timer
                .as_mut()
                .reset(tokio::time::Instant::now() + Self::QUIET);
        }
    }

    /// Rescan now, asking Docker, unless a rescan is already on its way.
    pub fn now(&mut self) {
        if !self.armed {
            self.armed = true;
            self.ask_docker = true;
            self.timer.as_mut().reset(tokio::time::Instant::now());
        }
    }

    /// Whether a rescan is due ([`Settle::settled`] may be awaited).
    pub fn armed(&self) -> bool {
        self.armed
    }

    /// Waits until the burst has settled; returns whether Docker must be asked again.
    /// Cancel-safe: dropped before it completes, it can be awaited again.
    pub async fn settled(&mut self) -> bool {
        self.timer.as_mut().await;
        self.armed = false;
        std::mem::take(&mut self.ask_docker)
    }
}

/// What following Docker and the kernel's links reports, one change at a time.
pub enum Change {
    /// A link appeared or changed (state, master, name, promiscuity...).
    Link(links::Link),
    /// A link was deleted (or left this namespace).
    LinkGone { ifindex: u32 },
    /// Link messages were lost: a rescan is on its way.
    Overrun,
    /// A rescan finished: what to observe and who everything is, as of when it started.
    Rescanned {
        topo: Box<Topology>,
        started: std::time::Instant,
    },
    /// The Docker engine answers again, or stopped answering.
    Engine { connected: bool },
    /// Docker said something happened (a container started, a network removed...).
    Docker(Happening),
}

/// A rescan running concurrently with everything else; it gives the feed back when done.
type Rescan = Pin<
    Box<
        dyn std::future::Future<Output = (DockerFeed, Option<Topology>, std::time::Instant)> + Send,
    >,
>;

/// Follows Docker (events, reconnection) and the kernel's link changes, and rescans after
/// each burst of changes. A rescan asks Docker and enters every container's namespace,
/// which takes long while the engine is busy starting containers; it runs beside
/// everything else, so link changes (a new port to attach at once) never wait for it.
pub struct Follower {
    feed: Option<DockerFeed>,
    links: LinkWatcher,
    settle: Settle,
    rescan: Option<Rescan>,
    connected: bool,
}

impl Follower {
    /// Subscribes to link changes; `feed` is the Docker side (connected or not).
    pub fn new(feed: DockerFeed) -> std::io::Result<Self> {
        Ok(Self {
            connected: feed.connected(),
            feed: Some(feed),
            links: LinkWatcher::new()?,
            settle: Settle::default(),
            rescan: None,
        })
    }

    /// Whether the Docker engine answered last time it was asked.
    pub fn docker_connected(&self) -> bool {
        self.connected
    }

    /// Rescan now (asking Docker), unless one is due or running already.
    pub fn rescan_soon(&mut self) {
        self.settle.now();
    }

    /// A link change already queued, without waiting: a burst of new ports is taken note
    /// of (and covered) before any of them is attached.
    pub fn try_link(&mut self) -> std::io::Result<Option<Change>> {
        let Some(change) = self.links.try_next()? else {
            return Ok(None);
        };
        log::trace!("link change (queued): {change:?}");
        self.settle.soon(change.asks_docker());
        Ok(Some(match change {
            LinkChange::New(l) => Change::Link(l),
            LinkChange::Deleted { ifindex, .. } => Change::LinkGone { ifindex },
            LinkChange::Overrun => Change::Overrun,
        }))
    }

    /// The next change. Cancel-safe: everything in progress (a rescan, a reconnection, a
    /// settle timer) lives in `self`, so a `select!` may drop this future at any point.
    pub async fn next(&mut self) -> std::io::Result<Change> {
        loop {
            let rescanning = self.rescan.is_some();
            let can_listen = self.feed.is_some();
            tokio::select! {
                change = self.links.next() => {
                    let change = change?;
                    log::trace!("link change: {change:?}");
                    self.settle.soon(change.asks_docker());
                    return Ok(match change {
                        LinkChange::New(l) => Change::Link(l),
                        LinkChange::Deleted { ifindex, .. } => Change::LinkGone { ifindex },
                        LinkChange::Overrun => Change::Overrun,
                    });
                }
                happening = async {
                    match self.feed.as_mut() {
                        Some(f) => f.next_event().await,
                        None => std::future::pending().await,
                    }
                }, if can_listen => {
                    self.settle.soon(true);
                    let now = self.feed.as_ref().is_some_and(DockerFeed::connected);
                    if now != self.connected {
                        self.connected = now;
                        return Ok(Change::Engine { connected: now });
                    }
                    if let Some(h) = happening {
                        return Ok(Change::Docker(h));
                    }
                }
                ask_docker = self.settle.settled(), if self.settle.armed() && !rescanning => {
                    if let Some(mut feed) = self.feed.take() {
                        self.rescan = Some(Box::pin(async move {
                            let started = std::time::Instant::now();
                            let t = feed.rescan(ask_docker).await;
                            log::debug!(
                                "rescan{} took {:?}",
                                if ask_docker { " (asking Docker)" } else { "" },
                                started.elapsed()
                            );
                            (feed, t, started)
                        }));
                    }
                }
                (feed, topo, started) = async {
                    match self.rescan.as_mut() {
                        Some(r) => r.await,
                        None => std::future::pending().await,
                    }
                }, if rescanning => {
                    self.rescan = None;
                    self.feed = Some(feed);
                    if let Some(topo) = topo {
                        return Ok(Change::Rescanned {
                            topo: Box::new(topo),
                            started,
                        });
                    }
                }
            }
        }
    }
}

/// Scans on a blocking thread (the scan starts threads of its own).
pub async fn scan(snapshot: Option<DockerSnapshot>) -> anyhow::Result<Topology> {
    tokio::task::spawn_blocking(move || discover::scan(snapshot.as_ref()))
        .await
        .context("topology scan")?
        .context("reading network interfaces")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_changes_is_one_rescan() {
        let mut settle = Settle::default();
        assert!(!settle.armed());
        let start = tokio::time::Instant::now();
        settle.soon(false);
        settle.soon(true);
        settle.soon(false);
        // Already on its way: asking for "now" neither restarts nor hurries it.
        settle.now();
        assert!(settle.armed());
        assert!(
            settle.settled().await,
            "one change of the burst asked Docker"
        );
        assert_eq!(start.elapsed(), Settle::QUIET);
        assert!(!settle.armed());

        settle.soon(false);
        assert!(!settle.settled().await, "nothing asked Docker this time");

        let start = tokio::time::Instant::now();
        settle.now();
        assert!(settle.settled().await);
        assert_eq!(start.elapsed(), Duration::ZERO, "`now` does not wait");
    }
}

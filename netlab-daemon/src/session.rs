//! One observation session: the datapath and its attachments, the ring-buffer reader,
//! following Docker and links, and the pipeline with its outputs.
//!
//! `watch`, `capture`, `daemon` and `diagnose` each build a [`Session`] from a [`Source`]
//! (what to observe) and [`Options`] (how), give its pipeline their outputs, and drive it
//! with [`Session::wait`] and [`Session::handle`] in their own `select!` loop, beside
//! what only they do (signals, a deadline, API requests, echo requests to send):
//!
//! ```ignore
//! loop {
//!     tokio::select! {
//!         _ = sigint.recv() => break,
//!         wake = session.wait() => { session.handle(wake?).await?; }
//!     }
//! }
//! session.finish().await?;
//! ```
//!
//! [`Session::wait`] only waits (it is cancel-safe: another branch may win at any point);
//! [`Session::handle`] does the work of what woke it, outside the `select!`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use netlab_common::Config;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::docker::discover::{AttachDone, Observer};
use crate::docker::follow::{Change, DockerFeed, Follower};
use crate::docker::topo_events::Tracker;
use crate::docker::topology::Topology;
use crate::kernel::attach::AttachMode;
use crate::kernel::btf::Kallsyms;
use crate::kernel::clock::Clock;
use crate::kernel::loader::{Datapath, Pins, Wanted};
use crate::model::journey::{Correlator, PairStats};
use crate::model::summary::Summary;
use crate::output::Output;
use crate::pipeline::{DropContext, Pipeline};

/// Every this many 100 ms ticks, every hook is checked to still run netlab's programs
/// (another tool may have replaced them).
pub const VERIFY_EVERY_TICKS: u64 = 20;

/// Peers' items taken in one wake at most.
const PEER_BATCH: usize = 4096;

/// Netfilter drops wait this long for the firewall counters (or traces) to settle, then
/// are attributed as one batch.
const ATTRIBUTE_AFTER: Duration = Duration::from_millis(150);

/// An echo request without reply is unanswered this long after it was seen: what the
/// daemon and `diagnose` use, and `watch`'s default (`--journey-timeout`). `diagnose`
/// through a daemon waits for the daemon's unanswered journeys with it in mind.
pub const JOURNEY_TIMEOUT: Duration = Duration::from_secs(2);

/// What a session observes.
pub enum Source {
    /// Everything Docker has (every bridge network's bridge and every veth on it),
    /// followed as it changes: the Docker side, and the topology scanned from it.
    Docker {
        feed: Box<DockerFeed>,
        topo: Topology,
    },
    /// Exactly these interfaces of this namespace (index, name), not followed.
    Ifaces(Vec<(u32, String)>),
    /// What this topology observes, not followed (`diagnose`).
    Fixed(Topology),
}

/// Whether and how drops are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drops {
    /// Not reported.
    Off,
    /// Reported if the kernel allows; otherwise a warning says they are not.
    IfAvailable,
    /// Reported, or the session does not start.
    Required,
}

/// How a session observes.
pub struct Options {
    /// Sampling and rate limit of the kernel programs.
    pub config: Config,
    pub attach: AttachMode,
    pub drops: Drops,
    /// Attribute netfilter drops through the kernel's nftables tracing.
    pub nftrace: bool,
    /// Pair echo requests with replies; `None`: no journeys.
    pub journey_timeout: Option<Duration>,
    /// Kernel symbols, when read already (the daemon reads them before dropping
    /// capabilities); otherwise read at start.
    pub kallsyms: Option<Kallsyms>,
    /// Pin maps, links and the drop program under this directory (the daemon).
    pub pin_dir: Option<PathBuf>,
    /// The Docker engine's facts (which firewall it writes), when known without a feed
    /// (`diagnose`); with [`Source::Docker`], the feed's.
    pub engine: Option<crate::docker::EngineFacts>,
    /// Other hosts' daemons whose echo packets and drops join the journeys (`--peer`).
    pub peers: Vec<crate::api::peer::PeerSpec>,
}

impl Options {
    /// Every packet, no rate limit, drops required, default journeys (`diagnose`).
    pub fn everything() -> Self {
        Options {
            config: Config {
                sample_every: 1,
                rate_per_cpu: 0,
            },
            attach: AttachMode::Auto,
            drops: Drops::Required,
            nftrace: false,
            journey_timeout: Some(JOURNEY_TIMEOUT),
            kallsyms: None,
            pin_dir: None,
            engine: None,
            peers: Vec::new(),
        }
    }
}

/// The per-CPU share of a host-wide event rate (rounded up; 0 stays "unlimited").
pub fn per_cpu_rate(rate: u32) -> u32 {
    let cpus = aya::util::nr_cpus().unwrap_or(1).max(1) as u32;
    rate.div_ceil(cpus)
}

/// Why [`Session::wait`] returned.
pub enum Wake {
    /// Records were read (and handed to the outputs).
    Events,
    /// Netfilter drops are due for attribution.
    Attribute,
    /// The 100 ms tick.
    Tick,
    /// Links or Docker changed.
    Change(Change),
    /// A new port waits to be attached.
    AttachPending,
    /// A port's attachment finished.
    Attached(Result<AttachDone, tokio::task::JoinError>),
    /// A peer saw an echo packet or a drop.
    Peer(crate::api::peer::PeerItem),
}

/// What [`Session::handle`] did that a command may act on too.
#[derive(Default)]
pub struct Handled {
    /// A rescan replaced the topology; this was the one before.
    pub rescanned: Option<Arc<Topology>>,
    /// The Docker engine connected (`true`) or went away.
    pub engine: Option<bool>,
    /// It was the 100 ms tick.
    pub tick: bool,
}

/// One observation session (see the module documentation).
pub struct Session {
    /// Owns every attachment: dropping the session detaches what is not pinned.
    obs: Observer,
    ring: AsyncFd<RingBuf<MapData>>,
    follow: Option<Follower>,
    pub pipeline: Pipeline,
    topo_events: Tracker,
    ticker: tokio::time::Interval,
    /// When the ring is drained next without being woken (see [`after_drain`]).
    drain_at: Option<tokio::time::Instant>,
    ticks: u64,
    /// When the waiting netfilter drops are attributed.
    attribute_at: Option<tokio::time::Instant>,
    attaching: Option<tokio::task::JoinHandle<AttachDone>>,
    /// Whether the outputs still want events (no closed pipe, `--count` not reached).
    more: bool,
    docker_answered: bool,
    /// Other hosts' daemons being read (`--peer`); journeys then finish
    /// [`PEER_LAG`](crate::api::peer::PEER_LAG) behind the clock, waiting for their
    /// sightings.
    peers: Option<crate::api::peer::Peers>,
}

impl Session {
    /// Loads the programs, attaches them to what `source` says, and builds the pipeline
    /// (its outputs come with [`Session::with_output`]).
    pub async fn start(source: Source, opts: Options) -> anyhow::Result<Self> {
        let (feed, topo, named) = match source {
            Source::Docker { feed, topo } => (Some(*feed), topo, None),
            Source::Ifaces(named) => (None, Topology::explicit(&named), Some(named)),
            Source::Fixed(topo) => (None, topo, None),
        };
        let following = feed.is_some();
        let pins = opts.pin_dir.as_deref().map(Pins::under);
        if let (Some(p), Some(dir)) = (&pins, &opts.pin_dir) {
            p.create()
                .with_context(|| format!("creating the pin directories under {}", dir.display()))?;
        }
        let wanted = Wanted {
            drops: opts.drops != Drops::Off,
            cover: following,
        };
        let mut dp = Datapath::load_in(opts.config, pins.as_ref(), wanted)?;
        let mut ring = dp.take_events()?;
        if pins.is_some() {
            // The ring may be an earlier daemon's, which the programs it left attached wrote
            // to while no daemon ran: those events are not this run's to show.
            let mut stale = 0u64;
            while let Some(item) = ring.next() {
                drop(item);
                stale += 1;
            }
            log::debug!("{stale} events from before this start left unread");
        }
        // An earlier daemon may have said it polls on for a while: this one does not
        // until records come, so the first one wakes it.
        dp.set_ring_poll_until(0)?;
        let mut obs = Observer::new(dp, opts.attach);
        if let Some(d) = &opts.pin_dir {
            // TCX links where the kernel has them (6.6+), pinned; netlink filters
            // otherwise, kept.
            let links = d.join("links");
            obs = obs
                .persist_in(&links)
                .with_context(|| format!("creating {}", links.display()))?;
            obs.prune_pins(&topo);
        }
        // Attaching is most of a start-up on many interfaces (each TCX hook waits for RCU
        // grace periods, one after another): it starts now, and loading the other
        // programs below fits into its waits.
        let first = match &named {
            Some(named) => named.clone(),
            // Not the sandboxes' interfaces: they are attached from inside their namespace.
            None => topo
                .observed
                .iter()
                .filter(|o| o.sandbox.is_none())
                .map(|o| (o.ifindex, o.name.clone()))
                .collect(),
        };
        let early = obs.attach_early(first);
        let dp = obs.datapath_mut();
        let drops = match opts.drops {
            Drops::Off => None,
            wanted => {
                let kallsyms = match opts.kallsyms {
                    Some(k) => Some(k),
                    None => Kallsyms::load()
                        .inspect_err(|e| log::debug!("no kernel symbols: {e}"))
                        .ok(),
                };
                let quiet = kallsyms.as_ref().map_or([0; 4], Kallsyms::echo_reply_frees);
                let pin = match &opts.pin_dir {
                    Some(d) => {
                        let dir = d.join("drops");
                        std::fs::create_dir_all(&dir)
                            .with_context(|| format!("creating {}", dir.display()))?;
                        Some(dir.join("kfree_skb"))
                    }
                    None => None,
                };
                match dp.enable_drops_pinned(pin.as_deref(), quiet) {
                    Ok(reasons) => Some(
                        DropContext::new(
                            reasons,
                            kallsyms,
                            named.is_some(),
                            feed.as_ref()
                                .and_then(|f| f.engine.as_ref())
                                .or(opts.engine.as_ref()),
                            opts.nftrace,
                        )
                        .await,
                    ),
                    Err(e) if wanted == Drops::Required => return Err(e.into()),
                    Err(e) => {
                        log::warn!("{e:#}; drops are not reported");
                        None
                    }
                }
            }
        };
        if following {
            enable_cover(dp);
        }
        dp.release_btf();
        if let Some(early) = early {
            obs.take_early(early);
        }
        let mut topo_events = Tracker::new(&topo);
        match &named {
            Some(named) => obs.attach_all(named)?,
            None if following => {
                let failed = obs.reconcile(&topo).failed;
                if obs.attached() == 0 && !topo.observed.is_empty() {
                    anyhow::bail!(
                        "could not attach to {} to observe (see the warnings above)",
                        match topo.observed.len() {
                            1 => "the interface".to_owned(),
                            n => format!("any of the {n} interfaces"),
                        }
                    );
                }
                topo_events.unobserved(failed, &topo);
            }
            None => {
                obs.reconcile(&topo);
            }
        }
        // Start-up is done with its one-off buffers (Docker's answers, every namespace's
        // links and addresses, the attach batch): give their pages back, or the heap keeps
        // them resident between the structures that stay.
        crate::kernel::loader::release_freed_memory();
        let docker_answered = feed.as_ref().is_some_and(DockerFeed::connected);
        let follow = match feed {
            Some(f) => Some(Follower::new(f).context("subscribing to link changes")?),
            None => None,
        };
        // SAFETY: the RingBuf owns its map fd, which stays open and unchanged for as long
        // as the AsyncFd (which owns the RingBuf) lives.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)
            .context("polling the event ring buffer")?;
        let journeys = opts
            .journey_timeout
            .map(|t| Correlator::with_timeout(t.as_nanos() as u64));
        let peers = match &journeys {
            Some(_) => crate::api::peer::Peers::start(&opts.peers),
            None => None,
        };
        if let Some(p) = &pins {
            // Every link is on this build's programs now.
            p.remove_other_builds();
        }
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Session {
            obs,
            ring,
            follow,
            pipeline: Pipeline::new(Arc::new(topo), drops, journeys),
            topo_events,
            ticker,
            drain_at: None,
            ticks: 0,
            attribute_at: None,
            attaching: None,
            more: true,
            docker_answered,
            peers,
        })
    }

    /// Adds an output to the pipeline.
    pub fn with_output(mut self, o: impl Output) -> Self {
        self.pipeline = self.pipeline.with_output(o);
        self
    }

    /// Whether it follows Docker and links.
    pub fn following(&self) -> bool {
        self.follow.is_some()
    }

    /// Whether the Docker engine answered at start.
    pub fn docker_answered(&self) -> bool {
        self.docker_answered
    }

    /// Whether the outputs still want events (no closed pipe, `--count` not reached).
    pub fn wants_more(&self) -> bool {
        self.more
    }

    pub fn observer(&self) -> &Observer {
        &self.obs
    }

    pub fn observer_mut(&mut self) -> &mut Observer {
        &mut self.obs
    }

    /// The topology labels come from now.
    pub fn topology(&self) -> &Arc<Topology> {
        &self.pipeline.topo
    }

    /// Waits for the next thing to do. Cancel-safe: records are read and handed to the
    /// outputs without an `.await` in between, everything else waits in `self`.
    pub async fn wait(&mut self) -> anyhow::Result<Wake> {
        let attribute_at = self.attribute_at;
        let attaching = self.attaching.is_some();
        let pending = self.obs.has_pending();
        let Session {
            obs,
            ring,
            follow,
            pipeline,
            ticker,
            drain_at,
            attaching: job,
            more,
            peers,
            ..
        } = self;
        let due = *drain_at;
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.context("waiting for events")?;
                guard.clear_ready();
                let (m, n) = drain(guard.get_inner_mut(), pipeline)?;
                *more = m;
                *drain_at = poll_on(obs.datapath_mut(), n, true);
                Ok(Wake::Events)
            }
            () = tokio::time::sleep_until(due.unwrap_or_else(far)), if due.is_some() => {
                let (m, n) = drain(ring.get_mut(), pipeline)?;
                *more = m;
                *drain_at = poll_on(obs.datapath_mut(), n, false);
                Ok(Wake::Events)
            }
            () = tokio::time::sleep_until(attribute_at.unwrap_or_else(far)), if attribute_at.is_some() => {
                Ok(Wake::Attribute)
            }
            _ = ticker.tick() => Ok(Wake::Tick),
            change = async {
                match follow.as_mut() {
                    Some(f) => f.next().await,
                    None => std::future::pending().await,
                }
            }, if follow.is_some() => Ok(Wake::Change(change.context("following links and Docker")?)),
            () = std::future::ready(()), if pending => Ok(Wake::AttachPending),
            done = async {
                match job.as_mut() {
                    Some(t) => t.await,
                    None => std::future::pending().await,
                }
            }, if attaching => {
                *job = None;
                Ok(Wake::Attached(done))
            }
            item = async {
                match peers.as_mut() {
                    Some(p) => p.recv().await,
                    None => std::future::pending().await,
                }
            }, if peers.is_some() => Ok(Wake::Peer(item)),
        }
    }

    /// Does what `wake` asks for.
    pub async fn handle(&mut self, wake: Wake) -> anyhow::Result<Handled> {
        let mut handled = Handled::default();
        match wake {
            Wake::Events => {}
            Wake::Attribute => {
                self.attribute_at = None;
                self.pipeline.attribute_pending().await?;
                self.more = self.pipeline.flush()? && !self.pipeline.full();
            }
            Wake::Tick => {
                handled.tick = true;
                self.tick().await?;
            }
            Wake::Change(change) => {
                let mut change = Some(change);
                while let Some(c) = change.take() {
                    self.on_change(c, &mut handled)?;
                    change = match self.follow.as_mut() {
                        Some(f) => f.try_link().context("reading link changes")?,
                        None => None,
                    };
                }
            }
            Wake::AttachPending => {
                // Every new port already announced is covered before this one is attached.
                if let Some(f) = self.follow.as_mut() {
                    let mut queued = Vec::new();
                    while let Some(c) = f.try_link().context("reading link changes")? {
                        queued.push(c);
                    }
                    for c in queued {
                        self.on_change(c, &mut handled)?;
                    }
                }
                if let Some(job) = self.obs.next_attach_job() {
                    self.attaching = Some(tokio::task::spawn_blocking(move || job.run()));
                }
            }
            Wake::Attached(done) => {
                self.obs
                    .finish_attach(done.context("attaching a new port")?);
            }
            Wake::Peer(item) => {
                self.pipeline.peer(&item);
                // What else the peers sent meanwhile, in one wake (bounded, so that the
                // ring and the tick are not kept waiting under a peer's flood).
                if let Some(peers) = self.peers.as_mut() {
                    for _ in 0..PEER_BATCH {
                        let Some(item) = peers.try_recv() else { break };
                        self.pipeline.peer(&item);
                    }
                }
            }
        }
        if self.pipeline.has_pending_drops() && self.attribute_at.is_none() {
            // Let the firewall counters settle, then read them once for the batch.
            self.attribute_at = Some(tokio::time::Instant::now() + ATTRIBUTE_AFTER);
        }
        Ok(handled)
    }

    async fn tick(&mut self) -> anyhow::Result<()> {
        self.ticks += 1;
        if self.ticks.is_multiple_of(VERIFY_EVERY_TICKS) {
            self.obs.verify(None);
        }
        self.obs.expire_cover();
        let p = &mut self.pipeline;
        p.release_if_due()?;
        if p.holding() {
            // A veth's owner is still unknown: ask Docker again.
            if let Some(f) = self.follow.as_mut() {
                f.rescan_soon();
            }
        }
        let lag = match self.peers {
            Some(_) => crate::api::peer::PEER_LAG.as_nanos() as u64,
            None => 0,
        };
        p.poll_journeys(Clock::monotonic_now().saturating_sub(lag))?;
        self.topo_events.poll();
        p.topology(self.topo_events.take())?;
        self.more = p.flush()? && !p.full();
        Ok(())
    }

    /// Acts on one change of links or of Docker.
    fn on_change(&mut self, change: Change, handled: &mut Handled) -> anyhow::Result<()> {
        let Session {
            obs,
            ring,
            pipeline: p,
            topo_events,
            more,
            ..
        } = self;
        match change {
            Change::LinkGone { ifindex } => {
                // Events already queued for it are shown first, with its labels.
                *more = drain(ring.get_mut(), p)?.0;
                topo_events.gone(obs.forget(ifindex).into_iter().collect(), &p.topo);
            }
            Change::Link(link) => {
                if !obs.note_new_port(&link, &p.topo) {
                    // A change of a link netlab observes (tcpdump turning promiscuous mode
                    // on, say): check that its hooks still run netlab's programs.
                    obs.verify(Some(link.ifindex));
                }
                p.hold();
            }
            Change::Overrun => p.hold(),
            Change::Engine { connected } => {
                handled.engine = Some(connected);
                topo_events.engine(connected, None);
            }
            Change::Docker(h) => topo_events.docker(h),
            Change::Rescanned { topo: t, started } => {
                *more = drain(ring.get_mut(), p)?.0;
                handled.rescanned = Some(Arc::clone(&p.topo));
                let done = obs.reconcile(&t);
                topo_events.gone(done.forgotten, &p.topo);
                topo_events.unobserved(done.failed, &t);
                topo_events.rescanned(&t, |i| obs.observes(i));
                p.set_scanned_topology(Arc::new(*t), started)?;
            }
        }
        p.topology(topo_events.take())
    }

    /// Ends the session: detaches (so the counters are final), then hands what was
    /// already queued to the outputs, attributes the last drops, finishes every journey
    /// and closes the outputs. Pinned attachments (the daemon's) stay.
    pub async fn finish(&mut self) -> anyhow::Result<()> {
        self.obs.detach_all();
        if let Some(lost) = self.peers.as_ref().map(crate::api::peer::Peers::lost) {
            if lost > 0 {
                log::warn!(
                    "{lost} sightings of peers were left out of journeys: they came faster \
                     than they could be joined"
                );
            }
        }
        if self.more {
            self.topo_events.finish();
            let p = &mut self.pipeline;
            p.topology(self.topo_events.take())?;
            drain(self.ring.get_mut(), p)?;
            p.release()?;
            p.attribute_pending().await?;
            p.flush_journeys()?;
        }
        self.pipeline.finish()?;
        self.pipeline.flush()?;
        Ok(())
    }

    /// The exact counters so far, with the drops by reason, the frees that are not drops,
    /// and the journeys' statistics of the pairs `pairs` keeps.
    pub fn summary(&self, pairs: impl Fn(&PairStats) -> bool) -> anyhow::Result<Summary> {
        let p = &self.pipeline;
        let rows = self.obs.counter_rows()?;
        let delivery = self.obs.datapath().delivery()?;
        let drops: Vec<(String, u64)> = match &p.drops {
            Some(ctx) => self
                .obs
                .datapath()
                .drop_counts()?
                .into_iter()
                .map(|(r, n)| (ctx.reasons.name(r), n))
                .collect(),
            None => Vec::new(),
        };
        let stats: Vec<PairStats> = p
            .journeys
            .as_ref()
            .map(|c| c.stats())
            .unwrap_or_default()
            .into_iter()
            .filter(|s| pairs(s))
            .collect();
        let vxlan = self.obs.vxlan_rows(&p.topo)?;
        let mut s = Summary::new(rows, delivery, p.printed())
            .with_drops(drops)
            .with_vxlan(vxlan);
        if let Some(t) = p.output::<crate::model::tally::Tallies>() {
            s = s.with_not_drops(&t.not_drops);
        }
        Ok(s.with_pairs(stats))
    }
}

/// A time that never comes (for a timer that is off).
fn far() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
}

/// How often the reader drains the ring while it polls: `RING_WAKE_NS`.
const RING_WAKE: Duration = Duration::from_nanos(netlab_common::RING_WAKE_NS);

/// How long the reader polls on after the last record it read. Records that come closer
/// together than this never wake it: under a steady stream, or a sampled one, the programs
/// pay for no wake-up at all (an interrupt on their CPU each, and a VM exit on a guest).
const POLL_LINGER_NS: u64 = 250_000_000;

/// After a drain that read `read` records (`woken`: the programs woke the reader for it),
/// publishes how long the reader polls on and returns when it drains next (`None`: not
/// until a program wakes it). See [`after_drain`].
fn poll_on(dp: &mut Datapath, read: usize, woken: bool) -> Option<tokio::time::Instant> {
    let now = crate::kernel::clock::Clock::monotonic_now();
    let (next, publish) = after_drain(read, woken, now, dp.ring_poll_until());
    if let Some(until) = publish {
        if let Err(e) = dp.set_ring_poll_until(until) {
            log::debug!("{e}: the programs wake the reader for each record");
        }
    }
    next.map(|d| tokio::time::Instant::now() + d)
}

/// The reader's side of the wake-up protocol ([`netlab_common::MAP_RING_WAKE`]). After a
/// drain at `now` (CLOCK_MONOTONIC ns) that read `read` records, given the time the
/// programs take the reader to poll until (`until`, `None`: unreadable): when to drain next
/// and what to publish as that time.
///
/// - Records read: poll on, [`POLL_LINGER_NS`] from now, published when the programs'
///   time would run out within half of that (each publish is a system call), and always
///   after a wake-up (the waking program set it to just `RING_WAKE` on).
/// - Nothing read: drain every `RING_WAKE` until a drain at least `RING_WAKE` past
///   `until`, then stop. A program that did not wake the reader saw a time past its own
///   `now`: its record is committed microseconds later, long before that last drain,
///   which reads it if no earlier one did. After it, `until` is over and each record
///   wakes the reader.
///
/// So while polling no record waits for the reader longer than `RING_WAKE` (twice that
/// if its commit races the drain meant for it), plus the time to get the CPU.
fn after_drain(
    read: usize,
    woken: bool,
    now: u64,
    until: Option<u64>,
) -> (Option<Duration>, Option<u64>) {
    if read > 0 {
        let stale = until.is_none_or(|u| u < now + POLL_LINGER_NS / 2);
        return (
            Some(RING_WAKE),
            (woken || stale).then_some(now + POLL_LINGER_NS),
        );
    }
    match until {
        Some(u) if now >= u.saturating_add(netlab_common::RING_WAKE_NS) => (None, None),
        // Polling, or cannot tell: drain again one interval on.
        _ => (Some(RING_WAKE), None),
    }
}

/// Reads every record available now. Returns `false` once no more output is wanted, and
/// how many records it read.
fn drain(ring: &mut RingBuf<MapData>, p: &mut Pipeline) -> anyhow::Result<(bool, usize)> {
    let mut n = 0;
    while let Some(item) = ring.next() {
        p.record(&item)?;
        drop(item);
        n += 1;
        if p.full() {
            break;
        }
    }
    Ok((p.flush()? && !p.full(), n))
}

/// Starts the programs that count a new bridge port's packets until its own are attached;
/// without them (an old kernel, no bridge module), says what that means, once.
fn enable_cover(dp: &mut Datapath) {
    if let Err(e) = dp.enable_cover() {
        log::info!(
            "{:#}: a new veth's packets are counted from when its programs are attached (tens of milliseconds after it joins its bridge)",
            anyhow::Error::from(e)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_polls_while_records_come_and_stops_a_wake_interval_after() {
        const MS: u64 = 1_000_000;
        let wake = netlab_common::RING_WAKE_NS;
        let now = 10_000 * MS;
        // Woken with records: poll on, and say so (the waking program set `until` to
        // just one interval on).
        let (next, publish) = after_drain(3, true, now, Some(now + wake));
        assert_eq!(next, Some(RING_WAKE));
        assert_eq!(publish, Some(now + POLL_LINGER_NS));
        // A timed drain with records while the published time is far off: no system call.
        let (next, publish) = after_drain(5, false, now + 10 * MS, Some(now + POLL_LINGER_NS));
        assert_eq!((next, publish), (Some(RING_WAKE), None));
        // ... and once it runs out within half the linger, published again.
        let later = now + POLL_LINGER_NS / 2 + MS;
        let (_, publish) = after_drain(1, false, later, Some(now + POLL_LINGER_NS));
        assert_eq!(publish, Some(later + POLL_LINGER_NS));
        // Nothing read while polling: drain again one interval on, publish nothing.
        let until = now + POLL_LINGER_NS;
        assert_eq!(
            after_drain(0, false, until - MS, Some(until)),
            (Some(RING_WAKE), None)
        );
        // Past `until` but within one interval of it: a record submitted just before it
        // may not be committed yet, so drain once more.
        assert_eq!(
            after_drain(0, false, until + wake - 1, Some(until)),
            (Some(RING_WAKE), None)
        );
        // One interval past `until` and nothing came: stop, the next record wakes it.
        assert_eq!(
            after_drain(0, false, until + wake, Some(until)),
            (None, None)
        );
        // The time unreadable: keep draining, and publish when records come.
        assert_eq!(after_drain(0, false, now, None), (Some(RING_WAKE), None));
        assert_eq!(
            after_drain(2, false, now, None).1,
            Some(now + POLL_LINGER_NS)
        );
    }
}

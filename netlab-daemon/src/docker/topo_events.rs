//! Topology events: interfaces observed and gone (with what they counted), containers
//! started, stopped and removed, networks created and removed, the Docker engine lost and
//! regained, interfaces netlab could not observe. [`Tracker`] turns link changes, Docker
//! events and rescans into [`TopoEvent`]s, one per thing that happened.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bollard::models::{EventMessage, EventMessageTypeEnum};
use serde::Serialize;

use crate::docker::discover::Forgotten;
use crate::docker::topology::{ObservedIface, Role, Topology};
use crate::model::kind::{Direction, Kind};

/// The `--kind` family of every topology event.
pub const FAMILY: &str = "topology";

/// Every topology event kind (what `--kind` accepts besides the family).
pub const KINDS: [&str; 10] = [
    "iface-observed",
    "iface-gone",
    "iface-unobserved",
    "container-started",
    "container-stopped",
    "container-removed",
    "network-created",
    "network-removed",
    "engine-lost",
    "engine-regained",
];

/// How long a gone interface waits for the Docker event that says why (a container's
/// `destroy` comes a moment after its veth is deleted), and a started container for the
/// rescan that names its networks.
pub const EXPLAIN_WITHIN: Duration = Duration::from_secs(2);

/// How long a new hand-made veth's labels must have been known before it is announced.
const MANUAL_SETTLE: Duration = Duration::from_millis(500);

/// A counter of an interface, as the summary's counter rows have it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Counted {
    pub direction: &'static str,
    pub kind: &'static str,
    pub packets: u64,
}

/// One topology event (the JSON line is its serde form).
#[derive(Clone, Debug, Serialize)]
pub struct TopoEvent {
    /// Unix time, nanoseconds (written as RFC 3339 in `ts`).
    #[serde(skip)]
    pub at: crate::kernel::clock::UnixNanos,
    pub ts: String,
    /// One of [`KINDS`].
    pub kind: &'static str,
    /// The interface (interface events), as packet events describe theirs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iface: Option<IfaceInfo>,
    /// The container the event is about (or whose interface it is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The network(s) the event is about (or the interface's network).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// Why an interface went: `container-removed`, `container-stopped`,
    /// `network-disconnected`, `network-removed`, `link-deleted`, `no-longer-observed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// What a gone interface counted while it was observed (exactly the counters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counted: Option<Vec<Counted>>,
    /// Why an interface could not be observed; the engine's error when it was lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A container's image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// An interface as topology events show it (the fields of a packet event's `iface`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IfaceInfo {
    pub name: String,
    pub ifindex: u32,
    pub role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// For a veth, the interface at the other end (inside the container).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
}

impl IfaceInfo {
    fn of(o: &ObservedIface) -> Self {
        Self {
            name: o.name.clone(),
            ifindex: o.ifindex,
            role: o.role.name(),
            container: o.container.clone(),
            network: o.network.clone(),
            bridge: o.bridge.clone(),
            peer: o.peer.clone(),
        }
    }

    fn unknown(ifindex: u32, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ifindex,
            role: Role::Veth.name(),
            container: None,
            network: None,
            bridge: None,
            peer: None,
        }
    }

    /// `veth of AppDev (devops, br-…)`, as packet lines name it.
    fn describe(&self, out: &mut String) {
        crate::model::event::IfaceView {
            name: &self.name,
            ifindex: self.ifindex,
            role: self.role,
            container: self.container.as_deref(),
            network: self.network.as_deref(),
            bridge: self.bridge.as_deref(),
            peer: self.peer.as_deref(),
        }
        .describe(out);
    }
}

impl TopoEvent {
    fn new(kind: &'static str) -> Self {
        let at = crate::kernel::clock::Clock::new()
            .to_unix(crate::kernel::clock::Clock::monotonic_now());
        Self {
            at,
            ts: String::from_utf8_lossy(&at.rfc3339()).into_owned(),
            kind,
            iface: None,
            container: None,
            networks: Vec::new(),
            reason: None,
            counted: None,
            error: None,
            image: None,
        }
    }

    fn on_iface(kind: &'static str, i: IfaceInfo) -> Self {
        let mut e = Self::new(kind);
        e.container = i.container.clone();
        e.networks = i.network.iter().cloned().collect();
        e.iface = Some(i);
        e
    }

    /// The JSON line, newline included.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(&mut *out, self)?;
        out.push(b'\n');
        Ok(())
    }

    /// The line a person reads, newline included.
    pub fn write_human(&self, out: &mut String) {
        let _ = write!(out, "{}  ", self.at.time_of_day());
        let container = self.container.as_deref().unwrap_or("?");
        let networks = self.networks.join(", ");
        match self.kind {
            "iface-observed" | "iface-gone" | "iface-unobserved" => {
                let Some(i) = &self.iface else { return };
                i.describe(out);
                match self.kind {
                    "iface-observed" => {
                        let _ = write!(out, " observed ({}, {})", i.name, i.role);
                    }
                    "iface-gone" => {
                        out.push_str(" gone: ");
                        out.push_str(&self.why());
                        out.push_str("; it counted ");
                        counted_text(self.counted.as_deref().unwrap_or_default(), out);
                    }
                    _ => {
                        let _ = write!(
                            out,
                            " ({}) cannot be observed: {}",
                            i.name,
                            self.error.as_deref().unwrap_or("unknown error")
                        );
                    }
                }
            }
            "container-started" => {
                let _ = write!(out, "container {container} started");
                if !networks.is_empty() {
                    let _ = write!(out, " on {networks}");
                }
                if let Some(img) = &self.image {
                    let _ = write!(out, " (image {img})");
                }
            }
            "container-stopped" | "container-removed" => {
                let verb = &self.kind["container-".len()..];
                let _ = write!(out, "container {container} {verb}");
                if !networks.is_empty() {
                    let _ = write!(out, " (was on {networks})");
                }
            }
            "network-created" | "network-removed" => {
                let verb = &self.kind["network-".len()..];
                let _ = write!(out, "network {networks} {verb}");
            }
            "engine-lost" => {
                out.push_str(
                    "Docker engine connection lost: labels stay as they were until it answers again",
                );
                if let Some(e) = &self.error {
                    let _ = write!(out, " ({e})");
                }
            }
            "engine-regained" => {
                out.push_str("Docker engine connection regained: labels are up to date again")
            }
            k => out.push_str(k),
        }
        out.push('\n');
    }

    /// Why an interface went, in words.
    fn why(&self) -> String {
        let c = self.container.as_deref().unwrap_or("?");
        let n = self.networks.first().map_or("?", String::as_str);
        match self.reason {
            Some("container-removed") => format!("container {c} removed"),
            Some("container-stopped") => format!("container {c} stopped"),
            Some("network-disconnected") => format!("{c} disconnected from {n}"),
            Some("network-removed") => format!("network {n} removed"),
            Some("link-deleted") => "link deleted by hand".to_owned(),
            Some("no-longer-observed") => "no longer on an observed bridge".to_owned(),
            Some(r) => r.to_owned(),
            None => "gone".to_owned(),
        }
    }

    /// Container names filters look at.
    pub fn filter_containers(&self) -> [Option<&str>; 3] {
        [
            self.container.as_deref(),
            self.iface.as_ref().and_then(|i| i.container.as_deref()),
            None,
        ]
    }

    /// Network names filters look at.
    pub fn filter_networks(&self) -> [Option<&str>; 3] {
        [
            self.networks.first().map(String::as_str),
            self.networks.get(1).map(String::as_str),
            self.networks.get(2).map(String::as_str),
        ]
    }

    /// Engine events concern everything: `--container` and `--network` keep them.
    pub fn about_everything(&self) -> bool {
        self.kind.starts_with("engine-")
    }
}

/// `12 echo requests, 12 replies, 3 ARP` (both directions together); `nothing`.
fn counted_text(rows: &[Counted], out: &mut String) {
    let label = |kind: &str| -> String {
        match kind {
            "icmp-echo-request" => "echo requests".into(),
            "icmp-echo-reply" => "replies".into(),
            "icmp6-echo-request" => "ICMPv6 echo requests".into(),
            "icmp6-echo-reply" => "ICMPv6 replies".into(),
            k => match Kind::ALL.iter().find(|x| x.name() == k).map(|x| x.family()) {
                Some("arp") => "ARP".into(),
                Some("ndp") => "NDP".into(),
                _ => k.to_owned(),
            },
        }
    };
    let mut sums: Vec<(String, u64)> = Vec::new();
    for k in Kind::ALL {
        let n: u64 = rows
            .iter()
            .filter(|r| r.kind == k.name())
            .map(|r| r.packets)
            .sum();
        if n == 0 {
            continue;
        }
        let l = label(k.name());
        match sums.iter_mut().find(|(x, _)| *x == l) {
            Some((_, m)) => *m += n,
            None => sums.push((l, n)),
        }
    }
    // Echoes first: what a person counts with ping.
    let rank = |l: &str| {
        [
            "echo requests",
            "replies",
            "ICMPv6 echo requests",
            "ICMPv6 replies",
        ]
        .iter()
        .position(|x| *x == l)
        .unwrap_or(4)
    };
    sums.sort_by_key(|(l, _)| rank(l));
    if sums.is_empty() {
        out.push_str("nothing");
    }
    for (i, (l, n)) in sums.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        // One echo request, one reply: the singular.
        let one = match l.as_str() {
            "echo requests" => Some("echo request"),
            "replies" => Some("reply"),
            "ICMPv6 echo requests" => Some("ICMPv6 echo request"),
            "ICMPv6 replies" => Some("ICMPv6 reply"),
            _ => None,
        };
        match one {
            Some(singular) if *n == 1 => {
                let _ = write!(out, "1 {singular}");
            }
            _ => {
                let _ = write!(out, "{n} {l}");
            }
        }
    }
}

/// What a Docker event says happened, for topology events and for explaining why an
/// interface went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Happening {
    ContainerStarted {
        id: String,
        name: String,
        image: Option<String>,
    },
    ContainerDied {
        id: String,
        name: String,
    },
    ContainerDestroyed {
        id: String,
        name: String,
    },
    NetworkCreated {
        name: String,
        driver: Option<String>,
    },
    NetworkDestroyed {
        name: String,
    },
    /// Container `container` (its id) left network `network`.
    Disconnected {
        network: String,
        container: String,
    },
}

impl Happening {
    /// The happening of a Docker event, when it is one.
    pub fn of(ev: &EventMessage) -> Option<Self> {
        let actor = ev.actor.as_ref()?;
        let attr = |k: &str| actor.attributes.as_ref().and_then(|a| a.get(k)).cloned();
        let id = actor.id.clone().unwrap_or_default();
        let action = ev.action.as_deref()?;
        match ev.typ? {
            EventMessageTypeEnum::CONTAINER => {
                let name = attr("name").unwrap_or_else(|| id.chars().take(12).collect());
                match action {
                    "start" => Some(Self::ContainerStarted {
                        id,
                        name,
                        image: attr("image"),
                    }),
                    "die" => Some(Self::ContainerDied { id, name }),
                    "destroy" => Some(Self::ContainerDestroyed { id, name }),
                    _ => None,
                }
            }
            EventMessageTypeEnum::NETWORK => {
                let name = attr("name")?;
                match action {
                    "create" => Some(Self::NetworkCreated {
                        name,
                        driver: attr("type"),
                    }),
                    "destroy" => Some(Self::NetworkDestroyed { name }),
                    "disconnect" => Some(Self::Disconnected {
                        network: name,
                        container: attr("container")?,
                    }),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// A gone interface waiting for its reason.
struct PendingGone {
    iface: IfaceInfo,
    counted: Vec<Counted>,
    /// The link still exists (the topology stopped observing it).
    link_exists: bool,
    /// The interface's container still had its network namespace when the link went:
    /// neither its stop nor its removal took the link with it.
    owner_alive: bool,
    since: Instant,
}

/// A started container waiting for a rescan to name its networks.
struct PendingStart {
    id: String,
    name: String,
    image: Option<String>,
    since: Instant,
}

/// Container fates seen in Docker events, by name (lowercase).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Stopped,
    Removed,
}

/// Turns what following reports into topology events.
#[derive(Default)]
pub struct Tracker {
    /// Interfaces known as observed, with their latest labels.
    known: HashMap<u32, IfaceInfo>,
    /// Containers' networks by id, from the latest topology.
    networks_of: HashMap<String, (String, Vec<String>)>,
    gone: Vec<PendingGone>,
    starts: Vec<PendingStart>,
    fates: HashMap<String, (Fate, Instant)>,
    /// (container name lowercase, network name lowercase) disconnected.
    disconnects: HashMap<(String, String), Instant>,
    networks_removed: HashMap<String, Instant>,
    /// Veths observed before their container is known (a hand-made leg whose other end
    /// is not moved into a container yet), announced once it is, or after a while.
    waiting: HashMap<u32, (IfaceInfo, Instant)>,
    /// Interfaces already said to be unobservable (said once until observed).
    unobserved_said: HashMap<u32, String>,
    out: Vec<TopoEvent>,
}

impl Tracker {
    /// Starts from what is observed at start (no event for it: the start line says it).
    pub fn new(topo: &Topology) -> Self {
        let mut t = Self::default();
        t.learn(topo);
        for o in &topo.observed {
            t.known.insert(o.ifindex, IfaceInfo::of(o));
        }
        t
    }

    fn learn(&mut self, topo: &Topology) {
        for c in &topo.containers {
            let nets = c.interfaces.iter().filter_map(|i| i.network.clone()).fold(
                Vec::new(),
                |mut v, n| {
                    if !v.contains(&n) {
                        v.push(n);
                    }
                    v
                },
            );
            // A container scanned while it stops may show no interface: what it was on
            // stays known until it is removed.
            if nets.is_empty() && self.networks_of.contains_key(&c.id) {
                continue;
            }
            self.networks_of
                .insert(c.id.clone(), (c.name.clone(), nets));
        }
    }

    /// Interfaces no longer observed (`labels` is the topology they were last seen in),
    /// with their final counters.
    pub fn gone(&mut self, forgotten: Vec<Forgotten>, labels: &Topology) {
        for f in forgotten {
            // Observed before it was announced: announced now, so that it was seen.
            if let Some((info, _)) = self.waiting.remove(&f.ifindex) {
                if info.name == f.name {
                    self.announce(info);
                }
            }
            let iface = self
                .known
                .remove(&f.ifindex)
                .filter(|i| i.name == f.name)
                .or_else(|| {
                    labels
                        .iface(f.ifindex)
                        .filter(|o| o.name == f.name)
                        .map(IfaceInfo::of)
                })
                .unwrap_or_else(|| IfaceInfo::unknown(f.ifindex, &f.name));
            let counted = f
                .counters
                .into_iter()
                .map(|((d, k), n)| Counted {
                    direction: direction_name(d),
                    kind: k.name(),
                    packets: n,
                })
                .collect();
            let owner_alive = iface
                .container
                .as_deref()
                .and_then(|c| labels.container_named(c))
                .is_some_and(|c| has_netns(c.pid));
            self.gone.push(PendingGone {
                iface,
                counted,
                owner_alive,
                link_exists: crate::kernel::attach::ifindex(&f.name) == Some(f.ifindex),
                since: Instant::now(),
            });
        }
        self.resolve(false);
    }

    /// Interfaces that could not be attached, with why.
    pub fn unobserved(&mut self, failed: Vec<(u32, String, String)>, topo: &Topology) {
        for (idx, name, error) in failed {
            if self.unobserved_said.get(&idx) == Some(&name) {
                continue;
            }
            self.unobserved_said.insert(idx, name.clone());
            let info = topo
                .iface(idx)
                .map(IfaceInfo::of)
                .unwrap_or_else(|| IfaceInfo::unknown(idx, &name));
            let mut e = TopoEvent::on_iface("iface-unobserved", info);
            e.error = Some(error);
            self.out.push(e);
        }
    }

    /// A rescan finished and the attachments follow `topo`: interfaces newly observed
    /// (`observed(ifindex)` says whether netlab counts it) are announced, labels updated.
    pub fn rescanned(&mut self, topo: &Topology, observed: impl Fn(u32) -> bool) {
        self.learn(topo);
        for o in &topo.observed {
            if o.unresolved || !observed(o.ifindex) {
                continue;
            }
            let info = IfaceInfo::of(o);
            match self.known.get(&o.ifindex) {
                Some(k) if k.name == o.name => {
                    // A container's veth scanned while the container stops loses its
                    // owner: the labels it had say better what went.
                    if info.container.is_some() || k.container.is_none() {
                        self.known.insert(o.ifindex, info);
                    }
                }
                _ => {
                    let veth = matches!(o.role, Role::ContainerVeth | Role::ManualVeth);
                    let since = match self.waiting.get(&o.ifindex) {
                        Some((w, t)) if w.name == o.name => *t,
                        _ => Instant::now(),
                    };
                    // A hand-made leg is announced once its far end had time to be
                    // moved and renamed (`ip link set ... netns`, `name eth1`).
                    let wait = if o.container.is_none() {
                        EXPLAIN_WITHIN
                    } else if o.role == Role::ManualVeth {
                        MANUAL_SETTLE
                    } else {
                        Duration::ZERO
                    };
                    if veth && since.elapsed() < wait {
                        self.waiting.insert(o.ifindex, (info, since));
                        continue;
                    }
                    self.waiting.remove(&o.ifindex);
                    self.announce(info);
                }
            }
        }
        self.resolve(false);
    }

    fn announce(&mut self, info: IfaceInfo) {
        self.unobserved_said.remove(&info.ifindex);
        self.known.insert(info.ifindex, info.clone());
        self.out.push(TopoEvent::on_iface("iface-observed", info));
    }

    /// A Docker event.
    pub fn docker(&mut self, h: Happening) {
        let now = Instant::now();
        match h {
            Happening::ContainerStarted { id, name, image } => {
                self.fates.remove(&name.to_ascii_lowercase());
                self.starts.push(PendingStart {
                    id,
                    name,
                    image,
                    since: now,
                });
            }
            Happening::ContainerDied { id, name } => {
                self.say_start_of(&id);
                let key = name.to_ascii_lowercase();
                if !matches!(self.fates.get(&key), Some((Fate::Removed, _))) {
                    self.fates.insert(key, (Fate::Stopped, now));
                }
                self.out
                    .push(self.container_event("container-stopped", &id, name));
            }
            Happening::ContainerDestroyed { id, name } => {
                self.say_start_of(&id);
                self.fates
                    .insert(name.to_ascii_lowercase(), (Fate::Removed, now));
                self.out
                    .push(self.container_event("container-removed", &id, name));
                self.networks_of.remove(&id);
            }
            Happening::NetworkCreated { name, .. } => {
                self.networks_removed.remove(&name.to_ascii_lowercase());
                let mut e = TopoEvent::new("network-created");
                e.networks = vec![name];
                self.out.push(e);
            }
            Happening::NetworkDestroyed { name } => {
                self.networks_removed.insert(name.to_ascii_lowercase(), now);
                let mut e = TopoEvent::new("network-removed");
                e.networks = vec![name];
                self.out.push(e);
            }
            Happening::Disconnected { network, container } => {
                if let Some((name, _)) = self.networks_of.get(&container) {
                    self.disconnects.insert(
                        (name.to_ascii_lowercase(), network.to_ascii_lowercase()),
                        now,
                    );
                }
            }
        }
        self.resolve(false);
    }

    /// The Docker engine stopped answering, or answers again.
    pub fn engine(&mut self, connected: bool, error: Option<String>) {
        let mut e = TopoEvent::new(if connected {
            "engine-regained"
        } else {
            "engine-lost"
        });
        e.error = error;
        self.out.push(e);
    }

    fn container_event(&self, kind: &'static str, id: &str, name: String) -> TopoEvent {
        let mut e = TopoEvent::new(kind);
        e.networks = self
            .networks_of
            .get(id)
            .map(|(_, n)| n.clone())
            .unwrap_or_default();
        e.container = Some(name);
        e
    }

    /// Says a pending start of container `id` now (something else happens to it).
    fn say_start_of(&mut self, id: &str) {
        if let Some(i) = self.starts.iter().position(|s| s.id == id) {
            let s = self.starts.remove(i);
            let mut e = self.container_event("container-started", &s.id, s.name);
            e.image = s.image;
            self.out.push(e);
        }
    }

    /// Events ready to go out.
    pub fn take(&mut self) -> Vec<TopoEvent> {
        std::mem::take(&mut self.out)
    }

    /// Says what waited long enough for a reason (call periodically).
    pub fn poll(&mut self) {
        self.resolve(false);
    }

    /// Says everything that waits, with what is known now (at exit).
    pub fn finish(&mut self) {
        self.resolve(true);
    }

    fn resolve(&mut self, all: bool) {
        let now = Instant::now();
        // Started containers, once a rescan names their networks (or after a while).
        let starts = std::mem::take(&mut self.starts);
        for s in starts {
            if all
                || self
                    .networks_of
                    .get(&s.id)
                    .is_some_and(|(_, n)| !n.is_empty())
                || s.since.elapsed() >= EXPLAIN_WITHIN
            {
                let mut e = self.container_event("container-started", &s.id, s.name);
                e.image = s.image;
                self.out.push(e);
            } else {
                self.starts.push(s);
            }
        }
        let due: Vec<u32> = self
            .waiting
            .iter()
            .filter(|(_, (i, t))| {
                let wait = if i.container.is_none() {
                    EXPLAIN_WITHIN
                } else {
                    MANUAL_SETTLE
                };
                all || t.elapsed() >= wait
            })
            .map(|(i, _)| *i)
            .collect();
        for i in due {
            if let Some((info, _)) = self.waiting.remove(&i) {
                self.announce(info);
            }
        }
        let gone = std::mem::take(&mut self.gone);
        for g in gone {
            let due = all || g.since.elapsed() >= EXPLAIN_WITHIN;
            let c = g.iface.container.as_deref().map(str::to_ascii_lowercase);
            let n = g.iface.network.as_deref().map(str::to_ascii_lowercase);
            let fate = c.as_ref().and_then(|c| self.fates.get(c)).map(|f| f.0);
            let disconnected = match (&c, &n) {
                (Some(c), Some(n)) => self.disconnects.contains_key(&(c.clone(), n.clone())),
                _ => false,
            };
            let net_removed = n
                .as_ref()
                .is_some_and(|n| self.networks_removed.contains_key(n));
            let bridge = g.iface.role == Role::Bridge.name();
            // A container that stops or is removed is disconnected from its networks
            // too (Docker may say so first): a disconnection explains a departure only
            // if, after a while, the container neither stopped nor went.
            let manual = g.iface.role == Role::ManualVeth.name();
            let reason = if bridge && net_removed {
                Some("network-removed")
            } else if g.owner_alive {
                // Its container was still there: someone deleted the link, or Docker
                // disconnected the container from the network (it says so).
                if disconnected && !manual {
                    Some("network-disconnected")
                } else if manual || due {
                    Some(if g.link_exists {
                        "no-longer-observed"
                    } else {
                        "link-deleted"
                    })
                } else {
                    None
                }
            } else if fate == Some(Fate::Removed) {
                Some("container-removed")
            } else if !due {
                None
            } else if fate == Some(Fate::Stopped) {
                Some("container-stopped")
            } else if disconnected {
                Some("network-disconnected")
            } else if g.link_exists {
                Some("no-longer-observed")
            } else {
                Some("link-deleted")
            };
            match reason {
                Some(r) => {
                    let mut e = TopoEvent::on_iface("iface-gone", g.iface);
                    e.reason = Some(r);
                    e.counted = Some(g.counted);
                    self.out.push(e);
                }
                None => self.gone.push(g),
            }
        }
        // What explains a departure is kept a while, not forever.
        let keep = |t: &Instant| now.duration_since(*t) < Duration::from_secs(60);
        self.fates.retain(|_, (_, t)| keep(t));
        self.disconnects.retain(|_, t| keep(t));
        self.networks_removed.retain(|_, t| keep(t));
    }
}

/// Whether process `pid` still has a network namespace (a zombie has none).
fn has_netns(pid: u32) -> bool {
    pid != 0 && std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok()
}

fn direction_name(d: Direction) -> &'static str {
    d.name()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::filter::Filter;

    /// The course lab, its containers' processes gone (pid 0).
    fn lab() -> Topology {
        let (snap, links, scans) = crate::docker::topology::tests::course_lab();
        let mut t = Topology::build(Some(&snap), &links, &[], &scans);
        for c in &mut t.containers {
            c.pid = 0;
        }
        t
    }

    fn counters(
        rows: &[(Direction, Kind, u64)],
    ) -> std::collections::BTreeMap<(Direction, Kind), u64> {
        rows.iter().map(|(d, k, n)| ((*d, *k), *n)).collect()
    }

    #[test]
    fn one_echo_is_said_in_the_singular() {
        let row = |direction, kind, packets| Counted {
            direction,
            kind,
            packets,
        };
        let mut out = String::new();
        counted_text(
            &[
                row("egress", "icmp-echo-request", 1),
                row("ingress", "icmp-echo-reply", 1),
                row("ingress", "arp-request", 1),
            ],
            &mut out,
        );
        assert_eq!(out, "1 echo request, 1 reply, 1 ARP");
        out.clear();
        counted_text(&[row("egress", "icmp6-echo-request", 2)], &mut out);
        assert_eq!(out, "2 ICMPv6 echo requests");
        out.clear();
        counted_text(&[], &mut out);
        assert_eq!(out, "nothing");
    }

    #[test]
    fn a_removed_containers_veth_is_gone_with_its_counts() {
        let topo = lab();
        let mut t = Tracker::new(&topo);
        t.gone(
            vec![Forgotten {
                ifindex: 10,
                name: "veth1111111".into(),
                counters: counters(&[
                    (Direction::Ingress, Kind::IcmpEchoRequest, 12),
                    (Direction::Egress, Kind::IcmpEchoReply, 12),
                    (Direction::Ingress, Kind::ArpRequest, 2),
                    (Direction::Egress, Kind::ArpReply, 1),
                ]),
            }],
            &topo,
        );
        // Waits for Docker to say why.
        assert!(t.take().is_empty());
        t.docker(Happening::ContainerDied {
            id: "c-appdev".into(),
            name: "AppDev".into(),
        });
        let stopped = t.take();
        assert_eq!(
            stopped.len(),
            1,
            "only the stop, the veth waits for a removal"
        );
        assert_eq!(stopped[0].kind, "container-stopped");
        assert_eq!(stopped[0].networks, ["devops"]);
        t.docker(Happening::ContainerDestroyed {
            id: "c-appdev".into(),
            name: "AppDev".into(),
        });
        let out = t.take();
        let kinds: Vec<&str> = out.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["container-removed", "iface-gone"]);
        let gone = &out[1];
        assert_eq!(gone.reason, Some("container-removed"));
        assert_eq!(gone.container.as_deref(), Some("AppDev"));
        let mut text = String::new();
        gone.write_human(&mut text);
        assert!(
            text.ends_with(
                "veth of AppDev (devops, br-8be916360cbc) gone: container AppDev removed; it counted 12 echo requests, 12 replies, 3 ARP\n"
            ),
            "{text}"
        );
        let json: serde_json::Value = {
            let mut b = Vec::new();
            gone.write_json(&mut b).expect("json");
            serde_json::from_slice(&b).expect("valid json")
        };
        assert_eq!(json["kind"], "iface-gone");
        assert_eq!(json["iface"]["role"], "container-veth");
        assert_eq!(json["iface"]["name"], "veth1111111");
        assert_eq!(json["reason"], "container-removed");
        let total: u64 = json["counted"]
            .as_array()
            .expect("counted")
            .iter()
            .map(|r| r["packets"].as_u64().expect("packets"))
            .sum();
        assert_eq!(total, 27);
    }

    #[test]
    fn a_hand_made_leg_deleted_by_hand() {
        let topo = lab();
        let mut t = Tracker::new(&topo);
        t.gone(
            vec![Forgotten {
                ifindex: 12,
                name: "int_hote".into(),
                counters: Default::default(),
            }],
            &topo,
        );
        assert!(t.take().is_empty());
        t.finish();
        let out = t.take();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].reason, Some("link-deleted"));
        let mut text = String::new();
        out[0].write_human(&mut text);
        assert!(
            text.ends_with(
                "int_hote → AppProd eth1 (hand-made, devops, br-8be916360cbc) gone: link deleted by hand; it counted nothing\n"
            ),
            "{text}"
        );
        assert_eq!(out[0].iface.as_ref().map(|i| i.role), Some("manual-veth"));
    }

    #[test]
    fn a_leg_deleted_while_its_container_lives_is_deleted_by_hand() {
        let mut topo = lab();
        // AppProd's process: this one, which has a network namespace.
        for c in &mut topo.containers {
            c.pid = std::process::id();
        }
        let mut t = Tracker::new(&topo);
        t.gone(
            vec![Forgotten {
                ifindex: 12,
                name: "int_hote".into(),
                counters: Default::default(),
            }],
            &topo,
        );
        // Removed right after: that is not why the leg went.
        t.docker(Happening::ContainerDestroyed {
            id: "c-appprod".into(),
            name: "AppProd".into(),
        });
        let gone: Vec<_> = t
            .take()
            .into_iter()
            .filter(|e| e.kind == "iface-gone")
            .collect();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].reason, Some("link-deleted"));
    }

    #[test]
    fn new_interfaces_are_observed_once_and_starts_wait_for_networks() {
        let topo = lab();
        let mut t = Tracker::default();
        t.docker(Happening::ContainerStarted {
            id: "c-appprod".into(),
            name: "AppProd".into(),
            image: Some("netlab/sleeper".into()),
        });
        assert!(t.take().is_empty(), "its networks are not known yet");
        t.rescanned(&topo, |i| i != 11);
        let out = t.take();
        let started = out
            .iter()
            .find(|e| e.kind == "container-started")
            .expect("started");
        assert_eq!(started.networks, ["prod", "devops"]);
        let observed: Vec<&str> = out
            .iter()
            .filter(|e| e.kind == "iface-observed")
            .map(|e| e.iface.as_ref().map_or("", |i| i.name.as_str()))
            .collect();
        assert!(observed.contains(&"veth1111111") && !observed.contains(&"veth2222222"));
        assert!(
            !observed.contains(&"int_hote"),
            "a hand-made leg waits for its far end to settle"
        );
        t.rescanned(&topo, |_| true);
        let again: Vec<_> = t.take().into_iter().map(|e| e.kind).collect();
        assert_eq!(again, ["iface-observed"], "only the one not counted before");
        t.finish();
        let leg: Vec<_> = t.take();
        assert_eq!(leg.len(), 1);
        assert_eq!(
            leg[0].iface.as_ref().map(|i| i.name.as_str()),
            Some("int_hote")
        );
    }

    #[test]
    fn an_interface_not_attached_is_said_once_with_why() {
        let topo = lab();
        let mut t = Tracker::new(&topo);
        let failed = || vec![(10, "veth1111111".to_owned(), "attaching: busy".to_owned())];
        t.unobserved(failed(), &topo);
        t.unobserved(failed(), &topo);
        let out = t.take();
        assert_eq!(out.len(), 1, "said once");
        assert_eq!(out[0].kind, "iface-unobserved");
        assert_eq!(out[0].error.as_deref(), Some("attaching: busy"));
        let mut text = String::new();
        out[0].write_human(&mut text);
        assert!(
            text.ends_with("veth of AppDev (devops, br-8be916360cbc) (veth1111111) cannot be observed: attaching: busy\n"),
            "{text}"
        );
    }

    #[test]
    fn a_scan_of_a_stopping_container_does_not_erase_what_it_was() {
        let topo = lab();
        let mut t = Tracker::new(&topo);
        // Scanned while AppDev stops: Docker no longer lists it, its veth has no owner.
        let (snap, links, scans) = crate::docker::topology::tests::course_lab();
        let mut snap = snap;
        snap.containers.retain(|c| c.name != "AppDev");
        let stopping = Topology::build(Some(&snap), &links, &[], &scans);
        t.rescanned(&stopping, |_| true);
        t.gone(
            vec![Forgotten {
                ifindex: 10,
                name: "veth1111111".into(),
                counters: Default::default(),
            }],
            &stopping,
        );
        t.docker(Happening::ContainerDestroyed {
            id: "c-appdev".into(),
            name: "AppDev".into(),
        });
        let out = t.take();
        let removed = out
            .iter()
            .find(|e| e.kind == "container-removed")
            .expect("removed");
        assert_eq!(removed.networks, ["devops"]);
        let gone = out.iter().find(|e| e.kind == "iface-gone").expect("gone");
        assert_eq!(gone.container.as_deref(), Some("AppDev"));
        assert_eq!(gone.reason, Some("container-removed"));
    }

    #[test]
    fn filters_select_topology_events() {
        let mut removed = TopoEvent::new("container-removed");
        removed.container = Some("AppDev".into());
        removed.networks = vec!["devops".into()];
        let lost = TopoEvent::new("engine-lost");
        let f = |c: &[&str], n: &[&str], k: &[&str]| {
            let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
            Filter::new(&s(c), &s(n), &s(k)).expect("valid")
        };
        assert!(f(&[], &[], &[]).matches_topo(&removed));
        assert!(f(&[], &[], &["topology"]).matches_topo(&removed));
        assert!(f(&[], &[], &["container-removed"]).matches_topo(&removed));
        assert!(!f(&[], &[], &["iface-gone"]).matches_topo(&removed));
        assert!(!f(&[], &[], &["icmp"]).matches_topo(&removed));
        assert!(f(&["appdev"], &[], &[]).matches_topo(&removed));
        assert!(!f(&["AppProd"], &[], &[]).matches_topo(&removed));
        assert!(f(&[], &["DEVOPS"], &[]).matches_topo(&removed));
        assert!(!f(&[], &["prod"], &[]).matches_topo(&removed));
        assert!(f(&["AppProd"], &["prod"], &[]).matches_topo(&lost));
        assert!(!f(&[], &[], &["icmp"]).matches_topo(&lost));
    }
}

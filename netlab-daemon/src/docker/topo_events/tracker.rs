//! The [`Tracker`]: turns link changes, Docker events and rescans into topology events,
//! holding a gone interface until Docker says why it went and a started container until a
//! rescan names its networks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{Counted, Happening, IfaceInfo, TopoEvent, EXPLAIN_WITHIN};
use crate::docker::discover::Forgotten;
use crate::docker::topology::{Role, Topology};
use crate::model::kind::Direction;

/// How long a new hand-made veth's labels must have been known before it is announced.
const MANUAL_SETTLE: Duration = Duration::from_millis(500);

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
                    if veth && since.elapsed() < settle_time(&info) {
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
            self.say_start(s);
        }
    }

    /// Says that container `s` started, on the networks known for it now.
    fn say_start(&mut self, s: PendingStart) {
        let mut e = self.container_event("container-started", &s.id, s.name);
        e.image = s.image;
        self.out.push(e);
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
                self.say_start(s);
            } else {
                self.starts.push(s);
            }
        }
        let due: Vec<u32> = self
            .waiting
            .iter()
            .filter(|(_, (i, t))| all || t.elapsed() >= settle_time(i))
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
            // A fate told long before the link went (a stop before a restart) is not why.
            let fate = c
                .as_ref()
                .and_then(|c| self.fates.get(c))
                .filter(|(_, at)| *at + EXPLAIN_WITHIN >= g.since)
                .map(|f| f.0);
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
            } else if g.owner_alive && (manual || fate.is_none()) {
                // Docker may tell that the container stopped or went after its veth did:
                // only then is a container veth's going not explained by it.
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

/// How long a newly observed veth waits before it is announced: one whose container is not
/// known yet, for a rescan to name it; a hand-made leg, for its far end to be moved and
/// renamed (`ip link set ... netns`, `name eth1`); any other, not at all (so it is never
/// put in `Tracker::waiting`).
fn settle_time(i: &IfaceInfo) -> Duration {
    if i.container.is_none() {
        EXPLAIN_WITHIN
    } else if i.role == Role::ManualVeth.name() {
        MANUAL_SETTLE
    } else {
        Duration::ZERO
    }
}

/// Whether process `pid` still has a network namespace (a zombie has none).
fn has_netns(pid: u32) -> bool {
    pid != 0
        && std::fs::read_link(format!(
            "{}/{pid}/ns/net",
            crate::kernel::links::host_proc()
        ))
        .is_ok()
}

fn direction_name(d: Direction) -> &'static str {
    d.name()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kind::Kind;

    /// The course lab, its containers' processes gone (pid 0).
    fn lab() -> Topology {
        lab_with_pid(0)
    }

    /// The course lab, its containers' process this one, which has a network namespace:
    /// they are alive.
    fn live_lab() -> Topology {
        lab_with_pid(std::process::id())
    }

    fn lab_with_pid(pid: u32) -> Topology {
        let mut t = crate::docker::topology::tests::course_lab_topology();
        for c in &mut t.containers {
            c.pid = pid;
        }
        t
    }

    fn counters(
        rows: &[(Direction, Kind, u64)],
    ) -> std::collections::BTreeMap<(Direction, Kind), u64> {
        rows.iter().map(|(d, k, n)| ((*d, *k), *n)).collect()
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
        let topo = live_lab();
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

    /// The veth goes while the container's process still has its namespace (Docker tears
    /// it down while removing it), and Docker tells of the removal a moment later: that is
    /// why it went, said at once, not "deleted by hand" once the wait is over.
    #[test]
    fn a_veth_gone_before_docker_tells_of_the_removal_is_the_removals() {
        let topo = live_lab();
        let mut t = Tracker::new(&topo);
        t.gone(
            vec![Forgotten {
                ifindex: 10,
                name: "veth1111111".into(),
                counters: Default::default(),
            }],
            &topo,
        );
        assert!(t.take().is_empty(), "waits for Docker to say why");
        t.docker(Happening::ContainerDestroyed {
            id: "c-appdev".into(),
            name: "AppDev".into(),
        });
        let gone: Vec<_> = t
            .take()
            .into_iter()
            .filter(|e| e.kind == "iface-gone")
            .collect();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].reason, Some("container-removed"));
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
}

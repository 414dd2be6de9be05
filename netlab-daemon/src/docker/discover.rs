//! Finding what to observe (Docker's networks and containers, the host's bridges, each
//! container's veths from inside its namespace), and keeping the attachments in step.
//!
//! [`scan`] reads the topology; an [`Observer`] owns the attachments. Its jobs, one file
//! each: `discover/reconcile.rs` keeps them in step with a topology, `discover/attaching.rs`
//! attaches one interface (TCX or netlink, pinned or kept) and the first ones early, `discover/new_ports.rs` covers
//! and attaches a port the moment it joins an observed bridge, `discover/hooks.rs` finds
//! hooks something else detached, and `discover/counters.rs` keeps what gone interfaces
//! counted.

use std::collections::{BTreeMap, HashMap};

use crate::docker::topology::{NetnsScan, SandboxKind, SandboxScan, Topology};
use crate::docker::DockerSnapshot;
use crate::kernel::attach::{AttachMode, Attachment};
use crate::kernel::links;
use crate::kernel::loader::Datapath;

mod attaching;
mod counters;
mod hooks;
mod new_ports;
mod reconcile;

use counters::Retired;

pub use attaching::EarlyAttach;
pub use counters::GONE;
pub use hooks::LostHook;
pub use new_ports::{AttachDone, AttachJob};
pub use reconcile::{label_of, Forgotten, Reconciled};

/// Reads the host's links and, for each running container, the links and addresses inside
/// its network namespace, and derives the topology. Blocking: it starts one short-lived
/// thread per container (see [`links::in_netns_of`]).
pub fn scan(docker: Option<&DockerSnapshot>) -> std::io::Result<Topology> {
    let host = links::dump_links()?;
    let host_addrs = links::dump_addrs()?;
    let mut scans = HashMap::new();
    let me = links::netns_id(None).ok();
    if let Some(d) = docker {
        for c in &d.containers {
            // A container sharing the host's namespace (--network host) has no veth.
            if links::netns_id(Some(c.pid)).ok() == me {
                continue;
            }
            let inode = links::netns_id(Some(c.pid)).map_or(0, |(_, ino)| ino);
            match links::in_netns_of(c.pid, move || {
                Ok(NetnsScan {
                    inode,
                    links: links::dump_links()?,
                    addrs: links::dump_addrs()?,
                })
            }) {
                Ok(s) => {
                    scans.insert(c.id.clone(), s);
                }
                // It may have stopped since Docker listed it.
                Err(e) => log::debug!("cannot look inside {} (pid {}): {e}", c.name, c.pid),
            }
        }
    }
    let sandboxes = docker.map(overlay_sandboxes).unwrap_or_default();
    let host_inode = me.map_or(0, |(_, ino)| ino);
    Ok(Topology::build(docker, &host, &host_addrs, &scans)
        .with_netns_names(host_inode, &host, docker, &scans)
        .with_sandboxes(docker, &host, &sandboxes, &scans))
}

/// Where Docker binds the namespaces of its sandboxes by default.
pub const DOCKER_NETNS_DIR: &str = "/var/run/docker/netns";

/// The sandboxes of the overlay networks `docker` knows, scanned from inside: Docker binds
/// each to `<n>-<the network id's first 10 characters>` beside its containers' namespaces
/// (`/var/run/docker/netns` unless its `--exec-root` says otherwise).
fn overlay_sandboxes(docker: &DockerSnapshot) -> Vec<SandboxScan> {
    if docker.overlays.is_empty() {
        return Vec::new();
    }
    let mut dirs: Vec<std::path::PathBuf> = docker
        .containers
        .iter()
        .filter_map(|c| {
            Some(
                std::path::Path::new(c.sandbox_key.as_deref()?)
                    .parent()?
                    .to_owned(),
            )
        })
        .collect();
    dirs.push(DOCKER_NETNS_DIR.into());
    // `/var/run` is `/run`: one directory under two names is read once.
    let mut dirs: Vec<std::path::PathBuf> = dirs
        .into_iter()
        .filter_map(|d| std::fs::canonicalize(d).ok())
        .collect();
    dirs.sort();
    dirs.dedup();
    let mut out = Vec::new();
    for e in dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((kind, overlay)) = sandbox_of(&name, &docker.overlays) else {
            continue;
        };
        let path = e.path().to_string_lossy().into_owned();
        let inode = {
            use std::os::unix::fs::MetadataExt as _;
            std::fs::metadata(&path).map_or(0, |m| m.ino())
        };
        match links::in_netns_at(&path, move || {
            Ok(NetnsScan {
                inode,
                links: links::dump_links()?,
                addrs: links::dump_addrs()?,
            })
        }) {
            Ok(scan) => out.push(SandboxScan {
                kind,
                overlay_id: overlay.to_owned(),
                path,
                scan,
            }),
            // Removed since listed (the network's last container went).
            Err(e) => log::debug!("cannot look inside {path}: {e}"),
        }
    }
    out
}

/// What the namespace file `name` is, and the id of its overlay: an overlay's sandbox
/// (`1-q9x8w7v6u5`, the id's first 10 characters), its load balancer (`lb_q9x8w7v6u`, 9),
/// or the routing mesh (`ingress_sbox`, no overlay id); `None` for anything else (a
/// container's namespace).
fn sandbox_of<'a>(
    name: &str,
    overlays: &'a [crate::docker::engine::OverlayInfo],
) -> Option<(SandboxKind, &'a str)> {
    if name == "ingress_sbox" {
        return Some((SandboxKind::Ingress, ""));
    }
    let (kind, prefix, len) = match name.strip_prefix("lb_") {
        Some(p) => (SandboxKind::LoadBalancer, p, 9),
        None => (SandboxKind::Overlay, name.split_once('-')?.1, 10),
    };
    if prefix.len() < len {
        return None;
    }
    overlays
        .iter()
        .find(|o| o.id.starts_with(prefix))
        .map(|o| (kind, o.id.as_str()))
}

/// The attachments of a running observer, kept in step with a [`Topology`].
pub struct Observer {
    dp: Datapath,
    mode: AttachMode,
    attached: BTreeMap<u32, Attachment>,
    /// Counters of interfaces that went away, kept by name so the totals stay exact, with
    /// when they went.
    retired: Vec<Retired>,
    /// What a person reads for each observed interface (`veth of AppDev (devops, br-…)`),
    /// from the last topology, for interfaces whose name alone says little.
    labels: HashMap<u32, String>,
    /// Names of the interfaces detached at the end, whose counters are still in the map.
    detached: HashMap<u32, String>,
    /// Pin links here so they outlive the process (daemon mode).
    pin_dir: Option<std::path::PathBuf>,
    /// The kernel's ids of the ingress and egress programs, once asked.
    prog_ids: Option<(u32, u32)>,
    /// Hooks found no longer running netlab's program (something else detached it), by
    /// interface name and hook; each was attached again.
    pub hooks_lost: BTreeMap<(String, &'static str), u64>,
    /// New bridge ports waiting to be attached (covered meanwhile), in the order they came.
    pending: std::collections::VecDeque<(u32, String)>,
    /// Interfaces covered, with when they stop being covered (`None`: once attached).
    covering: BTreeMap<u32, Option<std::time::Instant>>,
    /// The new port an [`AttachJob`] is attaching now.
    in_flight: Option<u32>,
    /// What an [`EarlyAttach`] did, by interface, until the first attach batch takes it.
    early: HashMap<u32, (String, anyhow::Result<Attachment>)>,
    /// Attached interfaces of overlay sandboxes, with the sandbox's namespace file.
    sandboxed: HashMap<u32, String>,
}

impl Observer {
    pub fn new(dp: Datapath, mode: AttachMode) -> Self {
        Self {
            dp,
            mode,
            attached: BTreeMap::new(),
            retired: Vec::new(),
            labels: HashMap::new(),
            detached: HashMap::new(),
            pin_dir: None,
            prog_ids: None,
            hooks_lost: BTreeMap::new(),
            pending: Default::default(),
            covering: BTreeMap::new(),
            in_flight: None,
            early: HashMap::new(),
            sandboxed: HashMap::new(),
        }
    }

    pub fn datapath_mut(&mut self) -> &mut Datapath {
        &mut self.dp
    }

    /// Number of interfaces attached now.
    pub fn attached(&self) -> usize {
        self.attached.len()
    }

    /// The attach mode of the first attachment (what `auto` resolved to).
    pub fn mode_in_use(&self) -> Option<AttachMode> {
        self.attached.values().next().map(|a| a.mode)
    }

    pub fn datapath(&self) -> &Datapath {
        &self.dp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandboxes_are_named_after_their_network() {
        let overlay = |id: &str| crate::docker::engine::OverlayInfo {
            id: id.into(),
            name: "ovl".into(),
            subnets: Vec::new(),
            vnis: vec![4097],
            ingress: false,
        };
        let overlays = [
            overlay("hgg3cggy6pdizriria3lcq9z3"),
            overlay("2bz5sbfnjwhrqkqkycle35ln5"),
        ];
        assert_eq!(
            sandbox_of("1-hgg3cggy6p", &overlays),
            Some((SandboxKind::Overlay, "hgg3cggy6pdizriria3lcq9z3"))
        );
        assert_eq!(
            sandbox_of("1-2bz5sbfnjw", &overlays),
            Some((SandboxKind::Overlay, "2bz5sbfnjwhrqkqkycle35ln5"))
        );
        assert_eq!(
            sandbox_of("lb_hgg3cggy6", &overlays),
            Some((SandboxKind::LoadBalancer, "hgg3cggy6pdizriria3lcq9z3"))
        );
        assert_eq!(
            sandbox_of("ingress_sbox", &overlays),
            Some((SandboxKind::Ingress, ""))
        );
        // A container's sandbox, a short or unknown prefix: none.
        for other in [
            "464b8d307fb2",
            "1-hgg3",
            "1-zzzzzzzzzz",
            "lb_hgg3",
            "lb_zzzzzzzzz",
        ] {
            assert_eq!(sandbox_of(other, &overlays), None, "{other}");
        }
    }
}

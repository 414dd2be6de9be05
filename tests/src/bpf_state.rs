//! What netlab left in the kernel: tc qdiscs and filters, BPF links and programs.
//!
//! Programs and links are global, so a check must not blame this test for another netlab
//! that happens to run on the same machine: a program counts as left over only if it is named
//! `netlab*`, was not loaded before the test ([`BpfSnapshot`]), and no live process holds it.
//! Holders are found in `/proc/<pid>/fdinfo` (bpftool's `pids` needs a newer bpftool).

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::host::cmd::run;
use crate::host::fdinfo::{bpf_fds, BpfKind};
use crate::host::netns::ns_exec;

/// How long freed programs and links may take to disappear after the process exits.
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(3);

/// A loaded BPF program as `bpftool -j prog list` shows it.
#[derive(Debug, Clone)]
pub struct LoadedProg {
    /// Program id.
    pub id: u64,
    /// Program name (at most 15 bytes).
    pub name: String,
}

/// A BPF link a process holds open, from `/proc/<pid>/fdinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLink {
    /// Link id.
    pub link_id: u64,
    /// Id of the program it attaches.
    pub prog_id: u64,
    /// `link_type` as the kernel names it (`tcx`, `netkit`, ...).
    pub link_type: String,
}

/// Ids of the `netlab*` programs loaded before a test.
#[derive(Debug, Clone, Default)]
pub struct BpfSnapshot {
    ids: HashSet<u64>,
}

impl BpfSnapshot {
    /// Records the `netlab*` programs loaded now.
    pub fn take() -> Result<Self> {
        Ok(Self {
            ids: netlab_progs()?.into_iter().map(|prog| prog.id).collect(),
        })
    }
}

/// All loaded programs whose name starts with `netlab`.
pub fn netlab_progs() -> Result<Vec<LoadedProg>> {
    let listed = bpftool(&["prog", "list"])?;
    Ok(listed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|prog| {
            let name = prog["name"].as_str()?;
            name.starts_with("netlab").then(|| LoadedProg {
                id: prog["id"].as_u64().unwrap_or(0),
                name: name.to_owned(),
            })
        })
        .collect())
}

/// Links of `netlab*` programs that process `pid` holds open.
pub fn netlab_links_of(pid: u32) -> Result<Vec<HeldLink>> {
    let progs: HashSet<u64> = netlab_progs()?.into_iter().map(|prog| prog.id).collect();
    Ok(held_by(pid)
        .1
        .into_iter()
        .filter(|link| progs.contains(&link.prog_id))
        .collect())
}

/// Fails unless nothing of netlab remains: in namespace `ns`, no `clsact` qdisc and no tc
/// filter on any of `ifaces`; globally, no `netlab*` program or link that was not in `before`
/// and is held by no live process (waits up to [`RELEASE_TIMEOUT`] for asynchronous release).
pub fn assert_detached(ns: &str, ifaces: &[&str], before: &BpfSnapshot) -> Result<()> {
    for iface in ifaces {
        let qdiscs = ns_exec(ns, &format!("tc qdisc show dev {iface}"))?;
        if qdiscs.contains("clsact") {
            bail!("clsact qdisc left on {iface} in {ns}:\n{qdiscs}");
        }
        for hook in ["ingress", "egress"] {
            let filters = ns_exec(ns, &format!("tc filter show dev {iface} {hook}"))?;
            if !filters.trim().is_empty() {
                bail!("tc {hook} filter left on {iface} in {ns}:\n{filters}");
            }
        }
    }

    let deadline = Instant::now() + RELEASE_TIMEOUT;
    loop {
        let held = held_by_anyone();
        let left: Vec<LoadedProg> = netlab_progs()?
            .into_iter()
            .filter(|prog| !before.ids.contains(&prog.id) && !held.contains(&prog.id))
            .collect();
        let left_ids: HashSet<u64> = left.iter().map(|prog| prog.id).collect();
        let links: Vec<Value> = bpftool(&["link", "list"])?
            .as_array()
            .into_iter()
            .flatten()
            .filter(|link| {
                link["prog_id"]
                    .as_u64()
                    .is_some_and(|id| left_ids.contains(&id))
            })
            .cloned()
            .collect();
        if left.is_empty() && links.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "netlab left BPF objects behind after {RELEASE_TIMEOUT:?}:\n\
                 programs: {left:?}\nlinks: {links:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `bpftool -j <args>` as JSON (an empty array when it prints nothing).
pub(crate) fn bpftool(args: &[&str]) -> Result<Value> {
    let shown = run(Command::new("bpftool").arg("-j").args(args))?;
    if shown.trim().is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    serde_json::from_str(&shown).with_context(|| format!("parsing `bpftool -j {args:?}`: {shown}"))
}

/// Program ids held open by any process, directly or through a link.
fn held_by_anyone() -> HashSet<u64> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashSet::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .flat_map(|pid| {
            let (progs, links) = held_by(pid);
            progs
                .into_iter()
                .chain(links.into_iter().map(|link| link.prog_id))
        })
        .collect()
}

/// Program ids and links process `pid` holds open (empty if it is gone or unreadable).
fn held_by(pid: u32) -> (Vec<u64>, Vec<HeldLink>) {
    let mut progs = Vec::new();
    let mut links = Vec::new();
    for fd in bpf_fds(pid).unwrap_or_default() {
        let Some(prog_id) = fd.number("prog_id") else {
            continue;
        };
        match fd.kind {
            BpfKind::Prog => progs.push(prog_id),
            BpfKind::Link => links.push(HeldLink {
                link_id: fd.number("link_id").unwrap_or(0),
                prog_id,
                link_type: fd.field("link_type").unwrap_or("?").to_owned(),
            }),
            BpfKind::Map => {}
        }
    }
    (progs, links)
}

//! Part 5, last: `netlab daemon` restarted on the 500 veths. A first daemon attaches to them
//! and pins its links under the bench's pin directory, then stops (SIGTERM), leaving the
//! links attached; each restart is timed from its start to `daemon: watching N interfaces`,
//! its API asked how many interfaces it observes, and every hook asked (`BPF_PROG_QUERY`)
//! which program runs there through which link: the same link ids as before mean nothing
//! was attached again; the same program ids, that the links were not even updated.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use netlab_tests::host::netns;
use netlab_tests::host::process::{Background, Stdout};
use netlab_tests::host::tcx::{self, Hook};

use super::floor::scale_ifaces;
use super::memory::PinnedDaemon;
use super::parse::word_after;
use super::process::{check_stop, spawn, wait_for};
use super::{Plan, DAEMON_SOCKET, NO_DOCKER, NS_SCALE, PIN_DIR};

/// For each hook (interface name, `ingress` or `egress`): the (program, link) ids attached.
type Hooks = BTreeMap<(String, &'static str), Vec<(u32, u32)>>;

#[derive(Debug, Clone, Default)]
pub(super) struct Restart {
    /// Seconds the first daemon took to attach to every interface and pin the links.
    pub(super) cold_secs: f64,
    /// Interfaces the daemons said they watch.
    pub(super) interfaces: u64,
    /// Links left pinned under the pin directory when the first daemon had stopped.
    pub(super) pins: usize,
    /// Seconds from each restart to `daemon: watching N interfaces`.
    pub(super) secs: Vec<f64>,
    /// Hooks compared after each restart (both hooks of every interface).
    pub(super) hooks: usize,
    /// Per restart, hooks still attached through the same link as before the restart.
    pub(super) links_kept: Vec<usize>,
    /// Per restart, hooks still running the same program as before the restart.
    pub(super) progs_kept: Vec<usize>,
    /// Per restart, `attached_interfaces` of the daemon's `/v1/health`.
    pub(super) api_attached: Vec<u64>,
}

/// `netlab daemon` in namespace `ns` with the bench's socket and pin directory, without
/// Docker. (`ip netns exec` remounts /sys, which hides bpffs; nsenter switches the network
/// only.)
pub(super) fn daemon(ns: &str, netlab: &Path) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/var/run/netns/{ns}"))
        .arg(netlab)
        .args(["daemon", "--socket", DAEMON_SOCKET, "--pin-dir", PIN_DIR])
        .env("DOCKER_HOST", NO_DOCKER);
    c
}

/// Starts the daemon and waits for it to watch; returns it and the seconds that took.
fn start(netlab: &Path) -> Result<(Background, f64, u64)> {
    let t0 = Instant::now();
    let mut d = spawn(&mut daemon(NS_SCALE, netlab), Stdout::Discard)?;
    let (at, line) = wait_for(&mut d, "daemon: watching", Duration::from_secs(120))?;
    let n = word_after(&line, "watching").unwrap_or_default() as u64;
    Ok((d, at.duration_since(t0).as_secs_f64(), n))
}

pub(super) fn restart(netlab: &Path, plan: &Plan) -> Result<Restart> {
    let _cleanup = PinnedDaemon {
        netlab,
        ns: NS_SCALE,
    };
    let ifaces = scale_ifaces(plan.veths);
    let mut r = Restart::default();
    let (d, cold, n) = start(netlab)?;
    (r.cold_secs, r.interfaces) = (cold, n);
    eprintln!("xtask: bench: daemon attached to {n} interfaces and pinned them in {cold:.3} s");
    let before = hooks(&ifaces)?;
    r.hooks = before.len();
    d.stop_within(libc::SIGTERM, Duration::from_secs(60))?;
    r.pins = std::fs::read_dir(Path::new(PIN_DIR).join("links"))
        .map(|d| d.count())
        .unwrap_or(0);
    if r.pins == 0 {
        bail!("the daemon left no pinned links under {PIN_DIR}/links");
    }
    for round in 0..plan.restarts {
        check_stop()?;
        let (d, secs, n) = start(netlab)?;
        r.interfaces = n;
        r.secs.push(secs);
        let api = health_attached().context("asking the restarted daemon's /v1/health")?;
        r.api_attached.push(api);
        let after = hooks(&ifaces)?;
        let (links, progs) = kept(&before, &after);
        r.links_kept.push(links);
        r.progs_kept.push(progs);
        eprintln!(
            "xtask: bench: restart {}/{}: {secs:.3} s to watch {n} interfaces ({api} by its API); of {} hooks, {links} kept their link, {progs} their program",
            round + 1,
            plan.restarts,
            r.hooks
        );
        d.stop_within(libc::SIGTERM, Duration::from_secs(60))?;
    }
    Ok(r)
}

/// For every hook of `ifaces` (in the scale namespace): the (program, link) ids attached.
fn hooks(ifaces: &[String]) -> Result<Hooks> {
    thread::scope(|scope| {
        scope
            .spawn(|| -> Result<_> {
                netns::enter(NS_SCALE)?;
                let mut out = BTreeMap::new();
                for name in ifaces {
                    let c = std::ffi::CString::new(name.as_str())?;
                    // SAFETY: if_nametoindex reads the NUL-terminated name, which outlives
                    // the call.
                    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
                    if idx == 0 {
                        bail!("no interface {name} in {NS_SCALE}");
                    }
                    for hook in Hook::BOTH {
                        out.insert((name.clone(), hook.name()), tcx::attachments(idx, hook)?);
                    }
                }
                Ok(out)
            })
            .join()
    })
    .map_err(|_| anyhow!("the query thread panicked"))?
}

/// Of the hooks of `before`, how many run the same links after (each attachment's link id
/// the same, and non-zero), and how many the same programs.
fn kept(before: &Hooks, after: &Hooks) -> (usize, usize) {
    let mut links = 0;
    let mut progs = 0;
    for (hook, was) in before {
        let Some(now) = after.get(hook) else { continue };
        if was.is_empty() {
            continue;
        }
        let ids = |v: &Vec<(u32, u32)>, link: bool| -> Vec<u32> {
            v.iter().map(|(p, l)| if link { *l } else { *p }).collect()
        };
        if ids(was, true) == ids(now, true) && was.iter().all(|(_, l)| *l != 0) {
            links += 1;
        }
        if ids(was, false) == ids(now, false) {
            progs += 1;
        }
    }
    (links, progs)
}

/// `attached_interfaces` of the daemon's `/v1/health` on [`DAEMON_SOCKET`].
fn health_attached() -> Result<u64> {
    let mut s = std::os::unix::net::UnixStream::connect(DAEMON_SOCKET)
        .with_context(|| format!("connecting to {DAEMON_SOCKET}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    // HTTP/1.0: the body comes whole, never chunked.
    s.write_all(b"GET /v1/health HTTP/1.0\r\nHost: netlab\r\n\r\n")?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    attached_of(&reply).ok_or_else(|| anyhow!("no attached_interfaces in {reply:?}"))
}

/// `attached_interfaces` of an HTTP reply whose body is the health object.
fn attached_of(reply: &str) -> Option<u64> {
    let (_, body) = reply.split_once("\r\n\r\n")?;
    let v: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
    v["attached_interfaces"].as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_programs_are_compared_per_hook() {
        let h = |name: &str, hook: Hook| (name.to_owned(), hook.name());
        let before = BTreeMap::from([
            (h("br0", Hook::Ingress), vec![(10, 100)]),
            (h("br0", Hook::Egress), vec![(11, 101)]),
            (h("h0", Hook::Ingress), vec![(10, 102)]),
            (h("h0", Hook::Egress), vec![(11, 103)]),
            (h("h1", Hook::Ingress), vec![]),
        ]);
        let after = BTreeMap::from([
            // Kept.
            (h("br0", Hook::Ingress), vec![(10, 100)]),
            // Same link, its program replaced.
            (h("br0", Hook::Egress), vec![(21, 101)]),
            // Attached again: a new link for the same program.
            (h("h0", Hook::Ingress), vec![(10, 202)]),
            (h("h0", Hook::Egress), vec![(11, 103)]),
            (h("h1", Hook::Ingress), vec![(10, 204)]),
        ]);
        assert_eq!(kept(&before, &after), (3, 3));
        assert_eq!(kept(&before, &BTreeMap::new()), (0, 0));
    }

    #[test]
    fn health_replies_are_read() {
        let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n{\"status\":\"ok\",\"attached_interfaces\":501}";
        assert_eq!(attached_of(reply), Some(501));
        assert_eq!(attached_of("HTTP/1.1 404 Not Found\r\n\r\nnot found"), None);
        assert_eq!(attached_of("garbage"), None);
    }
}

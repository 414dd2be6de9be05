//! Process memory, and part 6: the memory of `netlab daemon` on the 500 veths, without Docker
//! and with 1,000 labelled endpoints of a generated Docker topology.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use netlab_tests::daemon::{get_json, http_get, parse_metrics};
use netlab_tests::host::process::{Background, Stdout};
use serde_json::Value;

use super::containers::Containers;
use super::endpoints::Generated;
use super::engine_api::EngineApi;
use super::kernel::{maps_of, MapInfo};
use super::netns::ScaleNs;
use super::parse::{number_at, word_after};
use super::process::{pause, quiet, spawn, wait_for};
use super::{Plan, DAEMON_SOCKET, ENGINE_SOCKET, NO_DOCKER, NS_SCALE, PIN_DIR};

/// Labelled endpoints of part 6 beyond the veths' containers (on a macvlan network), so that
/// 500 veths make 1,000.
const LAN_ENDPOINTS: u32 = 500;

/// A process's memory at one moment, MiB.
#[derive(Debug, Clone, Default)]
pub(super) struct MemSnapshot {
    /// `VmRSS`: what the target is about.
    pub(super) rss: f64,
    /// `VmHWM`: the peak of VmRSS.
    hwm: f64,
    /// `RssAnon`: private memory (heap, stacks).
    anon: f64,
    /// `RssFile`: file-backed pages, which include the BPF maps mapped into the process.
    file: f64,
    /// Resident memory by mapping name (`[heap]`, `anon_inode:bpf-map`, the binary), largest
    /// first.
    by_mapping: Vec<(String, f64)>,
    /// Its threads.
    threads: u64,
}

impl MemSnapshot {
    pub(super) fn of(pid: u32) -> Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let mib = |key: &str| -> Result<f64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .and_then(number_at)
                .map(|kib| kib / 1024.0)
                .ok_or_else(|| anyhow!("no {key} in /proc/{pid}/status"))
        };
        let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
        Ok(MemSnapshot {
            rss: mib("VmRSS")?,
            hwm: mib("VmHWM")?,
            anon: mib("RssAnon")?,
            file: mib("RssFile")?,
            by_mapping: rss_by_mapping(&smaps),
            threads: status
                .lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(number_at)
                .map_or(0, |n| n as u64),
        })
    }

    /// `VmRSS 47.3 MiB (anon 15.2, file 32.1: anon_inode:bpf-map 16.0, [heap] 15.0, …)`.
    pub(super) fn show(&self) -> String {
        let top: Vec<String> = self
            .by_mapping
            .iter()
            .take(4)
            .map(|(name, mib)| format!("`{name}` {mib:.1}"))
            .collect();
        format!(
            "VmRSS {:.1} MiB (VmHWM {:.1}; RssAnon {:.1}, RssFile {:.1}; largest mappings: {}; {} threads)",
            self.rss,
            self.hwm,
            self.anon,
            self.file,
            top.join(", "),
            self.threads
        )
    }
}

/// How long VmRSS must stay within [`SETTLED_WITHIN`] for the memory to count as settled.
pub(super) const SETTLED_FOR: Duration = Duration::from_secs(2);
pub(super) const SETTLED_WITHIN: f64 = 0.1;
/// How often VmRSS is read while waiting for it to settle.
const SETTLE_POLL: Duration = Duration::from_millis(250);

/// Whether the last of `samples` (seconds, VmRSS MiB; in time order) ends `window` seconds
/// in which VmRSS stayed within `tolerance` MiB.
fn is_settled(samples: &[(f64, f64)], window: f64, tolerance: f64) -> bool {
    let Some(&(last, _)) = samples.last() else {
        return false;
    };
    let Some(start) = samples.iter().rposition(|(t, _)| last - t >= window) else {
        return false;
    };
    let tail = &samples[start..];
    let lo = tail.iter().map(|s| s.1).fold(f64::INFINITY, f64::min);
    let hi = tail.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
    hi - lo <= tolerance
}

/// The memory of `pid` at rest: after `at_least`, once VmRSS has stayed within
/// [`SETTLED_WITHIN`] MiB for [`SETTLED_FOR`] (start-up work such as reading the firewall's
/// rules may still run when a process says it is ready), or after `at_most` in any case.
/// Returns the snapshot and the seconds waited.
pub(super) fn settled(
    pid: u32,
    at_least: Duration,
    at_most: Duration,
) -> Result<(MemSnapshot, f64)> {
    let t0 = Instant::now();
    pause(at_least)?;
    let mut samples = Vec::new();
    loop {
        let s = MemSnapshot::of(pid)?;
        samples.push((t0.elapsed().as_secs_f64(), s.rss));
        let waited = t0.elapsed();
        if is_settled(&samples, SETTLED_FOR.as_secs_f64(), SETTLED_WITHIN) || waited >= at_most {
            return Ok((s, waited.as_secs_f64()));
        }
        pause(SETTLE_POLL)?;
    }
}

/// Sums the `Rss:` of every mapping of a /proc/PID/smaps by its name, in MiB, largest first.
fn rss_by_mapping(smaps: &str) -> Vec<(String, f64)> {
    let mut sums: Vec<(String, f64)> = Vec::new();
    let mut current = String::from("[anon]");
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            // `start-end perms offset dev inode [name]`
            current = words.nth(4).unwrap_or("[anon]").to_owned();
        } else if first == "Rss:" {
            let kib = words
                .next()
                .and_then(|w| w.parse::<f64>().ok())
                .unwrap_or(0.0);
            match sums.iter_mut().find(|(n, _)| *n == current) {
                Some((_, v)) => *v += kib / 1024.0,
                None => sums.push((current.clone(), kib / 1024.0)),
            }
        }
    }
    sums.sort_by(|a, b| b.1.total_cmp(&a.1));
    sums
}

// ---------------------------------------------------------------------------------------------
// 6. Memory of the daemon.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
pub(super) struct Memory {
    pub(super) interfaces: u64,
    pub(super) mem: MemSnapshot,
    /// Seconds from the daemon's `watching` line to the snapshot (see [`settled`]).
    pub(super) settle_secs: f64,
    pub(super) host_drops: Option<HostDrops>,
    pub(super) maps: Vec<MapInfo>,
}

/// What the host's other traffic made a daemon handle beside the measurement: its drop
/// program sees every packet freed on the host, and reports the ARP/ICMP ones.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct HostDrops {
    /// Drop reports it attributed (`netlab_drops_total`).
    pub(super) drops: f64,
    /// Frees it found were not drops (`netlab_frees_not_drops_total`).
    pub(super) not_drops: f64,
}

impl HostDrops {
    /// From the daemon's `/metrics` page.
    fn of_page(page: &str) -> Result<Self> {
        let samples = parse_metrics(page)?;
        let sum = |name: &str| {
            samples
                .iter()
                .filter(|s| s.name == name)
                // From +0: an empty f64 sum is -0, shown as "-0".
                .fold(0.0, |total, s| total + s.value)
        };
        Ok(HostDrops {
            drops: sum("netlab_drops_total"),
            not_drops: sum("netlab_frees_not_drops_total"),
        })
    }

    /// Asks the daemon on [`DAEMON_SOCKET`] (`None` when it does not answer).
    fn of_daemon() -> Option<Self> {
        let page = http_get(Path::new(DAEMON_SOCKET), "/metrics").ok()?;
        Self::of_page(&page.body).ok()
    }
}

/// Longest wait for the daemon's memory to settle.
pub(super) const SETTLE_AT_MOST: Duration = Duration::from_secs(30);

/// Removes what `netlab daemon` pinned and its socket, also when the measurement fails.
pub(super) struct PinnedDaemon<'a> {
    pub(super) netlab: &'a Path,
    /// The network namespace it ran in.
    pub(super) ns: &'static str,
}

impl Drop for PinnedDaemon<'_> {
    fn drop(&mut self) {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/var/run/netns/{}", self.ns))
            .arg(self.netlab)
            .args(["daemon", "--cleanup", "--pin-dir", PIN_DIR]);
        if let Err(e) = quiet(&mut c) {
            eprintln!("xtask: {e:#}");
        }
        let _ = std::fs::remove_file(DAEMON_SOCKET);
        let _ = std::fs::remove_dir(PIN_DIR);
    }
}

/// `netlab daemon` in the scale namespace with `DOCKER_HOST=docker_host`, once it watches;
/// its pins and socket are removed when the guard is dropped (after the daemon).
fn start_daemon<'a>(
    netlab: &'a Path,
    docker_host: &str,
) -> Result<(PinnedDaemon<'a>, Background, String)> {
    // `ip netns exec` remounts /sys, which hides bpffs; nsenter switches the network only.
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/var/run/netns/{NS_SCALE}"))
        .arg(netlab)
        .args(["daemon", "--socket", DAEMON_SOCKET, "--pin-dir", PIN_DIR])
        .env("DOCKER_HOST", docker_host);
    let cleanup = PinnedDaemon {
        netlab,
        ns: NS_SCALE,
    };
    let mut d = spawn(&mut c, Stdout::Discard)?;
    let (_, line) = wait_for(&mut d, "daemon: watching", Duration::from_secs(120))?;
    Ok((cleanup, d, line))
}

/// The daemon on the 500 veths without Docker.
pub(super) fn memory(_ns: &ScaleNs, netlab: &Path, plan: &Plan) -> Result<Memory> {
    let (_cleanup, d, line) = start_daemon(netlab, NO_DOCKER)?;
    let (mem, settle_secs) = settled(d.pid(), plan.daemon_settle, SETTLE_AT_MOST)?;
    let host_drops = HostDrops::of_daemon();
    let maps = maps_of(d.pid())?;
    d.stop_within(libc::SIGTERM, Duration::from_secs(60))?;
    Ok(Memory {
        interfaces: word_after(&line, "watching").unwrap_or_default() as u64,
        mem,
        settle_secs,
        host_drops,
        maps,
    })
}

/// The daemon on the same veths with the generated topology's labelled endpoints.
#[derive(Debug, Clone, Default)]
pub(super) struct Labelled {
    /// Interfaces the daemon said it watches.
    pub(super) interfaces: u64,
    /// Containers (one endpoint each) generated, and of them those with a veth.
    pub(super) endpoints: usize,
    pub(super) veths: usize,
    /// Bridge networks they are on (the others are on one macvlan network).
    pub(super) bridge_networks: usize,
    /// What the daemon's `/v1/topology` showed of them.
    pub(super) loaded: Loaded,
    /// Containers the engine API answered an inspect for.
    pub(super) inspected: u64,
    /// Seconds to make the containers' namespaces and interfaces.
    pub(super) setup_secs: f64,
    /// Bytes of one container's inspect answer.
    pub(super) inspect_bytes: usize,
    pub(super) mem: MemSnapshot,
    /// Seconds from the daemon's `watching` line to the snapshot (see [`settled`]).
    pub(super) settle_secs: f64,
    pub(super) host_drops: Option<HostDrops>,
}

/// The labelled endpoints the daemon's topology holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Loaded {
    /// Generated containers it lists, with their process.
    pub(super) containers: usize,
    /// Veths it labels with their container, network and bridge, and lists inside their
    /// container with the container's MAC.
    pub(super) labelled_veths: usize,
    /// Generated bridge networks it lists with their bridge present.
    pub(super) networks: usize,
}

/// What the topology `topo` (the daemon's `/v1/topology`) holds of `g`, made with processes
/// `pids`; fails, naming the first differences, unless it holds all of it.
pub(super) fn check_loaded(g: &Generated, pids: &[u32], topo: &Value) -> Result<Loaded> {
    let mut wrong: Vec<String> = Vec::new();
    if topo["docker"] != true {
        wrong.push("it says no Docker engine answered".into());
    }
    let listed = |key: &str| topo[key].as_array().map(Vec::as_slice).unwrap_or_default();
    let by_name = |key: &str, field: &str, name: &str| {
        listed(key)
            .iter()
            .find(|v| v[field].as_str() == Some(name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let mut loaded = Loaded::default();
    for (c, pid) in g.containers.iter().zip(pids) {
        let v = by_name("containers", "name", &c.name);
        if v["pid"] != *pid || v["id"].as_str() != Some(&c.id) {
            wrong.push(format!(
                "container {} (pid {pid}) is not listed as generated",
                c.name
            ));
            continue;
        }
        loaded.containers += 1;
        let Some(k) = c.veth else { continue };
        let net = g.network_of(c);
        let veth = format!("h{k}");
        let o = by_name("observed", "name", &veth);
        let inner = v["interfaces"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["host_veth"].as_str() == Some(&veth));
        let labelled = o["role"] == "container-veth"
            && o["container"].as_str() == Some(&c.name)
            && o["network"].as_str() == Some(&net.name)
            && o["bridge"] == net.bridge.as_deref().map_or(Value::Null, Value::from)
            && inner.is_some_and(|i| i["name"] == "eth0" && i["mac"] == c.mac_text());
        if labelled {
            loaded.labelled_veths += 1;
        } else {
            wrong.push(format!(
                "{veth} is not labelled as {}'s veth on {}: {o}",
                c.name, net.name
            ));
        }
    }
    for n in g.networks.iter().filter(|n| n.bridge.is_some()) {
        if by_name("networks", "name", &n.name)["bridge_present"] == true {
            loaded.networks += 1;
        } else {
            wrong.push(format!("network {} is not listed with its bridge", n.name));
        }
    }
    if !wrong.is_empty() {
        let shown: Vec<&str> = wrong.iter().take(5).map(String::as_str).collect();
        bail!(
            "the daemon did not load the generated topology ({} containers of {}, {} veths labelled of {}): {}{}",
            loaded.containers,
            g.containers.len(),
            loaded.labelled_veths,
            g.containers.iter().filter(|c| c.veth.is_some()).count(),
            shown.join("; "),
            if wrong.len() > shown.len() {
                format!("; and {} more", wrong.len() - shown.len())
            } else {
                String::new()
            }
        );
    }
    Ok(loaded)
}

/// The daemon on the 500 veths with 1,000 labelled endpoints: the generated containers made
/// real (`containers.rs`) and described by the engine API responder (`engine_api.rs`).
/// Checks through its API that it loaded every one of them before reading its memory.
/// Leaves the scale namespace without its veths (they go with the containers).
pub(super) fn memory_labelled(ns: &ScaleNs, netlab: &Path, plan: &Plan) -> Result<Labelled> {
    let g = Generated::new(ns.veths, LAN_ENDPOINTS)?;
    let t0 = Instant::now();
    let containers = Containers::start(g.containers.len())?;
    containers.wire(&g)?;
    let setup_secs = t0.elapsed().as_secs_f64();
    let pids = containers.pids();
    eprintln!(
        "xtask: bench: {} containers made in {setup_secs:.1} s",
        g.containers.len()
    );
    let answers = g.answers(&pids);
    let inspect_bytes = answers
        .inspect
        .get(&g.containers[0].id)
        .map_or(0, String::len);
    let api = EngineApi::start(Path::new(ENGINE_SOCKET), answers)?;
    let (_cleanup, d, line) = start_daemon(netlab, &api.docker_host())?;
    let topo = get_json(Path::new(DAEMON_SOCKET), "/v1/topology")?;
    let loaded = check_loaded(&g, &pids, &topo)?;
    drop(topo);
    eprintln!(
        "xtask: bench: the daemon holds {} containers, {} veths labelled, {} networks",
        loaded.containers, loaded.labelled_veths, loaded.networks
    );
    let (mem, settle_secs) = settled(d.pid(), plan.daemon_settle, SETTLE_AT_MOST)?;
    let host_drops = HostDrops::of_daemon();
    d.stop_within(libc::SIGTERM, Duration::from_secs(60))?;
    Ok(Labelled {
        interfaces: word_after(&line, "watching").unwrap_or_default() as u64,
        endpoints: g.containers.len(),
        veths: g.containers.iter().filter(|c| c.veth.is_some()).count(),
        bridge_networks: g.networks.iter().filter(|n| n.bridge.is_some()).count(),
        loaded,
        inspected: api.served().inspected.load(Ordering::Relaxed),
        setup_secs,
        inspect_bytes,
        mem,
        settle_secs,
        host_drops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_smaps_by_mapping() {
        let smaps = "55d0-55d1 r-xp 00000000 fd:01 123 /usr/bin/netlab\nSize: 8 kB\nRss: 1024 kB\n\
                     55d2-55d3 rw-p 00000000 00:00 0 [heap]\nRss: 3072 kB\n\
                     7f00-7f01 r--s 00000000 00:0e 1038 anon_inode:bpf-map\nRss: 2048 kB\n\
                     7f02-7f03 r--s 00000000 00:0e 1038 anon_inode:bpf-map\nRss: 2048 kB\n\
                     7f04-7f05 rw-p 00000000 00:00 0\nRss: 4 kB\n";
        let m = rss_by_mapping(smaps);
        assert_eq!(m[0], ("anon_inode:bpf-map".to_owned(), 4.0));
        assert_eq!(m[1], ("[heap]".to_owned(), 3.0));
        assert_eq!(m[2], ("/usr/bin/netlab".to_owned(), 1.0));
        assert_eq!(m[3].0, "[anon]");
        assert!(rss_by_mapping("").is_empty());
    }

    #[test]
    fn host_drops_are_summed_from_metrics() {
        let page = "# HELP netlab_drops_total x\n# TYPE netlab_drops_total counter\n\
                    netlab_drops_total{reason=\"NO_SOCKET\",container=\"\",network=\"\"} 3\n\
                    netlab_drops_total{reason=\"NETFILTER_DROP\",container=\"a\",network=\"n\"} 4\n\
                    netlab_frees_not_drops_total{packet=\"icmp\",reason=\"x\"} 2\n\
                    netlab_attached_interfaces 501\n";
        assert_eq!(
            HostDrops::of_page(page).expect("parses"),
            HostDrops {
                drops: 7.0,
                not_drops: 2.0
            }
        );
        let none = HostDrops::of_page("").expect("empty");
        assert_eq!(none, HostDrops::default());
        assert!(none.drops.is_sign_positive(), "0, not -0");
    }

    #[test]
    fn memory_settles_after_a_quiet_window() {
        // Still growing, then flat for 2 s.
        let mut s: Vec<(f64, f64)> = (0..8)
            .map(|i| (f64::from(i) * 0.25, 30.0 + 2.0 * f64::from(i)))
            .collect();
        assert!(!is_settled(&s, 2.0, 0.1));
        s.extend((8..17).map(|i| (f64::from(i) * 0.25, 50.05)));
        assert!(!is_settled(&s[..16], 2.0, 0.1), "1.75 s of calm are not 2");
        assert!(is_settled(&s[..17], 2.0, 0.1));
        assert!(is_settled(&s, 2.0, 0.1));
        // A drop (memory given back) inside the window is not calm either.
        s.push((4.25, 35.0));
        assert!(!is_settled(&s, 2.0, 0.1));
        assert!(!is_settled(&[], 2.0, 0.1));
        assert!(!is_settled(&[(0.0, 1.0)], 2.0, 0.1));
    }

    /// The `/v1/topology` a daemon shows of `g` once it loaded all of it (the fields the
    /// check reads, as `netlab-daemon/src/docker/topology.rs` serializes them).
    fn shown(g: &Generated, pids: &[u32]) -> Value {
        let mut observed = Vec::new();
        let mut containers = Vec::new();
        for (c, pid) in g.containers.iter().zip(pids) {
            let net = g.network_of(c);
            let mut interfaces = Vec::new();
            if let Some(k) = c.veth {
                observed.push(serde_json::json!({
                    "ifindex": 10 + k, "name": format!("h{k}"), "role": "container-veth",
                    "container": c.name, "peer": "eth0", "network": net.name,
                    "bridge": net.bridge
                }));
                interfaces.push(serde_json::json!({
                    "name": "eth0", "mac": c.mac_text(), "addrs": [format!("{}/24", c.ip)],
                    "network": net.name, "host_veth": format!("h{k}"), "manual": false, "up": true
                }));
            }
            containers.push(serde_json::json!({
                "name": c.name, "id": c.id, "image": "netlab/busybox", "pid": pid,
                "interfaces": interfaces
            }));
        }
        let networks: Vec<Value> = g
            .networks
            .iter()
            .filter(|n| n.bridge.is_some())
            .map(
                |n| serde_json::json!({"name": n.name, "bridge": n.bridge, "bridge_present": true}),
            )
            .collect();
        serde_json::json!({
            "docker": true, "networks": networks, "containers": containers, "observed": observed
        })
    }

    #[test]
    fn the_check_counts_what_the_daemon_loaded() {
        let g = Generated::new(8, 4).expect("fits");
        let pids: Vec<u32> = (0..12).map(|i| 900 + i).collect();
        let all = shown(&g, &pids);
        let loaded = check_loaded(&g, &pids, &all).expect("all of it");
        assert_eq!(
            loaded,
            Loaded {
                containers: 12,
                labelled_veths: 8,
                networks: 4
            }
        );

        // A container missing, a veth without its label, a container with another process.
        let mut t = all.clone();
        t["containers"]
            .as_array_mut()
            .expect("containers")
            .remove(10);
        t["observed"][2]["container"] = Value::Null;
        t["containers"][0]["pid"] = 1.into();
        let e = format!("{:#}", check_loaded(&g, &pids, &t).expect_err("incomplete"));
        assert!(
            e.contains("(10 containers of 12, 6 veths labelled of 8)"),
            "{e}"
        );
        assert!(
            e.contains("container nlb-lan-0002 (pid 910) is not listed"),
            "{e}"
        );
        assert!(
            e.contains("h2 is not labelled as nlb-app-0002's veth on nlbench-net1"),
            "{e}"
        );

        // Without Docker, or with the veth leading elsewhere inside the container.
        let mut t = all.clone();
        t["docker"] = false.into();
        assert!(check_loaded(&g, &pids, &t).is_err());
        let mut t = all;
        t["containers"][5]["interfaces"][0]["mac"] = "02:00:00:00:00:01".into();
        let e = format!("{:#}", check_loaded(&g, &pids, &t).expect_err("wrong MAC"));
        assert!(e.contains("7 veths labelled of 8"), "{e}");
        assert!(check_loaded(&g, &pids, &Value::Null).is_err());
    }
}

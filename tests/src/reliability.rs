//! Fixtures of the reliability tests (`tests/tests/reliability.rs`): what a running process
//! holds ([`ProcStats`], [`Caps`]), what a daemon left pinned ([`pinned_links`],
//! [`pinned_counter_ifindexes`]), an event-stream client that counts instead of storing
//! ([`EventTally`]), a Docker engine stopped and started again the way xtask starts it
//! ([`EngineOutage`], whose guard always leaves an engine running), a tc program that is not
//! netlab's ([`ForeignTc`]), and the BPF programs a daemon holds and runs ([`prog_ids_of`],
//! [`tcx_links_running`], [`tcx_prog_names`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::Value;

use crate::docker::key_ifindex;
use crate::host::cmd::{run, run_with_timeout};
use crate::host::fdinfo::{bpf_fds_of, BpfKind};
use crate::host::netns::unique_name;
use crate::host::process::{process_lives, signal};
use crate::host::tcx::{self, Hook};

/// What a process holds now: open file descriptors, threads, resident memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStats {
    /// Entries of `/proc/<pid>/fd`.
    pub fds: usize,
    /// `Threads:` of `/proc/<pid>/status`.
    pub threads: usize,
    /// `VmRSS:` of `/proc/<pid>/status`, in KiB.
    pub rss_kb: u64,
}

impl ProcStats {
    /// Reads them for process `pid`.
    pub fn of(pid: u32) -> Result<Self> {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .with_context(|| format!("listing /proc/{pid}/fd"))?
            .count();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let field = |key: &str| -> Result<u64> {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("no {key} in /proc/{pid}/status"))
        };
        Ok(Self {
            fds,
            threads: usize::try_from(field("Threads:")?)?,
            rss_kb: field("VmRSS:")?,
        })
    }
}

impl std::fmt::Display for ProcStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} fds, {} threads, VmRSS {} KiB",
            self.fds, self.threads, self.rss_kb
        )
    }
}

/// Capability sets of a task, from the `Cap*:` lines of its status file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// `CapInh`.
    pub inheritable: u64,
    /// `CapPrm`.
    pub permitted: u64,
    /// `CapEff`.
    pub effective: u64,
    /// `CapBnd`.
    pub bounding: u64,
    /// `CapAmb`.
    pub ambient: u64,
}

impl Caps {
    /// Parses a `/proc/.../status` text.
    pub fn parse(status: &str) -> Result<Self> {
        let field = |key: &str| -> Result<u64> {
            let hex = status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .with_context(|| format!("no {key} line"))?;
            u64::from_str_radix(hex.trim(), 16).with_context(|| format!("{key} {hex:?}"))
        };
        Ok(Self {
            inheritable: field("CapInh:")?,
            permitted: field("CapPrm:")?,
            effective: field("CapEff:")?,
            bounding: field("CapBnd:")?,
            ambient: field("CapAmb:")?,
        })
    }

    /// The capabilities of every thread of process `pid`, by thread id.
    pub fn of_threads(pid: u32) -> Result<BTreeMap<u32, Caps>> {
        let mut all = BTreeMap::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .with_context(|| format!("listing /proc/{pid}/task"))?
        {
            let task = task?;
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            // A thread may end between the listing and the read.
            let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
                continue;
            };
            all.insert(tid, Self::parse(&status)?);
        }
        Ok(all)
    }
}

/// The bit mask of capability numbers `caps`.
pub fn cap_mask(caps: &[u32]) -> u64 {
    caps.iter().fold(0, |mask, cap| mask | (1u64 << cap))
}

/// The capability numbers set in `mask`.
pub fn cap_numbers(mask: u64) -> Vec<u32> {
    (0..64).filter(|bit| mask & (1u64 << bit) != 0).collect()
}

/// A link a daemon pinned: `<pin-dir>/links/<ifindex>-<iface>-<hook>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PinnedLink {
    /// Interface index the pin names.
    pub ifindex: u32,
    /// Interface name the pin names.
    pub iface: String,
    /// `ingress` or `egress`.
    pub hook: String,
}

/// Every pinned link file under `<pin_dir>/links` (empty if there is none); a file whose
/// name does not parse is an error.
pub fn pinned_links(pin_dir: &Path) -> Result<Vec<PinnedLink>> {
    let dir = pin_dir.join("links");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut links = Vec::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        links.push(parse_pin_name(&name).with_context(|| {
            format!("{}/{name} is not <ifindex>-<iface>-<hook>", dir.display())
        })?);
    }
    links.sort();
    Ok(links)
}

fn parse_pin_name(name: &str) -> Option<PinnedLink> {
    let (ifindex, rest) = name.split_once('-')?;
    let (iface, hook) = rest.rsplit_once('-')?;
    if !matches!(hook, "ingress" | "egress") {
        return None;
    }
    Some(PinnedLink {
        ifindex: ifindex.parse().ok()?,
        iface: iface.to_owned(),
        hook: hook.to_owned(),
    })
}

/// Name of the pinned counter map.
pub const COUNTER_MAP: &str = "NETLAB_COUNTERS";

/// The interface index of every key of the counter map pinned under `pin_dir`
/// (`bpftool map dump pinned <pin-dir>/maps/NETLAB_COUNTERS`), one per key.
pub fn pinned_counter_ifindexes(pin_dir: &Path) -> Result<Vec<u32>> {
    let map = pin_dir.join("maps").join(COUNTER_MAP);
    let shown = run(Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned"])
        .arg(&map))?;
    if shown.trim().is_empty() {
        return Ok(Vec::new());
    }
    let dump: Value = serde_json::from_str(&shown)
        .with_context(|| format!("parsing bpftool's dump of {}", map.display()))?;
    dump.as_array()
        .into_iter()
        .flatten()
        .map(|entry| {
            key_ifindex(entry)
                .with_context(|| format!("cannot read the ifindex of a {COUNTER_MAP} key: {entry}"))
        })
        .collect()
}

/// Counts of what one `/v1/events` client received, by interface and kind.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Packet events (those with `iface` and `direction`) by (interface name, kind).
    pub packets: BTreeMap<(String, String), u64>,
    /// Every line that is not a packet event, by its `kind` (`drop`, `journey`, ...).
    pub others: BTreeMap<String, u64>,
    /// Events the daemon said this client lost (`{"kind":"lost","events":N}`).
    pub lost: u64,
    /// Lines that are not JSON.
    pub garbage: Vec<String>,
    /// Packet events in total.
    pub packet_events: u64,
    /// Source containers seen on echo requests, with the interface's container, as
    /// `(src.container, iface.container, direction)`.
    pub labelled: BTreeSet<(String, String, String)>,
}

impl Tally {
    /// Packet events counted on `iface` (all kinds).
    pub fn on(&self, iface: &str) -> u64 {
        self.packets
            .iter()
            .filter(|((name, _), _)| name == iface)
            .map(|(_, n)| n)
            .sum()
    }

    /// Packet events of `kind` on `iface`.
    pub fn of(&self, iface: &str, kind: &str) -> u64 {
        self.packets
            .get(&(iface.to_owned(), kind.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    fn add(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            if self.garbage.len() < 10 {
                self.garbage.push(line.to_owned());
            }
            return;
        };
        let kind = event["kind"].as_str().unwrap_or("?").to_owned();
        if kind == "lost" {
            self.lost += event["events"].as_u64().unwrap_or(0);
            return;
        }
        let iface = event.pointer("/iface/name").and_then(Value::as_str);
        let direction = event["direction"].as_str();
        match (iface, direction) {
            (Some(iface), Some(direction)) if kind != "drop" => {
                self.packet_events += 1;
                *self
                    .packets
                    .entry((iface.to_owned(), kind.clone()))
                    .or_default() += 1;
                if kind == "icmp-echo-request" {
                    if let Some(src) = event.pointer("/src/container").and_then(Value::as_str) {
                        let on = event
                            .pointer("/iface/container")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        self.labelled
                            .insert((src.to_owned(), on.to_owned(), direction.to_owned()));
                    }
                }
            }
            _ => *self.others.entry(kind).or_default() += 1,
        }
    }
}

/// A `/v1/events` client that reads on a thread and keeps only a [`Tally`], so it can
/// follow a flood without holding every line.
#[derive(Debug)]
pub struct EventTally {
    stream: UnixStream,
    tally: Arc<Mutex<Tally>>,
    reader: Option<JoinHandle<()>>,
}

impl EventTally {
    /// `GET <path>` on the daemon's socket as HTTP/1.0; returns once the
    /// `{"kind":"subscribed"}` line arrived.
    pub fn open(socket: &Path, path: &str) -> Result<Self> {
        let mut stream = UnixStream::connect(socket)
            .with_context(|| format!("connecting to {}", socket.display()))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: netlab\r\n\r\n")?;
        stream.flush()?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut reader = BufReader::with_capacity(1 << 20, stream.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        ensure!(
            line.split_whitespace().nth(1) == Some("200"),
            "GET {path}: {line:?}"
        );
        loop {
            line.clear();
            ensure!(reader.read_line(&mut line)? > 0, "GET {path}: no body");
            if line.trim().is_empty() {
                break;
            }
        }
        line.clear();
        reader.read_line(&mut line)?;
        ensure!(
            line.trim() == r#"{"kind":"subscribed"}"#,
            "GET {path}: first line {line:?}"
        );
        stream.set_read_timeout(None)?;
        let tally = Arc::new(Mutex::new(Tally::default()));
        let sink = Arc::clone(&tally);
        let thread = std::thread::spawn(move || {
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if let Ok(mut tally) = sink.lock() {
                            tally.add(&line);
                        }
                    }
                }
            }
        });
        Ok(Self {
            stream,
            tally,
            reader: Some(thread),
        })
    }

    /// What was received so far.
    pub fn snapshot(&self) -> Tally {
        self.tally.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Closes the connection and returns what was received.
    pub fn close(mut self) -> Tally {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.snapshot()
    }
}

impl Drop for EventTally {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Where a dockerd started the way `cargo xtask` starts it writes its output.
pub const DOCKERD_LOG: &str = "/var/log/netlab-dockerd.log";
/// How long dockerd may take to stop after SIGTERM, or to answer after it starts.
pub const ENGINE_TIMEOUT: Duration = Duration::from_secs(90);

/// Whether `docker info` answers within 10 s.
pub fn engine_answers() -> bool {
    let mut info = Command::new("docker");
    info.args(["info", "--format", "{{.ServerVersion}}"]);
    run_with_timeout(info, Duration::from_secs(10)).is_ok_and(|out| out.status.success())
}

/// The Docker engine taken down for a while: [`EngineOutage::begin`] sends dockerd SIGTERM
/// and waits until it is gone; [`EngineOutage::end`] starts it again exactly as `cargo xtask`
/// does (`setsid --fork dockerd`, output appended to [`DOCKERD_LOG`]), waits until it answers and
/// starts again every container that was running before and is not now (without
/// live-restore, stopping dockerd stops them).
///
/// Dropping the guard ends the outage if nobody did: other tests need the engine.
#[derive(Debug)]
pub struct EngineOutage {
    running_before: Vec<String>,
    ended: bool,
}

impl EngineOutage {
    /// Stops the running dockerd (its pid from `pidof dockerd`) and waits until
    /// `docker info` fails and the process is gone.
    pub fn begin() -> Result<Self> {
        let pids = run(Command::new("pidof").arg("dockerd")).context("no dockerd runs")?;
        let pids: Vec<u32> = pids
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        ensure!(
            pids.len() == 1,
            "expected one dockerd, `pidof` says {pids:?}"
        );
        let pid = pids[0];
        let running_before: Vec<String> =
            run(Command::new("docker").args(["ps", "--format", "{{.Names}}"]))?
                .lines()
                .map(str::to_owned)
                .collect();
        let outage = Self {
            running_before,
            ended: false,
        };
        // `pid` is dockerd's, just read.
        signal(pid, libc::SIGTERM).with_context(|| format!("SIGTERM to dockerd ({pid})"))?;
        let deadline = Instant::now() + ENGINE_TIMEOUT;
        while process_lives(pid) || engine_answers() {
            ensure!(
                Instant::now() < deadline,
                "dockerd ({pid}) still there {ENGINE_TIMEOUT:?} after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(outage)
    }

    /// Containers that were running when the outage began.
    pub fn running_before(&self) -> &[String] {
        &self.running_before
    }

    /// Starts dockerd as xtask does and waits until it answers; returns when it answered
    /// (before the containers are started again).
    pub fn end(&mut self) -> Result<Instant> {
        let answered = start_dockerd()?;
        self.ended = true;
        let running: BTreeSet<String> =
            run(Command::new("docker").args(["ps", "--format", "{{.Names}}"]))?
                .lines()
                .map(str::to_owned)
                .collect();
        let stopped: Vec<&String> = self
            .running_before
            .iter()
            .filter(|name| !running.contains(*name))
            .collect();
        if !stopped.is_empty() {
            let mut start = Command::new("docker");
            start.arg("start").args(&stopped);
            let out = run_with_timeout(start, ENGINE_TIMEOUT)?;
            ensure!(
                out.status.success(),
                "`docker start` of {stopped:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(answered)
    }
}

impl Drop for EngineOutage {
    fn drop(&mut self) {
        if self.ended && engine_answers() {
            return;
        }
        if let Err(err) = self.end() {
            eprintln!("netlab-tests: cannot start the Docker engine again: {err:#}");
        }
    }
}

/// `setsid --fork dockerd >>DOCKERD_LOG 2>&1` (what `cargo xtask` runs when no engine answers),
/// then polls `docker info` until it answers; returns the moment it did.
fn start_dockerd() -> Result<Instant> {
    if engine_answers() {
        return Ok(Instant::now());
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(DOCKERD_LOG)
        .with_context(|| format!("opening {DOCKERD_LOG}"))?;
    let log_err = log.try_clone()?;
    let mut dockerd = Command::new("setsid")
        .args(["--fork", "dockerd"])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .context("starting `setsid dockerd`")?;
    let deadline = Instant::now() + ENGINE_TIMEOUT;
    loop {
        if engine_answers() {
            // dockerd lives on after the test; its exit status is reaped by init then.
            return Ok(Instant::now());
        }
        if let Some(status) = dockerd.try_wait()? {
            // `setsid --fork` exits once it has forked and dockerd lives on: only a
            // failing status means dockerd did not start.
            ensure!(
                status.success(),
                "dockerd exited ({status}); see {DOCKERD_LOG}"
            );
        }
        ensure!(
            Instant::now() < deadline,
            "dockerd does not answer {ENGINE_TIMEOUT:?} after starting; see {DOCKERD_LOG}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Tc filters that are not netlab's on an interface: a `clsact` qdisc, an eBPF program
/// (assembled with `llvm-mc` from two instructions, `r0 = -1; exit`: "carry on") on ingress
/// and a classic BPF filter (`bytecode '1,6 0 0 4294967295'`) on egress; without `llvm-mc`,
/// classic BPF on both. (cls_bpf is the classifier this kernel has; there is no matchall.)
/// Dropping it removes the qdisc (and with it the filters) if the interface still exists,
/// and the bpffs directories `tc` made for the object if they were not there before.
#[derive(Debug)]
pub struct ForeignTc {
    iface: String,
    dir: PathBuf,
    /// Id of the foreign eBPF program, when one was loaded.
    pub prog_id: Option<u64>,
    /// `/sys/fs/bpf/{tc,ip,xdp}` that `tc` created when loading the object.
    made_by_tc: Vec<PathBuf>,
}

/// The classic BPF filter: one instruction, `ret #-1`.
const CLASSIC_BPF: &str = "1,6 0 0 4294967295,";
/// What iproute2 creates under bpffs when it loads an object.
const TC_BPFFS_DIRS: [&str; 3] = ["/sys/fs/bpf/tc", "/sys/fs/bpf/ip", "/sys/fs/bpf/xdp"];

/// Where Debian's LLVM 22 keeps `llvm-mc` (installed by `cargo xtask setup`).
const LLVM_MC: &str = "/usr/lib/llvm-22/bin/llvm-mc";
/// Name of the foreign program.
pub const FOREIGN_PROG: &str = "nlt_foreign";

const FOREIGN_ASM: &str = "\t.section\ttc,\"ax\",@progbits
\t.globl\tnlt_foreign
\t.type\tnlt_foreign,@function
nlt_foreign:
\tr0 = -1
\texit
\t.size\tnlt_foreign, .-nlt_foreign
\t.section\tlicense,\"aw\",@progbits
\t.globl\t_license
_license:
\t.asciz\t\"GPL\"
\t.size\t_license, 4
";

impl ForeignTc {
    /// Adds the qdisc and both filters on `iface` (in this namespace).
    pub fn add(iface: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(unique_name("foreign"));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let made_by_tc = TC_BPFFS_DIRS
            .iter()
            .map(PathBuf::from)
            .filter(|p| std::fs::symlink_metadata(p).is_err())
            .collect();
        let mut foreign = Self {
            iface: iface.to_owned(),
            dir,
            prog_id: None,
            made_by_tc,
        };
        run(Command::new("tc").args(["qdisc", "add", "dev", iface, "clsact"]))?;
        let object = foreign.dir.join("foreign.o");
        let asm = foreign.dir.join("foreign.s");
        std::fs::write(&asm, FOREIGN_ASM)?;
        let assembled = Path::new(LLVM_MC).exists()
            && Command::new(LLVM_MC)
                .args(["-triple", "bpfel", "-filetype=obj"])
                .arg(&asm)
                .arg("-o")
                .arg(&object)
                .status()
                .is_ok_and(|s| s.success());
        if assembled {
            run(Command::new("tc")
                .args([
                    "filter",
                    "add",
                    "dev",
                    iface,
                    "ingress",
                    "bpf",
                    "direct-action",
                    "obj",
                ])
                .arg(&object)
                .args(["sec", "tc"]))?;
            foreign.prog_id = foreign.bpf_prog_id()?;
            ensure!(
                foreign.prog_id.is_some(),
                "the foreign program is not listed on {iface}: {}",
                foreign.filters()?
            );
        } else {
            run(Command::new("tc").args([
                "filter",
                "add",
                "dev",
                iface,
                "ingress",
                "bpf",
                "bytecode",
                CLASSIC_BPF,
            ]))?;
        }
        run(Command::new("tc").args([
            "filter",
            "add",
            "dev",
            iface,
            "egress",
            "bpf",
            "bytecode",
            CLASSIC_BPF,
        ]))?;
        Ok(foreign)
    }

    /// `tc filter show` of both hooks.
    pub fn filters(&self) -> Result<String> {
        let mut shown = String::new();
        for hook in ["ingress", "egress"] {
            shown.push_str(&format!("{hook}:\n"));
            shown.push_str(&run(Command::new("tc").args([
                "filter",
                "show",
                "dev",
                &self.iface,
                hook,
            ]))?);
        }
        Ok(shown)
    }

    /// The id of the BPF program in the ingress filter, if there is one.
    fn bpf_prog_id(&self) -> Result<Option<u64>> {
        let shown =
            run(Command::new("tc").args(["filter", "show", "dev", &self.iface, "ingress"]))?;
        Ok(shown.lines().find_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "id")?;
            let id = words.next()?.parse().ok()?;
            line.contains(FOREIGN_PROG).then_some(id)
        }))
    }

    /// Fails unless both filters are still there, the BPF one with the same program.
    pub fn assert_intact(&self) -> Result<()> {
        let shown = self.filters()?;
        let egress = shown.split("egress:").nth(1).unwrap_or_default();
        ensure!(
            egress.contains("bytecode"),
            "the foreign classic BPF filter is gone from {} egress:\n{shown}",
            self.iface
        );
        if let Some(id) = self.prog_id {
            let now = self.bpf_prog_id()?;
            ensure!(
                now == Some(id),
                "the foreign BPF program {id} on {} ingress is now {now:?}:\n{shown}",
                self.iface
            );
        }
        let qdiscs = run(Command::new("tc").args(["qdisc", "show", "dev", &self.iface]))?;
        ensure!(
            qdiscs.contains("clsact"),
            "the clsact qdisc is gone from {}:\n{qdiscs}",
            self.iface
        );
        Ok(())
    }
}

impl Drop for ForeignTc {
    fn drop(&mut self) {
        if Path::new("/sys/class/net").join(&self.iface).exists() {
            let _ = Command::new("tc")
                .args(["qdisc", "del", "dev", &self.iface, "clsact"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        // iproute2 makes `tc/globals` and two symlinks to `tc`; remove them only if empty.
        for path in &self.made_by_tc {
            let Ok(meta) = std::fs::symlink_metadata(path) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                let _ = std::fs::remove_file(path);
            } else {
                let _ = std::fs::remove_dir(path.join("globals"));
                let _ = std::fs::remove_dir(path);
            }
        }
    }
}

/// Ids of the BPF programs process `pid` holds open (from `/proc/<pid>/fdinfo`).
pub fn prog_ids_of(pid: u32) -> BTreeSet<u32> {
    bpf_fds_of(pid, BpfKind::Prog)
        .iter()
        .filter_map(|prog| u32::try_from(prog.number("prog_id")?).ok())
        .collect()
}

/// The tcx links in the whole system (`bpftool link list`, held or pinned by anyone) whose
/// program is one of `progs`: `(link id, program id)`. A daemon pins its tcx links and
/// closes them, so they are found by their programs, which it keeps open.
pub fn tcx_links_running(progs: &BTreeSet<u32>) -> Result<Vec<(u64, u32)>> {
    let shown = run(Command::new("bpftool").args(["-j", "link", "list"]))?;
    if shown.trim().is_empty() {
        return Ok(Vec::new());
    }
    let links: Value = serde_json::from_str(&shown)
        .with_context(|| format!("parsing `bpftool link list`: {shown}"))?;
    Ok(links
        .as_array()
        .into_iter()
        .flatten()
        // bpftool 7.1 does not know the tcx link type by name: it shows its number, 11.
        .filter(|link| link["type"] == "tcx" || link["type"] == 11)
        .filter_map(|link| {
            let prog = u32::try_from(link["prog_id"].as_u64()?).ok()?;
            progs
                .contains(&prog)
                .then(|| (link["id"].as_u64().unwrap_or(0), prog))
        })
        .collect())
}

/// The name of loaded program `id` (`bpftool prog show id`).
pub fn prog_name(id: u32) -> Result<String> {
    let shown = run(Command::new("bpftool").args(["-j", "prog", "show", "id", &id.to_string()]))?;
    let value: Value = serde_json::from_str(&shown)
        .with_context(|| format!("parsing `bpftool prog show id {id}`: {shown}"))?;
    Ok(value["name"].as_str().unwrap_or("?").to_owned())
}

/// The names of the programs attached with tcx to `ifindex` on `hook`, in order.
pub fn tcx_prog_names(ifindex: u32, hook: Hook) -> Result<Vec<String>> {
    tcx::prog_ids(ifindex, hook)?
        .into_iter()
        .map(prog_name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_names() {
        assert_eq!(
            parse_pin_name("1200-br-21f98ad38690-egress"),
            Some(PinnedLink {
                ifindex: 1200,
                iface: "br-21f98ad38690".into(),
                hook: "egress".into()
            })
        );
        assert_eq!(parse_pin_name("5-docker0-sideways"), None);
        assert_eq!(parse_pin_name("x-docker0-ingress"), None);
        assert_eq!(parse_pin_name("NETLAB_COUNTERS"), None);
    }

    #[test]
    fn capability_sets() -> Result<()> {
        let status = "Name:\tnetlab\nCapInh:\t0000000000000000\nCapPrm:\t000000c000281000\n\
                      CapEff:\t000000c000281000\nCapBnd:\t000000c000281000\nCapAmb:\t0000000000000000\n";
        let caps = Caps::parse(status)?;
        assert_eq!(cap_numbers(caps.effective), [12, 19, 21, 38, 39]);
        assert_eq!(caps.effective, cap_mask(&[39, 38, 12, 21, 19]));
        assert_eq!(caps.inheritable, 0);
        assert!(Caps::parse("Name: x\n").is_err());
        Ok(())
    }

    #[test]
    fn tallies() {
        let mut tally = Tally::default();
        tally.add(r#"{"kind":"icmp-echo-request","iface":{"name":"va","container":"a"},"direction":"ingress","src":{"container":"a"}}"#);
        tally.add(r#"{"kind":"drop","iface":{"name":"va"},"packet":"icmp-echo-request"}"#);
        tally.add(r#"{"kind":"lost","events":7}"#);
        tally.add("not json");
        tally.add("");
        assert_eq!(tally.of("va", "icmp-echo-request"), 1);
        assert_eq!(tally.on("va"), 1);
        assert_eq!(tally.others.get("drop"), Some(&1));
        assert_eq!(tally.lost, 7);
        assert_eq!(tally.garbage.len(), 1);
        assert!(tally
            .labelled
            .contains(&("a".into(), "a".into(), "ingress".into())));
    }

    #[test]
    fn counter_keys() {
        let raw = serde_json::json!({"key": ["0x2a", "0x01", "0x00", "0x00", "0x01", "0x03", "0x00", "0x00"]});
        assert_eq!(key_ifindex(&raw), Some(0x012a));
        let formatted = serde_json::json!({"formatted": {"key": {"ifindex": 7}}});
        assert_eq!(key_ifindex(&formatted), Some(7));
    }
}

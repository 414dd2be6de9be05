//! `cargo xtask bench [--quick] [--json]`: what netlab costs, measured on this machine.
//!
//! Everything here is a measurement, never an assertion: a missed target is reported with the
//! number, not turned into a failure. Traffic only flows between the network namespaces made
//! here (`nlbench-*`), bounded in count and time; nothing is sent to any other address.
//!
//! 1. Per-packet cost of the tc programs, from the kernel's BPF statistics
//!    (`kernel.bpf_stats_enabled`, read from the programs' fdinfo): UDP the programs skip, and
//!    ICMP echo at `--sample 1` and `--sample 100`.
//! 2. UDP packets per second between two namespaces with no observer, netlab, and tcpdump
//!    (filtered and unfiltered), alternating A B C D A B C D so that drift cancels out.
//! 3. ICMP floods of rising rate into `netlab watch --rate-limit 0`: events per second
//!    delivered, and where loss starts.
//! 4. The user-space pipeline alone (the criterion bench `netlab-daemon/benches/pipeline.rs`).
//! 5. Attaching to 500 veths: start-up time, and how soon a new veth is observed.
//! 6. Resident memory of `netlab daemon` on those 500 veths, and the size of its kernel maps.
//!
//! It prints a table (on stderr with `--json`, whose single JSON object goes to stdout) and
//! rewrites the results block of BENCH.md, keeping what is written around it.

use std::ffi::c_long;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsRawFd as _, FromRawFd as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};

use crate::{cmd, workspace};

// ---------------------------------------------------------------------------------------------
// What is built, and how long each part runs.
// ---------------------------------------------------------------------------------------------

/// The sender's namespace (one end of the pair).
const NS_A: &str = "nlbench-a";
/// The receiver's namespace (the other end).
const NS_B: &str = "nlbench-b";
/// The namespace of bridge `br0` with ports `va` and `vb`, where the observers run.
const NS_BR: &str = "nlbench-br";
/// The namespace of the 500-veth bridge.
const NS_SCALE: &str = "nlbench-scale";
const NAMESPACES: [&str; 4] = [NS_A, NS_B, NS_BR, NS_SCALE];
const ADDR_A: &str = "10.200.0.1";
const ADDR_B: &str = "10.200.0.2";
/// The only destinations `bench-udp-send` accepts: the bench's own subnet.
const BENCH_NET: [u8; 3] = [10, 200, 0];
const UDP_PORT: u16 = 5001;
/// A port nothing listens on in b: each datagram to it is answered with an ICMP port
/// unreachable (the flood's controlled ICMP source).
const CLOSED_PORT: u16 = 5002;
/// Payload of each datagram: 18 bytes make the smallest Ethernet frame (64 bytes with FCS).
const UDP_PAYLOAD: usize = 18;
const DAEMON_SOCKET: &str = "/tmp/nlbench.sock";
const PIN_DIR: &str = "/sys/fs/bpf/nlbench";
const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";
/// Where the value of [`BPF_STATS`] before the bench is kept until it is put back, so a
/// killed run is repaired by the next one.
const BPF_STATS_SAVED: &str = "/tmp/nlbench.bpf_stats_enabled";
/// Docker is never consulted: netlab then observes every bridge and its ports by name.
const NO_DOCKER: &str = "unix:///nonexistent.sock";
/// No netlab daemon is used by `netlab watch` either.
const NO_DAEMON: &str = "/nonexistent/nlbench.sock";
const BENCH_MD: &str = "BENCH.md";
const BEGIN: &str = "<!-- bench:results:begin -->";
const END: &str = "<!-- bench:results:end -->";
/// The criterion benches of `netlab-daemon/benches/pipeline.rs`; the last one is the headline.
const PIPELINE_BENCHES: [&str; 4] = ["icmp", "arp", "icmp6", "mixed"];

/// Lengths of every part: full or `--quick`.
#[derive(Debug, Clone)]
struct Plan {
    /// Rounds of the per-packet costs (each: `--sample 1`, then `--sample 100`).
    cost_rounds: usize,
    /// A/B rounds of the packet rates (each: every observer once, in the same order).
    pps_rounds: usize,
    /// Length of one UDP window of the packet-rate comparison.
    pps_secs: f64,
    /// Length of the UDP window of the per-packet cost.
    skip_secs: f64,
    /// Echo requests of one `ping -f` for the per-packet cost.
    pings: u32,
    /// Length of each flood level.
    flood_secs: u32,
    /// Flood levels, in order.
    flood_levels: &'static [FloodLoad],
    /// Veth pairs of the scale test.
    veths: u32,
    /// Start-ups timed on them.
    startups: usize,
    /// New veths timed from enslaving to attached.
    latency_samples: usize,
    /// How long the daemon runs before its memory is read.
    daemon_settle: Duration,
    /// Extra arguments of the criterion bench.
    criterion: &'static [&'static str],
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Plan {
                cost_rounds: 2,
                pps_rounds: 2,
                pps_secs: 1.0,
                skip_secs: 1.0,
                pings: 5_000,
                flood_secs: 2,
                flood_levels: &[
                    FloodLoad::Unreachable { pps: 50_000 },
                    FloodLoad::Unreachable { pps: 100_000 },
                    FloodLoad::Echo { pps: 75_000 },
                    FloodLoad::Echo { pps: 100_000 },
                    FloodLoad::Ping {
                        procs: 1,
                        preload: 1,
                    },
                ],
                veths: 500,
                startups: 1,
                latency_samples: 20,
                daemon_settle: Duration::from_secs(1),
                criterion: &["--warm-up-time", "1", "--measurement-time", "2"],
            }
        } else {
            Plan {
                cost_rounds: 5,
                pps_rounds: 6,
                pps_secs: 2.0,
                skip_secs: 3.0,
                pings: 20_000,
                flood_secs: 3,
                flood_levels: &[
                    FloodLoad::Unreachable { pps: 25_000 },
                    FloodLoad::Unreachable { pps: 50_000 },
                    FloodLoad::Unreachable { pps: 75_000 },
                    FloodLoad::Unreachable { pps: 100_000 },
                    FloodLoad::Unreachable { pps: 150_000 },
                    FloodLoad::Unreachable { pps: 200_000 },
                    FloodLoad::Echo { pps: 25_000 },
                    FloodLoad::Echo { pps: 50_000 },
                    FloodLoad::Echo { pps: 75_000 },
                    FloodLoad::Echo { pps: 90_000 },
                    FloodLoad::Echo { pps: 110_000 },
                    FloodLoad::Echo { pps: 130_000 },
                    FloodLoad::Ping {
                        procs: 1,
                        preload: 1,
                    },
                    FloodLoad::Ping {
                        procs: 1,
                        preload: 64,
                    },
                ],
                veths: 500,
                startups: 3,
                latency_samples: 100,
                daemon_settle: Duration::from_secs(3),
                criterion: &[],
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The command.
// ---------------------------------------------------------------------------------------------

/// Runs every measurement, prints the table (and the JSON object), writes BENCH.md.
pub fn run(quick: bool, json: bool) -> Result<()> {
    require_root()?;
    let plan = Plan::new(quick);
    let started = Instant::now();
    // NETLAB_BIN measures another build of netlab (an earlier commit's, say) with this bench.
    let netlab = match std::env::var_os("NETLAB_BIN").filter(|v| !v.is_empty()) {
        Some(bin) => {
            eprintln!(
                "xtask: bench: measuring NETLAB_BIN={}",
                bin.to_string_lossy()
            );
            std::path::PathBuf::from(bin)
        }
        None => workspace::build_daemon(true)?,
    };
    build_pipeline_bench()?;
    let built = started.elapsed().as_secs_f64();
    let xtask = std::env::current_exe().context("cannot find the xtask binary")?;
    let _stop = StopFlag::install();
    clean_leftovers(&netlab);

    let mut r = Results {
        quick,
        date: utc_now(),
        machine: Machine::read(),
        ..Default::default()
    };
    r.log.timings.push(("builds".into(), built));
    {
        let pair = part(&mut r.log, "the namespace pair", Pair::create)?;
        if let Some(pair) = &pair {
            r.costs = part(&mut r.log, "per-packet cost", || {
                costs(pair, &netlab, &xtask, &plan)
            })?;
            r.pps = part(&mut r.log, "packets per second", || {
                pps(pair, &netlab, &xtask, &plan)
            })?;
            r.flood = part(&mut r.log, "ICMP flood", || {
                flood(pair, &netlab, &xtask, &plan)
            })?;
        }
        let start = Instant::now();
        drop(pair);
        r.log
            .timings
            .push(("removing the pair".into(), start.elapsed().as_secs_f64()));
    }
    r.pipeline = part(&mut r.log, "pipeline", || pipeline(&plan))?;
    {
        let scale_ns = part(&mut r.log, "the 500-veth namespace", || {
            ScaleNs::create(plan.veths)
        })?;
        if let Some(ns) = &scale_ns {
            r.scale = part(&mut r.log, "scale", || scale(ns, &netlab, &plan))?;
            r.memory = part(&mut r.log, "memory", || memory(ns, &netlab, &plan))?;
        }
        let start = Instant::now();
        drop(scale_ns);
        r.log.timings.push((
            "removing the 500-veth namespace".into(),
            start.elapsed().as_secs_f64(),
        ));
    }
    r.machine.load_after = read_loadavg();
    r.machine.idle_after = cpu_idle(Duration::from_secs(2));
    r.elapsed_secs = started.elapsed().as_secs_f64();

    let table = r.table();
    if json {
        eprint!("{table}");
        println!("{}", r.json());
    } else {
        print!("{table}");
    }
    let md = workspace::root().join(BENCH_MD);
    write_bench_md(&md, &r)?;
    eprintln!("xtask: wrote {}", md.display());
    Ok(())
}

/// Runs one part; its failure is recorded (its numbers stay null) and the bench goes on,
/// unless it was interrupted.
fn part<T>(log: &mut PartLog, name: &str, f: impl FnOnce() -> Result<T>) -> Result<Option<T>> {
    eprintln!("xtask: bench: {name}");
    let start = Instant::now();
    let result = f();
    log.timings
        .push((name.to_owned(), start.elapsed().as_secs_f64()));
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            check_stop()?;
            eprintln!("xtask: bench: {name} failed: {e:#}");
            log.failures.push(format!("{name}: {e:#}"));
            Ok(None)
        }
    }
}

/// What went wrong, and how long each part took.
#[derive(Debug, Default)]
struct PartLog {
    failures: Vec<String>,
    timings: Vec<(String, f64)>,
}

fn require_root() -> Result<()> {
    // /proc/self belongs to the effective uid of the process that reads it.
    let uid = std::fs::metadata("/proc/self")
        .context("cannot stat /proc/self")?
        .uid();
    ensure!(
        uid == 0,
        "`cargo xtask bench` needs root (namespaces, eBPF, BPF statistics); effective uid is {uid}"
    );
    Ok(())
}

/// Removes what an earlier, killed run may have left: namespaces, the daemon's pins and
/// socket, the BPF statistics switch.
fn clean_leftovers(netlab: &Path) {
    for ns in NAMESPACES {
        if Path::new("/var/run/netns").join(ns).exists() {
            let _ = quiet(Command::new("ip").args(["netns", "del", ns]));
        }
    }
    if Path::new(PIN_DIR).exists() {
        let _ = quiet(Command::new(netlab).args(["daemon", "--cleanup", "--pin-dir", PIN_DIR]));
    }
    let _ = std::fs::remove_file(DAEMON_SOCKET);
    if let Ok(saved) = std::fs::read_to_string(BPF_STATS_SAVED) {
        if std::fs::write(BPF_STATS, saved.trim()).is_ok() {
            let _ = std::fs::remove_file(BPF_STATS_SAVED);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ctrl-C: the children stop (they keep the default disposition), the bench notices and
// cleans up.
// ---------------------------------------------------------------------------------------------

static STOP: AtomicBool = AtomicBool::new(false);
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

extern "C" {
    /// libc's `signal(2)`; dispositions are passed as pointer-sized integers.
    fn signal(signum: i32, handler: usize) -> usize;
    /// libc's `kill(2)`.
    fn kill(pid: i32, sig: i32) -> i32;
    /// libc's `setns(2)`.
    fn setns(fd: i32, nstype: i32) -> i32;
    /// libc's `syscall(2)`, for `bpf(2)`, which libc does not wrap.
    fn syscall(num: c_long, ...) -> c_long;
}

extern "C" fn on_interrupt(_signum: i32) {
    STOP.store(true, Ordering::SeqCst);
}

/// While alive, Ctrl-C sets [`STOP`] instead of killing xtask. Children get the default
/// disposition back at exec (a handled signal does not survive exec), so Ctrl-C stops them.
struct StopFlag {
    previous: usize,
}

impl StopFlag {
    fn install() -> Self {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let previous = unsafe { signal(SIGINT, on_interrupt as extern "C" fn(i32) as usize) };
        StopFlag { previous }
    }
}

impl Drop for StopFlag {
    fn drop(&mut self) {
        // SAFETY: `previous` is what signal() returned for SIGINT.
        unsafe { signal(SIGINT, self.previous) };
    }
}

/// The error of a bench stopped with Ctrl-C.
#[derive(Debug)]
struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

fn check_stop() -> Result<()> {
    if STOP.load(Ordering::SeqCst) {
        return Err(Interrupted.into());
    }
    Ok(())
}

/// Sleeps, but wakes up for Ctrl-C.
fn pause(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        check_stop()?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

fn send_signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) only sends a signal; `pid` is a child of ours that was not yet reaped,
    // so it cannot name another process.
    unsafe { kill(pid as i32, sig) };
}

// ---------------------------------------------------------------------------------------------
// Running commands.
// ---------------------------------------------------------------------------------------------

/// Runs `cmd` to completion with its output captured (never on our stdout); returns stdout.
fn quiet(cmd: &mut Command) -> Result<String> {
    let out = cmd::output(cmd)?;
    check_stop()?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            cmd::display(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> Result<()> {
    quiet(Command::new("ip").args(args)).map(drop)
}

/// `ip -n <ns> -batch -` with `lines` on its stdin.
fn ip_batch(ns: &str, lines: &str) -> Result<()> {
    let mut c = Command::new("ip");
    c.args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    eprintln!(
        "xtask: {} <<< ({} commands)",
        cmd::display(&c),
        lines.lines().count()
    );
    let mut child = c
        .spawn()
        .with_context(|| format!("failed to start `{}`", cmd::display(&c)))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(lines.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            cmd::display(&c),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `ip netns exec <ns> <program>`.
fn in_ns(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(program);
    c
}

/// What becomes of a background child's stdout.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StdoutMode {
    Null,
    /// Read and discarded, except the last [`TAIL_LINES`] lines (a summary).
    Tail,
}

/// Lines of a child's stdout kept by [`StdoutMode::Tail`].
const TAIL_LINES: usize = 3;

/// A child running in the background. Dropping it stops it (SIGINT, then SIGKILL).
struct Background {
    what: String,
    child: Option<Child>,
    lines: mpsc::Receiver<(Instant, String)>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
    tail: Arc<Mutex<Vec<String>>>,
}

/// How a background child ended.
struct Ended {
    status: ExitStatus,
    /// The last lines of its stdout ([`StdoutMode::Tail`]).
    tail: Vec<String>,
}

impl Ended {
    fn last_line(&self) -> &str {
        self.tail.last().map_or("", String::as_str)
    }

    fn success(&self) -> bool {
        self.status.success()
    }
}

impl Background {
    fn spawn(cmd: &mut Command, stdout: StdoutMode) -> Result<Self> {
        check_stop()?;
        cmd.stdin(Stdio::null()).stderr(Stdio::piped());
        cmd.stdout(match stdout {
            StdoutMode::Null => Stdio::null(),
            StdoutMode::Tail => Stdio::piped(),
        });
        let what = cmd::display(cmd);
        eprintln!("xtask: {what} &");
        let mut child = cmd
            .spawn()
            .with_context(|| format!("failed to start `{what}`"))?;
        let (tx, lines) = mpsc::channel();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let tail = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(err) = child.stderr.take() {
            let seen = Arc::clone(&stderr);
            readers.push(thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
                    let _ = tx.send((Instant::now(), line.clone()));
                    if let Ok(mut seen) = seen.lock() {
                        seen.push(line);
                    }
                }
            }));
        }
        if let Some(out) = child.stdout.take() {
            let kept = Arc::clone(&tail);
            readers.push(thread::spawn(move || keep_tail(out, TAIL_LINES, &kept)));
        }
        Ok(Background {
            what,
            child: Some(child),
            lines,
            stderr,
            readers,
            tail,
        })
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Waits for a stderr line containing `pattern`; returns when it was read, and the line.
    fn wait_for(&mut self, pattern: &str, timeout: Duration) -> Result<(Instant, String)> {
        let end = Instant::now() + timeout;
        loop {
            check_stop()?;
            match self.lines.recv_timeout(Duration::from_millis(20)) {
                Ok((at, line)) if line.contains(pattern) => return Ok((at, line)),
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.as_mut().map(Child::wait).transpose()?;
                    bail!(
                        "`{}` ended ({}) before saying {pattern:?}: {}",
                        self.what,
                        status.map_or("?".into(), |s| s.to_string()),
                        self.stderr_text()
                    );
                }
            }
            if Instant::now() >= end {
                bail!(
                    "`{}` did not say {pattern:?} within {timeout:?}: {}",
                    self.what,
                    self.stderr_text()
                );
            }
        }
    }

    fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .map(|l| l.join(" | "))
            .unwrap_or_default()
    }

    /// Sends `sig` and waits (up to `timeout`, then SIGKILL) for the end.
    fn stop(self, sig: i32, timeout: Duration) -> Result<Ended> {
        if let Some(child) = &self.child {
            send_signal(child.id(), sig);
        }
        self.finish(timeout)
    }

    /// Waits (up to `timeout`, then SIGKILL) for the child to end by itself.
    fn finish(mut self, timeout: Duration) -> Result<Ended> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("`{}` already ended", self.what))?;
        let end = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= end {
                let _ = child.kill();
                let status = child.wait()?;
                bail!(
                    "`{}` did not end within {timeout:?}; killed ({status}): {}",
                    self.what,
                    self.stderr_text()
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let tail = self.tail.lock().map(|t| t.clone()).unwrap_or_default();
        Ok(Ended { status, tail })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        send_signal(child.id(), SIGINT);
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Reads `out` to its end, keeping only its last `k` lines (the last one even without a
/// newline) in `kept`.
fn keep_tail(mut out: impl std::io::Read, k: usize, kept: &Mutex<Vec<String>>) {
    let mut buf = vec![0u8; 1 << 16];
    let mut partial: Vec<u8> = Vec::new();
    let mut lines: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
    let push = |line: Vec<u8>, lines: &mut std::collections::VecDeque<Vec<u8>>| {
        if lines.len() == k {
            lines.pop_front();
        }
        lines.push_back(line);
    };
    loop {
        let n = match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = &buf[..n];
        while let Some(nl) = chunk.iter().position(|&b| b == b'\n') {
            partial.extend_from_slice(&chunk[..nl]);
            push(std::mem::take(&mut partial), &mut lines);
            chunk = &chunk[nl + 1..];
        }
        partial.extend_from_slice(chunk);
    }
    if !partial.is_empty() {
        push(partial, &mut lines);
    }
    if let Ok(mut kept) = kept.lock() {
        *kept = lines
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
    }
}

// ---------------------------------------------------------------------------------------------
// Namespaces.
// ---------------------------------------------------------------------------------------------

/// Network namespaces that exist as long as this guard (`ip netns del` on drop, which also
/// removes every interface in them).
struct Namespaces(Vec<&'static str>);

impl Namespaces {
    fn add(&mut self, ns: &'static str) -> Result<()> {
        ip(&["netns", "add", ns])?;
        self.0.push(ns);
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        // No IPv6: no router solicitations or MLD reports; only the bench's own traffic.
        quiet(in_ns(ns, "sysctl").args([
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]))?;
        Ok(())
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in self.0.drain(..).rev() {
            eprintln!("xtask: ip netns del {ns}");
            if let Err(e) = Command::new("ip").args(["netns", "del", ns]).output() {
                eprintln!("xtask: cannot delete namespace {ns}: {e}");
            }
        }
    }
}

/// `nlbench-a` (eth0 10.200.0.1/24) and `nlbench-b` (eth0 10.200.0.2/24), whose host ends
/// `va` and `vb` are ports of bridge `br0` in `nlbench-br`.
struct Pair {
    _ns: Namespaces,
}

impl Pair {
    fn create() -> Result<Self> {
        let mut ns = Namespaces(Vec::new());
        for n in [NS_A, NS_B, NS_BR] {
            ns.add(n)?;
        }
        ip(&["-n", NS_BR, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", NS_BR, "link", "set", "br0", "up"])?;
        for (port, member, addr) in [("va", NS_A, ADDR_A), ("vb", NS_B, ADDR_B)] {
            ip(&[
                "-n", NS_BR, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns",
                member,
            ])?;
            ip(&["-n", NS_BR, "link", "set", port, "master", "br0", "up"])?;
            let cidr = format!("{addr}/24");
            ip(&["-n", member, "addr", "add", &cidr, "dev", "eth0"])?;
            ip(&["-n", member, "link", "set", "eth0", "up"])?;
        }
        // The bridge forwards at once (no STP); a few pings prove it and fill the ARP caches.
        quiet(in_ns(NS_A, "ping").args(["-c", "3", "-i", "0.2", "-w", "5", ADDR_B]))?;
        Ok(Pair { _ns: ns })
    }
}

/// `nlbench-scale`: bridge `br0` with `veths` veth pairs `h<i>`/`p<i>`, every `h<i>` a port.
struct ScaleNs {
    _ns: Namespaces,
    veths: u32,
}

impl ScaleNs {
    fn create(veths: u32) -> Result<Self> {
        let mut ns = Namespaces(Vec::new());
        ns.add(NS_SCALE)?;
        let mut batch = String::from("link add br0 type bridge\nlink set br0 up\n");
        for i in 0..veths {
            batch.push_str(&format!(
                "link add h{i} type veth peer name p{i}\nlink set h{i} master br0 up\nlink set p{i} up\n"
            ));
        }
        ip_batch(NS_SCALE, &batch)?;
        Ok(ScaleNs { _ns: ns, veths })
    }
}

// ---------------------------------------------------------------------------------------------
// Traffic: a UDP sender and receiver (hidden xtask subcommands run inside the namespaces),
// and ping.
// ---------------------------------------------------------------------------------------------

/// `cargo xtask bench-udp-send`: sends `UDP_PAYLOAD`-byte datagrams to `dst` for `secs`
/// seconds, as fast as it can or, with `pps` > 0, at that rate; prints
/// `sent N errors E secs T`. The socket is not connected, so ICMP errors that come back
/// (a closed port) do not fail the sends.
pub fn udp_send(dst: Ipv4Addr, port: u16, secs: f64, pps: u64) -> Result<()> {
    check_send_args(dst, secs)?;
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).context("binding a UDP socket")?;
    let to = std::net::SocketAddrV4::new(dst, port);
    let payload = [0u8; UDP_PAYLOAD];
    paced(secs, pps, || sock.send_to(&payload, to).is_ok());
    Ok(())
}

/// `cargo xtask bench-icmp-send`: sends ICMP echo requests (56 bytes of data, like `ping`)
/// to `dst` for `secs` seconds at `pps` (0: as fast as it can), from a raw socket that
/// takes none of the replies back (`ICMP_FILTER`): each reply is then freed by the kernel's
/// ping handler, as `ping -f`'s are. Prints `sent N errors E secs T`.
pub fn icmp_send(dst: Ipv4Addr, secs: f64, pps: u64) -> Result<()> {
    check_send_args(dst, secs)?;
    // SAFETY: plain socket(2); the result is checked and owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMP,
        )
    };
    ensure!(
        fd >= 0,
        "opening a raw ICMP socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fd` was just opened and nothing else owns it.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // ICMP_FILTER (level SOL_RAW): one bit per ICMP type not to deliver; all of them.
    let filter: u32 = u32::MAX;
    // SAFETY: the option value is a u32 that lives across the call, with its size.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_RAW,
            ICMP_FILTER,
            (&filter as *const u32).cast(),
            4,
        )
    };
    ensure!(
        r == 0,
        "setting ICMP_FILTER: {}",
        std::io::Error::last_os_error()
    );
    let to = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(dst.octets()),
        },
        sin_zero: [0; 8],
    };
    let id = (std::process::id() & 0xffff) as u16;
    let mut seq: u16 = 0;
    let mut packet = [0u8; 64];
    paced(secs, pps, || {
        seq = seq.wrapping_add(1);
        echo_request(&mut packet, id, seq);
        // SAFETY: the buffer and the address live across the call, with their sizes.
        let sent = unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&to as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        sent == packet.len() as isize
    });
    Ok(())
}

/// `ICMP_FILTER` of `<linux/icmp.h>` (libc does not export it).
const ICMP_FILTER: libc::c_int = 1;

/// An ICMP echo request (type 8) with `id`, `seq` and a zero payload, checksum filled in.
fn echo_request(packet: &mut [u8; 64], id: u16, seq: u16) {
    packet.fill(0);
    packet[0] = 8;
    packet[4..6].copy_from_slice(&id.to_be_bytes());
    packet[6..8].copy_from_slice(&seq.to_be_bytes());
    let sum = inet_checksum(packet);
    packet[2..4].copy_from_slice(&sum.to_be_bytes());
}

/// The Internet checksum (RFC 1071) of `data`.
fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The senders' shared checks: only the bench's own subnet, for a bounded time.
fn check_send_args(dst: Ipv4Addr, secs: f64) -> Result<()> {
    ensure!(
        dst.octets()[..3] == BENCH_NET,
        "the bench's senders only send to its own subnet 10.200.0.0/24, not {dst}"
    );
    ensure!(
        secs > 0.0 && secs <= 60.0,
        "--secs must be in (0, 60], not {secs}"
    );
    Ok(())
}

/// Calls `send` (true: sent) for `secs` seconds, as fast as possible or, with `pps` > 0, at
/// that rate: it catches up with the schedule in bursts of at most 64, sleeping a little
/// whenever it is met; the deadline is checked between bursts. Prints
/// `sent N errors E secs T`.
fn paced(secs: f64, pps: u64, mut send: impl FnMut() -> bool) {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let (mut sent, mut errors) = (0u64, 0u64);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let done = sent + errors;
        let due = if pps == 0 {
            done + 64
        } else {
            (now.duration_since(start).as_secs_f64() * pps as f64) as u64
        };
        if done >= due {
            thread::sleep(Duration::from_micros(200));
            continue;
        }
        for _ in 0..(due - done).min(64) {
            if send() {
                sent += 1;
            } else {
                errors += 1;
            }
        }
    }
    println!(
        "sent {sent} errors {errors} secs {:.6}",
        start.elapsed().as_secs_f64()
    );
}

/// `cargo xtask bench-udp-recv`: counts datagrams on `port` until `secs` pass or none came
/// for 300 ms after the first; says `ready` on stderr once bound, prints `received N` last.
/// With `hold`, it reads nothing: once its socket buffer is full, the kernel drops every
/// datagram (`RcvbufErrors`), until `secs` pass or it is stopped.
pub fn udp_recv(port: u16, secs: f64, hold: bool) -> Result<()> {
    ensure!(
        secs > 0.0 && secs <= 120.0,
        "--secs must be in (0, 120], not {secs}"
    );
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))
        .with_context(|| format!("binding UDP port {port}"))?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    eprintln!("ready");
    let end = Instant::now() + Duration::from_secs_f64(secs);
    if hold {
        thread::sleep(Duration::from_secs_f64(secs));
        println!("received 0");
        return Ok(());
    }
    let mut buf = [0u8; 2048];
    let mut received = 0u64;
    let mut last = Instant::now();
    while Instant::now() < end {
        match sock.recv(&mut buf) {
            Ok(_) => {
                received += 1;
                if received & 0xff == 0 {
                    last = Instant::now();
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if received > 0 && last.elapsed() > Duration::from_millis(300) {
                    break;
                }
            }
            Err(e) => return Err(e).context("receiving"),
        }
    }
    println!("received {received}");
    Ok(())
}

/// One UDP window from a to b.
#[derive(Debug, Clone, Copy)]
struct UdpWindow {
    sent: u64,
    /// Datagrams that reached b's UDP layer: read by the receiver, or dropped because its
    /// socket buffer was full (`InDatagrams` + `RcvbufErrors` of b's /proc/net/snmp).
    arrived: u64,
    /// Read by the receiver.
    received: u64,
    secs: f64,
}

impl UdpWindow {
    /// The rate of the path a → b: what arrived at b's UDP layer per second of sending.
    fn pps(&self) -> f64 {
        self.arrived as f64 / self.secs
    }
}

/// `InDatagrams` and `RcvbufErrors` of the `Udp:` lines of /proc/net/snmp.
fn udp_snmp(snmp: &str) -> Option<(u64, u64)> {
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let get = |name: &str| -> Option<u64> {
        values
            .get(names.iter().position(|n| *n == name)?)?
            .parse()
            .ok()
    };
    Some((get("InDatagrams")?, get("RcvbufErrors")?))
}

fn udp_counters_of_b() -> Result<(u64, u64)> {
    let snmp = quiet(in_ns(NS_B, "cat").arg("/proc/net/snmp"))?;
    udp_snmp(&snmp).ok_or_else(|| anyhow!("no Udp counters in {NS_B}'s /proc/net/snmp"))
}

/// Which end of the traffic a helper is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Sender,
    Receiver,
}

/// `ip netns exec <ns> nice -n -20 [taskset -c <cpu>] <xtask>`: at the highest CFS weight,
/// so that other jobs of the machine take as little CPU from it as possible during a window;
/// with two CPUs or more, the sender on CPU 0 (where the whole path a → b then runs, in its
/// softirqs) and the receiver on CPU 1.
fn xtask_in(ns: &str, xtask: &Path, end: End) -> Command {
    let mut c = in_ns(ns, "nice");
    c.args(["-n", "-20"]);
    if thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        let cpu = match end {
            End::Sender => "0",
            End::Receiver => "1",
        };
        c.args(["taskset", "-c", cpu]);
    }
    c.arg(xtask);
    c
}

/// What b does with the datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Receiver {
    /// A receiver reads them all.
    Reads,
    /// Nobody reads: b's socket buffer stays full and b drops (frees) every datagram.
    Drops,
}

fn udp_window(xtask: &Path, secs: f64, receiver: Receiver) -> Result<UdpWindow> {
    let before = udp_counters_of_b()?;
    let mut c = xtask_in(NS_B, xtask, End::Receiver);
    c.args([
        "bench-udp-recv",
        "--port",
        &UDP_PORT.to_string(),
        "--secs",
        &format!("{}", secs + 10.0),
    ]);
    if receiver == Receiver::Drops {
        c.arg("--hold");
    }
    let mut recv = Background::spawn(&mut c, StdoutMode::Tail)?;
    recv.wait_for("ready", Duration::from_secs(10))?;
    let out = quiet(xtask_in(NS_A, xtask, End::Sender).args([
        "bench-udp-send",
        "--dst",
        ADDR_B,
        "--port",
        &UDP_PORT.to_string(),
        "--secs",
        &format!("{secs}"),
    ]))?;
    let received = match receiver {
        Receiver::Reads => {
            let ended = recv.finish(Duration::from_secs_f64(secs + 15.0))?;
            word_after(ended.last_line(), "received")
                .ok_or_else(|| anyhow!("receiver said {:?}", ended.tail))?
        }
        Receiver::Drops => {
            recv.stop(SIGTERM, Duration::from_secs(10))?;
            0.0
        }
    };
    let after = udp_counters_of_b()?;
    let sent = word_after(&out, "sent").ok_or_else(|| anyhow!("sender said {out:?}"))?;
    let secs = word_after(&out, "secs").ok_or_else(|| anyhow!("sender said {out:?}"))?;
    Ok(UdpWindow {
        sent: sent as u64,
        arrived: (after.0 + after.1).saturating_sub(before.0 + before.1),
        received: received as u64,
        secs,
    })
}

/// What one `ping` reported.
#[derive(Debug, Clone, Copy, Default)]
struct PingResult {
    transmitted: u64,
    received: u64,
}

/// `ping -f -q -l <preload> -c <count> -w <deadline> 10.200.0.2` from a.
fn ping_cmd(preload: u32, count: u32, deadline: u32) -> Command {
    let mut c = in_ns(NS_A, "ping");
    c.args(["-f", "-q", "-n"]);
    if preload > 1 {
        c.args(["-l", &preload.to_string()]);
    }
    c.args([
        "-c",
        &count.to_string(),
        "-w",
        &deadline.to_string(),
        ADDR_B,
    ]);
    c
}

fn parse_ping(out: &str) -> Option<PingResult> {
    let line = out.lines().find(|l| l.contains("packets transmitted"))?;
    let mut words = line.split_whitespace();
    let transmitted = words.next()?.parse().ok()?;
    let received = line
        .split(", ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(PingResult {
        transmitted,
        received,
    })
}

// ---------------------------------------------------------------------------------------------
// Kernel views: the programs' statistics, their maps, TCX attachments, process memory.
// ---------------------------------------------------------------------------------------------

/// `kernel.bpf_stats_enabled=1` while alive; the old value is put back on drop.
struct BpfStats {
    old: String,
}

impl BpfStats {
    /// Whether they can be switched off for a moment (they were off before the bench).
    fn can_disable(&self) -> bool {
        self.old == "0"
    }

    /// On, or back to the old value.
    fn set(&self, on: bool) -> Result<()> {
        std::fs::write(BPF_STATS, if on { "1" } else { self.old.as_str() })
            .with_context(|| format!("writing {BPF_STATS}"))
    }

    fn enable() -> Result<Self> {
        let old = std::fs::read_to_string(BPF_STATS)
            .with_context(|| format!("reading {BPF_STATS}"))?
            .trim()
            .to_owned();
        std::fs::write(BPF_STATS_SAVED, &old)
            .with_context(|| format!("writing {BPF_STATS_SAVED}"))?;
        eprintln!("xtask: sysctl kernel.bpf_stats_enabled=1 (was {old})");
        std::fs::write(BPF_STATS, "1").with_context(|| format!("writing {BPF_STATS}"))?;
        Ok(BpfStats { old })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        eprintln!("xtask: sysctl kernel.bpf_stats_enabled={}", self.old);
        match std::fs::write(BPF_STATS, &self.old) {
            Ok(()) => {
                let _ = std::fs::remove_file(BPF_STATS_SAVED);
            }
            Err(e) => eprintln!(
                "xtask: cannot restore kernel.bpf_stats_enabled={}: {e}",
                self.old
            ),
        }
    }
}

/// The fields of one `/proc/PID/fdinfo/FD` (`key:\tvalue` lines).
fn fdinfo_field(info: &str, key: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Every fdinfo of process `pid`, by fd.
fn fdinfos(pid: u32) -> Result<Vec<(PathBuf, String)>> {
    let dir = PathBuf::from(format!("/proc/{pid}/fdinfo"));
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if let Ok(text) = std::fs::read_to_string(&path) {
            out.push((path, text));
        }
    }
    Ok(out)
}

/// The kernel's linux/bpf.h: `BPF_TCX_INGRESS`, `BPF_TCX_EGRESS`.
const BPF_TCX_INGRESS: u32 = 46;
const BPF_TCX_EGRESS: u32 = 47;

/// The fdinfo files of netlab's ingress and egress programs (found through its TCX links).
struct TcProgs {
    ingress: PathBuf,
    egress: PathBuf,
    /// The ingress program's id.
    ingress_id: u64,
}

/// Cumulated run time and runs of one program.
#[derive(Debug, Clone, Copy, Default)]
struct RunStats {
    ns: u64,
    runs: u64,
}

impl RunStats {
    fn since(self, earlier: RunStats) -> RunStats {
        RunStats {
            ns: self.ns.saturating_sub(earlier.ns),
            runs: self.runs.saturating_sub(earlier.runs),
        }
    }

    fn plus(self, other: RunStats) -> RunStats {
        RunStats {
            ns: self.ns + other.ns,
            runs: self.runs + other.runs,
        }
    }

    fn ns_per_run(self) -> Option<f64> {
        (self.runs > 0).then(|| self.ns as f64 / self.runs as f64)
    }
}

impl TcProgs {
    fn of(pid: u32) -> Result<Self> {
        let infos = fdinfos(pid)?;
        let prog_of = |attach: u32| -> Option<u64> {
            infos.iter().find_map(|(_, t)| {
                (t.contains("link_type:\ttcx")
                    && fdinfo_field(t, "attach_type") == Some(u64::from(attach)))
                .then(|| fdinfo_field(t, "prog_id"))
                .flatten()
            })
        };
        let fd_of = |prog_id: u64| -> Option<PathBuf> {
            infos.iter().find_map(|(p, t)| {
                (fdinfo_field(t, "prog_id") == Some(prog_id)
                    && fdinfo_field(t, "run_cnt").is_some())
                .then(|| p.clone())
            })
        };
        let ingress_id = prog_of(BPF_TCX_INGRESS);
        let ingress = ingress_id.and_then(fd_of);
        let egress = prog_of(BPF_TCX_EGRESS).and_then(fd_of);
        match (ingress, egress, ingress_id) {
            (Some(ingress), Some(egress), Some(ingress_id)) => Ok(TcProgs {
                ingress,
                egress,
                ingress_id,
            }),
            _ => bail!("process {pid} holds no TCX-attached ingress and egress programs"),
        }
    }

    /// `bpftool prog run` of the ingress program on `frame`, `repeat` times: the kernel's
    /// average ns per run (BPF_PROG_TEST_RUN), without the statistics' own clock reads.
    fn test_run(&self, frame: &Path, repeat: u32) -> Result<f64> {
        let out = quiet(in_ns(NS_BR, "bpftool").args([
            "prog",
            "run",
            "id",
            &self.ingress_id.to_string(),
            "data_in",
            &frame.to_string_lossy(),
            "repeat",
            &repeat.to_string(),
        ]))?;
        parse_test_run(&out).ok_or_else(|| anyhow!("bpftool prog run said {out:?}"))
    }

    fn read(&self) -> Result<(RunStats, RunStats)> {
        let one = |p: &Path| -> Result<RunStats> {
            let t =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Ok(RunStats {
                ns: fdinfo_field(&t, "run_time_ns").unwrap_or_default(),
                runs: fdinfo_field(&t, "run_cnt").unwrap_or_default(),
            })
        };
        Ok((one(&self.ingress)?, one(&self.egress)?))
    }
}

/// One BPF map held by a process.
#[derive(Debug, Clone)]
struct MapInfo {
    id: u64,
    name: String,
    kind: String,
    bytes: u64,
}

/// The maps process `pid` holds: ids and memlock from its fdinfo, names from bpftool.
fn maps_of(pid: u32) -> Result<Vec<MapInfo>> {
    let mut maps = Vec::new();
    for (_, t) in fdinfos(pid)? {
        let (Some(id), Some(bytes)) = (fdinfo_field(&t, "map_id"), fdinfo_field(&t, "memlock"))
        else {
            continue;
        };
        let shown = quiet(Command::new("bpftool").args(["map", "show", "id", &id.to_string()]))
            .unwrap_or_default();
        let first = shown.lines().next().unwrap_or_default();
        let words: Vec<&str> = first.split_whitespace().collect();
        let name = words
            .iter()
            .position(|w| *w == "name")
            .and_then(|i| words.get(i + 1))
            .map_or("?", |w| w)
            .to_owned();
        let kind = words.get(1).copied().unwrap_or("?").to_owned();
        maps.push(MapInfo {
            id,
            name,
            kind,
            bytes,
        });
    }
    maps.sort_by_key(|m| m.id);
    Ok(maps)
}

/// A process's memory at one moment, MiB.
#[derive(Debug, Clone, Default)]
struct MemSnapshot {
    /// `VmRSS`: what the target is about.
    rss: f64,
    /// `VmHWM`: the peak of VmRSS.
    hwm: f64,
    /// `RssAnon`: private memory (heap, stacks).
    anon: f64,
    /// `RssFile`: file-backed pages, which include the BPF maps mapped into the process.
    file: f64,
    /// Resident memory by mapping name (`[heap]`, `anon_inode:bpf-map`, the binary), largest
    /// first.
    by_mapping: Vec<(String, f64)>,
}

impl MemSnapshot {
    fn of(pid: u32) -> Result<Self> {
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
        })
    }

    /// `VmRSS 47.3 MiB (anon 15.2, file 32.1: anon_inode:bpf-map 16.0, [heap] 15.0, …)`.
    fn show(&self) -> String {
        let top: Vec<String> = self
            .by_mapping
            .iter()
            .take(4)
            .map(|(name, mib)| format!("`{name}` {mib:.1}"))
            .collect();
        format!(
            "VmRSS {:.1} MiB (VmHWM {:.1}; RssAnon {:.1}, RssFile {:.1}; largest mappings: {})",
            self.rss,
            self.hwm,
            self.anon,
            self.file,
            top.join(", ")
        )
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

const CLONE_NEWNET: i32 = 0x4000_0000;
const BPF_PROG_QUERY: c_long = 16;
#[cfg(target_arch = "x86_64")]
const SYS_BPF: c_long = 321;
#[cfg(target_arch = "aarch64")]
const SYS_BPF: c_long = 280;

/// The `query` member of the kernel's `union bpf_attr` (linux/bpf.h, Linux ≥ 6.6).
#[repr(C)]
#[derive(Default)]
struct ProgQuery {
    target_ifindex: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    count: u32,
    _pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    revision: u64,
}

const _: () = assert!(std::mem::size_of::<ProgQuery>() == 64);

/// Moves the calling thread into network namespace `ns` (`/var/run/netns/<ns>`).
fn enter_netns(ns: &str) -> Result<()> {
    let path = Path::new("/var/run/netns").join(ns);
    let f = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: setns(2) on a valid namespace fd; it changes only this thread's namespace.
    let r = unsafe { setns(f.as_raw_fd(), CLONE_NEWNET) };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context(format!("setns into {ns}"));
    }
    Ok(())
}

/// How many programs are attached with TCX at `attach_type` of interface `ifindex` of this
/// thread's namespace (`BPF_PROG_QUERY`, what `bpftool net` asks).
fn tcx_programs(ifindex: u32, attach_type: u32) -> std::io::Result<u32> {
    let mut q = ProgQuery {
        target_ifindex: ifindex,
        attach_type,
        ..Default::default()
    };
    // SAFETY: bpf(BPF_PROG_QUERY) reads and writes only the 64-byte attribute passed with its
    // size; `q` lives across the call. prog_ids is null, so only counts are written.
    let r = unsafe {
        syscall(
            SYS_BPF,
            BPF_PROG_QUERY,
            &mut q as *mut ProgQuery,
            std::mem::size_of::<ProgQuery>() as c_long,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(q.count)
}

// ---------------------------------------------------------------------------------------------
// 1. Per-packet cost of the tc programs.
// ---------------------------------------------------------------------------------------------

/// `ip netns exec nlbench-br netlab watch --iface br0 --iface va --iface vb --json <extra>`,
/// once it is watching.
fn start_watch(netlab: &Path, extra: &[&str], stdout: StdoutMode) -> Result<Background> {
    let mut c = in_ns(NS_BR, netlab);
    c.args([
        "watch", "--iface", "br0", "--iface", "va", "--iface", "vb", "--json",
    ])
    .args(extra)
    .env("NETLAB_SOCKET", NO_DAEMON);
    let mut w = Background::spawn(&mut c, stdout)?;
    w.wait_for("watching ", Duration::from_secs(30))?;
    Ok(w)
}

/// [`start_watch`] at `nice -n -20`: what the flood measures is netlab's own capacity, not
/// the share of a CPU that other jobs of the machine leave it.
fn start_watch_niced(netlab: &Path, extra: &[&str], stdout: StdoutMode) -> Result<Background> {
    let mut c = in_ns(NS_BR, "nice");
    c.args(["-n", "-20"])
        .arg(netlab)
        .args([
            "watch", "--iface", "br0", "--iface", "va", "--iface", "vb", "--json",
        ])
        .args(extra)
        .env("NETLAB_SOCKET", NO_DAEMON);
    let mut w = Background::spawn(&mut c, stdout)?;
    w.wait_for("watching ", Duration::from_secs(30))?;
    Ok(w)
}

/// What the programs did during one traffic window.
#[derive(Debug, Clone, Copy)]
struct CostWindow {
    /// `udp` (skipped) or `icmp`.
    traffic: &'static str,
    sample: u32,
    ingress: RunStats,
    egress: RunStats,
    /// Packets sent (UDP datagrams or echo requests).
    packets: u64,
    /// The same kind of packet through BPF_PROG_TEST_RUN (ns per run), with the BPF
    /// statistics on (as in the window) and off (only when they were off before the bench).
    test_run_stats_on: Option<f64>,
    test_run_stats_off: Option<f64>,
}

/// Part 1's results.
#[derive(Debug, Clone, Default)]
struct Costs {
    windows: Vec<CostWindow>,
    /// Memory of the first `netlab watch` on br0, va and vb: just started, and after its
    /// windows (a UDP window, a 20,000-echo `ping -f`, the test runs).
    watch_mem_idle: Option<MemSnapshot>,
    watch_mem_busy: Option<MemSnapshot>,
}

impl CostWindow {
    fn ns_per_run(&self) -> Option<f64> {
        self.ingress.plus(self.egress).ns_per_run()
    }
}

/// Files removed when dropped.
struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// A frame from a to b: Ethernet, IPv4 with `proto`, then `l4`.
fn frame(proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = (20 + l4.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0, 10, 200, 0, 1, 10, 200, 0, 2]);
    f.extend_from_slice(l4);
    f
}

/// The datagram of the UDP sender and an echo request of ping, as frames.
fn test_frames() -> (Vec<u8>, Vec<u8>) {
    let mut udp = Vec::new();
    udp.extend_from_slice(&40000u16.to_be_bytes());
    udp.extend_from_slice(&UDP_PORT.to_be_bytes());
    udp.extend_from_slice(&((8 + UDP_PAYLOAD) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&[0; UDP_PAYLOAD]);
    let mut icmp = vec![8, 0, 0, 0, 0, 7, 0, 1];
    icmp.extend_from_slice(&[0xab; 56]);
    (frame(17, &udp), frame(1, &icmp))
}

fn parse_test_run(out: &str) -> Option<f64> {
    let rest = &out[out.find("duration (average):")? + "duration (average):".len()..];
    number_at(rest.trim_start().split("ns").next()?)
}

fn costs(_pair: &Pair, netlab: &Path, xtask: &Path, plan: &Plan) -> Result<Costs> {
    let (udp_frame, icmp_frame) = test_frames();
    let files = TempFiles(vec![
        PathBuf::from("/tmp/nlbench-udp.frame"),
        PathBuf::from("/tmp/nlbench-icmp.frame"),
    ]);
    std::fs::write(&files.0[0], udp_frame)?;
    std::fs::write(&files.0[1], icmp_frame)?;
    let stats = BpfStats::enable()?;
    let mut windows = Vec::new();
    let (mut watch_mem_idle, mut watch_mem_busy) = (None, None);
    for round in 0..plan.cost_rounds {
        for sample in [1u32, 100] {
            eprintln!(
                "xtask: bench: per-packet cost, round {}/{}, --sample {sample}",
                round + 1,
                plan.cost_rounds
            );
            let watch = start_watch(netlab, &["--sample", &sample.to_string()], StdoutMode::Null)?;
            let progs = TcProgs::of(watch.pid())?;
            if watch_mem_idle.is_none() {
                watch_mem_idle = MemSnapshot::of(watch.pid()).ok();
            }
            let t0 = progs.read()?;
            let udp = udp_window(xtask, plan.skip_secs, Receiver::Reads)?;
            let t1 = progs.read()?;
            let out = quiet(&mut ping_cmd(1, plan.pings, 60))?;
            let t2 = progs.read()?;
            // Synthetic runs on lo of nlbench-br: their counts and events land on ifindex 1,
            // after the windows above were read.
            let test = |on: bool| -> Result<(Option<f64>, Option<f64>)> {
                if !on && !stats.can_disable() {
                    return Ok((None, None));
                }
                stats.set(on)?;
                Ok((
                    progs.test_run(&files.0[0], 1_000_000).ok(),
                    progs.test_run(&files.0[1], 20_000).ok(),
                ))
            };
            let (udp_on, icmp_on) = test(true)?;
            let (udp_off, icmp_off) = test(false)?;
            stats.set(true)?;
            if watch_mem_busy.is_none() {
                watch_mem_busy = MemSnapshot::of(watch.pid()).ok();
            }
            watch.stop(SIGINT, Duration::from_secs(20))?;
            let pings = parse_ping(&out).ok_or_else(|| anyhow!("ping said {out:?}"))?;
            ensure!(pings.received > 0, "no echo reply came back: {out}");
            windows.push(CostWindow {
                traffic: "udp",
                sample,
                ingress: t1.0.since(t0.0),
                egress: t1.1.since(t0.1),
                packets: udp.sent,
                test_run_stats_on: udp_on,
                test_run_stats_off: udp_off,
            });
            windows.push(CostWindow {
                traffic: "icmp",
                sample,
                ingress: t2.0.since(t1.0),
                egress: t2.1.since(t1.1),
                packets: pings.transmitted,
                test_run_stats_on: icmp_on,
                test_run_stats_off: icmp_off,
            });
        }
    }
    Ok(Costs {
        windows,
        watch_mem_idle,
        watch_mem_busy,
    })
}

// ---------------------------------------------------------------------------------------------
// 2. Packets per second with and without observers.
// ---------------------------------------------------------------------------------------------

/// What observes va, vb and br0 during a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Observer {
    None,
    /// No observer again, later in the same round: its ratio to the first is the noise
    /// floor of the comparison.
    NoneAgain,
    Netlab,
    /// netlab without its `skb:kfree_skb` program, to tell the two programs' costs apart.
    NetlabNoDrops,
    TcpdumpFiltered,
    TcpdumpFull,
}

impl Observer {
    fn name(self) -> &'static str {
        match self {
            Observer::None => "no observer",
            Observer::NoneAgain => "no observer, again (noise floor)",
            Observer::Netlab => "netlab watch (va, vb, br0)",
            Observer::NetlabNoDrops => "netlab watch --no-drops (va, vb, br0)",
            Observer::TcpdumpFiltered => "tcpdump -i va 'icmp or arp'",
            Observer::TcpdumpFull => "tcpdump -i va (everything)",
        }
    }

    fn start(self, netlab: &Path) -> Result<Option<Background>> {
        let tcpdump = |filter: Option<&str>| -> Result<Option<Background>> {
            let mut c = in_ns(NS_BR, "tcpdump");
            c.args(["-i", "va", "-w", "/dev/null"]);
            if let Some(f) = filter {
                c.arg(f);
            }
            let mut t = Background::spawn(&mut c, StdoutMode::Null)?;
            t.wait_for("listening on", Duration::from_secs(20))?;
            Ok(Some(t))
        };
        match self {
            Observer::None | Observer::NoneAgain => Ok(None),
            Observer::Netlab => start_watch(netlab, &[], StdoutMode::Null).map(Some),
            Observer::NetlabNoDrops => {
                start_watch(netlab, &["--no-drops"], StdoutMode::Null).map(Some)
            }
            Observer::TcpdumpFiltered => tcpdump(Some("icmp or arp")),
            Observer::TcpdumpFull => tcpdump(None),
        }
    }
}

#[derive(Debug, Clone)]
struct PpsWindow {
    round: usize,
    receiver: Receiver,
    observer: Observer,
    udp: UdpWindow,
    /// The observer's memory at the end of the window (netlab only).
    mem: Option<MemSnapshot>,
}

/// Each round: every observer while b reads (and the baseline twice), then no observer and
/// netlab (with and without its drop program) while b drops every datagram.
const PPS_ROUND: [(Receiver, Observer); 9] = [
    (Receiver::Reads, Observer::None),
    (Receiver::Reads, Observer::Netlab),
    (Receiver::Reads, Observer::NetlabNoDrops),
    (Receiver::Reads, Observer::NoneAgain),
    (Receiver::Reads, Observer::TcpdumpFiltered),
    (Receiver::Reads, Observer::TcpdumpFull),
    (Receiver::Drops, Observer::None),
    (Receiver::Drops, Observer::Netlab),
    (Receiver::Drops, Observer::NetlabNoDrops),
];

fn pps(_pair: &Pair, netlab: &Path, xtask: &Path, plan: &Plan) -> Result<Vec<PpsWindow>> {
    // Warm-up: caches, ARP, the CPU's frequency.
    udp_window(xtask, 1.0, Receiver::Reads)?;
    let mut windows = Vec::new();
    for round in 0..plan.pps_rounds {
        for (receiver, observer) in PPS_ROUND {
            eprintln!(
                "xtask: bench: packet rate, round {}/{}, b {}, {}",
                round + 1,
                plan.pps_rounds,
                match receiver {
                    Receiver::Reads => "reads",
                    Receiver::Drops => "drops",
                },
                observer.name()
            );
            let running = observer.start(netlab)?;
            let udp = udp_window(xtask, plan.pps_secs, receiver)?;
            let mut mem = None;
            if let Some(r) = running {
                if matches!(observer, Observer::Netlab | Observer::NetlabNoDrops) {
                    mem = MemSnapshot::of(r.pid()).ok();
                }
                r.stop(SIGINT, Duration::from_secs(20))?;
            }
            windows.push(PpsWindow {
                round,
                receiver,
                observer,
                udp,
                mem,
            });
        }
    }
    Ok(windows)
}

// ---------------------------------------------------------------------------------------------
// 3. ICMP floods into user space.
// ---------------------------------------------------------------------------------------------

/// What makes the ICMP of one flood level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FloodLoad {
    /// UDP datagrams from a at this rate to a closed port of b, each answered with an ICMP
    /// port unreachable (seen twice: vb ingress, va egress). The rate is under control.
    Unreachable { pps: u64 },
    /// ICMP echo requests from a to b at this rate (`bench-icmp-send`): four events per
    /// echo (request and reply, each on va and vb). The rate is under control.
    Echo { pps: u64 },
    /// `procs` × `ping -f -l preload` from a to b (four events per echo).
    Ping { procs: u32, preload: u32 },
}

impl FloodLoad {
    fn describe(&self) -> String {
        match *self {
            FloodLoad::Unreachable { pps } => format!("{pps} UDP/s → port unreachable"),
            FloodLoad::Echo { pps } => format!("{pps} echo requests/s"),
            FloodLoad::Ping { procs, preload } => {
                let one = if preload > 1 {
                    format!("ping -f -l {preload}")
                } else {
                    "ping -f".to_owned()
                };
                if procs > 1 {
                    format!("{procs} × {one}")
                } else {
                    one
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct FloodLevel {
    load: FloodLoad,
    secs: f64,
    /// Datagrams or echo requests sent.
    sent: u64,
    /// Packets counted by the programs (every kind, every interface).
    counted: u64,
    /// Packet events the ring buffer had no room for.
    ring_full: u64,
    /// Drop reports the ring buffer had no room for.
    drop_ring_full: u64,
    /// `lost_events` of the summary.
    lost: u64,
    /// Lines printed (packets, drops, journeys).
    printed: u64,
}

impl FloodLevel {
    /// Packet events that reached user space.
    fn delivered(&self) -> u64 {
        self.counted.saturating_sub(self.ring_full)
    }

    fn events_per_s(&self) -> f64 {
        self.delivered() as f64 / self.secs
    }

    fn offered_per_s(&self) -> f64 {
        self.counted as f64 / self.secs
    }
}

fn flood(_pair: &Pair, netlab: &Path, xtask: &Path, plan: &Plan) -> Result<Vec<FloodLevel>> {
    // b answers every datagram to a closed port, without its ICMP rate limits (this
    // namespace's own settings).
    quiet(in_ns(NS_B, "sysctl").args([
        "-qw",
        "net.ipv4.icmp_ratemask=0",
        "net.ipv4.icmp_ratelimit=0",
    ]))?;
    let mut levels: Vec<FloodLevel> = Vec::new();
    for &load in plan.flood_levels {
        let same_kind =
            |l: &&FloodLevel| std::mem::discriminant(&l.load) == std::mem::discriminant(&load);
        if levels
            .iter()
            .filter(same_kind)
            .filter(|l| l.lost > 0)
            .count()
            >= 2
        {
            continue;
        }
        eprintln!("xtask: bench: flood, {}", load.describe());
        let watch = start_watch_niced(netlab, &["--rate-limit", "0"], StdoutMode::Tail)?;
        let start = Instant::now();
        let (sent, secs) = match load {
            FloodLoad::Unreachable { pps } => {
                let out = quiet(xtask_in(NS_A, xtask, End::Sender).args([
                    "bench-udp-send",
                    "--dst",
                    ADDR_B,
                    "--port",
                    &CLOSED_PORT.to_string(),
                    "--secs",
                    &plan.flood_secs.to_string(),
                    "--pps",
                    &pps.to_string(),
                ]))?;
                sender_totals(&out)?
            }
            FloodLoad::Echo { pps } => {
                let out = quiet(xtask_in(NS_A, xtask, End::Sender).args([
                    "bench-icmp-send",
                    "--dst",
                    ADDR_B,
                    "--secs",
                    &plan.flood_secs.to_string(),
                    "--pps",
                    &pps.to_string(),
                ]))?;
                sender_totals(&out)?
            }
            FloodLoad::Ping { procs, preload } => {
                let pings: Vec<Background> = (0..procs)
                    .map(|_| {
                        Background::spawn(
                            &mut ping_cmd(preload, 10_000_000, plan.flood_secs),
                            StdoutMode::Tail,
                        )
                    })
                    .collect::<Result<_>>()?;
                let mut sent = 0;
                for p in pings {
                    let ended = p.finish(Duration::from_secs(u64::from(plan.flood_secs) + 10))?;
                    let text = ended.tail.join("\n");
                    sent += parse_ping(&text)
                        .ok_or_else(|| anyhow!("ping said {text:?}"))?
                        .transmitted;
                }
                (sent, start.elapsed().as_secs_f64())
            }
        };
        let ended = watch.stop(SIGINT, Duration::from_secs(60))?;
        ensure!(ended.success(), "netlab watch ended with {}", ended.status);
        let s = parse_summary(ended.last_line())
            .ok_or_else(|| anyhow!("no summary from netlab: {:?}", ended.last_line()))?;
        let level = FloodLevel {
            load,
            secs,
            sent,
            counted: s.counted,
            ring_full: s.ring_full,
            drop_ring_full: s.drop_ring_full,
            lost: s.lost,
            printed: s.printed,
        };
        eprintln!(
            "xtask: bench: {:.0} packet events/s offered, {:.0} delivered, lost {} (ring full {}, drop reports {})",
            level.offered_per_s(),
            level.events_per_s(),
            level.lost,
            level.ring_full,
            level.drop_ring_full
        );
        levels.push(level);
    }
    Ok(levels)
}

/// (sent, seconds) from a sender's `sent N errors E secs T`.
fn sender_totals(out: &str) -> Result<(u64, f64)> {
    let sent = word_after(out, "sent").ok_or_else(|| anyhow!("sender said {out:?}"))?;
    let secs = word_after(out, "secs").ok_or_else(|| anyhow!("sender said {out:?}"))?;
    Ok((sent as u64, secs))
}

/// What the summary line of `netlab watch --json` says.
#[derive(Debug, Default, PartialEq, Eq)]
struct Summary {
    counted: u64,
    lost: u64,
    ring_full: u64,
    drop_ring_full: u64,
    printed: u64,
}

fn parse_summary(line: &str) -> Option<Summary> {
    let start = line.find("\"counters\":[")?;
    let rows = &line[start..];
    let rows = &rows[..rows.find(']')?];
    let counted = rows
        .match_indices("\"packets\":")
        .filter_map(|(i, k)| number_at(&rows[i + k.len()..]))
        .sum::<f64>() as u64;
    let field = |key: &str| json_number(line, &[key]).map(|v| v as u64);
    Some(Summary {
        counted,
        lost: field("lost_events")?,
        ring_full: field("ring_full")?,
        drop_ring_full: field("drop_ring_full")?,
        printed: field("events")?,
    })
}

// ---------------------------------------------------------------------------------------------
// 4. The user-space pipeline (criterion).
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct CritBench {
    name: String,
    /// Events per iteration.
    batch: f64,
    /// Mean time per iteration and its 95 % confidence interval, ns.
    mean_ns: f64,
    lower_ns: f64,
    upper_ns: f64,
    /// Events per second of each sample.
    samples: Vec<f64>,
}

impl CritBench {
    fn events_per_s(&self) -> f64 {
        self.batch * 1e9 / self.mean_ns
    }
}

/// `cargo bench -p netlab-daemon --bench pipeline --no-run`: built before anything is
/// measured, so that no compiler runs during the measurements.
fn build_pipeline_bench() -> Result<()> {
    let mut c = cmd::cargo();
    c.args([
        "bench",
        "-p",
        "netlab-daemon",
        "--bench",
        "pipeline",
        "--no-run",
    ])
    .current_dir(workspace::root());
    let out = cmd::output(&mut c)?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    cmd::check(&c, out.status)
}

fn pipeline(plan: &Plan) -> Result<Vec<CritBench>> {
    let home = workspace::target_dir()?.join("criterion");
    // At the highest CFS weight, like the traffic: it measures the code, not the neighbours.
    let mut c = Command::new("nice");
    c.args(["-n", "-20", "cargo"])
        .args([
            "bench",
            "-p",
            "netlab-daemon",
            "--bench",
            "pipeline",
            "--",
            "--noplot",
        ])
        .args(plan.criterion)
        .env("CRITERION_HOME", &home)
        .current_dir(workspace::root());
    let out = cmd::output(&mut c)?;
    check_stop()?;
    // Criterion reports on stdout; ours may be the JSON object's alone.
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            cmd::display(&c),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut benches = Vec::new();
    for name in PIPELINE_BENCHES {
        let dir = home.join("pipeline").join(name);
        let read = |f: &str| -> Result<String> {
            let p = dir.join(f);
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
        };
        let est = read("new/estimates.json")?;
        let sample = read("new/sample.json")?;
        let bench = read("new/benchmark.json")?;
        let batch = json_number(&bench, &["throughput", "Elements"])
            .ok_or_else(|| anyhow!("no throughput in {name}'s benchmark.json"))?;
        let mean = |k: &[&str]| json_number(&est, k).ok_or_else(|| anyhow!("no {k:?} in {name}"));
        let iters = json_numbers(&sample, "iters");
        let times = json_numbers(&sample, "times");
        benches.push(CritBench {
            name: name.to_owned(),
            batch,
            mean_ns: mean(&["mean", "point_estimate"])?,
            lower_ns: mean(&["mean", "confidence_interval", "lower_bound"])?,
            upper_ns: mean(&["mean", "confidence_interval", "upper_bound"])?,
            samples: iters
                .iter()
                .zip(&times)
                .filter(|(_, t)| **t > 0.0)
                .map(|(i, t)| batch * i * 1e9 / t)
                .collect(),
        });
    }
    Ok(benches)
}

// ---------------------------------------------------------------------------------------------
// 5. Attaching to 500 veths, and to a new one.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
struct Scale {
    /// Interfaces `netlab watch` said it watches.
    interfaces: u64,
    /// Seconds from start to `watching N interfaces`.
    startup_secs: Vec<f64>,
    /// Milliseconds from `ip link set … master br0` starting to both TCX programs attached.
    latency_ms: Vec<f64>,
    /// How long that `ip` command itself took, ms (part of the latency above).
    ip_ms: Vec<f64>,
    /// New veths not attached within 3 s.
    missed: usize,
    /// Milliseconds from the start of a burst (20 veths made and enslaved by one `ip -batch`)
    /// to each one's TCX programs attached, every round together.
    burst_ms: Vec<f64>,
    /// Veths of a burst not attached within 3 s.
    burst_missed: usize,
    /// For each burst port, the milliseconds its frames went uncounted after the burst
    /// (one frame a millisecond from the end of the `ip -batch` on).
    unobserved_ms: Vec<f64>,
    /// Memory of `netlab watch` on them.
    watch_mem: Option<MemSnapshot>,
    /// Seconds `netlab watch` took to stop (detach everything) after SIGINT.
    stop_secs: Option<f64>,
}

/// `netlab watch --json` without `--iface` in the scale namespace, without Docker.
fn watch_everything(netlab: &Path) -> Command {
    let mut c = in_ns(NS_SCALE, netlab);
    c.args(["watch", "--json"])
        .env("DOCKER_HOST", NO_DOCKER)
        .env("NETLAB_SOCKET", NO_DAEMON);
    c
}

fn scale(ns: &ScaleNs, netlab: &Path, plan: &Plan) -> Result<Scale> {
    let mut s = Scale::default();
    let mut last = None;
    for run in 0..plan.startups {
        let t0 = Instant::now();
        let mut w = Background::spawn(&mut watch_everything(netlab), StdoutMode::Tail)?;
        let (at, line) = w.wait_for("watching ", Duration::from_secs(120))?;
        s.startup_secs.push(at.duration_since(t0).as_secs_f64());
        s.interfaces = word_after(&line, "watching").unwrap_or_default() as u64;
        eprintln!(
            "xtask: bench: start-up {}/{}: {:.3} s to watch {} interfaces",
            run + 1,
            plan.startups,
            at.duration_since(t0).as_secs_f64(),
            s.interfaces
        );
        if run + 1 == plan.startups {
            last = Some(w);
        } else {
            w.stop(SIGINT, Duration::from_secs(60))?;
        }
    }
    let w = last.ok_or_else(|| anyhow!("no start-up was run"))?;
    pause(Duration::from_millis(500))?;
    s.watch_mem = MemSnapshot::of(w.pid()).ok();
    let samples = plan.latency_samples;
    let first = ns.veths;
    let measured = thread::scope(|scope| {
        scope
            .spawn(move || -> Result<(Vec<f64>, Vec<f64>, usize)> {
                enter_netns(NS_SCALE)?;
                new_veth_latencies(first, samples)
            })
            .join()
    })
    .map_err(|_| anyhow!("the latency thread panicked"))??;
    (s.latency_ms, s.ip_ms, s.missed) = measured;
    let bursts = thread::scope(|scope| {
        scope
            .spawn(move || -> Result<(Vec<f64>, usize, Vec<String>)> {
                enter_netns(NS_SCALE)?;
                burst_latencies(first + samples as u32, BURST_ROUNDS, BURST_SIZE)
            })
            .join()
    })
    .map_err(|_| anyhow!("the burst thread panicked"))??;
    let ports;
    (s.burst_ms, s.burst_missed, ports) = bursts;
    let t0 = Instant::now();
    let ended = w.stop(SIGINT, Duration::from_secs(120))?;
    s.stop_secs = Some(t0.elapsed().as_secs_f64());
    // Each burst port got a frame a millisecond from the end of its burst on: the ones not
    // counted are the milliseconds it went unobserved.
    let summary: serde_json::Value = serde_json::from_str(ended.last_line()).unwrap_or_default();
    let counted = |iface: &str| -> u64 {
        summary["counters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| {
                r["iface"] == iface && r["direction"] == "ingress" && r["kind"] == "arp-request"
            })
            .filter_map(|r| r["packets"].as_u64())
            .sum()
    };
    s.unobserved_ms = ports
        .iter()
        .map(|p| BURST_FRAMES.saturating_sub(counted(p)) as f64)
        .collect();
    // Back to the 500 veths for the daemon.
    let extra: String = (first..first + samples as u32)
        .map(|n| format!("link del n{n}\n"))
        .collect();
    ip_batch(NS_SCALE, &extra)?;
    Ok(s)
}

/// In the scale namespace (the calling thread must be in it): `samples` times, makes a veth
/// pair `n<i>`/`q<i>`, lets netlab see it (not on a bridge, it is not observed), then enslaves
/// `n<i>` to br0 and polls every millisecond until TCX programs are attached to both its
/// directions. Returns the latencies, the time the `ip` command took, and how many were
/// not attached within 3 s.
fn new_veth_latencies(first: u32, samples: usize) -> Result<(Vec<f64>, Vec<f64>, usize)> {
    let (mut latency, mut ip_ms, mut missed) = (Vec::new(), Vec::new(), 0);
    for i in 0..samples {
        let n = first as usize + i;
        let (host, peer) = (format!("n{n}"), format!("q{n}"));
        ip(&[
            "-n", NS_SCALE, "link", "add", &host, "type", "veth", "peer", "name", &peer,
        ])?;
        // netlab rescans 20 ms after a link event; let that rescan pass.
        pause(Duration::from_millis(100))?;
        let shown = quiet(Command::new("ip").args(["-n", NS_SCALE, "-o", "link", "show", &host]))?;
        let ifindex: u32 = shown
            .split(':')
            .next()
            .and_then(|w| w.trim().parse().ok())
            .ok_or_else(|| anyhow!("no ifindex in {shown:?}"))?;
        ensure!(
            tcx_programs(ifindex, BPF_TCX_INGRESS)? == 0,
            "{host} is observed before it is on the bridge"
        );
        let t0 = Instant::now();
        let mut enslave = Command::new("ip");
        enslave.args(["-n", NS_SCALE, "link", "set", &host, "master", "br0", "up"]);
        let status = enslave
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()?;
        ensure!(status.success(), "`{}` failed", cmd::display(&enslave));
        let t_ip = t0.elapsed();
        let deadline = t0 + Duration::from_secs(3);
        let attached = loop {
            if tcx_programs(ifindex, BPF_TCX_INGRESS)? > 0
                && tcx_programs(ifindex, BPF_TCX_EGRESS)? > 0
            {
                break Some(t0.elapsed());
            }
            if Instant::now() >= deadline {
                break None;
            }
            thread::sleep(Duration::from_millis(1));
        };
        check_stop()?;
        match attached {
            Some(d) => {
                latency.push(d.as_secs_f64() * 1e3);
                ip_ms.push(t_ip.as_secs_f64() * 1e3);
            }
            None => missed += 1,
        }
    }
    eprintln!(
        "xtask: bench: {} new veths attached, {missed} not within 3 s",
        latency.len()
    );
    Ok((latency, ip_ms, missed))
}

/// Veths made and enslaved at once in a burst (as when containers start together).
const BURST_SIZE: usize = 20;
/// Bursts measured.
const BURST_ROUNDS: usize = 3;

/// The MAC address of `iface` in the calling thread's network namespace.
fn mac_of(iface: &str) -> Result<[u8; 6]> {
    // SAFETY: plain socket(2); closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    ensure!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: an all-zero ifreq is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, b) in req.ifr_name.iter_mut().zip(iface.bytes()) {
        *d = b as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR fills `req`, which lives across the call.
    let r = unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) };
    let err = std::io::Error::last_os_error();
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    ensure!(r == 0, "SIOCGIFHWADDR {iface}: {err}");
    // SAFETY: the kernel wrote a hardware address into the union.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *m = *b as u8;
    }
    Ok(mac)
}

/// Frames sent on each new port of a burst, one a millisecond from the moment the burst
/// is made: how many of them netlab counts tells how long a port went unobserved.
const BURST_FRAMES: u64 = 100;

/// Raw sockets on interfaces of the calling thread's network namespace, each sending ARP
/// requests (from 10.255.255.1 for 10.255.255.254, nobody's address) to `dst`.
struct ArpProbes {
    socks: Vec<(std::os::fd::OwnedFd, libc::sockaddr_ll)>,
    frame: Vec<u8>,
}

impl ArpProbes {
    fn new(ifindexes: &[u32], dst: [u8; 6]) -> Result<Self> {
        use std::os::fd::FromRawFd as _;
        const SRC: [u8; 6] = [0x02, 0x6e, 0x6c, 0x62, 0x75, 0x72];
        let mut frame = Vec::with_capacity(42);
        frame.extend_from_slice(&dst);
        frame.extend_from_slice(&SRC);
        frame.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        frame.extend_from_slice(&SRC);
        frame.extend_from_slice(&[10, 255, 255, 1]);
        frame.extend_from_slice(&[0; 6]);
        frame.extend_from_slice(&[10, 255, 255, 254]);
        let mut socks = Vec::with_capacity(ifindexes.len());
        for &ifindex in ifindexes {
            // SAFETY: plain socket(2); owned below.
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    i32::from(0x0806u16.to_be()),
                )
            };
            ensure!(
                fd >= 0,
                "packet socket: {}",
                std::io::Error::last_os_error()
            );
            // SAFETY: a descriptor just created, owned by nothing else.
            let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
            // SAFETY: an all-zero sockaddr_ll is valid; the fields used are set below.
            let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            to.sll_family = libc::AF_PACKET as u16;
            to.sll_protocol = 0x0806u16.to_be();
            to.sll_ifindex = ifindex as i32;
            to.sll_halen = 6;
            to.sll_addr[..6].copy_from_slice(&dst);
            socks.push((fd, to));
        }
        Ok(Self { socks, frame })
    }

    /// Sends one frame on every socket, `rounds` times, a millisecond apart.
    fn send(&self, rounds: u64) -> Result<()> {
        use std::os::fd::AsRawFd as _;
        let t0 = Instant::now();
        for round in 0..rounds {
            let at = t0 + Duration::from_millis(round);
            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            for (fd, to) in &self.socks {
                // SAFETY: `frame` and `to` are valid for the lengths passed.
                let sent = unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        self.frame.as_ptr().cast(),
                        self.frame.len(),
                        0,
                        (to as *const libc::sockaddr_ll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    )
                };
                ensure!(
                    sent == self.frame.len() as isize,
                    "sending on ifindex {}: {}",
                    to.sll_ifindex,
                    std::io::Error::last_os_error()
                );
            }
        }
        Ok(())
    }
}

/// When each interface was first reported with a master (joined a bridge), read from the
/// kernel's link notifications on a thread of its own as they arrive.
struct PortJoins {
    _fd: std::os::fd::OwnedFd,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    seen: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<u32, Instant>>>,
    reader: Option<thread::JoinHandle<()>>,
}

impl PortJoins {
    /// Subscribes (in the calling thread's network namespace) to link notifications.
    fn listen() -> Result<Self> {
        use std::os::fd::{AsRawFd as _, FromRawFd as _};
        // SAFETY: plain socket(2); the descriptor is owned below.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        ensure!(
            raw >= 0,
            "netlink socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a descriptor we just created and nobody else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        // SAFETY: an all-zero sockaddr_nl is valid; the group is set below.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        addr.nl_groups = 1; // RTMGRP_LINK
                            // SAFETY: `addr` is a valid sockaddr_nl of the size passed.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        ensure!(r == 0, "netlink bind: {}", std::io::Error::last_os_error());
        // A receive timeout, so the reader sees `stop` (netlink sockets ignore shutdown).
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 50_000,
        };
        // SAFETY: a valid timeval of the size passed.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        ensure!(r == 0, "SO_RCVTIMEO: {}", std::io::Error::last_os_error());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader_fd = fd.try_clone()?;
        let sink = std::sync::Arc::clone(&seen);
        let stopped = std::sync::Arc::clone(&stop);
        let reader = thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                // SAFETY: `buf` is writable for its whole length.
                let n = unsafe {
                    libc::recv(reader_fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
                };
                if n <= 0 {
                    continue;
                }
                let at = Instant::now();
                for idx in new_ports(&buf[..n as usize]) {
                    if let Ok(mut m) = sink.lock() {
                        m.entry(idx).or_insert(at);
                    }
                }
            }
        });
        Ok(Self {
            _fd: fd,
            seen,
            stop,
            reader: Some(reader),
        })
    }

    /// When `ifindex` joined a bridge, if it was seen to.
    fn joined(&self, ifindex: u32) -> Option<Instant> {
        self.seen.lock().ok()?.get(&ifindex).copied()
    }
}

impl Drop for PortJoins {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// The interface indexes of the RTM_NEWLINK messages in `buf` that carry IFLA_MASTER.
fn new_ports(buf: &[u8]) -> Vec<u32> {
    const NLMSG_HDR: usize = 16;
    const IFINFO: usize = 16;
    const IFLA_MASTER: u16 = 10;
    let u16_at = |b: &[u8], o: usize| b.get(o..o + 2).map(|x| u16::from_ne_bytes([x[0], x[1]]));
    let u32_at = |b: &[u8], o: usize| {
        b.get(o..o + 4)
            .map(|x| u32::from_ne_bytes([x[0], x[1], x[2], x[3]]))
    };
    let mut out = Vec::new();
    let mut off = 0;
    while let (Some(len), Some(kind)) = (u32_at(buf, off), u16_at(buf, off + 4)) {
        let len = len as usize;
        if len < NLMSG_HDR || off + len > buf.len() {
            break;
        }
        let msg = &buf[off..off + len];
        if kind == libc::RTM_NEWLINK {
            let ifindex = u32_at(msg, NLMSG_HDR + 4).unwrap_or(0);
            let mut a = NLMSG_HDR + IFINFO;
            while let (Some(alen), Some(atype)) = (u16_at(msg, a), u16_at(msg, a + 2)) {
                let alen = usize::from(alen);
                if alen < 4 {
                    break;
                }
                if atype & 0x3fff == IFLA_MASTER && u32_at(msg, a + 4).unwrap_or(0) != 0 {
                    out.push(ifindex);
                }
                a += (alen + 3) & !3;
            }
        }
        off += (len + 3) & !3;
    }
    out
}

/// In the scale namespace (the calling thread must be in it): `rounds` times, makes `size`
/// veth pairs `b<i>`/`c<i>` and puts each `b<i>` on br0 in one `ip -batch` (a burst of
/// links appearing, as when containers start together), then polls every millisecond
/// until each has TCX programs on both directions. Returns, for every veth, the time from
/// the kernel's notification that it joined br0 to both programs attached (the gap in
/// which its packets cross uncounted), and how many were not attached within 3 s. The
/// veths are deleted after each round.
fn burst_latencies(
    first: u32,
    rounds: usize,
    size: usize,
) -> Result<(Vec<f64>, usize, Vec<String>)> {
    let (mut gaps, mut missed, mut ports) = (Vec::new(), 0, Vec::new());
    for round in 0..rounds {
        let names: Vec<u32> = (0..size as u32)
            .map(|j| first + (round * size) as u32 + j)
            .collect();
        let batch: String = names
            .iter()
            .map(|n| {
                format!(
                    "link add b{n} type veth peer name c{n}\nlink set c{n} up\nlink set b{n} master br0 up\n"
                )
            })
            .collect();
        let joins = PortJoins::listen()?;
        let t0 = Instant::now();
        ip_batch(NS_SCALE, &batch)?;
        let batch_ms = t0.elapsed().as_secs_f64() * 1e3;
        let mut pending: Vec<(u32, u32)> = Vec::new();
        for n in &names {
            // The calling thread is in the scale namespace: the ioctl looks there.
            let name = std::ffi::CString::new(format!("b{n}"))?;
            // SAFETY: a valid NUL-terminated name.
            let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
            ensure!(ifindex != 0, "b{n} does not exist after the burst");
            pending.push((*n, ifindex));
        }
        // The first frame of each new port, at once: an ARP request from its peer to br0
        // (for an address nobody has, so nothing answers). The tc programs cannot be
        // attached yet; whether it is counted all the same is what covering is for.
        let br0 = mac_of("br0")?;
        let mut peers = Vec::with_capacity(names.len());
        for n in &names {
            let name = std::ffi::CString::new(format!("c{n}"))?;
            // SAFETY: a valid NUL-terminated name.
            peers.push(unsafe { libc::if_nametoindex(name.as_ptr()) });
        }
        let probes = ArpProbes::new(&peers, br0)?;
        let sender = thread::spawn(move || probes.send(BURST_FRAMES));
        eprintln!("xtask: bench: burst {round}: `ip -batch` took {batch_ms:.1} ms");
        let deadline = t0 + Duration::from_secs(3);
        while !pending.is_empty() && Instant::now() < deadline {
            let mut still = Vec::new();
            for (n, idx) in pending {
                if tcx_programs(idx, BPF_TCX_INGRESS)? > 0 && tcx_programs(idx, BPF_TCX_EGRESS)? > 0
                {
                    // From the moment the kernel said it joined the bridge (packets can
                    // cross it from then on) to both programs attached.
                    let from = joins.joined(idx).unwrap_or(t0);
                    gaps.push(from.elapsed().as_secs_f64() * 1e3);
                } else {
                    still.push((n, idx));
                }
            }
            pending = still;
            thread::sleep(Duration::from_millis(1));
        }
        missed += pending.len();
        sender
            .join()
            .map_err(|_| anyhow!("the frame sender panicked"))??;
        ports.extend(names.iter().map(|n| format!("b{n}")));
        check_stop()?;
        let del: String = names.iter().map(|n| format!("link del b{n}\n")).collect();
        ip_batch(NS_SCALE, &del)?;
        pause(Duration::from_millis(500))?;
    }
    eprintln!(
        "xtask: bench: bursts of {size}: {} veths attached, {missed} not within 3 s",
        gaps.len()
    );
    Ok((gaps, missed, ports))
}

// ---------------------------------------------------------------------------------------------
// 6. Memory of the daemon.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
struct Memory {
    interfaces: u64,
    mem: MemSnapshot,
    maps: Vec<MapInfo>,
}

/// Removes what `netlab daemon` pinned and its socket, also when the measurement fails.
struct PinnedDaemon<'a> {
    netlab: &'a Path,
}

impl Drop for PinnedDaemon<'_> {
    fn drop(&mut self) {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/var/run/netns/{NS_SCALE}"))
            .arg(self.netlab)
            .args(["daemon", "--cleanup", "--pin-dir", PIN_DIR]);
        if let Err(e) = quiet(&mut c) {
            eprintln!("xtask: {e:#}");
        }
        let _ = std::fs::remove_file(DAEMON_SOCKET);
        let _ = std::fs::remove_dir(PIN_DIR);
    }
}

fn memory(_ns: &ScaleNs, netlab: &Path, plan: &Plan) -> Result<Memory> {
    // `ip netns exec` remounts /sys, which hides bpffs; nsenter switches the network only.
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/var/run/netns/{NS_SCALE}"))
        .arg(netlab)
        .args(["daemon", "--socket", DAEMON_SOCKET, "--pin-dir", PIN_DIR])
        .env("DOCKER_HOST", NO_DOCKER);
    let _cleanup = PinnedDaemon { netlab };
    let mut d = Background::spawn(&mut c, StdoutMode::Null)?;
    let (_, line) = d.wait_for("daemon: watching", Duration::from_secs(120))?;
    pause(plan.daemon_settle)?;
    let mem = MemSnapshot::of(d.pid())?;
    let maps = maps_of(d.pid())?;
    d.stop(SIGTERM, Duration::from_secs(60))?;
    Ok(Memory {
        interfaces: word_after(&line, "watching").unwrap_or_default() as u64,
        mem,
        maps,
    })
}

// ---------------------------------------------------------------------------------------------
// Small parsers.
// ---------------------------------------------------------------------------------------------

/// The number after the first occurrence of word `key` in `text` (`sent 123 errors 0`).
fn word_after(text: &str, key: &str) -> Option<f64> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == key)?;
    words.next()?.parse().ok()
}

/// The JSON number at the start of `s` (after optional blanks).
fn number_at(s: &str) -> Option<f64> {
    let s = s.trim_start();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
        .unwrap_or(s.len());
    s[..end].parse().ok()
}

/// The number at `"k1"…"k2"…"kn":` in a JSON text: each key is looked for after the
/// previous one (enough for criterion's files and netlab's summary, whose keys are unique
/// along such a path).
fn json_number(json: &str, path: &[&str]) -> Option<f64> {
    let mut rest = json;
    for key in path {
        let quoted = format!("\"{key}\"");
        rest = &rest[rest.find(&quoted)? + quoted.len()..];
    }
    number_at(rest.trim_start().strip_prefix(':')?)
}

/// The numbers of the array at `"key":[…]`.
fn json_numbers(json: &str, key: &str) -> Vec<f64> {
    let quoted = format!("\"{key}\"");
    let Some(at) = json.find(&quoted) else {
        return Vec::new();
    };
    let rest = json[at + quoted.len()..].trim_start();
    let Some(rest) = rest.strip_prefix(':').map(str::trim_start) else {
        return Vec::new();
    };
    let Some(rest) = rest.strip_prefix('[') else {
        return Vec::new();
    };
    let Some(end) = rest.find(']') else {
        return Vec::new();
    };
    rest[..end].split(',').filter_map(number_at).collect()
}

// ---------------------------------------------------------------------------------------------
// Statistics and the results.
// ---------------------------------------------------------------------------------------------

/// Minimum, median and maximum of a few measurements.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Spread {
    n: usize,
    min: f64,
    median: f64,
    max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            n,
            min: v[0],
            median,
            max: v[n - 1],
        })
    }

    /// `median (min–max, n=N)` with `decimals` decimals.
    fn show(&self, decimals: usize) -> String {
        if self.n == 1 {
            return format!("{:.decimals$}", self.median);
        }
        format!(
            "{:.decimals$} ({:.decimals$}–{:.decimals$}, n={})",
            self.median, self.min, self.max, self.n
        )
    }
}

/// The `p`-th percentile (0–100) by the nearest-rank method.
fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    Some(v[rank.min(v.len()) - 1])
}

/// The machine the numbers were measured on.
#[derive(Debug, Clone, Default)]
struct Machine {
    cpus: usize,
    model: String,
    kernel: String,
    memory_gib: f64,
    load_before: String,
    load_after: String,
    /// Share of CPU time idle over two seconds just before and just after the run (other
    /// jobs of the machine), percent.
    idle_before: Option<f64>,
    idle_after: Option<f64>,
}

impl Machine {
    fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpus: thread::available_parallelism().map_or(0, |n| n.get()),
            model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map_or("?".into(), |(_, m)| m.trim().to_owned()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or("?".into(), |k| k.trim().to_owned()),
            memory_gib: word_after(&meminfo.replace(':', " "), "MemTotal").unwrap_or_default()
                / 1024.0
                / 1024.0,
            load_before: read_loadavg(),
            load_after: String::new(),
            idle_before: cpu_idle(Duration::from_secs(2)),
            idle_after: None,
        }
    }
}

/// The aggregate `cpu` line of /proc/stat: (idle + iowait, total) jiffies.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|w| w.parse().ok())
        .collect();
    Some((fields.get(3)? + fields.get(4)?, fields.iter().sum()))
}

/// Percent of CPU time idle over `d`.
fn cpu_idle(d: Duration) -> Option<f64> {
    let (idle0, total0) = cpu_times()?;
    thread::sleep(d);
    let (idle1, total1) = cpu_times()?;
    let total = total1.checked_sub(total0).filter(|t| *t > 0)?;
    Some(100.0 * idle1.saturating_sub(idle0) as f64 / total as f64)
}

fn read_loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

#[derive(Debug, Default)]
struct Results {
    quick: bool,
    date: String,
    elapsed_secs: f64,
    machine: Machine,
    costs: Option<Costs>,
    pps: Option<Vec<PpsWindow>>,
    flood: Option<Vec<FloodLevel>>,
    pipeline: Option<Vec<CritBench>>,
    scale: Option<Scale>,
    memory: Option<Memory>,
    log: PartLog,
}

/// One line of the summary table.
struct Row {
    what: &'static str,
    key: &'static str,
    value: Option<f64>,
    shown: String,
    target: &'static str,
    met: Option<bool>,
}

impl Results {
    fn cost_spread(&self, traffic: &str, sample: Option<u32>) -> Option<Spread> {
        let v: Vec<f64> = self
            .costs
            .iter()
            .flat_map(|c| &c.windows)
            .filter(|w| w.traffic == traffic && sample.is_none_or(|s| w.sample == s))
            .filter_map(CostWindow::ns_per_run)
            .collect();
        Spread::of(&v)
    }

    /// The skipped UDP through BPF_PROG_TEST_RUN with the statistics off.
    fn skip_test_run(&self) -> Option<Spread> {
        let v: Vec<f64> = self
            .costs
            .iter()
            .flat_map(|c| &c.windows)
            .filter(|w| w.traffic == "udp")
            .filter_map(|w| w.test_run_stats_off)
            .collect();
        Spread::of(&v)
    }

    /// Per round, the observer's packet rate over the no-observer rate of the same round
    /// (and the same receiver).
    fn ratios(&self, receiver: Receiver, observer: Observer) -> Vec<f64> {
        let windows = self.pps.as_deref().unwrap_or_default();
        windows
            .iter()
            .filter(|w| w.observer == observer && w.receiver == receiver)
            .filter_map(|w| {
                let base = windows.iter().find(|b| {
                    b.round == w.round && b.receiver == receiver && b.observer == Observer::None
                })?;
                Some(w.udp.pps() / base.udp.pps())
            })
            .collect()
    }

    fn best_lossless(&self) -> Option<&FloodLevel> {
        self.flood
            .iter()
            .flatten()
            .filter(|l| l.lost == 0)
            .max_by(|a, b| a.events_per_s().total_cmp(&b.events_per_s()))
    }

    /// The level with the lowest offered rate that lost events.
    fn first_lossy(&self) -> Option<&FloodLevel> {
        self.flood
            .iter()
            .flatten()
            .filter(|l| l.lost > 0)
            .min_by(|a, b| a.offered_per_s().total_cmp(&b.offered_per_s()))
    }

    fn headline(&self) -> Option<&CritBench> {
        self.pipeline
            .iter()
            .flatten()
            .find(|b| b.name == PIPELINE_BENCHES[PIPELINE_BENCHES.len() - 1])
    }

    fn rows(&self) -> Vec<Row> {
        let spread_row =
            |what, key, s: Option<Spread>, decimals, target, ok: fn(f64) -> bool| Row {
                what,
                key,
                value: s.map(|s| s.median),
                shown: s.map_or("not measured".into(), |s| s.show(decimals)),
                target,
                met: s.map(|s| ok(s.median)),
            };
        let skip = self.cost_spread("udp", None);
        let icmp100 = self.cost_spread("icmp", Some(100));
        let icmp1 = self.cost_spread("icmp", Some(1));
        let netlab = Spread::of(&self.ratios(Receiver::Reads, Observer::Netlab));
        let filtered = Spread::of(&self.ratios(Receiver::Reads, Observer::TcpdumpFiltered));
        let full = Spread::of(&self.ratios(Receiver::Reads, Observer::TcpdumpFull));
        let lossless = self.best_lossless();
        let pipeline = self.headline();
        let scale = self.scale.as_ref();
        let startup = scale.and_then(|s| Spread::of(&s.startup_secs));
        let p99 = scale.and_then(|s| percentile(&s.latency_ms, 99.0));
        let rss = self.memory.as_ref().map(|m| m.mem.rss);
        let netlab_beats_tcpdump = match (netlab, filtered) {
            (Some(n), Some(f)) => Some(n.median >= 0.97 && n.median > f.median),
            (Some(n), None) => Some(n.median >= 0.97),
            _ => None,
        };
        vec![
            spread_row(
                "tc programs, UDP they skip (ns/run)",
                "skip_ns_per_pkt",
                skip,
                1,
                "≤ 15",
                |v| v <= 15.0,
            ),
            Row {
                met: None,
                ..spread_row(
                    "same, BPF_PROG_TEST_RUN, statistics off (ns/run)",
                    "",
                    self.skip_test_run(),
                    1,
                    "",
                    |_| true,
                )
            },
            spread_row(
                "tc programs, ICMP at --sample 100 (ns/run)",
                "icmp_ns_per_pkt_sample100",
                icmp100,
                1,
                "≤ 60",
                |v| v <= 60.0,
            ),
            Row {
                met: None,
                ..spread_row(
                    "tc programs, ICMP at --sample 1 (ns/run)",
                    "",
                    icmp1,
                    1,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "UDP pps, no observer again / no observer (noise)",
                    "",
                    Spread::of(&self.ratios(Receiver::Reads, Observer::NoneAgain)),
                    3,
                    "",
                    |_| true,
                )
            },
            Row {
                met: netlab_beats_tcpdump,
                ..spread_row(
                    "UDP pps with netlab / without",
                    "pps_ratio_netlab",
                    netlab,
                    3,
                    "≥ 0.97, > tcpdump 'icmp or arp'",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "UDP pps with netlab --no-drops / without",
                    "",
                    Spread::of(&self.ratios(Receiver::Reads, Observer::NetlabNoDrops)),
                    3,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "UDP pps with tcpdump 'icmp or arp' / without",
                    "pps_ratio_tcpdump_filtered",
                    filtered,
                    3,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "UDP pps with tcpdump (all) / without",
                    "pps_ratio_tcpdump_full",
                    full,
                    3,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "b drops every datagram: netlab / without",
                    "",
                    Spread::of(&self.ratios(Receiver::Drops, Observer::Netlab)),
                    3,
                    "",
                    |_| true,
                )
            },
            Row {
                met: None,
                ..spread_row(
                    "b drops every datagram: netlab --no-drops / without",
                    "",
                    Spread::of(&self.ratios(Receiver::Drops, Observer::NetlabNoDrops)),
                    3,
                    "",
                    |_| true,
                )
            },
            Row {
                what: "ICMP events/s delivered without loss",
                key: "events_per_s_no_loss",
                value: lossless.map(FloodLevel::events_per_s),
                shown: match (lossless, self.first_lossy()) {
                    (Some(l), Some(x)) => format!(
                        "{:.0} (loss from {:.0}/s offered)",
                        l.events_per_s(),
                        x.offered_per_s()
                    ),
                    (Some(l), None) => format!("{:.0} (no loss seen)", l.events_per_s()),
                    (None, Some(x)) => {
                        format!("loss at every level (from {:.0}/s)", x.offered_per_s())
                    }
                    (None, None) => "not measured".into(),
                },
                target: "≥ 300,000",
                met: self
                    .flood
                    .as_ref()
                    .map(|_| lossless.is_some_and(|l| l.events_per_s() >= 300_000.0)),
            },
            Row {
                what: "pipeline: label + JSON, one core (events/s)",
                key: "pipeline_events_per_s",
                value: pipeline.map(CritBench::events_per_s),
                shown: pipeline.map_or("not measured".into(), |b| {
                    format!(
                        "{:.0} (95% CI {:.0}–{:.0})",
                        b.events_per_s(),
                        b.batch * 1e9 / b.upper_ns,
                        b.batch * 1e9 / b.lower_ns
                    )
                }),
                target: "≥ 1,000,000",
                met: pipeline.map(|b| b.events_per_s() >= 1_000_000.0),
            },
            spread_row(
                "start-up on 500 veths (s)",
                "attach_500_s",
                startup,
                3,
                "< 2",
                |v| v < 2.0,
            ),
            Row {
                what: "new veth to attached, p99 (ms)",
                key: "attach_p99_ms",
                value: p99,
                shown: match (scale, p99) {
                    (Some(s), Some(p)) => format!(
                        "{p:.1} (median {:.1}, n={}, missed {})",
                        Spread::of(&s.latency_ms).map_or(f64::NAN, |x| x.median),
                        s.latency_ms.len(),
                        s.missed
                    ),
                    _ => "not measured".into(),
                },
                target: "< 50",
                met: scale.map(|s| s.missed == 0 && p99.is_some_and(|p| p < 50.0)),
            },
            Row {
                what: "burst of 20 new ports, unobserved p99 (ms)",
                key: "burst20_unobserved_p99_ms",
                value: scale.and_then(|s| percentile(&s.unobserved_ms, 99.0)),
                shown: match scale.and_then(|s| percentile(&s.unobserved_ms, 99.0).map(|p| (s, p))) {
                    Some((s, p)) => format!(
                        "{p:.0} (p50 {:.0}, n={}; attached p50 {:.0} ms, p99 {:.0} ms after joining)",
                        percentile(&s.unobserved_ms, 50.0).unwrap_or(f64::NAN),
                        s.unobserved_ms.len(),
                        percentile(&s.burst_ms, 50.0).unwrap_or(f64::NAN),
                        percentile(&s.burst_ms, 99.0).unwrap_or(f64::NAN),
                    ),
                    None => "not measured".into(),
                },
                target: "0 (reported)",
                met: scale.and_then(|s| percentile(&s.unobserved_ms, 99.0)).map(|p| p == 0.0),
            },
            Row {
                what: "daemon resident memory, 500 veths (MiB)",
                key: "daemon_rss_mb",
                value: rss,
                shown: rss.map_or("not measured".into(), |r| format!("{r:.1}")),
                target: "< 40",
                met: rss.map(|r| r < 40.0),
            },
        ]
    }

    /// The one JSON object of `--json`.
    fn json(&self) -> String {
        let rows = self.rows();
        let fields: Vec<String> = JSON_KEYS
            .iter()
            .map(|key| {
                let v = rows.iter().find(|r| r.key == *key).and_then(|r| r.value);
                let decimals = match *key {
                    "pps_ratio_netlab"
                    | "pps_ratio_tcpdump_filtered"
                    | "pps_ratio_tcpdump_full" => 4,
                    "events_per_s_no_loss" | "pipeline_events_per_s" => 0,
                    "attach_500_s" => 3,
                    _ => 2,
                };
                format!("\"{key}\":{}", json_value(v, decimals))
            })
            .collect();
        format!("{{{}}}", fields.join(","))
    }

    fn table(&self) -> String {
        let mut t = String::new();
        let m = &self.machine;
        t.push_str(&format!(
            "\nnetlab bench ({}) — {} × {}, Linux {}, {:.1} GiB; load {} → {}; idle {} → {}\n\n",
            if self.quick { "quick" } else { "full" },
            m.cpus,
            m.model,
            m.kernel,
            m.memory_gib,
            m.load_before,
            m.load_after,
            m.idle_before.map_or("?".into(), |v| format!("{v:.0}%")),
            m.idle_after.map_or("?".into(), |v| format!("{v:.0}%"))
        ));
        let rows = self.rows();
        let w0 = rows
            .iter()
            .map(|r| r.what.chars().count())
            .max()
            .unwrap_or(0);
        let w1 = rows
            .iter()
            .map(|r| r.shown.chars().count())
            .max()
            .unwrap_or(0);
        for r in &rows {
            t.push_str(&format!(
                "  {:<w0$}  {:<w1$}  {:<32}  {}\n",
                r.what,
                r.shown,
                r.target,
                verdict(r.met)
            ));
        }
        for f in &self.log.failures {
            t.push_str(&format!("  failed: {f}\n"));
        }
        t.push('\n');
        t
    }

    /// The results block of BENCH.md (between the markers).
    fn markdown(&self) -> String {
        let mut s = self.markdown_parts();
        let times: Vec<String> = self
            .log
            .timings
            .iter()
            .map(|(name, secs)| format!("{name} {secs:.0} s"))
            .collect();
        s.push_str(&format!(
            "\nTime per part: {}; {:.0} s in all.\n",
            times.join(", "),
            self.elapsed_secs
        ));
        s
    }

    fn markdown_parts(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        s.push_str(&format!(
            "## Results ({} run, {}, {:.0} s)\n\n",
            if self.quick { "`--quick`" } else { "full" },
            self.date,
            self.elapsed_secs
        ));
        let idle = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.0} %"));
        s.push_str(&format!(
            "Machine: {} × {} (`nproc` {}), Linux {}, {:.1} GiB of memory. Other jobs shared it: load average {} before, {} after; CPU idle over 2 s just before {}, just after {}.\n\n",
            m.cpus,
            m.model,
            m.cpus,
            m.kernel,
            m.memory_gib,
            m.load_before,
            m.load_after,
            idle(m.idle_before),
            idle(m.idle_after)
        ));
        s.push_str("| measurement | median (min–max, n) | target | |\n|---|---|---|---|\n");
        for r in self.rows() {
            s.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                r.what,
                r.shown,
                r.target,
                verdict(r.met)
            ));
        }
        for f in &self.log.failures {
            s.push_str(&format!("\nFailed: {f}\n"));
        }
        if let Some(c) = self.costs.as_ref().map(|c| &c.windows) {
            s.push_str("\n### 1. Per-packet cost of the tc programs\n\n");
            s.push_str("ns per program run = Δrun_time_ns / Δrun_cnt of each window (one window per round and setting), from the programs' fdinfo with `kernel.bpf_stats_enabled=1`; these include the statistics' own two clock reads per run. The last columns run the ingress program on the same kind of frame with `bpftool prog run … repeat N` (BPF_PROG_TEST_RUN, 1,000,000 UDP or 20,000 ICMP runs timed together), with the statistics on and off: their difference is what the statistics add to every run; each TEST_RUN iteration also pays a `local_bh_disable/enable` pair.\n\n");
            s.push_str("| traffic | --sample | ingress ns/run | egress ns/run | both ns/run | runs per window | packets per window | TEST_RUN, stats on | TEST_RUN, stats off |\n|---|---|---|---|---|---|---|---|---|\n");
            for (traffic, sample) in [("udp", 1), ("udp", 100), ("icmp", 1), ("icmp", 100)] {
                let ws: Vec<&CostWindow> = c
                    .iter()
                    .filter(|w| w.traffic == traffic && w.sample == sample)
                    .collect();
                let col = |f: &dyn Fn(&CostWindow) -> Option<f64>, d: usize| {
                    Spread::of(&ws.iter().filter_map(|w| f(w)).collect::<Vec<_>>())
                        .map_or("–".into(), |x| x.show(d))
                };
                s.push_str(&format!(
                    "| {} | {sample} | {} | {} | {} | {} | {} | {} | {} |\n",
                    if traffic == "udp" {
                        "UDP (skipped)"
                    } else {
                        "ICMP echo"
                    },
                    col(&|w| w.ingress.ns_per_run(), 1),
                    col(&|w| w.egress.ns_per_run(), 1),
                    col(&|w| w.ns_per_run(), 1),
                    col(&|w| Some((w.ingress.runs + w.egress.runs) as f64), 0),
                    col(&|w| Some(w.packets as f64), 0),
                    col(&|w| w.test_run_stats_on, 1),
                    col(&|w| w.test_run_stats_off, 1),
                ));
            }
        }
        if let Some(p) = &self.pps {
            s.push_str("\n### 2. UDP packets per second, a → b\n\n");
            s.push_str("The sender runs on CPU 0 (with it, in its softirqs, the whole path a → va → br0 → vb → b, where the tc programs run), the receiver on CPU 1, both at `nice -n -20`. Arrived = datagrams that reached b's UDP layer (`InDatagrams` + `RcvbufErrors` of b's /proc/net/snmp) per second of sending. \"b drops\": the receiver reads nothing, so b frees every datagram (socket buffer full), which runs netlab's `kfree_skb` program for each. Each round runs the rows in this order; ratio = the row's arrived rate / the no-observer rate of the same round and receiver.\n\n");
            s.push_str("| b | observer | arrived pps | sent pps | read by receiver pps | ratio to no observer |\n|---|---|---|---|---|---|\n");
            for (receiver, o) in PPS_ROUND {
                let ws: Vec<&PpsWindow> = p
                    .iter()
                    .filter(|w| w.observer == o && w.receiver == receiver)
                    .collect();
                let rx = Spread::of(&ws.iter().map(|w| w.udp.pps()).collect::<Vec<_>>());
                let tx = Spread::of(
                    &ws.iter()
                        .map(|w| w.udp.sent as f64 / w.udp.secs)
                        .collect::<Vec<_>>(),
                );
                let read = Spread::of(
                    &ws.iter()
                        .map(|w| w.udp.received as f64 / w.udp.secs)
                        .collect::<Vec<_>>(),
                );
                let ratio = Spread::of(&self.ratios(receiver, o));
                s.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} |\n",
                    match receiver {
                        Receiver::Reads => "reads",
                        Receiver::Drops => "drops",
                    },
                    o.name(),
                    rx.map_or("–".into(), |x| x.show(0)),
                    tx.map_or("–".into(), |x| x.show(0)),
                    read.map_or("–".into(), |x| x.show(0)),
                    ratio.map_or("–".into(), |x| x.show(3)),
                ));
            }
        }
        if let Some(f) = &self.flood {
            s.push_str("\n### 3. ICMP flood into `netlab watch --json --rate-limit 0`\n\n");
            s.push_str("Each level is its own `netlab watch` run. Offered = packets counted by the programs on va, vb and br0 per second; delivered = offered minus ring-buffer overflows. Drop reports are the `kfree_skb` records of ARP/ICMP packets the flood gets freed, which share the ring with packet events and count in `lost_events` too; the echo replies `ping_rcv` frees with `NO_SOCKET` are only counted by reason in the kernel, not reported.\n\n");
            s.push_str("| load | s | sent/s | offered events/s | delivered events/s | packet events lost | drop reports lost | lines printed |\n|---|---|---|---|---|---|---|---|\n");
            for l in f {
                s.push_str(&format!(
                    "| {} | {:.2} | {:.0} | {:.0} | {:.0} | {} | {} | {} |\n",
                    l.load.describe(),
                    l.secs,
                    l.sent as f64 / l.secs,
                    l.offered_per_s(),
                    l.events_per_s(),
                    l.ring_full,
                    l.drop_ring_full,
                    l.printed
                ));
            }
        }
        if let Some(p) = &self.pipeline {
            s.push_str(
                "\n### 4. User-space pipeline (criterion, `PacketRecord::new` + `write_json`)\n\n",
            );
            s.push_str("| bench | events/s (mean) | 95% CI | per-sample min–median–max |\n|---|---|---|---|\n");
            for b in p {
                let sm = Spread::of(&b.samples);
                s.push_str(&format!(
                    "| {} | {:.0} | {:.0}–{:.0} | {} |\n",
                    b.name,
                    b.events_per_s(),
                    b.batch * 1e9 / b.upper_ns,
                    b.batch * 1e9 / b.lower_ns,
                    sm.map_or("–".into(), |x| format!(
                        "{:.0}–{:.0}–{:.0}",
                        x.min, x.median, x.max
                    ))
                ));
            }
        }
        if let Some(sc) = &self.scale {
            s.push_str("\n### 5. Attaching to 500 veths\n\n");
            s.push_str(&format!(
                "- `netlab watch` (no Docker) watched {} interfaces; start to `watching` line: {} s.\n",
                sc.interfaces,
                Spread::of(&sc.startup_secs).map_or("–".into(), |x| x.show(3))
            ));
            let lat = Spread::of(&sc.latency_ms);
            s.push_str(&format!(
                "- New veth enslaved → both TCX programs attached: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms (n={}, not attached within 3 s: {}); the `ip link set … master br0` command itself took {} ms of that.\n",
                lat.map_or("–".into(), |x| format!("{:.1}", x.median)),
                percentile(&sc.latency_ms, 90.0).map_or("–".into(), |x| format!("{x:.1}")),
                percentile(&sc.latency_ms, 99.0).map_or("–".into(), |x| format!("{x:.1}")),
                lat.map_or("–".into(), |x| format!("{:.1}", x.max)),
                sc.latency_ms.len(),
                sc.missed,
                Spread::of(&sc.ip_ms).map_or("–".into(), |x| x.show(1))
            ));
            s.push_str(&format!(
                "- Bursts of {BURST_SIZE} veths made and put on br0 by one `ip -batch` ({BURST_ROUNDS} rounds): from the start of the burst to each veth's programs attached (its packets before that are not counted): p50 {} ms, p90 {} ms, p99 {} ms, max {} ms (n={}, not attached within 3 s: {}).\n",
                percentile(&sc.burst_ms, 50.0).map_or("–".into(), |x| format!("{x:.1}")),
                percentile(&sc.burst_ms, 90.0).map_or("–".into(), |x| format!("{x:.1}")),
                percentile(&sc.burst_ms, 99.0).map_or("–".into(), |x| format!("{x:.1}")),
                Spread::of(&sc.burst_ms).map_or("–".into(), |x| format!("{:.1}", x.max)),
                sc.burst_ms.len(),
                sc.burst_missed,
            ));
            if !sc.unobserved_ms.is_empty() {
                s.push_str(&format!(
                    "- Each burst port sent one frame a millisecond from the end of its burst on ({BURST_FRAMES} each); the frames netlab did not count are the time it went unobserved: p50 {} ms, p99 {} ms, max {} ms; ports counted from their first frame: {} of {}. New ports are counted by raw tracepoints beside tc until their programs are attached (see netlab-ebpf/src/cover.rs).\n",
                    percentile(&sc.unobserved_ms, 50.0).map_or("–".into(), |x| format!("{x:.0}")),
                    percentile(&sc.unobserved_ms, 99.0).map_or("–".into(), |x| format!("{x:.0}")),
                    Spread::of(&sc.unobserved_ms).map_or("–".into(), |x| format!("{:.0}", x.max)),
                    sc.unobserved_ms.iter().filter(|v| **v == 0.0).count(),
                    sc.unobserved_ms.len()
                ));
            }
            if let Some(m) = &sc.watch_mem {
                s.push_str(&format!("- `netlab watch` memory on them: {}.\n", m.show()));
            }
            if let Some(stop) = sc.stop_secs {
                s.push_str(&format!(
                    "- `netlab watch` took {stop:.1} s to stop (detach everything) after SIGINT.\n"
                ));
            }
        }
        if let Some(mem) = &self.memory {
            s.push_str("\n### 6. `netlab daemon` memory\n\n");
            s.push_str(&format!(
                "- {} interfaces observed, no Docker (so no labelled endpoints): {}.\n",
                mem.interfaces,
                mem.mem.show()
            ));
            if let Some(c) = &self.costs {
                if let Some(m) = &c.watch_mem_idle {
                    s.push_str(&format!(
                        "- For comparison, `netlab watch` on 3 interfaces (part 1), just started: {}.\n",
                        m.show()
                    ));
                }
                let pps_mem = |o: Observer| {
                    self.pps
                        .iter()
                        .flatten()
                        .find(|w| w.observer == o)
                        .and_then(|w| w.mem.as_ref())
                };
                if let (Some(with), Some(without)) =
                    (pps_mem(Observer::Netlab), pps_mem(Observer::NetlabNoDrops))
                {
                    s.push_str(&format!(
                        "- After a UDP window of part 2: {}; with `--no-drops` (no kernel symbols, BTF or drop program): {}.\n",
                        with.show(),
                        without.show()
                    ));
                }
                if let Some(m) = &c.watch_mem_busy {
                    s.push_str(&format!(
                        "- The same after its first windows ({} UDP datagrams, a {}-echo `ping -f`, the test runs): {}.\n",
                        c.windows.first().map_or(0, |w| w.packets),
                        c.windows.get(1).map_or(0, |w| w.packets),
                        m.show()
                    ));
                }
            }
            let total: u64 = mem.maps.iter().map(|m| m.bytes).sum();
            s.push_str(&format!(
                "- Kernel maps it holds: {:.1} MiB of memlock in all.\n\n| map | type | bytes |\n|---|---|---|\n",
                total as f64 / 1_048_576.0
            ));
            for m in &mem.maps {
                s.push_str(&format!("| {} | {} | {} |\n", m.name, m.kind, m.bytes));
            }
        }
        s
    }
}

/// The keys of `--json`, in order.
const JSON_KEYS: [&str; 10] = [
    "skip_ns_per_pkt",
    "icmp_ns_per_pkt_sample100",
    "pps_ratio_netlab",
    "pps_ratio_tcpdump_filtered",
    "pps_ratio_tcpdump_full",
    "events_per_s_no_loss",
    "pipeline_events_per_s",
    "attach_500_s",
    "attach_p99_ms",
    "daemon_rss_mb",
];

fn json_value(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) if x.is_finite() => {
            let s = format!("{x:.decimals$}");
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_owned()
            } else {
                s
            }
        }
        _ => "null".into(),
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "",
    }
}

/// Replaces the results block of BENCH.md, keeping everything around it; creates the file
/// with the method and the way to reproduce when it does not exist.
fn write_bench_md(path: &Path, r: &Results) -> Result<()> {
    let block = format!("{BEGIN}\n{}{END}", r.markdown());
    let text = match std::fs::read_to_string(path) {
        Ok(old) => splice(&old, &block),
        Err(_) => format!("{}{block}\n{}", MD_HEAD, MD_TAIL),
    };
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// `old` with the text between the markers replaced by `block` (appended when no markers).
fn splice(old: &str, block: &str) -> String {
    match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{block}{}", &old[..b], &old[e + END.len()..])
        }
        _ => format!("{old}\n{block}\n"),
    }
}

const MD_HEAD: &str = "# netlab benchmarks\n\n`cargo xtask bench` measures what netlab costs on the machine it runs on and rewrites the\nresults block below; the text around it is kept.\n\n";

const MD_TAIL: &str = "\n## Reproduce\n\n```sh\ncargo xtask bench            # everything, < 15 minutes\ncargo xtask bench --quick    # shorter windows, < 3 minutes\ncargo xtask bench --quick --json   # and one JSON object on stdout\ncargo bench -p netlab-daemon --bench pipeline   # the user-space pipeline alone\n```\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_and_percentiles() {
        let s = Spread::of(&[3.0, 1.0, 2.0, f64::NAN]).expect("values");
        assert_eq!((s.n, s.min, s.median, s.max), (3, 1.0, 2.0, 3.0));
        assert_eq!(Spread::of(&[1.0, 2.0]).map(|s| s.median), Some(1.5));
        assert!(Spread::of(&[]).is_none());
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v[..20], 99.0), Some(20.0));
        assert_eq!(percentile(&[], 99.0), None);
    }

    #[test]
    fn parses_ping_and_tool_output() {
        let out = "\n--- 10.200.0.2 ping statistics ---\n20000 packets transmitted, 19998 received, 0% packet loss, time 761ms\n";
        let p = parse_ping(out).expect("parsed");
        assert_eq!((p.transmitted, p.received), (20000, 19998));
        assert!(parse_ping("").is_none());
        assert_eq!(word_after("sent 12 errors 0 secs 1.5", "secs"), Some(1.5));
        assert_eq!(
            word_after("netlab: info: watching 501 interfaces (tcx)", "watching"),
            Some(501.0)
        );
        assert_eq!(word_after("", "sent"), None);
    }

    #[test]
    fn parses_fdinfo() {
        let info = "pos:\t0\nprog_type:\t3\nprog_id:\t2478\nrun_time_ns:\t120\nrun_cnt:\t4\n";
        assert_eq!(fdinfo_field(info, "prog_id"), Some(2478));
        assert_eq!(fdinfo_field(info, "run_cnt"), Some(4));
        assert_eq!(
            fdinfo_field("attach_type:\t46 (ingress)\n", "attach_type"),
            Some(46)
        );
        assert_eq!(fdinfo_field(info, "map_id"), None);
        let d = RunStats { ns: 220, runs: 14 }.since(RunStats { ns: 120, runs: 4 });
        assert_eq!(d.ns_per_run(), Some(10.0));
        assert_eq!(RunStats::default().ns_per_run(), None);
    }

    #[test]
    fn parses_criterion_files() {
        let est = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1776574.8,"upper_bound":1923277.4},"point_estimate":1848870.3,"standard_error":37509.2},"median":{"point_estimate":1790555.3}}"#;
        assert_eq!(
            json_number(est, &["mean", "point_estimate"]),
            Some(1848870.3)
        );
        assert_eq!(
            json_number(est, &["mean", "confidence_interval", "upper_bound"]),
            Some(1923277.4)
        );
        assert_eq!(
            json_number(est, &["median", "point_estimate"]),
            Some(1790555.3)
        );
        assert_eq!(json_number(est, &["slope"]), None);
        let sample = r#"{"sampling_mode":"Linear","iters":[16.0,32.0],"times":[2.0e7,4.1e7]}"#;
        assert_eq!(json_numbers(sample, "iters"), [16.0, 32.0]);
        assert_eq!(json_numbers(sample, "times"), [2.0e7, 4.1e7]);
        assert!(json_numbers("{}", "iters").is_empty());
        let bench = r#"{"throughput":{"Elements":1000},"full_id":"pipeline/mixed"}"#;
        assert_eq!(
            json_number(bench, &["throughput", "Elements"]),
            Some(1000.0)
        );
    }

    #[test]
    fn parses_the_watch_summary() {
        let line = r#"{"counters":[{"iface":"va","ifindex":3,"direction":"egress","kind":"icmp-echo-reply","packets":20000},{"iface":"vb","ifindex":4,"direction":"ingress","kind":"arp-request","packets":1}],"lost_events":7,"delivery":{"ring_full":5,"rate_limited":0,"sampled_out":0,"drop_ring_full":2},"events":100021,"drops":[{"reason":"NO_SOCKET","packets":20000}]}"#;
        assert_eq!(
            parse_summary(line),
            Some(Summary {
                counted: 20001,
                lost: 7,
                ring_full: 5,
                drop_ring_full: 2,
                printed: 100021
            })
        );
        assert_eq!(parse_summary(""), None);
        let empty = r#"{"counters":[],"lost_events":0,"delivery":{"ring_full":0,"rate_limited":0,"sampled_out":0,"drop_ring_full":0},"events":0}"#;
        assert_eq!(parse_summary(empty).map(|s| s.counted), Some(0));
    }

    #[test]
    fn frames_and_test_runs() {
        let (udp, icmp) = test_frames();
        assert_eq!(udp.len(), 60);
        assert_eq!(icmp.len(), 98);
        assert_eq!((udp[23], icmp[23]), (17, 1));
        assert_eq!(
            parse_test_run("Return value: 4294967295, duration (average): 24ns\n"),
            Some(24.0)
        );
        assert_eq!(parse_test_run(""), None);
    }

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
    fn parses_snmp() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\nUdp: 120 3 40 0 38 0 0 0 0\nUdpLite: InDatagrams NoPorts\nUdpLite: 0 0\n";
        assert_eq!(udp_snmp(snmp), Some((120, 38)));
        assert_eq!(udp_snmp(""), None);
    }

    #[test]
    fn keeps_the_tail() {
        let kept = Mutex::new(Vec::new());
        keep_tail(&b"a\nbb\nc\n{\"summary\":1}\n"[..], 3, &kept);
        assert_eq!(*kept.lock().expect("lock"), ["bb", "c", "{\"summary\":1}"]);
        keep_tail(&b"a\nno newline"[..], 3, &kept);
        assert_eq!(*kept.lock().expect("lock"), ["a", "no newline"]);
        keep_tail(&b""[..], 3, &kept);
        assert!(kept.lock().expect("lock").is_empty());
    }

    #[test]
    fn json_has_exactly_the_keys() {
        let r = Results::default();
        let j = r.json();
        for key in JSON_KEYS {
            assert!(j.contains(&format!("\"{key}\":null")), "{j}");
        }
        assert_eq!(j.matches(':').count(), JSON_KEYS.len());
        assert_eq!(json_value(Some(0.97004), 4), "0.97");
        assert_eq!(json_value(Some(412345.6), 0), "412346");
        assert_eq!(json_value(Some(f64::NAN), 2), "null");
    }

    #[test]
    fn results_block_is_replaced_in_place() {
        let old = format!("# t\n\nintro\n{BEGIN}\nold numbers\n{END}\n\n## Analysis\nkept\n");
        let new = splice(&old, &format!("{BEGIN}\nnew\n{END}"));
        assert_eq!(
            new,
            format!("# t\n\nintro\n{BEGIN}\nnew\n{END}\n\n## Analysis\nkept\n")
        );
        let appended = splice("no markers\n", "B");
        assert_eq!(appended, "no markers\n\nB\n");
    }

    #[test]
    fn udp_sender_refuses_other_addresses() {
        assert!(udp_send(Ipv4Addr::new(192, 0, 2, 1), UDP_PORT, 0.01, 0).is_err());
        assert!(udp_send(Ipv4Addr::new(10, 200, 0, 2), UDP_PORT, 0.0, 0).is_err());
        assert!(udp_send(Ipv4Addr::new(10, 200, 0, 2), UDP_PORT, 61.0, 0).is_err());
        assert!(icmp_send(Ipv4Addr::new(192, 0, 2, 1), 0.01, 0).is_err());
        assert!(icmp_send(Ipv4Addr::new(10, 200, 0, 2), 61.0, 0).is_err());
    }

    #[test]
    fn echo_requests_carry_a_valid_checksum() {
        let mut p = [0u8; 64];
        echo_request(&mut p, 0x1234, 7);
        assert_eq!((p[0], p[1]), (8, 0));
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
        // A packet with its checksum in place sums to zero.
        assert_eq!(inet_checksum(&p), 0);
        // RFC 1071's example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2 (checksum 220d).
        assert_eq!(
            inet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
        assert_eq!(inet_checksum(&[0xff]), 0x00ff);
    }

    #[test]
    fn quick_is_shorter() {
        let (q, f) = (Plan::new(true), Plan::new(false));
        assert!(q.cost_rounds < f.cost_rounds && q.pps_rounds < f.pps_rounds);
        assert!(q.latency_samples < f.latency_samples);
        assert!(q.pps_secs < f.pps_secs && q.flood_levels.len() < f.flood_levels.len());
        assert_eq!((q.veths, f.veths), (500, 500));
    }
}

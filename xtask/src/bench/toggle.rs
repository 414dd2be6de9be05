//! Part 2, last: what netlab leaves of the packet rate, with everything else the same and
//! under one steady flow.
//!
//! Two packet rates measured in separate windows (netlab, then `netlab --no-drops`, each
//! started anew) differ by a few per cent from one window to the next on a shared virtual
//! machine, more than the programs cost. Here one sender runs on and an observer is switched
//! on and off under it, a fraction of a second each:
//!
//! - `netlab daemon` attaches to br0, va and vb and pins its programs and links, then stops:
//!   its tc programs and its `kfree_skb` program stay attached, configured as it left them.
//!   The pins of the links to switch are removed (that detaches them), and the pinned
//!   programs themselves (netlab's, verified and configured) are attached and detached
//!   again here. Programs stay loaded all along, only their links come and go: a program
//!   freed between slices would take the CPUs' time (its JIT image released) in the next.
//! - Blocks of four slices, `off, netlab, other, off` and `off, other, netlab, off` in turn:
//!   each observer's slice is compared with the mean of the two `off` slices around it, so a
//!   rate that drifts in a straight line cancels out of every ratio.
//! - Last, one slice with BPF statistics on counts the programs' runs against the datagrams
//!   that arrived.
//!
//! Two such comparisons ([`drop_toggle`], [`observer_toggle`]):
//! - The drop program alone, beside an empty program on the same tracepoint, while b holds
//!   its socket buffer full, so every datagram is freed by the kernel and runs it.
//! - Everything a following netlab runs (its tc programs on the six hooks, the cover
//!   programs on `netif_receive_skb` and `net_dev_queue`, the drop program), beside
//!   `tcpdump -i va 'icmp or arp'`, while b reads: the packet-rate row of an earlier issue.

use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use netlab_tests::host::empty_prog::{
    obj_get, raw_tracepoint_open, tcx_link_create, EmptyRawTp, EmptyTc,
};
use netlab_tests::host::fdinfo::number;
use netlab_tests::host::netns::{self, in_ns};
use netlab_tests::host::process::{Background, Stdout};
use netlab_tests::host::tcx::Hook;

use super::kernel::{BpfStats, RunStats};
use super::memory::PinnedDaemon;
use super::process::{check_stop, spawn, wait_for};
use super::restart::daemon;
use super::stats::Spread;
use super::traffic::{udp_receiver, udp_sender, udp_snmp};
use super::{Plan, NS_BR, PIN_DIR};

/// Time given to the kernel after an observer is switched, before a slice starts.
pub(super) const SETTLE: Duration = Duration::from_millis(50);
/// Length of one slice.
pub(super) const SLICE: Duration = Duration::from_millis(250);
/// Blocks run under one sender (a sender sends for at most 60 s).
const BLOCKS_PER_SENDER: usize = 30;
/// Sending before the first slice of a sender: ARP, caches, the socket buffer filled.
const WARM_UP: Duration = Duration::from_secs(1);
/// The tcpdump the observers are compared with.
pub(super) const TCPDUMP_FILTER: &str = "icmp or arp";

/// What observes during a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Off,
    Netlab,
    /// What netlab is compared with in this block: the switch's comparison number `n`
    /// (an empty program; tcpdump or empty programs).
    Other(usize),
}

/// One block: the rates (datagrams arrived at b per second) of its slices.
#[derive(Debug, Clone, Copy)]
pub(super) struct ToggleBlock {
    /// The two `off` slices, first and last.
    pub(super) off: [f64; 2],
    pub(super) netlab: f64,
    pub(super) other: f64,
    /// Which comparison `other` was (the switch's number for it).
    pub(super) kind: usize,
}

impl ToggleBlock {
    fn off_mean(&self) -> f64 {
        (self.off[0] + self.off[1]) / 2.0
    }

    /// netlab's slice over the mean of the block's `off` slices.
    pub(super) fn netlab_ratio(&self) -> f64 {
        self.netlab / self.off_mean()
    }

    /// The other observer's slice over the same.
    pub(super) fn other_ratio(&self) -> f64 {
        self.other / self.off_mean()
    }

    /// netlab's slice over the other observer's, in the same block.
    pub(super) fn netlab_over_other(&self) -> f64 {
        self.netlab / self.other
    }

    /// The second `off` slice over the first: the noise of the comparison.
    pub(super) fn off_ratio(&self) -> f64 {
        self.off[1] / self.off[0]
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct Toggle {
    /// netlab's pinned programs switched on and off (their names in the pin directory).
    pub(super) programs: Vec<String>,
    /// Hooks and tracepoints netlab's programs were attached to in each of its slices.
    pub(super) attachments: usize,
    pub(super) blocks: Vec<ToggleBlock>,
    /// In the last slice, with BPF statistics on: each of netlab's programs' runs and run
    /// time, and the datagrams that arrived at b.
    pub(super) witness_runs: Vec<ProgRuns>,
    pub(super) witness_arrived: u64,
}

/// What BPF statistics say of one program: runs, and nanoseconds in them (with the
/// statistics' own two clock reads a run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ProgRuns {
    pub(super) name: String,
    pub(super) stats: RunStats,
}

impl ProgRuns {
    fn since(&self, before: &ProgRuns) -> ProgRuns {
        ProgRuns {
            name: self.name.clone(),
            stats: self.stats.since(before.stats),
        }
    }
}

impl Toggle {
    /// All of netlab's programs' runs in the witness slice.
    pub(super) fn runs(&self) -> u64 {
        self.witness_runs.iter().map(|p| p.stats.runs).sum()
    }

    /// Nanoseconds netlab's programs ran per datagram that arrived at b, in the witness
    /// slice (statistics on: their clock reads included).
    pub(super) fn ns_per_datagram(&self) -> Option<f64> {
        let ns: u64 = self.witness_runs.iter().map(|p| p.stats.ns).sum();
        (self.witness_arrived > 0).then(|| ns as f64 / self.witness_arrived as f64)
    }

    /// netlab's programs' runs per datagram arrived at b in the witness slice.
    pub(super) fn runs_per_datagram(&self) -> Option<f64> {
        (self.witness_arrived > 0).then(|| self.runs() as f64 / self.witness_arrived as f64)
    }

    /// The witness, for the table: runs per datagram, then each program's.
    pub(super) fn show_runs(&self) -> String {
        let Some(v) = self.runs_per_datagram() else {
            return "no datagram arrived".into();
        };
        let each = self
            .witness_runs
            .iter()
            .map(|p| match p.stats.ns_per_run() {
                Some(ns) => format!("{} {} at {ns:.1} ns", p.name, p.stats.runs),
                None => format!("{} {}", p.name, p.stats.runs),
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!("{v:.3} ({each}; {} datagrams)", self.witness_arrived)
    }

    /// One ratio per block, as a spread.
    pub(super) fn spread(&self, ratio: fn(&ToggleBlock) -> f64) -> Option<Spread> {
        self.spread_of(None, ratio)
    }

    /// One ratio per block whose comparison was `kind` (every block: `None`).
    pub(super) fn spread_of(
        &self,
        kind: Option<usize>,
        ratio: fn(&ToggleBlock) -> f64,
    ) -> Option<Spread> {
        let v: Vec<f64> = self
            .blocks
            .iter()
            .filter(|b| kind.is_none_or(|k| b.kind == k))
            .map(ratio)
            .filter(|r| r.is_finite())
            .collect();
        Spread::of(&v)
    }
}

/// What a comparison switches.
trait Switch {
    /// How many things netlab is compared with, in turn, block after block.
    fn comparisons(&self) -> usize {
        1
    }
    fn set(&mut self, s: State) -> Result<()>;
    /// Each of netlab's programs' runs so far (BPF statistics).
    fn runs(&self) -> Result<Vec<ProgRuns>>;
}

/// A pinned program of netlab's, by its name in the pin directory.
struct Pinned {
    name: String,
    prog: OwnedFd,
}

impl Pinned {
    fn runs(&self) -> Result<ProgRuns> {
        let info =
            fdinfo(&self.prog).with_context(|| format!("reading the fdinfo of {}", self.name))?;
        Ok(ProgRuns {
            name: self.name.clone(),
            stats: RunStats::parse(&info)
                .ok_or_else(|| anyhow!("no run statistics in {info:?}"))?,
        })
    }
}

/// The drop program's link: `None` for a BTF-typed program (it names its tracepoint at
/// load), else `kfree_skb`. A classic tracepoint program is attached through perf events,
/// which this does not do.
fn drop_tracepoint(program: &str) -> Result<Option<&'static str>> {
    match program {
        n if n.ends_with("_btf") => Ok(None),
        n if n.ends_with("_raw") => Ok(Some("kfree_skb")),
        n => bail!("the drop program here is {n}, a classic tracepoint: not switched"),
    }
}

/// netlab's drop program, or an empty one, on `kfree_skb`.
struct DropSwitch {
    prog: Pinned,
    tp_name: Option<&'static str>,
    link: Option<OwnedFd>,
    /// The empty program, loaded once.
    empty_prog: OwnedFd,
    empty: Option<OwnedFd>,
}

impl Switch for DropSwitch {
    fn set(&mut self, s: State) -> Result<()> {
        match s {
            State::Off => {
                self.link = None;
                self.empty = None;
            }
            State::Netlab => {
                self.empty = None;
                if self.link.is_none() {
                    self.link = Some(
                        raw_tracepoint_open(self.prog.prog.as_fd(), self.tp_name)
                            .context("attaching netlab's pinned drop program")?,
                    );
                }
            }
            State::Other(_) => {
                self.link = None;
                if self.empty.is_none() {
                    self.empty = Some(
                        raw_tracepoint_open(self.empty_prog.as_fd(), Some("kfree_skb"))
                            .context("attaching the empty program to kfree_skb")?,
                    );
                }
            }
        }
        Ok(())
    }

    fn runs(&self) -> Result<Vec<ProgRuns>> {
        Ok(vec![self.prog.runs()?])
    }
}

/// One place a program of netlab's was attached when the daemon left.
enum Hooked {
    Tc {
        ifindex: u32,
        hook: Hook,
    },
    /// Tracepoint `name`, through a BTF-typed program (`typed`, which names it itself) or
    /// a raw one.
    Tracepoint {
        name: &'static str,
        typed: bool,
    },
}

/// The comparisons of [`ObserverSwitch`].
pub(super) const OBSERVER_TCPDUMP: usize = 0;
pub(super) const OBSERVER_EMPTY: usize = 1;

/// Everything a following netlab runs; or tcpdump on va; or an empty program wherever
/// netlab has one.
struct ObserverSwitch {
    /// Each program and where it goes.
    netlab: Vec<(Pinned, Hooked)>,
    /// The empty programs, loaded once.
    empty_tc: EmptyTc,
    empty_tp: OwnedFd,
    /// What is attached now, and its links.
    on: State,
    links: Vec<OwnedFd>,
    tcpdump: Option<Background>,
}

impl ObserverSwitch {
    fn attach_all(&mut self, empty: bool) -> Result<()> {
        for (p, at) in &self.netlab {
            let link = match (at, empty) {
                (Hooked::Tc { ifindex, hook }, false) => {
                    tcx_link_create(p.prog.as_fd(), *ifindex, *hook)
                }
                (Hooked::Tc { ifindex, hook }, true) => {
                    tcx_link_create(self.empty_tc.prog(), *ifindex, *hook)
                }
                (Hooked::Tracepoint { name, typed }, false) => {
                    raw_tracepoint_open(p.prog.as_fd(), (!typed).then_some(*name))
                }
                (Hooked::Tracepoint { name, .. }, true) => {
                    raw_tracepoint_open(self.empty_tp.as_fd(), Some(name))
                }
            };
            let whose = if empty {
                "an empty program"
            } else {
                "netlab's pinned program"
            };
            self.links
                .push(link.with_context(|| format!("attaching {whose} in place of {}", p.name))?);
        }
        Ok(())
    }
}

impl Switch for ObserverSwitch {
    fn comparisons(&self) -> usize {
        2
    }

    fn set(&mut self, s: State) -> Result<()> {
        if s == self.on {
            return Ok(());
        }
        self.links.clear();
        if let Some(t) = self.tcpdump.take() {
            t.stop_within(libc::SIGTERM, Duration::from_secs(10))?;
        }
        self.on = State::Off;
        match s {
            State::Off => {}
            State::Netlab => self.attach_all(false)?,
            State::Other(OBSERVER_TCPDUMP) => {
                let mut c = in_ns(NS_BR, "tcpdump");
                c.args(["-i", "va", "-w", "/dev/null", TCPDUMP_FILTER]);
                let mut t = spawn(&mut c, Stdout::Discard)?;
                wait_for(&mut t, "listening on", Duration::from_secs(20))?;
                self.tcpdump = Some(t);
            }
            State::Other(_) => self.attach_all(true)?,
        }
        self.on = s;
        Ok(())
    }

    fn runs(&self) -> Result<Vec<ProgRuns>> {
        // A program attached to several hooks is counted once.
        let mut seen = Vec::new();
        let mut runs = Vec::new();
        for (p, _) in &self.netlab {
            if !seen.contains(&&p.name) {
                seen.push(&p.name);
                runs.push(p.runs()?);
            }
        }
        Ok(runs)
    }
}

/// Datagrams that reached b's UDP layer so far (read through the receiver's `/proc`, which
/// shows its network namespace's counters: no process is started for it).
fn arrived(receiver: u32) -> Result<u64> {
    let snmp = std::fs::read_to_string(format!("/proc/{receiver}/net/snmp"))
        .context("reading the receiver's /proc/net/snmp")?;
    let (datagrams, rcvbuf_errors) =
        udp_snmp(&snmp).ok_or_else(|| anyhow!("no Udp counters in b's /proc/net/snmp"))?;
    Ok(datagrams + rcvbuf_errors)
}

/// Datagrams per second arriving during one slice (after settling).
fn slice(receiver: u32) -> Result<f64> {
    std::thread::sleep(SETTLE);
    let (n0, t0) = (arrived(receiver)?, Instant::now());
    std::thread::sleep(SLICE);
    let (n1, t1) = (arrived(receiver)?, Instant::now());
    let n = n1.saturating_sub(n0);
    Ok(n as f64 / t1.duration_since(t0).as_secs_f64())
}

/// Keeps the calling thread on CPU 1 (the receiver's), off the sender's CPU 0, while alive;
/// then on the CPUs it had before. Taken after the sender and receiver are started: they
/// get their CPUs from the bench's affinity at that moment. What it starts meanwhile
/// (tcpdump) runs on CPU 1 too.
struct OnCpu1 {
    before: libc::cpu_set_t,
}

impl OnCpu1 {
    fn pin() -> Option<Self> {
        // SAFETY: a zeroed cpu_set_t is a valid empty set, filled by sched_getaffinity.
        let mut before: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: the set outlives the call; 0 is the calling thread.
        let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&before), &mut before) };
        // SAFETY: CPU_COUNT reads the set.
        let count = unsafe { libc::CPU_COUNT(&before) };
        // SAFETY: CPU_ISSET reads the set; CPU 1 is within its size.
        let has_cpu1 = unsafe { libc::CPU_ISSET(1, &before) };
        if rc != 0 || count < 2 || !has_cpu1 {
            return None;
        }
        // SAFETY: as above.
        let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: CPU 1 is within the set's size.
        unsafe { libc::CPU_SET(1, &mut one) };
        set_affinity(&one).ok().map(|()| OnCpu1 { before })
    }
}

impl Drop for OnCpu1 {
    fn drop(&mut self) {
        if let Err(e) = set_affinity(&self.before) {
            eprintln!("xtask: cannot give the bench its CPUs back: {e}");
        }
    }
}

fn set_affinity(set: &libc::cpu_set_t) -> std::io::Result<()> {
    // SAFETY: the set outlives the call; 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(set), set) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// What the kernel says of one of this process's BPF file descriptors.
fn fdinfo(fd: &OwnedFd) -> std::io::Result<String> {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
}

/// The pinned program the pinned link `link` runs.
fn pinned_program_of(link: &OwnedFd) -> Result<Pinned> {
    let info = fdinfo(link).context("reading a pinned link's fdinfo")?;
    let runs = number(&info, "prog_id").ok_or_else(|| anyhow!("no prog_id in {info:?}"))?;
    find_pinned(|prog| Ok(number(&fdinfo(prog)?, "prog_id") == Some(runs)))?.ok_or_else(|| {
        anyhow!("no program pinned under {PIN_DIR} is the one a link runs (id {runs})")
    })
}

/// The first program pinned under the daemon's directories of programs that `wanted` says
/// is the one.
fn find_pinned(wanted: impl Fn(&OwnedFd) -> Result<bool>) -> Result<Option<Pinned>> {
    for dir in std::fs::read_dir(PIN_DIR)?.flatten() {
        let Ok(entries) = std::fs::read_dir(dir.path().join("progs")) else {
            continue;
        };
        for e in entries.flatten() {
            let prog = obj_get(&e.path())?;
            if wanted(&prog)? {
                let name = e.file_name().to_string_lossy().into_owned();
                return Ok(Some(Pinned { name, prog }));
            }
        }
    }
    Ok(None)
}

/// The program pinned as `name` by the daemon.
fn pinned_by_name(name: &str) -> Result<Option<Pinned>> {
    for dir in std::fs::read_dir(PIN_DIR)?.flatten() {
        let path = dir.path().join("progs").join(name);
        if path.exists() {
            let prog = obj_get(&path)?;
            return Ok(Some(Pinned {
                name: name.to_owned(),
                prog,
            }));
        }
    }
    Ok(None)
}

/// The interface index and hook of a TCX link's pin name (`<ifindex>-<name>-<hook>`).
fn tcx_pin(name: &str) -> Option<(u32, Hook)> {
    let (idx, rest) = name.split_once('-')?;
    let hook = match rest.rsplit_once('-')?.1 {
        "ingress" => Hook::Ingress,
        "egress" => Hook::Egress,
        _ => return None,
    };
    Some((idx.parse().ok()?, hook))
}

/// Names in the order first seen, each once.
fn unique(names: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// Opens the pinned link at `path`, finds the program it runs, and removes the pin: with
/// our handle dropped, nothing holds the link, and it is detached.
fn unpin_link(path: &Path) -> Result<Pinned> {
    let link = obj_get(path)?;
    let prog = pinned_program_of(&link)?;
    std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    Ok(prog)
}

/// Starts `netlab daemon` on br0, va and vb, and stops it once it watches: its pins stay.
fn daemon_leaves_pins(netlab: &Path) -> Result<()> {
    let mut d = spawn(&mut daemon(NS_BR, netlab), Stdout::Discard)?;
    wait_for(&mut d, "daemon: watching", Duration::from_secs(60))?;
    d.stop_within(libc::SIGTERM, Duration::from_secs(30))?;
    Ok(())
}

fn drop_link_pin() -> PathBuf {
    Path::new(PIN_DIR).join("drops").join("kfree_skb")
}

/// Runs `total` blocks with `switch`, b holding its buffer full (`hold`) or reading.
fn run_blocks(
    xtask: &Path,
    total: usize,
    hold: bool,
    switch: &mut dyn Switch,
    what: &str,
) -> Result<Toggle> {
    let mut r = Toggle::default();
    let mut left = total;
    while left > 0 {
        let blocks = left.min(BLOCKS_PER_SENDER);
        left -= blocks;
        let witness = left == 0;
        // Switching tcpdump or six TCX hooks takes longer than a tracepoint.
        let per_block = 4.0 * (SETTLE + SLICE).as_secs_f64() + 0.5;
        let secs = WARM_UP.as_secs_f64() + blocks as f64 * per_block + 3.0;
        let mut recv = spawn(&mut udp_receiver(xtask, secs + 10.0, hold), Stdout::Discard)?;
        wait_for(&mut recv, "ready", Duration::from_secs(10))?;
        let send = spawn(&mut udp_sender(xtask, secs), Stdout::Discard)?;
        std::thread::sleep(WARM_UP);
        let rx = recv.pid();
        let cpu = OnCpu1::pin();
        for _ in 0..blocks {
            check_stop()?;
            // Blocks alternate which observer comes first, and (every two blocks) what
            // netlab is compared with (r.blocks grows by one per block).
            let n = r.blocks.len();
            let other = State::Other((n / 2) % switch.comparisons());
            let order = if n.is_multiple_of(2) {
                [State::Off, State::Netlab, other, State::Off]
            } else {
                [State::Off, other, State::Netlab, State::Off]
            };
            let mut block = ToggleBlock {
                off: [0.0; 2],
                netlab: 0.0,
                other: 0.0,
                kind: (n / 2) % switch.comparisons(),
            };
            for (i, s) in order.into_iter().enumerate() {
                switch.set(s)?;
                let rate = slice(rx)?;
                match s {
                    State::Off if i == 0 => block.off[0] = rate,
                    State::Off => block.off[1] = rate,
                    State::Netlab => block.netlab = rate,
                    State::Other(_) => block.other = rate,
                }
            }
            r.blocks.push(block);
        }
        if witness {
            switch.set(State::Netlab)?;
            let stats = BpfStats::enable()?;
            std::thread::sleep(SETTLE);
            let (runs0, n0) = (switch.runs()?, arrived(rx)?);
            std::thread::sleep(SLICE);
            let (runs1, n1) = (switch.runs()?, arrived(rx)?);
            drop(stats);
            r.witness_runs = runs1
                .iter()
                .zip(&runs0)
                .map(|(after, before)| after.since(before))
                .collect();
            r.witness_arrived = n1.saturating_sub(n0);
        }
        switch.set(State::Off)?;
        drop(cpu);
        let sent = send.wait(Duration::from_secs_f64(secs + 15.0))?;
        if !sent.status.success() {
            bail!("the sender failed: {}", sent.stderr);
        }
        recv.stop_within(libc::SIGTERM, Duration::from_secs(10))?;
        eprintln!(
            "xtask: bench: {what} switched: {} blocks so far",
            r.blocks.len()
        );
    }
    Ok(r)
}

/// netlab's drop program against an empty one on `kfree_skb`, while b drops every datagram.
pub(super) fn drop_toggle(netlab: &Path, xtask: &Path, plan: &Plan) -> Result<Toggle> {
    let _cleanup = PinnedDaemon { netlab, ns: NS_BR };
    daemon_leaves_pins(netlab)?;
    let prog = unpin_link(&drop_link_pin())
        .context("the daemon's pinned drop link (does this kernel have skb:kfree_skb?)")?;
    let tp_name = drop_tracepoint(&prog.name)?;
    let program = prog.name.clone();
    let mut switch = DropSwitch {
        prog,
        tp_name,
        link: None,
        empty_prog: EmptyRawTp::load()?,
        empty: None,
    };
    eprintln!("xtask: bench: switching netlab's pinned {program} on and off under one flow");
    let mut r = run_blocks(xtask, plan.toggle_blocks, true, &mut switch, "drop program")?;
    r.programs = vec![program];
    r.attachments = 1;
    Ok(r)
}

/// Everything a following netlab attaches against `tcpdump -i va 'icmp or arp'`, while b
/// reads.
pub(super) fn observer_toggle(netlab: &Path, xtask: &Path, plan: &Plan) -> Result<Toggle> {
    let _cleanup = PinnedDaemon { netlab, ns: NS_BR };
    daemon_leaves_pins(netlab)?;
    let mut attached = Vec::new();
    let links = Path::new(PIN_DIR).join("links");
    let mut pins: Vec<_> = std::fs::read_dir(&links)
        .with_context(|| format!("reading {}", links.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    pins.sort();
    for pin in pins {
        let name = pin
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let Some((ifindex, hook)) = tcx_pin(&name) else {
            continue;
        };
        attached.push((unpin_link(&pin)?, Hooked::Tc { ifindex, hook }));
    }
    if attached.is_empty() {
        bail!("the daemon pinned no tc link under {}", links.display());
    }
    // The cover programs' links go with the daemon: its pinned programs are attached here.
    // The BTF-typed ones where the daemon loaded them, else the raw ones.
    for (typed, raw, name) in [
        (
            netlab_common::PROG_COVER_INGRESS_BTF,
            netlab_common::PROG_COVER_INGRESS,
            "netif_receive_skb",
        ),
        (
            netlab_common::PROG_COVER_EGRESS_BTF,
            netlab_common::PROG_COVER_EGRESS,
            "net_dev_queue",
        ),
    ] {
        let (p, typed) = match pinned_by_name(typed)? {
            Some(p) => (p, true),
            None => (
                pinned_by_name(raw)?
                    .ok_or_else(|| anyhow!("the daemon pinned no cover program for {name}"))?,
                false,
            ),
        };
        attached.push((p, Hooked::Tracepoint { name, typed }));
    }
    let drop_prog = unpin_link(&drop_link_pin())
        .context("the daemon's pinned drop link (does this kernel have skb:kfree_skb?)")?;
    let typed = drop_tracepoint(&drop_prog.name)?.is_none();
    attached.push((
        drop_prog,
        Hooked::Tracepoint {
            name: "kfree_skb",
            typed,
        },
    ));

    let programs: Vec<String> = attached.iter().map(|(p, _)| p.name.clone()).collect();
    let attachments = attached.len();
    let mut switch = ObserverSwitch {
        netlab: attached,
        empty_tc: EmptyTc::load()?,
        empty_tp: EmptyRawTp::load()?,
        on: State::Off,
        links: Vec::new(),
        tcpdump: None,
    };
    eprintln!(
        "xtask: bench: switching netlab ({attachments} attachments), tcpdump and empty programs on and off under one flow"
    );
    // TCX links are made for interfaces of this thread's network namespace.
    let mut r = std::thread::scope(|scope| {
        scope
            .spawn(|| -> Result<Toggle> {
                netns::enter(NS_BR)?;
                run_blocks(xtask, plan.observer_blocks, false, &mut switch, "observers")
            })
            .join()
            .map_err(|_| anyhow!("the switching thread panicked"))?
    })?;
    r.programs = unique(programs);
    r.attachments = attachments;
    Ok(r)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_observer_is_compared_with_the_off_slices_around_it() {
        let b = ToggleBlock {
            off: [100.0, 110.0],
            netlab: 105.0,
            other: 94.5,
            kind: 0,
        };
        assert_eq!(b.netlab_ratio(), 1.0);
        assert!((b.other_ratio() - 0.9).abs() < 1e-12);
        assert!((b.off_ratio() - 1.1).abs() < 1e-12);
        assert!((b.netlab_over_other() - 105.0 / 94.5).abs() < 1e-12);
        let none = Toggle::default();
        assert_eq!(none.runs_per_datagram(), None);
        let seen = Toggle {
            witness_runs: vec![
                ProgRuns {
                    name: "netlab_ingress".into(),
                    stats: RunStats {
                        runs: 48_596,
                        ns: 48_596 * 60,
                    },
                },
                ProgRuns {
                    name: "netlab_egress".into(),
                    stats: RunStats {
                        runs: 48_598,
                        ns: 48_598 * 70,
                    },
                },
            ],
            witness_arrived: 48_597,
            ..Default::default()
        };
        assert_eq!(seen.runs(), 97_194);
        assert!(seen
            .ns_per_datagram()
            .is_some_and(|ns| (ns - 130.0).abs() < 0.01));
        assert_eq!(seen.witness_runs[1].stats.ns_per_run(), Some(70.0));
        assert!(seen
            .runs_per_datagram()
            .is_some_and(|r| (r - 2.0).abs() < 1e-4));
    }

    #[test]
    fn tcx_pins_name_their_interface_and_hook() {
        assert_eq!(tcx_pin("12-va-ingress"), Some((12, Hook::Ingress)));
        assert_eq!(tcx_pin("3-br-x-egress"), Some((3, Hook::Egress)));
        assert_eq!(tcx_pin("3-va-sideways"), None);
        assert_eq!(tcx_pin("kfree_skb"), None);
        assert_eq!(
            unique(vec!["a".into(), "b".into(), "a".into()]),
            vec!["a".to_owned(), "b".to_owned()]
        );
    }
}

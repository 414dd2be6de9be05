//! Part 2, last: what netlab's drop program leaves of the packet rate, with everything else
//! the same and under one steady flow.
//!
//! Two packet rates measured in separate windows (netlab, then `netlab --no-drops`, each
//! started anew) differ by a few per cent from one window to the next on a shared virtual
//! machine, more than the program costs. Here one sender runs on and the program is switched
//! on and off under it, a fraction of a second each:
//!
//! - `netlab daemon` attaches to br0, va and vb and pins its programs and links, then stops:
//!   its tc programs and its `kfree_skb` program stay attached, configured as it left them.
//! - The pin of the drop program's link is removed (that detaches it), and the pinned
//!   program itself (netlab's, verified and configured) is attached and detached again
//!   here, as is an empty program on the same tracepoint for the floor.
//! - Both programs stay loaded all along, only their links come and go: a program freed
//!   between slices would take the CPUs' time (its JIT image released) in the next one.
//! - b holds its socket buffer full, so every datagram is freed by the kernel and runs the
//!   tracepoint. Blocks of four slices, `off, netlab, empty, off` and `off, empty, netlab,
//!   off` in turn: each program's slice is compared with the mean of the two `off` slices
//!   around it, so a rate that drifts in a straight line cancels out of every ratio.
//! - Last, one slice with BPF statistics on counts the program's runs against the datagrams
//!   that arrived: it ran for every one of them.

use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use netlab_tests::host::empty_prog::{obj_get, raw_tracepoint_open, EmptyRawTp};
use netlab_tests::host::fdinfo::number;
use netlab_tests::host::process::Stdout;

use super::kernel::BpfStats;
use super::memory::PinnedDaemon;
use super::process::{check_stop, spawn, wait_for};
use super::restart::daemon;
use super::traffic::{udp_receiver, udp_sender, udp_snmp};
use super::{Plan, NS_BR, PIN_DIR};

/// Time given to the kernel after a program is attached or detached, before a slice starts.
pub(super) const SETTLE: Duration = Duration::from_millis(50);
/// Length of one slice.
pub(super) const SLICE: Duration = Duration::from_millis(250);
/// Blocks run under one sender (a sender sends for at most 60 s).
const BLOCKS_PER_SENDER: usize = 30;
/// Sending before the first slice of a sender: ARP, caches, the socket buffer filled.
const WARM_UP: Duration = Duration::from_secs(1);

/// What runs on `skb:kfree_skb` during a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Off,
    Netlab,
    Empty,
}

/// One block: the rates (datagrams arrived at b per second) of its slices.
#[derive(Debug, Clone, Copy)]
pub(super) struct ToggleBlock {
    /// The two `off` slices, first and last.
    pub(super) off: [f64; 2],
    pub(super) netlab: f64,
    pub(super) empty: f64,
}

impl ToggleBlock {
    fn off_mean(&self) -> f64 {
        (self.off[0] + self.off[1]) / 2.0
    }

    /// netlab's slice over the mean of the block's `off` slices.
    pub(super) fn netlab_ratio(&self) -> f64 {
        self.netlab / self.off_mean()
    }

    /// The empty program's slice over the same.
    pub(super) fn empty_ratio(&self) -> f64 {
        self.empty / self.off_mean()
    }

    /// The second `off` slice over the first: the noise of the comparison.
    pub(super) fn off_ratio(&self) -> f64 {
        self.off[1] / self.off[0]
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct DropToggle {
    /// The pinned program switched on and off (its name in the pin directory).
    pub(super) program: String,
    pub(super) blocks: Vec<ToggleBlock>,
    /// In the last slice, with BPF statistics on: the program's runs and the datagrams that
    /// arrived at b.
    pub(super) witness_runs: u64,
    pub(super) witness_arrived: u64,
}

impl DropToggle {
    /// The program's runs per datagram freed at b in the witness slice.
    pub(super) fn runs_per_datagram(&self) -> Option<f64> {
        (self.witness_arrived > 0).then(|| self.witness_runs as f64 / self.witness_arrived as f64)
    }
}

/// netlab's drop program, as the daemon pinned it, attached by this process or not.
struct Switch {
    prog: OwnedFd,
    /// `None` for a BTF-typed program (it names its tracepoint at load), else `kfree_skb`.
    tp_name: Option<&'static str>,
    link: Option<OwnedFd>,
    /// The empty program, loaded once: no program is freed (its JIT image released, with
    /// the interprocessor interrupts that takes) between two slices.
    empty_prog: OwnedFd,
    empty: Option<OwnedFd>,
}

impl Switch {
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
                        raw_tracepoint_open(self.prog.as_fd(), self.tp_name)
                            .context("attaching netlab's pinned drop program")?,
                    );
                }
            }
            State::Empty => {
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

    fn runs(&self) -> Result<u64> {
        let info = fdinfo(&self.prog).context("reading the drop program's fdinfo")?;
        number(&info, "run_cnt").ok_or_else(|| anyhow!("no run_cnt in {info:?}"))
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

/// Keeps the calling thread on CPU 1 (the receiver's, idle while b holds its buffer), off
/// the sender's CPU 0, while alive; then on the CPUs it had before. Taken after the sender
/// and receiver are started: they get their CPUs from the bench's affinity at that moment.
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

/// The pinned program the pinned drop link runs, and its name.
fn pinned_drop_program(link: &OwnedFd) -> Result<(OwnedFd, String)> {
    let info = fdinfo(link).context("reading the drop link's fdinfo")?;
    let runs = number(&info, "prog_id").ok_or_else(|| anyhow!("no prog_id in {info:?}"))?;
    for dir in std::fs::read_dir(PIN_DIR)?.flatten() {
        let progs = dir.path().join("progs");
        let Ok(entries) = std::fs::read_dir(&progs) else {
            continue;
        };
        for e in entries.flatten() {
            let prog = obj_get(&e.path())?;
            let info = fdinfo(&prog)?;
            if number(&info, "prog_id") == Some(runs) {
                return Ok((prog, e.file_name().to_string_lossy().into_owned()));
            }
        }
    }
    bail!("no program pinned under {PIN_DIR} is the one the drop link runs (id {runs})")
}

pub(super) fn drop_toggle(netlab: &Path, xtask: &Path, plan: &Plan) -> Result<DropToggle> {
    let _cleanup = PinnedDaemon { netlab, ns: NS_BR };
    let mut d = spawn(&mut daemon(NS_BR, netlab), Stdout::Discard)?;
    wait_for(&mut d, "daemon: watching", Duration::from_secs(60))?;
    d.stop_within(libc::SIGTERM, Duration::from_secs(30))?;

    let link_pin: PathBuf = Path::new(PIN_DIR).join("drops").join("kfree_skb");
    let link = obj_get(&link_pin)
        .context("the daemon left no pinned drop link (does this kernel have skb:kfree_skb?)")?;
    let (prog, program) = pinned_drop_program(&link)?;
    // A classic tracepoint program is attached through perf events, which this does not do.
    let tp_name = match program.as_str() {
        n if n.ends_with("_btf") => None,
        n if n.ends_with("_raw") => Some("kfree_skb"),
        n => bail!("the drop program here is {n}, a classic tracepoint: not switched"),
    };
    // The pin and our handle were the link's only references: it is detached.
    std::fs::remove_file(&link_pin).with_context(|| format!("removing {}", link_pin.display()))?;
    drop(link);
    let mut switch = Switch {
        prog,
        tp_name,
        link: None,
        empty_prog: EmptyRawTp::load()?,
        empty: None,
    };
    eprintln!("xtask: bench: switching netlab's pinned {program} on and off under one flow");

    let mut r = DropToggle {
        program,
        ..Default::default()
    };
    let mut left = plan.toggle_blocks;
    while left > 0 {
        let blocks = left.min(BLOCKS_PER_SENDER);
        left -= blocks;
        let witness = left == 0;
        let per_block = 4.0 * (SETTLE + SLICE).as_secs_f64() + 0.05;
        let secs = WARM_UP.as_secs_f64() + blocks as f64 * per_block + 3.0;
        let mut recv = spawn(&mut udp_receiver(xtask, secs + 10.0, true), Stdout::Discard)?;
        wait_for(&mut recv, "ready", Duration::from_secs(10))?;
        let send = spawn(&mut udp_sender(xtask, secs), Stdout::Discard)?;
        std::thread::sleep(WARM_UP);
        let rx = recv.pid();
        let cpu = OnCpu1::pin();
        for _ in 0..blocks {
            check_stop()?;
            // Blocks alternate which program comes first (r.blocks grows by one per block).
            let order = if r.blocks.len().is_multiple_of(2) {
                [State::Off, State::Netlab, State::Empty, State::Off]
            } else {
                [State::Off, State::Empty, State::Netlab, State::Off]
            };
            let mut block = ToggleBlock {
                off: [0.0; 2],
                netlab: 0.0,
                empty: 0.0,
            };
            for (i, s) in order.into_iter().enumerate() {
                switch.set(s)?;
                let rate = slice(rx)?;
                match s {
                    State::Off if i == 0 => block.off[0] = rate,
                    State::Off => block.off[1] = rate,
                    State::Netlab => block.netlab = rate,
                    State::Empty => block.empty = rate,
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
            r.witness_runs = runs1.saturating_sub(runs0);
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
            "xtask: bench: drop program switched: {} blocks so far",
            r.blocks.len()
        );
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_program_is_compared_with_the_off_slices_around_it() {
        let b = ToggleBlock {
            off: [100.0, 110.0],
            netlab: 105.0,
            empty: 94.5,
        };
        assert_eq!(b.netlab_ratio(), 1.0);
        assert!((b.empty_ratio() - 0.9).abs() < 1e-12);
        assert!((b.off_ratio() - 1.1).abs() < 1e-12);
        let none = DropToggle::default();
        assert_eq!(none.runs_per_datagram(), None);
        let seen = DropToggle {
            witness_runs: 48_596,
            witness_arrived: 48_597,
            ..Default::default()
        };
        assert!(seen
            .runs_per_datagram()
            .is_some_and(|r| (r - 1.0).abs() < 1e-4));
    }
}

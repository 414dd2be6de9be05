//! `xtask bench-empty`: programs that do nothing, on the hooks netlab's run on, until
//! SIGINT or SIGTERM. The per-packet costs and packet rates of netlab are reported *over*
//! them (see `netlab_tests::host::empty_prog`).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use netlab_tests::host::empty_prog::{EmptyRawTp, EmptyTc, Position};
use netlab_tests::host::netns::in_ns;
use netlab_tests::host::process::{Background, Stdout};
use netlab_tests::host::tcx::Hook;

use super::process::{spawn, wait_for};
use super::NS_BR;

/// What `bench-empty` prints once everything is attached.
const READY: &str = "empty programs attached";

/// Attaches an empty tc program to both hooks of each of `ifaces` (with `first`, before the
/// programs already there) and, with `drop_tp`, an empty program on the `kfree_skb` raw
/// tracepoint; holds them until SIGINT or SIGTERM.
pub fn run(ifaces: &[String], drop_tp: bool, first: bool) -> Result<()> {
    let signals = block_stop_signals()?;
    let mut tc = EmptyTc::load()?;
    let at = if first {
        Position::First
    } else {
        Position::Last
    };
    for iface in ifaces {
        let ifindex = ifindex(iface)?;
        for hook in Hook::BOTH {
            tc.attach_at(ifindex, hook, at)?;
        }
    }
    let tp = drop_tp
        .then(|| EmptyRawTp::attach("kfree_skb"))
        .transpose()?;
    eprintln!(
        "{READY}: {} tc hooks{}",
        tc.attached(),
        if tp.is_some() {
            ", raw tracepoint kfree_skb"
        } else {
            ""
        }
    );
    wait_for_signal(&signals)?;
    drop(tp);
    tc.detach_all();
    Ok(())
}

/// `xtask bench-empty` on br0, va and vb of the bench's bridge namespace.
pub(super) fn start_empty(xtask: &Path, drop_tp: bool) -> Result<Background> {
    start_empty_at(xtask, drop_tp, Position::Last)
}

/// [`start_empty`], its tc programs first or last on each hook.
pub(super) fn start_empty_at(xtask: &Path, drop_tp: bool, at: Position) -> Result<Background> {
    let mut c = in_ns(NS_BR, xtask);
    c.args([
        "bench-empty",
        "--iface",
        "br0",
        "--iface",
        "va",
        "--iface",
        "vb",
    ]);
    if drop_tp {
        c.arg("--drop-tp");
    }
    if at == Position::First {
        c.arg("--first");
    }
    let mut b = spawn(&mut c, Stdout::Discard)?;
    wait_for(&mut b, READY, Duration::from_secs(20))?;
    Ok(b)
}

fn block_stop_signals() -> Result<libc::sigset_t> {
    // SAFETY: sigemptyset/sigaddset only write the set they are given, which lives on this
    // stack frame; pthread_sigmask changes this thread's mask (xtask's only thread here).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc)).context("blocking SIGINT/SIGTERM");
        }
        Ok(set)
    }
}

fn wait_for_signal(set: &libc::sigset_t) -> Result<()> {
    let mut sig = 0;
    // SAFETY: sigwait reads the set and writes the signal number into `sig`, both alive.
    let rc = unsafe { libc::sigwait(set, &mut sig) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc)).context("waiting for SIGINT/SIGTERM");
    }
    Ok(())
}

/// The index of interface `name` in this thread's network namespace.
fn ifindex(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name).context("interface name with a NUL")?;
    // SAFETY: if_nametoindex reads the NUL-terminated name, which outlives the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    anyhow::ensure!(
        i != 0,
        "no interface {name}: {}",
        std::io::Error::last_os_error()
    );
    Ok(i)
}

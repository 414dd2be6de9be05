//! Ctrl-C (the children stop, the bench notices and cleans up), and the commands and
//! background children the bench runs: `netlab_tests::host`'s, stopping for Ctrl-C.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use netlab_tests::host::process::{Background, Stdout};

use crate::cmd;

// ---------------------------------------------------------------------------------------------
// Ctrl-C: the children stop (they keep the default disposition), the bench notices and
// cleans up.
// ---------------------------------------------------------------------------------------------

static STOP: AtomicBool = AtomicBool::new(false);
const SIGINT: i32 = 2;

extern "C" {
    /// libc's `signal(2)`; dispositions are passed as pointer-sized integers.
    fn signal(signum: i32, handler: usize) -> usize;
}

extern "C" fn on_interrupt(_signum: i32) {
    STOP.store(true, Ordering::SeqCst);
}

/// While alive, Ctrl-C sets [`STOP`] instead of killing xtask. Children get the default
/// disposition back at exec (a handled signal does not survive exec), so Ctrl-C stops them.
pub(super) struct StopFlag {
    previous: usize,
}

impl StopFlag {
    pub(super) fn install() -> Self {
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

pub(super) fn check_stop() -> Result<()> {
    if STOP.load(Ordering::SeqCst) {
        return Err(Interrupted.into());
    }
    Ok(())
}

/// Sleeps, but wakes up for Ctrl-C.
pub(super) fn pause(d: Duration) -> Result<()> {
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

// ---------------------------------------------------------------------------------------------
// Running commands.
// ---------------------------------------------------------------------------------------------

/// Runs `cmd` to completion with its output captured (never on our stdout); returns stdout.
pub(super) fn quiet(cmd: &mut Command) -> Result<String> {
    let out = cmd::capture(cmd);
    check_stop()?;
    out
}

/// Lines of a child's stdout kept by [`TAIL`].
const TAIL_LINES: usize = 3;
/// A child's stdout read and discarded, but for its last lines (a summary).
pub(super) const TAIL: Stdout = Stdout::Tail(TAIL_LINES);

/// Starts `cmd` in the background (not after Ctrl-C). Dropping it stops it: SIGINT, then
/// SIGKILL after 10 s.
pub(super) fn spawn(cmd: &mut Command, stdout: Stdout) -> Result<Background> {
    check_stop()?;
    Ok(Background::spawn(cmd, stdout)?.stop_on_drop(libc::SIGINT, Duration::from_secs(10)))
}

/// Waits for a stderr line of `child` containing `pattern`, but not past Ctrl-C; returns
/// when it was read, and the line.
pub(super) fn wait_for(
    child: &mut Background,
    pattern: &str,
    timeout: Duration,
) -> Result<(Instant, String)> {
    child.wait_for_checking(pattern, timeout, check_stop)
}

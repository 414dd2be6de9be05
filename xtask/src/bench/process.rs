//! Ctrl-C (the children stop, the bench notices and cleans up), and the commands and
//! background children the bench runs.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::cmd;

// ---------------------------------------------------------------------------------------------
// Ctrl-C: the children stop (they keep the default disposition), the bench notices and
// cleans up.
// ---------------------------------------------------------------------------------------------

static STOP: AtomicBool = AtomicBool::new(false);
pub(super) const SIGINT: i32 = 2;
pub(super) const SIGTERM: i32 = 15;

extern "C" {
    /// libc's `signal(2)`; dispositions are passed as pointer-sized integers.
    fn signal(signum: i32, handler: usize) -> usize;
    /// libc's `kill(2)`.
    fn kill(pid: i32, sig: i32) -> i32;
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

fn send_signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) only sends a signal; `pid` is a child of ours that was not yet reaped,
    // so it cannot name another process.
    unsafe { kill(pid as i32, sig) };
}

// ---------------------------------------------------------------------------------------------
// Running commands.
// ---------------------------------------------------------------------------------------------

/// Runs `cmd` to completion with its output captured (never on our stdout); returns stdout.
pub(super) fn quiet(cmd: &mut Command) -> Result<String> {
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

/// What becomes of a background child's stdout.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum StdoutMode {
    Null,
    /// Read and discarded, except the last [`TAIL_LINES`] lines (a summary).
    Tail,
}

/// Lines of a child's stdout kept by [`StdoutMode::Tail`].
const TAIL_LINES: usize = 3;

/// A child running in the background. Dropping it stops it (SIGINT, then SIGKILL).
pub(super) struct Background {
    what: String,
    child: Option<Child>,
    lines: mpsc::Receiver<(Instant, String)>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
    tail: Arc<Mutex<Vec<String>>>,
}

/// How a background child ended.
pub(super) struct Ended {
    pub(super) status: ExitStatus,
    /// The last lines of its stdout ([`StdoutMode::Tail`]).
    pub(super) tail: Vec<String>,
}

impl Ended {
    pub(super) fn last_line(&self) -> &str {
        self.tail.last().map_or("", String::as_str)
    }

    pub(super) fn success(&self) -> bool {
        self.status.success()
    }
}

impl Background {
    pub(super) fn spawn(cmd: &mut Command, stdout: StdoutMode) -> Result<Self> {
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

    pub(super) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Waits for a stderr line containing `pattern`; returns when it was read, and the line.
    pub(super) fn wait_for(
        &mut self,
        pattern: &str,
        timeout: Duration,
    ) -> Result<(Instant, String)> {
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
    pub(super) fn stop(self, sig: i32, timeout: Duration) -> Result<Ended> {
        if let Some(child) = &self.child {
            send_signal(child.id(), sig);
        }
        self.finish(timeout)
    }

    /// Waits (up to `timeout`, then SIGKILL) for the child to end by itself.
    pub(super) fn finish(mut self, timeout: Duration) -> Result<Ended> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

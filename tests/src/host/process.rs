//! Processes: signalling one ([`signal`]), waiting for a child with a deadline
//! ([`wait_deadline`]), telling whether any process still lives ([`process_lives`]), and
//! [`Background`], a child that runs beside the caller (`netlab watch`, a daemon, tcpdump, a
//! traffic generator) whose stderr is collected and watched for a line saying it is ready.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::host::cmd::{announce_with, display, drain, join_drain};

/// How long a background process may take to exit after a signal, unless told otherwise.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// How often a child is polled while waiting for it.
const POLL: Duration = Duration::from_millis(10);

/// Sends `sig` to process `pid`.
///
/// Pass the pid of a child that was not reaped yet (or of a process whose pidfile was just
/// read): a reaped child's pid may already name another process.
pub fn signal(pid: u32, sig: libc::c_int) -> std::io::Result<()> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| std::io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: kill(2) has no memory preconditions; which process it reaches is the caller's
    // contract above.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Waits for `child` until `timeout`; on timeout kills and reaps it and returns `None`.
pub fn wait_deadline(child: &mut Child, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            // The child may exit between try_wait and kill; both outcomes end in a reaped child.
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

/// Sends `sig` to `child` unless it has exited, then waits up to `timeout` for it; kills it
/// after that. Returns how it ended if it ended within `timeout`.
pub fn stop_child(
    child: &mut Child,
    sig: libc::c_int,
    timeout: Duration,
) -> std::io::Result<Option<ExitStatus>> {
    if let Some(status) = child.try_wait()? {
        return Ok(Some(status));
    }
    // The child is not reaped (try_wait said so), so its pid is still its own.
    signal(child.id(), sig)?;
    wait_deadline(child, timeout)
}

/// Whether process `pid` exists and has not exited: a zombie (exited, not yet reaped by its
/// parent) is as gone as a process can be for whoever sent it a signal.
pub fn process_lives(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat_state(&stat))
        .is_some_and(|state| !matches!(state, 'Z' | 'X' | 'x'))
}

/// The state letter of a `/proc/PID/stat` line: the field after the command name, which is
/// in parentheses and may itself hold spaces and parentheses.
pub fn stat_state(stat: &str) -> Option<char> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.trim_start().chars().next()
}

/// What becomes of a [`Background`] process's stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdout {
    /// Not kept (`/dev/null`).
    Discard,
    /// Kept whole.
    Keep,
    /// Read and discarded, except the last lines, as many as given (a summary at the end).
    Tail(usize),
}

/// A process running in the background whose stderr is collected line by line; dropping it
/// sends a signal (SIGTERM, see [`Background::stop_on_drop`]), then SIGKILL if it does not
/// exit.
#[derive(Debug)]
pub struct Background {
    child: Child,
    command: String,
    /// Stderr lines with the moment each was read.
    lines: mpsc::Receiver<(Instant, String)>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
    stdout: Option<JoinHandle<Vec<u8>>>,
    on_drop: (libc::c_int, Duration),
}

/// How a [`Background`] process ended.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its stdout: all of it ([`Stdout::Keep`]), its last lines ([`Stdout::Tail`]) or nothing.
    pub stdout: String,
    /// All of stderr.
    pub stderr: String,
}

impl Finished {
    /// The last line of stdout (`""` if there is none).
    pub fn last_line(&self) -> &str {
        self.stdout.lines().last().unwrap_or("")
    }
}

impl Background {
    /// Spawns `command` with stdin from `/dev/null`, stderr collected and stdout as `stdout`
    /// says.
    pub fn spawn(command: &mut Command, stdout: Stdout) -> Result<Self> {
        command
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .stdout(match stdout {
                Stdout::Discard => Stdio::null(),
                Stdout::Keep | Stdout::Tail(_) => Stdio::piped(),
            });
        let shown = display(command);
        announce_with(command, " &");
        let mut child = command
            .spawn()
            .with_context(|| format!("failed to start `{shown}`"))?;
        let stdout = match stdout {
            Stdout::Discard => None,
            Stdout::Keep => drain(child.stdout.take()),
            Stdout::Tail(lines) => child
                .stdout
                .take()
                .map(|pipe| std::thread::spawn(move || keep_tail(pipe, lines))),
        };
        let stderr = Arc::new(Mutex::new(String::new()));
        let (lines_tx, lines) = mpsc::channel();
        let stderr_reader = child.stderr.take().map(|pipe| {
            let stderr = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let read_at = Instant::now();
                    if let Ok(mut all) = stderr.lock() {
                        all.push_str(&line);
                        all.push('\n');
                    }
                    let _ = lines_tx.send((read_at, line));
                }
            })
        });
        Ok(Self {
            child,
            command: shown,
            lines,
            stderr,
            stderr_reader,
            stdout,
            on_drop: (libc::SIGTERM, EXIT_TIMEOUT),
        })
    }

    /// Spawns `command` with its stdout kept and waits up to `timeout` for a stderr line
    /// containing `marker`; fails with the stderr so far if the process exits first or
    /// stays silent.
    pub fn start(mut command: Command, marker: &str, timeout: Duration) -> Result<Self> {
        let mut process = Self::spawn(&mut command, Stdout::Keep)?;
        process.wait_for(marker, timeout)?;
        Ok(process)
    }

    /// Dropping it sends `sig` and waits up to `timeout` before SIGKILL.
    pub fn stop_on_drop(mut self, sig: libc::c_int, timeout: Duration) -> Self {
        self.on_drop = (sig, timeout);
        self
    }

    /// Waits up to `timeout` for a stderr line containing `marker`; returns the moment it was
    /// read and the line. Fails with the stderr so far if the process exits first or stays
    /// silent.
    pub fn wait_for(&mut self, marker: &str, timeout: Duration) -> Result<(Instant, String)> {
        self.wait_for_checking(marker, timeout, || Ok(()))
    }

    /// [`Background::wait_for`], calling `check` every few milliseconds meanwhile and
    /// failing with its error (a caller that was told to stop, say).
    pub fn wait_for_checking(
        &mut self,
        marker: &str,
        timeout: Duration,
        mut check: impl FnMut() -> Result<()>,
    ) -> Result<(Instant, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            check()?;
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left.min(Duration::from_millis(20))) {
                Ok((at, line)) if line.contains(marker) => return Ok((at, line)),
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(POLL),
            }
            if let Some(status) = self.child.try_wait()? {
                // Lines it printed before exiting may still be queued, or not read yet:
                // read on until its stderr ends (the reader hangs up), for a while.
                let until = Instant::now() + Duration::from_secs(2);
                loop {
                    let left = until.saturating_duration_since(Instant::now());
                    match self.lines.recv_timeout(left) {
                        Ok((at, line)) if line.contains(marker) => return Ok((at, line)),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                bail!(
                    "`{}` exited ({status}) before printing {marker:?}; stderr:\n{}",
                    self.command,
                    self.stderr_so_far()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "`{}` printed no {marker:?} within {timeout:?}; stderr:\n{}",
                    self.command,
                    self.stderr_so_far()
                );
            }
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has not exited yet.
    pub fn is_running(&mut self) -> Result<bool> {
        Ok(self.child.try_wait()?.is_none())
    }

    /// Everything it wrote on stderr so far.
    pub fn stderr_so_far(&self) -> String {
        self.stderr
            .lock()
            .map(|all| all.clone())
            .unwrap_or_default()
    }

    /// Sends `sig` and waits up to [`EXIT_TIMEOUT`] for it to exit.
    pub fn stop(self, sig: libc::c_int) -> Result<Finished> {
        self.stop_within(sig, EXIT_TIMEOUT)
    }

    /// Sends `sig` (unless it has exited already) and waits up to `timeout` for it to exit
    /// (SIGKILL after that, and an error).
    pub fn stop_within(mut self, sig: libc::c_int, timeout: Duration) -> Result<Finished> {
        if self.child.try_wait()?.is_none() {
            // Not reaped yet (try_wait said so): the pid is still our child's.
            signal(self.pid(), sig)
                .with_context(|| format!("signal {sig} to `{}`", self.command))?;
        }
        self.wait(timeout)
    }

    /// Waits up to `timeout` for it to exit by itself (SIGKILL after that, and an error).
    pub fn wait(mut self, timeout: Duration) -> Result<Finished> {
        let status = wait_deadline(&mut self.child, timeout)
            .with_context(|| format!("waiting for `{}`", self.command))?;
        let stdout = String::from_utf8_lossy(&join_drain(self.stdout.take())).into_owned();
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        let stderr = self.stderr_so_far();
        let Some(status) = status else {
            bail!(
                "`{}` still running after {timeout:?}, killed\n--- stdout:\n{stdout}--- stderr:\n{stderr}",
                self.command
            );
        };
        Ok(Finished {
            status,
            stdout,
            stderr,
        })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let (sig, timeout) = self.on_drop;
        if let Ok(Some(_)) = stop_child(&mut self.child, sig, timeout) {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `out` to its end and returns its last `k` lines (the last one even without a
/// newline), each followed by a newline.
///
/// Each chunk read is only searched from its end, for as many newlines as it takes to know
/// what to keep: a child printing hundreds of MB/s (a flood into `netlab watch`) costs this
/// reader little more than the copies, also in a debug build.
fn keep_tail(mut out: impl Read, k: usize) -> Vec<u8> {
    let mut buf = vec![0u8; 1 << 16];
    // The last k lines (and the partial one after them), and possibly more before them.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        tail.extend_from_slice(&buf[..n]);
        // Everything up to the (k+1)-th newline from the end is older than the last k
        // lines: drop it.
        let mut newlines = 0;
        let mut cut = None;
        for (i, &b) in tail.iter().enumerate().rev() {
            if b == b'\n' {
                newlines += 1;
                if newlines > k {
                    cut = Some(i + 1);
                    break;
                }
            }
        }
        if let Some(cut) = cut {
            tail.drain(..cut);
        }
    }
    if tail.is_empty() || k == 0 {
        return Vec::new();
    }
    if tail.last() != Some(&b'\n') {
        tail.push(b'\n');
    }
    // A partial last line counts as a line: then one line too many may be kept.
    let lines = tail.iter().filter(|&&b| b == b'\n').count();
    if lines > k {
        let first = tail.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        tail.drain(..first);
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_tail() {
        assert_eq!(
            keep_tail(&b"a\nbb\nc\n{\"summary\":1}\n"[..], 3),
            b"bb\nc\n{\"summary\":1}\n"
        );
        assert_eq!(keep_tail(&b"a\nno newline"[..], 3), b"a\nno newline\n");
        assert!(keep_tail(&b""[..], 3).is_empty());
        assert!(keep_tail(&b"a\n"[..], 0).is_empty());
        assert_eq!(keep_tail(&b"a\nb\nc\nd"[..], 3), b"b\nc\nd\n");
        assert_eq!(keep_tail(&b"a\nb"[..], 1), b"b\n");
        assert_eq!(keep_tail(&b"\n\n\n"[..], 2), b"\n\n");
        // Lines split across reads of any size.
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.1.min(self.0.len()).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let text: Vec<u8> = (0..1000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        for step in [1, 3, 7, 64, 100_000] {
            assert_eq!(
                keep_tail(Trickle(&text, step), 2),
                b"line 998\nline 999\n",
                "{step}"
            );
        }
    }

    #[test]
    fn stat_states() -> Result<()> {
        assert_eq!(
            stat_state("12634 (dockerd) Z 1 12634 12634 0 -1"),
            Some('Z')
        );
        assert_eq!(stat_state("77 (a (b) c) S 1 77 77 0"), Some('S'));
        assert_eq!(stat_state("77 (cut"), None);
        // A zombie child of this process: exited, not reaped, its /proc entry still there.
        let mut child = Command::new("true").spawn()?;
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        while process_lives(pid) {
            assert!(
                Instant::now() < deadline,
                "`true` ({pid}) still runs after 10 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "reaped too early"
        );
        child.wait()?;
        assert!(!process_lives(pid));
        assert!(process_lives(std::process::id()));
        Ok(())
    }

    #[test]
    fn background_waits_for_its_marker_and_keeps_the_tail() -> Result<()> {
        let mut script = Command::new("sh");
        script.args([
            "-c",
            "echo one; echo starting >&2; echo ready now >&2; echo two; echo three",
        ]);
        let mut process = Background::spawn(&mut script, Stdout::Tail(2))?;
        let (_, line) = process.wait_for("ready", Duration::from_secs(10))?;
        assert_eq!(line, "ready now");
        let finished = process.wait(Duration::from_secs(10))?;
        assert!(finished.status.success());
        assert_eq!(finished.stdout, "two\nthree\n");
        assert_eq!(finished.last_line(), "three");
        assert_eq!(finished.stderr, "starting\nready now\n");
        Ok(())
    }

    #[test]
    fn background_reports_an_early_exit_and_stops_on_signal() -> Result<()> {
        let mut quits = Command::new("sh");
        quits.args(["-c", "echo bye >&2; exit 4"]);
        let mut process = Background::spawn(&mut quits, Stdout::Discard)?;
        let err = process
            .wait_for("never", Duration::from_secs(10))
            .expect_err("it exits first");
        let message = err.to_string();
        assert!(
            message.contains("exited") && message.contains("bye"),
            "{message}"
        );

        let mut sleeper = Command::new("sleep");
        sleeper.arg("30");
        let start = Instant::now();
        let process = Background::spawn(&mut sleeper, Stdout::Keep)?;
        assert!(process_lives(process.pid()));
        let finished = process.stop_within(libc::SIGTERM, Duration::from_secs(10))?;
        assert!(!finished.status.success());
        assert!(start.elapsed() < Duration::from_secs(10));

        let mut stubborn = Command::new("sh");
        stubborn.args(["-c", "trap '' TERM; echo up >&2; exec sleep 30"]);
        let mut process = Background::spawn(&mut stubborn, Stdout::Discard)?;
        process.wait_for("up", Duration::from_secs(10))?;
        let err = process
            .stop_within(libc::SIGTERM, Duration::from_millis(300))
            .expect_err("it ignores SIGTERM");
        assert!(err.to_string().contains("still running"), "{err}");
        Ok(())
    }
}

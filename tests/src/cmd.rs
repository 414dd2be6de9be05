//! Running commands: in the test's namespace ([`sh`]), in a test namespace ([`ns_exec`]),
//! and with a deadline ([`run_with_timeout`]).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Runs `cmd` with `sh -c` and returns its stdout; fails with stdout and stderr on a non-zero exit.
pub fn sh(cmd: &str) -> Result<String> {
    run(Command::new("sh").args(["-c", cmd]))
}

/// Runs `cmd` with `sh -c` inside network namespace `ns` and returns its stdout; fails with
/// stdout and stderr on a non-zero exit.
pub fn ns_exec(ns: &str, cmd: &str) -> Result<String> {
    run(Command::new("ip").args(["netns", "exec", ns, "sh", "-c", cmd]))
}

/// Runs `command` to completion and returns its stdout; fails with stdout and stderr on a
/// non-zero exit.
pub fn run(command: &mut Command) -> Result<String> {
    let shown = describe(command);
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot spawn `{shown}`"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "`{shown}` failed ({})\n--- stdout:\n{stdout}--- stderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

/// Runs `command` with piped output; kills it and fails if it has not exited after `timeout`.
/// The exit status is returned, not checked.
pub fn run_with_timeout(mut command: Command, timeout: Duration) -> Result<Output> {
    let shown = describe(&command);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot spawn `{shown}`"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_deadline(&mut child, timeout)?;
    let stdout = join_drain(stdout);
    let stderr = join_drain(stderr);
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => bail!(
            "`{shown}` still running after {timeout:?}, killed\n--- stdout:\n{}--- stderr:\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// Waits for `child` until `timeout`; on timeout kills and reaps it and returns `None`.
pub(crate) fn wait_deadline(
    child: &mut Child,
    timeout: Duration,
) -> Result<Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().context("waiting for child")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            // The child may exit between try_wait and kill; both outcomes end in a reaped child.
            let _ = child.kill();
            child.wait().context("reaping killed child")?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads a pipe to its end on a thread, so a chatty child never blocks on a full pipe.
pub(crate) fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> Option<JoinHandle<Vec<u8>>> {
    pipe.map(|mut pipe| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            // A read error only truncates what we show; the caller checks the exit status.
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    })
}

pub(crate) fn join_drain(handle: Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    handle
        .and_then(|handle| handle.join().ok())
        .unwrap_or_default()
}

/// `program arg arg ...`, for error messages.
pub(crate) fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// How long a background process may take to exit after a signal.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// A process running in the background (`netlab daemon`, `capture`, `watch`) whose stderr
/// is collected; dropping it sends SIGTERM, then SIGKILL if it does not exit.
#[derive(Debug)]
pub struct Background {
    child: Child,
    command: String,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

/// How a [`Background`] process ended.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// All of stdout.
    pub stdout: String,
    /// All of stderr.
    pub stderr: String,
}

impl Background {
    /// Spawns `command` and waits up to `timeout` for a stderr line containing `marker`;
    /// fails with the stderr so far if the process exits first or stays silent.
    pub fn start(mut command: Command, marker: &str, timeout: Duration) -> Result<Self> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let shown = describe(&command);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot spawn `{shown}`"))?;
        let stdout = drain(child.stdout.take());
        let stderr = Arc::new(Mutex::new(String::new()));
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        let stderr_reader = child.stderr.take().map(|pipe| {
            let stderr = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(mut all) = stderr.lock() {
                        all.push_str(&line);
                        all.push('\n');
                    }
                    let _ = lines_tx.send(line);
                }
            })
        });
        let mut process = Self {
            child,
            command: shown,
            stdout,
            stderr,
            stderr_reader,
        };
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(line) if line.contains(marker) => return Ok(process),
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
            }
            if let Some(status) = process.child.try_wait()? {
                bail!(
                    "`{}` exited ({status}) before printing {marker:?}; stderr:\n{}",
                    process.command,
                    process.stderr_so_far()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "`{}` printed no {marker:?} within {timeout:?}; stderr:\n{}",
                    process.command,
                    process.stderr_so_far()
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

    /// Sends `signal` and waits up to [`EXIT_TIMEOUT`] for it to exit.
    pub fn stop(self, signal: libc::c_int) -> Result<Finished> {
        let pid = libc::pid_t::try_from(self.pid()).context("pid out of range")?;
        // SAFETY: kill has no memory preconditions; `pid` is our unreaped child, so the id
        // cannot have been reused by another process.
        if unsafe { libc::kill(pid, signal) } != 0 {
            bail!(
                "signal {signal} to `{}` (pid {pid}): {}",
                self.command,
                std::io::Error::last_os_error()
            );
        }
        self.wait(EXIT_TIMEOUT)
    }

    /// Waits up to `timeout` for it to exit by itself (SIGKILL after that, and an error).
    pub fn wait(mut self, timeout: Duration) -> Result<Finished> {
        let status = wait_deadline(&mut self.child, timeout)?;
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
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: as in `stop`: our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            if let Ok(Some(_)) = wait_deadline(&mut self.child, EXIT_TIMEOUT) {
                return;
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

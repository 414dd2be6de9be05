//! Running commands: in the test's namespace ([`sh`]), in a test namespace ([`ns_exec`]),
//! and with a deadline ([`run_with_timeout`]).

use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
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

//! Running commands and checking how they ended: [`run`] (stdout, or an error naming the
//! command with what it printed), [`output`] (whatever the exit status), [`run_with_timeout`]
//! and [`run_within`] (killed at a deadline), [`succeeds_within`] (a yes/no probe), and
//! [`display`], the shell-like rendering every error message uses.
//!
//! Stdin is `/dev/null` unless said otherwise, so no command ever waits for a terminal.
//! A program that wants every command shown before it runs (xtask) says so once with
//! [`announce_commands`].

use std::ffi::OsStr;
use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::host::process::wait_deadline;

/// A shell-like rendering of `command`: the environment it sets, the program, its arguments,
/// each quoted only where a POSIX shell would need it.
pub fn display(command: &Command) -> String {
    let mut words = Vec::new();
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            words.push(format!("{}={}", key.to_string_lossy(), quote(value)));
        }
    }
    words.push(quote(command.get_program()));
    words.extend(command.get_args().map(quote));
    words.join(" ")
}

/// Quotes a word the way a POSIX shell would need it.
fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:=,+@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The prefix of [`announce`]'s lines, once [`announce_commands`] set it.
static ANNOUNCE: OnceLock<String> = OnceLock::new();

/// From now on every command these helpers run is printed on stderr before it runs, as
/// `<prefix>: <command>`. The first call wins.
pub fn announce_commands(prefix: &str) {
    let _ = ANNOUNCE.set(prefix.to_owned());
}

/// Prints `<prefix>: <command>` on stderr if [`announce_commands`] was called.
pub fn announce(command: &Command) {
    announce_with(command, "");
}

/// [`announce`] with `suffix` after the command (` &` for one that runs in the background).
pub fn announce_with(command: &Command, suffix: &str) {
    if let Some(prefix) = ANNOUNCE.get() {
        eprintln!("{prefix}: {}{suffix}", display(command));
    }
}

/// Runs `command` to completion with stdout and stderr captured, whatever its exit status.
pub fn output(command: &mut Command) -> Result<Output> {
    announce(command);
    command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to start `{}`", display(command)))
}

/// Runs `command` to completion and returns its stdout; fails with stdout and stderr on a
/// non-zero exit.
pub fn run(command: &mut Command) -> Result<String> {
    let out = output(command)?;
    stdout_of(&display(command), &out)
}

/// `sh -c script`: its stdout, or an error with stdout and stderr on a non-zero exit.
pub fn sh(script: &str) -> Result<String> {
    run(Command::new("sh").args(["-c", script]))
}

/// The stdout of `out`, the output of command `shown`, if it exited 0; otherwise an error
/// naming the command and its status, with whatever it printed.
pub fn stdout_of(shown: &str, out: &Output) -> Result<String> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let mut message = format!("`{shown}` failed ({})", out.status);
    for (name, text) in [
        ("stdout", stdout.as_str()),
        ("stderr", &String::from_utf8_lossy(&out.stderr)),
    ] {
        if !text.trim().is_empty() {
            message.push_str(&format!("\n--- {name}:\n{}", text.trim_end()));
        }
    }
    bail!(message)
}

/// Runs `<program> <args>` bounded by `timeout`; the exit status is not checked.
pub fn tool_status(program: &str, args: &[&str], timeout: Duration) -> Result<Output> {
    let mut command = Command::new(program);
    command.args(args);
    run_with_timeout(command, timeout)
}

/// Runs `<program> <args>` bounded by `timeout` and returns its stdout; fails with stdout and
/// stderr on a non-zero exit.
pub fn tool(program: &str, args: &[&str], timeout: Duration) -> Result<String> {
    stdout_of(
        &format!("{program} {}", args.join(" ")),
        &tool_status(program, args, timeout)?,
    )
}

/// Runs `command` with piped output; kills it and fails if it has not exited after `timeout`.
/// The exit status is returned, not checked.
pub fn run_with_timeout(command: Command, timeout: Duration) -> Result<Output> {
    run_with_stdin(command, Stdio::null(), timeout)
}

/// [`run_with_timeout`] with stdin read from `stdin`.
pub fn run_with_stdin(mut command: Command, stdin: Stdio, timeout: Duration) -> Result<Output> {
    let shown = display(&command);
    announce(&command);
    let mut child = command
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start `{shown}`"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status =
        wait_deadline(&mut child, timeout).with_context(|| format!("waiting for `{shown}`"))?;
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

/// [`run_with_timeout`], then [`stdout_of`]: its stdout if it exited 0 in time.
pub fn run_within(command: Command, timeout: Duration) -> Result<String> {
    let shown = display(&command);
    let out = run_with_timeout(command, timeout)?;
    stdout_of(&shown, &out)
}

/// Runs `command` with all stdio discarded; true if it exited 0 within `timeout`. A command
/// still running at the deadline is killed and counts as failed.
pub fn succeeds_within(command: &mut Command, timeout: Duration) -> Result<bool> {
    announce(command);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("failed to start `{}`", display(command)))?;
    let status = wait_deadline(&mut child, timeout)
        .with_context(|| format!("failed to wait for `{}`", display(command)))?;
    Ok(status.is_some_and(|status| status.success()))
}

/// Reads a pipe to its end on a thread, so a chatty child never blocks on a full pipe.
pub fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> Option<JoinHandle<Vec<u8>>> {
    pipe.map(|mut pipe| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            // A read error only truncates what we show; the caller checks the exit status.
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    })
}

/// What a [`drain`] thread read (nothing if there was no pipe or the thread panicked).
pub fn join_drain(handle: Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    handle
        .and_then(|handle| handle.join().ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn display_quotes_only_what_needs_it() {
        let mut command = Command::new("dpkg-query");
        command
            .args(["-W", "-f=${Status}\n", "it's"])
            .env("DEBIAN_FRONTEND", "noninteractive");
        assert_eq!(
            display(&command),
            "DEBIAN_FRONTEND=noninteractive dpkg-query -W '-f=${Status}\n' 'it'\\''s'"
        );
    }

    #[test]
    fn display_quotes_empty_words() {
        let mut command = Command::new("echo");
        command.arg("");
        assert_eq!(display(&command), "echo ''");
    }

    #[test]
    fn failures_name_the_command_and_show_its_output() {
        assert_eq!(sh("echo out").expect("echo runs"), "out\n");
        let err = sh("echo to-stdout; echo to-stderr >&2; exit 3").expect_err("exit 3 fails");
        let message = format!("{err:#}");
        assert!(message.contains("`sh -c 'echo to-stdout;"), "{message}");
        assert!(message.contains("exit status: 3"), "{message}");
        assert!(message.contains("--- stdout:\nto-stdout"), "{message}");
        assert!(message.contains("--- stderr:\nto-stderr"), "{message}");
        let err = run(&mut Command::new("/nonexistent/netlab-host-test")).expect_err("missing");
        assert!(
            err.to_string()
                .contains("failed to start `/nonexistent/netlab-host-test`"),
            "{err}"
        );
    }

    #[test]
    fn timeout_kills_a_slow_command() {
        let start = Instant::now();
        let mut sleep = Command::new("sleep");
        sleep.arg("5");
        let err = run_with_timeout(sleep, Duration::from_millis(200)).expect_err("too slow");
        assert!(err.to_string().contains("still running after"), "{err}");
        let ok = succeeds_within(Command::new("sleep").arg("5"), Duration::from_millis(200))
            .expect("sleep starts");
        assert!(!ok);
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn exit_status_is_reported() {
        assert!(succeeds_within(&mut Command::new("true"), Duration::from_secs(5)).expect("true"));
        assert!(
            !succeeds_within(&mut Command::new("false"), Duration::from_secs(5)).expect("false")
        );
        let mut echo = Command::new("echo");
        echo.arg("hi");
        assert_eq!(
            run_within(echo, Duration::from_secs(5)).expect("echo"),
            "hi\n"
        );
        let mut cat = Command::new("cat");
        let out = run_with_stdin(
            {
                cat.arg("-");
                cat
            },
            Stdio::from(std::fs::File::open("/proc/self/comm").expect("comm")),
            Duration::from_secs(5),
        )
        .expect("cat");
        assert!(!out.stdout.is_empty());
    }
}

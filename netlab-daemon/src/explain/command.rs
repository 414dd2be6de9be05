//! Running the firewall's command-line tools (`iptables-save`, `ip6tables-save`, `nft`):
//! found in the PATH or else in /usr/sbin and /sbin, killed when they take too long, their
//! stdout returned, and the start of their stderr kept when they fail.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Errors from running a tool.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The program could not be started (absent, not executable).
    #[error("cannot run {program}")]
    Start {
        /// The program, e.g. `iptables-save`.
        program: String,
        /// Why it could not be started.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the program failed.
    #[error("cannot wait for {program}")]
    Wait {
        /// The program (with its arguments if [`Shown::CommandLine`]).
        program: String,
        /// Why waiting failed.
        #[source]
        source: std::io::Error,
    },
    /// The program did not finish in time and was killed.
    #[error("{program} did not finish within {} ms and was killed", timeout.as_millis())]
    Timeout {
        /// The program (with its arguments if [`Shown::CommandLine`]).
        program: String,
        /// The limit it exceeded.
        timeout: Duration,
    },
    /// The program exited unsuccessfully (e.g. `Operation not permitted` when not root).
    #[error("{program} failed with {status}: {stderr}")]
    Status {
        /// The program (with its arguments if [`Shown::CommandLine`]).
        program: String,
        /// How it exited.
        status: ExitStatus,
        /// The start of what it printed on stderr.
        stderr: String,
    },
}

/// How an error after the start names what ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// The program alone, e.g. `/usr/sbin/iptables-save`.
    Program,
    /// The program and its arguments, e.g. `nft -j list table ip docker-bridges`.
    CommandLine,
}

/// Most characters of stderr kept in [`CommandError::Status`].
const STDERR_KEPT: usize = 300;

/// Runs `program args` (see [`run_with_timeout`]), looking for `program` in the PATH first,
/// then in /usr/sbin and /sbin (which a non-root PATH may lack). If it is in none of them,
/// the error is the PATH's [`CommandError::Start`], naming `program` as given.
pub fn run_installed(
    program: &str,
    args: &[&str],
    timeout: Duration,
    shown: Shown,
) -> Result<String, CommandError> {
    let mut first_err = None;
    for candidate in [
        program.to_string(),
        format!("/usr/sbin/{program}"),
        format!("/sbin/{program}"),
    ] {
        match run_with_timeout(&candidate, args, timeout, shown) {
            Err(CommandError::Start { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                first_err.get_or_insert(CommandError::Start {
                    program: program.to_string(),
                    source,
                });
            }
            other => return other,
        }
    }
    Err(first_err.unwrap_or_else(|| CommandError::Start {
        program: program.to_string(),
        source: std::io::ErrorKind::NotFound.into(),
    }))
}

/// Runs `program args` and returns its stdout, killing it if it takes longer than
/// `timeout`. Errors after the start name it as `shown` says.
pub fn run_with_timeout(
    program: &str,
    args: &[&str],
    timeout: Duration,
    shown: Shown,
) -> Result<String, CommandError> {
    let deadline = Instant::now() + timeout;
    let name = || match shown {
        Shown::Program => program.to_string(),
        Shown::CommandLine => format!("{program} {}", args.join(" ")),
    };
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| CommandError::Start {
            program: program.to_string(),
            source,
        })?;
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let timed_out = || CommandError::Timeout {
        program: name(),
        timeout,
    };

    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {
                let now = Instant::now();
                if now >= deadline {
                    // The child may have exited just now; either way it is reaped.
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(timed_out());
                }
                std::thread::sleep(pause.min(deadline - now));
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(source) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CommandError::Wait {
                    program: name(),
                    source,
                });
            }
        }
    };

    // A grandchild could keep the pipes open; the deadline bounds the wait for them too.
    let remaining = || deadline.saturating_duration_since(Instant::now());
    let out = stdout.recv_timeout(remaining()).map_err(|_| timed_out())?;
    if !status.success() {
        let err = stderr.recv_timeout(remaining()).unwrap_or_default();
        let err = String::from_utf8_lossy(&err);
        let err: String = err.trim().chars().take(STDERR_KEPT).collect();
        return Err(CommandError::Status {
            program: name(),
            status,
            stderr: err,
        });
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Reads `pipe` to its end on a thread; the bytes arrive on the returned channel.
fn read_in_background<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            // A read error leaves what was read so far; the exit status tells the rest.
            let _ = pipe.read_to_end(&mut buf);
        }
        let _ = tx.send(buf);
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A limit no test program comes near.
    const GENEROUS: Duration = Duration::from_secs(5);

    #[test]
    fn timeout_kills_the_program() {
        let started = Instant::now();
        match run_with_timeout("sleep", &["10"], Duration::from_millis(200), Shown::Program) {
            Err(CommandError::Timeout { program, .. }) => assert_eq!(program, "sleep"),
            Err(e) => println!("skipping: sleep unavailable: {e:?}"),
            Ok(_) => panic!("sleep 10 finished within 200 ms"),
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        match run_with_timeout(
            "sleep",
            &["10"],
            Duration::from_millis(200),
            Shown::CommandLine,
        ) {
            Err(CommandError::Timeout { program, .. }) => assert_eq!(program, "sleep 10"),
            other => println!("skipping: {other:?}"),
        }
    }

    #[test]
    fn missing_and_failing_programs() {
        let e = run_with_timeout("netlab-no-such-program", &[], GENEROUS, Shown::Program);
        assert!(matches!(e, Err(CommandError::Start { .. })), "{e:?}");
        let e = run_installed("netlab-no-such-program", &[], GENEROUS, Shown::Program);
        match e {
            Err(CommandError::Start { program, source }) => {
                assert_eq!(program, "netlab-no-such-program");
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("expected a start error, got {other:?}"),
        }
        let failing = ["-c", "echo broken >&2; exit 3"];
        match run_with_timeout("sh", &failing, GENEROUS, Shown::Program) {
            Err(CommandError::Status { stderr, status, .. }) => {
                assert_eq!(stderr, "broken");
                assert_eq!(status.code(), Some(3));
            }
            other => panic!("expected a status error, got {other:?}"),
        }
    }
}

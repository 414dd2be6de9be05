//! Running `nft` with a timeout.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::NftError;

/// Whether `nft list table` failed because the table does not exist.
pub(super) fn table_missing(stderr: &str) -> bool {
    stderr.contains("No such file or directory")
}

/// Runs `nft args`, looking in the PATH, then /usr/sbin and /sbin.
pub(super) fn run_nft(args: &[&str], timeout: Duration) -> Result<String, NftError> {
    for program in ["nft", "/usr/sbin/nft", "/sbin/nft"] {
        match run_with_timeout(program, args, timeout) {
            Err(NftError::Command { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            other => return other,
        }
    }
    Err(NftError::NftMissing)
}

/// Runs `program args` and returns its stdout, killing it after `timeout`.
pub(super) fn run_with_timeout(
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<String, NftError> {
    let deadline = Instant::now() + timeout;
    let name = || format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NftError::Command {
            program: program.to_string(),
            source,
        })?;
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let timed_out = || NftError::Timeout {
        program: name(),
        timeout,
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(timed_out());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(source) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(NftError::Wait {
                    program: name(),
                    source,
                });
            }
        }
    };
    let remaining = || deadline.saturating_duration_since(Instant::now());
    let out = stdout.recv_timeout(remaining()).map_err(|_| timed_out())?;
    if !status.success() {
        let err = stderr.recv_timeout(remaining()).unwrap_or_default();
        let err: String = String::from_utf8_lossy(&err)
            .trim()
            .chars()
            .take(300)
            .collect();
        return Err(NftError::Status {
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
            let _ = pipe.read_to_end(&mut buf);
        }
        let _ = tx.send(buf);
    });
    rx
}

//! Running external commands: print each one (`xtask: ...` on stderr), then run it and name it in errors.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How often a command run with a timeout is polled.
const POLL: Duration = Duration::from_millis(50);

/// A shell-like rendering of `cmd`: the environment it sets, the program, its arguments.
pub fn display(cmd: &Command) -> String {
    let mut words = Vec::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            words.push(format!("{}={}", key.to_string_lossy(), quote(value)));
        }
    }
    words.push(quote(cmd.get_program()));
    words.extend(cmd.get_args().map(quote));
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

/// Prints the command about to run.
pub fn announce(cmd: &Command) {
    eprintln!("xtask: {}", display(cmd));
}

/// Runs `cmd` with inherited stdio; fails unless it exits with status 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    announce(cmd);
    let status = cmd
        .status()
        .with_context(|| format!("failed to start `{}`", display(cmd)))?;
    check(cmd, status)
}

/// Runs `cmd` and captures its stdout and stderr, whatever its exit status.
pub fn output(cmd: &mut Command) -> Result<Output> {
    announce(cmd);
    cmd.stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to start `{}`", display(cmd)))
}

/// Runs `cmd` with all stdio discarded; true if it exited 0 within `timeout`.
/// A command still running at the deadline is killed and counts as failed.
pub fn succeeds_within(cmd: &mut Command, timeout: Duration) -> Result<bool> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("failed to start `{}`", display(cmd)))?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("failed to wait for `{}`", display(cmd)))?
        {
            return Ok(status.success());
        }
        if Instant::now() >= deadline {
            // The child may have exited in the meantime; either way it is reaped below.
            let _ = child.kill();
            let _ = child.wait();
            return Ok(false);
        }
        thread::sleep(POLL);
    }
}

/// Fails with the command's name unless `status` is success.
pub fn check(cmd: &Command, status: ExitStatus) -> Result<()> {
    if status.success() {
        Ok(())
    } else {
        bail!("`{}` failed ({status})", display(cmd))
    }
}

/// `cargo` as found on PATH (the rustup proxy keeps the toolchain this xtask runs with).
pub fn cargo() -> Command {
    Command::new("cargo")
}

/// Puts `$CARGO_HOME/bin` (default `~/.cargo/bin`) first on PATH if it exists and is not there yet,
/// so that tools installed by `cargo install` (bpf-linker) are found by this process and its children.
pub fn put_cargo_bin_on_path() {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    let Some(bin) = cargo_home.map(|home| home.join("bin")) else {
        return;
    };
    if !bin.is_dir() {
        return;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| dir == bin) {
        return;
    }
    let joined = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&path)));
    if let Ok(joined) = joined {
        std::env::set_var("PATH", joined);
    }
}

/// PATH with `dir` in front.
pub fn path_with_prefix(dir: &str) -> Result<std::ffi::OsString> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(PathBuf::from(dir)).chain(std::env::split_paths(&path)))
        .with_context(|| format!("cannot put {dir} on PATH"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_needs_it() {
        let mut cmd = Command::new("dpkg-query");
        cmd.args(["-W", "-f=${Status}\n", "it's"])
            .env("DEBIAN_FRONTEND", "noninteractive");
        assert_eq!(
            display(&cmd),
            "DEBIAN_FRONTEND=noninteractive dpkg-query -W '-f=${Status}\n' 'it'\\''s'"
        );
    }

    #[test]
    fn display_quotes_empty_words() {
        let mut cmd = Command::new("echo");
        cmd.arg("");
        assert_eq!(display(&cmd), "echo ''");
    }

    #[test]
    fn timeout_kills_a_slow_command() {
        let start = Instant::now();
        let ok = succeeds_within(Command::new("sleep").arg("5"), Duration::from_millis(200))
            .expect("sleep starts");
        assert!(!ok);
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn exit_status_is_reported() {
        assert!(
            succeeds_within(&mut Command::new("true"), Duration::from_secs(5))
                .expect("true starts")
        );
        assert!(
            !succeeds_within(&mut Command::new("false"), Duration::from_secs(5))
                .expect("false starts")
        );
    }

    #[test]
    fn failure_names_the_command() {
        let err = run(Command::new("false").arg("--flag")).expect_err("false fails");
        assert!(err.to_string().contains("`false --flag` failed"), "{err}");
        let err =
            run(&mut Command::new("/nonexistent/netlab-xtask-test")).expect_err("missing program");
        assert!(
            err.to_string()
                .contains("failed to start `/nonexistent/netlab-xtask-test`"),
            "{err}"
        );
    }
}

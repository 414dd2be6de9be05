//! Running external commands: each one is printed first (`xtask: ...` on stderr, see
//! `main`), named in errors, and run with the helpers of `netlab_tests::host::cmd`; what is
//! xtask's own is here: commands in the foreground with inherited stdio ([`run`]) and cargo.

use std::path::PathBuf;
use std::process::{Command, ExitStatus};

use anyhow::{bail, Context, Result};

/// Runs a command with its output captured: its stdout, or an error with what it printed.
pub use netlab_tests::host::cmd::run as capture;
pub use netlab_tests::host::cmd::{announce, display, output, succeeds_within};

/// Runs `cmd` with inherited stdio; fails unless it exits with status 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    announce(cmd);
    let status = cmd
        .status()
        .with_context(|| format!("failed to start `{}`", display(cmd)))?;
    check(cmd, status)
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

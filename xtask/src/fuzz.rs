//! `cargo xtask fuzz [--secs N]`: the cargo-fuzz targets of `fuzz/` (`decode`, `event`), each
//! for N seconds with the nightly toolchain. cargo-fuzz is installed when missing.
//!
//! Each target keeps what it learns in `fuzz/corpus/<target>` (not committed) and starts from
//! the committed seeds in `fuzz/seeds/<target>`; a crash leaves its input in
//! `fuzz/artifacts/<target>` and fails the command.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::{cmd, workspace};

/// The fuzz targets, in the order they run.
pub const TARGETS: &[&str] = &["decode", "event"];
/// Seconds per target of `cargo xtask fuzz` without `--secs`.
pub const DEFAULT_SECS: u32 = 60;
/// Seconds per target in `cargo xtask test`.
pub const TEST_SECS: u32 = 30;

/// The cargo-fuzz crate (a workspace of its own, excluded from the main one).
fn fuzz_dir() -> PathBuf {
    workspace::root().join("fuzz")
}

/// `cargo +nightly ...` in the fuzz crate, without the variables the outer `cargo xtask`
/// set for the stable toolchain.
fn nightly_cargo() -> Command {
    let mut cargo = cmd::cargo();
    cargo
        .arg("+nightly")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .current_dir(fuzz_dir());
    cargo
}

/// Runs every target for `secs` seconds (libFuzzer's `-max_total_time`); fails at the first
/// target that finds a crash.
pub fn run(secs: u32) -> Result<()> {
    ensure_cargo_fuzz()?;
    for target in TARGETS {
        let corpus = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&corpus)
            .with_context(|| format!("cannot create {}", corpus.display()))?;
        let seeds = fuzz_dir().join("seeds").join(target);
        let mut fuzz = nightly_cargo();
        fuzz.args(["fuzz", "run", target])
            .arg(&corpus)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={secs}"))
            .arg("-print_final_stats=1");
        cmd::run(&mut fuzz).with_context(|| {
            format!(
                "fuzz target {target} failed: the crashing input is under {}",
                fuzz_dir().join("artifacts").join(target).display()
            )
        })?;
    }
    eprintln!(
        "xtask: fuzzing done: {} targets, {secs} s each, no crash",
        TARGETS.len()
    );
    Ok(())
}

/// `cargo install cargo-fuzz --locked` unless `cargo fuzz --version` works (about a minute
/// on this machine kind).
fn ensure_cargo_fuzz() -> Result<bool> {
    let mut version = nightly_cargo();
    version.args(["fuzz", "--version"]);
    cmd::announce(&version);
    if version.output().is_ok_and(|out| out.status.success()) {
        return Ok(false);
    }
    let started = Instant::now();
    cmd::run(cmd::cargo().args(["install", "cargo-fuzz", "--locked"]))
        .context("cannot install cargo-fuzz")?;
    eprintln!(
        "xtask: installed cargo-fuzz in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn fuzz_subcommand_takes_seconds() {
        let parse = |args: &[&str]| {
            crate::Cli::try_parse_from(["xtask", "fuzz"].iter().chain(args)).map(|cli| cli.command)
        };
        assert!(matches!(
            parse(&[]),
            Ok(crate::Command::Fuzz { secs: DEFAULT_SECS })
        ));
        assert!(matches!(
            parse(&["--secs", "600"]),
            Ok(crate::Command::Fuzz { secs: 600 })
        ));
        assert!(parse(&["--secs", "0"]).is_err());
        assert!(parse(&["--secs", "x"]).is_err());
    }

    #[test]
    fn every_target_has_a_source_and_seeds() {
        for target in TARGETS {
            let source = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
            assert!(source.is_file(), "{} is missing", source.display());
            let seeds = fuzz_dir().join("seeds").join(target);
            let count = std::fs::read_dir(&seeds)
                .map(|entries| entries.count())
                .unwrap_or(0);
            assert!(count > 0, "no seeds in {}", seeds.display());
        }
        let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("manifest");
        for target in TARGETS {
            assert!(
                manifest.contains(&format!("name = \"{target}\"")),
                "fuzz/Cargo.toml has no [[bin]] {target}"
            );
        }
    }
}

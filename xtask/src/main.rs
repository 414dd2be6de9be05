//! `cargo xtask`: the project's own build, setup, test and lab commands.
//!
//! Every external command is printed to stderr (prefixed `xtask: `) before it runs.

mod cmd;
mod docker;
mod interrupt;
mod lab;
mod setup;
mod test_all;
mod workspace;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "netlab's build, setup, test and lab commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install what this machine lacks: rust-src for nightly, Debian packages, bpf-linker (idempotent).
    Setup,
    /// Build the netlab binary (`cargo build -p netlab-daemon`) and print its path.
    Build {
        /// Build with the release profile.
        #[arg(long)]
        release: bool,
    },
    /// Run every test: setup, Docker engine, unit tests, then the privileged integration tests.
    Test {
        /// Test-name filter passed to the integration tests (`cargo xtask test -- NAME`).
        #[arg(last = true)]
        filter: Vec<String>,
    },
    /// Build a lab of network namespaces on a bridge, ping across it and watch it with netlab (root).
    Lab {
        /// How long the pinger and `netlab watch` run, in seconds.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
        duration: u32,
        /// Only delete whatever is left of the lab's namespaces.
        #[arg(long, conflicts_with = "duration")]
        down: bool,
    },
    /// Make sure a Docker engine answers, starting dockerd if needed.
    #[command(hide = true)]
    DockerUp,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    cmd::put_cargo_bin_on_path();
    match cli.command {
        Command::Setup => setup::run(),
        Command::Build { release } => {
            let bin = workspace::build_daemon(release)?;
            println!("{}", bin.display());
            Ok(())
        }
        Command::Test { filter } => test_all::run(&filter),
        Command::Lab { down: true, .. } => lab::down(),
        Command::Lab {
            duration,
            down: false,
        } => lab::run(duration),
        Command::DockerUp => docker::ensure_docker(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn test_filter_comes_after_double_dash() {
        let cli =
            Cli::try_parse_from(["xtask", "test", "--", "arp", "--nocapture"]).expect("parses");
        match cli.command {
            Command::Test { filter } => assert_eq!(filter, ["arp", "--nocapture"]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn lab_defaults_to_sixty_seconds() {
        let cli = Cli::try_parse_from(["xtask", "lab"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Lab {
                duration: 60,
                down: false
            }
        ));
    }

    #[test]
    fn bad_input_is_rejected() {
        assert!(Cli::try_parse_from(["xtask", "frobnicate"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "build", "--relase"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "lab", "--duration", "0"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "lab", "--down", "--duration", "5"]).is_err());
    }
}

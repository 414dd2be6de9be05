//! `cargo xtask`: the project's own build, setup, test and lab commands.
//!
//! Every external command is printed to stderr (prefixed `xtask: `) before it runs.

mod bench;
mod cmd;
mod docker;
mod engines;
mod fuzz;
mod image;
mod images;
mod interrupt;
mod lab;
mod lab_map;
mod netns_lab;
mod podman;
mod setup;
mod test_all;
mod vmtest;
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
    /// Install what this machine lacks: rust-src for nightly, Debian packages, the Docker
    /// engine, bpf-linker, schemathesis (idempotent).
    Setup {
        /// The Docker engine to install from Debian's archives.
        #[arg(long, value_enum, default_value = "28")]
        engine: engines::Engine,
    },
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
    /// The Docker course lab (root): networks devops and prod, containers AppDev, AppProd and
    /// pinger, watched by netlab; it stays up for the course steps until `--down`.
    Lab {
        /// How long the pinger and `netlab watch` run, in seconds.
        #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..))]
        duration: u32,
        /// Run the lab of network namespaces on a bridge instead (no Docker; removed when
        /// netlab ends).
        #[arg(long)]
        netns: bool,
        /// Rebuild the lab's images (netlab/busybox, netlab/http-echo) even if they exist.
        #[arg(long, conflicts_with = "netns")]
        rebuild: bool,
        /// Only remove what is left of the labs: containers, networks, int_hote and namespaces
        /// (with --netns: the namespaces only).
        #[arg(long, conflicts_with_all = ["duration", "rebuild"])]
        down: bool,
        /// The engine the lab runs on: Docker, or Podman (netlab follows it through its
        /// Docker-compatible API).
        #[arg(long, value_enum, default_value_t = lab::LabEngine::Docker, conflicts_with = "netns")]
        engine: lab::LabEngine,
        /// Podman: create devops and prod with `--opt isolate=true`, so that they are kept
        /// apart as Docker keeps its networks (Podman's are not, by default).
        #[arg(long, conflicts_with_all = ["netns", "down"])]
        isolate: bool,
    },
    /// Measure what netlab costs here (root): per-packet cost of the tc programs, packet rates
    /// with and without observers, event throughput, attaching to 500 veths, memory; writes
    /// BENCH.md. Traffic stays between the namespaces it creates.
    Bench {
        /// Shorter windows and fewer rounds (under 3 minutes once built).
        #[arg(long)]
        quick: bool,
        /// Print one JSON object with the headline numbers on stdout (the table goes to stderr).
        #[arg(long)]
        json: bool,
        /// Run only these parts (repeat or separate with commas); BENCH.md is then left as
        /// it is and what its results block would say is printed on stderr.
        #[arg(long, value_enum, value_delimiter = ',', value_name = "PART")]
        only: Vec<bench::Part>,
    },
    /// Send small UDP datagrams as fast as possible for a while (a helper of `bench`).
    #[command(hide = true)]
    BenchUdpSend {
        /// Destination; only the bench's subnet 10.200.0.0/24 is accepted.
        #[arg(long)]
        dst: std::net::Ipv4Addr,
        #[arg(long, default_value_t = 5001)]
        port: u16,
        /// How long to send, in seconds (at most 60).
        #[arg(long)]
        secs: f64,
        /// Datagrams per second (0: as fast as possible).
        #[arg(long, default_value_t = 0)]
        pps: u64,
    },
    /// Hold programs that do nothing on the hooks netlab uses, until SIGINT (a helper of
    /// `bench`: the floor netlab's costs are measured against).
    #[command(hide = true)]
    BenchEmpty {
        /// Interface whose tcx ingress and egress get the empty tc program (repeatable).
        #[arg(long = "iface", required = true)]
        ifaces: Vec<String>,
        /// Also an empty program on the `kfree_skb` raw tracepoint.
        #[arg(long)]
        drop_tp: bool,
        /// Before the programs already on each hook (it runs first), not after them.
        #[arg(long)]
        first: bool,
    },
    /// Send ICMP echo requests at a rate for a while (a helper of `bench`).
    #[command(hide = true)]
    BenchIcmpSend {
        /// Destination; only the bench's subnet 10.200.0.0/24 is accepted.
        #[arg(long)]
        dst: std::net::Ipv4Addr,
        /// How long to send, in seconds (at most 60).
        #[arg(long)]
        secs: f64,
        /// Echo requests per second (0: as fast as possible).
        #[arg(long, default_value_t = 0)]
        pps: u64,
    },
    /// Count the UDP datagrams arriving on a port (a helper of `bench`).
    #[command(hide = true)]
    BenchUdpRecv {
        #[arg(long, default_value_t = 5001)]
        port: u16,
        /// Longest time to wait, in seconds; it ends earlier once the datagrams stop.
        #[arg(long)]
        secs: f64,
        /// Read nothing: the kernel drops every datagram once the socket buffer is full.
        #[arg(long)]
        hold: bool,
    },
    /// Run the cargo-fuzz targets of fuzz/ (decode, event) with nightly, installing
    /// cargo-fuzz if missing.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = fuzz::DEFAULT_SECS, value_parser = clap::value_parser!(u32).range(1..))]
        secs: u32,
    },
    /// Boot Debian's 5.10, 6.1 and 6.12 kernels under qemu (TCG) and run netlab's kernel
    /// scenarios in each: load, count, kinds, drop, btf, daemon, cleanup.
    Vmtest {
        /// Which kernel to boot.
        #[arg(long, default_value = "all", value_parser = vmtest::KERNEL_CHOICES)]
        kernel: String,
        /// Run only this scenario (repeatable).
        #[arg(long = "scenario", value_name = "NAME", value_parser = vmtest::SCENARIOS)]
        scenarios: Vec<String>,
        /// Seconds one kernel's boot and scenarios may take before qemu is killed.
        #[arg(long, value_name = "SECS", default_value_t = vmtest::DEFAULT_TIMEOUT_SECS,
              value_parser = clap::value_parser!(u64).range(10..))]
        timeout: u64,
    },
    /// Make sure a Docker engine answers, starting dockerd if needed.
    #[command(hide = true)]
    DockerUp,
    /// The firewall tests (tests/drops.rs) on another engine run beside the host's (whose
    /// dockerd is stopped meanwhile and started again after); a step of `test`.
    #[command(hide = true)]
    FirewallTests {
        #[arg(long, value_enum)]
        engine: engines::Engine,
    },
    /// Build netlab's OCI image locally: a static binary and the firewall tools it runs,
    /// `FROM scratch`, tagged netlab:VERSION and netlab:latest.
    Image {
        /// Rebuild every layer (`docker build --no-cache`).
        #[arg(long)]
        no_cache: bool,
    },
    /// Make sure a Docker engine answers and the lab's images exist, building those missing.
    #[command(hide = true)]
    Images {
        /// Rebuild them even if they exist.
        #[arg(long)]
        rebuild: bool,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    netlab_tests::host::cmd::announce_commands("xtask");
    cmd::put_cargo_bin_on_path();
    match cli.command {
        Command::Setup { engine } => setup::run_with(engine).map(drop),
        Command::Build { release } => {
            let bin = workspace::build_daemon(release)?;
            println!("{}", bin.display());
            Ok(())
        }
        Command::Test { filter } => test_all::run(&filter),
        Command::Lab {
            down: true,
            netns: true,
            ..
        } => netns_lab::down(),
        Command::Lab { down: true, .. } => lab::down(),
        Command::Lab {
            duration,
            netns: true,
            ..
        } => netns_lab::run(duration),
        Command::Lab {
            duration,
            rebuild,
            engine,
            isolate,
            ..
        } => lab::run(duration, rebuild, engine, isolate),
        Command::Bench { quick, json, only } => bench::run(quick, json, &only),
        Command::BenchUdpSend {
            dst,
            port,
            secs,
            pps,
        } => bench::udp_send(dst, port, secs, pps),
        Command::BenchEmpty {
            ifaces,
            drop_tp,
            first,
        } => bench::empty_run(&ifaces, drop_tp, first),
        Command::BenchIcmpSend { dst, secs, pps } => bench::icmp_send(dst, secs, pps),
        Command::BenchUdpRecv { port, secs, hold } => bench::udp_recv(port, secs, hold),
        Command::Fuzz { secs } => fuzz::run(secs),
        Command::Vmtest {
            kernel,
            scenarios,
            timeout,
        } => vmtest::run(&kernel, &scenarios, std::time::Duration::from_secs(timeout)),
        Command::DockerUp => docker::ensure_docker(),
        Command::Image { no_cache } => image::run(no_cache),
        Command::FirewallTests { engine } => {
            let netlab = workspace::build_daemon(true)?;
            let r = test_all::firewall_tests_on(engine, &netlab);
            docker::ensure_docker()?;
            r
        }
        Command::Images { rebuild } => {
            docker::ensure_docker()?;
            images::ensure_images(rebuild)
        }
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
    fn lab_defaults_to_the_docker_lab_for_two_minutes() {
        let cli = Cli::try_parse_from(["xtask", "lab"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Lab {
                duration: 120,
                netns: false,
                rebuild: false,
                down: false,
                engine: lab::LabEngine::Docker,
                isolate: false,
            }
        ));
    }

    #[test]
    fn lab_runs_on_podman_isolated_or_not() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(["xtask", "lab"].iter().chain(args)).map(|cli| cli.command)
        };
        assert!(matches!(
            parse(&["--engine", "podman", "--isolate"]),
            Ok(Command::Lab {
                engine: lab::LabEngine::Podman,
                isolate: true,
                ..
            })
        ));
        assert!(matches!(
            parse(&["--engine", "podman", "--down"]),
            Ok(Command::Lab {
                engine: lab::LabEngine::Podman,
                down: true,
                ..
            })
        ));
        assert!(parse(&["--engine", "podman", "--netns"]).is_err());
        assert!(parse(&["--isolate", "--down"]).is_err());
        assert!(parse(&["--engine", "lxc"]).is_err());
    }

    #[test]
    fn lab_flags_combine() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(["xtask", "lab"].iter().chain(args)).map(|cli| cli.command)
        };
        assert!(matches!(
            parse(&["--netns", "--duration", "5"]),
            Ok(Command::Lab {
                duration: 5,
                netns: true,
                ..
            })
        ));
        assert!(matches!(
            parse(&["--netns", "--down"]),
            Ok(Command::Lab {
                netns: true,
                down: true,
                ..
            })
        ));
        assert!(matches!(
            parse(&["--rebuild"]),
            Ok(Command::Lab { rebuild: true, .. })
        ));
        assert!(parse(&["--netns", "--rebuild"]).is_err());
        assert!(parse(&["--down", "--rebuild"]).is_err());
    }

    #[test]
    fn image_builds_netlab_with_or_without_the_cache() {
        use clap::CommandFactory;
        let cli = Cli::try_parse_from(["xtask", "image"]).expect("parses");
        assert!(matches!(cli.command, Command::Image { no_cache: false }));
        let cli = Cli::try_parse_from(["xtask", "image", "--no-cache"]).expect("parses");
        assert!(matches!(cli.command, Command::Image { no_cache: true }));
        let help = Cli::command().render_help().to_string();
        assert!(help.contains("image "), "{help}");
    }

    #[test]
    fn images_is_a_hidden_subcommand() {
        use clap::CommandFactory;
        let cli = Cli::try_parse_from(["xtask", "images", "--rebuild"]).expect("parses");
        assert!(matches!(cli.command, Command::Images { rebuild: true }));
        let cli = Cli::try_parse_from(["xtask", "images"]).expect("parses");
        assert!(matches!(cli.command, Command::Images { rebuild: false }));
        let help = Cli::command().render_help().to_string();
        assert!(!help.contains("images"), "{help}");
    }

    #[test]
    fn bench_flags_and_hidden_helpers() {
        use clap::CommandFactory;
        let cli = Cli::try_parse_from(["xtask", "bench", "--quick", "--json"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Bench {
                quick: true,
                json: true,
                ref only,
            } if only.is_empty()
        ));
        let cli =
            Cli::try_parse_from(["xtask", "bench", "--only", "memory,scale", "--only", "pps"])
                .expect("parses");
        assert!(matches!(
            cli.command,
            Command::Bench { ref only, .. }
                if only == &[bench::Part::Memory, bench::Part::Scale, bench::Part::Pps]
        ));
        assert!(Cli::try_parse_from(["xtask", "bench", "--only", "everything"]).is_err());
        let cli = Cli::try_parse_from([
            "xtask",
            "bench-udp-send",
            "--dst",
            "10.200.0.2",
            "--secs",
            "3",
        ])
        .expect("parses");
        assert!(matches!(
            cli.command,
            Command::BenchUdpSend { port: 5001, .. }
        ));
        assert!(Cli::try_parse_from(["xtask", "bench-udp-recv"]).is_err());
        let cli = Cli::try_parse_from([
            "xtask",
            "bench-icmp-send",
            "--dst",
            "10.200.0.2",
            "--secs",
            "3",
            "--pps",
            "1000",
        ])
        .expect("parses");
        assert!(matches!(
            cli.command,
            Command::BenchIcmpSend { pps: 1000, .. }
        ));
        let help = Cli::command().render_help().to_string();
        assert!(help.contains("bench"), "{help}");
        assert!(!help.contains("bench-udp"), "{help}");
        assert!(!help.contains("bench-icmp"), "{help}");
    }

    #[test]
    fn bad_input_is_rejected() {
        assert!(Cli::try_parse_from(["xtask", "frobnicate"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "build", "--relase"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "lab", "--duration", "0"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "lab", "--down", "--duration", "5"]).is_err());
    }
}

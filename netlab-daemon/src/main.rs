use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Watch ICMP, ARP, ICMPv6 and neighbour discovery on bridges and veths, with eBPF.
#[derive(Debug, Parser)]
#[command(name = "netlab", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stream sampled packets live and print exact counters on exit.
    Watch(netlab::cmd::watch::WatchArgs),
    /// Show Docker's networks, containers, their veths and what `watch` observes.
    Topology(netlab::cmd::topology::TopologyArgs),
    /// Ping DST from inside SRC's namespace and explain why it is (not) reachable.
    /// Exit code 0: reachable, 1: not reachable, 2: error.
    Diagnose(netlab::cmd::diagnose::DiagnoseArgs),
    /// Run as a service: attach once, keep counting across restarts, serve the API.
    Daemon(netlab::cmd::daemon::DaemonArgs),
    /// Print the exact counters of the running daemon.
    Counters(netlab::cmd::counters::CountersArgs),
    /// Write sampled ICMP/ARP frames to a pcapng file, labelled with containers.
    Capture(netlab::cmd::watch::CaptureArgs),
}

fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(|buf, record| {
            use std::io::Write as _;
            writeln!(
                buf,
                "netlab: {}: {}",
                record.level().as_str().to_lowercase(),
                record.args()
            )
        })
        .target(env_logger::Target::Stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One line: clap's own first line, without its usage and hint lines.
            let text = e.to_string();
            let line = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("netlab: {}", line.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    init_logging();
    // The daemon drops capabilities while the process is still single-threaded.
    let prepared = match &cli.command {
        Command::Daemon(args) => match netlab::cmd::daemon::prepare(args) {
            Ok(Some(p)) => Some(p),
            Ok(None) => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("netlab: error: {e:#}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netlab: error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Watch(args) => netlab::cmd::watch::run(args).await.map(|()| true),
            Command::Topology(args) => netlab::cmd::topology::run(args).await.map(|()| true),
            Command::Diagnose(args) => netlab::cmd::diagnose::run(args).await,
            Command::Daemon(args) => match prepared {
                Some(p) => netlab::cmd::daemon::run(args, p).await.map(|()| true),
                None => Ok(true),
            },
            Command::Counters(args) => netlab::cmd::counters::run(args).await.map(|()| true),
            Command::Capture(args) => netlab::cmd::watch::capture(args).await.map(|()| true),
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("netlab: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

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

/// clap's error message in one line, with everything it says: the first line, what it
/// lists under it (the missing arguments, the possible values), its tip and the usage;
/// without its blank lines and "For more information, try '--help'".
fn one_line(message: &str) -> String {
    let mut lines = message.lines();
    let first = lines.next().unwrap_or("invalid arguments");
    let mut line = first.trim_start_matches("error: ").trim_end().to_owned();
    let mut listed: Vec<&str> = Vec::new();
    let mut rest: Vec<String> = Vec::new();
    let mut in_list = true;
    for l in lines {
        let t = l.trim();
        if t.starts_with("For more information") {
            continue;
        }
        if t.is_empty() {
            in_list = false;
        } else if let Some(usage) = t.strip_prefix("Usage: ") {
            rest.push(format!("usage: {usage}"));
        } else if in_list && !t.starts_with("tip: ") {
            listed.push(t);
        } else if let Some(more) = rest.last_mut().filter(|_| l.starts_with("       ")) {
            // A usage of several lines.
            more.push_str(" | ");
            more.push_str(t);
        } else {
            rest.push(t.to_owned());
        }
    }
    if !listed.is_empty() {
        line.push(' ');
        line.push_str(&listed.join(", "));
    }
    for r in rest {
        line.push_str("; ");
        line.push_str(&r);
    }
    line
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
            eprintln!("netlab: {}", one_line(&e.to_string()));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The one line netlab prints for `args`, which clap must refuse.
    fn refused(args: &[&str]) -> String {
        let e = Cli::try_parse_from(std::iter::once("netlab").chain(args.iter().copied()))
            .expect_err("clap refuses these arguments");
        one_line(&e.to_string())
    }

    #[test]
    fn a_missing_argument_is_named_with_the_usage() {
        assert_eq!(
            refused(&["diagnose", "Alpha"]),
            "the following required arguments were not provided: <DST>; \
             usage: netlab diagnose <SRC> <DST>"
        );
        assert_eq!(
            refused(&["capture"]),
            "the following required arguments were not provided: --write <FILE.pcapng>; \
             usage: netlab capture --write <FILE.pcapng>"
        );
    }

    #[test]
    fn possible_values_tips_and_usages_stay_on_the_line() {
        let line = refused(&["watch", "--attach", "foo"]);
        assert!(
            line.starts_with("invalid value 'foo' for '--attach <ATTACH>' [possible values: "),
            "{line}"
        );
        let line = refused(&["watch", "--jsno"]);
        assert!(
            line.starts_with("unexpected argument '--jsno' found; tip: "),
            "{line}"
        );
        assert!(line.contains("'--json'"), "{line}");
        assert!(line.ends_with("; usage: netlab watch --json"), "{line}");
        assert_eq!(
            refused(&["watch", "--sample", "0"]),
            "invalid value '0' for '--sample <N>': 0 is not in 1..=4294967295"
        );
    }

    #[test]
    fn every_refusal_is_one_line() {
        for args in [
            &["frobnicate"][..],
            &["watch", "--count"],
            &["diagnose"],
            &["daemon", "--listen"],
            &["topology", "extra"],
        ] {
            let line = refused(args);
            assert!(
                !line.contains('\n') && !line.is_empty(),
                "{args:?}: {line:?}"
            );
            assert!(!line.contains("For more information"), "{args:?}: {line}");
        }
    }
}

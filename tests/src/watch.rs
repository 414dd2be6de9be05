//! [`Watch`]: a running `netlab watch`, and the [`Output`] it leaves when it ends.

use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::host::netns::in_ns;
use crate::host::process::{Background, Finished};

/// netlab prints this on stderr once every hook is attached.
pub const READY_MARKER: &str = "watching ";
/// How long netlab may take to load and attach.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long netlab may take to detach and exit after SIGINT.
pub use crate::host::process::EXIT_TIMEOUT;

/// A `netlab watch` running in a network namespace; dropping it stops the process (SIGTERM,
/// then SIGKILL) if it is still running.
#[derive(Debug)]
pub struct Watch {
    process: Background,
}

/// What a finished `netlab watch --json` printed.
#[derive(Debug)]
pub struct Output {
    /// Every stdout line that is a packet event (a JSON object with a `"kind"` key).
    pub events: Vec<Value>,
    /// The last stdout line: `{"counters":[...],"lost_events":N,...}`.
    pub summary: Value,
    /// All of stdout, as printed.
    pub stdout: String,
    /// All of stderr, as printed.
    pub stderr: String,
    /// How the process ended.
    pub status: ExitStatus,
}

impl Watch {
    /// Starts `ip netns exec <ns> $NETLAB_BIN watch <args...>` and waits until it is watching.
    pub fn start(ns: &str, args: &[&str]) -> Result<Self> {
        let bin = crate::netlab_env().map_err(anyhow::Error::msg)?;
        Self::start_bin(&bin, ns, args, READY_TIMEOUT)
    }

    /// Starts `ip netns exec <ns> <bin> watch <args...>` and waits up to `ready_timeout` for
    /// a stderr line containing [`READY_MARKER`]; fails with the stderr so far if the process
    /// exits or stays silent.
    pub fn start_bin(bin: &Path, ns: &str, args: &[&str], ready_timeout: Duration) -> Result<Self> {
        let mut command = in_ns(ns, bin);
        command.arg("watch").args(args);
        let process = Background::start(command, READY_MARKER, ready_timeout)?;
        Ok(Self { process })
    }

    /// Process id of netlab (`ip netns exec` execs it in place).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Whether the process has not exited yet.
    pub fn is_running(&mut self) -> Result<bool> {
        self.process.is_running()
    }

    /// Everything netlab wrote on stderr so far.
    pub fn stderr_so_far(&self) -> String {
        self.process.stderr_so_far()
    }

    /// Waits `settle` for the last packets to be reported, checks that netlab still runs,
    /// stops it with SIGINT and checks that it exited with status 0.
    pub fn stop_after(mut self, settle: Duration) -> Result<Output> {
        std::thread::sleep(settle);
        anyhow::ensure!(
            self.is_running()?,
            "netlab exited during the test; stderr:\n{}",
            self.stderr_so_far()
        );
        let output = self.stop()?;
        anyhow::ensure!(
            output.status.success(),
            "netlab exited with {} after SIGINT; stderr:\n{}",
            output.status,
            output.stderr
        );
        Ok(output)
    }

    /// Sends SIGINT (netlab detaches and prints its final counters) and collects the output.
    pub fn stop(self) -> Result<Output> {
        Self::parse(self.process.stop(libc::SIGINT)?)
    }

    /// Waits for netlab to exit by itself (e.g. `--count`), then collects the output.
    pub fn wait(self, timeout: Duration) -> Result<Output> {
        Self::parse(self.process.wait(timeout)?)
    }

    fn parse(finished: Finished) -> Result<Output> {
        let Finished {
            status,
            stdout,
            stderr,
        } = finished;
        parse_output(stdout, stderr, status).context("output of `netlab watch`")
    }
}

/// Splits `netlab watch --json` stdout into events and the final summary.
pub fn parse_output(stdout: String, stderr: String, status: ExitStatus) -> Result<Output> {
    let mut lines = Vec::new();
    for (number, line) in stdout.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).with_context(|| {
            format!(
                "stdout line {} is not JSON: {line}\n--- stderr:\n{stderr}",
                number + 1
            )
        })?;
        lines.push(value);
    }
    let Some(summary) = lines.pop() else {
        bail!("no summary line on stdout ({status})\n--- stderr:\n{stderr}");
    };
    if !summary["counters"].is_array() {
        bail!("last stdout line has no \"counters\" array: {summary}\n--- stderr:\n{stderr}");
    }
    let events = lines
        .into_iter()
        .filter(|line| line.get("kind").is_some())
        .collect();
    Ok(Output {
        events,
        summary,
        stdout,
        stderr,
        status,
    })
}

/// Packets counted for (`iface`, `direction`, `kind`) in a summary; 0 when absent.
pub fn count(summary: &Value, iface: &str, direction: &str, kind: &str) -> u64 {
    counters(summary)
        .filter(|counter| {
            counter["iface"] == iface
                && counter["direction"] == direction
                && counter["kind"] == kind
        })
        .map(packets)
        .sum()
}

/// Sum of every counter in a summary.
pub fn total(summary: &Value) -> u64 {
    counters(summary).map(packets).sum()
}

/// The summary's `lost_events` (0 when absent).
pub fn lost_events(summary: &Value) -> u64 {
    summary["lost_events"].as_u64().unwrap_or(0)
}

fn counters(summary: &Value) -> impl Iterator<Item = &Value> {
    summary["counters"].as_array().into_iter().flatten()
}

fn packets(counter: &Value) -> u64 {
    counter["packets"].as_u64().unwrap_or(0)
}

impl Output {
    /// Events whose `iface.name`, `direction` and `kind` match.
    pub fn events_at<'a>(
        &'a self,
        iface: &'a str,
        direction: &'a str,
        kind: &'a str,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.events.iter().filter(move |event| {
            event["iface"]["name"] == iface
                && event["direction"] == direction
                && event["kind"] == kind
        })
    }

    /// Counter lines of the summary, one per line, for assertion messages.
    pub fn counters_text(&self) -> String {
        counters(&self.summary)
            .map(|counter| counter.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[test]
    fn parse_splits_events_and_summary() -> Result<()> {
        let stdout = concat!(
            r#"{"kind":"icmp-echo-request","iface":{"name":"va","ifindex":3},"direction":"ingress"}"#,
            "\n",
            r#"{"kind":"arp-request","iface":{"name":"va","ifindex":3},"direction":"ingress"}"#,
            "\n",
            r#"{"counters":[{"iface":"va","ifindex":3,"direction":"ingress","kind":"icmp-echo-request","packets":5},"#,
            r#"{"iface":"vb","ifindex":4,"direction":"egress","kind":"icmp-echo-request","packets":4}],"lost_events":2}"#,
            "\n"
        );
        let output = parse_output(stdout.to_owned(), String::new(), ExitStatus::from_raw(0))?;
        assert_eq!(output.events.len(), 2);
        assert_eq!(
            count(&output.summary, "va", "ingress", "icmp-echo-request"),
            5
        );
        assert_eq!(
            count(&output.summary, "vb", "egress", "icmp-echo-request"),
            4
        );
        assert_eq!(
            count(&output.summary, "va", "egress", "icmp-echo-request"),
            0
        );
        assert_eq!(count(&output.summary, "va", "ingress", "arp-request"), 0);
        assert_eq!(total(&output.summary), 9);
        assert_eq!(lost_events(&output.summary), 2);
        assert_eq!(output.events_at("va", "ingress", "arp-request").count(), 1);
        Ok(())
    }

    #[test]
    fn parse_rejects_missing_summary_and_garbage() {
        let ok = ExitStatus::from_raw(0);
        assert!(parse_output(String::new(), String::new(), ok).is_err());
        assert!(parse_output("{\"kind\":\"x\"}\n".into(), String::new(), ok).is_err());
        assert!(parse_output("not json\n{\"counters\":[]}\n".into(), String::new(), ok).is_err());
    }
}

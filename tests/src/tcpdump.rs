//! [`Tcpdump`]: tcpdump running beside netlab, as an independent witness of what crossed an
//! interface, and as what people run on a host where netlab runs.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

use crate::host::netns::in_ns;
use crate::host::process::{stop_child, wait_deadline};

/// How long tcpdump may take to start capturing.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `tcpdump -nn -tt -l -q -i IFACE -Q DIRECTION FILTER` (each line starts with the
/// packet's time in seconds since the epoch, see [`packet_time`]) (in a network namespace, or on
/// the host); killed on drop if still running.
pub struct Tcpdump {
    child: Child,
    /// Lines of stdout (one per packet with `-q`), read on a thread of their own.
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Tcpdump {
    /// Starts capturing on `iface` of namespace `ns` (`None`: the test's own namespace),
    /// packets in `direction` (`"in"`, `"out"`, or `"inout"`) matching `filter`; returns once
    /// tcpdump says it listens.
    pub fn start(ns: Option<&str>, iface: &str, direction: &str, filter: &str) -> Result<Self> {
        let command = match ns {
            Some(ns) => in_ns(ns, "tcpdump"),
            None => Command::new("tcpdump"),
        };
        Self::start_with(command, iface, direction, filter)
    }

    /// Like [`Tcpdump::start`], with `command` ending in `tcpdump` (e.g. run through
    /// `nsenter` into a namespace `ip netns` does not list).
    pub fn start_with(
        mut command: Command,
        iface: &str,
        direction: &str,
        filter: &str,
    ) -> Result<Self> {
        command
            .args(["-nn", "-tt", "-l", "-q", "-i", iface, "-Q", direction])
            .args(filter.split_whitespace())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().context("spawning tcpdump")?;
        let stdout = child.stdout.take().context("tcpdump stdout")?;
        let errors = child.stderr.take().context("tcpdump stderr")?;
        let (line_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.trim().is_empty() {
                    continue;
                }
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (err_tx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(errors).lines().map_while(Result::ok) {
                if err_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut dump = Self {
            child,
            lines,
            stderr,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let mut said = Vec::new();
        loop {
            match dump.stderr.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.contains("listening on") => return Ok(dump),
                Ok(line) => said.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("tcpdump on {iface} exited early: {}", said.join("; "))
                }
            }
            if Instant::now() >= deadline || dump.child.try_wait()?.is_some() {
                bail!(
                    "tcpdump on {iface} did not start capturing: {}",
                    said.join("; ")
                );
            }
        }
    }

    /// Packets printed so far (one line each).
    pub fn lines_so_far(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// Waits `settle` for the last packets, stops tcpdump with SIGINT and returns the
    /// packet lines it printed (those [`Tcpdump::lines_so_far`] has not returned yet).
    pub fn stop_after(mut self, settle: Duration) -> Result<Vec<String>> {
        std::thread::sleep(settle);
        if stop_child(&mut self.child, libc::SIGINT, Duration::from_secs(10))?.is_none() {
            bail!("tcpdump did not stop after SIGINT");
        }
        let mut out = Vec::new();
        // The reader thread ends when tcpdump's stdout closes.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            out.push(line);
        }
        Ok(out)
    }
}

/// The time a packet line of [`Tcpdump`] was captured at.
pub fn packet_time(line: &str) -> Option<std::time::SystemTime> {
    let secs: f64 = line.split_whitespace().next()?.parse().ok()?;
    Some(std::time::UNIX_EPOCH + Duration::from_secs_f64(secs))
}

/// The packet lines captured between `from` and `to`.
pub fn between(
    lines: &[String],
    from: std::time::SystemTime,
    to: std::time::SystemTime,
) -> Vec<&String> {
    lines
        .iter()
        .filter(|l| packet_time(l).is_some_and(|t| t >= from && t <= to))
        .collect()
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        // Killed at once: what it captured no longer matters.
        let _ = wait_deadline(&mut self.child, Duration::ZERO);
    }
}

//! Fixtures for `netlab daemon` and for any netlab invocation that must not meet someone
//! else's daemon: per-test API sockets and pin directories ([`DaemonPaths`]), a running
//! daemon or capture ([`Background`]), a tiny HTTP/1.0 client for the API ([`http_get`],
//! [`EventStream`], [`StalledClient`]) and a parser for the Prometheus text format
//! ([`parse_metrics`]).
//!
//! `netlab watch`, `counters` and `topology` talk to whatever daemon answers on
//! `$NETLAB_SOCKET` (default `/run/netlab/netlab.sock`), so every netlab command a test
//! runs gets `NETLAB_SOCKET` pointing at a path of its own ([`netlab_command`]): either the
//! socket of the test's own daemon, or a path where nothing ever listens.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use crate::host::cmd::{display, run_with_stdin, run_with_timeout, run_within, stdout_of};
use crate::host::netns::unique_name;
pub use crate::host::process::{Background, Finished, EXIT_TIMEOUT};

/// The environment variable netlab's clients read the daemon's socket from.
pub const SOCKET_ENV: &str = "NETLAB_SOCKET";
/// netlab daemon prints this on stderr once it is attached and serves its API.
pub const DAEMON_READY_MARKER: &str = "daemon: watching ";
/// `netlab watch` and `netlab capture` print this on stderr once they watch.
pub const WATCH_READY_MARKER: &str = crate::watch::READY_MARKER;
/// How long netlab may take to load, attach and bind.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one API request may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of a netlab command that runs to completion (`diagnose`, `topology`, ...).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Where bpffs is mounted.
pub const BPFFS: &str = "/sys/fs/bpf";

/// `<bin>` with `NETLAB_SOCKET=<socket>` in its environment.
pub fn netlab_command(bin: &Path, socket: &Path) -> Command {
    let mut command = Command::new(bin);
    command.env(SOCKET_ENV, socket);
    command
}

/// A socket path no daemon listens on (`/tmp/nlt-nosock-<pid>-<n>.sock`): netlab commands
/// run with it never talk to a daemon someone else started.
pub fn unused_socket() -> PathBuf {
    std::env::temp_dir().join(format!("{}.sock", unique_name("nosock")))
}

/// Runs `command` (bounded by [`COMMAND_TIMEOUT`]) and parses its stdout as one JSON value;
/// fails with stdout and stderr on a non-zero exit.
pub fn command_json(command: Command) -> Result<Value> {
    let shown = display(&command);
    let stdout = stdout_of(&shown, &run_with_timeout(command, COMMAND_TIMEOUT)?)?;
    serde_json::from_str(&stdout)
        .with_context(|| format!("parsing the output of `{shown}`: {stdout}"))
}

/// `netlab topology --json` with `NETLAB_SOCKET=<socket>`.
pub fn topology_json(bin: &Path, socket: &Path) -> Result<Value> {
    let mut command = netlab_command(bin, socket);
    command.args(["topology", "--json"]);
    command_json(command)
}

/// A daemon's API socket and pin directory, unique to the test; dropping it runs
/// `netlab daemon --cleanup --pin-dir <dir>` (which detaches whatever the daemon left
/// pinned) and removes what is left of both. Declare it before the [`Background`] daemon
/// using it, so the daemon is stopped first.
#[derive(Debug)]
pub struct DaemonPaths {
    bin: PathBuf,
    /// `/tmp/nlt-sock-<pid>-<n>.sock`.
    pub socket: PathBuf,
    /// `/sys/fs/bpf/nlt-pin-<pid>-<n>`.
    pub pin_dir: PathBuf,
}

impl DaemonPaths {
    /// Fresh paths for a daemon of `bin`; nothing is created yet.
    pub fn new(bin: &Path) -> Result<Self> {
        ensure!(
            Path::new(BPFFS).is_dir(),
            "{BPFFS} does not exist: bpffs is not mounted"
        );
        let paths = Self {
            bin: bin.to_owned(),
            socket: std::env::temp_dir().join(format!("{}.sock", unique_name("sock"))),
            pin_dir: Path::new(BPFFS).join(unique_name("pin")),
        };
        ensure!(
            !paths.socket.exists() && !paths.pin_dir.exists(),
            "{} or {} exists already",
            paths.socket.display(),
            paths.pin_dir.display()
        );
        Ok(paths)
    }

    /// `netlab` with `NETLAB_SOCKET` set to this socket.
    pub fn netlab(&self) -> Command {
        netlab_command(&self.bin, &self.socket)
    }

    /// Starts `netlab daemon --socket <socket> --pin-dir <dir> <extra...>` and waits until
    /// it serves its API.
    pub fn start(&self, extra: &[&str]) -> Result<Background> {
        let mut command = self.netlab();
        command
            .arg("daemon")
            .arg("--socket")
            .arg(&self.socket)
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .args(extra);
        let daemon = Background::start(command, DAEMON_READY_MARKER, READY_TIMEOUT)?;
        ensure!(
            self.socket.exists(),
            "the daemon is ready but {} does not exist",
            self.socket.display()
        );
        Ok(daemon)
    }

    /// `netlab daemon --cleanup --pin-dir <dir>`, failing unless it exits 0.
    pub fn cleanup(&self) -> Result<()> {
        let mut command = self.netlab();
        command
            .args(["daemon", "--cleanup", "--pin-dir"])
            .arg(&self.pin_dir);
        run_within(command, COMMAND_TIMEOUT).map(drop)
    }

    /// Every file and directory under the pin directory (empty if it does not exist).
    pub fn pinned(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut dirs = vec![self.pin_dir.clone()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path.clone());
                }
                found.push(path);
            }
        }
        found.sort();
        found
    }
}

impl Drop for DaemonPaths {
    fn drop(&mut self) {
        if self.pin_dir.exists() {
            if let Err(err) = self.cleanup() {
                eprintln!("netlab-tests: {err:#}");
            }
            // Unlinking a pin is what --cleanup does; catch whatever it left.
            if self.pin_dir.exists() {
                if let Err(err) = std::fs::remove_dir_all(&self.pin_dir) {
                    eprintln!(
                        "netlab-tests: cannot remove {}: {err}",
                        self.pin_dir.display()
                    );
                }
            }
        }
        if std::fs::symlink_metadata(&self.socket).is_ok() {
            if let Err(err) = std::fs::remove_file(&self.socket) {
                eprintln!(
                    "netlab-tests: cannot remove {}: {err}",
                    self.socket.display()
                );
            }
        }
    }
}

/// An HTTP response: status code, header block and body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The header lines, as received.
    pub headers: String,
    /// The body, as text.
    pub body: String,
}

impl HttpResponse {
    /// The body as JSON, failing unless the status is 200.
    pub fn json(&self) -> Result<Value> {
        ensure!(
            self.status == 200,
            "HTTP {}: {}",
            self.status,
            self.body.trim()
        );
        serde_json::from_str(&self.body)
            .with_context(|| format!("the body is not JSON: {}", self.body))
    }
}

/// `GET <path>` as HTTP/1.0 on `stream`, read until the server closes.
fn get_on<S: Read + Write>(mut stream: S, path: &str) -> Result<HttpResponse> {
    write!(stream, "GET {path} HTTP/1.0\r\nHost: netlab\r\n\r\n")?;
    stream.flush()?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading the answer to GET {path}"))?;
    parse_response(&raw).with_context(|| format!("the answer to GET {path}"))
}

fn parse_response(raw: &[u8]) -> Result<HttpResponse> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("no end of headers in {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {head:?}"))?;
    Ok(HttpResponse {
        status,
        headers: head.to_owned(),
        body: body.to_owned(),
    })
}

/// `GET <path>` on the daemon's unix socket (bounded by [`HTTP_TIMEOUT`]).
pub fn http_get(socket: &Path, path: &str) -> Result<HttpResponse> {
    let stream = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    get_on(stream, path)
}

/// `GET <path>` on `addr` over TCP (bounded by [`HTTP_TIMEOUT`]).
pub fn tcp_get(addr: std::net::SocketAddr, path: &str) -> Result<HttpResponse> {
    let stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    get_on(stream, path)
}

/// `GET <path>` on the daemon's socket, parsed as JSON (status 200 required).
pub fn get_json(socket: &Path, path: &str) -> Result<Value> {
    http_get(socket, path)?
        .json()
        .with_context(|| format!("GET {path} on {}", socket.display()))
}

/// A loopback TCP port nothing listens on right now.
pub fn free_loopback_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Two different free TCP ports on 127.0.0.1 (both bound at once, so never the same).
pub fn two_free_loopback_ports() -> Result<(u16, u16)> {
    let first = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    let second = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok((first.local_addr()?.port(), second.local_addr()?.port()))
}

/// A client of `/v1/events` that reads every line on a thread.
#[derive(Debug)]
pub struct EventStream {
    stream: UnixStream,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

/// The first line of an NDJSON event stream.
const SUBSCRIBED: &str = r#"{"kind":"subscribed"}"#;

impl EventStream {
    /// `GET <path>` (e.g. `/v1/events?kind=icmp`) as HTTP/1.0 (so the body is the raw
    /// stream, ended by the server closing it); waits for the `{"kind":"subscribed"}` line.
    pub fn open(socket: &Path, path: &str) -> Result<Self> {
        let mut stream = UnixStream::connect(socket)
            .with_context(|| format!("connecting to {}", socket.display()))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: netlab\r\n\r\n")?;
        stream.flush()?;
        stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut status = String::new();
        reader.read_line(&mut status)?;
        ensure!(
            status.split_whitespace().nth(1) == Some("200"),
            "GET {path}: {status:?}"
        );
        loop {
            let mut header = String::new();
            ensure!(reader.read_line(&mut header)? > 0, "GET {path}: no body");
            if header.trim().is_empty() {
                break;
            }
        }
        let mut first = String::new();
        reader.read_line(&mut first)?;
        ensure!(
            first.trim() == SUBSCRIBED,
            "GET {path}: first line {first:?}, expected {SUBSCRIBED}"
        );
        // From now on the reader blocks until the server writes or closes.
        stream.set_read_timeout(None)?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let thread = std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { break };
                if let Ok(mut all) = sink.lock() {
                    all.push(line);
                }
            }
        });
        Ok(Self {
            stream,
            lines,
            reader: Some(thread),
        })
    }

    /// The lines received so far, parsed (a line that is not JSON is an error).
    pub fn events(&self) -> Result<Vec<Value>> {
        let lines = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
        lines
            .iter()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).with_context(|| format!("event line {l:?}")))
            .collect()
    }

    /// Polls [`EventStream::events`] until `done` holds for them or `timeout` passes;
    /// returns the last events either way.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[Value]) -> bool,
    ) -> Result<Vec<Value>> {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.events()?;
            if done(&events) || Instant::now() >= deadline {
                return Ok(events);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// A client that asks for `/v1/events` and then never reads a byte, for as long as it
/// lives.
#[derive(Debug)]
pub struct StalledClient {
    stream: UnixStream,
}

impl StalledClient {
    /// Connects, sends `GET <path>` and stops there.
    pub fn open(socket: &Path, path: &str) -> Result<Self> {
        let mut stream = UnixStream::connect(socket)
            .with_context(|| format!("connecting to {}", socket.display()))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: netlab\r\n\r\n")?;
        stream.flush()?;
        Ok(Self { stream })
    }

    /// Bytes the daemon has written that this client has not read (`FIONREAD`): how much of
    /// the stream the kernel holds for it.
    pub fn unread_bytes(&self) -> Result<usize> {
        use std::os::fd::AsRawFd;
        let mut unread: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int through the pointer, which points at `unread`;
        // the fd is open for as long as `self.stream` lives.
        let rc = unsafe { libc::ioctl(self.stream.as_raw_fd(), libc::FIONREAD, &mut unread) };
        ensure!(
            rc == 0,
            "FIONREAD on the stalled client: {}",
            std::io::Error::last_os_error()
        );
        Ok(usize::try_from(unread).unwrap_or(0))
    }
}

/// Runs `command` with stdin read from `input`, bounded by `timeout`; the exit status is
/// returned, not checked.
pub fn run_with_input(
    command: Command,
    input: &Path,
    timeout: Duration,
) -> Result<std::process::Output> {
    let file =
        std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    run_with_stdin(command, Stdio::from(file), timeout)
}

/// One sample of a Prometheus text page.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name (with `_bucket`, `_sum`, ... suffixes as written).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// Whether every `(label, value)` of `want` is among its labels.
    pub fn has(&self, want: &[(&str, &str)]) -> bool {
        want.iter()
            .all(|(k, v)| self.labels.get(*k).map(String::as_str) == Some(*v))
    }
}

/// Parses the samples of a Prometheus text exposition page (comments skipped).
pub fn parse_metrics(text: &str) -> Result<Vec<Sample>> {
    let mut samples = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        samples.push(parse_sample(line).with_context(|| format!("line {}: {line}", number + 1))?);
    }
    Ok(samples)
}

fn parse_sample(line: &str) -> Result<Sample> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .context("no value")?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        let end = loop {
            // Skip separators.
            while let Some(&(_, c)) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    chars.next();
                } else {
                    break;
                }
            }
            let Some(&(start, c)) = chars.peek() else {
                bail!("unterminated label set");
            };
            if c == '}' {
                break start + 1;
            }
            let eq = inner[start..].find('=').context("label without '='")? + start;
            let key = inner[start..eq].trim().to_owned();
            while chars.peek().is_some_and(|&(i, _)| i <= eq) {
                chars.next();
            }
            ensure!(
                chars.next().map(|(_, c)| c) == Some('"'),
                "label {key} is not quoted"
            );
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => bail!("unterminated escape"),
                    },
                    Some((_, '"')) => break,
                    Some((_, c)) => value.push(c),
                    None => bail!("unterminated value of {key}"),
                }
            }
            labels.insert(key, value);
        };
        rest = &inner[end..];
    }
    let value_text = rest
        .split_whitespace()
        .next()
        .context("no value after the labels")?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().with_context(|| format!("value {v:?}"))?,
    };
    Ok(Sample {
        name,
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_parsed() -> Result<()> {
        let page = concat!(
            "# HELP netlab_packets_total Packets.\n",
            "# TYPE netlab_packets_total counter\n",
            "netlab_packets_total{container=\"a\\\"b\",network=\"n,1\",kind=\"x\"} 7\n",
            "netlab_attached_interfaces 3\n",
            "netlab_rtt_bucket{le=\"+Inf\"} 2 1700000000\n",
            "\n"
        );
        let samples = parse_metrics(page)?;
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].name, "netlab_packets_total");
        assert!(samples[0].has(&[("container", "a\"b"), ("network", "n,1"), ("kind", "x")]));
        assert!(!samples[0].has(&[("container", "a")]));
        assert_eq!(samples[0].value, 7.0);
        assert_eq!(samples[1].name, "netlab_attached_interfaces");
        assert!(samples[1].labels.is_empty());
        assert_eq!(samples[2].labels["le"], "+Inf");
        assert!(parse_metrics("x{a=\"1\" 2\n").is_err());
        assert!(parse_metrics("x{a=1} 2\n").is_err());
        assert!(parse_metrics("x\n").is_err());
        Ok(())
    }

    #[test]
    fn responses_are_split() -> Result<()> {
        let r = parse_response(b"HTTP/1.1 200 OK\r\ncontent-type: a\r\n\r\n{\"x\":1}\n")?;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()?["x"], 1);
        let r = parse_response(b"HTTP/1.1 404 Not Found\r\n\r\nnot found\n")?;
        assert_eq!(r.status, 404);
        assert!(r.json().is_err());
        assert!(parse_response(b"garbage").is_err());
        Ok(())
    }
}

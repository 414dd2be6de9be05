//! rotel, an OpenTelemetry collector written in Rust (PyPI `rotel`, Apache-2.0): where
//! `cargo xtask setup` installs its `rotel-agent` (taken out of the pinned wheel, under
//! /opt) and how a test finds and starts it. It receives OTLP over gRPC and HTTP and, with
//! `--debug-log logs,metrics --debug-log-verbosity detailed`, prints every resource,
//! attribute and record it receives, which is what the OTLP tests read.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the agent is unpacked.
pub const DIR: &str = "/opt/netlab-rotel";
/// The wheel the tests were written against (its debug output is what they parse).
pub const REQUIREMENT: &str = "rotel==0.0.1a15";
/// The wheel's tags: its binary is the same for every CPython it is built for.
pub const WHEEL_PYTHON: &str = "3.13";
pub const WHEEL_PLATFORM: &str = "manylinux_2_34_x86_64";
/// The agent embeds CPython for its Python processors and links its shared library.
pub const LIBPYTHON: &str = "libpython3.13.so.1.0";

/// The agent's path.
pub fn agent() -> PathBuf {
    Path::new(DIR).join("rotel/rotel-agent")
}

/// A directory holding [`LIBPYTHON`]: the system's, then pyenv's CPython 3.13 builds.
pub fn libpython_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = ["/usr/lib/x86_64-linux-gnu", "/usr/local/lib", "/usr/lib"]
        .iter()
        .map(PathBuf::from)
        .collect();
    for root in ["/root/.pyenv/versions", "/opt/pyenv/versions"] {
        if let Ok(entries) = std::fs::read_dir(root) {
            let mut found: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("3.13"))
                .map(|e| e.path().join("lib"))
                .collect();
            found.sort();
            dirs.extend(found);
        }
    }
    dirs.into_iter().find(|d| d.join(LIBPYTHON).is_file())
}

/// A command that runs the agent (its library path set), or why it cannot run here.
pub fn command() -> Result<Command, String> {
    let agent = agent();
    if !agent.is_file() {
        return Err(format!(
            "rotel-agent is not installed ({} does not exist; `cargo xtask setup` installs it)",
            agent.display()
        ));
    }
    let lib = libpython_dir().ok_or_else(|| {
        format!("rotel-agent needs {LIBPYTHON} (CPython 3.13's shared library), found nowhere")
    })?;
    let mut c = Command::new(agent);
    c.env("LD_LIBRARY_PATH", lib);
    Ok(c)
}

/// A running `rotel-agent` printing what it receives into a file of the test's; killed
/// (and the file removed) when dropped.
pub struct Collector {
    child: std::process::Child,
    /// Where its stdout and stderr go.
    pub output: PathBuf,
    /// Its OTLP/HTTP port on 127.0.0.1.
    pub http_port: u16,
}

impl Collector {
    /// Starts the agent with OTLP/gRPC on `grpc_port` and OTLP/HTTP on `http_port` (both on
    /// 127.0.0.1), every log record and metric printed, nothing forwarded; waits until it
    /// says it started.
    pub fn start(grpc_port: u16, http_port: u16) -> anyhow::Result<Collector> {
        Self::start_in(None, "127.0.0.1", grpc_port, http_port)
    }

    /// [`Collector::start`] on `addr`, in network namespace `netns` (`ip netns` name) when
    /// given: a collector other hosts (other namespaces) send to.
    pub fn start_in(
        netns: Option<&str>,
        addr: &str,
        grpc_port: u16,
        http_port: u16,
    ) -> anyhow::Result<Collector> {
        let mut command = command().map_err(anyhow::Error::msg)?;
        if let Some(ns) = netns {
            let mut inside = Command::new("nsenter");
            inside
                .arg(format!("--net={}/{ns}", crate::host::netns::NETNS_RUN_DIR))
                .arg("--")
                .arg(command.get_program())
                .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))));
            command = inside;
        }
        let output =
            std::env::temp_dir().join(format!("{}.log", crate::host::netns::unique_name("rotel")));
        let file = std::fs::File::create(&output)?;
        command
            .args(["start", "--otlp-grpc-endpoint"])
            .arg(format!("{addr}:{grpc_port}"))
            .arg("--otlp-http-endpoint")
            .arg(format!("{addr}:{http_port}"))
            .args([
                "--exporter",
                "blackhole",
                "--debug-log",
                "logs",
                "--debug-log",
                "metrics",
                "--debug-log-verbosity",
                "detailed",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let child = command.spawn()?;
        let mut collector = Collector {
            child,
            output,
            http_port,
        };
        let listens = || match netns {
            None => std::net::TcpStream::connect((addr, http_port)).is_ok(),
            Some(ns) => Command::new("nsenter")
                .arg(format!("--net={}/{ns}", crate::host::netns::NETNS_RUN_DIR))
                .args(["--", "bash", "-c"])
                .arg(format!("exec 3<>/dev/tcp/{addr}/{http_port}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if listens() {
                return Ok(collector);
            }
            if let Some(status) = collector.child.try_wait()? {
                anyhow::bail!(
                    "rotel-agent exited ({status}) before it listened:\n{}",
                    collector.text()
                );
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "rotel-agent does not listen on {addr}:{http_port} after 30 s:\n{}",
                collector.text()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Everything it printed so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// What it received so far, parsed.
    pub fn received(&self) -> Received {
        parse(&self.text())
    }

    /// Stops it (SIGKILL: a collector that goes away without warning) and waits for it.
    pub fn kill(mut self) -> anyhow::Result<String> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(self.text())
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.output);
    }
}

/// One number data point (or histogram data point: its count): its metric, attributes and
/// value.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub metric: String,
    pub attrs: std::collections::BTreeMap<String, String>,
    pub value: f64,
    /// The index in [`Received::resources`] of the resource it came with.
    pub resource: usize,
}

/// One log record: its body and attributes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Log {
    pub body: String,
    pub attrs: std::collections::BTreeMap<String, String>,
}

/// What the collector printed, in order: resources' attributes, number data points (in the
/// order received: the last of a series is its latest value) and log records.
#[derive(Clone, Debug, Default)]
pub struct Received {
    pub resources: Vec<std::collections::BTreeMap<String, String>>,
    pub points: Vec<Point>,
    pub logs: Vec<Log>,
}

impl Received {
    /// The latest value of `metric` among points whose attributes include all of `want`,
    /// summed over the matching series of that last export.
    pub fn latest(&self, metric: &str, want: &[(&str, &str)]) -> Option<f64> {
        let matching = |p: &&Point| {
            p.metric == metric
                && want
                    .iter()
                    .all(|(k, v)| p.attrs.get(*k).map(String::as_str) == Some(*v))
        };
        // The latest value of each matching series, summed.
        let mut latest: std::collections::BTreeMap<String, f64> = Default::default();
        for p in self.points.iter().filter(matching) {
            latest.insert(format!("{:?}", p.attrs), p.value);
        }
        (!latest.is_empty()).then(|| latest.values().sum())
    }

    /// Log records whose attributes include all of `want`.
    pub fn logs_with(&self, want: &[(&str, &str)]) -> Vec<&Log> {
        self.logs
            .iter()
            .filter(|l| {
                want.iter()
                    .all(|(k, v)| l.attrs.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }
}

/// `     -> key: Str(value)` (or `Int(3)`, `Bool(true)`, `Double(0.5)`) as (key, value).
fn attribute(line: &str) -> Option<(String, String)> {
    let rest = line.trim_start().strip_prefix("-> ")?;
    let (key, value) = rest.split_once(": ")?;
    let value = value
        .split_once('(')
        .and_then(|(_, v)| v.strip_suffix(')'))
        .unwrap_or(value);
    Some((key.to_owned(), value.to_owned()))
}

/// Parses rotel's detailed debug output (see [`Collector::start`]).
pub fn parse(text: &str) -> Received {
    #[derive(PartialEq)]
    enum In {
        Nothing,
        Resource,
        Descriptor,
        Point,
        Log,
    }
    let mut r = Received::default();
    let mut section = In::Nothing;
    let mut metric = String::new();
    let mut point: Option<Point> = None;
    let mut log: Option<Log> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("ResourceMetrics #") || t.starts_with("ResourceLog #") {
            if let Some(l) = log.take() {
                r.logs.push(l);
            }
            section = In::Nothing;
        } else if t == "Resource attributes:" {
            r.resources.push(Default::default());
            section = In::Resource;
        } else if t == "Descriptor:" {
            section = In::Descriptor;
        } else if t.starts_with("NumberDataPoints #") || t.starts_with("HistogramDataPoints #") {
            point = Some(Point {
                metric: metric.clone(),
                attrs: Default::default(),
                value: f64::NAN,
                resource: r.resources.len().saturating_sub(1),
            });
            section = In::Point;
        } else if t.starts_with("LogRecord #") {
            if let Some(l) = log.take() {
                r.logs.push(l);
            }
            log = Some(Log::default());
            section = In::Log;
        } else if let Some(v) = t
            .strip_prefix("Value: ")
            .or_else(|| t.strip_prefix("Count: "))
        {
            if let Some(mut p) = point.take() {
                p.value = v.trim().parse().unwrap_or(f64::NAN);
                r.points.push(p);
            }
        } else if let Some(b) = t.strip_prefix("Body: ") {
            if let Some(l) = log.as_mut() {
                l.body = b
                    .strip_prefix("Str(")
                    .and_then(|s| s.strip_suffix(')'))
                    .unwrap_or(b)
                    .to_owned();
            }
        } else if let Some((k, v)) = attribute(line) {
            match section {
                In::Resource => {
                    if let Some(res) = r.resources.last_mut() {
                        res.insert(k, v);
                    }
                }
                In::Descriptor if k == "Name" => metric = v,
                In::Point => {
                    if let Some(p) = point.as_mut() {
                        p.attrs.insert(k, v);
                    }
                }
                In::Log => {
                    if let Some(l) = log.as_mut() {
                        l.attrs.insert(k, v);
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(l) = log.take() {
        r.logs.push(l);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_is_parsed() {
        let text = "ResourceLog #0\nResource SchemaURL: \nResource attributes:\n     -> host.name: Str(h1)\n\
ScopeLogs #0\nLogRecord #0\nTimestamp: 1\nBody: Str(a drop)\nAttributes:\n     -> netlab.rule.text: Str(PREROUTING -j DROP)\n     -> netlab.icmp.seq: Int(3)\n    Trace ID       : \n\
ResourceMetrics #0\nResource attributes:\n     -> host.name: Str(h1)\nScopeMetrics #0\nMetric #0\nDescriptor:\n     -> Name: netlab.packets\n     -> DataType: Sum\n\
NumberDataPoints #0\nData point attributes:\n     -> container.name: Str(a)\nStartTimestamp: 0\nTimestamp: 2\nValue: 42\n\
NumberDataPoints #1\nData point attributes:\n     -> container.name: Str(b)\nValue: 7\n\
Metric #1\nDescriptor:\n     -> Name: netlab.ping.rtt\n     -> DataType: Histogram\n\
HistogramDataPoints #0\nData point attributes:\n     -> netlab.ping.source: Str(a)\nStartTimestamp: 0\nTimestamp: 2\nCount: 5\nSum: 0.001\nBuckets #0, Count: 5\n";
        let r = parse(text);
        assert_eq!(r.resources.len(), 2);
        assert_eq!(r.resources[0]["host.name"], "h1");
        // The metrics came with the second resource (the first was the logs').
        assert!(r.points.iter().all(|p| p.resource == 1));
        assert_eq!(r.logs.len(), 1);
        assert_eq!(r.logs[0].body, "a drop");
        assert_eq!(r.logs[0].attrs["netlab.rule.text"], "PREROUTING -j DROP");
        assert_eq!(r.logs[0].attrs["netlab.icmp.seq"], "3");
        assert_eq!(
            r.latest("netlab.packets", &[("container.name", "a")]),
            Some(42.0)
        );
        assert_eq!(r.latest("netlab.packets", &[]), Some(49.0));
        assert_eq!(r.latest("netlab.drops", &[]), None);
        assert_eq!(
            r.latest("netlab.ping.rtt", &[("netlab.ping.source", "a")]),
            Some(5.0)
        );
    }
}

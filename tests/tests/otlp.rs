//! OTLP export against a real collector: rotel's `rotel-agent` (PyPI `rotel`, installed by
//! `cargo xtask setup`) receives what `netlab daemon --otlp-endpoint` sends over OTLP/HTTP
//! and prints every resource, data point and log record, which the tests read back.
//! Run by `cargo xtask test` (root, `NETLAB_BIN` set, a Docker engine, the lab's images):
//! `cargo test -p netlab-tests --test otlp -- --test-threads=1`.
//!
//! The witness is ping's own statistics: the exported packet counters of the two
//! containers' veths must equal what ping says it sent and received, before and after the
//! collector was killed and started again (cumulative counters resume exactly), and the
//! outage must be counted, never silent. A collector that accepts connections and never
//! answers must not stop the daemon counting every packet, nor make it keep more than its
//! bounded buffer: what it let go is counted.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use netlab_tests::bpf_state::{assert_detached, BpfSnapshot};
use netlab_tests::daemon::{
    free_loopback_port, http_get, parse_metrics, two_free_loopback_ports, DaemonPaths, Sample,
};
use netlab_tests::docker::{Container, Network};
use netlab_tests::docker_or_skip;
use netlab_tests::host::ping::{totals, PingTotals};
use netlab_tests::rotel::{self, Collector, Received};

/// Longest a condition is waited for (the export interval is 1 s; the back-off after an
/// outage at most 30 s).
const WAIT: Duration = Duration::from_secs(90);

/// Waits until `check` gives a value, or fails with `what` and the last state it saw.
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Result<Result<T, String>>) -> Result<T> {
    let deadline = Instant::now() + WAIT;
    loop {
        match check()? {
            Ok(v) => return Ok(v),
            Err(state) if Instant::now() >= deadline => {
                bail!(
                    "{what}: not so after {} s; last seen: {state}",
                    WAIT.as_secs()
                )
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// `ping` from `from` to `to` (an address of the test's own containers), with its totals.
fn ping(from: &Container, args: &[&str], to: &str) -> Result<PingTotals> {
    let mut all = vec!["ping"];
    all.extend_from_slice(args);
    all.push(to);
    let out = from.exec(&all)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    totals(&stdout)
        .with_context(|| format!("no statistics from `ping {}`: {stdout}", all.join(" ")))
}

/// The daemon's `/metrics` samples.
fn metrics(socket: &Path) -> Result<Vec<Sample>> {
    let page = http_get(socket, "/metrics")?;
    ensure!(page.status == 200, "GET /metrics: {}", page.status);
    parse_metrics(&page.body)
}

fn sum(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && s.has(want))
        .map(|s| s.value)
        .sum()
}

/// The four series a ping from `a` to `b` passes, as the collector last received them.
fn exported_pings(r: &Received, a_veth: &str, b_veth: &str) -> [Option<f64>; 4] {
    let series = |iface: &str, kind: &str, dir: &str| {
        r.latest(
            "netlab.packets",
            &[
                ("network.interface.name", iface),
                ("netlab.packet.kind", kind),
                ("network.io.direction", dir),
            ],
        )
    };
    [
        // a's requests enter the host at a's veth and leave towards b at b's.
        series(a_veth, "icmp-echo-request", "receive"),
        series(b_veth, "icmp-echo-request", "transmit"),
        series(b_veth, "icmp-echo-reply", "receive"),
        series(a_veth, "icmp-echo-reply", "transmit"),
    ]
}

fn want_pings(requests: u64, replies: u64) -> [Option<f64>; 4] {
    let (q, p) = (requests as f64, replies as f64);
    [Some(q), Some(p), Some(p), Some(p)]
}

#[test]
fn exported_counters_equal_pings_and_resume_after_an_outage() -> Result<()> {
    let bin = docker_or_skip!();
    if let Err(reason) = rotel::command() {
        println!("skipping: {reason}");
        return Ok(());
    }
    let before = BpfSnapshot::take()?;
    let net = Network::create("otlp")?;
    let other_net = Network::create("otlp-other")?;
    let a = Container::sleeper("otlp-a", &net)?;
    let b = Container::sleeper("otlp-b", &net)?;
    let c = Container::sleeper("otlp-c", &other_net)?;
    let (b_ip, c_ip) = (b.ipv4()?, c.ipv4()?);
    let (a_veth, b_veth) = (a.host_veth()?, b.host_veth()?);
    let (grpc, http) = two_free_loopback_ports()?;
    let collector = Collector::start(grpc, http)?;
    let paths = DaemonPaths::new(&bin)?;
    let endpoint = format!("http://127.0.0.1:{http}");
    let daemon = paths.start(&[
        "--otlp-endpoint",
        &endpoint,
        "--otlp-interval",
        "1",
        "--otlp-header",
        "x-netlab-test=otlp",
    ])?;

    // 5 answered pings, then 1 that Docker's firewall drops (another network).
    let first = ping(&a, &["-c", "5", "-i", "0.2", "-W", "2"], &b_ip)?;
    ensure!(
        first.transmitted == 5 && first.received == 5,
        "ping a → b: {first:?}"
    );
    let dropped = ping(&a, &["-c", "1", "-W", "1"], &c_ip)?;
    ensure!(
        dropped.transmitted == 1 && dropped.received == 0,
        "ping a → c: {dropped:?}"
    );

    let rtt = |r: &Received| {
        r.latest(
            "netlab.ping.rtt",
            &[
                ("netlab.ping.source", a.name.as_str()),
                ("netlab.ping.destination", b.name.as_str()),
            ],
        )
    };
    // a's veth also saw the request to c.
    let want = want_pings(first.transmitted + 1, first.received);
    let want_rtt = Some(first.received as f64);
    let got = wait_for("the collector has the pings' counters and RTTs", || {
        let r = collector.received();
        let got = (exported_pings(&r, &a_veth, &b_veth), rtt(&r));
        Ok(if got == (want, want_rtt) {
            Ok(r)
        } else {
            Err(format!("{got:?}, want {:?}", (want, want_rtt)))
        })
    })?;
    let drop_log = wait_for("the collector has the dropped ping as a log record", || {
        let r = collector.received();
        let found = r
            .logs_with(&[
                ("netlab.event", "drop"),
                ("netlab.source.container.name", a.name.as_str()),
                ("destination.address", c_ip.as_str()),
            ])
            .into_iter()
            .find(|l| l.attrs.contains_key("netlab.rule.text"))
            .cloned();
        Ok(found.ok_or_else(|| format!("{} log records", r.logs.len())))
    })?;
    println!("drop as received: {} {:?}", drop_log.body, drop_log.attrs);
    ensure!(
        drop_log.attrs.get("netlab.drop.reason").map(String::as_str) == Some("NETFILTER_DROP"),
        "the drop's reason: {:?}",
        drop_log.attrs
    );
    ensure!(
        drop_log.attrs.contains_key("netlab.rule.docker.meaning"),
        "the drop's rule has no Docker meaning: {:?}",
        drop_log.attrs
    );
    // The drop and the dropped ping's journey carry the same join key, made of the
    // drop's own addresses, ICMP id and sequence number.
    let a_ip = a.ipv4()?;
    let key = drop_log.attrs.get("netlab.journey.key").cloned();
    let made = format!(
        "icmp {a_ip}>{c_ip} id={} seq={}",
        drop_log
            .attrs
            .get("netlab.icmp.id")
            .map_or("?", String::as_str),
        drop_log
            .attrs
            .get("netlab.icmp.seq")
            .map_or("?", String::as_str)
    );
    let journey_keys = wait_for("the dropped ping's journey is received", || {
        let r = collector.received();
        let keys: Vec<Option<String>> = r
            .logs_with(&[
                ("netlab.event", "journey"),
                ("netlab.journey.result", "dropped"),
                ("destination.address", c_ip.as_str()),
            ])
            .iter()
            .map(|l| l.attrs.get("netlab.journey.key").cloned())
            .collect();
        Ok(if keys.is_empty() {
            Err("no dropped journey yet".to_owned())
        } else {
            Ok(keys)
        })
    })?;
    ensure!(
        key.as_deref() == Some(made.as_str()) && journey_keys == [Some(made.clone())],
        "join keys: the drop's {key:?}, the journeys' {journey_keys:?}, made {made}"
    );
    let answered = got.logs_with(&[
        ("netlab.event", "journey"),
        ("netlab.journey.result", "answered"),
        ("source.address", a.ipv4()?.as_str()),
        ("destination.address", b_ip.as_str()),
    ]);
    ensure!(
        answered.len() == 5,
        "answered journeys a → b received: {}",
        answered.len()
    );
    let resource = got.resources.first().cloned().unwrap_or_default();
    println!("resource: {resource:?}");
    ensure!(
        resource.get("service.name").map(String::as_str) == Some("netlab")
            && resource.contains_key("host.name")
            && resource.contains_key("netlab.docker.engine.version")
            && resource.contains_key("netlab.docker.engine.id"),
        "resource attributes: {resource:?}"
    );

    // The collector goes away without a word; pings go on meanwhile.
    drop(collector.kill()?);
    let during = ping(&a, &["-c", "4", "-i", "0.2", "-W", "2"], &b_ip)?;
    ensure!(
        during.transmitted == 4 && during.received == 4,
        "ping during the outage: {during:?}"
    );
    // Until the daemon has let at least one interval's metrics go unsent: the gap.
    wait_for("the daemon counts the outage", || {
        let m = metrics(&paths.socket)?;
        let missed = sum(&m, "netlab_otlp_metric_exports_missed_total", &[]);
        let failed = sum(&m, "netlab_otlp_exports_failed_total", &[]);
        Ok(if missed >= 1.0 && failed >= 1.0 {
            Ok(())
        } else {
            Err(format!("missed {missed}, failed {failed}"))
        })
    })?;
    let collector = Collector::start(grpc, http)?;
    let want = want_pings(
        first.transmitted + 1 + during.transmitted,
        first.received + during.received,
    );
    let want_rtt = Some((first.received + during.received) as f64);
    let after = wait_for("the collector has exact counters after the outage", || {
        let r = collector.received();
        let got = (exported_pings(&r, &a_veth, &b_veth), rtt(&r));
        Ok(if got == (want, want_rtt) {
            Ok(r)
        } else {
            Err(format!("{got:?}, want {:?}", (want, want_rtt)))
        })
    })?;
    let gap = |metric: &str, want: &[(&str, &str)]| after.latest(metric, want).unwrap_or(0.0);
    let failed = gap(
        "netlab.otlp.exports.failed",
        &[("netlab.otlp.signal", "metrics")],
    );
    let missed = gap("netlab.otlp.metric_exports.missed", &[]);
    println!("after the outage: {failed} metric exports failed, {missed} intervals missed");
    ensure!(failed >= 1.0 && missed >= 1.0, "the outage is not counted");
    // The journeys of the outage were kept and sent once it answered again; nothing lost.
    let late = wait_for("the outage's journeys arrive", || {
        let r = collector.received();
        let n = r
            .logs_with(&[
                ("netlab.event", "journey"),
                ("netlab.journey.result", "answered"),
                ("destination.address", b_ip.as_str()),
            ])
            .len();
        Ok(if n >= 4 {
            Ok(n)
        } else {
            Err(format!("{n} journeys"))
        })
    })?;
    ensure!(
        late == 4,
        "journeys a → b received after the outage: {late}, want 4"
    );
    let lost = gap("netlab.otlp.log_records.lost", &[]);
    ensure!(lost == 0.0, "{lost} log records lost");

    let stopped = daemon.stop(libc::SIGTERM)?;
    ensure!(stopped.status.success(), "daemon exited {}", stopped.status);
    let stderr = stopped.stderr;
    ensure!(
        stderr.contains("OTLP export to") && stderr.contains("OTLP collector answers again"),
        "the daemon did not say the collector went and came back:\n{stderr}"
    );
    drop(collector);
    drop(paths);
    assert_detached("-", &[], &before)?;
    netlab_tests::docker::remove_all(vec![a, b, c])?;
    net.remove()?;
    other_net.remove()?;
    Ok(())
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

#[test]
fn a_collector_that_never_answers_costs_nothing_unbounded() -> Result<()> {
    let bin = docker_or_skip!();
    let before = BpfSnapshot::take()?;
    // Accepts connections (the kernel completes them) and never reads nor answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let endpoint = format!("http://{}", silent.local_addr()?);
    let net = Network::create("otlp-silent")?;
    let a = Container::sleeper("otlp-sa", &net)?;
    let b = Container::sleeper("otlp-sb", &net)?;
    let b_ip = b.ipv4()?;
    let (a_veth, b_veth) = (a.host_veth()?, b.host_veth()?);
    let paths = DaemonPaths::new(&bin)?;
    let daemon = paths.start(&[
        "--otlp-endpoint",
        &endpoint,
        "--otlp-interval",
        "1",
        "--otlp-packets",
    ])?;
    let warm = ping(&a, &["-c", "3", "-i", "0.2", "-W", "2"], &b_ip)?;
    ensure!(warm.received == 3, "ping a → b: {warm:?}");
    let rss_start = rss_kib(daemon.pid())?;

    // Each ping makes a journey and four packet records: far more than the exporter keeps.
    let mut sent = warm;
    let mut rss = Vec::new();
    for round in 0..2 {
        let t = ping(&a, &["-A", "-q", "-c", "6000", "-W", "1"], &b_ip)?;
        ensure!(t.transmitted == 6000, "round {round}: {t:?}");
        sent.transmitted += t.transmitted;
        sent.received += t.received;
        // The datapath never waited: every packet is counted (ping is the witness).
        let counted = wait_for("the daemon counts every ping", || {
            let m = metrics(&paths.socket)?;
            let c = |iface: &str, kind: &str, dir: &str| {
                sum(
                    &m,
                    "netlab_packets_total",
                    &[("iface", iface), ("kind", kind), ("direction", dir)],
                )
            };
            let got = [
                c(&a_veth, "icmp-echo-request", "ingress"),
                c(&b_veth, "icmp-echo-request", "egress"),
                c(&b_veth, "icmp-echo-reply", "ingress"),
                c(&a_veth, "icmp-echo-reply", "egress"),
            ];
            let want = [
                sent.transmitted as f64,
                sent.received as f64,
                sent.received as f64,
                sent.received as f64,
            ];
            Ok(if got == want {
                Ok(m)
            } else {
                Err(format!("{got:?}, want {want:?}"))
            })
        })?;
        rss.push(rss_kib(daemon.pid())?);
        // What it could not keep is counted: the records made, less what the channel and
        // the buffer can hold, at least.
        let journeys = sum(&counted, "netlab_journeys_total", &[]);
        let events_lost = sum(&counted, "netlab_events_lost_total", &[]);
        let packet_events = 4.0 * sent.received as f64 - events_lost;
        let lost = sum(&counted, "netlab_otlp_log_records_lost_total", &[]);
        let held = (8192 + 2048) as f64;
        println!(
            "round {round}: {journeys} journeys, ≥ {packet_events} packet records, {lost} records lost, rss {} KiB",
            rss[round]
        );
        ensure!(
            lost >= journeys + packet_events - held,
            "only {lost} records counted lost of {journeys} journeys and {packet_events} packets, with room for {held}"
        );
        let sent_ok = sum(&counted, "netlab_otlp_log_records_sent_total", &[]);
        ensure!(
            sent_ok == 0.0,
            "{sent_ok} records sent to a collector that never answers"
        );
    }
    println!("rss: {rss_start} KiB at start, {rss:?} after each round");
    // The second round made as many records as the first: the buffer is full already, so
    // the daemon must not have grown by more than noise.
    ensure!(
        rss[1] <= rss[0] + 16 * 1024,
        "the daemon grew from {} to {} KiB in the second round",
        rss[0],
        rss[1]
    );
    ensure!(
        rss[0] <= rss_start + 128 * 1024,
        "the daemon grew from {rss_start} to {} KiB",
        rss[0]
    );

    let stopped = daemon.stop(libc::SIGTERM)?;
    ensure!(stopped.status.success(), "daemon exited {}", stopped.status);
    drop(silent);
    drop(paths);
    assert_detached("-", &[], &before)?;
    netlab_tests::docker::remove_all(vec![a, b])?;
    net.remove()?;
    Ok(())
}

/// A small HTTPS receiver (Python's standard library) that writes one line per request:
/// path, content type, the `x-token` header and the body's length.
const HTTPS_RECEIVER: &str = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        print(self.path, self.headers.get('Content-Type'), self.headers.get('x-token'), len(body), flush=True)
        self.send_response(200)
        self.send_header('Content-Length', '0')
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print('listening', flush=True)
s.serve_forever()
"#;

/// A child process of the test's, killed when dropped.
struct Receiver(std::process::Child);

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A scratch directory removed when dropped.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .context("running openssl")?;
    ensure!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[test]
fn https_with_a_private_ca_and_an_auth_header() -> Result<()> {
    let bin = docker_or_skip!();
    let before = BpfSnapshot::take()?;
    let dir =
        Scratch(std::env::temp_dir().join(netlab_tests::host::netns::unique_name("otlp-tls")));
    std::fs::create_dir_all(&dir.0)?;
    // A CA of the test's own and a server certificate for 127.0.0.1 signed by it.
    openssl(
        &dir.0,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=netlab test CA",
        ],
    )?;
    openssl(
        &dir.0,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    )?;
    std::fs::write(
        dir.0.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )?;
    openssl(
        &dir.0,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ],
    )?;
    let port = free_loopback_port()?;
    let seen = dir.0.join("seen.log");
    let child = std::process::Command::new("/usr/bin/python3")
        .current_dir(&dir.0)
        .args([
            "-c",
            HTTPS_RECEIVER,
            &port.to_string(),
            "cert.pem",
            "key.pem",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&seen)?)
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting the HTTPS receiver")?;
    let receiver = Receiver(child);
    wait_for("the HTTPS receiver listens", || {
        Ok(
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                Ok(())
            } else {
                Err("nothing on the port".to_owned())
            },
        )
    })?;
    let paths = DaemonPaths::new(&bin)?;
    let endpoint = format!("https://127.0.0.1:{port}");
    let ca = dir.0.join("ca.pem");
    let daemon = paths.start(&[
        "--otlp-endpoint",
        &endpoint,
        "--otlp-ca",
        ca.to_str().context("path")?,
        "--otlp-header",
        "x-token=s3cret",
        "--otlp-interval",
        "1",
    ])?;
    let want = "/v1/metrics application/x-protobuf s3cret ";
    wait_for("the receiver gets metrics over TLS with the header", || {
        let text = std::fs::read_to_string(&seen).unwrap_or_default();
        Ok(if text.lines().any(|l| l.starts_with(want)) {
            Ok(())
        } else {
            Err(text)
        })
    })?;
    let m = metrics(&paths.socket)?;
    let failed = sum(&m, "netlab_otlp_exports_failed_total", &[]);
    ensure!(failed == 0.0, "{failed} exports failed over TLS");
    let stopped = daemon.stop(libc::SIGTERM)?;
    ensure!(stopped.status.success(), "daemon exited {}", stopped.status);
    ensure!(
        !stopped.stderr.contains("OTLP export to"),
        "an export failed:\n{}",
        stopped.stderr
    );
    drop(receiver);
    drop(paths);
    assert_detached("-", &[], &before)?;
    Ok(())
}

#[test]
fn grpc_export_counts_equal_pings() -> Result<()> {
    let bin = docker_or_skip!();
    if let Err(reason) = rotel::command() {
        println!("skipping: {reason}");
        return Ok(());
    }
    let before = BpfSnapshot::take()?;
    let net = Network::create("otlp-grpc")?;
    let a = Container::sleeper("otlp-ga", &net)?;
    let b = Container::sleeper("otlp-gb", &net)?;
    let b_ip = b.ipv4()?;
    let (a_veth, b_veth) = (a.host_veth()?, b.host_veth()?);
    let (grpc, http) = two_free_loopback_ports()?;
    let collector = Collector::start(grpc, http)?;
    let paths = DaemonPaths::new(&bin)?;
    let endpoint = format!("http://127.0.0.1:{grpc}");
    let daemon = paths.start(&[
        "--otlp-endpoint",
        &endpoint,
        "--otlp-protocol",
        "grpc",
        "--otlp-interval",
        "1",
    ])?;
    let sent = ping(&a, &["-c", "3", "-i", "0.2", "-W", "2"], &b_ip)?;
    ensure!(sent.received == 3, "ping a → b: {sent:?}");
    let want = want_pings(sent.transmitted, sent.received);
    let got = wait_for("the collector has the pings over gRPC", || {
        let r = collector.received();
        let got = exported_pings(&r, &a_veth, &b_veth);
        let journeys = r
            .logs_with(&[
                ("netlab.event", "journey"),
                ("destination.address", b_ip.as_str()),
            ])
            .len();
        Ok(if got == want && journeys == 3 {
            Ok(r)
        } else {
            Err(format!(
                "{got:?} and {journeys} journeys, want {want:?} and 3"
            ))
        })
    })?;
    ensure!(!got.resources.is_empty(), "no resource");
    let m = metrics(&paths.socket)?;
    let failed = sum(&m, "netlab_otlp_exports_failed_total", &[]);
    ensure!(failed == 0.0, "{failed} gRPC exports failed");
    let stopped = daemon.stop(libc::SIGTERM)?;
    ensure!(stopped.status.success(), "daemon exited {}", stopped.status);
    drop(collector);
    drop(paths);
    assert_detached("-", &[], &before)?;
    netlab_tests::docker::remove_all(vec![a, b])?;
    net.remove()?;
    Ok(())
}

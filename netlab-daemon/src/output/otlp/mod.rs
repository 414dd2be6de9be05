//! OTLP export (`netlab daemon --otlp-endpoint URL`): the daemon's counters as OTLP metrics
//! and its drops and journeys as OTLP log records, sent over OTLP/HTTP with protobuf to an
//! OpenTelemetry Collector, which fans many hosts in.
//!
//! Nothing here may slow the kernel reader: log records reach the exporter task through a
//! bounded channel filled with `try_send` ([`logs::OtlpLogs`]), and metrics are a snapshot
//! of the `/metrics` counters replaced each interval (a `watch` channel). While the
//! collector is unreachable the task retries with exponential back-off, keeps at most
//! [`BUFFER`] log records, and counts whatever it had to let go
//! (`netlab.otlp.log_records.lost`, `netlab.otlp.metric_exports.missed`). Counters are
//! cumulative, so the first export after an outage carries exact totals again.

pub mod logs;
pub mod metrics;
pub mod proto;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{HeaderName, HeaderValue};
use prost::Message as _;
use tokio::sync::{mpsc, watch};

use crate::output::metrics::Snapshot;
use proto::{kv, LogRecord};

/// Log records the pipeline may have queued for the exporter task before it counts the
/// next one lost (a burst of drops or journeys between two sends).
pub const CHANNEL: usize = 2048;
/// Log records the exporter keeps while the collector is unreachable; the oldest go first.
pub const BUFFER: usize = 8192;
/// Log records per export request.
pub const BATCH: usize = 512;
/// How long one export request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopping daemon waits for its last export.
const FINAL_FLUSH: Duration = Duration::from_secs(3);
/// The first and the longest wait before trying an unreachable collector again.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What `--otlp-*` asked for, checked.
#[derive(Clone, Debug)]
pub struct OtlpConfig {
    /// The collector's base URL; `/v1/metrics` and `/v1/logs` are appended.
    pub endpoint: hyper::Uri,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub interval: Duration,
    /// PEM file of the CA certificates to trust for an https endpoint (else the system's).
    pub ca: Option<PathBuf>,
    /// Send sampled packets as log records too.
    pub packets: bool,
    /// OTLP/gRPC (HTTP/2, the collectors' port 4317) instead of OTLP/HTTP.
    pub grpc: bool,
}

impl OtlpConfig {
    /// Checks the flags; the error is the one line the user sees.
    pub fn new(
        endpoint: &str,
        headers: &[String],
        interval_secs: u64,
        ca: Option<PathBuf>,
        packets: bool,
    ) -> anyhow::Result<OtlpConfig> {
        let uri: hyper::Uri = endpoint
            .parse()
            .map_err(|e| anyhow::anyhow!("--otlp-endpoint {endpoint:?} is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => anyhow::bail!(
                "--otlp-endpoint {endpoint:?} must start with http:// or https:// (OTLP/HTTP)"
            ),
        }
        if uri.host().is_none_or(str::is_empty) {
            anyhow::bail!("--otlp-endpoint {endpoint:?} has no host");
        }
        if uri.query().is_some() {
            anyhow::bail!("--otlp-endpoint {endpoint:?}: a query string is not supported");
        }
        if ca.is_some() && uri.scheme_str() != Some("https") {
            anyhow::bail!("--otlp-ca is for an https:// endpoint, not {endpoint:?}");
        }
        if let Some(ca) = &ca {
            load_roots(ca)?;
        }
        if interval_secs == 0 {
            anyhow::bail!("--otlp-interval must be at least 1 second");
        }
        let headers = headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(OtlpConfig {
            endpoint: uri,
            headers,
            interval: Duration::from_secs(interval_secs),
            ca,
            packets,
            grpc: false,
        })
    }

    /// Speaks OTLP/gRPC instead of OTLP/HTTP.
    pub fn with_grpc(mut self, grpc: bool) -> Self {
        self.grpc = grpc;
        self
    }

    /// The URL of one signal: the base path, then `/v1/metrics` or `/v1/logs` (OTLP/HTTP)
    /// or the gRPC method (`/opentelemetry.proto.collector.metrics.v1.MetricsService/Export`).
    fn url(&self, signal: &str) -> anyhow::Result<hyper::Uri> {
        let base = self.endpoint.to_string();
        let base = base.trim_end_matches('/');
        let url = if self.grpc {
            let service = if signal == "metrics" {
                "MetricsService"
            } else {
                "LogsService"
            };
            format!("{base}/opentelemetry.proto.collector.{signal}.v1.{service}/Export")
        } else {
            format!("{base}/v1/{signal}")
        };
        url.parse().context("building the export URL")
    }
}

/// `K=V` of `--otlp-header`.
pub fn parse_header(s: &str) -> anyhow::Result<(HeaderName, HeaderValue)> {
    let Some((k, v)) = s.split_once('=') else {
        anyhow::bail!("--otlp-header {s:?} is not KEY=VALUE");
    };
    let name = HeaderName::from_bytes(k.trim().as_bytes())
        .map_err(|_| anyhow::anyhow!("--otlp-header {s:?}: {k:?} is not a header name"))?;
    let value = HeaderValue::from_str(v.trim()).map_err(|_| {
        anyhow::anyhow!("--otlp-header {s:?}: the value has characters a header cannot carry")
    })?;
    Ok((name, value))
}

fn load_roots(path: &std::path::Path) -> anyhow::Result<rustls::RootCertStore> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow::anyhow!("--otlp-ca {}: {e}", path.display()))?;
    for c in certs {
        let c = c.map_err(|e| anyhow::anyhow!("--otlp-ca {}: {e}", path.display()))?;
        roots
            .add(c)
            .map_err(|e| anyhow::anyhow!("--otlp-ca {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        anyhow::bail!("--otlp-ca {}: no PEM certificate in it", path.display());
    }
    Ok(roots)
}

/// What the exporter could not deliver, and what it sent.
#[derive(Debug, Default)]
pub struct Stats {
    /// Log records the pipeline found no room for in the channel.
    pub queue_full: AtomicU64,
    /// Log records let go from the exporter's buffer while the collector was unreachable.
    pub buffer_full: AtomicU64,
    /// Log records the collector answered it rejected.
    pub rejected: AtomicU64,
    /// Failed export requests.
    pub logs_failed: AtomicU64,
    pub metrics_failed: AtomicU64,
    /// Intervals whose metrics were replaced by newer ones before being sent.
    pub metric_intervals_missed: AtomicU64,
    /// Log records and metric exports delivered.
    pub logs_sent: AtomicU64,
    pub metrics_sent: AtomicU64,
}

/// A copy of [`Stats`] at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct StatsView {
    pub queue_full: u64,
    pub buffer_full: u64,
    pub rejected: u64,
    pub logs_failed: u64,
    pub metrics_failed: u64,
    pub metric_intervals_missed: u64,
    pub logs_sent: u64,
    pub metrics_sent: u64,
}

impl Stats {
    pub fn view(&self) -> StatsView {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsView {
            queue_full: r(&self.queue_full),
            buffer_full: r(&self.buffer_full),
            rejected: r(&self.rejected),
            logs_failed: r(&self.logs_failed),
            metrics_failed: r(&self.metrics_failed),
            metric_intervals_missed: r(&self.metric_intervals_missed),
            logs_sent: r(&self.logs_sent),
            metrics_sent: r(&self.metrics_sent),
        }
    }

    /// Log records lost so far, whatever the cause.
    pub fn lost(&self) -> u64 {
        let v = self.view();
        v.queue_full + v.buffer_full + v.rejected
    }
}

/// The exporter's families appended to `/metrics` when OTLP export is on (the page
/// without it is unchanged).
pub fn prometheus(s: &StatsView) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    out.push_str("# HELP netlab_otlp_log_records_lost_total Log records that never reached the OTLP collector, by cause.\n");
    out.push_str("# TYPE netlab_otlp_log_records_lost_total counter\n");
    for (c, v) in [
        ("buffer_full", s.buffer_full),
        ("queue_full", s.queue_full),
        ("rejected", s.rejected),
    ] {
        let _ = writeln!(
            out,
            "netlab_otlp_log_records_lost_total{{cause=\"{c}\"}} {v}"
        );
    }
    out.push_str(
        "# HELP netlab_otlp_exports_failed_total OTLP export requests that failed, by signal.\n",
    );
    out.push_str("# TYPE netlab_otlp_exports_failed_total counter\n");
    for (c, v) in [("logs", s.logs_failed), ("metrics", s.metrics_failed)] {
        let _ = writeln!(
            out,
            "netlab_otlp_exports_failed_total{{signal=\"{c}\"}} {v}"
        );
    }
    out.push_str("# HELP netlab_otlp_metric_exports_missed_total Export intervals whose metrics never reached the OTLP collector.\n");
    out.push_str("# TYPE netlab_otlp_metric_exports_missed_total counter\n");
    let _ = writeln!(
        out,
        "netlab_otlp_metric_exports_missed_total {}",
        s.metric_intervals_missed
    );
    out.push_str(
        "# HELP netlab_otlp_log_records_sent_total Log records the OTLP collector accepted.\n",
    );
    out.push_str("# TYPE netlab_otlp_log_records_sent_total counter\n");
    let _ = writeln!(out, "netlab_otlp_log_records_sent_total {}", s.logs_sent);
    out
}

/// Who is reporting: the host, the Docker engine and its Swarm node.
pub fn resource(engine: Option<&crate::docker::EngineFacts>) -> proto::Resource {
    let mut a = vec![
        kv("service.name", "netlab"),
        kv("service.version", env!("CARGO_PKG_VERSION")),
    ];
    if let Some(h) = hostname() {
        a.push(kv("host.name", h));
    }
    if let Some(id) = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
    {
        a.push(kv("host.id", id));
    }
    if let Some(e) = engine {
        a.push(kv("netlab.docker.engine.name", e.product.name()));
        a.push(kv("netlab.docker.engine.version", e.version.clone()));
        if let Ok(info) = serde_json::from_str::<serde_json::Value>(&e.info_json) {
            if let Some(id) = info
                .get("ID")
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
            {
                a.push(kv("netlab.docker.engine.id", id));
            }
            let swarm = info.get("Swarm");
            let state = swarm
                .and_then(|s| s.get("LocalNodeState"))
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            if let Some(node) = swarm
                .and_then(|s| s.get("NodeID"))
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty() && state == "active")
            {
                a.push(kv("netlab.docker.swarm.node.id", node));
            }
        }
    }
    proto::Resource { attributes: a }
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
    // when the name fits, and the last byte is kept 0 in case it does not.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    std::str::from_utf8(&buf[..end]).ok().map(str::to_owned)
}

/// The daemon's end of the exporter: where log records and snapshots go.
pub struct OtlpHandle {
    pub logs: mpsc::Sender<LogRecord>,
    pub metrics: watch::Sender<Option<Arc<Snapshot>>>,
    pub stats: Arc<Stats>,
    pub config: OtlpConfig,
    /// The exporter task; it ends after a last attempt once `metrics` is dropped.
    pub task: tokio::task::JoinHandle<()>,
}

type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

fn client(config: &OtlpConfig) -> anyhow::Result<Client> {
    let roots = match &config.ca {
        Some(ca) => load_roots(ca)?,
        None => {
            let mut roots = rustls::RootCertStore::empty();
            if config.endpoint.scheme_str() == Some("https") {
                let found = rustls_native_certs::load_native_certs();
                for c in found.certs {
                    let _ = roots.add(c);
                }
                if roots.is_empty() {
                    anyhow::bail!(
                        "--otlp-endpoint is https but the system has no CA certificates: give one with --otlp-ca"
                    );
                }
            }
            roots
        }
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS set-up")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            // gRPC is HTTP/2 from the first byte (prior knowledge on plain TCP).
            .http2_only(config.grpc)
            .build(https),
    )
}

/// Starts the exporter task.
pub fn spawn(
    config: OtlpConfig,
    resource: proto::Resource,
    start_ns: u64,
) -> anyhow::Result<OtlpHandle> {
    let client = client(&config)?;
    let (logs_tx, logs_rx) = mpsc::channel(CHANNEL);
    let (metrics_tx, metrics_rx) = watch::channel(None);
    let stats = Arc::new(Stats::default());
    let task = Exporter {
        client,
        grpc: config.grpc,
        metrics_url: config.url("metrics")?,
        logs_url: config.url("logs")?,
        headers: config.headers.clone(),
        resource,
        start_ns,
        stats: Arc::clone(&stats),
        buffer: VecDeque::new(),
        pending_metrics: None,
        backoff: None,
        down_since: None,
        lost_at_outage: 0,
        missed_at_outage: 0,
        interval: config.interval,
    };
    let task = tokio::spawn(task.run(logs_rx, metrics_rx));
    Ok(OtlpHandle {
        logs: logs_tx,
        metrics: metrics_tx,
        stats,
        config,
        task,
    })
}

struct Exporter {
    client: Client,
    grpc: bool,
    metrics_url: hyper::Uri,
    logs_url: hyper::Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    resource: proto::Resource,
    start_ns: u64,
    stats: Arc<Stats>,
    /// Log records waiting to be sent, at most [`BUFFER`].
    buffer: VecDeque<LogRecord>,
    /// The latest snapshot not yet sent.
    pending_metrics: Option<Arc<Snapshot>>,
    /// While the collector is unreachable: the current wait and when to try again.
    backoff: Option<(Duration, Instant)>,
    down_since: Option<Instant>,
    lost_at_outage: u64,
    missed_at_outage: u64,
    interval: Duration,
}

/// A gRPC message on the wire: not compressed (0), its length (big-endian), itself.
fn grpc_frame(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 5);
    out.push(0);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

/// The first message of a gRPC answer (empty when there is none or it is compressed).
fn grpc_message(body: &[u8]) -> Bytes {
    match body {
        [0, a, b, c, d, rest @ ..] => {
            let n = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
            Bytes::copy_from_slice(&rest[..n.min(rest.len())])
        }
        _ => Bytes::new(),
    }
}

fn scope() -> proto::InstrumentationScope {
    proto::InstrumentationScope {
        name: "netlab".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

impl Exporter {
    async fn run(
        mut self,
        mut logs_rx: mpsc::Receiver<LogRecord>,
        mut metrics_rx: watch::Receiver<Option<Arc<Snapshot>>>,
    ) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                rec = logs_rx.recv() => {
                    let Some(rec) = rec else { break };
                    self.keep(rec);
                    // Take what else is waiting without going round the loop per record.
                    while let Ok(rec) = logs_rx.try_recv() {
                        self.keep(rec);
                    }
                    if self.buffer.len() >= BATCH && self.may_try() {
                        self.flush().await;
                    }
                }
                changed = metrics_rx.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let snap = metrics_rx.borrow_and_update().clone();
                    if snap.is_some() {
                        if self.pending_metrics.is_some() {
                            self.stats.metric_intervals_missed.fetch_add(1, Ordering::Relaxed);
                        }
                        self.pending_metrics = snap;
                    }
                    if self.may_try() {
                        self.flush().await;
                    }
                }
                _ = tick.tick() => {
                    if self.may_try() {
                        self.flush().await;
                    }
                }
            }
        }
        // The daemon stops: one last attempt, so that its final counts are not lost.
        while let Ok(rec) = logs_rx.try_recv() {
            self.keep(rec);
        }
        if let Some(snap) = metrics_rx.borrow().clone() {
            self.pending_metrics = Some(snap);
        }
        self.backoff = None;
        if tokio::time::timeout(FINAL_FLUSH, self.flush())
            .await
            .is_err()
        {
            log::warn!(
                "OTLP: the last export did not finish within {}s: {} log records not sent",
                FINAL_FLUSH.as_secs(),
                self.buffer.len()
            );
        }
    }

    fn keep(&mut self, rec: LogRecord) {
        if self.buffer.len() >= BUFFER {
            self.buffer.pop_front();
            self.stats.buffer_full.fetch_add(1, Ordering::Relaxed);
        }
        self.buffer.push_back(rec);
    }

    fn may_try(&self) -> bool {
        self.backoff.is_none_or(|(_, at)| Instant::now() >= at)
    }

    /// Sends the pending metrics, then the buffered log records in batches; stops at the
    /// first failure and waits longer each time before the next try.
    async fn flush(&mut self) {
        if let Some(snap) = self.pending_metrics.clone() {
            let body = self.metrics_body(&snap);
            match self.post(&self.metrics_url, body).await {
                Ok(resp) => {
                    let r = proto::ExportMetricsServiceResponse::decode(resp).ok();
                    if let Some(p) = r.and_then(|r| r.partial_success).filter(|p| p.rejected > 0) {
                        log::warn!(
                            "OTLP collector rejected {} data points: {}",
                            p.rejected,
                            p.error_message
                        );
                    }
                    self.pending_metrics = None;
                    self.stats.metrics_sent.fetch_add(1, Ordering::Relaxed);
                    self.up();
                }
                Err(e) => {
                    self.stats.metrics_failed.fetch_add(1, Ordering::Relaxed);
                    self.down(&e);
                    return;
                }
            }
        }
        while !self.buffer.is_empty() {
            let n = self.buffer.len().min(BATCH);
            let batch: Vec<LogRecord> = self.buffer.iter().take(n).cloned().collect();
            let body = proto::ExportLogsServiceRequest {
                resource_logs: vec![proto::ResourceLogs {
                    resource: Some(self.resource.clone()),
                    scope_logs: vec![proto::ScopeLogs {
                        scope: Some(scope()),
                        log_records: batch,
                    }],
                }],
            }
            .encode_to_vec();
            match self.post(&self.logs_url, body).await {
                Ok(resp) => {
                    self.buffer.drain(..n);
                    let rejected = proto::ExportLogsServiceResponse::decode(resp)
                        .ok()
                        .and_then(|r| r.partial_success)
                        .map(|p| p.rejected.max(0) as u64)
                        .unwrap_or(0)
                        .min(n as u64);
                    if rejected > 0 {
                        log::warn!("OTLP collector rejected {rejected} log records");
                        self.stats.rejected.fetch_add(rejected, Ordering::Relaxed);
                    }
                    self.stats
                        .logs_sent
                        .fetch_add(n as u64 - rejected, Ordering::Relaxed);
                    self.up();
                }
                Err(e) => {
                    self.stats.logs_failed.fetch_add(1, Ordering::Relaxed);
                    self.down(&e);
                    return;
                }
            }
        }
    }

    fn metrics_body(&self, snap: &Snapshot) -> Vec<u8> {
        let times = metrics::Times {
            start_ns: self.start_ns,
            now_ns: unix_now_ns(),
        };
        proto::ExportMetricsServiceRequest {
            resource_metrics: vec![proto::ResourceMetrics {
                resource: Some(self.resource.clone()),
                scope_metrics: vec![proto::ScopeMetrics {
                    scope: Some(scope()),
                    metrics: metrics::metrics(snap, &self.stats.view(), times),
                }],
            }],
        }
        .encode_to_vec()
    }

    async fn post(&self, url: &hyper::Uri, body: Vec<u8>) -> anyhow::Result<Bytes> {
        let (content_type, body) = if self.grpc {
            ("application/grpc", grpc_frame(&body))
        } else {
            ("application/x-protobuf", body)
        };
        let mut req = hyper::Request::post(url.clone())
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))?;
        if self.grpc {
            req.headers_mut()
                .insert(hyper::header::TE, HeaderValue::from_static("trailers"));
        }
        for (k, v) in &self.headers {
            req.headers_mut().append(k.clone(), v.clone());
        }
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let resp = self.client.request(req).await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let collected = resp.into_body().collect().await?;
            let trailers = collected.trailers().cloned();
            anyhow::Ok((status, headers, trailers, collected.to_bytes()))
        })
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {}s", REQUEST_TIMEOUT.as_secs()))?;
        let (status, headers, trailers, body) = resp.map_err(|e| anyhow::anyhow!("{e:#}"))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            anyhow::bail!(
                "{url} answered {status}: {}",
                text.chars().take(200).collect::<String>()
            );
        }
        if self.grpc {
            // The status is in the trailers, or in the headers of a trailers-only answer.
            let field = |name: &str| {
                trailers
                    .as_ref()
                    .and_then(|t| t.get(name))
                    .or_else(|| headers.get(name))
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let code = field("grpc-status");
            if code.as_deref() != Some("0") {
                anyhow::bail!(
                    "{url} answered gRPC status {}: {}",
                    code.as_deref().unwrap_or("(none)"),
                    field("grpc-message").unwrap_or_default()
                );
            }
            return Ok(grpc_message(&body));
        }
        Ok(body)
    }

    fn down(&mut self, e: &anyhow::Error) {
        let wait = match self.backoff {
            None => FIRST_BACKOFF,
            Some((w, _)) => (w * 2).min(MAX_BACKOFF),
        };
        self.backoff = Some((wait, Instant::now() + wait));
        if self.down_since.is_none() {
            self.down_since = Some(Instant::now());
            self.lost_at_outage = self.stats.lost();
            self.missed_at_outage = self.stats.view().metric_intervals_missed;
            log::warn!(
                "OTLP export to {} failed: {e:#}; retrying with back-off (up to {}s), keeping up to {BUFFER} log records; what is let go is counted",
                self.metrics_url,
                MAX_BACKOFF.as_secs()
            );
        } else {
            log::debug!(
                "OTLP export still failing: {e:#}; next try in {}s",
                wait.as_secs()
            );
        }
    }

    fn up(&mut self) {
        self.backoff = None;
        if let Some(since) = self.down_since.take() {
            log::warn!(
                "OTLP collector answers again after {}s: {} log records lost and {} metric exports missed while it did not (counted in netlab.otlp.*)",
                since.elapsed().as_secs(),
                self.stats.lost() - self.lost_at_outage,
                self.stats.view().metric_intervals_missed - self.missed_at_outage,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked() {
        let ok = OtlpConfig::new("http://collector:4318/", &["a=b".into()], 10, None, false)
            .expect("valid");
        assert_eq!(
            ok.url("logs").expect("url").to_string(),
            "http://collector:4318/v1/logs"
        );
        let base = OtlpConfig::new("https://c.example/otlp", &[], 1, None, true).expect("valid");
        assert_eq!(
            base.url("metrics").expect("url").to_string(),
            "https://c.example/otlp/v1/metrics"
        );
        for (url, headers, interval) in [
            ("ftp://c:4318", vec![], 10),
            ("collector:4318", vec![], 10),
            ("http://c:4318", vec!["novalue".to_owned()], 10),
            ("http://c:4318", vec!["bad name=x".to_owned()], 10),
            ("http://c:4318", vec!["a=line\nbreak".to_owned()], 10),
            ("http://c:4318", vec![], 0),
            ("http://c:4318?x=1", vec![], 10),
        ] {
            let err = OtlpConfig::new(url, &headers, interval, None, false)
                .expect_err("refused")
                .to_string();
            assert!(!err.contains('\n'), "one line: {err}");
        }
        let ca = OtlpConfig::new(
            "http://c:4318",
            &[],
            10,
            Some("/etc/hostname".into()),
            false,
        );
        assert!(ca.is_err(), "--otlp-ca with http://");
    }

    #[test]
    fn grpc_uses_the_collector_services_and_frames() {
        let c = OtlpConfig::new("http://collector:4317", &[], 10, None, false)
            .expect("valid")
            .with_grpc(true);
        assert_eq!(
            c.url("logs").expect("url").to_string(),
            "http://collector:4317/opentelemetry.proto.collector.logs.v1.LogsService/Export"
        );
        assert_eq!(
            c.url("metrics").expect("url").to_string(),
            "http://collector:4317/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
        );
        let framed = grpc_frame(b"abc");
        assert_eq!(framed, [0, 0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(grpc_message(&framed).as_ref(), b"abc");
        assert!(grpc_message(b"").is_empty());
    }

    #[test]
    fn messages_keep_their_wire_format() {
        // A log record as the collector decodes it: the same fields back.
        let rec = LogRecord {
            time_unix_nano: 7,
            observed_time_unix_nano: 8,
            severity_number: proto::SEVERITY_WARN,
            severity_text: "WARN".into(),
            body: Some(proto::string_value("dropped")),
            attributes: vec![
                kv("netlab.rule.text", "-j DROP"),
                proto::kv_int("netlab.icmp.seq", 3),
            ],
            event_name: "netlab.drop".into(),
        };
        let bytes = rec.encode_to_vec();
        assert_eq!(LogRecord::decode(bytes.as_slice()).expect("decodes"), rec);
        // time_unix_nano is field 1, fixed64: tag byte 0x09.
        assert_eq!(bytes[0], 0x09);
    }

    #[test]
    fn the_resource_names_the_engine_and_its_swarm_node() {
        let facts = crate::docker::EngineFacts {
            product: crate::docker::podman::Product::Docker,
            version: "28.5.2".into(),
            info_json: r#"{"ID":"e1","Swarm":{"NodeID":"n1","LocalNodeState":"active"}}"#.into(),
        };
        let r = resource(Some(&facts));
        let get = |k: &str| {
            r.attributes
                .iter()
                .find(|a| a.key == k)
                .and_then(|a| a.value.clone())
        };
        assert_eq!(
            get("netlab.docker.engine.id"),
            Some(proto::string_value("e1"))
        );
        assert_eq!(
            get("netlab.docker.swarm.node.id"),
            Some(proto::string_value("n1"))
        );
        assert_eq!(
            get("netlab.docker.engine.version"),
            Some(proto::string_value("28.5.2"))
        );
        let inactive = crate::docker::EngineFacts {
            product: crate::docker::podman::Product::Docker,
            version: "28.5.2".into(),
            info_json: r#"{"ID":"e1","Swarm":{"NodeID":"","LocalNodeState":"inactive"}}"#.into(),
        };
        assert!(resource(Some(&inactive))
            .attributes
            .iter()
            .all(|a| a.key != "netlab.docker.swarm.node.id"));
    }
}

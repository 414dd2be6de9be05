//! The daemon's API server: an axum [`Router`] with the endpoints, each client's event
//! stream, and serving them on the unix socket and the optional TCP listener. The daemon's
//! loop owns the kernel objects; handlers read what it publishes in [`Shared`] and ask it
//! for counters and metrics through [`Ask`].
//!
//! Endpoints (documented in `openapi.json`, served at `/v1/openapi.json`), all GET but one:
//! `/v1/health`, `/v1/topology` (`?format=text`: the human view), `/v1/counters`,
//! `/v1/events` (NDJSON, or Server-Sent Events with `Accept: text/event-stream` or
//! `?sse=1`; `format=text`; `container`, `network` and `kind` select, and repeat),
//! `/metrics` (Prometheus), the map (`/` and its assets, `/v1/map`, `/v1/graph`) and
//! `POST /v1/diagnose` (the map's one action). Any other method on these paths is refused
//! with 405 and the `Allow` header before routing (so HEAD too), any other path is 404
//! whatever the method.
//!
//! What stays written by hand, and why:
//! - The event stream's framing (`data: <line>` and a blank line per event). axum's `Sse`
//!   response adds `cache-control: no-cache`, a header the stream never had, and would
//!   make SSE a second code path beside NDJSON and text; one framing closure keeps the
//!   three formats on one per-client queue and the headers as they were.
//! - The listeners' accept loop ([`Accepting`]): axum's own listeners log a failed accept
//!   through `tracing`, which netlab does not use, and wait 1 s; the daemon says so in its
//!   log and tries again after 100 ms, as it always did.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::header::{ACCEPT, ALLOW, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot};
use tower::Layer as _;

use crate::docker::topology::Topology;
use crate::model::filter::Filter;
use crate::model::summary::Summary;
use crate::output::stream::StreamEvent;

/// Events queued per client before that client starts losing them.
pub const CLIENT_QUEUE: usize = 4096;

/// Requests the API makes to the loop that owns the kernel objects.
pub enum Ask {
    Counters(oneshot::Sender<Summary>),
    Metrics(oneshot::Sender<String>),
    /// The map now (`/v1/map`, `/v1/graph`).
    Map(oneshot::Sender<crate::output::map::MapView>),
}

/// What API handlers share; the daemon's loop keeps the public fields up to date.
pub struct Shared {
    pub topo: RwLock<Arc<Topology>>,
    events: broadcast::Sender<Arc<StreamEvent>>,
    pub(super) ask: mpsc::Sender<Ask>,
    /// The latest map as JSON, published by the loop while a page watches
    /// ([`crate::api::map`]); empty before the first.
    pub map: tokio::sync::watch::Sender<Bytes>,
    /// What runs `diagnose` for the page; `None` with `--read-only`.
    pub diagnoser: Option<crate::api::actions::Diagnoser>,
    pub attached: AtomicUsize,
    /// Whether the Docker engine answers now.
    pub docker: AtomicBool,
    clients: AtomicUsize,
    started: Instant,
    /// Events lost by slow clients, all clients together.
    client_lost: AtomicU64,
    /// Hooks found detached by something else (and attached again).
    pub hooks_lost: AtomicU64,
    /// Set when the daemon stops: every event stream sends what it has, says so and ends.
    stopping: tokio::sync::watch::Sender<bool>,
}

/// What an event stream's last line says when the daemon stops (text, then NDJSON).
pub const STOPPED_TEXT: &str = "netlab: the daemon stopped\n";
pub const STOPPED_JSON: &str = "{\"kind\":\"stopped\"}\n";

impl Shared {
    /// Ends every event stream: each sends the events already published to it, then a
    /// last line saying the daemon stopped ([`STOPPED_TEXT`], [`STOPPED_JSON`]), and
    /// closes; waits until they did, for at most `within`. A client then knows its stream
    /// is complete, rather than finding its connection cut.
    pub async fn stop_streams(&self, within: Duration) {
        self.stopping.send_replace(true);
        let deadline = tokio::time::Instant::now() + within;
        while self.clients.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The bodies ended: a moment for their last chunks to be written.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    /// The API's state when the daemon starts: events come from `events`, counters and
    /// metrics from whoever receives `ask`.
    pub fn new(
        topo: Arc<Topology>,
        events: broadcast::Sender<Arc<StreamEvent>>,
        ask: mpsc::Sender<Ask>,
        attached: usize,
        docker: bool,
    ) -> Shared {
        Shared {
            topo: RwLock::new(topo),
            events,
            ask,
            map: tokio::sync::watch::Sender::new(Bytes::new()),
            diagnoser: None,
            attached: AtomicUsize::new(attached),
            docker: AtomicBool::new(docker),
            clients: AtomicUsize::new(0),
            started: Instant::now(),
            client_lost: AtomicU64::new(0),
            stopping: tokio::sync::watch::Sender::new(false),
            hooks_lost: AtomicU64::new(0),
        }
    }

    /// Lets the page run `diagnose` through `d` (without it, the API only shows).
    pub fn with_diagnoser(mut self, d: crate::api::actions::Diagnoser) -> Shared {
        self.diagnoser = Some(d);
        self
    }

    /// Whether someone watches the live map (the loop publishes it only then).
    pub fn map_watched(&self) -> bool {
        self.map.receiver_count() > 0
    }
}

/// What every handler is given.
pub(super) type ApiState = State<Arc<Shared>>;

/// Query parameters as sent, decoded, in order (`container`, `network` and `kind`
/// repeat). Decoding cannot fail: a malformed escape is kept as written, bytes that are
/// not UTF-8 become U+FFFD.
type Params = Query<Vec<(String, String)>>;

/// Every value of `key` in `params`.
fn values(params: &[(String, String)], key: &str) -> Vec<String> {
    params
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

pub(super) fn full(status: StatusCode, ctype: &'static str, body: impl Into<Body>) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static(ctype))],
        body.into(),
    )
        .into_response()
}

pub(super) fn json_response<T: serde::Serialize>(v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(mut b) => {
            b.push(b'\n');
            full(StatusCode::OK, "application/json", b)
        }
        Err(e) => full(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            e.to_string(),
        ),
    }
}

pub(super) fn shutting_down() -> Response {
    full(
        StatusCode::SERVICE_UNAVAILABLE,
        "text/plain",
        "shutting down\n",
    )
}

/// Every path the API describes, with the one method it takes there (what a 405's
/// `Allow` says): GET everywhere but on the one path that acts.
pub const PATHS: [(&str, &str); 10] = [
    ("/", "GET"),
    ("/v1/health", "GET"),
    ("/v1/topology", "GET"),
    ("/v1/counters", "GET"),
    ("/v1/events", "GET"),
    ("/v1/map", "GET"),
    ("/v1/graph", "GET"),
    (ACTION, "POST"),
    ("/v1/openapi.json", "GET"),
    ("/metrics", "GET"),
];

/// The page's own assets: served (GET), not described.
const ASSETS: [&str; 2] = ["/map.js", "/map.css"];

/// The one path that acts (`POST /v1/diagnose`).
const ACTION: &str = "/v1/diagnose";

/// The API: every endpoint, 404 elsewhere, and anything but GET refused before routing.
pub fn app(
    shared: Arc<Shared>,
) -> impl tower::Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
       + Clone
       + Send
       + Sync
       + 'static {
    let routes = Router::new()
        .route("/", get(super::map::index))
        .route("/map.js", get(super::map::script))
        .route("/map.css", get(super::map::style))
        .route("/v1/map", get(super::map::map))
        .route("/v1/graph", get(super::map::graph))
        .route(
            "/v1/diagnose",
            axum::routing::post(super::actions::diagnose),
        )
        .route("/v1/health", get(health))
        .route("/v1/topology", get(topology))
        .route("/v1/counters", get(counters))
        .route("/v1/events", get(events))
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(shared);
    // Outside the router: a router's own 405 names the allowed methods, and it serves
    // HEAD with the GET handler.
    axum::middleware::from_fn(one_method).layer(routes)
}

/// The method a path takes goes to the router; another method is 405 on a path the API
/// serves (with the `Allow` header RFC 9110 requires of a 405: OPTIONS, the question a
/// browser asks before a cross-origin request, is refused too) and 404 elsewhere.
async fn one_method(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let allowed = PATHS
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, m)| *m)
        .or_else(|| ASSETS.contains(&path).then_some("GET"));
    let Some(allowed) = allowed else {
        return if req.method() == Method::GET {
            next.run(req).await
        } else {
            not_found().await
        };
    };
    if req.method().as_str() == allowed {
        return next.run(req).await;
    }
    let mut refused = full(
        StatusCode::METHOD_NOT_ALLOWED,
        "text/plain",
        format!("{allowed} only\n"),
    );
    refused
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allowed));
    refused
}

async fn not_found() -> Response {
    full(
        StatusCode::NOT_FOUND,
        "text/plain",
        "not found; see /v1/openapi.json\n",
    )
}

async fn health(State(shared): ApiState) -> Response {
    json_response(&serde_json::json!({
        "status": "ok",
        "attached_interfaces": shared.attached.load(Ordering::Relaxed),
        "clients": shared.clients.load(Ordering::Relaxed),
        "client_events_lost": shared.client_lost.load(Ordering::Relaxed),
        "hooks_lost": shared.hooks_lost.load(Ordering::Relaxed),
        "docker": shared.docker.load(Ordering::Relaxed),
        "read_only": shared.diagnoser.is_none(),
        "uptime_seconds": shared.started.elapsed().as_secs(),
    }))
}

/// The values `format` may take.
const FORMATS: [&str; 2] = ["json", "text"];
/// The values `sse` may take.
pub(super) const SSE: [&str; 4] = ["0", "1", "false", "true"];

/// The value of `key` (the last one given), which must be one of `allowed`; `None` when
/// it is not given.
pub(super) fn one_of(
    params: &[(String, String)],
    key: &str,
    allowed: &[&'static str],
) -> Result<Option<&'static str>, String> {
    let mut chosen = None;
    for v in values(params, key) {
        match allowed.iter().find(|a| **a == v) {
            Some(a) => chosen = Some(*a),
            None => return Err(format!("{key} '{v}' is not one of {}", allowed.join(", "))),
        }
    }
    Ok(chosen)
}

/// The query parameters `/v1/events` takes.
const EVENTS_PARAMS: [&str; 6] = ["container", "network", "kind", "format", "sse", "duration"];

/// A query parameter the operation does not take is refused, not ignored: a misspelt
/// filter (`contianer=`) would otherwise stream everything.
pub(super) fn only(params: &[(String, String)], known: &[&str]) -> Result<(), String> {
    match params.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some((k, _)) => Err(format!("unknown parameter '{k}': use {}", known.join(", "))),
    }
}

pub(super) fn bad_request(why: &str) -> Response {
    full(StatusCode::BAD_REQUEST, "text/plain", format!("{why}\n"))
}

async fn topology(State(shared): ApiState, Query(params): Params) -> Response {
    if let Err(e) = only(&params, &["format"]) {
        return bad_request(&e);
    }
    let text = match one_of(&params, "format", &FORMATS) {
        Ok(f) => f == Some("text"),
        Err(e) => return bad_request(&e),
    };
    match shared.topo.read().map(|t| Arc::clone(&t)) {
        Ok(t) if text => full(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            crate::docker::view::render(&t),
        ),
        Ok(t) => json_response(&*t),
        Err(_) => full(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "poisoned\n",
        ),
    }
}

async fn counters(State(shared): ApiState) -> Response {
    let (tx, rx) = oneshot::channel::<Summary>();
    if shared.ask.send(Ask::Counters(tx)).await.is_err() {
        return shutting_down();
    }
    match rx.await {
        Ok(s) => json_response(&s),
        Err(_) => shutting_down(),
    }
}

async fn metrics(State(shared): ApiState) -> Response {
    let (tx, rx) = oneshot::channel::<String>();
    if shared.ask.send(Ask::Metrics(tx)).await.is_err() {
        return shutting_down();
    }
    match rx.await {
        Ok(text) => full(StatusCode::OK, "text/plain; version=0.0.4", text),
        Err(_) => shutting_down(),
    }
}

async fn openapi() -> Response {
    full(
        StatusCode::OK,
        "application/json",
        include_str!("openapi.json"),
    )
}

/// Whether the client asked for Server-Sent Events: `sse=1` (or `true`), or an `Accept`
/// header that names `text/event-stream`.
pub(super) fn wants_sse(sse: Option<&str>, headers: &HeaderMap) -> bool {
    matches!(sse, Some("1" | "true"))
        || headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"))
}

/// `duration`: how long a stream lasts, in seconds (a positive number, as
/// `watch --duration`); without it, as long as the connection.
pub(super) fn stream_duration(params: &[(String, String)]) -> Result<Option<Duration>, String> {
    let mut duration = None;
    for v in values(params, "duration") {
        match v.parse::<f64>() {
            Ok(secs) if secs.is_finite() && secs > 0.0 && secs < 1e9 => {
                duration = Some(Duration::from_secs_f64(secs));
            }
            _ => {
                return Err(format!(
                    "duration '{v}' is not a positive number of seconds"
                ))
            }
        }
    }
    Ok(duration)
}

async fn events(State(shared): ApiState, Query(params): Params, headers: HeaderMap) -> Response {
    if let Err(e) = only(&params, &EVENTS_PARAMS) {
        return bad_request(&e);
    }
    let (format, sse, duration) = match (
        one_of(&params, "format", &FORMATS),
        one_of(&params, "sse", &SSE),
        stream_duration(&params),
    ) {
        (Ok(f), Ok(s), Ok(d)) => (f, s, d),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return bad_request(&e),
    };
    let text = format == Some("text");
    let sse = wants_sse(sse, &headers);
    match Filter::new(
        &values(&params, "container"),
        &values(&params, "network"),
        &values(&params, "kind"),
    ) {
        Ok(f) => event_stream(&shared, f, text, sse, duration),
        Err(e) => bad_request(&e.to_string()),
    }
}

/// The live event stream for one client: its own bounded queue, fed from the broadcast;
/// when the client falls behind, what it missed is counted and told to it. It ends after
/// `duration`, when given.
fn event_stream(
    shared: &Arc<Shared>,
    filter: Filter,
    text: bool,
    sse: bool,
    duration: Option<Duration>,
) -> Response {
    let until = duration.map(|d| tokio::time::Instant::now() + d);
    let mut rx = shared.events.subscribe();
    let (tx, out) = mpsc::channel::<Bytes>(CLIENT_QUEUE);
    let sh = Arc::clone(shared);
    sh.clients.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        let frame = |body: &Bytes| -> Bytes {
            if sse {
                let mut v = Vec::with_capacity(body.len() + 8);
                v.extend_from_slice(b"data: ");
                v.extend_from_slice(body.strip_suffix(b"\n").unwrap_or(body));
                v.extend_from_slice(b"\n\n");
                Bytes::from(v)
            } else {
                body.clone()
            }
        };
        // A first line, so a client knows it is subscribed before events flow.
        let hello = if text {
            Bytes::from_static(b"")
        } else {
            Bytes::from_static(b"{\"kind\":\"subscribed\"}\n")
        };
        if !hello.is_empty() && tx.send(frame(&hello)).await.is_err() {
            return;
        }
        // Events this client missed: its queue was full, or it fell behind the broadcast.
        // Counted at once, and told at once: this task (never the broadcaster) waits for
        // room in the client's queue for the notice, so a burst's losses are told even when
        // no event follows it. What the broadcast sends meanwhile is counted as lag.
        let notice = |missed: u64| {
            Bytes::from(if text {
                format!(
                    "netlab: this client fell behind and lost {}\n",
                    crate::output::plural(missed, "event", "events")
                )
            } else {
                format!("{{\"kind\":\"lost\",\"events\":{missed}}}\n")
            })
        };
        // An event as this client gets it, if its filter takes it.
        let framed = |ev: &StreamEvent| {
            filter
                .matches_meta(&ev.meta)
                .then(|| frame(if text { &ev.text } else { &ev.json }))
        };
        let mut stopping = sh.stopping.subscribe();
        loop {
            let next = async {
                match until {
                    Some(t) => tokio::time::timeout_at(t, rx.recv()).await.ok(),
                    None => Some(rx.recv().await),
                }
            };
            let received = tokio::select! {
                biased;
                r = next => match r {
                    Some(received) => received,
                    None => break,
                },
                () = async { let _ = stopping.wait_for(|s| *s).await; } => {
                    // What was published before the stop still goes out, then the last line.
                    while let Ok(ev) = rx.try_recv() {
                        if let Some(bytes) = framed(&ev) {
                            if tx.send(bytes).await.is_err() {
                                break;
                            }
                        }
                    }
                    let last = if text { STOPPED_TEXT } else { STOPPED_JSON };
                    let _ = tx.send(frame(&Bytes::from_static(last.as_bytes()))).await;
                    break;
                }
            };
            let missed = match received {
                Ok(ev) => {
                    let Some(bytes) = framed(&ev) else {
                        continue;
                    };
                    // Never make the broadcast wait for a slow client: what does not fit
                    // its queue is lost to it.
                    match tx.try_send(bytes) {
                        Ok(()) => continue,
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            sh.client_lost.fetch_add(1, Ordering::Relaxed);
                            1
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => break,
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    sh.client_lost.fetch_add(n, Ordering::Relaxed);
                    n
                }
                Err(broadcast::error::RecvError::Closed) => break,
            };
            if tx.send(frame(&notice(missed))).await.is_err() {
                break;
            }
        }
    });
    // The client counts until its body has ended, or it went.
    let client = Client(Arc::clone(shared));
    let stream = futures_util::stream::unfold((out, client), |(mut out, client)| async move {
        out.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(b), (out, client)))
    });
    let ctype = if sse {
        "text/event-stream"
    } else if text {
        "text/plain; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    full(StatusCode::OK, ctype, Body::from_stream(stream))
}

/// One client of the event stream, counted in [`Shared`] while it lives.
struct Client(Arc<Shared>);

impl Drop for Client {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A listener for [`axum::serve()`] that says in the daemon's log when accepting a client
/// fails (too many open files...) and tries again 100 ms later.
pub struct Accepting<L>(L);

macro_rules! accepting {
    ($listener:ty, $io:ty, $addr:ty) => {
        impl axum::serve::Listener for Accepting<$listener> {
            type Io = $io;
            type Addr = $addr;

            async fn accept(&mut self) -> (Self::Io, Self::Addr) {
                loop {
                    match self.0.accept().await {
                        Ok(accepted) => return accepted,
                        Err(e) => {
                            log::warn!("accepting a client: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }

            fn local_addr(&self) -> std::io::Result<Self::Addr> {
                self.0.local_addr()
            }
        }
    };
}

accepting!(
    tokio::net::UnixListener,
    tokio::net::UnixStream,
    tokio::net::unix::SocketAddr
);
accepting!(
    tokio::net::TcpListener,
    tokio::net::TcpStream,
    std::net::SocketAddr
);

/// Serves the API on `listener` (a tokio `UnixListener` or `TcpListener`) until the
/// process ends.
pub fn serve<L>(shared: Arc<Shared>, listener: L)
where
    Accepting<L>: axum::serve::Listener,
    <Accepting<L> as axum::serve::Listener>::Addr: std::fmt::Debug,
{
    let app = axum::ServiceExt::<Request>::into_make_service(app(shared));
    let listener = Accepting(listener);
    tokio::spawn(async move {
        // It never returns: a failed accept is retried, a failed connection ends alone.
        if let Err(e) = axum::serve(listener, app).await {
            log::warn!("serving the API: {e}");
        }
    });
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::path::PathBuf;

    /// The API's state with fixed answers from the loop: an empty summary with 7 events,
    /// a one-line metrics page, an empty topology, 2 interfaces attached; and the sender of
    /// its events.
    pub(in crate::api) fn fixed_state() -> (Arc<Shared>, broadcast::Sender<Arc<StreamEvent>>) {
        let (events, _) = broadcast::channel(16);
        let (ask, mut asked) = mpsc::channel::<Ask>(4);
        tokio::spawn(async move {
            while let Some(a) = asked.recv().await {
                match a {
                    Ask::Counters(tx) => {
                        let _ = tx.send(Summary::new(Vec::new(), Default::default(), 7));
                    }
                    Ask::Metrics(tx) => {
                        let _ = tx.send("netlab_attached_interfaces 2\n".into());
                    }
                    Ask::Map(tx) => {
                        let _ = tx.send(crate::output::map::MapOutput::default().view(
                            &Topology::default(),
                            Default::default(),
                            std::time::Instant::now(),
                        ));
                    }
                }
            }
        });
        let shared = Arc::new(Shared::new(
            Arc::new(Topology::default()),
            events.clone(),
            ask,
            2,
            true,
        ));
        (shared, events)
    }

    /// An event of kind `icmp-echo-request` from `container`.
    fn event_from(container: &str) -> Arc<StreamEvent> {
        Arc::new(StreamEvent {
            json: Bytes::from(format!(
                "{{\"kind\":\"icmp-echo-request\",\"container\":\"{container}\"}}\n"
            )),
            text: Bytes::from(format!("ping from {container}\n")),
            meta: crate::output::stream::EventMeta {
                kind: "icmp-echo-request".into(),
                containers: vec![container.into()],
                ..Default::default()
            },
        })
    }

    /// `method uri` with `headers`, through the router in-process.
    pub(in crate::api) async fn call(
        shared: &Arc<Shared>,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Body::empty()).expect("a valid request");
        tower::ServiceExt::oneshot(app(Arc::clone(shared)), req)
            .await
            .unwrap_or_else(|e| match e {})
    }

    pub(in crate::api) fn content_type(r: &Response) -> &str {
        r.headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The whole body of a response that ends.
    pub(in crate::api) async fn body_text(r: Response) -> String {
        let b = http_body_util::BodyExt::collect(r.into_body())
            .await
            .expect("a body")
            .to_bytes();
        String::from_utf8_lossy(&b).into_owned()
    }

    /// The next piece of a streamed body (at most 10 s away).
    pub(in crate::api) async fn next_piece(body: &mut Body) -> String {
        let frame = tokio::time::timeout(
            Duration::from_secs(10),
            http_body_util::BodyExt::frame(body),
        )
        .await
        .expect("a piece within 10 s")
        .expect("the stream goes on")
        .expect("a frame");
        String::from_utf8_lossy(frame.data_ref().expect("data")).into_owned()
    }

    #[tokio::test]
    async fn every_endpoint_answers_get() {
        let (shared, _events) = fixed_state();
        for (path, status, ctype) in [
            ("/v1/health", 200, "application/json"),
            ("/v1/topology", 200, "application/json"),
            ("/v1/topology?format=text", 200, "text/plain; charset=utf-8"),
            ("/v1/counters", 200, "application/json"),
            ("/v1/openapi.json", 200, "application/json"),
            ("/metrics", 200, "text/plain; version=0.0.4"),
            ("/v1/events", 200, "application/x-ndjson"),
        ] {
            let r = call(&shared, "GET", path, &[]).await;
            assert_eq!(r.status(), status, "GET {path}");
            assert_eq!(content_type(&r), ctype, "GET {path}");
        }
        let counters = call(&shared, "GET", "/v1/counters", &[]).await;
        let counters: serde_json::Value =
            serde_json::from_str(&body_text(counters).await).expect("JSON");
        assert_eq!(counters["events"], 7, "{counters}");
        let spec = body_text(call(&shared, "GET", "/v1/openapi.json", &[]).await).await;
        assert_eq!(spec, include_str!("openapi.json"));
    }

    /// The spec describes what the server does: the paths it serves (GET only), and every
    /// `kind` the filter accepts.
    #[test]
    fn the_spec_matches_the_server() {
        let spec: serde_json::Value =
            serde_json::from_str(include_str!("openapi.json")).expect("the spec is JSON");
        let paths = spec["paths"].as_object().expect("paths");
        let mut documented: Vec<(String, String)> = paths
            .iter()
            .flat_map(|(path, item)| {
                let methods = item.as_object().expect("a path item").keys();
                methods.map(|m| (path.clone(), m.to_ascii_uppercase()))
            })
            .collect();
        let mut served: Vec<(String, String)> = PATHS
            .iter()
            .map(|(p, m)| ((*p).to_owned(), (*m).to_owned()))
            .collect();
        documented.sort_unstable();
        served.sort_unstable();
        assert_eq!(documented, served);
        let kind = paths["/v1/events"]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .find(|p| p["name"] == "kind")
            .expect("a kind parameter");
        let enumerated: Vec<&str> = kind["schema"]["items"]["enum"]
            .as_array()
            .expect("kind's values")
            .iter()
            .map(|v| v.as_str().expect("a string"))
            .collect();
        assert_eq!(enumerated, crate::model::filter::every_kind_value());
    }

    #[test]
    fn durations_are_positive_seconds() {
        let d = |v: &str| stream_duration(&[("duration".to_owned(), v.to_owned())]);
        assert_eq!(stream_duration(&[]), Ok(None));
        assert_eq!(d("0.5"), Ok(Some(Duration::from_millis(500))));
        assert_eq!(d("2"), Ok(Some(Duration::from_secs(2))));
        for bad in ["0", "-1", "soon", "inf", "NaN", "1e9", ""] {
            assert!(d(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn values_outside_the_spec_are_refused() {
        let (shared, _events) = fixed_state();
        for (uri, why) in [
            (
                "/v1/events?sse=yes",
                "sse 'yes' is not one of 0, 1, false, true",
            ),
            ("/v1/events?format=", "format '' is not one of json, text"),
            (
                "/v1/events?format=text&format=xml",
                "format 'xml' is not one of json, text",
            ),
            (
                "/v1/topology?format=txt",
                "format 'txt' is not one of json, text",
            ),
            (
                "/v1/events?contianer=AppDev",
                "unknown parameter 'contianer': use container, network, kind, format, sse, duration",
            ),
            (
                "/v1/topology?sse=1",
                "unknown parameter 'sse': use format",
            ),
            ("/v1/map?kind=icmp", "unknown parameter 'kind': use sse, duration"),
        ] {
            let r = call(&shared, "GET", uri, &[]).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{uri}");
            assert_eq!(body_text(r).await, format!("{why}\n"), "{uri}");
        }
        let r = call(&shared, "GET", "/v1/topology?format=json", &[]).await;
        assert_eq!(content_type(&r), "application/json");
    }

    #[tokio::test]
    async fn a_stream_with_a_duration_ends() {
        let (shared, _events) = fixed_state();
        let r = call(&shared, "GET", "/v1/events?duration=0.2&kind=icmp", &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body = tokio::time::timeout(Duration::from_secs(10), body_text(r))
            .await
            .expect("the stream ends within 10 s");
        assert_eq!(body, "{\"kind\":\"subscribed\"}\n");
        let r = call(&shared, "GET", "/v1/events?duration=0", &[]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            body_text(r).await,
            "duration '0' is not a positive number of seconds\n"
        );
    }

    /// When the daemon stops, each stream gets what was published before, then a last line
    /// saying so, and ends; the client no longer counts.
    #[tokio::test]
    async fn a_stop_ends_every_stream_with_a_last_line() {
        let (shared, events) = fixed_state();
        let json = call(&shared, "GET", "/v1/events", &[]).await;
        let text = call(&shared, "GET", "/v1/events?format=text", &[]).await;
        let mut json_body = json.into_body();
        assert_eq!(
            next_piece(&mut json_body).await,
            "{\"kind\":\"subscribed\"}\n"
        );
        assert_eq!(shared.clients.load(Ordering::Relaxed), 2);
        events.send(event_from("AppDev")).expect("two clients");
        tokio::time::timeout(
            Duration::from_secs(10),
            shared.stop_streams(Duration::from_millis(100)),
        )
        .await
        .expect("the stop returns");
        let rest = tokio::time::timeout(Duration::from_secs(10), async {
            let r = Response::new(json_body);
            body_text(r).await
        })
        .await
        .expect("the stream ended");
        assert_eq!(
            rest,
            format!("{{\"kind\":\"icmp-echo-request\",\"container\":\"AppDev\"}}\n{STOPPED_JSON}")
        );
        let text = tokio::time::timeout(Duration::from_secs(10), body_text(text))
            .await
            .expect("the stream ended");
        assert_eq!(text, format!("ping from AppDev\n{STOPPED_TEXT}"));
        assert_eq!(shared.clients.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn other_paths_are_404_and_other_methods_405() {
        let (shared, _events) = fixed_state();
        for path in [
            "/index.html",
            "/v1",
            "/v1/health/",
            "/v1/HEALTH",
            "/v1/%68ealth",
            "/metrics/x",
        ] {
            let r = call(&shared, "GET", path, &[]).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "GET {path}");
            assert_eq!(content_type(&r), "text/plain");
            assert_eq!(body_text(r).await, "not found; see /v1/openapi.json\n");
        }
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE"] {
            for (path, allowed) in PATHS {
                if method == allowed {
                    continue;
                }
                let r = call(&shared, method, path, &[]).await;
                assert_eq!(
                    r.status(),
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}"
                );
                // RFC 9110: a 405 lists what the path serves.
                assert_eq!(
                    r.headers().get_all(ALLOW).iter().collect::<Vec<_>>(),
                    [allowed],
                    "{method} {path}"
                );
                assert_eq!(
                    body_text(r).await,
                    format!("{allowed} only\n"),
                    "{method} {path}"
                );
            }
            // A path the API does not serve is not found, whatever the method.
            for path in ["/nope", "/v1/health/", "/v1/%68ealth"] {
                let r = call(&shared, method, path, &[]).await;
                assert_eq!(r.status(), StatusCode::NOT_FOUND, "{method} {path}");
                assert!(r.headers().get(ALLOW).is_none(), "{method} {path}");
            }
        }
        // The one action takes POST alone; GET is refused there too.
        let r = call(&shared, "GET", "/v1/diagnose", &[]).await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body_text(r).await, "POST only\n");
    }

    #[test]
    fn query_strings_are_decoded() {
        let pairs = |q: &str| {
            let uri: axum::http::Uri = format!("/v1/events?{q}").parse().expect("a URI");
            Params::try_from_uri(&uri).expect("decoded").0
        };
        let p = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            pairs("container=AppDev&kind=icmp&kind=drop&format=text&network=my%20net&x"),
            vec![
                p("container", "AppDev"),
                p("kind", "icmp"),
                p("kind", "drop"),
                p("format", "text"),
                p("network", "my net"),
                p("x", ""),
            ]
        );
        assert_eq!(pairs(""), vec![]);
        assert_eq!(pairs("&&a=1&"), vec![p("a", "1")]);
        // Malformed escapes stay as written, `+` is a space, bytes that are not UTF-8 are
        // replaced: nothing in a query string is refused.
        assert_eq!(pairs("a=a%2"), vec![p("a", "a%2")]);
        assert_eq!(pairs("a=%zz+%41"), vec![p("a", "%zz A")]);
        assert_eq!(pairs("a%3Db=c%26d=e"), vec![p("a=b", "c&d=e")]);
        assert_eq!(
            pairs("n=%E2%87%84&m=%FF"),
            vec![p("n", "⇄"), p("m", "\u{FFFD}")]
        );
        let params = pairs("kind=icmp&container=a&kind=drop");
        assert_eq!(values(&params, "kind"), ["icmp", "drop"]);
        assert_eq!(values(&params, "network"), Vec::<String>::new());
    }

    #[tokio::test]
    async fn query_values_reach_the_endpoints_decoded() {
        let (shared, events) = fixed_state();
        let text = call(&shared, "GET", "/v1/topology?format=te%78t", &[]).await;
        assert_eq!(content_type(&text), "text/plain; charset=utf-8");
        // `text ` is not `text`, nor is a byte that is not UTF-8.
        for (q, shown) in [("text+", "text "), ("%FF", "\u{fffd}")] {
            let r = call(&shared, "GET", &format!("/v1/topology?format={q}"), &[]).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "format={q}");
            assert_eq!(
                body_text(r).await,
                format!("format '{shown}' is not one of json, text\n")
            );
        }
        // Malformed escapes are decoded as written, then refused as parameters the
        // endpoint does not take.
        for (q, key) in [("%", "%"), ("%zz", "%zz"), ("=", ""), ("a=b=c", "a")] {
            let r = call(&shared, "GET", &format!("/v1/topology?{q}"), &[]).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "?{q}");
            assert_eq!(
                body_text(r).await,
                format!("unknown parameter '{key}': use format\n"),
                "?{q}"
            );
        }
        let bad = call(&shared, "GET", "/v1/events?kind=icmp&kind=b%6Fgus", &[]).await;
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert!(
            body_text(bad).await.starts_with("unknown kind 'bogus': "),
            "the decoded kind is named"
        );
        // A percent-encoded container name selects events, case aside.
        let r = call(
            &shared,
            "GET",
            "/v1/events?container=My%20Box&kind=icmp",
            &[],
        )
        .await;
        let mut body = r.into_body();
        assert_eq!(next_piece(&mut body).await, "{\"kind\":\"subscribed\"}\n");
        let _ = events.send(event_from("other"));
        let _ = events.send(event_from("my box"));
        assert_eq!(
            next_piece(&mut body).await,
            "{\"kind\":\"icmp-echo-request\",\"container\":\"my box\"}\n"
        );
    }

    #[tokio::test]
    async fn event_streams_are_ndjson_sse_or_text() {
        let (shared, events) = fixed_state();
        let sse = "text/event-stream";
        let ndjson = "application/x-ndjson";
        let text = "text/plain; charset=utf-8";
        let accept_sse = [("accept", "text/html, text/event-stream;q=0.9")];
        let accept_json = [("accept", "application/json")];
        type Headers<'a> = &'a [(&'a str, &'a str)];
        let cases: [(&str, Headers, &str); 9] = [
            ("/v1/events", &[], ndjson),
            ("/v1/events", &accept_json, ndjson),
            ("/v1/events", &accept_sse, sse),
            ("/v1/events?sse=1", &[], sse),
            ("/v1/events?sse=true", &[], sse),
            ("/v1/events?sse=0", &[], ndjson),
            ("/v1/events?sse=false", &[], ndjson),
            ("/v1/events?format=text", &[], text),
            ("/v1/events?format=text&sse=1", &[], sse),
        ];
        let mut bodies = Vec::new();
        for (uri, headers, ctype) in cases {
            let r = call(&shared, "GET", uri, headers).await;
            assert_eq!(r.status(), StatusCode::OK, "{uri}");
            assert_eq!(content_type(&r), ctype, "{uri} {headers:?}");
            bodies.push((uri, ctype, r.into_body()));
        }
        let _ = events.send(event_from("a"));
        let json = "{\"kind\":\"icmp-echo-request\",\"container\":\"a\"}";
        for (uri, ctype, mut body) in bodies {
            let text_mode = uri.contains("format=text");
            let want: Vec<String> = match (ctype == sse, text_mode) {
                (true, true) => vec!["data: ping from a\n\n".into()],
                (true, false) => vec![
                    "data: {\"kind\":\"subscribed\"}\n\n".into(),
                    format!("data: {json}\n\n"),
                ],
                (false, true) => vec!["ping from a\n".into()],
                (false, false) => vec!["{\"kind\":\"subscribed\"}\n".into(), format!("{json}\n")],
            };
            for w in want {
                assert_eq!(next_piece(&mut body).await, w, "{uri}");
            }
        }
    }

    /// The API with fixed answers from the loop (an empty summary with 7 events, a
    /// one-line metrics page), served on a unix socket of its own.
    struct TestApi {
        dir: PathBuf,
        socket: PathBuf,
        events: broadcast::Sender<Arc<StreamEvent>>,
    }

    impl TestApi {
        fn start(tag: &str) -> TestApi {
            let dir =
                std::env::temp_dir().join(format!("netlab-api-test-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("test directory");
            let socket = dir.join("api.sock");
            let (shared, events) = fixed_state();
            let l = std::os::unix::net::UnixListener::bind(&socket).expect("test socket");
            l.set_nonblocking(true).expect("nonblocking");
            serve(
                shared,
                tokio::net::UnixListener::from_std(l).expect("tokio listener"),
            );
            TestApi {
                dir,
                socket,
                events,
            }
        }

        /// Sends `request` as written and reads until the server closes; the `date`
        /// header (the only one that changes) is left out.
        async fn exchange(&self, request: &str) -> String {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let mut s = tokio::net::UnixStream::connect(&self.socket)
                .await
                .expect("connect");
            s.write_all(request.as_bytes()).await.expect("write");
            let mut raw = Vec::new();
            tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
                .await
                .expect("the server closes")
                .expect("read");
            without_date(&String::from_utf8_lossy(&raw))
        }

        /// `GET path` as HTTP/1.0 with `headers`; the connection stays open.
        async fn open(&self, path: &str, headers: &str) -> tokio::net::UnixStream {
            use tokio::io::AsyncWriteExt as _;
            let mut s = tokio::net::UnixStream::connect(&self.socket)
                .await
                .expect("connect");
            let req = format!("GET {path} HTTP/1.0\r\nHost: netlab\r\n{headers}\r\n");
            s.write_all(req.as_bytes()).await.expect("write");
            s
        }

        /// Broadcasts an event from `container`.
        fn event(&self, container: &str) {
            let _ = self.events.send(event_from(container));
        }
    }

    impl Drop for TestApi {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn without_date(raw: &str) -> String {
        raw.split_inclusive("\r\n")
            .filter(|l| !l.to_ascii_lowercase().starts_with("date:"))
            .collect()
    }

    /// Reads from `s` until what was read contains `until` (at most 10 s).
    async fn read_until(s: &mut tokio::net::UnixStream, until: &str) -> String {
        use tokio::io::AsyncReadExt as _;
        let mut raw = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(&raw).contains(until) {
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no {until:?} within 10 s in {:?}",
                        String::from_utf8_lossy(&raw)
                    )
                })
                .expect("read");
            assert!(
                n > 0,
                "closed before {until:?}: {:?}",
                String::from_utf8_lossy(&raw)
            );
            raw.extend_from_slice(&buf[..n]);
        }
        without_date(&String::from_utf8_lossy(&raw))
    }

    fn get(path: &str) -> String {
        format!("GET {path} HTTP/1.0\r\nHost: netlab\r\n\r\n")
    }

    #[tokio::test]
    async fn answers_on_the_wire() {
        let api = TestApi::start("answers");
        let health = api.exchange(&get("/v1/health")).await;
        assert_eq!(
            health,
            "HTTP/1.0 200 OK\r\ncontent-type: application/json\r\ncontent-length: 140\r\n\r\n\
             {\"attached_interfaces\":2,\"client_events_lost\":0,\"clients\":0,\"docker\":true,\
             \"hooks_lost\":0,\"read_only\":true,\"status\":\"ok\",\"uptime_seconds\":0}\n"
        );
        // Query parameters an endpoint does not read, and the absolute form, change nothing.
        assert_eq!(api.exchange(&get("/v1/health?format=text&x")).await, health);
        assert_eq!(api.exchange(&get("http://netlab/v1/health")).await, health);
        let topo_json = format!(
            "{}\n",
            serde_json::to_string(&Topology::default()).expect("json")
        );
        assert_eq!(
            api.exchange(&get("/v1/topology")).await,
            format!(
                "HTTP/1.0 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{topo_json}",
                topo_json.len()
            )
        );
        let topo_text = crate::docker::view::render(&Topology::default());
        let text_answer = format!(
            "HTTP/1.0 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\r\n{topo_text}",
            topo_text.len()
        );
        assert_eq!(
            api.exchange(&get("/v1/topology?format=text")).await,
            text_answer
        );
        assert_eq!(
            api.exchange(&get("/v1/topology?format=te%78t")).await,
            text_answer
        );
        let counters = format!(
            "{}\n",
            serde_json::to_string(&Summary::new(Vec::new(), Default::default(), 7)).expect("json")
        );
        assert_eq!(
            api.exchange(&get("/v1/counters")).await,
            format!(
                "HTTP/1.0 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{counters}",
                counters.len()
            )
        );
        assert_eq!(
            api.exchange(&get("/metrics")).await,
            "HTTP/1.0 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: 29\r\n\r\n\
             netlab_attached_interfaces 2\n"
        );
        let spec = include_str!("openapi.json");
        assert_eq!(
            api.exchange(&get("/v1/openapi.json")).await,
            format!(
                "HTTP/1.0 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{spec}",
                spec.len()
            )
        );
        // HTTP/1.1 keeps the connection unless told otherwise. (The router sets the
        // length before hyper adds `connection`; the hand-made server wrote them the other
        // way round. HTTP gives the order of different fields no meaning.)
        assert_eq!(
            api.exchange("GET /metrics HTTP/1.1\r\nHost: netlab\r\nConnection: close\r\n\r\n")
                .await,
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: 29\r\n\
             connection: close\r\n\r\nnetlab_attached_interfaces 2\n"
        );
    }

    #[tokio::test]
    async fn refusals_on_the_wire() {
        let api = TestApi::start("refusals");
        let not_found =
            "HTTP/1.0 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 32\r\n\r\n\
                         not found; see /v1/openapi.json\n";
        for path in [
            "/index.html",
            "/nope",
            "/v1/health/",
            "/v1/Health",
            "/v1/%68ealth",
            "/v1",
            "//v1/health",
        ] {
            assert_eq!(api.exchange(&get(path)).await, not_found, "GET {path}");
        }
        let get_only = "HTTP/1.0 405 Method Not Allowed\r\ncontent-type: text/plain\r\n\
                        allow: GET\r\ncontent-length: 9\r\n\r\nGET only\n";
        for (method, path) in [
            ("POST", "/v1/health"),
            ("PUT", "/metrics"),
            ("DELETE", "/v1/events"),
            ("OPTIONS", "/v1/topology"),
            ("TRACE", "/v1/topology"),
        ] {
            let req =
                format!("{method} {path} HTTP/1.0\r\nHost: netlab\r\nContent-Length: 0\r\n\r\n");
            assert_eq!(api.exchange(&req).await, get_only, "{method} {path}");
        }
        let req = "POST /nope HTTP/1.0\r\nHost: netlab\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(api.exchange(req).await, not_found, "POST /nope");
        // HEAD is refused too: the head of the refusal, no body.
        assert_eq!(
            api.exchange("HEAD /v1/health HTTP/1.0\r\nHost: netlab\r\n\r\n")
                .await,
            "HTTP/1.0 405 Method Not Allowed\r\ncontent-type: text/plain\r\nallow: GET\r\n\
             content-length: 9\r\n\r\n"
        );
        let unknown = "HTTP/1.0 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 157\r\n\r\n\
                       unknown kind 'bogus': use arp, icmp, icmp6, ndp, malformed, drop, journey, \
                       arp-unanswered, topology or an exact kind such as icmp-echo-request or iface-gone\n";
        assert_eq!(api.exchange(&get("/v1/events?kind=bogus")).await, unknown);
        assert_eq!(
            api.exchange(&get("/v1/events?kind=icmp&kind=b%6Fgus"))
                .await,
            unknown
        );
        assert_eq!(api.exchange(&get("/v1/events?kind=BOG%55S")).await, unknown);
    }

    #[tokio::test]
    async fn event_streams_on_the_wire() {
        let api = TestApi::start("events");
        // NDJSON, filtered by a percent-encoded container name.
        let mut ndjson = api
            .open("/v1/events?container=my%20box&kind=icmp", "")
            .await;
        assert_eq!(
            read_until(&mut ndjson, "subscribed").await,
            "HTTP/1.0 200 OK\r\ncontent-type: application/x-ndjson\r\n\r\n{\"kind\":\"subscribed\"}\n"
        );
        // Server-Sent Events, asked for by header or by parameter.
        let mut by_header = api
            .open("/v1/events", "Accept: text/event-stream\r\n")
            .await;
        let mut by_param = api.open("/v1/events?sse=1", "").await;
        let mut by_true = api.open("/v1/events?sse=true", "").await;
        for s in [&mut by_header, &mut by_param, &mut by_true] {
            assert_eq!(
                read_until(s, "subscribed").await,
                "HTTP/1.0 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: {\"kind\":\"subscribed\"}\n\n"
            );
        }
        // Text: no greeting.
        let mut text = api
            .open("/v1/events?format=text&container=my+box", "")
            .await;
        let mut text_head = read_until(&mut text, "\r\n\r\n").await;
        assert_eq!(
            text_head,
            "HTTP/1.0 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\n\r\n"
        );
        // HTTP/1.1: the same stream, chunked.
        let mut chunked = tokio::net::UnixStream::connect(&api.socket)
            .await
            .expect("connect");
        tokio::io::AsyncWriteExt::write_all(
            &mut chunked,
            b"GET /v1/events?sse=0 HTTP/1.1\r\nHost: netlab\r\n\r\n",
        )
        .await
        .expect("write");
        assert_eq!(
            read_until(&mut chunked, "subscribed\"}\n\r\n").await,
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n\
             16\r\n{\"kind\":\"subscribed\"}\n\r\n"
        );
        api.event("other");
        api.event("My Box");
        let mine = "{\"kind\":\"icmp-echo-request\",\"container\":\"My Box\"}\n";
        let other = "{\"kind\":\"icmp-echo-request\",\"container\":\"other\"}\n";
        assert_eq!(read_until(&mut ndjson, "My Box").await, mine);
        assert_eq!(
            read_until(&mut by_param, "My Box").await,
            format!(
                "data: {}\n\ndata: {}\n\n",
                other.trim_end(),
                mine.trim_end()
            )
        );
        text_head = read_until(&mut text, "\n").await;
        assert_eq!(text_head, "ping from My Box\n");
        assert_eq!(
            read_until(&mut chunked, "My Box\"}\n\r\n").await,
            format!("31\r\n{other}\r\n32\r\n{mine}\r\n")
        );
        let health = api.exchange(&get("/v1/health")).await;
        assert!(health.contains("\"clients\":6,"), "{health}");
    }
}

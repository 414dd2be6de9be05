//! The daemon's API server: the endpoints, each client's event stream, and serving them on
//! a listener. The daemon's loop owns the kernel objects; handlers read what it publishes
//! in [`Shared`] and ask it for counters and metrics through [`Ask`].
//!
//! Endpoints (documented in `openapi.json`, served at `/v1/openapi.json`):
//! `/v1/health`, `/v1/topology`, `/v1/counters`, `/v1/events` (NDJSON, or Server-Sent
//! Events with `Accept: text/event-stream` or `?sse=1`), `/metrics` (Prometheus).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response, StatusCode};
use tokio::sync::{broadcast, mpsc, oneshot};

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
}

/// What API handlers share; the daemon's loop keeps the public fields up to date.
pub struct Shared {
    pub topo: RwLock<Arc<Topology>>,
    events: broadcast::Sender<Arc<StreamEvent>>,
    ask: mpsc::Sender<Ask>,
    pub attached: AtomicUsize,
    /// Whether the Docker engine answers now.
    pub docker: AtomicBool,
    clients: AtomicUsize,
    started: Instant,
    /// Events lost by slow clients, all clients together.
    client_lost: AtomicU64,
    /// Hooks found detached by something else (and attached again).
    pub hooks_lost: AtomicU64,
}

impl Shared {
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
            attached: AtomicUsize::new(attached),
            docker: AtomicBool::new(docker),
            clients: AtomicUsize::new(0),
            started: Instant::now(),
            client_lost: AtomicU64::new(0),
            hooks_lost: AtomicU64::new(0),
        }
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn full(status: StatusCode, ctype: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn json_response<T: serde::Serialize>(v: &T) -> Response<Body> {
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

/// Query parameters: `container`, `network` and `kind` repeat; `format=text`; `sse=1`.
fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(v)) => {
                out.push(v);
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The live event stream for one client: its own bounded queue, fed from the broadcast;
/// when the client falls behind, what it missed is counted and told to it.
fn event_stream(shared: &Arc<Shared>, filter: Filter, text: bool, sse: bool) -> Response<Body> {
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
            sh.clients.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        // Events this client missed since it was last told: its queue was full, or it
        // fell behind the broadcast. Counted at once; told as soon as there is room.
        let mut missed: u64 = 0;
        loop {
            let ev = match rx.recv().await {
                Ok(ev) => Some(ev),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    sh.client_lost.fetch_add(n, Ordering::Relaxed);
                    missed += n;
                    None
                }
                Err(broadcast::error::RecvError::Closed) => break,
            };
            if missed > 0 {
                let notice = if text {
                    format!("netlab: this client fell behind and lost {missed} events\n")
                } else {
                    format!("{{\"kind\":\"lost\",\"events\":{missed}}}\n")
                };
                match tx.try_send(frame(&Bytes::from(notice))) {
                    Ok(()) => missed = 0,
                    Err(mpsc::error::TrySendError::Full(_)) => {}
                    Err(mpsc::error::TrySendError::Closed(_)) => break,
                }
            }
            let Some(ev) = ev else { continue };
            if !filter.matches_meta(&ev.meta) {
                continue;
            }
            let body = if text { &ev.text } else { &ev.json };
            // Never wait for a slow client: what does not fit its queue is lost to it.
            match tx.try_send(frame(body)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    missed += 1;
                    sh.client_lost.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            }
        }
        sh.clients.fetch_sub(1, Ordering::Relaxed);
    });
    let stream = futures_util::stream::unfold(out, |mut out| async move {
        out.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), out))
    });
    let mut r = Response::new(StreamBody::new(stream).boxed());
    let ctype = if sse {
        "text/event-stream"
    } else if text {
        "text/plain; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Infallible> {
    if req.method() != hyper::Method::GET {
        return Ok(full(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n",
        ));
    }
    let path = req.uri().path().to_owned();
    let query = parse_query(req.uri().query());
    let r = match path.as_str() {
        "/v1/health" => json_response(&serde_json::json!({
            "status": "ok",
            "attached_interfaces": shared.attached.load(Ordering::Relaxed),
            "clients": shared.clients.load(Ordering::Relaxed),
            "client_events_lost": shared.client_lost.load(Ordering::Relaxed),
            "hooks_lost": shared.hooks_lost.load(Ordering::Relaxed),
            "docker": shared.docker.load(Ordering::Relaxed),
            "uptime_seconds": shared.started.elapsed().as_secs(),
        })),
        "/v1/topology" => {
            let t = shared.topo.read().map(|t| Arc::clone(&t));
            let text = query.iter().any(|(k, v)| k == "format" && v == "text");
            match t {
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
        "/v1/counters" | "/metrics" => {
            let (tx, rx) = oneshot::channel::<Summary>();
            let (mtx, mrx) = oneshot::channel::<String>();
            let asked = if path == "/metrics" {
                shared.ask.send(Ask::Metrics(mtx)).await
            } else {
                shared.ask.send(Ask::Counters(tx)).await
            };
            if asked.is_err() {
                full(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "shutting down\n",
                )
            } else if path == "/metrics" {
                match mrx.await {
                    Ok(text) => full(StatusCode::OK, "text/plain; version=0.0.4", text),
                    Err(_) => full(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        "shutting down\n",
                    ),
                }
            } else {
                match rx.await {
                    Ok(s) => json_response(&s),
                    Err(_) => full(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        "shutting down\n",
                    ),
                }
            }
        }
        "/v1/events" => {
            let get = |k: &str| -> Vec<String> {
                query
                    .iter()
                    .filter(|(x, _)| x == k)
                    .map(|(_, v)| v.clone())
                    .collect()
            };
            let text = get("format").iter().any(|f| f == "text");
            let sse = get("sse").iter().any(|v| v == "1" || v == "true")
                || req
                    .headers()
                    .get(hyper::header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("text/event-stream"));
            match Filter::new(&get("container"), &get("network"), &get("kind")) {
                Ok(f) => event_stream(&shared, f, text, sse),
                Err(e) => full(StatusCode::BAD_REQUEST, "text/plain", format!("{e}\n")),
            }
        }
        "/v1/openapi.json" => full(
            StatusCode::OK,
            "application/json",
            include_str!("openapi.json"),
        ),
        _ => full(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found; see /v1/openapi.json\n",
        ),
    };
    Ok(r)
}

/// Serves connections from `accept` until the process ends.
pub fn serve<L, S>(shared: Arc<Shared>, mut accept: L)
where
    L: FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<S>> + Send>>
        + Send
        + 'static,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let io = match accept().await {
                Ok(io) => io,
                Err(e) => {
                    log::warn!("accepting a client: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let sh = Arc::clone(&shared);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&sh), req));
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
                if let Err(e) = conn.await {
                    log::debug!("client connection: {e}");
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn query_strings() {
        let q = parse_query(Some(
            "container=AppDev&kind=icmp&kind=drop&format=text&network=my%20net&x",
        ));
        assert_eq!(
            q,
            vec![
                ("container".into(), "AppDev".into()),
                ("kind".into(), "icmp".into()),
                ("kind".into(), "drop".into()),
                ("format".into(), "text".into()),
                ("network".into(), "my net".into()),
                ("x".into(), "".into()),
            ]
        );
        assert!(parse_query(None).is_empty());
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz+%41"), "%zz A");
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
            let l = std::os::unix::net::UnixListener::bind(&socket).expect("test socket");
            l.set_nonblocking(true).expect("nonblocking");
            let l = Arc::new(tokio::net::UnixListener::from_std(l).expect("tokio listener"));
            serve(shared, move || {
                let l = Arc::clone(&l);
                Box::pin(async move { l.accept().await.map(|(s, _)| s) })
            });
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

        /// Broadcasts an event from `container` until a stream has it.
        fn event(&self, container: &str) {
            let _ = self.events.send(Arc::new(StreamEvent {
                json: Bytes::from(format!(
                    "{{\"kind\":\"icmp-echo-request\",\"container\":\"{container}\"}}\n"
                )),
                text: Bytes::from(format!("ping from {container}\n")),
                meta: crate::output::stream::EventMeta {
                    kind: "icmp-echo-request".into(),
                    containers: vec![container.into()],
                    ..Default::default()
                },
            }));
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
            "HTTP/1.0 200 OK\r\ncontent-type: application/json\r\ncontent-length: 123\r\n\r\n\
             {\"attached_interfaces\":2,\"client_events_lost\":0,\"clients\":0,\"docker\":true,\
             \"hooks_lost\":0,\"status\":\"ok\",\"uptime_seconds\":0}\n"
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
            api.exchange(&get("/v1/topology?x&format=te%78t")).await,
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
        // HTTP/1.1 keeps the connection unless told otherwise.
        assert_eq!(
            api.exchange("GET /metrics HTTP/1.1\r\nHost: netlab\r\nConnection: close\r\n\r\n")
                .await,
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\nconnection: close\r\n\
             content-length: 29\r\n\r\nnetlab_attached_interfaces 2\n"
        );
    }

    #[tokio::test]
    async fn refusals_on_the_wire() {
        let api = TestApi::start("refusals");
        let not_found =
            "HTTP/1.0 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 32\r\n\r\n\
                         not found; see /v1/openapi.json\n";
        for path in [
            "/",
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
                        content-length: 9\r\n\r\nGET only\n";
        for (method, path) in [
            ("POST", "/v1/health"),
            ("PUT", "/metrics"),
            ("DELETE", "/v1/events"),
            ("OPTIONS", "/v1/topology"),
            ("POST", "/nope"),
        ] {
            let req =
                format!("{method} {path} HTTP/1.0\r\nHost: netlab\r\nContent-Length: 0\r\n\r\n");
            assert_eq!(api.exchange(&req).await, get_only, "{method} {path}");
        }
        // HEAD is refused too: the head of the refusal, no body.
        assert_eq!(
            api.exchange("HEAD /v1/health HTTP/1.0\r\nHost: netlab\r\n\r\n").await,
            "HTTP/1.0 405 Method Not Allowed\r\ncontent-type: text/plain\r\ncontent-length: 9\r\n\r\n"
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

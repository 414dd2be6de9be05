//! A Docker Engine API responder on a unix socket, for part 6: `netlab daemon` reads the
//! generated topology (`endpoints.rs`) through its own Docker client (`DOCKER_HOST=unix://…`),
//! exactly as it reads a Docker engine's. It answers the requests netlab makes: `/_ping`,
//! `/version`, `/info`, `/networks`, `/containers/json`, `/containers/{id}/json` (404 for
//! an unknown container) and `/events`, which it holds open without an event, as an engine
//! does while nothing changes. Paths may carry an API version (`/v1.51/...`).
//!
//! One thread per connection (Docker's client opens one per request, and inspects every new
//! container at once); the socket listens with the kernel's largest backlog, like dockerd.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{Context, Result};

use super::endpoints::{Answers, API_VERSION, ENGINE_VERSION};

/// How often a waiting connection looks at the stop flag.
const POLL: Duration = Duration::from_millis(200);
/// Longest request head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Stack of a connection's thread (it parses one request line and writes prepared text).
const STACK: usize = 128 * 1024;

/// What was asked, counted.
#[derive(Debug, Default)]
pub(super) struct Served {
    pub(super) requests: AtomicU64,
    /// Inspects answered with a container.
    pub(super) inspected: AtomicU64,
    pub(super) not_found: AtomicU64,
    pub(super) events: AtomicU64,
}

/// The responder, serving until dropped (which stops it and removes the socket).
pub(super) struct EngineApi {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    served: Arc<Served>,
    accept: Option<JoinHandle<()>>,
}

impl EngineApi {
    /// Serves `answers` on a new socket at `path` (a stale file there is replaced).
    pub(super) fn start(path: &Path, answers: Answers) -> Result<Self> {
        let _ = std::fs::remove_file(path);
        let listener =
            UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(Served::default());
        let answers = Arc::new(answers);
        let accept = {
            let (stop, served) = (Arc::clone(&stop), Arc::clone(&served));
            thread::Builder::new()
                .name("engine-api".into())
                .spawn(move || accept_loop(&listener, &answers, &stop, &served))
                .context("starting the engine API thread")?
        };
        Ok(EngineApi {
            path: path.to_owned(),
            stop,
            served,
            accept: Some(accept),
        })
    }

    /// `unix:///…`, for `DOCKER_HOST`.
    pub(super) fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    pub(super) fn served(&self) -> &Served {
        &self.served
    }
}

impl Drop for EngineApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which sees the flag.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(
    listener: &UnixListener,
    answers: &Arc<Answers>,
    stop: &Arc<AtomicBool>,
    served: &Arc<Served>,
) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        let (answers, stop, served) = (Arc::clone(answers), Arc::clone(stop), Arc::clone(served));
        let spawned = thread::Builder::new().stack_size(STACK).spawn(move || {
            if let Err(e) = serve(conn, &answers, &stop, &served) {
                eprintln!("xtask: engine API: {e:#}");
            }
        });
        if let Err(e) = spawned {
            eprintln!("xtask: engine API: cannot start a connection thread: {e}");
        }
    }
}

/// A request's head, what the responder needs of it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Head {
    pub(super) method: String,
    /// The path without the query string or API version prefix.
    pub(super) path: String,
    pub(super) content_length: usize,
    pub(super) close: bool,
}

/// Parses the head at the start of `buf` when it is complete; returns it and its length.
pub(super) fn parse_head(buf: &[u8]) -> Option<(Head, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_owned();
    let target = first.next()?;
    let (mut content_length, mut close) = (0, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    Some((
        Head {
            method,
            path: api_path(target).to_owned(),
            content_length,
            close,
        },
        end,
    ))
}

/// `/v1.51/containers/json?all=false` → `/containers/json`.
fn api_path(target: &str) -> &str {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    if let Some(rest) = path.strip_prefix("/v") {
        let (version, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let numeric = version
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if numeric && version.contains('.') {
            return if tail.is_empty() { "/" } else { tail };
        }
    }
    path
}

/// What to answer.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Reply<'a> {
    Json(u16, &'a str),
    Owned(u16, String),
    Text(u16, &'static str),
    /// A stream of events, held open.
    Events,
}

pub(super) fn route<'a>(answers: &'a Answers, method: &str, path: &str) -> Reply<'a> {
    if method != "GET" && method != "HEAD" {
        return Reply::Owned(
            405,
            json_message(&format!("{method} {path} is not served here")),
        );
    }
    match path {
        "/_ping" => Reply::Text(200, "OK"),
        "/version" => Reply::Json(200, &answers.version),
        "/info" => Reply::Json(200, &answers.info),
        "/networks" => Reply::Json(200, &answers.networks),
        "/containers/json" => Reply::Json(200, &answers.containers),
        "/events" => Reply::Events,
        _ => match path
            .strip_prefix("/containers/")
            .and_then(|p| p.strip_suffix("/json"))
        {
            Some(id) => match answers.inspect.get(id) {
                Some(body) => Reply::Json(200, body),
                None => Reply::Owned(404, json_message(&format!("No such container: {id}"))),
            },
            None => Reply::Owned(404, json_message("page not found")),
        },
    }
}

fn json_message(m: &str) -> String {
    serde_json::json!({ "message": m }).to_string()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    }
}

/// The head of an answer, with the headers dockerd sends.
fn response_head(status: u16, content_type: &str, length: Option<usize>) -> String {
    let framing = match length {
        Some(n) => format!("Content-Length: {n}"),
        None => "Transfer-Encoding: chunked".to_owned(),
    };
    format!(
        "HTTP/1.1 {status} {}\r\nApi-Version: {API_VERSION}\r\nContent-Type: {content_type}\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: Docker/{ENGINE_VERSION} (linux)\r\n{framing}\r\n\r\n",
        reason(status)
    )
}

/// Answers the requests of one connection until the client closes it (or the responder
/// stops).
fn serve(
    mut conn: UnixStream,
    answers: &Answers,
    stop: &AtomicBool,
    served: &Served,
) -> Result<()> {
    conn.set_read_timeout(Some(POLL))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let (head, used) = loop {
            if let Some(parsed) = parse_head(&buf) {
                break parsed;
            }
            anyhow::ensure!(
                buf.len() <= MAX_HEAD,
                "a request head longer than {MAX_HEAD} bytes"
            );
            match conn.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if stop.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        };
        // A body (none of netlab's requests has one) is read and ignored.
        while buf.len() < used + head.content_length {
            match conn.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    if stop.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        buf.drain(..used + head.content_length);
        served.requests.fetch_add(1, Ordering::Relaxed);
        let reply = route(answers, &head.method, &head.path);
        let (status, content_type, body): (u16, &str, &str) = match &reply {
            Reply::Json(s, b) => (*s, "application/json", b),
            Reply::Owned(s, b) => (*s, "application/json", b.as_str()),
            Reply::Text(s, b) => (*s, "text/plain; charset=utf-8", b),
            Reply::Events => {
                served.events.fetch_add(1, Ordering::Relaxed);
                conn.write_all(response_head(200, "application/json", None).as_bytes())?;
                return hold(conn, stop);
            }
        };
        if head.path.starts_with("/containers/") && head.path != "/containers/json" {
            let counter = if status == 200 {
                &served.inspected
            } else {
                &served.not_found
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let mut out = response_head(status, content_type, Some(body.len())).into_bytes();
        if head.method != "HEAD" {
            out.extend_from_slice(body.as_bytes());
        }
        conn.write_all(&out)?;
        if head.close {
            return Ok(());
        }
    }
}

/// Keeps an event stream open, sending nothing (nothing changes), until the client leaves
/// or the responder stops; then ends the stream.
fn hold(mut conn: UnixStream, stop: &AtomicBool) -> Result<()> {
    let mut chunk = [0u8; 512];
    loop {
        if stop.load(Ordering::SeqCst) {
            let _ = conn.write_all(b"0\r\n\r\n");
            return Ok(());
        }
        match conn.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers() -> Answers {
        let mut a = Answers {
            version: r#"{"ApiVersion":"1.51"}"#.into(),
            info: "{}".into(),
            networks: "[]".into(),
            containers: r#"[{"Id":"abc"}]"#.into(),
            ..Default::default()
        };
        a.inspect.insert("abc".into(), r#"{"Id":"abc"}"#.into());
        a
    }

    #[test]
    fn heads_are_parsed_when_complete() {
        let req = b"GET /v1.51/containers/json?all=false HTTP/1.1\r\nHost: docker\r\ncontent-length: 3\r\nConnection: Close\r\n\r\nabcGET";
        let (head, used) = parse_head(req).expect("complete");
        assert_eq!(
            head,
            Head {
                method: "GET".into(),
                path: "/containers/json".into(),
                content_length: 3,
                close: true
            }
        );
        assert_eq!(&req[used..], b"abcGET");
        assert!(parse_head(b"GET /version HTTP/1.1\r\nHost: x\r\n").is_none());
        assert!(parse_head(b"\r\n\r\n").is_none());
    }

    #[test]
    fn api_versions_are_stripped() {
        assert_eq!(api_path("/v1.51/version"), "/version");
        assert_eq!(api_path("/version"), "/version");
        assert_eq!(api_path("/v1.41/events?filters=%7B%7D"), "/events");
        assert_eq!(api_path("/v1.51"), "/");
        assert_eq!(api_path("/volumes"), "/volumes");
        assert_eq!(api_path("/v1/containers/json"), "/v1/containers/json");
    }

    #[test]
    fn routes() {
        let a = answers();
        assert_eq!(
            route(&a, "GET", "/version"),
            Reply::Json(200, r#"{"ApiVersion":"1.51"}"#)
        );
        assert_eq!(route(&a, "HEAD", "/_ping"), Reply::Text(200, "OK"));
        assert_eq!(
            route(&a, "GET", "/containers/abc/json"),
            Reply::Json(200, r#"{"Id":"abc"}"#)
        );
        assert_eq!(
            route(&a, "GET", "/containers/nope/json"),
            Reply::Owned(404, r#"{"message":"No such container: nope"}"#.into())
        );
        assert_eq!(route(&a, "GET", "/events"), Reply::Events);
        assert!(matches!(
            route(&a, "POST", "/containers/create"),
            Reply::Owned(405, _)
        ));
        assert!(matches!(
            route(&a, "GET", "/images/json"),
            Reply::Owned(404, _)
        ));
    }

    /// Reads one response with a Content-Length from `s`: status and body.
    fn read_response(s: &mut UnixStream) -> (u16, String) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some(at) = text.find("\r\n\r\n") {
                let len: usize = text[..at]
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.parse().ok())
                    .expect("a Content-Length");
                if buf.len() >= at + 4 + len {
                    let status = text[9..12].parse().expect("a status");
                    return (status, text[at + 4..at + 4 + len].to_owned());
                }
            }
            let n = s.read(&mut chunk).expect("reads");
            assert!(n > 0, "closed early: {text}");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    #[test]
    fn serves_on_a_socket_and_stops() {
        let dir = std::env::temp_dir().join(format!("nlbench-engine-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let path = dir.join("docker.sock");
        let api = EngineApi::start(&path, answers()).expect("starts");
        assert_eq!(api.docker_host(), format!("unix://{}", path.display()));
        // Two requests on one connection, then one that closes it.
        let mut s = UnixStream::connect(&path).expect("connects");
        s.write_all(b"GET /v1.51/version HTTP/1.1\r\nHost: docker\r\n\r\n")
            .expect("writes");
        assert_eq!(
            read_response(&mut s),
            (200, r#"{"ApiVersion":"1.51"}"#.into())
        );
        s.write_all(
            b"GET /containers/abc/json HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n",
        )
        .expect("writes");
        assert_eq!(read_response(&mut s), (200, r#"{"Id":"abc"}"#.into()));
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).expect("closed");
        assert!(rest.is_empty());
        let mut s = UnixStream::connect(&path).expect("connects");
        s.write_all(b"GET /containers/zzz/json HTTP/1.1\r\n\r\n")
            .expect("writes");
        assert_eq!(read_response(&mut s).0, 404);
        // The event stream: a chunked head, then nothing until the responder stops.
        let mut events = UnixStream::connect(&path).expect("connects");
        events
            .write_all(b"GET /v1.51/events?filters=x HTTP/1.1\r\n\r\n")
            .expect("writes");
        let mut head = [0u8; 512];
        let n = events.read(&mut head).expect("a head");
        let head = String::from_utf8_lossy(&head[..n]).into_owned();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
        while api.served().events.load(Ordering::SeqCst) == 0 {
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(api.served().requests.load(Ordering::SeqCst), 4);
        assert_eq!(api.served().inspected.load(Ordering::SeqCst), 1);
        assert_eq!(api.served().not_found.load(Ordering::SeqCst), 1);
        drop(api);
        assert!(!path.exists());
        let mut end = Vec::new();
        events.read_to_end(&mut end).expect("the stream ends");
        assert_eq!(end, b"0\r\n\r\n");
        let _ = std::fs::remove_dir(&dir);
    }
}

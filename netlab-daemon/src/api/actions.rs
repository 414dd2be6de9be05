//! The one thing the API does rather than shows: `POST /v1/diagnose`, which runs
//! `netlab diagnose SRC DST --json` for the map's "diagnose" button and answers its
//! verdicts.
//!
//! Sending echo requests from a container is an action, so another web page must never be
//! able to trigger it from a browser that can reach the daemon:
//! - the request must carry `Content-Type: application/json` (a "non-simple" request: a
//!   browser asks the server first before sending it across origins, and the daemon
//!   never answers such a question, since it refuses every method but GET and this POST);
//! - an `Origin` header, when there is one, must be the daemon's own (`http://` + the
//!   `Host` the request names), and `Sec-Fetch-Site`, when there is one, must say
//!   `same-origin` or `none`;
//! - the `Host` must be an address or `localhost` (or `netlab`, what the commands send on
//!   the unix socket): a name of another site's made to resolve to this host
//!   ("DNS rebinding") is refused.
//!
//! With `netlab daemon --read-only` there is no [`Diagnoser`] and the answer is 403. One
//! diagnose runs at a time (429 meanwhile), each for at most [`DIAGNOSE_AT_MOST`].

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, HOST, ORIGIN};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::server::{full, ApiState};
use crate::docker::topology::Topology;

/// How long one diagnose may take (it sends 3 echo requests, 200 ms apart, and waits).
pub const DIAGNOSE_AT_MOST: Duration = Duration::from_secs(30);

/// Runs `netlab diagnose` for the API.
#[derive(Debug)]
pub struct Diagnoser {
    /// The netlab binary (the daemon's own).
    program: PathBuf,
    /// Arguments before the diagnose's own (tests run a stand-in).
    prefix: Vec<String>,
    /// The daemon's socket: diagnose observes through it.
    socket: PathBuf,
    /// One at a time.
    busy: tokio::sync::Semaphore,
}

impl Diagnoser {
    /// Runs `program [prefix…] diagnose --json -- SRC DST` with `NETLAB_SOCKET=socket`.
    pub fn new(program: PathBuf, prefix: Vec<String>, socket: PathBuf) -> Diagnoser {
        Diagnoser {
            program,
            prefix,
            socket,
            busy: tokio::sync::Semaphore::new(1),
        }
    }

    /// The daemon's own binary, observing through `socket`.
    pub fn this_binary(socket: PathBuf) -> Diagnoser {
        Diagnoser::new(PathBuf::from("/proc/self/exe"), Vec::new(), socket)
    }
}

/// Why a request may not act, if it may not.
pub fn refuse_foreign(headers: &HeaderMap) -> Option<&'static str> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let json = header(CONTENT_TYPE).is_some_and(|c| {
        c.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    });
    if !json {
        return Some("send the request as Content-Type: application/json");
    }
    let Some(host) = header(HOST) else {
        return Some("a Host header is needed");
    };
    if !host_is_local_name(host) {
        return Some("the Host must be an address, localhost or netlab");
    }
    if let Some(origin) = header(ORIGIN) {
        let own = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host));
        if !own {
            return Some("requests from other sites are refused");
        }
    }
    match header(axum::http::HeaderName::from_static("sec-fetch-site")) {
        None | Some("same-origin" | "none") => None,
        Some(_) => Some("requests from other sites are refused"),
    }
}

/// Whether `host` (a `Host` header: name or address, and maybe a port) names this host
/// by address, as `localhost`, or as `netlab` (the commands' requests on the socket).
fn host_is_local_name(host: &str) -> bool {
    let name = if let Some(v6) = host.strip_prefix('[') {
        match v6.split_once(']') {
            Some((addr, rest)) if rest.is_empty() || rest.starts_with(':') => {
                return addr.parse::<std::net::Ipv6Addr>().is_ok();
            }
            _ => return false,
        }
    } else {
        host.rsplit_once(':').map_or(
            host,
            |(n, port)| {
                if port.parse::<u16>().is_ok() {
                    n
                } else {
                    host
                }
            },
        )
    };
    name.eq_ignore_ascii_case("localhost")
        || name.eq_ignore_ascii_case("netlab")
        || name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// What `POST /v1/diagnose` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiagnoseRequest {
    src: String,
    dst: String,
}

/// Whether `s` can be a container name or an address (and never an option).
fn plausible_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':'))
}

/// Why `src` → `dst` names nothing diagnose can probe on this host, if it does not: SRC
/// must be a running container; DST a running container or an address diagnose would
/// probe (on a Docker network, or on a leg of SRC's added by hand).
fn unknown_target(topo: &Topology, src: &str, dst: &str) -> Option<String> {
    let Some(src_view) = topo.container_named(src) else {
        return Some(format!("no running container named {src}"));
    };
    match dst.parse::<IpAddr>() {
        Ok(ip) => (!crate::cmd::diagnose::on_docker_networks(topo, src_view, ip))
            .then(|| format!("{ip} is on no Docker network of this host")),
        Err(_) => topo
            .container_named(dst)
            .is_none()
            .then(|| format!("no running container named {dst}")),
    }
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut m = msg.into();
    m.push('\n');
    full(status, "text/plain; charset=utf-8", m)
}

/// `POST /v1/diagnose` with `{"src": "AppDev", "dst": "AppProd"}`: the verdicts of
/// `netlab diagnose --json` as `{"verdicts": [...]}` (one per family probed).
pub async fn diagnose(State(shared): ApiState, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(why) = refuse_foreign(&headers) {
        return text(StatusCode::FORBIDDEN, why);
    }
    let Some(d) = shared.diagnoser.as_ref() else {
        return text(
            StatusCode::FORBIDDEN,
            "the daemon runs with --read-only: it shows, it does not act",
        );
    };
    let req: DiagnoseRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"src\": NAME, \"dst\": NAME or ADDRESS}}: {e}"),
            )
        }
    };
    for v in [&req.src, &req.dst] {
        if !plausible_name(v) {
            return text(
                StatusCode::BAD_REQUEST,
                format!("{v:?} is no container name or address"),
            );
        }
    }
    // What names nothing to probe is not found, before anything runs.
    let topo = shared.topo.read().map(|t| Arc::clone(&t));
    if let Some(why) = topo
        .ok()
        .and_then(|t| unknown_target(&t, &req.src, &req.dst))
    {
        return text(StatusCode::NOT_FOUND, why);
    }
    let Ok(_running) = d.busy.try_acquire() else {
        return text(
            StatusCode::TOO_MANY_REQUESTS,
            "a diagnose runs already: try again when it is done",
        );
    };
    let mut cmd = tokio::process::Command::new(&d.program);
    cmd.args(&d.prefix)
        .args(["diagnose", "--json", "--", &req.src, &req.dst])
        .env("NETLAB_SOCKET", &d.socket)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(DIAGNOSE_AT_MOST, cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("running diagnose: {e}"),
            )
        }
        Err(_) => {
            return text(
                StatusCode::GATEWAY_TIMEOUT,
                format!("diagnose took more than {} s", DIAGNOSE_AT_MOST.as_secs()),
            )
        }
    };
    // Exit code 0: reachable, 1: not reachable; anything else is diagnose's error line.
    if !matches!(out.status.code(), Some(0 | 1)) {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().rev().find(|l| !l.trim().is_empty());
        return text(
            StatusCode::UNPROCESSABLE_ENTITY,
            line.unwrap_or("diagnose failed")
                .trim_start_matches("netlab: ")
                .trim_start_matches("error: "),
        );
    }
    let verdicts: Result<Vec<serde_json::Value>, _> = out
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(serde_json::from_slice)
        .collect();
    match verdicts {
        Ok(v) => super::server::json_response(&serde_json::json!({
            "src": req.src,
            "dst": req.dst,
            "reachable": out.status.code() == Some(0),
            "verdicts": v,
        })),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("diagnose's answer is not JSON: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(h: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in h {
            m.insert(*k, v.parse().expect("header value"));
        }
        m
    }

    #[test]
    fn only_the_page_itself_and_the_commands_may_act() {
        let json = ("content-type", "application/json");
        let page = [
            json,
            ("host", "127.0.0.1:9477"),
            ("origin", "http://127.0.0.1:9477"),
            ("sec-fetch-site", "same-origin"),
        ];
        assert_eq!(refuse_foreign(&headers(&page)), None);
        for ok in [
            &[json, ("host", "netlab")][..],
            &[
                json,
                ("host", "localhost:9477"),
                ("origin", "http://localhost:9477"),
            ],
            &[
                ("content-type", "Application/JSON; charset=utf-8"),
                ("host", "[::1]:9477"),
            ],
            &[json, ("host", "10.0.0.5:9477"), ("sec-fetch-site", "none")],
        ] {
            assert_eq!(refuse_foreign(&headers(ok)), None, "{ok:?}");
        }
        for (bad, why) in [
            // A form or a plain fetch of another page: a simple request.
            (&[("host", "127.0.0.1:9477")][..], "Content-Type"),
            (
                &[("content-type", "text/plain"), ("host", "127.0.0.1:9477")],
                "Content-Type",
            ),
            (
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("host", "127.0.0.1:9477"),
                ],
                "Content-Type",
            ),
            (
                &[
                    json,
                    ("host", "127.0.0.1:9477"),
                    ("origin", "http://evil.example"),
                ],
                "other sites",
            ),
            (
                &[json, ("host", "127.0.0.1:9477"), ("origin", "null")],
                "other sites",
            ),
            (
                &[
                    json,
                    ("host", "127.0.0.1:9477"),
                    ("sec-fetch-site", "cross-site"),
                ],
                "other sites",
            ),
            (
                &[
                    json,
                    ("host", "127.0.0.1:9477"),
                    ("sec-fetch-site", "same-site"),
                ],
                "other sites",
            ),
            // DNS rebinding: the other site's name, pointed at this host.
            (
                &[
                    json,
                    ("host", "evil.example:9477"),
                    ("origin", "http://evil.example:9477"),
                ],
                "Host",
            ),
            (&[json], "Host"),
        ] {
            let got = refuse_foreign(&headers(bad)).unwrap_or_default();
            assert!(got.contains(why), "{bad:?}: {got:?}");
        }
    }

    #[test]
    fn names_never_become_options() {
        for ok in [
            "AppDev",
            "nlr-AppProd",
            "my_box.1",
            "172.20.0.2",
            "fd00:77:2::2",
        ] {
            assert!(plausible_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "--count=100",
            "a b",
            "a;b",
            "$(x)",
            &"a".repeat(129),
        ] {
            assert!(!plausible_name(bad), "{bad}");
        }
    }
}

#[cfg(test)]
mod endpoint_tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::extract::Request;

    use super::super::server::tests::{body_text, fixed_state};
    use super::super::server::{app, Shared};
    use super::*;

    /// A diagnose stand-in: prints a verdict naming its arguments and the socket, exits 1.
    fn stand_in() -> Diagnoser {
        Diagnoser::new(
            PathBuf::from("/bin/sh"),
            vec![
                "-c".into(),
                r#"printf '{"verdict":"dropped","args":"%s","socket":"%s"}\n' "$*" "$NETLAB_SOCKET"; exit 1"#
                    .into(),
                "sh".into(),
            ],
            PathBuf::from("/run/test.sock"),
        )
    }

    /// The API over the course lab (AppDev on devops, AppProd on prod).
    fn with(d: Option<Diagnoser>) -> Arc<Shared> {
        let (shared, _) = fixed_state();
        let mut shared = Arc::into_inner(shared).expect("the only reference");
        shared.topo = std::sync::RwLock::new(Arc::new(
            crate::docker::topology::tests::course_lab_topology(),
        ));
        if let Some(d) = d {
            shared = shared.with_diagnoser(d);
        }
        Arc::new(shared)
    }

    async fn post(
        shared: &Arc<Shared>,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, String) {
        let mut req = Request::builder().method("POST").uri("/v1/diagnose");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Body::from(body.to_owned())).expect("a request");
        let r = tower::ServiceExt::oneshot(app(Arc::clone(shared)), req)
            .await
            .unwrap_or_else(|e| match e {});
        (r.status(), body_text(r).await)
    }

    const PAGE: [(&str, &str); 3] = [
        ("content-type", "application/json"),
        ("host", "127.0.0.1:9477"),
        ("origin", "http://127.0.0.1:9477"),
    ];

    #[tokio::test]
    async fn the_page_runs_diagnose_and_gets_its_verdicts() {
        let shared = with(Some(stand_in()));
        let (status, body) = post(&shared, &PAGE, r#"{"src":"AppDev","dst":"AppProd"}"#).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["reachable"], false);
        assert_eq!(v["verdicts"][0]["verdict"], "dropped");
        assert_eq!(
            v["verdicts"][0]["args"],
            "diagnose --json -- AppDev AppProd"
        );
        assert_eq!(v["verdicts"][0]["socket"], "/run/test.sock");
    }

    #[tokio::test]
    async fn other_sites_and_read_only_daemons_are_refused() {
        let shared = with(Some(stand_in()));
        let body = r#"{"src":"AppDev","dst":"AppProd"}"#;
        let foreign = [
            ("content-type", "application/json"),
            ("host", "127.0.0.1:9477"),
            ("origin", "http://evil.example"),
        ];
        let form = [("content-type", "text/plain"), ("host", "127.0.0.1:9477")];
        for h in [&foreign[..], &form] {
            let (status, why) = post(&shared, h, body).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{h:?}: {why}");
        }
        let (status, why) = post(&shared, &PAGE, r#"{"src":"--count=100","dst":"x"}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}");
        let (status, _) = post(&shared, &PAGE, r#"{"src":"a"}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let read_only = with(None);
        let (status, why) = post(&read_only, &PAGE, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(why.contains("--read-only"), "{why}");
    }

    #[tokio::test]
    async fn diagnose_errors_are_its_own_line() {
        let failing = |line: &str, code: u8| {
            Diagnoser::new(
                PathBuf::from("/bin/sh"),
                vec![
                    "-c".into(),
                    format!("echo 'netlab: error: {line}' >&2; exit {code}"),
                    "sh".into(),
                ],
                PathBuf::from("/run/test.sock"),
            )
        };
        // What names nothing on this host is not found, before diagnose runs (it would
        // fail otherwise).
        let shared = with(Some(failing("diagnose ran", 2)));
        for (body, why) in [
            (
                r#"{"src":"Nope","dst":"AppProd"}"#,
                "no running container named Nope\n",
            ),
            (
                r#"{"src":"AppDev","dst":"Nope"}"#,
                "no running container named Nope\n",
            ),
            (
                r#"{"src":"AppDev","dst":"10.9.9.9"}"#,
                "10.9.9.9 is on no Docker network of this host\n",
            ),
        ] {
            assert_eq!(
                post(&shared, &PAGE, body).await,
                (StatusCode::NOT_FOUND, why.into())
            );
        }
        // diagnose's own error.
        let body = r#"{"src":"AppDev","dst":"AppProd"}"#;
        let (status, why) = post(&with(Some(failing("Docker is down", 2))), &PAGE, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(why, "Docker is down\n");
    }
}

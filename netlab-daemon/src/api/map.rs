//! The map's side of the API: the page itself at `/` (its HTML, script and style are in
//! the binary: it loads nothing from anywhere else, and its Content-Security-Policy lets
//! it load nothing else), the map as JSON (`/v1/map`, or a live stream of it with
//! `Accept: text/event-stream` or `?sse=1`), and the same map as Grafana Node Graph frames
//! (`/v1/graph`).
//!
//! The stream is fed by the daemon's loop a few times a second ([`MAP_EVERY`]) while
//! someone watches, through a `watch` channel: a client gets the latest map whenever it is
//! ready for one, and a slow client skips maps rather than queueing them, so a ping flood
//! costs the page no more than a quiet host does.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use tokio::sync::oneshot;

use super::server::{
    bad_request, full, json_response, one_of, only, shutting_down, stream_duration, wants_sse,
    ApiState, Ask, Shared, SSE,
};
use crate::output::map::{Graph, MapView};

/// How often the daemon publishes the map while a page watches it.
pub const MAP_EVERY: Duration = Duration::from_millis(300);

const INDEX_HTML: &str = include_str!("page/index.html");
const MAP_JS: &str = include_str!("page/map.js");
const MAP_CSS: &str = include_str!("page/map.css");

/// What the page may load and talk to: itself only.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                      form-action 'none'; frame-ancestors 'none'";

/// One of the page's files, with headers that keep it to itself.
fn asset(ctype: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, HeaderValue::from_static(ctype)),
            (CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY)),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
            (
                HeaderName::from_static("referrer-policy"),
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", MAP_JS)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", MAP_CSS)
}

/// The map now, from the daemon's loop.
async fn map_now(shared: &Shared) -> Option<MapView> {
    let (tx, rx) = oneshot::channel::<MapView>();
    shared.ask.send(Ask::Map(tx)).await.ok()?;
    rx.await.ok()
}

/// `/v1/map`: the map as JSON, or its live stream.
pub async fn map(
    State(shared): ApiState,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let (sse, duration) = match (
        only(&params, &["sse", "duration"]),
        one_of(&params, "sse", &SSE),
        stream_duration(&params),
    ) {
        (Ok(()), Ok(s), Ok(d)) => (s, d),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return bad_request(&e),
    };
    if wants_sse(sse, &headers) {
        return map_stream(&shared, duration);
    }
    match map_now(&shared).await {
        Some(m) => json_response(&m),
        None => shutting_down(),
    }
}

/// `/v1/graph`: the map as Grafana Node Graph frames.
pub async fn graph(State(shared): ApiState) -> Response {
    match map_now(&shared).await {
        Some(m) => json_response(&Graph::of(&m)),
        None => shutting_down(),
    }
}

/// The live map: each map the loop publishes, as one Server-Sent Event (`event: map`); the
/// latest is sent at once when there is one.
fn map_stream(shared: &Arc<Shared>, duration: Option<Duration>) -> Response {
    let mut rx = shared.map.subscribe();
    rx.mark_changed();
    let until = duration.map(|d| tokio::time::Instant::now() + d);
    let stream = futures_util::stream::unfold(rx, move |mut rx| async move {
        match until {
            Some(t) => tokio::time::timeout_at(t, rx.changed()).await.ok()?.ok()?,
            None => rx.changed().await.ok()?,
        }
        let json = rx.borrow_and_update().clone();
        let mut v = Vec::with_capacity(json.len() + 20);
        v.extend_from_slice(b"event: map\ndata: ");
        v.extend_from_slice(json.strip_suffix(b"\n").unwrap_or(&json));
        v.extend_from_slice(b"\n\n");
        Some((Ok::<_, Infallible>(Bytes::from(v)), rx))
    });
    let stream = futures_util::StreamExt::boxed(futures_util::stream::StreamExt::filter(
        stream,
        |b: &Result<Bytes, Infallible>| {
            // The channel's first value (before any map) is empty: skip it.
            let keep = b
                .as_ref()
                .is_ok_and(|b| b.len() > "event: map\ndata: \n\n".len());
            std::future::ready(keep)
        },
    ));
    full(
        StatusCode::OK,
        "text/event-stream",
        axum::body::Body::from_stream(stream),
    )
}

#[cfg(test)]
mod tests {
    use super::super::server::tests::{body_text, call, content_type, fixed_state, next_piece};
    use super::*;

    #[tokio::test]
    async fn the_page_loads_nothing_from_elsewhere() {
        let (shared, _events) = fixed_state();
        for (path, ctype, body) in [
            ("/", "text/html; charset=utf-8", INDEX_HTML),
            ("/map.js", "text/javascript; charset=utf-8", MAP_JS),
            ("/map.css", "text/css; charset=utf-8", MAP_CSS),
        ] {
            let r = call(&shared, "GET", path, &[]).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(content_type(&r), ctype, "{path}");
            let csp = r.headers()[CONTENT_SECURITY_POLICY]
                .to_str()
                .expect("ascii");
            assert!(csp.starts_with("default-src 'none'"), "{csp}");
            assert!(!csp.contains("http"), "no other origin is allowed: {csp}");
            assert_eq!(body_text(r).await, body);
        }
        // Nothing in the files names another origin (SVG's namespace is a name, never
        // fetched).
        for f in [INDEX_HTML, MAP_JS, MAP_CSS] {
            let f = f.replace("\"http://www.w3.org/2000/svg\"", "");
            assert!(!f.contains("http://") && !f.contains("https://") && !f.contains("//cdn"));
            assert!(
                !f.contains("@import") && !f.contains("fonts."),
                "no outside fonts"
            );
        }
    }

    #[tokio::test]
    async fn the_map_and_its_node_graph_frames() {
        let (shared, _events) = fixed_state();
        let r = call(&shared, "GET", "/v1/map", &[]).await;
        assert_eq!(content_type(&r), "application/json");
        let map: serde_json::Value = serde_json::from_str(&body_text(r).await).expect("JSON");
        assert_eq!(map["kind"], "map");
        assert_eq!(map["edges"], serde_json::json!([]));
        assert!(map["status"]["empty"].is_string(), "{map}");
        let r = call(&shared, "GET", "/v1/graph", &[]).await;
        let g: serde_json::Value = serde_json::from_str(&body_text(r).await).expect("JSON");
        assert_eq!(g, serde_json::json!({"nodes": [], "edges": []}));
    }

    #[tokio::test]
    async fn the_live_map_sends_the_latest_map_only() {
        let (shared, _events) = fixed_state();
        assert!(!shared.map_watched());
        let r = call(&shared, "GET", "/v1/map?sse=1", &[]).await;
        assert_eq!(content_type(&r), "text/event-stream");
        assert!(
            shared.map_watched(),
            "the loop publishes while someone watches"
        );
        let mut body = r.into_body();
        shared.map.send_replace(Bytes::from_static(b"{\"n\":1}\n"));
        assert_eq!(
            next_piece(&mut body).await,
            "event: map\ndata: {\"n\":1}\n\n"
        );
        // Maps published while the client was busy: it gets the latest.
        shared.map.send_replace(Bytes::from_static(b"{\"n\":2}"));
        shared.map.send_replace(Bytes::from_static(b"{\"n\":3}"));
        assert_eq!(
            next_piece(&mut body).await,
            "event: map\ndata: {\"n\":3}\n\n"
        );
        drop(body);
        assert!(!shared.map_watched());
        // A new client gets the latest map at once.
        let r = call(
            &shared,
            "GET",
            "/v1/map",
            &[("accept", "text/event-stream")],
        )
        .await;
        let mut body = r.into_body();
        assert_eq!(
            next_piece(&mut body).await,
            "event: map\ndata: {\"n\":3}\n\n"
        );
    }

    #[tokio::test]
    async fn a_live_map_with_a_duration_ends_by_itself() {
        let (shared, _events) = fixed_state();
        shared.map.send_replace(Bytes::from_static(b"{\"n\":1}\n"));
        let r = call(&shared, "GET", "/v1/map?sse=1&duration=0.2", &[]).await;
        // The whole body arrives: the stream ended after its 0.2 s.
        let all = tokio::time::timeout(Duration::from_secs(10), body_text(r))
            .await
            .expect("the stream ends");
        assert_eq!(all, "event: map\ndata: {\"n\":1}\n\n");
        for bad in [
            "/v1/map?sse=yes",
            "/v1/map?sse=1&duration=0",
            "/v1/map?duration=x",
        ] {
            let r = call(&shared, "GET", bad, &[]).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}

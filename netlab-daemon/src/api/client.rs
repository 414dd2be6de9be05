//! Talking to a running `netlab daemon` over its unix socket.

use std::path::PathBuf;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::Request;

/// Where clients find the daemon by default (where it listens by default).
pub const DEFAULT_SOCKET: &str = "/run/netlab/netlab.sock";

/// The daemon's socket: `NETLAB_SOCKET`, else the default path.
pub fn socket_path() -> PathBuf {
    std::env::var_os("NETLAB_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// A connection to the daemon.
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
}

impl Client {
    /// Connects when a daemon answers on the socket; `None` otherwise (run embedded).
    pub async fn connect() -> Option<Client> {
        let path = socket_path();
        let stream = tokio::net::UnixStream::connect(&path).await.ok()?;
        Client::handshake(stream).await.ok()
    }

    /// A client over `stream` (a unix socket, or TCP to another host's daemon), once the
    /// other end answered `/v1/health` as netlab does.
    pub async fn handshake<S>(stream: S) -> anyhow::Result<Client>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .context("HTTP handshake")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut c = Client { sender };
        // Anything that answers but not as netlab is not our daemon.
        c.get_json::<serde::de::IgnoredAny>("/v1/health").await?;
        Ok(c)
    }

    async fn get(&mut self, path: &str) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
        self.sender.ready().await.context("daemon connection")?;
        let req = Request::get(path)
            .header(hyper::header::HOST, "netlab")
            .body(Empty::<Bytes>::new())?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .with_context(|| format!("GET {path} from the daemon"))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::bail!(
                "the daemon answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            );
        }
        Ok(resp)
    }

    /// GETs `path` and reads the JSON body as a `T`.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &mut self,
        path: &str,
    ) -> anyhow::Result<T> {
        let body = self
            .get(path)
            .await?
            .into_body()
            .collect()
            .await?
            .to_bytes();
        serde_json::from_slice(&body)
            .with_context(|| format!("the daemon's answer to {path} is not what this netlab reads"))
    }

    /// GETs `path` and returns the body as text.
    pub async fn get_text(&mut self, path: &str) -> anyhow::Result<String> {
        let body = self
            .get(path)
            .await?
            .into_body()
            .collect()
            .await?
            .to_bytes();
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// GETs a streaming `path`; `on_line` gets each complete line (with its newline) and
    /// returns `false` to stop.
    pub async fn stream_lines(
        &mut self,
        path: &str,
        mut on_line: impl FnMut(&[u8]) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let mut body = self.get(path).await?.into_body();
        let mut pending: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.context("reading the event stream")?;
            let Some(data) = frame.data_ref() else {
                continue;
            };
            pending.extend_from_slice(data);
            while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=pos).collect();
                if !on_line(&line)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Encodes a query-string value.
pub fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("AppDev"), "AppDev");
        assert_eq!(encode("my net/x&y"), "my%20net%2Fx%26y");
    }

    #[test]
    fn no_daemon_means_embedded() {
        std::env::set_var("NETLAB_SOCKET", "/nonexistent/netlab-test.sock");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        assert!(rt.block_on(Client::connect()).is_none());
    }
}

//! Following Docker: the engine connection, its snapshot and event stream, and scans of
//! the host's and the containers' interfaces.

use std::pin::Pin;

use anyhow::Context as _;
use futures_util::{Stream, StreamExt as _};

use crate::discover;
use crate::docker::{self, DockerClient, DockerSnapshot};
use crate::topology::Topology;

/// Docker's event stream.
pub type DockerEvents =
    Pin<Box<dyn Stream<Item = Result<bollard::models::EventMessage, docker::DockerError>> + Send>>;

/// The Docker side of following: the client, its last snapshot, its event stream.
pub struct DockerFeed {
    pub client: Option<DockerClient>,
    pub snapshot: Option<DockerSnapshot>,
    pub events: Option<DockerEvents>,
}

impl DockerFeed {
    /// Connects; without an engine, warns once and carries on without.
    pub async fn connect() -> Self {
        match DockerClient::connect().await {
            Ok(client) => {
                let events: DockerEvents = Box::pin(client.events());
                let snapshot = match client.snapshot().await {
                    Ok(s) => Some(s),
                    Err(e) => {
                        log::warn!("{e:#}; observing bridges by interface name only");
                        None
                    }
                };
                DockerFeed {
                    client: snapshot.is_some().then_some(client),
                    events: snapshot.is_some().then_some(events),
                    snapshot,
                }
            }
            Err(e) => {
                let cause = std::error::Error::source(&e)
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default();
                log::warn!(
                    "{e}{cause}; no Docker labels: observing every bridge and its veths by interface name only"
                );
                DockerFeed {
                    client: None,
                    snapshot: None,
                    events: None,
                }
            }
        }
    }

    pub async fn refresh(&mut self) {
        let Some(c) = &self.client else { return };
        match c.snapshot().await {
            Ok(s) => self.snapshot = Some(s),
            Err(e) => log::warn!("{e:#}"),
        }
    }

    /// The next event that matters; pending forever without a stream.
    pub async fn next_event(&mut self) -> Option<bool> {
        match &mut self.events {
            Some(s) => loop {
                match s.next().await {
                    Some(Ok(ev)) if docker::event_matters(&ev) => return Some(true),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        log::warn!("{e:#}");
                        return None;
                    }
                    None => return None,
                }
            },
            None => std::future::pending().await,
        }
    }
}

/// Scans on a blocking thread (the scan starts threads of its own).
pub async fn scan(snapshot: Option<DockerSnapshot>) -> anyhow::Result<Topology> {
    tokio::task::spawn_blocking(move || discover::scan(snapshot.as_ref()))
        .await
        .context("topology scan")?
        .context("reading network interfaces")
}

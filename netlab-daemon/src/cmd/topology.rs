//! `netlab topology`: Docker's networks and containers, each container's interfaces and
//! where they lead on the host, and the interfaces `netlab watch` observes.

use anyhow::Context as _;

use crate::docker::view::render;
use crate::docker::DockerClient;

/// Options of `netlab topology`.
#[derive(Debug, Clone, clap::Args)]
pub struct TopologyArgs {
    /// One JSON object instead of the human view.
    #[arg(long)]
    pub json: bool,
}

/// Prints the topology (the daemon's view when one answers).
pub async fn run(args: TopologyArgs) -> anyhow::Result<()> {
    if let Some(mut c) = crate::api::client::Client::connect().await {
        let out = if args.json {
            c.get_text("/v1/topology").await?
        } else {
            c.get_text("/v1/topology?format=text").await?
        };
        use std::io::Write as _;
        std::io::stdout().write_all(out.as_bytes())?;
        return Ok(());
    }
    let snapshot = match DockerClient::connect().await {
        Ok(c) => Some(c.snapshot().await?),
        Err(e) => {
            let cause = std::error::Error::source(&e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            log::warn!("{e}{cause}; showing the host's bridges only");
            None
        }
    };
    let topo =
        tokio::task::spawn_blocking(move || crate::docker::discover::scan(snapshot.as_ref()))
            .await
            .context("topology scan")?
            .context("reading network interfaces")?;
    let out = if args.json {
        let mut s = serde_json::to_string(&topo)?;
        s.push('\n');
        s
    } else {
        render(&topo)
    };
    use std::io::Write as _;
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(())
}

//! `netlab topology`: Docker's networks and containers, each container's interfaces and
//! where they lead on the host, and the interfaces `netlab watch` observes.

use std::fmt::Write as _;

use anyhow::Context as _;

use crate::docker::topology::{Role, Topology};
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

/// The human view: `docker network inspect` + `ip a` + `brctl show` in one.
pub fn render(t: &Topology) -> String {
    let mut s = String::new();
    if t.docker {
        s.push_str("NETWORKS\n");
        if t.networks.is_empty() {
            s.push_str("  (no bridge network)\n");
        }
        for n in &t.networks {
            let i = &n.info;
            let subnets: Vec<String> = i.subnets.iter().map(|x| x.to_string()).collect();
            let gws: Vec<String> = i.gateways.iter().map(|x| x.to_string()).collect();
            let _ = writeln!(
                s,
                "  {:<12} {:<12}  {}  bridge {}{}  subnet {}  gateway {}",
                i.name,
                i.id.chars().take(12).collect::<String>(),
                i.driver,
                i.bridge,
                if n.bridge_present {
                    ""
                } else {
                    " (not created yet)"
                },
                if subnets.is_empty() {
                    "-".into()
                } else {
                    subnets.join(",")
                },
                if gws.is_empty() {
                    "-".into()
                } else {
                    gws.join(",")
                },
            );
        }
        s.push_str("\nCONTAINERS\n");
        if t.containers.is_empty() {
            s.push_str("  (no running container)\n");
        }
        for c in &t.containers {
            let _ = writeln!(
                s,
                "  {:<12} {:<12}  image {}  pid {}",
                c.name,
                c.id.chars().take(12).collect::<String>(),
                c.image,
                c.pid
            );
            if c.interfaces.is_empty() {
                s.push_str("      (no veth to a Docker bridge)\n");
            }
            for i in &c.interfaces {
                let _ = writeln!(
                    s,
                    "      {:<6} {}  {}  on {}  ⇄ host {}{}",
                    i.name,
                    i.mac.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
                    if i.addrs.is_empty() {
                        "-".into()
                    } else {
                        i.addrs.join(",")
                    },
                    i.network.as_deref().unwrap_or("?"),
                    i.host_veth.as_deref().unwrap_or("?"),
                    if i.manual { "  (hand-made)" } else { "" },
                );
            }
        }
        s.push('\n');
    }
    s.push_str("OBSERVED BY `netlab watch`\n");
    if t.observed.is_empty() {
        s.push_str("  (nothing: no bridge)\n");
    }
    for b in t.observed.iter().filter(|o| o.role == Role::Bridge) {
        let _ = writeln!(
            s,
            "  {}{}",
            b.name,
            b.network
                .as_deref()
                .map(|n| format!("  bridge of {n}"))
                .unwrap_or_default()
        );
        for p in t
            .observed
            .iter()
            .filter(|o| o.role != Role::Bridge && o.bridge.as_deref() == Some(b.name.as_str()))
        {
            let to = match (&p.container, &p.peer) {
                (Some(c), Some(peer)) => format!("  → {c} {peer}"),
                (Some(c), None) => format!("  → {c}"),
                _ => String::new(),
            };
            let _ = writeln!(s, "    {:<16} {:<15}{}", p.name, p.role.name(), to);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_course_lab() {
        let (snap, links, scans) = crate::docker::topology::tests::course_lab();
        let t = Topology::build(Some(&snap), &links, &[], &scans);
        let s = render(&t);
        assert!(s.contains("devops"), "{s}");
        assert!(s.contains("bridge br-8be916360cbc"), "{s}");
        assert!(
            s.contains("subnet 172.20.0.0/16  gateway 172.20.0.1"),
            "{s}"
        );
        assert!(s.contains("AppProd"), "{s}");
        assert!(s.contains("eth1"), "{s}");
        assert!(s.contains("⇄ host int_hote  (hand-made)"), "{s}");
        assert!(
            s.contains("int_hote         manual-veth      → AppProd eth1"),
            "{s}"
        );
        assert!(
            s.contains("veth1111111      container-veth   → AppDev eth0"),
            "{s}"
        );
        let json = serde_json::to_value(&t).expect("json");
        assert_eq!(json["networks"][0]["name"], "devops");
        assert_eq!(json["networks"][0]["bridge"], "br-8be916360cbc");
        assert_eq!(json["observed"][4]["role"], "manual-veth");
    }

    #[test]
    fn renders_empty() {
        let s = render(&Topology::default());
        assert!(s.contains("nothing: no bridge"));
    }
}

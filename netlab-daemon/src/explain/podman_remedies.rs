//! What a drop by Podman's firewall (netavark's chains) means, and the fix, in Podman's
//! terms.
//!
//! netavark keeps networks apart only when asked: `--opt isolate=true` puts a network's
//! bridge in `NETAVARK_ISOLATION_2` (nftables: `NETAVARK-ISOLATION-2`), whose drop stops
//! packets from one isolated network to another; `isolate=strict` (newer netavark) adds
//! `NETAVARK-ISOLATION-3`, which stops the network's packets to any other. Networks without
//! the option reach one another, unlike Docker's, and netavark masquerades the sender as
//! the destination network's gateway on the way.

use crate::explain::docker_remedies::{Explanation, Remedy, RemedyKind};
use crate::explain::docker_rules::{Meaning, NetworkRef, Peer};

/// The explanation of a netavark drop; `None` for other meanings.
pub fn explain(meaning: &Meaning) -> Option<Explanation> {
    let Meaning::PodmanIsolation {
        strict,
        from_network,
        to_network,
        from,
        ..
    } = meaning
    else {
        return None;
    };
    Some(Explanation {
        summary: summary(*strict, from_network.as_ref(), to_network, from.as_ref()),
        remedies: remedies(*strict, from_network.as_ref(), to_network, from.as_ref()),
        caveats: caveats(),
    })
}

fn summary(
    strict: bool,
    from_network: Option<&NetworkRef>,
    to: &NetworkRef,
    from: Option<&Peer>,
) -> String {
    let src = match from_network {
        Some(n) => format!("network {n}"),
        None => "another network".to_string(),
    };
    let sender = match from {
        Some(p) => format!(", sent by {p}"),
        None => String::new(),
    };
    if strict {
        format!(
            "Podman's network isolation (netavark, ISOLATION-3) drops packets from {src} to \
             network {to}{sender}: {src} was created with --opt isolate=strict and may reach \
             no other network"
        )
    } else {
        format!(
            "Podman's network isolation (netavark, ISOLATION-2) drops packets from {src} to \
             network {to}{sender}: both were created with --opt isolate=true, and isolated \
             networks may not reach one another"
        )
    }
}

fn remedies(
    strict: bool,
    from_network: Option<&NetworkRef>,
    to: &NetworkRef,
    from: Option<&Peer>,
) -> Vec<Remedy> {
    let who = from
        .and_then(|p| p.container.clone())
        .unwrap_or_else(|| "<source container>".to_string());
    let recreated = if strict {
        from_network.map(NetworkRef::cli_name)
    } else {
        Some(to.cli_name())
    };
    let mut out = vec![Remedy {
        kind: RemedyKind::ConnectNetwork,
        action: format!("podman network connect {} {who}", to.cli_name()),
        fixes_ping: true,
        note: "the sender gets an interface on that network and reaches the destination over \
               its bridge, at its address on that network, without crossing netavark's \
               isolation"
            .to_string(),
    }];
    if let Some(net) = recreated {
        out.push(Remedy {
            kind: RemedyKind::RecreateNetwork,
            action: format!(
                "podman network rm {net} && podman network create {net} (without --opt isolate), \
                 then start its containers on it again"
            ),
            fixes_ping: true,
            note: "Podman cannot change a network's isolation in place; without it, the network \
                   reaches every network that is not isolated and is reached by them"
                .to_string(),
        });
    }
    out
}

fn caveats() -> Vec<String> {
    vec![
        "Docker's remedies do not apply: these are netavark's rules, rewritten by Podman \
         whenever a container starts (a rule of your own in FORWARD before them would be \
         undone or outrun on the next start)."
            .to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str, bridge: &str) -> NetworkRef {
        NetworkRef {
            bridge: bridge.into(),
            name: Some(name.into()),
        }
    }

    #[test]
    fn isolation_between_two_isolated_networks() {
        let m = Meaning::PodmanIsolation {
            strict: false,
            from_network: Some(net("pnet-i", "podman3")),
            to_network: net("pnet-j", "podman4"),
            from: None,
            to: None,
        };
        let e = explain(&m).expect("explained");
        assert!(e.summary.starts_with("Podman's network isolation (netavark, ISOLATION-2) drops packets from network pnet-i (podman3) to network pnet-j (podman4)"), "{}", e.summary);
        assert!(e.summary.contains("--opt isolate=true"));
        assert_eq!(
            e.remedies[0].action,
            "podman network connect pnet-j <source container>"
        );
        assert!(e.remedies[1]
            .action
            .starts_with("podman network rm pnet-j && podman network create pnet-j"));
        assert!(explain(&Meaning::IccDisabled {
            network: net("a", "b")
        })
        .is_none());
    }
}

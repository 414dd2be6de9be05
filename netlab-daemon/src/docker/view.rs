//! The human view of a topology: Docker's networks, each container's interfaces and where
//! they lead on the host, and the interfaces netlab observes. Shown by `netlab topology`
//! and served by the daemon (`/v1/topology?format=text`).

use std::fmt::Write as _;

use crate::docker::topology::{Role, Topology};

/// The human view: `docker network inspect` + `ip a` + `brctl show` in one.
pub fn render(t: &Topology) -> String {
    let mut s = String::new();
    if t.docker {
        if t.engine == Some(crate::docker::podman::Product::Podman) {
            s.push_str("NETWORKS (Podman)\n");
        } else {
            s.push_str("NETWORKS\n");
        }
        if t.networks.is_empty() {
            s.push_str("  (no bridge network)\n");
        }
        for n in &t.networks {
            let i = &n.info;
            let subnets: Vec<String> = i.subnets.iter().map(|x| x.to_string()).collect();
            let gws: Vec<String> = i.gateways.iter().map(|x| x.to_string()).collect();
            let _ = writeln!(
                s,
                "  {:<12} {:<12}  {}  bridge {}{}  subnet {}  gateway {}{}",
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
                match (i.internal, i.isolated) {
                    (true, true) => "  internal, isolated",
                    (true, false) => "  internal",
                    (false, true) => "  isolated",
                    (false, false) => "",
                },
            );
        }
        if !t.overlays.is_empty() {
            // Their bridges live in namespaces of the engine's own: listed, not observed yet.
            s.push_str("\nOVERLAY NETWORKS (Swarm; not observed)\n");
            for o in &t.overlays {
                let i = &o.info;
                let subnets: Vec<String> = i.subnets.iter().map(|x| x.to_string()).collect();
                let vnis: Vec<String> = i.vnis.iter().map(|x| x.to_string()).collect();
                let members: Vec<String> = o
                    .containers
                    .iter()
                    .map(|c| {
                        let ips: Vec<String> = c.ips.iter().map(|x| x.to_string()).collect();
                        format!("{} {}", c.name, ips.join(","))
                    })
                    .collect();
                let _ = writeln!(
                    s,
                    "  {:<12} {:<12}  overlay{}  subnet {}  VNI {}  here: {}",
                    i.name,
                    i.id.chars().take(12).collect::<String>(),
                    if i.ingress { " (ingress)" } else { "" },
                    if subnets.is_empty() {
                        "-".into()
                    } else {
                        subnets.join(",")
                    },
                    if vnis.is_empty() {
                        "-".into()
                    } else {
                        vnis.join(",")
                    },
                    if members.is_empty() {
                        "no container".into()
                    } else {
                        members.join("; ")
                    },
                );
            }
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

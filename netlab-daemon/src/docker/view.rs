//! The human view of a topology: Docker's networks, each container's interfaces and where
//! they lead on the host, and the interfaces netlab observes. Shown by `netlab topology`
//! and served by the daemon (`/v1/topology?format=text`).

use std::fmt::Write as _;

use crate::docker::topology::{Role, Topology};

/// `items` joined by `sep`, or `empty` when there are none.
fn joined<T: std::fmt::Display>(items: &[T], sep: &str, empty: &str) -> String {
    if items.is_empty() {
        return empty.to_owned();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

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
                joined(&i.subnets, ",", "-"),
                joined(&i.gateways, ",", "-"),
                match (i.internal, i.isolated) {
                    (true, true) => "  internal, isolated",
                    (true, false) => "  internal",
                    (false, true) => "  isolated",
                    (false, false) => "",
                },
            );
        }
        if !t.overlays.is_empty() {
            // Their bridges live in namespaces of the engine's own; their traffic between
            // hosts is seen on the uplink, inside VXLAN.
            match t.swarm.as_ref().and_then(|n| {
                t.observed
                    .iter()
                    .find(|o| o.role == crate::docker::topology::Role::SwarmUplink)
                    .map(|o| (n, o))
            }) {
                Some((n, o)) => {
                    let _ = writeln!(
                        s,
                        "\nOVERLAY NETWORKS (Swarm; VXLAN on {} ({}), UDP {})",
                        o.name, n.addr, n.data_path_port
                    );
                }
                None => s.push_str("\nOVERLAY NETWORKS (Swarm; no uplink found)\n"),
            }
            for o in &t.overlays {
                let i = &o.info;
                let members: Vec<String> = o
                    .containers
                    .iter()
                    .map(|c| format!("{} {}", c.name, joined(&c.ips, ",", "")))
                    .collect();
                let _ = writeln!(
                    s,
                    "  {:<12} {:<12}  overlay{}  subnet {}  VNI {}  here: {}",
                    i.name,
                    i.id.chars().take(12).collect::<String>(),
                    if i.ingress { " (ingress)" } else { "" },
                    joined(&i.subnets, ",", "-"),
                    joined(&i.vnis, ",", "-"),
                    joined(&members, "; ", "no container"),
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
                    joined(&i.addrs, ",", "-"),
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

//! The network namespaces the bench makes: the pair a–br–b and the 500-veth bridge, built
//! with `netlab_tests::host::netns`.

use anyhow::Result;
use netlab_tests::host::netns::{add_bridge, add_bridge_port, in_ns, ip, ip_batch, Netns};

use super::process::quiet;
use super::{ADDR_A, ADDR_B, ADDR_C, NS_A, NS_B, NS_BR, NS_C, NS_PORT_FLOOR, NS_SCALE};

/// A namespace of the bench, without IPv6: no router solicitations or MLD reports, only the
/// bench's own traffic. Deleted (with every interface in it) when the guard is dropped.
fn bench_netns(name: &str) -> Result<Netns> {
    let ns = Netns::new(name)?;
    ns.disable_ipv6()?;
    Ok(ns)
}

/// `nlbench-a` (eth0 10.200.0.1/24) and `nlbench-b` (eth0 10.200.0.2/24), whose host ends
/// `va` and `vb` are ports of bridge `br0` in `nlbench-br`.
pub(super) struct Pair {
    _ns: Vec<Netns>,
}

impl Pair {
    pub(super) fn create() -> Result<Self> {
        let ns = [NS_A, NS_B, NS_BR]
            .into_iter()
            .map(bench_netns)
            .collect::<Result<Vec<_>>>()?;
        add_bridge(NS_BR, "br0", &[])?;
        for (port, member, addr) in [("va", NS_A, ADDR_A), ("vb", NS_B, ADDR_B)] {
            add_bridge_port(NS_BR, "br0", port, member, "eth0")?;
            let cidr = format!("{addr}/24");
            ip(&["-n", member, "addr", "add", &cidr, "dev", "eth0"])?;
            ip(&["-n", member, "link", "set", "eth0", "up"])?;
        }
        // The bridge forwards at once (no STP); a few pings prove it and fill the ARP caches.
        quiet(in_ns(NS_A, "ping").args(["-c", "3", "-i", "0.2", "-w", "5", ADDR_B]))?;
        Ok(Pair { _ns: ns })
    }
}

/// The routed leg of part 3: `nlbench-br` routes between `br0` (10.200.0.254/24) and a second
/// bridge `br1` (10.200.1.254/24) whose port `vc` leads to `nlbench-c` (eth0 10.200.1.2/24),
/// as a Docker host routes between two of its networks. An echo from a to c is seen eight
/// times: va in, br0 in, br1 out, vc out, and back. Removed when dropped (the route and
/// address a and br0 got, then `nlbench-c` and `br1`), so that the other parts see the pair
/// as before.
pub(super) struct Routed {
    _ns: Netns,
}

impl Routed {
    pub(super) fn create() -> Result<Self> {
        let ns = bench_netns(NS_C)?;
        add_bridge(NS_BR, "br1", &[])?;
        add_bridge_port(NS_BR, "br1", "vc", NS_C, "eth0")?;
        for cmd in [
            &["-n", NS_BR, "addr", "add", "10.200.0.254/24", "dev", "br0"][..],
            &["-n", NS_BR, "addr", "add", "10.200.1.254/24", "dev", "br1"],
            &[
                "-n",
                NS_C,
                "addr",
                "add",
                &format!("{ADDR_C}/24"),
                "dev",
                "eth0",
            ],
            &["-n", NS_C, "link", "set", "eth0", "up"],
            &["-n", NS_C, "route", "add", "default", "via", "10.200.1.254"],
            &[
                "-n",
                NS_A,
                "route",
                "add",
                "10.200.1.0/24",
                "via",
                "10.200.0.254",
            ],
        ] {
            ip(cmd)?;
        }
        quiet(in_ns(NS_BR, "sysctl").args(["-qw", "net.ipv4.ip_forward=1"]))?;
        let routed = Routed { _ns: ns };
        quiet(in_ns(NS_A, "ping").args(["-c", "3", "-i", "0.2", "-w", "5", ADDR_C]))?;
        Ok(routed)
    }
}

impl Drop for Routed {
    fn drop(&mut self) {
        // Best effort: the namespaces go at the end of the bench in any case.
        let _ = ip(&["-n", NS_A, "route", "del", "10.200.1.0/24"]);
        let _ = ip(&["-n", NS_BR, "addr", "del", "10.200.0.254/24", "dev", "br0"]);
        let _ = ip(&["-n", NS_BR, "link", "del", "br1"]);
        let _ = ip(&["-n", NS_BR, "link", "del", "vc"]);
    }
}

/// `nlbench-scale`: bridge `br0` with `veths` veth pairs `h<i>`/`p<i>`, every `h<i>` a port.
pub(super) struct ScaleNs {
    _ns: Netns,
    pub(super) veths: u32,
}

impl ScaleNs {
    pub(super) fn create(veths: u32) -> Result<Self> {
        let ns = bench_netns(NS_SCALE)?;
        let mut batch = String::from("link add br0 type bridge\nlink set br0 up\n");
        for i in 0..veths {
            batch.push_str(&format!(
                "link add h{i} type veth peer name p{i}\nlink set h{i} master br0 up\nlink set p{i} up\n"
            ));
        }
        ip_batch(NS_SCALE, &batch)?;
        Ok(ScaleNs { _ns: ns, veths })
    }
}

/// `nlbench-portfloor`: an empty bridge `br0`, where the kernel's floor for a new port is
/// measured beside netlab's (no netlab runs there).
pub(super) struct PortFloorNs {
    _ns: Netns,
}

impl PortFloorNs {
    pub(super) fn create() -> Result<Self> {
        let ns = bench_netns(NS_PORT_FLOOR)?;
        add_bridge(NS_PORT_FLOOR, "br0", &[])?;
        Ok(PortFloorNs { _ns: ns })
    }
}

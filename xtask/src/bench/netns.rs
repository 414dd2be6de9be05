//! The network namespaces the bench makes: the pair a–br–b and the 500-veth bridge, built
//! with `netlab_tests::host::netns`.

use anyhow::Result;
use netlab_tests::host::netns::{add_bridge, add_bridge_port, in_ns, ip, ip_batch, Netns};

use super::process::quiet;
use super::{ADDR_A, ADDR_B, NS_A, NS_B, NS_BR, NS_SCALE};

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

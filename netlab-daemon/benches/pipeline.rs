//! The user-space half of an event, alone: a kernel record becomes a labelled
//! [`PacketRecord`] and its JSON line, over recorded events (no kernel, no root).
//!
//! `cargo bench -p netlab-daemon --bench pipeline` (what `cargo xtask bench` runs). Each
//! benchmark handles a batch of [`BATCH`] events per iteration; criterion reports
//! throughput in events per second, on one core. The topology is a Docker host of
//! [`NETWORKS`] bridge networks with [`PER_NETWORK`] containers each, every container with
//! an IPv4 and an IPv6 address, so labels come from tables of realistic size.

use std::collections::HashMap;
use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use netlab::clock::Clock;
use netlab::decode::Mac;
use netlab::docker::{ContainerInfo, DockerSnapshot, EndpointInfo, NetworkInfo, Subnet};
use netlab::event::PacketRecord;
use netlab::links::{Addr, Link, LinkKind};
use netlab::topology::{NetnsScan, Topology};
use netlab_common::{direction, kind, record, PacketEvent, SNAP_LEN};

/// Events handled per benchmark iteration.
const BATCH: usize = 1_000;
/// Bridge networks of the recorded host.
const NETWORKS: u8 = 4;
/// Containers on each network.
const PER_NETWORK: u8 = 25;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86DD;

/// One container of the recorded host: where it is and who it is on the wire.
#[derive(Clone, Copy)]
struct Member {
    net: u8,
    n: u8,
    /// Index of its veth on the host.
    host_ifindex: u32,
}

impl Member {
    fn mac(self) -> [u8; 6] {
        [0x02, 0x42, 0xac, 20 + self.net, 0, 2 + self.n]
    }
    fn ipv4(self) -> [u8; 4] {
        [172, 20 + self.net, 0, 2 + self.n]
    }
    fn ipv6(self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        a[1] = self.net;
        a[15] = 2 + self.n;
        a
    }
    fn name(self) -> String {
        format!("app-{}-{}", self.net, self.n)
    }
}

fn members() -> Vec<Member> {
    let mut v = Vec::new();
    for net in 0..NETWORKS {
        for n in 0..PER_NETWORK {
            v.push(Member {
                net,
                n,
                host_ifindex: 100 + u32::from(net) * 100 + u32::from(n),
            });
        }
    }
    v
}

fn link(ifindex: u32, name: String, kind: LinkKind) -> Link {
    Link {
        ifindex,
        name,
        kind,
        master: None,
        peer_ifindex: None,
        peer_netnsid: None,
        mac: None,
        up: true,
    }
}

/// The Docker host as netlab would have scanned it: networks, containers, host links and
/// what each container's namespace holds.
fn topology() -> Topology {
    let networks: Vec<NetworkInfo> = (0..NETWORKS)
        .map(|net| NetworkInfo {
            id: format!("{net:02x}be916360cbc0000"),
            name: format!("net{net}"),
            driver: "bridge".into(),
            bridge: format!("br-{net:02x}be916360cb"),
            subnets: vec![
                Subnet::parse(&format!("172.{}.0.0/16", 20 + net)).expect("subnet"),
                Subnet::parse(&format!("fd{net:02x}::/64")).expect("subnet"),
            ],
            gateways: vec![IpAddr::from([172, 20 + net, 0, 1])],
        })
        .collect();
    let mut host_links = vec![link(1, "lo".into(), LinkKind::Unknown)];
    for (i, n) in networks.iter().enumerate() {
        let mut br = link(10 + i as u32, n.bridge.clone(), LinkKind::Bridge);
        br.mac = Some(Mac([0x02, 0x42, 0, 0, 0, i as u8]));
        host_links.push(br);
    }
    let mut containers = Vec::new();
    let mut scans = HashMap::new();
    for m in members() {
        let net = &networks[usize::from(m.net)];
        let id = format!("c{:02}{:02}", m.net, m.n);
        containers.push(ContainerInfo {
            id: id.clone(),
            name: m.name(),
            image: "netlab/http-echo:latest".into(),
            pid: 1000 + m.host_ifindex,
            endpoints: vec![EndpointInfo {
                network_id: net.id.clone(),
                network: net.name.clone(),
                ips: vec![IpAddr::from(m.ipv4()), IpAddr::from(m.ipv6())],
                mac: Some(Mac(m.mac())),
            }],
        });
        let mut veth = link(
            m.host_ifindex,
            format!("veth{:07x}", m.host_ifindex),
            LinkKind::Veth,
        );
        veth.master = Some(10 + u32::from(m.net));
        veth.peer_ifindex = Some(2);
        host_links.push(veth);
        let mut eth0 = link(2, "eth0".into(), LinkKind::Veth);
        eth0.peer_ifindex = Some(m.host_ifindex);
        eth0.mac = Some(Mac(m.mac()));
        scans.insert(
            id,
            NetnsScan {
                inode: 4_026_532_000 + u64::from(m.host_ifindex),
                links: vec![link(1, "lo".into(), LinkKind::Unknown), eth0],
                addrs: vec![
                    Addr {
                        ifindex: 2,
                        ip: IpAddr::from(m.ipv4()),
                        prefix: 16,
                    },
                    Addr {
                        ifindex: 2,
                        ip: IpAddr::from(m.ipv6()),
                        prefix: 64,
                    },
                ],
            },
        );
    }
    let snap = DockerSnapshot {
        networks,
        containers,
    };
    Topology::build(Some(&snap), &host_links, &[], &scans)
}

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// An ICMP echo request (type 8) or reply (type 0) from `a` to `b`, as `ping` sends it.
fn icmp4(a: Member, b: Member, icmp_type: u8, seq: u16) -> Vec<u8> {
    let mut f = eth(b.mac(), a.mac(), ETH_P_IP);
    let payload = 56;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&((20 + 8 + payload) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x40, 0, 64, 1, 0, 0]);
    f.extend_from_slice(&a.ipv4());
    f.extend_from_slice(&b.ipv4());
    f.extend_from_slice(&[icmp_type, 0, 0, 0]);
    f.extend_from_slice(&7u16.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend(std::iter::repeat_n(0xab, payload));
    f
}

/// An ARP request from `a` for `b` (op 1, broadcast) or `b`'s reply to `a` (op 2).
fn arp(a: Member, b: Member, op: u16) -> Vec<u8> {
    let (sender, target, dst) = match op {
        1 => (a, b, [0xff; 6]),
        _ => (b, a, a.mac()),
    };
    let mut f = eth(dst, sender.mac(), ETH_P_ARP);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sender.mac());
    f.extend_from_slice(&sender.ipv4());
    f.extend_from_slice(&if op == 1 { [0; 6] } else { target.mac() });
    f.extend_from_slice(&target.ipv4());
    f.resize(60, 0);
    f
}

/// An ICMPv6 message from `a` to `b`: echo request (128) or reply (129) with 56 bytes of
/// data, or a neighbour solicitation (135) for `b`'s address.
fn icmp6(a: Member, b: Member, icmp_type: u8, seq: u16) -> Vec<u8> {
    let mut f = eth(b.mac(), a.mac(), ETH_P_IPV6);
    let body: Vec<u8> = match icmp_type {
        135 => {
            let mut body = vec![0u8; 4];
            body.extend_from_slice(&b.ipv6());
            body.extend_from_slice(&[1, 1]);
            body.extend_from_slice(&a.mac());
            body
        }
        _ => {
            let mut body = Vec::new();
            body.extend_from_slice(&7u16.to_be_bytes());
            body.extend_from_slice(&seq.to_be_bytes());
            body.extend(std::iter::repeat_n(0xab, 56));
            body
        }
    };
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&((4 + body.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[58, 255]);
    f.extend_from_slice(&a.ipv6());
    f.extend_from_slice(&b.ipv6());
    f.extend_from_slice(&[icmp_type, 0, 0, 0]);
    f.extend_from_slice(&body);
    f
}

/// The kernel record of `frame` (its first [`SNAP_LEN`] bytes) seen on `ifindex`.
fn event(frame: &[u8], ifindex: u32, dir: u8, kind: u8, ts_ns: u64) -> PacketEvent {
    let mut data = [0u8; SNAP_LEN];
    let cap = frame.len().min(SNAP_LEN);
    data[..cap].copy_from_slice(&frame[..cap]);
    PacketEvent {
        ts_ns,
        ifindex,
        pkt_len: frame.len() as u32,
        sample_rate: 1,
        cap_len: cap as u16,
        direction: dir,
        kind,
        record: record::TC_PACKET,
        _pad: [0; 6],
        data,
    }
}

/// Which traffic a batch holds.
#[derive(Clone, Copy)]
enum Traffic {
    Icmp,
    Arp,
    Icmp6,
    /// ICMP, ARP and ICMPv6 in the proportions of a ping over a fresh neighbour entry.
    Mixed,
}

/// [`BATCH`] events of one exchange after another, each between two containers of one
/// network, seen on both containers' veths as the kernel reports it.
fn batch(traffic: Traffic) -> Vec<PacketEvent> {
    let ms = members();
    let mut out = Vec::with_capacity(BATCH);
    let mut ts = 1_000_000_000u64;
    let mut i = 0usize;
    while out.len() < BATCH {
        // `a` and its neighbour `b` on the same network.
        let per = usize::from(PER_NETWORK);
        let ai = i % ms.len();
        let first = ai / per * per;
        let (a, b) = (ms[ai], ms[first + (ai - first + 1) % per]);
        let seq = i as u16;
        let exchange: Vec<(Vec<u8>, u8)> = match traffic {
            Traffic::Icmp => vec![
                (icmp4(a, b, 8, seq), kind::ICMP_ECHO_REQUEST),
                (icmp4(b, a, 0, seq), kind::ICMP_ECHO_REPLY),
            ],
            Traffic::Arp => vec![
                (arp(a, b, 1), kind::ARP_REQUEST),
                (arp(a, b, 2), kind::ARP_REPLY),
            ],
            Traffic::Icmp6 => vec![
                (icmp6(a, b, 135, seq), kind::NDP_NEIGHBOR_SOLICIT),
                (icmp6(a, b, 128, seq), kind::ICMP6_ECHO_REQUEST),
                (icmp6(b, a, 129, seq), kind::ICMP6_ECHO_REPLY),
            ],
            Traffic::Mixed => match i % 4 {
                0 => vec![
                    (arp(a, b, 1), kind::ARP_REQUEST),
                    (arp(a, b, 2), kind::ARP_REPLY),
                ],
                3 => vec![
                    (icmp6(a, b, 128, seq), kind::ICMP6_ECHO_REQUEST),
                    (icmp6(b, a, 129, seq), kind::ICMP6_ECHO_REPLY),
                ],
                _ => vec![
                    (icmp4(a, b, 8, seq), kind::ICMP_ECHO_REQUEST),
                    (icmp4(b, a, 0, seq), kind::ICMP_ECHO_REPLY),
                ],
            },
        };
        for (frame, k) in exchange {
            // The sender's veth receives it (ingress), the receiver's veth sends it out.
            let (from, to) = if frame[6..12] == a.mac() {
                (a, b)
            } else {
                (b, a)
            };
            for (ifindex, dir) in [
                (from.host_ifindex, direction::INGRESS),
                (to.host_ifindex, direction::EGRESS),
            ] {
                ts += 2_000;
                out.push(event(&frame, ifindex, dir, k, ts));
            }
        }
        i += 1;
    }
    out.truncate(BATCH);
    out
}

/// Labels and renders every event of `events` into `out`, reused line after line.
fn label_and_render(events: &[PacketEvent], topo: &Topology, clock: &Clock, out: &mut Vec<u8>) {
    for ev in events {
        out.clear();
        if let Some(rec) = PacketRecord::new(ev, topo, clock) {
            let _ = rec.write_json(out);
        }
        black_box(&*out);
    }
}

/// Checks once that the recorded events decode as intended and get their labels, so the
/// numbers are those of the real path, not of an early `None`.
fn check(events: &[PacketEvent], topo: &Topology, clock: &Clock) {
    let mut out = Vec::new();
    for ev in events {
        let rec = PacketRecord::new(ev, topo, clock).expect("a known kind and direction");
        assert!(rec.iface.container.is_some(), "the veth is labelled");
        assert!(
            rec.src.container.is_some() && rec.dst.container.is_some(),
            "both ends are labelled"
        );
        assert!(
            rec.icmp.is_some() || rec.arp.is_some(),
            "decoded with its fields"
        );
        out.clear();
        rec.write_json(&mut out).expect("serializable");
    }
}

fn pipeline(c: &mut Criterion) {
    let topo = topology();
    let clock = Clock::new();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, traffic) in [
        ("icmp", Traffic::Icmp),
        ("arp", Traffic::Arp),
        ("icmp6", Traffic::Icmp6),
        ("mixed", Traffic::Mixed),
    ] {
        let events = batch(traffic);
        check(&events, &topo, &clock);
        let mut out = Vec::with_capacity(1024);
        group.bench_function(name, |b| {
            b.iter(|| label_and_render(black_box(&events), &topo, &clock, &mut out))
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);

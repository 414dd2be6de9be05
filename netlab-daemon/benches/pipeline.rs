//! The user-space half of an event, alone: kernel records go through the real
//! [`Pipeline`] (label, correlate, hand to the outputs) into the real JSON-lines output,
//! over recorded events (no kernel, no root).
//!
//! `cargo bench -p netlab-daemon --bench pipeline` (what `cargo xtask bench` runs). Each
//! benchmark handles a batch of [`BATCH`] events per iteration; criterion reports
//! throughput in events per second, on one core. The topology is a Docker host of
//! [`NETWORKS`] bridge networks with [`PER_NETWORK`] containers each, every container with
//! an IPv4 and an IPv6 address, so labels come from tables of realistic size.
//!
//! The `journeys` group measures the ping-journey side under an echo flood at the rate
//! the consumer is to keep up with (100,000 echoes/s: 400,000 packet events/s and 100,000
//! journey lines/s): `correlator` the correlator alone (observe, poll, journey lines),
//! `consumer` the pipeline exactly as `netlab watch --json --rate-limit 0` builds and
//! drives it (its two outputs; record by record as its drain loop hands them over, then
//! one flush; label, packet line, correlate, journey lines), and `consumer_cpu` the same
//! timed by the thread's CPU clock instead of the wall clock: on a shared machine,
//! time spent waiting for a core is left out, so runs of different builds compare better.
//! `consumer_cpu_map` adds the daemon's map output (one edge per ping pair) to the same
//! pipeline: the difference is what the map costs per event.

use std::collections::HashMap;
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use netlab::docker::topology::{NetnsScan, Topology};
use netlab::docker::{ContainerInfo, DockerSnapshot, EndpointInfo, NetworkInfo, Subnet};
use netlab::kernel::clock::Clock;
use netlab::kernel::links::{Addr, Link, LinkKind};
use netlab::model::decode::Mac;
use netlab::model::event::PacketRecord;
use netlab::model::filter::Filter;
use netlab::model::journey::{self, Correlator, Sighting};
use netlab::model::tally::Tallies;
use netlab::output::map::MapOutput;
use netlab::output::{Format, Lines};
use netlab::pipeline::Pipeline;
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
            isolated: false,
            id: format!("{net:02x}be916360cbc0000"),
            name: format!("net{net}"),
            driver: "bridge".into(),
            bridge: format!("br-{net:02x}be916360cb"),
            subnets: vec![
                Subnet::parse(&format!("172.{}.0.0/16", 20 + net)).expect("subnet"),
                Subnet::parse(&format!("fd{net:02x}::/64")).expect("subnet"),
            ],
            gateways: vec![IpAddr::from([172, 20 + net, 0, 1])],
            internal: false,
            icc: true,
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
            sandbox_key: None,
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
        engine: Default::default(),
        networks,
        containers,
        overlays: Vec::new(),
        swarm: None,
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
        encap: 0,
        _pad: [0; 5],
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

/// The bytes of a kernel record, as the ring buffer hands them over.
fn as_record(ev: &PacketEvent) -> &[u8] {
    // SAFETY: PacketEvent is a plain-integer repr(C) struct with explicit padding fields:
    // all of its bytes are initialised, and the slice lives as long as the borrow.
    unsafe {
        std::slice::from_raw_parts(
            (ev as *const PacketEvent).cast::<u8>(),
            std::mem::size_of::<PacketEvent>(),
        )
    }
}

/// The pipeline `netlab watch --json --rate-limit 0` builds, writing its lines nowhere:
/// the tallies it keeps for its summary, then the JSON lines; `journeys` as watch's (2 s
/// timeout) or none (`--no-journeys`).
fn watch_pipeline(topo: &Topology, journeys: bool) -> Pipeline {
    Pipeline::new(
        Arc::new(topo.clone()),
        None,
        journeys.then(|| Correlator::with_timeout(2_000_000_000)),
    )
    .with_output(Tallies::default())
    .with_output(Lines::new(
        std::io::sink(),
        Format::Json,
        Filter::default(),
        None,
    ))
}

/// Hands every event of `events` to the pipeline, then writes the lines out.
fn run_batch(events: &[PacketEvent], p: &mut Pipeline) {
    for ev in events {
        let _ = p.record(as_record(ev));
    }
    let _ = p.flush();
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
        let mut p = watch_pipeline(&topo, false);
        run_batch(&events, &mut p);
        assert_eq!(p.printed(), BATCH as u64, "every event is written");
        group.bench_function(name, |b| b.iter(|| run_batch(black_box(&events), &mut p)));
    }
    group.finish();
}

/// Echo exchanges in one flood batch (four events each, fewer for a lost one).
const FLOOD_ECHOES: usize = 250;
/// Container pairs pinging each other at once, each with its own echo id.
const FLOOD_PAIRS: usize = 25;
/// Time between two echoes of the flood: 100,000 echoes per second, 400,000 packet
/// events per second (the rate the consumer is to keep up with on one core).
const ECHO_INTERVAL_NS: u64 = 10_000;
/// One echo in this many is lost on the way (seen only at the sender's veth), so some
/// journeys wait for their timeout as in a real flood.
const LOST_EVERY: usize = 50;
/// Simulated time one flood batch spans.
const FLOOD_SPAN_NS: u64 = FLOOD_ECHOES as u64 * ECHO_INTERVAL_NS;

/// One event of the flood batch: the kernel record and where its echo fits in the
/// stream, so that every round can give it a fresh time and sequence number.
struct FloodEvent {
    ev: PacketEvent,
    /// Time after the start of the batch.
    rel_ns: u64,
    /// Index of its echo in the batch.
    echo: usize,
    /// Offset of the echo id (and, two bytes on, the sequence number) in `ev.data`.
    id_at: usize,
}

impl FloodEvent {
    /// Echo id and sequence number of this event's echo in round `round`: each pair
    /// counts its own sequence numbers up, as `ping -f` does.
    fn id_seq(&self, round: u64) -> (u16, u16) {
        let pair = self.echo % FLOOD_PAIRS;
        let per_round = (FLOOD_ECHOES / FLOOD_PAIRS) as u64;
        let seq = round * per_round + (self.echo / FLOOD_PAIRS) as u64;
        (1000 + pair as u16, seq as u16)
    }

    /// Moves the record to round `round`: its time and its echo id and sequence number.
    fn restamp(&mut self, round: u64) {
        let (id, seq) = self.id_seq(round);
        self.ev.ts_ns = flood_start(round) + self.rel_ns;
        self.ev.data[self.id_at..self.id_at + 2].copy_from_slice(&id.to_be_bytes());
        self.ev.data[self.id_at + 2..self.id_at + 4].copy_from_slice(&seq.to_be_bytes());
    }
}

/// Kernel time at which round `round` of the flood starts.
fn flood_start(round: u64) -> u64 {
    1_000_000_000 + round * FLOOD_SPAN_NS
}

/// One batch of an echo flood between [`FLOOD_PAIRS`] pairs of neighbours (one pair in
/// five pings over IPv6), in time order: each request is seen entering the bridge from
/// the sender's veth and leaving to the receiver's, the reply the same way back, 30 µs
/// after the request, so echoes overlap.
fn flood_batch() -> Vec<FloodEvent> {
    let ms = members();
    let per = usize::from(PER_NETWORK);
    let mut out = Vec::new();
    for echo in 0..FLOOD_ECHOES {
        let pair = echo % FLOOD_PAIRS;
        let ai = pair * ms.len() / FLOOD_PAIRS;
        let first = ai / per * per;
        let (a, b) = (ms[ai], ms[first + (ai - first + 1) % per]);
        let v6 = pair % 5 == 4;
        let (request, reply, id_at) = if v6 {
            (
                (icmp6(a, b, 128, 0), kind::ICMP6_ECHO_REQUEST),
                (icmp6(b, a, 129, 0), kind::ICMP6_ECHO_REPLY),
                14 + 40 + 4,
            )
        } else {
            (
                (icmp4(a, b, 8, 0), kind::ICMP_ECHO_REQUEST),
                (icmp4(b, a, 0, 0), kind::ICMP_ECHO_REPLY),
                14 + 20 + 4,
            )
        };
        let mut hops = vec![
            (&request, a.host_ifindex, direction::INGRESS, 0),
            (&request, b.host_ifindex, direction::EGRESS, 8_000),
            (&reply, b.host_ifindex, direction::INGRESS, 22_000),
            (&reply, a.host_ifindex, direction::EGRESS, 30_000),
        ];
        if echo % LOST_EVERY == LOST_EVERY - 1 {
            hops.truncate(1);
        }
        let start = echo as u64 * ECHO_INTERVAL_NS;
        for ((frame, k), ifindex, dir, dt) in hops {
            out.push(FloodEvent {
                ev: event(frame, ifindex, dir, *k, 0),
                rel_ns: start + dt,
                echo,
                id_at,
            });
        }
    }
    out.sort_by_key(|e| e.rel_ns);
    out
}

/// The sighting the pipeline hands the correlator for an echo record, if it is one.
fn sighting<'a>(rec: &PacketRecord<'a>, ts_ns: u64) -> Option<Sighting<'a>> {
    let kind = Some(rec.kind).filter(|k| k.is_echo())?;
    let icmp = rec.icmp.as_ref()?;
    Some(Sighting {
        ts_ns,
        kind,
        src_ip: rec.src.ip?,
        dst_ip: rec.dst.ip?,
        id: icmp.id?,
        seq: icmp.seq?,
        iface: rec.iface.name,
        ifindex: rec.iface.ifindex,
        direction: rec.direction,
        src_container: rec.src.container,
        dst_container: rec.dst.container,
        vni: rec.vxlan.as_ref().map(|v| v.vni),
        host: None,
    })
}

/// The correlator `netlab watch` runs (2 s timeout, default settling and ARP timeout).
fn watch_correlator() -> Correlator {
    Correlator::with_timeout(2_000_000_000)
}

/// Finishes what is due at the end of round `round` and appends the journey lines.
fn poll_and_write(c: &mut Correlator, round: u64, clock: &Clock, out: &mut Vec<u8>) {
    for f in c.poll(flood_start(round) + FLOOD_SPAN_NS) {
        let _ = journey::write_json(&f, clock, out);
    }
}

/// Checks once that the flood's events become sightings and pair up into answered
/// journeys of four hops (and unanswered ones for the lost echoes).
fn check_flood(events: &[FloodEvent], topo: &Topology, clock: &Clock) {
    let mut c = watch_correlator();
    for round in 0..2 {
        for e in events {
            let rec = PacketRecord::new(&e.ev, topo, clock).expect("a known kind");
            let (id, seq) = e.id_seq(round);
            let s = sighting(&rec, flood_start(round) + e.rel_ns).expect("an echo");
            c.observe(&Sighting { id, seq, ..s });
        }
    }
    let done = c.flush();
    assert_eq!(done.len(), 2 * FLOOD_ECHOES);
    let mut answered = 0;
    for f in &done {
        let journey::Finished::Journey(j) = f else {
            panic!("expected a journey")
        };
        assert!(j.src.container.is_some() && j.dst.container.is_some());
        if j.result == journey::Outcome::Answered {
            assert_eq!(j.hops.len(), 4);
            answered += 1;
        }
    }
    assert_eq!(answered, 2 * (FLOOD_ECHOES - FLOOD_ECHOES / LOST_EVERY));
}

/// An echo flood, round after round of fresh echoes (new times, sequence numbers) into
/// one long-lived correlator, polled after each batch (every 5 ms of flood time; `watch`
/// polls every 100 ms, finishing the same journeys in larger groups) with its finished
/// journeys written as JSON lines. `correlator` feeds it sightings built once from the
/// records as the pipeline builds them; `consumer` labels each record, writes its line
/// and feeds its sighting, as `Pipeline::record` does.
fn journeys(c: &mut Criterion) {
    let topo = topology();
    let clock = Clock::new();
    let mut events = flood_batch();
    check_flood(&events, &topo, &clock);
    let mut group = c.benchmark_group("journeys");
    group.throughput(Throughput::Elements(events.len() as u64));

    let records: Vec<PacketRecord<'_>> = events
        .iter()
        .map(|e| PacketRecord::new(&e.ev, &topo, &clock).expect("a known kind"))
        .collect();
    let sightings: Vec<(Sighting<'_>, &FloodEvent)> = records
        .iter()
        .zip(&events)
        .map(|(r, e)| (sighting(r, 0).expect("an echo"), e))
        .collect();
    let mut corr = watch_correlator();
    let mut out = Vec::with_capacity(64 * 1024);
    let mut round = 0u64;
    group.bench_function("correlator", |b| {
        b.iter(|| {
            let start = flood_start(round);
            for (s, e) in &sightings {
                let (id, seq) = e.id_seq(round);
                corr.observe(black_box(&Sighting {
                    ts_ns: start + e.rel_ns,
                    id,
                    seq,
                    ..*s
                }));
            }
            out.clear();
            poll_and_write(&mut corr, round, &clock, &mut out);
            black_box(&out);
            round += 1;
        })
    });

    let mut p = watch_pipeline(&topo, true);
    let mut round = 0u64;
    group.bench_function("consumer", |b| {
        b.iter(|| {
            consumer_round(&mut events, round, &mut p);
            round += 1;
        })
    });
    let watch = watch_pipeline(&topo, true);
    cpu_timed(&mut group, "consumer_cpu", &mut events, watch);
    // The daemon's map output beside watch's: the map's own cost per event is this
    // minus `consumer_cpu`.
    let with_map = watch_pipeline(&topo, true).with_output(MapOutput::default());
    cpu_timed(&mut group, "consumer_cpu_map", &mut events, with_map);
    group.finish();
}

/// Rounds of the flood through `p`, timed by this thread's CPU clock.
fn cpu_timed(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    events: &mut [FloodEvent],
    mut p: Pipeline,
) {
    let mut round = 0u64;
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = thread_cpu_time();
            for _ in 0..iters {
                consumer_round(events, round, &mut p);
                round += 1;
            }
            thread_cpu_time().saturating_sub(start)
        })
    });
}

/// One batch of the flood through `p` as `netlab watch` handles it: every record as the
/// session's drain loop hands it over (asking after each whether the outputs are full),
/// the journeys due at the end of the batch (`watch` polls on its tick), one flush.
fn consumer_round(events: &mut [FloodEvent], round: u64, p: &mut Pipeline) {
    for e in events.iter_mut() {
        e.restamp(round);
        let _ = p.record(as_record(black_box(&e.ev)));
        if p.full() {
            break;
        }
    }
    let _ = p.poll_journeys(flood_start(round) + FLOOD_SPAN_NS);
    let _ = p.flush();
}

/// CPU time this thread has used.
fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock exists on every Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

criterion_group!(benches, pipeline, journeys);
criterion_main!(benches);

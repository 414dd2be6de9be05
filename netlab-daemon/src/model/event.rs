//! The public event model: what `netlab watch` prints, as JSON lines or human lines.
//!
//! The raw kernel record ([`PacketEvent`]) never leaves this module: [`PacketRecord::new`]
//! is the one place where it becomes the public model. The JSON field names are a contract
//! that later versions extend and never rename.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlab_common::{DropEvent, PacketEvent, SNAP_LEN};
use serde::{Deserialize, Serialize};

use crate::docker::topology::{Role, Topology};
use crate::kernel::clock::{Clock, UnixNanos};
use crate::model::decode::{decode_carried, Mac};
use crate::model::jsonw::{self, Object};
use crate::model::kind::{Direction, Kind};
use crate::model::label_json::LabelJson;

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The interface a packet was seen on.
#[derive(Clone, Debug, Serialize)]
pub struct IfaceView<'a> {
    pub name: &'a str,
    pub ifindex: u32,
    pub role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridge: Option<&'a str>,
    /// For a hand-made veth, the interface at the other end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<&'a str>,
    /// For an interface of an overlay network's sandbox, the overlay's VXLAN id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
}

impl IfaceView<'_> {
    /// Writes the object its `Serialize` impl writes, for [`PacketRecord::write_json`]
    /// (and, once per interface, for [`LabelJson`]).
    pub(crate) fn write_object(&self, out: &mut Vec<u8>) {
        let mut o = Object::begin(out);
        o.str("name", self.name);
        o.u32("ifindex", self.ifindex);
        o.str("role", self.role);
        o.opt_str("container", self.container);
        o.opt_str("network", self.network);
        o.opt_str("bridge", self.bridge);
        o.opt_str("peer", self.peer);
        o.opt_u32("vni", self.vni);
        o.end();
    }
}

/// One end of a packet.
#[derive(Clone, Debug, Serialize)]
pub struct Endpoint<'a> {
    /// Absent only where the packet was seen without its Ethernet header (drops).
    #[serde(skip_serializing_if = "Mac::is_zero")]
    pub mac: Mac,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<&'a str>,
    /// The host itself (the network's gateway).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub host: bool,
}

/// Read back (drops, from the daemon), an endpoint's names are interned: they outlive
/// the text they were read from.
impl<'de> Deserialize<'de> for Endpoint<'_> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Read {
            #[serde(default)]
            mac: Mac,
            #[serde(default)]
            ip: Option<IpAddr>,
            #[serde(default)]
            container: Option<String>,
            #[serde(default)]
            network: Option<String>,
            #[serde(default)]
            host: bool,
        }
        let r = Read::deserialize(d)?;
        Ok(Endpoint {
            mac: r.mac,
            ip: r.ip,
            container: r.container.as_deref().map(intern),
            network: r.network.as_deref().map(intern),
            host: r.host,
        })
    }
}

/// Appends `source → destination` as human lines and pcapng comments name them.
pub fn write_route(out: &mut String, src: &Endpoint<'_>, dst: &Endpoint<'_>) {
    src.write_label(out);
    out.push_str(" → ");
    dst.write_label(out);
}

impl<'a> Endpoint<'a> {
    /// Appends how a human line names it: its container, else its address (`(host)` for
    /// the host), else its MAC address, else `?` (a drop seen without its Ethernet header).
    pub fn write_label(&self, out: &mut String) {
        match (self.container, self.ip) {
            (Some(c), _) => out.push_str(c),
            (None, Some(ip)) if self.host => {
                let _ = write!(out, "{ip} (host)");
            }
            (None, Some(ip)) => {
                let _ = write!(out, "{ip}");
            }
            (None, None) if !self.mac.is_zero() => {
                let _ = write!(out, "{}", self.mac);
            }
            (None, None) => out.push('?'),
        }
    }

    /// Writes the object its `Serialize` impl writes, for the `write_json` methods (and,
    /// once per address, for [`LabelJson`]).
    pub(crate) fn write_object(&self, out: &mut Vec<u8>) {
        let mut o = Object::begin(out);
        if !self.mac.is_zero() {
            o.ascii("mac", &self.mac.to_text());
        }
        if let Some(ip) = self.ip {
            o.ip("ip", ip);
        }
        o.opt_str("container", self.container);
        o.opt_str("network", self.network);
        if self.host {
            o.bool("host", true);
        }
        o.end();
    }

    /// With `network` (an overlay the packet was carried for) as its network when the
    /// topology named none: a container of another host on the overlay.
    fn on(mut self, network: Option<&'a str>) -> Self {
        if self.network.is_none() && !self.host {
            self.network = network;
        }
        self
    }

    fn labelled(mac: Mac, ip: Option<IpAddr>, topo: &'a Topology) -> Self {
        let l = topo.endpoint(ip, mac);
        Endpoint {
            mac,
            ip,
            container: l.and_then(|l| l.container.as_deref()),
            network: l.and_then(|l| l.network.as_deref()),
            host: l.is_some_and(|l| l.host),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IcmpView {
    #[serde(rename = "type")]
    pub icmp_type: u8,
    pub code: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u16>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ArpView {
    #[serde(deserialize_with = "crate::model::jsonw::tag::arp_op")]
    pub op: crate::model::jsonw::tag::Name,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: Ipv4Addr,
}

/// The fields packets and drops share, in their order: `src`, `dst`, then `icmp` and
/// `arp` when present; the endpoints through `labels` when given.
fn write_ends(
    o: &mut Object<'_>,
    src: &Endpoint<'_>,
    dst: &Endpoint<'_>,
    icmp: Option<&IcmpView>,
    arp: Option<&ArpView>,
    labels: Option<&mut LabelJson>,
) {
    match labels {
        Some(l) => {
            l.endpoint(src, o.key("src"));
            l.endpoint(dst, o.key("dst"));
        }
        None => {
            src.write_object(o.key("src"));
            dst.write_object(o.key("dst"));
        }
    }
    if let Some(i) = icmp {
        i.write_object(o.key("icmp"));
    }
    if let Some(a) = arp {
        a.write_object(o.key("arp"));
    }
}

impl IcmpView {
    /// Writes the object its `Serialize` impl writes, for the `write_json` methods.
    fn write_object(&self, out: &mut Vec<u8>) {
        let mut o = Object::begin(out);
        o.u32("type", self.icmp_type.into());
        o.u32("code", self.code.into());
        o.opt_u32("id", self.id.map(u32::from));
        o.opt_u32("seq", self.seq.map(u32::from));
        o.end();
    }
}

impl ArpView {
    /// Writes the object its `Serialize` impl writes, for the `write_json` methods.
    fn write_object(&self, out: &mut Vec<u8>) {
        let mut o = Object::begin(out);
        o.str("op", self.op);
        o.ascii("sender_mac", &self.sender_mac.to_text());
        o.ip("sender_ip", self.sender_ip.into());
        o.ascii("target_mac", &self.target_mac.to_text());
        o.ip("target_ip", self.target_ip.into());
        o.end();
    }
}

/// The tunnel a packet crossed this interface in: a VXLAN packet between two hosts of a
/// Docker overlay network.
#[derive(Clone, Debug, Serialize)]
pub struct VxlanView<'a> {
    pub vni: u32,
    /// The overlay network with this VNI, when this host's engine knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<&'a str>,
    /// The hosts at both ends (outer IPv4 addresses).
    pub outer_src: Ipv4Addr,
    pub outer_dst: Ipv4Addr,
}

/// Read back (drops, from the daemon), the network's name is interned.
impl<'de> Deserialize<'de> for VxlanView<'static> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Read {
            vni: u32,
            #[serde(default)]
            network: Option<String>,
            outer_src: Ipv4Addr,
            outer_dst: Ipv4Addr,
        }
        let r = Read::deserialize(d)?;
        Ok(VxlanView {
            vni: r.vni,
            network: r.network.as_deref().map(intern),
            outer_src: r.outer_src,
            outer_dst: r.outer_dst,
        })
    }
}

impl VxlanView<'_> {
    /// Writes the object its `Serialize` impl writes, for the `write_json` methods.
    fn write_object(&self, out: &mut Vec<u8>) {
        let mut o = Object::begin(out);
        o.u32("vni", self.vni);
        o.opt_str("network", self.network);
        o.ip("outer_src", self.outer_src.into());
        o.ip("outer_dst", self.outer_dst.into());
        o.end();
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct NdpView {
    pub target: Ipv6Addr,
}

/// A sampled packet, labelled for output.
#[derive(Clone, Debug, Serialize)]
pub struct PacketRecord<'a> {
    pub ts: UnixNanos,
    pub iface: IfaceView<'a>,
    pub direction: Direction,
    pub kind: Kind,
    /// Length of the frame on the wire.
    pub len: u32,
    /// This event stands for `sample_rate` packets (1-in-N sampling).
    pub sample_rate: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    pub src: Endpoint<'a>,
    pub dst: Endpoint<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arp: Option<ArpView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ndp: Option<NdpView>,
    /// Set when the packet was seen inside VXLAN: `src`, `dst` and the rest are the inner
    /// packet's, `len` the whole outer frame's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vxlan: Option<VxlanView<'a>>,
}

impl<'a> PacketRecord<'a> {
    /// Builds the public record of a kernel event, labelled from `topo`; `None` for a
    /// record that is not a packet of a known kind and direction (a newer kernel program,
    /// a corrupt entry).
    pub fn new(ev: &PacketEvent, topo: &'a Topology, clock: &Clock) -> Option<Self> {
        let kind = Kind::from_id(ev.kind)?;
        let direction = Direction::from_id(ev.direction)?;
        let cap = usize::from(ev.cap_len).min(ev.data.len());
        let frame = &ev.data[..cap];
        // A VXLAN frame: the packet is the inner one, from its own Ethernet header on.
        let (d, tunnel) = decode_carried(frame, ev.pkt_len, ev.encap);
        let overlay = tunnel.and_then(|t| topo.overlay_by_vni(t.vni));
        // The kernel saw the whole frame; its kind is authoritative. Fields come from the
        // decoder only when it agrees, so a frame is never shown with misread fields.
        let agree = d.as_ref().is_some_and(|d| d.kind == Some(kind));
        let (src_mac, dst_mac, vlan) = d
            .as_ref()
            .map(|d| (d.src_mac, d.dst_mac, d.vlan))
            .unwrap_or_default();
        let d = d.filter(|_| agree);
        let iface = topo.iface(ev.ifindex);
        Some(PacketRecord {
            ts: clock.to_unix(ev.ts_ns),
            iface: IfaceView {
                name: iface.map_or("?", |i| i.name.as_str()),
                ifindex: ev.ifindex,
                role: iface.map_or("interface", |i| i.role.name()),
                container: iface.and_then(|i| i.container.as_deref()),
                network: iface.and_then(|i| i.network.as_deref()),
                bridge: iface.and_then(|i| i.bridge.as_deref()),
                peer: iface
                    .filter(|i| i.role == Role::ManualVeth)
                    .and_then(|i| i.peer.as_deref()),
                vni: iface.and_then(|i| i.vni),
            },
            direction,
            kind,
            len: ev.pkt_len,
            sample_rate: ev.sample_rate.max(1),
            vlan,
            src: Endpoint::labelled(src_mac, d.and_then(|d| d.src_ip), topo).on(overlay),
            dst: Endpoint::labelled(dst_mac, d.and_then(|d| d.dst_ip), topo).on(overlay),
            icmp: d.and_then(|d| d.icmp).map(|i| IcmpView {
                icmp_type: i.icmp_type,
                code: i.code,
                id: i.id,
                seq: i.seq,
            }),
            arp: d.and_then(|d| d.arp).map(|a| ArpView {
                op: a.op_name(),
                sender_mac: a.sender_mac,
                sender_ip: a.sender_ip,
                target_mac: a.target_mac,
                target_ip: a.target_ip,
            }),
            ndp: d
                .and_then(|d| d.ndp_target)
                .map(|target| NdpView { target }),
            vxlan: tunnel.map(|t| VxlanView {
                vni: t.vni,
                network: overlay,
                outer_src: t.outer_src,
                outer_dst: t.outer_dst,
            }),
        })
    }

    /// Appends the JSON line (with its newline) to `out`: the bytes `serde_json` writes
    /// for the record, written field by field without serde, since this runs for every
    /// event. A field added to the structs must be added here too; the tests compare
    /// both outputs. Never fails; the `Result` lets callers treat it like their other
    /// writers.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        self.write_line(out, None)
    }

    /// [`PacketRecord::write_json`] with the `iface` object and the endpoints' labelled
    /// members from `labels`, which writes each once and copies it after: the same bytes.
    pub fn write_json_cached(
        &self,
        out: &mut Vec<u8>,
        labels: &mut LabelJson,
    ) -> serde_json::Result<()> {
        self.write_line(out, Some(labels))
    }

    fn write_line(
        &self,
        out: &mut Vec<u8>,
        mut labels: Option<&mut LabelJson>,
    ) -> serde_json::Result<()> {
        let mut o = Object::begin(out);
        o.ascii("ts", &self.ts.rfc3339());
        match labels.as_deref_mut() {
            Some(l) => l.iface(&self.iface, o.key("iface")),
            None => self.iface.write_object(o.key("iface")),
        }
        // Fixed names: nothing to escape.
        o.ascii("direction", self.direction.name().as_bytes());
        o.ascii("kind", self.kind.name().as_bytes());
        o.u32("len", self.len);
        o.u32("sample_rate", self.sample_rate);
        o.opt_u32("vlan", self.vlan.map(u32::from));
        write_ends(
            &mut o,
            &self.src,
            &self.dst,
            self.icmp.as_ref(),
            self.arp.as_ref(),
            labels,
        );
        if let Some(n) = &self.ndp {
            let mut t = Object::begin(o.key("ndp"));
            t.ip("target", IpAddr::V6(n.target));
            t.end();
        }
        if let Some(v) = &self.vxlan {
            v.write_object(o.key("vxlan"));
        }
        o.end();
        out.push(b'\n');
        Ok(())
    }

    /// Appends the human-readable line (with its newline) to `out`:
    /// `18:25:24.123  AppDev → AppProd  icmp echo-request id=17 seq=3  len=98  veth of AppDev (devops, br-8be916360cbc) ingress`.
    pub fn write_human(&self, out: &mut String) {
        let _ = write!(out, "{}  ", self.ts.time_of_day());
        write_route(out, &self.src, &self.dst);
        out.push_str("  ");
        if let Some(a) = &self.arp {
            match a.op {
                "request" => {
                    let _ = write!(out, "arp who-has {} tell {}", a.target_ip, a.sender_ip);
                }
                "reply" => {
                    let _ = write!(out, "arp {} is-at {}", a.sender_ip, a.sender_mac);
                }
                _ => out.push_str(self.kind.name()),
            }
        } else {
            let name = self.kind.name();
            let (family, rest) = name.split_once('-').unwrap_or((name, ""));
            out.push_str(family);
            if !rest.is_empty() {
                out.push(' ');
                out.push_str(rest);
            }
            if let Some(i) = &self.icmp {
                if let (Some(id), Some(seq)) = (i.id, i.seq) {
                    let _ = write!(out, " id={id} seq={seq}");
                } else if matches!(rest, "other" | "unreachable" | "time-exceeded") {
                    let _ = write!(out, " type={} code={}", i.icmp_type, i.code);
                }
            }
            if let Some(n) = &self.ndp {
                let _ = write!(out, " target {}", n.target);
            }
            if self.kind == Kind::Malformed {
                let _ = write!(out, " ({} → {})", self.src.mac, self.dst.mac);
            }
        }
        if let Some(v) = self.vlan {
            let _ = write!(out, " vlan {v}");
        }
        let _ = write!(out, "  len={}", self.len);
        if self.sample_rate > 1 {
            let _ = write!(out, " 1:{}", self.sample_rate);
        }
        if let Some(v) = &self.vxlan {
            let _ = write!(out, "  vxlan {}", v.vni);
            if let Some(n) = v.network {
                let _ = write!(out, " ({n})");
            }
            let _ = write!(out, " {} → {}", v.outer_src, v.outer_dst);
        }
        out.push_str("  ");
        self.iface.describe(out);
        let _ = writeln!(out, " {}", self.direction.name());
    }
}

impl IfaceView<'_> {
    /// What a person reads for this interface: `veth of AppDev (devops, br-8be916360cbc)`,
    /// `int_hote → AppProd eth1 (hand-made, devops, br-…)`, `br-… (bridge of devops)`, or
    /// its name.
    pub fn describe(&self, out: &mut String) {
        let i = self;
        let net_bridge = match (i.network, i.bridge) {
            // A network named as its bridge (docker_gwbridge) is said once.
            (Some(n), Some(b)) if n == b => n.to_owned(),
            (Some(n), Some(b)) => format!("{n}, {b}"),
            (None, Some(b)) => b.to_owned(),
            (Some(n), None) => n.to_owned(),
            (None, None) => String::new(),
        };
        match (i.role, i.container) {
            ("container-veth", Some(c)) if i.vni.is_some() => {
                let _ = write!(
                    out,
                    "veth of {c} ({net_bridge}, VNI {}, overlay sandbox)",
                    i.vni.unwrap_or_default()
                );
            }
            ("container-veth", Some(c)) => {
                let _ = write!(out, "veth of {c} ({net_bridge})");
            }
            ("manual-veth", Some(c)) => {
                let peer = i.peer.unwrap_or("?");
                let _ = write!(out, "{} → {c} {peer} (hand-made, {net_bridge})", i.name);
            }
            ("manual-veth", None) => {
                let _ = write!(out, "{} (hand-made, {net_bridge})", i.name);
            }
            ("overlay-bridge" | "overlay-vxlan", _) => {
                let what = if i.role == "overlay-bridge" {
                    "bridge"
                } else {
                    "VXLAN"
                };
                let _ = write!(
                    out,
                    "{} ({what} of overlay {}, VNI {})",
                    i.name,
                    i.network.unwrap_or("?"),
                    i.vni.unwrap_or_default()
                );
            }
            ("load-balancer-leg", _) => {
                let _ = write!(
                    out,
                    "{} → load balancer {} (of overlay {}, {}, VNI {}, overlay sandbox)",
                    i.name,
                    i.peer.unwrap_or("?"),
                    i.network.unwrap_or("?"),
                    i.bridge.unwrap_or("?"),
                    i.vni.unwrap_or_default()
                );
            }
            ("ingress-leg", _) => {
                let _ = write!(
                    out,
                    "{} → ingress_sbox {} (Swarm routing mesh, {net_bridge})",
                    i.name,
                    i.peer.unwrap_or("?")
                );
            }
            ("swarm-uplink", _) => {
                let _ = write!(out, "{} (Swarm uplink)", i.name);
            }
            ("bridge", _) if i.network.is_some() => {
                let _ = write!(
                    out,
                    "{} (bridge of {})",
                    i.name,
                    i.network.unwrap_or_default()
                );
            }
            _ => out.push_str(i.name),
        }
    }

    /// The view of an observed interface.
    pub fn of(o: &'_ crate::docker::topology::ObservedIface) -> IfaceView<'_> {
        IfaceView {
            name: &o.name,
            ifindex: o.ifindex,
            role: o.role.name(),
            container: o.container.as_deref(),
            network: o.network.as_deref(),
            bridge: o.bridge.as_deref(),
            peer: o.peer.as_deref(),
            vni: o.vni,
        }
    }
}

/// Where a dropped packet was: the device it was on and the namespace of that device.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DropPlace {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub ifindex: u32,
    /// `"host"`, the container whose namespace it is, or `"netns:<inode>"`.
    pub netns: String,
    /// The device is a bridge netlab observes (a Docker network's, or an overlay sandbox's).
    #[serde(skip)]
    pub bridge: bool,
}

/// Why and where the kernel dropped it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DropInfo {
    /// `enum skb_drop_reason` name, e.g. `NETFILTER_DROP`.
    pub reason: String,
    /// The kernel function, e.g. `nf_hook_slow+0x8c`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The netfilter hook, for netfilter drops.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    /// The firewall rule, for netfilter drops: backend, table, chain, the rule as the
    /// backend prints it, what it means in Docker's terms and how it was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<crate::explain::firewall::RuleRef>,
    /// Other rules whose counters rose at the same time, when attribution is not certain.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub candidates: Vec<String>,
    /// Why the rule of a netfilter drop is not known (the firewall's counters cannot be
    /// read: no iptables-save or nft, no permission, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unattributed: Option<String>,
    /// What the drop means where netlab knows (a Swarm overlay's drops), and what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meaning: Option<String>,
}

/// A packet the kernel dropped (`"kind":"drop"`), labelled. Read back (`diagnose`
/// through the daemon), its times are not: both are zero then.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DropRecord {
    /// When, in Unix time (what is written).
    #[serde(skip_deserializing)]
    pub ts: UnixNanos,
    /// When, in the kernel's monotonic clock (what journeys are timed by; not written).
    #[serde(skip)]
    pub ts_ns: u64,
    #[serde(deserialize_with = "crate::model::jsonw::tag::drop")]
    pub kind: crate::model::jsonw::tag::Name,
    /// What was dropped: `icmp-echo-request`, `arp-request`, ...
    pub packet: Kind,
    pub len: u32,
    pub iface: DropPlace,
    pub src: Endpoint<'static>,
    pub dst: Endpoint<'static>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arp: Option<ArpView>,
    /// Set when the packet died inside VXLAN (a Swarm overlay's datagram between hosts):
    /// the fields above are the inner packet's, `len` the outer one's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan: Option<VxlanView<'static>>,
    pub drop: DropInfo,
}

/// What a drop on a Swarm overlay means, and what to do: a drop at the VXLAN device of an
/// overlay's sandbox for want of a destination, or a firewall's drop of the overlay's
/// VXLAN datagrams between nodes. `None` for any other drop.
fn overlay_meaning(
    reason: &str,
    netns: &str,
    vxlan: Option<&VxlanView<'_>>,
    dst: Option<IpAddr>,
    topo: &Topology,
) -> Option<String> {
    if let Some(net) = netns.strip_prefix(crate::docker::topology::SANDBOX_PREFIX) {
        if matches!(reason, "NO_TX_TARGET" | "VXLAN_NO_REMOTE") {
            let dst = dst.map_or_else(|| "the destination".to_owned(), |ip| ip.to_string());
            return Some(format!(
                "no container has {dst} on overlay {net} any more (the overlay has no VXLAN forwarding entry for it: removed, or its node left the Swarm), though the sender still has its MAC address; `docker network inspect --verbose {net}` lists who is on it"
            ));
        }
        return None;
    }
    let v = vxlan?;
    if reason != "NETFILTER_DROP" {
        return None;
    }
    let port = topo
        .swarm
        .as_ref()
        .map_or(netlab_common::VXLAN_PORT, |s| s.data_path_port);
    Some(format!(
        "this node's firewall drops the VXLAN datagrams of overlay {} from {}: Swarm nodes must accept UDP {port} from each other (and TCP and UDP 7946, their gossip)",
        v.network.unwrap_or("?"),
        v.outer_src
    ))
}

/// What a drop by the sending interface's own queue means (`QDISC_DROP`). A veth end
/// queues nothing while its link is down (its peer down) or not up yet: the kernel
/// activates the queue only after it has seen the carrier come on. `None` for any other
/// reason.
fn queue_meaning(reason: &str, iface: Option<&str>) -> Option<String> {
    if reason != "QDISC_DROP" {
        return None;
    }
    let counted = iface.map_or_else(
        || "`ip -s link` counts these as TX dropped".to_owned(),
        |i| format!("`ip -s link show {i}` counts these as TX dropped"),
    );
    Some(format!(
        "{}'s transmit queue dropped it before it left: its link is down or not up yet (a veth whose other end is down, or one just made and still coming up), or the queue is full; {counted}",
        iface.unwrap_or("the sending interface")
    ))
}

fn owned_endpoint(ip: Option<IpAddr>, topo: &Topology) -> Endpoint<'static> {
    let l = topo.endpoint(ip, Mac::default());
    let leak = |s: Option<&str>| -> Option<&'static str> {
        // Labels of drops are few: intern them once per distinct string.
        s.map(intern)
    };
    Endpoint {
        mac: Mac::default(),
        ip,
        container: leak(l.and_then(|l| l.container.as_deref())),
        network: leak(l.and_then(|l| l.network.as_deref())),
        host: l.is_some_and(|l| l.host),
    }
}

/// A `'static` copy of a label, shared by every record that uses it (bounded by the
/// number of distinct container and network names ever seen).
pub(crate) fn intern(s: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static POOL: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let pool = POOL.get_or_init(|| Mutex::new(HashSet::new()));
    let mut pool = pool.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&x) = pool.get(s) {
        return x;
    }
    let x: &'static str = Box::leak(s.to_owned().into_boxed_str());
    pool.insert(x);
    x
}

impl DropRecord {
    /// The container whose namespace it died in, if it was one's.
    pub fn netns_container(&self) -> Option<&str> {
        (self.iface.netns != "host"
            && !self.iface.netns.starts_with("netns:")
            && !self
                .iface
                .netns
                .starts_with(crate::docker::topology::SANDBOX_PREFIX))
        .then_some(self.iface.netns.as_str())
    }

    /// The public record of a kernel drop report; `None` when its packet is not one of
    /// ours (the kernel filtered already; this is the last check).
    pub fn new(
        ev: &DropEvent,
        topo: &Topology,
        clock: &Clock,
        reason: String,
        location: Option<String>,
        host_netns: u64,
    ) -> Option<Self> {
        // The report starts at the network header: give the decoder an Ethernet header.
        let cap = usize::from(ev.cap_len).min(SNAP_LEN);
        let mut frame = [0u8; 14 + SNAP_LEN];
        frame[12..14].copy_from_slice(&ev.protocol.to_be_bytes());
        frame[14..14 + cap].copy_from_slice(&ev.data[..cap]);
        let frame = &frame[..14 + cap];
        // Inside VXLAN: the inner frame is the packet.
        // The packet's length from its network header: length checks see the real end.
        let (d, tunnel) = decode_carried(frame, 14 + ev.pkt_len, ev.encap);
        let d = d?;
        let kind = d.kind?;
        let vxlan = tunnel.map(|t| VxlanView {
            vni: t.vni,
            network: topo.overlay_by_vni(t.vni).map(intern),
            outer_src: t.outer_src,
            outer_dst: t.outer_dst,
        });
        let inode = u64::from(ev.netns);
        let (netns, name) = match topo.place(inode, ev.ifindex) {
            Some((None, name)) => ("host".to_owned(), name.map(str::to_owned)),
            Some((Some(c), name)) => (c.to_owned(), name.map(str::to_owned)),
            // No scan of the namespaces (`--iface`): the host's observed interfaces.
            None if inode == host_netns => (
                "host".to_owned(),
                topo.iface(ev.ifindex).map(|o| o.name.clone()),
            ),
            None => (format!("netns:{inode}"), None),
        };
        let observed = if inode == host_netns {
            topo.iface(ev.ifindex).filter(|o| o.sandbox.is_none())
        } else {
            u32::try_from(inode)
                .ok()
                .and_then(|ino| topo.iface(netlab_common::ns_key(ino, ev.ifindex)))
        };
        let bridge = observed.is_some_and(|o| matches!(o.role, Role::Bridge | Role::OverlayBridge));
        let meaning = overlay_meaning(&reason, &netns, vxlan.as_ref(), d.dst_ip, topo)
            .or_else(|| queue_meaning(&reason, name.as_deref()));
        Some(DropRecord {
            ts: clock.to_unix(ev.ts_ns),
            ts_ns: ev.ts_ns,
            kind: "drop",
            packet: kind,
            len: ev.pkt_len,
            iface: DropPlace {
                name,
                ifindex: ev.ifindex,
                netns,
                bridge,
            },
            src: owned_endpoint(d.src_ip, topo),
            dst: owned_endpoint(d.dst_ip, topo),
            icmp: d.icmp.map(|i| IcmpView {
                icmp_type: i.icmp_type,
                code: i.code,
                id: i.id,
                seq: i.seq,
            }),
            arp: d.arp.map(|a| ArpView {
                op: a.op_name(),
                sender_mac: a.sender_mac,
                sender_ip: a.sender_ip,
                target_mac: a.target_mac,
                target_ip: a.target_ip,
            }),
            vxlan,
            drop: DropInfo {
                meaning,
                reason,
                location,
                hook: None,
                rule: None,
                candidates: Vec::new(),
                unattributed: None,
            },
        })
    }

    /// Appends the JSON line to `out`: the bytes `serde_json` writes for the record,
    /// through the same writer as packets. Never fails.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let mut o = Object::begin(out);
        o.ascii("ts", &self.ts.rfc3339());
        o.str("kind", self.kind);
        o.str("packet", self.packet.name());
        o.u32("len", self.len);
        let mut place = Object::begin(o.key("iface"));
        place.opt_str("name", self.iface.name.as_deref());
        place.u32("ifindex", self.iface.ifindex);
        place.str("netns", &self.iface.netns);
        place.end();
        write_ends(
            &mut o,
            &self.src,
            &self.dst,
            self.icmp.as_ref(),
            self.arp.as_ref(),
            None,
        );
        if let Some(v) = &self.vxlan {
            v.write_object(o.key("vxlan"));
        }
        let d = &self.drop;
        let mut info = Object::begin(o.key("drop"));
        info.str("reason", &d.reason);
        info.opt_str("location", d.location.as_deref());
        info.opt_str("hook", d.hook.as_deref());
        if let Some(r) = &d.rule {
            serde_json::to_writer(info.key("rule"), r)?;
        }
        if !d.candidates.is_empty() {
            jsonw::str_array(info.key("candidates"), &d.candidates);
        }
        info.opt_str("unattributed", d.unattributed.as_deref());
        info.opt_str("meaning", d.meaning.as_deref());
        info.end();
        o.end();
        out.push(b'\n');
        Ok(())
    }

    /// Appends the human line: `18:25:24.123  AppDev → AppProd  DROPPED icmp echo-request
    /// id=17 seq=3  NETFILTER_DROP at nf_hook_slow+0x8c on br-… (host), rule …`.
    pub fn write_human(&self, out: &mut String) {
        let _ = write!(out, "{}  ", self.ts.time_of_day());
        write_route(out, &self.src, &self.dst);
        let _ = write!(out, "  DROPPED {}", self.packet.name());
        if let Some(i) = &self.icmp {
            if let (Some(id), Some(seq)) = (i.id, i.seq) {
                let _ = write!(out, " id={id} seq={seq}");
            }
        }
        if let Some(v) = &self.vxlan {
            let _ = write!(out, " inside vxlan {}", v.vni);
            if let Some(n) = v.network {
                let _ = write!(out, " ({n})");
            }
            let _ = write!(out, " {} → {}", v.outer_src, v.outer_dst);
        }
        let _ = write!(out, "  {}", self.drop.reason);
        if let Some(l) = &self.drop.location {
            let _ = write!(out, " at {l}");
        }
        match &self.iface.name {
            Some(n) => {
                let _ = write!(out, " on {n} ({})", self.iface.netns);
            }
            None => {
                let _ = write!(out, " in {}", self.iface.netns);
            }
        }
        if let Some(h) = &self.drop.hook {
            let _ = write!(out, ", hook {h}");
        }
        if let Some(r) = &self.drop.rule {
            let _ = write!(out, ", rule: {} ({} {})", r.rule, r.family, r.table);
            if let Some(d) = &r.docker {
                let _ = write!(out, ": {}", d.summary);
            }
        } else if !self.drop.candidates.is_empty() {
            let _ = write!(
                out,
                ", rule not sure: one of {}",
                self.drop.candidates.join(" | ")
            );
        } else if let Some(why) = &self.drop.unattributed {
            let _ = write!(out, ", rule unknown ({why})");
        }
        if let Some(m) = &self.drop.meaning {
            let _ = write!(out, ": {m}");
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::decode::tests::{arp_frame, icmp4_frame, icmp6_frame};
    use netlab_common::{direction, kind as k, record, SNAP_LEN};

    fn event(frame: &[u8], kind: u8) -> PacketEvent {
        let mut data = [0u8; SNAP_LEN];
        let cap = frame.len().min(SNAP_LEN);
        data[..cap].copy_from_slice(&frame[..cap]);
        PacketEvent {
            ts_ns: 1_000,
            ifindex: 7,
            pkt_len: frame.len() as u32,
            sample_rate: 1,
            cap_len: cap as u16,
            direction: direction::INGRESS,
            kind,
            record: record::TC_PACKET,
            encap: 0,
            _pad: [0; 5],
            data,
        }
    }

    fn json(ev: &PacketEvent) -> serde_json::Value {
        let clock = Clock::new();
        let topo = Topology::explicit(&[(7, "vethab12cd3".into())]);
        let rec = PacketRecord::new(ev, &topo, &clock).expect("record");
        let mut out = Vec::new();
        rec.write_json(&mut out).expect("json");
        assert_eq!(out.last(), Some(&b'\n'));
        serde_json::from_slice(&out).expect("valid json")
    }

    #[test]
    fn icmp_event_matches_the_schema() {
        let v = json(&event(&icmp4_frame(8, 17, 3), k::ICMP_ECHO_REQUEST));
        assert_eq!(v["iface"]["name"], "vethab12cd3");
        assert_eq!(v["iface"]["ifindex"], 7);
        assert_eq!(v["direction"], "ingress");
        assert_eq!(v["kind"], "icmp-echo-request");
        assert_eq!(v["len"], 98);
        assert_eq!(v["sample_rate"], 1);
        assert_eq!(v["src"]["mac"], "02:42:ac:14:00:02");
        assert_eq!(v["src"]["ip"], "172.20.0.2");
        assert_eq!(v["dst"]["mac"], "02:42:ac:14:00:03");
        assert_eq!(v["dst"]["ip"], "172.20.0.3");
        assert_eq!(v["icmp"]["type"], 8);
        assert_eq!(v["icmp"]["code"], 0);
        assert_eq!(v["icmp"]["id"], 17);
        assert_eq!(v["icmp"]["seq"], 3);
        assert!(v["ts"].as_str().expect("ts").ends_with('Z'));
        assert!(v.get("arp").is_none());
    }

    #[test]
    fn arp_and_ndp_events() {
        let v = json(&event(&arp_frame(1), k::ARP_REQUEST));
        assert_eq!(v["arp"]["op"], "request");
        assert_eq!(v["arp"]["sender_ip"], "172.20.0.2");
        assert_eq!(v["arp"]["target_ip"], "172.20.0.3");
        assert_eq!(v["arp"]["target_mac"], "00:00:00:00:00:00");
        assert_eq!(v["dst"]["mac"], "ff:ff:ff:ff:ff:ff");
        let v = json(&event(&icmp6_frame(135, 20), k::NDP_NEIGHBOR_SOLICIT));
        assert_eq!(v["kind"], "ndp-neighbor-solicit");
        assert_eq!(v["ndp"]["target"], "fd00::2");
        assert_eq!(v["icmp"]["type"], 135);
    }

    #[test]
    fn disagreement_keeps_the_kernel_kind_without_fields() {
        // The kernel says malformed; the (captured) bytes look like a fine echo request.
        let v = json(&event(&icmp4_frame(8, 1, 1), k::MALFORMED));
        assert_eq!(v["kind"], "malformed");
        assert!(v.get("icmp").is_none());
        assert!(v["src"].get("ip").is_none());
        assert_eq!(v["src"]["mac"], "02:42:ac:14:00:02");
    }

    #[test]
    fn unknown_ids_are_rejected() {
        let clock = Clock::new();
        let topo = Topology::default();
        let mut ev = event(&arp_frame(1), 200);
        assert!(PacketRecord::new(&ev, &topo, &clock).is_none());
        ev.kind = k::ARP_REQUEST;
        ev.direction = 9;
        assert!(PacketRecord::new(&ev, &topo, &clock).is_none());
    }

    #[test]
    fn empty_capture_is_not_a_crash() {
        let clock = Clock::new();
        let topo = Topology::default();
        let mut ev = event(&arp_frame(1), k::MALFORMED);
        ev.cap_len = 0;
        let rec = PacketRecord::new(&ev, &topo, &clock).expect("record");
        let mut s = String::new();
        rec.write_human(&mut s);
        assert!(s.contains("malformed"));
        // A cap_len larger than the buffer is clamped.
        ev.cap_len = u16::MAX;
        assert!(PacketRecord::new(&ev, &topo, &clock).is_some());
    }

    #[test]
    fn human_lines() {
        let clock = Clock::new();
        let topo = Topology::explicit(&[(7, "va".into())]);
        let mut s = String::new();
        let ev = event(&icmp4_frame(8, 17, 3), k::ICMP_ECHO_REQUEST);
        PacketRecord::new(&ev, &topo, &clock)
            .expect("record")
            .write_human(&mut s);
        assert!(
            s.contains(
                "172.20.0.2 → 172.20.0.3  icmp echo-request id=17 seq=3  len=98  va ingress"
            ),
            "{s}"
        );
        s.clear();
        let ev = event(&arp_frame(1), k::ARP_REQUEST);
        PacketRecord::new(&ev, &topo, &clock)
            .expect("record")
            .write_human(&mut s);
        assert!(s.contains("arp who-has 172.20.0.3 tell 172.20.0.2"), "{s}");
        s.clear();
        let ev = event(&arp_frame(2), k::ARP_REPLY);
        PacketRecord::new(&ev, &topo, &clock)
            .expect("record")
            .write_human(&mut s);
        assert!(s.contains("arp 172.20.0.2 is-at 02:42:ac:14:00:02"), "{s}");
    }

    #[test]
    fn labelled_from_the_topology() {
        let topo = crate::docker::topology::tests::course_lab_topology();
        let mut frame = icmp4_frame(8, 17, 3);
        frame[14 + 16..14 + 20].copy_from_slice(&[172, 20, 0, 200]);
        let mut ev = event(&frame, k::ICMP_ECHO_REQUEST);
        ev.ifindex = 12;
        ev.direction = direction::EGRESS;
        let clock = Clock::new();
        let rec = PacketRecord::new(&ev, &topo, &clock).expect("record");
        let v = serde_json::to_value(&rec).expect("json");
        assert_eq!(v["src"]["container"], "AppDev");
        assert_eq!(v["src"]["network"], "devops");
        assert_eq!(v["dst"]["container"], "AppProd");
        assert_eq!(v["dst"]["network"], "devops");
        assert_eq!(v["iface"]["name"], "int_hote");
        assert_eq!(v["iface"]["role"], "manual-veth");
        assert_eq!(v["iface"]["container"], "AppProd");
        assert_eq!(v["iface"]["network"], "devops");
        assert_eq!(v["iface"]["bridge"], "br-8be916360cbc");
        assert!(v["src"].get("host").is_none());
        let mut s = String::new();
        rec.write_human(&mut s);
        assert!(
            s.contains("AppDev → AppProd  icmp echo-request id=17 seq=3"),
            "{s}"
        );
        assert!(
            s.contains("int_hote → AppProd eth1 (hand-made, devops, br-8be916360cbc) egress"),
            "{s}"
        );
        // The same packet on AppDev's own veth, and a reply from the gateway.
        ev.ifindex = 10;
        ev.direction = direction::INGRESS;
        s.clear();
        PacketRecord::new(&ev, &topo, &clock)
            .expect("record")
            .write_human(&mut s);
        assert!(
            s.contains("veth of AppDev (devops, br-8be916360cbc) ingress"),
            "{s}"
        );
        frame[14 + 12..14 + 16].copy_from_slice(&[172, 20, 0, 1]);
        let ev = event(&frame, k::ICMP_ECHO_REQUEST);
        let v = serde_json::to_value(PacketRecord::new(&ev, &topo, &clock).expect("record"))
            .expect("json");
        assert_eq!(v["src"]["host"], true);
        assert_eq!(v["src"]["network"], "devops");
    }

    /// The hand-written line is the line `serde_json` writes for the same record.
    fn assert_same_json<T: Serialize>(rec: &T, write: impl FnOnce(&mut Vec<u8>)) {
        let mut fast = Vec::new();
        write(&mut fast);
        let mut reference = serde_json::to_vec(rec).expect("json");
        reference.push(b'\n');
        assert!(
            fast == reference,
            "hand-written:\n{}\nserde_json:\n{}",
            String::from_utf8_lossy(&fast),
            String::from_utf8_lossy(&reference)
        );
    }

    /// `frame` with an 802.1Q tag of VLAN `id` after the MAC addresses.
    fn tagged(frame: &[u8], id: u16) -> Vec<u8> {
        let mut f = frame[..12].to_vec();
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&frame[12..]);
        f
    }

    /// Every kind of event the kernel reports, plain and tagged, at 1:1 and 1:64.
    fn all_kinds() -> Vec<PacketEvent> {
        let frames = [
            (icmp4_frame(8, 17, 3), k::ICMP_ECHO_REQUEST),
            (icmp4_frame(0, 17, 3), k::ICMP_ECHO_REPLY),
            (icmp4_frame(3, 0, 0), k::ICMP_UNREACHABLE),
            (icmp4_frame(11, 0, 0), k::ICMP_TIME_EXCEEDED),
            (icmp4_frame(13, 1, 2), k::ICMP_OTHER),
            (icmp4_frame(8, 1, 1), k::MALFORMED),
            (arp_frame(1), k::ARP_REQUEST),
            (arp_frame(2), k::ARP_REPLY),
            (arp_frame(9), k::ARP_OTHER),
            (icmp6_frame(128, 60), k::ICMP6_ECHO_REQUEST),
            (icmp6_frame(129, 60), k::ICMP6_ECHO_REPLY),
            (icmp6_frame(135, 20), k::NDP_NEIGHBOR_SOLICIT),
            (icmp6_frame(136, 20), k::NDP_NEIGHBOR_ADVERT),
            (icmp6_frame(133, 4), k::NDP_ROUTER_SOLICIT),
            (icmp6_frame(134, 12), k::NDP_ROUTER_ADVERT),
            (icmp6_frame(1, 8), k::ICMP6_OTHER),
            (icmp6_frame(128, 2), k::MALFORMED),
        ];
        let mut events = Vec::new();
        for (frame, kind) in frames {
            for f in [frame.clone(), tagged(&frame, 42), tagged(&frame, 0)] {
                let mut ev = event(&f, kind);
                events.push(ev);
                ev.sample_rate = 64;
                ev.direction = direction::EGRESS;
                events.push(ev);
            }
        }
        // Cut short: no Ethernet header at all, or no IP header.
        let mut ev = event(&icmp4_frame(8, 1, 1), k::MALFORMED);
        ev.cap_len = 4;
        events.push(ev);
        ev.cap_len = 20;
        events.push(ev);
        events
    }

    /// An echo request inside VXLAN on a Swarm node's uplink: the inner packet's fields,
    /// labelled with the overlay; a peer's container by the overlay alone.
    #[test]
    fn a_packet_inside_vxlan() {
        let topo = crate::docker::topology::tests::swarm_node_topology();
        let clock = Clock::new();
        let mut inner = icmp4_frame(8, 17, 3);
        inner[14 + 12..14 + 20].copy_from_slice(&[10, 0, 1, 3, 10, 0, 1, 9]);
        let frame = crate::model::decode::tests::vxlan_frame(&inner, 4097);
        let mut ev = event(&frame, k::ICMP_ECHO_REQUEST);
        ev.ifindex = 40;
        ev.direction = direction::EGRESS;
        ev.encap = netlab_common::encap::VXLAN;
        let rec = PacketRecord::new(&ev, &topo, &clock).expect("record");
        let v = serde_json::to_value(&rec).expect("json");
        assert_eq!(v["kind"], "icmp-echo-request");
        assert_eq!(v["iface"]["role"], "swarm-uplink");
        assert_eq!(v["src"]["container"], "AppProd");
        assert_eq!(v["src"]["ip"], "10.0.1.3");
        assert_eq!(v["dst"]["ip"], "10.0.1.9");
        assert_eq!(v["dst"]["network"], "ovl");
        assert!(v["dst"].get("container").is_none());
        assert_eq!(v["icmp"]["seq"], 3);
        assert_eq!(
            v["vxlan"],
            serde_json::json!({"vni": 4097, "network": "ovl", "outer_src": "10.231.9.1", "outer_dst": "10.231.9.2"})
        );
        assert_eq!(v["len"], frame.len());
        assert_same_json(&rec, |o| rec.write_json(o).expect("json"));
        let mut s = String::new();
        rec.write_human(&mut s);
        assert!(
            s.contains("AppProd → 10.0.1.9  icmp echo-request id=17 seq=3")
                && s.contains(
                    "vxlan 4097 (ovl) 10.231.9.1 → 10.231.9.2  eth0 (Swarm uplink) egress"
                ),
            "{s}"
        );
        // A VNI this host does not know: no network, still the inner packet.
        let other = crate::model::decode::tests::vxlan_frame(&inner, 5000);
        let mut ev2 = event(&other, k::ICMP_ECHO_REQUEST);
        ev2.encap = netlab_common::encap::VXLAN;
        let rec = PacketRecord::new(&ev2, &topo, &clock).expect("record");
        assert_eq!(
            rec.vxlan.as_ref().map(|v| (v.vni, v.network)),
            Some((5000, None))
        );
        assert_eq!(rec.icmp.as_ref().and_then(|i| i.seq), Some(3));
        assert_same_json(&rec, |o| rec.write_json(o).expect("json"));
        // An encapsulation this build does not know: the frame's fields are not guessed.
        ev2.encap = 7;
        let rec = PacketRecord::new(&ev2, &topo, &clock).expect("record");
        assert!(rec.icmp.is_none() && rec.vxlan.is_none() && rec.src.ip.is_none());
    }

    #[test]
    fn json_writer_matches_serde_for_every_kind() {
        let clock = Clock::new();
        let names = [
            "vethab12cd3",
            "with\"quote",
            "back\\slash",
            "ctl\u{1}\u{1f}\t\n\r\u{8}\u{c}\u{7f}",
            "é→日本🦀",
            "",
        ];
        let ifaces: Vec<(u32, String)> = names.iter().map(|n| (7, n.to_string())).collect();
        let events = all_kinds();
        let mut seen = std::collections::HashSet::new();
        for iface in ifaces {
            let topo = Topology::explicit(&[iface]);
            for ev in &events {
                let rec = PacketRecord::new(ev, &topo, &clock).expect("record");
                seen.insert(rec.kind);
                assert_same_json(&rec, |o| rec.write_json(o).expect("json"));
            }
        }
        // Also on an interface the topology does not know.
        let topo = Topology::default();
        for ev in &events {
            let rec = PacketRecord::new(ev, &topo, &clock).expect("record");
            assert_eq!(rec.iface.name, "?");
            assert_same_json(&rec, |o| rec.write_json(o).expect("json"));
        }
        assert_eq!(seen.len(), usize::from(k::COUNT - 1), "{seen:?}");
    }

    /// Labels: container veths, the hand-made veth and its peer, the host as gateway,
    /// and labels that need escaping.
    #[test]
    fn json_writer_matches_serde_with_labels() {
        let topo = crate::docker::topology::tests::course_lab_topology();
        let clock = Clock::new();
        let mut frame = icmp4_frame(8, 17, 3);
        frame[14 + 16..14 + 20].copy_from_slice(&[172, 20, 0, 200]);
        let mut from_gateway = frame.clone();
        from_gateway[14 + 12..14 + 16].copy_from_slice(&[172, 20, 0, 1]);
        let mut events = all_kinds();
        events.push(event(&frame, k::ICMP_ECHO_REQUEST));
        events.push(event(&from_gateway, k::ICMP_ECHO_REQUEST));
        let (mut peers, mut hosts) = (0, 0);
        for ifindex in [3, 4, 10, 11, 12, 99] {
            for mut ev in events.clone() {
                ev.ifindex = ifindex;
                let mut rec = PacketRecord::new(&ev, &topo, &clock).expect("record");
                peers += usize::from(rec.iface.peer.is_some());
                hosts += usize::from(rec.src.host);
                assert_same_json(&rec, |o| rec.write_json(o).expect("json"));
                rec.src.container = rec.src.container.map(|_| "a\"b\\c\u{2}é");
                rec.dst.network = Some("net\u{0}work");
                rec.iface.bridge = Some("br-\u{1b}[0m");
                assert_same_json(&rec, |o| rec.write_json(o).expect("json"));
            }
        }
        assert!(peers > 0 && hosts > 0, "peers {peers}, hosts {hosts}");
    }

    #[test]
    fn json_writer_matches_serde_across_time() {
        const S: u64 = 1_000_000_000;
        let clock = Clock::new();
        let topo = Topology::explicit(&[(7, "va".into())]);
        let ev = event(&icmp4_frame(8, 17, 3), k::ICMP_ECHO_REQUEST);
        let mut rec = PacketRecord::new(&ev, &topo, &clock).expect("record");
        let mut times = vec![
            0,
            999_999_999,
            951_782_400 * S,               // 2000-02-29
            951_868_799 * S + 999_999_999, // its last nanosecond
            4_107_542_399 * S,             // 2100-02-28, no leap day
            4_107_542_400 * S + 1,         // 2100-03-01
            u64::MAX,
        ];
        // Events every 0.3 s over a few seconds: within and across seconds.
        times.extend((0..20).map(|i| 1_795_803_924 * S + i * 300_000_000));
        for t in times {
            rec.ts = UnixNanos(t);
            assert_same_json(&rec, |o| rec.write_json(o).expect("json"));
        }
    }

    #[test]
    fn mac_text_matches_display() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut macs = vec![
            Mac::default(),
            Mac([0xff; 6]),
            Mac([0x0a, 0xb0, 1, 0x10, 0, 9]),
        ];
        for _ in 0..500 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            macs.push(Mac([b[0], b[1], b[2], b[3], b[4], b[5]]));
        }
        for m in macs {
            assert_eq!(
                std::str::from_utf8(&m.to_text()).expect("ascii"),
                m.to_string()
            );
        }
    }

    /// A drop report of the packet `l3` (from its network header) on interface `ifindex`.
    fn drop_event(l3: &[u8], protocol: u16, ifindex: u32, encap: u8) -> DropEvent {
        let cap = l3.len().min(SNAP_LEN);
        let mut ev = DropEvent {
            ts_ns: 5,
            ifindex,
            pkt_len: l3.len() as u32,
            reason: 2,
            cap_len: cap as u16,
            protocol,
            record: record::DROP,
            encap,
            _pad: 0,
            netns: 0,
            location: 0,
            data: [0; SNAP_LEN],
        };
        ev.data[..cap].copy_from_slice(&l3[..cap]);
        ev
    }

    /// An ARP request dropped by the sending veth's queue (its link not up): the drop
    /// says what that means, naming the interface; other reasons get no such meaning.
    #[test]
    fn a_drop_by_the_senders_queue_is_explained() {
        let topo = crate::docker::topology::tests::course_lab_topology();
        let frame = crate::model::decode::tests::arp_frame(1);
        let l3 = &frame[14..];
        let ev = drop_event(l3, 0x0806, 4242, 0);
        let clock = Clock::new();
        let rec = DropRecord::new(&ev, &topo, &clock, "QDISC_DROP".into(), None, 0)
            .expect("an ARP request");
        assert_eq!(rec.packet, Kind::ArpRequest);
        let meaning = rec.drop.meaning.as_deref().unwrap_or_default();
        assert!(
            meaning.starts_with("the sending interface's transmit queue dropped it")
                && meaning.contains("link is down or not up yet"),
            "{meaning}"
        );
        assert_eq!(
            queue_meaning("QDISC_DROP", Some("int_hote")).as_deref(),
            Some(
                "int_hote's transmit queue dropped it before it left: its link is down or not up yet (a veth whose other end is down, or one just made and still coming up), or the queue is full; `ip -s link show int_hote` counts these as TX dropped"
            )
        );
        let other = DropRecord::new(&ev, &topo, &clock, "NEIGH_FAILED".into(), None, 0)
            .expect("an ARP request");
        assert_eq!(other.drop.meaning, None);
        let mut s = String::new();
        rec.write_human(&mut s);
        assert!(
            s.contains("QDISC_DROP") && s.contains(": the sending interface's transmit queue"),
            "{s}"
        );
    }

    /// A VXLAN datagram the kernel dropped, carrying an echo request: the drop is the
    /// inner packet's, with the tunnel it was in.
    #[test]
    fn a_drop_inside_vxlan() {
        let topo = crate::docker::topology::tests::swarm_node_topology();
        let mut inner = icmp4_frame(8, 17, 3);
        inner[14 + 12..14 + 20].copy_from_slice(&[10, 0, 1, 9, 10, 0, 1, 3]);
        let frame = crate::model::decode::tests::vxlan_frame(&inner, 4097);
        let l3 = &frame[14..];
        let mut ev = drop_event(l3, 0x0800, 40, netlab_common::encap::VXLAN);
        let clock = Clock::new();
        let rec = DropRecord::new(&ev, &topo, &clock, "NETFILTER_DROP".into(), None, 0)
            .expect("a drop of ours");
        assert_eq!(rec.packet, Kind::IcmpEchoRequest);
        assert_eq!(rec.icmp.as_ref().and_then(|i| i.seq), Some(3));
        assert_eq!(rec.dst.container, Some("AppProd"));
        let v = rec.vxlan.as_ref().expect("inside VXLAN");
        assert_eq!((v.vni, v.network), (4097, Some("ovl")));
        let meaning = rec.drop.meaning.as_deref().unwrap_or_default();
        assert!(
            meaning.contains("overlay ovl from 10.231.9.1") && meaning.contains("UDP 4789"),
            "{meaning}"
        );
        assert_eq!(v.outer_dst, Ipv4Addr::new(10, 231, 9, 2));
        assert_same_json(&rec, |o| rec.write_json(o).expect("json"));
        let back: DropRecord =
            serde_json::from_value(serde_json::to_value(&rec).expect("json")).expect("read back");
        assert_eq!(
            back.vxlan.map(|v| (v.vni, v.network)),
            Some((4097, Some("ovl")))
        );
        let mut s = String::new();
        rec.write_human(&mut s);
        assert!(
            s.contains("DROPPED icmp-echo-request id=17 seq=3 inside vxlan 4097 (ovl) 10.231.9.1 → 10.231.9.2  NETFILTER_DROP"),
            "{s}"
        );
        // Not VXLAN after all (cut short): nothing is guessed.
        ev.cap_len = 30;
        assert!(DropRecord::new(&ev, &topo, &clock, "X".into(), None, 0).is_none());
    }

    #[test]
    fn drop_json_writer_matches_serde() {
        let ep = |ip: Option<IpAddr>, container, network, host| Endpoint {
            mac: Mac::default(),
            ip,
            container,
            network,
            host,
        };
        let base = DropRecord {
            ts: UnixNanos(1_795_803_924_123_456_789),
            ts_ns: 42,
            kind: "drop",
            packet: Kind::IcmpEchoRequest,
            len: 98,
            iface: DropPlace {
                name: Some("br-8be916360cbc".into()),
                ifindex: 3,
                netns: "host".into(),
                bridge: true,
            },
            src: ep(
                Some("172.20.0.2".parse().expect("ip")),
                Some("AppDev"),
                Some("devops"),
                false,
            ),
            dst: ep(Some("fd00::2".parse().expect("ip")), None, None, true),
            icmp: Some(IcmpView {
                icmp_type: 8,
                code: 0,
                id: Some(17),
                seq: Some(3),
            }),
            arp: None,
            vxlan: None,
            drop: DropInfo {
                reason: "NETFILTER_DROP".into(),
                location: Some("nf_hook_slow+0x8c".into()),
                hook: Some("FORWARD".into()),
                rule: Some("-A DOCKER-ISOLATION -j DROP -m comment --comment \"x\\y\"".into()),
                candidates: vec!["-A FORWARD -j DROP".into(), "tab\there".into()],
                unattributed: Some("nft: \"not found\"".into()),
                meaning: None,
            },
        };
        let mut bare = base.clone();
        bare.ts = UnixNanos(0);
        bare.packet = Kind::ArpRequest;
        bare.iface = DropPlace {
            name: None,
            ifindex: 0,
            netns: "netns:4026532001".into(),
            bridge: false,
        };
        bare.src = ep(None, None, None, false);
        bare.dst = ep(None, None, None, false);
        bare.icmp = None;
        bare.arp = Some(ArpView {
            op: "request",
            sender_mac: Mac([2, 0x42, 0xac, 0x14, 0, 2]),
            sender_ip: Ipv4Addr::new(172, 20, 0, 2),
            target_mac: Mac::default(),
            target_ip: Ipv4Addr::new(172, 20, 0, 3),
        });
        bare.drop = DropInfo {
            reason: "NOT_SPECIFIED".into(),
            location: None,
            hook: None,
            rule: None,
            candidates: Vec::new(),
            unattributed: None,
            meaning: None,
        };
        let mut tunnelled = base.clone();
        tunnelled.vxlan = Some(VxlanView {
            vni: 4097,
            network: Some("ovl"),
            outer_src: Ipv4Addr::new(10, 231, 9, 1),
            outer_dst: Ipv4Addr::new(10, 231, 9, 2),
        });
        for rec in [base, bare, tunnelled] {
            assert_same_json(&rec, |o| rec.write_json(o).expect("json"));
        }
    }
}

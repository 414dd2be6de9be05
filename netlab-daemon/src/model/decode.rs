//! Decoding of captured frames (the first bytes of an ARP, ICMP or ICMPv6 frame).
//!
//! The classification mirrors the kernel program's, so that user space and the counters
//! agree on what a frame is; unlike the kernel, the decoder sees at most the captured
//! prefix, so fields beyond it are reported as absent rather than guessed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::model::kind::Kind;

/// An Ethernet MAC address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// All zeroes: no address known.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// The `aa:bb:cc:dd:ee:ff` text of [`Display`](std::fmt::Display) as ASCII bytes,
    /// from a lookup table: the JSON writer puts a MAC in every event, and `core::fmt`'s
    /// hex formatting would cost more than the rest of the address.
    pub fn to_text(&self) -> [u8; 17] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b':'; 17];
        for (i, b) in self.0.into_iter().enumerate() {
            out[3 * i] = HEX[usize::from(b >> 4)];
            out[3 * i + 1] = HEX[usize::from(b & 0xf)];
        }
        out
    }
}

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl<'de> serde::Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse()
            .map_err(|()| serde::de::Error::custom(format_args!("not a MAC address: {text}")))
    }
}

impl std::str::FromStr for Mac {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut out {
            *b = u8::from_str_radix(parts.next().ok_or(())?, 16).map_err(|_| ())?;
        }
        if parts.next().is_some() {
            return Err(());
        }
        Ok(Mac(out))
    }
}

/// ICMP or ICMPv6 header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icmp {
    pub icmp_type: u8,
    pub code: u8,
    /// Echo identifier (echo request/reply only).
    pub id: Option<u16>,
    /// Echo sequence number (echo request/reply only).
    pub seq: Option<u16>,
}

/// The fields of an Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: Ipv4Addr,
}

impl Arp {
    pub const fn op_name(&self) -> &'static str {
        match self.op {
            1 => "request",
            2 => "reply",
            _ => "other",
        }
    }
}

/// What could be read from a captured frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The kind by the same rules as the kernel's; `None` when the frame is not ours.
    pub kind: Option<Kind>,
    pub src_mac: Mac,
    pub dst_mac: Mac,
    /// 802.1Q/802.1ad tag (VLAN id), when the frame carried one.
    pub vlan: Option<u16>,
    pub src_ip: Option<IpAddr>,
    pub dst_ip: Option<IpAddr>,
    pub icmp: Option<Icmp>,
    pub arp: Option<Arp>,
    /// Target address of a neighbour solicitation or advertisement.
    pub ndp_target: Option<Ipv6Addr>,
}

const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;

fn be16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(off)?, *b.get(off + 1)?]))
}

fn arr<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off + N)?.try_into().ok()
}

/// Decodes `data`, the captured prefix of a frame whose full length on the wire is `wire_len`.
///
/// Returns `None` when not even the Ethernet header was captured.
pub fn decode(data: &[u8], wire_len: u32) -> Option<Decoded> {
    let wire_len = wire_len as usize;
    let dst_mac = Mac(arr(data, 0)?);
    let src_mac = Mac(arr(data, 6)?);
    let mut ethertype = be16(data, 12)?;
    let mut l3 = 14;
    let mut vlan = None;
    let mut d = Decoded {
        kind: None,
        src_mac,
        dst_mac,
        vlan: None,
        src_ip: None,
        dst_ip: None,
        icmp: None,
        arp: None,
        ndp_target: None,
    };
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        let Some(inner) = be16(data, 16) else {
            return Some(d);
        };
        vlan = be16(data, 14).map(|tci| tci & 0x0fff);
        ethertype = inner;
        l3 = 18;
    }
    d.vlan = vlan;
    match ethertype {
        ETH_P_ARP => decode_arp(data, l3, wire_len, &mut d),
        ETH_P_IP => decode_ipv4(data, l3, wire_len, &mut d),
        ETH_P_IPV6 => decode_ipv6(data, l3, wire_len, &mut d),
        _ => {}
    }
    Some(d)
}

/// The outer headers of a VXLAN frame: who sent it to whom, and for which network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vxlan {
    /// The VXLAN network identifier (a Docker overlay network's `vxlanid_list`).
    pub vni: u32,
    /// The hosts at both ends of the tunnel (outer IPv4 source and destination).
    pub outer_src: Ipv4Addr,
    pub outer_dst: Ipv4Addr,
    /// Where the inner Ethernet frame starts.
    pub inner: usize,
}

/// Reads the outer headers of `data`, an Ethernet frame the kernel found to carry VXLAN
/// over IPv4 (UDP, then the 8-byte VXLAN header with its VNI); `None` when the captured
/// prefix does not hold them all.
pub fn vxlan(data: &[u8]) -> Option<Vxlan> {
    let mut l3 = 14;
    if matches!(be16(data, 12)?, ETH_P_8021Q | ETH_P_8021AD) {
        l3 = 18;
    }
    let vihl = *data.get(l3)?;
    let ihl = usize::from(vihl & 0x0f) * 4;
    if vihl >> 4 != 4 || ihl < 20 || *data.get(l3 + 9)? != 17 {
        return None;
    }
    let vx = l3 + ihl + 8;
    let vni = u32::from_be_bytes([
        0,
        *data.get(vx + 4)?,
        *data.get(vx + 5)?,
        *data.get(vx + 6)?,
    ]);
    Some(Vxlan {
        vni,
        outer_src: Ipv4Addr::from(arr::<4>(data, l3 + 12)?),
        outer_dst: Ipv4Addr::from(arr::<4>(data, l3 + 16)?),
        inner: vx + 8,
    })
}

/// Decodes the packet `frame` (the captured prefix of a frame of `wire_len` bytes) carries
/// as the kernel's `encap` mark says: the frame itself, or the inner frame of its VXLAN
/// datagram, with the tunnel. No packet for a mark this build does not know, or a VXLAN
/// frame whose outer headers were not all captured: fields are never guessed.
pub fn decode_carried(frame: &[u8], wire_len: u32, encap: u8) -> (Option<Decoded>, Option<Vxlan>) {
    match encap {
        netlab_common::encap::NONE => (decode(frame, wire_len), None),
        netlab_common::encap::VXLAN => match vxlan(frame) {
            Some(t) => (
                decode(&frame[t.inner..], wire_len.saturating_sub(t.inner as u32)),
                Some(t),
            ),
            None => (None, None),
        },
        _ => (None, None),
    }
}

fn decode_arp(b: &[u8], l3: usize, wire_len: usize, d: &mut Decoded) {
    if wire_len < l3 + 8 {
        d.kind = Some(Kind::Malformed);
        return;
    }
    let (Some(htype), Some(ptype), Some(hlen), Some(plen), Some(op)) = (
        be16(b, l3),
        be16(b, l3 + 2),
        b.get(l3 + 4),
        b.get(l3 + 5),
        be16(b, l3 + 6),
    ) else {
        // Long enough on the wire, but not captured: the kernel's classification stands.
        return;
    };
    if htype != 1 || ptype != ETH_P_IP {
        d.kind = Some(Kind::ArpOther);
        return;
    }
    if *hlen != 6 || *plen != 4 || wire_len < l3 + 28 {
        d.kind = Some(Kind::Malformed);
        return;
    }
    d.kind = Some(match op {
        1 => Kind::ArpRequest,
        2 => Kind::ArpReply,
        _ => Kind::ArpOther,
    });
    if let (Some(sm), Some(si), Some(tm), Some(ti)) = (
        arr::<6>(b, l3 + 8),
        arr::<4>(b, l3 + 14),
        arr::<6>(b, l3 + 18),
        arr::<4>(b, l3 + 24),
    ) {
        let arp = Arp {
            op,
            sender_mac: Mac(sm),
            sender_ip: Ipv4Addr::from(si),
            target_mac: Mac(tm),
            target_ip: Ipv4Addr::from(ti),
        };
        d.src_ip = Some(IpAddr::V4(arp.sender_ip));
        d.dst_ip = Some(IpAddr::V4(arp.target_ip));
        d.arp = Some(arp);
    }
}

fn decode_icmp(b: &[u8], l4: usize, echo: bool) -> Option<Icmp> {
    let icmp_type = *b.get(l4)?;
    let code = *b.get(l4 + 1)?;
    let (id, seq) = if echo {
        (be16(b, l4 + 4), be16(b, l4 + 6))
    } else {
        (None, None)
    };
    Some(Icmp {
        icmp_type,
        code,
        id,
        seq,
    })
}

fn decode_ipv4(b: &[u8], l3: usize, wire_len: usize, d: &mut Decoded) {
    if b.get(l3 + 9) != Some(&1) {
        return;
    }
    if wire_len < l3 + 20 {
        d.kind = Some(Kind::Malformed);
        return;
    }
    let (Some(vihl), Some(tot_len), Some(frag)) = (b.get(l3), be16(b, l3 + 2), be16(b, l3 + 6))
    else {
        return;
    };
    let ihl = usize::from(vihl & 0x0f) * 4;
    let tot_len = usize::from(tot_len);
    if vihl >> 4 != 4 || ihl < 20 || tot_len < ihl || l3 + tot_len > wire_len {
        d.kind = Some(Kind::Malformed);
        return;
    }
    if let (Some(s), Some(t)) = (arr::<4>(b, l3 + 12), arr::<4>(b, l3 + 16)) {
        d.src_ip = Some(IpAddr::V4(Ipv4Addr::from(s)));
        d.dst_ip = Some(IpAddr::V4(Ipv4Addr::from(t)));
    }
    if frag & 0x1fff != 0 {
        // A non-first fragment has no ICMP header: not ours (the kernel skips it too).
        return;
    }
    if tot_len < ihl + 8 {
        d.kind = Some(Kind::Malformed);
        return;
    }
    let l4 = l3 + ihl;
    let Some(&t) = b.get(l4) else {
        // Beyond the captured prefix (long IP options); the kernel saw the type.
        return;
    };
    let kind = match t {
        8 => Kind::IcmpEchoRequest,
        0 => Kind::IcmpEchoReply,
        3 => Kind::IcmpUnreachable,
        11 => Kind::IcmpTimeExceeded,
        _ => Kind::IcmpOther,
    };
    d.kind = Some(kind);
    d.icmp = decode_icmp(b, l4, matches!(t, 0 | 8));
}

/// IPv6 extension headers walked to find ICMPv6 (Hop-by-Hop, Routing, Fragment,
/// Authentication, Destination Options), as the kernel program does.
fn is_ipv6_ext(next: u8) -> bool {
    matches!(next, 0 | 43 | 44 | 51 | 60)
}

/// Extension headers followed at most (the kernel program's bound).
const MAX_IPV6_EXT: usize = 8;
/// Furthest ICMPv6 header offset followed (the kernel program's bound, from the IPv6 header).
const MAX_IPV6_L4_OFFSET: usize = 2048;

/// Where the ICMPv6 header starts behind the extension headers of the packet at `l3`
/// whose payload ends at `end`.
enum Ipv6Upper {
    Icmp6(usize),
    /// A later fragment, another upper protocol, or a chain longer than followed.
    NotOurs,
    /// The chain runs past the payload.
    Malformed,
    /// The captured prefix ends inside the chain (the kernel saw the rest).
    Unknown,
}

fn ipv6_upper(b: &[u8], l3: usize, end: usize) -> Ipv6Upper {
    let Some(&first) = b.get(l3 + 6) else {
        return Ipv6Upper::Unknown;
    };
    let mut next = first;
    let mut off = l3 + 40;
    for _ in 0..MAX_IPV6_EXT {
        if next == 58 {
            return Ipv6Upper::Icmp6(off);
        }
        if !is_ipv6_ext(next) {
            return Ipv6Upper::NotOurs;
        }
        let min = if next == 44 { 8 } else { 2 };
        if off + min > end {
            return Ipv6Upper::Malformed;
        }
        let (Some(&nh), Some(&hl)) = (b.get(off), b.get(off + 1)) else {
            return Ipv6Upper::Unknown;
        };
        off += match next {
            44 => {
                let Some(frag) = be16(b, off + 2) else {
                    return Ipv6Upper::Unknown;
                };
                if frag & 0xfff8 != 0 {
                    return Ipv6Upper::NotOurs;
                }
                8
            }
            51 => (usize::from(hl) + 2) * 4,
            _ => (usize::from(hl) + 1) * 8,
        };
        if off > end {
            return Ipv6Upper::Malformed;
        }
        if off > MAX_IPV6_L4_OFFSET {
            return Ipv6Upper::NotOurs;
        }
        next = nh;
    }
    if next == 58 {
        Ipv6Upper::Icmp6(off)
    } else {
        Ipv6Upper::NotOurs
    }
}

fn decode_ipv6(b: &[u8], l3: usize, wire_len: usize, d: &mut Decoded) {
    match b.get(l3 + 6) {
        Some(&n) if n == 58 || is_ipv6_ext(n) => {}
        _ => return,
    }
    if wire_len < l3 + 40 {
        d.kind = Some(Kind::Malformed);
        return;
    }
    let (Some(v), Some(plen)) = (b.get(l3), be16(b, l3 + 4)) else {
        return;
    };
    let end = l3 + 40 + usize::from(plen);
    if v >> 4 != 6 || end > wire_len {
        d.kind = Some(Kind::Malformed);
        return;
    }
    if let (Some(s), Some(t)) = (arr::<16>(b, l3 + 8), arr::<16>(b, l3 + 24)) {
        d.src_ip = Some(IpAddr::V6(Ipv6Addr::from(s)));
        d.dst_ip = Some(IpAddr::V6(Ipv6Addr::from(t)));
    }
    let l4 = match ipv6_upper(b, l3, end) {
        Ipv6Upper::Icmp6(l4) => l4,
        Ipv6Upper::NotOurs | Ipv6Upper::Unknown => return,
        Ipv6Upper::Malformed => {
            d.kind = Some(Kind::Malformed);
            return;
        }
    };
    let rem = end - l4;
    if rem < 4 {
        d.kind = Some(Kind::Malformed);
        return;
    }
    let Some(&t) = b.get(l4) else {
        return;
    };
    let (kind, min) = match t {
        128 => (Kind::Icmp6EchoRequest, 8),
        129 => (Kind::Icmp6EchoReply, 8),
        133 => (Kind::NdpRouterSolicit, 8),
        134 => (Kind::NdpRouterAdvert, 16),
        135 => (Kind::NdpNeighborSolicit, 24),
        136 => (Kind::NdpNeighborAdvert, 24),
        _ => (Kind::Icmp6Other, 4),
    };
    if rem < min {
        d.kind = Some(Kind::Malformed);
        return;
    }
    d.kind = Some(kind);
    d.icmp = decode_icmp(b, l4, matches!(t, 128 | 129));
    if matches!(t, 135 | 136) {
        d.ndp_target = arr::<16>(b, l4 + 8).map(Ipv6Addr::from);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const MAC_A: [u8; 6] = [0x02, 0x42, 0xac, 0x14, 0x00, 0x02];
    pub const MAC_B: [u8; 6] = [0x02, 0x42, 0xac, 0x14, 0x00, 0x03];

    fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    /// `inner` as VXLAN `vni` carries it from host 10.231.9.1 to 10.231.9.2 (UDP 4789).
    pub fn vxlan_frame(inner: &[u8], vni: u32) -> Vec<u8> {
        let mut f = eth(MAC_B, MAC_A, ETH_P_IP);
        let total = (20 + 8 + 8 + inner.len()) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&[10, 231, 9, 1, 10, 231, 9, 2]);
        f.extend_from_slice(&54321u16.to_be_bytes());
        f.extend_from_slice(&4789u16.to_be_bytes());
        f.extend_from_slice(&(total - 20).to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x08, 0, 0, 0]);
        f.extend_from_slice(&(vni << 8).to_be_bytes());
        f.extend_from_slice(inner);
        f
    }

    #[test]
    fn vxlan_outer_headers() {
        let inner = icmp4_frame(8, 7, 1);
        let f = vxlan_frame(&inner, 4097);
        let v = vxlan(&f).expect("a VXLAN frame");
        assert_eq!(v.vni, 4097);
        assert_eq!(v.outer_src, Ipv4Addr::new(10, 231, 9, 1));
        assert_eq!(v.outer_dst, Ipv4Addr::new(10, 231, 9, 2));
        assert_eq!(&f[v.inner..], &inner[..]);
        // Cut inside the VXLAN header, or not UDP: nothing.
        assert_eq!(vxlan(&f[..14 + 20 + 8 + 6]), None);
        assert_eq!(vxlan(&inner), None);
    }

    pub fn arp_frame(op: u16) -> Vec<u8> {
        let mut f = eth([0xff; 6], MAC_A, ETH_P_ARP);
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
        f.extend_from_slice(&op.to_be_bytes());
        f.extend_from_slice(&MAC_A);
        f.extend_from_slice(&[172, 20, 0, 2]);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&[172, 20, 0, 3]);
        f
    }

    pub fn icmp4_frame(icmp_type: u8, id: u16, seq: u16) -> Vec<u8> {
        let mut f = eth(MAC_B, MAC_A, ETH_P_IP);
        let payload = 56;
        let tot = (20 + 8 + payload) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&tot.to_be_bytes());
        f.extend_from_slice(&[0, 1, 0x40, 0, 64, 1, 0, 0]);
        f.extend_from_slice(&[172, 20, 0, 2, 172, 20, 0, 3]);
        f.extend_from_slice(&[icmp_type, 0, 0, 0]);
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend(std::iter::repeat_n(0xab, payload));
        f
    }

    fn ip6(a: u16) -> [u8; 16] {
        let mut o = [0u8; 16];
        o[0] = 0xfd;
        o[15] = a as u8;
        o
    }

    pub fn icmp6_frame(icmp_type: u8, body_len: usize) -> Vec<u8> {
        let mut f = eth(MAC_B, MAC_A, ETH_P_IPV6);
        let plen = (4 + body_len) as u16;
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&plen.to_be_bytes());
        f.extend_from_slice(&[58, 255]);
        f.extend_from_slice(&ip6(1));
        f.extend_from_slice(&ip6(2));
        f.extend_from_slice(&[icmp_type, 0, 0, 0]);
        let mut body = vec![0u8; body_len];
        if body_len >= 4 {
            body[0..2].copy_from_slice(&7u16.to_be_bytes());
            body[2..4].copy_from_slice(&9u16.to_be_bytes());
        }
        if body_len >= 20 && matches!(icmp_type, 135 | 136) {
            body[4..20].copy_from_slice(&ip6(2));
        }
        f.extend_from_slice(&body);
        f
    }

    /// `icmp6_frame` with extension headers before ICMPv6: each `(next header it stands
    /// for, its bytes)`; the payload length and next-header fields are fixed up.
    pub fn icmp6_ext_frame(exts: &[(u8, Vec<u8>)], icmp_type: u8, body_len: usize) -> Vec<u8> {
        let plain = icmp6_frame(icmp_type, body_len);
        let (head, icmp) = plain.split_at(14 + 40);
        let mut f = head.to_vec();
        let mut chain = Vec::new();
        for (i, (_, bytes)) in exts.iter().enumerate() {
            let mut h = bytes.clone();
            h[0] = exts.get(i + 1).map_or(58, |(n, _)| *n);
            chain.extend_from_slice(&h);
        }
        if let Some((first, _)) = exts.first() {
            f[14 + 6] = *first;
        }
        let plen = (chain.len() + icmp.len()) as u16;
        f[18..20].copy_from_slice(&plen.to_be_bytes());
        f.extend_from_slice(&chain);
        f.extend_from_slice(icmp);
        f
    }

    /// A Hop-by-Hop / Routing / Destination Options header of `8 * (units + 1)` bytes.
    pub fn ext_opts(units: u8) -> Vec<u8> {
        let mut h = vec![0, units, 1, 8 * units + 2];
        h.resize(8 * usize::from(units) + 8, 0);
        h
    }

    /// A fragment header (offset in 8-byte units).
    pub fn ext_frag(offset: u16, more: bool) -> Vec<u8> {
        let mut h = vec![0, 0];
        h.extend_from_slice(&((offset << 3) | u16::from(more)).to_be_bytes());
        h.extend_from_slice(&[0, 0, 0, 7]);
        h
    }

    fn dec(f: &[u8]) -> Decoded {
        decode(f, f.len() as u32).expect("ethernet header present")
    }

    #[test]
    fn arp_request_and_reply() {
        let d = dec(&arp_frame(1));
        assert_eq!(d.kind, Some(Kind::ArpRequest));
        let arp = d.arp.expect("arp fields");
        assert_eq!(arp.op_name(), "request");
        assert_eq!(arp.sender_ip, Ipv4Addr::new(172, 20, 0, 2));
        assert_eq!(arp.target_ip, Ipv4Addr::new(172, 20, 0, 3));
        assert_eq!(arp.sender_mac, Mac(MAC_A));
        assert_eq!(d.dst_mac, Mac([0xff; 6]));
        assert_eq!(dec(&arp_frame(2)).kind, Some(Kind::ArpReply));
        assert_eq!(dec(&arp_frame(3)).kind, Some(Kind::ArpOther));
    }

    #[test]
    fn icmp_kinds() {
        for (t, k) in [
            (8, Kind::IcmpEchoRequest),
            (0, Kind::IcmpEchoReply),
            (3, Kind::IcmpUnreachable),
            (11, Kind::IcmpTimeExceeded),
            (13, Kind::IcmpOther),
        ] {
            let d = dec(&icmp4_frame(t, 17, 3));
            assert_eq!(d.kind, Some(k), "type {t}");
            let icmp = d.icmp.expect("icmp");
            assert_eq!(icmp.icmp_type, t);
            let echo = matches!(t, 0 | 8);
            assert_eq!(icmp.id, echo.then_some(17));
            assert_eq!(icmp.seq, echo.then_some(3));
            assert_eq!(d.src_ip, Some("172.20.0.2".parse().expect("ip")));
            assert_eq!(d.dst_ip, Some("172.20.0.3".parse().expect("ip")));
        }
    }

    #[test]
    fn icmp6_and_ndp_kinds() {
        for (t, body, k) in [
            (128, 60, Kind::Icmp6EchoRequest),
            (129, 60, Kind::Icmp6EchoReply),
            (133, 4, Kind::NdpRouterSolicit),
            (134, 12, Kind::NdpRouterAdvert),
            (135, 20, Kind::NdpNeighborSolicit),
            (136, 20, Kind::NdpNeighborAdvert),
            (143, 20, Kind::Icmp6Other),
        ] {
            let d = dec(&icmp6_frame(t, body));
            assert_eq!(d.kind, Some(k), "type {t}");
        }
        let ns = dec(&icmp6_frame(135, 20));
        assert_eq!(ns.ndp_target, Some("fd00::2".parse().expect("ip")));
        let echo = dec(&icmp6_frame(128, 60)).icmp.expect("icmp");
        assert_eq!((echo.id, echo.seq), (Some(7), Some(9)));
        // NS/NA without room for the target, RA too short: malformed.
        assert_eq!(dec(&icmp6_frame(135, 8)).kind, Some(Kind::Malformed));
        assert_eq!(dec(&icmp6_frame(134, 4)).kind, Some(Kind::Malformed));
    }

    #[test]
    fn vlan_tag_is_skipped() {
        let plain = arp_frame(1);
        let mut tagged = plain[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
        tagged.extend_from_slice(&plain[12..]);
        let d = dec(&tagged);
        assert_eq!(d.kind, Some(Kind::ArpRequest));
        assert_eq!(d.vlan, Some(42));
        assert_eq!(d.arp, dec(&plain).arp);
    }

    #[test]
    fn other_protocols_are_not_ours() {
        let mut udp = icmp4_frame(8, 1, 1);
        udp[14 + 9] = 17;
        assert_eq!(dec(&udp).kind, None);
        let mut tcp6 = icmp6_frame(128, 60);
        tcp6[14 + 6] = 6;
        assert_eq!(dec(&tcp6).kind, None);
        assert_eq!(dec(&eth(MAC_A, MAC_B, 0x88cc)).kind, None);
    }

    #[test]
    fn non_first_fragment_is_skipped() {
        let mut f = icmp4_frame(8, 1, 1);
        f[14 + 6] = 0x00;
        f[14 + 7] = 100;
        assert_eq!(dec(&f).kind, None);
        // The first fragment (MF set, offset 0) is still counted.
        let mut first = icmp4_frame(8, 1, 1);
        first[14 + 6] = 0x20;
        assert_eq!(dec(&first).kind, Some(Kind::IcmpEchoRequest));
    }

    #[test]
    fn bad_lengths_are_malformed() {
        let mut bad_ihl = icmp4_frame(8, 1, 1);
        bad_ihl[14] = 0x43;
        assert_eq!(dec(&bad_ihl).kind, Some(Kind::Malformed));
        let mut bad_version = icmp4_frame(8, 1, 1);
        bad_version[14] = 0x55;
        assert_eq!(dec(&bad_version).kind, Some(Kind::Malformed));
        let mut long_tot = icmp4_frame(8, 1, 1);
        long_tot[16..18].copy_from_slice(&2000u16.to_be_bytes());
        assert_eq!(dec(&long_tot).kind, Some(Kind::Malformed));
        let mut short_icmp = icmp4_frame(8, 1, 1);
        short_icmp[16..18].copy_from_slice(&24u16.to_be_bytes());
        assert_eq!(dec(&short_icmp).kind, Some(Kind::Malformed));
        let mut arp_bad_hlen = arp_frame(1);
        arp_bad_hlen[14 + 4] = 8;
        assert_eq!(dec(&arp_bad_hlen).kind, Some(Kind::Malformed));
        let mut v6_long = icmp6_frame(128, 60);
        v6_long[18..20].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(dec(&v6_long).kind, Some(Kind::Malformed));
    }

    #[test]
    fn icmp6_behind_extension_headers() {
        // A fragmented ping's first fragment, an MLD report behind Hop-by-Hop, Destination
        // Options and Routing before neighbour discovery, an Authentication Header.
        let first = icmp6_ext_frame(&[(44, ext_frag(0, true))], 128, 60);
        let d = dec(&first);
        assert_eq!(d.kind, Some(Kind::Icmp6EchoRequest));
        assert_eq!(d.icmp.and_then(|i| i.seq), Some(9));
        assert_eq!(
            dec(&icmp6_ext_frame(&[(0, ext_opts(0))], 143, 20)).kind,
            Some(Kind::Icmp6Other)
        );
        let ns = dec(&icmp6_ext_frame(
            &[(60, ext_opts(1)), (43, ext_opts(0))],
            135,
            20,
        ));
        assert_eq!(ns.kind, Some(Kind::NdpNeighborSolicit));
        assert!(ns.ndp_target.is_some());
        let mut ah = vec![0, 4];
        ah.resize(24, 0);
        assert_eq!(
            dec(&icmp6_ext_frame(&[(51, ah)], 129, 8)).kind,
            Some(Kind::Icmp6EchoReply)
        );
        // Later fragments carry no ICMPv6 header: not counted, as for IPv4.
        assert_eq!(
            dec(&icmp6_ext_frame(&[(44, ext_frag(100, false))], 128, 60)).kind,
            None
        );
        // Eight headers are followed, a ninth is not.
        let eight: Vec<(u8, Vec<u8>)> = (0..8).map(|_| (60, ext_opts(0))).collect();
        assert_eq!(
            dec(&icmp6_ext_frame(&eight, 128, 8)).kind,
            Some(Kind::Icmp6EchoRequest)
        );
        let nine: Vec<(u8, Vec<u8>)> = (0..9).map(|_| (60, ext_opts(0))).collect();
        assert_eq!(dec(&icmp6_ext_frame(&nine, 128, 8)).kind, None);
        // Another upper protocol behind Hop-by-Hop is not ours.
        let mut tcp = icmp6_ext_frame(&[(0, ext_opts(0))], 128, 8);
        tcp[14 + 40] = 6;
        assert_eq!(dec(&tcp).kind, None);
        // A header that runs past the payload, and ICMPv6 cut short behind a header.
        let mut past = icmp6_ext_frame(&[(0, ext_opts(0))], 128, 8);
        past[14 + 40 + 1] = 20;
        assert_eq!(dec(&past).kind, Some(Kind::Malformed));
        let mut short = icmp6_ext_frame(&[(0, ext_opts(0))], 128, 8);
        let plen = 8 + 2;
        short[18..20].copy_from_slice(&(plen as u16).to_be_bytes());
        short.truncate(14 + 40 + plen);
        assert_eq!(dec(&short).kind, Some(Kind::Malformed));
    }

    /// Every prefix of every kind of frame, as the wire length: never a panic, never a
    /// kind other than the full frame's or `malformed`, or nothing when the prefix is too
    /// short to tell the protocol.
    #[test]
    fn truncated_frames_at_every_length() {
        let frames = [
            arp_frame(1),
            arp_frame(2),
            icmp4_frame(8, 1, 2),
            icmp4_frame(0, 1, 2),
            icmp4_frame(3, 0, 0),
            icmp6_frame(128, 60),
            icmp6_frame(135, 20),
            icmp6_frame(134, 12),
            icmp6_ext_frame(&[(0, ext_opts(0))], 128, 60),
            icmp6_ext_frame(&[(44, ext_frag(0, true))], 129, 60),
            icmp6_ext_frame(&[(60, ext_opts(1)), (43, ext_opts(0))], 135, 20),
        ];
        for f in &frames {
            let full = dec(f).kind;
            for n in 0..f.len() {
                let cut = &f[..n];
                let Some(d) = decode(cut, n as u32) else {
                    assert!(n < 14);
                    continue;
                };
                assert!(
                    d.kind.is_none() || d.kind == Some(Kind::Malformed) || d.kind == full,
                    "{full:?} cut at {n} decoded as {:?}",
                    d.kind
                );
                if n >= 14 + 10 && full.is_some_and(|k| k.family() != "arp") && n < 14 + 28 {
                    assert_eq!(d.kind, Some(Kind::Malformed), "{full:?} cut at {n}");
                }
            }
            // A captured prefix of a longer frame decodes as the full frame.
            for n in 14..f.len() {
                let d = decode(&f[..n], f.len() as u32).expect("header");
                if d.kind.is_some() {
                    assert_eq!(d.kind, full, "{full:?} captured {n} of {}", f.len());
                }
            }
        }
    }

    #[test]
    fn mac_display_and_parse() {
        let m = Mac(MAC_A);
        assert_eq!(m.to_string(), "02:42:ac:14:00:02");
        assert_eq!("02:42:ac:14:00:02".parse::<Mac>(), Ok(m));
        assert!("02:42:ac:14:00".parse::<Mac>().is_err());
        assert!("02:42:ac:14:00:02:00".parse::<Mac>().is_err());
        assert!("zz:42:ac:14:00:02".parse::<Mac>().is_err());
    }
}

//! A model of the kernel program's classification (`classify` in
//! `netlab-ebpf/src/program.rs`, mirrored for user space by `netlab-daemon/src/decode.rs`),
//! written independently from both so that tests can say, for any frame, what netlab must
//! count it as: its kind, `malformed`, or nothing at all.
//!
//! [`expected_kind`] takes the frame as the tc program sees it (the whole frame: the program
//! reads any byte of the packet, so "captured" and "on the wire" are the same length here).
//! [`at_ingress`] adds what the receiving side of a veth does before tc ingress runs: it
//! strips one VLAN tag (802.1Q or 802.1ad) into the packet's metadata (`skb_vlan_untag`),
//! and frees a tagged frame with fewer than 6 bytes after its Ethernet header (the tag, and
//! the two bytes after it that the kernel may look at).

/// EtherType of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// EtherType of IPv4.
pub const ETH_P_IP: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// EtherType of an 802.1Q tag.
pub const ETH_P_8021Q: u16 = 0x8100;
/// EtherType of an 802.1ad (QinQ service) tag.
pub const ETH_P_8021AD: u16 = 0x88a8;

const ETH_HLEN: usize = 14;

fn be16(frame: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]))
}

/// The kind netlab's tc program gives `frame` (its public name, e.g. `"icmp-echo-request"`),
/// or `None` when it counts nothing (not ARP/ICMP/ICMPv6, a non-first IPv4 fragment, or too
/// short to tell).
///
/// The rules, in order: one VLAN tag (802.1Q or 802.1ad) is skipped. ARP: shorter than 8
/// bytes is malformed; not Ethernet/IPv4 is `arp-other`; lengths other than 6/4 or fewer
/// than 28 bytes is malformed; then by operation. IPv4: only protocol 1 (absent byte: not
/// ours); then fewer than 20 bytes, version not 4, IHL below 5, total length below IHL or
/// beyond the frame is malformed; a non-first fragment is not ours; fewer than 8 bytes of
/// ICMP is malformed; then by ICMP type. IPv6: only next header 58 or an extension header
/// (0, 43, 44, 51, 60); fewer than 40 bytes, version not 6 or payload beyond the frame is
/// malformed; up to 8 extension headers are followed to ICMPv6 (one that runs past the
/// payload is malformed, a later fragment, another protocol, a ninth header or an ICMPv6
/// header beyond byte 2048 is not ours); fewer than 4 bytes of ICMPv6 is malformed; then by
/// type, with each type's minimum length (echo 8, RS 8, RA 16, NS/NA 24, others 4).
pub fn expected_kind(frame: &[u8]) -> Option<&'static str> {
    let len = frame.len();
    let mut ethertype = be16(frame, 12)?;
    let mut l3 = ETH_HLEN;
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        ethertype = be16(frame, 16)?;
        l3 = ETH_HLEN + 4;
    }
    match ethertype {
        ETH_P_ARP => Some(arp(frame, l3, len)),
        ETH_P_IP => ipv4(frame, l3, len),
        ETH_P_IPV6 => ipv6(frame, l3, len),
        _ => None,
    }
}

fn arp(frame: &[u8], l3: usize, len: usize) -> &'static str {
    if len < l3 + 8 {
        return "malformed";
    }
    let htype = be16(frame, l3);
    let ptype = be16(frame, l3 + 2);
    if htype != Some(1) || ptype != Some(ETH_P_IP) {
        return "arp-other";
    }
    if frame[l3 + 4] != 6 || frame[l3 + 5] != 4 || len < l3 + 28 {
        return "malformed";
    }
    match be16(frame, l3 + 6) {
        Some(1) => "arp-request",
        Some(2) => "arp-reply",
        _ => "arp-other",
    }
}

fn ipv4(frame: &[u8], l3: usize, len: usize) -> Option<&'static str> {
    if frame.get(l3 + 9) != Some(&1) {
        return None;
    }
    if len < l3 + 20 {
        return Some("malformed");
    }
    let version_ihl = frame[l3];
    let ihl = usize::from(version_ihl & 0x0f) * 4;
    let total = usize::from(be16(frame, l3 + 2)?);
    let fragment_offset = be16(frame, l3 + 6)? & 0x1fff;
    if version_ihl >> 4 != 4 || ihl < 20 || total < ihl || l3 + total > len {
        return Some("malformed");
    }
    if fragment_offset != 0 {
        return None;
    }
    if total < ihl + 8 {
        return Some("malformed");
    }
    Some(match frame[l3 + ihl] {
        8 => "icmp-echo-request",
        0 => "icmp-echo-reply",
        3 => "icmp-unreachable",
        11 => "icmp-time-exceeded",
        _ => "icmp-other",
    })
}

/// IPv6 extension headers that may precede ICMPv6: Hop-by-Hop, Routing, Fragment,
/// Authentication Header, Destination Options.
const IPV6_EXTENSIONS: [u8; 5] = [0, 43, 44, 51, 60];
/// Extension headers followed at most.
const MAX_EXTENSIONS: usize = 8;
/// Furthest offset (from the frame's start) an ICMPv6 header is looked for.
const MAX_ICMP6_OFFSET: usize = 2048;

fn ipv6(frame: &[u8], l3: usize, len: usize) -> Option<&'static str> {
    let first = *frame.get(l3 + 6)?;
    if first != 58 && !IPV6_EXTENSIONS.contains(&first) {
        return None;
    }
    if len < l3 + 40 {
        return Some("malformed");
    }
    let payload = usize::from(be16(frame, l3 + 4)?);
    let end = l3 + 40 + payload;
    if frame[l3] >> 4 != 6 || end > len {
        return Some("malformed");
    }
    // Extension headers: each one's next-header byte first; its length from its second
    // byte in 8-byte units beyond the first 8 (AH: 4-byte units beyond the first 8), a
    // fragment header 8 bytes whose later fragments (offset not 0) are skipped.
    let mut next = first;
    let mut at = l3 + 40;
    let mut followed = 0;
    while next != 58 {
        if followed == MAX_EXTENSIONS || !IPV6_EXTENSIONS.contains(&next) {
            return None;
        }
        followed += 1;
        let header_min = if next == 44 { 8 } else { 2 };
        if at + header_min > end {
            return Some("malformed");
        }
        let length = usize::from(frame[at + 1]);
        let size = match next {
            44 if be16(frame, at + 2)? >> 3 != 0 => return None,
            44 => 8,
            51 => 4 * length + 8,
            _ => 8 * length + 8,
        };
        next = frame[at];
        at += size;
        if at > end {
            return Some("malformed");
        }
        if at > MAX_ICMP6_OFFSET {
            return None;
        }
    }
    let icmp_len = end - at;
    if icmp_len < 4 {
        return Some("malformed");
    }
    let (kind, min) = match frame[at] {
        128 => ("icmp6-echo-request", 8),
        129 => ("icmp6-echo-reply", 8),
        133 => ("ndp-router-solicit", 8),
        134 => ("ndp-router-advert", 16),
        135 => ("ndp-neighbor-solicit", 24),
        136 => ("ndp-neighbor-advert", 24),
        _ => ("icmp6-other", 4),
    };
    Some(if icmp_len < min { "malformed" } else { kind })
}

/// What the tc ingress hook of the receiving end of a veth sees of a frame sent as `frame`:
/// `None` when the kernel frees it before tc (a tagged frame shorter than 20 bytes:
/// `skb_vlan_untag` pulls `VLAN_HLEN + 2` bytes), the frame with its outer VLAN tag removed
/// when it had one, or the frame unchanged.
pub fn at_ingress(frame: &[u8]) -> Option<Vec<u8>> {
    let ethertype = be16(frame, 12)?;
    if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
        return Some(frame.to_vec());
    }
    if frame.len() < ETH_HLEN + 4 + 2 {
        return None;
    }
    let mut untagged = frame[..12].to_vec();
    untagged.extend_from_slice(&frame[16..]);
    Some(untagged)
}

/// Whether the kind belongs to ICMP or ICMPv6 echo (the only kinds whose events carry an
/// ICMP identifier and sequence number).
pub fn is_echo(kind: &str) -> bool {
    matches!(
        kind,
        "icmp-echo-request" | "icmp-echo-reply" | "icmp6-echo-request" | "icmp6-echo-reply"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn icmp4(icmp_type: u8) -> Vec<u8> {
        let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0];
        ip.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        ip.extend_from_slice(&[icmp_type, 0, 0, 0, 0, 1, 0, 2]);
        eth(ETH_P_IP, &ip)
    }

    #[test]
    fn short_frames_and_other_protocols_are_not_counted() {
        assert_eq!(expected_kind(&[0; 13]), None);
        assert_eq!(expected_kind(&eth(0x88cc, &[0; 40])), None);
        let mut udp = icmp4(8);
        udp[14 + 9] = 17;
        assert_eq!(expected_kind(&udp), None);
        // The IP protocol byte is not there yet: not ours.
        assert_eq!(expected_kind(&icmp4(8)[..14 + 9]), None);
    }

    #[test]
    fn cut_icmp_is_malformed_once_the_protocol_byte_is_there() {
        let full = icmp4(8);
        assert_eq!(expected_kind(&full), Some("icmp-echo-request"));
        for n in 14 + 10..full.len() {
            assert_eq!(expected_kind(&full[..n]), Some("malformed"), "cut at {n}");
        }
    }

    #[test]
    fn arp_rules() {
        let mut body = vec![0, 1, 8, 0, 6, 4, 0, 1];
        body.extend_from_slice(&[0; 20]);
        assert_eq!(expected_kind(&eth(ETH_P_ARP, &body)), Some("arp-request"));
        assert_eq!(
            expected_kind(&eth(ETH_P_ARP, &body[..7])),
            Some("malformed")
        );
        assert_eq!(
            expected_kind(&eth(ETH_P_ARP, &body[..8])),
            Some("malformed")
        );
        body[1] = 6; // hardware type 6: not Ethernet
        assert_eq!(
            expected_kind(&eth(ETH_P_ARP, &body[..8])),
            Some("arp-other")
        );
        assert_eq!(expected_kind(&eth(ETH_P_ARP, &[])), Some("malformed"));
    }

    #[test]
    fn fragments_and_ihl() {
        let mut later = icmp4(8);
        later[14 + 7] = 1;
        assert_eq!(expected_kind(&later), None);
        let mut first = icmp4(8);
        first[14 + 6] = 0x20; // more fragments, offset 0
        assert_eq!(expected_kind(&first), Some("icmp-echo-request"));
        for ihl in 0..5 {
            let mut bad = icmp4(8);
            bad[14] = 0x40 | ihl;
            assert_eq!(expected_kind(&bad), Some("malformed"), "ihl {ihl}");
        }
    }

    fn icmp6(chain: &[(u8, Vec<u8>)], icmp: &[u8]) -> Vec<u8> {
        let mut payload = Vec::new();
        for (i, (_, header)) in chain.iter().enumerate() {
            let mut h = header.clone();
            h[0] = chain.get(i + 1).map_or(58, |(next, _)| *next);
            payload.extend_from_slice(&h);
        }
        payload.extend_from_slice(icmp);
        let mut ip = vec![0x60, 0, 0, 0];
        ip.extend_from_slice(&u16::try_from(payload.len()).unwrap_or(0).to_be_bytes());
        ip.extend_from_slice(&[chain.first().map_or(58, |(n, _)| *n), 64]);
        ip.extend_from_slice(&[0; 32]);
        ip.extend_from_slice(&payload);
        eth(ETH_P_IPV6, &ip)
    }

    #[test]
    fn icmp6_behind_extension_headers() {
        let echo = [128, 0, 0, 0, 0, 1, 0, 1];
        let opts = vec![0, 0, 1, 4, 0, 0, 0, 0];
        let frag = |offset: u16| {
            let mut h = vec![0, 0];
            h.extend_from_slice(&(offset << 3 | 1).to_be_bytes());
            h.extend_from_slice(&[0, 0, 0, 1]);
            h
        };
        assert_eq!(
            expected_kind(&icmp6(&[], &echo)),
            Some("icmp6-echo-request")
        );
        assert_eq!(
            expected_kind(&icmp6(&[(0, opts.clone())], &echo)),
            Some("icmp6-echo-request")
        );
        assert_eq!(
            expected_kind(&icmp6(&[(44, frag(0))], &echo)),
            Some("icmp6-echo-request")
        );
        assert_eq!(expected_kind(&icmp6(&[(44, frag(1))], &echo)), None);
        let chain = |n: usize| -> Vec<(u8, Vec<u8>)> { vec![(60, opts.clone()); n] };
        assert_eq!(
            expected_kind(&icmp6(&chain(8), &echo)),
            Some("icmp6-echo-request")
        );
        assert_eq!(expected_kind(&icmp6(&chain(9), &echo)), None);
        assert_eq!(
            expected_kind(&icmp6(&[(0, opts.clone())], &echo[..3])),
            Some("malformed")
        );
        let mut long = opts.clone();
        long[1] = 9;
        assert_eq!(
            expected_kind(&icmp6(&[(0, long)], &echo)),
            Some("malformed")
        );
        let mut tcp = icmp6(&[(0, opts)], &echo);
        tcp[14 + 40] = 6;
        assert_eq!(expected_kind(&tcp), None);
    }

    #[test]
    fn ingress_strips_one_tag() {
        let plain = icmp4(0);
        let mut tagged = plain[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0, 0, 10]);
        tagged.extend_from_slice(&plain[12..]);
        assert_eq!(expected_kind(&tagged), Some("icmp-echo-reply"));
        assert_eq!(at_ingress(&tagged), Some(plain.clone()));
        assert_eq!(at_ingress(&tagged[..19]), None);
        assert!(at_ingress(&tagged[..20]).is_some());
        assert_eq!(at_ingress(&plain), Some(plain.clone()));
        assert_eq!(expected_kind(&tagged[..17]), None);
    }
}

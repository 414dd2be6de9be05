//! Ethernet frames built byte by byte, well-formed or deliberately broken, for
//! [`send_raw_frames`](crate::send_raw_frames).

use std::net::Ipv4Addr;

use netlab_common::checksum;

/// Ethernet broadcast address.
pub const BROADCAST: [u8; 6] = [0xff; 6];
/// EtherType of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// EtherType of IPv4.
pub const ETH_P_IP: u16 = 0x0800;
/// EtherType of an 802.1Q VLAN tag.
pub const ETH_P_8021Q: u16 = 0x8100;
/// IP protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;

/// An Ethernet II frame: `dst`, `src`, `ethertype`, then `payload` (no padding, no FCS).
pub fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + payload.len());
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// An 802.1Q-tagged frame: TPID 0x8100, priority 0, VLAN `vid`, then `ethertype` and `payload`.
pub fn vlan_ethernet(
    dst: [u8; 6],
    src: [u8; 6],
    vid: u16,
    ethertype: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut tagged = Vec::with_capacity(4 + payload.len());
    tagged.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    tagged.extend_from_slice(&ethertype.to_be_bytes());
    tagged.extend_from_slice(payload);
    ethernet(dst, src, ETH_P_8021Q, &tagged)
}

/// The 28-byte body of an ARP request for Ethernet/IPv4 (target MAC zero).
pub fn arp_request(sender_mac: [u8; 6], sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Vec<u8> {
    let mut arp = Vec::with_capacity(28);
    arp.extend_from_slice(&1u16.to_be_bytes()); // hardware type: Ethernet
    arp.extend_from_slice(&ETH_P_IP.to_be_bytes()); // protocol type: IPv4
    arp.push(6); // hardware address length
    arp.push(4); // protocol address length
    arp.extend_from_slice(&1u16.to_be_bytes()); // operation: request
    arp.extend_from_slice(&sender_mac);
    arp.extend_from_slice(&sender_ip.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&target_ip.octets());
    arp
}

/// Fields of an IPv4 header that the broken packets below vary.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Header {
    /// Header length in 32-bit words as written in the packet (5 is a plain header).
    pub ihl: u8,
    /// Value of the total-length field (not necessarily the real length).
    pub total_len: u16,
    /// Flags and fragment offset (offset in 8-byte units in the low 13 bits).
    pub flags_fragment: u16,
    /// Protocol number.
    pub protocol: u8,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
}

impl Ipv4Header {
    /// A plain 20-byte header for `payload_len` bytes of `protocol`.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload_len: usize) -> Self {
        Self {
            ihl: 5,
            total_len: u16::try_from(20 + payload_len).unwrap_or(u16::MAX),
            flags_fragment: 0,
            protocol,
            src,
            dst,
        }
    }

    /// The 20 header bytes laid out as usual whatever `ihl` says, with a valid checksum over them.
    pub fn to_bytes(&self) -> [u8; 20] {
        let mut header = [0u8; 20];
        header[0] = 0x40 | (self.ihl & 0x0f);
        header[2..4].copy_from_slice(&self.total_len.to_be_bytes());
        header[4..6].copy_from_slice(&0x4e4cu16.to_be_bytes()); // identification
        header[6..8].copy_from_slice(&self.flags_fragment.to_be_bytes());
        header[8] = 64; // TTL
        header[9] = self.protocol;
        header[12..16].copy_from_slice(&self.src.octets());
        header[16..20].copy_from_slice(&self.dst.octets());
        let sum = checksum::internet(&header);
        header[10..12].copy_from_slice(&sum.to_be_bytes());
        header
    }
}

/// An ICMP echo request (type 8) with a valid checksum.
pub fn icmp_echo_request(id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(data);
    let sum = checksum::internet(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    icmp
}

/// Malformed: broadcast ARP frame whose ARP body stops after 10 of its 28 bytes.
pub fn truncated_arp(src_mac: [u8; 6], sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Vec<u8> {
    let arp = arp_request(src_mac, sender_ip, target_ip);
    ethernet(BROADCAST, src_mac, ETH_P_ARP, &arp[..10])
}

/// Malformed: IPv4 with IHL 3 (byte 0 is 0x43), protocol ICMP, total length 28; the 8 bytes
/// after the usual 20-byte header are an echo request, so a parser that ignores IHL sees one.
pub fn ipv4_ihl3_icmp(src_mac: [u8; 6], dst_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let icmp = icmp_echo_request(0x4e4c, 1, &[]);
    let header = Ipv4Header {
        ihl: 3,
        ..Ipv4Header::new(src, dst, IPPROTO_ICMP, icmp.len())
    };
    let mut packet = header.to_bytes().to_vec();
    packet.extend_from_slice(&icmp);
    ethernet(dst_mac, src_mac, ETH_P_IP, &packet)
}

/// Malformed: valid 20-byte IPv4 header (total length 24, protocol ICMP, not a fragment)
/// followed by only the first 4 bytes of an ICMP echo request.
pub fn ipv4_truncated_icmp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
) -> Vec<u8> {
    let icmp = icmp_echo_request(0x4e4c, 2, &[]);
    let header = Ipv4Header::new(src, dst, IPPROTO_ICMP, 4);
    let mut packet = header.to_bytes().to_vec();
    packet.extend_from_slice(&icmp[..4]);
    ethernet(dst_mac, src_mac, ETH_P_IP, &packet)
}

/// Well-formed but not inspectable: a last, non-first fragment (offset 100 × 8 bytes) of an
/// ICMP datagram whose 8 payload bytes look like an echo request header. Must be skipped.
pub fn ipv4_icmp_non_first_fragment(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
) -> Vec<u8> {
    let payload = icmp_echo_request(0x4e4c, 3, &[]);
    let header = Ipv4Header {
        flags_fragment: 100,
        ..Ipv4Header::new(src, dst, IPPROTO_ICMP, payload.len())
    };
    let mut packet = header.to_bytes().to_vec();
    packet.extend_from_slice(&payload);
    ethernet(dst_mac, src_mac, ETH_P_IP, &packet)
}

/// Well-formed: a broadcast ARP request carried in VLAN 10.
pub fn vlan_arp_request(src_mac: [u8; 6], sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Vec<u8> {
    let arp = arp_request(src_mac, sender_ip, target_ip);
    vlan_ethernet(BROADCAST, src_mac, 10, ETH_P_ARP, &arp)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
    const MAC: [u8; 6] = [2, 0x99, 0, 0, 0, 1];

    #[test]
    fn checksum_of_header_with_its_checksum_is_zero() {
        let header = Ipv4Header::new(SRC, DST, IPPROTO_ICMP, 8).to_bytes();
        assert_eq!(checksum::internet(&header), 0);
        let icmp = icmp_echo_request(1, 2, &[1, 2, 3]);
        assert_eq!(checksum::internet(&icmp), 0);
    }

    #[test]
    fn broken_frames_have_the_documented_shape() {
        let arp = truncated_arp(MAC, SRC, DST);
        assert_eq!(arp.len(), 14 + 10);
        assert_eq!(&arp[12..14], &[0x08, 0x06]);
        assert_eq!(&arp[..6], &BROADCAST);

        let ihl3 = ipv4_ihl3_icmp(MAC, MAC, SRC, DST);
        assert_eq!(ihl3[14], 0x43);
        assert_eq!(ihl3[14 + 9], IPPROTO_ICMP);
        assert_eq!(u16::from_be_bytes([ihl3[16], ihl3[17]]), 28);
        assert_eq!(ihl3.len(), 14 + 28);

        let short = ipv4_truncated_icmp(MAC, MAC, SRC, DST);
        assert_eq!(short[14], 0x45);
        assert_eq!(u16::from_be_bytes([short[16], short[17]]), 24);
        assert_eq!(short.len(), 14 + 24);
        assert_eq!(u16::from_be_bytes([short[20], short[21]]) & 0x3fff, 0);

        let fragment = ipv4_icmp_non_first_fragment(MAC, MAC, SRC, DST);
        assert_eq!(
            u16::from_be_bytes([fragment[20], fragment[21]]) & 0x1fff,
            100
        );
        assert_eq!(fragment[14 + 20], 8); // looks like an echo request

        let vlan = vlan_arp_request(MAC, SRC, DST);
        assert_eq!(&vlan[12..14], &[0x81, 0x00]);
        assert_eq!(&vlan[16..18], &[0x08, 0x06]);
        assert_eq!(vlan.len(), 14 + 4 + 28);
    }
}

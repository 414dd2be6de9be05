//! The Internet checksum (RFC 1071) of IPv4 headers and ICMP messages, in plain `core` Rust
//! (no allocation), for the daemon, xtask and the tests alike.

/// The Internet checksum (RFC 1071) of `bytes`: the one's complement of the one's complement
/// sum of its 16-bit big-endian words, an odd last byte padded with a zero byte.
///
/// Computed with the checksum field zero and then written into it, it makes the checksum of
/// the whole header (or message) zero, which is how a receiver checks it.
pub fn internet(bytes: &[u8]) -> u16 {
    // 64 bits: no input that fits in memory can overflow the sum before it is folded.
    let mut sum: u64 = 0;
    let mut words = bytes.chunks_exact(2);
    for w in &mut words {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::internet;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: these words sum to 0xddf2, so the checksum is its complement.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet(&bytes), !0xddf2);
        assert_eq!(internet(&bytes), 0x220d);
    }

    #[test]
    fn empty_and_odd_lengths() {
        assert_eq!(internet(&[]), 0xffff);
        // An odd last byte is the high byte of a word padded with zero.
        assert_eq!(internet(&[0xff]), !0xff00);
        assert_eq!(
            internet(&[0x12, 0x34, 0x56]),
            internet(&[0x12, 0x34, 0x56, 0x00])
        );
    }

    #[test]
    fn header_with_its_checksum_sums_to_zero() {
        // An IPv4 header (UDP, 192.168.0.1 → 192.168.0.199) whose checksum is 0xb861.
        let mut header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let sum = internet(&header);
        assert_eq!(sum, 0xb861);
        header[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(internet(&header), 0);

        // An ICMP echo request with an odd-length payload.
        let mut icmp = [8, 0, 0, 0, 0x12, 0x34, 0, 7, b'a', b'b', b'c'];
        let sum = internet(&icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(internet(&icmp), 0);
    }

    #[test]
    fn carries_are_folded_back() {
        // 0xffff + 0x0001 carries out of 16 bits; the carry is added back in.
        assert_eq!(internet(&[0xff, 0xff, 0x00, 0x01]), !0x0001);
        // Many all-ones words: the one's complement sum stays 0xffff.
        assert_eq!(internet(&[0xff; 4096]), 0);
    }
}

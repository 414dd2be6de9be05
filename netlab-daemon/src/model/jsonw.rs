//! A small JSON writer for the event hot path: values go straight into a byte buffer,
//! with no `core::fmt` and no serde machinery in between.
//!
//! What it writes is byte for byte what `serde_json`'s compact serializer writes for the
//! same values (same string escaping, same number and address text), so a line does not
//! depend on which of the two wrote it; the tests here and in [`crate::model::event`] hold it to
//! that.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Lowercase hex digits, as `serde_json` and std's `{:x}` write them.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// `00` to `99`, so that numbers are written two digits per division.
const DIGIT_PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// A JSON object being written: remembers whether a comma is due before the next member,
/// so members that are skipped (absent options) need no bookkeeping at the call site.
pub struct Object<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> Object<'a> {
    /// Opens an object at the end of `out`.
    #[inline]
    pub fn begin(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Object { out, empty: true }
    }

    /// Writes the member name `key` and returns the buffer for its value, which the caller
    /// must then write (exactly one JSON value). Keys are fixed field names, written as
    /// they are: they never need escaping. Always inlined, so that the copy of a literal
    /// key is a few moves rather than a call to memcpy.
    #[inline(always)]
    pub fn key(&mut self, key: &str) -> &mut Vec<u8> {
        debug_assert!(!needs_escape(key.as_bytes()), "key {key:?} needs escaping");
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    /// A string member, escaped.
    #[inline(always)]
    pub fn str(&mut self, key: &str, value: &str) {
        string(self.key(key), value);
    }

    /// A string member when `value` is present; nothing otherwise (serde's
    /// `skip_serializing_if = "Option::is_none"`).
    #[inline]
    pub fn opt_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    /// A string member whose text is known to need no escaping (addresses, timestamps).
    #[inline]
    pub fn ascii(&mut self, key: &str, value: &[u8]) {
        ascii_string(self.key(key), value);
    }

    /// An unsigned number member.
    #[inline]
    pub fn u32(&mut self, key: &str, value: u32) {
        u32(self.key(key), value);
    }

    /// An unsigned 64-bit number member (nanosecond times).
    #[inline]
    pub fn u64(&mut self, key: &str, value: u64) {
        u64(self.key(key), value);
    }

    /// A `null` member: what serde writes for an absent option that is not skipped.
    #[inline]
    pub fn null(&mut self, key: &str) {
        self.key(key).extend_from_slice(b"null");
    }

    /// An unsigned number member when `value` is present.
    #[inline]
    pub fn opt_u32(&mut self, key: &str, value: Option<u32>) {
        if let Some(v) = value {
            self.u32(key, v);
        }
    }

    /// A boolean member.
    #[inline]
    pub fn bool(&mut self, key: &str, value: bool) {
        let text: &[u8] = if value { b"true" } else { b"false" };
        self.key(key).extend_from_slice(text);
    }

    /// An IP address member, as its std text.
    #[inline]
    pub fn ip(&mut self, key: &str, value: IpAddr) {
        ip(self.key(key), value);
    }

    /// Closes the object.
    #[inline]
    pub fn end(self) {
        self.out.push(b'}');
    }
}

/// Whether `s` holds a byte that JSON strings must escape: `"`, `\` or a control
/// character below 0x20 (DEL and non-ASCII bytes are written as they are). Looks at eight
/// bytes at a time, since almost every string needs no escaping and is scanned whole: the
/// last eight bytes of a string whose length is not a multiple of eight overlap the ones
/// before them, and a string of four to seven bytes is read as two overlapping halves, so
/// no byte is looked at alone unless the string is shorter than four bytes.
#[inline(always)]
fn needs_escape(s: &[u8]) -> bool {
    let n = s.len();
    if n >= 8 {
        let mut chunks = s.chunks_exact(8);
        chunks.by_ref().any(|c| word_needs_escape(word(c)))
            || (!chunks.remainder().is_empty() && word_needs_escape(word(&s[n - 8..])))
    } else if n >= 4 {
        let half = |at: usize| {
            let mut h = [0u8; 4];
            h.copy_from_slice(&s[at..at + 4]);
            u64::from(u32::from_le_bytes(h))
        };
        word_needs_escape(half(0) | half(n - 4) << 32)
    } else {
        s.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
    }
}

/// The first eight bytes of `s` (which has at least eight) as a word.
#[inline]
fn word(s: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[..8]);
    u64::from_le_bytes(w)
}

/// Whether one of the eight bytes of `w` must be escaped (exact, by the classic
/// "has a byte less than n" and "has a zero byte" word tests).
#[inline]
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    /// Whether a byte of `x` is below `n` (for `n` up to 0x80).
    fn has_less(x: u64, n: u8) -> bool {
        x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS != 0
    }
    /// Whether a byte of `x` equals `b`.
    fn has_byte(x: u64, b: u8) -> bool {
        has_less(x ^ (ONES * u64::from(b)), 1)
    }
    has_less(w, 0x20) || has_byte(w, b'"') || has_byte(w, b'\\')
}

/// Appends `s` as a JSON string, escaped exactly as `serde_json` escapes it: `\"`, `\\`,
/// the short forms `\b \t \n \f \r`, and `\u00xx` (lowercase hex) for other control
/// characters.
pub fn string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if needs_escape(bytes) {
        escaped_string(out, bytes);
    } else {
        ascii_string(out, bytes);
    }
}

/// [`string`] of text that needs escaping: rare, so kept out of the callers' code.
#[cold]
#[inline(never)]
fn escaped_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x09 => b't',
            0x0a => b'n',
            0x0c => b'f',
            0x0d => b'r',
            0x00..=0x1f => b'u',
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        run = i + 1;
        if short == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', short]);
        }
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// Appends `text` between quotes, unescaped: only for text made of characters that need
/// no escaping (checked in debug builds).
#[inline]
pub fn ascii_string(out: &mut Vec<u8>, text: &[u8]) {
    debug_assert!(!needs_escape(text));
    out.reserve(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(text);
    out.push(b'"');
}

/// Appends `n` in decimal, as `serde_json` writes unsigned integers.
#[inline]
pub fn u32(out: &mut Vec<u8>, n: u32) {
    u64(out, u64::from(n));
}

/// Appends `n` in decimal, as `serde_json` writes unsigned integers. Numbers below 100
/// (kinds, codes, sample rates) are one or two bytes written directly; the others go
/// through [`long_u64`].
#[inline]
pub fn u64(out: &mut Vec<u8>, n: u64) {
    if n < 10 {
        out.push(b'0' + n as u8);
    } else if n < 100 {
        let pair = n as usize * 2;
        out.extend_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        long_u64(out, n);
    }
}

/// [`u64`] of a number of three digits or more. Nanosecond times have 19 digits: they are
/// cut into groups of four, each written as two pairs.
fn long_u64(out: &mut Vec<u8>, mut n: u64) {
    // Written from the last digit back into a fixed buffer, then appended as a copy of a
    // fixed size (see `append_cut`).
    let len = n.checked_ilog10().map_or(1, |l| l as usize + 1);
    let mut buf = [0u8; 20];
    let mut i = len;
    while n >= 10_000 {
        let group = (n % 10_000) as usize;
        n /= 10_000;
        let (hi, lo) = (group / 100 * 2, group % 100 * 2);
        i -= 4;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[hi..hi + 2]);
        buf[i + 2..i + 4].copy_from_slice(&DIGIT_PAIRS[lo..lo + 2]);
    }
    let mut n = n as usize;
    if n >= 100 {
        let pair = n % 100 * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    debug_assert_eq!(i, 0);
    append_cut(out, &buf, len);
}

/// Appends the first `len` bytes of `buf` by appending all of it and cutting the rest
/// off: a copy of a fixed size is a few moves, one of a variable size a call to memcpy.
#[inline]
fn append_cut<const N: usize>(out: &mut Vec<u8>, buf: &[u8; N], len: usize) {
    debug_assert!(len <= N);
    let start = out.len();
    out.extend_from_slice(buf);
    out.truncate(start + len);
}

/// Appends an array of strings, each escaped.
pub fn str_array<S: AsRef<str>>(out: &mut Vec<u8>, items: &[S]) {
    out.push(b'[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, s.as_ref());
    }
    out.push(b']');
}

/// Appends an IP address as a JSON string, with the text of std's `Display` (what serde
/// writes for `IpAddr` in human-readable formats).
pub fn ip(out: &mut Vec<u8>, ip: IpAddr) {
    out.push(b'"');
    match ip {
        IpAddr::V4(v4) => {
            let t = Ipv4Text::new(v4);
            append_cut(out, &t.buf, t.len);
        }
        IpAddr::V6(v6) => {
            let t = Ipv6Text::new(v6);
            append_cut(out, &t.buf, t.len);
        }
    }
    out.push(b'"');
}

/// The decimal text of every octet value, padded to four bytes, with its length in the
/// last byte: an octet is written as one four-byte copy.
const OCTETS: [[u8; 4]; 256] = {
    let mut t = [[0u8; 4]; 256];
    let mut v = 0;
    while v < 256 {
        let (h, d, u) = ((v / 100) as u8, (v / 10 % 10) as u8, (v % 10) as u8);
        t[v] = if v >= 100 {
            [b'0' + h, b'0' + d, b'0' + u, 3]
        } else if v >= 10 {
            [b'0' + d, b'0' + u, 0, 2]
        } else {
            [b'0' + u, 0, 0, 1]
        };
        v += 1;
    }
    t
};

/// The dotted-quad text of an IPv4 address, in a fixed buffer.
pub struct Ipv4Text {
    /// Fifteen bytes at most, and room for the last octet's four-byte copy.
    buf: [u8; 16],
    len: usize,
}

impl Ipv4Text {
    pub fn new(ip: Ipv4Addr) -> Self {
        let mut t = Ipv4Text {
            buf: [0; 16],
            len: 0,
        };
        for (i, octet) in ip.octets().into_iter().enumerate() {
            if i > 0 {
                t.buf[t.len] = b'.';
                t.len += 1;
            }
            let text = OCTETS[usize::from(octet)];
            t.buf[t.len..t.len + 4].copy_from_slice(&text);
            t.len += usize::from(text[3]);
        }
        t
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The text of an IPv6 address as std's `Display` writes it (RFC 5952): lowercase hex
/// groups without leading zeros, the longest run of two or more zero groups (the first
/// of equals) shortened to `::`, and IPv4-mapped addresses as `::ffff:a.b.c.d`.
pub struct Ipv6Text {
    buf: [u8; 39],
    len: usize,
}

impl Ipv6Text {
    pub fn new(ip: Ipv6Addr) -> Self {
        let mut t = Ipv6Text {
            buf: [0; 39],
            len: 0,
        };
        if let Some(v4) = ip.to_ipv4_mapped() {
            t.push(b"::ffff:");
            let v4 = Ipv4Text::new(v4);
            t.push(v4.as_bytes());
            return t;
        }
        let groups = ip.segments();
        let (start, len) = longest_zero_run(&groups);
        if len > 1 {
            t.push_groups(&groups[..start]);
            t.push(b"::");
            t.push_groups(&groups[start + len..]);
        } else {
            t.push_groups(&groups);
        }
        t
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Groups separated by `:`, each in hex without leading zeros.
    fn push_groups(&mut self, groups: &[u16]) {
        for (i, &g) in groups.iter().enumerate() {
            if i > 0 {
                self.push(b":");
            }
            let digits = [
                HEX[usize::from(g >> 12)],
                HEX[usize::from(g >> 8 & 0xf)],
                HEX[usize::from(g >> 4 & 0xf)],
                HEX[usize::from(g & 0xf)],
            ];
            let skip = match g {
                0..=0xf => 3,
                0x10..=0xff => 2,
                0x100..=0xfff => 1,
                _ => 0,
            };
            self.push(&digits[skip..]);
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Start and length of the longest run of zero groups; the first one when runs tie.
fn longest_zero_run(groups: &[u16; 8]) -> (usize, usize) {
    let (mut best, mut current) = ((0, 0), (0, 0));
    for (i, &g) in groups.iter().enumerate() {
        if g != 0 {
            current = (0, 0);
            continue;
        }
        if current.1 == 0 {
            current.0 = i;
        }
        current.1 += 1;
        if current.1 > best.1 {
            best = current;
        }
    }
    best
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A deterministic stream of pseudo-random numbers (xorshift), for wide coverage
    /// without a dependency; the journey writer's tests use it too.
    pub(crate) fn rng(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    fn written(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn strings_are_escaped_like_serde_json() {
        let mut all_bytes = String::new();
        for c in (0u32..0x80).filter_map(char::from_u32) {
            all_bytes.push(c);
        }
        for s in [
            "",
            "eth0",
            "a\"b",
            "back\\slash",
            "\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}",
            "\"",
            "\\",
            "é veth→ 日本 🦀",
            "tail\n",
            &all_bytes,
        ] {
            let expected = serde_json::to_string(s).expect("json");
            assert_eq!(written(|o| string(o, s)), expected, "{s:?}");
        }
    }

    /// The word test against the byte test: every byte value at every position, among
    /// neighbours on both sides of each boundary (control, quote, backslash, DEL, non-ASCII).
    #[test]
    fn word_test_is_exact() {
        let bytewise = |w: [u8; 8]| w.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
        for filler in [
            0x00, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x5b, 0x5c, 0x5d, 0x7f, 0x80, 0xff,
        ] {
            for pos in 0..8 {
                for b in 0..=255u8 {
                    let mut w = [filler; 8];
                    w[pos] = b;
                    assert_eq!(
                        word_needs_escape(u64::from_le_bytes(w)),
                        bytewise(w),
                        "{w:?}"
                    );
                }
            }
        }
        // Words mixing such bytes, where borrows between bytes could mislead the test.
        let interesting = [
            0x00, 0x01, 0x1f, 0x20, 0x21, 0x22, 0x5c, 0x7f, 0x80, 0xa2, 0xff,
        ];
        let mut next = rng(3);
        for _ in 0..200_000 {
            let w: [u8; 8] = std::array::from_fn(|_| {
                let r = next();
                if (r & 3) == 0 {
                    r as u8 >> 2
                } else {
                    interesting[(r >> 8) as usize % interesting.len()]
                }
            });
            assert_eq!(
                word_needs_escape(u64::from_le_bytes(w)),
                bytewise(w),
                "{w:?}"
            );
        }
    }

    /// Strings of every length around the word size, with a byte to escape (or none) at
    /// every place.
    #[test]
    fn long_strings_are_escaped_like_serde_json() {
        let mut next = rng(5);
        for len in 0..40 {
            for special in ["", "\"", "\\", "\n", "\u{1}", "\u{7f}", "é"] {
                for at in 0..=len {
                    let mut s: String = (0..len)
                        .map(|_| char::from(b'a' + (next() % 26) as u8))
                        .collect();
                    s.insert_str(at, special);
                    let expected = serde_json::to_string(&s).expect("json");
                    assert_eq!(written(|o| string(o, &s)), expected, "{s:?}");
                }
            }
        }
    }

    #[test]
    fn numbers_are_written_like_serde_json() {
        let mut next = rng(7);
        let mut values = vec![0, 1, 9, 10, 99, 100, 65_535, 999_999_999, u32::MAX];
        values.extend((0..1000).map(|_| next() as u32 >> (next() % 32)));
        for n in values {
            assert_eq!(
                written(|o| u32(o, n)),
                serde_json::to_string(&n).expect("json")
            );
        }
    }

    #[test]
    fn u64_numbers_are_written_like_serde_json() {
        let mut next = rng(17);
        let mut values = vec![0, 9, 10, u64::from(u32::MAX) + 1, u64::MAX - 1, u64::MAX];
        values.extend((0..20).map(|i| 10u64.pow(i)));
        values.extend((0..1000).map(|_| next() >> (next() % 64)));
        for n in values {
            assert_eq!(
                written(|o| u64(o, n)),
                serde_json::to_string(&n).expect("json")
            );
        }
    }

    #[test]
    fn ipv4_text_matches_std() {
        let mut next = rng(11);
        let mut ips = vec![Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST];
        ips.extend((0..1000).map(|_| Ipv4Addr::from(next() as u32)));
        ips.extend((0..=255).map(|b| Ipv4Addr::new(b, 10, 100, 0)));
        for a in ips {
            assert_eq!(Ipv4Text::new(a).as_bytes(), a.to_string().as_bytes());
        }
    }

    /// Every pattern of zero and non-zero groups (which decides where `::` goes), with
    /// group values of every width, plus the IPv4-mapped and -compatible forms.
    #[test]
    fn ipv6_text_matches_std() {
        let mut next = rng(13);
        let mut ips = vec![
            Ipv6Addr::UNSPECIFIED,
            Ipv6Addr::LOCALHOST,
            "::ffff:172.20.0.2".parse().expect("ip"),
            "::ffff:0.0.0.0".parse().expect("ip"),
            "::172.20.0.2".parse().expect("ip"),
            "::ffff:0:1:2".parse().expect("ip"),
            "64:ff9b::1.2.3.4".parse().expect("ip"),
            "fe80::1".parse().expect("ip"),
            "fd00::2".parse().expect("ip"),
        ];
        for pattern in 0u32..256 {
            for _ in 0..8 {
                let mut g = [0u16; 8];
                for (i, g) in g.iter_mut().enumerate() {
                    if pattern & (1 << i) != 0 {
                        // Non-zero, of 1 to 4 hex digits.
                        *g = ((next() as u16) >> (next() % 16)).max(1);
                    }
                }
                ips.push(Ipv6Addr::from(g));
            }
        }
        for _ in 0..64 {
            let v4 = next() as u32;
            ips.push(Ipv4Addr::from(v4).to_ipv6_mapped());
            ips.push(Ipv4Addr::from(v4).to_ipv6_compatible());
        }
        for a in ips {
            assert_eq!(
                String::from_utf8_lossy(Ipv6Text::new(a).as_bytes()),
                a.to_string(),
                "{:?}",
                a.segments()
            );
            let v = IpAddr::V6(a);
            assert_eq!(
                written(|o| ip(o, v)),
                serde_json::to_string(&v).expect("json")
            );
        }
    }

    #[test]
    fn objects_skip_commas_of_absent_members() {
        let s = written(|o| {
            let mut obj = Object::begin(o);
            obj.opt_str("a", None);
            obj.opt_u32("b", Some(3));
            obj.opt_str("c", Some("x"));
            obj.bool("d", true);
            str_array(obj.key("e"), &["p", "q\"r"]);
            obj.u64("f", u64::MAX);
            obj.null("g");
            obj.end();
        });
        assert_eq!(
            s,
            r#"{"b":3,"c":"x","d":true,"e":["p","q\"r"],"f":18446744073709551615,"g":null}"#
        );
        assert_eq!(written(|o| Object::begin(o).end()), "{}");
    }
}

/// Readers of the constant `kind` tags of events (`"kind":"drop"`): the tag read back is
/// the same `'static` text the writer wrote, and any other text is an error.
pub mod tag {
    use serde::{de::Error as _, Deserialize, Deserializer};

    /// A name from a fixed set (an event's `kind`, an ARP operation), read back by one of
    /// this module's readers. Spelled as an alias because serde's derive borrows every
    /// field written `&str` from its input, which read-back events must not.
    pub type Name = &'static str;

    fn expect<'de, D: Deserializer<'de>>(
        d: D,
        want: &'static str,
    ) -> Result<&'static str, D::Error> {
        let got = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if got == want {
            Ok(want)
        } else {
            Err(D::Error::custom(format_args!(
                "expected kind {want}, not {got}"
            )))
        }
    }

    pub fn journey<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
        expect(d, "journey")
    }

    pub fn arp_unanswered<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
        expect(d, "arp-unanswered")
    }

    pub fn drop<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
        expect(d, "drop")
    }

    /// An ARP operation's name (`request`, `reply`, `other`).
    pub fn arp_op<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
        let got = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ["request", "reply", "other"]
            .into_iter()
            .find(|op| *op == got)
            .ok_or_else(|| D::Error::custom(format_args!("unknown ARP operation {got}")))
    }
}

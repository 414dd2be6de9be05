//! `netlab::model::decode::decode` on arbitrary bytes.
//!
//! Input: the first 4 bytes are the frame's length on the wire (little endian; 0 stands for
//! "the whole frame was captured", i.e. the rest's length), the rest is the captured prefix.
//! Besides "never panics", it checks what the rest of netlab relies on:
//! - `None` exactly when not even the Ethernet header was captured;
//! - a whole frame decodes to the kind the kernel program gives it (the independent model in
//!   `tests/src/classify.rs`), so user space and the counters agree;
//! - a shorter capture of the same frame decodes to the same kind or to no kind (fields
//!   beyond the capture are absent, never guessed);
//! - a malformed frame carries no ICMP, ARP or NDP fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netlab::model::decode::decode;
use netlab::model::kind::Kind;
use netlab_tests::classify::expected_kind;

fuzz_target!(|input: &[u8]| {
    let Some((len, data)) = input.split_first_chunk::<4>() else {
        return;
    };
    let whole = u32::from_le_bytes(*len) == 0;
    let wire_len = if whole {
        u32::try_from(data.len()).unwrap_or(u32::MAX)
    } else {
        u32::from_le_bytes(*len)
    };
    let decoded = decode(data, wire_len);
    assert_eq!(decoded.is_some(), data.len() >= 14, "Ethernet header rule");
    let Some(d) = decoded else {
        return;
    };
    if d.kind == Some(Kind::Malformed) {
        assert!(d.icmp.is_none() && d.arp.is_none() && d.ndp_target.is_none());
    }
    if d.arp.is_some() {
        assert!(matches!(
            d.kind,
            Some(Kind::ArpRequest | Kind::ArpReply | Kind::ArpOther)
        ));
    }
    if whole {
        assert_eq!(
            d.kind.map(Kind::name),
            expected_kind(data),
            "decoder and kernel model disagree on a whole frame"
        );
    }
    if wire_len as usize >= data.len() {
        // Cut the capture at a few places; each must agree with the longer capture.
        for cut in [14, data.len() / 2, data.len().saturating_sub(1)] {
            if cut < 14 || cut >= data.len() {
                continue;
            }
            let shorter = decode(&data[..cut], wire_len).expect("Ethernet header captured");
            assert!(
                shorter.kind.is_none() || shorter.kind == d.kind,
                "capture of {cut} bytes: {:?}, of {}: {:?}",
                shorter.kind,
                data.len(),
                d.kind
            );
        }
    }
});

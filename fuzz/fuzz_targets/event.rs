//! `netlab::model::event::PacketRecord` built from an arbitrary kernel record, then written as JSON
//! and as a human line.
//!
//! Input: the bytes of a `netlab_common::PacketEvent` (any bit pattern is a valid one: the
//! struct is plain integers with explicit padding); missing bytes are zero. Checks that
//! a record is made exactly for known kinds and directions, that the JSON is one line that
//! parses back with the kernel's kind, that the human line is one line, and that a malformed
//! packet never shows ICMP, ARP or NDP fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netlab::kernel::clock::Clock;
use netlab::model::event::PacketRecord;
use netlab::model::kind::{Direction, Kind};
use netlab::docker::topology::Topology;
use netlab_common::PacketEvent;

fuzz_target!(|input: &[u8]| {
    let mut raw = [0u8; std::mem::size_of::<PacketEvent>()];
    let n = input.len().min(raw.len());
    raw[..n].copy_from_slice(&input[..n]);
    // SAFETY: `raw` has exactly the size of PacketEvent, which is `#[repr(C)]` plain integers
    // and byte arrays (aya::Pod): every bit pattern is a valid value; the read is unaligned.
    let ev: PacketEvent = unsafe { std::ptr::read_unaligned(raw.as_ptr().cast()) };

    let topo = Topology::default();
    let clock = Clock::new();
    let record = PacketRecord::new(&ev, &topo, &clock);
    let known = Kind::from_id(ev.kind).is_some() && Direction::from_id(ev.direction).is_some();
    assert_eq!(
        record.is_some(),
        known,
        "kind {} direction {}",
        ev.kind,
        ev.direction
    );
    let Some(record) = record else {
        return;
    };

    let mut json = Vec::new();
    record
        .write_json(&mut json)
        .expect("an event always serializes");
    assert_eq!(json.last(), Some(&b'\n'));
    assert_eq!(
        json.iter().filter(|&&b| b == b'\n').count(),
        1,
        "one JSON line"
    );
    let value: serde_json::Value = serde_json::from_slice(&json).expect("valid JSON");
    let kind = Kind::from_id(ev.kind).expect("known kind").name();
    assert_eq!(value["kind"], kind);
    assert_eq!(value["len"], ev.pkt_len);
    if kind == "malformed" {
        assert!(
            value.get("icmp").is_none() && value.get("arp").is_none() && value.get("ndp").is_none(),
            "fields on a malformed event: {value}"
        );
    }
    if value
        .get("icmp")
        .is_some_and(|icmp| icmp.get("id").is_some())
    {
        assert!(kind.contains("echo"), "echo id on a {kind} event: {value}");
    }

    let mut human = String::new();
    record.write_human(&mut human);
    assert!(human.ends_with('\n'));
    assert_eq!(human.matches('\n').count(), 1, "one human line: {human:?}");
});

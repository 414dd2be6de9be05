//! The pcapng writer behind `netlab capture -w FILE.pcapng`.
//!
//! Writes one little-endian section (a Section Header Block), Ethernet Interface
//! Description Blocks with nanosecond timestamps, and Enhanced Packet Blocks with an
//! optional comment, as described in the pcapng specification
//! (<https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-03.html>). Readers such as
//! tcpdump, tshark and Wireshark open the result.
//!
//! The blocks are encoded by the `pcap-file` crate; this module adds what netlab promises
//! on top: inputs that do not fit a block are refused before anything is written, and each
//! block is encoded into a reused buffer and handed to the underlying writer with one
//! `write_all` (wrap files in a [`std::io::BufWriter`] for many small packets).

use std::borrow::Cow;
use std::io::{self, Write};
use std::time::Duration;

use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness, PcapError};

/// The if_tsresol value written: nanoseconds.
const TSRESOL_NANOS: u8 = 9;

/// Number of zero bytes that pad `len` up to a multiple of 4.
fn pad4(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// An `InvalidInput` error with `msg`.
fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Checks that a string option fits an option's 16-bit length; empty values are left
/// out by the callers.
fn option_fits(name: &str, value: &str) -> io::Result<()> {
    if value.len() > usize::from(u16::MAX) {
        return Err(invalid(format!(
            "pcapng option {name}: value of {} bytes exceeds 65535",
            value.len()
        )));
    }
    Ok(())
}

/// The `io::Error` for a `pcap-file` error: its own I/O errors as they are, anything else
/// (which the checks before each block rule out) as `InvalidInput`.
fn io_error(e: PcapError) -> io::Error {
    match e {
        PcapError::IoError(e) => e,
        other => invalid(format!("pcapng: {other}")),
    }
}

/// Writes a pcapng stream: one section of Ethernet interfaces and their packets.
///
/// Timestamps are Unix time in nanoseconds (every interface declares `if_tsresol` = 9).
/// Call [`PcapngWriter::flush`] or [`PcapngWriter::into_inner`] when done.
pub struct PcapngWriter<W: Write> {
    out: W,
    /// Encodes one block at a time into its buffer, which [`PcapngWriter::emit`] hands on
    /// to `out` and empties.
    blocks: PcapNgWriter<Vec<u8>>,
    /// Snap length of each interface added so far, indexed by interface id.
    snaplens: Vec<u32>,
}

impl<W: Write> PcapngWriter<W> {
    /// Starts a stream on `w` with a Section Header Block naming `app` (shb_userappl) as
    /// the writing application; an empty `app` is left out.
    pub fn new(w: W, app: &str) -> io::Result<Self> {
        option_fits("shb_userappl", app)?;
        let mut options = Vec::new();
        if !app.is_empty() {
            options.push(SectionHeaderOption::UserApplication(Cow::Owned(
                app.to_string(),
            )));
        }
        let section = SectionHeaderBlock {
            endianness: Endianness::Little,
            major_version: 1,
            minor_version: 0,
            section_length: -1, // unspecified
            options,
        };
        let blocks = PcapNgWriter::with_section_header(Vec::with_capacity(256), section)
            .map_err(io_error)?;
        let mut writer = PcapngWriter {
            out: w,
            blocks,
            snaplens: Vec::new(),
        };
        writer.emit()?;
        Ok(writer)
    }

    /// Describes an Ethernet interface (link type 1) called `name`, with `description`
    /// and nanosecond timestamps, and returns its id (0, 1, ... in order of addition).
    ///
    /// `snaplen` is the most bytes any of its packets carries (0: no limit); empty
    /// `name` or `description` are left out.
    pub fn add_interface(
        &mut self,
        name: &str,
        description: &str,
        snaplen: u32,
    ) -> io::Result<u32> {
        let id = u32::try_from(self.snaplens.len())
            .map_err(|_| invalid("too many pcapng interfaces".to_string()))?;
        option_fits("if_name", name)?;
        option_fits("if_description", description)?;
        let mut options = Vec::with_capacity(3);
        if !name.is_empty() {
            options.push(InterfaceDescriptionOption::IfName(Cow::Borrowed(name)));
        }
        if !description.is_empty() {
            options.push(InterfaceDescriptionOption::IfDescription(Cow::Borrowed(
                description,
            )));
        }
        options.push(InterfaceDescriptionOption::IfTsResol(TSRESOL_NANOS));
        let idb = InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen,
            options,
        };
        self.blocks.write_pcapng_block(idb).map_err(io_error)?;
        self.emit()?;
        self.snaplens.push(snaplen);
        Ok(id)
    }

    /// Writes one packet seen on interface `iface` at `ts_unix_ns` (ns since the Unix
    /// epoch): `data` is the captured part of a frame that was `orig_len` bytes long,
    /// with an optional UTF-8 `comment` (opt_comment; an empty one is left out).
    ///
    /// Fails with `InvalidInput`, writing nothing, when `iface` was not added, `data` is
    /// longer than `orig_len` or than the interface's non-zero snap length, or the
    /// comment exceeds 65535 bytes.
    pub fn write_packet(
        &mut self,
        iface: u32,
        ts_unix_ns: u64,
        data: &[u8],
        orig_len: u32,
        comment: Option<&str>,
    ) -> io::Result<()> {
        let snaplen = usize::try_from(iface)
            .ok()
            .and_then(|i| self.snaplens.get(i).copied())
            .ok_or_else(|| invalid(format!("pcapng interface {iface} was not added")))?;
        let caplen = u32::try_from(data.len())
            .map_err(|_| invalid(format!("packet of {} bytes is too long", data.len())))?;
        if caplen > orig_len {
            return Err(invalid(format!(
                "captured length {caplen} exceeds original length {orig_len}"
            )));
        }
        if snaplen != 0 && caplen > snaplen {
            return Err(invalid(format!(
                "captured length {caplen} exceeds snap length {snaplen} of interface {iface}"
            )));
        }
        let comment = comment.unwrap_or("");
        option_fits("opt_comment", comment)?;
        // Type, two lengths, the fixed fields, padded data, the comment and opt_endofopt.
        let options_len = if comment.is_empty() {
            0
        } else {
            4 + comment.len() + pad4(comment.len()) + 4
        };
        let total = 32 + data.len() + pad4(data.len()) + options_len;
        if u32::try_from(total).is_err() {
            return Err(invalid(format!(
                "pcapng block of {total} bytes is too long"
            )));
        }
        let mut options = Vec::new();
        if !comment.is_empty() {
            options.push(EnhancedPacketOption::Comment(Cow::Borrowed(comment)));
        }
        let epb = EnhancedPacketBlock {
            interface_id: iface,
            timestamp: Duration::from_nanos(ts_unix_ns),
            original_len: orig_len,
            data: Cow::Borrowed(data),
            options,
        };
        self.blocks.write_pcapng_block(epb).map_err(io_error)?;
        self.emit()
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Returns the underlying writer (not flushed).
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Hands the block just encoded to the underlying writer with one `write_all`.
    fn emit(&mut self) -> io::Result<()> {
        let block = self.blocks.get_mut();
        debug_assert_eq!(block.len() % 4, 0);
        let written = self.out.write_all(block);
        block.clear();
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// Block type of a Section Header Block.
    const BT_SHB: u32 = 0x0A0D_0D0A;
    /// Block type of an Interface Description Block.
    const BT_IDB: u32 = 0x0000_0001;
    /// Block type of an Enhanced Packet Block.
    const BT_EPB: u32 = 0x0000_0006;
    /// opt_endofopt: ends an option list.
    const OPT_ENDOFOPT: u16 = 0;
    /// opt_comment: a UTF-8 comment, valid in every block.
    const OPT_COMMENT: u16 = 1;
    /// shb_userappl: the application that wrote the section.
    const SHB_USERAPPL: u16 = 4;
    /// if_name: the interface's name.
    const IF_NAME: u16 = 2;
    /// if_description: a description of the interface.
    const IF_DESCRIPTION: u16 = 3;
    /// if_tsresol: timestamp resolution; 9 means 10^-9 s.
    const IF_TSRESOL: u16 = 9;

    /// A block read back from a stream.
    #[derive(Debug, PartialEq)]
    enum Block {
        Shb {
            major: u16,
            minor: u16,
            section_len: i64,
            options: Vec<(u16, Vec<u8>)>,
        },
        Idb {
            link_type: u16,
            snaplen: u32,
            options: Vec<(u16, Vec<u8>)>,
        },
        Epb {
            iface: u32,
            ts: u64,
            orig_len: u32,
            data: Vec<u8>,
            options: Vec<(u16, Vec<u8>)>,
        },
    }

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([b[at], b[at + 1]])
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from(u32_at(b, at)) | u64::from(u32_at(b, at + 4)) << 32
    }

    /// Parses an option list that fills `b` exactly, checking padding and opt_endofopt.
    fn parse_options(b: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut options = Vec::new();
        if b.is_empty() {
            return options;
        }
        let mut at = 0;
        loop {
            let code = u16_at(b, at);
            let len = u16_at(b, at + 2) as usize;
            at += 4;
            if code == OPT_ENDOFOPT {
                assert_eq!(len, 0, "opt_endofopt has a length");
                assert_eq!(at, b.len(), "bytes after opt_endofopt");
                return options;
            }
            options.push((code, b[at..at + len].to_vec()));
            at += len;
            let pad = pad4(len);
            assert!(b[at..at + pad].iter().all(|&x| x == 0), "non-zero padding");
            at += pad;
        }
    }

    /// Parses a whole little-endian stream of SHB, IDB and EPB blocks.
    fn parse(b: &[u8]) -> Vec<Block> {
        let mut blocks = Vec::new();
        let mut at = 0;
        while at < b.len() {
            let block_type = u32_at(b, at);
            let total = u32_at(b, at + 4) as usize;
            assert_eq!(total % 4, 0, "block length not a multiple of 4");
            assert!(total >= 12 && at + total <= b.len(), "bad block length");
            assert_eq!(u32_at(b, at + total - 4), total as u32, "trailing length");
            let body = &b[at + 8..at + total - 4];
            blocks.push(match block_type {
                BT_SHB => {
                    assert_eq!(b[at + 8..at + 12], [0x4D, 0x3C, 0x2B, 0x1A], "byte order");
                    Block::Shb {
                        major: u16_at(body, 4),
                        minor: u16_at(body, 6),
                        section_len: u64_at(body, 8) as i64,
                        options: parse_options(&body[16..]),
                    }
                }
                BT_IDB => {
                    assert_eq!(u16_at(body, 2), 0, "reserved");
                    Block::Idb {
                        link_type: u16_at(body, 0),
                        snaplen: u32_at(body, 4),
                        options: parse_options(&body[8..]),
                    }
                }
                BT_EPB => {
                    let high = u32_at(body, 4) as u64;
                    let low = u32_at(body, 8) as u64;
                    let caplen = u32_at(body, 12) as usize;
                    let padded = caplen + pad4(caplen);
                    assert!(body[20 + caplen..20 + padded].iter().all(|&x| x == 0));
                    Block::Epb {
                        iface: u32_at(body, 0),
                        ts: high << 32 | low,
                        orig_len: u32_at(body, 16),
                        data: body[20..20 + caplen].to_vec(),
                        options: parse_options(&body[20 + padded..]),
                    }
                }
                other => panic!("unexpected block type {other:#x}"),
            });
            at += total;
        }
        blocks
    }

    fn opt(code: u16, value: &[u8]) -> (u16, Vec<u8>) {
        (code, value.to_vec())
    }

    #[test]
    fn section_header_bytes() -> io::Result<()> {
        let w = PcapngWriter::new(Vec::new(), "netlab")?;
        let bytes = w.into_inner();
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0x0A, 0x0D, 0x0D, 0x0A, 44, 0, 0, 0,
            0x4D, 0x3C, 0x2B, 0x1A, 1, 0, 0, 0,
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            4, 0, 6, 0, b'n', b'e', b't', b'l', b'a', b'b', 0, 0,
            0, 0, 0, 0,
            44, 0, 0, 0,
        ];
        assert_eq!(bytes, expected);
        Ok(())
    }

    #[test]
    fn round_trip_every_field() -> io::Result<()> {
        let mut w = PcapngWriter::new(Vec::new(), "netlab 0.1")?;
        // "br-1a2b3" is 8 bytes (no padding), "veth12345" is 9 (3 bytes of padding).
        assert_eq!(w.add_interface("br-1a2b3", "bridge", 128)?, 0);
        assert_eq!(
            w.add_interface("veth12345", "web → db (container)", 128)?,
            1
        );
        let full: Vec<u8> = (0..128u8).collect();
        let ts = 1_795_803_924_123_456_789u64;
        w.write_packet(0, ts, &full, 1500, Some("ping web → db ✓"))?;
        w.write_packet(1, ts + 1, &[], 60, None)?;
        w.write_packet(1, u64::MAX, &full[..5], 5, Some(""))?;
        let bytes = w.into_inner();
        assert_eq!(bytes.len() % 4, 0);

        let blocks = parse(&bytes);
        let tsresol = opt(IF_TSRESOL, &[9]);
        assert_eq!(
            blocks,
            vec![
                Block::Shb {
                    major: 1,
                    minor: 0,
                    section_len: -1,
                    options: vec![opt(SHB_USERAPPL, b"netlab 0.1")],
                },
                Block::Idb {
                    link_type: 1,
                    snaplen: 128,
                    options: vec![
                        opt(IF_NAME, b"br-1a2b3"),
                        opt(IF_DESCRIPTION, b"bridge"),
                        tsresol.clone(),
                    ],
                },
                Block::Idb {
                    link_type: 1,
                    snaplen: 128,
                    options: vec![
                        opt(IF_NAME, b"veth12345"),
                        opt(IF_DESCRIPTION, "web → db (container)".as_bytes()),
                        tsresol,
                    ],
                },
                Block::Epb {
                    iface: 0,
                    ts,
                    orig_len: 1500,
                    data: full.clone(),
                    options: vec![opt(OPT_COMMENT, "ping web → db ✓".as_bytes())],
                },
                Block::Epb {
                    iface: 1,
                    ts: ts + 1,
                    orig_len: 60,
                    data: vec![],
                    options: vec![],
                },
                Block::Epb {
                    iface: 1,
                    ts: u64::MAX,
                    orig_len: 5,
                    data: full[..5].to_vec(),
                    options: vec![],
                },
            ]
        );
        // The empty packet without options is exactly the 32-byte fixed part.
        let empty_epb = [6, 0, 0, 0, 32, 0, 0, 0];
        assert!(bytes.windows(8).any(|w| w == empty_epb));

        // pcap-file's own reader, a parser independent of the one above, agrees.
        let mut reader = pcap_file::pcapng::PcapNgReader::new(&bytes[..]).map_err(io_error)?;
        assert_eq!(reader.section().options.len(), 1);
        let mut packets = Vec::new();
        while let Some(block) = reader.next_block() {
            if let Some(epb) = block.map_err(io_error)?.into_enhanced_packet() {
                packets.push((
                    epb.interface_id,
                    epb.timestamp,
                    epb.data.len(),
                    epb.options.len(),
                ));
            }
        }
        assert_eq!(reader.interfaces().len(), 2);
        let at = |ns: u64| std::time::Duration::from_nanos(ns);
        assert_eq!(
            packets,
            [
                (0, at(ts), 128, 1),
                (1, at(ts + 1), 0, 0),
                (1, at(u64::MAX), 5, 0)
            ]
        );
        Ok(())
    }

    #[test]
    fn timestamp_split() -> io::Result<()> {
        let mut w = PcapngWriter::new(Vec::new(), "")?;
        w.add_interface("", "", 0)?;
        w.write_packet(0, 0x0123_4567_89AB_CDEF, &[0xAA], 1, None)?;
        let bytes = w.into_inner();
        // SHB without options: 28 bytes; IDB with only if_tsresol: 20 + 8 + 4 = 32.
        let blocks = parse(&bytes);
        assert_eq!(
            blocks[0],
            Block::Shb {
                major: 1,
                minor: 0,
                section_len: -1,
                options: vec![]
            }
        );
        assert_eq!(
            blocks[1],
            Block::Idb {
                link_type: 1,
                snaplen: 0,
                options: vec![opt(IF_TSRESOL, &[9])]
            }
        );
        let epb = &bytes[28 + 32..];
        assert_eq!(epb[12..16], 0x0123_4567u32.to_le_bytes());
        assert_eq!(epb[16..20], 0x89AB_CDEFu32.to_le_bytes());
        assert_eq!(epb[28..32], [0xAA, 0, 0, 0]);
        Ok(())
    }

    #[test]
    fn rejects_bad_packets_without_writing() -> io::Result<()> {
        let mut w = PcapngWriter::new(Vec::new(), "t")?;
        w.add_interface("eth0", "", 64)?;
        let before = w.out.len();
        let kind = |r: io::Result<()>| r.err().map(|e| e.kind());
        assert_eq!(
            kind(w.write_packet(1, 0, &[0; 4], 4, None)),
            Some(io::ErrorKind::InvalidInput)
        );
        assert_eq!(
            kind(w.write_packet(0, 0, &[0; 65], 98, None)),
            Some(io::ErrorKind::InvalidInput)
        );
        assert_eq!(
            kind(w.write_packet(0, 0, &[0; 8], 4, None)),
            Some(io::ErrorKind::InvalidInput)
        );
        let long = "x".repeat(65536);
        assert_eq!(
            kind(w.write_packet(0, 0, &[0; 8], 8, Some(&long))),
            Some(io::ErrorKind::InvalidInput)
        );
        assert_eq!(w.out.len(), before);
        // 65535 bytes is the longest comment that fits.
        w.write_packet(0, 0, &[0; 8], 8, Some(&long[1..]))?;
        match parse(&w.into_inner()).pop() {
            Some(Block::Epb { options, .. }) => assert_eq!(options[0].1.len(), 65535),
            other => panic!("{other:?}"),
        }
        Ok(())
    }

    /// Writes 100,000 packets (a 98-byte echo request each, every tenth with a comment, over
    /// two interfaces) to a `Vec` and prints the time taken. A measurement, not a check:
    /// `cargo test -p netlab-daemon --release --lib pcapng::tests::write_timing -- --ignored --nocapture`.
    #[test]
    #[ignore = "prints a timing; run by hand"]
    fn write_timing() -> io::Result<()> {
        const PACKETS: u64 = 100_000;
        let frame = echo_request();
        let mut best = std::time::Duration::MAX;
        let mut bytes = 0;
        for _ in 0..5 {
            let start = std::time::Instant::now();
            let mut w = PcapngWriter::new(Vec::with_capacity(16 << 20), "netlab")?;
            let ids = [
                w.add_interface("br-0123456789ab", "bridge", 0)?,
                w.add_interface("veth1a2b3c4", "web (eth0)", 0)?,
            ];
            for i in 0..PACKETS {
                let comment = (i % 10 == 0).then_some(COMMENT);
                w.write_packet(ids[(i % 2) as usize], TS + i, &frame, 98, comment)?;
            }
            w.flush()?;
            bytes = std::hint::black_box(w.into_inner()).len();
            best = best.min(start.elapsed());
        }
        println!(
            "pcapng: {PACKETS} packets, {bytes} bytes, best of 5: {:.2} ms ({:.0} ns/packet)",
            best.as_secs_f64() * 1e3,
            best.as_nanos() as f64 / PACKETS as f64
        );
        Ok(())
    }

    // ---- real tools ----

    fn checksum(bytes: &[u8]) -> u16 {
        let mut sum: u32 = bytes
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
            .sum();
        while sum >> 16 != 0 {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        !(sum as u16)
    }

    const MAC_A: [u8; 6] = [0x02, 0x42, 0xAC, 0x11, 0x00, 0x02];
    const MAC_B: [u8; 6] = [0x02, 0x42, 0xAC, 0x11, 0x00, 0x03];
    const IP_A: [u8; 4] = [172, 17, 0, 2];
    const IP_B: [u8; 4] = [172, 17, 0, 3];

    /// Ethernet + IPv4 + ICMP echo request (id 0x1234, seq 7, 56 bytes payload): 98 bytes.
    fn echo_request() -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&MAC_B);
        f.extend_from_slice(&MAC_A);
        f.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0x45, 0, 0, 84, 0xBE, 0xEF, 0x40, 0, 64, 1, 0, 0];
        ip.extend_from_slice(&IP_A);
        ip.extend_from_slice(&IP_B);
        let c = checksum(&ip).to_be_bytes();
        ip[10..12].copy_from_slice(&c);
        let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 7];
        icmp.extend((0..56u8).map(|i| i.wrapping_add(0x10)));
        let c = checksum(&icmp).to_be_bytes();
        icmp[2..4].copy_from_slice(&c);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&icmp);
        f
    }

    /// Ethernet + ARP request "who has 172.17.0.3, tell 172.17.0.2": 42 bytes.
    fn arp_request() -> Vec<u8> {
        let mut f = vec![0xFF; 6];
        f.extend_from_slice(&MAC_A);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
        f.extend_from_slice(&MAC_A);
        f.extend_from_slice(&IP_A);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&IP_B);
        f
    }

    fn on_path(tool: &str) -> bool {
        Command::new("which")
            .arg(tool)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    fn run(tool: &str, args: &[&str], file: &Path) -> io::Result<String> {
        let out = Command::new(tool).args(args).arg(file).output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("$ {tool} {} FILE\n{stdout}{stderr}", args.join(" "));
        assert!(out.status.success(), "{tool} failed: {stderr}");
        Ok(stdout)
    }

    const TS: u64 = 1_795_803_924_123_456_789;
    const COMMENT: &str = "web → db: echo request ✓";

    fn write_sample(path: &Path) -> io::Result<()> {
        let file = std::fs::File::create(path)?;
        let mut w = PcapngWriter::new(io::BufWriter::new(file), "netlab test")?;
        let br = w.add_interface("br-0123456789ab", "bridge of net1", 128)?;
        let veth = w.add_interface("veth1a2b3c4", "web (eth0)", 128)?;
        let echo = echo_request();
        assert_eq!(echo.len(), 98);
        let arp = arp_request();
        assert_eq!(arp.len(), 42);
        w.write_packet(br, TS, &echo, 98, Some(COMMENT))?;
        w.write_packet(veth, TS + 1_000, &echo[..64], 98, None)?;
        w.write_packet(br, TS + 2_000, &arp, 42, Some("arp"))?;
        w.flush()?;
        w.into_inner()
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?
            .sync_all()
    }

    fn temp_file() -> io::Result<(PathBuf, PathBuf)> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("netlab-pcapng-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("sample.pcapng");
        Ok((dir, file))
    }

    #[test]
    fn real_readers_open_the_file() -> io::Result<()> {
        let tools: Vec<&str> = ["tcpdump", "tshark", "capinfos"]
            .into_iter()
            .filter(|t| on_path(t))
            .collect();
        if tools.is_empty() {
            println!("skipping: no pcapng reader installed");
            return Ok(());
        }
        let (dir, file) = temp_file()?;
        write_sample(&file)?;
        if tools.contains(&"tcpdump") {
            let out = run(
                "tcpdump",
                &["-nn", "-tt", "--time-stamp-precision=nano", "-r"],
                &file,
            )?;
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(lines.len(), 3, "{out}");
            assert!(lines[0].starts_with("1795803924.123456789 IP 172.17.0.2 > 172.17.0.3: ICMP echo request, id 4660, seq 7, length 64"), "{out}");
            assert!(
                lines[1].starts_with(
                    "1795803924.123457789 IP 172.17.0.2 > 172.17.0.3: ICMP echo request"
                ),
                "{out}"
            );
            assert!(
                lines[2].starts_with(
                    "1795803924.123458789 ARP, Request who-has 172.17.0.3 tell 172.17.0.2"
                ),
                "{out}"
            );
            // -v verifies the IPv4 checksum of the full frame.
            let verbose = run("tcpdump", &["-nn", "-v", "-c", "1", "-r"], &file)?;
            assert!(!verbose.contains("bad cksum"), "{verbose}");
        }
        if tools.contains(&"tshark") {
            let fields = [
                "frame.interface_name",
                "frame.time_epoch",
                "frame.len",
                "frame.cap_len",
                "frame.comment",
                "icmp.type",
                "icmp.checksum.status",
            ];
            let mut args = vec!["-T", "fields", "-E", "separator=|"];
            for f in &fields {
                args.extend(["-e", f]);
            }
            args.push("-r");
            let out = run("tshark", &args, &file)?;
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(
                lines,
                [
                    format!("br-0123456789ab|1795803924.123456789|98|98|{COMMENT}|8|1").as_str(),
                    // Truncated: the checksum cannot be verified (status 2 = unverified).
                    "veth1a2b3c4|1795803924.123457789|98|64||8|2",
                    "br-0123456789ab|1795803924.123458789|42|42|arp||",
                ],
                "{out}"
            );
        }
        if tools.contains(&"capinfos") {
            let out = run("capinfos", &["-c", "-I"], &file)?;
            for expected in [
                "Number of packets:   3",
                "Number of interfaces in file: 2",
                "Name = br-0123456789ab",
                "Description = web (eth0)",
                "Time precision = nanoseconds (9)",
            ] {
                assert!(out.contains(expected), "{expected:?} not in {out}");
            }
        }
        std::fs::remove_dir_all(&dir)
    }
}

//! The BTF blob itself: the header and the bounds of its sections, the index of every type
//! record, and reading a record, a `u32` or a string at an offset. Lookups by name are in
//! [`super::lookup`].

use std::fs;
use std::ops::Range;
use std::path::PathBuf;

use super::BtfError;

/// Where the running kernel exposes its own BTF.
pub const SYS_BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

pub(super) const BTF_MAGIC: u16 = 0xEB9F;
pub(super) const BTF_VERSION: u8 = 1;
const HEADER_MIN_LEN: usize = 24;
pub(super) const TYPE_RECORD_LEN: usize = 12;

pub(super) const KIND_INT: u8 = 1;
pub(super) const KIND_PTR: u8 = 2;
pub(super) const KIND_ARRAY: u8 = 3;
pub(super) const KIND_STRUCT: u8 = 4;
pub(super) const KIND_UNION: u8 = 5;
pub(super) const KIND_ENUM: u8 = 6;
pub(super) const KIND_FWD: u8 = 7;
pub(super) const KIND_TYPEDEF: u8 = 8;
pub(super) const KIND_VOLATILE: u8 = 9;
pub(super) const KIND_CONST: u8 = 10;
pub(super) const KIND_RESTRICT: u8 = 11;
pub(super) const KIND_FUNC: u8 = 12;
pub(super) const KIND_FUNC_PROTO: u8 = 13;
pub(super) const KIND_VAR: u8 = 14;
pub(super) const KIND_DATASEC: u8 = 15;
pub(super) const KIND_FLOAT: u8 = 16;
pub(super) const KIND_DECL_TAG: u8 = 17;
pub(super) const KIND_TYPE_TAG: u8 = 18;
pub(super) const KIND_ENUM64: u8 = 19;

/// Reads a native-endian `u32` at `off`, if in bounds.
fn read_u32(data: &[u8], off: usize) -> Option<u32> {
    let bytes = data.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

/// One decoded type record header.
#[derive(Clone, Copy, Debug)]
pub(super) struct TypeRec {
    pub(super) id: u32,
    /// Absolute offset of the record in the blob.
    pub(super) off: usize,
    pub(super) name_off: u32,
    pub(super) kind: u8,
    pub(super) kind_flag: bool,
    pub(super) vlen: u16,
    pub(super) size_or_type: u32,
}

/// The parsed BTF of a kernel (or any single, non-split BTF blob).
pub struct KernelBtf {
    data: Vec<u8>,
    /// Absolute range of the string section.
    strings: Range<usize>,
    /// Absolute offset of each type record; index `id - 1`.
    types: Vec<usize>,
}

impl std::fmt::Debug for KernelBtf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelBtf")
            .field("bytes", &self.data.len())
            .field("types", &self.types.len())
            .finish()
    }
}

impl KernelBtf {
    /// Reads and parses the running kernel's BTF from [`SYS_BTF_PATH`].
    pub fn from_sys_fs() -> Result<Self, BtfError> {
        let data = fs::read(SYS_BTF_PATH).map_err(|source| BtfError::Read {
            path: PathBuf::from(SYS_BTF_PATH),
            source,
        })?;
        Self::parse(data)
    }

    /// Parses a BTF blob: checks the header and indexes every type record.
    pub fn parse(data: Vec<u8>) -> Result<Self, BtfError> {
        let len = data.len();
        if len < HEADER_MIN_LEN {
            return Err(BtfError::TooShort { len });
        }
        let magic = match data.get(0..2) {
            Some(&[a, b]) => u16::from_ne_bytes([a, b]),
            _ => return Err(BtfError::TooShort { len }),
        };
        if magic != BTF_MAGIC {
            return Err(BtfError::BadMagic { found: magic });
        }
        let version = data.get(2).copied().ok_or(BtfError::TooShort { len })?;
        if version != BTF_VERSION {
            return Err(BtfError::UnsupportedVersion { version });
        }
        let field = |off: usize| read_u32(&data, off).ok_or(BtfError::TooShort { len });
        let hdr_len = field(4)?;
        let (type_off, type_len) = (field(8)?, field(12)?);
        let (str_off, str_len) = (field(16)?, field(20)?);
        let hdr_usize = usize::try_from(hdr_len).unwrap_or(usize::MAX);
        if hdr_usize < HEADER_MIN_LEN || hdr_usize > len {
            return Err(BtfError::BadHeaderLen { hdr_len, len });
        }
        let types_range = section("type", hdr_len, type_off, type_len, len)?;
        let strings = section("string", hdr_len, str_off, str_len, len)?;
        let types = index_types(&data, types_range)?;
        Ok(Self {
            data,
            strings,
            types,
        })
    }

    /// Number of types (the largest valid type id).
    pub fn type_count(&self) -> usize {
        self.types.len()
    }

    /// Reads a `u32` of type `t`'s record (or its trailing data).
    pub(super) fn u32_at(&self, t: &TypeRec, off: usize) -> Result<u32, BtfError> {
        read_u32(&self.data, off).ok_or(BtfError::TruncatedType {
            type_id: t.id,
            offset: t.off,
        })
    }

    /// The type record with id `id`.
    pub(super) fn ty(&self, id: u32) -> Result<TypeRec, BtfError> {
        let off = *id
            .checked_sub(1)
            .and_then(|idx| usize::try_from(idx).ok())
            .and_then(|idx| self.types.get(idx))
            .ok_or(BtfError::BadTypeId { type_id: id })?;
        let trunc = || BtfError::TruncatedType {
            type_id: id,
            offset: off,
        };
        let name_off = read_u32(&self.data, off).ok_or_else(trunc)?;
        let info = read_u32(&self.data, off + 4).ok_or_else(trunc)?;
        let size_or_type = read_u32(&self.data, off + 8).ok_or_else(trunc)?;
        Ok(TypeRec {
            id,
            off,
            name_off,
            kind: info_kind(info),
            kind_flag: info >> 31 == 1,
            vlen: (info & 0xffff) as u16,
            size_or_type,
        })
    }

    /// The bytes of the string at `off` (without the NUL), if valid.
    pub(super) fn name_bytes(&self, off: u32) -> Option<&[u8]> {
        let start = self.strings.start.checked_add(usize::try_from(off).ok()?)?;
        let rest = self.data.get(start..self.strings.end)?;
        let nul = rest.iter().position(|&b| b == 0)?;
        rest.get(..nul)
    }

    /// The string at `off`.
    pub(super) fn str_at(&self, off: u32) -> Result<&str, BtfError> {
        self.name_bytes(off)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or(BtfError::BadString { offset: off })
    }
}

/// The kind of a type from its `info` word.
fn info_kind(info: u32) -> u8 {
    ((info >> 24) & 0x1f) as u8
}

/// The absolute range of a section, checked against the blob length.
fn section(
    name: &'static str,
    hdr_len: u32,
    off: u32,
    len: u32,
    total: usize,
) -> Result<Range<usize>, BtfError> {
    let start = u64::from(hdr_len) + u64::from(off);
    let end = start + u64::from(len);
    let out_of_bounds = BtfError::SectionOutOfBounds {
        section: name,
        start,
        end,
        len: total,
    };
    match (usize::try_from(start), usize::try_from(end)) {
        (Ok(s), Ok(e)) if e <= total => Ok(s..e),
        _ => Err(out_of_bounds),
    }
}

/// Walks the type section and returns the absolute offset of every record.
fn index_types(data: &[u8], section: Range<usize>) -> Result<Vec<usize>, BtfError> {
    let mut offsets = Vec::new();
    let mut pos = section.start;
    while pos < section.end {
        let type_id = u32::try_from(offsets.len() + 1).map_err(|_| BtfError::TooManyTypes)?;
        let truncated = BtfError::TruncatedType {
            type_id,
            offset: pos,
        };
        let header_end = pos + TYPE_RECORD_LEN;
        if header_end > section.end {
            return Err(truncated);
        }
        let info = read_u32(data, pos + 4).ok_or(truncated)?;
        let kind = info_kind(info);
        let vlen = (info & 0xffff) as usize;
        let extra = match kind {
            KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
            KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
            | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
            KIND_ARRAY => 12,
            KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => vlen * 12,
            KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
            _ => return Err(BtfError::UnknownKind { type_id, kind }),
        };
        let end = header_end + extra;
        if end > section.end {
            return Err(BtfError::TruncatedType {
                type_id,
                offset: pos,
            });
        }
        offsets.push(pos);
        pos = end;
    }
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::btf::fixtures::{sample, Builder};

    /// Runs every lookup on a possibly corrupt blob; only checks nothing panics or hangs.
    fn exercise(data: Vec<u8>) {
        if let Ok(btf) = KernelBtf::parse(data) {
            for (s, p) in [
                ("outer", &["y"][..]),
                ("outer", &["in", "q"][..]),
                ("outer", &["cin", "q"][..]),
                ("outer", &["pin", "p"][..]),
                ("choice", &["nested", "q"][..]),
                ("flags", &["mode"][..]),
                ("legacy", &["bits"][..]),
            ] {
                let _ = btf.member_offset(s, p);
            }
            for e in ["color", "sign", "big"] {
                let _ = btf.enum_values(e);
            }
        }
    }

    #[test]
    fn btf_every_truncation_is_handled() {
        let blob = sample();
        for len in 0..blob.len() {
            let cut = blob[..len].to_vec();
            // The string section ends at the end of the blob, so every cut is detected.
            assert!(KernelBtf::parse(cut.clone()).is_err(), "length {len}");
            exercise(cut);
        }
    }

    #[test]
    fn btf_every_corrupted_byte_is_handled() {
        let blob = sample();
        for i in 0..blob.len() {
            for x in [0xff, 0x01, 0x80, 0x10] {
                let mut bad = blob.clone();
                bad[i] ^= x;
                exercise(bad);
            }
        }
    }

    #[test]
    fn btf_header_errors() {
        let blob = sample();
        let set = |off: usize, bytes: &[u8]| {
            let mut b = blob.clone();
            b[off..off + bytes.len()].copy_from_slice(bytes);
            KernelBtf::parse(b).expect_err("must fail")
        };
        assert!(matches!(
            KernelBtf::parse(vec![0; 10]),
            Err(BtfError::TooShort { len: 10 })
        ));
        assert!(matches!(set(0, &[0, 0]), BtfError::BadMagic { found: 0 }));
        assert!(matches!(
            set(2, &[2]),
            BtfError::UnsupportedVersion { version: 2 }
        ));
        assert!(matches!(
            set(4, &8u32.to_ne_bytes()),
            BtfError::BadHeaderLen { hdr_len: 8, .. }
        ));
        assert!(matches!(
            set(12, &u32::MAX.to_ne_bytes()),
            BtfError::SectionOutOfBounds {
                section: "type",
                ..
            }
        ));
        assert!(matches!(
            set(16, &u32::MAX.to_ne_bytes()),
            BtfError::SectionOutOfBounds {
                section: "string",
                ..
            }
        ));
        // First record's info word: kind 20 does not exist, kind 0 is not a record.
        assert!(matches!(
            set(28, &(20u32 << 24).to_ne_bytes()),
            BtfError::UnknownKind {
                type_id: 1,
                kind: 20
            }
        ));
        assert!(matches!(
            set(28, &0u32.to_ne_bytes()),
            BtfError::UnknownKind { kind: 0, .. }
        ));
        // A struct claiming 0xffff members runs past the type section.
        assert!(matches!(
            set(28, &(u32::from(KIND_STRUCT) << 24 | 0xffff).to_ne_bytes()),
            BtfError::TruncatedType { type_id: 1, .. }
        ));
    }

    #[test]
    fn btf_bad_string_offset_is_an_error() {
        let mut b = Builder::new();
        let id = b.enum32("e", false, &[("A", 1)]);
        assert_eq!(id, 1);
        let mut blob = b.build();
        // Value name offset (after header 24 + record 12) points far outside the strings.
        blob[36..40].copy_from_slice(&0xffffu32.to_ne_bytes());
        let btf = KernelBtf::parse(blob).expect("parses");
        assert!(matches!(
            btf.enum_values("e"),
            Err(BtfError::BadString { offset: 0xffff })
        ));
    }
}

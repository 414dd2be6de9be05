//! Load-time kernel introspection: struct offsets from the running kernel's BTF, tracepoint
//! field layouts from tracefs and text symbols from `/proc/kallsyms`.
//!
//! This is a small, self-contained reader (no aya-obj internals) so one binary can find the
//! layout of `struct sk_buff` and friends on whatever kernel it runs on, CO-RE style:
//! [`KernelBtf::member_offset`] resolves a (possibly nested) member path to a byte offset,
//! [`KernelBtf::enum_values`] lists an enum's constants, [`tracepoint_fields`] reads a
//! tracepoint's record layout and [`Kallsyms::symbolize`] turns an address into `name+0x1f`.
//!
//! The BTF blob is read in native byte order, which is the byte order of the running
//! kernel's `/sys/kernel/btf/vmlinux` (little-endian on x86_64 and arm64). Every read is
//! bounds-checked: corrupt or truncated input yields a [`BtfError`], never a panic.
//!
//! Why not a BTF crate. aya-obj's parser keeps type lookup crate-private. `btf-rs` 2.0 (the
//! one retis uses) was measured against this reader on Linux 6.18 and does not serve here:
//! - its cached backend, the only one for bytes and for kernels before 6.16 (whose
//!   `/sys/kernel/btf/vmlinux` cannot be mmapped), takes about 300 ms (160-630 ms) and a
//!   41-48 MB peak to load vmlinux, against 3-4 ms and 8.5 MB here, and the loader reads it
//!   twice at start;
//! - its `Int` does not expose bit width or offset, so bitfields encoded without
//!   `kind_flag` cannot be told apart;
//! - its errors are strings, where [`BtfError`] says which header field, type or string
//!   was bad;
//! - it is LGPL-2.1-or-later, linked statically into an MIT/Apache-2.0 binary.

use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Where the running kernel exposes its own BTF.
pub const SYS_BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

/// Where the kernel lists its symbols.
pub const KALLSYMS_PATH: &str = "/proc/kallsyms";

/// Tracefs mount points, in the order they are tried.
pub const TRACEFS_ROOTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

const BTF_MAGIC: u16 = 0xEB9F;
const BTF_VERSION: u8 = 1;
const HEADER_MIN_LEN: usize = 24;
const TYPE_RECORD_LEN: usize = 12;
/// Longest TYPEDEF/CONST/... chain followed before assuming a cycle.
const MAX_TYPE_CHAIN: usize = 64;
/// Deepest nesting of anonymous structs/unions searched (guards against cyclic input).
const MAX_ANON_DEPTH: usize = 32;
/// Most anonymous struct/union descents one member lookup may make (guards against
/// exponentially branching corrupt input).
const ANON_DESCENT_BUDGET: usize = 1 << 16;

const KIND_INT: u8 = 1;
const KIND_PTR: u8 = 2;
const KIND_ARRAY: u8 = 3;
const KIND_STRUCT: u8 = 4;
const KIND_UNION: u8 = 5;
const KIND_ENUM: u8 = 6;
const KIND_FWD: u8 = 7;
const KIND_TYPEDEF: u8 = 8;
const KIND_VOLATILE: u8 = 9;
const KIND_CONST: u8 = 10;
const KIND_RESTRICT: u8 = 11;
const KIND_FUNC: u8 = 12;
const KIND_FUNC_PROTO: u8 = 13;
const KIND_VAR: u8 = 14;
const KIND_DATASEC: u8 = 15;
const KIND_FLOAT: u8 = 16;
const KIND_DECL_TAG: u8 = 17;
const KIND_TYPE_TAG: u8 = 18;
const KIND_ENUM64: u8 = 19;

/// Errors from reading BTF, tracefs or kallsyms.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// A file could not be read.
    #[error("failed to read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The blob is shorter than the fixed BTF header.
    #[error("btf blob is {len} bytes, shorter than the 24-byte header")]
    TooShort {
        /// Length of the blob.
        len: usize,
    },
    /// The blob does not start with the BTF magic in native byte order.
    #[error("bad btf magic {found:#06x}, expected 0xeb9f")]
    BadMagic {
        /// The first two bytes, read in native byte order.
        found: u16,
    },
    /// The BTF version is not 1.
    #[error("unsupported btf version {version}")]
    UnsupportedVersion {
        /// Version found in the header.
        version: u8,
    },
    /// The header length is below the minimum or beyond the blob.
    #[error("btf header length {hdr_len} is invalid for a {len}-byte blob")]
    BadHeaderLen {
        /// Header length field.
        hdr_len: u32,
        /// Length of the blob.
        len: usize,
    },
    /// The type or string section lies (partly) outside the blob.
    #[error("btf {section} section {start}..{end} lies outside the {len}-byte blob")]
    SectionOutOfBounds {
        /// `"type"` or `"string"`.
        section: &'static str,
        /// Absolute start offset.
        start: u64,
        /// Absolute end offset.
        end: u64,
        /// Length of the blob.
        len: usize,
    },
    /// A type record runs past the end of the type section.
    #[error("btf type {type_id} at offset {offset} is truncated")]
    TruncatedType {
        /// Id the type would have.
        type_id: u32,
        /// Absolute offset of the record.
        offset: usize,
    },
    /// A type record has a kind this reader does not know.
    #[error("btf type {type_id} has unknown kind {kind}")]
    UnknownKind {
        /// Id of the offending type.
        type_id: u32,
        /// The kind field.
        kind: u8,
    },
    /// More type records than type ids can number.
    #[error("too many btf types")]
    TooManyTypes,
    /// A type id refers to no type.
    #[error("btf type id {type_id} does not exist")]
    BadTypeId {
        /// The dangling id.
        type_id: u32,
    },
    /// A string offset is out of bounds, unterminated or not UTF-8.
    #[error("btf string at offset {offset} is out of bounds, unterminated or not utf-8")]
    BadString {
        /// Offset into the string section.
        offset: u32,
    },
    /// No type of the wanted kind has this name.
    #[error("no btf {kind} named {name}")]
    TypeNotFound {
        /// What was looked for (`"struct or union"`, `"enum"`).
        kind: &'static str,
        /// The name looked for.
        name: String,
    },
    /// [`KernelBtf::member_offset`] was given no member names.
    #[error("empty member path for {struct_name}")]
    EmptyPath {
        /// The struct the path was for.
        struct_name: String,
    },
    /// A path element names no member (not even inside anonymous members).
    #[error("{struct_name} has no member {member}")]
    MemberNotFound {
        /// The outermost struct.
        struct_name: String,
        /// Dotted path up to and including the missing member.
        member: String,
    },
    /// A path descends into a pointer member, which has no inline members.
    #[error("member {member} of {struct_name} is a pointer and cannot be descended into")]
    PointerMember {
        /// The outermost struct.
        struct_name: String,
        /// Dotted path of the pointer member.
        member: String,
    },
    /// A path descends into a member that is neither struct nor union.
    #[error("member {member} of {struct_name} is not a struct or union (btf kind {kind})")]
    NotComposite {
        /// The outermost struct.
        struct_name: String,
        /// Dotted path of the member.
        member: String,
        /// BTF kind of the member's resolved type.
        kind: u8,
    },
    /// The member is a bitfield, which has no byte offset.
    #[error("member {member} of {struct_name} is a bitfield")]
    Bitfield {
        /// The outermost struct.
        struct_name: String,
        /// Dotted path of the member.
        member: String,
    },
    /// The member does not start on a byte boundary.
    #[error("member {member} of {struct_name} is at bit offset {bit_offset}, not a whole byte")]
    Unaligned {
        /// The outermost struct.
        struct_name: String,
        /// Dotted path of the member.
        member: String,
        /// Bit offset from the start of the outermost struct.
        bit_offset: u64,
    },
    /// The byte offset does not fit in a `u32`.
    #[error("offset of member {member} of {struct_name} does not fit in 32 bits")]
    OffsetOverflow {
        /// The outermost struct.
        struct_name: String,
        /// Dotted path of the member.
        member: String,
    },
    /// A type chain or anonymous-member nesting is cyclic or implausibly deep.
    #[error("btf type chain at type {type_id} is cyclic or too deep")]
    TypeChainTooLong {
        /// Type where the walk gave up.
        type_id: u32,
    },
    /// A tracepoint category or name is empty or would escape the events directory.
    #[error("invalid tracepoint name {category}/{name}")]
    InvalidTracepoint {
        /// The category (event system), e.g. `skb`.
        category: String,
        /// The event name, e.g. `kfree_skb`.
        name: String,
    },
    /// No tracefs location had a readable format file for the tracepoint.
    #[error("cannot read the format of tracepoint {category}/{name} (tried {tried})")]
    TracepointNotFound {
        /// The category (event system).
        category: String,
        /// The event name.
        name: String,
        /// The paths tried, comma separated.
        tried: String,
        /// The error reading the first path.
        #[source]
        source: io::Error,
    },
    /// A tracepoint format file lists no fields.
    #[error("tracepoint format {} lists no fields", path.display())]
    NoTraceFields {
        /// The format file.
        path: PathBuf,
    },
    /// Every kallsyms address is zero: `kernel.kptr_restrict` hides them from this process.
    #[error("/proc/kallsyms addresses are all zero (hidden by kernel.kptr_restrict or missing CAP_SYSLOG)")]
    KallsymsHidden,
    /// `/proc/kallsyms` lists no text symbols.
    #[error("/proc/kallsyms lists no text symbols")]
    NoKallsyms,
}

/// Reads a native-endian `u32` at `off`, if in bounds.
fn read_u32(data: &[u8], off: usize) -> Option<u32> {
    let bytes = data.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

/// One decoded type record header.
#[derive(Clone, Copy, Debug)]
struct TypeRec {
    id: u32,
    /// Absolute offset of the record in the blob.
    off: usize,
    name_off: u32,
    kind: u8,
    kind_flag: bool,
    vlen: u16,
    size_or_type: u32,
}

/// One decoded struct/union member.
#[derive(Clone, Copy, Debug)]
struct Member {
    name_off: u32,
    type_id: u32,
    bit_offset: u32,
    /// Bitfield width when the parent has `kind_flag` set, else 0.
    bitfield_size: u32,
}

/// A member found by name, its offset relative to the struct searched.
#[derive(Clone, Copy, Debug)]
struct Found {
    bit_offset: u64,
    type_id: u32,
    bitfield: bool,
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

    /// Byte offset of a (possibly nested) member of the struct or union `struct_name`.
    ///
    /// Each element of `path` names a member of the previous one; members of anonymous
    /// structs/unions are found transparently (their offsets added). To descend, a member's
    /// type is resolved through typedefs and qualifiers to a struct or union; pointers cannot
    /// be descended. Bitfields and members not on a byte boundary are errors.
    /// `member_offset("net_device", &["nd_net", "net"])` is the offset of `nd_net.net`.
    pub fn member_offset(&self, struct_name: &str, path: &[&str]) -> Result<u32, BtfError> {
        if path.is_empty() {
            return Err(BtfError::EmptyPath {
                struct_name: struct_name.to_string(),
            });
        }
        let mut current = self.find_composite(struct_name)?;
        let mut bits: u64 = 0;
        let mut walked = String::new();
        let mut budget = ANON_DESCENT_BUDGET;
        for (i, elem) in path.iter().enumerate() {
            if i > 0 {
                walked.push('.');
            }
            walked.push_str(elem);
            let found = self
                .find_member(current, elem.as_bytes(), 0, &mut budget)?
                .ok_or_else(|| BtfError::MemberNotFound {
                    struct_name: struct_name.to_string(),
                    member: walked.clone(),
                })?;
            if found.bitfield {
                return Err(BtfError::Bitfield {
                    struct_name: struct_name.to_string(),
                    member: walked,
                });
            }
            bits = bits
                .checked_add(found.bit_offset)
                .ok_or_else(|| BtfError::OffsetOverflow {
                    struct_name: struct_name.to_string(),
                    member: walked.clone(),
                })?;
            // Not a whole byte (`bits % 8`; `is_multiple_of` is newer than the MSRV).
            if bits & 7 != 0 {
                return Err(BtfError::Unaligned {
                    struct_name: struct_name.to_string(),
                    member: walked,
                    bit_offset: bits,
                });
            }
            if i + 1 < path.len() {
                let next = self.skip_modifiers(found.type_id)?;
                current = match next.kind {
                    KIND_STRUCT | KIND_UNION => next,
                    KIND_PTR => {
                        return Err(BtfError::PointerMember {
                            struct_name: struct_name.to_string(),
                            member: walked,
                        })
                    }
                    kind => {
                        return Err(BtfError::NotComposite {
                            struct_name: struct_name.to_string(),
                            member: walked,
                            kind,
                        })
                    }
                };
            }
        }
        u32::try_from(bits / 8).map_err(|_| BtfError::OffsetOverflow {
            struct_name: struct_name.to_string(),
            member: walked,
        })
    }

    /// The constants of the ENUM or ENUM64 named `enum_name`, in declaration order.
    ///
    /// Values of signed 32-bit enums are sign-extended (so `-1` is `u64::MAX`). If several
    /// enums share the name, the first with constants is used.
    pub fn enum_values(&self, enum_name: &str) -> Result<Vec<(String, u64)>, BtfError> {
        let t = self
            .find_named(enum_name, |k| matches!(k, KIND_ENUM | KIND_ENUM64))?
            .ok_or_else(|| BtfError::TypeNotFound {
                kind: "enum",
                name: enum_name.to_string(),
            })?;
        let entry_len = if t.kind == KIND_ENUM64 { 12 } else { 8 };
        let mut out = Vec::with_capacity(usize::from(t.vlen));
        for i in 0..usize::from(t.vlen) {
            let base = t.off + TYPE_RECORD_LEN + i * entry_len;
            let name_off = self.u32_at(&t, base)?;
            let lo = self.u32_at(&t, base + 4)?;
            let value = if t.kind == KIND_ENUM64 {
                u64::from(lo) | (u64::from(self.u32_at(&t, base + 8)?) << 32)
            } else if t.kind_flag {
                // Signed enum: sign-extend the 32-bit value.
                i64::from(lo as i32) as u64
            } else {
                u64::from(lo)
            };
            out.push((self.str_at(name_off)?.to_string(), value));
        }
        Ok(out)
    }

    /// Reads a `u32` of type `t`'s record (or its trailing data).
    fn u32_at(&self, t: &TypeRec, off: usize) -> Result<u32, BtfError> {
        read_u32(&self.data, off).ok_or(BtfError::TruncatedType {
            type_id: t.id,
            offset: t.off,
        })
    }

    /// The type record with id `id`.
    fn ty(&self, id: u32) -> Result<TypeRec, BtfError> {
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
    fn name_bytes(&self, off: u32) -> Option<&[u8]> {
        let start = self.strings.start.checked_add(usize::try_from(off).ok()?)?;
        let rest = self.data.get(start..self.strings.end)?;
        let nul = rest.iter().position(|&b| b == 0)?;
        rest.get(..nul)
    }

    /// The string at `off`.
    fn str_at(&self, off: u32) -> Result<&str, BtfError> {
        self.name_bytes(off)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or(BtfError::BadString { offset: off })
    }

    /// The first type named `name` whose kind passes `want`, preferring one with members
    /// (`vlen > 0`) over empty ones.
    fn find_named(
        &self,
        name: &str,
        want: impl Fn(u8) -> bool,
    ) -> Result<Option<TypeRec>, BtfError> {
        let mut empty = None;
        for id in 1..=self.types.len() {
            let id = u32::try_from(id).map_err(|_| BtfError::TooManyTypes)?;
            let t = self.ty(id)?;
            if !want(t.kind)
                || t.name_off == 0
                || self.name_bytes(t.name_off) != Some(name.as_bytes())
            {
                continue;
            }
            if t.vlen > 0 {
                return Ok(Some(t));
            }
            empty.get_or_insert(t);
        }
        Ok(empty)
    }

    /// The struct or union named `name` (forward declarations are skipped).
    fn find_composite(&self, name: &str) -> Result<TypeRec, BtfError> {
        self.find_named(name, is_composite)?
            .ok_or_else(|| BtfError::TypeNotFound {
                kind: "struct or union",
                name: name.to_string(),
            })
    }

    /// The members of struct/union `t`.
    fn members(&self, t: &TypeRec) -> Result<Vec<Member>, BtfError> {
        (0..usize::from(t.vlen))
            .map(|i| {
                let base = t.off + TYPE_RECORD_LEN + i * 12;
                let name_off = self.u32_at(t, base)?;
                let type_id = self.u32_at(t, base + 4)?;
                let raw = self.u32_at(t, base + 8)?;
                let (bit_offset, bitfield_size) = if t.kind_flag {
                    (raw & 0x00ff_ffff, raw >> 24)
                } else {
                    (raw, 0)
                };
                Ok(Member {
                    name_off,
                    type_id,
                    bit_offset,
                    bitfield_size,
                })
            })
            .collect()
    }

    /// Follows TYPEDEF/CONST/VOLATILE/RESTRICT/TYPE_TAG from `id` to the underlying type.
    fn skip_modifiers(&self, mut id: u32) -> Result<TypeRec, BtfError> {
        for _ in 0..MAX_TYPE_CHAIN {
            let t = self.ty(id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_CONST | KIND_VOLATILE | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type
                }
                _ => return Ok(t),
            }
        }
        Err(BtfError::TypeChainTooLong { type_id: id })
    }

    /// Whether member `m` of a struct with `kind_flag` is a bitfield. Without `kind_flag`,
    /// a bitfield is encoded as an INT whose bit width or bit offset differs from its size.
    fn is_bitfield(&self, kind_flag: bool, m: &Member) -> Result<bool, BtfError> {
        if kind_flag {
            return Ok(m.bitfield_size != 0);
        }
        let t = self.skip_modifiers(m.type_id)?;
        if t.kind != KIND_INT {
            return Ok(false);
        }
        let enc = self.u32_at(&t, t.off + TYPE_RECORD_LEN)?;
        let (bits, offset) = (u64::from(enc & 0xff), (enc >> 16) & 0xff);
        Ok(offset != 0 || bits != u64::from(t.size_or_type) * 8)
    }

    /// Finds member `name` of struct/union `comp`, searching anonymous struct/union members
    /// recursively. The offset is relative to `comp`.
    fn find_member(
        &self,
        comp: TypeRec,
        name: &[u8],
        depth: usize,
        budget: &mut usize,
    ) -> Result<Option<Found>, BtfError> {
        *budget = budget
            .checked_sub(1)
            .filter(|_| depth <= MAX_ANON_DEPTH)
            .ok_or(BtfError::TypeChainTooLong { type_id: comp.id })?;
        let members = self.members(&comp)?;
        for m in &members {
            if m.name_off != 0 && self.name_bytes(m.name_off) == Some(name) {
                return Ok(Some(Found {
                    bit_offset: u64::from(m.bit_offset),
                    type_id: m.type_id,
                    bitfield: self.is_bitfield(comp.kind_flag, m)?,
                }));
            }
        }
        for m in members.iter().filter(|m| m.name_off == 0) {
            let inner = self.skip_modifiers(m.type_id)?;
            if !is_composite(inner.kind) {
                continue;
            }
            if let Some(found) = self.find_member(inner, name, depth + 1, budget)? {
                return Ok(Some(Found {
                    bit_offset: u64::from(m.bit_offset) + found.bit_offset,
                    ..found
                }));
            }
        }
        Ok(None)
    }
}

/// The kind of a type from its `info` word.
fn info_kind(info: u32) -> u8 {
    ((info >> 24) & 0x1f) as u8
}

/// Whether `kind` is STRUCT or UNION.
fn is_composite(kind: u8) -> bool {
    matches!(kind, KIND_STRUCT | KIND_UNION)
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

/// One field of a tracepoint record, as listed in its tracefs `format` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceField {
    /// Field name: the last identifier of the declaration (`void * skbaddr` → `skbaddr`,
    /// `char comm[16]` → `comm`).
    pub name: String,
    /// Byte offset in the record (including the common header fields).
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
}

/// Reads the fields of tracepoint `category/name` from tracefs.
///
/// Tries each of [`TRACEFS_ROOTS`]; if none works and tracefs is not mounted at
/// `/sys/kernel/tracing`, mounts it there (needs `CAP_SYS_ADMIN`) and tries again.
pub fn tracepoint_fields(category: &str, name: &str) -> Result<Vec<TraceField>, BtfError> {
    let valid = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0']);
    if !valid(category) || !valid(name) {
        return Err(BtfError::InvalidTracepoint {
            category: category.to_string(),
            name: name.to_string(),
        });
    }
    let paths: Vec<PathBuf> = TRACEFS_ROOTS
        .iter()
        .map(|root| Path::new(root).join(format!("events/{category}/{name}/format")))
        .collect();
    let mut first_err = None;
    for path in &paths {
        match fs::read_to_string(path) {
            Ok(text) => return fields_of(path, &text),
            Err(err) => {
                first_err.get_or_insert(err);
            }
        }
    }
    let tracefs_events = Path::new(TRACEFS_ROOTS[0]).join("events");
    if !tracefs_events.exists() && mount_tracefs() {
        if let Some(path) = paths.first() {
            match fs::read_to_string(path) {
                Ok(text) => return fields_of(path, &text),
                Err(err) => first_err = Some(err),
            }
        }
    }
    Err(BtfError::TracepointNotFound {
        category: category.to_string(),
        name: name.to_string(),
        tried: paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        source: first_err.unwrap_or_else(|| io::Error::from(io::ErrorKind::NotFound)),
    })
}

/// The fields of format text read from `path`, or an error if it lists none.
fn fields_of(path: &Path, text: &str) -> Result<Vec<TraceField>, BtfError> {
    let fields = parse_format(text);
    if fields.is_empty() {
        return Err(BtfError::NoTraceFields {
            path: path.to_path_buf(),
        });
    }
    Ok(fields)
}

/// Mounts tracefs at `/sys/kernel/tracing`; true on success.
fn mount_tracefs() -> bool {
    // SAFETY: every pointer is a NUL-terminated C string literal with static lifetime, and
    // a null `data` pointer is accepted by mount(2) (tracefs needs no options).
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        log::debug!(
            "mounting tracefs at /sys/kernel/tracing failed: {}",
            io::Error::last_os_error()
        );
    }
    rc == 0
}

/// Parses the `field:` lines of a tracefs `format` file (other lines are ignored, as are
/// field lines without a name, offset or size).
pub fn parse_format(text: &str) -> Vec<TraceField> {
    text.lines().filter_map(parse_field_line).collect()
}

/// Parses `\tfield:void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;`.
fn parse_field_line(line: &str) -> Option<TraceField> {
    let rest = line.trim_start().strip_prefix("field:")?;
    let mut parts = rest.split(';');
    let decl = parts.next()?;
    let (mut offset, mut size) = (None, None);
    for part in parts {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("offset:") {
            offset = v.trim().parse().ok();
        } else if let Some(v) = part.strip_prefix("size:") {
            size = v.trim().parse().ok();
        }
    }
    Some(TraceField {
        name: decl_name(decl)?,
        offset: offset?,
        size: size?,
    })
}

/// The declared name in a C declaration: the last identifier, after dropping array suffixes.
fn decl_name(decl: &str) -> Option<String> {
    let mut s = decl.trim_end();
    while let Some(stripped) = s.strip_suffix(']') {
        let open = stripped.rfind('[')?;
        s = stripped.get(..open)?.trim_end();
    }
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let prefix = s.trim_end_matches(is_ident);
    let name = s.get(prefix.len()..)?;
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some(name.to_string())
}

/// The field called `name`, if any.
pub fn field<'a>(fields: &'a [TraceField], name: &str) -> Option<&'a TraceField> {
    fields.iter().find(|f| f.name == name)
}

/// The kernel's text symbols, sorted by address, for turning addresses into `name+0x1f`.
///
/// A host has ~120,000 of them: they are kept in one string with a 16-byte index entry
/// each (about 5 MB here), not as one allocation per name (about twice that).
#[derive(Clone, Debug, Default)]
pub struct Kallsyms {
    /// `(address, start, end)` of each name in `names`, sorted by address, one entry per
    /// address (the first listed).
    index: Vec<(u64, u32, u32)>,
    /// Every kept name, back to back.
    names: String,
}

impl Kallsyms {
    /// Reads [`KALLSYMS_PATH`] line by line. Errors if it lists no text symbols, or if all
    /// addresses are zero because `kernel.kptr_restrict` hides them from this process.
    pub fn load() -> Result<Self, BtfError> {
        use std::io::BufRead;
        let read_err = |source| BtfError::Read {
            path: PathBuf::from(KALLSYMS_PATH),
            source,
        };
        let file = fs::File::open(KALLSYMS_PATH).map_err(read_err)?;
        let mut reader = std::io::BufReader::with_capacity(64 * 1024, file);
        let mut builder = SymbolTable::default();
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).map_err(read_err)? == 0 {
                break;
            }
            builder.line(&line);
        }
        let syms = builder.finish();
        if syms.is_empty() {
            return Err(BtfError::NoKallsyms);
        }
        if syms.index.iter().all(|&(addr, _, _)| addr == 0) {
            return Err(BtfError::KallsymsHidden);
        }
        Ok(syms)
    }

    /// Parses `/proc/kallsyms` text, keeping text symbols (types `t`, `T`, `w`, `W`).
    /// Malformed lines are skipped; a trailing `[module]` column is ignored.
    pub fn parse(text: &str) -> Kallsyms {
        let mut builder = SymbolTable::default();
        text.lines().for_each(|line| builder.line(line));
        builder.finish()
    }

    /// Number of distinct symbol addresses kept.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no symbols were kept.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Where function `name` starts and where the next symbol starts (its end, near enough).
    pub fn range_of(&self, name: &str) -> Option<(u64, u64)> {
        let i = self.index.iter().position(|&(_, start, end)| {
            self.names.get(start as usize..end as usize) == Some(name)
        })?;
        let start = self.index[i].0;
        let end = self.index.get(i + 1).map_or(start + 1, |&(a, _, _)| a);
        Some((start, end))
    }

    /// The address ranges of `icmp_rcv` and `ping_rcv`, where kernels without drop reasons
    /// free the echo replies a raw-socket ping already took (see `DropConfig::quiet_ranges`).
    pub fn echo_reply_frees(&self) -> [u64; 4] {
        let (a, b) = self.range_of("icmp_rcv").unwrap_or((0, 0));
        let (c, d) = self.range_of("ping_rcv").unwrap_or((0, 0));
        [a, b, c, d]
    }

    /// `name+0x1f` for the nearest symbol at or below `addr` (`name+0x0` on an exact hit);
    /// `None` if `addr` is below the first symbol.
    pub fn symbolize(&self, addr: u64) -> Option<String> {
        let idx = self.index.partition_point(|&(a, _, _)| a <= addr);
        let &(base, start, end) = self.index.get(idx.checked_sub(1)?)?;
        let name = self.names.get(start as usize..end as usize)?;
        Some(format!("{name}+{:#x}", addr - base))
    }
}

/// Collects kallsyms lines into a [`Kallsyms`].
#[derive(Default)]
struct SymbolTable {
    syms: Kallsyms,
}

impl SymbolTable {
    /// Keeps the line's symbol if it is a text symbol and fits the index.
    fn line(&mut self, line: &str) {
        let mut cols = line.split_whitespace();
        let (Some(addr), Some(kind), Some(name)) = (cols.next(), cols.next(), cols.next()) else {
            return;
        };
        if !matches!(kind, "t" | "T" | "w" | "W") {
            return;
        }
        let Ok(addr) = u64::from_str_radix(addr, 16) else {
            return;
        };
        let names = &mut self.syms.names;
        let Ok(start) = u32::try_from(names.len()) else {
            return;
        };
        let Ok(end) = u32::try_from(names.len() + name.len()) else {
            return;
        };
        names.push_str(name);
        self.syms.index.push((addr, start, end));
    }

    /// Sorts by address (stably: the first-listed name of an address is kept).
    fn finish(mut self) -> Kallsyms {
        let index = &mut self.syms.index;
        index.sort_by_key(|&(addr, _, _)| addr);
        index.dedup_by_key(|&mut (addr, _, _)| addr);
        index.shrink_to_fit();
        self.syms.names.shrink_to_fit();
        self.syms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Emits a BTF blob (header + types + strings) in native byte order.
    struct Builder {
        types: Vec<u8>,
        strings: Vec<u8>,
        next_id: u32,
    }

    impl Builder {
        fn new() -> Self {
            Self {
                types: Vec::new(),
                strings: vec![0],
                next_id: 1,
            }
        }

        fn s(&mut self, name: &str) -> u32 {
            if name.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            off
        }

        fn w(&mut self, v: u32) {
            self.types.extend_from_slice(&v.to_ne_bytes());
        }

        fn rec(&mut self, name: &str, kind: u8, vlen: usize, kflag: bool, st: u32) -> u32 {
            let n = self.s(name);
            self.w(n);
            self.w(u32::from(kflag) << 31 | u32::from(kind) << 24 | vlen as u32);
            self.w(st);
            let id = self.next_id;
            self.next_id += 1;
            id
        }

        fn int_bits(&mut self, name: &str, size: u32, bits: u32) -> u32 {
            let id = self.rec(name, KIND_INT, 0, false, size);
            self.w(bits);
            id
        }

        fn int(&mut self, name: &str, size: u32) -> u32 {
            self.int_bits(name, size, size * 8)
        }

        fn ptr(&mut self, target: u32) -> u32 {
            self.rec("", KIND_PTR, 0, false, target)
        }

        fn typedef(&mut self, name: &str, target: u32) -> u32 {
            self.rec(name, KIND_TYPEDEF, 0, false, target)
        }

        fn konst(&mut self, target: u32) -> u32 {
            self.rec("", KIND_CONST, 0, false, target)
        }

        fn fwd(&mut self, name: &str) -> u32 {
            self.rec(name, KIND_FWD, 0, false, 0)
        }

        fn composite(
            &mut self,
            kind: u8,
            name: &str,
            size: u32,
            kflag: bool,
            members: &[(&str, u32, u32)],
        ) -> u32 {
            let id = self.rec(name, kind, members.len(), kflag, size);
            for (n, t, off) in members {
                let n = self.s(n);
                self.w(n);
                self.w(*t);
                self.w(*off);
            }
            id
        }

        fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
            self.composite(KIND_STRUCT, name, size, false, members)
        }

        fn union(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
            self.composite(KIND_UNION, name, size, false, members)
        }

        fn enum32(&mut self, name: &str, signed: bool, values: &[(&str, i32)]) -> u32 {
            let id = self.rec(name, KIND_ENUM, values.len(), signed, 4);
            for (n, v) in values {
                let n = self.s(n);
                self.w(n);
                self.w(*v as u32);
            }
            id
        }

        fn enum64(&mut self, name: &str, values: &[(&str, u64)]) -> u32 {
            let id = self.rec(name, KIND_ENUM64, values.len(), false, 8);
            for (n, v) in values {
                let n = self.s(n);
                self.w(n);
                self.w(*v as u32);
                self.w((*v >> 32) as u32);
            }
            id
        }

        fn build(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&BTF_MAGIC.to_ne_bytes());
            out.push(BTF_VERSION);
            out.push(0);
            let tl = self.types.len() as u32;
            for v in [24, 0, tl, tl, self.strings.len() as u32] {
                out.extend_from_slice(&v.to_ne_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    /// A blob exercising anonymous members, typedefs, qualifiers, pointers, bitfields, enums.
    fn sample() -> Vec<u8> {
        let mut b = Builder::new();
        let int = b.int("int", 4);
        let long = b.int("long", 8);
        b.fwd("outer");
        b.strukt("outer", 0, &[]);
        let inner = b.strukt("inner", 8, &[("p", int, 0), ("q", int, 32)]);
        let inner_t = b.typedef("inner_t", inner);
        let cinner = b.konst(inner_t);
        let pinner = b.ptr(inner);
        let anon_s = b.strukt("", 8, &[("x", int, 0), ("y", int, 32)]);
        let anon_u = b.union("", 8, &[("", anon_s, 0), ("z", long, 0)]);
        b.strukt(
            "outer",
            48,
            &[
                ("a", int, 0),
                ("", anon_u, 64),
                ("in", inner_t, 128),
                ("cin", cinner, 192),
                ("pin", pinner, 256),
                ("tail", int, 320),
            ],
        );
        b.union("choice", 8, &[("small", int, 0), ("nested", inner, 0)]);
        // kind_flag struct: offsets carry bitfield_size << 24.
        b.composite(
            KIND_STRUCT,
            "flags",
            8,
            true,
            &[("mode", int, 3 << 24), ("odd", int, 4), ("whole", int, 32)],
        );
        // Legacy bitfield: an INT narrower than its size, no kind_flag.
        let u3 = b.int_bits("unsigned int", 4, 3);
        b.strukt("legacy", 8, &[("bits", u3, 0), ("after", int, 32)]);
        b.rec("color", KIND_ENUM, 0, false, 4); // enum forward declaration
        b.enum32("color", false, &[("RED", 0), ("GREEN", 1), ("BLUE", 12)]);
        b.enum32("sign", true, &[("NEG", -1), ("POS", 7)]);
        b.enum64("big", &[("HUGE", 0x1_0000_0002), ("SMALL", 3)]);
        b.build()
    }

    fn btf() -> KernelBtf {
        KernelBtf::parse(sample()).expect("sample parses")
    }

    #[test]
    fn btf_member_offsets_through_anonymous_and_typedefs() {
        let btf = btf();
        assert_eq!(btf.type_count(), 19);
        let off = |s: &str, p: &[&str]| btf.member_offset(s, p).expect("offset");
        assert_eq!(off("outer", &["a"]), 0);
        assert_eq!(off("outer", &["x"]), 8);
        assert_eq!(off("outer", &["y"]), 12);
        assert_eq!(off("outer", &["z"]), 8);
        assert_eq!(off("outer", &["in"]), 16);
        assert_eq!(off("outer", &["in", "q"]), 20);
        assert_eq!(off("outer", &["cin", "p"]), 24);
        assert_eq!(off("outer", &["cin", "q"]), 28);
        assert_eq!(off("outer", &["pin"]), 32);
        assert_eq!(off("outer", &["tail"]), 40);
        assert_eq!(off("choice", &["nested", "q"]), 4);
        assert_eq!(off("inner", &["q"]), 4);
    }

    #[test]
    fn btf_member_offset_errors() {
        let btf = btf();
        let err = |s: &str, p: &[&str]| btf.member_offset(s, p).expect_err("must fail");
        assert!(matches!(
            err("outer", &["pin", "p"]),
            BtfError::PointerMember { member, .. } if member == "pin"
        ));
        assert!(matches!(
            err("outer", &["a", "x"]),
            BtfError::NotComposite { kind: KIND_INT, .. }
        ));
        assert!(matches!(
            err("outer", &["in", "nope"]),
            BtfError::MemberNotFound { member, .. } if member == "in.nope"
        ));
        assert!(matches!(
            err("missing", &["a"]),
            BtfError::TypeNotFound { .. }
        ));
        assert!(matches!(err("outer", &[]), BtfError::EmptyPath { .. }));
        // An int named like a struct is not a struct.
        assert!(matches!(err("int", &["a"]), BtfError::TypeNotFound { .. }));
    }

    #[test]
    fn btf_bitfields_and_unaligned_members_rejected() {
        let btf = btf();
        assert!(matches!(
            btf.member_offset("flags", &["mode"]),
            Err(BtfError::Bitfield { .. })
        ));
        assert!(matches!(
            btf.member_offset("flags", &["odd"]),
            Err(BtfError::Unaligned { bit_offset: 4, .. })
        ));
        assert_eq!(btf.member_offset("flags", &["whole"]).expect("whole"), 4);
        assert!(matches!(
            btf.member_offset("legacy", &["bits"]),
            Err(BtfError::Bitfield { .. })
        ));
        assert_eq!(btf.member_offset("legacy", &["after"]).expect("after"), 4);
    }

    #[test]
    fn btf_enum_values() {
        let btf = btf();
        assert_eq!(
            btf.enum_values("color").expect("color"),
            vec![
                ("RED".to_string(), 0),
                ("GREEN".to_string(), 1),
                ("BLUE".to_string(), 12)
            ]
        );
        assert_eq!(
            btf.enum_values("sign").expect("sign"),
            vec![("NEG".to_string(), u64::MAX), ("POS".to_string(), 7)]
        );
        assert_eq!(
            btf.enum_values("big").expect("big"),
            vec![
                ("HUGE".to_string(), 0x1_0000_0002),
                ("SMALL".to_string(), 3)
            ]
        );
        assert!(matches!(
            btf.enum_values("outer"),
            Err(BtfError::TypeNotFound { .. })
        ));
    }

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
    fn btf_cyclic_anonymous_members_terminate() {
        // An anonymous member whose type is its own struct (twice): must not hang.
        let mut b = Builder::new();
        b.int("int", 4);
        b.strukt("loop", 8, &[("", 2, 0), ("", 2, 0)]);
        let btf = KernelBtf::parse(b.build()).expect("parses");
        assert!(matches!(
            btf.member_offset("loop", &["x"]),
            Err(BtfError::TypeChainTooLong { .. })
        ));
        // A typedef cycle.
        let mut b = Builder::new();
        b.typedef("a", 2);
        b.typedef("b", 1);
        b.strukt("s", 4, &[("m", 1, 0)]);
        let btf = KernelBtf::parse(b.build()).expect("parses");
        assert!(matches!(
            btf.member_offset("s", &["m", "x"]),
            Err(BtfError::TypeChainTooLong { .. })
        ));
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

    const KFREE_SKB_FORMAT: &str = r#"name: kfree_skb
ID: 2310
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;

	field:void * skbaddr;	offset:8;	size:8;	signed:0;
	field:void * location;	offset:16;	size:8;	signed:0;
	field:void * rx_sk;	offset:24;	size:8;	signed:0;
	field:unsigned short protocol;	offset:32;	size:2;	signed:0;
	field:enum skb_drop_reason reason;	offset:36;	size:4;	signed:0;

print fmt: "skbaddr=%p rx_sk=%p protocol=%u location=%pS reason: %s", REC->skbaddr, REC->rx_sk, REC->protocol, REC->location, __print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, { 3, "NO_SOCKET" }, { 12, "NETFILTER_DROP" }, { 128, "MAX" })
"#;

    fn tf(name: &str, offset: u32, size: u32) -> TraceField {
        TraceField {
            name: name.to_string(),
            offset,
            size,
        }
    }

    #[test]
    fn btf_parse_format_kfree_skb() {
        let fields = parse_format(KFREE_SKB_FORMAT);
        assert_eq!(
            fields,
            vec![
                tf("common_type", 0, 2),
                tf("common_flags", 2, 1),
                tf("common_preempt_count", 3, 1),
                tf("common_pid", 4, 4),
                tf("skbaddr", 8, 8),
                tf("location", 16, 8),
                tf("rx_sk", 24, 8),
                tf("protocol", 32, 2),
                tf("reason", 36, 4),
            ]
        );
        assert_eq!(field(&fields, "reason"), Some(&tf("reason", 36, 4)));
        assert_eq!(field(&fields, "nope"), None);
        assert_eq!(
            print_symbolic_value(KFREE_SKB_FORMAT, "NETFILTER_DROP"),
            Some(12)
        );
    }

    #[test]
    fn btf_parse_format_arrays_and_data_loc() {
        let text = "\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
                    \tfield:__data_loc char[] name;\toffset:24;\tsize:4;\tsigned:0;\n\
                    \tfield:unsigned long args[6][2];\toffset:32;\tsize:96;\tsigned:0;\n\
                    \tfield:int broken;\toffset:x;\tsize:4;\n\
                    \tfield:[];\toffset:1;\tsize:4;\n";
        assert_eq!(
            parse_format(text),
            vec![tf("comm", 8, 16), tf("name", 24, 4), tf("args", 32, 96)]
        );
    }

    #[test]
    fn btf_kallsyms_parse_and_symbolize() {
        let text = "\
ffffffff81000000 T _stext
ffffffff81000000 T _text
ffffffff81000100 t helper
ffffffff81001000 D some_data
ffffffff81000200 W weak_fn
ffffffffc0000000 t mod_fn\t[veth]
garbage line
";
        let syms = Kallsyms::parse(text);
        assert_eq!(syms.len(), 4);
        assert_eq!(syms.symbolize(0xffffffff80ffffff), None);
        assert_eq!(
            syms.symbolize(0xffffffff81000000).as_deref(),
            Some("_stext+0x0")
        );
        assert_eq!(
            syms.symbolize(0xffffffff8100011f).as_deref(),
            Some("helper+0x1f")
        );
        // Data symbols are dropped, so this resolves to the weak function.
        assert_eq!(
            syms.symbolize(0xffffffff81001004).as_deref(),
            Some("weak_fn+0xe04")
        );
        assert_eq!(
            syms.symbolize(0xffffffffc0000010).as_deref(),
            Some("mod_fn+0x10")
        );
        assert_eq!(Kallsyms::parse("").symbolize(1), None);
    }

    /// The value of `{ N, "NAME" }` in a format's `__print_symbolic`.
    fn print_symbolic_value(text: &str, name: &str) -> Option<u64> {
        let idx = text.find(&format!("\"{name}\""))?;
        let before = text.get(..idx)?;
        let open = before.rfind('{')?;
        before
            .get(open + 1..)?
            .trim()
            .trim_end_matches(',')
            .trim()
            .parse()
            .ok()
    }

    fn kernel_btf() -> Option<KernelBtf> {
        if !Path::new(SYS_BTF_PATH).exists() {
            eprintln!("skipping: no kernel BTF");
            return None;
        }
        Some(KernelBtf::from_sys_fs().expect("kernel BTF parses"))
    }

    #[test]
    fn btf_kernel_offsets_resolve() {
        let Some(btf) = kernel_btf() else { return };
        eprintln!("kernel BTF: {} types", btf.type_count());
        let off = |s: &str, p: &[&str]| {
            let o = btf
                .member_offset(s, p)
                .unwrap_or_else(|e| panic!("{s}.{}: {e}", p.join(".")));
            eprintln!("{s}.{} = {o}", p.join("."));
            o
        };
        let head = off("sk_buff", &["head"]);
        let data = off("sk_buff", &["data"]);
        assert_eq!(data, head + 8, "head and data are adjacent pointers");
        let network = off("sk_buff", &["network_header"]);
        let mac = off("sk_buff", &["mac_header"]);
        assert_eq!(mac, network + 2, "mac_header follows network_header");
        for o in [off("sk_buff", &["dev"]), off("sk_buff", &["len"]), head] {
            assert!(o < 512);
        }
        off("net_device", &["ifindex"]);
        assert_eq!(
            off("net_device", &["nd_net", "net"]),
            off("net_device", &["nd_net"])
        );
        let ns = off("net", &["ns"]);
        assert!(off("net", &["ns", "inum"]) > ns);
        assert!(matches!(
            btf.member_offset("sk_buff", &["dev", "ifindex"]),
            Err(BtfError::PointerMember { .. })
        ));
    }

    #[test]
    fn btf_kernel_drop_reason_matches_tracefs() {
        let Some(btf) = kernel_btf() else { return };
        let values = btf.enum_values("skb_drop_reason").expect("skb_drop_reason");
        let nf = values
            .iter()
            .find(|(n, _)| n == "SKB_DROP_REASON_NETFILTER_DROP")
            .map(|(_, v)| *v)
            .expect("SKB_DROP_REASON_NETFILTER_DROP");
        eprintln!("SKB_DROP_REASON_NETFILTER_DROP = {nf}");
        let format = TRACEFS_ROOTS.iter().find_map(|root| {
            fs::read_to_string(format!("{root}/events/skb/kfree_skb/format")).ok()
        });
        let Some(format) = format else {
            eprintln!("skipping tracefs comparison: kfree_skb format not readable");
            return;
        };
        assert_eq!(print_symbolic_value(&format, "NETFILTER_DROP"), Some(nf));
        let fields = tracepoint_fields("skb", "kfree_skb").expect("kfree_skb fields");
        assert_eq!(field(&fields, "skbaddr").map(|f| f.size), Some(8));
        assert_eq!(field(&fields, "reason").map(|f| f.size), Some(4));
    }

    #[test]
    fn btf_tracepoint_name_validation() {
        assert!(matches!(
            tracepoint_fields("..", "x"),
            Err(BtfError::InvalidTracepoint { .. })
        ));
        assert!(matches!(
            tracepoint_fields("skb", "a/b"),
            Err(BtfError::InvalidTracepoint { .. })
        ));
        assert!(matches!(
            tracepoint_fields("", "x"),
            Err(BtfError::InvalidTracepoint { .. })
        ));
    }

    #[test]
    fn btf_kernel_kallsyms() {
        match Kallsyms::load() {
            Ok(syms) => {
                assert!(!syms.is_empty());
                eprintln!("kallsyms: {} text symbols", syms.len());
            }
            Err(e) => eprintln!("skipping: {e}"),
        }
    }
}

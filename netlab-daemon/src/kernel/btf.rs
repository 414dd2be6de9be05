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
//!
//! Where things are: `btf/parse.rs` checks a blob and indexes its type records,
//! `btf/lookup.rs` finds members and enums by name, `btf/tracefs.rs` reads tracepoint
//! formats and `btf/kallsyms.rs` the kernel's symbols. [`BtfError`] is the error of all four.

use std::io;
use std::path::PathBuf;

mod kallsyms;
mod lookup;
mod parse;
mod tracefs;

#[cfg(test)]
mod fixtures;

pub use kallsyms::{Kallsyms, KALLSYMS_PATH};
pub use parse::{KernelBtf, SYS_BTF_PATH};
pub use tracefs::{field, parse_format, tracepoint_fields, TraceField, TRACEFS_ROOTS};

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

//! Lookups in a parsed BTF by name: the byte offset of a (possibly nested) member of a
//! struct or union, found through anonymous members, typedefs and qualifiers, and the
//! constants of an enum.

use super::parse::{
    TypeRec, KIND_CONST, KIND_ENUM, KIND_ENUM64, KIND_INT, KIND_PTR, KIND_RESTRICT, KIND_STRUCT,
    KIND_TYPEDEF, KIND_TYPE_TAG, KIND_UNION, KIND_VOLATILE, TYPE_RECORD_LEN,
};
use super::{BtfError, KernelBtf};

/// Longest TYPEDEF/CONST/... chain followed before assuming a cycle.
const MAX_TYPE_CHAIN: usize = 64;
/// Deepest nesting of anonymous structs/unions searched (guards against cyclic input).
const MAX_ANON_DEPTH: usize = 32;
/// Most anonymous struct/union descents one member lookup may make (guards against
/// exponentially branching corrupt input).
const ANON_DESCENT_BUDGET: usize = 1 << 16;

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

impl KernelBtf {
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

    /// The first type named `name` whose kind passes `want`, preferring one with members
    /// (`vlen > 0`) over empty ones.
    fn find_named(
        &self,
        name: &str,
        want: impl Fn(u8) -> bool,
    ) -> Result<Option<TypeRec>, BtfError> {
        let mut empty = None;
        for id in 1..=self.type_count() {
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

/// Whether `kind` is STRUCT or UNION.
fn is_composite(kind: u8) -> bool {
    matches!(kind, KIND_STRUCT | KIND_UNION)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::btf::fixtures::{btf, kernel_btf, Builder};

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
}

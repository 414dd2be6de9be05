//! Test helpers: BTF blobs built by hand, and the running kernel's BTF when it has one.

use std::path::Path;

use super::parse::{
    BTF_MAGIC, BTF_VERSION, KIND_CONST, KIND_ENUM, KIND_ENUM64, KIND_FWD, KIND_INT, KIND_PTR,
    KIND_STRUCT, KIND_TYPEDEF, KIND_UNION,
};
use super::{KernelBtf, SYS_BTF_PATH};

/// Emits a BTF blob (header + types + strings) in native byte order.
pub(super) struct Builder {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
}

impl Builder {
    pub(super) fn new() -> Self {
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

    pub(super) fn rec(&mut self, name: &str, kind: u8, vlen: usize, kflag: bool, st: u32) -> u32 {
        let n = self.s(name);
        self.w(n);
        self.w(u32::from(kflag) << 31 | u32::from(kind) << 24 | vlen as u32);
        self.w(st);
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(super) fn int_bits(&mut self, name: &str, size: u32, bits: u32) -> u32 {
        let id = self.rec(name, KIND_INT, 0, false, size);
        self.w(bits);
        id
    }

    pub(super) fn int(&mut self, name: &str, size: u32) -> u32 {
        self.int_bits(name, size, size * 8)
    }

    pub(super) fn ptr(&mut self, target: u32) -> u32 {
        self.rec("", KIND_PTR, 0, false, target)
    }

    pub(super) fn typedef(&mut self, name: &str, target: u32) -> u32 {
        self.rec(name, KIND_TYPEDEF, 0, false, target)
    }

    pub(super) fn konst(&mut self, target: u32) -> u32 {
        self.rec("", KIND_CONST, 0, false, target)
    }

    pub(super) fn fwd(&mut self, name: &str) -> u32 {
        self.rec(name, KIND_FWD, 0, false, 0)
    }

    pub(super) fn composite(
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

    pub(super) fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        self.composite(KIND_STRUCT, name, size, false, members)
    }

    pub(super) fn union(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        self.composite(KIND_UNION, name, size, false, members)
    }

    pub(super) fn enum32(&mut self, name: &str, signed: bool, values: &[(&str, i32)]) -> u32 {
        let id = self.rec(name, KIND_ENUM, values.len(), signed, 4);
        for (n, v) in values {
            let n = self.s(n);
            self.w(n);
            self.w(*v as u32);
        }
        id
    }

    pub(super) fn enum64(&mut self, name: &str, values: &[(&str, u64)]) -> u32 {
        let id = self.rec(name, KIND_ENUM64, values.len(), false, 8);
        for (n, v) in values {
            let n = self.s(n);
            self.w(n);
            self.w(*v as u32);
            self.w((*v >> 32) as u32);
        }
        id
    }

    pub(super) fn build(&self) -> Vec<u8> {
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
pub(super) fn sample() -> Vec<u8> {
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

pub(super) fn btf() -> KernelBtf {
    KernelBtf::parse(sample()).expect("sample parses")
}

pub(super) fn kernel_btf() -> Option<KernelBtf> {
    if !Path::new(SYS_BTF_PATH).exists() {
        eprintln!("skipping: no kernel BTF");
        return None;
    }
    Some(KernelBtf::from_sys_fs().expect("kernel BTF parses"))
}

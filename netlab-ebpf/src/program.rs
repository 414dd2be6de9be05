use crate::drops::{kread_u32, kread_u64};
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, TC_ACT_UNSPEC},
    helpers::{bpf_ktime_get_ns, bpf_skb_load_bytes},
    macros::{classifier, map},
    maps::{Array, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::TcContext,
};
use netlab_common::{
    direction, encap, kind, ns_key, record, stat, Config, CounterKey, NsConfig, PacketEvent,
    SampleState, SlotCounters, VxlanKey, COUNTER_ENTRIES, COUNTER_SLOTS, EVENT_RING_BYTES,
    IF_SLOT_CELLS, RING_WAKE_BYTES, RING_WAKE_NS, SNAP_LEN, VXLAN_COUNTER_ENTRIES,
};

/// "Carry on": `TCX_NEXT` for TCX links, `TC_ACT_UNSPEC` for cls_bpf (both -1).
const NEXT: i32 = TC_ACT_UNSPEC;

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
/// What [`classify_frame`] returns, when asked to, for a VXLAN packet (never counted).
const VXLAN_MARK: u8 = 0xff;
/// UDP and VXLAN headers, from the outer IPv4 header's end to the inner frame.
const UDP_VXLAN_HLEN: usize = 16;
/// The VXLAN flags' "VNI present" bit.
const VXLAN_FLAG_VNI: u32 = 0x08;

/// Counters of the interfaces that have no slot (see [`count`]).
#[map]
static NETLAB_COUNTERS: PerCpuHashMap<CounterKey, u64> =
    PerCpuHashMap::with_max_entries(COUNTER_ENTRIES, 0);

/// Interface index → counter slot, direct-mapped (`netlab_common::MAP_IF_SLOTS`).
#[map]
static NETLAB_IF_SLOTS: Array<u64> = Array::with_max_entries(IF_SLOT_CELLS, 0);

/// One interface's counters per slot, per CPU.
#[map]
static NETLAB_SLOT_COUNTERS: PerCpuArray<SlotCounters> =
    PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// When the programs last woke the ring's reader (see [`submit_flags`]).
#[map]
static NETLAB_RING_WAKE: Array<u64> = Array::with_max_entries(1, 0);

#[map]
pub(crate) static NETLAB_EVENTS: RingBuf = RingBuf::with_byte_size(EVENT_RING_BYTES, 0);

#[map]
static NETLAB_CONFIG: Array<Config> = Array::with_max_entries(1, 0);

#[map]
static NETLAB_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

#[map]
static NETLAB_SAMPLING: PerCpuArray<SampleState> = PerCpuArray::with_max_entries(1, 0);

/// VXLAN packets by interface, VNI, direction and inner kind.
#[map]
static NETLAB_VXLAN_COUNTERS: PerCpuHashMap<VxlanKey, u64> =
    PerCpuHashMap::with_max_entries(VXLAN_COUNTER_ENTRIES, 0);

/// The VXLAN port to look into (a Swarm node's data-path port); 0: none (not a Swarm
/// node: UDP is skipped as before). A global in a section of its own, which is a map of its
/// own (`netlab_common::MAP_VXLAN_PORT`) that user space writes: the skip path reads it
/// with one load, where an array map's lookup took a dozen instructions and a spill.
#[no_mangle]
#[link_section = ".bss.vxlan_port"]
static mut NETLAB_VXLAN_PORT: u32 = 0;

/// Where the programs of other namespaces' interfaces find the namespace.
#[map]
static NETLAB_NS_CONFIG: Array<NsConfig> = Array::with_max_entries(1, 0);

#[classifier]
pub fn netlab_ingress(ctx: TcContext) -> i32 {
    observe::<false>(&ctx, direction::INGRESS);
    NEXT
}

#[classifier]
pub fn netlab_egress(ctx: TcContext) -> i32 {
    observe::<false>(&ctx, direction::EGRESS);
    NEXT
}

/// For the interfaces of other network namespaces (an overlay network's sandbox): the
/// same, under the interface's [`ns_key`].
#[classifier]
pub fn netlab_ns_ingress(ctx: TcContext) -> i32 {
    observe::<true>(&ctx, direction::INGRESS);
    NEXT
}

#[classifier]
pub fn netlab_ns_egress(ctx: TcContext) -> i32 {
    observe::<true>(&ctx, direction::EGRESS);
    NEXT
}

/// Observes one frame: on an interface of netlab's namespace under its index, or with
/// `NS` under the key of (its namespace, its index).
#[inline(always)]
fn observe<const NS: bool>(ctx: &TcContext, dir: u8) {
    // Fast path, run on every packet of the host: decide from skb->protocol, without
    // touching packet data, whether this can be ours at all.
    let proto = u16::from_be(ctx.skb.protocol() as u16);
    if !matches!(
        proto,
        ETH_P_ARP | ETH_P_IP | ETH_P_IPV6 | ETH_P_8021Q | ETH_P_8021AD
    ) {
        return;
    }
    let tc = Tc::new(ctx);
    if tc.not_ours_at_a_glance(proto) {
        return;
    }
    let k = classify_frame::<_, true>(&tc);
    if k == kind::NONE {
        return;
    }
    // SAFETY: `skb` is the context pointer the kernel passed to this program.
    let mut ifindex = unsafe { (*ctx.skb.skb).ifindex };
    if NS {
        ifindex = ns_key_of(ctx, ifindex);
        if ifindex == 0 {
            return;
        }
    }
    if k == VXLAN_MARK {
        observe_vxlan(ctx, ifindex, dir);
        return;
    }
    // The cover programs count only in netlab's namespace.
    if !NS {
        if dir == direction::INGRESS {
            // A new port's packet, counted by the cover program that runs just before.
            if crate::cover::counted_on_ingress(ifindex) {
                return;
            }
        } else {
            crate::cover::note_egress(ifindex);
        }
    }
    count(ifindex, dir, k);
    sample(ifindex, dir, k, encap::NONE, ctx.len(), |data, cap| {
        copy_frame(ctx, data, cap)
    });
}

/// The [`ns_key`] of the frame's interface `ifindex`: the inode number of its namespace
/// read through `skb->dev->nd_net.net->ns.inum` (0: not configured, or unreadable).
#[inline(always)]
fn ns_key_of(ctx: &TcContext, ifindex: u32) -> u32 {
    let Some(cfg) = NETLAB_NS_CONFIG.get(0) else {
        return 0;
    };
    if cfg.active == 0 {
        return 0;
    }
    // The context is the kernel's `struct sk_buff`.
    let skb = ctx.skb.skb as u64;
    let dev = kread_u64(skb + u64::from(cfg.skb_dev));
    if dev == 0 {
        return 0;
    }
    let net = kread_u64(dev + u64::from(cfg.dev_net));
    if net == 0 {
        return 0;
    }
    ns_key(kread_u32(net + u64::from(cfg.net_inum)), ifindex)
}

/// Copies the frame's first `cap` bytes to `data` (SNAP_LEN bytes of a reserved ring-buffer
/// slot, `cap` at most SNAP_LEN, as `sample` checks); how many it copied.
#[inline(always)]
fn copy_frame(ctx: &TcContext, data: *mut u8, cap: u32) -> u32 {
    // Read once into a register and bounded right here: verifiers before 6.12 lose the
    // bound `sample` checked when the value was spilled to the stack in between (and LLVM
    // would drop this check as redundant without the volatile read).
    // SAFETY: a read of a local.
    let n = unsafe { core::ptr::read_volatile(&cap) };
    // `<`, not `== 0`: 5.10's verifier learns a lower bound only from an ordering.
    if n < ETH_HLEN as u32 || n > SNAP_LEN as u32 {
        return 0;
    }
    // SAFETY: as above: the destination holds SNAP_LEN bytes, `n` is at most that.
    if unsafe { bpf_skb_load_bytes(ctx.skb.skb.cast(), 0, data.cast(), n) } == 0 {
        n
    } else {
        0
    }
}

/// A VXLAN frame ([`classify_frame`] checked its headers): the inner frame's ARP or ICMP
/// packet is counted by VNI and sampled whole, outer headers and all; anything else it
/// carries is skipped.
#[inline(always)]
fn observe_vxlan(ctx: &TcContext, ifindex: u32, dir: u8) {
    let tc = Tc::new(ctx);
    let et = tc.be16(12);
    let l3 = if et == ETH_P_8021Q as u32 || et == ETH_P_8021AD as u32 {
        ETH_HLEN + 4
    } else {
        ETH_HLEN
    };
    let ihl = ((tc.byte(l3) & 0x0f) * 4) as usize;
    let vxlan = l3 + ihl + 8;
    let vni = (tc.be16(vxlan + 4) << 8) | tc.byte(vxlan + 6);
    let k = classify_frame::<_, false>(&Inner {
        outer: &tc,
        base: vxlan + 8,
    });
    if k == kind::NONE || vni > 0x00ff_ffff {
        return;
    }
    let key = VxlanKey {
        ifindex,
        vni,
        direction: dir,
        kind: k,
        _pad: [0; 2],
    };
    bump_hash(&NETLAB_VXLAN_COUNTERS, &key);
    sample(ifindex, dir, k, encap::VXLAN, ctx.len(), |data, cap| {
        copy_frame(ctx, data, cap)
    });
}
/// A read past the end of the packet. Reads return plain integers with this out-of-range
/// value instead of `Option`s: an `Option`'s undefined payload can end up in a register
/// the verifier considers unreadable.
pub(crate) const MISSING: u32 = 0x1_0000;

/// A frame being classified, from its Ethernet header on: the tc programs read the packet
/// itself, the cover programs a copy of its first bytes (see `cover.rs`).
pub(crate) trait Frame {
    /// Length of the whole frame.
    fn len(&self) -> usize;
    /// The byte at `off`, or [`MISSING`].
    fn byte(&self, off: usize) -> u32;
    /// The big-endian u16 at `off`, or [`MISSING`].
    fn be16(&self, off: usize) -> u32;
    /// The byte at `off`, or [`MISSING`], read by a helper call whatever `off` is: for
    /// offsets found by walking IPv6 extension headers. A helper's offset is a value the
    /// verifier need not know exactly, where a direct read's is part of a pointer it must
    /// bound; so the walk's paths, which leave `off` in different ranges, meet as one
    /// state after it instead of each verifying the rest of the program again (eight
    /// headers took the tc programs from 23,000 verified instructions to 174,000).
    fn far_byte(&self, off: usize) -> u32;
}

/// The packet a tc program runs on, with where its linear area starts and ends read once
/// (the helper calls of the slow paths do not move it, and each access would read both
/// again otherwise).
struct Tc<'a> {
    ctx: &'a TcContext,
    start: usize,
    end: usize,
}

impl<'a> Tc<'a> {
    #[inline(always)]
    fn new(ctx: &'a TcContext) -> Self {
        Self {
            ctx,
            start: ctx.data(),
            end: ctx.data_end(),
        }
    }

    /// Whether the frame is, with one bounds check, an untagged IPv4 or IPv6 frame that
    /// carries nothing of ours (what [`classify_frame`] would say in more steps): the
    /// path most of a host's packets take.
    #[inline(always)]
    fn not_ours_at_a_glance(&self, proto: u16) -> bool {
        let p = self.start;
        if proto == ETH_P_IP {
            if p + ETH_HLEN + 20 > self.end {
                return false;
            }
            // SAFETY: within the linear area, as just checked.
            let (e0, e1, next) = unsafe {
                (
                    *(p as *const u8).add(12),
                    *(p as *const u8).add(13),
                    *(p as *const u8).add(ETH_HLEN + 9),
                )
            };
            e0 == 0x08
                && e1 == 0x00
                && next != IPPROTO_ICMP
                && (next != IPPROTO_UDP || data_path_port() == 0)
        } else if proto == ETH_P_IPV6 {
            if p + ETH_HLEN + 40 > self.end {
                return false;
            }
            // SAFETY: as above.
            let (e0, e1, next) = unsafe {
                (
                    *(p as *const u8).add(12),
                    *(p as *const u8).add(13),
                    *(p as *const u8).add(ETH_HLEN + 6),
                )
            };
            let next = u32::from(next);
            e0 == 0x86 && e1 == 0xdd && next != IPPROTO_ICMPV6 as u32 && !is_ipv6_ext(next)
        } else {
            false
        }
    }
}

impl Frame for Tc<'_> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.ctx.len() as usize
    }

    /// Directly from the linear area when it is there, else with a helper.
    #[inline(always)]
    fn be16(&self, off: usize) -> u32 {
        if self.start + off + 2 <= self.end {
            // SAFETY: the bounds check above is the one the verifier requires.
            let v = unsafe { ((self.start + off) as *const u16).read_unaligned() };
            return u32::from(u16::from_be(v));
        }
        match self.ctx.load::<u16>(off) {
            Ok(v) => u32::from(u16::from_be(v)),
            Err(_) => MISSING,
        }
    }

    #[inline(always)]
    fn byte(&self, off: usize) -> u32 {
        // `+ 2`, not `+ 1`: LLVM folds `p + 1 <= end` into `p < end`, a form from which the
        // verifier derives no readable range. The packet's last byte takes the helper path.
        if self.start + off + 2 <= self.end {
            // SAFETY: bounds checked against data_end above.
            return u32::from(unsafe { *((self.start + off) as *const u8) });
        }
        self.far_byte(off)
    }

    #[inline(always)]
    fn far_byte(&self, off: usize) -> u32 {
        match self.ctx.load::<u8>(off) {
            Ok(v) => u32::from(v),
            Err(_) => MISSING,
        }
    }
}

/// The frame carried inside VXLAN: offsets from the inner Ethernet header.
struct Inner<'a, F> {
    outer: &'a F,
    /// Where the inner frame starts in the outer one.
    base: usize,
}

impl<F: Frame> Frame for Inner<'_, F> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.outer.len().saturating_sub(self.base)
    }

    #[inline(always)]
    fn byte(&self, off: usize) -> u32 {
        self.outer.byte(self.base + off)
    }

    #[inline(always)]
    fn be16(&self, off: usize) -> u32 {
        self.outer.be16(self.base + off)
    }

    #[inline(always)]
    fn far_byte(&self, off: usize) -> u32 {
        self.outer.far_byte(self.base + off)
    }
}

/// The packet's kind, or `kind::NONE` when it is not ARP/ICMP/ICMPv6 (or is a non-first
/// fragment, which carries no ICMP header).
#[inline(always)]
pub(crate) fn classify<F: Frame>(ctx: &F) -> u8 {
    classify_frame::<F, false>(ctx)
}

/// [`classify`]; with `VXLAN`, a VXLAN packet over IPv4 is [`VXLAN_MARK`] instead of
/// `kind::NONE`.
#[inline(always)]
fn classify_frame<F: Frame, const VXLAN: bool>(ctx: &F) -> u8 {
    let len = ctx.len();
    let mut ethertype = ctx.be16(12);
    let mut l3 = ETH_HLEN;
    if ethertype == ETH_P_8021Q as u32 || ethertype == ETH_P_8021AD as u32 {
        ethertype = ctx.be16(16);
        l3 = ETH_HLEN + 4;
    }
    if ethertype == ETH_P_ARP as u32 {
        classify_arp(ctx, l3, len)
    } else if ethertype == ETH_P_IP as u32 {
        classify_ipv4::<F, VXLAN>(ctx, l3, len)
    } else if ethertype == ETH_P_IPV6 as u32 {
        classify_ipv6(ctx, l3, len)
    } else {
        kind::NONE
    }
}

#[inline(always)]
fn classify_arp<F: Frame>(ctx: &F, l3: usize, len: usize) -> u8 {
    if len < l3 + 8 {
        return kind::MALFORMED;
    }
    let htype = ctx.be16(l3);
    let ptype = ctx.be16(l3 + 2);
    let hlen = ctx.byte(l3 + 4);
    let plen = ctx.byte(l3 + 5);
    let op = ctx.be16(l3 + 6);
    if op == MISSING || plen == MISSING {
        return kind::MALFORMED;
    }
    if htype != 1 || ptype != ETH_P_IP as u32 {
        return kind::ARP_OTHER;
    }
    if hlen != 6 || plen != 4 || len < l3 + 28 {
        return kind::MALFORMED;
    }
    match op {
        1 => kind::ARP_REQUEST,
        2 => kind::ARP_REPLY,
        _ => kind::ARP_OTHER,
    }
}

#[inline(always)]
fn classify_ipv4<F: Frame, const VXLAN: bool>(ctx: &F, l3: usize, len: usize) -> u8 {
    // The protocol byte decides whether this is ours; skip everything else at once.
    let proto = ctx.byte(l3 + 9);
    if proto != IPPROTO_ICMP as u32 {
        if VXLAN && proto == IPPROTO_UDP as u32 {
            return vxlan_mark(ctx, l3, len);
        }
        return kind::NONE;
    }
    if len < l3 + 20 {
        return kind::MALFORMED;
    }
    let vihl = ctx.byte(l3);
    let tot_len = ctx.be16(l3 + 2);
    let frag = ctx.be16(l3 + 6);
    if vihl == MISSING || tot_len == MISSING || frag == MISSING {
        return kind::MALFORMED;
    }
    let ihl = ((vihl & 0x0f) as usize) * 4;
    let tot_len = tot_len as usize;
    if vihl >> 4 != 4 || ihl < 20 || tot_len < ihl || l3 + tot_len > len {
        return kind::MALFORMED;
    }
    if frag & 0x1fff != 0 {
        return kind::NONE;
    }
    if tot_len < ihl + 8 {
        return kind::MALFORMED;
    }
    match ctx.byte(l3 + ihl) {
        8 => kind::ICMP_ECHO_REQUEST,
        0 => kind::ICMP_ECHO_REPLY,
        3 => kind::ICMP_UNREACHABLE,
        11 => kind::ICMP_TIME_EXCEEDED,
        MISSING => kind::MALFORMED,
        _ => kind::ICMP_OTHER,
    }
}

/// [`VXLAN_MARK`] for a UDP datagram to a VXLAN port that holds a whole VXLAN header and an
/// inner Ethernet header (a first fragment), else `kind::NONE`.
#[inline(always)]
fn vxlan_mark<F: Frame>(ctx: &F, l3: usize, len: usize) -> u8 {
    // Not a Swarm node: one comparison for every UDP datagram.
    let port = data_path_port();
    if port == 0 {
        return kind::NONE;
    }
    let vihl = ctx.byte(l3);
    let ihl = ((vihl & 0x0f) as usize) * 4;
    if vihl >> 4 != 4 || ihl < 20 || ctx.be16(l3 + 6) & 0x1fff != 0 {
        return kind::NONE;
    }
    if ctx.be16(l3 + ihl + 2) != port {
        return kind::NONE;
    }
    if len < l3 + ihl + UDP_VXLAN_HLEN + ETH_HLEN || ctx.byte(l3 + ihl + 8) & VXLAN_FLAG_VNI == 0 {
        return kind::NONE;
    }
    VXLAN_MARK
}

/// The Swarm's data-path port, or 0.
#[inline(always)]
fn data_path_port() -> u32 {
    // SAFETY: a plain read of a u32 that only user space writes (a volatile read, so the
    // compiler does not take its initial zero for a constant).
    unsafe { core::ptr::read_volatile(&raw const NETLAB_VXLAN_PORT) }
}

/// IPv6 extension headers that may stand between the fixed header and ICMPv6.
const NEXTHDR_HOP: u32 = 0;
const NEXTHDR_ROUTING: u32 = 43;
const NEXTHDR_FRAGMENT: u32 = 44;
const NEXTHDR_AUTH: u32 = 51;
const NEXTHDR_DEST: u32 = 60;
/// Extension headers followed at most before giving up (not counted).
pub(crate) const MAX_IPV6_EXT: usize = 8;
/// Furthest offset of an ICMPv6 header followed through extension headers (beyond: not
/// counted). Also keeps packet-pointer arithmetic within what the verifier accepts.
const MAX_IPV6_L4_OFFSET: usize = 2048;

#[inline(always)]
fn is_ipv6_ext(next: u32) -> bool {
    next == NEXTHDR_HOP
        || next == NEXTHDR_ROUTING
        || next == NEXTHDR_FRAGMENT
        || next == NEXTHDR_AUTH
        || next == NEXTHDR_DEST
}

#[inline(always)]
fn classify_ipv6<F: Frame>(ctx: &F, l3: usize, len: usize) -> u8 {
    let mut next = ctx.byte(l3 + 6);
    if next != IPPROTO_ICMPV6 as u32 && !is_ipv6_ext(next) {
        return kind::NONE;
    }
    if len < l3 + 40 {
        return kind::MALFORMED;
    }
    let v = ctx.byte(l3);
    let plen = ctx.be16(l3 + 4);
    if v == MISSING || plen == MISSING {
        return kind::MALFORMED;
    }
    let end = l3 + 40 + plen as usize;
    if v >> 4 != 6 || end > len {
        return kind::MALFORMED;
    }
    let off = l3 + 40;
    if next == IPPROTO_ICMPV6 as u32 {
        // No extension header (nearly every packet): the type at a fixed offset.
        return icmp6_kind(ctx.byte(off), end - off);
    }
    // Walk the extension headers (bounded): ICMPv6 may follow a Hop-by-Hop header (MLD),
    // Destination Options, Routing, or a Fragment header (a large ping). Only the first
    // fragment carries the ICMPv6 header; later ones are not ours, as for IPv4. Every read
    // from here on is a `far_byte`.
    let mut off = off;
    for _ in 0..MAX_IPV6_EXT {
        if next == IPPROTO_ICMPV6 as u32 {
            break;
        }
        if !is_ipv6_ext(next) {
            return kind::NONE;
        }
        let min = if next == NEXTHDR_FRAGMENT { 8 } else { 2 };
        if off + min > end {
            return kind::MALFORMED;
        }
        let nh = ctx.far_byte(off);
        let hl = ctx.far_byte(off + 1);
        if nh == MISSING || hl == MISSING {
            return kind::MALFORMED;
        }
        if next == NEXTHDR_FRAGMENT {
            let hi = ctx.far_byte(off + 2);
            let lo = ctx.far_byte(off + 3);
            if hi == MISSING || lo == MISSING {
                return kind::MALFORMED;
            }
            if ((hi << 8) | lo) & 0xfff8 != 0 {
                return kind::NONE;
            }
            off += 8;
        } else if next == NEXTHDR_AUTH {
            off += (hl as usize + 2) * 4;
        } else {
            off += (hl as usize + 1) * 8;
        }
        if off > end {
            return kind::MALFORMED;
        }
        if off > MAX_IPV6_L4_OFFSET {
            return kind::NONE;
        }
        next = nh;
    }
    if next != IPPROTO_ICMPV6 as u32 {
        return kind::NONE;
    }
    icmp6_kind(ctx.far_byte(off), end - off)
}

/// The kind of an ICMPv6 message of type `ty` ([`MISSING`]: unreadable) with `rem` bytes
/// from its header to the packet's end.
#[inline(always)]
fn icmp6_kind(ty: u32, rem: usize) -> u8 {
    if rem < 4 {
        return kind::MALFORMED;
    }
    let (k, min) = match ty {
        128 => (kind::ICMP6_ECHO_REQUEST, 8),
        129 => (kind::ICMP6_ECHO_REPLY, 8),
        133 => (kind::NDP_ROUTER_SOLICIT, 8),
        134 => (kind::NDP_ROUTER_ADVERT, 16),
        135 => (kind::NDP_NEIGHBOR_SOLICIT, 24),
        136 => (kind::NDP_NEIGHBOR_ADVERT, 24),
        MISSING => return kind::MALFORMED,
        _ => (kind::ICMP6_OTHER, 4),
    };
    if rem < min {
        return kind::MALFORMED;
    }
    k
}

#[inline(always)]
pub(crate) fn bump_stat(slot: u32) {
    if let Some(p) = NETLAB_STATS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, only this CPU writes it while this program runs.
        unsafe { *p += 1 };
    }
}

/// Counts one packet of kind `k` on `ifindex`: in the interface's slot when user space gave
/// it one (two array lookups), else in the per-CPU hash (a hash lookup, and an insert for
/// the first packet). User space adds both up, so a packet counted in either is counted once.
#[inline(always)]
pub(crate) fn count(ifindex: u32, dir: u8, k: u8) {
    if let Some(cell) = NETLAB_IF_SLOTS.get(ifindex & (IF_SLOT_CELLS - 1)) {
        let cell = *cell;
        if cell >> 32 == u64::from(ifindex) && ifindex != 0 {
            if let Some(c) = NETLAB_SLOT_COUNTERS.get_ptr_mut(cell as u32) {
                if k < kind::COUNT {
                    // SAFETY: per-CPU value, only this CPU writes it while this program
                    // runs; both indexes are checked against the array's dimensions.
                    unsafe { (*c).n[usize::from(dir & 1)][usize::from(k)] += 1 };
                }
                return;
            }
        }
    }
    let key = CounterKey {
        ifindex,
        direction: dir,
        kind: k,
        _pad: [0; 2],
    };
    bump_hash(&NETLAB_COUNTERS, &key);
}

/// Adds one to `key`'s per-CPU counter in `map`, creating it at 1.
#[inline(always)]
fn bump_hash<K>(map: &PerCpuHashMap<K, u64>, key: &K) {
    for _ in 0..2 {
        if let Some(p) = map.get_ptr_mut(key) {
            // SAFETY: per-CPU value, only this CPU writes it while this program runs.
            unsafe { *p += 1 };
            return;
        }
        // BPF_NOEXIST: another CPU may have created the entry meanwhile; then look again.
        if map.insert(key, 1u64, 1).is_ok() {
            return;
        }
    }
}

/// The flags of a ring-buffer submit at time `now`: wake the reader only when it does not
/// poll (`NETLAB_RING_WAKE`: it drains every `RING_WAKE_NS` until the time there) or
/// `RING_WAKE_BYTES` wait, else not: a wake-up costs far more than the record, and a
/// polling reader reads the record within `RING_WAKE_NS` anyway.
#[inline(always)]
pub(crate) fn submit_flags(now: u64) -> u64 {
    let Some(until) = NETLAB_RING_WAKE.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: a plain u64 of a map value; CPUs racing here each write a recent time, and
    // a wake-up more or less is harmless.
    let until = unsafe { &mut *until };
    if now >= *until || NETLAB_EVENTS.query(u64::from(BPF_RB_AVAIL_DATA)) >= RING_WAKE_BYTES {
        // Woken, the reader drains now and polls `RING_WAKE_NS` at least: other records
        // meanwhile need not wake it again.
        *until = now + RING_WAKE_NS;
        u64::from(BPF_RB_FORCE_WAKEUP)
    } else {
        u64::from(BPF_RB_NO_WAKEUP)
    }
}

/// Emits a sampled event for a frame of `len` bytes carrying a packet of kind `k` as `how`
/// says (one of `encap`), unless sampling or the rate limit say no; its first bytes are
/// copied by `copy(dest, n)` (n between 14 and SNAP_LEN), which returns how many it copied
/// (0 when it could not).
#[inline(always)]
pub(crate) fn sample(
    ifindex: u32,
    dir: u8,
    k: u8,
    how: u8,
    len: u32,
    copy: impl FnOnce(*mut u8, u32) -> u32,
) {
    let cfg = NETLAB_CONFIG.get(0).copied().unwrap_or_default();
    let Some(st) = NETLAB_SAMPLING.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU state, only this CPU touches it while this program runs.
    let st = unsafe { &mut *st };
    let every = cfg.sample_every as u64;
    if every > 1 {
        // The N-th packet is sampled, then counting starts again (no division).
        st.seen += 1;
        if st.seen < every {
            st.sampled_out += 1;
            return;
        }
        st.seen = 0;
    }
    // SAFETY: a helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if cfg.rate_per_cpu != 0 {
        if now.wrapping_sub(st.window_start_ns) >= 1_000_000_000 {
            st.window_start_ns = now;
            st.window_events = 0;
        }
        if st.window_events >= cfg.rate_per_cpu as u64 {
            bump_stat(stat::RATE_LIMITED);
            return;
        }
        st.window_events += 1;
    }
    let Some(mut entry) = NETLAB_EVENTS.reserve::<PacketEvent>(0) else {
        bump_stat(stat::RING_FULL);
        return;
    };
    let ev = entry.as_mut_ptr();
    let cap = if len > SNAP_LEN as u32 {
        SNAP_LEN as u32
    } else {
        len
    };
    // SAFETY: `ev` points to a reserved ring-buffer slot of size_of::<PacketEvent>() bytes;
    // the copy length is bounded by SNAP_LEN, the size of `data`.
    unsafe {
        (*ev).ts_ns = now;
        (*ev).ifindex = ifindex;
        (*ev).pkt_len = len;
        (*ev).sample_rate = if every == 0 { 1 } else { every as u32 };
        (*ev).direction = dir;
        (*ev).kind = k;
        (*ev).record = record::TC_PACKET;
        (*ev).encap = how;
        (*ev)._pad = [0; 5];
        let copied = if cap >= ETH_HLEN as u32 && cap <= SNAP_LEN as u32 {
            copy((*ev).data.as_mut_ptr(), cap)
        } else {
            0
        };
        (*ev).cap_len = if copied <= cap { copied as u16 } else { 0 };
    }
    entry.submit(submit_flags(now));
}

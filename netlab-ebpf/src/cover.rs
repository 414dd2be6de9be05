//! Covering a new bridge port until netlab's tc programs run on it.
//!
//! Attaching a tc program waits for RCU grace periods (tens of milliseconds a hook), and a
//! container may send its first ARP request sooner than that after its veth joins the
//! bridge. For the hooks user space lists in `NETLAB_COVER`, two raw tracepoints count and
//! sample those packets meanwhile: `netif_receive_skb` (a frame an interface received; it
//! runs just *before* tc ingress) and `net_dev_queue` (a frame queued for transmission; it
//! runs just *after* tc egress). Each pair runs back to back on one CPU for one packet, so a
//! per-CPU note says which of the two counted it: never both, never neither.
//!
//! - Ingress: the tracepoint notes (interface, time) when it counts a packet, and nothing
//!   when it does not; tc ingress skips a packet the note says was counted just now.
//! - Egress: tc egress notes the interface of each packet it counts; the tracepoint skips a
//!   packet so noted.
//!
//! A hook stays covered for a while after its tc program is attached (user space removes
//! it), so the hand-over needs no coordination beyond the notes.
//!
//! Who lists a hook: a program on `netdev_master_upper_dev_link` (every bridge port joins
//! its bridge through it) lists both hooks of a port the moment it joins a bridge of
//! `NETLAB_COVER_BRIDGES`, before the kernel even tells user space; user space lists the
//! ports it hears of and removes every entry once the tc programs took over. A container's
//! first packets come tens of milliseconds after its veth joins the bridge, and a daemon on
//! a busy host may take longer than that to read the netlink message. Where neither fentry
//! nor kprobes may run, the tracepoints find new ports per packet instead (`find_ports`):
//! a device whose master is an observed bridge is covered unless its entry says its tc
//! programs took over.
//!
//! The tracepoints run for every packet of the host, so what each packet is tested on is
//! kept cheap: where the kernel has BTF, BTF-typed variants read the packet's device, the
//! device's namespace and index by plain loads and leave at once for a device of another
//! namespace (a container's own interface), a packet tc egress just counted, or a port
//! handed over (one hash lookup). Only a hook that may be covered pays for the helper calls
//! of [`cover`].

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, generated::bpf_probe_read_kernel},
    macros::{btf_tracepoint, fentry, kprobe, map, raw_tracepoint},
    maps::{Array, HashMap, PerCpuArray},
    programs::{BtfTracePointContext, FEntryContext, ProbeContext, RawTracePointContext},
};
use netlab_common::{
    direction, encap, kind, CounterKey, CoverConfig, COVERED_BY_KERNEL, COVER_BRIDGES,
    COVER_ENTRIES, HANDED_OVER, SNAP_LEN,
};

use crate::drops::{kread_u16, kread_u32, kread_u64, kread_u8};
use crate::program::{classify, count, sample, Frame, MISSING};

#[map]
static NETLAB_COVER: HashMap<CounterKey, u8> = HashMap::with_max_entries(COVER_ENTRIES, 0);

#[map]
static NETLAB_COVER_CONFIG: Array<CoverConfig> = Array::with_max_entries(1, 0);

/// The bridges user space observes, by interface index.
#[map]
static NETLAB_COVER_BRIDGES: HashMap<u32, u8> = HashMap::with_max_entries(COVER_BRIDGES, 0);

/// A copy of the frame's first bytes, per CPU.
#[map]
static NETLAB_COVER_SCRATCH: PerCpuArray<[u8; SNAP_LEN]> = PerCpuArray::with_max_entries(1, 0);

/// Which program counted the packet on its way through this CPU (slot 0: ingress, 1: egress).
#[map]
static NETLAB_COVER_LAST: PerCpuArray<Last> = PerCpuArray::with_max_entries(2, 0);

/// A packet counted on interface `ifindex` at `ts_ns` (0: none).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Last {
    ifindex: u32,
    _pad: u32,
    ts_ns: u64,
}

/// How soon after the ingress tracepoint tc ingress runs on the same packet, at most.
const SAME_PACKET_NS: u64 = 1_000_000;

/// For tc ingress: whether the cover tracepoint counted this very packet (then tc does
/// not). Clears the note.
#[inline(always)]
pub(crate) fn counted_on_ingress(ifindex: u32) -> bool {
    let Some(l) = NETLAB_COVER_LAST.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU slot, only this CPU touches it while this program runs.
    let l = unsafe { &mut *l };
    if l.ifindex != ifindex {
        return false;
    }
    l.ifindex = 0;
    // SAFETY: a helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    now.wrapping_sub(l.ts_ns) < SAME_PACKET_NS
}

/// For tc egress: notes that it counted this packet on `ifindex`.
#[inline(always)]
pub(crate) fn note_egress(ifindex: u32) {
    if let Some(l) = NETLAB_COVER_LAST.get_ptr_mut(1) {
        // SAFETY: per-CPU slot, only this CPU touches it while this program runs.
        unsafe { (*l).ifindex = ifindex };
    }
}

#[inline(always)]
fn key(ifindex: u32, dir: u8) -> CounterKey {
    CounterKey {
        ifindex,
        direction: dir,
        kind: kind::NONE,
        _pad: [0; 2],
    }
}

/// `netif_receive_skb(struct sk_buff *skb)`: a frame an interface received, just before
/// tc ingress runs on it.
#[raw_tracepoint(tracepoint = "netif_receive_skb")]
pub fn netlab_cover_ingress(ctx: RawTracePointContext) -> i32 {
    let Some(cfg) = NETLAB_COVER_CONFIG.get(0) else {
        return 0;
    };
    if cfg.active == 0 {
        return 0;
    }
    let Some(l) = NETLAB_COVER_LAST.get_ptr_mut(0) else {
        return 0;
    };
    let counted = cover(ctx.arg::<u64>(0), cfg, direction::INGRESS);
    // SAFETY: per-CPU slot, only this CPU touches it while this program runs.
    unsafe {
        (*l).ifindex = counted;
        // SAFETY: a helper without preconditions.
        (*l).ts_ns = if counted != 0 { bpf_ktime_get_ns() } else { 0 };
    }
    0
}

/// `net_dev_queue(struct sk_buff *skb)`: a frame queued for transmission, just after tc
/// egress ran on it.
#[raw_tracepoint(tracepoint = "net_dev_queue")]
pub fn netlab_cover_egress(ctx: RawTracePointContext) -> i32 {
    let Some(cfg) = NETLAB_COVER_CONFIG.get(0) else {
        return 0;
    };
    if cfg.active == 0 {
        return 0;
    }
    let skb = ctx.arg::<u64>(0);
    let Some(l) = NETLAB_COVER_LAST.get_ptr_mut(1) else {
        return 0;
    };
    // SAFETY: per-CPU slot, only this CPU touches it while this program runs.
    let by_tc = unsafe { (*l).ifindex };
    // SAFETY: as above.
    unsafe { (*l).ifindex = 0 };
    if by_tc != 0 && by_tc == ifindex_of(device(skb, cfg), cfg) {
        return 0;
    }
    cover(skb, cfg, direction::EGRESS);
    0
}

/// Offsets of `sk_buff.dev`, `net_device.ifindex`, `net_device.nd_net.net` and
/// `net.ns.inum` (`netlab_common::GLOBAL_COVER_OFFSETS`), set by user space from the running
/// kernel's BTF before the object loads (the BTF-typed programs are not loaded otherwise).
/// Read-only data the kernel freezes: the verifier sees constants.
#[no_mangle]
static NETLAB_COVER_OFF: [u32; 4] = [0; 4];

/// The `i`th of [`NETLAB_COVER_OFF`], read as the program's data (a volatile read, so that
/// the compiler does not fold in the zeros it was built with).
#[inline(always)]
fn cover_off(i: usize) -> usize {
    // SAFETY: a read of a static, in bounds (i < 4 at every call site).
    unsafe { core::ptr::read_volatile(&NETLAB_COVER_OFF[i]) as usize }
}

/// The index of `skb`'s device when that device is in the namespace netlab observes, else
/// 0. `skb` is a typed pointer: four plain loads, no helper call.
#[inline(always)]
fn typed_ifindex(skb: *const u8, cfg: &CoverConfig) -> u32 {
    if skb.is_null() {
        return 0;
    }
    // SAFETY: `skb` is the tracepoint's `struct sk_buff *` and the offsets are its fields'
    // and theirs (of their types' sizes): the verifier checks each load against BTF, and a
    // load through a bad pointer reads zero rather than faulting.
    unsafe {
        let dev = *skb.add(cover_off(0)).cast::<*const u8>();
        if dev.is_null() {
            return 0;
        }
        let net = *dev.add(cover_off(2)).cast::<*const u8>();
        if net.is_null() || *net.add(cover_off(3)).cast::<u32>() != cfg.netns {
            return 0;
        }
        *dev.add(cover_off(1)).cast::<u32>()
    }
}

/// Whether hook `dir` of interface `ifindex` (of the observed namespace) may be one to
/// cover: listed and not handed over yet, or not listed while the tracepoints find ports.
#[inline(always)]
fn worth_a_look(ifindex: u32, cfg: &CoverConfig, dir: u8) -> bool {
    match NETLAB_COVER.get_ptr(&key(ifindex, dir)) {
        Some(v) => {
            // SAFETY: a value of the map, valid while this program runs.
            let v = unsafe { *v };
            v != HANDED_OVER
        }
        None => cfg.find_ports != 0,
    }
}

/// [`netlab_cover_ingress`] as a BTF-typed tracepoint (Linux 5.5 on): what every packet is
/// tested on (its device, the device's namespace and index, the hook's entry) is read by
/// plain loads, and only a packet of a hook that may be covered takes the helper calls.
/// Most packets of a host are of another namespace or of a port handed over.
#[btf_tracepoint(function = "netif_receive_skb")]
pub fn netlab_cover_ingress_btf(ctx: BtfTracePointContext) -> i32 {
    let Some(cfg) = NETLAB_COVER_CONFIG.get(0) else {
        return 0;
    };
    if cfg.active == 0 {
        return 0;
    }
    let Some(l) = NETLAB_COVER_LAST.get_ptr_mut(0) else {
        return 0;
    };
    let skb: *const u8 = ctx.arg(0);
    let ifindex = typed_ifindex(skb, cfg);
    let counted = if ifindex != 0 && worth_a_look(ifindex, cfg, direction::INGRESS) {
        cover(ctx.arg::<u64>(0), cfg, direction::INGRESS)
    } else {
        0
    };
    // SAFETY: per-CPU slot, only this CPU touches it while this program runs.
    unsafe {
        (*l).ifindex = counted;
        // SAFETY: a helper without preconditions.
        (*l).ts_ns = if counted != 0 { bpf_ktime_get_ns() } else { 0 };
    }
    0
}

/// [`netlab_cover_egress`] as a BTF-typed tracepoint, as [`netlab_cover_ingress_btf`].
#[btf_tracepoint(function = "net_dev_queue")]
pub fn netlab_cover_egress_btf(ctx: BtfTracePointContext) -> i32 {
    let Some(cfg) = NETLAB_COVER_CONFIG.get(0) else {
        return 0;
    };
    if cfg.active == 0 {
        return 0;
    }
    let Some(l) = NETLAB_COVER_LAST.get_ptr_mut(1) else {
        return 0;
    };
    // SAFETY: per-CPU slot, only this CPU touches it while this program runs.
    let by_tc = unsafe { (*l).ifindex };
    // SAFETY: as above.
    unsafe { (*l).ifindex = 0 };
    let skb: *const u8 = ctx.arg(0);
    let ifindex = typed_ifindex(skb, cfg);
    if ifindex == 0 || ifindex == by_tc || !worth_a_look(ifindex, cfg, direction::EGRESS) {
        return 0;
    }
    cover(ctx.arg::<u64>(0), cfg, direction::EGRESS);
    0
}

/// `netdev_master_upper_dev_link(dev, upper_dev, ...)`: `dev` is about to become a port
/// of `upper_dev` (a bridge's `br_add_if` calls it). Through a BPF trampoline where the
/// kernel has them, else [`netlab_cover_enslave_kprobe`].
#[fentry(function = "netdev_master_upper_dev_link")]
pub fn netlab_cover_enslave(ctx: FEntryContext) -> i32 {
    let (dev, upper): (u64, u64) = (ctx.arg(0), ctx.arg(1));
    enslave(dev, upper);
    0
}

/// [`netlab_cover_enslave`] as a kprobe.
#[kprobe]
pub fn netlab_cover_enslave_kprobe(ctx: ProbeContext) -> u32 {
    if let (Some(dev), Some(upper)) = (ctx.arg::<u64>(0), ctx.arg::<u64>(1)) {
        enslave(dev, upper);
    }
    0
}

/// Covers port `dev` from now on, in both directions, if `upper` is an observed bridge.
#[inline(always)]
fn enslave(dev: u64, upper: u64) {
    let Some(cfg) = NETLAB_COVER_CONFIG.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: the single entry of an array map; user space rewrites it whole, and a torn
    // read at worst covers or skips one port.
    let c = unsafe { *cfg };
    if dev == 0 || upper == 0 || c.dev_ifindex == 0 {
        return;
    }
    let bridge = ifindex_of(upper, &c);
    if NETLAB_COVER_BRIDGES.get_ptr(&bridge).is_none() || !in_observed_netns(upper, &c) {
        return;
    }
    let ifindex = ifindex_of(dev, &c);
    if ifindex == 0 {
        return;
    }
    for dir in [direction::INGRESS, direction::EGRESS] {
        let _ = NETLAB_COVER.insert(&key(ifindex, dir), &COVERED_BY_KERNEL, 0);
    }
    // SAFETY: as above; a plain store of one field.
    unsafe { core::ptr::write_volatile(&mut (*cfg).active, 1) };
}

/// Whether device `dev`'s master (the first of its upper devices, if it is a master: what
/// `netdev_master_upper_dev_get` returns) is a bridge of `NETLAB_COVER_BRIDGES`.
#[inline(always)]
fn port_of_observed_bridge(dev: u64, cfg: &CoverConfig) -> bool {
    if dev == 0 {
        return false;
    }
    let head = dev + cfg.dev_upper as u64;
    let first = kread_u64(head);
    if first == 0 || first == head {
        return false;
    }
    let adj = first - cfg.adj_list as u64;
    if kread_u8(adj + cfg.adj_master as u64) == 0 {
        return false;
    }
    let master = kread_u64(adj + cfg.adj_dev as u64);
    if master == 0 {
        return false;
    }
    NETLAB_COVER_BRIDGES
        .get_ptr(&ifindex_of(master, cfg))
        .is_some()
}

/// `skb->dev` (0: none).
#[inline(always)]
fn device(skb: u64, cfg: &CoverConfig) -> u64 {
    if skb == 0 {
        return 0;
    }
    kread_u64(skb + cfg.skb_dev as u64)
}

/// The index of device `dev` (0: none).
#[inline(always)]
fn ifindex_of(dev: u64, cfg: &CoverConfig) -> u32 {
    if dev == 0 {
        return 0;
    }
    kread_u32(dev + cfg.dev_ifindex as u64)
}

/// Whether device `dev` is in the namespace netlab observes (the same index in another
/// namespace is another interface).
#[inline(always)]
fn in_observed_netns(dev: u64, cfg: &CoverConfig) -> bool {
    let net = kread_u64(dev + cfg.dev_net as u64);
    net != 0 && kread_u32(net + cfg.net_inum as u64) == cfg.netns
}

const _: () = assert!(SNAP_LEN.is_power_of_two());

/// The first bytes of a frame copied out of its skb, and where the rest is.
struct Copied {
    buf: *const u8,
    /// Bytes in `buf` (at most SNAP_LEN).
    cap: usize,
    /// Length of the whole frame.
    len: usize,
    /// Kernel address of the frame's first byte.
    base: u64,
    /// Bytes from `base` that are in the skb's linear area.
    linear: usize,
}

impl Frame for Copied {
    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    fn byte(&self, off: usize) -> u32 {
        if off < SNAP_LEN && off < self.cap {
            // The mask is a no-op here, but LLVM must not know it: verifiers before 6.18
            // walk paths with contradictory bounds (REG INVARIANTS VIOLATION) and refuse
            // the unmasked access on them.
            // SAFETY: a read of a local.
            let i = unsafe { core::ptr::read_volatile(&off) } & (SNAP_LEN - 1);
            // SAFETY: `buf` holds SNAP_LEN bytes and i < SNAP_LEN.
            return u32::from(unsafe { *self.buf.add(i) });
        }
        self.far_byte(off)
    }

    /// From the kernel's copy, within the linear area (not from `buf`, whose index the
    /// verifier would have to bound).
    #[inline(always)]
    fn far_byte(&self, off: usize) -> u32 {
        if off < self.linear {
            return kread_u8(self.base + off as u64);
        }
        MISSING
    }

    #[inline(always)]
    fn be16(&self, off: usize) -> u32 {
        let hi = self.byte(off);
        let lo = self.byte(off + 1);
        if hi == MISSING || lo == MISSING {
            MISSING
        } else {
            (hi << 8) | lo
        }
    }
}

/// Counts and samples `skb` if its device's hook `dir` is covered and it is one of ours;
/// returns the device's index when it counted it, else 0.
#[inline(always)]
fn cover(skb: u64, cfg: &CoverConfig, dir: u8) -> u32 {
    let dev = device(skb, cfg);
    let ifindex = ifindex_of(dev, cfg);
    if ifindex == 0 {
        return 0;
    }
    match NETLAB_COVER.get_ptr(&key(ifindex, dir)) {
        // SAFETY: a value of the map, valid while this program runs.
        Some(v) if unsafe { *v } == HANDED_OVER => return 0,
        Some(_) => {}
        None if cfg.find_ports != 0 && port_of_observed_bridge(dev, cfg) => {}
        None => return 0,
    }
    if !in_observed_netns(dev, cfg) {
        return 0;
    }
    let head = kread_u64(skb + cfg.skb_head as u64);
    let data = kread_u64(skb + cfg.skb_data as u64);
    let len = kread_u32(skb + cfg.skb_len as u64) as u64;
    let data_len = kread_u32(skb + cfg.skb_data_len as u64) as u64;
    if head == 0 || data == 0 || data_len > len {
        return 0;
    }
    // On receive the Ethernet header was pulled already: the frame starts at the MAC
    // header. On transmit it starts at `data`.
    let base = if dir == direction::INGRESS {
        let mac = kread_u16(skb + cfg.skb_mac_header as u64) as u64;
        if mac == 0xffff || head + mac > data {
            return 0;
        }
        head + mac
    } else {
        data
    };
    let pulled = data - base;
    let frame_len = len + pulled;
    let linear = len - data_len + pulled;
    let Some(buf) = NETLAB_COVER_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    let want = if linear < SNAP_LEN as u64 {
        linear
    } else {
        SNAP_LEN as u64
    };
    // Bounded on the value the helper gets: a compiler that keeps `want` on the stack
    // across the test below leaves verifiers before 6.12 a copy without bounds.
    // SAFETY: a read of a local.
    let want = unsafe { core::ptr::read_volatile(&want) };
    if !(14..=SNAP_LEN as u64).contains(&want) {
        return 0;
    }
    // SAFETY: `buf` is SNAP_LEN bytes of per-CPU scratch; the length is bounded above.
    if unsafe { bpf_probe_read_kernel(buf.cast(), want as u32, base as *const _) } != 0 {
        return 0;
    }
    let cap = want as usize;
    let frame = Copied {
        buf: buf as *const u8,
        cap,
        len: frame_len as usize,
        base,
        linear: linear as usize,
    };
    let k = classify(&frame);
    if k == kind::NONE {
        return 0;
    }
    count(ifindex, dir, k);
    sample(ifindex, dir, k, encap::NONE, frame_len as u32, |dest, n| {
        let n = if n > cap as u32 { cap as u32 } else { n };
        // LLVM would drop the check below as redundant; verifiers before 6.12 cannot
        // bound `n` without it.
        // SAFETY: a read of a local.
        let n = unsafe { core::ptr::read_volatile(&n) };
        if n == 0 || n > SNAP_LEN as u32 {
            return 0;
        }
        // SAFETY: `dest` holds SNAP_LEN bytes of a reserved ring-buffer slot and `buf`
        // SNAP_LEN bytes of scratch; n <= SNAP_LEN.
        if unsafe { bpf_probe_read_kernel(dest.cast(), n, buf as *const _) } == 0 {
            n
        } else {
            0
        }
    });
    ifindex
}

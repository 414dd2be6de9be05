//! The `skb:kfree_skb` tracepoint: reports ARP, ICMP and ICMPv6 packets the kernel drops.
//!
//! Field offsets (of the tracepoint record and of `sk_buff`, `net_device` and `net`) come
//! from user space, read from the running kernel's tracefs and BTF at load time.

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, generated::bpf_probe_read_kernel},
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::{Array, PerCpuArray},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
    EbpfContext as _,
};
use netlab_common::{
    encap, record, stat, DropConfig, DropEvent, DROP_REASON_SLOTS, NO_REASON_FIELD, REASON_UNKNOWN,
    SKB_WINDOW_LAYOUT, SKB_WINDOW_LEN, SNAP_LEN,
};

use crate::program::{bump_stat, submit_flags, MAX_IPV6_EXT, NETLAB_EVENTS};

#[map]
static NETLAB_DROP_CONFIG: Array<DropConfig> = Array::with_max_entries(1, 0);

#[map]
static NETLAB_DROP_REASONS: PerCpuArray<u64> = PerCpuArray::with_max_entries(DROP_REASON_SLOTS, 0);

const ETH_P_IP: u32 = 0x0800;
const ETH_P_ARP: u32 = 0x0806;
const ETH_P_IPV6: u32 = 0x86DD;
const ICMP_ECHO_REPLY: u32 = 0;
const ICMP6_ECHO_REPLY: u32 = 129;
const IPPROTO_TCP: u16 = 6;
const IPPROTO_UDP: u16 = 17;
/// SKB_NOT_DROPPED_YET (0) and SKB_CONSUMED (1) are not drops.
const FIRST_DROP_REASON: u32 = 2;

/// The classic tracepoint: its record holds the fields (kernels before 5.17, whose
/// tracepoint has no reason, and a fallback).
#[tracepoint]
pub fn netlab_kfree_skb(ctx: TracePointContext) -> u32 {
    let Some(cfg) = NETLAB_DROP_CONFIG.get(0) else {
        return 0;
    };
    if cfg.enabled == 0 {
        return 0;
    }
    let rec = ctx.as_ptr() as u64;
    // Before Linux 5.17 the tracepoint carries no reason: every kfree_skb is a drop of
    // unknown reason (consume_skb is the normal free).
    let reason = if cfg.tp_reason == NO_REASON_FIELD {
        REASON_UNKNOWN
    } else {
        kread_u32(rec + cfg.tp_reason as u64)
    };
    if reason < FIRST_DROP_REASON {
        return 0;
    }
    let proto = kread_u16(rec + cfg.tp_protocol as u64) as u32;
    observe_drop(
        cfg,
        reason,
        proto,
        || kread_u64(rec + cfg.tp_skbaddr as u64),
        None,
        || kread_u64(rec + cfg.tp_location as u64),
    );
    0
}

/// The configuration, when a free of `reason` (from the tracepoint's arguments) is a drop
/// and drops are on; the reason, in a register, is the cheapest test and comes first.
#[inline(always)]
fn looked_at(reason: u32) -> Option<&'static DropConfig> {
    if reason < FIRST_DROP_REASON {
        return None;
    }
    NETLAB_DROP_CONFIG.get(0).filter(|c| c.enabled != 0)
}

/// The raw tracepoint `kfree_skb(skb, location, reason, ...)` (Linux 5.17 on): the kernel
/// calls it with the arguments, without building the classic record first, and the reason
/// (the cheapest test, in a register) comes first.
#[raw_tracepoint(tracepoint = "kfree_skb")]
pub fn netlab_kfree_skb_raw(ctx: RawTracePointContext) -> i32 {
    let reason = ctx.arg::<u64>(2) as u32;
    let Some(cfg) = looked_at(reason) else {
        return 0;
    };
    let skb = ctx.arg::<u64>(0);
    if cfg.skb_window != 0 {
        // `protocol`, `network_header`, `head` and `data` in one read (each read is a
        // helper call, the most of this program's cost).
        let mut w = SkbWindow::default();
        // SAFETY: bpf_probe_read_kernel checks the address; on failure `w` is zeroed.
        unsafe {
            bpf_probe_read_kernel(
                (&mut w as *mut SkbWindow).cast(),
                SKB_WINDOW_LEN,
                (skb + u64::from(cfg.skb_protocol)) as *const _,
            )
        };
        let proto = u32::from(u16::from_be_bytes(w.protocol));
        let pre = Some([w.head, u64::from(w.network_header), w.data]);
        observe_drop(cfg, reason, proto, || skb, pre, || ctx.arg::<u64>(1));
        return 0;
    }
    let proto = u16::from_be(kread_u16(skb + cfg.skb_protocol as u64)) as u32;
    observe_drop(cfg, reason, proto, || skb, None, || ctx.arg::<u64>(1));
    0
}

/// Offsets in `struct sk_buff` of `protocol`, `network_header`, `head` and `data`, then of
/// `sk_protocol` in `struct sock` where the tracepoint passes the socket that dropped the
/// packet (else 0) (`netlab_common::GLOBAL_SKB_OFFSETS`), set by user space from the running
/// kernel's BTF before the object loads. Read-only data the kernel freezes: the verifier
/// sees constants (and never looks at a branch they rule out).
#[no_mangle]
static NETLAB_SKB_OFF: [u32; 5] = [0; 5];

/// The `i`th of [`NETLAB_SKB_OFF`], read as the program's data (a volatile read, so that
/// the compiler does not fold in the zeros it was built with).
#[inline(always)]
fn skb_off(i: usize) -> usize {
    // SAFETY: a read of a static, in bounds (i < 5 at every call site).
    unsafe { core::ptr::read_volatile(&NETLAB_SKB_OFF[i]) as usize }
}

/// The BTF-typed tracepoint `kfree_skb(skb, location, reason, ...)` (Linux 5.17 on): like
/// the raw one, with `skb` a typed pointer. The four `sk_buff` fields every drop is tested
/// on are plain loads, which the verifier checks against the type and the kernel makes
/// fault-safe, instead of a helper call each: the cheapest path for every freed packet.
#[btf_tracepoint(function = "kfree_skb")]
pub fn netlab_kfree_skb_btf(ctx: BtfTracePointContext) -> i32 {
    let reason = ctx.arg::<u64>(2) as u32;
    let Some(cfg) = looked_at(reason) else {
        return 0;
    };
    // A TCP segment or UDP datagram its socket dropped (a full receive buffer, say: most of
    // what a busy host drops) is told by the socket, without reading the packet. Only where
    // the tracepoint passes that socket (`rx_sk`, Linux 6.12 on): elsewhere the offset is 0
    // and the verifier never sees the fourth argument read.
    let sk_protocol = skb_off(4);
    if sk_protocol != 0 {
        let sk: *const u8 = ctx.arg(3);
        if !sk.is_null() {
            // SAFETY: `sk` is the tracepoint's `struct sock *` and the offset its u16
            // `sk_protocol`: a load the verifier checks against BTF.
            let p = unsafe { *sk.add(sk_protocol).cast::<u16>() };
            if p == IPPROTO_TCP || (p == IPPROTO_UDP && cfg.vxlan_port == 0) {
                return 0;
            }
        }
    }
    let skb: *const u8 = ctx.arg(0);
    // SAFETY: `skb` is the tracepoint's `struct sk_buff *` and the offsets are its fields'
    // (of their types' sizes): the verifier checks each load against BTF, and a load
    // through a bad pointer reads zero rather than faulting.
    let (proto, nh, head, data) = unsafe {
        (
            u32::from(u16::from_be(*skb.add(skb_off(0)).cast::<u16>())),
            u64::from(*skb.add(skb_off(1)).cast::<u16>()),
            *skb.add(skb_off(2)).cast::<u64>(),
            *skb.add(skb_off(3)).cast::<u64>(),
        )
    };
    observe_drop(
        cfg,
        reason,
        proto,
        || skb as u64,
        Some([head, nh, data]),
        || ctx.arg::<u64>(1),
    );
    0
}

/// Reads `size_of::<T>()` bytes at kernel address `addr`; zero when unreadable.
///
/// Plain values rather than `Result`s: see `program::MISSING` on why.
#[inline(always)]
pub(crate) fn kread_u64(addr: u64) -> u64 {
    let mut v: u64 = 0;
    // SAFETY: bpf_probe_read_kernel checks the address; on failure `v` is zeroed.
    unsafe { bpf_probe_read_kernel((&mut v as *mut u64).cast(), 8, addr as *const _) };
    v
}

#[inline(always)]
pub(crate) fn kread_u32(addr: u64) -> u32 {
    let mut v: u32 = 0;
    // SAFETY: as above.
    unsafe { bpf_probe_read_kernel((&mut v as *mut u32).cast(), 4, addr as *const _) };
    v
}

#[inline(always)]
pub(crate) fn kread_u8(addr: u64) -> u32 {
    let mut v: u8 = 0;
    // SAFETY: as above.
    unsafe { bpf_probe_read_kernel((&mut v as *mut u8).cast(), 1, addr as *const _) };
    u32::from(v)
}

#[inline(always)]
pub(crate) fn kread_u16(addr: u64) -> u16 {
    let mut v: u16 = 0;
    // SAFETY: as above.
    unsafe { bpf_probe_read_kernel((&mut v as *mut u16).cast(), 2, addr as *const _) };
    v
}

/// `struct sk_buff` from `protocol` to `data`, as [`DropConfig::skb_window`] reads it
/// (`netlab_common::SKB_WINDOW_LAYOUT`).
#[repr(C)]
#[derive(Default)]
struct SkbWindow {
    protocol: [u8; 2],
    transport_header: u16,
    network_header: u16,
    mac_header: u16,
    tail: u32,
    end: u32,
    head: u64,
    data: u64,
}

const _: () = assert!(core::mem::size_of::<SkbWindow>() == SKB_WINDOW_LEN as usize);
const _: () =
    assert!(core::mem::offset_of!(SkbWindow, network_header) == SKB_WINDOW_LAYOUT[0] as usize);
const _: () = assert!(core::mem::offset_of!(SkbWindow, head) == SKB_WINDOW_LAYOUT[1] as usize);
const _: () = assert!(core::mem::offset_of!(SkbWindow, data) == SKB_WINDOW_LAYOUT[2] as usize);

/// Reports a drop of `reason` of a packet of ethertype `proto` (host order), if it is
/// ARP, ICMP or ICMPv6; `skb` and `location` read the rest only then. `pre`: the skb's
/// `head`, `network_header` and `data`, when already read.
#[inline(always)]
fn observe_drop(
    cfg: &DropConfig,
    reason: u32,
    proto: u32,
    skb: impl FnOnce() -> u64,
    pre: Option<[u64; 3]>,
    location: impl FnOnce() -> u64,
) {
    if proto != ETH_P_IP && proto != ETH_P_ARP && proto != ETH_P_IPV6 {
        return;
    }
    let skb = skb();
    if skb == 0 {
        return;
    }
    let (head, nh) = match pre {
        Some([head, nh, _]) => (head, nh),
        None => (
            kread_u64(skb + cfg.skb_head as u64),
            kread_u16(skb + cfg.skb_network_header as u64) as u64,
        ),
    };
    if head == 0 || nh == 0xffff {
        return;
    }
    let l3 = head + nh;
    // An IPv4 packet's fixed header in one read, and what is not ours (UDP that is no
    // VXLAN of a Swarm's, TCP, ...: most of what the kernel frees) left before anything
    // else is read. Each read is a helper call, the most of this program's cost.
    // Left uninitialised before the read: the helper writes all of it (zeros on failure),
    // and zeroing it first is a call to a memset subprogram on every freed packet.
    let ip4: [u8; 20] = if proto == ETH_P_IP {
        let mut buf = core::mem::MaybeUninit::<[u8; 20]>::uninit();
        // SAFETY: bpf_probe_read_kernel checks the address and writes all 20 bytes (zeros on
        // failure), so the buffer is initialised after it.
        let ip4 = unsafe {
            bpf_probe_read_kernel(buf.as_mut_ptr().cast(), 20, l3 as *const _);
            buf.assume_init()
        };
        let ip_proto = ip4[9];
        if ip4[0] >> 4 != 4 || (ip_proto != 1 && (ip_proto != 17 || cfg.vxlan_port == 0)) {
            return;
        }
        ip4
    } else {
        // ARP and IPv6 do not use it.
        [0; 20]
    };
    // Bytes from the network header to the end of the packet: never read or report past it.
    let len = kread_u32(skb + cfg.skb_len as u64) as u64;
    let data = match pre {
        Some([_, _, data]) => data,
        None => kread_u64(skb + cfg.skb_data as u64),
    };
    let data_off = data.wrapping_sub(head);
    let avail = if nh >= data_off {
        len.saturating_sub(nh - data_off)
    } else {
        len + (data_off - nh)
    };
    // Only ARP, ICMP and ICMPv6: everything else is skipped here, in the kernel. An echo
    // reply is noted for the quiet reason below.
    let mut how = encap::NONE;
    let (l3_len, echo_reply): (u64, bool) = if proto == ETH_P_IP {
        // The header read above is the packet's only when the packet holds it.
        if avail < 20 {
            return;
        }
        let ip_proto = ip4[9];
        // A later fragment carries no ICMP header: not ours (as in the tc program).
        if u16::from_be_bytes([ip4[6], ip4[7]]) & 0x1fff != 0 {
            return;
        }
        let ihl = u64::from(ip4[0] & 0x0f) * 4;
        if ip_proto == 17 {
            // A Swarm's VXLAN datagram: reported when it carries ARP or ICMP.
            if !vxlan_carries_ours(cfg, l3 + ihl, avail.saturating_sub(ihl)) {
                return;
            }
            how = encap::VXLAN;
        }
        let reply =
            how == encap::NONE && avail > ihl && kread_u32(l3 + ihl) & 0xff == ICMP_ECHO_REPLY;
        (u64::from(u16::from_be_bytes([ip4[2], ip4[3]])), reply)
    } else if proto == ETH_P_IPV6 {
        if avail < 40 {
            return;
        }
        let plen = u16::from_be(kread_u16(l3 + 4)) as u64;
        let end = (40 + plen).min(avail);
        let mut next = kread_u8(l3 + 6);
        // The same walk over extension headers as the tc program's (fragmented pings,
        // MLD behind Hop-by-Hop): ICMPv6 only, later fragments skipped.
        let mut off: u64 = 40;
        for _ in 0..MAX_IPV6_EXT {
            if next == 58 {
                break;
            }
            if off + 8 > end {
                return;
            }
            let nh = kread_u8(l3 + off);
            let hl = kread_u8(l3 + off + 1) as u64;
            off += match next {
                0 | 43 | 60 => (hl + 1) * 8,
                51 => (hl + 2) * 4,
                44 => {
                    if u16::from_be(kread_u16(l3 + off + 2)) & 0xfff8 != 0 {
                        return;
                    }
                    8
                }
                _ => return,
            };
            next = nh;
        }
        if next != 58 || off >= end {
            return;
        }
        let reply = kread_u8(l3 + off) == ICMP6_ECHO_REPLY;
        (40 + plen, reply)
    } else {
        (28, false)
    };
    let cap = l3_len.min(avail).min(SNAP_LEN as u64);
    if let Some(p) = NETLAB_DROP_REASONS.get_ptr_mut(if reason < DROP_REASON_SLOTS {
        reason
    } else {
        DROP_REASON_SLOTS - 1
    }) {
        // SAFETY: per-CPU slot, only this CPU writes it while this program runs.
        unsafe { *p += 1 };
    }
    if echo_reply {
        if cfg.tp_reason != NO_REASON_FIELD {
            if reason == cfg.quiet_reason {
                return;
            }
        } else {
            let at = location();
            let r = &cfg.quiet_ranges;
            if (at >= r[0] && at < r[1]) || (at >= r[2] && at < r[3]) {
                return;
            }
            return report(cfg, reason, proto, skb, at, l3, avail, cap, how);
        }
    }
    report(cfg, reason, proto, skb, location(), l3, avail, cap, how);
}

/// Whether the UDP datagram at `l4` (`avail` bytes) goes to the VXLAN port and carries an
/// ARP packet or an IPv4 ICMP one.
#[inline(always)]
fn vxlan_carries_ours(cfg: &DropConfig, l4: u64, avail: u64) -> bool {
    // UDP (8) and VXLAN (8) headers, the inner Ethernet header (14) and IPv4's first 10.
    if avail < 8 + 8 + 14 + 10 || u32::from(u16::from_be(kread_u16(l4 + 2))) != cfg.vxlan_port {
        return false;
    }
    let inner = l4 + 16;
    match u32::from(u16::from_be(kread_u16(inner + 12))) {
        ETH_P_ARP => true,
        ETH_P_IP => kread_u8(inner + 14 + 9) == 1,
        _ => false,
    }
}

/// Writes the drop report.
#[inline(always)]
#[expect(clippy::too_many_arguments, reason = "one call site each, inlined")]
fn report(
    cfg: &DropConfig,
    reason: u32,
    proto: u32,
    skb: u64,
    location: u64,
    l3: u64,
    avail: u64,
    cap: u64,
    how: u8,
) {
    let Some(mut entry) = NETLAB_EVENTS.reserve::<DropEvent>(0) else {
        bump_stat(stat::DROP_RING_FULL);
        return;
    };
    let ev = entry.as_mut_ptr();
    let dev = kread_u64(skb + cfg.skb_dev as u64);
    let (ifindex, netns) = if dev != 0 {
        let net = kread_u64(dev + cfg.dev_net as u64);
        (
            kread_u32(dev + cfg.dev_ifindex as u64),
            if net != 0 {
                kread_u32(net + cfg.net_inum as u64)
            } else {
                0
            },
        )
    } else {
        (0, 0)
    };
    // SAFETY: a helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: `ev` points to a reserved ring-buffer slot of size_of::<DropEvent>() bytes;
    // the copy into `data` is between 1 and SNAP_LEN bytes long, within the packet.
    unsafe {
        (*ev).ts_ns = now;
        (*ev).ifindex = ifindex;
        (*ev).pkt_len = avail.min(u32::MAX as u64) as u32;
        (*ev).reason = reason;
        (*ev).protocol = proto as u16;
        (*ev).record = record::DROP;
        (*ev).encap = how;
        (*ev)._pad = 0;
        (*ev).netns = netns;
        (*ev).location = location;
        let ok = if cap >= 1 && cap <= SNAP_LEN as u64 {
            bpf_probe_read_kernel((*ev).data.as_mut_ptr().cast(), cap as u32, l3 as *const _) == 0
        } else {
            false
        };
        (*ev).cap_len = if ok { cap as u16 } else { 0 };
    }
    entry.submit(submit_flags(now));
}

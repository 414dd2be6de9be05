//! Types shared by the eBPF programs and user space.
//!
//! Everything here crosses the kernel/user boundary as raw bytes, so every struct is
//! `#[repr(C)]` with explicit padding, holds plain integers only, and has its size
//! checked at compile time. Numeric ids (packet kinds, directions, statistics slots)
//! are a stable contract: a value is never reused for something else.
#![no_std]

/// Bytes of each sampled frame copied into an event (from the Ethernet header on).
pub const SNAP_LEN: usize = 128;

/// Maximum number of (interface, direction, kind) counter slots.
pub const COUNTER_ENTRIES: u32 = 32_768;

/// Size of the sample ring buffer in bytes (a power of two, a multiple of the page size).
/// 4 MiB hold 26,000 records: 55 ms at 480,000 events/s, where the reader is due every
/// [`RING_WAKE_NS`]. User space maps the data pages twice, so each MiB here is two of the
/// daemon's resident memory.
pub const EVENT_RING_BYTES: u32 = 4 << 20;

/// While the ring's reader polls, it drains the ring at least this often; no record waits
/// longer than this for it (see `session.rs`). A program wakes the reader only when it
/// does not poll ([`MAP_RING_WAKE`]): a wake-up (an interrupt to the program's own CPU, and
/// one to wake the reader's) costs the program many times what the record does.
pub const RING_WAKE_NS: u64 = 2_000_000;
/// ... or when this many bytes wait in the ring (an eighth of it), polling or not.
pub const RING_WAKE_BYTES: u64 = (EVENT_RING_BYTES / 8) as u64;
/// Name of the single-entry array holding until when the ring's reader polls (CLOCK_MONOTONIC
/// ns, as `bpf_ktime_get_ns`): it drains the ring every [`RING_WAKE_NS`] or sooner until
/// then. A program that submits a record after it wakes the reader and moves it to
/// [`RING_WAKE_NS`] from then; the reader moves it on while records come.
pub const MAP_RING_WAKE: &str = "NETLAB_RING_WAKE";

/// Interfaces whose counters live in the dense per-CPU array [`MAP_SLOT_COUNTERS`]; the
/// others' in the per-CPU hash [`MAP_COUNTERS`].
pub const COUNTER_SLOTS: u32 = 1024;
/// Cells of [`MAP_IF_SLOTS`] (a power of two): interface `i` can only take cell
/// `i % IF_SLOT_CELLS`.
pub const IF_SLOT_CELLS: u32 = 16_384;
/// Name of the direct-mapped table from interface index to counter slot: cell
/// `ifindex % IF_SLOT_CELLS` holds `ifindex << 32 | slot`, or 0. Written by user space only.
pub const MAP_IF_SLOTS: &str = "NETLAB_IF_SLOTS";
/// Name of the per-CPU array of [`SlotCounters`], one per slot.
pub const MAP_SLOT_COUNTERS: &str = "NETLAB_SLOT_COUNTERS";

/// Name of the per-CPU counter map.
pub const MAP_COUNTERS: &str = "NETLAB_COUNTERS";
/// Name of the sample ring buffer.
pub const MAP_EVENTS: &str = "NETLAB_EVENTS";
/// Name of the single-entry configuration array.
pub const MAP_CONFIG: &str = "NETLAB_CONFIG";
/// Name of the per-CPU delivery statistics array.
pub const MAP_STATS: &str = "NETLAB_STATS";
/// Name of the per-CPU sampling and rate-limit state of the tc programs.
pub const MAP_SAMPLING: &str = "NETLAB_SAMPLING";
/// Name of the single-entry drop-program configuration array.
pub const MAP_DROP_CONFIG: &str = "NETLAB_DROP_CONFIG";
/// Name of the per-CPU array of drop counts indexed by drop reason.
pub const MAP_DROP_REASONS: &str = "NETLAB_DROP_REASONS";
/// Name of the tracepoint program on `skb:kfree_skb`.
pub const PROG_KFREE_SKB: &str = "netlab_kfree_skb";
/// Name of the raw tracepoint program on `kfree_skb` (used when the tracepoint has a drop
/// reason, Linux 5.17 on).
pub const PROG_KFREE_SKB_RAW: &str = "netlab_kfree_skb_raw";
/// Name of the BTF-typed tracepoint program on `kfree_skb` (`tp_btf`): it loads the
/// `sk_buff` fields it tests without a helper call. Preferred when the kernel accepts it.
pub const PROG_KFREE_SKB_BTF: &str = "netlab_kfree_skb_btf";
/// Name of that program's read-only global: the offsets in `struct sk_buff` of
/// `protocol`, `network_header`, `head` and `data`, then the offset in `struct sock` of
/// `sk_protocol` where the tracepoint passes the socket that dropped the packet (`rx_sk`,
/// Linux 6.12 on), else 0 (`[u32; 5]`, in that order), set from the running kernel's BTF
/// before the object loads. The kernel freezes it, so the verifier knows the offsets as
/// constants and checks each load against the type.
pub const GLOBAL_SKB_OFFSETS: &str = "NETLAB_SKB_OFF";
/// Slots of the drop-reason counters (reasons at or above it share the last slot).
pub const DROP_REASON_SLOTS: u32 = 256;
/// Name of the tc program attached to ingress hooks.
pub const PROG_INGRESS: &str = "netlab_ingress";
/// Name of the tc program attached to egress hooks.
pub const PROG_EGRESS: &str = "netlab_egress";

/// Name of the map of (interface, direction) hooks covered while netlab attaches to them.
pub const MAP_COVER: &str = "NETLAB_COVER";
/// Name of the single-entry cover configuration array.
pub const MAP_COVER_CONFIG: &str = "NETLAB_COVER_CONFIG";
/// Name of the per-CPU copy of a frame's first bytes the cover programs classify.
pub const MAP_COVER_SCRATCH: &str = "NETLAB_COVER_SCRATCH";
/// Name of the per-CPU notes of which program (cover or tc) counted the packet passing.
pub const MAP_COVER_LAST: &str = "NETLAB_COVER_LAST";
/// Name of the raw tracepoint on `netif_receive_skb` that covers a new port's ingress.
pub const PROG_COVER_INGRESS: &str = "netlab_cover_ingress";
/// Name of the raw tracepoint on `net_dev_queue` that covers a new port's egress.
pub const PROG_COVER_EGRESS: &str = "netlab_cover_egress";
/// The BTF-typed variant of [`PROG_COVER_INGRESS`] (`tp_btf`): the same, with the
/// `sk_buff` a typed pointer, so the fields every packet is tested on are plain loads.
pub const PROG_COVER_INGRESS_BTF: &str = "netlab_cover_ingress_btf";
/// The BTF-typed variant of [`PROG_COVER_EGRESS`].
pub const PROG_COVER_EGRESS_BTF: &str = "netlab_cover_egress_btf";
/// Name of those programs' read-only global: the offsets of `sk_buff.dev`,
/// `net_device.ifindex`, `net_device.nd_net.net` and `net.ns.inum` (`[u32; 4]`, in that
/// order), set from the running kernel's BTF before the object loads; frozen, so the
/// verifier knows them as constants and checks each load against the type.
pub const GLOBAL_COVER_OFFSETS: &str = "NETLAB_COVER_OFF";
/// Hooks covered at most at once.
pub const COVER_ENTRIES: u32 = 4096;
/// Name of the map of observed bridges (by interface index) whose new ports the kernel
/// covers the moment they join (see [`PROG_COVER_ENSLAVE`]).
pub const MAP_COVER_BRIDGES: &str = "NETLAB_COVER_BRIDGES";
/// Name of the fentry program on `netdev_master_upper_dev_link` that covers a port as it
/// joins an observed bridge, before user space hears of it.
pub const PROG_COVER_ENSLAVE: &str = "netlab_cover_enslave";
/// The same as a kprobe, for kernels without BPF trampolines.
pub const PROG_COVER_ENSLAVE_KPROBE: &str = "netlab_cover_enslave_kprobe";
/// Observed bridges at most.
pub const COVER_BRIDGES: u32 = 1024;
/// Value of a [`MAP_COVER`] entry user space wrote.
pub const COVERED_BY_USER: u8 = 1;
/// Value of a [`MAP_COVER`] entry the enslave program wrote.
pub const COVERED_BY_KERNEL: u8 = 2;
/// Value of a [`MAP_COVER`] entry of a hook whose tc program took over (with `find_ports`):
/// the tracepoints leave it alone.
pub const HANDED_OVER: u8 = 3;

pub mod checksum;

/// Direction of a packet relative to the interface the program is attached to.
pub mod direction {
    /// Received by the interface (tc ingress).
    pub const INGRESS: u8 = 0;
    /// Sent by the interface (tc egress).
    pub const EGRESS: u8 = 1;
}

/// Packet kinds. Stable ids: never renumber, never reuse.
pub mod kind {
    /// Not a kind we count (never stored in a map).
    pub const NONE: u8 = 0;
    pub const ARP_REQUEST: u8 = 1;
    pub const ARP_REPLY: u8 = 2;
    pub const ICMP_ECHO_REQUEST: u8 = 3;
    pub const ICMP_ECHO_REPLY: u8 = 4;
    pub const ICMP_UNREACHABLE: u8 = 5;
    pub const ICMP_TIME_EXCEEDED: u8 = 6;
    pub const ICMP_OTHER: u8 = 7;
    pub const ICMP6_ECHO_REQUEST: u8 = 8;
    pub const ICMP6_ECHO_REPLY: u8 = 9;
    pub const NDP_NEIGHBOR_SOLICIT: u8 = 10;
    pub const NDP_NEIGHBOR_ADVERT: u8 = 11;
    pub const NDP_ROUTER_SOLICIT: u8 = 12;
    pub const NDP_ROUTER_ADVERT: u8 = 13;
    pub const ICMP6_OTHER: u8 = 14;
    /// A frame that claims ARP, ICMP or ICMPv6 but is cut short or has bad lengths.
    pub const MALFORMED: u8 = 15;
    /// A well-formed Ethernet/IPv4 ARP packet whose operation is neither request nor reply.
    pub const ARP_OTHER: u8 = 16;
    /// One past the largest id in use.
    pub const COUNT: u8 = 17;
}

/// Slots of the per-CPU delivery statistics array. Stable ids.
pub mod stat {
    /// A sample was due but the ring buffer had no room.
    pub const RING_FULL: u32 = 0;
    /// A sample was due but the per-CPU rate limit was reached.
    pub const RATE_LIMITED: u32 = 1;
    /// Unused: packets sampled out are counted in `SampleState::sampled_out`.
    pub const SAMPLED_OUT: u32 = 2;
    /// A drop was due but the ring buffer had no room.
    pub const DROP_RING_FULL: u32 = 3;
    /// Number of slots.
    pub const COUNT: u32 = 4;
}

/// Record types carried in [`PacketEvent::record`]. Stable ids.
pub mod record {
    /// A frame seen by a tc program ([`PacketEvent`](super::PacketEvent)).
    pub const TC_PACKET: u16 = 1;
    /// A packet the kernel dropped ([`DropEvent`](super::DropEvent)).
    pub const DROP: u16 = 2;
}

/// How a counted packet was carried in the frame the program saw.
pub mod encap {
    /// The frame itself is the packet.
    pub const NONE: u8 = 0;
    /// Inside VXLAN (UDP to [`VXLAN_PORT`](super::VXLAN_PORT)): the packet is the inner
    /// frame, as a Docker overlay network carries it between hosts.
    pub const VXLAN: u8 = 1;
}

/// VXLAN's UDP port (IANA), Docker Swarm's data-path port unless `--data-path-port` says
/// otherwise.
pub const VXLAN_PORT: u16 = 4789;

/// VXLAN packet counters, per interface, VNI, direction and kind of the inner packet.
pub const MAP_VXLAN_COUNTERS: &str = "NETLAB_VXLAN_COUNTERS";
/// The VXLAN UDP port the tc programs look into (one u32, a Swarm node's data-path port;
/// 0: none): the section of the global [`GLOBAL_VXLAN_PORT`], a one-entry array map of its
/// own.
pub const MAP_VXLAN_PORT: &str = ".bss.vxlan_port";
/// The symbol of that global (to give it a value before the object loads).
pub const GLOBAL_VXLAN_PORT: &str = "NETLAB_VXLAN_PORT";
/// Name of the tc ingress program for interfaces of other network namespaces (an overlay
/// network's sandbox): it counts and samples under [`ns_key`] rather than the index.
pub const PROG_NS_INGRESS: &str = "netlab_ns_ingress";
/// Name of the tc egress program for interfaces of other network namespaces.
pub const PROG_NS_EGRESS: &str = "netlab_ns_egress";
/// Name of the single-entry array of [`NsConfig`].
pub const MAP_NS_CONFIG: &str = "NETLAB_NS_CONFIG";
/// The bit set in every [`ns_key`]; the kernel's interface indexes (positive `int`s) never
/// have it.
pub const NS_KEY_BIT: u32 = 1 << 31;

/// What the programs of other namespaces' interfaces count and report an interface under,
/// in place of its index: indexes repeat across namespaces (each sandbox numbers its own
/// bridge 2, as the host may number its uplink), so the index is mixed with the inode
/// number of the interface's namespace. Computed alike by the programs and user space; a
/// multiplicative hash, so two keys of one host collide with odds of about n²/2³², which
/// user space checks before it attaches.
pub const fn ns_key(netns: u32, ifindex: u32) -> u32 {
    let x = (((netns as u64) << 32) | ifindex as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    NS_KEY_BIT | (x >> 33) as u32
}

/// Where the programs of other namespaces' interfaces find an interface's namespace,
/// written by user space from the running kernel's BTF.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NsConfig {
    /// 0: the programs do nothing.
    pub active: u32,
    /// Offset of `struct sk_buff` member `dev`.
    pub skb_dev: u32,
    /// Offset of `struct net_device` member `nd_net.net`.
    pub dev_net: u32,
    /// Offset of `struct net` member `ns.inum`.
    pub net_inum: u32,
}

/// Entries of [`MAP_VXLAN_COUNTERS`].
pub const VXLAN_COUNTER_ENTRIES: u32 = 4096;

/// Key of the VXLAN packet counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VxlanKey {
    /// Interface index (of the host interface the encapsulated frame crossed).
    pub ifindex: u32,
    /// The VXLAN network identifier (24 bits).
    pub vni: u32,
    /// One of [`direction`].
    pub direction: u8,
    /// One of [`kind`], of the inner packet.
    pub kind: u8,
    pub _pad: [u8; 2],
}

/// Byte offset of the `record` field, the same in every event struct.
pub const RECORD_OFFSET: usize = 24;

/// Key of the exact packet counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CounterKey {
    /// Interface index in the network namespace the program is attached in.
    pub ifindex: u32,
    /// One of [`direction`].
    pub direction: u8,
    /// One of [`kind`].
    pub kind: u8,
    pub _pad: [u8; 2],
}

/// One interface's exact packet counters, by direction then kind (one element of
/// [`MAP_SLOT_COUNTERS`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotCounters {
    pub n: [[u64; kind::COUNT as usize]; 2],
}

impl Default for SlotCounters {
    fn default() -> Self {
        SlotCounters {
            n: [[0; kind::COUNT as usize]; 2],
        }
    }
}

/// The [`MAP_IF_SLOTS`] cell of interface `ifindex` says it has slot `slot`.
pub const fn slot_cell(ifindex: u32, slot: u32) -> u64 {
    ((ifindex as u64) << 32) | slot as u64
}

/// Run-time settings written by user space before attaching.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Emit one event in every `sample_every` packets (per CPU); 1 = every packet.
    pub sample_every: u32,
    /// Maximum events per second per CPU; 0 = unlimited.
    pub rate_per_cpu: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sample_every: 1,
            rate_per_cpu: 0,
        }
    }
}

/// Per-CPU sampling and rate-limit state, kept in the kernel only.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SampleState {
    /// Packets seen on this CPU since the last sample (for 1-in-N sampling: the N-th is
    /// sampled and this starts again from 0).
    pub seen: u64,
    /// Start of the current one-second window (monotonic ns).
    pub window_start_ns: u64,
    /// Events emitted in the current window.
    pub window_events: u64,
    /// Packets counted but not sampled because of 1-in-N sampling, on this CPU. Here
    /// rather than in the statistics array: the state above is in the cache line already.
    pub sampled_out: u64,
}

/// A sampled frame, as written to the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PacketEvent {
    /// `bpf_ktime_get_ns()` when the program ran (CLOCK_MONOTONIC).
    pub ts_ns: u64,
    /// Interface the program is attached to.
    pub ifindex: u32,
    /// Length of the whole frame on the wire (`skb->len`).
    pub pkt_len: u32,
    /// Sampling rate in force when this event was emitted (1-in-N).
    pub sample_rate: u32,
    /// Bytes of `data` that are valid (at most [`SNAP_LEN`]).
    pub cap_len: u16,
    /// One of [`direction`].
    pub direction: u8,
    /// One of [`kind`], as classified in the kernel.
    pub kind: u8,
    /// One of [`record`].
    pub record: u16,
    /// One of [`encap`]: how the packet of `kind` was carried in the frame.
    pub encap: u8,
    pub _pad: [u8; 5],
    /// The first `cap_len` bytes of the frame, from the Ethernet header.
    pub data: [u8; SNAP_LEN],
}

/// Where to find things at run time, written by user space from the running kernel's
/// tracefs format and BTF (so one binary works across kernel versions).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropConfig {
    /// 0: the program does nothing.
    pub enabled: u32,
    /// Offsets of the `skb:kfree_skb` tracepoint fields.
    pub tp_skbaddr: u32,
    pub tp_location: u32,
    pub tp_protocol: u32,
    pub tp_reason: u32,
    /// Offsets of `struct sk_buff` members.
    pub skb_len: u32,
    pub skb_head: u32,
    pub skb_network_header: u32,
    pub skb_dev: u32,
    /// Offset of `struct net_device` member `ifindex`.
    pub dev_ifindex: u32,
    /// Offset of `struct net_device` member `nd_net.net`.
    pub dev_net: u32,
    /// Offset of `struct net` member `ns.inum`.
    pub net_inum: u32,
    /// Offset of `struct sk_buff` member `data`.
    pub skb_data: u32,
    /// A drop reason (the kernel's value of `NO_SOCKET`) whose ICMP and ICMPv6 echo
    /// replies are counted by reason but not reported: `ping_rcv` frees every reply that
    /// a raw-socket ping already took a copy of, so under a ping flood these would fill
    /// the ring with reports nobody is shown. 0: report every drop.
    pub quiet_reason: u32,
    /// Offset of `struct sk_buff` member `protocol` (read by the raw tracepoint, whose
    /// arguments do not carry it).
    pub skb_protocol: u32,
    /// The VXLAN UDP port whose dropped datagrams are looked into (a Swarm node's data
    /// path): one carrying ARP or ICMP is reported as that packet's drop. 0: none.
    pub vxlan_port: u32,
    /// 1: `struct sk_buff` has the layout every kernel since 4.x has around `protocol`
    /// ([`SKB_WINDOW_LAYOUT`]), so the raw tracepoint reads `protocol`, `network_header`,
    /// `head` and `data` in one read of [`SKB_WINDOW_LEN`] bytes from `skb_protocol`; 0:
    /// one read each.
    pub skb_window: u32,
    pub _pad: u32,
    /// Kernels without drop reasons (before 5.17): echo replies freed in these two address
    /// ranges (`icmp_rcv`, `ping_rcv`: start, end, start, end) are the quiet ones instead.
    pub quiet_ranges: [u64; 4],
}

/// Offsets, from `struct sk_buff`'s `protocol`, of `network_header`, `head` and `data`,
/// where [`DropConfig::skb_window`] reads them (`protocol`, `transport_header`,
/// `network_header`, `mac_header`, `tail`, `end`, `head`, `data`, back to back).
pub const SKB_WINDOW_LAYOUT: [u32; 3] = [4, 16, 24];
/// Bytes of that read.
pub const SKB_WINDOW_LEN: u32 = 32;

/// [`DropConfig::tp_reason`] when the tracepoint has no `reason` field (before Linux 5.17).
pub const NO_REASON_FIELD: u32 = u32::MAX;
/// The reason a drop is counted under when the kernel gives none.
pub const REASON_UNKNOWN: u32 = DROP_REASON_SLOTS - 1;

/// What the cover programs need, written by user space from the running kernel's BTF.
///
/// Between a veth joining an observed bridge and netlab's tc programs running on it (an
/// attach waits for RCU grace periods, tens of milliseconds, and a container may send
/// sooner), raw tracepoints on `netif_receive_skb` (just before tc ingress) and
/// `net_dev_queue` (just after tc egress) count the packets of the hooks in [`MAP_COVER`];
/// a per-CPU note tells the tc program and the tracepoint which of them counted a packet,
/// so none is counted twice (see `netlab-ebpf/src/cover.rs`).
///
/// A busy host's user space may hear of a new port after its first packets, so the kernel
/// finds new ports of the bridges in [`MAP_COVER_BRIDGES`] itself: a program on
/// `netdev_master_upper_dev_link` adds a port to [`MAP_COVER`] as it joins (and sets
/// `active`), or, where no such program may run, the tracepoints look up the master of
/// each packet's device (`find_ports`) and count those of observed bridges' ports not
/// [`HANDED_OVER`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoverConfig {
    /// 0: the map is empty, every program returns at once.
    pub active: u32,
    /// Offsets of `struct sk_buff` members.
    pub skb_len: u32,
    pub skb_data_len: u32,
    pub skb_head: u32,
    pub skb_data: u32,
    pub skb_mac_header: u32,
    pub skb_dev: u32,
    /// Offset of `struct net_device` member `ifindex`.
    pub dev_ifindex: u32,
    /// Offset of `struct net_device` member `nd_net.net`.
    pub dev_net: u32,
    /// Offset of `struct net` member `ns.inum`.
    pub net_inum: u32,
    /// Inode number of the network namespace netlab observes: interface indexes repeat
    /// across namespaces, so a covered index counts only there.
    pub netns: u32,
    /// 1: the tracepoints cover every port of an observed bridge not handed over.
    pub find_ports: u32,
    /// Offset of `struct net_device` member `adj_list.upper` (a `list_head`).
    pub dev_upper: u32,
    /// Offsets of `struct netdev_adjacent` members `list`, `master` and `dev`.
    pub adj_list: u32,
    pub adj_master: u32,
    pub adj_dev: u32,
}

/// A packet the kernel dropped, as written to the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DropEvent {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC).
    pub ts_ns: u64,
    /// Index of `skb->dev` in its namespace (0: no device).
    pub ifindex: u32,
    /// Bytes of the packet from its network header to its end (where it was dropped).
    pub pkt_len: u32,
    /// `enum skb_drop_reason` value.
    pub reason: u32,
    /// Bytes of `data` that are valid.
    pub cap_len: u16,
    /// Ethertype of the packet (host order), from the tracepoint.
    pub protocol: u16,
    /// [`record::DROP`]; same offset as in [`PacketEvent`].
    pub record: u16,
    /// One of [`encap`]: with `VXLAN`, `data` is the outer IPv4 header on, and the
    /// dropped ARP or ICMP packet is the inner frame.
    pub encap: u8,
    pub _pad: u8,
    /// Inode number of the network namespace of `skb->dev` (0: unknown).
    pub netns: u32,
    /// Kernel address of the function that dropped it.
    pub location: u64,
    /// The packet from its network header on (IPv4, IPv6 or ARP header first).
    pub data: [u8; SNAP_LEN],
}

const _: () = assert!(core::mem::size_of::<CounterKey>() == 8);
const _: () = assert!(core::mem::size_of::<VxlanKey>() == 12);
const _: () = assert!(core::mem::size_of::<SlotCounters>() == 2 * 8 * kind::COUNT as usize);
const _: () = assert!(IF_SLOT_CELLS.is_power_of_two());
const _: () = assert!(core::mem::size_of::<DropConfig>() == 104);
const _: () = assert!(core::mem::size_of::<CoverConfig>() == 64);
const _: () = assert!(core::mem::size_of::<DropEvent>() == 40 + SNAP_LEN);
const _: () = assert!(core::mem::offset_of!(PacketEvent, record) == RECORD_OFFSET);
const _: () = assert!(core::mem::offset_of!(DropEvent, record) == RECORD_OFFSET);
const _: () = assert!(core::mem::size_of::<Config>() == 8);
const _: () = assert!(core::mem::size_of::<NsConfig>() == 16);
const _: () = assert!(core::mem::size_of::<SampleState>() == 32);
const _: () = assert!(core::mem::size_of::<PacketEvent>() == 32 + SNAP_LEN);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: each type is `#[repr(C)]`, made of integers and byte arrays only, with every
    // padding byte spelled out as a field, so any bit pattern is a valid value.
    unsafe impl aya::Pod for super::CounterKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::VxlanKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Config {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SlotCounters {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SampleState {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::PacketEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::DropConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::CoverConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::DropEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::NsConfig {}
}

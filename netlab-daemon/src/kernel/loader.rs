//! Loading the embedded eBPF object, configuring it and reading its maps.
//!
//! [`Datapath`] owns the loaded object. Its jobs, one file each: `loader/programs.rs` the
//! two tc programs (attaching them to an interface), `loader/drops.rs` the `skb:kfree_skb`
//! program and the kernel's drop reasons, `loader/cover.rs` the programs that count a new
//! bridge port's packets until its tc programs run, `loader/maps.rs` the packet counters,
//! delivery statistics and the sample ring, `loader/slots.rs` the counter slots, and
//! `loader/pins.rs` what the daemon pins of the object so that a restart of the same build
//! re-verifies nothing.

use aya::{
    maps::{Array, MapError},
    programs::{ProgramError, SchedClassifier},
    Ebpf, EbpfError,
};
use netlab_common::{Config, CoverConfig, MAP_CONFIG, MAP_VXLAN_PORT, PROG_EGRESS, PROG_INGRESS};

use crate::kernel::btf::{self, KernelBtf};

mod cover;
mod drops;
mod maps;
mod pins;
mod programs;
mod slots;

use cover::{CoverLink, EnslaveLink};
use drops::DropLink;

pub use cover::COVER_VIA_ENV;
pub use drops::{DropReasons, UNKNOWN_REASON};
pub use maps::DeliveryStats;
pub use pins::{is_object_dir, remove_object_dir, Pins};
pub use slots::pinned_slot_counters;

/// The eBPF object built from `netlab-ebpf` by build.rs.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netlab-ebpf"));

/// Errors from loading the programs and reading their maps.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The object could not be parsed or its maps created.
    #[error("cannot load the eBPF object")]
    Object(#[source] EbpfError),
    /// A program the object should hold is missing or of the wrong type.
    #[error("the eBPF object has no tc program {0}")]
    MissingProgram(&'static str),
    /// The verifier or the kernel refused a program.
    #[error("the kernel refused program {name}")]
    Program {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    /// The verifier rejected a program (its log is printed with RUST_LOG=debug).
    #[error("the kernel refused program {name} (RUST_LOG=debug shows the verifier log)")]
    Verifier {
        name: &'static str,
        #[source]
        io_error: std::io::Error,
    },
    /// The kernel's BTF, which a program attached by function name needs, is unreadable.
    #[error("cannot read the kernel's BTF for program {name}")]
    KernelBtf {
        name: &'static str,
        #[source]
        source: aya::BtfError,
    },
    /// The running kernel does not describe what the drop program needs.
    #[error("cannot locate kernel structures for drop tracing")]
    Btf(#[source] btf::BtfError),
    /// A field the drop program needs is missing from the tracepoint.
    #[error("the skb:kfree_skb tracepoint has no field {0}")]
    TracepointField(&'static str),
    /// The drop program's link could not be pinned, or an earlier pin removed.
    #[error("pinning the drop program's link at {}", path.display())]
    PinDrops {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The running kernel is older than netlab supports.
    #[error(
        "Linux {found} is older than {}.{}, the oldest netlab runs on (it needs the BPF ring buffer)",
        MIN_KERNEL.0,
        MIN_KERNEL.1
    )]
    KernelTooOld { found: String },
    /// A loaded program's file descriptor could not be duplicated.
    #[error("cannot duplicate the descriptor of program {name}")]
    ProgramFd {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A map is missing or could not be read or written.
    #[error("map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
}

/// The loaded programs and their maps. Dropping it detaches the drop tracepoint unless
/// its link is pinned (tc attachments are owned by their
/// [`Attachment`](crate::kernel::attach::Attachment) values).
pub struct Datapath {
    /// Declared before `ebpf`: the link goes before the program.
    kfree_link: Option<DropLink>,
    /// The cover programs' links, when they run (see [`Datapath::enable_cover`]).
    cover_links: Option<Vec<CoverLink>>,
    /// The program that covers a port as it joins an observed bridge, when it runs.
    enslave_link: Option<EnslaveLink>,
    /// Their configuration, once written.
    cover_cfg: Option<CoverConfig>,
    /// Which interface counts in which counter slot.
    slots: slots::Slots,
    /// Where maps and programs are pinned (the daemon).
    pins: Option<Pins>,
    /// Whether the programs for other namespaces' interfaces are loaded and configured.
    ns_ready: bool,
    /// The running kernel's BTF (5 MB), parsed once for all of set-up and let go with
    /// [`Datapath::release_btf`].
    btf: Option<KernelBtf>,
    /// The same as aya reads it, to load BTF-typed and fentry programs against: parsed on
    /// the first such program that is not taken from a pin, kept for the others, let go
    /// with [`Datapath::release_btf`].
    aya_btf: Option<aya::Btf>,
    /// Whether the BTF-typed drop program's `sk_buff` offsets were set
    /// ([`netlab_common::GLOBAL_SKB_OFFSETS`]); it is not loaded otherwise.
    skb_offsets: bool,
    /// Whether the BTF-typed cover programs' offsets were set
    /// ([`netlab_common::GLOBAL_COVER_OFFSETS`]); they are not loaded otherwise.
    cover_offsets: bool,
    ebpf: Ebpf,
}

/// The error of a program the kernel refused; the verifier's log (hundreds of lines) goes
/// to the debug log, so the error stays one line.
fn refused(name: &'static str) -> impl Fn(ProgramError) -> LoadError {
    move |source| match source {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            log::debug!("verifier output for {name}:\n{verifier_log}");
            LoadError::Verifier { name, io_error }
        }
        source => LoadError::Program { name, source },
    }
}

fn map_err(name: &'static str) -> impl Fn(MapError) -> LoadError {
    move |source| LoadError::Map { name, source }
}

/// Which programs beside the tc ones a session will want (see [`Datapath::load_in`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Wanted {
    /// The drop program (drop reports).
    pub drops: bool,
    /// The cover programs (following new bridge ports).
    pub cover: bool,
}

/// The oldest kernel netlab runs on: the BPF ring buffer came with 5.8 (tested on 5.10).
pub const MIN_KERNEL: (u32, u32) = (5, 8);

/// Refuses a kernel older than [`MIN_KERNEL`], given its release (`uname -r`).
pub fn check_kernel(release: &str) -> Result<(), LoadError> {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let have = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if have < MIN_KERNEL {
        return Err(LoadError::KernelTooOld {
            found: release.trim().to_owned(),
        });
    }
    Ok(())
}

impl Datapath {
    /// Loads both tc programs into the kernel and writes `config`.
    pub fn load(config: Config) -> Result<Self, LoadError> {
        Self::load_in(config, None, Wanted::default())
    }

    /// Like [`Datapath::load`]; with `pins` (the daemon), the maps live in bpffs there: the
    /// counters are reused from any earlier run (so counts survive a restart), the programs
    /// and the rest of the maps from an earlier run of the same build (see [`Pins`]).
    /// `wanted`: the programs beside the tc ones that will be wanted, whose BTF-typed
    /// variants' offsets are read from the kernel's BTF now, while the object can still
    /// take them.
    pub fn load_in(config: Config, pins: Option<&Pins>, wanted: Wanted) -> Result<Self, LoadError> {
        if let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
            check_kernel(&release)?;
        }
        // A global's section is written with the object's value when the map is made or
        // taken from its pin: give it the value the pinned map holds, so that a restart does
        // not stop the running programs from looking into VXLAN until the first rescan.
        let vxlan_port = pins
            .and_then(|p| pinned_u32(&p.map(MAP_VXLAN_PORT)))
            .unwrap_or(0)
            .to_ne_bytes();
        let mut loader = aya::EbpfLoader::new();
        loader.override_global(netlab_common::GLOBAL_VXLAN_PORT, &vxlan_port, true);
        let paths: Vec<(&str, std::path::PathBuf)> = pins
            .map(|p| {
                pins::COUNTS
                    .iter()
                    .chain(pins::STATE.iter())
                    .map(|m| (*m, p.map(m)))
                    .collect()
            })
            .unwrap_or_default();
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        // Parsed here once, for the drop and cover programs' offsets too.
        let kbtf = (wanted.drops || wanted.cover)
            .then(KernelBtf::from_sys_fs)
            .transpose()
            .inspect_err(|e| log::debug!("{e}: the drop and cover programs read by helper calls"))
            .ok()
            .flatten();
        let skb_offsets = kbtf.as_ref().filter(|_| wanted.drops).and_then(skb_offsets);
        if let Some(off) = &skb_offsets {
            loader.override_global(netlab_common::GLOBAL_SKB_OFFSETS, off.as_slice(), true);
        }
        let cover_offsets = kbtf
            .as_ref()
            .filter(|_| wanted.cover)
            .and_then(cover_offsets);
        if let Some(off) = &cover_offsets {
            loader.override_global(netlab_common::GLOBAL_COVER_OFFSETS, off.as_slice(), true);
        }
        let ebpf = loader.load(EBPF_OBJECT).map_err(LoadError::Object)?;
        let mut dp = Self {
            kfree_link: None,
            cover_links: None,
            enslave_link: None,
            cover_cfg: None,
            slots: slots::Slots::default(),
            pins: pins.cloned(),
            ns_ready: false,
            btf: kbtf,
            aya_btf: None,
            skb_offsets: skb_offsets.is_some(),
            cover_offsets: cover_offsets.is_some(),
            ebpf,
        };
        {
            let map = dp
                .ebpf
                .map_mut(MAP_CONFIG)
                .ok_or(LoadError::MissingProgram(MAP_CONFIG))?;
            let mut cfg: Array<_, Config> = Array::try_from(map).map_err(map_err(MAP_CONFIG))?;
            cfg.set(0, config, 0).map_err(map_err(MAP_CONFIG))?;
        }
        for name in [PROG_INGRESS, PROG_EGRESS] {
            dp.load_or_reuse(name, |p| {
                let prog: &mut SchedClassifier =
                    p.try_into().map_err(|_| LoadError::MissingProgram(name))?;
                prog.load().map_err(refused(name))
            })?;
        }
        if pins.is_some() {
            dp.read_slots()?;
        }
        Ok(dp)
    }

    /// The running kernel's BTF, parsed on first use and kept until
    /// [`Datapath::release_btf`].
    fn kernel_btf(&mut self) -> Result<&KernelBtf, LoadError> {
        if self.btf.is_none() {
            self.btf = Some(KernelBtf::from_sys_fs().map_err(LoadError::Btf)?);
        }
        Ok(self.btf.as_ref().expect("just set"))
    }

    /// Lets the kernel's BTF go once set-up is done with it, and gives its pages back
    /// rather than carry them as resident heap for the life of the process.
    pub fn release_btf(&mut self) {
        let aya = self.aya_btf.take().is_some();
        if self.btf.take().is_some() || aya {
            release_freed_memory();
        }
    }
}

/// The first value of the one-entry u32 array map pinned at `path`, if there is one.
fn pinned_u32(path: &std::path::Path) -> Option<u32> {
    let data = aya::maps::MapData::from_pin(path).ok()?;
    let a: Array<_, u32> = Array::try_from(aya::maps::Map::Array(data)).ok()?;
    a.get(&0, 0).ok()
}

/// The offsets in `struct sk_buff` of `protocol`, `network_header`, `head` and `data`, then
/// of `sk_protocol` in `struct sock` when `skb:kfree_skb` passes the socket that dropped the
/// packet (`rx_sk`; else 0), as [`netlab_common::GLOBAL_SKB_OFFSETS`] holds them; `None`
/// when the kernel's BTF lacks one of the first four.
fn skb_offsets(kbtf: &KernelBtf) -> Option<[u32; 5]> {
    let mut out = [0; 5];
    for (slot, field) in out
        .iter_mut()
        .zip(["protocol", "network_header", "head", "data"])
    {
        *slot = kbtf
            .member_offset("sk_buff", &[field])
            .inspect_err(|e| log::debug!("{e}: the drop program reads sk_buff by helper calls"))
            .ok()?;
    }
    out[4] = rx_sk_protocol(kbtf).unwrap_or(0);
    Some(out)
}

/// The offsets of `sk_buff.dev`, `net_device.ifindex`, `net_device.nd_net.net` and
/// `net.ns.inum`, as [`netlab_common::GLOBAL_COVER_OFFSETS`] holds them; `None` when the
/// kernel's BTF lacks one.
fn cover_offsets(kbtf: &KernelBtf) -> Option<[u32; 4]> {
    let fields: [(&str, &[&str]); 4] = [
        ("sk_buff", &["dev"]),
        ("net_device", &["ifindex"]),
        ("net_device", &["nd_net", "net"]),
        ("net", &["ns", "inum"]),
    ];
    let mut out = [0; 4];
    for (slot, (ty, path)) in out.iter_mut().zip(fields) {
        *slot = kbtf
            .member_offset(ty, path)
            .inspect_err(|e| log::debug!("{e}: the cover programs read by helper calls"))
            .ok()?;
    }
    Some(out)
}

/// The offset of `sk_protocol` in `struct sock`, when the tracepoint's record has `rx_sk`
/// (its arguments then end with that socket). Both from the BTF already parsed: the record
/// is `struct trace_event_raw_kfree_skb` there, so tracefs is not read a second time.
fn rx_sk_protocol(kbtf: &KernelBtf) -> Option<u32> {
    kbtf.member_offset("trace_event_raw_kfree_skb", &["rx_sk"])
        .ok()?;
    kbtf.member_offset("sock", &["sk_protocol"])
        .inspect_err(|e| log::debug!("{e}: drops at a socket are told by their packet"))
        .ok()
        .filter(|&off| off != 0)
}

/// The daemon's allocator settings (glibc's malloc), set while the process is still
/// single-threaded:
///
/// - One arena. By default each thread that allocates gets an arena of its own (up to 8
///   per CPU), and what start-up leaves in each (Docker's answers parsed on the runtime's
///   workers, the topology built on a blocking thread) stays resident between the live
///   data. The daemon's threads allocate little once started (the per-event path reuses its
///   buffers), so they do not contend for the one arena.
/// - Fixed thresholds. glibc raises its mmap threshold to the largest block freed so far and
///   then keeps up to twice that free at the top of the heap: once the kernel's BTF (5.5 MB)
///   was freed, the heap kept up to 11 MB of whatever a later burst (a rescan, a large API
///   answer) had freed. Setting the trim threshold (to glibc's starting value) stops that:
///   blocks of 128 KiB and more are mapped and unmapped, and the top of the heap is given
///   back beyond 128 KiB.
///
/// BENCH.md (part 6) has what each saves.
pub(crate) fn tune_malloc() {
    #[cfg(target_env = "gnu")]
    for (what, param, value) in [
        ("one arena", libc::M_ARENA_MAX, 1),
        ("a fixed trim threshold", libc::M_TRIM_THRESHOLD, 128 * 1024),
    ] {
        // SAFETY: mallopt only sets one of glibc's allocator parameters; called before any
        // other thread exists, it races with no allocation.
        if unsafe { libc::mallopt(param, value) } != 1 {
            log::debug!("cannot give malloc {what}");
        }
    }
}

/// Returns free heap pages to the kernel (glibc keeps them otherwise: large one-off
/// buffers freed at start-up, like the kernel's BTF, would stay resident for good).
pub(crate) fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks glibc's own free lists; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon of the same build takes the pinned map of the VXLAN port global over with
    /// the value the last daemon set, so the programs it keeps running go on looking into
    /// VXLAN before its first rescan sets the port again.
    #[test]
    fn a_reload_from_pins_keeps_the_vxlan_port() {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            println!("skipping: loading programs needs root");
            return;
        }
        let dir = std::path::PathBuf::from(format!(
            "/sys/fs/bpf/netlab-loader-test-{}",
            std::process::id()
        ));
        if let Err(e) = crate::kernel::bpffs::ensure(&dir) {
            println!("skipping: {e}");
            return;
        }
        let pins = Pins::under(&dir);
        pins.create().expect("pin directories");
        let mut first =
            Datapath::load_in(Config::default(), Some(&pins), Wanted::default()).expect("loads");
        first.set_vxlan_port(4789).expect("sets the port");
        drop(first);
        let second =
            Datapath::load_in(Config::default(), Some(&pins), Wanted::default()).expect("reloads");
        let kept = pinned_u32(&pins.map(MAP_VXLAN_PORT));
        drop(second);
        std::fs::remove_dir_all(&dir).expect("the pins removed");
        assert_eq!(kept, Some(4789));
    }

    #[test]
    fn kernels_older_than_5_8_are_refused_in_one_line() {
        assert!(check_kernel("5.10.0-46-cloud-amd64").is_ok());
        assert!(check_kernel("6.18.44-fc-v782\n").is_ok());
        assert!(check_kernel("5.8.0").is_ok());
        let e = check_kernel("4.19.0-27-amd64").expect_err("4.19");
        let text = e.to_string();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("Linux 4.19.0-27-amd64 is older than 5.8"),
            "{text}"
        );
        assert!(check_kernel("5.7.19").is_err());
        assert!(check_kernel("garbage").is_err());
    }
}

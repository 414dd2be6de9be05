//! Loading the embedded eBPF object, configuring it and reading its maps.

use std::collections::BTreeMap;

use aya::{
    maps::{Array, HashMap as BpfHashMap, MapData, MapError, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::{
        fentry::FEntryLink,
        kprobe::KProbeLink,
        links::{FdLink, PinnedLink},
        raw_trace_point::RawTracePointLink,
        trace_point::TracePointLink,
        FEntry, KProbe, ProgramError, RawTracePoint, SchedClassifier, TracePoint,
    },
    Ebpf, EbpfError,
};
use netlab_common::{
    direction, stat, Config, CounterKey, CoverConfig, DropConfig, COVERED_BY_KERNEL,
    COVERED_BY_USER, DROP_REASON_SLOTS, HANDED_OVER, MAP_CONFIG, MAP_COUNTERS, MAP_COVER,
    MAP_COVER_BRIDGES, MAP_COVER_CONFIG, MAP_DROP_CONFIG, MAP_DROP_REASONS, MAP_EVENTS, MAP_STATS,
    PROG_COVER_EGRESS, PROG_COVER_ENSLAVE, PROG_COVER_ENSLAVE_KPROBE, PROG_COVER_INGRESS,
    PROG_EGRESS, PROG_INGRESS, PROG_KFREE_SKB,
};

use crate::kernel::btf::{self, KernelBtf};

use crate::kernel::attach::{self, AttachError, AttachMode, Attachment};
use crate::model::kind::{Direction, Kind};

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
    /// A map is missing or could not be read or written.
    #[error("map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
}

/// Delivery statistics summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeliveryStats {
    /// Samples lost because the ring buffer was full.
    pub ring_full: u64,
    /// Samples dropped by the in-kernel rate limit.
    pub rate_limited: u64,
    /// Packets counted but not sampled (1-in-N sampling; not a loss).
    pub sampled_out: u64,
    /// Drop reports lost because the ring buffer was full.
    pub drop_ring_full: u64,
}

impl DeliveryStats {
    /// Samples that were due but never reached user space.
    pub fn lost(&self) -> u64 {
        self.ring_full + self.rate_limited + self.drop_ring_full
    }
}

/// Names of the kernel's drop reasons (`NETFILTER_DROP`), by value.
#[derive(Clone, Debug, Default)]
pub struct DropReasons(BTreeMap<u32, String>);

/// What a drop's reason is called when the kernel gives none (before Linux 5.17).
pub const UNKNOWN_REASON: &str = "unknown";

impl DropReasons {
    /// A kernel without drop reasons: every drop's reason is [`UNKNOWN_REASON`].
    pub fn unknown() -> Self {
        DropReasons(BTreeMap::from([(
            netlab_common::REASON_UNKNOWN,
            UNKNOWN_REASON.to_owned(),
        )]))
    }

    /// From `enum skb_drop_reason` (`SKB_DROP_REASON_` stripped).
    pub fn from_enum(values: Vec<(String, u64)>) -> Self {
        DropReasons(
            values
                .into_iter()
                .filter_map(|(n, v)| {
                    let v = u32::try_from(v).ok()?;
                    Some((v, n.trim_start_matches("SKB_DROP_REASON_").to_owned()))
                })
                .collect(),
        )
    }

    /// The value of the reason named `name` (without `SKB_DROP_REASON_`).
    pub fn value_of(&self, name: &str) -> Option<u32> {
        self.0.iter().find(|(_, n)| *n == name).map(|(v, _)| *v)
    }

    /// The name of `reason`, or its number when the kernel did not name it.
    pub fn name(&self, reason: u32) -> String {
        self.0
            .get(&reason)
            .cloned()
            .unwrap_or_else(|| format!("reason-{reason}"))
    }
}

/// The loaded programs and their maps. Dropping it detaches the drop tracepoint unless
/// its link is pinned (tc attachments are owned by their [`Attachment`] values).
pub struct Datapath {
    /// Declared before `ebpf`: the link goes before the program.
    kfree_link: Option<DropLink>,
    /// The cover programs' links, when they run (see [`Datapath::enable_cover`]).
    cover_links: Option<Vec<RawTracePointLink>>,
    /// The program that covers a port as it joins an observed bridge, when it runs.
    enslave_link: Option<EnslaveLink>,
    /// Their configuration, once written.
    cover_cfg: Option<CoverConfig>,
    ebpf: Ebpf,
}

/// The link of the program on `netdev_master_upper_dev_link`. Held, never read.
enum EnslaveLink {
    FEntry(#[expect(dead_code, reason = "held only for its Drop, which detaches")] FEntryLink),
    KProbe(#[expect(dead_code, reason = "held only for its Drop, which detaches")] KProbeLink),
}

/// The drop program's link: owned by this process, or pinned in bpffs (it stays attached
/// when the process goes, and keeps counting drops by reason into the pinned map). Held,
/// never read: dropping it is what detaches (or closes our handle).
enum DropLink {
    Owned(#[expect(dead_code, reason = "held only for its Drop, which detaches")] TracePointLink),
    Pinned(
        #[expect(dead_code, reason = "held only for its Drop, which closes our handle")] PinnedLink,
    ),
}

fn cover_key(ifindex: u32, direction: u8) -> CounterKey {
    CounterKey {
        ifindex,
        direction,
        kind: 0,
        _pad: [0; 2],
    }
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

/// Names the first way to try of covering new ports as they join (tests).
pub const COVER_VIA_ENV: &str = "NETLAB_COVER_VIA";

/// Every bridge port joins its bridge through this function.
const ENSLAVE_FUNCTION: &str = "netdev_master_upper_dev_link";

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
        Self::load_pinned(config, None)
    }

    /// Like [`Datapath::load`]; with `pin_dir`, the counter maps live in bpffs there and
    /// are reused from an earlier run (so counts survive a restart).
    pub fn load_pinned(
        config: Config,
        pin_dir: Option<&std::path::Path>,
    ) -> Result<Self, LoadError> {
        if let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
            check_kernel(&release)?;
        }
        let mut loader = aya::EbpfLoader::new();
        let paths: Vec<(&str, std::path::PathBuf)> = pin_dir
            .map(|d| {
                [MAP_COUNTERS, MAP_STATS, MAP_DROP_REASONS]
                    .into_iter()
                    .map(|m| (m, d.join(m)))
                    .collect()
            })
            .unwrap_or_default();
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader.load(EBPF_OBJECT).map_err(LoadError::Object)?;
        {
            let map = ebpf
                .map_mut(MAP_CONFIG)
                .ok_or(LoadError::MissingProgram(MAP_CONFIG))?;
            let mut cfg: Array<_, Config> = Array::try_from(map).map_err(map_err(MAP_CONFIG))?;
            cfg.set(0, config, 0).map_err(map_err(MAP_CONFIG))?;
        }
        for name in [PROG_INGRESS, PROG_EGRESS] {
            let prog: &mut SchedClassifier = ebpf
                .program_mut(name)
                .and_then(|p| p.try_into().ok())
                .ok_or(LoadError::MissingProgram(name))?;
            prog.load().map_err(refused(name))?;
        }
        Ok(Self {
            kfree_link: None,
            cover_links: None,
            enslave_link: None,
            cover_cfg: None,
            ebpf,
        })
    }

    /// Loads and attaches the `skb:kfree_skb` program, configured from the running
    /// kernel's tracefs format and BTF. Returns the names of the kernel's drop reasons.
    pub fn enable_drops(&mut self, quiet_ranges: [u64; 4]) -> Result<DropReasons, LoadError> {
        self.enable_drops_pinned(None, quiet_ranges)
    }

    /// [`Datapath::enable_drops`]; with `pin`, the link is pinned at that path so that
    /// drops are counted by reason while no daemon runs. A link an earlier run pinned there
    /// is detached just before this one attaches: a drop in between is not counted, none is
    /// counted twice.
    pub fn enable_drops_pinned(
        &mut self,
        pin: Option<&std::path::Path>,
        quiet_ranges: [u64; 4],
    ) -> Result<DropReasons, LoadError> {
        let fields = btf::tracepoint_fields("skb", "kfree_skb").map_err(LoadError::Btf)?;
        let field = |name: &'static str| {
            btf::field(&fields, name)
                .map(|f| f.offset)
                .ok_or(LoadError::TracepointField(name))
        };
        let kbtf = KernelBtf::from_sys_fs().map_err(LoadError::Btf)?;
        let off = |s: &str, path: &[&str]| kbtf.member_offset(s, path).map_err(LoadError::Btf);
        // Drop reasons exist from Linux 5.17 on (the tracepoint's `reason` field and its
        // enum); before, every drop is reported with an unknown reason, never a wrong one.
        let tp_reason = btf::field(&fields, "reason").map(|f| f.offset);
        let reasons = match (tp_reason, kbtf.enum_values("skb_drop_reason")) {
            (Some(_), Ok(values)) => DropReasons::from_enum(values),
            (Some(_), Err(e)) => return Err(LoadError::Btf(e)),
            (None, _) => {
                log::info!(
                    "this kernel's skb:kfree_skb has no drop reason (Linux 5.17 and later have one): drops are reported with reason unknown"
                );
                DropReasons::unknown()
            }
        };
        let cfg = DropConfig {
            enabled: 1,
            tp_skbaddr: field("skbaddr")?,
            tp_location: field("location")?,
            tp_protocol: field("protocol")?,
            tp_reason: tp_reason.unwrap_or(netlab_common::NO_REASON_FIELD),
            skb_len: off("sk_buff", &["len"])?,
            skb_head: off("sk_buff", &["head"])?,
            skb_network_header: off("sk_buff", &["network_header"])?,
            skb_dev: off("sk_buff", &["dev"])?,
            dev_ifindex: off("net_device", &["ifindex"])?,
            dev_net: off("net_device", &["nd_net", "net"])?,
            net_inum: off("net", &["ns", "inum"])?,
            skb_data: off("sk_buff", &["data"])?,
            quiet_reason: reasons.value_of("NO_SOCKET").unwrap_or(0),
            quiet_ranges,
        };
        // The BTF blob (~5 MB) and its index are done with: give their pages back now
        // rather than carry them as resident heap for the life of the process.
        drop(kbtf);
        release_freed_memory();
        {
            let map = self
                .ebpf
                .map_mut(MAP_DROP_CONFIG)
                .ok_or(LoadError::MissingProgram(MAP_DROP_CONFIG))?;
            let mut c: Array<_, DropConfig> =
                Array::try_from(map).map_err(map_err(MAP_DROP_CONFIG))?;
            c.set(0, cfg, 0).map_err(map_err(MAP_DROP_CONFIG))?;
        }
        let prog: &mut TracePoint = self
            .ebpf
            .program_mut(PROG_KFREE_SKB)
            .and_then(|p| p.try_into().ok())
            .ok_or(LoadError::MissingProgram(PROG_KFREE_SKB))?;
        let name = PROG_KFREE_SKB;
        prog.load().map_err(refused(name))?;
        let pin_err = |path: &std::path::Path| {
            let path = path.to_owned();
            move |source| LoadError::PinDrops { path, source }
        };
        if let Some(path) = pin {
            // The pin is the only reference a stopped daemon left: removing it detaches.
            match std::fs::remove_file(path) {
                Ok(()) => log::debug!("detached the drop program pinned at {}", path.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(pin_err(path)(e)),
            }
        }
        let id = prog
            .attach("skb", "kfree_skb")
            .map_err(|source| LoadError::Program { name, source })?;
        let link = prog
            .take_link(id)
            .map_err(|source| LoadError::Program { name, source })?;
        self.kfree_link = Some(match pin {
            None => DropLink::Owned(link),
            Some(path) => {
                let link =
                    FdLink::try_from(link).map_err(|e| pin_err(path)(std::io::Error::other(e)))?;
                let pinned = link
                    .pin(path)
                    .map_err(|e| pin_err(path)(std::io::Error::other(e)))?;
                DropLink::Pinned(pinned)
            }
        });
        Ok(reasons)
    }

    /// Loads and attaches the cover programs (raw tracepoints on `netif_receive_skb` and
    /// `net_dev_queue`), idle until [`Datapath::cover`] names a hook: they count a new
    /// bridge port's packets until its tc programs run.
    pub fn enable_cover(&mut self) -> Result<(), LoadError> {
        let kbtf = KernelBtf::from_sys_fs().map_err(LoadError::Btf)?;
        let off = |s: &str, path: &[&str]| kbtf.member_offset(s, path).map_err(LoadError::Btf);
        let cfg = CoverConfig {
            active: 0,
            skb_len: off("sk_buff", &["len"])?,
            skb_data_len: off("sk_buff", &["data_len"])?,
            skb_head: off("sk_buff", &["head"])?,
            skb_data: off("sk_buff", &["data"])?,
            skb_mac_header: off("sk_buff", &["mac_header"])?,
            skb_dev: off("sk_buff", &["dev"])?,
            dev_ifindex: off("net_device", &["ifindex"])?,
            dev_net: off("net_device", &["nd_net", "net"])?,
            net_inum: off("net", &["ns", "inum"])?,
            netns: crate::kernel::links::netns_id(None).map_or(0, |(_, ino)| ino as u32),
            ..CoverConfig::default()
        };
        // Where to find a device's master, for when no program may run on the function
        // every port joins its bridge through.
        let adjacency = (|| -> Result<[u32; 4], btf::BtfError> {
            Ok([
                kbtf.member_offset("net_device", &["adj_list", "upper"])?,
                kbtf.member_offset("netdev_adjacent", &["list"])?,
                kbtf.member_offset("netdev_adjacent", &["master"])?,
                kbtf.member_offset("netdev_adjacent", &["dev"])?,
            ])
        })();
        drop(kbtf);
        release_freed_memory();
        self.write_cover_config(cfg)?;
        let mut links = Vec::with_capacity(2);
        for (name, tracepoint) in [
            (PROG_COVER_INGRESS, "netif_receive_skb"),
            (PROG_COVER_EGRESS, "net_dev_queue"),
        ] {
            let tp: &mut RawTracePoint = self
                .ebpf
                .program_mut(name)
                .and_then(|p| p.try_into().ok())
                .ok_or(LoadError::MissingProgram(name))?;
            tp.load().map_err(refused(name))?;
            let err = |source| LoadError::Program { name, source };
            let id = tp.attach(tracepoint).map_err(err)?;
            links.push(tp.take_link(id).map_err(err)?);
        }
        self.cover_links = Some(links);
        self.cover_cfg = Some(cfg);
        // Without it user space covers new ports when it hears of them, later on a busy
        // host.
        // For tests of each way on one kernel: `fentry`, `kprobe` or `packet` skips the
        // ways before it.
        let via = std::env::var(COVER_VIA_ENV).unwrap_or_default();
        let skip = |why: &str| anyhow::anyhow!("{why} skipped ({COVER_VIA_ENV}={via})");
        let fentry = match via.as_str() {
            "kprobe" | "packet" => Err(skip("fentry")),
            _ => self.enable_enslave_fentry(),
        };
        self.enslave_link = match fentry {
            Ok(link) => {
                log::debug!("new bridge ports are covered as they join (fentry)");
                Some(EnslaveLink::FEntry(link))
            }
            Err(fentry) => match if via == "packet" {
                Err(skip("kprobe"))
            } else {
                self.enable_enslave_kprobe()
            } {
                Ok(link) => {
                    log::debug!(
                        "new bridge ports are covered as they join (kprobe; no BPF trampoline: {fentry:#})"
                    );
                    Some(EnslaveLink::KProbe(link))
                }
                Err(kprobe) => {
                    let why = format!("{fentry:#}; {kprobe:#}");
                    match adjacency {
                        Ok([dev_upper, adj_list, adj_master, adj_dev]) => {
                            log::debug!(
                                "new bridge ports are covered as they join (per packet; {why})"
                            );
                            let find = CoverConfig {
                                active: 1,
                                find_ports: 1,
                                dev_upper,
                                adj_list,
                                adj_master,
                                adj_dev,
                                ..cfg
                            };
                            self.write_cover_config(find)?;
                            self.cover_cfg = Some(find);
                        }
                        Err(e) => log::info!(
                            "new bridge ports are covered once netlab hears of them (on a \
                             busy host a container's first packets may be missed): {why}; {e}"
                        ),
                    }
                    None
                }
            },
        };
        Ok(())
    }

    /// Whether the cover programs find new ports of observed bridges per packet (and
    /// leave alone the hooks [`Datapath::hand_over`] names).
    fn finds_ports(&self) -> bool {
        self.cover_cfg.is_some_and(|c| c.find_ports != 0)
    }

    /// Tells the cover programs that `ifindex`'s tc programs run (they find ports per
    /// packet, see [`Datapath::finds_ports`]); no-op otherwise.
    pub fn hand_over(&mut self, ifindex: u32) -> Result<(), LoadError> {
        if !self.finds_ports() {
            return Ok(());
        }
        self.mark_hooks(ifindex, HANDED_OVER)
    }

    /// Writes `value` for both hooks of `ifindex` in the cover map.
    fn mark_hooks(&mut self, ifindex: u32, value: u8) -> Result<(), LoadError> {
        let mut m = self.cover_map()?;
        for d in [direction::INGRESS, direction::EGRESS] {
            m.insert(cover_key(ifindex, d), value, 0)
                .map_err(map_err(MAP_COVER))?;
        }
        Ok(())
    }

    fn enable_enslave_fentry(&mut self) -> anyhow::Result<FEntryLink> {
        let btf = aya::Btf::from_sys_fs()?;
        let prog: &mut FEntry = self
            .ebpf
            .program_mut(PROG_COVER_ENSLAVE)
            .and_then(|p| p.try_into().ok())
            .ok_or(LoadError::MissingProgram(PROG_COVER_ENSLAVE))?;
        prog.load(ENSLAVE_FUNCTION, &btf)
            .map_err(refused(PROG_COVER_ENSLAVE))?;
        let id = prog.attach()?;
        Ok(prog.take_link(id)?)
    }

    fn enable_enslave_kprobe(&mut self) -> anyhow::Result<KProbeLink> {
        use anyhow::Context as _;
        let prog: &mut KProbe = self
            .ebpf
            .program_mut(PROG_COVER_ENSLAVE_KPROBE)
            .and_then(|p| p.try_into().ok())
            .ok_or(LoadError::MissingProgram(PROG_COVER_ENSLAVE_KPROBE))?;
        prog.load().map_err(refused(PROG_COVER_ENSLAVE_KPROBE))?;
        let id = prog
            .attach(ENSLAVE_FUNCTION, 0)
            .with_context(|| format!("no kprobe on {ENSLAVE_FUNCTION}"))?;
        Ok(prog.take_link(id)?)
    }

    /// Whether a program on the function ports join bridges through lists new ports of
    /// the bridges of [`Datapath::set_cover_bridges`] in the cover map.
    pub fn covers_in_kernel(&self) -> bool {
        self.enslave_link.is_some()
    }

    /// Makes `bridges` (interface indexes) the bridges whose new ports the kernel covers as
    /// they join. No-op when it cannot.
    pub fn set_cover_bridges(
        &mut self,
        bridges: &std::collections::BTreeSet<u32>,
    ) -> Result<(), LoadError> {
        if self.enslave_link.is_none() && !self.finds_ports() {
            return Ok(());
        }
        let map = self
            .ebpf
            .map_mut(MAP_COVER_BRIDGES)
            .ok_or(LoadError::MissingProgram(MAP_COVER_BRIDGES))?;
        let mut m: BpfHashMap<_, u32, u8> =
            BpfHashMap::try_from(map).map_err(map_err(MAP_COVER_BRIDGES))?;
        let now: Vec<u32> = m.keys().filter_map(Result::ok).collect();
        for idx in now.iter().filter(|i| !bridges.contains(i)) {
            match m.remove(idx) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(map_err(MAP_COVER_BRIDGES)(e)),
            }
        }
        for idx in bridges.iter().filter(|i| !now.contains(i)) {
            m.insert(idx, 1, 0).map_err(map_err(MAP_COVER_BRIDGES))?;
        }
        Ok(())
    }

    /// Interfaces the kernel covered on its own as they joined an observed bridge, and
    /// that are still covered.
    pub fn covered_by_kernel(&mut self) -> Result<std::collections::BTreeSet<u32>, LoadError> {
        let m = self.cover_map()?;
        let keys: Vec<CounterKey> = m.keys().filter_map(Result::ok).collect();
        Ok(keys
            .into_iter()
            .filter(|k| m.get(k, 0).is_ok_and(|v| v == COVERED_BY_KERNEL))
            .map(|k| k.ifindex)
            .collect())
    }

    fn read_cover_config(&self) -> Result<CoverConfig, LoadError> {
        let map = self
            .ebpf
            .map(MAP_COVER_CONFIG)
            .ok_or(LoadError::MissingProgram(MAP_COVER_CONFIG))?;
        let c: Array<_, CoverConfig> = Array::try_from(map).map_err(map_err(MAP_COVER_CONFIG))?;
        c.get(&0, 0).map_err(map_err(MAP_COVER_CONFIG))
    }

    fn write_cover_config(&mut self, cfg: CoverConfig) -> Result<(), LoadError> {
        let map = self
            .ebpf
            .map_mut(MAP_COVER_CONFIG)
            .ok_or(LoadError::MissingProgram(MAP_COVER_CONFIG))?;
        let mut c: Array<_, CoverConfig> =
            Array::try_from(map).map_err(map_err(MAP_COVER_CONFIG))?;
        c.set(0, cfg, 0).map_err(map_err(MAP_COVER_CONFIG))
    }

    fn cover_map(&mut self) -> Result<BpfHashMap<&mut MapData, CounterKey, u8>, LoadError> {
        let map = self
            .ebpf
            .map_mut(MAP_COVER)
            .ok_or(LoadError::MissingProgram(MAP_COVER))?;
        BpfHashMap::try_from(map).map_err(map_err(MAP_COVER))
    }

    fn clear_cover_notes(&mut self) -> Result<(), LoadError> {
        const NAME: &str = "NETLAB_COVER_LAST";
        let map = self
            .ebpf
            .map_mut(NAME)
            .ok_or(LoadError::MissingProgram(NAME))?;
        let mut notes: PerCpuArray<_, [u64; 2]> =
            PerCpuArray::try_from(map).map_err(map_err(NAME))?;
        let io = |call: &'static str| {
            move |io_error| LoadError::Map {
                name: NAME,
                source: MapError::SyscallError(aya::sys::SyscallError { call, io_error }),
            }
        };
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| io("nr_cpus")(e))?;
        for slot in 0..2 {
            let zeros = aya::maps::PerCpuValues::try_from(vec![[0u64; 2]; cpus])
                .map_err(io("per-CPU values"))?;
            notes.set(slot, zeros, 0).map_err(map_err(NAME))?;
        }
        Ok(())
    }

    /// Whether the cover programs run.
    pub fn covers(&self) -> bool {
        self.cover_links.is_some()
    }

    /// Counts interface `ifindex`'s packets with the cover programs until the tc programs
    /// attached to it count one (each direction on its own). No-op without them.
    pub fn cover(&mut self, ifindex: u32) -> Result<(), LoadError> {
        let Some(cfg) = self.cover_cfg else {
            return Ok(());
        };
        self.mark_hooks(ifindex, COVERED_BY_USER)?;
        // The kernel may have turned the programs on already (then notes are in use).
        if self.read_cover_config()?.active == 0 {
            // Notes left from before the programs went idle mean nothing any more.
            self.clear_cover_notes()?;
            let on = CoverConfig { active: 1, ..cfg };
            self.write_cover_config(on)?;
            self.cover_cfg = Some(on);
        }
        Ok(())
    }

    /// Stops covering `ifindex`: its tc programs have run long enough (`gone` false: with
    /// [`Datapath::finds_ports`], it is handed over), or it is gone. When nothing is
    /// covered any more, the cover programs go idle (unless they find ports).
    pub fn uncover(&mut self, ifindex: u32, gone: bool) -> Result<(), LoadError> {
        let Some(cfg) = self.cover_cfg else {
            return Ok(());
        };
        if !gone && self.finds_ports() {
            return self.hand_over(ifindex);
        }
        let mut m = self.cover_map()?;
        let mut removed = false;
        for d in [direction::INGRESS, direction::EGRESS] {
            match m.remove(&cover_key(ifindex, d)) {
                Ok(()) => removed = true,
                Err(MapError::KeyNotFound) => {}
                Err(MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(map_err(MAP_COVER)(e)),
            }
        }
        if !removed || cfg.find_ports != 0 || m.keys().next().is_some() {
            return Ok(());
        }
        // The kernel may have turned the programs on behind this copy's back.
        let off = CoverConfig { active: 0, ..cfg };
        self.write_cover_config(off)?;
        self.cover_cfg = Some(off);
        // And may have covered a port since the map was read: then they stay on.
        if self.cover_map()?.keys().next().is_some() {
            let on = CoverConfig { active: 1, ..cfg };
            self.write_cover_config(on)?;
            self.cover_cfg = Some(on);
        }
        Ok(())
    }

    /// Hooks still covered now (the tc program of each has not counted a packet yet).
    pub fn covered(&mut self) -> Result<Vec<(u32, Direction)>, LoadError> {
        let m = self.cover_map()?;
        let keys: Vec<CounterKey> = m.keys().filter_map(Result::ok).collect();
        Ok(keys
            .into_iter()
            .filter(|k| m.get(k, 0).is_ok_and(|v| v != HANDED_OVER))
            .filter_map(|k| Some((k.ifindex, Direction::from_id(k.direction)?)))
            .collect())
    }

    /// Drops seen so far, by reason value (summed over CPUs; zero counts left out).
    pub fn drop_counts(&self) -> Result<BTreeMap<u32, u64>, LoadError> {
        let map = self
            .ebpf
            .map(MAP_DROP_REASONS)
            .ok_or(LoadError::MissingProgram(MAP_DROP_REASONS))?;
        let arr: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map).map_err(map_err(MAP_DROP_REASONS))?;
        let mut out = BTreeMap::new();
        for reason in 0..DROP_REASON_SLOTS {
            let n: u64 = arr
                .get(&reason, 0)
                .map_err(map_err(MAP_DROP_REASONS))?
                .iter()
                .sum();
            if n > 0 {
                out.insert(reason, n);
            }
        }
        Ok(out)
    }

    fn programs(&mut self) -> (&mut SchedClassifier, &mut SchedClassifier) {
        let mut ingress = None;
        let mut egress = None;
        for (name, prog) in self.ebpf.programs_mut() {
            let slot = match name {
                PROG_INGRESS => &mut ingress,
                PROG_EGRESS => &mut egress,
                _ => continue,
            };
            if let Ok(p) = <&mut SchedClassifier>::try_from(prog) {
                *slot = Some(p);
            }
        }
        match (ingress, egress) {
            (Some(i), Some(e)) => (i, e),
            // `load` checked that both exist and are tc programs.
            _ => unreachable!("programs checked at load time"),
        }
    }

    /// Hooks both programs to `iface`.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<Attachment, AttachError> {
        let (ingress, egress) = self.programs();
        attach::attach(ingress, egress, iface, mode)
    }

    /// Hooks both programs to `iface` with netlink filters that stay when the process goes
    /// (see [`attach::attach_netlink_kept`]).
    pub fn attach_kept(
        &mut self,
        iface: &str,
        dir: &std::path::Path,
    ) -> Result<Attachment, AttachError> {
        let idx = attach::ifindex(iface).ok_or_else(|| AttachError::NoSuchInterface {
            iface: iface.to_owned(),
        })?;
        let (ingress, egress) = self.programs();
        attach::attach_netlink_kept(ingress, egress, iface, idx, dir)
    }

    /// The kernel's ids of the two tc programs (ingress, egress): what a hook lists when
    /// they are attached to it.
    pub fn prog_ids(&mut self) -> Result<(u32, u32), LoadError> {
        let (ingress, egress) = self.programs();
        let id = |p: &SchedClassifier, name| {
            p.info()
                .map(|i| i.id())
                .map_err(|source| LoadError::Program { name, source })
        };
        Ok((id(ingress, PROG_INGRESS)?, id(egress, PROG_EGRESS)?))
    }

    /// Duplicates of the two tc programs' file descriptors, for attaching from several
    /// threads at once.
    pub fn prog_fds(&mut self) -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
        use std::os::fd::AsFd as _;
        let (ingress, egress) = self.programs();
        let dup = |p: &SchedClassifier| {
            p.fd()
                .map_err(std::io::Error::other)?
                .as_fd()
                .try_clone_to_owned()
        };
        Ok((dup(ingress)?, dup(egress)?))
    }

    /// Takes the sample ring buffer (once).
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        let map = self
            .ebpf
            .take_map(MAP_EVENTS)
            .ok_or(LoadError::MissingProgram(MAP_EVENTS))?;
        RingBuf::try_from(map).map_err(map_err(MAP_EVENTS))
    }

    /// Exact packet counters, summed over CPUs, for every (ifindex, direction, kind) seen.
    pub fn counters(&self) -> Result<BTreeMap<(u32, Direction, Kind), u64>, LoadError> {
        let map = self
            .ebpf
            .map(MAP_COUNTERS)
            .ok_or(LoadError::MissingProgram(MAP_COUNTERS))?;
        let counters: PerCpuHashMap<_, CounterKey, u64> =
            PerCpuHashMap::try_from(map).map_err(map_err(MAP_COUNTERS))?;
        let mut out = BTreeMap::new();
        for entry in counters.iter() {
            let (key, values) = entry.map_err(map_err(MAP_COUNTERS))?;
            let (Some(dir), Some(kind)) =
                (Direction::from_id(key.direction), Kind::from_id(key.kind))
            else {
                continue;
            };
            let total: u64 = values.iter().sum();
            *out.entry((key.ifindex, dir, kind)).or_insert(0) += total;
        }
        Ok(out)
    }

    /// Removes the counters of interface `ifindex` from the kernel map and returns them
    /// (summed over CPUs), so that a gone interface leaves no entry behind.
    pub fn take_counters(
        &mut self,
        ifindex: u32,
    ) -> Result<BTreeMap<(Direction, Kind), u64>, LoadError> {
        let map = self
            .ebpf
            .map_mut(MAP_COUNTERS)
            .ok_or(LoadError::MissingProgram(MAP_COUNTERS))?;
        let mut counters: PerCpuHashMap<_, CounterKey, u64> =
            PerCpuHashMap::try_from(map).map_err(map_err(MAP_COUNTERS))?;
        let keys: Vec<CounterKey> = counters
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.ifindex == ifindex)
            .collect();
        let mut out = BTreeMap::new();
        for key in keys {
            let Ok(values) = counters.get(&key, 0) else {
                continue;
            };
            if let (Some(dir), Some(kind)) =
                (Direction::from_id(key.direction), Kind::from_id(key.kind))
            {
                *out.entry((dir, kind)).or_insert(0) += values.iter().sum::<u64>();
            }
            counters.remove(&key).map_err(map_err(MAP_COUNTERS))?;
        }
        Ok(out)
    }

    /// Delivery statistics, summed over CPUs.
    pub fn delivery(&self) -> Result<DeliveryStats, LoadError> {
        let map = self
            .ebpf
            .map(MAP_STATS)
            .ok_or(LoadError::MissingProgram(MAP_STATS))?;
        let stats: PerCpuArray<_, u64> = PerCpuArray::try_from(map).map_err(map_err(MAP_STATS))?;
        let slot = |i: u32| -> Result<u64, LoadError> {
            Ok(stats.get(&i, 0).map_err(map_err(MAP_STATS))?.iter().sum())
        };
        Ok(DeliveryStats {
            ring_full: slot(stat::RING_FULL)?,
            rate_limited: slot(stat::RATE_LIMITED)?,
            sampled_out: slot(stat::SAMPLED_OUT)?,
            drop_ring_full: slot(stat::DROP_RING_FULL)?,
        })
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

    #[test]
    fn drop_reasons_by_name_and_value() {
        let r = DropReasons::from_enum(vec![
            ("SKB_NOT_DROPPED_YET".into(), 0),
            ("SKB_DROP_REASON_NO_SOCKET".into(), 3),
            ("SKB_DROP_REASON_NETFILTER_DROP".into(), 12),
            ("SKB_DROP_REASON_TOO_BIG".into(), u64::from(u32::MAX) + 1),
        ]);
        assert_eq!(r.value_of("NO_SOCKET"), Some(3));
        assert_eq!(r.value_of("NETFILTER_DROP"), Some(12));
        assert_eq!(r.value_of("TOO_BIG"), None, "values past u32 are left out");
        assert_eq!(r.value_of("MISSING"), None);
        assert_eq!(r.name(12), "NETFILTER_DROP");
        assert_eq!(r.name(99), "reason-99");
    }
}

//! Covering new bridge ports: raw tracepoints that count a port's packets from the moment
//! it joins an observed bridge until its tc programs run, and the program on the function
//! every port joins its bridge through (fentry, else a kprobe, else found per packet).

use aya::{
    maps::{Array, HashMap as BpfHashMap, MapData, MapError, PerCpuArray},
    programs::{
        fentry::FEntryLink, kprobe::KProbeLink, raw_trace_point::RawTracePointLink,
        tp_btf::BtfTracePointLink, BtfTracePoint, FEntry, KProbe, RawTracePoint,
    },
};
use netlab_common::{
    direction, CounterKey, CoverConfig, COVERED_BY_KERNEL, COVERED_BY_USER, HANDED_OVER, MAP_COVER,
    MAP_COVER_BRIDGES, MAP_COVER_CONFIG, MAP_COVER_LAST, PROG_COVER_EGRESS, PROG_COVER_EGRESS_BTF,
    PROG_COVER_ENSLAVE, PROG_COVER_ENSLAVE_KPROBE, PROG_COVER_INGRESS, PROG_COVER_INGRESS_BTF,
};

use super::{map_err, refused, Datapath, LoadError};
use crate::kernel::btf;
use crate::model::kind::Direction;

/// Names the first way to try of covering new ports as they join (tests).
pub const COVER_VIA_ENV: &str = "NETLAB_COVER_VIA";

/// Every bridge port joins its bridge through this function.
const ENSLAVE_FUNCTION: &str = "netdev_master_upper_dev_link";

/// A cover program's link, BTF-typed or raw. Held, never read.
pub(super) enum CoverLink {
    Btf(#[expect(dead_code, reason = "held only for its Drop, which detaches")] BtfTracePointLink),
    Raw(#[expect(dead_code, reason = "held only for its Drop, which detaches")] RawTracePointLink),
}

/// The two cover programs and their tracepoints: BTF-typed, then raw.
const COVER_BTF: [(&str, &str); 2] = [
    (PROG_COVER_INGRESS_BTF, "netif_receive_skb"),
    (PROG_COVER_EGRESS_BTF, "net_dev_queue"),
];
const COVER_RAW: [(&str, &str); 2] = [
    (PROG_COVER_INGRESS, "netif_receive_skb"),
    (PROG_COVER_EGRESS, "net_dev_queue"),
];

/// The link of the program on `netdev_master_upper_dev_link`. Held, never read.
pub(super) enum EnslaveLink {
    FEntry(#[expect(dead_code, reason = "held only for its Drop, which detaches")] FEntryLink),
    KProbe(#[expect(dead_code, reason = "held only for its Drop, which detaches")] KProbeLink),
}

fn cover_key(ifindex: u32, direction: u8) -> CounterKey {
    CounterKey {
        ifindex,
        direction,
        kind: 0,
        _pad: [0; 2],
    }
}

impl Datapath {
    /// Loads and attaches the cover programs (raw tracepoints on `netif_receive_skb` and
    /// `net_dev_queue`), idle until [`Datapath::cover`] names a hook: they count a new
    /// bridge port's packets until its tc programs run.
    pub fn enable_cover(&mut self) -> Result<(), LoadError> {
        let kbtf = self.kernel_btf()?;
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
        self.write_cover_config(cfg)?;
        if self.pinned_state() {
            // The map may be an earlier daemon's, whose cover programs went with it: start
            // from nothing covered, as a new map would.
            self.clear_cover_map()?;
        }
        let typed = if self.cover_offsets {
            self.attach_cover_btf()
                .inspect_err(|e| {
                    log::debug!("{e}: the cover programs read each packet's device by helper calls")
                })
                .ok()
        } else {
            None
        };
        let links = match typed {
            Some(links) => {
                log::debug!("the cover programs are BTF-typed");
                links
            }
            None => self.attach_cover_raw()?,
        };
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
    /// packet, see `Datapath::finds_ports`); no-op otherwise.
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
        let name = PROG_COVER_ENSLAVE;
        self.load_or_reuse_btf(name, |p, btf| {
            let prog: &mut FEntry = p.try_into().map_err(|_| LoadError::MissingProgram(name))?;
            prog.load(ENSLAVE_FUNCTION, btf).map_err(refused(name))
        })?;
        let prog: &mut FEntry = self
            .ebpf
            .program_mut(name)
            .and_then(|p| p.try_into().ok())
            .ok_or(LoadError::MissingProgram(name))?;
        let id = prog.attach()?;
        Ok(prog.take_link(id)?)
    }

    fn enable_enslave_kprobe(&mut self) -> anyhow::Result<KProbeLink> {
        use anyhow::Context as _;
        let name = PROG_COVER_ENSLAVE_KPROBE;
        self.load_or_reuse(name, |p| {
            let prog: &mut KProbe = p.try_into().map_err(|_| LoadError::MissingProgram(name))?;
            prog.load().map_err(refused(name))
        })?;
        let prog: &mut KProbe = self
            .ebpf
            .program_mut(name)
            .and_then(|p| p.try_into().ok())
            .ok_or(LoadError::MissingProgram(name))?;
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

    /// Removes every entry of the cover map.
    fn clear_cover_map(&mut self) -> Result<(), LoadError> {
        let mut m = self.cover_map()?;
        let keys: Vec<CounterKey> = m.keys().filter_map(Result::ok).collect();
        for k in &keys {
            match m.remove(k) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(map_err(MAP_COVER)(e)),
            }
        }
        Ok(())
    }

    fn clear_cover_notes(&mut self) -> Result<(), LoadError> {
        const NAME: &str = MAP_COVER_LAST;
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

    /// Loads and attaches the BTF-typed cover programs (their offsets were set at load).
    fn attach_cover_btf(&mut self) -> Result<Vec<CoverLink>, LoadError> {
        let mut links = Vec::with_capacity(2);
        for (name, tracepoint) in COVER_BTF {
            self.load_or_reuse_btf(name, |p, btf| {
                let tp: &mut BtfTracePoint =
                    p.try_into().map_err(|_| LoadError::MissingProgram(name))?;
                tp.load(tracepoint, btf).map_err(refused(name))
            })?;
            let tp: &mut BtfTracePoint = self
                .ebpf
                .program_mut(name)
                .and_then(|p| p.try_into().ok())
                .ok_or(LoadError::MissingProgram(name))?;
            let err = |source| LoadError::Program { name, source };
            let id = tp.attach().map_err(err)?;
            links.push(CoverLink::Btf(tp.take_link(id).map_err(err)?));
        }
        Ok(links)
    }

    /// Loads and attaches the raw cover programs.
    fn attach_cover_raw(&mut self) -> Result<Vec<CoverLink>, LoadError> {
        let mut links = Vec::with_capacity(2);
        for (name, tracepoint) in COVER_RAW {
            self.load_or_reuse(name, |p| {
                let tp: &mut RawTracePoint =
                    p.try_into().map_err(|_| LoadError::MissingProgram(name))?;
                tp.load().map_err(refused(name))
            })?;
            let tp: &mut RawTracePoint = self
                .ebpf
                .program_mut(name)
                .and_then(|p| p.try_into().ok())
                .ok_or(LoadError::MissingProgram(name))?;
            let err = |source| LoadError::Program { name, source };
            let id = tp.attach(tracepoint).map_err(err)?;
            links.push(CoverLink::Raw(tp.take_link(id).map_err(err)?));
        }
        Ok(links)
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
    /// `Datapath::finds_ports`, it is handed over), or it is gone. When nothing is
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
}

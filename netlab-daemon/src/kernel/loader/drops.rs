//! Drop reports: the `skb:kfree_skb` program, configured from the running kernel's
//! tracefs format and BTF, its link (owned or pinned), and the names and counts of the
//! kernel's drop reasons.

use std::collections::BTreeMap;

use aya::{
    maps::{Array, PerCpuArray},
    programs::{
        links::{FdLink, PinnedLink},
        raw_trace_point::RawTracePointLink,
        tp_btf::BtfTracePointLink,
        trace_point::TracePointLink,
        BtfTracePoint, RawTracePoint, TracePoint,
    },
};
use netlab_common::{
    DropConfig, DROP_REASON_SLOTS, MAP_DROP_CONFIG, MAP_DROP_REASONS, PROG_KFREE_SKB,
    PROG_KFREE_SKB_BTF, PROG_KFREE_SKB_RAW,
};

use super::{map_err, refused, Datapath, LoadError};
use crate::kernel::btf;

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

/// The drop program's link: owned by this process, or pinned in bpffs (it stays attached
/// when the process goes, and keeps counting drops by reason into the pinned map). Held,
/// never read: dropping it is what detaches (or closes our handle).
pub(super) enum DropLink {
    /// The classic tracepoint's link; dropping it detaches.
    Owned(TracePointLink),
    /// The raw tracepoint's link; dropping it detaches.
    OwnedRaw(RawTracePointLink),
    /// The BTF-typed tracepoint's link; dropping it detaches.
    OwnedBtf(BtfTracePointLink),
    /// Pinned: dropping it closes our handle only.
    Pinned(
        #[expect(dead_code, reason = "held only for its Drop, which closes our handle")] PinnedLink,
    ),
}

impl Datapath {
    /// Loads and attaches the `skb:kfree_skb` program, configured from the running
    /// kernel's tracefs format and BTF. Returns the names of the kernel's drop reasons.
    pub fn enable_drops(&mut self, quiet_ranges: [u64; 4]) -> Result<DropReasons, LoadError> {
        self.enable_drops_pinned(None, quiet_ranges)
    }

    /// [`Datapath::enable_drops`]; with `pin`, the link is pinned at that path so that
    /// drops are counted by reason while no daemon runs. A link an earlier run of the same
    /// build pinned there runs this very program and stays; one of another build is
    /// detached just before this one attaches: a drop in between is not counted, none is
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
        let kbtf = self.kernel_btf()?;
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
            skb_protocol: off("sk_buff", &["protocol"])?,
            vxlan_port: 0,
            skb_window: 0,
            _pad: 0,
            quiet_ranges,
        };
        let cfg = DropConfig {
            skb_window: u32::from(skb_window_fits(&cfg)),
            ..cfg
        };
        {
            let map = self
                .ebpf
                .map_mut(MAP_DROP_CONFIG)
                .ok_or(LoadError::MissingProgram(MAP_DROP_CONFIG))?;
            let mut c: Array<_, DropConfig> =
                Array::try_from(map).map_err(map_err(MAP_DROP_CONFIG))?;
            c.set(0, cfg, 0).map_err(map_err(MAP_DROP_CONFIG))?;
        }
        let pin_err = |path: &std::path::Path| {
            let path = path.to_owned();
            move |source| LoadError::PinDrops { path, source }
        };
        let candidates: &[&'static str] = match tp_reason {
            Some(_) => &[PROG_KFREE_SKB_BTF, PROG_KFREE_SKB_RAW, PROG_KFREE_SKB],
            None => &[PROG_KFREE_SKB],
        };
        if let Some(link) = pin.and_then(|path| self.keep_pinned_drop_link(path, candidates)) {
            self.kfree_link = Some(link);
            return Ok(reasons);
        }
        if let Some(path) = pin {
            // The pin is the only reference a stopped daemon left: removing it detaches.
            match std::fs::remove_file(path) {
                Ok(()) => log::debug!("detached the drop program pinned at {}", path.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(pin_err(path)(e)),
            }
        }
        // With a reason in its arguments (5.17 on), a program the kernel calls with the
        // arguments, without building the classic tracepoint's record for every freed
        // packet first: the BTF-typed one (no helper call to test a packet) when its
        // offsets are set and the verifier takes it, else the raw one.
        let link = match tp_reason {
            Some(_) => {
                let typed = if self.skb_offsets {
                    self.attach_kfree_btf()
                } else {
                    Err(LoadError::MissingProgram(PROG_KFREE_SKB_BTF))
                };
                typed
                    .or_else(|e| {
                        log::debug!("{e}; using the raw tracepoint");
                        self.attach_kfree_raw()
                    })
                    .or_else(|e| {
                        log::debug!("{e}; using the classic tracepoint");
                        self.attach_kfree_classic()
                    })?
            }
            None => self.attach_kfree_classic()?,
        };
        self.kfree_link = Some(match pin {
            None => link,
            Some(path) => {
                let fd = match link {
                    DropLink::Owned(l) => {
                        FdLink::try_from(l).map_err(|e| pin_err(path)(std::io::Error::other(e)))?
                    }
                    DropLink::OwnedRaw(l) => FdLink::from(l),
                    DropLink::OwnedBtf(l) => FdLink::from(l),
                    pinned @ DropLink::Pinned(_) => {
                        self.kfree_link = Some(pinned);
                        return Ok(reasons);
                    }
                };
                let pinned = fd
                    .pin(path)
                    .map_err(|e| pin_err(path)(std::io::Error::other(e)))?;
                DropLink::Pinned(pinned)
            }
        });
        Ok(reasons)
    }

    /// The drop link an earlier daemon of this build pinned at `path`, when it runs one of
    /// this build's pinned `candidates`: it stays as it is (no drop goes uncounted), and
    /// that program is the one this daemon holds.
    fn keep_pinned_drop_link(
        &mut self,
        path: &std::path::Path,
        candidates: &[&'static str],
    ) -> Option<DropLink> {
        use crate::kernel::tcx;
        use std::os::fd::AsFd as _;
        let pins = self.pins.clone()?;
        let (runs, _) = tcx::obj_get(path)
            .and_then(|l| tcx::link_prog_and_ifindex(l.as_fd()))
            .ok()?;
        let name = candidates.iter().copied().find(|name| {
            tcx::obj_get(&pins.prog(name))
                .and_then(|p| tcx::prog_id(p.as_fd()))
                .is_ok_and(|id| id == runs)
        })?;
        // Pinned: it is taken as it is, nothing loads.
        self.load_or_reuse(name, |_| Err(LoadError::MissingProgram(name)))
            .ok()?;
        let link = PinnedLink::from_pin(path).ok()?;
        log::debug!("kept the drop program's link pinned at {}", path.display());
        Some(DropLink::Pinned(link))
    }

    /// Loads and attaches the classic `skb:kfree_skb` tracepoint program.
    fn attach_kfree_classic(&mut self) -> Result<DropLink, LoadError> {
        let name = PROG_KFREE_SKB;
        self.load_or_reuse(name, |p| {
            let prog: &mut TracePoint =
                p.try_into().map_err(|_| LoadError::MissingProgram(name))?;
            prog.load().map_err(refused(name))
        })?;
        let prog: &mut TracePoint = self
            .ebpf
            .program_mut(name)
            .and_then(|p| p.try_into().ok())
            .ok_or(LoadError::MissingProgram(name))?;
        let id = prog
            .attach("skb", "kfree_skb")
            .map_err(|source| LoadError::Program { name, source })?;
        prog.take_link(id)
            .map(DropLink::Owned)
            .map_err(|source| LoadError::Program { name, source })
    }

    /// Loads and attaches the `kfree_skb` BTF-typed tracepoint program.
    fn attach_kfree_btf(&mut self) -> Result<DropLink, LoadError> {
        let name = PROG_KFREE_SKB_BTF;
        self.load_or_reuse_btf(name, |p, btf| {
            let prog: &mut BtfTracePoint =
                p.try_into().map_err(|_| LoadError::MissingProgram(name))?;
            prog.load("kfree_skb", btf).map_err(refused(name))
        })?;
        let prog: &mut BtfTracePoint = self
            .ebpf
            .program_mut(name)
            .and_then(|p| p.try_into().ok())
            .ok_or(LoadError::MissingProgram(name))?;
        let id = prog
            .attach()
            .map_err(|source| LoadError::Program { name, source })?;
        prog.take_link(id)
            .map(DropLink::OwnedBtf)
            .map_err(|source| LoadError::Program { name, source })
    }

    /// Loads and attaches the `kfree_skb` raw tracepoint program.
    fn attach_kfree_raw(&mut self) -> Result<DropLink, LoadError> {
        let name = PROG_KFREE_SKB_RAW;
        self.load_or_reuse(name, |p| {
            let prog: &mut RawTracePoint =
                p.try_into().map_err(|_| LoadError::MissingProgram(name))?;
            prog.load().map_err(refused(name))
        })?;
        let prog: &mut RawTracePoint = self
            .ebpf
            .program_mut(name)
            .and_then(|p| p.try_into().ok())
            .ok_or(LoadError::MissingProgram(name))?;
        let id = prog
            .attach("kfree_skb")
            .map_err(|source| LoadError::Program { name, source })?;
        prog.take_link(id)
            .map(DropLink::OwnedRaw)
            .map_err(|source| LoadError::Program { name, source })
    }

    /// Drops seen so far, by reason value (summed over CPUs; zero counts left out).
    /// Has the drop program look into dropped UDP datagrams to `port` (a Swarm node's
    /// VXLAN port) for the ARP or ICMP packet they carry; 0: not at all (no Swarm, no cost
    /// for other UDP). Nothing when drops are off.
    pub fn set_drop_vxlan_port(&mut self, port: u16) -> Result<(), LoadError> {
        let Some(map) = self.ebpf.map_mut(MAP_DROP_CONFIG) else {
            return Ok(());
        };
        let mut c: Array<_, DropConfig> = Array::try_from(map).map_err(map_err(MAP_DROP_CONFIG))?;
        let mut cfg = c.get(&0, 0).map_err(map_err(MAP_DROP_CONFIG))?;
        if cfg.enabled == 0 || cfg.vxlan_port == u32::from(port) {
            return Ok(());
        }
        cfg.vxlan_port = u32::from(port);
        c.set(0, cfg, 0).map_err(map_err(MAP_DROP_CONFIG))
    }

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
}

/// Whether `cfg`'s `sk_buff` offsets have the layout the raw tracepoint reads in one go
/// ([`netlab_common::SKB_WINDOW_LAYOUT`] from `protocol`).
fn skb_window_fits(cfg: &DropConfig) -> bool {
    let [nh, head, data] = netlab_common::SKB_WINDOW_LAYOUT;
    let at = |off: u32| cfg.skb_protocol.checked_add(off);
    at(nh) == Some(cfg.skb_network_header)
        && at(head) == Some(cfg.skb_head)
        && at(data) == Some(cfg.skb_data)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Offsets of `struct sk_buff` as BTF gives them on 6.18 (protocol at 176, then
    /// network_header at 180, head at 192, data at 200); any other layout reads one by one.
    #[test]
    fn the_one_read_window_needs_the_usual_layout() {
        let usual = DropConfig {
            skb_protocol: 176,
            skb_network_header: 180,
            skb_head: 192,
            skb_data: 200,
            ..DropConfig::default()
        };
        assert!(skb_window_fits(&usual));
        for moved in [
            DropConfig {
                skb_network_header: 182,
                ..usual
            },
            DropConfig {
                skb_head: 200,
                skb_data: 192,
                ..usual
            },
            DropConfig {
                skb_protocol: u32::MAX,
                ..usual
            },
        ] {
            assert!(!skb_window_fits(&moved), "{moved:?}");
        }
    }
}

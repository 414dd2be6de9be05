//! What the daemon pins of the loaded object, so that a restart re-verifies nothing.
//!
//! Loading netlab's programs is most of a restart's work: the verifier walks the cover
//! programs alone for hundreds of milliseconds. A daemon therefore pins every program it
//! loaded, and every map those programs share, in a directory named after the embedded
//! object (`object-<hash>/progs`, `object-<hash>/maps`). The next daemon of the same build
//! opens them from there instead of loading them, and finds its pinned links already
//! running the very programs it would attach: they are kept as they are, not even updated.
//! A daemon of another build finds no directory of its name, loads afresh and moves the
//! links onto its own programs; the directories of other builds are removed once it has.
//!
//! The counts that survive restarts whatever the build (`maps/`) are not part of this.

use std::path::{Path, PathBuf};

use aya::programs::{
    BtfTracePoint, FEntry, KProbe, ProbeKind, Program, RawTracePoint, SchedClassifier, TracePoint,
};
use netlab_common::{
    MAP_CONFIG, MAP_COUNTERS, MAP_COVER, MAP_COVER_BRIDGES, MAP_COVER_CONFIG, MAP_COVER_LAST,
    MAP_COVER_SCRATCH, MAP_DROP_CONFIG, MAP_DROP_REASONS, MAP_EVENTS, MAP_IF_SLOTS, MAP_NS_CONFIG,
    MAP_RING_WAKE, MAP_SAMPLING, MAP_SLOT_COUNTERS, MAP_STATS, MAP_VXLAN_COUNTERS, MAP_VXLAN_PORT,
};

use super::{Datapath, LoadError, EBPF_OBJECT};

/// Maps whose counts survive every restart, whatever the build (under `maps/`): the
/// counters (in slots or in the hash), which interface has which slot, the delivery
/// statistics, the drops by reason and the packets seen inside VXLAN.
pub(super) const COUNTS: [&str; 6] = [
    MAP_COUNTERS,
    MAP_IF_SLOTS,
    MAP_SLOT_COUNTERS,
    MAP_STATS,
    MAP_DROP_REASONS,
    MAP_VXLAN_COUNTERS,
];

/// Every other map of the object: state its programs share with each other and with user
/// space. Pinned with the programs of one build.
pub(super) const STATE: [&str; 12] = [
    MAP_EVENTS,
    MAP_NS_CONFIG,
    MAP_VXLAN_PORT,
    MAP_RING_WAKE,
    MAP_CONFIG,
    MAP_SAMPLING,
    MAP_COVER,
    MAP_COVER_CONFIG,
    MAP_COVER_BRIDGES,
    MAP_COVER_SCRATCH,
    MAP_COVER_LAST,
    MAP_DROP_CONFIG,
];

/// Prefix of the directory of one build's programs and state maps.
const OBJECT_PREFIX: &str = "object-";

/// FNV-1a, 64 bits: a name for the embedded object that two builds of the same eBPF code
/// share (nothing here needs it to resist collisions made on purpose).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Where a daemon pins what outlives it, under its pin directory.
#[derive(Clone, Debug)]
pub struct Pins {
    root: PathBuf,
    /// Maps whose counts survive every restart.
    pub maps: PathBuf,
    /// This build's programs and state maps.
    object: PathBuf,
}

impl Pins {
    /// The layout under the daemon's pin directory `root`.
    pub fn under(root: &Path) -> Self {
        Pins {
            root: root.to_owned(),
            maps: root.join("maps"),
            object: root.join(object_dir_name(EBPF_OBJECT)),
        }
    }

    /// Creates the directories (maps must have one to be pinned in).
    pub fn create(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.maps)?;
        std::fs::create_dir_all(self.object.join("maps"))?;
        std::fs::create_dir_all(self.object.join("progs"))
    }

    /// Where map `name` is pinned. A global's section (`.bss.vxlan_port`) is pinned
    /// without its dots (`bss_vxlan_port`): bpffs keeps names with a dot for itself.
    pub(super) fn map(&self, name: &str) -> PathBuf {
        if COUNTS.contains(&name) {
            self.maps.join(name)
        } else {
            let file = name.trim_start_matches('.').replace('.', "_");
            self.object.join("maps").join(file)
        }
    }

    /// Where program `name` is pinned.
    pub(super) fn prog(&self, name: &str) -> PathBuf {
        self.object.join("progs").join(name)
    }

    /// Removes the pinned programs and state maps of other builds (once nothing of this
    /// daemon's runs them: programs still attached somewhere live on without their pin).
    pub fn remove_other_builds(&self) {
        let ours = self.object.file_name();
        for e in std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name();
            if name.to_string_lossy().starts_with(OBJECT_PREFIX) && Some(name.as_os_str()) != ours {
                log::debug!("removing the pins of another build: {}", e.path().display());
                if let Err(err) = remove_object_dir(&e.path()) {
                    log::warn!("cannot remove {}: {err}", e.path().display());
                }
            }
        }
    }
}

/// `object-<hash of the object>`.
fn object_dir_name(object: &[u8]) -> String {
    format!("{OBJECT_PREFIX}{:016x}", fnv1a(object))
}

/// Whether `name` (an entry of a pin directory) holds one build's programs and maps.
pub fn is_object_dir(name: &str) -> bool {
    name.starts_with(OBJECT_PREFIX)
}

/// Removes one build's directory: its pinned programs and maps, then the directories.
/// Returns how many pins it removed.
pub fn remove_object_dir(dir: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for sub in ["progs", "maps"] {
        let d = dir.join(sub);
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            std::fs::remove_file(e.path())?;
            removed += 1;
        }
        std::fs::remove_dir(&d)?;
    }
    std::fs::remove_dir(dir)?;
    Ok(removed)
}

/// The program pinned at `path`, of the same kind as `like`.
fn from_pin(like: &Program, path: &Path) -> Result<Program, aya::programs::ProgramError> {
    Ok(match like {
        Program::SchedClassifier(_) => Program::SchedClassifier(SchedClassifier::from_pin(path)?),
        Program::RawTracePoint(_) => Program::RawTracePoint(RawTracePoint::from_pin(path)?),
        Program::BtfTracePoint(_) => Program::BtfTracePoint(BtfTracePoint::from_pin(path)?),
        Program::TracePoint(_) => Program::TracePoint(TracePoint::from_pin(path)?),
        Program::FEntry(_) => Program::FEntry(FEntry::from_pin(path)?),
        Program::KProbe(_) => Program::KProbe(KProbe::from_pin(path, ProbeKind::Entry)?),
        _ => return Err(aya::programs::ProgramError::UnexpectedProgramType),
    })
}

impl Datapath {
    /// Makes program `name` ready to attach: the one a daemon of this build pinned, as it
    /// is, or else loads it with `load` (the verifier runs) and pins it for the next daemon.
    /// Returns whether it was the pinned one.
    pub(super) fn load_or_reuse(
        &mut self,
        name: &'static str,
        load: impl FnOnce(&mut Program) -> Result<(), LoadError>,
    ) -> Result<bool, LoadError> {
        let pin = self.pins.as_ref().map(|p| p.prog(name));
        let prog = self
            .ebpf
            .program_mut(name)
            .ok_or(LoadError::MissingProgram(name))?;
        if let Some(path) = pin.as_deref().filter(|p| p.exists()) {
            match from_pin(prog, path) {
                Ok(pinned) => {
                    *prog = pinned;
                    log::debug!(
                        "{name}: the program pinned at {} is this build's",
                        path.display()
                    );
                    return Ok(true);
                }
                Err(e) => {
                    log::debug!("{name}: cannot reuse {}: {e}; loading it", path.display());
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        load(prog)?;
        if let Some(path) = pin {
            if let Err(e) = prog.pin(&path) {
                log::debug!("{name}: cannot pin it at {}: {e}", path.display());
            }
        }
        Ok(false)
    }

    /// [`Datapath::load_or_reuse`] for a program that loads against the kernel's BTF
    /// (BTF-typed tracepoints, fentry): aya's parse of it is made only when a program is
    /// loaded, and once for all of them until [`Datapath::release_btf`].
    pub(super) fn load_or_reuse_btf(
        &mut self,
        name: &'static str,
        load: impl FnOnce(&mut Program, &aya::Btf) -> Result<(), LoadError>,
    ) -> Result<bool, LoadError> {
        let mut btf = self.aya_btf.take();
        let r = self.load_or_reuse(name, |p| {
            let btf = match &mut btf {
                Some(b) => b,
                None => btf.insert(
                    aya::Btf::from_sys_fs()
                        .map_err(|source| LoadError::KernelBtf { name, source })?,
                ),
            };
            load(p, btf)
        });
        self.aya_btf = btf;
        r
    }

    /// Whether the maps and programs come from (and go to) pins of this build.
    pub(super) fn pinned_state(&self) -> bool {
        self.pins.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_of_known_inputs() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            object_dir_name(b"foobar"),
            format!("object-{:016x}", 0x8594_4171_f739_67e8_u64)
        );
        assert_ne!(object_dir_name(b"build 1"), object_dir_name(b"build 2"));
        assert!(is_object_dir(&object_dir_name(EBPF_OBJECT)));
        assert!(!is_object_dir("maps"));
    }

    #[test]
    fn counts_under_maps_state_under_the_build() {
        let p = Pins::under(Path::new("/sys/fs/bpf/netlab"));
        assert_eq!(
            p.map(MAP_COUNTERS),
            Path::new("/sys/fs/bpf/netlab/maps/NETLAB_COUNTERS")
        );
        let events = p.map(MAP_EVENTS);
        assert!(
            events.ends_with("maps/NETLAB_EVENTS"),
            "{}",
            events.display()
        );
        assert!(events
            .parent()
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .is_some_and(|n| is_object_dir(&n.to_string_lossy())));
        assert!(p.prog("netlab_ingress").ends_with("progs/netlab_ingress"));
    }

    #[test]
    fn a_build_directory_goes_whole() {
        let dir = std::env::temp_dir().join(format!("netlab-pins-test-{}", std::process::id()));
        let object = dir.join(object_dir_name(b"old build"));
        std::fs::create_dir_all(object.join("progs")).expect("progs");
        std::fs::create_dir_all(object.join("maps")).expect("maps");
        std::fs::write(object.join("progs/netlab_ingress"), b"").expect("prog");
        std::fs::write(object.join("maps/NETLAB_EVENTS"), b"").expect("map");
        std::fs::create_dir_all(dir.join("maps")).expect("counts");
        std::fs::write(dir.join("maps/NETLAB_COUNTERS"), b"").expect("counts");
        let pins = Pins::under(&dir);
        pins.create().expect("this build's directories");
        pins.remove_other_builds();
        assert!(!object.exists(), "the other build's pins are gone");
        assert!(pins.object.join("progs").is_dir(), "this build's stay");
        assert!(dir.join("maps/NETLAB_COUNTERS").exists(), "counts stay");
        assert_eq!(remove_object_dir(&pins.object).expect("removed"), 0);
        assert!(remove_object_dir(&object).is_err(), "gone already");
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }

    #[test]
    fn a_section_map_is_pinned_without_dots() {
        let pins = Pins::under(Path::new("/sys/fs/bpf/netlab"));
        let path = pins.map(MAP_VXLAN_PORT);
        let file = path.file_name().and_then(|f| f.to_str()).expect("a name");
        assert_eq!(file, "bss_vxlan_port");
        assert!(path.starts_with(&pins.object));
        assert_eq!(pins.map(MAP_EVENTS), pins.object.join("maps/NETLAB_EVENTS"));
        assert_eq!(pins.map(MAP_COUNTERS), pins.maps.join("NETLAB_COUNTERS"));
    }

    /// Every map the object defines is either a count that survives restarts or state
    /// pinned with the build: a map left out would be made anew by each daemon while the
    /// programs it keeps use the old one. Read-only globals are not maps of their own: they
    /// are frozen into `.rodata` at load, and a program taken over from a pin keeps the
    /// values it was loaded with (the same kernel's, as the pins go with a reboot). A
    /// writable global has a section of its own, and that section is the map.
    #[test]
    fn every_map_of_the_object_is_pinned() {
        let globals = [
            netlab_common::GLOBAL_SKB_OFFSETS,
            netlab_common::GLOBAL_COVER_OFFSETS,
            netlab_common::GLOBAL_VXLAN_PORT,
        ];
        let mut found: Vec<String> = EBPF_OBJECT
            .split(|b| *b == 0)
            .filter(|s| {
                s.starts_with(b"NETLAB_") && s.iter().all(|c| c.is_ascii_uppercase() || *c == b'_')
            })
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .filter(|s| !globals.contains(&s.as_str()))
            .collect();
        found.sort();
        found.dedup();
        // The writable globals' sections are maps too: state, pinned with the build.
        let sections: Vec<&str> = STATE
            .iter()
            .copied()
            .filter(|m| m.starts_with('.'))
            .collect();
        assert_eq!(sections, [MAP_VXLAN_PORT]);
        for section in &sections {
            assert!(
                EBPF_OBJECT
                    .windows(section.len() + 1)
                    .any(|w| w[..section.len()] == *section.as_bytes() && w[section.len()] == 0),
                "the object has no section {section}"
            );
        }
        let mut listed: Vec<String> = COUNTS
            .iter()
            .chain(STATE.iter())
            .filter(|m| !m.starts_with('.'))
            .map(|s| (*s).to_owned())
            .collect();
        listed.sort();
        assert_eq!(found, listed);
    }
}

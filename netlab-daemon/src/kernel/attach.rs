//! Attaching the tc programs to an interface, and detaching them again.
//!
//! An [`Attachment`] owns both hooks of one interface; dropping it detaches them and, in
//! netlink mode, removes the `clsact` qdisc if netlab created it.

use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use aya::programs::{
    tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcHandle},
    ProgramError, SchedClassifier, TcAttachType,
};

use crate::kernel::tcx;

/// How programs are hooked to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    /// TCX links where the kernel has them (6.6+), netlink clsact filters otherwise.
    Auto,
    /// TCX links (bpf_link, kernel 6.6+).
    Tcx,
    /// A clsact qdisc with direct-action cls_bpf filters.
    Netlink,
}

impl AttachMode {
    pub const fn name(self) -> &'static str {
        match self {
            AttachMode::Auto => "auto",
            AttachMode::Tcx => "tcx",
            AttachMode::Netlink => "netlink",
        }
    }
}

/// Errors from attaching.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The interface does not exist in this network namespace.
    #[error("no such interface: {iface}")]
    NoSuchInterface { iface: String },
    /// The kernel refused a TCX link.
    #[error("cannot attach to {iface} {hook} (tcx)")]
    Tcx {
        iface: String,
        hook: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused a program on a hook.
    #[error("cannot attach to {iface} {hook} ({mode})")]
    Attach {
        iface: String,
        hook: &'static str,
        mode: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
    /// A link could not be pinned in (or adopted from) bpffs.
    #[error("cannot pin the {hook} link of {iface} at {}", path.display())]
    Pin {
        iface: String,
        hook: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The clsact qdisc needed by netlink mode could not be added.
    #[error("cannot add a clsact qdisc to {iface}")]
    Qdisc {
        iface: String,
        #[source]
        source: Box<tc::TcError>,
    },
}

/// Removes a clsact qdisc that netlab added, when dropped.
#[derive(Debug)]
struct QdiscGuard {
    ifindex: u32,
    iface: String,
}

impl Drop for QdiscGuard {
    fn drop(&mut self) {
        if let Err(e) = crate::kernel::qdisc::delete_clsact(self.ifindex) {
            log::warn!("cannot remove the clsact qdisc of {}: {e}", self.iface);
        }
    }
}

/// One hook's link: a TCX link (a file descriptor: closing it detaches, unless pinned) or
/// a netlink cls_bpf filter.
#[derive(Debug)]
enum Hook {
    Tcx(OwnedFd),
    Netlink(
        #[expect(dead_code, reason = "held only for its Drop, which removes the filter")]
        SchedClassifierLink,
    ),
}

/// Both hooks of one interface. Fields drop in order: links first, then the qdisc.
#[derive(Debug)]
pub struct Attachment {
    ingress: Option<Hook>,
    egress: Option<Hook>,
    qdisc: Option<QdiscGuard>,
    /// Where the links are pinned, when they outlive the process (daemon mode).
    pinned: Option<[PathBuf; 2]>,
    /// Netlink filters the daemon leaves attached when it goes (recorded under this
    /// directory, see [`attach_netlink_kept`]), until `unpin`.
    kept: Option<PathBuf>,
    /// The mode actually used (never `Auto`).
    pub mode: AttachMode,
    pub iface: String,
    pub ifindex: u32,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if self.kept.is_some() {
            // The filters stay and keep counting into the pinned maps; the next daemon
            // replaces their program, `--cleanup` removes them.
            if let Some(h) = self.ingress.take() {
                std::mem::forget(h);
            }
            if let Some(h) = self.egress.take() {
                std::mem::forget(h);
            }
            if let Some(q) = self.qdisc.take() {
                std::mem::forget(q);
            }
            return;
        }
        // Explicit order: the filters must go before the qdisc that holds them. Pinned
        // links stay attached (their pins hold them) until `unpin`.
        drop(self.ingress.take());
        drop(self.egress.take());
        drop(self.qdisc.take());
        log::debug!("released {}", self.iface);
    }
}

/// Priority and handle of the netlink filters the daemon keeps across restarts (`NL`):
/// how the next daemon and `--cleanup` find them, whoever else has filters there.
pub const KEPT_PRIORITY: u16 = 0x4e4c;
/// See [`KEPT_PRIORITY`].
pub const KEPT_HANDLE: TcHandle = TcHandle::new(0, 0x4e4c);

/// The record of an interface's kept netlink filters under `dir` (an empty directory on
/// bpffs, which holds no regular files): `<ifindex>-<iface>-netlink`, with `-clsact`
/// when netlab added the clsact qdisc.
pub fn kept_record(dir: &Path, ifindex: u32, iface: &str, qdisc_ours: bool) -> PathBuf {
    dir.join(format!(
        "{ifindex}-{iface}-netlink{}",
        if qdisc_ours { "-clsact" } else { "" }
    ))
}

/// Parses a [`kept_record`] name: (ifindex, interface, whether netlab added the qdisc).
pub fn parse_kept_record(name: &str) -> Option<(u32, &str, bool)> {
    let (rest, qdisc) = match name.strip_suffix("-clsact") {
        Some(r) => (r, true),
        None => (name, false),
    };
    let rest = rest.strip_suffix("-netlink")?;
    let (idx, iface) = rest.split_once('-')?;
    Some((idx.parse().ok()?, iface, qdisc))
}

/// Netlink filters for the daemon on kernels without TCX: they cannot be pinned, so they
/// are left attached when the daemon goes and keep counting into the pinned maps. Filters
/// an earlier daemon left on `iface` (found by [`KEPT_PRIORITY`] and [`KEPT_HANDLE`]) get
/// the new programs in place (a replace: no packet goes uncounted); otherwise new ones are
/// added, and a record is made under `dir` for `--cleanup`.
pub fn attach_netlink_kept(
    ingress: &mut SchedClassifier,
    egress: &mut SchedClassifier,
    iface: &str,
    ifindex: u32,
    dir: &Path,
) -> Result<Attachment, AttachError> {
    let mut qdisc_ours = false;
    match tc::qdisc_add_clsact(iface) {
        Ok(()) => qdisc_ours = true,
        Err(tc::TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => {}
        Err(source) => {
            return Err(AttachError::Qdisc {
                iface: iface.to_owned(),
                source: Box::new(source),
            })
        }
    }
    // A record from an earlier run says whether that run added the qdisc.
    let earlier = kept_record(dir, ifindex, iface, true);
    if earlier.exists() {
        qdisc_ours = true;
    }
    let hook = |prog: &mut SchedClassifier, at: TcAttachType| -> Result<Hook, AttachError> {
        let name = if at == TcAttachType::Ingress {
            "ingress"
        } else {
            "egress"
        };
        let err = |source: ProgramError| AttachError::Attach {
            iface: iface.to_owned(),
            hook: name,
            mode: "netlink",
            source: Box::new(source),
        };
        if let Ok(old) = SchedClassifierLink::attached(iface, at, KEPT_PRIORITY, KEPT_HANDLE, None)
        {
            if let Ok(id) = prog.attach_to_link(old) {
                return prog.take_link(id).map(Hook::Netlink).map_err(err);
            }
        }
        let id = prog
            .attach_with_options(
                iface,
                at,
                TcAttachOptions::Netlink(NlOptions {
                    priority: KEPT_PRIORITY,
                    handle: KEPT_HANDLE,
                    ..NlOptions::default()
                }),
            )
            .map_err(err)?;
        prog.take_link(id).map(Hook::Netlink).map_err(err)
    };
    let i = hook(ingress, TcAttachType::Ingress)?;
    let e = hook(egress, TcAttachType::Egress)?;
    let record = kept_record(dir, ifindex, iface, qdisc_ours);
    std::fs::create_dir_all(&record).map_err(|source| AttachError::Pin {
        iface: iface.to_owned(),
        hook: "netlink",
        path: record.clone(),
        source,
    })?;
    Ok(Attachment {
        ingress: Some(i),
        egress: Some(e),
        qdisc: qdisc_ours.then(|| QdiscGuard {
            ifindex,
            iface: iface.to_owned(),
        }),
        pinned: None,
        kept: Some(record),
        mode: AttachMode::Netlink,
        iface: iface.to_owned(),
        ifindex,
    })
}

/// Removes the filters a daemon kept on the interface of record `name` (under `dir`) and,
/// when netlab added it, the clsact qdisc, then the record. An interface that is gone took
/// its filters with it.
pub fn remove_kept(dir: &Path, name: &str) -> std::io::Result<()> {
    if let Some((idx, iface, qdisc)) = parse_kept_record(name) {
        if ifindex(iface) == Some(idx) {
            for at in [TcAttachType::Ingress, TcAttachType::Egress] {
                if let Ok(link) =
                    SchedClassifierLink::attached(iface, at, KEPT_PRIORITY, KEPT_HANDLE, None)
                {
                    // Dropping the link removes the filter.
                    drop(link);
                }
            }
            if qdisc {
                crate::kernel::qdisc::delete_clsact(idx)?;
            }
        }
    }
    std::fs::remove_dir(dir.join(name))
}

/// The pin paths of an interface's two links under `dir`.
pub fn pin_paths(dir: &Path, ifindex: u32, iface: &str) -> [PathBuf; 2] {
    [
        dir.join(format!("{ifindex}-{iface}-ingress")),
        dir.join(format!("{ifindex}-{iface}-egress")),
    ]
}

/// Parses a pin file name back into (ifindex, interface name, hook).
pub fn parse_pin_name(name: &str) -> Option<(u32, &str, &str)> {
    let (idx, rest) = name.split_once('-')?;
    let (iface, hook) = rest.rsplit_once('-')?;
    let hook = match hook {
        "ingress" | "egress" => hook,
        _ => return None,
    };
    Some((idx.parse().ok()?, iface, hook))
}

impl Attachment {
    /// Pins both (TCX) links under `dir`, so they stay attached, and keep counting, after
    /// this process exits.
    pub fn pin(mut self, dir: &Path) -> Result<Attachment, AttachError> {
        let paths = pin_paths(dir, self.ifindex, &self.iface);
        for (slot, path, hook) in [
            (&mut self.ingress, &paths[0], "ingress"),
            (&mut self.egress, &paths[1], "egress"),
        ] {
            let Some(Hook::Tcx(fd)) = slot.as_ref() else {
                continue;
            };
            let _ = std::fs::remove_file(path);
            tcx::obj_pin(fd.as_fd(), path).map_err(|source| AttachError::Pin {
                iface: self.iface.clone(),
                hook,
                path: path.clone(),
                source,
            })?;
            // Closing our fd leaves the link held by its pin.
            *slot = None;
        }
        self.pinned = Some(paths);
        Ok(self)
    }

    /// Whether the links are pinned.
    pub fn is_pinned(&self) -> bool {
        self.pinned.is_some()
    }

    /// Attaches `prog` to one hook again with a new TCX link (something else detached the
    /// old one), in place of the old link (and of its pin). The other hook is left alone:
    /// releasing a link and attaching the same program at once can fail with EEXIST while
    /// the kernel frees the old one.
    pub fn replace_hook(&mut self, prog: BorrowedFd<'_>, ingress: bool) -> Result<(), AttachError> {
        let hook = if ingress { "ingress" } else { "egress" };
        let fd =
            tcx::link_create(prog, self.ifindex, ingress).map_err(|source| AttachError::Tcx {
                iface: self.iface.clone(),
                hook,
                source,
            })?;
        let slot = if ingress {
            &mut self.ingress
        } else {
            &mut self.egress
        };
        match &self.pinned {
            Some(paths) => {
                let path = &paths[usize::from(!ingress)];
                // The old pin holds a link that no longer attaches anything.
                let _ = std::fs::remove_file(path);
                tcx::obj_pin(fd.as_fd(), path).map_err(|source| AttachError::Pin {
                    iface: self.iface.clone(),
                    hook,
                    path: path.clone(),
                    source,
                })?;
                *slot = None;
            }
            None => *slot = Some(Hook::Tcx(fd)),
        }
        Ok(())
    }

    /// The interface was renamed: TCX links follow an interface by index, so only the name
    /// (and the names of the pins) change.
    pub fn rename(&mut self, name: &str) {
        if let Some(old) = self.pinned.take() {
            let new = pin_paths(
                old[0].parent().unwrap_or(Path::new("/")),
                self.ifindex,
                name,
            );
            for (from, to) in old.iter().zip(&new) {
                if let Err(e) = std::fs::rename(from, to) {
                    log::warn!("cannot rename {} to {}: {e}", from.display(), to.display());
                }
            }
            self.pinned = Some(new);
        }
        self.iface = name.to_owned();
    }

    /// Removes the pins, which detaches pinned links (and makes kept netlink filters go
    /// with this value).
    pub fn unpin(&mut self) {
        if let Some(record) = self.kept.take() {
            let _ = std::fs::remove_dir(record);
        }
        for p in self.pinned.take().into_iter().flatten() {
            if let Err(e) = std::fs::remove_file(&p) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    log::warn!("cannot remove {}: {e}", p.display());
                }
            }
        }
    }
}

/// Moves the links pinned for `iface` by an earlier run onto these programs (an atomic
/// program replacement: the hooks never go unobserved) and returns the attachment, or
/// `None` when nothing is pinned for it. A link that runs these programs already (an
/// earlier daemon of the same build pinned them, see `kernel/loader/pins.rs`) is kept as
/// it is.
pub fn adopt(
    progs: ProgFds<'_>,
    dir: &Path,
    iface: &str,
    ifindex: u32,
) -> Result<Option<Attachment>, AttachError> {
    let paths = pin_paths(dir, ifindex, iface);
    if !paths.iter().all(|p| p.exists()) {
        return Ok(None);
    }
    for (prog, path, hook) in [
        (progs.ingress, &paths[0], "ingress"),
        (progs.egress, &paths[1], "egress"),
    ] {
        let err = |source| AttachError::Pin {
            iface: iface.to_owned(),
            hook,
            path: path.clone(),
            source,
        };
        let link = tcx::obj_get(path).map_err(err)?;
        let runs = tcx::link_prog_and_ifindex(link.as_fd());
        let ours = tcx::prog_id(prog);
        if !matches!((runs, ours), (Ok((id, idx)), Ok(ours)) if id == ours && idx == ifindex) {
            tcx::link_update(link.as_fd(), prog).map_err(err)?;
        }
        // The pin keeps the link; our handle can go.
    }
    Ok(Some(Attachment {
        ingress: None,
        egress: None,
        qdisc: None,
        pinned: Some(paths),
        kept: None,
        mode: AttachMode::Tcx,
        iface: iface.to_owned(),
        ifindex,
    }))
}

/// The file descriptors of the two loaded programs (shareable across threads).
#[derive(Clone, Copy, Debug)]
pub struct ProgFds<'a> {
    pub ingress: BorrowedFd<'a>,
    pub egress: BorrowedFd<'a>,
}

/// The index of `iface` in the caller's network namespace.
pub fn ifindex(iface: &str) -> Option<u32> {
    let name = std::ffi::CString::new(iface).ok()?;
    // SAFETY: `name` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (idx != 0).then_some(idx)
}

fn tcx_supported() -> bool {
    aya::util::KernelVersion::current().is_ok_and(|v| v >= aya::util::KernelVersion::new(6, 6, 0))
}

/// Whether TCX is the mode `auto` picks on this kernel.
pub fn tcx_by_default() -> bool {
    tcx_supported()
}

/// Attaches `ingress` and `egress` to `iface` with `mode`.
pub fn attach(
    ingress: &mut SchedClassifier,
    egress: &mut SchedClassifier,
    iface: &str,
    mode: AttachMode,
) -> Result<Attachment, AttachError> {
    let idx = ifindex(iface).ok_or_else(|| AttachError::NoSuchInterface {
        iface: iface.to_owned(),
    })?;
    let tcx_fds =
        |i: &SchedClassifier, e: &SchedClassifier| -> Result<(OwnedFd, OwnedFd), AttachError> {
            let dup = |p: &SchedClassifier, hook| {
                p.fd()
                    .map_err(|source| AttachError::Attach {
                        iface: iface.to_owned(),
                        hook,
                        mode: "tcx",
                        source: Box::new(source),
                    })?
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|source| AttachError::Tcx {
                        iface: iface.to_owned(),
                        hook,
                        source,
                    })
            };
            Ok((dup(i, "ingress")?, dup(e, "egress")?))
        };
    let tcx = |ingress: &SchedClassifier, egress: &SchedClassifier| {
        let (i, e) = tcx_fds(ingress, egress)?;
        attach_tcx(
            ProgFds {
                ingress: i.as_fd(),
                egress: e.as_fd(),
            },
            iface,
            idx,
        )
    };
    match mode {
        AttachMode::Tcx => tcx(ingress, egress),
        AttachMode::Netlink => attach_netlink(ingress, egress, iface, idx),
        AttachMode::Auto if tcx_supported() => tcx(ingress, egress).or_else(|e| {
            log::debug!("{e}; falling back to netlink");
            attach_netlink(ingress, egress, iface, idx)
        }),
        AttachMode::Auto => attach_netlink(ingress, egress, iface, idx),
    }
}

fn hook_link(
    prog: &mut SchedClassifier,
    iface: &str,
    hook: TcAttachType,
    options: TcAttachOptions,
    mode: AttachMode,
) -> Result<Hook, AttachError> {
    let err = |source: ProgramError| AttachError::Attach {
        iface: iface.to_owned(),
        hook: match hook {
            TcAttachType::Ingress => "ingress",
            _ => "egress",
        },
        mode: mode.name(),
        source: Box::new(source),
    };
    let id = prog
        .attach_with_options(iface, hook, options)
        .map_err(err)?;
    prog.take_link(id).map_err(err).map(Hook::Netlink)
}

/// Attaches both programs to `ifindex` as TCX links (callable from any thread).
pub fn attach_tcx(
    progs: ProgFds<'_>,
    iface: &str,
    ifindex: u32,
) -> Result<Attachment, AttachError> {
    let link = |prog, ingress: bool| {
        tcx::link_create(prog, ifindex, ingress)
            .map(Hook::Tcx)
            .map_err(|source| AttachError::Tcx {
                iface: iface.to_owned(),
                hook: if ingress { "ingress" } else { "egress" },
                source,
            })
    };
    // Last in the chain: netlab sees what earlier programs let through and, returning
    // "next", changes nothing for programs after it.
    let i = link(progs.ingress, true)?;
    let e = link(progs.egress, false)?;
    Ok(Attachment {
        ingress: Some(i),
        egress: Some(e),
        qdisc: None,
        pinned: None,
        kept: None,
        mode: AttachMode::Tcx,
        iface: iface.to_owned(),
        ifindex,
    })
}

fn attach_netlink(
    ingress: &mut SchedClassifier,
    egress: &mut SchedClassifier,
    iface: &str,
    ifindex: u32,
) -> Result<Attachment, AttachError> {
    let mode = AttachMode::Netlink;
    let qdisc = match tc::qdisc_add_clsact(iface) {
        Ok(()) => Some(QdiscGuard {
            ifindex,
            iface: iface.to_owned(),
        }),
        Err(tc::TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => None,
        Err(source) => {
            return Err(AttachError::Qdisc {
                iface: iface.to_owned(),
                source: Box::new(source),
            })
        }
    };
    // Built field by field so that, on an error below, what was added is removed again.
    let mut att = Attachment {
        ingress: None,
        egress: None,
        qdisc,
        pinned: None,
        kept: None,
        mode,
        iface: iface.to_owned(),
        ifindex,
    };
    att.ingress = Some(hook_link(
        ingress,
        iface,
        TcAttachType::Ingress,
        TcAttachOptions::Netlink(NlOptions::default()),
        mode,
    )?);
    att.egress = Some(hook_link(
        egress,
        iface,
        TcAttachType::Egress,
        TcAttachOptions::Netlink(NlOptions::default()),
        mode,
    )?);
    Ok(att)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_names_round_trip() {
        let [i, e] = pin_paths(Path::new("/sys/fs/bpf/netlab/links"), 7, "veth-ab-1");
        let name = |p: &PathBuf| p.file_name().and_then(|n| n.to_str()).map(str::to_owned);
        assert_eq!(name(&i).as_deref(), Some("7-veth-ab-1-ingress"));
        assert_eq!(
            parse_pin_name("7-veth-ab-1-ingress"),
            Some((7, "veth-ab-1", "ingress"))
        );
        assert_eq!(
            parse_pin_name(&name(&e).unwrap_or_default()),
            Some((7, "veth-ab-1", "egress"))
        );
        assert_eq!(parse_pin_name("x-eth0-ingress"), None);
        assert_eq!(parse_pin_name("7-eth0-sideways"), None);
        assert_eq!(parse_pin_name("garbage"), None);
    }
}

//! Attaching the tc programs to an interface, and detaching them again.
//!
//! An [`Attachment`] owns both hooks of one interface; dropping it detaches them and, in
//! netlink mode, removes the `clsact` qdisc if netlab created it.

use aya::programs::{
    tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions},
    LinkOrder, ProgramError, SchedClassifier, TcAttachType,
};

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
    /// The kernel refused a program on a hook.
    #[error("cannot attach to {iface} {hook} ({mode})")]
    Attach {
        iface: String,
        hook: &'static str,
        mode: &'static str,
        #[source]
        source: Box<ProgramError>,
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
        if let Err(e) = crate::qdisc::delete_clsact(self.ifindex) {
            log::warn!("cannot remove the clsact qdisc of {}: {e}", self.iface);
        }
    }
}

/// Both hooks of one interface. Fields drop in order: links first, then the qdisc.
#[derive(Debug)]
pub struct Attachment {
    ingress: Option<SchedClassifierLink>,
    egress: Option<SchedClassifierLink>,
    qdisc: Option<QdiscGuard>,
    /// The mode actually used (never `Auto`).
    pub mode: AttachMode,
    pub iface: String,
    pub ifindex: u32,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // Explicit order: the filters must go before the qdisc that holds them.
        drop(self.ingress.take());
        drop(self.egress.take());
        drop(self.qdisc.take());
        log::debug!("detached from {}", self.iface);
    }
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
    match mode {
        AttachMode::Tcx => attach_tcx(ingress, egress, iface, idx),
        AttachMode::Netlink => attach_netlink(ingress, egress, iface, idx),
        AttachMode::Auto if tcx_supported() => {
            attach_tcx(ingress, egress, iface, idx).or_else(|e| {
                log::debug!("{e}; falling back to netlink");
                attach_netlink(ingress, egress, iface, idx)
            })
        }
        AttachMode::Auto => attach_netlink(ingress, egress, iface, idx),
    }
}

fn hook_link(
    prog: &mut SchedClassifier,
    iface: &str,
    hook: TcAttachType,
    options: TcAttachOptions,
    mode: AttachMode,
) -> Result<SchedClassifierLink, AttachError> {
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
    prog.take_link(id).map_err(err)
}

fn attach_tcx(
    ingress: &mut SchedClassifier,
    egress: &mut SchedClassifier,
    iface: &str,
    ifindex: u32,
) -> Result<Attachment, AttachError> {
    let mode = AttachMode::Tcx;
    // Last in the chain: netlab sees what earlier programs let through and, returning
    // "next", changes nothing for programs after it.
    let i = hook_link(
        ingress,
        iface,
        TcAttachType::Ingress,
        TcAttachOptions::TcxOrder(LinkOrder::default()),
        mode,
    )?;
    let e = hook_link(
        egress,
        iface,
        TcAttachType::Egress,
        TcAttachOptions::TcxOrder(LinkOrder::default()),
        mode,
    )?;
    Ok(Attachment {
        ingress: Some(i),
        egress: Some(e),
        qdisc: None,
        mode,
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

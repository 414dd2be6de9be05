//! The two tc programs (ingress and egress): attaching them to an interface, and their ids
//! and file descriptors.

use aya::programs::SchedClassifier;
use netlab_common::{PROG_EGRESS, PROG_INGRESS};

use super::{Datapath, LoadError};
use crate::kernel::attach::{self, AttachError, AttachMode, Attachment};

impl Datapath {
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
}

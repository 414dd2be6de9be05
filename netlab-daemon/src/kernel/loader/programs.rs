//! The two tc programs (ingress and egress): attaching them to an interface, and their ids
//! and file descriptors; and the pair for other namespaces' interfaces.

use aya::{maps::Array, programs::SchedClassifier};
use netlab_common::{
    NsConfig, MAP_NS_CONFIG, PROG_EGRESS, PROG_INGRESS, PROG_NS_EGRESS, PROG_NS_INGRESS,
};

use super::{Datapath, LoadError};
use crate::kernel::attach::{self, AttachError, AttachMode, Attachment};

impl Datapath {
    fn programs(&mut self) -> (&mut SchedClassifier, &mut SchedClassifier) {
        self.pair(PROG_INGRESS, PROG_EGRESS)
    }

    fn pair(
        &mut self,
        ingress_name: &str,
        egress_name: &str,
    ) -> (&mut SchedClassifier, &mut SchedClassifier) {
        let mut ingress = None;
        let mut egress = None;
        for (name, prog) in self.ebpf.programs_mut() {
            let slot = if name == ingress_name {
                &mut ingress
            } else if name == egress_name {
                &mut egress
            } else {
                continue;
            };
            if let Ok(p) = <&mut SchedClassifier>::try_from(prog) {
                *slot = Some(p);
            }
        }
        match (ingress, egress) {
            (Some(i), Some(e)) => (i, e),
            // `load` and `ns_prog_fds` checked that both exist and are tc programs.
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
        let (ingress, egress) = self.programs();
        Ok((dup(ingress)?, dup(egress)?))
    }

    /// Like [`Datapath::prog_fds`], of the programs for interfaces of other namespaces
    /// (which count under [`netlab_common::ns_key`]): loaded, and told where the kernel
    /// keeps a device's namespace, the first time any is asked for.
    pub fn ns_prog_fds(
        &mut self,
    ) -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd), LoadError> {
        if !self.ns_ready {
            let cfg = match self.cover_cfg {
                // The cover programs read a device's namespace the same way: the kernel's
                // BTF (5 MB) was parsed for them already.
                Some(c) => NsConfig {
                    active: 1,
                    skb_dev: c.skb_dev,
                    dev_net: c.dev_net,
                    net_inum: c.net_inum,
                },
                None => {
                    let kbtf = self.kernel_btf()?;
                    let off = |s: &str, path: &[&str]| {
                        kbtf.member_offset(s, path).map_err(LoadError::Btf)
                    };
                    let cfg = NsConfig {
                        active: 1,
                        skb_dev: off("sk_buff", &["dev"])?,
                        dev_net: off("net_device", &["nd_net", "net"])?,
                        net_inum: off("net", &["ns", "inum"])?,
                    };
                    self.release_btf();
                    cfg
                }
            };
            for name in [PROG_NS_INGRESS, PROG_NS_EGRESS] {
                self.load_or_reuse(name, |p| {
                    let prog: &mut SchedClassifier =
                        p.try_into().map_err(|_| LoadError::MissingProgram(name))?;
                    prog.load().map_err(super::refused(name))
                })?;
            }
            let map = self
                .ebpf
                .map_mut(MAP_NS_CONFIG)
                .ok_or(LoadError::MissingProgram(MAP_NS_CONFIG))?;
            let mut array: Array<_, NsConfig> =
                Array::try_from(map).map_err(super::map_err(MAP_NS_CONFIG))?;
            array
                .set(0, cfg, 0)
                .map_err(super::map_err(MAP_NS_CONFIG))?;
            self.ns_ready = true;
        }
        let (ingress, egress) = self.pair(PROG_NS_INGRESS, PROG_NS_EGRESS);
        let fds = (|| Ok::<_, std::io::Error>((dup(ingress)?, dup(egress)?)))();
        fds.map_err(|source| LoadError::ProgramFd {
            name: PROG_NS_INGRESS,
            source,
        })
    }
}

/// A duplicate of `p`'s file descriptor.
fn dup(p: &SchedClassifier) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsFd as _;
    p.fd()
        .map_err(std::io::Error::other)?
        .as_fd()
        .try_clone_to_owned()
}

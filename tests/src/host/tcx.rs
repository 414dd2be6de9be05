//! Which BPF programs run on an interface's tcx hooks ([`prog_ids`]), asked of the kernel
//! directly: bpftool 7.1 does not show tcx attachments.

use std::fmt;

use anyhow::{bail, Result};

/// A tcx hook of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// Packets the interface receives.
    Ingress,
    /// Packets the interface sends.
    Egress,
}

impl Hook {
    /// Both hooks, ingress first.
    pub const BOTH: [Hook; 2] = [Hook::Ingress, Hook::Egress];

    /// The kernel's `enum bpf_attach_type` value (linux/bpf.h): `BPF_TCX_INGRESS` (46),
    /// `BPF_TCX_EGRESS` (47), as `attach_type` in a tcx link's fdinfo too.
    pub const fn attach_type(self) -> u32 {
        match self {
            Hook::Ingress => 46,
            Hook::Egress => 47,
        }
    }

    /// `ingress` or `egress`.
    pub const fn name(self) -> &'static str {
        match self {
            Hook::Ingress => "ingress",
            Hook::Egress => "egress",
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `bpf(2)` command `BPF_PROG_QUERY`.
const BPF_PROG_QUERY: libc::c_long = 16;

/// The `query` member of the kernel's `union bpf_attr` (linux/bpf.h, Linux ≥ 6.6).
#[repr(C)]
#[derive(Default)]
struct ProgQuery {
    target_ifindex: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    count: u32,
    _pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    revision: u64,
}

const _: () = assert!(std::mem::size_of::<ProgQuery>() == 64);

/// The most program ids one query returns; more on one hook is not a case of netlab's.
const MAX_PROGS: usize = 64;

/// The ids of the programs attached with tcx to interface `ifindex` of the calling thread's
/// network namespace on `hook`, in the order they run (`BPF_PROG_QUERY`, what `bpftool net`
/// asks). An interface that never had a tcx program has none.
///
/// This is the raw syscall rather than aya's `SchedClassifier::query_tcx`, which does not
/// serve these callers:
/// - it takes an interface *name* and resolves it itself, while the callers hold an ifindex
///   (the bench polls hundreds of new ports by index every millisecond, the tests read
///   indexes from the daemon's API);
/// - it opens every attached program by id to return its `ProgramInfo`, so a program
///   detached between the query and the open fails the whole call with `ENOENT`, and that
///   moment (a daemon attaching, adopting or cleaning up) is exactly what the callers watch;
///   the ids alone are what they compare;
/// - it would add aya and its object-file parser to xtask's build, which every
///   `cargo xtask` command waits for.
pub fn prog_ids(ifindex: u32, hook: Hook) -> Result<Vec<u32>> {
    Ok(attachments(ifindex, hook)?
        .into_iter()
        .map(|(prog, _)| prog)
        .collect())
}

/// Like [`prog_ids`], each program with the id of the link that attaches it (0 for one
/// attached without a link): what tells a link kept from one made again for the same
/// program.
pub fn attachments(ifindex: u32, hook: Hook) -> Result<Vec<(u32, u32)>> {
    let mut ids = [0u32; MAX_PROGS];
    let mut links = [0u32; MAX_PROGS];
    let mut query = ProgQuery {
        target_ifindex: ifindex,
        attach_type: hook.attach_type(),
        prog_ids: ids.as_mut_ptr() as u64,
        count: MAX_PROGS as u32,
        link_ids: links.as_mut_ptr() as u64,
        ..ProgQuery::default()
    };
    // SAFETY: bpf(BPF_PROG_QUERY) reads and writes only the 64-byte attribute passed with
    // its size, and writes at most `count` (MAX_PROGS) ids into each of `ids` and `links`;
    // all three outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            &mut query as *mut ProgQuery,
            std::mem::size_of::<ProgQuery>(),
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        // No tcx program was ever attached there: nothing to list.
        if err.raw_os_error() == Some(libc::ENOENT) {
            return Ok(Vec::new());
        }
        bail!("BPF_PROG_QUERY tcx {hook} on ifindex {ifindex}: {err}");
    }
    let count = usize::try_from(query.count)?.min(MAX_PROGS);
    Ok(ids[..count]
        .iter()
        .copied()
        .zip(links[..count].iter().copied())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks() {
        assert_eq!(Hook::Ingress.attach_type(), 46);
        assert_eq!(Hook::Egress.attach_type(), 47);
        assert_eq!(Hook::BOTH.map(|h| h.to_string()), ["ingress", "egress"]);
    }

    #[test]
    fn loopback_runs_no_tcx_program_or_needs_root_to_say() {
        // Nothing attaches to lo; without root the kernel refuses the query (EPERM).
        match prog_ids(1, Hook::Ingress) {
            Ok(ids) => assert!(ids.is_empty(), "{ids:?}"),
            Err(err) => assert!(err.to_string().contains("ifindex 1"), "{err}"),
        }
    }
}

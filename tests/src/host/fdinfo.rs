//! The BPF objects a process holds open: its program, map and link file descriptors
//! ([`bpf_fds`]) and what the kernel says of each in `/proc/<pid>/fdinfo/<fd>`, lines of
//! `key:\tvalue` ([`field`], [`number`]): `prog_id`, `run_cnt`, `run_time_ns`, `map_id`,
//! `memlock`, `link_type`, `attach_type`, `ifindex`, ...

use std::path::PathBuf;

/// What a BPF file descriptor refers to, from the target of its `/proc/<pid>/fd` link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BpfKind {
    /// `anon_inode:bpf-prog`.
    Prog,
    /// `anon_inode:bpf-map`.
    Map,
    /// `anon_inode:bpf_link`.
    Link,
}

impl BpfKind {
    fn of_link_target(target: &str) -> Option<Self> {
        match target {
            "anon_inode:bpf-prog" => Some(Self::Prog),
            "anon_inode:bpf-map" => Some(Self::Map),
            "anon_inode:bpf_link" => Some(Self::Link),
            _ => None,
        }
    }
}

/// One BPF file descriptor of a process and its fdinfo as read.
#[derive(Debug, Clone)]
pub struct BpfFd {
    /// Program, map or link.
    pub kind: BpfKind,
    /// `/proc/<pid>/fdinfo/<fd>`, to read again later (counters such as `run_cnt` move).
    pub path: PathBuf,
    /// The fdinfo text.
    pub info: String,
}

impl BpfFd {
    /// [`field`] of this fdinfo.
    pub fn field(&self, key: &str) -> Option<&str> {
        field(&self.info, key)
    }

    /// [`number`] of this fdinfo.
    pub fn number(&self, key: &str) -> Option<u64> {
        number(&self.info, key)
    }
}

/// Every BPF program, map and link process `pid` holds open, with its fdinfo. A descriptor
/// closed while they are read is left out; an error only if the process's fd directory cannot
/// be read (it is gone, say).
pub fn bpf_fds(pid: u32) -> std::io::Result<Vec<BpfFd>> {
    let mut fds = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))?.filter_map(Result::ok) {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        let Some(kind) = BpfKind::of_link_target(&target.to_string_lossy()) else {
            continue;
        };
        let path = PathBuf::from(format!(
            "/proc/{pid}/fdinfo/{}",
            fd.file_name().to_string_lossy()
        ));
        let Ok(info) = std::fs::read_to_string(&path) else {
            continue;
        };
        fds.push(BpfFd { kind, path, info });
    }
    Ok(fds)
}

/// The BPF descriptors of `pid` of one kind (none if the process is gone).
pub fn bpf_fds_of(pid: u32, kind: BpfKind) -> Vec<BpfFd> {
    bpf_fds(pid)
        .unwrap_or_default()
        .into_iter()
        .filter(|fd| fd.kind == kind)
        .collect()
}

/// The value of `key` in an fdinfo text, trimmed (`tcx` of `link_type:\ttcx`).
pub fn field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

/// The number at the start of `key`'s value (`46` of `attach_type:\t46 (ingress)`).
pub fn number(info: &str, key: &str) -> Option<u64> {
    field(info, key)?.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fdinfo() {
        let info = "pos:\t0\nprog_type:\t3\nprog_id:\t2478\nrun_time_ns:\t120\nrun_cnt:\t4\n";
        assert_eq!(number(info, "prog_id"), Some(2478));
        assert_eq!(number(info, "run_cnt"), Some(4));
        assert_eq!(
            number("attach_type:\t46 (ingress)\n", "attach_type"),
            Some(46)
        );
        assert_eq!(number(info, "map_id"), None);
        // `prog_id` is not `prog_type`, nor is `run_cnt` a prefix match of another key.
        assert_eq!(field("prog_type:\t3\n", "prog"), None);
        assert_eq!(field("link_type:\ttcx\n", "link_type"), Some("tcx"));
    }

    #[test]
    fn kinds_come_from_the_link_target() {
        assert_eq!(
            BpfKind::of_link_target("anon_inode:bpf-prog"),
            Some(BpfKind::Prog)
        );
        assert_eq!(
            BpfKind::of_link_target("anon_inode:bpf_link"),
            Some(BpfKind::Link)
        );
        assert_eq!(BpfKind::of_link_target("socket:[1234]"), None);
        // This test process holds no BPF object.
        assert!(bpf_fds(std::process::id()).expect("own fds").is_empty());
        assert!(bpf_fds_of(u32::MAX, BpfKind::Prog).is_empty());
    }
}

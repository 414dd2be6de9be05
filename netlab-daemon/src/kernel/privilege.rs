//! Checking, before touching the kernel, that the process may load and attach programs.

/// Capability numbers from linux/capability.h.
pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_NET_RAW: u32 = 13;
pub const CAP_SYS_PTRACE: u32 = 19;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

/// What the daemon keeps after start: BPF maps and programs (CAP_BPF, CAP_PERFMON),
/// attaching and reading firewall counters (CAP_NET_ADMIN), entering container namespaces
/// (CAP_SYS_ADMIN for setns, CAP_SYS_PTRACE to open another process's namespace).
pub const DAEMON_CAPS: [u32; 5] = [
    CAP_BPF,
    CAP_PERFMON,
    CAP_NET_ADMIN,
    CAP_SYS_ADMIN,
    CAP_SYS_PTRACE,
];

/// Drops every capability not in `keep` from the bounding set and from the effective,
/// permitted and inheritable sets, for good: neither this process nor what it runs can
/// get them back.
///
/// A capability of `keep` the process does not have is left out (it cannot be taken, and
/// asking for it would fail the whole call). Narrowing the bounding set needs CAP_SETPCAP,
/// which a container usually lacks; there the bounding set is already what the container
/// was given, so it is left as it is and said so at debug level.
pub fn drop_all_but(keep: &[u32]) -> std::io::Result<()> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(40);
    let mut bounding_kept = false;
    for cap in 0..=last {
        if keep.contains(&cap) {
            continue;
        }
        // SAFETY: prctl with plain integer arguments.
        if unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) } == 0 {
            // Not in the bounding set: nothing to drop.
            continue;
        }
        // SAFETY: prctl with plain integer arguments.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                // A capability this kernel does not know.
                Some(libc::EINVAL) => {}
                // No CAP_SETPCAP: the bounding set stays as the process got it.
                Some(libc::EPERM) => bounding_kept = true,
                _ => return Err(e),
            }
        }
    }
    if bounding_kept {
        log::debug!("without CAP_SETPCAP the bounding set stays as it was given");
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let permitted = parse_cap_line(&status, "CapPrm:").unwrap_or(u64::MAX);
    let mask: u64 = keep.iter().fold(0, |m, c| m | (1u64 << c)) & permitted;
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let hdr = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let lo = mask as u32;
    let hi = (mask >> 32) as u32;
    let data = [
        Data {
            effective: lo,
            permitted: lo,
            inheritable: 0,
        },
        Data {
            effective: hi,
            permitted: hi,
            inheritable: 0,
        },
    ];
    // SAFETY: capset with a valid v3 header and two data structs, as the ABI requires.
    let r = unsafe { libc::syscall(libc::SYS_capset, &hdr as *const Header, data.as_ptr()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The process lacks capabilities netlab needs.
#[derive(Debug, thiserror::Error)]
#[error(
    "missing capabilities {missing}: run as root, or grant CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"
)]
pub struct MissingCapabilities {
    /// Comma-separated names of what is missing.
    pub missing: String,
}

/// The names of the capabilities missing from the effective set `cap_eff`.
pub fn missing(cap_eff: u64) -> Vec<&'static str> {
    let has = |c: u32| cap_eff & (1u64 << c) != 0;
    let sys_admin = has(CAP_SYS_ADMIN);
    let mut out = Vec::new();
    if !has(CAP_BPF) && !sys_admin {
        out.push("CAP_BPF");
    }
    if !has(CAP_NET_ADMIN) {
        out.push("CAP_NET_ADMIN");
    }
    if !has(CAP_PERFMON) && !sys_admin {
        out.push("CAP_PERFMON");
    }
    out
}

/// Parses the `CapEff:` line of /proc/self/status.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    parse_cap_line(status, "CapEff:")
}

/// Parses one capability line of /proc/self/status, e.g. `CapPrm:`.
fn parse_cap_line(status: &str, prefix: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// Fails with one clear error when the effective capabilities are not enough.
pub fn require() -> Result<(), MissingCapabilities> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    // If the status file cannot be read, let the kernel be the judge.
    let Some(eff) = parse_cap_eff(&status) else {
        return Ok(());
    };
    let m = missing(eff);
    if m.is_empty() {
        Ok(())
    } else {
        Err(MissingCapabilities {
            missing: m.join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_has_everything() {
        assert!(missing(0x000001ffffffffff).is_empty());
    }

    #[test]
    fn nobody_misses_all_three() {
        assert_eq!(missing(0), ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"]);
    }

    #[test]
    fn sys_admin_stands_for_bpf_and_perfmon() {
        let eff = (1 << CAP_SYS_ADMIN) | (1 << CAP_NET_ADMIN);
        assert!(missing(eff).is_empty());
        assert_eq!(missing(1 << CAP_SYS_ADMIN), ["CAP_NET_ADMIN"]);
    }

    #[test]
    fn parses_status() {
        let s = "Name:\tnetlab\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_cap_eff(s), Some(0x1ffffffffff));
        assert_eq!(parse_cap_eff("Name: x\n"), None);
        assert_eq!(parse_cap_eff(""), None);
    }

    #[test]
    fn parses_the_permitted_set_apart_from_the_effective() {
        let s = "CapPrm:\t00000000a80425fb\nCapEff:\t0000000000000000\n";
        assert_eq!(parse_cap_line(s, "CapPrm:"), Some(0xa804_25fb));
        assert_eq!(parse_cap_eff(s), Some(0));
    }
}

//! Checking, before touching the kernel, that the process may load and attach programs.

/// Capability numbers from linux/capability.h.
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

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
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
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
}

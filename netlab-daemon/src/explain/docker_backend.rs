//! Which Docker engine programs the firewall, and with which backend.
//!
//! Docker's rules changed shape between engine versions (see [`crate::explain::docker_rules`]), and
//! Docker 29 can write native nftables rules instead of iptables ones. This module holds
//! the engine's version ([`EngineVersion`], parsed from what `/version` or `/info` report,
//! e.g. `28.5.2+dfsg4`), the firewall backend ([`Backend`]), the features each version has
//! (as methods of [`EngineVersion`], each with the moby tag it was checked at), and
//! [`detect_backend`], which decides the backend from recorded evidence.
//!
//! How the backend is told (checked in moby's sources):
//! - `/info` has `FirewallBackend` (`{"Driver": "iptables"}`, `"iptables+firewalld"`,
//!   `"nftables"`, `"nftables+firewalld"`, and `Info` label/value pairs) since engine 28.1
//!   (API 1.49; the daemon omits it for clients asking for an older API version).
//! - On 28.2–28.5 `"nftables"` only means that `DOCKER_FIREWALL_BACKEND=nftables` was set:
//!   the bridge driver of 28.x always writes iptables rules (its only firewaller is the
//!   iptabler, `libnetwork/drivers/bridge/bridge_linux.go` `newFirewaller` at v28.5.2), and
//!   no `docker-bridges` table exists. From 29.0 `"firewall-backend": "nftables"` in
//!   daemon.json makes it write the tables `ip docker-bridges` and `ip6 docker-bridges`.
//! - With an iptables backend, whether rules live in nf_tables (iptables-nft) or in the
//!   legacy x_tables is decided by the `iptables` binary Docker runs:
//!   `iptables --version` prints `iptables v1.8.9 (nf_tables)` or `... (legacy)`.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Where Docker's firewall rules live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// `iptables` commands backed by nf_tables (iptables-nft): `iptables-save` shows them,
    /// `nft list ruleset` shows the same tables with xt expressions.
    IptablesNft,
    /// `iptables` commands backed by the legacy x_tables: only `iptables-legacy-save` (or
    /// `iptables-save` if that is the legacy binary) shows them.
    IptablesLegacy,
    /// Docker 29's native nftables backend: tables `ip docker-bridges` and
    /// `ip6 docker-bridges`, which iptables-save does not show.
    Nftables,
}

impl Backend {
    /// `"iptables-nft"`, `"iptables-legacy"` or `"nftables"`.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::IptablesNft => "iptables-nft",
            Backend::IptablesLegacy => "iptables-legacy",
            Backend::Nftables => "nftables",
        }
    }

    /// Whether Docker writes iptables rules (with a DOCKER-USER chain).
    pub const fn is_iptables(self) -> bool {
        matches!(self, Backend::IptablesNft | Backend::IptablesLegacy)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that is not a Docker engine version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Docker engine version: {0:?}")]
pub struct VersionError(pub String);

/// A Docker engine version, e.g. 28.5.2 (build suffixes such as `+dfsg4` or `-rc.1` and
/// Debian epochs such as `5:` are dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EngineVersion {
    /// 20, 26, 28, 29, ...
    pub major: u32,
    /// The minor version.
    pub minor: u32,
    /// The patch version (0 if absent).
    pub patch: u32,
}

impl EngineVersion {
    /// The version `major.minor.patch`.
    pub const fn new(major: u32, minor: u32, patch: u32) -> EngineVersion {
        EngineVersion {
            major,
            minor,
            patch,
        }
    }

    /// Parses `28.5.2+dfsg4`, `20.10.24+dfsg1`, `29.0.1`, `v29.0.0`, `docker-v29.0.0`,
    /// `29.0.0-rc.1`, `5:28.5.2-1~debian.12~bookworm` or `28.5`; `None` for anything else.
    pub fn parse(s: &str) -> Option<EngineVersion> {
        let s = s.trim();
        // A Debian epoch ("5:28.5.2-1~debian.12").
        let s = match s.split_once(':') {
            Some((epoch, rest)) if epoch.bytes().all(|b| b.is_ascii_digit()) => rest,
            _ => s,
        };
        let s = s.strip_prefix("docker-").unwrap_or(s);
        let s = s.strip_prefix('v').unwrap_or(s);
        let end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let numeric = &s[..end];
        if numeric.ends_with('.') {
            return None;
        }
        let mut parts = numeric.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            Some(p) if !p.is_empty() => p.parse().ok()?,
            _ => 0,
        };
        Some(EngineVersion::new(major, minor, patch))
    }

    /// Whether this is `major.minor` or later.
    pub fn at_least(self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// DOCKER-ISOLATION-STAGE-1/2 exist (removed in 29.0, moby commit 1ad9599da7).
    pub fn has_isolation_chains(self) -> bool {
        !self.at_least(29, 0)
    }

    /// DOCKER-INTERNAL holds the internal-network rules (29.0+; before: STAGE-1).
    pub fn has_docker_internal_chain(self) -> bool {
        self.at_least(29, 0)
    }

    /// FORWARD jumps to DOCKER-FORWARD, DOCKER-CT and DOCKER-BRIDGE, and the DOCKER chain
    /// ends in `! -i br -o br -j DROP` per network (28.0+, iptablesdoc at v28.0.1).
    pub fn has_docker_forward_chain(self) -> bool {
        self.at_least(28, 0)
    }

    /// raw PREROUTING drops packets for a published port of a container address that do
    /// not come from its bridge, one rule per port: `-d <ip>/32 ! -i <br> -p tcp -m tcp
    /// --dport <port> -j DROP` (28.0–28.1, `filterDirectAccess` in port_mapping_linux.go).
    pub fn has_per_port_direct_access_filter(self) -> bool {
        self.at_least(28, 0) && !self.at_least(28, 2)
    }

    /// raw PREROUTING drops every packet for a container address that does not come from
    /// its bridge, one rule per container: `-d <ip>/32 ! -i <br> -j DROP` (28.2+,
    /// iptabler/endpoint.go `filterDirectAccess`; nftables "DROP DIRECT ACCESS" in 29).
    pub fn has_direct_access_filter(self) -> bool {
        self.at_least(28, 2)
    }

    /// `com.docker.network.bridge.gateway_mode_ipv4` / `_ipv6` exists, with `nat` and
    /// `routed` (27.0+).
    pub fn has_gateway_modes(self) -> bool {
        self.at_least(27, 0)
    }

    /// Gateway modes `nat-unprotected` and `isolated` exist (28.0+).
    pub fn has_nat_unprotected(self) -> bool {
        self.at_least(28, 0)
    }

    /// A `routed` network is exempt from inter-network isolation (STAGE-1 `-o <br> -j
    /// RETURN`, 28.0+; 29 has no isolation chains) and accepts ICMP (DOCKER `-o <br> -p
    /// icmp -j ACCEPT`, nftables comment "ICMP").
    pub fn routed_accepts_icmp_from_other_networks(self) -> bool {
        self.at_least(28, 0)
    }

    /// A `nat-unprotected` network accepts packets from other bridge networks: true on 29
    /// (DOCKER `! -i <br> -o <br> -j ACCEPT`, nftables "UNPROTECTED"); on 28.x
    /// DOCKER-ISOLATION-STAGE-2 still drops them.
    pub fn unprotected_accepts_other_networks(self) -> bool {
        self.at_least(29, 0)
    }

    /// Daemon option `allow-direct-routing` (28.2+, `cmd/dockerd/config_unix.go`).
    pub fn has_allow_direct_routing(self) -> bool {
        self.at_least(28, 2)
    }

    /// Network option `com.docker.network.bridge.trusted_host_interfaces` (28.2+).
    pub fn has_trusted_host_interfaces(self) -> bool {
        self.at_least(28, 2)
    }

    /// Daemon option `ip-forward-no-drop` (28.0+).
    pub fn has_ip_forward_no_drop(self) -> bool {
        self.at_least(28, 0)
    }

    /// Daemon option `bridge-accept-fwmark` (29.0+, "ALLOW FW MARK" rules).
    pub fn has_accept_fwmark(self) -> bool {
        self.at_least(29, 0)
    }

    /// The bridge driver can write native nftables rules (29.0+).
    pub fn has_nftables_backend(self) -> bool {
        self.at_least(29, 0)
    }

    /// `/info` reports `FirewallBackend` (28.1+, API 1.49).
    pub fn reports_firewall_backend(self) -> bool {
        self.at_least(28, 1)
    }
}

impl FromStr for EngineVersion {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EngineVersion::parse(s).ok_or_else(|| VersionError(s.to_string()))
    }
}

impl fmt::Display for EngineVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for EngineVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The engine whose rules are explained: its version and firewall backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Engine {
    /// The engine version.
    pub version: EngineVersion,
    /// Where its rules live.
    pub backend: Backend,
}

impl Engine {
    /// An engine of `version` with `backend`.
    pub const fn new(version: EngineVersion, backend: Backend) -> Engine {
        Engine { version, backend }
    }
}

/// What is known about the host, as recorded strings; every part may be missing.
#[derive(Clone, Copy, Debug, Default)]
pub struct BackendEvidence<'a> {
    /// The body of the Docker API's `GET /info`.
    pub info_json: Option<&'a str>,
    /// The output of `iptables --version` (the binary Docker runs).
    pub iptables_version: Option<&'a str>,
    /// The output of `nft list tables`.
    pub nft_tables: Option<&'a str>,
}

/// The verdict of [`detect_backend`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackendDetection {
    /// The backend Docker's bridge rules use, if it could be told.
    pub backend: Option<Backend>,
    /// `ServerVersion` from `/info`, if present and parseable.
    pub version: Option<EngineVersion>,
    /// `FirewallBackend.Driver` from `/info`, e.g. `iptables+firewalld`.
    pub firewall_driver: Option<String>,
    /// Whether firewalld manages the host's firewall (the driver ends in `+firewalld`).
    pub firewalld: bool,
    /// Why, one sentence per piece of evidence used.
    pub reasons: Vec<String>,
}

/// `FirewallBackend.Driver` of an `/info` body, e.g. `"iptables"` or `"nftables"`.
pub fn firewall_driver(info_json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(info_json).ok()?;
    let driver = v.get("FirewallBackend")?.get("Driver")?.as_str()?;
    (!driver.is_empty()).then(|| driver.to_string())
}

/// `ServerVersion` of an `/info` body.
pub fn server_version(info_json: &str) -> Option<EngineVersion> {
    let v: serde_json::Value = serde_json::from_str(info_json).ok()?;
    EngineVersion::parse(v.get("ServerVersion")?.as_str()?)
}

/// The iptables variant named by `iptables --version` output: `(nf_tables)` or `(legacy)`.
pub fn iptables_variant(version_output: &str) -> Option<Backend> {
    if version_output.contains("(nf_tables)") {
        Some(Backend::IptablesNft)
    } else if version_output.contains("(legacy)") {
        Some(Backend::IptablesLegacy)
    } else {
        None
    }
}

/// Whether `nft list tables` output lists `table ip docker-bridges` or `table ip6
/// docker-bridges`.
pub fn nft_has_docker_bridges(list_tables_output: &str) -> bool {
    list_tables_output.lines().any(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        matches!(
            words.as_slice(),
            ["table", "ip" | "ip6", "docker-bridges", ..]
        )
    })
}

/// Whether `nft list tables` lists iptables-nft's tables (`table ip filter`, `ip raw`,
/// `ip nat`), which only exist when something used iptables-nft.
fn nft_has_iptables_tables(list_tables_output: &str) -> bool {
    list_tables_output.lines().any(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        matches!(
            words.as_slice(),
            ["table", "ip", "filter" | "raw" | "nat" | "mangle"]
        )
    })
}

/// Says which backend Docker's bridge rules use.
///
/// Order of trust: `FirewallBackend.Driver` from `/info` (what the daemon says), checked
/// against the engine version (on 28.x `nftables` does not reach the bridge driver) and
/// against the `docker-bridges` tables; then the tables alone (engines before 28.1 or a
/// client on an old API version get no `FirewallBackend`); then `iptables --version` for
/// nf_tables versus legacy; last, iptables-nft's own tables in `nft list tables`.
pub fn detect_backend(e: &BackendEvidence<'_>) -> BackendDetection {
    let mut reasons = Vec::new();
    let version = e.info_json.and_then(server_version);
    let driver = e.info_json.and_then(firewall_driver);
    let tables = e.nft_tables.map(nft_has_docker_bridges);
    let variant = e.iptables_version.and_then(iptables_variant);
    let firewalld = driver.as_deref().is_some_and(|d| d.ends_with("+firewalld"));

    if let Some(v) = version {
        reasons.push(format!("/info reports engine {v}"));
    }
    let says_nftables = driver.as_deref().is_some_and(|d| d.starts_with("nftables"));
    let mut backend = None;
    match (&driver, says_nftables) {
        (Some(d), true) => {
            let pre29 = version.is_some_and(|v| !v.has_nftables_backend());
            if pre29 && tables != Some(true) {
                reasons.push(format!(
                    "/info says FirewallBackend {d:?}, but engines before 29 write their \
                     bridge rules with iptables (DOCKER_FIREWALL_BACKEND=nftables only \
                     changes what /info reports)"
                ));
            } else if tables == Some(false) {
                reasons.push(format!(
                    "/info says FirewallBackend {d:?}, but nft lists no docker-bridges \
                     table (no bridge network yet, or the rules were removed)"
                ));
                backend = Some(Backend::Nftables);
            } else {
                reasons.push(format!("/info says FirewallBackend {d:?}"));
                backend = Some(Backend::Nftables);
            }
        }
        (Some(d), false) => {
            reasons.push(format!("/info says FirewallBackend {d:?}"));
            if tables == Some(true) {
                reasons.push(
                    "a docker-bridges nftables table exists too, probably left by an earlier \
                     run with the nftables backend; it is ignored"
                        .to_string(),
                );
            }
        }
        (None, _) => {
            if tables == Some(true) {
                reasons.push(
                    "nft lists a docker-bridges table (written by Docker 29's nftables backend)"
                        .to_string(),
                );
                backend = Some(Backend::Nftables);
            } else if e.info_json.is_some() {
                reasons.push(
                    "/info has no FirewallBackend (engine before 28.1, or an API version \
                     before 1.49)"
                        .to_string(),
                );
            }
        }
    }

    if backend.is_none() {
        if let Some(variant) = variant {
            reasons.push(format!(
                "iptables --version says {}",
                if variant == Backend::IptablesNft {
                    "(nf_tables)"
                } else {
                    "(legacy)"
                }
            ));
            backend = Some(variant);
        } else if e.nft_tables.is_some_and(nft_has_iptables_tables) {
            reasons.push(
                "nft lists iptables-nft's tables (ip filter/raw/nat); iptables --version \
                 was not available"
                    .to_string(),
            );
            backend = Some(Backend::IptablesNft);
        } else {
            reasons.push("no evidence tells iptables-nft from iptables-legacy".to_string());
        }
    }
    BackendDetection {
        backend,
        version,
        firewall_driver: driver,
        firewalld,
        reasons,
    }
}

#[cfg(test)]
mod docker_rules_tests {
    use super::*;

    /// `/info` of this project's host, trimmed to the fields used (Docker 28.5.2+dfsg4).
    const INFO_28_5: &str =
        r#"{"ID":"x","ServerVersion":"28.5.2+dfsg4","FirewallBackend":{"Driver":"iptables"}}"#;
    /// `/info` of a 29 engine with `"firewall-backend": "nftables"` (shape from moby's
    /// api/swagger.yaml FirewallInfo at docker-v29.0.0).
    const INFO_29_NFT: &str =
        r#"{"ServerVersion":"29.0.1","FirewallBackend":{"Driver":"nftables"}}"#;
    const INFO_29_FWD: &str = r#"{"ServerVersion":"29.0.1","FirewallBackend":{"Driver":"iptables+firewalld","Info":[["ReloadedAt","2025-01-01T00:00:00Z"]]}}"#;
    /// 28.x started with DOCKER_FIREWALL_BACKEND=nftables.
    const INFO_28_NFT: &str =
        r#"{"ServerVersion":"28.3.0","FirewallBackend":{"Driver":"nftables"}}"#;
    /// Docker 20.10 has no FirewallBackend.
    const INFO_20_10: &str = r#"{"ServerVersion":"20.10.24+dfsg1","Driver":"overlay2"}"#;
    const IPT_NFT: &str = "iptables v1.8.9 (nf_tables)\n";
    const IPT_LEGACY: &str = "iptables v1.8.7 (legacy)\n";
    /// `nft list tables` on this host (iptables-nft, Docker 28.5).
    const TABLES_HOST: &str =
        "table ip nat\ntable ip filter\ntable ip6 nat\ntable ip6 filter\ntable ip raw\n";
    const TABLES_29_NFT: &str = "table ip docker-bridges\ntable ip6 docker-bridges\n";

    #[test]
    fn parses_versions() {
        let v = |s: &str| EngineVersion::parse(s);
        assert_eq!(v("28.5.2+dfsg4"), Some(EngineVersion::new(28, 5, 2)));
        assert_eq!(v("20.10.24+dfsg1"), Some(EngineVersion::new(20, 10, 24)));
        assert_eq!(v("29.0.1"), Some(EngineVersion::new(29, 0, 1)));
        assert_eq!(v("v29.0.0"), Some(EngineVersion::new(29, 0, 0)));
        assert_eq!(v("docker-v29.7.2"), Some(EngineVersion::new(29, 7, 2)));
        assert_eq!(v("29.0.0-rc.1"), Some(EngineVersion::new(29, 0, 0)));
        assert_eq!(
            v("5:28.5.2-1~debian.12~bookworm"),
            Some(EngineVersion::new(28, 5, 2))
        );
        assert_eq!(v("28.5"), Some(EngineVersion::new(28, 5, 0)));
        assert_eq!(v(" 26.1.5 "), Some(EngineVersion::new(26, 1, 5)));
        for bad in ["", "dev", "28", "x.1.2", "28.x", "28.5.x"] {
            assert_eq!(v(bad), None, "{bad}");
        }
        assert!("28.5.2+dfsg4".parse::<EngineVersion>().is_ok());
        let err = "nope".parse::<EngineVersion>().expect_err("not a version");
        assert_eq!(err.to_string(), "not a Docker engine version: \"nope\"");
        assert_eq!(EngineVersion::new(28, 5, 2).to_string(), "28.5.2");
        assert!(EngineVersion::new(20, 10, 24) < EngineVersion::new(28, 0, 1));
    }

    #[test]
    fn features_by_version() {
        let v = |s: &str| EngineVersion::parse(s).unwrap_or(EngineVersion::new(0, 0, 0));
        let (v20, v26, v28_0, v28_1, v28_2, v28_5, v29) = (
            v("20.10.24"),
            v("26.1.5"),
            v("28.0.1"),
            v("28.1.1"),
            v("28.2.0"),
            v("28.5.2"),
            v("29.0.0"),
        );
        for old in [v20, v26, v28_0, v28_5] {
            assert!(old.has_isolation_chains());
            assert!(!old.has_docker_internal_chain());
        }
        assert!(!v29.has_isolation_chains() && v29.has_docker_internal_chain());
        assert!(!v26.has_docker_forward_chain() && v28_0.has_docker_forward_chain());
        assert!(v28_0.has_per_port_direct_access_filter());
        assert!(v28_1.has_per_port_direct_access_filter());
        assert!(!v28_2.has_per_port_direct_access_filter());
        assert!(!v28_1.has_direct_access_filter() && v28_2.has_direct_access_filter());
        assert!(v28_5.has_direct_access_filter() && v29.has_direct_access_filter());
        assert!(!v26.has_gateway_modes() && v("27.0.1").has_gateway_modes());
        assert!(!v("27.5.1").routed_accepts_icmp_from_other_networks());
        assert!(v28_0.routed_accepts_icmp_from_other_networks());
        assert!(!v28_5.unprotected_accepts_other_networks());
        assert!(v29.unprotected_accepts_other_networks());
        assert!(!v28_1.has_allow_direct_routing() && v28_2.has_allow_direct_routing());
        assert!(v28_2.has_trusted_host_interfaces());
        assert!(!v26.has_ip_forward_no_drop() && v28_0.has_ip_forward_no_drop());
        assert!(!v28_5.has_accept_fwmark() && v29.has_accept_fwmark());
        assert!(!v28_5.has_nftables_backend() && v29.has_nftables_backend());
        assert!(!v28_0.reports_firewall_backend() && v28_1.reports_firewall_backend());
    }

    #[test]
    fn info_fields() {
        assert_eq!(firewall_driver(INFO_28_5).as_deref(), Some("iptables"));
        assert_eq!(firewall_driver(INFO_20_10), None);
        assert_eq!(firewall_driver("not json"), None);
        assert_eq!(firewall_driver(r#"{"FirewallBackend":null}"#), None);
        assert_eq!(
            server_version(INFO_28_5),
            Some(EngineVersion::new(28, 5, 2))
        );
        assert_eq!(iptables_variant(IPT_NFT), Some(Backend::IptablesNft));
        assert_eq!(iptables_variant(IPT_LEGACY), Some(Backend::IptablesLegacy));
        assert_eq!(iptables_variant("command not found"), None);
        assert!(nft_has_docker_bridges(TABLES_29_NFT));
        assert!(!nft_has_docker_bridges(TABLES_HOST));
        assert!(!nft_has_docker_bridges("table inet docker-bridges-x\n"));
    }

    #[test]
    fn detects_this_host() {
        let d = detect_backend(&BackendEvidence {
            info_json: Some(INFO_28_5),
            iptables_version: Some(IPT_NFT),
            nft_tables: Some(TABLES_HOST),
        });
        assert_eq!(d.backend, Some(Backend::IptablesNft));
        assert_eq!(d.version, Some(EngineVersion::new(28, 5, 2)));
        assert_eq!(d.firewall_driver.as_deref(), Some("iptables"));
        assert!(!d.firewalld);
    }

    #[test]
    fn detects_nftables_on_29() {
        let d = detect_backend(&BackendEvidence {
            info_json: Some(INFO_29_NFT),
            iptables_version: Some(IPT_NFT),
            nft_tables: Some(TABLES_29_NFT),
        });
        assert_eq!(d.backend, Some(Backend::Nftables));
        // No tables yet (no bridge network): still nftables, with a reason saying so.
        let d = detect_backend(&BackendEvidence {
            info_json: Some(INFO_29_NFT),
            nft_tables: Some(""),
            ..Default::default()
        });
        assert_eq!(d.backend, Some(Backend::Nftables));
        assert!(d.reasons.iter().any(|r| r.contains("no docker-bridges")));
        // Without /info, the tables alone tell.
        let d = detect_backend(&BackendEvidence {
            nft_tables: Some(TABLES_29_NFT),
            ..Default::default()
        });
        assert_eq!(d.backend, Some(Backend::Nftables));
    }

    #[test]
    fn nftables_on_28_means_iptables_rules() {
        let d = detect_backend(&BackendEvidence {
            info_json: Some(INFO_28_NFT),
            iptables_version: Some(IPT_LEGACY),
            nft_tables: Some(""),
        });
        assert_eq!(d.backend, Some(Backend::IptablesLegacy));
        assert!(d.reasons.iter().any(|r| r.contains("before 29")), "{d:?}");
    }

    #[test]
    fn iptables_driver_wins_over_stale_tables() {
        let d = detect_backend(&BackendEvidence {
            info_json: Some(INFO_29_FWD),
            iptables_version: Some(IPT_NFT),
            nft_tables: Some(TABLES_29_NFT),
        });
        assert_eq!(d.backend, Some(Backend::IptablesNft));
        assert!(d.firewalld);
        assert!(d.reasons.iter().any(|r| r.contains("ignored")));
    }

    #[test]
    fn old_engines_and_missing_evidence() {
        let d = detect_backend(&BackendEvidence {
            info_json: Some(INFO_20_10),
            iptables_version: Some(IPT_LEGACY),
            nft_tables: None,
        });
        assert_eq!(d.backend, Some(Backend::IptablesLegacy));
        assert_eq!(d.version, Some(EngineVersion::new(20, 10, 24)));
        let d = detect_backend(&BackendEvidence {
            nft_tables: Some(TABLES_HOST),
            ..Default::default()
        });
        assert_eq!(d.backend, Some(Backend::IptablesNft));
        let d = detect_backend(&BackendEvidence::default());
        assert_eq!(d.backend, None);
        assert!(!d.reasons.is_empty());
    }
}

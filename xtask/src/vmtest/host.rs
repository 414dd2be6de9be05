//! The host's own tools: the Debian packages vmtest needs, installed when missing.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::cmd;

use super::{KEYRING, MIRROR, SECURITY_MIRROR};

/// Debian packages the host needs: qemu, what goes into the initramfs, depmod and xz.
const HOST_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "kmod",
    "xz-utils",
    "iproute2",
    "iptables",
    "nftables",
    "bpftool",
];

/// Installs the Debian packages of [`HOST_PACKAGES`] that dpkg does not list as installed,
/// never removing one (`--no-remove`).
///
/// This machine kind comes with `qemu-utils` from `<release>-backports`, which bookworm's
/// `qemu-system-x86` would remove (they break each other): qemu is then installed from the
/// same backports release (qemu's dependencies with it), through a source list of xtask's
/// own (the host's sources are left as they are), as the machine's own qemu-utils was.
pub fn ensure_tools(cache: &Path) -> Result<()> {
    let mut query = Command::new("dpkg-query");
    query
        .args(["-W", r"--showformat=${Package} ${Status} ${Version}\n"])
        .args(HOST_PACKAGES)
        .arg("qemu-utils");
    let out = cmd::output(&mut query)?;
    let listing = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&str> = HOST_PACKAGES
        .iter()
        .copied()
        .filter(|p| installed_version(&listing, p).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: vmtest needs Debian packages: {}", missing.join(" "));
    let backports = installed_version(&listing, "qemu-utils")
        .filter(|v| v.contains("~bpo") && missing.contains(&"qemu-system-x86"))
        .map(|_| host_codename())
        .transpose()?;
    let mut update = Command::new("apt-get");
    let mut install = Command::new("apt-get");
    let names: Vec<String> = missing.iter().map(|p| (*p).to_owned()).collect();
    if let Some(codename) = backports {
        let dir = cache.join("apt").join("host-backports");
        fs::create_dir_all(dir.join("lists/partial"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let dir = fs::canonicalize(&dir)?;
        let list = dir.join("sources.list");
        fs::write(&list, host_backports_sources(&codename))
            .with_context(|| format!("writing {}", list.display()))?;
        for c in [&mut update, &mut install] {
            c.arg("-o")
                .arg(format!("Dir::Etc::SourceList={}", list.display()))
                .args(["-o", "Dir::Etc::SourceParts=-", "-o"])
                .arg(format!("Dir::State::Lists={}", dir.join("lists").display()))
                .args(["-o", "APT::Sandbox::User=root"]);
        }
        // The target release, not `qemu-system-x86/<codename>-backports` alone: qemu's own
        // dependencies (qemu-system-common, -data, seabios) must come from backports too,
        // and a per-package release pulls only the package named.
        install.arg("-t").arg(format!("{codename}-backports"));
    }
    cmd::run(update.arg("update"))?;
    cmd::run(
        install
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends", "--no-remove"])
            .args(&names),
    )
}

/// The version of `package` in a `${Package} ${Status} ${Version}` listing, if it is
/// "install ok installed".
fn installed_version<'a>(listing: &'a str, package: &str) -> Option<&'a str> {
    listing.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let name = words.next()?;
        let status: Vec<&str> = words.by_ref().take(3).collect();
        (name == package && status == ["install", "ok", "installed"])
            .then(|| words.next())
            .flatten()
    })
}

/// `VERSION_CODENAME` of /etc/os-release (`bookworm`).
fn host_codename() -> Result<String> {
    let text = fs::read_to_string("/etc/os-release").context("reading /etc/os-release")?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
        .context("/etc/os-release has no VERSION_CODENAME")
}

/// The host release's own archive and its backports.
fn host_backports_sources(codename: &str) -> String {
    format!(
        "deb [signed-by={KEYRING}] {MIRROR} {codename} main\n\
         deb [signed-by={KEYRING}] {MIRROR} {codename}-updates main\n\
         deb [signed-by={KEYRING}] {SECURITY_MIRROR} {codename}-security main\n\
         deb [signed-by={KEYRING}] {MIRROR} {codename}-backports main\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_packages_are_recognised() {
        let listing = "qemu-utils install ok installed 1:10.0.2+ds-2+deb13u1~bpo12+1\n\
                       kmod deinstall ok config-files 30+20221128-1\n\
                       qemu-system-x86-extra install ok installed 1\n";
        assert_eq!(
            installed_version(listing, "qemu-utils"),
            Some("1:10.0.2+ds-2+deb13u1~bpo12+1")
        );
        assert_eq!(installed_version(listing, "kmod"), None);
        assert_eq!(installed_version(listing, "qemu-system-x86"), None);
        assert!(host_backports_sources("bookworm").contains(" bookworm-backports main\n"));
    }
}

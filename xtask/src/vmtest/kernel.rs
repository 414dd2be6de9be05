//! Debian's kernels: downloaded through a private apt configuration, extracted and
//! indexed in the cache.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cmd;

use super::{Kernel, KEYRING, MIRROR, SECURITY_MIRROR};

/// The metapackage that depends on each release's current cloud kernel.
const META_PACKAGE: &str = "linux-image-cloud-amd64";

/// A kernel extracted in the cache, with its modules decompressed and indexed by depmod.
#[derive(Debug)]
pub(super) struct PreparedKernel {
    /// `target/vmtest/kernels/<name>/`.
    pub(super) dir: PathBuf,
    /// The package's files (`boot/`, `lib/modules/<release>/`).
    pub(super) root: PathBuf,
    /// `uname -r`.
    pub(super) release: String,
    pub(super) vmlinuz: PathBuf,
}

/// The marker written last once a kernel is extracted: its release, then the package.
const READY: &str = "ready";

/// Downloads and extracts `k` unless the cache has it already.
pub(super) fn prepare_kernel(k: &Kernel, cache: &Path) -> Result<PreparedKernel> {
    let dir = cache.join("kernels").join(k.name);
    let root = dir.join("root");
    let prepared = |release: &str| PreparedKernel {
        dir: dir.clone(),
        root: root.clone(),
        release: release.to_owned(),
        vmlinuz: root.join("boot").join(format!("vmlinuz-{release}")),
    };
    if let Ok(text) = fs::read_to_string(dir.join(READY)) {
        if let Some(release) = text.lines().next().filter(|r| !r.is_empty()) {
            let p = prepared(release);
            if p.vmlinuz.is_file() {
                eprintln!(
                    "xtask: kernel {} is cached: {} ({})",
                    k.name,
                    release,
                    dir.display()
                );
                return Ok(p);
            }
        }
    }

    let apt = PrivateApt::new(&cache.join("apt").join(k.suite), k.suite)?;
    apt.update()?;
    let package = apt.kernel_package()?;
    let downloads = cache.join("downloads");
    let deb = apt.download(&package, &downloads)?;

    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    cmd::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    fs::remove_file(&deb).with_context(|| format!("removing {}", deb.display()))?;
    // Trixie's packages put modules in /usr/lib/modules; depmod -b wants <root>/lib/modules.
    let usr_modules = root.join("usr/lib/modules");
    let modules = root.join("lib/modules");
    if !modules.exists() && usr_modules.is_dir() {
        fs::create_dir_all(root.join("lib"))?;
        fs::rename(&usr_modules, &modules).with_context(|| {
            format!("moving {} to {}", usr_modules.display(), modules.display())
        })?;
    }
    let release = single_subdir(&modules)?;
    let p = prepared(&release);
    if !p.vmlinuz.is_file() {
        bail!("{} has no {}", package, p.vmlinuz.display());
    }
    decompress_modules(&modules.join(&release))?;
    cmd::run(Command::new("depmod").arg("-b").arg(&root).arg(&release))?;
    fs::write(dir.join(READY), format!("{release}\n{package}\n"))
        .with_context(|| format!("writing {}", dir.join(READY).display()))?;
    Ok(p)
}

/// The name of the only directory in `dir`.
fn single_subdir(dir: &Path) -> Result<String> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    match names.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!(
            "expected one kernel release in {}, found {names:?}",
            dir.display()
        ),
    }
}

/// Decompresses `*.ko.xz` / `*.ko.zst` / `*.ko.gz` in place, so that busybox's modprobe in
/// the guest loads them whatever compression it was built with.
fn decompress_modules(dir: &Path) -> Result<()> {
    let mut found = BTreeSet::new();
    walk(dir, &mut |path| {
        let name = path.to_string_lossy();
        for ext in [".ko.xz", ".ko.zst", ".ko.gz"] {
            if name.ends_with(ext) {
                found.insert(ext);
            }
        }
    })?;
    for ext in found {
        let tool: &[&str] = match ext {
            ".ko.xz" => &["xz", "-d"],
            ".ko.zst" => &["zstd", "-d", "-q", "--rm"],
            _ => &["gzip", "-d"],
        };
        let mut find = Command::new("find");
        find.arg(dir)
            .args(["-name", &format!("*{ext}"), "-exec"])
            .args(tool)
            .args(["{}", "+"]);
        cmd::run(&mut find)?;
    }
    Ok(())
}

/// Calls `f` on every file under `dir` (symlinks are not followed).
fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, f)?;
        } else {
            f(&path);
        }
    }
    Ok(())
}

/// An apt configuration of its own for one Debian release: its sources, lists and cache
/// live in one directory, and nothing of the host's apt configuration is read.
struct PrivateApt {
    dir: PathBuf,
    conf: PathBuf,
}

impl PrivateApt {
    fn new(dir: &Path, suite: &str) -> Result<Self> {
        for sub in [
            "apt.conf.d",
            "preferences.d",
            "sources.list.d",
            "state/lists/partial",
            "cache/archives/partial",
        ] {
            fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        let dir = fs::canonicalize(dir)?;
        let sources = dir.join("sources.list");
        fs::write(&sources, sources_list(suite))
            .with_context(|| format!("writing {}", sources.display()))?;
        let status = dir.join("state/status");
        if !status.exists() {
            fs::write(&status, "")?;
        }
        let conf = dir.join("apt.conf");
        fs::write(&conf, apt_conf(&dir)).with_context(|| format!("writing {}", conf.display()))?;
        Ok(Self { dir, conf })
    }

    fn apt(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("APT_CONFIG", &self.conf);
        c
    }

    fn update(&self) -> Result<()> {
        cmd::run(self.apt("apt-get").args(["-q", "update"]))
    }

    /// The versioned kernel package the release's metapackage depends on now.
    fn kernel_package(&self) -> Result<String> {
        let mut depends = self.apt("apt-cache");
        depends.args(["depends", META_PACKAGE]);
        kernel_dependency(&cmd::capture(&mut depends)?).with_context(|| {
            format!(
                "{META_PACKAGE} depends on no linux-image package (apt lists in {})",
                self.dir.display()
            )
        })
    }

    /// `apt-get download package` into `into`; returns the .deb's path.
    fn download(&self, package: &str, into: &Path) -> Result<PathBuf> {
        fs::create_dir_all(into).with_context(|| format!("creating {}", into.display()))?;
        let prefix = format!("{package}_");
        let find = || -> Result<Option<PathBuf>> {
            for entry in fs::read_dir(into)? {
                let name = entry?.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix) && name.ends_with(".deb") {
                    return Ok(Some(into.join(name)));
                }
            }
            Ok(None)
        };
        if let Some(deb) = find()? {
            return Ok(deb);
        }
        cmd::run(
            self.apt("apt-get")
                .args(["-q", "download", package])
                .current_dir(into),
        )?;
        find()?.with_context(|| {
            format!(
                "apt-get download left no {prefix}*.deb in {}",
                into.display()
            )
        })
    }
}

fn sources_list(suite: &str) -> String {
    format!(
        "deb [arch=amd64 signed-by={KEYRING}] {MIRROR} {suite} main\n\
         deb [arch=amd64 signed-by={KEYRING}] {SECURITY_MIRROR} {suite}-security main\n"
    )
}

fn apt_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "Dir::Etc::SourceList \"{d}/sources.list\";\n\
         Dir::Etc::SourceParts \"{d}/sources.list.d\";\n\
         Dir::Etc::Parts \"{d}/apt.conf.d\";\n\
         Dir::Etc::Main \"{d}/apt.conf.main\";\n\
         Dir::Etc::Preferences \"{d}/preferences\";\n\
         Dir::Etc::PreferencesParts \"{d}/preferences.d\";\n\
         Dir::State \"{d}/state\";\n\
         Dir::State::Lists \"{d}/state/lists\";\n\
         Dir::State::status \"{d}/state/status\";\n\
         Dir::Cache \"{d}/cache\";\n\
         Dir::Cache::pkgcache \"\";\n\
         Dir::Cache::srcpkgcache \"\";\n\
         APT::Architecture \"amd64\";\n\
         APT::Architectures {{ \"amd64\"; }};\n\
         Acquire::Languages \"none\";\n\
         Acquire::GzipIndexes \"true\";\n\
         APT::Sandbox::User \"root\";\n"
    )
}

/// The first `Depends: linux-image-…` of `apt-cache depends` output.
fn kernel_dependency(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-") && !p.contains(' '))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_package_is_found() {
        let text = "linux-image-cloud-amd64\n  Depends: linux-image-6.12.118+deb13-cloud-amd64\n";
        assert_eq!(
            kernel_dependency(text).as_deref(),
            Some("linux-image-6.12.118+deb13-cloud-amd64")
        );
        assert_eq!(kernel_dependency("linux-image-cloud-amd64\n"), None);
    }

    #[test]
    fn private_apt_reads_nothing_of_the_hosts() {
        let conf = apt_conf(Path::new("/c"));
        for key in [
            "Dir::Etc::SourceList \"/c/sources.list\"",
            "Dir::Etc::Parts \"/c/apt.conf.d\"",
            "Dir::State::Lists \"/c/state/lists\"",
            "Dir::Cache \"/c/cache\"",
        ] {
            assert!(conf.contains(key), "{conf}");
        }
        let sources = sources_list("trixie");
        assert!(sources.contains(" trixie main\n"));
        assert!(sources.contains(" trixie-security main\n"));
    }
}

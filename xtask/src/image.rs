//! `cargo xtask image`: netlab as an OCI image, built locally with `docker build` (no
//! registry is reachable, so nothing is pulled).
//!
//! The image is `FROM scratch` and holds:
//! - `netlab`, built as a static executable (glibc with `crt-static`), so it needs nothing else;
//! - the firewall tools netlab runs to name the rule behind a drop (`iptables`, `iptables-save`,
//!   `ip6tables-save`, `nft`), copied from this machine with the shared libraries they load and
//!   iptables' extensions. Debian ships no static builds of them, and without them a drop in
//!   the container would get no rule, only "no iptables-save".
//!
//! It is tagged `netlab:VERSION` and `netlab:latest`.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::images::{is_static_elf, TempDir};
use crate::{cmd, docker, workspace};

/// The image's name; tagged with the workspace's version and `latest`.
pub const IMAGE_NAME: &str = "netlab";
/// The target the static binary is built for (named, so RUSTFLAGS reach it and not the build
/// scripts and proc macros, which cannot be static).
const TARGET: &str = "x86_64-unknown-linux-gnu";
/// The firewall tools netlab runs (see `netlab-daemon/src/explain/`), looked up in these dirs.
const TOOLS: [&str; 4] = ["iptables", "iptables-save", "ip6tables-save", "nft"];
const TOOL_DIRS: [&str; 2] = ["/usr/sbin", "/sbin"];
/// Where iptables loads its match and target extensions from (`XTABLES_LIBDIR`).
const XTABLES_DIR: &str = "/usr/lib/x86_64-linux-gnu/xtables";
/// Small files the tools read to print protocol names.
const ETC_FILES: [&str; 2] = ["/etc/protocols", "/etc/services"];

const DOCKERFILE: &str = r#"FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# The daemon detaches everything and removes its pins when `docker stop` sends SIGTERM.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/netlab"]
CMD ["daemon", "--cleanup-on-exit"]
"#;

/// The tags the image gets.
pub fn tags() -> [String; 2] {
    [
        format!("{IMAGE_NAME}:{}", env!("CARGO_PKG_VERSION")),
        format!("{IMAGE_NAME}:latest"),
    ]
}

/// Builds the static binary and the image; `no_cache` rebuilds every layer.
pub fn run(no_cache: bool) -> Result<()> {
    docker::ensure_docker()?;
    let bin = build_static()?;
    let context = TempDir::new("netlab")?;
    let rootfs = context.path.join("rootfs");
    let netlab = rootfs.join("usr/local/bin/netlab");
    copy_file(&bin, &netlab)?;
    strip(&netlab);
    copy_tools(&rootfs)?;
    fs::write(context.path.join("Dockerfile"), DOCKERFILE)
        .with_context(|| format!("cannot write the Dockerfile in {}", context.path.display()))?;

    let old = image_id(&tags()[1])?;
    let mut build = docker::docker(["build"]);
    // The legacy builder: there is no buildx here.
    build.env("DOCKER_BUILDKIT", "0").args([
        "--label",
        &format!(
            "org.opencontainers.image.version={}",
            env!("CARGO_PKG_VERSION")
        ),
    ]);
    for tag in tags() {
        build.args(["--tag", &tag]);
    }
    if no_cache {
        build.arg("--no-cache");
    }
    build.arg(&context.path);
    cmd::run(&mut build)?;
    // The image the tags left, unless a container still uses it: each rebuild would
    // otherwise leave an untagged 20 MB behind.
    if let Some(old) = old.filter(|old| image_id(&tags()[1]).ok().flatten().as_ref() != Some(old)) {
        let mut rm = docker::docker(["image", "rm", &old]);
        if !cmd::output(&mut rm)?.status.success() {
            eprintln!("xtask: kept the replaced image {old} (something still uses it)");
        }
    }
    let size = docker::output(["image", "inspect", "--format", "{{.Size}}", &tags()[1]])?;
    let size: u64 = size.trim().parse().unwrap_or_default();
    eprintln!(
        "xtask: built {} ({:.1} MB)",
        tags().join(", "),
        size as f64 / 1e6
    );
    Ok(())
}

/// The id of image `tag`, if it exists.
fn image_id(tag: &str) -> Result<Option<String>> {
    Ok(
        docker::output_if_ok(["image", "inspect", "--format", "{{.Id}}", tag])?
            .map(|id| id.trim().to_owned()),
    )
}

/// `cargo build --release` of netlab for [`TARGET`] with a static C runtime; the binary's path.
fn build_static() -> Result<PathBuf> {
    let mut build = cmd::cargo();
    build
        .args([
            "build",
            "--release",
            "-p",
            "netlab-daemon",
            "--target",
            TARGET,
        ])
        .env(
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
            "-C target-feature=+crt-static",
        )
        .current_dir(workspace::root());
    cmd::run(&mut build)?;
    let bin = workspace::target_dir()?
        .join(TARGET)
        .join("release")
        .join("netlab");
    let elf = fs::read(&bin).with_context(|| format!("cannot read {}", bin.display()))?;
    if !is_static_elf(&elf) {
        bail!(
            "{} is not a static executable, so it cannot run in a `FROM scratch` image",
            bin.display()
        );
    }
    Ok(bin)
}

/// Copies the firewall tools, iptables' extensions and every shared library they load (and
/// the dynamic loader) into `rootfs`, each at the path it has here.
fn copy_tools(rootfs: &Path) -> Result<()> {
    let mut elves: Vec<PathBuf> = Vec::new();
    for tool in TOOLS {
        let found = TOOL_DIRS
            .iter()
            .map(|dir| Path::new(dir).join(tool))
            .find(|path| path.exists())
            .with_context(|| {
                format!(
                    "{tool} is not installed here, and the image needs it to name the firewall \
                     rule behind a drop (`cargo xtask setup` installs iptables and nftables)"
                )
            })?;
        // `iptables-save` is a link (through /etc/alternatives) to a multi-call binary that
        // acts on the name it is called by: copy the binary once, and link the name to it.
        let real = fs::canonicalize(&found)
            .with_context(|| format!("cannot resolve {}", found.display()))?;
        let in_image = rootfs.join(strip_root(&found));
        if real.file_name() == found.file_name() {
            copy_file(&real, &in_image)?;
        } else {
            let real_in_image = found.with_file_name(real.file_name().unwrap_or_default());
            copy_file(&real, &rootfs.join(strip_root(&real_in_image)))?;
            std::os::unix::fs::symlink(real.file_name().unwrap_or_default(), &in_image)
                .with_context(|| format!("cannot link {}", in_image.display()))?;
        }
        elves.push(real);
    }
    for entry in fs::read_dir(XTABLES_DIR)
        .with_context(|| format!("cannot list iptables' extensions in {XTABLES_DIR}"))?
    {
        let path = entry?.path();
        copy_file(&path, &rootfs.join(strip_root(&path)))?;
        elves.push(path);
    }
    let mut libraries = BTreeSet::new();
    for elf in &elves {
        libraries.extend(shared_libraries(elf)?);
    }
    for lib in &libraries {
        copy_file(lib, &rootfs.join(strip_root(lib)))?;
    }
    for etc in ETC_FILES {
        if Path::new(etc).exists() {
            copy_file(Path::new(etc), &rootfs.join(strip_root(Path::new(etc))))?;
        }
    }
    eprintln!(
        "xtask: image: {} with {} shared libraries and {} iptables extensions",
        TOOLS.join(", "),
        libraries.len(),
        elves.len() - TOOLS.len()
    );
    Ok(())
}

/// The shared libraries `elf` loads, the dynamic loader included, as `ldd` lists them.
fn shared_libraries(elf: &Path) -> Result<Vec<PathBuf>> {
    // Not announced: it runs once per tool and extension, over a hundred times.
    let out = std::process::Command::new("ldd")
        .arg(elf)
        .output()
        .with_context(|| format!("cannot run ldd on {}", elf.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut found = Vec::new();
    for line in text.lines() {
        if line.contains("not found") {
            bail!(
                "{} needs a library this machine lacks: {}",
                elf.display(),
                line.trim()
            );
        }
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x...)`; the vDSO has no path.
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            found.push(PathBuf::from(path));
        }
    }
    Ok(found)
}

/// Removes the symbol table from the image's copy of netlab (a fifth of its size), when
/// binutils' `strip` is here; the build's own binary keeps it.
fn strip(bin: &Path) {
    let mut strip = std::process::Command::new("strip");
    strip.arg(bin);
    match cmd::output(&mut strip) {
        Ok(out) if out.status.success() => {}
        _ => eprintln!("xtask: image: netlab is not stripped (no working `strip` here)"),
    }
}

/// `path` without its leading `/`, to join under the image's root.
fn strip_root(path: &Path) -> &Path {
    path.strip_prefix("/").unwrap_or(path)
}

/// Copies what `from` is (links followed) to `to`, making its directory, keeping the mode.
fn copy_file(from: &Path, to: &Path) -> Result<()> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    let mode = fs::metadata(from)
        .with_context(|| format!("cannot stat {}", from.display()))?
        .permissions()
        .mode();
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_carry_the_version_and_latest() {
        let [versioned, latest] = tags();
        assert_eq!(versioned, format!("netlab:{}", env!("CARGO_PKG_VERSION")));
        assert_eq!(latest, "netlab:latest");
    }

    #[test]
    fn paths_are_joined_under_the_root() {
        assert_eq!(
            strip_root(Path::new("/usr/sbin/nft")),
            Path::new("usr/sbin/nft")
        );
    }
}

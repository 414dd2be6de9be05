//! The guest's initramfs: busybox, the guest's init, netlab, the host programs the
//! scenarios use with their libraries, and the kernel's network modules.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cmd;

use super::archive::Archive;
use super::kernel::PreparedKernel;

/// Host programs copied into the guest (with their libraries), looked up on PATH.
const GUEST_PROGRAMS: &[&str] = &[
    "ip",
    "tc",
    "bpftool",
    "nft",
    "iptables",
    "iptables-save",
    "iptables-restore",
    "ip6tables",
    "ip6tables-save",
    "ip6tables-restore",
];
/// iptables' extensions, loaded with dlopen (so ldd of iptables does not name them).
const XTABLES_DIR: &str = "/usr/lib/x86_64-linux-gnu/xtables";
/// Host files the guest's programs read.
const GUEST_ETC: &[&str] = &["/etc/protocols", "/etc/services", "/etc/ethertypes"];

/// Module directories (under `lib/modules/<version>/`) whose modules all go into the
/// initramfs, with whatever they depend on: what the scenarios load, and what netfilter,
/// tc and the bridge may ask `modprobe` for on demand.
const MODULE_DIRS: &[&str] = &[
    "kernel/net/netfilter/",
    "kernel/net/ipv4/netfilter/",
    "kernel/net/ipv6/netfilter/",
    "kernel/net/bridge/",
    "kernel/net/sched/",
    "kernel/net/ipv6/ipv6.ko",
    "kernel/drivers/net/veth.ko",
];

const GUEST_SCRIPT: &str = include_str!("guest.sh");

/// Writes `<kernel dir>/initramfs.cpio` (uncompressed newc: the kernel unpacks it without
/// decompressing under emulation) and returns its path.
pub(super) fn build_initramfs(k: &PreparedKernel, netlab: &Path) -> Result<PathBuf> {
    let mut a = Archive::default();
    for dir in ["/bin", "/sbin", "/lib", "/lib64"] {
        a.add_host_path(Path::new(dir))?;
    }
    a.add_host_path(Path::new("/bin/busybox"))?;
    for dir in [
        "dev",
        "proc",
        "sys",
        "run",
        "tmp",
        "root",
        "etc",
        "usr/local/bin",
    ] {
        a.dir(dir);
    }
    a.node("dev/console", 5, 1);
    a.node("dev/null", 1, 3);
    a.bytes("init", GUEST_SCRIPT.as_bytes(), 0o755);
    a.bytes("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644);
    a.bytes("etc/group", b"root:x:0:\n", 0o644);
    for etc in GUEST_ETC {
        if Path::new(etc).exists() {
            a.add_host_path(Path::new(etc))?;
        }
    }

    // Programs and what they load: ldd names the libraries, iptables' extensions are dlopen'ed.
    let mut elves = vec![netlab.to_path_buf()];
    a.host_file("usr/local/bin/netlab", netlab)?;
    for name in GUEST_PROGRAMS {
        let path = find_program(name)
            .with_context(|| format!("{name} is not installed (vmtest copies it into the VM)"))?;
        a.add_host_path(&path)?;
        elves.push(fs::canonicalize(&path)?);
    }
    for entry in fs::read_dir(XTABLES_DIR).with_context(|| format!("reading {XTABLES_DIR}"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "so") {
            a.add_host_path(&path)?;
        }
    }
    elves.sort();
    elves.dedup();
    let mut ldd = Command::new("ldd");
    ldd.args(&elves);
    // The extensions through a shell glob: the same ldd, a shorter command line to print.
    let mut ldd_extensions = Command::new("sh");
    ldd_extensions
        .arg("-c")
        .arg(format!("ldd {XTABLES_DIR}/*.so"));
    for mut c in [ldd, ldd_extensions] {
        for lib in shared_libraries(&mut c)? {
            a.add_host_path(&lib)?;
        }
    }

    // The kernel's modules: MODULE_DIRS and their dependencies, and depmod's indexes.
    let moddir = k.root.join("lib/modules").join(&k.release);
    let dep_text = fs::read_to_string(moddir.join("modules.dep"))
        .with_context(|| format!("reading {}", moddir.join("modules.dep").display()))?;
    let deps = parse_modules_dep(&dep_text);
    let modules = module_closure(&deps, MODULE_DIRS);
    let guest_moddir = format!("lib/modules/{}", k.release);
    for m in &modules {
        a.host_file(&format!("{guest_moddir}/{m}"), &moddir.join(m))?;
    }
    for entry in fs::read_dir(&moddir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("modules.") && entry.file_type()?.is_file() {
            a.host_file(&format!("{guest_moddir}/{name}"), &entry.path())?;
        }
    }

    let path = k.dir.join("initramfs.cpio");
    let size = a.write(&path)?;
    eprintln!(
        "xtask: wrote {} ({} files, {} modules, {:.1} MiB)",
        path.display(),
        a.entries.len(),
        modules.len(),
        size as f64 / (1024.0 * 1024.0)
    );
    Ok(path)
}

/// `name` on PATH, then in /usr/sbin and /sbin (root's programs when PATH lacks them).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The shared libraries an `ldd` command names.
fn shared_libraries(ldd: &mut Command) -> Result<BTreeSet<PathBuf>> {
    // ldd exits non-zero when one of them is static; what it printed still counts.
    let out = cmd::output(ldd)?;
    let text = String::from_utf8_lossy(&out.stdout);
    if let Some(line) = text.lines().find(|l| l.contains("not found")) {
        bail!("`ldd` cannot resolve a library: {}", line.trim());
    }
    Ok(parse_ldd(&text))
}

fn parse_ldd(text: &str) -> BTreeSet<PathBuf> {
    let mut libs = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.trim(),
            None => line,
        };
        let path = path.split(" (").next().unwrap_or_default().trim();
        if path.starts_with('/') && !path.ends_with(':') {
            libs.insert(PathBuf::from(path));
        }
    }
    libs
}

/// `modules.dep`: module path → the paths it depends on.
fn parse_modules_dep(text: &str) -> BTreeMap<String, Vec<String>> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(m, deps)| {
            (
                m.trim().to_owned(),
                deps.split_whitespace().map(str::to_owned).collect(),
            )
        })
        .collect()
}

/// Every module whose path starts with one of `prefixes`, and all they depend on.
fn module_closure(deps: &BTreeMap<String, Vec<String>>, prefixes: &[&str]) -> BTreeSet<String> {
    let mut todo: Vec<&String> = deps
        .keys()
        .filter(|m| prefixes.iter().any(|p| m.starts_with(p)))
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(m) = todo.pop() {
        if seen.insert(m.clone()) {
            todo.extend(deps.get(m).into_iter().flatten());
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_parses() {
        let text = "/usr/sbin/ip:\n\tlinux-vdso.so.1 (0x00007ffc)\n\
                    \tlibbpf.so.1 => /lib/x86_64-linux-gnu/libbpf.so.1 (0x00007f96)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f96)\n\
                    /bin/busybox:\n\tnot a dynamic executable\n";
        let libs = parse_ldd(text);
        assert_eq!(
            libs.into_iter().collect::<Vec<_>>(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libbpf.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }

    #[test]
    fn module_closure_follows_dependencies() {
        let deps = parse_modules_dep(
            "kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko\n\
             kernel/net/802/stp.ko: kernel/net/llc/llc.ko\n\
             kernel/net/llc/llc.ko:\n\
             kernel/fs/fuse/fuse.ko:\n",
        );
        let got = module_closure(&deps, &["kernel/net/bridge/"]);
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            [
                "kernel/net/802/stp.ko",
                "kernel/net/bridge/bridge.ko",
                "kernel/net/llc/llc.ko"
            ]
        );
    }
}

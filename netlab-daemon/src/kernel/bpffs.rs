//! The BPF filesystem the daemon pins its maps and links in.
//!
//! Minimal hosts, containers and some VMs start with nothing mounted on `/sys/fs/bpf`.
//! As bpftool and Cilium's agent do, netlab then mounts bpffs there itself, once, and
//! never on top of something already mounted there. A pin directory elsewhere must
//! already be on bpffs.

use std::path::{Path, PathBuf};

/// Where the kernel offers a mount point for bpffs.
pub const DEFAULT_MOUNT: &str = "/sys/fs/bpf";

/// `BPF_FS_MAGIC` from linux/magic.h: `statfs(2)`'s `f_type` on bpffs.
const BPF_FS_MAGIC: u32 = 0xcafe_4a11;

/// Why a pin directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BpffsError {
    /// The pin directory (or its nearest existing parent) is on another filesystem.
    #[error(
        "--pin-dir {} is on {fstype}, not on bpffs: pinned maps and links need a bpf filesystem (e.g. under {DEFAULT_MOUNT})",
        dir.display()
    )]
    NotBpffs { dir: PathBuf, fstype: String },
    /// Nothing was mounted on /sys/fs/bpf and mounting bpffs there failed.
    #[error("nothing is mounted on {DEFAULT_MOUNT} and mounting bpffs there failed")]
    Mount {
        #[source]
        source: std::io::Error,
    },
    /// `statfs` of the directory failed.
    #[error("cannot inspect the filesystem of {}", dir.display())]
    Statfs {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One line of `/proc/self/mountinfo`: where something is mounted, and its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: PathBuf,
    pub fstype: String,
}

/// Parses `/proc/self/mountinfo` (see proc(5)): the mount point is the fifth field (with
/// octal escapes for blanks), the filesystem type the first field after the `-` separator.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mount_point = before.split(' ').nth(4)?;
            let fstype = after.split(' ').next()?;
            Some(Mount {
                mount_point: PathBuf::from(unescape(mount_point)),
                fstype: fstype.to_owned(),
            })
        })
        .collect()
}

/// Undoes mountinfo's `\NNN` octal escapes (space, tab, newline, backslash).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let code = b
            .get(i + 1..i + 4)
            .filter(|_| b[i] == b'\\')
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match code {
            Some(c) => {
                out.push(c);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The filesystem type of the mount that holds `path` (the longest mount point that is a
/// prefix of it; the last such mount wins, as it hides earlier ones).
pub fn fstype_of<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a str> {
    mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| path.starts_with(&m.mount_point))
        .max_by_key(|(i, m)| (m.mount_point.components().count(), *i))
        .map(|(_, m)| m.fstype.as_str())
}

/// Whether anything is mounted exactly on `dir`.
pub fn mounted_on(mounts: &[Mount], dir: &Path) -> bool {
    mounts.iter().any(|m| m.mount_point == dir)
}

fn read_mounts() -> Vec<Mount> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse_mountinfo(&t))
        .unwrap_or_default()
}

/// `statfs(2)`'s filesystem magic of `dir`.
fn fs_magic(dir: &Path) -> std::io::Result<u32> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: an all-zero statfs is a valid value of this plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a statfs struct to fill.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // f_type is a signed word whose value is a 32-bit magic.
    Ok(st.f_type as u32)
}

/// The nearest existing directory at or above `dir`.
fn existing_ancestor(dir: &Path) -> &Path {
    dir.ancestors()
        .find(|d| d.exists())
        .unwrap_or(Path::new("/"))
}

/// Makes sure `pin_dir` can hold pins: when it lies under `/sys/fs/bpf` and nothing is
/// mounted there, mounts bpffs there (needs `CAP_SYS_ADMIN`) and says so once; then checks
/// that the directory is on bpffs. Returns whether it mounted bpffs.
pub fn ensure(pin_dir: &Path) -> Result<bool, BpffsError> {
    let default = Path::new(DEFAULT_MOUNT);
    let mut mounted = false;
    if pin_dir.starts_with(default) && default.is_dir() && !mounted_on(&read_mounts(), default) {
        mount_bpffs(default).map_err(|source| BpffsError::Mount { source })?;
        log::info!("nothing was mounted on {DEFAULT_MOUNT}: mounted bpffs there");
        mounted = true;
    }
    let at = existing_ancestor(pin_dir);
    let magic = fs_magic(at).map_err(|source| BpffsError::Statfs {
        dir: at.to_owned(),
        source,
    })?;
    if magic != BPF_FS_MAGIC {
        let mounts = read_mounts();
        return Err(BpffsError::NotBpffs {
            dir: pin_dir.to_owned(),
            fstype: fstype_of(&mounts, at)
                .map_or_else(|| format!("a filesystem of type {magic:#x}"), str::to_owned),
        });
    }
    Ok(mounted)
}

/// Whether `dir` is on bpffs now (without mounting anything).
pub fn is_bpffs(dir: &Path) -> bool {
    fs_magic(existing_ancestor(dir)).is_ok_and(|m| m == BPF_FS_MAGIC)
}

fn mount_bpffs(at: &Path) -> std::io::Result<()> {
    let target = std::ffi::CString::new(at.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: valid NUL-terminated strings; "mode=0700" is the option systemd uses.
    let r = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            c"mode=0700".as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 0:21 / / rw,relatime - ext4 /dev/vda rw
23 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
24 23 0:23 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:8 - bpf bpf rw,mode=700
25 22 0:24 / /tmp rw - tmpfs tmpfs rw
26 22 0:25 / /mnt/with\\040space rw - tmpfs tmpfs rw
27 22 0:26 / /tmp rw - ext4 /dev/vdb rw
";

    #[test]
    fn mountinfo_lines_give_mount_point_and_type() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 6);
        assert_eq!(
            m[2],
            Mount {
                mount_point: "/sys/fs/bpf".into(),
                fstype: "bpf".into()
            }
        );
        assert_eq!(m[4].mount_point, Path::new("/mnt/with space"));
        assert!(parse_mountinfo("garbage\n\n1 2 3").is_empty());
    }

    #[test]
    fn the_innermost_and_latest_mount_names_the_filesystem() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(fstype_of(&m, Path::new("/sys/fs/bpf/netlab")), Some("bpf"));
        assert_eq!(fstype_of(&m, Path::new("/sys/class")), Some("sysfs"));
        // /tmp was mounted twice: the later mount hides the earlier one.
        assert_eq!(fstype_of(&m, Path::new("/tmp/x")), Some("ext4"));
        assert_eq!(fstype_of(&m, Path::new("/home")), Some("ext4"));
        // Path components, not string prefixes.
        assert_eq!(fstype_of(&m, Path::new("/sys/fs/bpfx")), Some("sysfs"));
        assert!(mounted_on(&m, Path::new("/sys/fs/bpf")));
        assert!(!mounted_on(&m, Path::new("/sys/fs")));
    }

    #[test]
    fn unmounted_bpffs_is_seen_as_unmounted() {
        let without: String = MOUNTINFO
            .lines()
            .filter(|l| !l.contains(" bpf "))
            .map(|l| format!("{l}\n"))
            .collect();
        let m = parse_mountinfo(&without);
        assert!(!mounted_on(&m, Path::new(DEFAULT_MOUNT)));
        assert_eq!(
            fstype_of(&m, Path::new("/sys/fs/bpf/netlab")),
            Some("sysfs")
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape(r"a\040b\011c\134d"), "a b\tc\\d");
        assert_eq!(unescape(r"trailing\04"), r"trailing\04");
        assert_eq!(unescape(r"\999"), r"\999");
    }

    #[test]
    fn a_directory_on_tmpfs_is_refused_with_its_type() {
        let dir = std::env::temp_dir().join(format!("netlab-bpffs-test-{}", std::process::id()));
        if is_bpffs(&dir) {
            eprintln!("skipping: the temporary directory is on bpffs");
            return;
        }
        let e = ensure(&dir.join("pins")).expect_err("not bpffs");
        let text = e.to_string();
        assert!(text.contains("not on bpffs"), "{text}");
        assert!(
            text.contains(&dir.join("pins").display().to_string()),
            "{text}"
        );
    }
}

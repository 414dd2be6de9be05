//! An initramfs being assembled, and its cpio `newc` writer.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

/// One entry of the initramfs.
#[derive(Debug)]
pub(super) enum Entry {
    Dir,
    File { source: Source, mode: u32 },
    Symlink(String),
    CharDev { major: u32, minor: u32 },
}

#[derive(Debug)]
pub(super) enum Source {
    Host(PathBuf),
    Bytes(Vec<u8>),
}

/// An initramfs being assembled: paths are relative to its root, without `.` or `..`, and
/// go through the archive's own symlinks (`lib` → `usr/lib` where the host is merged-/usr).
#[derive(Debug, Default)]
pub(super) struct Archive {
    pub(super) entries: BTreeMap<PathBuf, Entry>,
}

impl Archive {
    /// `path` with every leading component that is one of the archive's symlinks replaced by
    /// its target, so that a file is stored where the guest will find it.
    fn resolve(&self, path: &Path) -> PathBuf {
        let mut out = PathBuf::new();
        for (hops, comp) in path.components().enumerate() {
            let Component::Normal(name) = comp else {
                continue;
            };
            out.push(name);
            if hops > 40 {
                break;
            }
            if let Some(Entry::Symlink(target)) = self.entries.get(&out) {
                let target = Path::new(target);
                let base = if target.is_absolute() {
                    PathBuf::new()
                } else {
                    out.parent().map(Path::to_path_buf).unwrap_or_default()
                };
                out = self.resolve(&normalize(&base.join(target)));
            }
        }
        out
    }

    /// Adds `path` (resolved) and its missing parent directories; keeps an existing entry.
    fn insert(&mut self, path: &Path, entry: Entry) {
        let parent = path.parent().map(|p| self.resolve(p)).unwrap_or_default();
        let mut dir = PathBuf::new();
        for comp in parent.components() {
            dir.push(comp);
            self.entries.entry(dir.clone()).or_insert(Entry::Dir);
        }
        let Some(name) = path.file_name() else {
            return;
        };
        self.entries.entry(parent.join(name)).or_insert(entry);
    }

    pub(super) fn dir(&mut self, path: &str) {
        self.insert(Path::new(path), Entry::Dir);
    }

    pub(super) fn node(&mut self, path: &str, major: u32, minor: u32) {
        self.insert(Path::new(path), Entry::CharDev { major, minor });
    }

    pub(super) fn bytes(&mut self, path: &str, data: &[u8], mode: u32) {
        self.insert(
            Path::new(path),
            Entry::File {
                source: Source::Bytes(data.to_vec()),
                mode,
            },
        );
    }

    /// The host file `host` (symlinks followed), stored at `path`.
    pub(super) fn host_file(&mut self, path: &str, host: &Path) -> Result<()> {
        let meta = fs::metadata(host).with_context(|| format!("reading {}", host.display()))?;
        self.insert(
            Path::new(path),
            Entry::File {
                source: Source::Host(host.to_path_buf()),
                mode: meta.permissions().mode() & 0o7777,
            },
        );
        Ok(())
    }

    /// The host's absolute `path` at the same place, with each symlink on the way stored as
    /// a symlink and its target added too (so `/lib64/ld-linux-x86-64.so.2` works as on the
    /// host). A directory is added empty.
    pub(super) fn add_host_path(&mut self, path: &Path) -> Result<()> {
        self.add_host_path_depth(path, 0)
    }

    fn add_host_path_depth(&mut self, path: &Path, depth: usize) -> Result<()> {
        if depth > 40 {
            bail!("too many symlinks resolving {}", path.display());
        }
        // `cur` is a host path free of symlinks; `rel` is where it sits in the archive.
        let mut cur = PathBuf::from("/");
        for comp in path.components() {
            match comp {
                Component::Normal(name) => {
                    let next = cur.join(name);
                    let meta = fs::symlink_metadata(&next)
                        .with_context(|| format!("reading {}", next.display()))?;
                    let rel = next.strip_prefix("/").unwrap_or(&next).to_path_buf();
                    if meta.file_type().is_symlink() {
                        let target = fs::read_link(&next)?;
                        self.insert(&rel, Entry::Symlink(target.to_string_lossy().into_owned()));
                        let resolved = normalize(&cur.join(&target));
                        self.add_host_path_depth(&resolved, depth + 1)?;
                        cur = fs::canonicalize(&next)
                            .with_context(|| format!("resolving {}", next.display()))?;
                    } else if meta.is_dir() {
                        self.insert(&rel, Entry::Dir);
                        cur = next;
                    } else {
                        self.insert(
                            &rel,
                            Entry::File {
                                source: Source::Host(next.clone()),
                                mode: meta.permissions().mode() & 0o7777,
                            },
                        );
                        cur = next;
                    }
                }
                Component::ParentDir => {
                    cur.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        Ok(())
    }

    /// Writes the archive as cpio `newc`; returns its size in bytes.
    pub(super) fn write(&self, path: &Path) -> Result<u64> {
        let file =
            fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = CpioWriter::new(BufWriter::new(file));
        for (name, entry) in &self.entries {
            let name = name.to_string_lossy();
            match entry {
                Entry::Dir => w.entry(&name, 0o040_755, 2, (0, 0), &[])?,
                Entry::Symlink(target) => {
                    w.entry(&name, 0o120_777, 1, (0, 0), target.as_bytes())?
                }
                Entry::CharDev { major, minor } => {
                    w.entry(&name, 0o020_600, 1, (*major, *minor), &[])?
                }
                Entry::File { source, mode } => {
                    let data = match source {
                        Source::Bytes(b) => std::borrow::Cow::Borrowed(b.as_slice()),
                        Source::Host(p) => std::borrow::Cow::Owned(
                            fs::read(p).with_context(|| format!("reading {}", p.display()))?,
                        ),
                    };
                    w.entry(&name, 0o100_000 | mode, 1, (0, 0), &data)?
                }
            }
        }
        let size = w.finish()?;
        Ok(size)
    }
}

/// `path` with `.` and `..` removed lexically (the path is known to be free of symlinks up
/// to each `..`).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for comp in path.components() {
        match comp {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The cpio "new ASCII" format the kernel unpacks: a 110-byte hex header, the name, the
/// data, each padded to 4 bytes, and a `TRAILER!!!` entry.
struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    ino: u32,
}

impl<W: Write> CpioWriter<W> {
    fn new(out: W) -> Self {
        Self {
            out,
            written: 0,
            ino: 0,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> Result<()> {
        let n = (4 - self.written % 4) % 4;
        self.put(&[0u8; 3][..n as usize])
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        (rdev_major, rdev_minor): (u32, u32),
        data: &[u8],
    ) -> Result<()> {
        self.ino += 1;
        let size = u32::try_from(data.len()).context("a file of 4 GiB or more")?;
        let namesize = u32::try_from(name.len() + 1).context("a name too long")?;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev_major, rdev_minor, namesize, 0
        );
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn finish(mut self) -> Result<u64> {
        self.ino = 0;
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[])?;
        self.out.flush()?;
        Ok(self.written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_go_through_its_symlinks() {
        let mut a = Archive::default();
        a.insert(Path::new("lib"), Entry::Symlink("usr/lib".into()));
        a.insert(Path::new("lib64"), Entry::Symlink("/usr/lib64".into()));
        a.bytes("lib/modules/6.1/modules.dep", b"", 0o644);
        a.bytes("lib64/ld.so", b"", 0o755);
        let names: Vec<String> = a
            .entries
            .keys()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "lib",
                "lib64",
                "usr",
                "usr/lib",
                "usr/lib/modules",
                "usr/lib/modules/6.1",
                "usr/lib/modules/6.1/modules.dep",
                "usr/lib64",
                "usr/lib64/ld.so"
            ]
        );
        assert_eq!(
            normalize(Path::new("/usr/lib64/../lib/x/./y")),
            Path::new("/usr/lib/x/y")
        );
    }

    #[test]
    fn cpio_entries_are_aligned() {
        let mut out = Vec::new();
        let mut w = CpioWriter::new(&mut out);
        w.entry("init", 0o100_755, 1, (0, 0), b"#!/bin/sh\n")
            .expect("entry");
        let size = w.finish().expect("trailer");
        assert_eq!(size as usize, out.len());
        assert_eq!(out.len() % 4, 0);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("070701"), "{text}");
        // 110-byte header + "init\0" padded to 116, then 10 bytes of data padded to 12.
        assert_eq!(&out[110..115], b"init\0");
        assert_eq!(&out[116..126], b"#!/bin/sh\n");
        assert!(text[128..].starts_with("070701"));
        assert!(text.contains("TRAILER!!!"));
    }
}

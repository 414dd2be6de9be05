//! [`PublicCopy`]: a copy of a binary that an unprivileged user can execute.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::host::netns::unique_name;

/// A copy of a binary in a fresh world-readable directory under the temp dir, mode 0755,
/// so `setpriv --reuid=65534` can run it whatever the permissions of the build tree.
/// Dropping it removes the directory.
#[derive(Debug)]
pub struct PublicCopy {
    dir: PathBuf,
    /// Path of the copy.
    pub bin: PathBuf,
}

impl PublicCopy {
    /// Copies `bin` (keeping its file name).
    pub fn new(bin: &Path) -> Result<Self> {
        let dir = std::env::temp_dir().join(unique_name("bin"));
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let name = bin.file_name().context("binary path has no file name")?;
        let copy = Self {
            bin: dir.join(name),
            dir,
        };
        std::fs::copy(bin, &copy.bin)
            .with_context(|| format!("copying {} to {}", bin.display(), copy.bin.display()))?;
        std::fs::set_permissions(&copy.bin, std::fs::Permissions::from_mode(0o755))?;
        // create() applies the umask; make the directory traversable for everyone regardless.
        std::fs::set_permissions(&copy.dir, std::fs::Permissions::from_mode(0o755))?;
        Ok(copy)
    }
}

impl Drop for PublicCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

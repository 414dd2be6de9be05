//! The lab's Docker images, built locally (no registry is reachable): `netlab/busybox` (Debian's
//! static busybox and its applets, `FROM scratch`) and `netlab/http-echo` on top of it (a
//! stand-in for hashicorp/http-echo: `-text TEXT` served by busybox httpd on port 5678).
//!
//! Their recipes live in `xtask/images/<name>/` and are compiled into xtask. Each built image
//! carries the label [`RECIPE_LABEL`], a hash of its build context (and of its base's recipe),
//! so an image whose recipe changed since it was built is rebuilt like a missing one.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::{cmd, docker};

pub const BUSYBOX_IMAGE: &str = "netlab/busybox:latest";
pub const HTTP_ECHO_IMAGE: &str = "netlab/http-echo:latest";
/// Debian's busybox-static installs a statically linked busybox here.
const BUSYBOX_BINARY: &str = "/bin/busybox";
/// Image label holding the hash of the recipe the image was built from.
pub const RECIPE_LABEL: &str = "org.netlab.recipe";
/// How many trailing lines of a failed `docker build` an error shows.
const BUILD_LOG_TAIL: usize = 25;

/// One file of a build context.
struct ContextFile {
    name: &'static str,
    contents: &'static [u8],
    mode: u32,
}

/// An image and the build context it is made from.
struct Image {
    tag: &'static str,
    files: &'static [ContextFile],
    /// Whether the context also holds a copy of [`BUSYBOX_BINARY`] named `busybox`.
    with_busybox: bool,
    /// The image it is built `FROM`, if it is one of ours.
    base: Option<&'static str>,
}

const BUSYBOX: Image = Image {
    tag: BUSYBOX_IMAGE,
    files: &[ContextFile {
        name: "Dockerfile",
        contents: include_bytes!("../images/busybox/Dockerfile"),
        mode: 0o644,
    }],
    with_busybox: true,
    base: None,
};

const HTTP_ECHO: Image = Image {
    tag: HTTP_ECHO_IMAGE,
    files: &[
        ContextFile {
            name: "Dockerfile",
            contents: include_bytes!("../images/http-echo/Dockerfile"),
            mode: 0o644,
        },
        ContextFile {
            name: "entrypoint.sh",
            contents: include_bytes!("../images/http-echo/entrypoint.sh"),
            mode: 0o755,
        },
    ],
    with_busybox: false,
    base: Some(BUSYBOX_IMAGE),
};

/// In build order: a base comes before the images built on it.
const IMAGES: [Image; 2] = [BUSYBOX, HTTP_ECHO];

/// Builds each image of the lab that is missing, was built from another recipe, or is built on
/// an image rebuilt just now; `rebuild` builds them all from scratch (`--no-cache`).
/// Needs a Docker engine that answers (see [`docker::ensure_docker`]).
pub fn ensure_images(rebuild: bool) -> Result<()> {
    let busybox = fs::read(BUSYBOX_BINARY).with_context(|| {
        format!("cannot read {BUSYBOX_BINARY} (install busybox-static: `cargo xtask setup`)")
    })?;
    if !is_static_elf(&busybox) {
        bail!(
            "{BUSYBOX_BINARY} is not a statically linked ELF executable, so it cannot run in a \
             `FROM scratch` image; install Debian's busybox-static (`apt-get install busybox-static`)"
        );
    }

    let mut recipes: Vec<(&str, String)> = Vec::new();
    let mut built: Vec<&str> = Vec::new();
    let mut replaced: Vec<String> = Vec::new();
    for image in &IMAGES {
        let base_recipe = image.base.and_then(|base| {
            recipes
                .iter()
                .find(|(tag, _)| *tag == base)
                .map(|(_, recipe)| recipe.as_str())
        });
        let recipe = recipe_of(image, &busybox, base_recipe);
        let existing = inspect(image.tag)?;
        let base_rebuilt = image.base.is_some_and(|base| built.contains(&base));
        let reason = match &existing {
            _ if rebuild => Some("--rebuild"),
            None => Some("missing"),
            Some(found) if found.recipe != recipe => Some("its recipe changed"),
            Some(_) if base_rebuilt => Some("its base image was rebuilt"),
            Some(_) => None,
        };
        match reason {
            None => eprintln!("xtask: image {} is up to date", image.tag),
            Some(reason) => {
                eprintln!("xtask: building image {} ({reason})", image.tag);
                build(image, &busybox, &recipe, rebuild)?;
                built.push(image.tag);
                let new = inspect(image.tag)?.with_context(|| {
                    format!(
                        "`docker build` succeeded but there is no image {}",
                        image.tag
                    )
                })?;
                if let Some(old) = existing.filter(|old| old.id != new.id) {
                    replaced.push(old.id);
                }
            }
        }
        recipes.push((image.tag, recipe));
    }
    // Images built on a replaced one come later in `replaced`: remove them first.
    for old in replaced.iter().rev() {
        remove_replaced(old)?;
    }
    if built.is_empty() {
        eprintln!("xtask: images: nothing to build");
    } else {
        eprintln!("xtask: built {}", built.join(", "));
    }
    Ok(())
}

/// What `docker image inspect` says about an image that exists.
struct Existing {
    id: String,
    /// The [`RECIPE_LABEL`] value, empty if the label is missing.
    recipe: String,
}

fn inspect(tag: &str) -> Result<Option<Existing>> {
    let format = format!("{{{{.Id}}}} {{{{index .Config.Labels \"{RECIPE_LABEL}\"}}}}");
    let Some(out) = docker::output_if_ok(["image", "inspect", "--format", &format, tag])? else {
        return Ok(None);
    };
    let mut words = out.split_whitespace();
    let id = words
        .next()
        .with_context(|| format!("`docker image inspect {tag}` printed no image id"))?;
    let recipe = words.next().unwrap_or_default();
    Ok(Some(Existing {
        id: id.to_owned(),
        recipe: recipe.to_owned(),
    }))
}

/// Writes the image's context into a fresh temporary directory and runs `docker build` on it.
fn build(image: &Image, busybox: &[u8], recipe: &str, no_cache: bool) -> Result<()> {
    let context = TempDir::new(image.tag)?;
    for file in image.files {
        write_file(&context.path.join(file.name), file.contents, file.mode)?;
    }
    if image.with_busybox {
        write_file(&context.path.join("busybox"), busybox, 0o755)?;
    }

    let mut build = docker::docker(["build"]);
    // The legacy builder: there is no buildx here, and it finds `FROM netlab/busybox` locally.
    build
        .env("DOCKER_BUILDKIT", "0")
        .args(["--label", &format!("{RECIPE_LABEL}={recipe}")])
        .args(["--tag", image.tag]);
    if no_cache {
        build.arg("--no-cache");
    }
    build.arg(&context.path);
    let out = cmd::output(&mut build)?;
    if !out.status.success() {
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        bail!(
            "`{}` failed ({}); its last lines:\n{}",
            cmd::display(&build),
            out.status,
            tail(&log, BUILD_LOG_TAIL)
        );
    }
    Ok(())
}

/// Removes an image replaced by a rebuild, unless something still uses it or it is gone
/// already (removing an image also removes its untagged parents).
fn remove_replaced(id: &str) -> Result<()> {
    if docker::output_if_ok(["image", "inspect", "--format", "{{.Id}}", id])?.is_none() {
        return Ok(());
    }
    let mut rmi = docker::docker(["image", "rm", id]);
    let out = cmd::output(&mut rmi)?;
    if !out.status.success() {
        eprintln!(
            "xtask: kept the replaced image {id}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", path.display()))
}

/// A directory under the system's temporary directory, removed on drop.
pub(crate) struct TempDir {
    pub(crate) path: PathBuf,
}

impl TempDir {
    pub(crate) fn new(tag: &str) -> Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or_default();
        let name: String = tag
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path = std::env::temp_dir().join(format!(
            "netlab-image-{name}-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(err) = fs::remove_dir_all(&self.path) {
            eprintln!("xtask: cannot remove {}: {err}", self.path.display());
        }
    }
}

/// The hash that identifies what an image is built from: its context's files (names, modes,
/// contents), busybox if it is copied in, and its base image's recipe.
fn recipe_of(image: &Image, busybox: &[u8], base_recipe: Option<&str>) -> String {
    let mut hash = Fnv1a::new();
    for file in image.files {
        hash.field(file.name.as_bytes());
        hash.field(&file.mode.to_le_bytes());
        hash.field(file.contents);
    }
    if image.with_busybox {
        hash.field(b"busybox");
        hash.field(busybox);
    }
    if let Some(base) = base_recipe {
        hash.field(b"base");
        hash.field(base.as_bytes());
    }
    format!("{:016x}", hash.0)
}

/// 64-bit FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Length-prefixed, so that ("ab", "c") and ("a", "bc") differ.
    fn field(&mut self, bytes: &[u8]) {
        self.bytes(&(bytes.len() as u64).to_le_bytes());
        self.bytes(bytes);
    }
}

/// Whether `elf` is a 64-bit little-endian ELF executable without a program interpreter
/// (`PT_INTERP`), i.e. one that runs in an image holding nothing else.
pub(crate) fn is_static_elf(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return false;
    }
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u64_at = |at: usize| {
        elf.get(at..at + 8).and_then(|b| {
            let bytes: [u8; 8] = b.try_into().ok()?;
            usize::try_from(u64::from_le_bytes(bytes)).ok()
        })
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        match elf.get(at..at + 4) {
            Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) != PT_INTERP,
            None => false,
        }
    })
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_are_stable_and_distinct() {
        let a = recipe_of(&BUSYBOX, b"one", None);
        assert_eq!(a, recipe_of(&BUSYBOX, b"one", None));
        assert_ne!(a, recipe_of(&BUSYBOX, b"two", None));
        assert_eq!(a.len(), 16);
        // http-echo does not copy busybox in, but follows its base's recipe.
        assert_eq!(
            recipe_of(&HTTP_ECHO, b"one", Some("x")),
            recipe_of(&HTTP_ECHO, b"two", Some("x"))
        );
        assert_ne!(
            recipe_of(&HTTP_ECHO, b"one", Some("x")),
            recipe_of(&HTTP_ECHO, b"one", Some("y"))
        );
    }

    #[test]
    fn fnv1a_matches_reference_values() {
        let mut hash = Fnv1a::new();
        hash.bytes(b"");
        assert_eq!(hash.0, 0xcbf2_9ce4_8422_2325);
        hash.bytes(b"a");
        assert_eq!(hash.0, 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn images_come_after_their_base() {
        for (i, image) in IMAGES.iter().enumerate() {
            if let Some(base) = image.base {
                let at = IMAGES.iter().position(|other| other.tag == base);
                assert!(at.is_some_and(|at| at < i), "{} before its base", image.tag);
            }
        }
    }

    #[test]
    fn recipes_are_what_the_lab_expects() {
        let busybox = String::from_utf8_lossy(BUSYBOX.files[0].contents);
        assert!(busybox.contains("FROM scratch"));
        assert!(busybox.contains("COPY busybox /bin/busybox"));
        let http_echo = String::from_utf8_lossy(HTTP_ECHO.files[0].contents);
        assert!(http_echo.contains("FROM netlab/busybox"));
        let entrypoint = String::from_utf8_lossy(HTTP_ECHO.files[1].contents);
        assert!(entrypoint.starts_with("#!/bin/sh"));
        assert!(entrypoint.contains("httpd -f -p 5678 -h /www"));
    }

    #[test]
    fn static_elf_is_recognised() {
        // A minimal ELF64 header with one PT_LOAD (1) program header at offset 64.
        let mut elf = vec![0u8; 64 + 56];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        elf[64..68].copy_from_slice(&1u32.to_le_bytes());
        assert!(is_static_elf(&elf));
        elf[64..68].copy_from_slice(&3u32.to_le_bytes()); // PT_INTERP
        assert!(!is_static_elf(&elf));
        assert!(!is_static_elf(b"#!/bin/sh\n"));
        // Program headers past the end of the file.
        elf[0x38..0x3a].copy_from_slice(&9u16.to_le_bytes());
        assert!(!is_static_elf(&elf));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }

    #[test]
    fn temp_dir_is_removed_on_drop() {
        let dir = TempDir::new("netlab/test:latest").expect("temp dir");
        let path = dir.path.clone();
        assert!(path.is_dir());
        assert!(path.file_name().is_some_and(|name| name
            .to_string_lossy()
            .starts_with("netlab-image-netlab-test-latest-")));
        drop(dir);
        assert!(!path.exists());
    }
}

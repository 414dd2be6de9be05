//! Where the workspace and its target directory are, and building the netlab binary.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::cmd;

/// The workspace root: the parent of xtask's manifest directory.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in a subdirectory of the workspace")
}

/// The cargo target directory: `CARGO_TARGET_DIR` if set, else what `cargo metadata` reports,
/// else `<workspace>/target`.
pub fn target_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|dir| !dir.is_empty()) {
        return Ok(root().join(dir));
    }
    let mut metadata = cmd::cargo();
    metadata
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root());
    let json = cmd::capture(&mut metadata)?;
    Ok(json_string_field(&json, "target_directory")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target")))
}

/// Builds netlab-daemon and returns the absolute path of the `netlab` binary.
pub fn build_daemon(release: bool) -> Result<PathBuf> {
    let mut build = cmd::cargo();
    build
        .args(["build", "-p", "netlab-daemon"])
        .current_dir(root());
    if release {
        build.arg("--release");
    }
    cmd::run(&mut build)?;
    let bin = target_dir()?
        .join(if release { "release" } else { "debug" })
        .join("netlab");
    if !bin.is_file() {
        bail!("the build succeeded but {} does not exist", bin.display());
    }
    Ok(bin)
}

/// The value of the first `"field": "..."` string in a JSON text (enough for `cargo metadata`'s
/// top-level `target_directory`, which comes after the `packages` array that never has that key).
fn json_string_field(json: &str, field: &str) -> Option<String> {
    let key = format!("\"{field}\"");
    let after_key = &json[json.find(&key)? + key.len()..];
    let after_colon = after_key.trim_start().strip_prefix(':')?.trim_start();
    let mut chars = after_colon.strip_prefix('"')?.chars();
    let mut value = String::new();
    loop {
        match chars.next()? {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                'r' => value.push('\r'),
                'b' => value.push('\u{8}'),
                'f' => value.push('\u{c}'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    value.push(
                        char::from_u32(u32::from_str_radix(&hex, 16).ok()?).unwrap_or('\u{fffd}'),
                    );
                }
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_target_directory() {
        let json =
            r#"{"packages":[{"name":"x"}],"target_directory":"/work/main/target","version":1}"#;
        assert_eq!(
            json_string_field(json, "target_directory").as_deref(),
            Some("/work/main/target")
        );
    }

    #[test]
    fn unescapes_json_strings() {
        let json = r#"{"target_directory" : "/a \"b\"\\c\/d\u00e9"}"#;
        assert_eq!(
            json_string_field(json, "target_directory").as_deref(),
            Some("/a \"b\"\\c/dé")
        );
    }

    #[test]
    fn missing_or_malformed_field_is_none() {
        assert_eq!(json_string_field("{}", "target_directory"), None);
        assert_eq!(
            json_string_field(r#"{"target_directory":1}"#, "target_directory"),
            None
        );
        assert_eq!(
            json_string_field(r#"{"target_directory":"/unterminated"#, "target_directory"),
            None
        );
    }

    #[test]
    fn root_holds_the_workspace_manifest() {
        assert!(root().join("Cargo.toml").is_file());
        assert!(root().join("xtask").is_dir());
    }
}

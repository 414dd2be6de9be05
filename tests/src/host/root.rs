//! Whether this process may do what needs root: create namespaces and links, load eBPF.

use anyhow::{bail, Result};

/// This process's effective user id.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Fails unless the effective uid is 0, saying that `what` needs root.
pub fn require_root(what: &str) -> Result<()> {
    let euid = effective_uid();
    if euid != 0 {
        bail!("{what} needs root (effective uid is {euid})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_names_what_needs_root() {
        match require_root("`cargo xtask bench`") {
            Ok(()) => assert_eq!(effective_uid(), 0),
            Err(err) => {
                let message = err.to_string();
                assert!(
                    message.starts_with("`cargo xtask bench` needs root (effective uid is "),
                    "{message}"
                );
            }
        }
    }
}

//! Running `nft` (see [`crate::explain::command`]).

use std::time::Duration;

use super::NftError;
use crate::explain::command::{run_installed, CommandError, Shown};

/// Whether `nft list table` failed because the table does not exist.
pub(super) fn table_missing(stderr: &str) -> bool {
    stderr.contains("No such file or directory")
}

/// Runs `nft args`, looking in the PATH, then /usr/sbin and /sbin; [`NftError::NftMissing`]
/// if it is in none of them.
pub(super) fn run_nft(args: &[&str], timeout: Duration) -> Result<String, NftError> {
    match run_installed("nft", args, timeout, Shown::CommandLine) {
        Err(CommandError::Start { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Err(NftError::NftMissing)
        }
        other => other.map_err(NftError::from),
    }
}

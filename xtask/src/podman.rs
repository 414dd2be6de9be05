//! Podman for the tests and `cargo xtask lab --engine podman`: its API service running and
//! the lab's images in its store (copied from Docker's, which builds them).

use std::path::Path;

use anyhow::{Context, Result};

/// Where the Podman service started by xtask writes its output.
pub const PODMAN_LOG: &str = "/var/log/netlab-podman.log";

/// Starts Podman's API service unless it answers, and copies the lab's images (built by
/// [`crate::images::ensure_images`]) into Podman's store unless they are there.
pub fn ensure() -> Result<()> {
    netlab_tests::podman::ensure_service(Path::new(PODMAN_LOG))?;
    eprintln!(
        "xtask: Podman's API service answers on {}",
        netlab_tests::podman::SOCKET
    );
    for image in [crate::images::BUSYBOX_IMAGE, crate::images::HTTP_ECHO_IMAGE] {
        netlab_tests::podman::ensure_image(image)
            .with_context(|| format!("copying {image} into Podman's store"))?;
    }
    Ok(())
}

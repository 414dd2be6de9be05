//! `cargo xtask test`: every test, on a fresh machine too.

use anyhow::{Context, Result};

use crate::{cmd, docker, fuzz, images, setup, vmtest, workspace};

/// setup, a Docker engine and the lab's images, the unit tests, a release build of netlab, then
/// the privileged integration tests (one at a time) against that binary, then (without a test
/// filter) the kernel scenarios in VMs (`vmtest`) and every fuzz target for 30 s. Stops at
/// the first failing step.
pub fn run(filter: &[String]) -> Result<()> {
    setup::run().context("setup failed")?;
    docker::ensure_docker().context("no Docker engine")?;
    // The Docker tests run containers of the lab's images: build those missing or outdated.
    images::ensure_images(false).context("building the lab's Docker images failed")?;

    cmd::run(
        cmd::cargo()
            .args(["test", "--workspace", "--exclude", "netlab-tests"])
            .current_dir(workspace::root()),
    )
    .context("unit tests failed")?;

    let netlab = workspace::build_daemon(true).context("release build of netlab failed")?;
    cmd::run(
        cmd::cargo()
            .env("NETLAB_BIN", &netlab)
            .args(["test", "-p", "netlab-tests", "--", "--test-threads=1"])
            .args(filter)
            .current_dir(workspace::root()),
    )
    .context("integration tests failed")?;
    if filter.is_empty() {
        // The kernels Docker hosts run (5.10, 6.1, 6.12), each in a VM.
        vmtest::run(
            "all",
            &[],
            std::time::Duration::from_secs(vmtest::DEFAULT_TIMEOUT_SECS),
        )
        .context("the kernel tests in VMs failed")?;
        // A bounded fuzz run of every target (not when only some tests were asked for).
        fuzz::run(fuzz::TEST_SECS).context("fuzzing failed")?;
    }
    eprintln!("xtask: all tests passed");
    Ok(())
}

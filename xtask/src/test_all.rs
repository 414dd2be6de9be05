//! `cargo xtask test`: every test, on a fresh machine too.

use anyhow::{Context, Result};

use crate::{cmd, docker, engines, fuzz, images, setup, vmtest, workspace};

/// The integration tests that involve Docker's firewall (`tests/drops.rs`), run against
/// `engine` beside the host's (whose dockerd is stopped meanwhile).
pub fn firewall_tests_on(engine: engines::Engine, netlab: &std::path::Path) -> Result<()> {
    let side = engines::SideEngine::start(engine)?;
    // Every docker command of xtask and of the tests talks to it.
    std::env::set_var("DOCKER_HOST", &side.host);
    let run = images::ensure_images(false)
        .context("building the lab's images")
        .and_then(|()| {
            cmd::run(
                cmd::cargo()
                    .env("NETLAB_BIN", netlab)
                    .args(["test", "-p", "netlab-tests", "--test", "drops", "--"])
                    .arg("--test-threads=1")
                    .current_dir(workspace::root()),
            )
        });
    std::env::remove_var("DOCKER_HOST");
    let stopped = side.stop();
    run.and(stopped)
}

/// setup (Docker 28), a Docker engine and the lab's images, the unit tests, a release build of
/// netlab, then the privileged integration tests (one at a time) against that binary, then
/// (without a test filter) the firewall tests again on Docker 20.10, the kernel scenarios in
/// VMs (`vmtest`) and every fuzz target for 30 s. Stops at the first failing step.
pub fn run(filter: &[String]) -> Result<()> {
    let engine = setup::run_with(engines::Engine::V28).context("setup failed")?;
    docker::ensure_docker().context("no Docker engine")?;
    // The Docker tests run containers of the lab's images: build those missing or outdated.
    images::ensure_images(false).context("building the lab's Docker images failed")?;
    // The Podman tests: Podman's API service, and the busybox image in its own store.
    crate::podman::ensure().context("starting Podman's API service failed")?;

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
            .args([
                "test",
                "-p",
                "netlab-tests",
                "--no-fail-fast",
                "--",
                "--test-threads=1",
            ])
            .args(filter)
            .current_dir(workspace::root()),
    )
    .context("integration tests failed")?;
    if filter.is_empty() {
        // The tests of Docker's firewall again on an older engine, whose rules differ.
        let older = if engine == engines::Engine::V20_10 {
            engines::Engine::V26
        } else {
            engines::Engine::V20_10
        };
        firewall_tests_on(older, &netlab)
            .with_context(|| format!("the firewall tests on Docker {} failed", older.name()))?;
        docker::ensure_docker().context("restarting the host's Docker engine")?;
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

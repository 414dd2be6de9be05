//! Builds the eBPF programs (crate `netlab-ebpf`) for the BPF target and leaves the object in
//! OUT_DIR, from where `src/kernel/loader.rs` embeds it into the `netlab` binary.
use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "netlab-ebpf",
            root_dir: "../netlab-ebpf",
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context(
        "building the eBPF programs (run `cargo xtask setup` if bpf-linker or rust-src is missing)",
    )?;
    println!("cargo:rerun-if-changed=../netlab-common/src");
    Ok(())
}

//! tc programs that count and sample ARP, ICMP and ICMPv6 frames.
//!
//! They are pure observers: whatever they see, they return "next" (`TCX_NEXT`, the same
//! value as `TC_ACT_UNSPEC` for a netlink cls_bpf filter), so the packet's fate and the
//! verdict of any other program on the hook are untouched.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod cover;
#[cfg(target_arch = "bpf")]
mod drops;
#[cfg(target_arch = "bpf")]
mod program;

#[cfg(not(target_arch = "bpf"))]
fn main() {
    // The programs only exist for the BPF target; a host build of this crate (for
    // `cargo clippy --workspace`) has nothing to run.
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects programs that can reach a panic, so this is never executed.
    loop {}
}

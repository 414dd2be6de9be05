//! Keeping xtask alive through Ctrl-C while a foreground child runs, the way `system(3)` does.
//!
//! No handler is installed: SIGINT is set to SIG_IGN in xtask only, so Ctrl-C still reaches
//! and stops the children (which get the default disposition back before exec), and xtask
//! survives to clean up after them.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};

/// Linux's SIGINT number.
pub const SIGINT: i32 = 2;
const SIG_DFL: usize = 0;
const SIG_IGN: usize = 1;

extern "C" {
    /// libc's `signal(2)` wrapper; std links libc already. Dispositions are passed as integers
    /// (`sighandler_t` is pointer-sized), only SIG_DFL, SIG_IGN or a value it returned.
    fn signal(signum: i32, handler: usize) -> usize;
}

/// While alive, SIGINT does not kill this process; dropping it restores the previous disposition.
pub struct IgnoreInterrupts {
    previous: usize,
}

impl IgnoreInterrupts {
    pub fn new() -> Self {
        // SAFETY: signal() with SIG_IGN installs no code of ours; it only changes how the
        // kernel treats SIGINT for this process.
        let previous = unsafe { signal(SIGINT, SIG_IGN) };
        Self { previous }
    }
}

impl Drop for IgnoreInterrupts {
    fn drop(&mut self) {
        // SAFETY: `previous` is the disposition signal() returned, so putting it back is sound.
        unsafe { signal(SIGINT, self.previous) };
    }
}

/// Makes `cmd`'s process take the default SIGINT disposition, so that Ctrl-C stops it even
/// though xtask ignores SIGINT (ignored dispositions survive exec).
pub fn default_interrupts_in_child(cmd: &mut Command) -> &mut Command {
    // SAFETY: the closure runs between fork and exec and only calls signal(), which is
    // async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            signal(SIGINT, SIG_DFL);
            Ok(())
        })
    }
}

/// Whether a child ended because of Ctrl-C: killed by SIGINT, or exiting 130 after handling it.
pub fn interrupted(status: ExitStatus) -> bool {
    status.signal() == Some(SIGINT) || status.code() == Some(128 + SIGINT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupt_is_recognised() {
        assert!(interrupted(ExitStatus::from_raw(SIGINT)));
        assert!(interrupted(ExitStatus::from_raw(130 << 8)));
        assert!(!interrupted(ExitStatus::from_raw(0)));
        assert!(!interrupted(ExitStatus::from_raw(1 << 8)));
    }
}

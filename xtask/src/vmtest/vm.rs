//! The VM: qemu booting a kernel with the initramfs, and the guest's lines on its console.

use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cmd;
use crate::interrupt::{self, interrupted, IgnoreInterrupts};

use super::kernel::PreparedKernel;
use super::report::{ScenarioResult, Status};

/// What the guest reported.
#[derive(Debug, Default)]
pub(super) struct VmRun {
    pub(super) results: Vec<ScenarioResult>,
    pub(super) boot_secs: Option<f64>,
    /// A timeout, a guest that stopped early, or qemu failing.
    pub(super) problem: Option<String>,
    pub(super) interrupted: bool,
}

/// qemu, killed when dropped unless it has exited.
struct Qemu {
    child: Child,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            eprintln!("xtask: stopping qemu (pid {})", self.child.id());
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The guest's lines this side prints as they come (the rest goes to the console log only).
fn is_guest_report(line: &str) -> bool {
    line.starts_with("VMTEST") || line.starts_with("vmtest:")
}

/// Boots the kernel with the initramfs and collects the guest's result lines.
pub(super) fn boot(
    k: &PreparedKernel,
    initrd: &Path,
    console_log: &Path,
    wanted: &[&str],
    timeout: Duration,
) -> Result<VmRun> {
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "2"])
        .args(["-nographic", "-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(&k.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 mitigations=off random.trust_cpu=on vmtest.only={}",
            wanted.join(",")
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // While qemu runs, Ctrl-C stops it but not xtask, which then reports and stops; the
    // Drop guard kills qemu on every other way out.
    let _interrupts = IgnoreInterrupts::new();
    interrupt::default_interrupts_in_child(&mut qemu);
    // And if xtask itself is killed (SIGTERM, SIGKILL), the kernel kills qemu.
    // SAFETY: the closure runs between fork and exec and only calls prctl(), which is
    // async-signal-safe; it touches no memory of the parent.
    unsafe {
        qemu.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd::announce(&qemu);
    let started = Instant::now();
    let mut child = qemu
        .spawn()
        .with_context(|| format!("failed to start `{}`", cmd::display(&qemu)))?;
    let stdout = child.stdout.take().context("qemu's stdout")?;
    let stderr = child.stderr.take().context("qemu's stderr")?;
    let mut vm = Qemu { child };

    // qemu's own messages are shown as they come; Ctrl-C makes it exit 0 after
    // "terminating on signal 2", which is how an interruption is told from a guest's end.
    let signalled = Arc::new(AtomicBool::new(false));
    let errors = {
        let signalled = Arc::clone(&signalled);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                if line.contains("terminating on signal") {
                    signalled.store(true, Ordering::SeqCst);
                }
            }
        })
    };

    let (tx, rx) = mpsc::channel::<String>();
    let reader = thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\r', '\n'])
                        .replace('\r', "");
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });

    let mut log = BufWriter::new(
        fs::File::create(console_log)
            .with_context(|| format!("creating {}", console_log.display()))?,
    );
    let deadline = started + timeout;
    let mut run = VmRun::default();
    let mut ended = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            log.flush()?;
            run.problem = Some(format!(
                "timed out after {} s (qemu killed); last console lines:\n{}",
                timeout.as_secs(),
                tail(console_log, 25)
            ));
            break;
        }
        match rx.recv_timeout(left.min(Duration::from_secs(1))) {
            Ok(line) => {
                writeln!(log, "{line}")?;
                let line = match line.find("VMTEST") {
                    Some(at) => &line[at..],
                    None => line.as_str(),
                };
                if is_guest_report(line) {
                    eprintln!("  [{}] {line}", started.elapsed().as_secs());
                }
                if let Some(r) = parse_result(line) {
                    run.results.push(r);
                } else if let Some(rest) = line.strip_prefix("VMTEST-BOOT ") {
                    run.boot_secs = rest.split_whitespace().next().and_then(|s| s.parse().ok());
                } else if line.starts_with("VMTEST-END") {
                    ended = true;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    log.flush()?;
    if run.problem.is_some() {
        let _ = vm.child.kill();
    }
    let status: ExitStatus = vm.child.wait().context("waiting for qemu")?;
    let _ = reader.join();
    let _ = errors.join();
    if interrupted(status) || signalled.load(Ordering::SeqCst) {
        run.interrupted = true;
        run.problem.get_or_insert_with(|| "interrupted".to_owned());
    } else if run.problem.is_none() && !ended {
        run.problem = Some(format!(
            "the guest stopped before its last scenario (qemu {status}); last console lines:\n{}",
            tail(console_log, 25)
        ));
    }
    Ok(run)
}

/// `VMTEST <scenario> PASS|FAIL|SKIP <detail>`.
fn parse_result(line: &str) -> Option<ScenarioResult> {
    let rest = line.strip_prefix("VMTEST ")?;
    let (scenario, rest) = rest.split_once(' ')?;
    let (status, detail) = rest.split_once(' ').unwrap_or((rest, ""));
    let status = match status {
        "PASS" => Status::Pass,
        "FAIL" => Status::Fail,
        "SKIP" => Status::Skip,
        _ => return None,
    };
    Some(ScenarioResult {
        scenario: scenario.to_owned(),
        status,
        detail: detail.trim().to_owned(),
    })
}

/// The last `n` lines of a text file (empty if it cannot be read).
fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_parse() {
        assert_eq!(
            parse_result("VMTEST count PASS 4 points exact (3.2 s)"),
            Some(ScenarioResult {
                scenario: "count".into(),
                status: Status::Pass,
                detail: "4 points exact (3.2 s)".into(),
            })
        );
        assert_eq!(
            parse_result("VMTEST drop FAIL").map(|r| (r.status, r.detail)),
            Some((Status::Fail, String::new()))
        );
        assert_eq!(parse_result("VMTEST drop MAYBE x"), None);
        assert_eq!(parse_result("VMTEST-END"), None);
        assert_eq!(parse_result("vmtest: hello"), None);
    }
}

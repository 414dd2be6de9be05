//! A real headless Chromium for the map tests: Debian's `/usr/bin/chromium`, driven by
//! `tests/browser/driver.mjs` (npm's `playwright-core`, installed there by `cargo xtask
//! setup`). The test sends commands and reads answers, one JSON line each
//! ([`Browser::cmd`]); the driver bounds every wait itself, and this side bounds each
//! answer by [`ANSWER_TIMEOUT`] as well.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// How long one command may take, at most (the driver's own waits are shorter).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(90);

/// Where the driver and its `node_modules` are.
pub fn driver_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Why the browser tests cannot run here, if they cannot.
pub fn browser_env() -> Result<(), String> {
    if !Path::new(CHROMIUM).is_file() {
        return Err(format!(
            "{CHROMIUM} is not installed (cargo xtask setup installs it)"
        ));
    }
    let pw = driver_dir().join("node_modules/playwright-core/package.json");
    if !pw.is_file() {
        return Err(format!(
            "{} is missing (cargo xtask setup runs npm ci there)",
            pw.display()
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Err("node is not installed (cargo xtask setup installs it)".into());
    }
    Ok(())
}

/// Prints `skipping: <reason>` and returns `Ok(())` from the enclosing test unless
/// Chromium and the driver can run.
#[macro_export]
macro_rules! browser_or_skip {
    () => {
        if let Err(reason) = $crate::browser::browser_env() {
            println!("skipping: {reason}");
            return Ok(());
        }
    };
}

/// A headless Chromium with one page; dropping it closes the browser.
pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    answers: mpsc::Receiver<String>,
}

impl Browser {
    /// Starts the driver (and Chromium).
    pub fn start() -> Result<Browser> {
        let mut child = Command::new("node")
            .arg(driver_dir().join("driver.mjs"))
            .current_dir(driver_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting node tests/browser/driver.mjs")?;
        let stdin = child.stdin.take().context("the driver's stdin")?;
        let stdout = child.stdout.take().context("the driver's stdout")?;
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Browser {
            child,
            stdin,
            answers,
        })
    }

    /// Sends `command` and returns its answer; an answer `{"ok": false}` is an error.
    pub fn cmd(&mut self, command: Value) -> Result<Value> {
        writeln!(self.stdin, "{command}").context("writing to the driver")?;
        self.stdin.flush()?;
        let line = self
            .answers
            .recv_timeout(ANSWER_TIMEOUT)
            .map_err(|e| anyhow!("no answer from the driver to {command}: {e}"))?;
        let answer: Value =
            serde_json::from_str(&line).with_context(|| format!("the driver said {line:?}"))?;
        if answer["ok"] != true {
            bail!("{command}: {}", answer["error"]);
        }
        Ok(answer)
    }

    pub fn open(&mut self, url: &str) -> Result<()> {
        self.cmd(json!({"op": "open", "url": url})).map(drop)
    }

    /// Waits until `selector` matches, at most `timeout`.
    pub fn wait(&mut self, selector: &str, timeout: Duration) -> Result<()> {
        self.cmd(
            json!({"op": "wait", "selector": selector, "timeout_ms": timeout.as_millis() as u64}),
        )
        .map(drop)
    }

    /// Waits until nothing matches `selector`, at most `timeout`.
    pub fn gone(&mut self, selector: &str, timeout: Duration) -> Result<()> {
        self.cmd(
            json!({"op": "gone", "selector": selector, "timeout_ms": timeout.as_millis() as u64}),
        )
        .map(drop)
    }

    /// The text of the first element `selector` matches.
    pub fn text(&mut self, selector: &str) -> Result<String> {
        let a = self.cmd(json!({"op": "text", "selector": selector}))?;
        Ok(a["text"].as_str().unwrap_or_default().to_owned())
    }

    pub fn click(&mut self, selector: &str) -> Result<()> {
        self.cmd(json!({"op": "click", "selector": selector}))
            .map(drop)
    }

    /// The value of a JavaScript expression in the page.
    pub fn eval(&mut self, js: &str) -> Result<Value> {
        Ok(self.cmd(json!({"op": "eval", "js": js}))?["value"].take())
    }

    /// Frame intervals and map updates during `for_`.
    pub fn frames(&mut self, for_: Duration) -> Result<Value> {
        self.cmd(json!({"op": "frames", "ms": for_.as_millis() as u64}))
    }

    /// Every URL the page requested, and its console errors.
    pub fn requests(&mut self) -> Result<(Vec<String>, Vec<String>)> {
        let a = self.cmd(json!({"op": "requests"}))?;
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|u| u.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok((strings(&a["urls"]), strings(&a["console_errors"])))
    }

    pub fn screenshot(&mut self, path: &Path) -> Result<()> {
        self.cmd(json!({"op": "screenshot", "path": path}))
            .map(drop)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"op": "close"}));
        let _ = self.stdin.flush();
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! schemathesis, a client of OpenAPI descriptions from PyPI that tests an API against its
//! own: where `cargo xtask setup` installs it (a virtual environment of its own under
//! /opt) and how a test finds it.

use std::path::{Path, PathBuf};

/// The virtual environment schemathesis is installed in.
pub const VENV: &str = "/opt/netlab-schemathesis";
/// What `pip install` is given: the version the tests were written against (its checks
/// change between releases).
pub const REQUIREMENT: &str = "schemathesis==4.32.5";
/// The Python that makes the environment: Debian's (with its `python3-venv`).
pub const PYTHON: &str = "/usr/bin/python3";

/// The `st` command of the environment.
pub fn st() -> PathBuf {
    Path::new(VENV).join("bin/st")
}

/// `st`, or why it cannot be run here.
pub fn installed() -> Result<PathBuf, String> {
    let st = st();
    if st.is_file() {
        Ok(st)
    } else {
        Err(format!(
            "schemathesis is not installed ({} does not exist; `cargo xtask setup` installs it)",
            st.display()
        ))
    }
}

//! Builds a Python module (`app.py` and whatever it imports from its
//! directory) with componentize-py.
//!
//! componentize-py comes from PyPI, pinned, in a venv under the toolchain's
//! tools directory (`venv/`) that is made once and reused. It generates the
//! bindings from the WIT package itself, so nothing generated lives in the
//! module's directory, except the `__pycache__` that its bundled interpreter
//! writes there and in the SDK's. The Python SDK, `guest-sdk/python`, is put on
//! the path next to the module, so that the app's `import wasmtx` resolves.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::{Toolchain, process};

pub const COMPONENTIZE_PY: &str = "0.25.1";

/// Builds `dir/app.py`, with the SDK, into the component `out`.
pub fn build(dir: &Path, out: &Path, toolchain: &Toolchain) -> Result<()> {
    if !dir.join("app.py").is_file() {
        bail!("{} has no app.py: a Python module is the module `app`", dir.display());
    }
    let tool = componentize_py(&toolchain.tools.join("venv"))?;
    let mut componentize = process::command(&tool);
    componentize
        .arg("-d")
        .arg(toolchain.wit())
        .args(["-w", "branch", "componentize", "-p"])
        .arg(dir)
        .arg("-p")
        .arg(toolchain.sdk("python"))
        .arg("app")
        .arg("-o")
        .arg(out);
    process::run(&mut componentize)
}

/// The pinned componentize-py in `venv`, installing it first if needed.
fn componentize_py(venv: &Path) -> Result<PathBuf> {
    let tool = venv.join("bin/componentize-py");
    if version(&tool).as_deref() == Some(COMPONENTIZE_PY) {
        return Ok(tool);
    }
    let python = venv.join("bin/python");
    if !python.exists() {
        let mut make_venv = process::command("python3");
        make_venv.args(["-m", "venv"]).arg(venv);
        process::run(&mut make_venv).context(
            "Python modules need python3 (3.10 or newer) with the venv module \
             (on Debian: apt-get install python3-venv)",
        )?;
    }
    let mut pip = process::command(&python);
    pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .arg(format!("componentize-py=={COMPONENTIZE_PY}"));
    process::run(&mut pip).context("cannot install componentize-py from PyPI")?;
    match version(&tool) {
        Some(v) if v == COMPONENTIZE_PY => Ok(tool),
        other => bail!("{} reports version {other:?} after the install, expected {COMPONENTIZE_PY}", tool.display()),
    }
}

/// What `componentize-py --version` reports ("componentize-py 0.25.1"), if it runs.
fn version(tool: &Path) -> Option<String> {
    let output = process::command(tool).arg("--version").output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    Some(text.trim().strip_prefix("componentize-py ")?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_pins_the_componentize_py_that_builds_modules() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../python/pyproject.toml");
        let pyproject = std::fs::read_to_string(&path).expect("guest-sdk/python/pyproject.toml");
        let pin = format!("\"componentize-py=={COMPONENTIZE_PY}\"");
        assert!(pyproject.contains(&pin), "{} must pin {pin}, as the toolchain installs it", path.display());
    }
}

//! Builds wasmtx branch modules into WebAssembly components, and scaffolds new
//! ones: the toolchain that `cargo xtask examples` and `wasmtx guest` share.
//!
//! A module is a directory in one of four languages ([`Lang::detect`] tells
//! which from its files); [`build`] installs what the language needs (a Rust
//! target, a pinned componentize-py, the npm packages the module pins, Debian's
//! clang for wasm) and turns the directory into one component file. Where the
//! WIT package and the SDKs are, where tools are installed and where
//! intermediate files go is the caller's choice, given as a [`Toolchain`].
//!
//! This crate knows no wasmtime and no server: it only runs compilers. Its
//! errors are reports for a person (the caller prints them and stops), hence
//! `anyhow` with context rather than an error enum to match on.
//!
//! # Layout
//!
//! - [`rust`], [`python`], [`js`], [`c`]: one builder per language.
//! - [`scaffold`]: `wasmtx guest new`: a module with one function and its test.
//! - [`process`]: runs a child command; a failure names the command and its exit code.
//! - [`apt`]: Debian packages a builder needs.

pub mod apt;
pub mod c;
pub mod js;
pub mod process;
pub mod python;
pub mod rust;
pub mod scaffold;

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};

/// A language a module can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Python,
    Js,
    C,
}

impl Lang {
    pub const ALL: [Lang; 4] = [Lang::Rust, Lang::Python, Lang::Js, Lang::C];

    /// The name used on command lines and in file names: `rust`, `python`, `js`, `c`.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::C => "c",
        }
    }

    /// The language of the module in `dir`, from its files: `Cargo.toml`
    /// (Rust), `app.py` (Python), `package.json` with `app.js` (JavaScript),
    /// or `*.c` files (C), tried in that order.
    pub fn detect(dir: &Path) -> Result<Lang> {
        if !dir.is_dir() {
            bail!("{} is not a directory", dir.display());
        }
        if dir.join("Cargo.toml").is_file() {
            return Ok(Lang::Rust);
        }
        if dir.join("app.py").is_file() {
            return Ok(Lang::Python);
        }
        if dir.join("package.json").is_file() && dir.join("app.js").is_file() {
            return Ok(Lang::Js);
        }
        if !c::c_files(dir)?.is_empty() {
            return Ok(Lang::C);
        }
        bail!(
            "{} holds no module: expected Cargo.toml (Rust), app.py (Python), package.json and app.js \
             (JavaScript) or *.c files (C)",
            dir.display()
        )
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Lang {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Lang::ALL
            .into_iter()
            .find(|lang| lang.name() == s)
            .ok_or_else(|| format!("unknown language {s:?}: use rust, python, js or c"))
    }
}

/// Where a build finds its inputs and puts what it makes besides the component.
#[derive(Debug, Clone)]
pub struct Toolchain {
    /// A wasmtx checkout: the WIT package in `wit/`, the SDKs in `guest-sdk/`.
    pub checkout: PathBuf,
    /// Where tools are installed once and reused (the componentize-py venv).
    pub tools: PathBuf,
    /// Intermediate files of this module's build (JavaScript bundle, C
    /// bindings and core module); created when needed, never read back as input.
    pub work: PathBuf,
    /// The Cargo profile a Rust module is built with.
    pub cargo_profile: String,
    /// Cargo's target directory for a Rust module; `None` leaves it to Cargo
    /// (`CARGO_TARGET_DIR`, the module's workspace, or `target/` beside it).
    pub cargo_target_dir: Option<PathBuf>,
    /// Whether missing Debian packages are installed with apt (as root), or
    /// only named in the error.
    pub install_packages: bool,
}

impl Toolchain {
    /// The WIT package: worlds `branch` (what the Python, JavaScript and C
    /// builders build) and `workflow` (Rust only, through `wasmtx-workflow`).
    pub fn wit(&self) -> PathBuf {
        self.checkout.join("wit")
    }

    /// An SDK directory of the checkout: `sdk("python")` is `guest-sdk/python`.
    pub fn sdk(&self, part: &str) -> PathBuf {
        self.checkout.join("guest-sdk").join(part)
    }
}

/// Checks that `dir` is a wasmtx checkout (it has `wit/` and `guest-sdk/`)
/// and returns its canonical path.
pub fn checkout(dir: &Path) -> Result<PathBuf> {
    let found = dir.join("wit").join("runtime.wit").is_file() && dir.join("guest-sdk").join("Cargo.toml").is_file();
    if !found {
        bail!(
            "no wasmtx SDK at {}: it needs wit/runtime.wit and guest-sdk/ (pass --sdk with a wasmtx checkout, or set \
             WASMTX_SDK)",
            dir.display()
        );
    }
    dir.canonicalize().with_context(|| format!("cannot resolve {}", dir.display()))
}

/// The tools directory of a person's machine: `$WASMTX_TOOLS`, else
/// `$XDG_CACHE_HOME/wasmtx/tools`, else `~/.cache/wasmtx/tools`.
pub fn user_tools_dir() -> Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(tools) = var("WASMTX_TOOLS") {
        return Ok(tools);
    }
    if let Some(cache) = var("XDG_CACHE_HOME") {
        return Ok(cache.join("wasmtx/tools"));
    }
    match var("HOME") {
        Some(home) => Ok(home.join(".cache/wasmtx/tools")),
        None => bail!("cannot choose a tools directory: set WASMTX_TOOLS (or HOME)"),
    }
}

/// Builds the `lang` module in `module_dir` into the component file `out`,
/// and checks that `out` is a component; returns its size in bytes.
pub fn build(lang: Lang, module_dir: &Path, out: &Path, toolchain: &Toolchain) -> Result<u64> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    match lang {
        Lang::Rust => rust::build(module_dir, out, toolchain),
        Lang::Python => python::build(module_dir, out, toolchain),
        Lang::Js => js::build(module_dir, out, toolchain),
        Lang::C => c::build(module_dir, out, toolchain),
    }?;
    check_component(out)
}

/// The first bytes of a component: `\0asm`, then version 0x0d and layer 1 (a
/// core module has version 1, layer 0).
pub const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// The size of the component at `path`; an error if it is not a component.
pub fn check_component(path: &Path) -> Result<u64> {
    let bytes = fs::read(path).with_context(|| format!("the builder did not write {}", path.display()))?;
    if !bytes.starts_with(&COMPONENT_HEADER) {
        let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        bail!(
            "{} is not a WebAssembly component: it starts with [{}], expected [00 61 73 6d 0d 00 01 00]",
            path.display(),
            head.join(" ")
        );
    }
    Ok(bytes.len() as u64)
}

/// `12 MiB, 12582912 bytes`, `80 KiB, 81920 bytes` or `512 bytes`.
pub fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 10 * 1024 * 1024 => format!("{} MiB, {b} bytes", b / (1024 * 1024)),
        b if b >= 10 * 1024 => format!("{} KiB, {b} bytes", b / 1024),
        b => format!("{b} bytes"),
    }
}

/// The files in `dir` (not below it) whose extension is `ext`, sorted.
fn files_with_extension(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.extension() == Some(OsStr::new(ext)) && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary directory.
    pub(crate) fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wasmtx-toolchain-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn component_header_is_required() {
        let dir = scratch("header");
        let component = dir.join("c.wasm");
        fs::write(&component, [&COMPONENT_HEADER[..], b"rest"].concat()).unwrap();
        assert_eq!(check_component(&component).unwrap(), 12);
        let module = dir.join("m.wasm");
        fs::write(&module, [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]).unwrap();
        let e = check_component(&module).unwrap_err().to_string();
        assert!(e.contains("is not a WebAssembly component: it starts with [00 61 73 6d 01 00 00 00]"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_language_is_detected_from_the_files() {
        let dir = scratch("detect");
        let e = Lang::detect(&dir).unwrap_err().to_string();
        assert!(e.ends_with("holds no module: expected Cargo.toml (Rust), app.py (Python), package.json and app.js (JavaScript) or *.c files (C)"), "{e}");
        fs::write(dir.join("module.c"), "").unwrap();
        assert_eq!(Lang::detect(&dir).unwrap(), Lang::C);
        fs::write(dir.join("package.json"), "{}").unwrap();
        assert_eq!(Lang::detect(&dir).unwrap(), Lang::C, "package.json alone is not a JavaScript module");
        fs::write(dir.join("app.js"), "").unwrap();
        assert_eq!(Lang::detect(&dir).unwrap(), Lang::Js);
        fs::write(dir.join("app.py"), "").unwrap();
        assert_eq!(Lang::detect(&dir).unwrap(), Lang::Python);
        fs::write(dir.join("Cargo.toml"), "").unwrap();
        assert_eq!(Lang::detect(&dir).unwrap(), Lang::Rust);
        let e = Lang::detect(&dir.join("missing")).unwrap_err().to_string();
        assert!(e.ends_with("missing is not a directory"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn languages_parse_from_their_names() {
        for lang in Lang::ALL {
            assert_eq!(lang.name().parse::<Lang>().unwrap(), lang);
        }
        assert_eq!("cobol".parse::<Lang>().unwrap_err(), "unknown language \"cobol\": use rust, python, js or c");
    }

    #[test]
    fn a_directory_without_wit_is_not_a_checkout() {
        let dir = scratch("checkout");
        let e = checkout(&dir).unwrap_err().to_string();
        assert!(e.starts_with("no wasmtx SDK at "), "{e}");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        assert_eq!(checkout(&repo).unwrap(), repo.canonicalize().unwrap());
        fs::remove_dir_all(&dir).unwrap();
    }
}

//! Builds a C module: clang-19 for wasm32-wasi (preview 1), then a component.
//!
//! Debian's wasi-libc has no wasm32-wasip2 sysroot, so the path is: C bindings
//! from the `wit-bindgen-c` crate, a preview-1 reactor core module from clang-19,
//! and `wit-component` with the preview-1 -> preview-2 reactor adapter (from
//! `wasi-preview1-component-adapter-provider`, the same wasmtime release as the
//! host) to make the component. Debian packages are installed when missing if
//! the toolchain allows it, else named in the error. Every `*.c` file directly
//! in the module's directory is compiled (not those in subdirectories such as
//! `tests/`), together with the C guest library (`guest-sdk/c/*.c`).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;

use crate::{Toolchain, apt, process};

const CLANG: &str = "clang-19";
const PACKAGES: [&str; 4] = ["clang-19", "lld-19", "wasi-libc", "libclang-rt-19-dev-wasm32"];
const WORLD: &str = "branch";

/// Builds `dir/*.c` and the C guest library into the component `out`; the
/// bindings and the core module go to the toolchain's work directory.
pub fn build(dir: &Path, out: &Path, toolchain: &Toolchain) -> Result<()> {
    let sources = c_files(dir)?;
    if sources.is_empty() {
        bail!("{} has no .c file", dir.display());
    }
    let library = toolchain.sdk("c");
    let work = &toolchain.work;
    let generated = work.join("gen");
    install_toolchain(toolchain.install_packages)?;
    generate_bindings(&toolchain.wit(), &generated)?;

    let mut inputs = sources;
    inputs.extend(c_files(&library)?);
    inputs.extend(c_files(&generated)?);
    inputs.push(generated.join(format!("{WORLD}_component_type.o")));
    let core = work.join("module.core.wasm");
    let mut clang = process::command(CLANG);
    clang
        .args(["--target=wasm32-wasi", "-O2", "-mexec-model=reactor", "-Wall", "-Wextra"])
        .arg("-I")
        .arg(&library)
        .arg("-I")
        .arg(&generated)
        // Keeps the core module small; never add --export-dynamic (4x bigger).
        .arg("-Wl,--strip-debug")
        .arg("-o")
        .arg(&core)
        .args(&inputs);
    process::run(&mut clang)?;

    let module = fs::read(&core).with_context(|| format!("cannot read {}", core.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)?
        .validate(true)
        .adapter("wasi_snapshot_preview1", WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER)?
        .encode()
        .with_context(|| format!("cannot make a component of {}", core.display()))?;
    fs::write(out, component).with_context(|| format!("cannot write {}", out.display()))
}

/// Writes `<world>.c`, `<world>.h` and `<world>_component_type.o` into `dir`.
pub fn generate_bindings(wit: &Path, dir: &Path) -> Result<()> {
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) =
        resolve.push_path(wit).with_context(|| format!("cannot read the WIT package in {}", wit.display()))?;
    let world = resolve.select_world(&[package], Some(WORLD))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default().build().generate(&mut resolve, world, &mut files)?;
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, contents) in files.iter() {
        fs::write(dir.join(name), contents).with_context(|| format!("cannot write {name}"))?;
    }
    Ok(())
}

/// The `.c` files directly in `dir`, sorted.
pub fn c_files(dir: &Path) -> Result<Vec<PathBuf>> {
    crate::files_with_extension(dir, "c")
}

/// Makes sure clang-19, lld-19, wasi-libc and the wasm32 compiler runtime are
/// there and clang-19 runs: installs them with apt if `install`, else says how.
fn install_toolchain(install: bool) -> Result<()> {
    let ready = || {
        // Off Debian, only clang-19 on PATH can tell.
        let debian = process::succeeds(process::command("dpkg-query").arg("--version")).unwrap_or(false);
        (!debian || apt::installed(&PACKAGES)) && apt::runs(CLANG)
    };
    if install { apt::ensure("a C module", &PACKAGES, ready) } else { apt::require("a C module", &PACKAGES, ready) }
}

//! `wasmtx guest new|build`: a branch author's loop, over the
//! `wasmtx-toolchain` crate (the builders `cargo xtask examples` runs).
//!
//! - `new --lang L NAME`: writes `NAME/`, a module with one function
//!   (`hello`), its native test and a README (see `guest-sdk/toolchain/templates`).
//! - `build [DIR] [-o FILE]`: detects the module's language, builds it into a
//!   component (`NAME.wasm` in the module by default), prints its path and size.
//!
//! The SDKs and the WIT package are those of the checkout this binary was
//! built from, unless `--sdk` or `WASMTX_SDK` names another. Tools go to
//! `$WASMTX_TOOLS` (else `$XDG_CACHE_HOME/wasmtx/tools`, else
//! `~/.cache/wasmtx/tools`), intermediate files to `build/` in the module
//! (Rust: Cargo's target directory). Nothing here talks to a server.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use wasmtx::model::ModuleName;
use wasmtx_toolchain::{Lang, Toolchain};

/// The checkout this binary was built from: its `wit/` and `guest-sdk/`.
const BUILT_FROM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

#[derive(Debug, Subcommand)]
pub enum GuestCommand {
    /// Write a new module: one function (`hello`), its test and a README.
    New {
        /// The module's language: rust, python, js or c.
        #[arg(long)]
        lang: Lang,
        /// The module's name (1 to 64 of a-z, 0-9, '-' and '_', starting with a letter or digit); also its directory's.
        name: String,
        /// The directory to create the module's directory in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The wasmtx checkout whose SDK and WIT the module uses [default: the one this binary was built from].
        #[arg(long, env = "WASMTX_SDK")]
        sdk: Option<PathBuf>,
    },
    /// Build a module's directory into a component, NAME.wasm in the module unless -o says otherwise.
    Build {
        /// The module's directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Where to write the component [default: DIR/NAME.wasm, NAME being DIR's name].
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// The wasmtx checkout whose SDK and WIT the module uses [default: the one this binary was built from].
        #[arg(long, env = "WASMTX_SDK")]
        sdk: Option<PathBuf>,
    },
}

pub fn run(command: GuestCommand) -> Result<()> {
    match command {
        GuestCommand::New { lang, name, dir, sdk } => new(lang, &name, &dir, sdk.as_deref()),
        GuestCommand::Build { dir, out, sdk } => build(&dir, out.as_deref(), sdk.as_deref()),
    }
}

fn new(lang: Lang, name: &str, parent: &Path, sdk: Option<&Path>) -> Result<()> {
    ModuleName::parse(name)?;
    let checkout = checkout(sdk)?;
    let dir = parent.join(name);
    let files = wasmtx_toolchain::scaffold::create(lang, name, &dir, &checkout)?;
    println!("created the {lang} module {name} in {}:", dir.display());
    for file in files {
        println!("  {}", file.display());
    }
    let test = match lang {
        Lang::Rust => "cargo test",
        Lang::Python => "python3 -m unittest",
        Lang::Js => "npm install && npm test",
        Lang::C => "make test",
    };
    println!("next: cd {} && {test} && wasmtx guest build", dir.display());
    Ok(())
}

fn build(dir: &Path, out: Option<&Path>, sdk: Option<&Path>) -> Result<()> {
    let dir = dir.canonicalize().with_context(|| format!("no module directory at {}", dir.display()))?;
    let lang = Lang::detect(&dir)?;
    let checkout = checkout(sdk)?;
    let out = match out {
        Some(out) => std::path::absolute(out)?,
        None => {
            let name = dir.file_name().context("the module directory has no name")?;
            dir.join(format!("{}.wasm", name.to_string_lossy()))
        }
    };
    let toolchain = Toolchain {
        checkout,
        tools: wasmtx_toolchain::user_tools_dir()?,
        work: dir.join("build"),
        cargo_profile: "release".to_owned(),
        cargo_target_dir: None,
        install_packages: false,
    };
    let size = wasmtx_toolchain::build(lang, &dir, &out, &toolchain)
        .with_context(|| format!("cannot build the {lang} module in {}", dir.display()))?;
    println!("{} ({})", out.display(), wasmtx_toolchain::human_size(size));
    Ok(())
}

/// `--sdk`/`WASMTX_SDK`, else the checkout this binary was built from; an
/// error unless it holds the WIT package and the SDKs.
fn checkout(sdk: Option<&Path>) -> Result<PathBuf> {
    wasmtx_toolchain::checkout(sdk.unwrap_or(Path::new(BUILT_FROM)))
}

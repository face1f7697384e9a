//! `cargo xtask examples`: builds every example component into
//! `target/examples/<example>-<lang>.wasm` and checks that each output is a
//! WebAssembly component.
//!
//! The builders are `wasmtx-toolchain`'s (the same ones `wasmtx guest build`
//! runs); this file only lists the examples and says where things go. To add
//! an example, add a line to [`EXAMPLES`]. Builds must not write outside
//! `target/` and the output path: tools go to `target/tools`, intermediate
//! files to `target/guests/<lang>/<example>`, Rust builds to `target/guests`
//! with the workspace's `guest` profile (size-optimised, LTO,
//! `panic = "abort"`), so that they never wait for the lock of the main build.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use wasmtx_toolchain::{Lang, Toolchain};

/// One example in one language.
#[derive(Debug)]
struct Example {
    /// The example's name: its directory under `examples/`.
    example: &'static str,
    /// Also the suffix of the output name.
    lang: Lang,
    /// The module's directory, relative to the workspace root.
    dir: &'static str,
}

impl Example {
    /// `transfer-rust`: the output file's stem, and how a command line names it.
    fn name(&self) -> String {
        format!("{}-{}", self.example, self.lang)
    }
}

/// Every example component, in build order.
const EXAMPLES: &[Example] = &[
    Example { example: "transfer", lang: Lang::Rust, dir: "examples/transfer/rust" },
    Example { example: "transfer", lang: Lang::Python, dir: "examples/transfer/python" },
    Example { example: "transfer", lang: Lang::Js, dir: "examples/transfer/js" },
    Example { example: "transfer", lang: Lang::C, dir: "examples/transfer/c" },
    // World `kv-branch`: the transfer over Redis keys.
    Example { example: "transfer-redis", lang: Lang::Rust, dir: "examples/transfer-redis/rust" },
    // World `workflow`: calls the transfer module's functions, uploaded as `bank`.
    Example { example: "transfer-workflow", lang: Lang::Rust, dir: "examples/transfer-workflow/rust" },
    // Not an example: the sandbox's test guest.
    Example { example: "misbehave", lang: Lang::Rust, dir: "tests/guests/misbehave" },
    // Not an example: a world `workflow` test guest that runs the script its input gives.
    Example { example: "workflow-script", lang: Lang::Rust, dir: "tests/guests/workflow-script" },
];

/// Where the components land, relative to the workspace root.
pub const OUT_DIR: &str = "target/examples";

/// The Rust target, for `xtask test`'s first step.
pub mod rust {
    /// `rustup target add wasm32-wasip2` for the workspace's toolchain.
    pub fn ensure_target() -> anyhow::Result<()> {
        wasmtx_toolchain::rust::ensure_target(&crate::project_root())
    }
}

/// Builds the examples selected by `filters` (example names such as
/// `transfer-rust`, example directories such as `transfer`, or languages such
/// as `rust`); all of them when `filters` is empty.
pub fn build(root: &Path, filters: &[String]) -> Result<()> {
    let selected = select(EXAMPLES, filters)?;
    let out_dir = root.join(OUT_DIR);
    fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    for example in selected {
        let name = example.name();
        let out = out_dir.join(format!("{name}.wasm"));
        eprintln!("==> building example {name}");
        let size = wasmtx_toolchain::build(example.lang, &root.join(example.dir), &out, &toolchain(root, example))
            .with_context(|| format!("building example {name} failed"))?;
        println!("{name}: {} ({})", out.display(), wasmtx_toolchain::human_size(size));
    }
    Ok(())
}

/// Where an example's build finds its tools and puts its intermediate files.
fn toolchain(root: &Path, example: &Example) -> Toolchain {
    Toolchain {
        checkout: root.to_owned(),
        tools: root.join("target/tools"),
        work: root.join("target/guests").join(example.lang.name()).join(example.example),
        cargo_profile: "guest".to_owned(),
        cargo_target_dir: Some(root.join("target/guests")),
        install_packages: true,
    }
}

fn select<'a>(examples: &'a [Example], filters: &[String]) -> Result<Vec<&'a Example>> {
    let matches = |e: &Example, f: &str| f == e.name() || f == e.example || f == e.lang.name();
    if filters.is_empty() {
        return Ok(examples.iter().collect());
    }
    for filter in filters {
        if !examples.iter().any(|e| matches(e, filter)) {
            let names: Vec<String> = examples.iter().map(Example::name).collect();
            bail!("no example matches {filter:?}; known: {}", names.join(", "));
        }
    }
    Ok(examples.iter().filter(|e| filters.iter().any(|f| matches(e, f))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &[Example] = &[
        Example { example: "transfer", lang: Lang::Rust, dir: "examples/transfer/rust" },
        Example { example: "transfer", lang: Lang::Python, dir: "examples/transfer/python" },
        Example { example: "counter", lang: Lang::Rust, dir: "examples/counter/rust" },
    ];

    fn names(selected: Vec<&Example>) -> Vec<String> {
        selected.into_iter().map(Example::name).collect()
    }

    #[test]
    fn no_filter_selects_every_example() {
        assert_eq!(names(select(LIST, &[]).unwrap()), ["transfer-rust", "transfer-python", "counter-rust"]);
    }

    #[test]
    fn filters_match_name_example_or_language() {
        let by_lang = select(LIST, &["rust".into()]).unwrap();
        assert_eq!(names(by_lang), ["transfer-rust", "counter-rust"]);
        let by_example = select(LIST, &["transfer".into()]).unwrap();
        assert_eq!(names(by_example), ["transfer-rust", "transfer-python"]);
        let by_name = select(LIST, &["transfer-python".into()]).unwrap();
        assert_eq!(names(by_name), ["transfer-python"]);
    }

    #[test]
    fn unknown_filter_is_an_error_listing_known_names() {
        let e = select(LIST, &["cobol".into()]).unwrap_err().to_string();
        assert_eq!(e, "no example matches \"cobol\"; known: transfer-rust, transfer-python, counter-rust");
    }

    #[test]
    fn every_listed_example_has_a_unique_name() {
        let mut all: Vec<String> = EXAMPLES.iter().map(Example::name).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), EXAMPLES.len());
    }

    #[test]
    fn every_listed_directory_holds_a_module_of_its_language() {
        let root = crate::project_root();
        for example in EXAMPLES {
            let lang = Lang::detect(&root.join(example.dir)).unwrap();
            assert_eq!(lang, example.lang, "{}", example.dir);
        }
    }
}

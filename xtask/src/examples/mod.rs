//! `cargo xtask examples`: builds every example component into
//! `target/examples/<example>-<lang>.wasm` and checks that each output is a
//! WebAssembly component.
//!
//! One file per language holds its builder, a `fn(root, example, out)` that
//! turns `examples/<example>/<lang>/` into the component file `out`. To add an
//! example or a language, add a line to [`EXAMPLES`] (and the builder's `mod`).
//! Builders must not write outside `target/` and the output path.

pub mod c;
pub mod js;
pub mod python;
pub mod rust;

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Builds `examples/<example>/<lang>/` into the component file `out`.
type Builder = fn(root: &Path, example: &str, out: &Path) -> Result<()>;

/// One example in one language.
#[derive(Debug)]
struct Example {
    /// Directory under `examples/`.
    example: &'static str,
    /// Directory under `examples/<example>/`; also the suffix of the output name.
    lang: &'static str,
    build: Builder,
}

impl Example {
    /// `transfer-rust`: the output file's stem, and how a command line names it.
    fn name(&self) -> String {
        format!("{}-{}", self.example, self.lang)
    }
}

/// Every example component, in build order.
const EXAMPLES: &[Example] = &[
    Example { example: "transfer", lang: "rust", build: rust::build },
    Example { example: "transfer", lang: "python", build: python::build },
    Example { example: "transfer", lang: "js", build: js::build },
    Example { example: "transfer", lang: "c", build: c::build },
    // Not an example: the sandbox's test guest, `tests/guests/misbehave`.
    Example { example: "misbehave", lang: "rust", build: rust::build_test_guest },
];

/// Where the components land, relative to the workspace root.
pub const OUT_DIR: &str = "target/examples";

/// The first bytes of a component: `\0asm`, then version 0x0d and layer 1 (a
/// core module has version 1, layer 0).
const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

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
        (example.build)(root, example.example, &out).with_context(|| format!("building example {name} failed"))?;
        let size = check_component(&out)?;
        println!("{name}: {} ({})", out.display(), human_size(size));
    }
    Ok(())
}

fn select<'a>(examples: &'a [Example], filters: &[String]) -> Result<Vec<&'a Example>> {
    if filters.is_empty() {
        return Ok(examples.iter().collect());
    }
    for filter in filters {
        let known = examples.iter().any(|e| [e.name().as_str(), e.example, e.lang].contains(&filter.as_str()));
        if !known {
            let names: Vec<String> = examples.iter().map(Example::name).collect();
            bail!("no example matches {filter:?}; known: {}", names.join(", "));
        }
    }
    Ok(examples.iter().filter(|e| filters.iter().any(|f| *f == e.name() || f == e.example || f == e.lang)).collect())
}

/// The size of the component at `path`; an error if it is not a component.
fn check_component(path: &Path) -> Result<u64> {
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

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 10 * 1024 * 1024 => format!("{} MiB, {b} bytes", b / (1024 * 1024)),
        b if b >= 10 * 1024 => format!("{} KiB, {b} bytes", b / 1024),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(_: &Path, _: &str, _: &Path) -> Result<()> {
        bail!("not in unit tests")
    }

    const LIST: &[Example] = &[
        Example { example: "transfer", lang: "rust", build: never },
        Example { example: "transfer", lang: "python", build: never },
        Example { example: "counter", lang: "rust", build: never },
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
    fn component_header_is_required() {
        let dir = std::env::temp_dir().join(format!("xtask-header-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let component = dir.join("c.wasm");
        fs::write(&component, [&COMPONENT_HEADER[..], b"rest"].concat()).unwrap();
        assert_eq!(check_component(&component).unwrap(), 12);
        let module = dir.join("m.wasm");
        fs::write(&module, [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]).unwrap();
        let e = check_component(&module).unwrap_err().to_string();
        assert!(e.contains("is not a WebAssembly component: it starts with [00 61 73 6d 01 00 00 00]"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}

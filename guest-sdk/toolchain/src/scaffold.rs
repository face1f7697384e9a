//! `wasmtx guest new`: writes a module directory with one function (`hello`),
//! its native test, a README saying how to build, test and upload, and a
//! `.gitignore`.
//!
//! The templates live in `templates/<lang>/` and are compiled into the binary.
//! Two placeholders are replaced: `{{name}}`, the module's name, and
//! `{{sdk}}`, the absolute path of the wasmtx checkout whose SDK the module
//! depends on. Nothing here checks the module name against the server's rule:
//! the caller does (the CLI with `wasmtx::model::ModuleName`).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::Lang;

/// One file of a scaffold: its path in the module, and its template.
type Template = (&'static str, &'static str);

const RUST: &[Template] = &[
    ("Cargo.toml", include_str!("../templates/rust/Cargo.toml.in")),
    ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
    ("README.md", include_str!("../templates/rust/README.md")),
    (".gitignore", include_str!("../templates/rust/gitignore")),
];

const PYTHON: &[Template] = &[
    ("app.py", include_str!("../templates/python/app.py")),
    ("test_app.py", include_str!("../templates/python/test_app.py")),
    ("README.md", include_str!("../templates/python/README.md")),
    (".gitignore", include_str!("../templates/python/gitignore")),
];

const JS: &[Template] = &[
    ("package.json", include_str!("../templates/js/package.json")),
    ("app.js", include_str!("../templates/js/app.js")),
    ("app.test.js", include_str!("../templates/js/app.test.js")),
    ("README.md", include_str!("../templates/js/README.md")),
    (".gitignore", include_str!("../templates/js/gitignore")),
];

const C: &[Template] = &[
    ("module.c", include_str!("../templates/c/module.c")),
    ("tests/module_test.c", include_str!("../templates/c/tests/module_test.c")),
    ("Makefile", include_str!("../templates/c/Makefile")),
    ("README.md", include_str!("../templates/c/README.md")),
    (".gitignore", include_str!("../templates/c/gitignore")),
];

fn templates(lang: Lang) -> &'static [Template] {
    match lang {
        Lang::Rust => RUST,
        Lang::Python => PYTHON,
        Lang::Js => JS,
        Lang::C => C,
    }
}

/// Writes the `lang` scaffold of module `name` into `dir` (created; it must
/// not exist or be empty), depending on the SDK of the checkout `sdk` (an
/// absolute path). Returns the files written, relative to `dir`.
pub fn create(lang: Lang, name: &str, dir: &Path, sdk: &Path) -> Result<Vec<PathBuf>> {
    if lang == Lang::Rust && !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        bail!("a Rust module's name must start with a letter (it is the Cargo package's name): {name:?}");
    }
    let sdk_text = sdk.to_str().with_context(|| format!("the SDK path {} is not UTF-8", sdk.display()))?;
    if !sdk.is_absolute() || sdk_text.contains(['"', '\'', '\\', '$', '`']) || sdk_text.contains(char::is_control) {
        bail!("the SDK path {sdk_text:?} must be absolute, without quotes, backslashes, `$` or control characters");
    }
    if dir.exists() {
        let mut entries =
            fs::read_dir(dir).with_context(|| format!("{} exists and is not a directory", dir.display()))?;
        if entries.next().is_some() {
            bail!("{} exists and is not empty: choose another name or directory", dir.display());
        }
    }
    let mut written = Vec::new();
    for (path, template) in templates(lang) {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let text = template.replace("{{name}}", name).replace("{{sdk}}", sdk_text);
        fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
        written.push(PathBuf::from(path));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::tests::scratch;

    #[test]
    fn every_scaffold_is_detected_as_its_language_and_fully_filled_in() {
        let dir = scratch("scaffolds");
        for lang in Lang::ALL {
            let module = dir.join(lang.name()).join("bank-v2");
            let files = create(lang, "bank-v2", &module, Path::new("/opt/wasmtx")).unwrap();
            assert_eq!(Lang::detect(&module).unwrap(), lang);
            assert!(files.contains(&PathBuf::from("README.md")), "{lang}: {files:?}");
            for file in files {
                let text = fs::read_to_string(module.join(&file)).unwrap();
                let kept = ["{{name}}", "{{sdk}}"].iter().any(|p| text.contains(p));
                assert!(!kept, "{lang}: {} keeps a placeholder", file.display());
            }
            let readme = fs::read_to_string(module.join("README.md")).unwrap();
            assert!(readme.starts_with("# bank-v2\n"), "{lang}");
            assert!(readme.contains("/opt/wasmtx"), "{lang}: the README names the SDK");
            assert!(readme.contains("--data-binary @bank-v2.wasm http://127.0.0.1:36789/v1/modules/bank-v2"), "{lang}");
        }
        let cargo = fs::read_to_string(dir.join("rust/bank-v2/Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"bank-v2\"\n") && cargo.contains("path = \"/opt/wasmtx/guest-sdk\""));
        let package = fs::read_to_string(dir.join("js/bank-v2/package.json")).unwrap();
        let package: Value = serde_json::from_str(&package).unwrap();
        assert_eq!(package["dependencies"]["wasmtx-guest"], "file:/opt/wasmtx/guest-sdk/js");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_javascript_scaffold_pins_the_tools_the_example_pins() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/transfer/js/package.json");
        let example: Value = serde_json::from_str(&fs::read_to_string(&example).unwrap()).unwrap();
        let scaffold: Value = serde_json::from_str(JS[0].1).unwrap();
        assert_eq!(scaffold["devDependencies"], example["devDependencies"]);
    }

    #[test]
    fn a_directory_with_files_is_not_overwritten() {
        let dir = scratch("occupied");
        fs::write(dir.join("notes.txt"), "mine").unwrap();
        let e = create(Lang::Python, "demo", &dir, Path::new("/opt/wasmtx")).unwrap_err().to_string();
        assert!(e.ends_with("exists and is not empty: choose another name or directory"), "{e}");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "nothing was written");
        // An empty directory is fine.
        let empty = dir.join("empty");
        fs::create_dir(&empty).unwrap();
        create(Lang::C, "demo", &empty, Path::new("/opt/wasmtx")).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_and_paths_that_would_break_a_scaffold_are_refused() {
        let dir = scratch("refused");
        let e = create(Lang::Rust, "1bank", &dir.join("a"), Path::new("/opt/wasmtx")).unwrap_err().to_string();
        assert_eq!(e, "a Rust module's name must start with a letter (it is the Cargo package's name): \"1bank\"");
        create(Lang::Python, "1bank", &dir.join("b"), Path::new("/opt/wasmtx")).unwrap();
        let e = create(Lang::Js, "bank", &dir.join("c"), Path::new("/opt/wa\"smtx")).unwrap_err().to_string();
        assert!(e.contains("must be absolute, without quotes"), "{e}");
        let e = create(Lang::Js, "bank", &dir.join("c"), Path::new("opt/wasmtx")).unwrap_err().to_string();
        assert!(e.contains("must be absolute"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}

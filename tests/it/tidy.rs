//! Tidy checks on the source tree: boundaries the architecture promises.

use std::path::{Path, PathBuf};

const FORBIDDEN_IN_DOMAIN: &[&str] = &["tokio", "ractor", "sled", "warp"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crates a line of code names (outside comments): `use x::`, `x::path`, `extern crate x`.
fn crates_named(line: &str) -> Vec<&'static str> {
    let code = line.split("//").next().unwrap_or("");
    FORBIDDEN_IN_DOMAIN
        .iter()
        .copied()
        .filter(|krate| {
            code.match_indices(krate).any(|(i, _)| {
                let before = code[..i].chars().next_back();
                let after = &code[i + krate.len()..];
                let starts_word = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
                starts_word
                    && (after.starts_with("::")
                        || after.starts_with(';')
                        || after.starts_with(" as")
                        || after.starts_with('}')
                        || after.starts_with(','))
            })
        })
        .collect()
}

#[test]
fn the_checker_recognises_imports() {
    assert_eq!(crates_named("use tokio::sync::Mutex;"), vec!["tokio"]);
    assert_eq!(crates_named("    let x = ::sled::open(p);"), vec!["sled"]);
    assert_eq!(crates_named("extern crate ractor;"), vec!["ractor"]);
    assert_eq!(crates_named("use {warp, serde};"), vec!["warp"]);
    assert!(crates_named("//! must never import tokio, ractor, sled or warp").is_empty());
    assert!(crates_named("let sledge = tokio_like;").is_empty());
}

#[test]
fn the_domain_imports_no_runtime_storage_or_http_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/domain");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() >= 5, "found only {files:?}");
    let mut offences = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (no, line) in text.lines().enumerate() {
            for krate in crates_named(line) {
                offences.push(format!("{}:{}: {krate}: {}", f.display(), no + 1, line.trim()));
            }
        }
    }
    assert!(offences.is_empty(), "src/domain must stay pure:\n{}", offences.join("\n"));
}

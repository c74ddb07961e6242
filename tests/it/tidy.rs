//! Tidy checks on the source tree: boundaries the architecture promises, checked on the parsed
//! source (syn), so no spelling of an import walks around them: grouped or nested `use` trees,
//! renames, re-exports, `extern crate`, a path written inline (`tokio::spawn(..)`), or one inside
//! a macro's tokens.

use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// Crates `src/domain` must never name: it stays pure (no runtime, storage or HTTP).
const FORBIDDEN_IN_DOMAIN: &[&str] = &["tokio", "ractor", "ractor_cluster", "sled", "warp"];

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

/// Every path a file names, as its leading segments (`["tokio", "sync", "Mutex"]`); `crate::`
/// paths keep `crate` first. From `use` trees (each leaf spelled out), `extern crate`, every
/// path in code and types, and identifier sequences `a::b` inside macro invocations.
#[derive(Default)]
struct Paths(Vec<Vec<String>>);

impl Paths {
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.push_with(prefix, &n.ident.to_string()),
            syn::UseTree::Rename(r) => self.push_with(prefix, &r.ident.to_string()),
            syn::UseTree::Glob(_) => self.0.push(prefix.clone()),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    fn push_with(&mut self, prefix: &[String], last: &str) {
        let mut p = prefix.to_vec();
        if last != "self" {
            p.push(last.to_owned());
        }
        self.0.push(p);
    }

    /// `a::b::c` sequences in raw tokens (macro bodies are not parsed as code).
    fn tokens(&mut self, tokens: TokenStream) {
        let tts: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tts.len() {
            match &tts[i] {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(id) => {
                    // `x::id` continues another path; a leading `::id` starts one.
                    let continues = i >= 3
                        && is_colon(&tts[i - 1])
                        && is_colon(&tts[i - 2])
                        && match &tts[i - 3] {
                            TokenTree::Ident(_) => true,
                            TokenTree::Punct(p) => p.as_char() == '>',
                            _ => false,
                        };
                    let mut path = vec![id.to_string()];
                    let mut j = i + 1;
                    while j + 2 < tts.len() && is_colon(&tts[j]) && is_colon(&tts[j + 1]) {
                        let TokenTree::Ident(next) = &tts[j + 2] else { break };
                        path.push(next.to_string());
                        j += 3;
                    }
                    if !continues && path.len() > 1 {
                        self.0.push(path);
                    }
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

fn is_colon(t: &TokenTree) -> bool {
    matches!(t, TokenTree::Punct(p) if p.as_char() == ':')
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_item_extern_crate(&mut self, e: &'ast syn::ItemExternCrate) {
        self.0.push(vec![e.ident.to_string()]);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        self.0.push(p.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.visit_path(&m.path);
        self.tokens(m.tokens.clone());
    }
}

/// Every path named by the Rust source `text`.
fn paths_in(text: &str) -> Vec<Vec<String>> {
    let file = syn::parse_file(text).unwrap_or_else(|e| panic!("cannot parse: {e}"));
    let mut v = Paths::default();
    v.visit_file(&file);
    v.0
}

/// What `pick` finds in each path `text` names, sorted, once each.
fn names_in(text: &str, pick: impl Fn(&[String]) -> Option<String>) -> Vec<String> {
    let mut out: Vec<String> = paths_in(text).iter().filter_map(|p| pick(p)).collect();
    out.sort();
    out.dedup();
    out
}

/// The forbidden crates `text` names.
fn crates_named(text: &str, forbidden: &[&str]) -> Vec<String> {
    // `::tokio::x` parses with the same first segment; `crate::`/`self::`/`super::` are ours.
    names_in(text, |p| p.first().filter(|first| forbidden.contains(&first.as_str())).cloned())
}

/// The modules of ours that `text` names (`crate::x`, `super::super::x`, `self::x` → `x`).
fn our_modules_named(text: &str, forbidden: &[&str]) -> Vec<String> {
    names_in(text, |p| {
        let relative = p.iter().take_while(|s| matches!(s.as_str(), "crate" | "super" | "self")).count();
        p.get(relative).filter(|next| relative > 0 && forbidden.contains(&next.as_str())).cloned()
    })
}

/// `what` of every Rust file under `src/{dir}`, one line per (file, name) found.
fn offences_under(dir: &str, what: impl Fn(&str) -> Vec<String>) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() >= 5, "found only {files:?}");
    let mut offences = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for name in what(&text) {
            offences.push(format!("{}: names {name}", f.display()));
        }
    }
    offences
}

#[test]
fn the_checker_sees_every_way_of_naming_a_crate() {
    let f = FORBIDDEN_IN_DOMAIN;
    assert_eq!(crates_named("use tokio::sync::Mutex;", f), vec!["tokio"]);
    assert_eq!(crates_named("fn f() { let x = ::sled::open(\"p\"); }", f), vec!["sled"]);
    assert_eq!(crates_named("extern crate ractor;", f), vec!["ractor"]);
    assert_eq!(crates_named("use {warp, serde};", f), vec!["warp"]);
    assert_eq!(
        crates_named("use std::{\n    io,\n    sync::Arc,\n};\nuse {\n  serde,\n  tokio\n    ::sync,\n};", f),
        vec!["tokio"]
    );
    assert_eq!(crates_named("pub use tokio as rt;", f), vec!["tokio"]);
    assert_eq!(crates_named("pub use sled::*;", f), vec!["sled"]);
    assert_eq!(crates_named("fn f() -> tokio::task::JoinHandle<()> { todo() }", f), vec!["tokio"]);
    assert_eq!(crates_named("fn f() { tokio::select! { _ = a => {} } }", f), vec!["tokio"]);
    assert_eq!(crates_named("fn f() { println!(\"{}\", warp::http::StatusCode::OK); }", f), vec!["warp"]);
    assert_eq!(crates_named("fn f() { m!(a = ::sled::open(p)); }", f), vec!["sled"]);
    assert!(crates_named("fn f() { m!(crate::x::tokio::y); }", f).is_empty());
    assert!(crates_named("//! must never import tokio, ractor, sled or warp\nfn f() {}", f).is_empty());
    assert!(crates_named("fn f() { let sledge = tokio_like; let s = \"tokio::spawn\"; }", f).is_empty());
    assert!(crates_named("use crate::domain::tokio::X;", f).is_empty(), "a module of ours named like a crate");
}

#[test]
fn the_domain_imports_no_runtime_storage_or_http_crate() {
    let offences = offences_under("domain", |text| crates_named(text, FORBIDDEN_IN_DOMAIN));
    assert!(offences.is_empty(), "src/domain must stay pure:\n{}", offences.join("\n"));
}

#[test]
fn the_layer_checker_sees_every_way_of_naming_a_module() {
    let f = &["actors", "http"];
    assert_eq!(our_modules_named("use crate::actors::entity::blocking;", f), vec!["actors"]);
    assert_eq!(our_modules_named("use crate::{codec, actors::{entity}};", f), vec!["actors"]);
    assert_eq!(our_modules_named("use super::super::http::Req;", f), vec!["http"]);
    assert_eq!(our_modules_named("fn f() { crate::actors::entity::blocking(g); }", f), vec!["actors"]);
    assert_eq!(our_modules_named("pub use crate::http as h;", f), vec!["http"]);
    assert!(our_modules_named("use super::codec; use reqwest::http; fn f() { http::x(); }", f).is_empty());
}

/// The crate's module of the file at `rel` (relative to `src/`): `app/shop.rs` → `[app, shop]`,
/// `app/mod.rs` → `[app]`, `lib.rs` → `[]`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut m: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    let last = m.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        m.push(stem.to_owned());
    }
    m
}

/// A path named in the file of module `module`, made absolute in the crate (`crate::`, `self::`
/// and `super::` resolved); `None` for a path that does not start at one of those.
fn absolute(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let mut base = module.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The modules of ours `text` (the file of `module`) names, as absolute paths.
fn absolute_paths_in(module: &[String], text: &str) -> Vec<Vec<String>> {
    paths_in(text).iter().filter_map(|p| absolute(module, p)).collect()
}

/// Every file under `src/` as (module path, text); tests modules (`tests.rs`) included.
fn crate_files() -> Vec<(Vec<String>, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .into_iter()
        .filter(|f| !f.ends_with("main.rs"))
        .map(|f| (module_of(f.strip_prefix(&src).unwrap()), std::fs::read_to_string(&f).unwrap()))
        .collect()
}

/// The layers, lowest first: each top-level module and the modules of this crate it may name
/// (itself aside). domain ← persistence ← actors ← supervisors ← app ← http and tools; `clock`
/// and `limits` are leaves any layer uses; `cluster` (the configuration and key routing) sits
/// beside persistence, below the supervisors that route through it.
const LAYERS: &[(&str, &[&str])] = &[
    ("limits", &[]),
    ("clock", &[]),
    ("domain", &["limits"]),
    ("persistence", &["domain", "clock", "limits"]),
    ("cluster", &["persistence", "domain", "clock", "limits"]),
    ("actors", &["persistence", "domain", "clock", "limits"]),
    ("supervisors", &["actors", "cluster", "persistence", "domain", "clock", "limits"]),
    ("app", &["supervisors", "actors", "cluster", "persistence", "domain", "clock", "limits"]),
    ("http", &["app", "supervisors", "actors", "cluster", "persistence", "domain", "clock", "limits"]),
    ("tools", &["app", "supervisors", "actors", "cluster", "persistence", "domain", "clock", "limits"]),
];

/// Each (file's module, top-level module it names) that its layer does not allow.
fn layer_offences(files: &[(Vec<String>, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (module, text) in files {
        let Some(top) = module.first() else { continue };
        let allowed = LAYERS.iter().find(|(l, _)| l == top).map(|(_, a)| *a);
        let Some(allowed) = allowed else {
            out.push(format!("src/{}: `{top}` is in no layer (add it to LAYERS)", module.join("/")));
            continue;
        };
        let mut named: Vec<String> = absolute_paths_in(module, text)
            .into_iter()
            .filter_map(|p| p.first().cloned())
            .filter(|t| t != top && !allowed.contains(&t.as_str()))
            .collect();
        named.sort();
        named.dedup();
        for t in named {
            out.push(format!("{}: names {t}, above it or beside it", module.join("::")));
        }
    }
    out
}

/// Module → the other modules it names (the deepest module of each path; a module's own
/// ancestors and descendants excluded: a parent re-exporting its children is not a circle).
fn module_graph(files: &[(Vec<String>, String)]) -> std::collections::BTreeMap<Vec<String>, Vec<Vec<String>>> {
    let modules: std::collections::BTreeSet<Vec<String>> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut graph = std::collections::BTreeMap::new();
    for (module, text) in files {
        let mut to: Vec<Vec<String>> = absolute_paths_in(module, text)
            .into_iter()
            .filter_map(|p| (1..=p.len()).rev().map(|n| p[..n].to_vec()).find(|m| modules.contains(m)))
            .filter(|m| !m.starts_with(module) && !module.starts_with(m))
            .collect();
        to.sort();
        to.dedup();
        graph.insert(module.clone(), to);
    }
    graph
}

/// The pairs of modules that name each other.
fn mutual_imports(files: &[(Vec<String>, String)]) -> Vec<String> {
    let graph = module_graph(files);
    let mut out = Vec::new();
    for (a, tos) in &graph {
        for b in tos {
            if a < b && graph.get(b).is_some_and(|back| back.contains(a)) {
                out.push(format!("{} <-> {}", a.join("::"), b.join("::")));
            }
        }
    }
    out
}

fn file(module: &str, text: &str) -> (Vec<String>, String) {
    (module.split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect(), text.to_owned())
}

#[test]
fn the_layer_checker_resolves_relative_paths_and_finds_circles() {
    let files = [
        file("actors::notification", "use super::super::supervisors::Service;"),
        file("actors::entity", "use super::plan::Plan;"),
        file("actors::plan", "fn f() { crate::actors::entity::run(); }"),
        file("actors", "pub use entity::EntityKind; mod entity; mod plan;"),
        file("persistence::relay", "use crate::{domain, app::{shop}};"),
        file("app::shop", "use crate::persistence::Store;"),
        file("domain", "use self::order::Order;"),
        file("domain::order", "use super::ids::OrderId;"),
        file("domain::ids", ""),
    ];
    assert_eq!(
        layer_offences(&files),
        vec![
            "actors::notification: names supervisors, above it or beside it",
            "persistence::relay: names app, above it or beside it"
        ]
    );
    assert_eq!(mutual_imports(&files), vec!["actors::entity <-> actors::plan"]);
    assert!(mutual_imports(&files[3..]).is_empty(), "a parent and its children are no circle");
}

/// No import runs up a layer (see `LAYERS`): persistence never names the actors, the actors
/// never their supervisors, nothing below the HTTP front names it.
#[test]
fn no_import_runs_up_a_layer() {
    let files = crate_files();
    assert!(files.len() > 50, "found only {} files", files.len());
    let offences = layer_offences(&files);
    assert!(offences.is_empty(), "imports that run up a layer:\n{}", offences.join("\n"));
}

/// No two modules import each other.
#[test]
fn no_two_modules_import_each_other() {
    let circles = mutual_imports(&crate_files());
    assert!(circles.is_empty(), "modules that import each other:\n{}", circles.join("\n"));
}

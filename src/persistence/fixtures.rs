//! Golden byte fixtures for tests: the encodings of every stored or sent schema version, frozen
//! in `tests/fixtures/`. A missing fixture is written only when `BAZAAR_BLESS=1`; an existing one
//! is never rewritten, so a change to a frozen type (or to the codec) fails its test instead of
//! misreading old data.

use std::path::PathBuf;

/// The frozen bytes of fixture `name` (written from `fresh` the first time, under `BAZAAR_BLESS=1`).
pub(crate) fn fixture(name: &str, fresh: &[u8]) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    if !path.exists() && std::env::var("BAZAAR_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, fresh).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("fixture {} missing ({e}); run with BAZAAR_BLESS=1 once", path.display()))
}

//! Fixtures written once: data that every crate's tests share.

use std::path::Path;

/// A fixture from a crate's `tests/data/` (pass `env!("CARGO_MANIFEST_DIR")`).
pub fn test_data(crate_dir: &str, name: &str) -> String {
    let path = Path::new(crate_dir).join("tests/data").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

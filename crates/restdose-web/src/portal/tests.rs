#![allow(clippy::unwrap_used)]

use crate::i18n::lookup;
use restdose_domain::Lang;

/// Every Rust file of the portal, whatever folder it is in.
fn portal_sources() -> Vec<String> {
    let mut sources = Vec::new();
    let mut folders = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/portal")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                sources.push(std::fs::read_to_string(path).unwrap());
            }
        }
    }
    sources
}

/// The scan in `i18n.rs` checks two-part keys only; the portal's keys have three parts.
#[test]
fn every_portal_key_used_here_exists_in_both_languages() {
    let mut checked = 0;
    for source in portal_sources() {
        // (The quote is written as an escape so that this file's own strings keep their parity.)
        for piece in source.split('\u{22}').skip(1).step_by(2) {
            let is_key = piece.split('.').count() >= 2
                && piece.split('.').all(|p| {
                    !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                });
            if is_key && piece.starts_with("portal.") {
                checked += 1;
                for lang in [Lang::De, Lang::En] {
                    assert!(
                        lookup(lang, piece).is_some(),
                        "missing {lang:?} text for {piece}"
                    );
                }
            }
        }
    }
    assert!(checked > 40, "only {checked} keys found");
}

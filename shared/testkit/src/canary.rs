//! Canary searches: where does a planted string turn up? A data
//! protection check plants unusual values through the public APIs and then
//! looks for each, in clear and in the encodings a store or a message may
//! use (base64, base64url, with and without padding), in every file under a
//! directory.

use base64::Engine as _;
use std::path::{Path, PathBuf};

/// The forms `canary` may take in a file: itself and its base64 encodings
/// (the canary's bytes at each of the three alignments a longer encoded
/// value may give them, so a canary inside an encoded JSON body is found).
pub fn forms(canary: &str) -> Vec<Vec<u8>> {
    let mut out = vec![canary.as_bytes().to_vec()];
    for engine in [base64::engine::general_purpose::STANDARD_NO_PAD, base64::engine::general_purpose::URL_SAFE_NO_PAD] {
        for shift in 0..3 {
            let mut padded = vec![b'x'; shift];
            padded.extend_from_slice(canary.as_bytes());
            let enc = engine.encode(&padded);
            // Drop the characters that depend on the prefix and on what follows.
            let skip = if shift == 0 { 0 } else { (shift * 4).div_ceil(3) + 1 };
            let keep = enc.len().saturating_sub(skip + 2);
            if keep >= 8 {
                out.push(enc.as_bytes()[skip..skip + keep].to_vec());
            }
        }
    }
    out
}

/// Every file under `dir` (recursively) holding one of `canary`'s
/// [`forms`]. Unreadable files are reported as holding it, so a search
/// never passes by not looking.
pub fn files_holding(dir: &Path, canary: &str) -> Vec<PathBuf> {
    let needles = forms(canary);
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            found.push(d);
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if needles.iter().any(|n| bytes.windows(n.len()).any(|w| w == n.as_slice())) {
                    found.push(p);
                }
            } else {
                found.push(p);
            }
        }
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_canary_in_clear_and_inside_encoded_bodies_and_not_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let canary = "canary-allergy-zq81";
        std::fs::write(dir.path().join("clear"), format!("...{canary}...")).unwrap();
        for (i, prefix) in ["", "a", "ab", "{\"note\":\""].iter().enumerate() {
            let body = format!("{prefix}{canary}\"}}");
            let std = base64::engine::general_purpose::STANDARD.encode(&body);
            let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&body);
            std::fs::write(dir.path().join(format!("std{i}")), std).unwrap();
            std::fs::write(dir.path().join(format!("url{i}")), url).unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/none"), "nothing to see").unwrap();
        let found = files_holding(dir.path(), canary);
        assert_eq!(found.len(), 9, "{found:?}");
        assert!(!found.iter().any(|p| p.ends_with("none")));
    }
}

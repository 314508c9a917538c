//! Stamps the build with a digest of the domain's source: a snapshot of a stream's folded state
//! is only trusted by a build whose aggregates fold events the same way (see `store::snapshot`).

use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn main() {
    let domain = Path::new(env!("CARGO_MANIFEST_DIR")).join("../domain/src");
    println!("cargo:rerun-if-changed={}", domain.display());
    let mut files = Vec::new();
    sources(&domain, &mut files);
    assert!(
        !files.is_empty(),
        "no domain source under {}",
        domain.display()
    );
    files.sort();
    let mut digest = DefaultHasher::new();
    for file in files {
        digest.write(
            file.strip_prefix(&domain)
                .unwrap_or(&file)
                .to_string_lossy()
                .as_bytes(),
        );
        digest.write(&std::fs::read(&file).expect("domain source is readable"));
    }
    // Kept positive: both snapshot tables hold it in a column checked `>= 0`.
    let stamp = format!(
        "/// A digest of the domain's source.\npub const DOMAIN_STAMP: i64 = {};\n",
        digest.finish() >> 1
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("domain_stamp.rs"), stamp).expect("OUT_DIR is writable");
}

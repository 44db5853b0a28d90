//! Every committed fuzz input — the seed corpus of `fuzz/corpus/<target>/` and every input
//! that once crashed, `fuzz/regressions/<target>/` — runs through its target in the normal
//! test suite (fast: no fuzzing here, see `fuzz/run.sh` for that).

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every input of `target`; returns the files that failed, with why.
fn failures(name: &str, target: netvantage_fuzzing::Target) -> (usize, Vec<String>) {
    let mut files = inputs(&fuzz_dir().join("corpus").join(name));
    let seeds = files.len();
    assert!(seeds > 0, "fuzz/corpus/{name}/ has no seed input");
    files.extend(inputs(&fuzz_dir().join("regressions").join(name)));
    let mut failed = Vec::new();
    for file in &files {
        let data = std::fs::read(file).unwrap();
        if let Err(panic) = std::panic::catch_unwind(|| target(&data)) {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{}: {why}", file.display()));
        }
    }
    (files.len(), failed)
}

#[test]
fn every_corpus_and_regression_input_passes_its_target() {
    let mut all = Vec::new();
    for (name, target) in netvantage_fuzzing::TARGETS {
        let (count, failed) = failures(name, *target);
        eprintln!("{name}: {count} inputs");
        all.extend(failed);
    }
    assert!(all.is_empty(), "failing inputs:\n{}", all.join("\n"));
}

#[test]
fn every_target_has_a_cargo_fuzz_binary() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for (name, _) in netvantage_fuzzing::TARGETS {
        assert!(
            fuzz_dir()
                .join("fuzz_targets")
                .join(format!("{name}.rs"))
                .is_file()
                && manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/ lacks the cargo-fuzz target {name}"
        );
    }
}

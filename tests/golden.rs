//! Golden SQL tests: every `tests/sql/*.sql` runs through `sluice run` on the embedded
//! mini-cluster, and its standard output must equal `tests/sql/*.out`.
//!
//! Printed rows (`+I[...]`) are compared as a sorted multiset with the subtask prefix
//! (`2> `) removed, since parallel subtasks interleave; every other line (DESCRIBE, SHOW,
//! EXPLAIN output) is compared in order. `{{TMP}}` in a script is replaced by a fresh
//! directory and `{{DATA}}` by `tests/sql/data`. Each script also runs at parallelism 2
//! and must give the same output, unless it says `-- golden: fixed parallelism` (its
//! output shows the parallelism, as EXPLAIN does). Set `SLUICE_BLESS=1` to write the
//! `.out` files from the current output.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn normalize(stdout: &str) -> String {
    let mut text = Vec::new();
    let mut rows = Vec::new();
    for line in stdout.lines() {
        let unprefixed = match line.split_once("> ") {
            Some((prefix, rest)) if rest.starts_with("+I[") && !prefix.contains(' ') => rest,
            _ => line,
        };
        if unprefixed.starts_with("+I[") {
            rows.push(unprefixed.to_string());
        } else {
            text.push(line.to_string());
        }
    }
    rows.sort();
    text.extend(rows);
    let mut out = text.join("\n");
    out.push('\n');
    out
}

fn run(script: &Path, parallelism: u32) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql/data");
    let sql = std::fs::read_to_string(script)
        .unwrap()
        .replace("{{TMP}}", tmp.path().to_str().unwrap())
        .replace("{{DATA}}", data.to_str().unwrap());
    let file = tmp.path().join("script.sql");
    std::fs::write(&file, sql).unwrap();
    let out = Command::new(common::sluice_bin())
        .args(["run", file.to_str().unwrap(), "--parallelism", &parallelism.to_string(), "--taskmanagers", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{} failed at parallelism {parallelism}:\n{stderr}", script.display());
    assert!(!stderr.contains("panicked"), "{stderr}");
    normalize(&String::from_utf8_lossy(&out.stdout))
}

fn scripts() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    files
}

#[test]
fn golden_sql_files_produce_their_expected_output() {
    let files = scripts();
    assert!(files.len() >= 8, "the golden suite lost files: {files:?}");
    let bless = std::env::var_os("SLUICE_BLESS").is_some();
    let mut failures = Vec::new();
    for script in &files {
        let expected_path = script.with_extension("out");
        let actual = run(script, 1);
        if bless {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} has no expected output; run with SLUICE_BLESS=1", script.display()));
        if actual != expected {
            failures.push(format!("{}:\n--- expected\n{expected}--- actual\n{actual}", script.display()));
            continue;
        }
        // The same rows at parallelism 2: distribution must not change results.
        if std::fs::read_to_string(script).unwrap().contains("-- golden: fixed parallelism") {
            continue;
        }
        let parallel = run(script, 2);
        if parallel != expected {
            failures.push(format!("{} at parallelism 2:\n--- expected\n{expected}--- actual\n{parallel}", script.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

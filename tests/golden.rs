//! Golden SQL tests: every `tests/sql/*.sql` runs through `sluice run` on the embedded
//! mini-cluster, and its standard output must equal `tests/sql/*.out`. Each script runs three
//! ways, which must all give that output: straight; at parallelism 2 with checkpoints every
//! 500 ms; and at parallelism 2 with paced sources, killed right after its second checkpoint
//! completed (before committing it), then restored from that checkpoint at parallelism 3.
//!
//! Printed rows are folded into the table they describe (`+I`/`+U` add a row, `-U`/`-D`
//! take it away, and must find it) and compared as a sorted multiset with the subtask
//! prefix (`2> `) removed, since parallel subtasks interleave and an updating query's
//! intermediate results depend on batching: for an append-only query that is every row, for
//! an updating one the final row of each key. Every other line (DESCRIBE, SHOW, EXPLAIN
//! output) is compared in order. `{{TMP}}` in a script is replaced by a fresh
//! directory and `{{DATA}}` by `tests/sql/data`. A script that says `-- golden: fixed
//! parallelism` (its output shows the parallelism, as EXPLAIN does) runs only straight.
//! Set `SLUICE_BLESS=1` to write the `.out` files from the current output.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A printed row: `+I[...]`, `-U[...]`, `+U[...]` or `-D[...]`.
fn is_row(line: &str) -> bool {
    ["+I[", "-U[", "+U[", "-D["].iter().any(|kind| line.starts_with(kind))
}

/// The printed rows folded into the table they describe: `+I` and `+U` add a row, `-U`
/// and `-D` take one away, which must be there (the changelog is well formed). For an
/// append-only query this is every row; for an updating one, the final result of each key.
fn fold(rows: &[String]) -> Result<Vec<String>, String> {
    let mut table: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for row in rows {
        let (kind, values) = row.split_at(2);
        match kind {
            "+I" | "+U" => *table.entry(values.to_string()).or_default() += 1,
            _ => match table.get_mut(values) {
                Some(n) if *n > 1 => *n -= 1,
                Some(_) => {
                    table.remove(values);
                }
                None => return Err(format!("'{row}' retracts a row that is not in the table")),
            },
        }
    }
    Ok(table.into_iter().flat_map(|(values, n)| std::iter::repeat_n(format!("+I{values}"), n)).collect())
}

fn normalize(stdout: &str) -> String {
    let mut text = Vec::new();
    let mut rows = Vec::new();
    for line in stdout.lines() {
        let unprefixed = match line.split_once("> ") {
            Some((prefix, rest)) if is_row(rest) && !prefix.contains(' ') => rest,
            _ => line,
        };
        if is_row(unprefixed) {
            rows.push(unprefixed.to_string());
        } else {
            text.push(line.to_string());
        }
    }
    match fold(&rows) {
        Ok(table) => text.extend(table),
        Err(malformed) => text.push(format!("MALFORMED CHANGELOG: {malformed}")),
    }
    let mut out = text.join("\n");
    out.push('\n');
    out
}

/// One `sluice run` of a prepared script.
struct Run {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

fn sluice_run(file: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = Command::new(common::sluice_bin())
        .arg("run")
        .arg(file)
        .args(["--taskmanagers", "2"])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
        code: out.status.code(),
    }
}

/// The script with its placeholders filled, written into `tmp`.
fn prepare(script: &Path, tmp: &Path) -> PathBuf {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql/data");
    let sql = std::fs::read_to_string(script)
        .unwrap()
        .replace("{{TMP}}", tmp.to_str().unwrap())
        .replace("{{DATA}}", data.to_str().unwrap());
    let file = tmp.join("script.sql");
    std::fs::write(&file, sql).unwrap();
    file
}

fn succeeded(script: &Path, how: &str, run: &Run) {
    assert!(run.code == Some(0), "{} failed {how}:\n{}", script.display(), run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

/// Straight through, at `parallelism`.
fn run(script: &Path, parallelism: u32) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let file = prepare(script, tmp.path());
    let out = sluice_run(&file, &["--parallelism", &parallelism.to_string()], &[]);
    succeeded(script, &format!("at parallelism {parallelism}"), &out);
    normalize(&out.stdout)
}

/// At parallelism 2 with checkpoints every 500 ms.
fn run_checkpointed(script: &Path) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let file = prepare(script, tmp.path());
    let checkpoints = tmp.path().join("checkpoints");
    let args =
        ["--parallelism", "2", "--checkpoint-interval", "500ms", "--checkpoint-dir", checkpoints.to_str().unwrap()];
    let out = sluice_run(&file, &args, &[]);
    succeeded(script, "at parallelism 2 with checkpoints", &out);
    normalize(&out.stdout)
}

/// Killed after the second checkpoint at parallelism 2, then restored at parallelism 3.
/// Returns the output and whether the kill happened (a script without a job, or whose job
/// ends before two checkpoints, runs through).
fn run_killed_and_restored(script: &Path) -> (String, bool) {
    let tmp = tempfile::tempdir().unwrap();
    let file = prepare(script, tmp.path());
    let checkpoints = tmp.path().join("checkpoints");
    let args =
        ["--parallelism", "2", "--checkpoint-interval", "50ms", "--checkpoint-dir", checkpoints.to_str().unwrap()];
    let env = [("SLUICE_TEST_EXIT_AFTER_CHECKPOINT", "2"), ("SLUICE_TEST_SOURCE_PACE", "1:25")];
    let first = sluice_run(&file, &args, &env);
    if first.code == Some(0) {
        return (normalize(&first.stdout), false);
    }
    assert_eq!(first.code, Some(137), "{} was not killed by the fault switch:\n{}", script.display(), first.stderr);
    let job_dirs: Vec<PathBuf> = std::fs::read_dir(&checkpoints).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(job_dirs.len(), 1, "{job_dirs:?}");
    let checkpoint = job_dirs[0].join("chk-2");
    let restored_dir = tmp.path().join("restored-checkpoints");
    let args = [
        "--parallelism",
        "3",
        "--checkpoint-interval",
        "500ms",
        "--checkpoint-dir",
        restored_dir.to_str().unwrap(),
        "--from-savepoint",
        checkpoint.to_str().unwrap(),
    ];
    let second = sluice_run(&file, &args, &[]);
    succeeded(script, "restored at parallelism 3", &second);
    // Text (DESCRIBE, SHOW...) comes from the restored run; rows from both.
    // The first run's rows come first: the restored run's updates retract them.
    let rows_before: String = first
        .stdout
        .lines()
        .filter(|l| ["+I[", "-U[", "+U[", "-D["].iter().any(|k| l.contains(k)))
        .map(|l| format!("{l}\n"))
        .collect();
    let second_rows: String = second
        .stdout
        .lines()
        .filter(|l| is_row(l.split_once("> ").map_or(l, |(_, r)| r)))
        .map(|l| format!("{l}\n"))
        .collect();
    let second_text: String = second
        .stdout
        .lines()
        .filter(|l| !is_row(l.split_once("> ").map_or(l, |(_, r)| r)))
        .map(|l| format!("{l}\n"))
        .collect();
    (normalize(&format!("{second_text}{rows_before}{second_rows}")), true)
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
    let mut kills = 0;
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
        if std::fs::read_to_string(script).unwrap().contains("-- golden: fixed parallelism") {
            continue;
        }
        let checkpointed = run_checkpointed(script);
        if checkpointed != expected {
            failures.push(format!(
                "{} at parallelism 2 with checkpoints:\n--- expected\n{expected}--- actual\n{checkpointed}",
                script.display()
            ));
        }
        let (restored, killed) = run_killed_and_restored(script);
        kills += usize::from(killed);
        if restored != expected {
            failures.push(format!(
                "{} killed and restored at parallelism 3:\n--- expected\n{expected}--- actual\n{restored}",
                script.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(bless || kills >= 5, "only {kills} scripts were killed and restored; pace their sources more");
}

/// The golden outputs over `tests/sql/data` equal a computation of the same queries in
/// plain Python (`scripts/check_golden.py`), so a wrong output blessed from Sluice fails.
#[test]
fn golden_outputs_match_an_independent_computation() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_golden.py");
    let out = Command::new("python3").arg(&script).output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

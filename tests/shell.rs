//! `sluice sql`, the interactive shell, driven through its standard input: multi-line
//! statements, DDL, SHOW, a query run on the embedded cluster, and an error that does not
//! end the session.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn the_shell_runs_statements_across_lines_and_survives_errors() {
    let mut child = Command::new(common::sluice_bin())
        .arg("sql")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("HOME", tempfile::tempdir().unwrap().path())
        .spawn()
        .unwrap();
    let input = "CREATE TABLE t (id BIGINT) WITH (\n  'connector' = 'datagen', 'number-of-rows' = '3',\n  \
                 'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '3');\n\
                 SHOW TABLES;\n\
                 SELECT idd FROM t;\n\
                 SELECT id * 10 AS x\n  FROM t;\n\
                 quit;\n";
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("[INFO] table 't' created"), "{stdout}");
    assert!(stdout.contains("|          t |"), "{stdout}");
    assert!(stderr.contains("[ERROR] line 1, column 8: unknown column 'idd' (hint: did you mean 'id'?)"), "{stderr}");
    let mut rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("+I[")).collect();
    rows.sort();
    assert_eq!(rows, ["+I[10]", "+I[20]", "+I[30]"], "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

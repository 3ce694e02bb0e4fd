//! The nexmark connector and Nexmark queries from `benches/nexmark/queries` (Flink's SQL as
//! published). Expected results are computed here, in plain Rust, from the JSON files that
//! `sluice nexmark generate` writes for the same options, which is also the input another
//! engine reads.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{read_json_lines, sluice_bin, Cluster};
use serde_json::Value;

const EVENTS: u64 = 20_000;
const MINUTE: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Sluice DDL of the three tables for `EVENTS` events.
fn ddl() -> String {
    std::fs::read_to_string(repo().join("benches/nexmark/ddl_sluice.sql"))
        .unwrap()
        .replace("${EVENTS_NUM}", &EVENTS.to_string())
        .replace("${TPS}", "10000")
}

/// Query `name` with its blackhole sink turned into a JSON file sink at `out`.
fn query(name: &str, out: &Path) -> String {
    let sql = std::fs::read_to_string(repo().join(format!("benches/nexmark/queries/{name}.sql"))).unwrap();
    assert!(sql.contains("'connector' = 'blackhole'"), "{name}");
    sql.replacen(
        "'connector' = 'blackhole'",
        &format!("'connector' = 'filesystem', 'path' = '{}', 'format' = 'json'", out.display()),
        1,
    )
}

/// The events of `sluice nexmark generate --events EVENTS`, in event order.
fn generated(dir: &Path) -> Vec<Value> {
    let out = dir.join("events");
    let status = Command::new(sluice_bin())
        .args(["nexmark", "generate", "--events", &EVENTS.to_string(), "--files", "3", "--out"])
        .arg(&out)
        .args(["--option", "first-event.rate=10000"])
        .status()
        .unwrap();
    assert!(status.success());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&out).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    let lines: Vec<Vec<Value>> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect())
        .collect();
    // Event n is line n / 3 of file n % 3.
    (0..EVENTS as usize).map(|n| lines[n % 3][n / 3].clone()).collect()
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| !e[kind].is_null()).map(|e| &e[kind]).collect()
}

/// A generated `YYYY-MM-DD HH:MM:SS.sss` timestamp as the JSON sink writes it.
fn as_written(timestamp: &Value) -> String {
    let text = timestamp.as_str().unwrap().replacen(' ', "T", 1);
    text.strip_suffix(".000").map(str::to_string).unwrap_or(text)
}

fn run(cluster: &Cluster, sql: &str, parallelism: u32) {
    let job = cluster.submit(sql, parallelism);
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 3 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
}

/// Every column of every bid read through the connector at parallelism 2 equals the
/// generated files' bids, and the mix of kinds is the configured 1 : 3 : 46.
#[test]
fn the_nexmark_tables_hold_the_generated_events() {
    let cluster = Cluster::start(&[2], &[]);
    let events = generated(cluster.dir.path());
    let bids = of_kind(&events, "bid");
    assert_eq!((of_kind(&events, "person").len(), of_kind(&events, "auction").len(), bids.len()), (400, 1200, 18_400));
    let out = cluster.dir.path().join("bids");
    run(
        &cluster,
        &format!(
            "{}
            CREATE TABLE copied (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
                `dateTime` TIMESTAMP(3), extra STRING)
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
            INSERT INTO copied SELECT * FROM bid;",
            ddl(),
            out.display()
        ),
        2,
    );
    let key = |b: &Value| {
        format!(
            "{}|{}|{}|{}|{}|{}|{}",
            b["auction"], b["bidder"], b["price"], b["channel"], b["url"], b["dateTime"], b["extra"]
        )
    };
    let mut want: Vec<String> = bids
        .iter()
        .map(|b| {
            let mut b = (*b).clone();
            b["dateTime"] = Value::String(as_written(&b["dateTime"]));
            key(&b)
        })
        .collect();
    let mut got: Vec<String> = read_json_lines(&out).iter().map(key).collect();
    want.sort();
    got.sort();
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
}

/// q2 (selection) and q3 (local item suggestion: a join of auctions and people) as
/// published, checked row by row against the generated events.
#[test]
fn nexmark_q2_and_q3_match_a_computation_over_the_generated_events() {
    let cluster = Cluster::start(&[2], &[]);
    let events = generated(cluster.dir.path());
    let bids = of_kind(&events, "bid");

    let out = cluster.dir.path().join("q2");
    run(&cluster, &format!("{}\n{}", ddl(), query("q2", &out)), 2);
    let mut got: Vec<(i64, i64)> =
        read_json_lines(&out).iter().map(|r| (r["auction"].as_i64().unwrap(), r["price"].as_i64().unwrap())).collect();
    let mut want: Vec<(i64, i64)> = bids
        .iter()
        .map(|b| (b["auction"].as_i64().unwrap(), b["price"].as_i64().unwrap()))
        .filter(|(auction, _)| auction % 123 == 0)
        .collect();
    got.sort_unstable();
    want.sort_unstable();
    assert!(!want.is_empty());
    assert_eq!(got, want, "q2");

    let out = cluster.dir.path().join("q3");
    run(&cluster, &format!("{}\n{}", ddl(), query("q3", &out)), 2);
    let people: BTreeMap<i64, &Value> =
        of_kind(&events, "person").into_iter().map(|p| (p["id"].as_i64().unwrap(), p)).collect();
    let mut want: Vec<String> = Vec::new();
    for auction in of_kind(&events, "auction") {
        let Some(person) = people.get(&auction["seller"].as_i64().unwrap()) else { continue };
        let state = person["state"].as_str().unwrap();
        if auction["category"] == 10 && ["OR", "ID", "CA"].contains(&state) {
            want.push(format!("{}|{}|{}|{}", person["name"], person["city"], state, auction["id"]));
        }
    }
    let mut got: Vec<String> = read_json_lines(&out)
        .iter()
        .map(|r| format!("{}|{}|{}|{}", r["name"], r["city"], r["state"].as_str().unwrap(), r["id"]))
        .collect();
    want.sort();
    got.sort();
    assert!(!want.is_empty());
    assert_eq!(got, want, "q3");
}

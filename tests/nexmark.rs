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
    query_as(name, out, "json")
}

/// Query `name` with its blackhole sink turned into a file sink of `format` at `out`.
fn query_as(name: &str, out: &Path, format: &str) -> String {
    let sql = std::fs::read_to_string(repo().join(format!("benches/nexmark/queries/{name}.sql"))).unwrap();
    assert!(sql.contains("'connector' = 'blackhole'"), "{name}");
    sql.replacen(
        "'connector' = 'blackhole'",
        &format!("'connector' = 'filesystem', 'path' = '{}', 'format' = '{format}'", out.display()),
        1,
    )
}

/// The table that the Debezium JSON changes under `dir` leave: each row with how many
/// times it is in it.
fn final_table(dir: &Path) -> BTreeMap<String, i64> {
    let mut table: BTreeMap<String, i64> = BTreeMap::new();
    for change in read_json_lines(dir) {
        let (row, sign) = match change["op"].as_str().unwrap() {
            "c" => (&change["after"], 1),
            "d" => (&change["before"], -1),
            op => panic!("unexpected op {op} in {change}"),
        };
        *table.entry(row.to_string()).or_default() += sign;
    }
    assert!(table.values().all(|&n| n >= 0), "a row retracted more often than inserted: {table:?}");
    table.retain(|_, n| *n > 0);
    table
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

/// A non-negative price written to a DECIMAL(23, 3) column, in thousandths (the JSON sink
/// may write a decimal as a number or as a string).
fn thousandths(value: &Value) -> i64 {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let fraction: String = fraction.chars().chain(std::iter::repeat('0')).take(3).collect();
    whole.parse::<i64>().unwrap() * 1000 + fraction.parse::<i64>().unwrap()
}

/// An auction with the first three directories of a bid's URL (q22's result).
type Directories = (i64, Option<String>, Option<String>, Option<String>);

/// The part of a generated URL after `channel_id=` at its start or after an `&`, up to the
/// next `&` (what q21's REGEXP_EXTRACT takes).
fn channel_id(url: &str) -> Option<&str> {
    let at = if url.starts_with("channel_id=") { 0 } else { url.find("&channel_id=")? + 1 };
    let rest = &url[at + "channel_id=".len()..];
    Some(rest.split('&').next().unwrap_or(rest))
}

/// q1 (a decimal product), q13 (a lookup join with a side-input file declared with Flink's
/// legacy options), q14 (HOUR, a CASE and a character count), q21 (REGEXP_EXTRACT) and q22
/// (SPLIT_INDEX), checked row by row against the generated events.
#[test]
fn nexmark_q1_q13_q14_q21_and_q22_match_a_computation_over_the_generated_events() {
    let cluster = Cluster::start(&[2], &[]);
    let events = generated(cluster.dir.path());
    let bids = of_kind(&events, "bid");
    let field = |b: &Value, k: &str| b[k].as_i64().unwrap();
    let text = |b: &Value, k: &str| b[k].as_str().unwrap().to_string();

    let out = cluster.dir.path().join("q1");
    run(&cluster, &format!("{}\n{}", ddl(), query("q1", &out)), 2);
    let mut got: Vec<(i64, i64, i64)> = read_json_lines(&out)
        .iter()
        .map(|r| (field(r, "auction"), field(r, "bidder"), thousandths(&r["price"])))
        .collect();
    let mut want: Vec<(i64, i64, i64)> =
        bids.iter().map(|b| (field(b, "auction"), field(b, "bidder"), field(b, "price") * 908)).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "q1");

    let side_input = cluster.dir.path().join("side_input.txt");
    std::fs::write(&side_input, (0..10_000).map(|k| format!("{k},v{k}\n")).collect::<String>()).unwrap();
    let out = cluster.dir.path().join("q13");
    let sql = query("q13", &out).replace("${FLINK_HOME}/data/side_input.txt", side_input.to_str().unwrap());
    run(&cluster, &format!("{}\n{sql}", ddl()), 2);
    let mut got: Vec<(i64, String)> =
        read_json_lines(&out).iter().map(|r| (field(r, "auction"), text(r, "value"))).collect();
    let mut want: Vec<(i64, String)> =
        bids.iter().map(|b| (field(b, "auction"), format!("v{}", field(b, "auction") % 10_000))).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "q13");

    let out = cluster.dir.path().join("q14");
    run(&cluster, &format!("{}\n{}", ddl(), query("q14", &out)), 2);
    let mut got: Vec<(i64, i64, String, i64)> = read_json_lines(&out)
        .iter()
        .map(|r| (field(r, "auction"), thousandths(&r["price"]), text(r, "bidTimeType"), field(r, "c_counts")))
        .collect();
    let mut want: Vec<(i64, i64, String, i64)> = bids
        .iter()
        .filter(|b| field(b, "price") * 908 > 1_000_000_000 && field(b, "price") * 908 < 50_000_000_000)
        .map(|b| {
            let hour: u32 = text(b, "dateTime")[11..13].parse().unwrap();
            let kind = match hour {
                8..=18 => "dayTime",
                0..=6 | 20..=23 => "nightTime",
                _ => "otherTime",
            };
            let c = text(b, "extra").matches('c').count() as i64;
            (field(b, "auction"), field(b, "price") * 908, kind.to_string(), c)
        })
        .collect();
    got.sort();
    want.sort();
    assert!(!want.is_empty());
    assert_eq!(got, want, "q14");

    let out = cluster.dir.path().join("q21");
    run(&cluster, &format!("{}\n{}", ddl(), query("q21", &out)), 2);
    let mut got: Vec<(i64, i64, String)> = read_json_lines(&out)
        .iter()
        .map(|r| (field(r, "auction"), field(r, "bidder"), text(r, "channel_id")))
        .collect();
    let mut want: Vec<(i64, i64, String)> = bids
        .iter()
        .filter_map(|b| {
            let id = match text(b, "channel").to_lowercase().as_str() {
                "apple" => Some("0".to_string()),
                "google" => Some("1".to_string()),
                "facebook" => Some("2".to_string()),
                "baidu" => Some("3".to_string()),
                _ => channel_id(&text(b, "url")).map(str::to_string),
            };
            id.map(|id| (field(b, "auction"), field(b, "bidder"), id))
        })
        .collect();
    got.sort();
    want.sort();
    assert!(!want.is_empty());
    assert_eq!(got, want, "q21");

    let out = cluster.dir.path().join("q22");
    run(&cluster, &format!("{}\n{}", ddl(), query("q22", &out)), 2);
    let part = |v: &Value| v.as_str().map(str::to_string);
    let mut got: Vec<Directories> = read_json_lines(&out)
        .iter()
        .map(|r| (field(r, "auction"), part(&r["dir1"]), part(&r["dir2"]), part(&r["dir3"])))
        .collect();
    let mut want: Vec<Directories> = bids
        .iter()
        .map(|b| {
            let url = text(b, "url");
            let dir = |i: usize| url.split('/').nth(i).map(str::to_string);
            (field(b, "auction"), dir(3), dir(4), dir(5))
        })
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "q22");
}

/// q4 (average winning price per category) and q9 (each auction's winning bid), written
/// as published FROM a comma join with the equality in WHERE: updating results, written as
/// Debezium JSON, whose final tables equal a computation over the generated events.
#[test]
fn nexmark_q4_and_q9_final_tables_match_a_computation_over_the_generated_events() {
    let cluster = Cluster::start(&[2], &[]);
    let events = generated(cluster.dir.path());
    let auctions = of_kind(&events, "auction");
    let bids = of_kind(&events, "bid");
    let text = |v: &Value, k: &str| v[k].as_str().unwrap().to_string();
    // Each auction's bids within its lifetime, the best first (highest price, then
    // earliest).
    let mut winners: BTreeMap<i64, (&Value, Vec<&Value>)> = BTreeMap::new();
    for auction in &auctions {
        let id = auction["id"].as_i64().unwrap();
        let (start, end) = (text(auction, "dateTime"), text(auction, "expires"));
        let mut within: Vec<&Value> = bids
            .iter()
            .copied()
            .filter(|b| {
                b["auction"].as_i64() == Some(id)
                    && (start.as_str()..=end.as_str()).contains(&text(b, "dateTime").as_str())
            })
            .collect();
        within.sort_by_key(|b| (std::cmp::Reverse(b["price"].as_i64().unwrap()), text(b, "dateTime")));
        if !within.is_empty() {
            winners.insert(id, (*auction, within));
        }
    }
    assert!(winners.len() > 100, "{} auctions with bids", winners.len());

    let out = cluster.dir.path().join("q4");
    run(&cluster, &format!("{}\n{}", ddl(), query_as("q4", &out, "debezium-json")), 2);
    let mut per_category: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (auction, within) in winners.values() {
        let entry = per_category.entry(auction["category"].as_i64().unwrap()).or_default();
        entry.0 += within[0]["price"].as_i64().unwrap();
        entry.1 += 1;
    }
    let want: BTreeMap<String, i64> = per_category
        .iter()
        .map(|(category, (sum, n))| (serde_json::json!({"id": category, "final": sum / n}).to_string(), 1))
        .collect();
    assert_eq!(final_table(&out), want, "q4");

    let out = cluster.dir.path().join("q9");
    run(&cluster, &format!("{}\n{}", ddl(), query_as("q9", &out, "debezium-json")), 2);
    let mut got: Vec<String> = final_table(&out)
        .iter()
        .flat_map(|(row, &n)| std::iter::repeat_n(row, n as usize))
        .map(|row| {
            let r: Value = serde_json::from_str(row).unwrap();
            format!("{}|{}|{}|{}|{}", r["id"], r["auction"], r["bidder"], r["price"], text(&r, "bid_dateTime"))
        })
        .collect();
    let mut want: Vec<String> = winners
        .iter()
        .map(|(id, (_, within))| {
            let best = within[0];
            format!("{id}|{}|{}|{}|{}", best["auction"], best["bidder"], best["price"], as_written(&best["dateTime"]))
        })
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "q9");
}

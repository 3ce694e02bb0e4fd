//! Lookup-join benchmark against a real PostgreSQL (started by the bench, as the tests do:
//! Debian's `postgresql`): a datagen stream joined `FOR SYSTEM_TIME AS OF` with a table of
//! 1,000,000 rows through the jdbc connector, at cache hit rates of 0%, 90% and 99%, run by
//! `sluice run` on the embedded mini-cluster at parallelism 2 with checkpoints every second.
//!
//! - 0%: every event names a different key (no key repeats, so neither the cache nor the
//!   sharing of in-flight lookups saves a query);
//! - 90% and 99%: the events cycle over a tenth and a hundredth as many keys, with a cache
//!   that holds them all, so the first sight of each key misses and the rest hit.
//!
//! Prints rows/s (the job's own time) and the rows PostgreSQL returned to lookup
//! statements (from `pg_stat_statements`), which shows the hit rate from the database's
//! side. Run with `cargo bench --bench lookup`; `SLUICE_BENCH_ROWS` sets the events per job
//! (default 1,000,000).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;

use common::postgres::Postgres;

/// Runs `sql` and returns the job's time in seconds.
fn run(sql: &str) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("job.sql");
    std::fs::write(&script, sql).unwrap();
    let out = Command::new(common::sluice_bin())
        .arg("run")
        .arg(&script)
        .args(["--parallelism", "2", "--checkpoint-interval", "1s", "--checkpoint-dir"])
        .arg(dir.path().join("checkpoints"))
        .output()
        .expect("sluice runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    stderr
        .lines()
        .find_map(|l| l.split(" FINISHED in ").nth(1))
        .and_then(|t| t.trim().trim_end_matches('s').parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no job time in:\n{stderr}"))
}

fn main() {
    let rows: u64 = std::env::var("SLUICE_BENCH_ROWS").ok().and_then(|r| r.parse().ok()).unwrap_or(1_000_000);
    let pg = Postgres::start();
    pg.psql(
        "CREATE TABLE dim (id BIGINT PRIMARY KEY, name TEXT NOT NULL, score DOUBLE PRECISION);
         INSERT INTO dim SELECT i, 'name-' || i, i * 0.5 FROM generate_series(0, 999999) AS i;
         ANALYZE dim;",
    );
    println!("{rows} events per job, parallelism 2, checkpoints every second ({})", common::sluice_bin().display());
    println!("| cache hit rate | distinct keys | rows/s | rows PostgreSQL returned |");
    println!("|---|---|---|---|");
    for (rate, distinct) in [("0%", rows), ("90%", rows / 10), ("99%", rows / 100)] {
        let cache = if distinct == rows {
            String::new()
        } else {
            format!(
                ", 'lookup.cache' = 'PARTIAL', 'lookup.partial-cache.max-rows' = '{}', \
                 'lookup.partial-cache.expire-after-write' = '1 h'",
                distinct * 2
            )
        };
        let sql = format!(
            "SET 'table.exec.async-lookup.buffer-capacity' = '512';
            CREATE TABLE events (id BIGINT, proc_time AS PROCTIME()) WITH (
              'connector' = 'datagen', 'number-of-rows' = '{rows}', 'rows-per-second' = '1000000000',
              'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '{}');
            CREATE TABLE dim (id BIGINT, name STRING, score DOUBLE, PRIMARY KEY (id) NOT ENFORCED) WITH (
              'connector' = 'jdbc', 'url' = '{}', 'table-name' = 'dim', 'username' = 'postgres'{cache});
            CREATE TABLE sink (id BIGINT, name STRING, score DOUBLE) WITH ('connector' = 'blackhole');
            INSERT INTO sink SELECT e.id, d.name, d.score
            FROM events AS e JOIN dim FOR SYSTEM_TIME AS OF e.proc_time AS d ON e.id % {distinct} = d.id;",
            rows - 1,
            pg.url()
        );
        pg.psql("SELECT pg_stat_statements_reset()");
        let seconds = run(&sql);
        let (returned, _) = pg.statement_stats("JOIN unnest");
        println!("| {rate} | {distinct} | {:.0} k | {returned} |", rows as f64 / seconds / 1000.0);
    }
}

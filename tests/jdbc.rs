//! The jdbc connector and lookup joins against a real PostgreSQL (Debian's `postgresql`,
//! installed by `scripts/bootstrap.sh`): each test starts its own server and a Sluice
//! cluster of real processes. Expected rows are computed in the tests from the data they
//! wrote, not by Sluice.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::{read_json_lines, Cluster};
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);
/// Customers 0..CUSTOMERS exist in PostgreSQL; events also name customers that do not.
const CUSTOMERS: i64 = 100;

/// The customers table in PostgreSQL: id, name, tier, credit.
fn create_customers(pg: &Postgres) {
    pg.psql(
        "CREATE TABLE customers (id BIGINT PRIMARY KEY, name TEXT NOT NULL, tier VARCHAR(10), credit NUMERIC(10,2));
         INSERT INTO customers SELECT i, 'c' || i, (ARRAY['gold','silver','bronze'])[i % 3 + 1], i * 10.5
         FROM generate_series(0, 99) AS i;",
    );
}

fn tier(id: i64) -> &'static str {
    ["gold", "silver", "bronze"][(id % 3) as usize]
}

fn customers_ddl(pg: &Postgres, extra: &str) -> String {
    format!(
        "CREATE TABLE customers (id BIGINT, name STRING, tier STRING, credit DECIMAL(10, 2),
            PRIMARY KEY (id) NOT ENFORCED)
         WITH ('connector' = 'jdbc', 'url' = '{}', 'table-name' = 'customers', 'username' = 'postgres',
               'driver' = 'org.postgresql.Driver'{extra});",
        pg.url()
    )
}

/// Events i = 0..n: customer (i * 7) % 130, amount (i % 50) / 10.
fn write_events(dir: &std::path::Path, n: i64) -> std::path::PathBuf {
    let path = dir.join("events");
    std::fs::create_dir_all(&path).unwrap();
    let lines: Vec<String> = (0..n)
        .map(|i| json!({"id": i, "customer": (i * 7) % 130, "amount": (i % 50) as f64 / 10.0}).to_string())
        .collect();
    std::fs::write(path.join("events.json"), lines.join("\n") + "\n").unwrap();
    path
}

fn sorted_by_id(rows: Vec<Value>) -> Vec<Value> {
    let mut rows = rows;
    rows.sort_by_key(|r| r["id"].as_i64().unwrap());
    rows
}

fn run(cluster: &Cluster, sql: &str, parallelism: u32) -> Value {
    let job = cluster.submit(sql, parallelism);
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 3 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    status
}

/// A LEFT lookup join with the lesson's legacy cache options, then an INNER one with a
/// condition on the looked-up row and no cache: rows checked one by one, and the rows the
/// server returned counted from `pg_stat_statements` (with the cache each customer is
/// read once).
#[test]
fn lookup_joins_enrich_events_from_postgres_and_the_cache_spares_the_database() {
    let pg = Postgres::start();
    create_customers(&pg);
    let cluster = Cluster::start(&[2], &[]);
    let events = write_events(cluster.dir.path(), 3000);
    let out = cluster.dir.path().join("enriched");
    let source = format!(
        "CREATE TABLE events (id BIGINT, customer BIGINT, amount DOUBLE, proc_time AS PROCTIME())
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');",
        events.display()
    );
    let sink = |name: &str| {
        format!(
            "CREATE TABLE {name} (id BIGINT, name STRING, tier STRING, credit DECIMAL(10, 2), amount DOUBLE)
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');",
            out.join(name).display()
        )
    };

    pg.psql("SELECT pg_stat_statements_reset()");
    let cached = format!(
        "{source}{}{}
        INSERT INTO left_joined
        SELECT e.id, c.name, c.tier, c.credit, e.amount
        FROM events AS e LEFT JOIN customers FOR SYSTEM_TIME AS OF e.proc_time AS c ON e.customer = c.id
        WHERE e.amount > 1.0;",
        customers_ddl(&pg, ", 'lookup.cache.max-rows' = '1000', 'lookup.cache.ttl' = '1 h'"),
        sink("left_joined")
    );
    let status = run(&cluster, &cached, 1);
    let rows = sorted_by_id(read_json_lines(&out.join("left_joined")));
    let expected: Vec<Value> = (0..3000i64)
        .filter(|i| (i % 50) as f64 / 10.0 > 1.0)
        .map(|i| {
            let (customer, amount) = ((i * 7) % 130, (i % 50) as f64 / 10.0);
            if customer < CUSTOMERS {
                let credit = format!("{:.2}", customer as f64 * 10.5);
                json!({"id": i, "name": format!("c{customer}"), "tier": tier(customer), "credit": credit.parse::<f64>().unwrap(), "amount": amount})
            } else {
                json!({"id": i, "name": null, "tier": null, "credit": null, "amount": amount})
            }
        })
        .collect();
    assert_eq!(rows.len(), expected.len());
    for (row, want) in rows.iter().zip(&expected) {
        let credit = row["credit"].as_str().map(|c| c.parse::<f64>().unwrap()).or(row["credit"].as_f64());
        let mut row = row.clone();
        row["credit"] = credit.map_or(Value::Null, |c| json!(c));
        assert_eq!(&row, want);
    }
    let (returned, statements) = pg.statement_stats("JOIN unnest");
    assert_eq!(returned, CUSTOMERS as u64, "with the cache each existing customer is read once");
    assert!((1..=130).contains(&statements), "{statements} lookup statements");
    let hits: u64 = status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["operators"]["lookup.customers.cache_hits"].as_u64().unwrap_or(0))
        .sum();
    // Rows whose key was in flight wait for that lookup (counted as misses), the rest hit.
    assert!(hits > 1000, "{hits} cache hits\n{status:#}");

    pg.psql("SELECT pg_stat_statements_reset()");
    let uncached = format!(
        "{source}{}{}
        INSERT INTO inner_joined
        SELECT e.id, c.name, c.tier, c.credit, e.amount
        FROM events AS e JOIN customers FOR SYSTEM_TIME AS OF e.proc_time AS c
          ON e.customer = c.id AND c.tier <> 'bronze';",
        customers_ddl(&pg, ""),
        sink("inner_joined")
    );
    run(&cluster, &uncached, 2);
    let rows = sorted_by_id(read_json_lines(&out.join("inner_joined")));
    let expected: Vec<i64> =
        (0..3000i64).filter(|i| (i * 7) % 130 < CUSTOMERS && tier((i * 7) % 130) != "bronze").collect();
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, expected);
    for row in &rows {
        let customer = (row["id"].as_i64().unwrap() * 7) % 130;
        assert_eq!(row["name"], format!("c{customer}"), "{row}");
    }
    // Without a cache only rows whose key is already in flight share a lookup: the same
    // customers are read again batch after batch.
    let (returned, _) = pg.statement_stats("JOIN unnest");
    assert!(returned > 2 * CUSTOMERS as u64, "without a cache customers are read again ({returned} rows returned)");
}

/// Waits until the lookup join has taken at least `rows` rows.
fn wait_for_rows(cluster: &Cluster, job: &str, table: &str, rows: u64) -> Value {
    let deadline = Instant::now() + 2 * MINUTE;
    loop {
        let status = cluster.status(job);
        let seen: u64 = status["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let ops = &t["operators"];
                ops[format!("lookup.{table}.cache_hits")].as_u64().unwrap_or(0)
                    + ops[format!("lookup.{table}.cache_misses")].as_u64().unwrap_or(0)
            })
            .sum();
        if seen >= rows {
            return status;
        }
        assert!(Instant::now() < deadline, "the lookup join did not reach {rows} rows: {status:#}\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A stream of `n` events at 100 per second (id 0..n, customer = id % 10) looked up in
/// `customers` with `options`, into a filesystem table, checkpointed every 500 ms.
fn paced_lookup_job(pg: &Postgres, cluster: &Cluster, n: u64, options: &str, restarts: &str) -> String {
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '500ms';
        {restarts}
        CREATE TABLE ticks (id BIGINT, proc_time AS PROCTIME()) WITH (
            'connector' = 'datagen', 'rows-per-second' = '100',
            'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '{}');
        {}
        CREATE TABLE named (id BIGINT, name STRING) WITH (
            'connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
        INSERT INTO named
        SELECT t.id, c.name FROM ticks AS t
        JOIN customers FOR SYSTEM_TIME AS OF t.proc_time AS c ON t.id % 10 = c.id;",
        n - 1,
        customers_ddl(pg, options),
        cluster.dir.path().join("named").display()
    );
    cluster.submit(&sql, 1)
}

/// Rows updated in PostgreSQL while the job runs are seen once their cache entries expire.
#[test]
fn rows_updated_in_postgres_appear_after_expire_after_write() {
    let pg = Postgres::start();
    create_customers(&pg);
    let cluster = Cluster::start(&[1], &[]);
    let options = ", 'lookup.cache' = 'PARTIAL', 'lookup.partial-cache.max-rows' = '100',
        'lookup.partial-cache.expire-after-write' = '1 s'";
    let job = paced_lookup_job(&pg, &cluster, 1500, options, "");
    wait_for_rows(&cluster, &job, "customers", 200);
    pg.psql("UPDATE customers SET name = name || '-v2'");
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 3 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    let rows: BTreeMap<i64, String> = read_json_lines(&cluster.dir.path().join("named"))
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r["name"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(rows.len(), 1500);
    for (id, name) in &rows {
        if *id < 100 {
            assert_eq!(name, &format!("c{}", id % 10), "row {id} was looked up before the update");
        }
        if *id >= 1300 {
            assert_eq!(name, &format!("c{}-v2", id % 10), "row {id} came seconds after the update and the expiry");
        }
    }
}

/// PostgreSQL stopped for 5 s mid-run: lookups retry, checkpoints keep completing, and
/// every row arrives once. Then a job whose lookups fail past 'lookup.max-retries' fails
/// naming the table and the error.
#[test]
fn lookups_ride_out_a_database_outage_and_fail_past_their_retries() {
    let pg = Postgres::start();
    create_customers(&pg);
    let cluster = Cluster::start(&[1], &["--checkpoint-dir", "{dir}/checkpoints"]);
    let job = paced_lookup_job(&pg, &cluster, 1500, ", 'lookup.max-retries' = '12'", "");
    wait_for_rows(&cluster, &job, "customers", 300);
    let before = cluster.status(&job)["checkpoints"]["completed"].as_u64().unwrap();
    pg.stop_server();
    std::thread::sleep(Duration::from_secs(5));
    let during = cluster.status(&job);
    pg.start_server();
    let completed = during["checkpoints"]["completed"].as_u64().unwrap();
    assert!(completed >= before + 3, "checkpoints stopped during the outage ({before} → {completed}): {during:#}");
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 3 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    let retries: u64 = status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["operators"]["lookup.customers.retries"].as_u64().unwrap_or(0))
        .sum();
    assert!(retries > 0, "the outage caused no retry: {status:#}");
    let rows = read_json_lines(&cluster.dir.path().join("named"));
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    let unique: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 1500, "every row once");
    assert_eq!(unique, (0..1500).collect::<BTreeSet<_>>());
    for row in &rows {
        assert_eq!(row["name"], format!("c{}", row["id"].as_i64().unwrap() % 10), "{row}");
    }

    std::fs::remove_dir_all(cluster.dir.path().join("named")).unwrap();
    let job =
        paced_lookup_job(&pg, &cluster, 1500, ", 'lookup.max-retries' = '1'", "SET 'restart-strategy.type' = 'none';");
    wait_for_rows(&cluster, &job, "customers", 100);
    pg.stop_server();
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 2 * MINUTE);
    assert_eq!(status["state"], "FAILED", "{status:#}");
    let message = status["message"].as_str().unwrap();
    assert!(message.contains("table 'customers'") && message.contains("after 2 attempt(s)"), "{message}");
    assert!(
        message.to_lowercase().contains("connect")
            || message.contains("shutting down")
            || message.contains("terminating"),
        "{message}"
    );
}

/// The jdbc sink: an updating GROUP BY upserts into a table with a primary key, and an
/// append-only query appends to one without; the tables in PostgreSQL are checked.
#[test]
fn the_jdbc_sink_upserts_by_primary_key_and_appends_without_one() {
    let pg = Postgres::start();
    pg.psql(
        "CREATE TABLE totals (customer BIGINT PRIMARY KEY, events BIGINT NOT NULL, amount DOUBLE PRECISION);
         CREATE TABLE copies (id BIGINT, customer BIGINT, amount DOUBLE PRECISION);",
    );
    let cluster = Cluster::start(&[2], &[]);
    let events = write_events(cluster.dir.path(), 5000);
    let sql = format!(
        "CREATE TABLE events (id BIGINT, customer BIGINT, amount DOUBLE)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
        CREATE TABLE totals (customer BIGINT, events BIGINT, amount DOUBLE, PRIMARY KEY (customer) NOT ENFORCED)
         WITH ('connector' = 'jdbc', 'url' = '{url}', 'table-name' = 'totals', 'username' = 'postgres',
               'sink.buffer-flush.max-rows' = '500');
        CREATE TABLE copies (id BIGINT, customer BIGINT, amount DOUBLE)
         WITH ('connector' = 'jdbc', 'url' = '{url}', 'table-name' = 'public.copies', 'username' = 'postgres');
        EXECUTE STATEMENT SET BEGIN
        INSERT INTO totals SELECT customer, COUNT(*), SUM(amount) FROM events GROUP BY customer;
        INSERT INTO copies SELECT id, customer, amount FROM events WHERE amount >= 4.5;
        END;",
        events.display(),
        url = pg.url()
    );
    run(&cluster, &sql, 2);
    let mut want: BTreeMap<i64, (i64, f64)> = BTreeMap::new();
    for i in 0..5000i64 {
        let entry = want.entry((i * 7) % 130).or_default();
        entry.0 += 1;
        entry.1 += (i % 50) as f64 / 10.0;
    }
    let got: BTreeMap<i64, (i64, f64)> = pg
        .psql("SELECT customer, events, amount FROM totals ORDER BY customer")
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split('|').collect();
            (parts[0].parse().unwrap(), (parts[1].parse().unwrap(), parts[2].parse().unwrap()))
        })
        .collect();
    assert_eq!(got.len(), want.len());
    for (customer, (events, amount)) in &want {
        let (e, a) = got[customer];
        assert_eq!(e, *events, "customer {customer}");
        assert!((a - amount).abs() < 1e-6, "customer {customer}: {a} vs {amount}");
    }
    let copies = pg.psql("SELECT count(*), count(DISTINCT id) FROM copies");
    let expected = (0..5000i64).filter(|i| (i % 50) as f64 / 10.0 >= 4.5).count();
    assert_eq!(copies.trim(), format!("{expected}|{expected}"));
}

/// Chaos: Kafka → lookup join against PostgreSQL → ML_PREDICT (a local ONNX model) →
/// exactly-once Kafka, with 5 task manager kills at random points of the checkpoint cycle.
/// A fresh read_committed read must see every input id exactly once, enriched and scored.
#[test]
fn a_lookup_and_ml_predict_pipeline_is_exactly_once_through_task_manager_kills() {
    use common::broker::Broker;
    let pg = Postgres::start();
    pg.psql(
        "CREATE TABLE customer_dim (customer_id BIGINT PRIMARY KEY, age INT, tenure INT, segment TEXT);
         INSERT INTO customer_dim SELECT i, 20 + (i * 3) % 50, i % 7, (ARRAY['new','loyal','casual'])[i % 3 + 1]
         FROM generate_series(0, 199) AS i;",
    );
    let broker = Broker::start();
    broker.create_topic("txns", 4);
    broker.create_topic("scored", 4);
    let total = 40_000i64;
    broker.produce(
        "txns",
        (0..total).map(|i| {
            (Some((i % 4) as i32), json!({"id": i, "customer_id": i % 200, "amount": (i % 900) as f64}).to_string())
        }),
    );
    let mut cluster = Cluster::start(&[], &["--checkpoint-dir", "{dir}/checkpoints", "--heartbeat-timeout", "2s"]);
    cluster.add_taskmanager(2);
    cluster.add_taskmanager(2);
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fraud_score_model.onnx");
    let dim = format!(
        "CREATE TABLE customer_dim (customer_id BIGINT, age INT, tenure INT, segment STRING,
                PRIMARY KEY (customer_id) NOT ENFORCED)
             WITH ('connector' = 'jdbc', 'url' = '{}', 'table-name' = 'customer_dim', 'username' = 'postgres',
                   'lookup.cache.max-rows' = '1000', 'lookup.cache.ttl' = '1 min');",
        pg.url()
    );
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '500ms';
        SET 'restart-strategy.type' = 'fixed-delay';
        SET 'restart-strategy.fixed-delay.delay' = '200ms';
        CREATE TABLE txns (id BIGINT, customer_id BIGINT, amount DOUBLE, proc_time AS PROCTIME()) WITH (
            'connector' = 'kafka', 'topic' = 'txns', 'properties.bootstrap.servers' = '{address}',
            'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset', 'format' = 'json');
        {dim}
        CREATE MODEL fraud_model INPUT (amount DOUBLE, age INT, tenure INT, segment STRING) OUTPUT (fraud_score DOUBLE)
          WITH ('provider' = 'local', 'task' = 'regression', 'model_path' = '{model}');
        CREATE TABLE scored (id BIGINT, customer_id BIGINT, segment STRING, fraud_score DOUBLE) WITH (
            'connector' = 'kafka', 'topic' = 'scored', 'properties.bootstrap.servers' = '{address}',
            'format' = 'json', 'sink.delivery-guarantee' = 'exactly-once', 'sink.transactional-id-prefix' = 'scored',
            'sink.rows-per-second' = '1500');
        INSERT INTO scored
        SELECT t.id, t.customer_id, c.segment, p.fraud_score
        FROM txns AS t
        JOIN customer_dim FOR SYSTEM_TIME AS OF t.proc_time AS c ON t.customer_id = c.customer_id
        CROSS APPLY (SELECT * FROM TABLE(ML_PREDICT(VALUES (t.amount, c.age, c.tenure, c.segment),
            MODEL fraud_model, DESCRIPTOR(amount, age, tenure, segment)))) p;",
        address = broker.address,
        model = model.display()
    );
    let job = cluster.submit(&sql, 2);
    let kills = cluster.kill_task_managers_while_running(&job, 5, 2, Duration::from_millis(500));
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 5 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    assert_eq!(kills, 5, "the job finished after only {kills} kills; pace it more");

    let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
    let mut seen = vec![0u32; total as usize];
    for (_, _, value) in broker.read_all("scored", 4) {
        let row: Value = serde_json::from_str(&value).unwrap();
        let id = row["id"].as_i64().unwrap();
        let c = id % 200;
        let segment = ["new", "loyal", "casual"][(c % 3) as usize];
        assert_eq!(row["segment"], segment, "{row}");
        let new = if segment == "new" { 1.0 } else { 0.0 };
        let want = sigmoid(
            0.004 * (id % 900) as f64 - 0.03 * (20 + (c * 3) % 50) as f64 - 0.1 * (c % 7) as f64 + 1.5 * new - 1.0,
        );
        assert!((row["fraud_score"].as_f64().unwrap() - want).abs() < 1e-5, "{row} vs {want}");
        seen[id as usize] += 1;
    }
    let missing = seen.iter().filter(|&&n| n == 0).count();
    let duplicated = seen.iter().filter(|&&n| n > 1).count();
    assert_eq!((missing, duplicated), (0, 0), "records missing or committed twice after {kills} kills");
}

/// The orders table in PostgreSQL: ids 1..=n; `bucket` (the partition column) equals the
/// id except that every 97th is NULL and every 101st negative, so rows fall outside the
/// partition bounds on both sides.
fn create_orders(pg: &Postgres, n: i64) {
    pg.psql(&format!(
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer INT NOT NULL, amount NUMERIC(10,2),
            placed TIMESTAMP, paid BOOLEAN, note TEXT, bucket BIGINT);
         INSERT INTO orders SELECT i, i % 37, (i % 1000) / 4.0,
            TIMESTAMP '2026-01-01 00:00:00' + i * INTERVAL '1 minute', i % 3 = 0,
            CASE WHEN i % 11 = 0 THEN NULL ELSE 'note ' || i END,
            CASE WHEN i % 97 = 0 THEN NULL WHEN i % 101 = 0 THEN -i ELSE i END
         FROM generate_series(1, {n}) AS i;"
    ));
}

fn orders_ddl(pg: &Postgres, extra: &str) -> String {
    format!(
        "CREATE TABLE orders (id BIGINT, customer INT, amount DECIMAL(10, 2), placed TIMESTAMP(3), paid BOOLEAN,
            note STRING, bucket BIGINT, PRIMARY KEY (id) NOT ENFORCED)
         WITH ('connector' = 'jdbc', 'url' = '{}', 'table-name' = 'orders', 'username' = 'postgres'{extra});",
        pg.url()
    )
}

/// The row of order `id` as the filesystem sink writes it, from the formulas that filled
/// the table (not from PostgreSQL or Sluice).
fn expected_order(id: i64) -> Value {
    let placed = timestamp_after_minutes(id);
    json!({
        "id": id,
        "customer": id % 37,
        "amount": format!("{:.2}", (id % 1000) as f64 / 4.0),
        "placed": placed,
        "paid": id % 3 == 0,
        "note": if id % 11 == 0 { Value::Null } else { json!(format!("note {id}")) },
        "bucket": if id % 97 == 0 { Value::Null } else if id % 101 == 0 { json!(-id) } else { json!(id) },
    })
}

/// `2026-01-01 00:00:00` plus `minutes`, written as the json format writes timestamps
/// (`YYYY-MM-DDTHH:MM:SS`).
fn timestamp_after_minutes(minutes: i64) -> String {
    let days_in_month = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let (mut day, rest) = (minutes / 1440, minutes % 1440);
    let mut month = 0;
    while day >= days_in_month[month] {
        day -= days_in_month[month];
        month += 1;
    }
    format!("2026-{:02}-{:02}T{:02}:{:02}:00", month + 1, day + 1, rest / 60, rest % 60)
}

/// A bounded jdbc scan in four ranges of `bucket` over three subtasks: every row, those
/// outside the bounds and with a NULL bucket included, arrives exactly once with every
/// column's value; the server ran one read per range. Then a batch GROUP BY over the same
/// table writes into PostgreSQL, checked against PostgreSQL's own aggregation.
#[test]
fn a_partitioned_jdbc_scan_reads_every_row_once_and_feeds_a_batch_aggregate() {
    let n = 20_000;
    let pg = Postgres::start();
    create_orders(&pg, n);
    pg.psql("CREATE TABLE totals (customer INT PRIMARY KEY, orders BIGINT, amount DOUBLE PRECISION, paid BIGINT)");
    let cluster = Cluster::start(&[3], &[]);
    let out = cluster.dir.path().join("copied");
    let partitioned = ", 'scan.partition.column' = 'bucket', 'scan.partition.num' = '4',
        'scan.partition.lower-bound' = '1', 'scan.partition.upper-bound' = '15000', 'scan.fetch-size' = '300'";
    pg.psql("SELECT pg_stat_statements_reset()");
    run(
        &cluster,
        &format!(
            "{}
            CREATE TABLE copied (id BIGINT, customer INT, amount DECIMAL(10, 2), placed TIMESTAMP(3), paid BOOLEAN,
                note STRING, bucket BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
            INSERT INTO copied SELECT * FROM orders;",
            orders_ddl(&pg, partitioned),
            out.display()
        ),
        3,
    );
    let rows = sorted_by_id(read_json_lines(&out));
    assert_eq!(rows.len() as i64, n, "rows read");
    for (row, id) in rows.iter().zip(1..) {
        let want = expected_order(id);
        for column in ["id", "customer", "paid", "note", "bucket"] {
            assert_eq!(row[column], want[column], "order {id} column {column}: {row}");
        }
        let amount = row["amount"].as_str().map_or_else(|| row["amount"].to_string(), str::to_string);
        assert_eq!(amount.parse::<f64>().unwrap(), want["amount"].as_str().unwrap().parse::<f64>().unwrap(), "{row}");
        assert!(row["placed"].as_str().unwrap().starts_with(want["placed"].as_str().unwrap()), "{row} vs {want}");
    }
    // pg_stat_statements counts a portal's rows per fetch, so only the statements are counted.
    let (_, reads) = pg.statement_stats("FROM \"orders\" AS t");
    assert_eq!(reads, 4, "one read per range");

    run(
        &cluster,
        &format!(
            "SET 'execution.runtime-mode' = 'batch';
            {}
            CREATE TABLE totals (customer INT, orders BIGINT, amount DOUBLE, paid BIGINT,
                PRIMARY KEY (customer) NOT ENFORCED)
             WITH ('connector' = 'jdbc', 'url' = '{}', 'table-name' = 'totals', 'username' = 'postgres');
            INSERT INTO totals
            SELECT customer, COUNT(*), SUM(CAST(amount AS DOUBLE)), SUM(CASE WHEN paid THEN 1 ELSE 0 END)
            FROM orders GROUP BY customer;",
            orders_ddl(&pg, ""),
            pg.url()
        ),
        2,
    );
    // Sums of doubles: the totals are compared after rounding to cents.
    let rounded = "round(amount::numeric, 2)";
    let want = pg.psql(
        "SELECT customer, count(*), sum(amount), sum(CASE WHEN paid THEN 1 ELSE 0 END) FROM orders
         GROUP BY customer ORDER BY customer",
    );
    let got = pg.psql(&format!("SELECT customer, orders, {rounded}, paid FROM totals ORDER BY customer"));
    assert_eq!(got.lines().count(), 37);
    assert_eq!(got, want);
}

/// A paced jdbc scan into the exactly-once filesystem sink, with two task manager kills:
/// restored sources read each range again from the checkpointed row (`OFFSET`), so every
/// row is committed exactly once.
#[test]
fn a_jdbc_scan_resumes_mid_range_after_task_manager_kills() {
    let n = 12_000;
    let pg = Postgres::start();
    create_orders(&pg, n);
    let mut cluster = Cluster::start(&[], &["--checkpoint-dir", "{dir}/checkpoints", "--heartbeat-timeout", "2s"]);
    cluster.add_taskmanager(2);
    cluster.add_taskmanager(2);
    let out = cluster.dir.path().join("copied");
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '400ms';
        SET 'restart-strategy.type' = 'fixed-delay';
        SET 'restart-strategy.fixed-delay.delay' = '200ms';
        {}
        CREATE TABLE copied (id BIGINT, bucket BIGINT)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json', 'sink.rows-per-second' = '1200');
        INSERT INTO copied SELECT id, bucket FROM orders;",
        orders_ddl(
            &pg,
            ", 'scan.partition.column' = 'id', 'scan.partition.num' = '3',
              'scan.partition.lower-bound' = '1', 'scan.partition.upper-bound' = '12000'"
        ),
        out.display()
    );
    let job = cluster.submit(&sql, 2);
    let kills = cluster.kill_task_managers_while_running(&job, 2, 2, Duration::from_millis(400));
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 3 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    assert_eq!(kills, 2, "the job finished after only {kills} kills; pace it more");
    let mut seen = vec![0u32; n as usize + 1];
    for row in read_json_lines(&out) {
        seen[row["id"].as_i64().unwrap() as usize] += 1;
    }
    let missing: Vec<usize> = (1..=n as usize).filter(|&i| seen[i] == 0).collect();
    let duplicated: Vec<usize> = (1..=n as usize).filter(|&i| seen[i] > 1).collect();
    assert!(missing.is_empty() && duplicated.is_empty(), "missing {missing:?}, duplicated {duplicated:?}");
}

/// A jdbc scan whose declared column type does not match what PostgreSQL stores fails the
/// job with an error naming the table and the column.
#[test]
fn a_jdbc_scan_of_a_mistyped_column_fails_naming_it() {
    let pg = Postgres::start();
    create_orders(&pg, 100);
    let cluster = Cluster::start(&[1], &[]);
    let sql = format!(
        "SET 'restart-strategy.type' = 'none';
        CREATE TABLE orders (id BIGINT, note INT)
         WITH ('connector' = 'jdbc', 'url' = '{}', 'table-name' = 'orders', 'username' = 'postgres');
        CREATE TABLE out (id BIGINT, note INT) WITH ('connector' = 'blackhole');
        INSERT INTO out SELECT * FROM orders;",
        pg.url()
    );
    let job = cluster.submit(&sql, 1);
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], MINUTE);
    assert_eq!(status["state"], "FAILED", "{status:#}");
    let message = status.to_string();
    assert!(message.contains("table 'orders'") && message.contains("column 'note'"), "{status:#}");
}

//! The chaos suite: the compose cluster of `deploy/docker-compose.yml` (images from
//! `deploy/build-image.sh`, rebuilt only when what goes into them changes) runs a Kafka →
//! lookup join (PostgreSQL) → ML_PREDICT (stub LLM with latency and 429s) → exactly-once
//! Kafka pipeline while a driver injects faults at random times from a printed seed
//! (`SLUICE_CHAOS_SEED` replays a run):
//!
//! - `docker kill` of a task manager, then a new one;
//! - `docker pause` of a task manager past the heartbeat timeout, then unpause: the
//!   jobmanager declared it lost, so it is fenced (its tasks canceled, its transactions
//!   aborted by the new attempt's producers), not merged back;
//! - `docker network disconnect` of a task manager from the others for a few seconds;
//! - `docker kill` of the jobmanager, then a restart: it recovers the job from S3;
//! - the S3 server paused for 10 s (moto keeps objects in memory, so a stop would lose
//!   them: a pause is the outage a restart-free server shows), PostgreSQL stopped for 5 s.
//!
//! At the end a fresh read_committed consumer finds every input id exactly once with its
//! values, a read_uncommitted one finds the aborted records of the killed attempts (so the
//! transactional path ran), the read_committed consumer reaching the partitions' ends shows
//! no transaction is left open, and no container of the project is left.
//!
//! The same driver runs the same faults on a second cluster without Docker, for machines
//! without an engine: processes in network namespaces with iptables partitions
//! (`netns.rs`; needs root).
//!
//! Needs Docker and docker-compose, and root for the namespaces; `SLUICE_CHAOS=off` skips
//! both (it says so), `SLUICE_CHAOS=netns` runs only the namespace one.

#[path = "../common/mod.rs"]
mod common;
mod compose;
mod netns;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::broker::Broker;
use common::{free_port, sluice_bin};
use compose::Project;
use serde_json::{json, Value};

/// Writes a line to the process's stderr itself: the test harness captures `eprintln!`
/// of passing tests, and the seed, the faults and the summary must show in CI's log.
macro_rules! report {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

const MINUTE: Duration = Duration::from_secs(60);
const USERS: i64 = 50;
const SEGMENTS: [&str; 3] = ["new", "loyal", "casual"];
/// The jobmanager's heartbeat timeout in the compose file.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(6);

/// The faults the driver injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    KillTaskManager,
    PauseTaskManager,
    PartitionTaskManager,
    KillJobManager,
    PauseS3,
    StopPostgres,
}

const FAULTS: [Fault; 6] = [
    Fault::KillTaskManager,
    Fault::PauseTaskManager,
    Fault::PartitionTaskManager,
    Fault::KillJobManager,
    Fault::PauseS3,
    Fault::StopPostgres,
];

/// xorshift64: the driver's only source of randomness, from the printed seed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Where the job's SQL reaches the services, as seen from the task managers.
struct Endpoints {
    /// Kafka bootstrap servers.
    kafka: String,
    /// The jdbc table's URL.
    jdbc: String,
    /// The stub LLM's OpenAI base URL.
    llm: String,
}

/// A cluster the driver runs the pipeline on and injects faults into.
trait Backend {
    /// What it is, for messages.
    fn name(&self) -> String;
    /// The jobmanager's RPC address, from the host.
    fn jobmanager(&self) -> String;
    /// The services' addresses for the job's SQL.
    fn endpoints(&self) -> Endpoints;
    /// The broker, from the host.
    fn broker(&self) -> &Broker;
    /// Runs SQL on the PostgreSQL server.
    fn psql(&self, sql: &str);
    /// The jobmanager's REST address, from the host.
    fn rest(&self) -> String;
    /// Injects `fault`; returns once the fault is over (the component is back). A task
    /// manager fault hits one of those whose advertised host is in `busy` (the ones running
    /// the job's tasks), or any when none is.
    fn inject(&mut self, fault: Fault, random: &mut Random, busy: &[String]);
    /// The last lines of the cluster's logs, for failure messages.
    fn logs(&self) -> String;
}

/// One chaos run at a time: both clusters at once would overload small machines.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn chaos_seed() -> u64 {
    std::env::var("SLUICE_CHAOS_SEED").ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        u64::from(nanos) | 1
    })
}

fn enabled(which: &str) -> bool {
    match std::env::var("SLUICE_CHAOS").as_deref() {
        Ok("off") => {
            report!("SLUICE_CHAOS=off: the {which} chaos suite is skipped");
            false
        }
        Ok(only) if only != which && !only.is_empty() => {
            report!("SLUICE_CHAOS={only}: the {which} chaos suite is skipped");
            false
        }
        _ => true,
    }
}

/// The host's view of the cluster: the CLI against the jobmanager's address.
struct Cli {
    jobmanager: String,
}

impl Cli {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(sluice_bin()).args(args).args(["--jobmanager", &self.jobmanager]).output().unwrap()
    }

    /// The job's status, or `None` while the jobmanager does not answer (it is down).
    fn status(&self, job: &str) -> Option<Value> {
        let out = self.run(&["status", job, "--json"]);
        out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    /// Waits until the job runs and has completed a checkpoint newer than the newest one
    /// when the wait began (a restarted jobmanager reports the newest it recovered).
    fn wait_for_progress(&self, job: &str, backend: &dyn Backend) {
        let deadline = Instant::now() + 3 * MINUTE;
        let mut first: Option<u64> = None;
        loop {
            if let Some(status) = self.status(job) {
                assert_ne!(status["state"], "FAILED", "{status:#}\n{}", backend.logs());
                let latest = status["checkpoints"]["latest_id"].as_u64().unwrap_or(0);
                match first {
                    None => first = Some(latest),
                    Some(old) if status["state"] == "RUNNING" && latest > old => return,
                    _ => {}
                }
            }
            assert!(Instant::now() < deadline, "the job made no progress for 3 minutes:\n{}", backend.logs());
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// The compose cluster as a [`Backend`].
struct Docker {
    project: Project,
    broker: Broker,
    jobmanager: String,
    rest: String,
    postgres_port: u16,
}

impl Backend for Docker {
    fn name(&self) -> String {
        format!("compose project {}", self.project.name)
    }

    fn jobmanager(&self) -> String {
        self.jobmanager.clone()
    }

    fn endpoints(&self) -> Endpoints {
        Endpoints {
            kafka: "broker:9092".into(),
            jdbc: "jdbc:postgresql://postgres:5432/postgres".into(),
            llm: "http://stub-llm:8080/v1".into(),
        }
    }

    fn broker(&self) -> &Broker {
        &self.broker
    }

    fn psql(&self, sql: &str) {
        psql(self.postgres_port, sql);
    }

    fn rest(&self) -> String {
        self.rest.clone()
    }

    fn inject(&mut self, fault: Fault, random: &mut Random, busy: &[String]) {
        let project = &self.project;
        let pick_taskmanager = |random: &mut Random| {
            let running = project.containers("taskmanager");
            assert!(!running.is_empty(), "no task manager runs");
            // A container's host name is its id's first 12 characters.
            let hit: Vec<&String> = running.iter().filter(|c| busy.iter().any(|h| c.starts_with(h.as_str()))).collect();
            let candidates = if hit.is_empty() { running.iter().collect() } else { hit };
            candidates[random.below(candidates.len() as u64) as usize].clone()
        };
        match fault {
            Fault::KillTaskManager => {
                let victim = pick_taskmanager(random);
                project.docker(&["kill", &victim]);
                project.docker(&["rm", "-f", &victim]);
                project.compose(&["up", "-d", "--no-recreate", "--scale", "taskmanager=3", "taskmanager"]);
            }
            Fault::PauseTaskManager => {
                let victim = pick_taskmanager(random);
                project.docker(&["pause", &victim]);
                std::thread::sleep(HEARTBEAT_TIMEOUT + Duration::from_secs(3));
                project.docker(&["unpause", &victim]);
            }
            Fault::PartitionTaskManager => {
                let victim = pick_taskmanager(random);
                let alias = &victim[..12];
                project.docker(&["network", "disconnect", &project.network(), &victim]);
                std::thread::sleep(Duration::from_secs(2 + random.below(4)));
                project.docker(&["network", "connect", "--alias", alias, &project.network(), &victim]);
            }
            Fault::KillJobManager => {
                let jobmanager = project.container("jobmanager");
                project.docker(&["kill", &jobmanager]);
                std::thread::sleep(Duration::from_millis(500 + random.below(2000)));
                project.docker(&["start", &jobmanager]);
                project.wait_healthy("jobmanager", MINUTE);
            }
            Fault::PauseS3 => {
                let s3 = project.container("s3");
                project.docker(&["pause", &s3]);
                std::thread::sleep(Duration::from_secs(10));
                project.docker(&["unpause", &s3]);
            }
            Fault::StopPostgres => {
                let postgres = project.container("postgres");
                project.docker(&["stop", "-t", "1", &postgres]);
                std::thread::sleep(Duration::from_secs(5));
                project.docker(&["start", &postgres]);
                project.wait_healthy("postgres", MINUTE);
            }
        }
    }

    fn logs(&self) -> String {
        format!("{}\n{}", self.project.logs("jobmanager"), self.project.logs("taskmanager"))
    }
}

fn psql(port: u16, sql: &str) {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-d", "postgres"])
        .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
        .output()
        .expect("psql runs (apt-get install postgresql-client)");
    assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
}

/// The answer the stub LLM gives to `prompt` (its deterministic answers).
fn stub_answer(prompt: &str) -> String {
    format!("answer-{:016x}", xxhash_rust::xxh3::xxh3_64(prompt.as_bytes()))
}

#[test]
fn the_pipeline_stays_exactly_once_through_twenty_faults_in_docker() {
    if !enabled("docker") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let docker_ok = Command::new("docker").arg("info").output().is_ok_and(|o| o.status.success());
    assert!(docker_ok, "the chaos suite needs Docker and docker-compose (or SLUICE_CHAOS=off to skip it)");
    let started = Instant::now();
    let build = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/build-image.sh"))
        .args(["--binary", sluice_bin().to_str().unwrap()])
        .status()
        .unwrap();
    assert!(build.success(), "deploy/build-image.sh failed");
    report!("images ready in {:.0?}", started.elapsed());

    let (jm_port, rest_port, postgres_port) = (free_port(), free_port(), free_port());
    let project = Project::up(
        3,
        &[
            ("SLUICE_JM_PORT", jm_port),
            ("SLUICE_REST_PORT", rest_port),
            ("SLUICE_PG_PORT", postgres_port),
            ("SLUICE_S3_PORT", free_port()),
            ("SLUICE_STUB_PORT", free_port()),
        ],
    );
    let name = project.name.clone();
    project.wait_healthy("jobmanager", 2 * MINUTE);
    project.wait_healthy("postgres", MINUTE);
    project.wait_healthy("broker", MINUTE);
    let broker = Broker::at(&format!("{}.10:9092", project.subnet));
    let mut docker = Docker {
        project,
        broker,
        jobmanager: format!("127.0.0.1:{jm_port}"),
        rest: format!("127.0.0.1:{rest_port}"),
        postgres_port,
    };
    run_chaos(&mut docker);
    drop(docker);
    assert!(Project::leftovers(&name).is_empty(), "containers of {name} are left");
}

#[test]
fn the_pipeline_stays_exactly_once_through_twenty_faults_in_network_namespaces() {
    if !enabled("netns") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    assert!(root, "the namespace chaos suite needs root for ip netns (or SLUICE_CHAOS=docker to skip it)");
    let mut cluster = netns::Namespaces::start(3);
    let tag = cluster.tag();
    run_chaos(&mut cluster);
    drop(cluster);
    let left = netns::leftovers(&tag);
    assert!(left.is_empty(), "namespaces or links of {tag} are left: {left:?}");
}

/// The hosts (as task managers advertise them) of the task managers running the job's
/// tasks now. Task manager faults hit those: a fault on an idle task manager tests little,
/// and a run whose faults all missed the job would leave no aborted transaction to check.
fn busy_hosts(cli: &Cli, job: &str, rest: &str) -> Vec<String> {
    let Some(status) = cli.status(job) else { return Vec::new() };
    let ids: std::collections::HashSet<&str> =
        status["tasks"].as_array().into_iter().flatten().filter_map(|t| t["task_manager"].as_str()).collect();
    let url = format!("http://{rest}/taskmanagers");
    let Ok(out) = Command::new("curl").args(["-sS", "--max-time", "5", &url]).output() else { return Vec::new() };
    let Ok(managers) = serde_json::from_slice::<Value>(&out.stdout) else { return Vec::new() };
    managers["taskmanagers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["id"].as_str().is_some_and(|id| ids.contains(id)))
        .filter_map(|m| Some(m["path"].as_str()?.rsplit_once(':')?.0.to_string()))
        .collect()
}

/// Runs the pipeline on `backend` through 22 faults and checks its output exactly.
fn run_chaos(backend: &mut dyn Backend) {
    let seed = chaos_seed();
    report!("chaos seed: {seed} on {} (replay with SLUICE_CHAOS_SEED={seed})", backend.name());
    let mut random = Random(seed);
    let cli = Cli { jobmanager: backend.jobmanager() };
    let broker = backend.broker();
    broker.create_topic("payments", 2);
    broker.create_topic("scored", 2);
    backend.psql("CREATE TABLE users (user_id BIGINT PRIMARY KEY, segment TEXT NOT NULL)");
    backend.psql(&format!(
        "INSERT INTO users SELECT i, (ARRAY['new','loyal','casual'])[i % 3 + 1] FROM generate_series(0, {}) i",
        USERS - 1
    ));

    // Input keeps arriving while the faults happen.
    let produced = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (broker, produced, stop) = (Broker::at(&backend.broker().address), produced.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let from = produced.load(Ordering::SeqCst);
                let batch = (from..from + 40).map(|id| {
                    (Some((id % 2) as i32), json!({"id": id, "user_id": id % USERS, "amount": id % 500}).to_string())
                });
                broker.produce("payments", batch);
                produced.fetch_add(40, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    let Endpoints { kafka, jdbc, llm } = backend.endpoints();
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '2s';
        SET 'restart-strategy.type' = 'fixed-delay';
        SET 'restart-strategy.fixed-delay.attempts' = '1000';
        SET 'restart-strategy.fixed-delay.delay' = '1s';
        CREATE TABLE payments (id BIGINT, user_id BIGINT, amount INT, proc_time AS PROCTIME()) WITH (
            'connector' = 'kafka', 'topic' = 'payments', 'properties.bootstrap.servers' = '{kafka}',
            'properties.group.id' = 'chaos', 'scan.startup.mode' = 'earliest-offset', 'format' = 'json');
        CREATE TABLE users (user_id BIGINT, segment STRING, PRIMARY KEY (user_id) NOT ENFORCED) WITH (
            'connector' = 'jdbc', 'url' = '{jdbc}', 'table-name' = 'users',
            'username' = 'postgres', 'lookup.cache.max-rows' = '100', 'lookup.cache.ttl' = '2 s');
        CREATE MODEL analyst INPUT (description STRING) OUTPUT (analysis STRING) WITH (
            'provider' = 'openai', 'task' = 'chat-completion', 'base_url' = '{llm}',
            'model_name' = 'stub', 'api_key' = 'sk-chaos', 'max_concurrent_requests' = '16',
            'allow-insecure-http' = 'true');
        CREATE TABLE scored (id BIGINT, segment STRING, amount INT, analysis STRING) WITH (
            'connector' = 'kafka', 'topic' = 'scored', 'properties.bootstrap.servers' = '{kafka}',
            'format' = 'json', 'sink.delivery-guarantee' = 'exactly-once', 'sink.transactional-id-prefix' = 'scored');
        WITH enriched AS (
          SELECT p.id, u.segment, p.amount, CONCAT('payment ', CAST(p.id AS STRING), ' by a ', u.segment, ' user') AS description
          FROM payments AS p JOIN users FOR SYSTEM_TIME AS OF p.proc_time AS u ON p.user_id = u.user_id
        )
        INSERT INTO scored
        SELECT id, segment, amount, ML_PREDICT(MODEL analyst, description) AS analysis FROM enriched;"
    );
    let file = std::env::temp_dir().join(format!("sluice-chaos-{}-{seed}.sql", std::process::id()));
    std::fs::write(&file, sql).unwrap();
    let out = cli.run(&["submit", file.to_str().unwrap(), "--parallelism", "2"]);
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "submit: {}", String::from_utf8_lossy(&out.stderr));
    let job = String::from_utf8_lossy(&out.stdout).lines().last().unwrap().trim().to_string();
    cli.wait_for_progress(&job, backend);

    // Every kind of fault at least twice, then random ones, 22 in all, each at a random
    // moment, with the job making progress (a new checkpoint) between faults.
    let mut plan: Vec<Fault> = FAULTS.iter().chain(FAULTS.iter()).copied().collect();
    while plan.len() < 22 {
        plan.push(FAULTS[random.below(FAULTS.len() as u64) as usize]);
    }
    for i in (1..plan.len()).rev() {
        plan.swap(i, random.below(i as u64 + 1) as usize);
    }
    let mut counts: BTreeMap<Fault, u32> = BTreeMap::new();
    let chaos_started = Instant::now();
    for (n, fault) in plan.iter().enumerate() {
        std::thread::sleep(Duration::from_millis(500 + random.below(3000)));
        let busy = busy_hosts(&cli, &job, &backend.rest());
        report!(
            "fault {}/{}: {fault:?} at {:.0?} (the job runs on {busy:?})",
            n + 1,
            plan.len(),
            chaos_started.elapsed()
        );
        backend.inject(*fault, &mut random, &busy);
        *counts.entry(*fault).or_default() += 1;
        cli.wait_for_progress(&job, backend);
    }
    let chaos = chaos_started.elapsed();
    stop.store(true, Ordering::SeqCst);
    producer.join().unwrap();
    let total = produced.load(Ordering::SeqCst);

    // Wait for the output to hold every input id, then check it exactly.
    let broker = backend.broker();
    let deadline = Instant::now() + 4 * MINUTE;
    let rows = loop {
        let rows = broker.read_records("scored", 2);
        if rows.len() as i64 >= total || Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(Duration::from_secs(3));
    };
    let mut seen = vec![0u32; total as usize];
    for record in &rows {
        let row: Value = serde_json::from_str(record.value.as_deref().unwrap()).unwrap();
        let id = row["id"].as_i64().unwrap();
        let segment = SEGMENTS[((id % USERS) % 3) as usize];
        assert_eq!(row["segment"], segment, "{row}");
        assert_eq!(row["amount"], id % 500, "{row}");
        assert_eq!(row["analysis"], stub_answer(&format!("payment {id} by a {segment} user")), "{row}");
        seen[id as usize] += 1;
    }
    let missing = seen.iter().filter(|&&n| n == 0).count();
    let duplicated = seen.iter().filter(|&&n| n > 1).count();
    let uncommitted = broker.read_uncommitted("scored", 2).len();
    report!(
        "chaos on {}: seed {seed}, {} faults {counts:?} in {chaos:.0?}; {total} ids, {} committed, {uncommitted} \
         written with aborted ones",
        backend.name(),
        plan.len(),
        rows.len()
    );
    assert_eq!((missing, duplicated), (0, 0), "seed {seed}: ids missing or committed twice");
    assert!(uncommitted > rows.len(), "seed {seed}: the killed attempts' aborted transactions exist");
    assert!(counts.values().sum::<u32>() >= 20 && counts.len() == FAULTS.len(), "{counts:?}");
    let out = cli.run(&["cancel", &job]);
    assert!(out.status.success(), "cancel: {}", String::from_utf8_lossy(&out.stderr));
}

//! Helpers for tests that run real `sluice` processes: a jobmanager and task managers on
//! loopback ports, CLI calls, and status polling.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod broker;
pub mod postgres;
pub mod s3;
pub mod stub;
pub mod transactions;

/// The last `lines` lines of every `.log` file in `dir`, each under its name.
pub fn log_tails(dir: &Path, lines: usize) -> String {
    let mut out = String::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir).map(|d| d.flatten().collect()).unwrap_or_default();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if entry.path().extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(lines).collect();
            out.push_str(&format!("--- {} ---\n", entry.file_name().to_string_lossy()));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Path of the `sluice` binary under test.
pub fn sluice_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sluice"))
}

/// True when something listens on `address`. A connection to a free port in the
/// ephemeral range can connect to itself (TCP simultaneous open, when the kernel picks that
/// same port as the source), which a plain `connect` would take for a listener.
pub fn listening(address: &str) -> bool {
    std::net::TcpStream::connect(address).is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
}

/// Lowest port [`free_port`] hands out.
const FIRST_TEST_PORT: u32 = 10_000;

/// A free port for a server that a test starts, handed out once per test process.
///
/// A port the kernel picked with `bind(0)` is in the ephemeral range, where any outgoing
/// connection (a task manager's, a Kafka client's, a readiness probe's) may take it as its
/// source port between this call and the server's own bind, which then fails with "Address
/// already in use". So ports come from below the ephemeral range, where the kernel never
/// picks a source port, and each test process starts at its own place (from its pid) in
/// that stretch, so test binaries run side by side rarely meet.
pub fn free_port() -> u16 {
    static HANDED_OUT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let span = ephemeral_low.saturating_sub(FIRST_TEST_PORT);
    if span < 1_000 {
        return TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    }
    let start = std::process::id().wrapping_mul(7_919) % span;
    loop {
        let n = HANDED_OUT.fetch_add(1, Ordering::Relaxed);
        assert!(n < span, "no free port left below the ephemeral range ({FIRST_TEST_PORT}..{ephemeral_low})");
        let port = (FIRST_TEST_PORT + (start + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() && TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
}

/// A process killed when dropped.
pub struct Process {
    pub child: Child,
    pub name: String,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in MiB, from /proc.
    pub fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A jobmanager and task managers as separate processes.
pub struct Cluster {
    pub jobmanager: Process,
    pub taskmanagers: Vec<Process>,
    pub address: String,
    /// The REST API's address, HOST:PORT.
    pub rest: String,
    pub dir: tempfile::TempDir,
    /// Environment of every process and CLI call of the cluster (e.g. `SLUICE_AUTH_TOKEN`).
    pub env: Vec<(String, String)>,
    /// Environment of every task manager started by `add_taskmanager` (test switches such
    /// as `SLUICE_TEST_SOURCE_PACE`), including those that replace killed ones.
    pub taskmanager_env: Vec<(String, String)>,
    /// The jobmanager's arguments (`{dir}` replaced), for restarts.
    jm_args: Vec<String>,
    /// Jobmanagers started so far.
    jm_starts: usize,
}

/// Starts `sluice jobmanager` on `address` and `rest` with `args`, logging to `log`.
fn spawn_jobmanager(address: &str, rest: &str, args: &[String], env: &[(String, String)], log: &Path) -> Process {
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(sluice_bin())
        .args(["jobmanager", "--rpc-address", address, "--rest-address", rest])
        .args(args)
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Process { child, name: "jobmanager".into() }
}

impl Cluster {
    /// Starts a jobmanager with `jm_args` (`{dir}` in them stands for the cluster's
    /// directory) and one task manager per entry of `slots`.
    pub fn start(slots: &[u32], jm_args: &[&str]) -> Cluster {
        Cluster::start_with_env(slots, jm_args, &[])
    }

    /// Like [`Cluster::start`], with `env` set for every process and CLI call.
    pub fn start_with_env(slots: &[u32], jm_args: &[&str], env: &[(&str, &str)]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let jm_args: Vec<String> = jm_args.iter().map(|a| a.replace("{dir}", dir.path().to_str().unwrap())).collect();
        let address = format!("127.0.0.1:{}", free_port());
        let rest = format!("127.0.0.1:{}", free_port());
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let jobmanager = spawn_jobmanager(&address, &rest, &jm_args, &env, &dir.path().join("jobmanager.log"));
        let mut cluster = Cluster {
            jobmanager,
            taskmanagers: Vec::new(),
            address,
            rest,
            dir,
            env,
            taskmanager_env: Vec::new(),
            jm_args,
            jm_starts: 1,
        };
        cluster.wait_for_jobmanager();
        for &s in slots {
            cluster.add_taskmanager(s);
        }
        cluster
    }

    /// Waits until the jobmanager accepts connections, so the next CLI call finds it.
    fn wait_for_jobmanager(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !listening(&self.address) {
            assert!(Instant::now() < deadline, "the jobmanager did not start:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the jobmanager with SIGKILL and starts a new one with the same arguments at
    /// the same addresses (its log is `jobmanager-N.log`).
    pub fn restart_jobmanager(&mut self) {
        self.jobmanager.kill9();
        self.jm_starts += 1;
        let log = self.dir.path().join(format!("jobmanager-{}.log", self.jm_starts));
        self.jobmanager = spawn_jobmanager(&self.address, &self.rest, &self.jm_args, &self.env, &log);
        self.wait_for_jobmanager();
    }

    /// Waits until every task manager has exited (a fault switch ended them), then forgets
    /// them.
    pub fn wait_until_task_managers_exit(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.taskmanagers.iter_mut().any(|t| t.child.try_wait().unwrap().is_none()) {
            assert!(
                Instant::now() < deadline,
                "the task managers did not exit (the fault switch did not fire):\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.taskmanagers.clear();
    }

    /// Starts one more task manager (with `taskmanager_env`).
    pub fn add_taskmanager(&mut self, slots: u32) {
        let env = self.taskmanager_env.clone();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.add_taskmanager_with_env(slots, &env);
    }

    /// Starts one more task manager with extra environment variables (test fault switches).
    pub fn add_taskmanager_with_env(&mut self, slots: u32, env: &[(&str, &str)]) {
        let n = self.taskmanagers.len() + 1;
        let log = std::fs::File::create(self.dir.path().join(format!("taskmanager-{n}.log"))).unwrap();
        let child = Command::new(sluice_bin())
            .args([
                "taskmanager",
                "--jobmanager",
                &self.address,
                "--slots",
                &slots.to_string(),
                "--bind",
                "127.0.0.1:0",
            ])
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.taskmanagers.push(Process { child, name: format!("taskmanager-{n}") });
    }

    /// Kills a random task manager with SIGKILL up to `kills` times, starting a new one of
    /// `slots` slots each time. Before each kill the job must complete a checkpoint (so every
    /// attempt makes progress); the kill then comes after a random pause of up to
    /// `max_pause`, so it lands anywhere in the checkpoint cycle: while rows flow, during a
    /// barrier's alignment, an asynchronous state upload or a sink's commit. The seed is
    /// printed, and `SLUICE_CHAOS_SEED` replays a run. Stops early when the job finishes;
    /// returns the kills made.
    pub fn kill_task_managers_while_running(
        &mut self,
        job: &str,
        kills: usize,
        slots: u32,
        max_pause: Duration,
    ) -> usize {
        let completed = |status: &Value| status["checkpoints"]["completed"].as_u64().unwrap_or(0);
        let seed = std::env::var("SLUICE_CHAOS_SEED").ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
            u64::from(nanos) ^ (u64::from(std::process::id()) << 32) | 1
        });
        eprintln!("chaos seed: {seed} (replay with SLUICE_CHAOS_SEED={seed})");
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for done in 0..kills {
            let before = completed(&self.status(job));
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let status = self.status(job);
                assert!(status["state"] != "FAILED", "chaos seed {seed}: {status:#}\n{}", self.logs());
                if status["state"] == "FINISHED" {
                    return done;
                }
                if status["state"] == "RUNNING" && completed(&status) > before {
                    break;
                }
                assert!(Instant::now() < deadline, "chaos seed {seed}: no progress: {status:#}\n{}", self.logs());
                std::thread::sleep(Duration::from_millis(100));
            }
            std::thread::sleep(Duration::from_millis(next() % (max_pause.as_millis() as u64 + 1)));
            let victim = (next() % self.taskmanagers.len() as u64) as usize;
            self.taskmanagers[victim].kill9();
            self.taskmanagers.remove(victim);
            self.add_taskmanager(slots);
        }
        kills
    }

    /// Runs a CLI command against this cluster.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(sluice_bin())
            .args(args)
            .args(["--jobmanager", &self.address])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    }

    /// A REST call with curl: `method` on `path` with an optional JSON body and extra
    /// headers; returns the HTTP status and the body.
    pub fn http(&self, method: &str, path: &str, body: Option<&str>, headers: &[&str]) -> (u16, String) {
        let url = format!("http://{}{path}", self.rest);
        let mut command = Command::new("curl");
        command.args(["-sS", "-X", method, "-o", "-", "-w", "\n%{http_code}", &url]);
        for header in headers {
            command.args(["-H", header]);
        }
        if let Some(body) = body {
            command.args(["-H", "Content-Type: application/json", "--data-binary", body]);
        }
        let out = command.output().expect("curl runs");
        assert!(out.status.success(), "curl {method} {url}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.trim().parse().unwrap(), body.to_string())
    }

    /// `GET path` answered 200 with JSON (with the cluster's token when it has one).
    pub fn get(&self, path: &str) -> Value {
        let token =
            self.env.iter().find(|(k, _)| k == "SLUICE_AUTH_TOKEN").map(|(_, v)| format!("Authorization: Bearer {v}"));
        let headers: Vec<&str> = token.iter().map(|t| t.as_str()).collect();
        let (code, body) = self.http("GET", path, None, &headers);
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// Writes `sql` to a file and submits it; returns the job id.
    pub fn submit(&self, sql: &str, parallelism: u32) -> String {
        let file = self.dir.path().join(format!("job-{}.sql", free_port()));
        std::fs::write(&file, sql).unwrap();
        let out = self.cli(&["submit", file.to_str().unwrap(), "--parallelism", &parallelism.to_string()]);
        assert!(out.status.success(), "submit failed: {}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8(out.stdout).unwrap();
        stdout.lines().last().expect("submit prints the job id").trim().to_string()
    }

    /// `sluice status JOB --json`.
    pub fn status(&self, job: &str) -> Value {
        let out = self.cli(&["status", job, "--json"]);
        assert!(out.status.success(), "status failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Polls until the job reaches one of `states`; panics with the logs after `timeout`.
    /// Waiting for RUNNING or FINISHED alone is `sluice wait`'s.
    pub fn wait_for(&self, job: &str, states: &[&str], timeout: Duration) -> Value {
        if let [state @ ("RUNNING" | "FINISHED")] = states {
            let seconds = format!("{}s", timeout.as_secs().max(1));
            let out = self.cli(&["wait", job, "--for", &state.to_lowercase(), "--timeout", &seconds]);
            let status = self.status(job);
            if !out.status.success() {
                panic!(
                    "job {job} did not reach {state} within {timeout:?}: {}{status:#}\n{}",
                    String::from_utf8_lossy(&out.stderr),
                    self.logs()
                );
            }
            return status;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status(job);
            if states.contains(&status["state"].as_str().unwrap_or_default()) {
                return status;
            }
            if Instant::now() > deadline {
                panic!("job {job} did not reach {states:?} within {timeout:?}: {status:#}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The processes' logs, for failure messages.
    pub fn logs(&self) -> String {
        log_tails(self.dir.path(), 30)
    }
}

/// Sums a task metric over the tasks of vertices whose name contains `vertex`.
pub fn metric(status: &Value, vertex: &str, key: &str) -> u64 {
    status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["vertex"].as_str().unwrap_or_default().contains(vertex))
        .map(|t| t[key].as_u64().unwrap_or(0))
        .sum()
}

/// Reads every visible (committed) JSON line under `dir`.
pub fn read_json_lines(dir: &Path) -> Vec<Value> {
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
            rows.push(serde_json::from_str(line).unwrap());
        }
    }
    rows
}

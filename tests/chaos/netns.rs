//! The chaos suite's cluster without Docker: the jobmanager and each task manager run as
//! processes in network namespaces of their own (`ip netns`), each linked by a veth pair
//! to a bridge; the broker, PostgreSQL, the S3 server and the stub LLM run on the host,
//! bound to the bridge's address. Faults are signals (`SIGKILL`, `SIGSTOP`/`SIGCONT`),
//! `pg_ctl stop`, and iptables rules inside a task manager's namespace that drop all its
//! traffic (a partition). Needs root (CAP_NET_ADMIN); everything is removed when dropped.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::common::broker::Broker;
use super::common::postgres::Postgres;
use super::common::s3::S3Server;
use super::common::stub::Stub;
use super::common::{sluice_bin, Process};
use super::{Backend, Endpoints, Fault, Random, HEARTBEAT_TIMEOUT};

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip (iproute2) runs");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill").args([signal, &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

/// A network namespace with one process in it.
struct Node {
    namespace: String,
    /// Its address on the bridge (for a task manager, the host it advertises).
    address: String,
    process: Process,
}

/// The bridge and the /24 the namespaces share; `tag` prefixes every name.
struct Network {
    tag: String,
    bridge: String,
    subnet: String,
}

impl Network {
    fn create() -> Network {
        let pid = std::process::id() % 100_000;
        let tag = format!("sl{pid}");
        let bridge = format!("{tag}br");
        let subnet = format!("10.214.{}", pid % 250 + 1);
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&["addr", "add", &format!("{subnet}.1/24"), "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        // Docker sets the FORWARD policy to DROP, which bridged traffic meets too.
        let _ = Command::new("iptables").args(["-I", "FORWARD", "-i", &bridge, "-o", &bridge, "-j", "ACCEPT"]).status();
        Network { tag, bridge, subnet }
    }

    /// The host's address on the bridge.
    fn host(&self) -> String {
        format!("{}.1", self.subnet)
    }

    /// Namespace `n` linked to the bridge at address `.n`; returns its name and address.
    fn add_namespace(&self, n: u32) -> (String, String) {
        let namespace = format!("{}n{n}", self.tag);
        let (outside, inside) = (format!("{}v{n}", self.tag), format!("{}p{n}", self.tag));
        ip(&["netns", "add", &namespace]);
        ip(&["link", "add", &outside, "type", "veth", "peer", "name", &inside]);
        ip(&["link", "set", &inside, "netns", &namespace]);
        ip(&["link", "set", &outside, "master", &self.bridge, "up"]);
        let address = format!("{}.{n}", self.subnet);
        ip(&["netns", "exec", &namespace, "ip", "addr", "add", &format!("{address}/24"), "dev", &inside]);
        ip(&["netns", "exec", &namespace, "ip", "link", "set", &inside, "up"]);
        ip(&["netns", "exec", &namespace, "ip", "link", "set", "lo", "up"]);
        (namespace, address)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let bridge = &self.bridge;
        let _ = Command::new("iptables").args(["-D", "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"]).status();
        let _ = Command::new("ip").args(["link", "del", bridge]).status();
    }
}

/// The cluster in namespaces. Fields drop in order: processes, then the host services,
/// then the network.
pub struct Namespaces {
    /// The jobmanager (its namespace keeps its address across restarts).
    jobmanager: Node,
    taskmanagers: Vec<Node>,
    jobmanager_starts: u32,
    next_node: u32,
    broker: Broker,
    postgres: Postgres,
    s3: S3Server,
    stub: Stub,
    dir: tempfile::TempDir,
    network: Network,
}

/// Runs `sluice ARGS` in `namespace`, with the S3 settings, logging to `dir/log`.
fn spawn(dir: &std::path::Path, s3: &S3Server, namespace: &str, log: &str, args: &[&str]) -> Process {
    let log = std::fs::File::create(dir.join(log)).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", namespace])
        .arg(sluice_bin())
        .args(args)
        .env("RUST_LOG", "info")
        .envs(s3.env())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Process { child, name: namespace.to_string() }
}

/// Starts the jobmanager at `address` in `namespace` and waits until it listens.
fn spawn_jobmanager(dir: &std::path::Path, s3: &S3Server, namespace: &str, address: &str, start: u32) -> Process {
    let (rpc, rest) = (format!("{address}:6123"), format!("{address}:8081"));
    let args = [
        "jobmanager",
        "--rpc-address",
        &rpc,
        "--rest-address",
        &rest,
        "--checkpoint-dir",
        "s3://sluice/checkpoints",
        "--heartbeat-timeout",
        "6s",
    ];
    let process = spawn(dir, s3, namespace, &format!("jobmanager-{start}.log"), &args);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !super::common::listening(&rpc) {
        assert!(std::time::Instant::now() < deadline, "the jobmanager in {namespace} did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    process
}

impl Namespaces {
    /// Creates the bridge, starts the host services on it, the jobmanager and
    /// `taskmanagers` task managers in their namespaces.
    pub fn start(taskmanagers: usize) -> Namespaces {
        let network = Network::create();
        let host = network.host();
        let broker = Broker::start_on(&host);
        let postgres = Postgres::start_on(Some(&host));
        let s3 = S3Server::start_on(&host);
        let listen = format!("{host}:0");
        let stub = Stub::start(&[
            "--listen",
            &listen,
            "--latency",
            "uniform:20ms..80ms",
            "--faults",
            "429=0.02",
            "--retry-after",
            "1",
        ]);
        let dir = tempfile::tempdir().unwrap();
        let (namespace, address) = network.add_namespace(2);
        let process = spawn_jobmanager(dir.path(), &s3, &namespace, &address, 1);
        let mut cluster = Namespaces {
            jobmanager: Node { namespace, address, process },
            taskmanagers: Vec::new(),
            jobmanager_starts: 1,
            next_node: 3,
            broker,
            postgres,
            s3,
            stub,
            dir,
            network,
        };
        for _ in 0..taskmanagers {
            cluster.add_taskmanager();
        }
        cluster
    }

    /// The prefix of every name the cluster gives namespaces, links and the bridge.
    pub fn tag(&self) -> String {
        self.network.tag.clone()
    }

    fn add_taskmanager(&mut self) {
        let (namespace, address) = self.network.add_namespace(self.next_node);
        self.next_node += 1;
        let jobmanager = format!("{}:6123", self.jobmanager.address);
        let bind = format!("{address}:6121");
        let log = format!("taskmanager-{namespace}.log");
        let args = ["taskmanager", "--jobmanager", &jobmanager, "--slots", "2", "--bind", &bind];
        let process = spawn(self.dir.path(), &self.s3, &namespace, &log, &args);
        self.taskmanagers.push(Node { namespace, address, process });
    }

    fn remove_namespace(namespace: &str) {
        let _ = Command::new("ip").args(["netns", "del", namespace]).status();
    }
}

impl Backend for Namespaces {
    fn name(&self) -> String {
        format!("network namespaces {}", self.network.tag)
    }

    fn jobmanager(&self) -> String {
        format!("{}:6123", self.jobmanager.address)
    }

    fn endpoints(&self) -> Endpoints {
        Endpoints {
            kafka: self.broker.address.clone(),
            jdbc: format!("jdbc:postgresql://{}:{}/postgres", self.network.host(), self.postgres.port),
            llm: format!("{}/v1", self.stub.url),
        }
    }

    fn broker(&self) -> &Broker {
        &self.broker
    }

    fn psql(&self, sql: &str) {
        self.postgres.psql(sql);
    }

    fn rest(&self) -> String {
        format!("{}:8081", self.jobmanager.address)
    }

    fn inject(&mut self, fault: Fault, random: &mut Random, busy: &[String]) {
        let hit: Vec<usize> =
            (0..self.taskmanagers.len()).filter(|&i| busy.contains(&self.taskmanagers[i].address)).collect();
        let candidates: Vec<usize> = if hit.is_empty() { (0..self.taskmanagers.len()).collect() } else { hit };
        let victim = candidates[random.below(candidates.len() as u64) as usize];
        match fault {
            Fault::KillTaskManager => {
                let mut node = self.taskmanagers.remove(victim);
                node.process.kill9();
                Namespaces::remove_namespace(&node.namespace);
                self.add_taskmanager();
            }
            Fault::PauseTaskManager => {
                let pid = self.taskmanagers[victim].process.pid();
                signal(pid, "-STOP");
                std::thread::sleep(HEARTBEAT_TIMEOUT + Duration::from_secs(3));
                signal(pid, "-CONT");
            }
            Fault::PartitionTaskManager => {
                let namespace = self.taskmanagers[victim].namespace.clone();
                let rules = |action: &str| {
                    for (chain, interface) in [("INPUT", "-i"), ("OUTPUT", "-o")] {
                        let status = Command::new("ip")
                            .args([
                                "netns", "exec", &namespace, "iptables", action, chain, "!", interface, "lo", "-j",
                                "DROP",
                            ])
                            .status()
                            .unwrap();
                        assert!(status.success(), "iptables {action} {chain} in {namespace}");
                    }
                };
                rules("-I");
                std::thread::sleep(Duration::from_secs(2 + random.below(4)));
                rules("-D");
            }
            Fault::KillJobManager => {
                self.jobmanager.process.kill9();
                std::thread::sleep(Duration::from_millis(500 + random.below(2000)));
                self.jobmanager_starts += 1;
                let (namespace, address) = (&self.jobmanager.namespace, &self.jobmanager.address);
                let process = spawn_jobmanager(self.dir.path(), &self.s3, namespace, address, self.jobmanager_starts);
                self.jobmanager.process = process;
            }
            Fault::PauseS3 => {
                signal(self.s3.pid(), "-STOP");
                std::thread::sleep(Duration::from_secs(10));
                signal(self.s3.pid(), "-CONT");
            }
            Fault::StopPostgres => {
                self.postgres.stop_server();
                std::thread::sleep(Duration::from_secs(5));
                self.postgres.start_server();
            }
        }
    }

    fn logs(&self) -> String {
        super::common::log_tails(self.dir.path(), 20)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        self.jobmanager.process.kill9();
        for node in &mut self.taskmanagers {
            node.process.kill9();
        }
        let nodes = std::iter::once(&self.jobmanager).chain(&self.taskmanagers);
        for node in nodes {
            Namespaces::remove_namespace(&node.namespace);
        }
    }
}

/// Namespaces, links and the bridge of tag `tag` still on the machine.
pub fn leftovers(tag: &str) -> Vec<String> {
    let namespaces = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let links = Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
    String::from_utf8_lossy(&namespaces.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&links.stdout).lines())
        .filter(|l| l.contains(tag))
        .map(str::to_string)
        .collect()
}

//! A Compose project of `deploy/docker-compose.yml` on its own network and free ports,
//! driven with `docker-compose` and `docker`; taken down (volumes too) when dropped.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A running project.
pub struct Project {
    /// Compose project name (also the containers' label).
    pub name: String,
    /// The first three octets of the project's /24 network.
    pub subnet: String,
    /// Ports published on the host's loopback, by variable name.
    env: Vec<(String, String)>,
}

fn run(command: &mut Command) -> Output {
    let out = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn docker(args: &[&str]) -> String {
    String::from_utf8_lossy(&run(Command::new("docker").args(args)).stdout).trim().to_string()
}

impl Project {
    /// Starts the project with `taskmanagers` task managers; `ports` are published.
    pub fn up(taskmanagers: usize, ports: &[(&str, u16)]) -> Project {
        let pid = std::process::id();
        let name = format!("sluicechaos{pid}");
        // A /24 in 10.213.0.0/16 that no other network of this machine uses.
        let networks = docker(&["network", "ls", "-q"]);
        let mut inspect = vec!["network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"];
        inspect.extend(networks.lines());
        let used = docker(&inspect);
        let subnet = (0..250u32)
            .map(|i| format!("10.213.{}", (pid + i) % 250 + 1))
            .find(|s| !used.contains(&format!("{s}.0/")))
            .expect("a free /24 for the project's network");
        let mut env: Vec<(String, String)> = ports.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        env.push(("SLUICE_SUBNET".into(), subnet.clone()));
        let project = Project { name, subnet, env };
        project.compose(&["up", "-d", "--scale", &format!("taskmanager={taskmanagers}")]);
        project
    }

    fn compose_command(&self, args: &[&str]) -> Command {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/docker-compose.yml");
        let mut command = Command::new("docker-compose");
        command.args(["-f", file, "-p", &self.name, "--no-ansi"]).args(args);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Runs `docker-compose ARGS` for the project.
    pub fn compose(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&run(&mut self.compose_command(args)).stdout).trim().to_string()
    }

    /// The ids of the running containers of `service`.
    pub fn containers(&self, service: &str) -> Vec<String> {
        docker(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.name),
            "--filter",
            &format!("label=com.docker.compose.service={service}"),
        ])
        .lines()
        .map(str::to_string)
        .collect()
    }

    /// The one container of `service`, running or not.
    pub fn container(&self, service: &str) -> String {
        let ids = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.name),
            "--filter",
            &format!("label=com.docker.compose.service={service}"),
        ]);
        ids.lines().next().unwrap_or_else(|| panic!("no {service} container")).to_string()
    }

    /// The project's network.
    pub fn network(&self) -> String {
        format!("{}_default", self.name)
    }

    /// Runs `docker ARGS`.
    pub fn docker(&self, args: &[&str]) -> String {
        docker(args)
    }

    /// Waits until `service`'s container reports healthy.
    pub fn wait_healthy(&self, service: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let id = self.container(service);
            let health = docker(&["inspect", "-f", "{{.State.Health.Status}}", &id]);
            if health == "healthy" {
                return;
            }
            assert!(Instant::now() < deadline, "{service} is not healthy ({health}):\n{}", self.logs(service));
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The last lines of `service`'s logs.
    pub fn logs(&self, service: &str) -> String {
        let out = self.compose_command(&["logs", "--tail", "40", service]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Containers of the project left on the machine (any state).
    pub fn leftovers(name: &str) -> Vec<String> {
        docker(&["ps", "-aq", "--filter", &format!("label=com.docker.compose.project={name}")])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Takes the project down: containers, network and volumes.
    pub fn down(&self) {
        let _ = self.compose_command(&["down", "-v", "--remove-orphans", "-t", "2"]).output();
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        self.down();
    }
}

//! A real PostgreSQL server (Debian's `postgresql`, installed by `scripts/bootstrap.sh`)
//! for tests: each test initializes its own cluster in a temporary directory and runs it on
//! its own port, with `pg_stat_statements` loaded so that a test can count the statements
//! the server received. PostgreSQL refuses to run as root, so as root the server runs as
//! the `postgres` user. Dropping it stops the server.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::free_port;

/// A PostgreSQL server of one test.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The addresses it listens on: 127.0.0.1, and maybe one more.
    listen: String,
}

/// The directory of PostgreSQL's server programs (`initdb`, `pg_ctl`).
fn server_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: run `bash scripts/bootstrap.sh` (apt-get install postgresql)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop().expect("no PostgreSQL server programs under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Postgres {
    /// Initializes a cluster in a new temporary directory and starts it on a free port.
    pub fn start() -> Postgres {
        Postgres::start_on(None)
    }

    /// Like [`Postgres::start`], also listening on `host` and trusting its /24.
    pub fn start_on(host: Option<&str>) -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        let listen = host.map_or("127.0.0.1".to_string(), |h| format!("127.0.0.1,{h}"));
        let postgres = Postgres { bin: server_bin(), port: free_port(), dir, listen };
        if is_root() {
            let status =
                Command::new("chown").args(["-R", "postgres:postgres"]).arg(postgres.dir.path()).status().unwrap();
            assert!(status.success(), "cannot hand the data directory to the postgres user");
        }
        let data = postgres.data();
        let out = postgres.server_command("initdb", &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8"]);
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        if let Some(host) = host {
            use std::io::Write;
            let subnet = host.rsplit_once('.').map_or(host.to_string(), |(net, _)| format!("{net}.0/24"));
            let hba = std::path::Path::new(&data).join("pg_hba.conf");
            let mut file = std::fs::OpenOptions::new().append(true).open(hba).unwrap();
            writeln!(file, "host all all {subnet} trust").unwrap();
        }
        postgres.start_server();
        postgres.psql("CREATE EXTENSION pg_stat_statements");
        postgres
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_str().unwrap().to_string()
    }

    /// Runs a server program, as the `postgres` user when this is root.
    fn server_command(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command.args(args).current_dir(self.dir.path()).output().unwrap()
    }

    /// Starts the (stopped) server and waits until it accepts connections.
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses={} -c shared_preload_libraries=pg_stat_statements \
             -c fsync=off -c max_connections=50",
            self.port,
            self.dir.path().display(),
            self.listen
        );
        let log = self.dir.path().join("server.log");
        let out = self.server_command(
            "pg_ctl",
            &["-D", &self.data(), "-o", &options, "-l", log.to_str().unwrap(), "-w", "start"],
        );
        assert!(out.status.success(), "pg_ctl start failed: {}{}", String::from_utf8_lossy(&out.stdout), self.log());
        let deadline = Instant::now() + Duration::from_secs(30);
        while !super::listening(&format!("127.0.0.1:{}", self.port)) {
            assert!(Instant::now() < deadline, "PostgreSQL did not listen on {}:\n{}", self.port, self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server at once (`pg_ctl stop -m fast`: clients are disconnected).
    pub fn stop_server(&self) {
        let out = self.server_command("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
        assert!(out.status.success(), "pg_ctl stop failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The `url` option of a jdbc table in this server's `postgres` database.
    pub fn url(&self) -> String {
        format!("jdbc:postgresql://127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `sql` with psql and returns its unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres"])
            .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .output()
            .expect("psql is not installed (apt-get install postgresql-client)");
        assert!(out.status.success(), "psql failed on {sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// The rows the server returned to statements whose text contains `fragment`, and how
    /// many times they ran (from `pg_stat_statements`).
    pub fn statement_stats(&self, fragment: &str) -> (u64, u64) {
        let out = self.psql(&format!(
            "SELECT coalesce(sum(rows), 0), coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE '%{}%'",
            fragment.replace('\'', "''")
        ));
        let (rows, calls) = out.trim().split_once('|').unwrap();
        (rows.parse().unwrap(), calls.parse().unwrap())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.server_command("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }
}

//! `sluice`: the one command-line tool of Sluice. It runs the cluster processes
//! (`jobmanager`, `taskmanager`), talks to a running cluster (`submit`, `list`, `status`,
//! `cancel`), and runs or explains SQL files locally (`run`, `explain`).

mod commands;
mod config;
mod stub_llm;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// SQL-first machine-learning inference on streams.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text for people, or as JSON objects (one per line) for machines.
    #[arg(long, global = true, env = "SLUICE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// The cluster's shared token: required on every gRPC call and REST request the
    /// cluster processes serve, and sent by every command that talks to a cluster.
    #[arg(long, global = true, env = "SLUICE_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    /// A file holding the cluster's token (instead of --auth-token).
    #[arg(long, global = true, env = "SLUICE_AUTH_TOKEN_FILE", conflicts_with = "auth_token")]
    auth_token_file: Option<PathBuf>,
}

impl Cli {
    /// The cluster's token, from --auth-token, $SLUICE_AUTH_TOKEN or --auth-token-file.
    fn token(&self) -> anyhow::Result<Option<sluice_proto::auth::Token>> {
        if let Some(path) = &self.auth_token_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read the auth token file '{}': {e}", path.display()))?;
            let token = sluice_proto::auth::Token::new(&text);
            anyhow::ensure!(token.is_some(), "the auth token file '{}' is empty", path.display());
            return Ok(token);
        }
        Ok(self.auth_token.as_deref().and_then(sluice_proto::auth::Token::new))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the jobmanager: it accepts jobs and schedules them onto task managers.
    Jobmanager(JobManagerArgs),
    /// Run a task manager: it offers task slots to a jobmanager and runs tasks.
    Taskmanager(TaskManagerArgs),
    /// Submit a SQL file to a running cluster; prints the job id on the last line.
    Submit(SubmitArgs),
    /// List the jobs of a cluster.
    List(ClusterArgs),
    /// Show a job's state (CREATED, RUNNING, RESTARTING, FINISHED, FAILED, CANCELED).
    Status(StatusArgs),
    /// Wait until a job is running, has finished, or has completed N checkpoints
    /// (`--for running|finished|checkpoints=N`); exits 1 with the reason otherwise.
    Wait(WaitArgs),
    /// A live view of a running job: rows per second, busy, idle and backpressured time
    /// per vertex, and its models; redrawn until the job ends.
    Top(TopArgs),
    /// Cancel a job.
    Cancel(JobArgs),
    /// Take a savepoint of a running job (with --stop, then stop it); prints its path.
    Savepoint(SavepointArgs),
    /// Run a SQL file on an embedded mini-cluster until its bounded sources finish.
    Run(RunArgs),
    /// Show the plan of a SQL file: vertices, parallelism, chaining and partitioning.
    Explain(ExplainArgs),
    /// An interactive SQL shell (against --jobmanager, or an embedded cluster).
    Sql(ShellArgs),
    /// A stand-in for the OpenAI and Anthropic APIs with latency and failure injection,
    /// for tests, benchmarks and demos.
    StubLlm(stub_llm::StubArgs),
    /// A health check: `tcp://HOST:PORT` (something listens) or `http://HOST:PORT/PATH`
    /// (a GET answers 2xx); exits 0 when healthy.
    Probe(ProbeArgs),
    /// The Nexmark benchmark's events (`sluice nexmark generate`).
    #[command(subcommand)]
    Nexmark(NexmarkCommand),
}

/// `sluice probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// What to check: tcp://HOST:PORT or http://HOST:PORT/PATH.
    pub target: String,
    /// Fail when there is no answer within this long.
    #[arg(long, default_value = "3s")]
    pub timeout: String,
}

/// `sluice nexmark`.
#[derive(Debug, Subcommand)]
pub enum NexmarkCommand {
    /// Write the events a `nexmark` table with the same options produces, as JSON lines in
    /// the layout of Flink's Nexmark event table.
    Generate(NexmarkGenerateArgs),
}

/// `sluice nexmark generate`.
#[derive(Debug, Args)]
pub struct NexmarkGenerateArgs {
    /// How many events (all kinds together), as the table's `events.num`.
    #[arg(long)]
    pub events: u64,
    /// The directory to write `events-NNN.json` into.
    #[arg(long)]
    pub out: PathBuf,
    /// Files to spread the events over (event n goes to file n % files).
    #[arg(long, default_value_t = 1)]
    pub files: u32,
    /// A nexmark table option, KEY=VALUE (e.g. first-event.rate=1000000); repeatable.
    #[arg(long = "option", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
}

/// `sluice sql`.
#[derive(Debug, Args)]
pub struct ShellArgs {
    /// Submit jobs to this jobmanager instead of an embedded cluster.
    #[arg(long, env = "SLUICE_JOBMANAGER")]
    pub jobmanager: Option<String>,
    /// Default parallelism of the jobs' operators.
    #[arg(long, short)]
    pub parallelism: Option<u32>,
}

/// `sluice jobmanager`.
#[derive(Debug, Args)]
pub struct JobManagerArgs {
    /// Address to serve RPCs on, HOST:PORT.
    #[arg(long, env = "SLUICE_RPC_ADDRESS")]
    pub rpc_address: Option<String>,
    /// Checkpoint storage: a directory every process shares (a path or file:// URI), or
    /// S3-compatible storage (s3://bucket/prefix; see the --s3-* settings).
    #[arg(long, env = "SLUICE_CHECKPOINT_DIR")]
    pub checkpoint_dir: Option<String>,
    #[command(flatten)]
    pub s3: S3Args,
    /// Where jobs are kept so that a restarted jobmanager recovers them from their latest
    /// checkpoints (a shared directory or s3:// URL); default: `_jobmanager` in the
    /// checkpoint storage; `off` keeps none.
    #[arg(long, env = "SLUICE_HA_STORAGE_DIR")]
    pub ha_storage_dir: Option<String>,
    /// Configuration file (TOML).
    #[arg(long, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// How often task managers heartbeat, e.g. "1 s".
    #[arg(long, env = "SLUICE_HEARTBEAT_INTERVAL")]
    pub heartbeat_interval: Option<String>,
    /// A task manager silent this long is declared lost, e.g. "5 s".
    #[arg(long, env = "SLUICE_HEARTBEAT_TIMEOUT")]
    pub heartbeat_timeout: Option<String>,
    /// How long a job waits for free slots before failing, e.g. "5 min".
    #[arg(long, env = "SLUICE_SLOT_REQUEST_TIMEOUT")]
    pub slot_request_timeout: Option<String>,
    /// Address of the REST API, Prometheus metrics and dashboard, HOST:PORT (default
    /// 127.0.0.1:8081, loopback only); `off` serves none.
    #[arg(long, env = "SLUICE_REST_ADDRESS")]
    pub rest_address: Option<String>,
}

/// `sluice taskmanager`.
#[derive(Debug, Args)]
pub struct TaskManagerArgs {
    /// The jobmanager's RPC address, HOST:PORT.
    #[arg(long, env = "SLUICE_JOBMANAGER")]
    pub jobmanager: Option<String>,
    /// Number of task slots to offer.
    #[arg(long, env = "SLUICE_SLOTS")]
    pub slots: Option<u32>,
    /// Address to listen on for tasks and data, HOST:PORT (port 0 picks one).
    #[arg(long, env = "SLUICE_BIND")]
    pub bind: Option<String>,
    /// Host name other processes use to reach this one (default: the bind IP, or the
    /// machine's host name when bound to 0.0.0.0).
    #[arg(long, env = "SLUICE_ADVERTISE_HOST")]
    pub advertise_host: Option<String>,
    /// File of `NAME=value` lines resolving `{{ secret.NAME }}` in model options (after
    /// the `SLUICE_SECRET_<NAME>` environment variables).
    #[arg(long, env = "SLUICE_SECRETS_FILE")]
    pub secrets_file: Option<PathBuf>,
    /// Local directory for keyed state (RocksDB); default: a temporary directory.
    #[arg(long, env = "SLUICE_LOCAL_DIR")]
    pub local_dir: Option<PathBuf>,
    /// Configuration file (TOML).
    #[arg(long, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub s3: S3Args,
}

/// Settings of S3-compatible checkpoint storage, Flink's `s3.*` options (also the `[s3]`
/// section of the configuration file). Unset ones come from the AWS environment variables.
#[derive(Debug, Args, Default)]
pub struct S3Args {
    /// `s3.endpoint`: the S3-compatible server's URL, e.g. http://minio:9000.
    #[arg(long, env = "SLUICE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// `s3.access-key`.
    #[arg(long, env = "SLUICE_S3_ACCESS_KEY")]
    pub s3_access_key: Option<String>,
    /// `s3.secret-key` (prefer the environment variable: flags show in process lists).
    #[arg(long, env = "SLUICE_S3_SECRET_KEY", hide_env_values = true)]
    pub s3_secret_key: Option<String>,
    /// `s3.region`.
    #[arg(long, env = "SLUICE_S3_REGION")]
    pub s3_region: Option<String>,
    /// `s3.path.style.access`: address buckets as ENDPOINT/BUCKET (true, the default with
    /// an endpoint) or BUCKET.ENDPOINT (false).
    #[arg(long, env = "SLUICE_S3_PATH_STYLE_ACCESS")]
    pub s3_path_style_access: Option<bool>,
}

/// Options of commands that talk to a cluster.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The jobmanager's RPC address, HOST:PORT.
    #[arg(long, env = "SLUICE_JOBMANAGER", default_value = "127.0.0.1:6123")]
    pub jobmanager: String,
}

/// Checkpoint options of commands that start jobs.
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// Take a checkpoint this often, e.g. "5s" (sets 'execution.checkpointing.interval').
    #[arg(long)]
    pub checkpoint_interval: Option<String>,
    /// Start from this savepoint or retained checkpoint (its directory or `_metadata`; a
    /// path or an s3:// URL).
    #[arg(long)]
    pub from_savepoint: Option<String>,
}

/// `sluice submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The SQL file.
    pub file: PathBuf,
    /// Default parallelism of the job's operators.
    #[arg(long, short)]
    pub parallelism: Option<u32>,
    #[command(flatten)]
    pub checkpoints: CheckpointArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `sluice savepoint`.
#[derive(Debug, Args)]
pub struct SavepointArgs {
    /// The job id.
    pub job: String,
    /// Stop the job once the savepoint is complete.
    #[arg(long)]
    pub stop: bool,
    /// Directory to write the savepoint under (default: the job's 'state.savepoints.dir').
    #[arg(long)]
    pub directory: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `sluice status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The job id.
    pub job: String,
    /// Print JSON for machines (with --watch, one object per line).
    #[arg(long)]
    pub json: bool,
    /// Show the status again every --interval until the job ends (redrawn in place on a
    /// terminal).
    #[arg(long)]
    pub watch: bool,
    /// How often --watch shows the status, e.g. "1s".
    #[arg(long, default_value = "1s")]
    pub interval: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `sluice top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The job id.
    pub job: String,
    /// How often the view is redrawn, e.g. "2s".
    #[arg(long, default_value = "2s")]
    pub interval: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `sluice wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The job id.
    pub job: String,
    /// What to wait for: running, finished or checkpoints=N.
    #[arg(long = "for", value_name = "CONDITION")]
    pub condition: String,
    /// How long to wait at most, e.g. "30s" or "5min".
    #[arg(long, default_value = "5min")]
    pub timeout: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Commands that name a job.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job id.
    pub job: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `sluice run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The SQL file.
    pub file: PathBuf,
    /// Default parallelism of the job's operators.
    #[arg(long, short)]
    pub parallelism: Option<u32>,
    /// Number of task managers in the embedded cluster.
    #[arg(long, default_value_t = 1)]
    pub taskmanagers: u32,
    /// File of `NAME=value` lines resolving `{{ secret.NAME }}` in model options.
    #[arg(long, env = "SLUICE_SECRETS_FILE")]
    pub secrets_file: Option<PathBuf>,
    /// Checkpoint storage of the embedded cluster: a directory or s3://bucket/prefix
    /// (default: a temporary directory).
    #[arg(long)]
    pub checkpoint_dir: Option<String>,
    #[command(flatten)]
    pub s3: S3Args,
    /// Address of the embedded cluster's REST API and dashboard, HOST:PORT (port 0 picks
    /// a free one, printed at start); `off` serves none.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub rest_address: String,
    #[command(flatten)]
    pub checkpoints: CheckpointArgs,
}

/// `sluice explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The SQL file.
    pub file: PathBuf,
    /// Default parallelism of the job's operators.
    #[arg(long, short)]
    pub parallelism: Option<u32>,
}

fn init_logging(default: &str, json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        // One object per line; a task's lines carry its span (job, vertex, subtask).
        builder.json().with_current_span(true).with_span_list(false).init();
    } else {
        // Colors only on a terminal: log files stay plain text.
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The client commands and the embedded cluster report errors themselves; their logs
    // stay quiet unless RUST_LOG asks.
    let quiet = !matches!(cli.command, Command::Jobmanager(_) | Command::Taskmanager(_) | Command::StubLlm(_));
    // A Python model's own output (its `print()`) is shown even when quiet.
    init_logging(
        if quiet { "error,sluice_jobmanager=off,sluice_taskmanager=off,sluice::python=info" } else { "info" },
        cli.log_format == "json",
    );
    match cli.token() {
        Ok(token) => commands::client::set_token(token),
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Jobmanager(args) => commands::cluster::jobmanager(args).await,
            Command::Taskmanager(args) => commands::cluster::taskmanager(args).await,
            Command::Submit(args) => commands::client::submit(args).await,
            Command::List(args) => commands::client::list(args).await,
            Command::Status(args) => commands::client::status(args).await,
            Command::Wait(args) => commands::wait::wait(args).await,
            Command::Top(args) => commands::top::top(args).await,
            Command::Cancel(args) => commands::client::cancel(args).await,
            Command::Savepoint(args) => commands::client::savepoint(args).await,
            Command::Run(args) => commands::run::run(args).await,
            Command::Explain(args) => commands::client::explain(args),
            Command::Sql(args) => commands::shell::shell(args).await,
            Command::StubLlm(args) => stub_llm::run(args).await,
            Command::Nexmark(NexmarkCommand::Generate(args)) => commands::nexmark::generate(args),
            Command::Probe(args) => commands::probe::probe(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

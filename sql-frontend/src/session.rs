//! A SQL session: runs statements in order against a catalog. DDL changes the catalog,
//! SHOW / DESCRIBE / EXPLAIN produce text, `SET` changes the job configuration, and
//! INSERTs and queries become jobs: a script's INSERTs form one job (as a statement set),
//! while the interactive shell makes one job per statement.

use std::collections::BTreeMap;

use crate::catalog::{render, Catalog, CatalogObject};
use crate::error::SqlError;
use crate::parser::{parse_script, ScriptStatement};
use crate::plan::{check_table, typed_table, view_schema, AsyncLookup, JobPlanner, Plan};

type Result<T> = std::result::Result<T, SqlError>;

/// The configuration key of the default parallelism (`SET 'parallelism.default' = '4'`).
pub const PARALLELISM_KEY: &str = "parallelism.default";
/// The configuration key of the job name (`SET 'pipeline.name' = 'my-job'`).
pub const JOB_NAME_KEY: &str = "pipeline.name";
/// The configuration key of the state TTL of stateful SQL operators (Flink's idle state
/// retention, `SET 'table.exec.state.ttl' = '1 h'`; `0`, the default, keeps state forever).
pub const STATE_TTL_KEY: &str = "table.exec.state.ttl";
/// The configuration key of how long a source has nothing before it is idle, so that its
/// watermark stops holding back the operators it feeds (`0`, the default: never).
pub const SOURCE_IDLE_TIMEOUT_KEY: &str = "table.exec.source.idle-timeout";
/// The configuration key of the runtime mode: `streaming` (the default: a GROUP BY updates
/// its results as rows come) or `batch` (bounded input: final results at its end).
pub const RUNTIME_MODE_KEY: &str = "execution.runtime-mode";
/// Whether updating aggregates buffer their updates (`true`/`false`, default `false`).
pub const MINI_BATCH_ENABLED_KEY: &str = "table.exec.mini-batch.enabled";
/// How long updates may be buffered (a duration, required > 0 with mini-batch).
pub const MINI_BATCH_LATENCY_KEY: &str = "table.exec.mini-batch.allow-latency";
/// How many input rows may be buffered (required > 0 with mini-batch).
pub const MINI_BATCH_SIZE_KEY: &str = "table.exec.mini-batch.size";
/// Lookups in flight at most per lookup-join subtask (default 100).
pub const ASYNC_LOOKUP_CAPACITY_KEY: &str = "table.exec.async-lookup.buffer-capacity";
/// How long one row's lookup, retries included, may take (default 3 min).
pub const ASYNC_LOOKUP_TIMEOUT_KEY: &str = "table.exec.async-lookup.timeout";
/// `ORDERED` (the default: rows leave a lookup join in input order) or `ALLOW_UNORDERED`
/// (an append-only input's rows leave as their lookups finish).
pub const ASYNC_LOOKUP_OUTPUT_MODE_KEY: &str = "table.exec.async-lookup.output-mode";
/// Configuration keys whose values are durations, checked at `SET`.
const DURATION_KEYS: [&str; 4] =
    [STATE_TTL_KEY, SOURCE_IDLE_TIMEOUT_KEY, MINI_BATCH_LATENCY_KEY, ASYNC_LOOKUP_TIMEOUT_KEY];

/// Settings given with the script (from the command line).
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Default parallelism of operators; overrides `SET 'parallelism.default'`. When neither
    /// is given it is 1. Tables may still ask for their own (`scan.parallelism`,
    /// `sink.parallelism`).
    pub default_parallelism: Option<u32>,
    /// Job name; overrides `SET 'pipeline.name'`. The default is `insert-into_<sinks>`.
    pub job_name: Option<String>,
}

/// What one statement did.
#[derive(Debug)]
pub enum Outcome {
    /// The catalog or configuration changed.
    Done(String),
    /// Text to show (SHOW, DESCRIBE, EXPLAIN).
    Text(String),
    /// A job to run.
    Job(Plan),
}

/// What a whole script did: text to show, in order, and at most one job.
#[derive(Debug)]
pub struct ScriptOutcome {
    /// Output of SHOW, DESCRIBE and EXPLAIN statements.
    pub text: Vec<String>,
    /// The job made of the script's INSERTs and queries, if it has any.
    pub plan: Option<Plan>,
}

/// A catalog and configuration that statements run against.
#[derive(Debug, Default)]
pub struct Session {
    catalog: Catalog,
    config: BTreeMap<String, String>,
    options: PlanOptions,
    /// Where mini-batch was last configured, for errors about its settings.
    mini_batch_at: Option<sqlparser::tokenizer::Location>,
}

impl Session {
    /// An empty session.
    pub fn new(options: PlanOptions) -> Self {
        Session { catalog: Catalog::new(), config: BTreeMap::new(), options, mini_batch_at: None }
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    fn parallelism(&self) -> u32 {
        self.options
            .default_parallelism
            .or_else(|| self.config.get(PARALLELISM_KEY).and_then(|p| p.parse().ok()))
            .unwrap_or(1)
            .max(1)
    }

    /// A planner for the next job, with the session's settings.
    fn planner(&self) -> Result<JobPlanner> {
        let duration = |key: &str| self.config.get(key).and_then(|v| sluice_core::options::parse_duration(v).ok());
        let ttl = duration(STATE_TTL_KEY);
        let batch = self.config.get(RUNTIME_MODE_KEY).is_some_and(|m| m.eq_ignore_ascii_case("batch"));
        let enabled = self.config.get(MINI_BATCH_ENABLED_KEY).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let mini_batch = if enabled {
            let at = self.mini_batch_at.unwrap_or(sqlparser::tokenizer::Location { line: 1, column: 1 });
            let latency = duration(MINI_BATCH_LATENCY_KEY).filter(|l| !l.is_zero()).ok_or_else(|| {
                SqlError::new(at, "MiniBatch Latency must be greater than 0 ms.")
                    .with_hint(format!("SET '{MINI_BATCH_LATENCY_KEY}' = '1 s'"))
            })?;
            let size =
                self.config.get(MINI_BATCH_SIZE_KEY).and_then(|v| v.trim().parse::<u64>().ok()).filter(|&s| s > 0);
            let size = size.ok_or_else(|| {
                SqlError::new(at, "Key: 'table.exec.mini-batch.size' , default: -1 (fallback keys: []) must be > 0.")
                    .with_hint(format!("SET '{MINI_BATCH_SIZE_KEY}' = '5000'"))
            })?;
            Some((latency, size))
        } else {
            None
        };
        let async_lookup = AsyncLookup {
            capacity: self.config.get(ASYNC_LOOKUP_CAPACITY_KEY).and_then(|c| c.trim().parse().ok()).unwrap_or(100),
            timeout: duration(ASYNC_LOOKUP_TIMEOUT_KEY)
                .filter(|t| !t.is_zero())
                .unwrap_or(std::time::Duration::from_secs(180)),
            ordered: !self
                .config
                .get(ASYNC_LOOKUP_OUTPUT_MODE_KEY)
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("ALLOW_UNORDERED")),
        };
        Ok(JobPlanner::new(self.parallelism())
            .with_async_lookup(async_lookup)
            .with_state_ttl(ttl.filter(|t| !t.is_zero()))
            .with_batch_mode(batch)
            .with_mini_batch(mini_batch))
    }

    fn job_name(&self, sinks: &[String]) -> String {
        self.options
            .job_name
            .clone()
            .or_else(|| self.config.get(JOB_NAME_KEY).cloned())
            .unwrap_or_else(|| format!("insert-into_{}", sinks.join(",")))
    }

    /// Runs a whole script: its INSERTs and queries form one job.
    pub fn run_script(&mut self, script: &str) -> Result<ScriptOutcome> {
        let mut text = Vec::new();
        let mut job: Option<JobPlanner> = None;
        for statement in parse_script(script)? {
            match statement {
                ScriptStatement::Insert(insert) => {
                    let planner = match &mut job {
                        Some(planner) => planner,
                        None => job.insert(self.planner()?),
                    };
                    planner.add_insert(&self.catalog, &insert)?;
                }
                ScriptStatement::StatementSet(set) => {
                    let planner = match &mut job {
                        Some(planner) => planner,
                        None => job.insert(self.planner()?),
                    };
                    for insert in &set.inserts {
                        planner.add_insert(&self.catalog, insert)?;
                    }
                }
                ScriptStatement::Query(query) => {
                    let planner = match &mut job {
                        Some(planner) => planner,
                        None => job.insert(self.planner()?),
                    };
                    planner.add_select(&self.catalog, &query.query, &query.calls, query.location)?;
                }
                other => match self.execute(other)? {
                    Outcome::Text(t) => text.push(t),
                    Outcome::Done(_) => {}
                    Outcome::Job(_) => unreachable!("jobs come only from INSERTs and queries"),
                },
            }
        }
        let plan = job.map(|planner| {
            let name = self.job_name(planner.sinks());
            planner.finish(&name, self.config.clone())
        });
        Ok(ScriptOutcome { text, plan })
    }

    /// Runs one statement (the interactive shell): each INSERT, query or statement set is
    /// its own job.
    pub fn execute(&mut self, statement: ScriptStatement) -> Result<Outcome> {
        match statement {
            ScriptStatement::CreateTable(create) => {
                self.catalog.create_table(&create)?;
                if let Err(e) = check_table(&self.catalog, &create.name) {
                    self.catalog.remove(&create.name);
                    return Err(e);
                }
                Ok(Outcome::Done(format!("table '{}' created", create.name)))
            }
            ScriptStatement::CreateView(create) => {
                self.catalog.create_view(&create)?;
                let checked = self.catalog.find_view(&create.name).map(|v| view_schema(&self.catalog, v));
                if let Some(Err(e)) = checked {
                    self.catalog.remove(&create.name);
                    return Err(e);
                }
                Ok(Outcome::Done(format!("view '{}' created", create.name)))
            }
            ScriptStatement::CreateModel(create) => {
                self.catalog.create_model(&create)?;
                Ok(Outcome::Done(format!("model '{}' created", create.name)))
            }
            ScriptStatement::AlterModel(alter) => {
                self.catalog.alter_model(&alter)?;
                Ok(Outcome::Done(format!("model '{}' altered", alter.name.value)))
            }
            ScriptStatement::Drop(drop) => {
                self.catalog.drop(&drop)?;
                Ok(Outcome::Done(format!("{} '{}' dropped", drop.kind.word(), drop.name.value)))
            }
            ScriptStatement::Show(show) => Ok(Outcome::Text(render::show_objects(&self.catalog, show.kind))),
            ScriptStatement::ShowCreate(reference) => Ok(Outcome::Text(match self.catalog.object(&reference)? {
                CatalogObject::Table(t) => render::show_create_table(t),
                CatalogObject::View(v) => render::show_create_view(v),
                CatalogObject::Model(m) => render::show_create_model(m),
            })),
            ScriptStatement::Describe(reference) => Ok(Outcome::Text(match self.catalog.object(&reference)? {
                CatalogObject::Table(t) => render::describe_table(&typed_table(&self.catalog, t)?),
                CatalogObject::View(v) => render::describe_columns(view_schema(&self.catalog, v)?.as_ref()),
                CatalogObject::Model(m) => render::describe_model(m),
            })),
            ScriptStatement::Set(set) => {
                if set.key == PARALLELISM_KEY && set.value.parse::<u32>().map_or(true, |p| p == 0) {
                    return Err(SqlError::new(
                        set.value_location,
                        format!("'{PARALLELISM_KEY}' = '{}' is not a positive integer", set.value),
                    ));
                }
                if set.key == RUNTIME_MODE_KEY
                    && !["streaming", "batch"].iter().any(|m| set.value.eq_ignore_ascii_case(m))
                {
                    return Err(SqlError::new(
                        set.value_location,
                        format!("'{RUNTIME_MODE_KEY}' = '{}' is not a runtime mode", set.value),
                    )
                    .with_hint("use 'streaming' or 'batch' (batch: bounded input, final results at its end)"));
                }
                if set.key == MINI_BATCH_ENABLED_KEY
                    && !["true", "false"].iter().any(|b| set.value.eq_ignore_ascii_case(b))
                {
                    return Err(SqlError::new(
                        set.value_location,
                        format!("'{MINI_BATCH_ENABLED_KEY}' = '{}' is not a boolean", set.value),
                    )
                    .with_hint("use 'true' or 'false'"));
                }
                if set.key == ASYNC_LOOKUP_CAPACITY_KEY && set.value.trim().parse::<u32>().map_or(true, |c| c == 0) {
                    return Err(SqlError::new(
                        set.value_location,
                        format!("'{ASYNC_LOOKUP_CAPACITY_KEY}' = '{}' is not a positive number", set.value),
                    )
                    .with_hint("give the lookups in flight per subtask, such as '100'"));
                }
                if set.key == ASYNC_LOOKUP_OUTPUT_MODE_KEY
                    && !["ORDERED", "ALLOW_UNORDERED"].iter().any(|m| set.value.trim().eq_ignore_ascii_case(m))
                {
                    return Err(SqlError::new(
                        set.value_location,
                        format!("'{ASYNC_LOOKUP_OUTPUT_MODE_KEY}' = '{}' is not an output mode", set.value),
                    )
                    .with_hint("use 'ORDERED' or 'ALLOW_UNORDERED'"));
                }
                if set.key.starts_with("table.exec.mini-batch.") {
                    self.mini_batch_at = Some(set.value_location);
                }
                if DURATION_KEYS.contains(&set.key.as_str()) {
                    if let Err(e) = sluice_core::options::parse_duration(&set.value) {
                        return Err(SqlError::new(
                            set.value_location,
                            format!("'{}' = '{}' is not a duration: {e}", set.key, set.value),
                        )
                        .with_hint("write a duration such as '0' (off), '30 s' or '1 h'"));
                    }
                }
                self.config.insert(set.key.clone(), set.value.clone());
                Ok(Outcome::Done(format!("'{}' = '{}'", set.key, set.value)))
            }
            ScriptStatement::Reset(reset) => {
                match &reset.key {
                    Some(key) => {
                        self.config.remove(key);
                    }
                    None => self.config.clear(),
                }
                Ok(Outcome::Done("configuration reset".into()))
            }
            ScriptStatement::Explain(explain) => {
                let mut planner = self.planner()?.with_changelog_explain(explain.changelog_mode);
                self.plan_into(&mut planner, *explain.statement)?;
                let name = self.job_name(planner.sinks());
                Ok(Outcome::Text(planner.finish(&name, self.config.clone()).explain))
            }
            job => {
                let mut planner = self.planner()?;
                self.plan_into(&mut planner, job)?;
                let name = self.job_name(planner.sinks());
                Ok(Outcome::Job(planner.finish(&name, self.config.clone())))
            }
        }
    }

    fn plan_into(&self, planner: &mut JobPlanner, statement: ScriptStatement) -> Result<()> {
        match statement {
            ScriptStatement::Insert(insert) => planner.add_insert(&self.catalog, &insert),
            ScriptStatement::StatementSet(set) => {
                set.inserts.iter().try_for_each(|i| planner.add_insert(&self.catalog, i))
            }
            ScriptStatement::Query(query) => {
                planner.add_select(&self.catalog, &query.query, &query.calls, query.location)
            }
            other => {
                Err(SqlError::new(other.location(), "EXPLAIN works on INSERT statements, queries and statement sets"))
            }
        }
    }
}

/// Plans a script into one job; an error if it has no INSERT or query.
pub fn plan(script: &str, options: &PlanOptions) -> Result<Plan> {
    let mut session = Session::new(options.clone());
    let outcome = session.run_script(script)?;
    outcome.plan.ok_or_else(|| {
        SqlError::new(
            sqlparser::tokenizer::Location { line: 1, column: 1 },
            "the script has no INSERT INTO statement or query; nothing to run",
        )
    })
}

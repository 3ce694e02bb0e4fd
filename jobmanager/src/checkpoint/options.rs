//! A job's checkpoint and restart settings, read from its configuration (`SET 'k' = 'v'`
//! and submit-time options) with Flink's option names, over the jobmanager's defaults.

use sluice_storage::Location;
use std::collections::BTreeMap;
use std::time::Duration;

use sluice_core::options::{parse_duration, parse_memory_size};

/// Checkpoint settings of one job.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointOptions {
    /// `execution.checkpointing.interval`; `None`: no checkpoints.
    pub interval: Option<Duration>,
    /// `execution.checkpointing.timeout`: a checkpoint not complete by then is aborted.
    pub timeout: Duration,
    /// `execution.checkpointing.min-pause`: time between the end of one checkpoint and the
    /// start of the next.
    pub min_pause: Duration,
    /// `state.checkpoints.num-retained`: completed checkpoints kept.
    pub retained: usize,
    /// `state.checkpoints.dir`: the checkpoint storage (a directory or `file://` URI).
    pub directory: Location,
    /// `state.savepoints.dir`: where savepoints go by default.
    pub savepoint_directory: Location,
    /// `execution.checkpointing.recover-without-newest`: when the newest completed
    /// checkpoint cannot be read, restore an older one anyway. Off by default: the newest
    /// one's transactions may already be committed, so replaying from an older one writes
    /// its output twice.
    pub recover_without_newest: bool,
    /// `state.storage.fs.memory-threshold`: operator lists larger than this are stored as
    /// files in the checkpoint storage rather than sent inline (the task managers read it
    /// from the job configuration; checked here at submission).
    pub memory_threshold: u64,
}

/// The largest `state.storage.fs.memory-threshold` accepted.
const MAX_MEMORY_THRESHOLD: u64 = 16 << 20;

/// How a job restarts after a failure.
#[derive(Debug, Clone, PartialEq)]
pub enum RestartStrategy {
    /// Fail the job at the first failure.
    None,
    /// Wait `delay` between restarts, at most `attempts` times.
    FixedDelay {
        /// Most restarts.
        attempts: u32,
        /// Pause before each restart.
        delay: Duration,
    },
    /// Wait `initial`, then `multiplier` times longer each restart up to `max`.
    ExponentialDelay {
        /// Most restarts.
        attempts: u32,
        /// First pause.
        initial: Duration,
        /// Longest pause.
        max: Duration,
        /// Growth factor.
        multiplier: f64,
    },
}

impl RestartStrategy {
    /// The most restarts allowed (0 for none).
    pub fn max_attempts(&self) -> u32 {
        match self {
            RestartStrategy::None => 0,
            RestartStrategy::FixedDelay { attempts, .. } | RestartStrategy::ExponentialDelay { attempts, .. } => {
                *attempts
            }
        }
    }

    /// The pause before restart number `restart` (from 1); `None` when no more restarts
    /// are allowed.
    pub fn delay(&self, restart: u32) -> Option<Duration> {
        if restart > self.max_attempts() {
            return None;
        }
        match self {
            RestartStrategy::None => None,
            RestartStrategy::FixedDelay { delay, .. } => Some(*delay),
            RestartStrategy::ExponentialDelay { initial, max, multiplier, .. } => {
                let factor = multiplier.powi(restart.saturating_sub(1).min(64) as i32);
                Some(initial.mul_f64(factor).min(*max))
            }
        }
    }
}

/// A bad option value, phrased for the user.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("'{key}' = '{value}': {message}")]
pub struct OptionError {
    /// The option.
    pub key: String,
    /// Its value.
    pub value: String,
    /// What is wrong and what is accepted.
    pub message: String,
}

struct Reader<'a> {
    config: &'a BTreeMap<String, String>,
}

impl Reader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.config.get(key).map(|v| v.trim())
    }

    fn error(&self, key: &str, message: impl Into<String>) -> OptionError {
        OptionError { key: key.into(), value: self.get(key).unwrap_or_default().into(), message: message.into() }
    }

    fn duration(&self, key: &str) -> Result<Option<Duration>, OptionError> {
        self.get(key).map(|v| parse_duration(v).map_err(|e| self.error(key, e))).transpose()
    }

    fn count(&self, key: &str) -> Result<Option<u32>, OptionError> {
        self.get(key).map(|v| v.parse::<u32>().map_err(|_| self.error(key, "expected a whole number"))).transpose()
    }

    fn flag(&self, key: &str) -> Result<Option<bool>, OptionError> {
        self.get(key)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(self.error(key, "expected 'true' or 'false'")),
            })
            .transpose()
    }

    fn size(&self, key: &str) -> Result<Option<u64>, OptionError> {
        self.get(key).map(|v| parse_memory_size(v).map_err(|e| self.error(key, e))).transpose()
    }

    fn path(&self, key: &str) -> Result<Option<Location>, OptionError> {
        self.get(key).map(|v| storage_path(v).map_err(|m| self.error(key, m))).transpose()
    }
}

/// A checkpoint storage location: a directory path, a `file://` URI or an `s3://` URL.
pub fn storage_path(raw: &str) -> Result<Location, String> {
    Location::parse(raw.trim()).map_err(|e| match e {
        sluice_storage::StorageError::Unsupported { reason, .. } => reason,
        e => e.to_string(),
    })
}

impl CheckpointOptions {
    /// Reads the checkpoint options of a job configuration; `default_dir` is the
    /// jobmanager's checkpoint directory.
    pub fn from_config(config: &BTreeMap<String, String>, default_dir: &Location) -> Result<Self, OptionError> {
        let r = Reader { config };
        let interval = r.duration("execution.checkpointing.interval")?.filter(|d| !d.is_zero());
        if let Some(i) = interval {
            if i < Duration::from_millis(10) {
                return Err(r.error("execution.checkpointing.interval", "the interval must be at least 10ms"));
            }
        }
        if let Some(n) = r.count("execution.checkpointing.max-concurrent-checkpoints")? {
            if n != 1 {
                return Err(r.error(
                    "execution.checkpointing.max-concurrent-checkpoints",
                    "Sluice runs one checkpoint at a time; use 1 (and 'execution.checkpointing.min-pause' to space them)",
                ));
            }
        }
        let retained = r.count("state.checkpoints.num-retained")?.unwrap_or(3);
        if retained == 0 {
            return Err(r.error("state.checkpoints.num-retained", "at least one checkpoint must be retained"));
        }
        let memory_threshold =
            r.size("state.storage.fs.memory-threshold")?.unwrap_or(sluice_core::state::DEFAULT_MEMORY_THRESHOLD);
        if memory_threshold > MAX_MEMORY_THRESHOLD {
            return Err(r.error(
                "state.storage.fs.memory-threshold",
                "at most 16mb: larger lists belong in the checkpoint storage, not in acknowledgements",
            ));
        }
        let directory = r.path("state.checkpoints.dir")?.unwrap_or_else(|| default_dir.clone());
        let savepoint_directory = r.path("state.savepoints.dir")?.unwrap_or_else(|| directory.join("savepoints"));
        Ok(CheckpointOptions {
            interval,
            timeout: r.duration("execution.checkpointing.timeout")?.unwrap_or(Duration::from_secs(600)),
            min_pause: r.duration("execution.checkpointing.min-pause")?.unwrap_or(Duration::ZERO),
            retained: retained as usize,
            directory,
            savepoint_directory,
            recover_without_newest: r.flag("execution.checkpointing.recover-without-newest")?.unwrap_or(false),
            memory_threshold,
        })
    }
}

/// What the transaction timeout of an exactly-once Kafka sink must allow for beyond the
/// checkpoint timeout: a restart (failure detection, restart delay, redeployment, restore).
pub const RESTART_ALLOWANCE: Duration = Duration::from_secs(5 * 60);

/// Checks that every exactly-once Kafka writer of `graph` (sinks, and dead letters of
/// ML_PREDICT) keeps its transactions open longer
/// than a checkpoint may take plus [`RESTART_ALLOWANCE`]: otherwise the broker aborts the
/// transaction of a slow checkpoint before it (or the restored job) can commit it, and its
/// rows are lost.
pub fn check_transaction_timeouts(graph: &sluice_proto::JobGraph, options: &CheckpointOptions) -> Result<(), String> {
    if options.interval.is_none() {
        return Ok(());
    }
    let needed = options.timeout + RESTART_ALLOWANCE;
    // Every exactly-once Kafka writer: (what, its timeout option, the option's value).
    let mut writers: Vec<(String, &str, Option<&str>)> = Vec::new();
    for kind in graph.vertices.iter().flat_map(|v| &v.operators).filter_map(|o| o.kind.as_ref()) {
        match kind {
            sluice_proto::operator_spec::Kind::Sink(spec) if spec.connector == "kafka" => {
                let exactly_once = spec
                    .options
                    .get("sink.delivery-guarantee")
                    .is_some_and(|g| g.trim().eq_ignore_ascii_case("exactly-once"));
                if exactly_once {
                    let key = "properties.transaction.timeout.ms";
                    writers.push((format!("table '{}'", spec.table), key, spec.options.get(key).map(String::as_str)));
                }
            }
            sluice_proto::operator_spec::Kind::MlPredict(spec) => {
                let dead_letters =
                    spec.options.get("on-error").is_some_and(|e| e.trim().eq_ignore_ascii_case("dead_letter"));
                let at_least_once = spec
                    .options
                    .get("dead-letter.delivery-guarantee")
                    .is_some_and(|g| g.trim().to_ascii_lowercase().replace('_', "-") == "at-least-once");
                if dead_letters && !at_least_once {
                    let key = "dead-letter.properties.transaction.timeout.ms";
                    writers.push((
                        format!("model '{}' (dead letters)", spec.model),
                        key,
                        spec.options.get(key).map(String::as_str),
                    ));
                }
            }
            _ => {}
        }
    }
    for (what, key, configured) in writers {
        let timeout = sluice_connectors::kafka::options::transaction_timeout(configured).map_err(|e| {
            format!("{what}: {}", e.replace("'properties.transaction.timeout.ms'", &format!("'{key}'")))
        })?;
        if timeout < needed {
            return Err(format!(
                "{what}: the Kafka transaction timeout of {} s ('{key}') must exceed \
                 'execution.checkpointing.timeout' ({} s) plus {} s for a restart, or the broker aborts the transactions \
                 of a slow checkpoint before they are committed and their rows are lost; set \
                 '{key}' to at least {} (the broker's 'transaction.max.timeout.ms' caps it, \
                 15 minutes by default) or lower the checkpoint timeout",
                timeout.as_secs(),
                options.timeout.as_secs(),
                RESTART_ALLOWANCE.as_secs(),
                needed.as_millis()
            ));
        }
    }
    Ok(())
}

impl RestartStrategy {
    /// Reads `restart-strategy.type` and its options. Without one, a job that takes
    /// checkpoints restarts with exponential delay (as Flink does); one that does not fails.
    pub fn from_config(config: &BTreeMap<String, String>, checkpointing: bool) -> Result<Self, OptionError> {
        let r = Reader { config };
        let kind = r.get("restart-strategy.type").or_else(|| r.get("restart-strategy")).map(str::to_ascii_lowercase);
        let kind = match kind.as_deref() {
            Some(k) => k.to_string(),
            None if checkpointing => "exponential-delay".into(),
            None => "none".into(),
        };
        match kind.as_str() {
            "none" | "off" | "disable" => Ok(RestartStrategy::None),
            "fixed-delay" | "fixeddelay" => Ok(RestartStrategy::FixedDelay {
                attempts: r.count("restart-strategy.fixed-delay.attempts")?.unwrap_or(u32::MAX),
                delay: r.duration("restart-strategy.fixed-delay.delay")?.unwrap_or(Duration::from_secs(1)),
            }),
            "exponential-delay" | "exponential-backoff" => {
                let multiplier = match r.get("restart-strategy.exponential-delay.backoff-multiplier") {
                    Some(v) => v.parse::<f64>().ok().filter(|m| *m >= 1.0 && m.is_finite()).ok_or_else(|| {
                        r.error(
                            "restart-strategy.exponential-delay.backoff-multiplier",
                            "expected a number of at least 1.0",
                        )
                    })?,
                    None => 1.5,
                };
                Ok(RestartStrategy::ExponentialDelay {
                    attempts: r
                        .count("restart-strategy.exponential-delay.attempts-before-reset-backoff")?
                        .unwrap_or(u32::MAX),
                    initial: r
                        .duration("restart-strategy.exponential-delay.initial-backoff")?
                        .unwrap_or(Duration::from_secs(1)),
                    max: r
                        .duration("restart-strategy.exponential-delay.max-backoff")?
                        .unwrap_or(Duration::from_secs(60)),
                    multiplier,
                })
            }
            _ => Err(r.error(
                if r.get("restart-strategy.type").is_some() { "restart-strategy.type" } else { "restart-strategy" },
                "expected 'none', 'fixed-delay' or 'exponential-delay'",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn checkpoint_options_use_flink_names_and_defaults() {
        let o = CheckpointOptions::from_config(
            &config(&[("execution.checkpointing.interval", "5s"), ("state.checkpoints.dir", "file:///data/chk")]),
            &Location::local("/tmp/x"),
        )
        .unwrap();
        assert_eq!(o.interval, Some(Duration::from_secs(5)));
        assert_eq!(o.retained, 3);
        assert_eq!(o.directory, Location::local("/data/chk"));
        assert_eq!(o.savepoint_directory, Location::local("/data/chk/savepoints"));
        let s3 =
            CheckpointOptions::from_config(&config(&[("state.checkpoints.dir", "s3://b/x")]), &Location::local("/t"));
        assert_eq!(s3.unwrap().savepoint_directory.to_string(), "s3://b/x/savepoints");
        assert!(!o.recover_without_newest, "falling back past the newest checkpoint duplicates output");
        assert_eq!(o.memory_threshold, 20 << 10, "Flink's default");
        let sized = config(&[("state.storage.fs.memory-threshold", "1 mb")]);
        assert_eq!(CheckpointOptions::from_config(&sized, &Location::local("/t")).unwrap().memory_threshold, 1 << 20);
        let huge = config(&[("state.storage.fs.memory-threshold", "1gb")]);
        let error = CheckpointOptions::from_config(&huge, &Location::local("/t")).unwrap_err();
        assert!(error.message.contains("at most 16mb"), "{error:?}");
        let lenient = config(&[("execution.checkpointing.recover-without-newest", "TRUE")]);
        assert!(CheckpointOptions::from_config(&lenient, &Location::local("/t")).unwrap().recover_without_newest);
        let bad = config(&[("execution.checkpointing.recover-without-newest", "maybe")]);
        assert!(CheckpointOptions::from_config(&bad, &Location::local("/t")).is_err());
        let off = CheckpointOptions::from_config(&config(&[]), &Location::local("/tmp/x")).unwrap();
        assert_eq!(off.interval, None);
        let bad =
            CheckpointOptions::from_config(&config(&[("state.checkpoints.dir", "gs://b/x")]), &Location::local("/t"));
        assert!(bad.unwrap_err().to_string().contains("'gs://' is not supported"));
        let bad = CheckpointOptions::from_config(
            &config(&[("execution.checkpointing.interval", "soon")]),
            &Location::local("/t"),
        );
        assert!(bad.unwrap_err().to_string().starts_with("'execution.checkpointing.interval' = 'soon'"));
    }

    fn kafka_sink_graph(sink_options: &[(&str, &str)], config: &[(&str, &str)]) -> sluice_proto::JobGraph {
        let sink = sluice_proto::ConnectorSpec {
            table: "payments".into(),
            connector: "kafka".into(),
            options: sink_options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        };
        let operator = sluice_proto::OperatorSpec {
            name: "sink".into(),
            uid: "1".into(),
            kind: Some(sluice_proto::operator_spec::Kind::Sink(sink)),
        };
        sluice_proto::JobGraph {
            name: "j".into(),
            vertices: vec![sluice_proto::Vertex { id: 0, name: "v".into(), parallelism: 1, operators: vec![operator] }],
            edges: vec![],
            config: self::config(config).into_iter().collect(),
            explain: String::new(),
        }
    }

    #[test]
    fn kafka_transactions_must_outlive_a_checkpoint_and_a_restart() {
        let check = |sink: &[(&str, &str)], config: &[(&str, &str)]| {
            let graph = kafka_sink_graph(sink, config);
            let options = CheckpointOptions::from_config(&graph.config, &Location::local("/t")).unwrap();
            check_transaction_timeouts(&graph, &options)
        };
        let every_second = [("execution.checkpointing.interval", "1s")];
        let exactly_once = ("sink.delivery-guarantee", "exactly-once");
        check(&[exactly_once], &every_second).expect("the defaults fit: 15 min > 10 min + 5 min");
        let err = check(&[exactly_once, ("properties.transaction.timeout.ms", "600000")], &every_second).unwrap_err();
        assert!(err.contains("table 'payments'") && err.contains("600 s") && err.contains("at least 900000"), "{err}");
        let short = [("execution.checkpointing.interval", "1s"), ("execution.checkpointing.timeout", "1min")];
        check(&[exactly_once, ("properties.transaction.timeout.ms", "600000")], &short)
            .expect("10 min > 1 min + 5 min");
        check(
            &[("sink.delivery-guarantee", "at-least-once"), ("properties.transaction.timeout.ms", "1000")],
            &every_second,
        )
        .unwrap();
        check(&[exactly_once, ("properties.transaction.timeout.ms", "1000")], &[])
            .expect("no checkpoints, nothing to outlive");
        assert!(check(&[exactly_once, ("properties.transaction.timeout.ms", "soon")], &every_second)
            .unwrap_err()
            .contains("'soon'"));
    }

    /// Dead letters of ML_PREDICT are written in the checkpoint's Kafka transaction too.
    #[test]
    fn dead_letter_transactions_must_outlive_a_checkpoint_and_a_restart() {
        let check = |model: &[(&str, &str)]| {
            let mut graph = kafka_sink_graph(&[], &[("execution.checkpointing.interval", "1s")]);
            let predict = sluice_proto::MlPredictSpec {
                model: "scorer".into(),
                options: model.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                ..Default::default()
            };
            graph.vertices[0].operators[0].kind = Some(sluice_proto::operator_spec::Kind::MlPredict(predict));
            let options = CheckpointOptions::from_config(&graph.config, &Location::local("/t")).unwrap();
            check_transaction_timeouts(&graph, &options)
        };
        let dead_letters = ("on-error", "dead_letter");
        let short = ("dead-letter.properties.transaction.timeout.ms", "60000");
        check(&[dead_letters]).expect("the defaults fit");
        let err = check(&[dead_letters, short]).unwrap_err();
        assert!(
            err.contains("model 'scorer' (dead letters)")
                && err.contains("'dead-letter.properties.transaction.timeout.ms'"),
            "{err}"
        );
        check(&[dead_letters, short, ("dead-letter.delivery-guarantee", "at-least-once")]).expect("no transactions");
        check(&[("on-error", "skip"), short]).expect("no dead letters");
    }

    #[test]
    fn restart_strategies_compute_their_delays() {
        let fixed = RestartStrategy::from_config(
            &config(&[
                ("restart-strategy.type", "fixed-delay"),
                ("restart-strategy.fixed-delay.attempts", "2"),
                ("restart-strategy.fixed-delay.delay", "250ms"),
            ]),
            true,
        )
        .unwrap();
        assert_eq!(fixed.delay(1), Some(Duration::from_millis(250)));
        assert_eq!(fixed.delay(2), Some(Duration::from_millis(250)));
        assert_eq!(fixed.delay(3), None);
        let exp = RestartStrategy::from_config(
            &config(&[
                ("restart-strategy.type", "exponential-backoff"),
                ("restart-strategy.exponential-delay.max-backoff", "3s"),
                ("restart-strategy.exponential-delay.backoff-multiplier", "2"),
            ]),
            true,
        )
        .unwrap();
        assert_eq!(exp.delay(1), Some(Duration::from_secs(1)));
        assert_eq!(exp.delay(2), Some(Duration::from_secs(2)));
        assert_eq!(exp.delay(5), Some(Duration::from_secs(3)));
        assert_eq!(RestartStrategy::from_config(&config(&[]), false).unwrap(), RestartStrategy::None);
        assert!(matches!(
            RestartStrategy::from_config(&config(&[]), true).unwrap(),
            RestartStrategy::ExponentialDelay { .. }
        ));
        assert!(RestartStrategy::from_config(&config(&[("restart-strategy.type", "sometimes")]), true).is_err());
    }
}

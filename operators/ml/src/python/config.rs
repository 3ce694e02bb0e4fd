//! The settings of a `generic-python` model (and of the built-in Python runtimes of the
//! `local` provider), from its canonical options.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use sluice_connectors::kafka::dead_letter::DeadLetterConfig;
use sluice_core::options::Options;
use sluice_core::{OperatorError, Result};

use arrow::datatypes::SchemaRef;

/// Rows per batch sent to the worker when the model does not say.
pub const DEFAULT_BATCH_SIZE: usize = 32;
/// How long a partial batch waits for more rows when the model does not say.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(5);
/// Batches in flight per subtask (queued at the worker) when the model does not say.
pub const DEFAULT_IN_FLIGHT: usize = 2;
/// How long one batch may run in Python when the model does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the model's `open` may run when the model does not say.
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(120);
/// Attempts after the first for a batch whose worker timed out or crashed.
pub const DEFAULT_MAX_RETRIES: u32 = 2;

/// What happens to a row whose prediction failed.
#[derive(Debug, Clone, PartialEq)]
pub enum OnError {
    /// The job fails, naming the model and the error.
    Fail,
    /// The row is dropped and counted.
    Skip,
    /// The row goes to a Kafka topic with its error, then as `Skip`.
    DeadLetter(DeadLetterConfig),
}

/// The settings of one Python model.
#[derive(Debug, Clone)]
pub struct PythonConfig {
    /// The model's name (in messages and metrics).
    pub model: String,
    /// The directory holding the model's code and files (first on `sys.path`).
    pub directory: PathBuf,
    /// `module.Class` of the predict function.
    pub class: String,
    /// The Python interpreter (`python.executable`).
    pub executable: String,
    /// Packages that must be installed (`python.requirements`), checked at open.
    pub requirements: Vec<String>,
    /// `properties.*`, without the prefix.
    pub properties: BTreeMap<String, String>,
    /// Rows per batch.
    pub batch_size: usize,
    /// How long a partial batch waits for more rows.
    pub linger: Duration,
    /// Batches in flight per subtask.
    pub max_in_flight: usize,
    /// Rows leave in input order.
    pub ordered: bool,
    /// How long one batch may run in Python.
    pub timeout: Duration,
    /// How long `open` may run.
    pub open_timeout: Duration,
    /// Attempts after the first for a batch whose worker timed out or crashed.
    pub max_retries: u32,
    /// Wait before a batch is retried on a restarted worker.
    pub backoff: Duration,
    /// What happens to a row whose prediction failed.
    pub on_error: OnError,
}

impl PythonConfig {
    /// Reads the settings of `model` from its canonical `options`.
    pub fn from_options(model: &str, options: &BTreeMap<String, String>) -> Result<Self> {
        let mut o = Options::new(format!("model '{model}'"), options);
        let directory = PathBuf::from(o.required("model-directory-path")?);
        let class = o.required("python-predict-class")?.to_string();
        if !class.contains('.') || class.starts_with('.') || class.ends_with('.') {
            return Err(o.error(format!(
                "'python-predict-class' = '{class}' must be module.Class, a class in a module of the model directory \
                 (for example 'models.SentimentPredictFunction' for models.py)"
            )));
        }
        let executable = o.get("python.executable").unwrap_or("python3").to_string();
        let requirements = match o.get("python.requirements") {
            Some(list) => requirements(list).map_err(|m| o.error(m))?,
            None => Vec::new(),
        };
        let properties = options
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("properties.").map(|k| (k.to_string(), v.clone())))
            .collect();
        let batch_size = o.u64("batch-size")?.map_or(DEFAULT_BATCH_SIZE, |n| n.max(1) as usize);
        let linger = o.duration("batch-linger")?.unwrap_or(DEFAULT_LINGER);
        let asynchronous = o.bool("async")?.unwrap_or(true);
        let max_in_flight = if asynchronous {
            o.u64("max-concurrent-operations")?.map_or(DEFAULT_IN_FLIGHT, |n| n.max(1) as usize)
        } else {
            1
        };
        let ordered = !asynchronous
            || o.choice("output-mode", &["ordered", "allow_unordered"])?.as_deref() != Some("allow_unordered");
        let timeout = o.duration("timeout")?.unwrap_or(DEFAULT_TIMEOUT);
        let open_timeout = o.duration("python.open-timeout")?.unwrap_or(DEFAULT_OPEN_TIMEOUT);
        let max_retries = o.u64("max-retries")?.map_or(DEFAULT_MAX_RETRIES, |n| n.min(100) as u32);
        let backoff = o.duration("retry.backoff")?.unwrap_or(Duration::from_millis(100));
        let on_error = match o.choice("on-error", &["fail", "skip", "dead_letter"])?.as_deref() {
            None | Some("fail") => OnError::Fail,
            Some("skip") => OnError::Skip,
            Some(_) => {
                o.required("dead-letter.topic")?;
                OnError::DeadLetter(DeadLetterConfig::from_model_options(options).map_err(|m| o.error(m))?)
            }
        };
        Ok(PythonConfig {
            model: model.to_string(),
            directory,
            class,
            executable,
            requirements,
            properties,
            batch_size,
            linger,
            max_in_flight,
            ordered,
            timeout,
            open_timeout,
            max_retries,
            backoff,
            on_error,
        })
    }

    /// An error about this model.
    pub fn error(&self, message: impl Into<String>) -> OperatorError {
        OperatorError::config(format!("model '{}'", self.model), message)
    }

    /// The JSON the predict function gets in `set_model_config`: the model, its directory
    /// and class, properties, requirements and its INPUT and OUTPUT schemas.
    pub fn model_config_json(&self, input: &SchemaRef, output: &SchemaRef) -> String {
        let columns = |schema: &SchemaRef| -> Value {
            schema
                .fields()
                .iter()
                .map(|f| json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()}))
                .collect()
        };
        json!({
            "model": self.model,
            "model_directory": self.directory,
            "python_predict_class": self.class,
            "properties": self.properties,
            "requirements": self.requirements,
            "input_schema": columns(input),
            "output_schema": columns(output),
        })
        .to_string()
    }
}

/// The Python runtimes of the `local` provider (`runtime`) and their built-in predict classes.
pub const LOCAL_RUNTIMES: &[(&str, &str)] = &[
    ("pytorch", "sluice.runtimes.pytorch.TorchPredictFunction"),
    ("tensorflow", "sluice.runtimes.tensorflow.TensorFlowPredictFunction"),
];

/// The options of a `local` model whose `runtime` runs in Python (`pytorch`,
/// `tensorflow`), as a `generic-python` model of the built-in class of that runtime: the
/// model file's directory is the model directory, and the runtime reads `model_path`,
/// `inference_threads`, `gpu` and `task` from its properties.
pub fn local_runtime_options(model: &str, options: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    let runtime = options.get("runtime").map(String::as_str).unwrap_or("onnx");
    let Some((_, class)) = LOCAL_RUNTIMES.iter().find(|(name, _)| *name == runtime) else {
        return Err(OperatorError::config(
            format!("model '{model}'"),
            format!("'runtime' = '{runtime}' does not run in Python (Python runtimes: pytorch, tensorflow)"),
        ));
    };
    let written = options.get("model-path").map(String::as_str).unwrap_or_default();
    let file = crate::local::model_file(model, written)?;
    let file = std::path::absolute(&file).unwrap_or(file);
    let directory = file.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    let mut python = options.clone();
    python.insert("model-directory-path".into(), directory.display().to_string());
    python.insert("python-predict-class".into(), class.to_string());
    python.insert("properties.model_path".into(), file.display().to_string());
    python.insert("properties.runtime".into(), runtime.to_string());
    for (option, property) in [("inference-threads", "inference_threads"), ("gpu", "gpu"), ("task", "task")] {
        if let Some(value) = options.get(option) {
            python.insert(format!("properties.{property}"), value.clone());
        }
    }
    Ok(python)
}

/// The requirements of `python.requirements`: a comma-separated list (`'vaderSentiment>=3.3,
/// numpy'`) or the path of a requirements file (one per line, `#` comments).
fn requirements(value: &str) -> std::result::Result<Vec<String>, String> {
    let path = std::path::Path::new(value.trim());
    let text = if path.is_file() {
        std::fs::read_to_string(path)
            .map_err(|e| format!("'python.requirements' = '{value}': cannot read the file: {e}"))?
            .lines()
            .map(|l| l.split('#').next().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
            .join(",")
    } else {
        value.to_string()
    };
    Ok(text.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_seeds_ddl_reads_with_defaults_and_properties() {
        let c = PythonConfig::from_options(
            "simple_python_model",
            &options(&[
                ("model-directory-path", "/models/sentiment"),
                ("python-predict-class", "models.HuggingFaceSentimentPredictFunction"),
                ("properties.model_version", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(c.class, "models.HuggingFaceSentimentPredictFunction");
        assert_eq!(c.properties, options(&[("model_version", "1")]));
        assert_eq!((c.batch_size, c.max_in_flight, c.ordered, c.on_error), (32, 2, true, OnError::Fail));
        assert_eq!((c.timeout, c.executable.as_str()), (DEFAULT_TIMEOUT, "python3"));
    }

    #[test]
    fn requirements_come_from_a_list_or_a_file() {
        assert_eq!(requirements("numpy>=1.2, vaderSentiment").unwrap(), vec!["numpy>=1.2", "vaderSentiment"]);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("requirements.txt");
        std::fs::write(&file, "# models\nscikit-learn==1.9.1\n\npyarrow # arrow\n").unwrap();
        assert_eq!(requirements(file.to_str().unwrap()).unwrap(), vec!["scikit-learn==1.9.1", "pyarrow"]);
    }

    #[test]
    fn a_pytorch_model_runs_as_the_built_in_class_with_its_settings_as_properties() {
        let local = options(&[
            ("model-path", "file:///models/fraud/mlp.pt2"),
            ("runtime", "pytorch"),
            ("inference-threads", "4"),
            ("gpu", "false"),
            ("batch-size", "64"),
        ]);
        let c = PythonConfig::from_options("fraud", &local_runtime_options("fraud", &local).unwrap()).unwrap();
        assert_eq!(c.class, "sluice.runtimes.pytorch.TorchPredictFunction");
        assert_eq!(c.directory, PathBuf::from("/models/fraud"));
        assert_eq!(
            c.properties,
            options(&[
                ("model_path", "/models/fraud/mlp.pt2"),
                ("runtime", "pytorch"),
                ("inference_threads", "4"),
                ("gpu", "false")
            ])
        );
        assert_eq!(c.batch_size, 64);
        let onnx = options(&[("model-path", "m.onnx"), ("runtime", "onnx")]);
        assert!(local_runtime_options("m", &onnx).unwrap_err().to_string().contains("does not run in Python"));
    }

    #[test]
    fn a_class_without_a_module_is_refused_with_an_example() {
        let e = PythonConfig::from_options(
            "m",
            &options(&[("model-directory-path", "/m"), ("python-predict-class", "Sentiment")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("must be module.Class") && e.contains("models.py"), "{e}");
    }
}

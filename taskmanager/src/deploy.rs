//! Turns a deployment request into runnable tasks: builds each task's operators and wires
//! its channels — local queues between tasks on this task manager, registered channels for
//! remote consumers, and remote readers for remote producers.

use std::collections::HashMap;
use std::sync::Arc;

use crate::factory::{build_operator, build_source, BuildContext};
use sluice_core::keys::KeyHasher;
use sluice_core::schema::decode_schema;
use sluice_core::{Message, TaskContext};
use sluice_proto::{DeployTasksRequest, Partitioning, TaskId};
use tokio::sync::mpsc;

use crate::error::TaskError;
use crate::exchange::{ChannelKey, ExchangeRegistry};
use crate::input::{InputChannel, InputGate};
use crate::metrics::TaskMetrics;
use crate::output::{ChannelWriter, EdgeOutput, ExchangeLimits, Outputs};
use crate::state::CheckpointStorage;
use crate::task::{Chain, Head, Task, TaskCheckpointing, TaskCommand, TaskEvent};

/// A remote producer channel to read once the tasks are deployed.
pub struct RemoteInput {
    /// Address of the producer's task manager.
    pub address: String,
    /// The channel.
    pub key: ChannelKey,
    /// Where the frames go.
    pub tx: mpsc::Sender<Message>,
    /// The consuming task's counters (bytes received).
    pub metrics: Arc<TaskMetrics>,
}

/// A task ready to spawn, with the ends of its links to the task manager.
pub struct PreparedTask {
    /// Which subtask.
    pub id: TaskId,
    /// The task.
    pub task: Task,
    /// Its counters.
    pub metrics: Arc<TaskMetrics>,
    /// Sends it checkpoint commands.
    pub commands: mpsc::UnboundedSender<TaskCommand>,
    /// Receives its checkpoint events.
    pub events: mpsc::UnboundedReceiver<TaskEvent>,
}

/// Tasks ready to spawn and the remote inputs to start.
pub struct Prepared {
    /// The tasks.
    pub tasks: Vec<PreparedTask>,
    /// Remote channels to read.
    pub remote_inputs: Vec<RemoteInput>,
}

/// The job's max parallelism: the number of key groups (`pipeline.max-parallelism`).
pub fn max_parallelism(graph: &sluice_proto::JobGraph) -> Result<u32, TaskError> {
    match graph.config.get("pipeline.max-parallelism") {
        None => Ok(sluice_core::keys::DEFAULT_MAX_PARALLELISM),
        Some(v) => match v.trim().parse::<u32>() {
            Ok(n) if (1..=32_768).contains(&n) && graph.vertices.iter().all(|x| x.parallelism <= n) => Ok(n),
            _ => Err(TaskError::Deployment(format!(
                "'pipeline.max-parallelism' = '{v}' must be a whole number from 1 to 32768, at least the job's parallelism"
            ))),
        },
    }
}

/// Operator lists larger than this are stored as files (`state.storage.fs.memory-threshold`;
/// the jobmanager checked the value at submission).
pub fn memory_threshold(graph: &sluice_proto::JobGraph) -> Result<u64, TaskError> {
    match graph.config.get("state.storage.fs.memory-threshold") {
        None => Ok(sluice_core::state::DEFAULT_MEMORY_THRESHOLD),
        Some(v) => sluice_core::options::parse_memory_size(v)
            .map_err(|e| TaskError::Deployment(format!("'state.storage.fs.memory-threshold' = '{v}': {e}"))),
    }
}

/// How long a source polls nothing before it says it is idle (`table.exec.source.idle-timeout`;
/// `None`, the default `0`: never), so its watermark stops holding back the tasks it feeds.
pub fn source_idle_timeout(graph: &sluice_proto::JobGraph) -> Result<Option<std::time::Duration>, TaskError> {
    match graph.config.get("table.exec.source.idle-timeout") {
        None => Ok(None),
        Some(v) => sluice_core::options::parse_duration(v)
            .map(|d| Some(d).filter(|d| !d.is_zero()))
            .map_err(|e| TaskError::Deployment(format!("'table.exec.source.idle-timeout' = '{v}': {e}"))),
    }
}

/// Builds the tasks of `request` that run on task manager `me`; keyed state lives under
/// `local_dir`.
pub fn prepare(
    request: &DeployTasksRequest,
    me: &str,
    mut limits: ExchangeLimits,
    build: &BuildContext,
    registry: &ExchangeRegistry,
    local_dir: &std::path::Path,
) -> Result<Prepared, TaskError> {
    let graph = request.graph.as_ref().ok_or_else(|| TaskError::Deployment("no job graph".into()))?;
    sluice_core::job_graph::check(graph).map_err(TaskError::Deployment)?;
    limits.max_parallelism = max_parallelism(graph)?;
    let memory_threshold = memory_threshold(graph)?;
    let idle_timeout = source_idle_timeout(graph)?;
    let storage = (!request.checkpoint_directory.is_empty())
        .then(|| sluice_storage::Location::parse(&request.checkpoint_directory))
        .transpose()
        .map_err(|e| TaskError::Deployment(format!("checkpoint storage: {e}")))?
        .map(|job_dir| CheckpointStorage { job_dir });
    let mut restores: HashMap<(u32, u32), sluice_proto::TaskRestore> =
        request.restore.iter().map(|r| ((r.vertex_id, r.subtask), r.clone())).collect();
    let location: HashMap<(u32, u32), (&str, &str)> = request
        .locations
        .iter()
        .map(|l| ((l.vertex_id, l.subtask), (l.address.as_str(), l.task_manager_id.as_str())))
        .collect();
    let locate = |vertex: u32, subtask: u32| {
        location
            .get(&(vertex, subtask))
            .copied()
            .ok_or_else(|| TaskError::Deployment(format!("no location for subtask {subtask} of vertex {vertex}")))
    };
    let mine: Vec<(u32, u32)> = request.tasks.iter().map(|t| (t.vertex_id, t.subtask)).collect();
    let metrics: HashMap<(u32, u32), Arc<TaskMetrics>> =
        mine.iter().map(|&k| (k, Arc::new(TaskMetrics::default()))).collect();
    let mut inputs: HashMap<(u32, u32), Vec<InputChannel>> = HashMap::new();
    let mut outputs: HashMap<(u32, u32), Vec<EdgeOutput>> = HashMap::new();
    let mut remote_inputs = Vec::new();
    let key = |e: &sluice_proto::Edge, p: u32, c: u32| ChannelKey {
        job_id: request.job_id.clone(),
        attempt: request.attempt,
        producer: (e.source_vertex, p),
        consumer: (e.target_vertex, c),
    };

    for edge in &graph.edges {
        let from = &graph.vertices[edge.source_vertex as usize];
        let to = &graph.vertices[edge.target_vertex as usize];
        let partitioning = Partitioning::try_from(edge.partitioning)
            .map_err(|_| TaskError::Deployment(format!("unknown partitioning {}", edge.partitioning)))?;
        let forward = partitioning == Partitioning::Forward;
        let origin = |p: u32, address: &str| format!("subtask {} of '{}' at {address}", p + 1, from.name);

        // Producers on this task manager.
        for &(v, p) in mine.iter().filter(|(v, _)| *v == from.id) {
            let consumers: Vec<u32> = if forward { vec![p] } else { (0..to.parallelism).collect() };
            let mut channels = Vec::with_capacity(consumers.len());
            for c in consumers {
                let (tx, rx) = mpsc::channel(limits.channel_capacity);
                channels.push(ChannelWriter::new(tx));
                let (_, consumer_tm) = locate(to.id, c)?;
                if consumer_tm == me {
                    let (address, _) = locate(v, p)?;
                    inputs.entry((to.id, c)).or_default().push(InputChannel::new(
                        rx,
                        origin(p, address),
                        edge.target_input as usize,
                    ));
                } else {
                    registry.register(key(edge, p, c), rx, metrics[&(v, p)].clone());
                }
            }
            let hasher = if partitioning == Partitioning::Hash {
                let schema = decode_schema(&edge.schema)?;
                let columns: Vec<usize> = edge.key_columns.iter().map(|&c| c as usize).collect();
                Some(KeyHasher::new(&schema, &columns)?)
            } else {
                None
            };
            outputs.entry((v, p)).or_default().push(EdgeOutput::new(partitioning, hasher, channels, p as usize));
        }

        // Consumers on this task manager reading remote producers.
        for &(_, c) in mine.iter().filter(|(v, _)| *v == to.id) {
            let producers: Vec<u32> = if forward { vec![c] } else { (0..from.parallelism).collect() };
            for p in producers {
                let (address, producer_tm) = locate(from.id, p)?;
                if producer_tm == me {
                    continue;
                }
                let (tx, rx) = mpsc::channel(limits.channel_capacity);
                inputs.entry((to.id, c)).or_default().push(InputChannel::new(
                    rx,
                    origin(p, address),
                    edge.target_input as usize,
                ));
                remote_inputs.push(RemoteInput {
                    address: address.to_string(),
                    key: key(edge, p, c),
                    tx,
                    metrics: metrics[&(edge.target_vertex, c)].clone(),
                });
            }
        }
    }

    let mut tasks = Vec::new();
    for task_id in &request.tasks {
        let vertex = graph
            .vertices
            .get(task_id.vertex_id as usize)
            .ok_or_else(|| TaskError::Deployment(format!("unknown vertex {}", task_id.vertex_id)))?;
        let k = (task_id.vertex_id, task_id.subtask);
        let has_inputs = graph.edges.iter().any(|e| e.target_vertex == vertex.id);
        let (head, source_uid, rest) = if has_inputs {
            let channels = inputs.remove(&k).unwrap_or_default();
            (Head::Inputs(InputGate::new(channels)), None, &vertex.operators[..])
        } else {
            let source = &vertex.operators[0];
            (Head::Source(build_source(source, build)?), Some(source.uid.clone()), &vertex.operators[1..])
        };
        let chain = rest.iter().map(|op| build_operator(op, build)).collect::<Result<Vec<_>, _>>()?;
        let uids = rest.iter().map(|op| op.uid.clone()).collect();
        let ctx = TaskContext {
            job_id: request.job_id.clone(),
            vertex_id: vertex.id,
            subtask: task_id.subtask,
            parallelism: vertex.parallelism,
            attempt: request.attempt,
            task_name: format!("{} ({}/{})", vertex.name, task_id.subtask + 1, vertex.parallelism),
            checkpointing: storage.is_some(),
            max_parallelism: limits.max_parallelism,
            wake: std::sync::Arc::new(tokio::sync::Notify::new()),
        };
        let task_metrics = metrics[&k].clone();
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let checkpointing = TaskCheckpointing {
            commands: commands_rx,
            events: events_tx,
            storage: storage.clone(),
            restore: restores.remove(&k).or_else(|| (request.restored_checkpoint_id != 0).then(Default::default)),
            local_dir: local_dir.join(format!("{}-{}", request.job_id, request.attempt)),
            restored_checkpoint: request.restored_checkpoint_id,
            memory_threshold,
        };
        let task = Task {
            ctx,
            head,
            source_uid,
            chain: Chain::new(chain, uids),
            outputs: Outputs::new(outputs.remove(&k).unwrap_or_default(), limits, task_metrics.clone()),
            metrics: task_metrics.clone(),
            checkpointing,
            unbarriered: None,
            notified: 0,
            stopped_at: None,
            metrics_published: std::time::Instant::now(),
            idle_timeout,
        };
        tasks.push(PreparedTask {
            id: task_id.clone(),
            task,
            metrics: task_metrics,
            commands: commands_tx,
            events: events_rx,
        });
    }
    Ok(Prepared { tasks, remote_inputs })
}

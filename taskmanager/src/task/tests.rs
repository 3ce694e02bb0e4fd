//! The task loop with a source head and with an input gate: rows, barriers and the
//! operators' snapshots in the acknowledgement, the final checkpoint after the end of
//! input, a trigger whose barrier never came, stop-with-savepoint, and operator timers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{AsArray, Int64Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use async_trait::async_trait;
use sluice_core::{Collector, OperatorState, Result as OpResult, SourcePoll};
use sluice_proto::{Partitioning, TaskSnapshot};
use tokio::sync::mpsc;

use super::*;
use crate::input::InputChannel;
use crate::output::{ChannelWriter, EdgeOutput, ExchangeLimits};

type Log = Arc<Mutex<Vec<String>>>;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]))
}

fn batch(values: &[i64]) -> RecordBatch {
    RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
}

/// A source of the batches sent to it; it ends when its feed closes. Its state is the
/// number of rows emitted.
struct Fed {
    feed: mpsc::UnboundedReceiver<Vec<i64>>,
    emitted: u64,
}

#[async_trait]
impl Source for Fed {
    async fn poll_next(&mut self) -> OpResult<SourcePoll> {
        match self.feed.try_recv() {
            Ok(values) => {
                self.emitted += values.len() as u64;
                Ok(SourcePoll::Batch(batch(&values)))
            }
            Err(mpsc::error::TryRecvError::Empty) => {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok(SourcePoll::Idle)
            }
            Err(mpsc::error::TryRecvError::Disconnected) => Ok(SourcePoll::Finished),
        }
    }

    async fn snapshot_state(&mut self, _checkpoint_id: u64) -> OpResult<OperatorState> {
        Ok(OperatorState::split(vec![self.emitted.to_le_bytes().to_vec()]))
    }
}

/// Passes rows on and counts them; its state is the count. It logs what the task calls,
/// and with `tick` emits a row of -1 that long after each batch (a timer).
struct Counting {
    rows: u64,
    log: Log,
    tick: Option<Duration>,
    due: Option<tokio::time::Instant>,
}

impl Counting {
    fn new(log: &Log) -> Box<Self> {
        Box::new(Counting { rows: 0, log: log.clone(), tick: None, due: None })
    }

    fn note(&self, what: String) {
        self.log.lock().unwrap().push(what);
    }
}

#[async_trait]
impl Operator for Counting {
    async fn process_batch(&mut self, batch: RecordBatch, out: &mut Collector) -> OpResult<()> {
        self.rows += batch.num_rows() as u64;
        self.due = self.tick.map(|t| tokio::time::Instant::now() + t);
        out.batch(batch);
        Ok(())
    }

    fn deadline(&self) -> Option<tokio::time::Instant> {
        self.due
    }

    async fn on_timer(&mut self, out: &mut Collector) -> OpResult<()> {
        self.due = None;
        out.batch(batch(&[-1]));
        Ok(())
    }

    async fn snapshot_state(&mut self, checkpoint_id: u64) -> OpResult<OperatorState> {
        self.note(format!("snapshot {checkpoint_id} at {} rows", self.rows));
        Ok(OperatorState::split(vec![self.rows.to_le_bytes().to_vec()]))
    }

    async fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> OpResult<()> {
        self.note(format!("complete {checkpoint_id}"));
        Ok(())
    }

    async fn stop_with_savepoint(&mut self) -> OpResult<()> {
        self.note("stop".into());
        Ok(())
    }
}

/// A task under test: its command and event channels and its output.
struct Running {
    commands: mpsc::UnboundedSender<TaskCommand>,
    events: mpsc::UnboundedReceiver<TaskEvent>,
    output: mpsc::Receiver<Message>,
    handle: tokio::task::JoinHandle<Result<(), TaskError>>,
    _dir: tempfile::TempDir,
}

/// Starts a task with `head` and `chain`, checkpointing into a temporary directory when
/// `checkpoints`.
fn start(head: Head, chain: Vec<Box<dyn Operator>>, checkpoints: bool) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let (commands_tx, commands) = mpsc::unbounded_channel();
    let (events, events_rx) = mpsc::unbounded_channel();
    let (out_tx, output) = mpsc::channel(1024);
    let limits = ExchangeLimits { batch_rows: 1000, linger: Duration::from_millis(1), ..Default::default() };
    let metrics = Arc::new(crate::metrics::TaskMetrics::default());
    let edge = EdgeOutput::new(Partitioning::Forward, None, vec![ChannelWriter::new(out_tx)], 0);
    let source_uid = matches!(head, Head::Source(_)).then(|| "source".to_string());
    let uids = (0..chain.len()).map(|i| format!("op{i}")).collect();
    let mut ctx = TaskContext::single("test");
    ctx.checkpointing = checkpoints;
    let task = Task {
        ctx,
        head,
        source_uid,
        chain: Chain::new(chain, uids),
        outputs: Outputs::new(vec![edge], limits, metrics.clone()),
        metrics,
        checkpointing: TaskCheckpointing {
            commands,
            events,
            storage: checkpoints
                .then(|| CheckpointStorage { job_dir: sluice_storage::Location::local(dir.path().join("job")) }),
            restore: None,
            restored_checkpoint: 0,
            local_dir: dir.path().join("local"),
            memory_threshold: 1 << 20,
        },
        unbarriered: None,
        notified: 0,
        stopped_at: None,
        metrics_published: Instant::now(),
        idle_timeout: None,
    };
    Running { commands: commands_tx, events: events_rx, output, handle: tokio::spawn(task.run()), _dir: dir }
}

impl Running {
    /// The next message the task sends; a task that sends nothing fails the test.
    async fn next_output(&mut self) -> Message {
        tokio::time::timeout(Duration::from_secs(10), self.output.recv())
            .await
            .expect("the task sent nothing")
            .expect("the task's output closed")
    }

    /// The next event the task reports.
    async fn next_event(&mut self) -> TaskEvent {
        tokio::time::timeout(Duration::from_secs(10), self.events.recv())
            .await
            .expect("the task reported nothing")
            .expect("the task's events closed")
    }

    fn trigger(&self, checkpoint_id: u64, last_completed: u64, stop: bool) {
        let all_ended = true;
        self.commands
            .send(TaskCommand::Trigger { checkpoint_id, timestamp_ms: 1, last_completed, stop, all_ended })
            .unwrap();
    }

    /// Waits for the task to end.
    async fn finished(self) {
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("the task did not finish")
            .unwrap()
            .unwrap();
    }
}

/// A message as text: `[1,2]`, `barrier 1`, `watermark 5`, `end`.
fn describe(message: &Message) -> String {
    match message {
        Message::Data(b) => format!("{:?}", b.column(0).as_primitive::<Int64Type>().values().to_vec()),
        Message::Barrier(b) => format!("barrier {}", b.checkpoint_id),
        Message::Watermark(w) => format!("watermark {w}"),
        Message::Idle => "idle".into(),
        Message::EndOfInput => "end".into(),
        Message::SplitsAssigned(splits) => format!("splits {}", splits.join(",")),
    }
}

/// The single-entry counter of each operator in a snapshot, by uid.
fn counters(snapshot: &TaskSnapshot) -> Vec<(String, u64)> {
    snapshot
        .operators
        .iter()
        .map(|o| {
            let entry = &o.lists[0].entries[0];
            (o.uid.clone(), u64::from_le_bytes(entry[..8].try_into().unwrap()))
        })
        .collect()
}

fn acked(event: TaskEvent) -> (u64, Vec<(String, u64)>) {
    match event {
        TaskEvent::Ack { checkpoint_id, snapshot, .. } => (checkpoint_id, counters(&snapshot)),
        other => panic!("expected an acknowledgement, got {other:?}"),
    }
}

fn counted(uid_counts: &[(&str, u64)]) -> Vec<(String, u64)> {
    uid_counts.iter().map(|(u, c)| (u.to_string(), *c)).collect()
}

#[tokio::test]
async fn a_source_task_emits_its_barrier_between_batches_and_finishes_after_its_final_checkpoint() {
    let log = Log::default();
    let (feed, rx) = mpsc::unbounded_channel();
    let mut task = start(Head::Source(Box::new(Fed { feed: rx, emitted: 0 })), vec![Counting::new(&log)], true);
    feed.send(vec![1, 2, 3]).unwrap();
    assert_eq!(describe(&task.next_output().await), "[1, 2, 3]");
    task.trigger(1, 0, false);
    assert_eq!(describe(&task.next_output().await), "barrier 1");
    feed.send(vec![4, 5]).unwrap();
    assert_eq!(describe(&task.next_output().await), "[4, 5]");
    assert_eq!(acked(task.next_event().await), (1, counted(&[("source", 3), ("op0", 3)])));

    drop(feed);
    assert_eq!(describe(&task.next_output().await), format!("watermark {}", i64::MAX));
    assert_eq!(describe(&task.next_output().await), "end");
    assert!(matches!(task.next_event().await, TaskEvent::Ended));
    // The final checkpoint holds everything; the task ends once it completes.
    task.trigger(2, 1, false);
    assert_eq!(acked(task.next_event().await), (2, counted(&[("source", 5), ("op0", 5)])));
    task.commands.send(TaskCommand::Complete(2)).unwrap();
    task.finished().await;
    assert_eq!(
        *log.lock().unwrap(),
        ["snapshot 1 at 3 rows", "complete 1", "snapshot 2 at 5 rows", "complete 2"],
        "each checkpoint is snapshotted once and committed once, in order"
    );
}

#[tokio::test]
async fn an_input_task_aligns_barriers_across_its_channels_before_it_snapshots() {
    let log = Log::default();
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..2).map(|_| mpsc::channel(16)).unzip();
    let channels = rxs.into_iter().enumerate().map(|(i, rx)| InputChannel::new(rx, format!("input {i}"), 0));
    let gate = InputGate::new(channels.collect());
    let mut task = start(Head::Inputs(gate), vec![Counting::new(&log), Counting::new(&log)], true);
    let barrier = |id| Message::Barrier(Barrier { checkpoint_id: id, timestamp_ms: 1, last_completed: 0 });

    txs[0].send(Message::Data(batch(&[1]))).await.unwrap();
    assert_eq!(describe(&task.next_output().await), "[1]");
    txs[0].send(barrier(1)).await.unwrap();
    // Rows after the barrier on channel 0 wait until channel 1's barrier arrives.
    txs[0].send(Message::Data(batch(&[10, 11]))).await.unwrap();
    txs[1].send(Message::Data(batch(&[2, 3]))).await.unwrap();
    assert_eq!(describe(&task.next_output().await), "[2, 3]");
    txs[1].send(barrier(1)).await.unwrap();
    assert_eq!(describe(&task.next_output().await), "barrier 1");
    assert_eq!(describe(&task.next_output().await), "[10, 11]");
    assert_eq!(acked(task.next_event().await), (1, counted(&[("op0", 3), ("op1", 3)])));

    // A checkpoint triggered whose barrier never comes (the input ends first) is taken at
    // the end of input, with the final state.
    task.trigger(2, 1, false);
    for tx in &txs {
        tx.send(Message::EndOfInput).await.unwrap();
    }
    assert_eq!(describe(&task.next_output().await), "end");
    assert!(matches!(task.next_event().await, TaskEvent::Ended));
    assert_eq!(acked(task.next_event().await), (2, counted(&[("op0", 5), ("op1", 5)])));
    task.commands.send(TaskCommand::Complete(2)).unwrap();
    task.finished().await;
}

#[tokio::test]
async fn a_source_stopped_with_a_savepoint_emits_nothing_after_its_barrier_and_parks() {
    let log = Log::default();
    let (feed, rx) = mpsc::unbounded_channel();
    let mut task = start(Head::Source(Box::new(Fed { feed: rx, emitted: 0 })), vec![Counting::new(&log)], true);
    feed.send(vec![1]).unwrap();
    assert_eq!(describe(&task.next_output().await), "[1]");
    task.trigger(1, 0, true);
    assert_eq!(describe(&task.next_output().await), "barrier 1");
    feed.send(vec![2]).unwrap();
    assert_eq!(acked(task.next_event().await), (1, counted(&[("source", 1), ("op0", 1)])));
    task.commands.send(TaskCommand::Complete(1)).unwrap();
    let (parked, done) = tokio::sync::oneshot::channel();
    task.commands.send(TaskCommand::Park(parked)).unwrap();
    tokio::time::timeout(Duration::from_secs(10), done).await.expect("the task did not park").unwrap();
    assert!(task.output.try_recv().is_err(), "nothing leaves after the savepoint's barrier");
    assert_eq!(*log.lock().unwrap(), ["snapshot 1 at 1 rows", "complete 1", "stop"]);
    assert!(!task.handle.is_finished(), "a parked task waits to be canceled");
    task.handle.abort();
}

#[tokio::test]
async fn an_operator_timer_fires_while_the_input_is_quiet() {
    let log = Log::default();
    let (tx, rx) = mpsc::channel(16);
    let gate = InputGate::new(vec![InputChannel::new(rx, "input".into(), 0)]);
    let mut ticking = Counting::new(&log);
    ticking.tick = Some(Duration::from_millis(20));
    let mut task = start(Head::Inputs(gate), vec![ticking], false);
    tx.send(Message::Data(batch(&[7]))).await.unwrap();
    assert_eq!(describe(&task.next_output().await), "[7]");
    assert_eq!(describe(&task.next_output().await), "[-1]", "the timer's row follows with no further input");
    tx.send(Message::EndOfInput).await.unwrap();
    assert_eq!(describe(&task.next_output().await), "end");
    task.finished().await;
}

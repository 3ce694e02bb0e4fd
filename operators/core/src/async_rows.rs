//! The machinery of async operators: rows whose output waits on a request to another
//! system (a remote model, a database lookup, a Python worker), with many requests in
//! flight and the task never blocked on one.
//!
//! [`AsyncRows`] holds each admitted row in a slot numbered in input order, groups queued
//! rows into requests of `batch_size`, and runs each request as a tokio task under an
//! in-flight bound. A request that finishes frees its permit at once, so the next queued
//! request starts without waiting for the operator's task loop (the loop only collects
//! results); [`AsyncRows::accepts_input`] keeps twice the in-flight bound queued so there
//! always is a next one. Rows leave in input order (`ordered`) or as they finish, and a
//! watermark leaves only after every row that came before it. Rows that share a key
//! (`share`) while one of them is in flight wait for its result instead of asking again.
//! An operator whose requests are batches of rows (a Python worker) may hold a run of
//! consecutive rows of one input batch in a slot ([`AsyncRows::admit_run`]), so that the
//! cost of a slot is paid per run rather than per row.
//!
//! A barrier never waits for a request: [`AsyncRows::snapshot`] writes every held row,
//! with its attempts and its result when known, and a restore admits them again
//! ([`AsyncRows::decode_snapshot`]), re-issuing the unanswered ones.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::state::{put_bytes, Reader};
use crate::{OperatorError, Result};

/// Held rows (answered or not) per row that may wait for an answer: with ordered output,
/// answered rows wait behind a slower earlier one, and without this slack one slow request
/// would empty the pipeline.
const HELD_PER_WAITING_ROW: usize = 2;

/// One request's work: one result per slot (a row, or a run of rows), in the slots' order.
pub type Work<T> = Pin<Box<dyn Future<Output = Vec<T>> + Send>>;

/// Makes a request's work from its rows' requests and their shared attempt counter.
pub type StartWork<'a, Q, T> = dyn FnMut(Vec<&Q>, Arc<AtomicU32>) -> Work<T> + Send + 'a;

/// Sees each asked row with its fresh result (to cache it).
pub type OnResult<'a, Q, T> = dyn FnMut(&HeldRow<Q, T>, &T) -> Result<()> + Send + 'a;

/// Encodes what a held row needs to be admitted again (given its attempts so far).
pub type EncodeHeld<'a, Q, T> = dyn Fn(&HeldRow<Q, T>, u32) -> Vec<u8> + 'a;

/// How an async operator runs its requests.
#[derive(Debug, Clone, Copy)]
pub struct AsyncSettings {
    /// Rows leave in input order (true) or as their requests finish.
    pub ordered: bool,
    /// Rows per request.
    pub batch_size: usize,
    /// How long a partial request waits for more rows before it is sent anyway.
    pub linger: Duration,
    /// Requests in flight at most.
    pub max_in_flight: usize,
}

/// One held row, or run of consecutive rows.
pub struct HeldRow<Q, T> {
    /// The input row (a one-row batch), or the rows of a run.
    pub row: RecordBatch,
    /// Its key group (where state about it lives).
    pub key_group: u32,
    /// What to ask for it.
    pub request: Q,
    /// Attempts so far, kept up to date by the request's task.
    pub attempts: Arc<AtomicU32>,
    /// Its result, once known.
    pub result: Option<T>,
    /// The key rows with the same request share (one of them is asked).
    pub share: Option<String>,
}

/// A finished request.
struct Completion<T> {
    seqs: Vec<u64>,
    results: Vec<T>,
}

/// What may leave the operator now, in this order.
pub struct Ready<Q, T> {
    /// Rows with their results.
    pub rows: Vec<HeldRow<Q, T>>,
    /// Watermarks no row holds back any more.
    pub watermarks: Vec<i64>,
}

/// The held rows and requests of one async operator subtask.
pub struct AsyncRows<Q, T> {
    settings: AsyncSettings,
    slots: BTreeMap<u64, HeldRow<Q, T>>,
    /// Rows held, answered or not.
    held: usize,
    /// Rows still waiting for their result.
    unanswered: usize,
    next_seq: u64,
    unsent: Vec<u64>,
    /// Rows of the slots in `unsent`.
    unsent_rows: usize,
    oldest_unsent: Option<Instant>,
    completions_tx: mpsc::UnboundedSender<Completion<T>>,
    completions: mpsc::UnboundedReceiver<Completion<T>>,
    requests: JoinSet<()>,
    in_flight: Arc<Semaphore>,
    /// Watermarks waiting for the rows before them: (the first seq after it, watermark).
    watermarks: VecDeque<(u64, i64)>,
    /// Rows waiting for the result of a row in flight with the same share key.
    followers: HashMap<String, Vec<u64>>,
    wake: Arc<Notify>,
}

impl<Q: Send + 'static, T: Clone + Send + 'static> AsyncRows<Q, T> {
    /// Empty, with `settings`; finished requests wake `wake` (the task loop's).
    pub fn new(settings: AsyncSettings, wake: Arc<Notify>) -> Self {
        let settings = AsyncSettings {
            batch_size: settings.batch_size.max(1),
            max_in_flight: settings.max_in_flight.max(1),
            ..settings
        };
        let (completions_tx, completions) = mpsc::unbounded_channel();
        AsyncRows {
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
            settings,
            slots: BTreeMap::new(),
            held: 0,
            unanswered: 0,
            next_seq: 0,
            unsent: Vec::new(),
            unsent_rows: 0,
            oldest_unsent: None,
            completions_tx,
            completions,
            requests: JoinSet::new(),
            watermarks: VecDeque::new(),
            followers: HashMap::new(),
            wake,
        }
    }

    /// Finished requests wake `wake` from now on.
    pub fn set_wake(&mut self, wake: Arc<Notify>) {
        self.wake = wake;
    }

    /// Rows that may wait for a result: the in-flight bound's worth of requests.
    fn capacity(&self) -> usize {
        self.settings.max_in_flight * self.settings.batch_size
    }

    /// False while full: twice the in-flight bound's rows wait for results (so a finished
    /// request is replaced at once from the queue), or too many rows are held.
    pub fn accepts_input(&self) -> bool {
        self.unanswered < 2 * self.capacity() && self.held < 2 * HELD_PER_WAITING_ROW * self.capacity()
    }

    /// Takes in a row. With `result` it is already answered (a restored answer, a cached
    /// one, or a failure found before asking); with a `share` key already in flight it
    /// waits for that request; otherwise it is queued with `attempts` made so far.
    pub fn admit(
        &mut self,
        row: RecordBatch,
        key_group: u32,
        request: Q,
        attempts: u32,
        result: Option<T>,
        share: Option<String>,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let n = row.num_rows();
        self.held += n;
        let mut share = share;
        if result.is_none() {
            self.unanswered += n;
            match share.as_ref().and_then(|k| self.followers.get_mut(k)) {
                Some(waiting) => {
                    waiting.push(seq);
                    share = None;
                }
                None => {
                    if let Some(key) = &share {
                        self.followers.insert(key.clone(), Vec::new());
                    }
                    self.unsent.push(seq);
                    self.unsent_rows += n;
                    self.oldest_unsent.get_or_insert_with(Instant::now);
                }
            }
        } else {
            share = None;
        }
        let attempts = Arc::new(AtomicU32::new(attempts));
        self.slots.insert(seq, HeldRow { row, key_group, request, attempts, result, share });
    }

    /// Takes in a run of consecutive rows (`rows`, with `request` for all of them), queued
    /// with `attempts` made so far; it gets one result. A run must not be longer than
    /// [`room`](Self::room): a request holds whole runs, so the operator splits its input
    /// batches at the rows that `room` gives.
    pub fn admit_run(&mut self, rows: RecordBatch, request: Q, attempts: u32) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let n = rows.num_rows();
        if n == 0 {
            return;
        }
        self.held += n;
        self.unanswered += n;
        self.unsent.push(seq);
        self.unsent_rows += n;
        self.oldest_unsent.get_or_insert_with(Instant::now);
        let attempts = Arc::new(AtomicU32::new(attempts));
        self.slots.insert(seq, HeldRow { row: rows, key_group: 0, request, attempts, result: None, share: None });
    }

    /// How many rows the next run may have: what the request being filled still takes.
    pub fn room(&self) -> usize {
        self.settings.batch_size - self.unsent_rows % self.settings.batch_size
    }

    /// True when `share` is being asked: a row with it would wait for that answer.
    pub fn is_shared(&self, share: &str) -> bool {
        self.followers.contains_key(share)
    }

    /// Sends queued rows as requests: whole requests, or everything when `all`. `start`
    /// makes a request's work from its rows and their shared attempt counter.
    pub fn dispatch(&mut self, all: bool, start: &mut StartWork<'_, Q, T>) {
        let size = self.settings.batch_size;
        while self.unsent_rows >= size || (all && !self.unsent.is_empty()) {
            // Whole slots up to `size` rows (runs are cut to fit, so a full request has
            // exactly `size`).
            let mut rows = 0;
            let mut take = 0;
            for seq in &self.unsent {
                let n = self.slots.get(seq).map_or(0, |s| s.row.num_rows());
                if take > 0 && rows + n > size {
                    break;
                }
                rows += n;
                take += 1;
            }
            self.unsent_rows -= rows;
            let seqs: Vec<u64> = self.unsent.drain(..take).collect();
            let attempts = self.slots[&seqs[0]].attempts.clone();
            for seq in &seqs[1..] {
                if let Some(slot) = self.slots.get_mut(seq) {
                    slot.attempts = attempts.clone();
                }
            }
            let work = start(seqs.iter().map(|s| &self.slots[s].request).collect(), attempts);
            let (tx, wake, permits) = (self.completions_tx.clone(), self.wake.clone(), self.in_flight.clone());
            self.requests.spawn(async move {
                let results = {
                    // Released when the work is done: the next queued request starts at once.
                    let _permit = permits.acquire_owned().await;
                    work.await
                };
                let _ = tx.send(Completion { seqs, results });
                wake.notify_one();
            });
        }
        self.oldest_unsent = if self.unsent.is_empty() { None } else { self.oldest_unsent };
    }

    /// Takes in every finished request without waiting: each result goes to its row and
    /// the rows sharing its key; `on_result` sees each asked row with its result first
    /// (to cache it).
    pub fn collect(&mut self, on_result: &mut OnResult<'_, Q, T>) -> Result<()> {
        while let Ok(completion) = self.completions.try_recv() {
            self.complete(completion, on_result)?;
        }
        // Finished request tasks leave the set (they reported through the channel).
        while self.requests.try_join_next().is_some() {}
        Ok(())
    }

    fn complete(&mut self, completion: Completion<T>, on_result: &mut OnResult<'_, Q, T>) -> Result<()> {
        if completion.results.len() != completion.seqs.len() {
            return Err(OperatorError::InvalidPlan(format!(
                "a request for {} rows produced {} results",
                completion.seqs.len(),
                completion.results.len()
            )));
        }
        for (seq, result) in completion.seqs.into_iter().zip(completion.results) {
            let Some(slot) = self.slots.get_mut(&seq) else { continue };
            on_result(slot, &result)?;
            let followers = slot.share.take().and_then(|k| self.followers.remove(&k)).unwrap_or_default();
            for follower in followers {
                if let Some(slot) = self.slots.get_mut(&follower) {
                    if slot.result.replace(result.clone()).is_none() {
                        self.unanswered -= slot.row.num_rows();
                    }
                }
            }
            // The asked row takes the result itself (an embedding is not copied).
            if let Some(slot) = self.slots.get_mut(&seq) {
                if slot.result.replace(result).is_none() {
                    self.unanswered -= slot.row.num_rows();
                }
            }
        }
        Ok(())
    }

    /// Sends everything queued, then waits for one request to finish and takes it in.
    pub async fn collect_one(
        &mut self,
        start: &mut StartWork<'_, Q, T>,
        on_result: &mut OnResult<'_, Q, T>,
    ) -> Result<()> {
        self.dispatch(true, start);
        match self.completions.recv().await {
            Some(completion) => self.complete(completion, on_result),
            None => Err(OperatorError::InvalidPlan("the request tasks stopped".into())),
        }
    }

    /// A watermark arrived: it leaves after every row admitted before it.
    pub fn watermark(&mut self, watermark: i64) {
        self.watermarks.push_back((self.next_seq, watermark));
    }

    /// Removes and returns the rows that may leave (the answered prefix when ordered, every
    /// answered row otherwise) and the watermarks they no longer hold back.
    pub fn take_ready(&mut self) -> Ready<Q, T> {
        let ready: Vec<u64> = if self.settings.ordered {
            self.slots.iter().take_while(|(_, s)| s.result.is_some()).map(|(k, _)| *k).collect()
        } else {
            self.slots.iter().filter(|(_, s)| s.result.is_some()).map(|(k, _)| *k).collect()
        };
        let rows: Vec<HeldRow<Q, T>> = ready.iter().filter_map(|seq| self.slots.remove(seq)).collect();
        self.held -= rows.iter().map(|r| r.row.num_rows()).sum::<usize>();
        let oldest = self.slots.keys().next().copied();
        let mut watermarks = Vec::new();
        while let Some(&(boundary, watermark)) = self.watermarks.front() {
            if oldest.is_some_and(|o| o < boundary) {
                break;
            }
            watermarks.push(watermark);
            self.watermarks.pop_front();
        }
        Ready { rows, watermarks }
    }

    /// The watermarks still held (at the end of input, once every row has left).
    pub fn drain_watermarks(&mut self) -> Vec<i64> {
        self.watermarks.drain(..).map(|(_, w)| w).collect()
    }

    /// When the operator's timer should run: now when results are waiting, or when a
    /// partial request's linger ends.
    pub fn deadline(&self) -> Option<Instant> {
        if !self.completions.is_empty() {
            return Some(Instant::now());
        }
        self.oldest_unsent.map(|t| t + self.settings.linger)
    }

    /// True when a partial request has waited its linger.
    pub fn linger_passed(&self) -> bool {
        self.oldest_unsent.is_some_and(|t| t + self.settings.linger <= Instant::now())
    }

    /// Rows held, answered or not.
    pub fn len(&self) -> usize {
        self.held
    }

    /// True when no row is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Rows waiting for their result.
    pub fn unanswered(&self) -> usize {
        self.unanswered
    }

    /// The held rows as one checkpoint entry: `meta` encodes each row's attempts and
    /// result (whatever the operator needs to admit it again; a run's rows each get its
    /// meta), the rows go as Arrow IPC.
    pub fn snapshot(&self, schema: &SchemaRef, meta: &EncodeHeld<'_, Q, T>) -> Result<Vec<u8>> {
        let arrow = |e| OperatorError::arrow("async operator state", e);
        let mut out = Vec::new();
        out.extend_from_slice(&(self.slots.values().map(|s| s.row.num_rows()).sum::<usize>() as u64).to_le_bytes());
        for slot in self.slots.values() {
            let encoded = meta(slot, slot.attempts.load(Ordering::Relaxed));
            for _ in 0..slot.row.num_rows() {
                put_bytes(&mut out, &encoded);
            }
        }
        let rows: Vec<RecordBatch> = self.slots.values().map(|s| s.row.clone()).collect();
        let mut ipc = Vec::new();
        {
            let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut ipc, schema).map_err(arrow)?;
            if !rows.is_empty() {
                writer.write(&arrow::compute::concat_batches(schema, &rows).map_err(arrow)?).map_err(arrow)?;
            }
            writer.finish().map_err(arrow)?;
        }
        put_bytes(&mut out, &ipc);
        Ok(out)
    }

    /// The rows of a [`snapshot`](Self::snapshot) entry, each with its `meta` bytes, in
    /// their old order: the operator admits them again.
    pub fn decode_snapshot(schema: &SchemaRef, entry: &[u8]) -> Result<Vec<(RecordBatch, Vec<u8>)>> {
        let corrupt = |what: String| OperatorError::State(format!("the checkpointed requests are unreadable: {what}"));
        let mut reader = Reader::new(entry, "async operator");
        let n = reader.u64()? as usize;
        let metas = (0..n).map(|_| reader.bytes().map(<[u8]>::to_vec)).collect::<Result<Vec<_>>>()?;
        let ipc = reader.bytes()?;
        let mut batches = Vec::new();
        for batch in arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None)
            .map_err(|e| corrupt(e.to_string()))?
        {
            batches.push(batch.map_err(|e| corrupt(e.to_string()))?);
        }
        let all = arrow::compute::concat_batches(schema, &batches).map_err(|e| corrupt(e.to_string()))?;
        if all.num_rows() != metas.len() {
            return Err(corrupt(format!("{} rows for {} entries", all.num_rows(), metas.len())));
        }
        Ok(metas.into_iter().enumerate().map(|(i, m)| (all.slice(i, 1), m)).collect())
    }
}

#[cfg(test)]
mod tests;

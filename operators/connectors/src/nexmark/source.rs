//! The running nexmark source: each subtask walks its [`Lane`]s of the event sequence,
//! keeps the events of its table's kind, and builds them into batches of the declared
//! columns. With `max-emit-speed` = false an event is emitted once the wall-clock time
//! since the source opened reaches its event-time offset.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use sluice_core::{OperatorError, OperatorState, Result, Source, SourcePoll, StateInit, TaskContext};
use tokio::time::Instant;

use super::generator::{Event, Generator};
use super::{fields, FieldType, NexmarkTable};
use crate::lanes::Lane;

/// Longest an idle poll waits.
const IDLE_WAIT: Duration = Duration::from_millis(20);
/// Event numbers one poll looks through at most, per batch row (a `person` table keeps one
/// event in fifty).
const SCAN_PER_ROW: usize = 64;

/// A running nexmark source subtask.
pub struct NexmarkSource {
    table: NexmarkTable,
    generator: Generator,
    batch_rows: usize,
    lanes: Vec<Lane>,
    restored: Option<Vec<Lane>>,
    next_lane: usize,
    /// When the source opened (for pacing).
    opened: Instant,
}

impl NexmarkSource {
    /// A source of `table`'s events in batches of at most `batch_rows` rows.
    pub fn new(table: NexmarkTable, batch_rows: usize) -> Self {
        let generator = Generator::new(table.config.clone());
        NexmarkSource {
            table,
            generator,
            batch_rows: batch_rows.max(1),
            lanes: Vec::new(),
            restored: None,
            next_lane: 0,
            opened: Instant::now(),
        }
    }

    /// The event-time offset the pace has reached (`None`: not paced).
    fn paced_until_ms(&self) -> Option<i64> {
        (!self.table.max_emit_speed).then(|| self.table.config.base_time_ms + self.opened.elapsed().as_millis() as i64)
    }

    /// Walks lane `index` from its position, collecting up to a batch of events of the
    /// table's kind; returns them and whether the pace stopped the walk.
    fn collect(&mut self, index: usize) -> (Vec<Event>, bool) {
        let total = self.generator.max_events();
        let paced = self.paced_until_ms();
        let lane = self.lanes[index];
        let scan = lane.remaining(total).min((self.batch_rows * SCAN_PER_ROW) as u64);
        let mut events = Vec::with_capacity(self.batch_rows);
        let mut walked = 0;
        let mut held = false;
        while walked < scan && events.len() < self.batch_rows {
            let n = lane.item(walked);
            if paced.is_some_and(|until| self.generator.timestamp(n) > until) {
                held = true;
                break;
            }
            if self.generator.kind(n) == self.table.kind {
                events.push(self.generator.event(n));
            }
            walked += 1;
        }
        self.lanes[index].position += walked;
        (events, held)
    }

    fn batch(&self, events: &[Event]) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = self.table.columns.iter().map(|&c| column(self.table.kind, c, events)).collect();
        RecordBatch::try_new(self.table.schema.clone(), columns)
            .map_err(|e| OperatorError::arrow("nexmark cannot build a batch", e))
    }
}

/// The values of field `position` of `kind` over `events` (all of that kind).
fn column(kind: super::generator::EventKind, position: usize, events: &[Event]) -> ArrayRef {
    let (name, field_type) = fields(kind)[position];
    match field_type {
        FieldType::Bigint => Arc::new(events.iter().map(|e| integer(e, name)).collect::<Int64Array>()),
        FieldType::Time => Arc::new(events.iter().map(|e| integer(e, name)).collect::<TimestampMillisecondArray>()),
        FieldType::Text => Arc::new(events.iter().map(|e| Some(text(e, name))).collect::<StringArray>()),
    }
}

/// An integer or time field of an event, by its name in [`fields`].
fn integer(event: &Event, name: &str) -> Option<i64> {
    Some(match (event, name) {
        (Event::Person(p), "id") => p.id,
        (Event::Person(p), "dateTime") => p.date_time,
        (Event::Auction(a), "id") => a.id,
        (Event::Auction(a), "initialBid") => a.initial_bid,
        (Event::Auction(a), "reserve") => a.reserve,
        (Event::Auction(a), "dateTime") => a.date_time,
        (Event::Auction(a), "expires") => a.expires,
        (Event::Auction(a), "seller") => a.seller,
        (Event::Auction(a), "category") => a.category,
        (Event::Bid(b), "auction") => b.auction,
        (Event::Bid(b), "bidder") => b.bidder,
        (Event::Bid(b), "price") => b.price,
        (Event::Bid(b), "dateTime") => b.date_time,
        _ => return None,
    })
}

/// A text field of an event, by its name in [`fields`].
fn text<'e>(event: &'e Event, name: &str) -> &'e str {
    match (event, name) {
        (Event::Person(p), "name") => &p.name,
        (Event::Person(p), "emailAddress") => &p.email_address,
        (Event::Person(p), "creditCard") => &p.credit_card,
        (Event::Person(p), "city") => &p.city,
        (Event::Person(p), "state") => &p.state,
        (Event::Person(p), "extra") => &p.extra,
        (Event::Auction(a), "itemName") => &a.item_name,
        (Event::Auction(a), "description") => &a.description,
        (Event::Auction(a), "extra") => &a.extra,
        (Event::Bid(b), "channel") => &b.channel,
        (Event::Bid(b), "url") => &b.url,
        (Event::Bid(b), "extra") => &b.extra,
        _ => "",
    }
}

#[async_trait]
impl Source for NexmarkSource {
    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        if init.restored {
            self.restored = Some(init.entries().iter().map(|e| Lane::decode(e, "nexmark")).collect::<Result<_>>()?);
        }
        Ok(())
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        self.lanes = match self.restored.take() {
            Some(lanes) => lanes,
            None => vec![Lane::fresh(ctx.subtask, ctx.parallelism)],
        };
        self.opened = Instant::now();
        Ok(())
    }

    async fn poll_next(&mut self) -> Result<SourcePoll> {
        let total = self.generator.max_events();
        let lanes = self.lanes.len();
        let Some(index) =
            (0..lanes).map(|k| (self.next_lane + k) % lanes).find(|&i| self.lanes[i].remaining(total) > 0)
        else {
            if self.table.keep_alive {
                tokio::time::sleep(IDLE_WAIT).await;
                return Ok(SourcePoll::Idle);
            }
            return Ok(SourcePoll::Finished);
        };
        self.next_lane = (index + 1) % lanes;
        let (events, held) = self.collect(index);
        if events.is_empty() {
            if held {
                tokio::time::sleep(IDLE_WAIT).await;
            }
            return Ok(SourcePoll::Idle);
        }
        Ok(SourcePoll::Batch(self.batch(&events)?))
    }

    async fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState> {
        Ok(OperatorState::split(self.lanes.iter().map(Lane::encode).collect()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
    use sluice_core::options::Options;

    use super::*;

    fn bids(pairs: &[(&str, &str)]) -> NexmarkTable {
        let values: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut options = Options::new("table 'bid'", &values);
        let schema = Arc::new(Schema::new(vec![
            Field::new("price", DataType::Int64, true),
            Field::new("dateTime", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("auction", DataType::Int64, true),
        ]));
        super::super::parse(&mut options, schema).unwrap()
    }

    /// (price, time, auction) of every row of `batches`.
    fn rows(batches: &[RecordBatch]) -> Vec<(i64, i64, i64)> {
        let mut out = Vec::new();
        for b in batches {
            let price = b.column(0).as_primitive::<Int64Type>();
            let time = b.column(1).as_primitive::<arrow::datatypes::TimestampMillisecondType>();
            let auction = b.column(2).as_primitive::<Int64Type>();
            out.extend((0..b.num_rows()).map(|i| (price.value(i), time.value(i), auction.value(i))));
        }
        out
    }

    async fn run(source: &mut NexmarkSource, polls: Option<usize>) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        for _ in 0..polls.unwrap_or(usize::MAX) {
            match source.poll_next().await.unwrap() {
                SourcePoll::Batch(b) => out.push(b),
                SourcePoll::Idle | SourcePoll::SplitsAssigned(_) => {}
                SourcePoll::Finished => break,
            }
        }
        out
    }

    async fn opened(
        table: &NexmarkTable,
        subtask: u32,
        parallelism: u32,
        lanes: Option<Vec<Vec<u8>>>,
    ) -> NexmarkSource {
        let mut source = NexmarkSource::new(table.clone(), 100);
        if let Some(entries) = lanes {
            let state = OperatorState::split(entries);
            source.initialize_state(StateInit::restoring(state)).await.unwrap();
        }
        let mut ctx = TaskContext::single("nexmark");
        ctx.subtask = subtask;
        ctx.parallelism = parallelism;
        source.open(&ctx).await.unwrap();
        source
    }

    /// The bids of a bounded run are the generator's, in order, each subtask's in time
    /// order; two subtasks snapshotted midway and restored as three produce the same set.
    #[tokio::test]
    async fn bids_are_the_same_at_any_parallelism_and_after_a_restore() {
        let table = bids(&[("events.num", "5000")]);
        let generator = Generator::new(table.config.clone());
        let want: Vec<(i64, i64, i64)> = (0..5000)
            .filter_map(|n| match generator.event(n) {
                Event::Bid(b) => Some((b.price, b.date_time, b.auction)),
                _ => None,
            })
            .collect();
        assert_eq!(want.len(), 4600);
        let single = rows(&run(&mut opened(&table, 0, 1, None).await, None).await);
        assert_eq!(single, want);

        let mut got = Vec::new();
        let mut entries = Vec::new();
        for subtask in 0..2 {
            let mut source = opened(&table, subtask, 2, None).await;
            let part = rows(&run(&mut source, Some(3 + subtask as usize)).await);
            assert!(part.windows(2).all(|w| w[0].1 <= w[1].1), "subtask {subtask} out of time order");
            got.extend(part);
            entries.extend(source.snapshot_state(1).await.unwrap().entries(OperatorState::DEFAULT_LIST).to_vec());
        }
        for subtask in 0..3u32 {
            let mine: Vec<Vec<u8>> = entries.iter().skip(subtask as usize).step_by(3).cloned().collect();
            let mut source = opened(&table, subtask, 3, Some(mine)).await;
            got.extend(rows(&run(&mut source, None).await));
        }
        got.sort_unstable();
        let mut want = want;
        want.sort_unstable();
        assert_eq!(got, want);
    }
}

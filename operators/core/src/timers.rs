//! Timers of a keyed operator, as Flink's timer service: an event-time timer fires when
//! the watermark reaches its timestamp; a processing-time timer fires when the task's
//! clock does. A timer belongs to a key (its key group and key bytes); registering the
//! same (time, key) twice is one timer.
//!
//! Timers live in the operator's keyed state, in a table named [`TIMER_TABLE`] of its
//! [`StateTables`], under key group prefixes like every other keyed state, so they are
//! part of every checkpoint and a restore, at any parallelism,
//! gives each timer to the subtask that now owns its key group: every timer fires once,
//! on that subtask. The service keeps an ordered index of its subtask's timers in memory
//! (rebuilt from the store on open) and mirrors every change into the store.
//!
//! The operator drives it: in `on_watermark` it fires [`TimerService::due_event_timers`];
//! its `deadline` is [`TimerService::next_processing_time`], and in `on_timer` it fires
//! [`TimerService::due_processing_timers`].

use std::collections::BTreeSet;

use crate::state::tables::{decode_time, encode_time, ValueTable};
use crate::state::StateTables;
use crate::Result;

/// The name of the state table timers are stored in.
pub const TIMER_TABLE: &str = "__timers";

/// Which clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeDomain {
    /// The watermark.
    EventTime,
    /// The task's wall clock (milliseconds since the Unix epoch).
    ProcessingTime,
}

impl TimeDomain {
    fn tag(self) -> u8 {
        match self {
            TimeDomain::EventTime => 0,
            TimeDomain::ProcessingTime => 1,
        }
    }
}

/// One timer: when, and for which key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timer {
    /// Milliseconds (event time or processing time).
    pub timestamp: i64,
    /// The key group of the key.
    pub key_group: u32,
    /// The key's bytes, as the operator encodes its keys.
    pub key: Vec<u8>,
}

/// The timers of one keyed operator subtask.
pub struct TimerService {
    table: ValueTable<()>,
    event: BTreeSet<Timer>,
    processing: BTreeSet<Timer>,
}

/// A timer's key in its table: the domain, the time, then the timer's key.
fn stored_key(domain: TimeDomain, timer: &Timer) -> Vec<u8> {
    let mut suffix = Vec::with_capacity(9 + timer.key.len());
    suffix.push(domain.tag());
    suffix.extend_from_slice(&encode_time(timer.timestamp));
    suffix.extend_from_slice(&timer.key);
    suffix
}

impl TimerService {
    /// Declares the timer table in `tables` and loads the timers of the subtask's key
    /// groups: after a restore, those of every old subtask that owned these key groups.
    pub fn open(tables: &mut StateTables) -> Result<Self> {
        let table = tables.value::<()>(TIMER_TABLE, None)?;
        let mut service = TimerService { table, event: BTreeSet::new(), processing: BTreeSet::new() };
        let (start, end) = tables.key_groups();
        for key_group in start..end {
            let mut found = Vec::new();
            service.table.scan_group(key_group, &mut |k, ()| {
                found.push(k.to_vec());
                true
            })?;
            for suffix in found {
                let truncated = || crate::OperatorError::State("a stored timer is truncated".into());
                let timestamp = suffix.get(1..).and_then(decode_time).ok_or_else(truncated)?;
                let timer = Timer { timestamp, key_group, key: suffix[9..].to_vec() };
                match suffix[0] {
                    0 => service.event.insert(timer),
                    _ => service.processing.insert(timer),
                };
            }
        }
        Ok(service)
    }

    fn timers(&mut self, domain: TimeDomain) -> &mut BTreeSet<Timer> {
        match domain {
            TimeDomain::EventTime => &mut self.event,
            TimeDomain::ProcessingTime => &mut self.processing,
        }
    }

    /// Registers a timer for `key` at `timestamp` (a second registration is a no-op).
    pub fn register(&mut self, domain: TimeDomain, key_group: u32, key: &[u8], timestamp: i64) -> Result<()> {
        let timer = Timer { timestamp, key_group, key: key.to_vec() };
        if self.timers(domain).contains(&timer) {
            return Ok(());
        }
        self.table.put(timer.key_group, &stored_key(domain, &timer), &())?;
        self.timers(domain).insert(timer);
        Ok(())
    }

    /// Deletes `key`'s timer at `timestamp`, if any.
    pub fn delete(&mut self, domain: TimeDomain, key_group: u32, key: &[u8], timestamp: i64) -> Result<()> {
        let timer = Timer { timestamp, key_group, key: key.to_vec() };
        if self.timers(domain).remove(&timer) {
            self.table.remove(timer.key_group, &stored_key(domain, &timer))?;
        }
        Ok(())
    }

    /// Removes and returns the event-time timers at or before `watermark`, in timestamp
    /// order (then key group, then key).
    pub fn due_event_timers(&mut self, watermark: i64) -> Result<Vec<Timer>> {
        self.take_due(TimeDomain::EventTime, watermark)
    }

    /// Removes and returns the processing-time timers at or before `now` (milliseconds
    /// since the Unix epoch), in timestamp order.
    pub fn due_processing_timers(&mut self, now: i64) -> Result<Vec<Timer>> {
        self.take_due(TimeDomain::ProcessingTime, now)
    }

    fn take_due(&mut self, domain: TimeDomain, upto: i64) -> Result<Vec<Timer>> {
        let timers = self.timers(domain);
        let later = timers.split_off(&Timer { timestamp: upto.saturating_add(1), key_group: 0, key: Vec::new() });
        let due = std::mem::replace(timers, later);
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<(u32, Vec<u8>)> = due.iter().map(|t| (t.key_group, stored_key(domain, t))).collect();
        self.table.remove_all(keys.iter().map(|(g, k)| (*g, k.as_slice())))?;
        Ok(due.into_iter().collect())
    }

    /// The earliest processing-time timer, for the operator's deadline.
    pub fn next_processing_time(&self) -> Option<i64> {
        self.processing.first().map(|t| t.timestamp)
    }

    /// The earliest event-time timer.
    pub fn next_event_time(&self) -> Option<i64> {
        self.event.first().map(|t| t.timestamp)
    }

    /// How many timers of `domain` are registered.
    pub fn len(&self, domain: TimeDomain) -> usize {
        match domain {
            TimeDomain::EventTime => self.event.len(),
            TimeDomain::ProcessingTime => self.processing.len(),
        }
    }

    /// True when no timer of either domain is registered.
    pub fn is_empty(&self) -> bool {
        self.event.is_empty() && self.processing.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{KeyedStateStore, MemoryStateStore, StateClock};
    use std::sync::Arc;

    fn tables(store: &Arc<dyn KeyedStateStore>, key_groups: (u32, u32)) -> StateTables {
        StateTables::new(store.clone(), key_groups, StateClock::System)
    }

    #[test]
    fn event_timers_fire_in_time_order_as_the_watermark_passes_them() {
        let store: Arc<dyn KeyedStateStore> = Arc::new(MemoryStateStore::default());
        let mut timers = TimerService::open(&mut tables(&store, (0, 128))).unwrap();
        for (ts, group, key) in [(300, 5, "c"), (-20, 9, "a"), (100, 1, "b"), (100, 0, "z"), (300, 5, "c")] {
            timers.register(TimeDomain::EventTime, group, key.as_bytes(), ts).unwrap();
        }
        assert_eq!(timers.len(TimeDomain::EventTime), 4, "a second registration is the same timer");
        timers.register(TimeDomain::EventTime, 2, b"gone", 50).unwrap();
        timers.delete(TimeDomain::EventTime, 2, b"gone", 50).unwrap();
        assert!(timers.due_event_timers(-21).unwrap().is_empty());
        let fired =
            |t: Vec<Timer>| t.into_iter().map(|t| (t.timestamp, String::from_utf8(t.key).unwrap())).collect::<Vec<_>>();
        assert_eq!(
            fired(timers.due_event_timers(100).unwrap()),
            vec![(-20, "a".into()), (100, "z".into()), (100, "b".into())]
        );
        assert!(timers.due_event_timers(100).unwrap().is_empty(), "a fired timer is gone");
        assert_eq!(timers.next_event_time(), Some(300));
        // What is left is in the store: a reopened service sees exactly it.
        let reopened = TimerService::open(&mut tables(&store, (0, 128))).unwrap();
        assert_eq!(reopened.len(TimeDomain::EventTime), 1);
        assert_eq!(reopened.next_event_time(), Some(300));
    }

    #[test]
    fn processing_timers_are_separate_and_give_the_deadline() {
        let store: Arc<dyn KeyedStateStore> = Arc::new(MemoryStateStore::default());
        let mut timers = TimerService::open(&mut tables(&store, (0, 4))).unwrap();
        timers.register(TimeDomain::ProcessingTime, 1, b"k", 2_000).unwrap();
        timers.register(TimeDomain::EventTime, 1, b"k", 1_000).unwrap();
        assert_eq!(timers.next_processing_time(), Some(2_000));
        assert!(timers.due_processing_timers(1_999).unwrap().is_empty());
        assert_eq!(timers.due_processing_timers(2_000).unwrap().len(), 1);
        assert_eq!(timers.len(TimeDomain::EventTime), 1, "event timers do not follow the clock");
    }
}

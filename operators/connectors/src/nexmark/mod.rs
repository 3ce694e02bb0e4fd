//! The `nexmark` connector: the Nexmark benchmark's auction events (see [`generator`]) as
//! three tables, `person`, `auction` and `bid`, with the columns of the views Flink's
//! Nexmark declares over its one event table. The table a declaration reads is the one
//! whose fields its columns are (or `'kind'` = `person` | `auction` | `bid`); any subset of
//! the fields, in any order, may be declared.
//!
//! Options, with Flink's names first and the common alternatives after:
//! `first-event.rate` / `events-per-second` (10,000: the event-time rate),
//! `events.num` / `max-events` (0: unbounded), `stop-at`,
//! `person.proportion` / `auction.proportion` / `bid.proportion` (1 / 3 / 46),
//! `person.avg-size` / `auction.avg-size` / `bid.avg-size` (200 / 500 / 100 bytes),
//! `bid.hot-ratio.auctions` (2), `bid.hot-ratio.bidders` (4), `auction.hot-ratio.sellers` (4)
//! (or `hot-auction-ratio`, `hot-bidders-ratio`, `hot-sellers-ratio`), `num-active-people`
//! (1,000), `num-in-flight-auctions` (100), `out-of-order-group-size` (1), `base-time`
//! (the first event's time, default `2026-01-01 00:00:00` so that runs are reproducible),
//! `max-emit-speed` (true: as fast as possible; false: paced at the event-time rate) and
//! `keep-alive` (false: a bounded run finishes). Flink's `next-event.rate`, `rate.shape`,
//! `rate.period` and `rate.limited` are accepted and, as in Flink, have no effect.
//!
//! Events are numbered over the whole run and dealt to subtasks in [`crate::lanes`], so a
//! run yields the same events at any parallelism and after a restore at another one.

pub mod generator;
pub mod json;
#[cfg(feature = "runtime")]
mod source;

use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use sluice_core::options::Options;
use sluice_core::Result;
use sluice_proto::ConnectorSpec;

use crate::registry::{Connector, SourceFactory};
use crate::Role;
use generator::{EventKind, GeneratorConfig};

/// The default `base-time`: 2026-01-01 00:00:00 UTC, in epoch milliseconds.
pub const DEFAULT_BASE_TIME_MS: i64 = 1_767_225_600_000;

/// The fields of each kind of event, as Flink's Nexmark views name them.
pub fn fields(kind: EventKind) -> &'static [(&'static str, FieldType)] {
    use FieldType::{Bigint, Text, Time};
    match kind {
        EventKind::Person => &[
            ("id", Bigint),
            ("name", Text),
            ("emailAddress", Text),
            ("creditCard", Text),
            ("city", Text),
            ("state", Text),
            ("dateTime", Time),
            ("extra", Text),
        ],
        EventKind::Auction => &[
            ("id", Bigint),
            ("itemName", Text),
            ("description", Text),
            ("initialBid", Bigint),
            ("reserve", Bigint),
            ("dateTime", Time),
            ("expires", Time),
            ("seller", Bigint),
            ("category", Bigint),
            ("extra", Text),
        ],
        EventKind::Bid => &[
            ("auction", Bigint),
            ("bidder", Bigint),
            ("price", Bigint),
            ("channel", Text),
            ("url", Text),
            ("dateTime", Time),
            ("extra", Text),
        ],
    }
}

/// The SQL type of an event field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// BIGINT.
    Bigint,
    /// STRING.
    Text,
    /// TIMESTAMP(3).
    Time,
}

impl FieldType {
    fn matches(self, data_type: &DataType) -> bool {
        match self {
            FieldType::Bigint => data_type == &DataType::Int64,
            FieldType::Text => data_type == &DataType::Utf8,
            FieldType::Time => matches!(data_type, DataType::Timestamp(TimeUnit::Millisecond, None)),
        }
    }

    fn sql(self) -> &'static str {
        match self {
            FieldType::Bigint => "BIGINT",
            FieldType::Text => "STRING",
            FieldType::Time => "TIMESTAMP(3)",
        }
    }
}

const KINDS: [(&str, EventKind); 3] =
    [("person", EventKind::Person), ("auction", EventKind::Auction), ("bid", EventKind::Bid)];

/// A nexmark table's checked options.
#[derive(Debug, Clone)]
pub struct NexmarkTable {
    /// The events.
    pub config: GeneratorConfig,
    /// Which events the table holds.
    pub kind: EventKind,
    /// Its columns: positions in [`fields`] of its kind, in declaration order.
    pub columns: Vec<usize>,
    /// The declared schema.
    pub schema: SchemaRef,
    /// False: paced at the event-time rate.
    pub max_emit_speed: bool,
    /// True: a bounded run stays idle at its end instead of finishing.
    pub keep_alive: bool,
}

/// The value of the first of `keys` that is set, parsed; an error when two are.
fn one_of<T: std::str::FromStr>(options: &mut Options<'_>, keys: &[&str], expected: &str) -> Result<Option<T>> {
    let mut found: Option<(&str, T)> = None;
    for &key in keys {
        if let Some(value) = options.parse::<T>(key, expected)? {
            if let Some((first, _)) = &found {
                return Err(options.error(format!("options '{first}' and '{key}' mean the same; set one")));
            }
            found = Some((key, value));
        }
    }
    Ok(found.map(|(_, v)| v))
}

/// A positive integer option under any of `keys` (the first is named in errors).
fn proportion(options: &mut Options<'_>, keys: &[&str], default: u32) -> Result<u32> {
    match one_of::<u32>(options, keys, "a positive integer")? {
        Some(0) => Err(options.error(format!("option '{}' must be at least 1", keys[0]))),
        v => Ok(v.unwrap_or(default)),
    }
}

/// A size in bytes (`200b`, `1kb`), at most `u32::MAX`.
fn size(options: &mut Options<'_>, key: &str, default: u32) -> Result<u32> {
    Ok(options.bytes(key)?.map_or(default, |b| b.min(u64::from(u32::MAX)) as u32))
}

/// A count of at least 1.
fn count(options: &mut Options<'_>, key: &str, default: i64) -> Result<i64> {
    match options.parse::<i64>(key, "a positive integer")? {
        Some(n) if n < 1 => Err(options.error(format!("option '{key}' must be at least 1"))),
        n => Ok(n.unwrap_or(default)),
    }
}

/// Reads `base-time`: epoch milliseconds or a timestamp (`2026-01-01 00:00:00`, UTC).
fn base_time(options: &mut Options<'_>) -> Result<i64> {
    let Some(raw) = options.get("base-time") else { return Ok(DEFAULT_BASE_TIME_MS) };
    if let Ok(ms) = raw.trim().parse::<i64>() {
        return Ok(ms);
    }
    arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(raw.trim())
        .map(|nanos| nanos.div_euclid(1_000_000))
        .map_err(|_| {
            options.error(format!(
                "option 'base-time' = '{raw}' is neither epoch milliseconds nor a timestamp such as '2026-01-01 00:00:00'"
            ))
        })
}

/// The generator configuration of a table's options.
pub fn generator_config(options: &mut Options<'_>) -> Result<GeneratorConfig> {
    let defaults = GeneratorConfig::default();
    let rate: f64 =
        one_of(options, &["first-event.rate", "events-per-second", "first-event-rate"], "a positive number")?
            .unwrap_or(defaults.rate);
    if !(rate > 0.0 && rate.is_finite()) {
        return Err(options.error("the event rate ('first-event.rate') must be a positive number"));
    }
    for key in ["next-event.rate", "rate.shape", "rate.period", "rate.limited", "scan.parallelism"] {
        options.declare(key);
    }
    let events: Option<u64> = one_of(options, &["events.num", "max-events"], "a number of events")?;
    let stop_at: Option<i64> = options.parse("stop-at", "a number of events")?;
    let max_events = match (events.filter(|&n| n > 0), stop_at.filter(|&n| n >= 0)) {
        (Some(n), Some(s)) => Some(n.min(s as u64)),
        (n, s) => n.or(s.map(|s| s as u64)),
    };
    let person_proportion =
        proportion(options, &["person.proportion", "person-proportion"], defaults.person_proportion)?;
    let auction_proportion =
        proportion(options, &["auction.proportion", "auction-proportion"], defaults.auction_proportion)?;
    let bid_proportion = proportion(options, &["bid.proportion", "bid-proportion"], defaults.bid_proportion)?;
    let hot_auction_ratio =
        proportion(options, &["bid.hot-ratio.auctions", "hot-auction-ratio"], defaults.hot_auction_ratio)?;
    let hot_bidders_ratio =
        proportion(options, &["bid.hot-ratio.bidders", "hot-bidders-ratio"], defaults.hot_bidders_ratio)?;
    let hot_sellers_ratio =
        proportion(options, &["auction.hot-ratio.sellers", "hot-sellers-ratio"], defaults.hot_sellers_ratio)?;
    let avg_person_bytes = size(options, "person.avg-size", defaults.avg_person_bytes)?;
    let avg_auction_bytes = size(options, "auction.avg-size", defaults.avg_auction_bytes)?;
    let avg_bid_bytes = size(options, "bid.avg-size", defaults.avg_bid_bytes)?;
    let num_active_people = count(options, "num-active-people", defaults.num_active_people)?;
    let num_in_flight_auctions = count(options, "num-in-flight-auctions", defaults.num_in_flight_auctions)?;
    let out_of_order_group_size = count(options, "out-of-order-group-size", 1)? as u64;
    let base_time_ms = base_time(options)?;
    Ok(GeneratorConfig {
        rate,
        max_events,
        base_time_ms,
        person_proportion,
        auction_proportion,
        bid_proportion,
        avg_person_bytes,
        avg_auction_bytes,
        avg_bid_bytes,
        hot_auction_ratio,
        hot_bidders_ratio,
        hot_sellers_ratio,
        num_active_people,
        num_in_flight_auctions,
        out_of_order_group_size,
    })
}

/// Which events a table declares: `kind`, else the kind whose fields hold every column.
fn table_kind(options: &mut Options<'_>, schema: &SchemaRef) -> Result<EventKind> {
    if let Some(kind) = options.choice("kind", &["person", "auction", "bid"])? {
        return Ok(KINDS.iter().find(|(name, _)| *name == kind).map(|(_, k)| *k).unwrap_or(EventKind::Bid));
    }
    let holds = |kind: EventKind| {
        schema.fields().iter().all(|f| fields(kind).iter().any(|(name, _)| name.eq_ignore_ascii_case(f.name())))
    };
    let matching: Vec<(&str, EventKind)> = KINDS.iter().copied().filter(|(_, k)| holds(*k)).collect();
    match matching.as_slice() {
        [(_, kind)] => Ok(*kind),
        [] => {
            let list: Vec<String> = KINDS
                .iter()
                .map(|(name, k)| {
                    format!("{name} ({})", fields(*k).iter().map(|(f, _)| *f).collect::<Vec<_>>().join(", "))
                })
                .collect();
            Err(options.error(format!(
                "the columns are not the fields of one kind of nexmark event; declare a subset of one of: {}",
                list.join("; ")
            )))
        }
        several => Err(options.error(format!(
            "the columns fit {} events alike; say which with 'kind' = '{}'",
            several.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(" and "),
            several[0].0
        ))),
    }
}

/// Parses every option of a nexmark table.
pub fn parse(options: &mut Options<'_>, schema: SchemaRef) -> Result<NexmarkTable> {
    let config = generator_config(options)?;
    let kind = table_kind(options, &schema)?;
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let Some(position) = fields(kind).iter().position(|(name, _)| name.eq_ignore_ascii_case(field.name())) else {
            return Err(options.error(format!(
                "column '{}' is not a field of nexmark's {} events",
                field.name(),
                kind.name()
            )));
        };
        let expected = fields(kind)[position].1;
        if !expected.matches(field.data_type()) {
            return Err(options.error(format!(
                "column '{}' is {}; nexmark generates it as {}",
                field.name(),
                field.data_type(),
                expected.sql()
            )));
        }
        columns.push(position);
    }
    let max_emit_speed = options.bool("max-emit-speed")?.unwrap_or(true);
    let keep_alive = options.bool("keep-alive")?.unwrap_or(false);
    Ok(NexmarkTable { config, kind, columns, schema, max_emit_speed, keep_alive })
}

/// The `nexmark` connector.
pub struct Nexmark;

impl Connector for Nexmark {
    fn name(&self) -> &'static str {
        "nexmark"
    }

    fn bounded(&self, spec: &ConnectorSpec) -> bool {
        let number = |key: &str| spec.options.get(key).and_then(|v| v.trim().parse::<i64>().ok());
        ["events.num", "max-events"].iter().any(|k| number(k).is_some_and(|n| n > 0))
            || number("stop-at").is_some_and(|n| n >= 0)
    }

    fn how_to_bound(&self) -> Option<&'static str> {
        Some("give it 'events.num'")
    }

    fn roles(&self) -> &'static [Role] {
        &[Role::Source]
    }

    fn source(
        &self,
        _spec: &ConnectorSpec,
        options: &mut Options<'_>,
        schema: SchemaRef,
    ) -> Result<Box<dyn SourceFactory>> {
        Ok(Box::new(parse(options, schema)?))
    }
}

impl SourceFactory for NexmarkTable {
    #[cfg(feature = "runtime")]
    fn build(self: Box<Self>, batch_rows: usize) -> Box<dyn sluice_core::Source> {
        Box::new(source::NexmarkSource::new(*self, batch_rows))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn table(columns: &[(&str, DataType)], pairs: &[(&str, &str)]) -> std::result::Result<NexmarkTable, String> {
        let values: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut options = Options::new("table 'bid'", &values);
        let schema =
            Arc::new(Schema::new(columns.iter().map(|(n, t)| Field::new(*n, t.clone(), true)).collect::<Vec<_>>()));
        let parsed = parse(&mut options, schema).map_err(|e| e.to_string())?;
        options.finish().map_err(|e| e.to_string())?;
        Ok(parsed)
    }

    fn time() -> DataType {
        DataType::Timestamp(TimeUnit::Millisecond, None)
    }

    #[test]
    fn the_kind_comes_from_the_columns_or_the_kind_option() {
        let bid =
            table(&[("auction", DataType::Int64), ("price", DataType::Int64), ("dateTime", time())], &[]).unwrap();
        assert_eq!((bid.kind, bid.columns.clone()), (EventKind::Bid, vec![0, 2, 5]));
        let person = table(&[("state", DataType::Utf8), ("ID", DataType::Int64)], &[]).unwrap();
        assert_eq!((person.kind, person.columns), (EventKind::Person, vec![5, 0]));
        let err = table(&[("id", DataType::Int64), ("extra", DataType::Utf8)], &[]).unwrap_err();
        assert!(err.contains("fit person and auction events alike"), "{err}");
        let auction = table(&[("id", DataType::Int64)], &[("kind", "auction")]).unwrap();
        assert_eq!(auction.kind, EventKind::Auction);
        let err = table(&[("auction", DataType::Int64), ("seller", DataType::Int64)], &[]).unwrap_err();
        assert!(err.contains("not the fields of one kind"), "{err}");
        let err = table(&[("price", DataType::Int32)], &[]).unwrap_err();
        assert!(err.contains("column 'price' is Int32; nexmark generates it as BIGINT"), "{err}");
    }

    #[test]
    fn flink_options_and_their_alternatives_are_read() {
        let columns = [("price", DataType::Int64)];
        let t = table(
            &columns,
            &[
                ("first-event.rate", "1000000"),
                ("next-event.rate", "1000000"),
                ("events.num", "5000"),
                ("bid.proportion", "92"),
                ("bid.avg-size", "1kb"),
                ("base-time", "2024-06-01 12:00:00"),
                ("max-emit-speed", "false"),
            ],
        )
        .unwrap();
        assert_eq!(t.config.rate, 1e6);
        assert_eq!(t.config.max_events, Some(5000));
        assert_eq!(t.config.bid_proportion, 92);
        assert_eq!(t.config.avg_bid_bytes, 1024);
        assert_eq!(t.config.base_time_ms, 1_717_243_200_000);
        assert!(!t.max_emit_speed);
        let t = table(&columns, &[("events-per-second", "500"), ("max-events", "10"), ("stop-at", "4")]).unwrap();
        assert_eq!((t.config.rate, t.config.max_events), (500.0, Some(4)));
        assert_eq!(t.config.base_time_ms, DEFAULT_BASE_TIME_MS);
        let err = table(&columns, &[("events.num", "1"), ("max-events", "2")]).unwrap_err();
        assert!(err.contains("mean the same"), "{err}");
        let err = table(&columns, &[("person.proportion", "0")]).unwrap_err();
        assert!(err.contains("at least 1"), "{err}");
        let err = table(&columns, &[("base-time", "yesterday")]).unwrap_err();
        assert!(err.contains("'base-time'"), "{err}");
    }
}

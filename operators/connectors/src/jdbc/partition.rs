//! How a jdbc source divides its table for parallel reads: `scan.partition.column` (an
//! integer column), `scan.partition.num`, `scan.partition.lower-bound` and
//! `scan.partition.upper-bound`, as in Flink. The bounds are split into `num` ranges of
//! nearly equal width, dealt to the source's subtasks in turn.
//!
//! Flink reads only the rows between the bounds and silently leaves the others out. Sluice
//! reads every row: the first range also takes the values below the lower bound and NULL,
//! the last one the values above the upper bound, so wrong bounds cost balance, never rows.

use std::time::Duration;

use arrow::datatypes::{DataType, SchemaRef};
use sluice_core::options::Options;
use sluice_core::Result;

/// The four partition options, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPartition {
    /// The integer column the ranges are of.
    pub column: String,
    /// The number of ranges.
    pub num: u32,
    /// The smallest value of the first range.
    pub lower: i64,
    /// The largest value of the last range.
    pub upper: i64,
}

/// One part of a table a source subtask reads: the rows whose partition column is within
/// `lower..=upper`, widened at the ends (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanRange {
    /// The smallest value in the range.
    pub lower: i64,
    /// The largest value in the range.
    pub upper: i64,
    /// The first range: it also takes values below `lower`, and NULL.
    pub first: bool,
    /// The last range: it also takes values above `upper`.
    pub last: bool,
}

impl ScanRange {
    /// The SQL condition selecting this range's rows of `column` (an identifier), if any.
    pub fn condition(&self, column: &str) -> Option<String> {
        let (lower, upper) = (self.lower, self.upper);
        match (self.first, self.last) {
            (true, true) => None,
            (true, false) => Some(format!("({column} <= {upper} OR {column} IS NULL)")),
            (false, true) => Some(format!("{column} >= {lower}")),
            (false, false) => Some(format!("{column} BETWEEN {lower} AND {upper}")),
        }
    }
}

impl ScanPartition {
    /// The ranges, in order: `num` of them (fewer when the bounds hold fewer values), the
    /// first ones one value wider when the values do not divide evenly.
    pub fn ranges(&self) -> Vec<ScanRange> {
        let values = i128::from(self.upper) - i128::from(self.lower) + 1;
        let num = i128::from(self.num).min(values);
        let (width, wider) = (values / num, values % num);
        let mut ranges = Vec::with_capacity(num as usize);
        let mut lower = i128::from(self.lower);
        for i in 0..num {
            let upper = lower + width + i128::from(i < wider) - 1;
            // Both ends stay within the i64 bounds the user gave.
            ranges.push(ScanRange { lower: lower as i64, upper: upper as i64, first: i == 0, last: i == num - 1 });
            lower = upper + 1;
        }
        ranges
    }
}

/// How a jdbc source reads its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JdbcScanOptions {
    /// Parallel reads by ranges of a column, if asked for.
    pub partition: Option<ScanPartition>,
    /// Rows fetched per round trip (`scan.fetch-size`; 0 or unset: one batch).
    pub fetch_size: Option<u32>,
    /// How long a failing read is retried before the job fails
    /// (`connection.max-retry-timeout`, default 60 s).
    pub max_retry_timeout: Duration,
}

/// The option names of parallel reads.
const PARTITION_KEYS: [&str; 4] =
    ["scan.partition.column", "scan.partition.num", "scan.partition.lower-bound", "scan.partition.upper-bound"];

impl JdbcScanOptions {
    /// Reads the scan options of a table with columns `schema`.
    pub fn parse(options: &mut Options<'_>, schema: &SchemaRef) -> Result<Self> {
        let column = options.get(PARTITION_KEYS[0]).map(str::to_string);
        let num = options.parse::<u32>(PARTITION_KEYS[1], "a positive number of partitions")?;
        let lower = options.parse::<i64>(PARTITION_KEYS[2], "an integer")?;
        let upper = options.parse::<i64>(PARTITION_KEYS[3], "an integer")?;
        let partition = match (column, num, lower, upper) {
            (None, None, None, None) => None,
            (Some(column), Some(num), Some(lower), Some(upper)) => {
                Some(Self::check_partition(options, schema, ScanPartition { column, num, lower, upper })?)
            }
            _ => {
                return Err(options.error(format!(
                    "parallel reads need all four of {} (or none of them)",
                    PARTITION_KEYS.map(|k| format!("'{k}'")).join(", ")
                )))
            }
        };
        let fetch_size = options.parse::<u32>("scan.fetch-size", "a number of rows")?.filter(|&n| n > 0);
        options.declare("scan.auto-commit");
        let max_retry_timeout = options.duration("connection.max-retry-timeout")?.unwrap_or(Duration::from_secs(60));
        Ok(JdbcScanOptions { partition, fetch_size, max_retry_timeout })
    }

    fn check_partition(options: &Options<'_>, schema: &SchemaRef, p: ScanPartition) -> Result<ScanPartition> {
        let Ok(field) = schema.field_with_name(&p.column) else {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(options.error(format!(
                "'scan.partition.column' = '{}' is not a column of the table (columns: {})",
                p.column,
                names.join(", ")
            )));
        };
        if !matches!(
            field.data_type(),
            DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
                | DataType::UInt64
        ) {
            return Err(options.error(format!(
                "'scan.partition.column' = '{}' is {}; parallel reads divide an integer column (TINYINT, SMALLINT, \
                 INT or BIGINT) into ranges",
                p.column,
                field.data_type()
            )));
        }
        if p.num == 0 {
            return Err(options.error("'scan.partition.num' must be at least 1"));
        }
        if p.lower > p.upper {
            return Err(options.error(format!(
                "'scan.partition.lower-bound' ({}) is above 'scan.partition.upper-bound' ({})",
                p.lower, p.upper
            )));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> std::result::Result<JdbcScanOptions, String> {
        let values: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut options = Options::new("table 'orders'", &values);
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let parsed = JdbcScanOptions::parse(&mut options, &schema).map_err(|e| e.to_string())?;
        options.finish().map_err(|e| e.to_string())?;
        Ok(parsed)
    }

    fn partition(num: u32, lower: i64, upper: i64) -> ScanPartition {
        ScanPartition { column: "id".into(), num, lower, upper }
    }

    /// Every value of the bounds lies in exactly one range, in order, widths differing by
    /// at most one; checked by counting values, not by the formula.
    #[test]
    fn ranges_cover_the_bounds_once_in_near_equal_parts() {
        for (num, lower, upper) in [(4, 1, 10), (3, -5, 5), (7, 0, 6), (10, 0, 3), (1, 100, 100), (5, 0, 99)] {
            let ranges = partition(num, lower, upper).ranges();
            assert_eq!(ranges.len() as i64, (num as i64).min(upper - lower + 1), "{num} {lower} {upper}");
            for v in lower..=upper {
                let holders = ranges.iter().filter(|r| r.lower <= v && v <= r.upper).count();
                assert_eq!(holders, 1, "value {v} of {num} {lower}..{upper}: {ranges:?}");
            }
            let widths: Vec<i64> = ranges.iter().map(|r| r.upper - r.lower + 1).collect();
            assert!(widths.iter().max().unwrap() - widths.iter().min().unwrap() <= 1, "{widths:?}");
            assert!(ranges[0].first && ranges.last().unwrap().last);
            assert_eq!(ranges.iter().filter(|r| r.first || r.last).count(), ranges.len().min(2));
        }
        let extreme = partition(3, i64::MIN, i64::MAX).ranges();
        assert_eq!((extreme[0].lower, extreme[2].upper), (i64::MIN, i64::MAX));
        assert_eq!(extreme[0].upper + 1, extreme[1].lower);
    }

    #[test]
    fn range_conditions_widen_at_the_ends() {
        let ranges = partition(3, 1, 9).ranges();
        let conditions: Vec<Option<String>> = ranges.iter().map(|r| r.condition("t.\"id\"")).collect();
        assert_eq!(
            conditions,
            vec![
                Some("(t.\"id\" <= 3 OR t.\"id\" IS NULL)".to_string()),
                Some("t.\"id\" BETWEEN 4 AND 6".to_string()),
                Some("t.\"id\" >= 7".to_string()),
            ]
        );
        assert_eq!(partition(1, 1, 9).ranges()[0].condition("x"), None);
    }

    #[test]
    fn partition_options_are_all_or_none_and_checked() {
        let all = [
            ("scan.partition.column", "id"),
            ("scan.partition.num", "4"),
            ("scan.partition.lower-bound", "1"),
            ("scan.partition.upper-bound", "1000"),
        ];
        assert_eq!(parse(&all).unwrap().partition, Some(partition(4, 1, 1000)));
        assert_eq!(parse(&[]).unwrap().partition, None);
        let err = parse(&all[..3]).unwrap_err();
        assert!(err.contains("need all four"), "{err}");
        let err = parse(&[all[0], all[1], all[2], ("scan.partition.upper-bound", "0")]).unwrap_err();
        assert!(err.contains("is above"), "{err}");
        let err = parse(&[("scan.partition.column", "name"), all[1], all[2], all[3]]).unwrap_err();
        assert!(err.contains("divide an integer column"), "{err}");
        let err = parse(&[("scan.partition.column", "nope"), all[1], all[2], all[3]]).unwrap_err();
        assert!(err.contains("not a column of the table (columns: id, name)"), "{err}");
        let err = parse(&[all[0], ("scan.partition.num", "0"), all[2], all[3]]).unwrap_err();
        assert!(err.contains("at least 1"), "{err}");
        let scan = parse(&[("scan.fetch-size", "500"), ("connection.max-retry-timeout", "5s")]).unwrap();
        assert_eq!((scan.fetch_size, scan.max_retry_timeout), (Some(500), Duration::from_secs(5)));
    }
}

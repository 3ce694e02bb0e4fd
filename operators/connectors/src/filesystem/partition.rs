//! Partitioned filesystem tables, as Flink and Hive lay them out: a table `PARTITIONED BY
//! (dt, hr)` keeps each row in directory `dt=<value>/hr=<value>/` under its path, without
//! the partition columns in the files. Values are escaped as Hive escapes them (`%2F` for
//! `/`), and a NULL or empty value is `partition.default-name` (`__DEFAULT_PARTITION__`).
//!
//! Also here: when a partition is complete (`sink.partition-commit.trigger` and
//! `sink.partition-commit.delay`), the time a partition stands for
//! (`partition.time-extractor.timestamp-pattern`), and what a commit does
//! (`sink.partition-commit.policy.kind` = `success-file`).

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{new_null_array, Array, ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use sluice_core::options::Options;
use sluice_core::{OperatorError, Result};

/// Flink's name for the directory of NULL and empty partition values.
pub const DEFAULT_PARTITION_NAME: &str = "__DEFAULT_PARTITION__";

/// The partition columns of a table and how their directories are named.
#[derive(Debug, Clone)]
pub struct Partitioning {
    /// Partition columns, outermost directory first.
    pub keys: Vec<String>,
    /// The directory name of NULL and empty values.
    pub default_name: String,
}

impl Partitioning {
    /// Reads `partition.default-name` for a table partitioned by `keys` (which must be
    /// columns of `schema`).
    pub fn parse(options: &mut Options<'_>, keys: &[String], schema: &SchemaRef) -> Result<Self> {
        for key in keys {
            if schema.field_with_name(key).is_err() {
                return Err(options.error(format!("PARTITIONED BY column '{key}' is not a column of the table")));
            }
        }
        let default_name = options.get("partition.default-name").unwrap_or(DEFAULT_PARTITION_NAME).to_string();
        Ok(Partitioning { keys: keys.to_vec(), default_name })
    }

    /// True for an unpartitioned table.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The columns kept in the files: `schema` without the partition columns.
    pub fn file_schema(&self, schema: &SchemaRef) -> SchemaRef {
        let fields: Vec<Arc<Field>> =
            schema.fields().iter().filter(|f| !self.keys.contains(f.name())).cloned().collect();
        Arc::new(Schema::new(fields))
    }

    /// The relative directory of each row of `batch` (`dt=2026-12-04/hr=07`); empty strings
    /// for an unpartitioned table.
    pub fn row_directories(&self, batch: &RecordBatch) -> Result<Vec<String>> {
        let mut dirs = vec![String::new(); batch.num_rows()];
        for key in &self.keys {
            let column = batch
                .column_by_name(key)
                .ok_or_else(|| OperatorError::InvalidPlan(format!("partition column '{key}' is not in the rows")))?;
            let text = arrow::compute::cast(column, &DataType::Utf8)
                .map_err(|e| OperatorError::arrow(format!("cannot write partition column '{key}' as text"), e))?;
            let text = text.as_any().downcast_ref::<StringArray>().expect("cast to Utf8 gives a StringArray");
            for (row, dir) in dirs.iter_mut().enumerate() {
                let value = if text.is_valid(row) && !text.value(row).is_empty() {
                    escape(text.value(row))
                } else {
                    self.default_name.clone()
                };
                if !dir.is_empty() {
                    dir.push('/');
                }
                dir.push_str(key);
                dir.push('=');
                dir.push_str(&value);
            }
        }
        Ok(dirs)
    }

    /// The partition values of a file at `relative` (its path under the table's, with
    /// `/` separators): `None` values for the default partition, `None` overall when the
    /// path does not name every partition column in order.
    pub fn values(&self, relative: &str) -> Option<Vec<Option<String>>> {
        let dirs: Vec<&str> = relative.split('/').collect();
        if self.keys.is_empty() {
            return Some(Vec::new());
        }
        if dirs.len() <= self.keys.len() {
            return None;
        }
        let mut values = Vec::with_capacity(self.keys.len());
        for (key, dir) in self.keys.iter().zip(&dirs) {
            let (name, value) = dir.split_once('=')?;
            if name != key {
                return None;
            }
            values.push((value != self.default_name).then(|| unescape(value)));
        }
        Some(values)
    }

    /// A column of `rows` copies of a partition value, as `data_type`.
    pub fn constant(value: Option<&str>, data_type: &DataType, rows: usize, key: &str) -> Result<ArrayRef> {
        let Some(value) = value else { return Ok(new_null_array(data_type, rows)) };
        let one: ArrayRef = Arc::new(StringArray::from(vec![value]));
        let typed = arrow::compute::cast_with_options(
            &one,
            data_type,
            &arrow::compute::CastOptions { safe: false, ..Default::default() },
        )
        .map_err(|e| OperatorError::arrow(format!("partition {key}={value} is not a {data_type}"), e))?;
        let indices = arrow::array::UInt32Array::from(vec![0u32; rows]);
        arrow::compute::take(&typed, &indices, None).map_err(|e| OperatorError::arrow("partition column", e))
    }
}

/// Escapes a partition value as Hive does: characters that a path or Hive treats
/// specially become `%XX`.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        let special = c.is_control()
            || matches!(
                c,
                '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '\u{7f}' | '{' | '[' | ']' | '^'
            );
        if special {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Undoes [`escape`].
pub fn unescape(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&value[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// When a partition may be committed (`sink.partition-commit.trigger`).
#[derive(Debug, Clone, PartialEq)]
pub enum CommitTrigger {
    /// `process-time`: `delay` after the sink first wrote to it, by the machine's clock.
    ProcessTime,
    /// `partition-time`: once the watermark passes the partition's time plus `delay`; the
    /// time comes from the partition values through `pattern`
    /// (`partition.time-extractor.timestamp-pattern`, e.g. `$dt $hr:00:00`).
    PartitionTime {
        /// The pattern, with `$column` for each partition value.
        pattern: String,
    },
}

/// What committing a partition does, and when.
#[derive(Debug, Clone)]
pub struct CommitPolicy {
    /// When.
    pub trigger: CommitTrigger,
    /// `sink.partition-commit.delay`.
    pub delay: Duration,
    /// The file written into a committed partition (`success-file` policy), if any.
    pub success_file: Option<String>,
}

impl CommitPolicy {
    /// Reads the `sink.partition-commit.*` options of a partitioned sink; `None` when
    /// partitions are not committed.
    pub fn parse(options: &mut Options<'_>, partitioning: &Partitioning) -> Result<Option<Self>> {
        let trigger = options.choice("sink.partition-commit.trigger", &["process-time", "partition-time"])?;
        let delay = options.duration("sink.partition-commit.delay")?.unwrap_or(Duration::ZERO);
        let pattern = options.get("partition.time-extractor.timestamp-pattern").map(str::to_string);
        options.declare("partition.time-extractor.kind");
        options.declare("partition.time-extractor.timestamp-formatter");
        options.declare("sink.partition-commit.watermark-time-zone");
        let kinds = options.get("sink.partition-commit.policy.kind").map(str::to_string);
        let success_name = options.get("sink.partition-commit.success-file.name").unwrap_or("_SUCCESS").to_string();
        let Some(kinds) = kinds else {
            if trigger.is_some() {
                return Err(options.error(
                    "option 'sink.partition-commit.trigger' needs 'sink.partition-commit.policy.kind' (e.g. 'success-file')",
                ));
            }
            return Ok(None);
        };
        if partitioning.is_empty() {
            return Err(options.error("partition commit options need a table PARTITIONED BY columns"));
        }
        let mut success_file = None;
        for kind in kinds.split(',').map(str::trim) {
            match kind {
                "success-file" => success_file = Some(success_name.clone()),
                "metastore" | "custom" => {
                    return Err(options.error(format!(
                        "option 'sink.partition-commit.policy.kind' = '{kind}' is not supported; use 'success-file'"
                    )))
                }
                other => {
                    return Err(options.error(format!(
                        "option 'sink.partition-commit.policy.kind' = '{other}' is not a policy; use 'success-file'"
                    )))
                }
            }
        }
        let trigger = match trigger.as_deref() {
            Some("partition-time") => {
                let pattern = match pattern {
                    Some(p) => p,
                    None if partitioning.keys.len() == 1 => format!("${}", partitioning.keys[0]),
                    None => {
                        return Err(options.error(
                            "the 'partition-time' trigger needs 'partition.time-extractor.timestamp-pattern', \
                             e.g. '$dt $hr:00:00'",
                        ))
                    }
                };
                for column in pattern_columns(&pattern) {
                    if !partitioning.keys.contains(&column) {
                        return Err(options.error(format!(
                            "'partition.time-extractor.timestamp-pattern' names ${column}, which is not a partition column"
                        )));
                    }
                }
                CommitTrigger::PartitionTime { pattern }
            }
            _ => CommitTrigger::ProcessTime,
        };
        Ok(Some(CommitPolicy { trigger, delay, success_file }))
    }

    /// The time (ms since the epoch, UTC) partition `values` stands for under a
    /// partition-time trigger; `None` when the trigger is by processing time or the values
    /// do not make a timestamp.
    pub fn partition_time(&self, keys: &[String], values: &[Option<String>]) -> Option<i64> {
        let CommitTrigger::PartitionTime { pattern } = &self.trigger else { return None };
        let mut text = pattern.clone();
        // Longest names first, so `$dt` does not replace the start of `$dthr`.
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(keys[i].len()));
        for i in order {
            text = text.replace(&format!("${}", keys[i]), values[i].as_deref()?);
        }
        parse_timestamp(&text)
    }
}

fn pattern_columns(pattern: &str) -> Vec<String> {
    pattern
        .split('$')
        .skip(1)
        .map(|rest| rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect())
        .collect()
}

/// `yyyy-MM-dd`, `yyyy-MM-dd HH:mm:ss` or `yyyy-MM-ddTHH:mm:ss` as ms since the epoch (UTC).
fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    let full = if text.len() == 10 { format!("{text}T00:00:00") } else { text.replacen(' ', "T", 1) };
    let one: ArrayRef = Arc::new(StringArray::from(vec![full]));
    let ts = arrow::compute::cast(&one, &DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None)).ok()?;
    let ts = ts.as_any().downcast_ref::<arrow::array::TimestampMillisecondArray>()?;
    ts.is_valid(0).then(|| ts.value(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int32Array;
    use std::collections::BTreeMap;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("dt", DataType::Utf8, true),
            Field::new("hr", DataType::Int32, true),
        ]))
    }

    #[test]
    fn rows_go_to_escaped_directories_and_values_come_back() {
        let values = BTreeMap::new();
        let mut options = Options::new("t", &values);
        let p = Partitioning::parse(&mut options, &["dt".into(), "hr".into()], &schema()).unwrap();
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(arrow::array::Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec![Some("2026-12-04"), Some("a/b=c%"), None])),
                Arc::new(Int32Array::from(vec![Some(7), None, Some(23)])),
            ],
        )
        .unwrap();
        let dirs = p.row_directories(&batch).unwrap();
        assert_eq!(
            dirs,
            vec!["dt=2026-12-04/hr=7", "dt=a%2Fb%3Dc%25/hr=__DEFAULT_PARTITION__", "dt=__DEFAULT_PARTITION__/hr=23"]
        );
        assert_eq!(p.values(&format!("{}/part-0.parquet", dirs[1])).unwrap(), vec![Some("a/b=c%".into()), None]);
        assert_eq!(p.values("dt=x/part-0.parquet"), None, "a file above the partition directories");
        assert_eq!(p.values("hr=1/dt=x/part-0.parquet"), None, "directories out of order");
        assert_eq!(p.file_schema(&schema()).fields().len(), 1);
        let hr = Partitioning::constant(Some("7"), &DataType::Int32, 3, "hr").unwrap();
        assert_eq!(hr.as_any().downcast_ref::<Int32Array>().unwrap().values(), &[7, 7, 7]);
        assert!(Partitioning::constant(Some("x"), &DataType::Int32, 1, "hr").is_err());
    }

    #[test]
    fn partition_time_comes_from_the_pattern() {
        let mut values = BTreeMap::new();
        values.insert("sink.partition-commit.trigger".to_string(), "partition-time".to_string());
        values.insert("sink.partition-commit.policy.kind".to_string(), "success-file".to_string());
        values.insert("sink.partition-commit.delay".to_string(), "1 h".to_string());
        values.insert("partition.time-extractor.timestamp-pattern".to_string(), "$dt $hr:00:00".to_string());
        let mut options = Options::new("t", &values);
        let p = Partitioning { keys: vec!["dt".into(), "hr".into()], default_name: DEFAULT_PARTITION_NAME.into() };
        let policy = CommitPolicy::parse(&mut options, &p).unwrap().unwrap();
        assert_eq!(policy.delay, Duration::from_secs(3600));
        assert_eq!(policy.success_file.as_deref(), Some("_SUCCESS"));
        let t = policy.partition_time(&p.keys, &[Some("2026-12-04".into()), Some("07".into())]).unwrap();
        // 2026-12-04T07:00:00Z, from Python's datetime.
        assert_eq!(t, 1_796_367_600_000);
        assert_eq!(policy.partition_time(&p.keys, &[None, Some("07".into())]), None);
    }
}

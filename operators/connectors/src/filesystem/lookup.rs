//! Lookups in a filesystem table, as Flink's: the table's files are read whole into memory
//! on the first lookup and read again when `lookup.join.cache.ttl` (default 60 min) has
//! passed since, so a lookup join can enrich a stream from a small side-input file. Each
//! lookup-join subtask holds its own copy.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::UInt32Array;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use sluice_core::options::Options;
use sluice_core::{OperatorError, Result};

use super::source::{table_files, FileCursor, FileSplit, ScanCounts};
use super::FileSourceConfig;

/// Flink's default of `lookup.join.cache.ttl`.
const DEFAULT_RELOAD: Duration = Duration::from_secs(60 * 60);

/// A filesystem lookup table's checked options.
#[derive(Debug, Clone)]
pub struct FileLookupConfig {
    source: FileSourceConfig,
    /// How long the rows read stay before the files are read again.
    reload: Duration,
}

impl FileLookupConfig {
    /// Reads the options of a filesystem lookup table: the source's, and
    /// `lookup.join.cache.ttl`.
    pub fn parse(spec: &sluice_proto::ConnectorSpec, options: &mut Options<'_>, schema: SchemaRef) -> Result<Self> {
        let spec = sluice_proto::ConnectorSpec { pushdown: None, ..spec.clone() };
        let source = FileSourceConfig::parse(&spec, options, schema)?;
        let reload = options.duration("lookup.join.cache.ttl")?.unwrap_or(DEFAULT_RELOAD);
        Ok(FileLookupConfig { source, reload })
    }
}

impl crate::registry::LookupFactory for FileLookupConfig {
    #[cfg(feature = "runtime")]
    fn build(self: Box<Self>, lookup_columns: &[String]) -> Result<Arc<dyn sluice_core::lookup::LookupSource>> {
        Ok(Arc::new(runtime::FileLookup::new(*self, lookup_columns)?))
    }
}

/// The table's rows, read whole, indexed by their lookup columns.
struct Loaded {
    read_at: Instant,
    rows: RecordBatch,
    /// Row positions by the row-encoded lookup columns (rows with a NULL among them left
    /// out: NULL equals nothing).
    index: HashMap<Box<[u8]>, Vec<u32>>,
}

/// Reads every file of the table and indexes its rows by `columns` with `converter`.
fn load(config: &FileSourceConfig, columns: &[usize], converter: &RowConverter) -> Result<Loaded> {
    let schema = &config.schema;
    let mut batches = Vec::new();
    let (mut counts, mut skipped) = (ScanCounts::default(), 0);
    for path in table_files(config, &mut counts)? {
        let split = FileSplit { path, offset: 0, line: 0 };
        let mut cursor = FileCursor::open(config, split, crate::DEFAULT_BATCH_ROWS, &mut counts)?;
        while let Some(batch) = cursor.next_batch(config, crate::DEFAULT_BATCH_ROWS, &mut skipped)? {
            batches.push(batch);
        }
    }
    let rows = arrow::compute::concat_batches(schema, &batches)
        .map_err(|e| OperatorError::arrow("cannot assemble the lookup table's rows", e))?;
    let keys: Vec<_> = columns.iter().map(|&c| rows.column(c).clone()).collect();
    let encoded = converter.convert_columns(&keys).map_err(|e| OperatorError::arrow("cannot encode lookup keys", e))?;
    let mut index: HashMap<Box<[u8]>, Vec<u32>> = HashMap::new();
    for row in 0..rows.num_rows() {
        if keys.iter().any(|k| k.is_null(row)) {
            continue;
        }
        index.entry(encoded.row(row).as_ref().into()).or_default().push(row as u32);
    }
    Ok(Loaded { read_at: Instant::now(), rows, index })
}

#[cfg(feature = "runtime")]
mod runtime {
    use async_trait::async_trait;
    use sluice_core::lookup::{LookupFailure, LookupSource};
    use tokio::sync::Mutex;

    use super::*;

    /// The lookups of one filesystem table by some of its columns.
    pub struct FileLookup {
        config: FileSourceConfig,
        reload: Duration,
        /// Positions of the lookup columns in the table's schema.
        columns: Vec<usize>,
        converter: Arc<RowConverter>,
        loaded: Mutex<Option<Arc<Loaded>>>,
    }

    impl FileLookup {
        /// Lookups in the table of `config` by `columns` (names of its columns).
        pub fn new(config: FileLookupConfig, columns: &[String]) -> Result<Self> {
            let schema = config.source.schema.clone();
            let context = format!("filesystem table at '{}'", config.source.path);
            let columns = columns
                .iter()
                .map(|name| {
                    schema.index_of(name).map_err(|_| {
                        OperatorError::config(
                            context.clone(),
                            format!("the lookup column '{name}' is not a column of the table"),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let fields = columns.iter().map(|&c| SortField::new(schema.field(c).data_type().clone())).collect();
            let converter =
                RowConverter::new(fields).map_err(|e| OperatorError::arrow("cannot encode lookup keys", e))?;
            Ok(FileLookup {
                config: config.source,
                reload: config.reload,
                columns,
                converter: Arc::new(converter),
                loaded: Mutex::new(None),
            })
        }

        /// The table's rows, read again once `reload` has passed.
        async fn rows(&self) -> std::result::Result<Arc<Loaded>, LookupFailure> {
            let mut loaded = self.loaded.lock().await;
            if let Some(current) = loaded.as_ref().filter(|l| l.read_at.elapsed() < self.reload) {
                return Ok(current.clone());
            }
            let (config, columns, converter) = (self.config.clone(), self.columns.clone(), self.converter.clone());
            let read = tokio::task::spawn_blocking(move || load(&config, &columns, &converter))
                .await
                .map_err(|e| LookupFailure {
                    message: format!("reading the table's files failed: {e}"),
                    retriable: false,
                })?
                .map_err(|e| LookupFailure { message: e.to_string(), retriable: false })?;
            let read = Arc::new(read);
            *loaded = Some(read.clone());
            Ok(read)
        }
    }

    #[async_trait]
    impl LookupSource for FileLookup {
        async fn lookup(&self, keys: &RecordBatch) -> std::result::Result<Vec<RecordBatch>, LookupFailure> {
            let table = self.rows().await?;
            let encoded = self
                .converter
                .convert_columns(keys.columns())
                .map_err(|e| LookupFailure { message: format!("cannot encode lookup keys: {e}"), retriable: false })?;
            (0..keys.num_rows())
                .map(|row| {
                    let positions = match keys.columns().iter().any(|k| k.is_null(row)) {
                        true => None,
                        false => table.index.get(encoded.row(row).as_ref()),
                    };
                    let indices = UInt32Array::from(positions.cloned().unwrap_or_default());
                    arrow::compute::take_record_batch(&table.rows, &indices).map_err(|e| LookupFailure {
                        message: format!("cannot take looked-up rows: {e}"),
                        retriable: false,
                    })
                })
                .collect()
        }
    }

    #[cfg(test)]
    mod tests {
        use std::collections::BTreeMap;

        use arrow::array::{AsArray, Int64Array};
        use arrow::datatypes::{DataType, Field, Int64Type, Schema};

        use super::*;

        fn lookup(dir: &std::path::Path, ttl: &str) -> FileLookup {
            let schema = Arc::new(Schema::new(vec![
                Field::new("key", DataType::Int64, true),
                Field::new("value", DataType::Utf8, true),
            ]));
            let raw: BTreeMap<String, String> =
                [("path", dir.to_str().unwrap()), ("format", "csv"), ("lookup.join.cache.ttl", ttl)]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
            let mut options = Options::new("filesystem table 'side'", &raw);
            let config = FileLookupConfig::parse(&Default::default(), &mut options, schema).unwrap();
            options.finish().unwrap();
            FileLookup::new(config, &["key".to_string()]).unwrap()
        }

        fn values(batch: &RecordBatch) -> Vec<String> {
            batch.column(1).as_string::<i32>().iter().map(|v| v.unwrap_or("NULL").to_string()).collect()
        }

        #[tokio::test]
        async fn keys_find_every_row_of_every_file_and_the_files_are_read_again_after_the_ttl() {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("a.csv"), "1,one\n2,two\n").unwrap();
            std::fs::write(dir.path().join("b.csv"), "2,deux\n,nothing\n").unwrap();
            let files = lookup(dir.path(), "200 ms");
            let keys = RecordBatch::try_new(
                Arc::new(Schema::new(vec![Field::new("key", DataType::Int64, true)])),
                vec![Arc::new(Int64Array::from(vec![Some(2), Some(3), None, Some(1)]))],
            )
            .unwrap();
            let found = files.lookup(&keys).await.unwrap();
            let found: Vec<Vec<String>> = found.iter().map(values).collect();
            assert_eq!(found, vec![vec!["two", "deux"], vec![], vec![], vec!["one"]]);
            // A change to the files shows only once the rows read have expired.
            std::fs::write(dir.path().join("a.csv"), "1,uno\n3,three\n").unwrap();
            let before = files.lookup(&keys).await.unwrap();
            assert_eq!(values(&before[3]), vec!["one"]);
            tokio::time::sleep(Duration::from_millis(250)).await;
            let after = files.lookup(&keys).await.unwrap();
            assert_eq!(
                after.iter().map(values).collect::<Vec<_>>(),
                vec![vec!["deux"], vec!["three"], vec![], vec!["uno"]]
            );
            assert_eq!(after[1].column(0).as_primitive::<Int64Type>().value(0), 3);
        }
    }
}

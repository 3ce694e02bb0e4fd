//! Record formats shared by connectors, with Flink's option names: `format` (`json`, `csv`,
//! `raw`, for writing changelogs `debezium-json`, and for files `parquet`),
//! `json.ignore-parse-errors`,
//! `csv.ignore-parse-errors`, `csv.field-delimiter`.

use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryArray, StringArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;

pub mod avro;

use sluice_core::options::Options;
use sluice_core::{OperatorError, Result};

/// A record format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON objects (newline-delimited in files, one per message in Kafka).
    Json,
    /// Comma-separated values without a header, as Flink writes them.
    Csv,
    /// The bytes as they are, in a single STRING or BYTES column.
    Raw,
    /// Changes as Debezium's JSON envelope, written as Flink writes it: an insertion or an
    /// update's new row is `{"before":null,"after":{...},"op":"c"}`, a deletion or an
    /// update's old row `{"before":{...},"after":null,"op":"d"}`. Written only: a sink in
    /// this format takes an updating query.
    DebeziumJson,
    /// Avro: in Kafka one binary-encoded row per message, in files Avro's object
    /// container files (see [`avro`]).
    Avro,
    /// Avro in Confluent's wire format, with the schema in a schema registry (see
    /// [`avro`]).
    AvroConfluent,
    /// Apache Parquet files (filesystem tables only): columns, not lines, so the filesystem
    /// connector reads and writes them itself (see `filesystem::parquet`).
    Parquet,
}

impl Format {
    /// The option value naming this format.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Raw => "raw",
            Format::DebeziumJson => "debezium-json",
            Format::Parquet => "parquet",
            Format::Avro => "avro",
            Format::AvroConfluent => "avro-confluent",
        }
    }

    /// File name extension of files in this format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Raw => "txt",
            Format::Json | Format::DebeziumJson => "json",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
            Format::Avro | Format::AvroConfluent => "avro",
        }
    }

    /// True for a format whose files are whole containers rather than lines of records.
    pub fn is_bulk(self) -> bool {
        matches!(self, Format::Parquet | Format::Avro)
    }
}

/// A format with its options.
#[derive(Debug, Clone)]
pub struct FormatOptions {
    /// The format.
    pub format: Format,
    /// Skip and count records that cannot be parsed, instead of failing.
    pub ignore_parse_errors: bool,
    delimiter: u8,
    /// Where an `avro-confluent` format's schemas are registered.
    pub registry: Option<avro::RegistryOptions>,
    /// Writer schemas and the registered id of an `avro-confluent` format, shared by its
    /// clones.
    pub avro: Arc<avro::AvroState>,
}

impl FormatOptions {
    /// Reads `format` (one of `allowed`) and its options.
    pub fn parse(options: &mut Options<'_>, allowed: &[Format]) -> Result<Self> {
        Self::parse_key(options, "format", allowed)
    }

    /// Reads the format named by option `key` (e.g. `key.format`) and its options.
    pub fn parse_key(options: &mut Options<'_>, key: &str, allowed: &[Format]) -> Result<Self> {
        let names: Vec<&str> = allowed.iter().map(|f| f.name()).collect();
        let format = match options.choice(key, &names)? {
            Some(f) => *allowed.iter().find(|a| a.name() == f).expect("choice returns an allowed name"),
            None => {
                return Err(options.error(format!("missing required option '{key}' ({})", names.join(", "))));
            }
        };
        let json_ignore = options.bool("json.ignore-parse-errors")?.unwrap_or(false);
        options.declare("json.fail-on-missing-field");
        let csv_ignore = options.bool("csv.ignore-parse-errors")?.unwrap_or(false);
        let delimiter = match options.get("csv.field-delimiter") {
            None => b',',
            Some(d) if d.len() == 1 => d.as_bytes()[0],
            Some("\\t") => b'\t',
            Some(d) => return Err(options.error(format!("option 'csv.field-delimiter' = '{d}' must be one character"))),
        };
        let avro_ignore = options.bool("avro.ignore-parse-errors")?.unwrap_or(false);
        options.declare("avro.timestamp_mapping.legacy");
        let ignore_parse_errors = match format {
            Format::Json => json_ignore,
            Format::Csv => csv_ignore,
            Format::Avro | Format::AvroConfluent => avro_ignore,
            Format::Raw | Format::DebeziumJson | Format::Parquet => false,
        };
        let registry = match format {
            Format::AvroConfluent => Some(registry_options(options, key)?),
            _ => None,
        };
        Ok(FormatOptions { format, ignore_parse_errors, delimiter, registry, avro: Default::default() })
    }

    /// Learns the writer schemas of Confluent-framed `records` from the registry, so they
    /// can be decoded (nothing for other formats).
    pub async fn prepare_decode(&self, records: &[&[u8]]) -> std::result::Result<(), String> {
        match &self.registry {
            Some(registry) => self.avro.fetch_writers(registry, records).await,
            None => Ok(()),
        }
    }

    /// Registers `schema` under the format's subject, or `default_subject`, so records can
    /// be encoded (nothing for formats without a registry).
    pub async fn prepare_encode(&self, schema: &SchemaRef, default_subject: &str) -> std::result::Result<(), String> {
        let Some(registry) = &self.registry else { return Ok(()) };
        let subject = registry.subject.as_deref().unwrap_or(default_subject);
        let id = self.avro.register(registry, subject, schema).await?;
        tracing::info!(subject, id, "registered the table's Avro schema");
        Ok(())
    }

    /// The option that makes bad records skipped.
    pub fn skip_option(&self) -> &'static str {
        match self.format {
            Format::Csv => "csv.ignore-parse-errors",
            Format::Avro | Format::AvroConfluent => "avro.ignore-parse-errors",
            _ => "json.ignore-parse-errors",
        }
    }

    /// Checks that `schema` can hold records of this format.
    pub fn check_schema(&self, schema: &SchemaRef, options: &Options<'_>) -> Result<()> {
        if self.format == Format::Raw
            && !(schema.fields().len() == 1 && matches!(schema.field(0).data_type(), DataType::Utf8 | DataType::Binary))
        {
            return Err(options.error("format 'raw' needs exactly one column, of type STRING or BYTES"));
        }
        if matches!(self.format, Format::Avro | Format::AvroConfluent) {
            avro::derived_schema(schema).map_err(|e| options.error(format!("format '{}': {e}", self.format.name())))?;
        }
        Ok(())
    }

    /// Decodes newline-separated records (at most `max_rows`); the error is the parser's.
    pub fn decode(
        &self,
        schema: &SchemaRef,
        text: &str,
        max_rows: usize,
    ) -> std::result::Result<Option<RecordBatch>, String> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        match self.format {
            Format::Json => {
                let mut decoder = arrow::json::ReaderBuilder::new(schema.clone())
                    .with_batch_size(max_rows.max(1))
                    .build_decoder()
                    .map_err(|e| e.to_string())?;
                decoder.decode(text.as_bytes()).map_err(|e| e.to_string())?;
                decoder.flush().map_err(|e| e.to_string())
            }
            Format::Csv => {
                let format = arrow::csv::reader::Format::default().with_header(false).with_delimiter(self.delimiter);
                let reader = arrow::csv::ReaderBuilder::new(schema.clone())
                    .with_format(format)
                    .with_batch_size(max_rows.max(1))
                    .build(text.as_bytes())
                    .map_err(|e| e.to_string())?;
                let mut batches = Vec::new();
                for b in reader {
                    batches.push(b.map_err(|e| e.to_string())?);
                }
                match batches.len() {
                    0 => Ok(None),
                    1 => Ok(batches.pop()),
                    _ => arrow::compute::concat_batches(schema, &batches).map(Some).map_err(|e| e.to_string()),
                }
            }
            Format::Raw => self.decode_raw(schema, &text.split('\n').map(str::as_bytes).collect::<Vec<_>>()),
            Format::DebeziumJson => Err("format 'debezium-json' is written, not read, by Sluice yet".to_string()),
            Format::Parquet => Err("format 'parquet' holds files, not records".to_string()),
            Format::Avro | Format::AvroConfluent => Err("Avro records are binary, not lines".to_string()),
        }
    }

    /// Decodes records given one by one (Kafka messages); the error is the parser's.
    pub fn decode_records(
        &self,
        schema: &SchemaRef,
        records: &[&[u8]],
    ) -> std::result::Result<Option<RecordBatch>, String> {
        match self.format {
            Format::Raw => self.decode_raw(schema, records),
            Format::Avro => avro::decode_rows(schema, records, None),
            Format::AvroConfluent => avro::decode_rows(schema, records, Some(&self.avro)),
            _ => {
                let text: Vec<String> = records.iter().map(|r| String::from_utf8_lossy(r).into_owned()).collect();
                self.decode(schema, &text.join("\n"), records.len())
            }
        }
    }

    /// Decodes raw values, one per record.
    pub fn decode_raw(&self, schema: &SchemaRef, values: &[&[u8]]) -> std::result::Result<Option<RecordBatch>, String> {
        let column: ArrayRef = match schema.field(0).data_type() {
            DataType::Binary => Arc::new(BinaryArray::from_iter_values(values.iter())),
            _ => Arc::new(StringArray::from_iter_values(values.iter().map(|v| String::from_utf8_lossy(v)))),
        };
        RecordBatch::try_new(schema.clone(), vec![column]).map(Some).map_err(|e| e.to_string())
    }

    /// Encodes every row of `batch`, each record ending with a newline.
    pub fn encode(&self, batch: &RecordBatch) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        match self.format {
            Format::Json => {
                let mut writer = arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::LineDelimited>(&mut buf);
                writer.write(batch).map_err(|e| OperatorError::arrow("cannot encode JSON", e))?;
                writer.finish().map_err(|e| OperatorError::arrow("cannot encode JSON", e))?;
            }
            Format::Csv => {
                let mut writer =
                    arrow::csv::WriterBuilder::new().with_header(false).with_delimiter(self.delimiter).build(&mut buf);
                writer.write(batch).map_err(|e| OperatorError::arrow("cannot encode CSV", e))?;
            }
            Format::Raw => {
                for value in self.encode_records(batch)? {
                    buf.extend_from_slice(&value);
                    buf.push(b'\n');
                }
            }
            Format::DebeziumJson => encode_debezium(batch, &mut buf)?,
            Format::Parquet | Format::Avro | Format::AvroConfluent => {
                return Err(OperatorError::InvalidPlan(format!(
                    "format '{}' is not written as lines",
                    self.format.name()
                )));
            }
        }
        Ok(buf)
    }

    /// Encodes every row of `batch` as one record (no trailing newline), for messages.
    pub fn encode_records(&self, batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
        let avro_error = |message: String| OperatorError::Evaluation(format!("Avro records: {message}"));
        match self.format {
            Format::Avro => return avro::encode_rows(&batch.schema(), batch, None).map_err(avro_error),
            Format::AvroConfluent => {
                let Some(id) = self.avro.write_id() else {
                    return Err(OperatorError::InvalidPlan("the Avro schema was not registered before writing".into()));
                };
                return avro::encode_rows(&batch.schema(), batch, Some(id)).map_err(avro_error);
            }
            _ => {}
        }
        if self.format == Format::Raw {
            let column = batch.column(0);
            let values = match column.data_type() {
                DataType::Binary => {
                    let a = column.as_any().downcast_ref::<BinaryArray>().expect("binary column");
                    a.iter().map(|v| v.unwrap_or_default().to_vec()).collect()
                }
                _ => {
                    let a =
                        arrow::compute::cast(column, &DataType::Utf8).map_err(|e| OperatorError::arrow("raw", e))?;
                    let a = a.as_any().downcast_ref::<StringArray>().expect("string column");
                    a.iter().map(|v| v.unwrap_or_default().as_bytes().to_vec()).collect()
                }
            };
            return Ok(values);
        }
        let text = self.encode(batch)?;
        Ok(text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect())
    }
}

/// Reads the registry options of an `avro-confluent` format named by option `key`
/// (`format`, `key.format` or `value.format`): Flink's `[key.|value.]avro-confluent.url`
/// (or the older `...schema-registry.url`), `.subject`, `.basic-auth.user-info` and
/// `.bearer-auth.token`.
fn registry_options(options: &mut Options<'_>, key: &str) -> Result<avro::RegistryOptions> {
    let prefix = key.strip_suffix("format").unwrap_or("");
    let name = |suffix: &str| format!("{prefix}avro-confluent.{suffix}");
    let url = options.get(&name("url")).or(options.get(&name("schema-registry.url"))).map(str::to_string);
    let Some(url) = url else {
        return Err(options
            .error(format!("format 'avro-confluent' needs option '{}' (the schema registry's URL)", name("url"))));
    };
    let subject = options.get(&name("subject")).or(options.get(&name("schema-registry.subject"))).map(str::to_string);
    let user_info = options.get(&name("basic-auth.user-info")).map(str::to_string);
    let bearer_token = options.get(&name("bearer-auth.token")).map(str::to_string);
    for declared in
        ["basic-auth.credentials-source", "bearer-auth.credentials-source", "properties", "ssl.keystore.location"]
    {
        options.declare(&name(declared));
    }
    Ok(avro::RegistryOptions { url, subject, user_info, bearer_token })
}

/// Writes each change of `batch` (rows with their kinds; all insertions without a kind
/// column) as one line of Debezium's JSON envelope.
fn encode_debezium(batch: &RecordBatch, buf: &mut Vec<u8>) -> Result<()> {
    let changes = sluice_core::changelog::split(batch)?;
    let mut rows = Vec::new();
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::LineDelimited>(&mut rows);
    writer.write(&changes.rows).map_err(|e| OperatorError::arrow("cannot encode JSON", e))?;
    writer.finish().map_err(|e| OperatorError::arrow("cannot encode JSON", e))?;
    drop(writer);
    let lines = rows.split(|b| *b == b'\n').filter(|l| !l.is_empty());
    for (row, kind) in lines.zip(&changes.kinds) {
        let (before, after, op): (&[u8], &[u8], &str) =
            if kind.is_retraction() { (row, b"null", "d") } else { (b"null", row, "c") };
        buf.extend_from_slice(b"{\"before\":");
        buf.extend_from_slice(before);
        buf.extend_from_slice(b",\"after\":");
        buf.extend_from_slice(after);
        buf.extend_from_slice(format!(",\"op\":\"{op}\"}}\n").as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;
    use arrow::datatypes::{Field, Schema};
    use sluice_core::changelog::{self, RowKind};

    use super::*;

    #[test]
    fn debezium_json_writes_each_change_in_its_envelope() {
        let schema =
            Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true), Field::new("n", DataType::Int64, true)]));
        let rows = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("a"), Some("a"), Some("a"), None])),
                Arc::new(Int64Array::from(vec![Some(1), Some(1), Some(2), Some(7)])),
            ],
        )
        .unwrap();
        let kinds = [RowKind::Insert, RowKind::UpdateBefore, RowKind::UpdateAfter, RowKind::Delete];
        let batch = changelog::join(&rows, &kinds).unwrap();
        let mut options_map = std::collections::BTreeMap::new();
        options_map.insert("format".to_string(), "debezium-json".to_string());
        let mut options = Options::new("table 't'", &options_map);
        let format = FormatOptions::parse(&mut options, &[Format::Json, Format::DebeziumJson]).unwrap();
        let text = String::from_utf8(format.encode(&batch).unwrap()).unwrap();
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            vec![
                r#"{"before":null,"after":{"k":"a","n":1},"op":"c"}"#,
                r#"{"before":{"k":"a","n":1},"after":null,"op":"d"}"#,
                r#"{"before":null,"after":{"k":"a","n":2},"op":"c"}"#,
                r#"{"before":{"k":null,"n":7},"after":null,"op":"d"}"#,
            ]
        );
    }
}

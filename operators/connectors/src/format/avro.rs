//! Avro through `arrow-avro`, as Flink's `avro` and `avro-confluent` formats write it.
//!
//! - `avro`: each record is the Avro binary encoding of one row, with the schema Flink
//!   derives from the table (a record named `record`; a nullable column is a union
//!   `["null", T]`; TIMESTAMP is `timestamp-millis`/`-micros`, as Flink's default legacy
//!   mapping; DECIMAL is `bytes` with the `decimal` logical type; DATE is `date`).
//! - `avro-confluent`: Confluent's wire format, a zero byte, the schema id (4 bytes, big
//!   endian), then the Avro body. A sink registers the table's schema under its subject
//!   (`avro-confluent.subject`, default `<topic>-value` or `<topic>-key`); a source fetches
//!   each writer schema by id and reads it into the table's columns by Avro's schema
//!   resolution. The registry is behind [`SchemaRegistry`]; [`HttpSchemaRegistry`] speaks
//!   the Confluent REST API (`avro-confluent.url`, `avro-confluent.basic-auth.user-info`,
//!   `avro-confluent.bearer-auth.token`).
//!
//! Decoded columns are cast to the table's types, so a writer's `string` can fill a
//! VARCHAR and its `int` a BIGINT.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow_avro::compression::CompressionCodec;
use arrow_avro::reader::ReaderBuilder;
use arrow_avro::schema::{
    AvroSchema, Fingerprint, FingerprintAlgorithm, FingerprintStrategy, SchemaStore, AVRO_NAMESPACE_METADATA_KEY,
    AVRO_NAME_METADATA_KEY, SCHEMA_METADATA_KEY,
};
use arrow_avro::writer::format::{AvroBinaryFormat, AvroOcfFormat, AvroSoeFormat};
use arrow_avro::writer::{AvroWriter, WriterBuilder};

/// The record name and namespace of the schemas Flink derives from tables.
const RECORD_NAME: &str = "record";
const RECORD_NAMESPACE: &str = "org.apache.flink.avro.generated";

/// The Confluent wire format's first byte.
const MAGIC: u8 = 0;

/// A Confluent-compatible schema registry.
#[async_trait::async_trait]
pub trait SchemaRegistry: Send + Sync {
    /// The schema (Avro JSON) registered under `id`.
    async fn schema(&self, id: u32) -> Result<String, String>;
    /// Registers `schema` under `subject` (or finds it there) and returns its id.
    async fn register(&self, subject: &str, schema: &str) -> Result<u32, String>;
}

/// Where an `avro-confluent` format finds its registry.
#[derive(Clone)]
pub struct RegistryOptions {
    /// The registry's URL (`avro-confluent.url`).
    pub url: String,
    /// The subject to register under (`avro-confluent.subject`); `None`: the connector's
    /// default.
    pub subject: Option<String>,
    /// `user:password` for HTTP basic authentication.
    pub user_info: Option<String>,
    /// A bearer token.
    pub bearer_token: Option<String>,
}

impl std::fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryOptions")
            .field("url", &self.url)
            .field("subject", &self.subject)
            .field("user_info", &self.user_info.as_ref().map(|_| "****"))
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "****"))
            .finish()
    }
}

/// What an Avro format learned at run time: writer schemas by id, the id it writes with.
#[derive(Default)]
pub struct AvroState {
    writers: Mutex<BTreeMap<u32, String>>,
    write_id: Mutex<Option<u32>>,
    registry: Mutex<Option<Arc<dyn SchemaRegistry>>>,
}

impl std::fmt::Debug for AvroState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroState").finish_non_exhaustive()
    }
}

impl AvroState {
    /// Uses `registry` instead of one built from the options (tests, embedding).
    pub fn set_registry(&self, registry: Arc<dyn SchemaRegistry>) {
        *self.registry.lock().unwrap_or_else(|e| e.into_inner()) = Some(registry);
    }

    fn registry(&self, options: &RegistryOptions) -> Result<Arc<dyn SchemaRegistry>, String> {
        let mut slot = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = slot.as_ref() {
            return Ok(r.clone());
        }
        let built = http_registry(options)?;
        *slot = Some(built.clone());
        Ok(built)
    }

    /// Fetches the writer schemas of `records` (Confluent-framed) not known yet.
    pub async fn fetch_writers(&self, options: &RegistryOptions, records: &[&[u8]]) -> Result<(), String> {
        let missing: Vec<u32> = {
            let known = self.writers.lock().unwrap_or_else(|e| e.into_inner());
            let mut ids: Vec<u32> =
                records.iter().filter_map(|r| schema_id(r)).filter(|id| !known.contains_key(id)).collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        if missing.is_empty() {
            return Ok(());
        }
        let registry = self.registry(options)?;
        for id in missing {
            let schema = registry.schema(id).await?;
            self.writers.lock().unwrap_or_else(|e| e.into_inner()).insert(id, schema);
        }
        Ok(())
    }

    /// Registers the table's schema under `subject`; later encodings carry its id.
    pub async fn register(&self, options: &RegistryOptions, subject: &str, schema: &SchemaRef) -> Result<u32, String> {
        let json = derived_schema(schema)?;
        let id = self.registry(options)?.register(subject, &json).await?;
        *self.write_id.lock().unwrap_or_else(|e| e.into_inner()) = Some(id);
        self.writers.lock().unwrap_or_else(|e| e.into_inner()).insert(id, json);
        Ok(id)
    }

    /// The id registered by [`register`](Self::register).
    pub fn write_id(&self) -> Option<u32> {
        *self.write_id.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn writers(&self) -> BTreeMap<u32, String> {
        self.writers.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The schema id of a Confluent-framed record.
pub fn schema_id(record: &[u8]) -> Option<u32> {
    match record {
        [MAGIC, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// The table's Avro schema named as the `writer`'s record is (Avro resolves a writer's
/// record only into a reader's of the same name).
fn reader_schema(schema: &SchemaRef, writer: Option<&str>) -> Result<String, String> {
    let own = derived_schema(schema)?;
    let Some(writer) = writer.and_then(|w| serde_json::from_str::<serde_json::Value>(w).ok()) else { return Ok(own) };
    let mut reader: serde_json::Value = serde_json::from_str(&own).map_err(|e| e.to_string())?;
    if let (Some(object), Some(name)) = (reader.as_object_mut(), writer.get("name")) {
        object.insert("name".into(), name.clone());
        match writer.get("namespace") {
            Some(namespace) => object.insert("namespace".into(), namespace.clone()),
            None => object.remove("namespace"),
        };
    }
    Ok(reader.to_string())
}

/// The fields whose types differ between a `writer` schema and the `reader` (the table's),
/// as `'name' (string in the writer, long in the table)`, to explain a failed resolution.
fn differing_fields(writer: &str, reader: &str) -> Vec<String> {
    fn fields(json: &str) -> Vec<(String, String)> {
        let value: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
        let type_name = |t: &serde_json::Value| -> String {
            let t = match t.as_array() {
                Some(union) => union.iter().find(|b| b != &"null").cloned().unwrap_or_default(),
                None => t.clone(),
            };
            match &t {
                serde_json::Value::String(s) => s.clone(),
                other => other
                    .get("logicalType")
                    .or_else(|| other.get("type"))
                    .and_then(|v| v.as_str())
                    .unwrap_or("complex")
                    .to_string(),
            }
        };
        value["fields"]
            .as_array()
            .map(|fs| {
                fs.iter().map(|f| (f["name"].as_str().unwrap_or("").to_string(), type_name(&f["type"]))).collect()
            })
            .unwrap_or_default()
    }
    let writer = fields(writer);
    fields(reader)
        .into_iter()
        .filter_map(|(name, table)| {
            let (_, written) = writer.iter().find(|(w, _)| *w == name)?;
            (*written != table).then(|| format!("'{name}' ({written} in the writer, {table} in the table)"))
        })
        .collect()
}

/// A failed resolution of writer schemas into the table's, naming the fields that differ.
fn resolution_error(e: impl std::fmt::Display, writers: &[String], reader: &str) -> String {
    let differing: Vec<String> = writers.iter().flat_map(|w| differing_fields(w, reader)).collect();
    if differing.is_empty() {
        return format!("cannot read Avro: {e}");
    }
    format!("cannot read Avro into the table's columns: {e}; fields that differ: {}", differing.join(", "))
}

/// The table's columns as Avro writes them: TIMESTAMP as UTC instants (Flink's
/// `timestamp-millis`), the record named as Flink names it.
fn avro_view(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Timestamp(unit, None) => {
                f.as_ref().clone().with_data_type(DataType::Timestamp(*unit, Some("+00:00".into())))
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    let metadata: HashMap<String, String> = [
        (AVRO_NAME_METADATA_KEY.to_string(), RECORD_NAME.to_string()),
        (AVRO_NAMESPACE_METADATA_KEY.to_string(), RECORD_NAMESPACE.to_string()),
    ]
    .into();
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

/// The column types Avro has no form for, as Flink refuses them: maps keyed by anything
/// but strings.
fn unmappable(field: &Field) -> Option<String> {
    match field.data_type() {
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if !matches!(kv[0].data_type(), DataType::Utf8 | DataType::LargeUtf8) => {
                Some(format!(
                    "column '{}': an Avro map's keys are strings, so {} keys do not map; use MAP<STRING, ...>",
                    field.name(),
                    kv[0].data_type()
                ))
            }
            DataType::Struct(kv) => unmappable(&kv[1]),
            _ => None,
        },
        DataType::List(item) | DataType::LargeList(item) => unmappable(item),
        DataType::Struct(fields) => fields.iter().find_map(|f| unmappable(f)),
        _ => None,
    }
}

/// The Avro schema (JSON) of a table's columns.
pub fn derived_schema(schema: &SchemaRef) -> Result<String, String> {
    if let Some(why) = schema.fields().iter().find_map(|f| unmappable(f)) {
        return Err(why);
    }
    AvroSchema::try_from(avro_view(schema).as_ref())
        .map(|s| s.json_string)
        .map_err(|e| format!("the columns have no Avro schema: {e}"))
}

/// `batch`'s columns cast to `schema`'s types.
fn cast_to(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, String> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column =
            batch.column_by_name(field.name()).ok_or_else(|| format!("the record has no field '{}'", field.name()))?;
        columns.push(if column.data_type() == field.data_type() {
            column.clone()
        } else {
            arrow::compute::cast(column, field.data_type())
                .map_err(|e| format!("field '{}' cannot be read as {}: {e}", field.name(), field.data_type()))?
        });
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

/// Encodes each row of `batch` (with the table's `schema`); with `id`, in Confluent's
/// wire format.
pub fn encode_rows(schema: &SchemaRef, batch: &RecordBatch, id: Option<u32>) -> Result<Vec<Vec<u8>>, String> {
    let view = avro_view(schema);
    let batch = cast_to(batch, &view)?;
    let builder = WriterBuilder::new(view.as_ref().clone()).with_row_capacity(batch.num_rows());
    let mut encoder = match id {
        Some(id) => builder.with_fingerprint_strategy(FingerprintStrategy::Id(id)).build_encoder::<AvroSoeFormat>(),
        None => builder.build_encoder::<AvroBinaryFormat>(),
    }
    .map_err(|e| format!("cannot encode Avro: {e}"))?;
    encoder.encode(&batch).map_err(|e| format!("cannot encode Avro: {e}"))?;
    Ok(encoder.flush().iter().map(|row| row.to_vec()).collect())
}

/// Decodes `records` into the table's `schema`: plain Avro bodies written with the table's
/// own schema, or (`state` given) Confluent-framed records whose writer schemas `state`
/// holds.
pub fn decode_rows(
    schema: &SchemaRef,
    records: &[&[u8]],
    state: Option<&AvroState>,
) -> Result<Option<RecordBatch>, String> {
    if records.is_empty() {
        return Ok(None);
    }
    let view = avro_view(schema);
    let mut store = SchemaStore::new_with_type(FingerprintAlgorithm::Id);
    let mut writer_schemas = Vec::new();
    let reader = match state {
        None => {
            let own = derived_schema(schema)?;
            store.set(Fingerprint::Id(0), AvroSchema::new(own.clone())).map_err(|e| e.to_string())?;
            own
        }
        Some(state) => {
            let writers = state.writers();
            // The record name of the newest writer schema (all versions of a subject share it).
            let newest = writers.values().next_back().cloned();
            for (id, json) in writers {
                writer_schemas.push(json.clone());
                store.set(Fingerprint::Id(id), AvroSchema::new(json)).map_err(|e| e.to_string())?;
            }
            reader_schema(schema, newest.as_deref())?
        }
    };
    let mut decoder = ReaderBuilder::new()
        .with_writer_schema_store(store)
        .with_reader_schema(AvroSchema::new(reader.clone()))
        .with_batch_size(records.len())
        .build_decoder()
        .map_err(|e| resolution_error(e, &writer_schemas, &reader))?;
    let bad = |e: arrow_avro::errors::AvroError| format!("not an Avro record of the table's schema: {e}");
    let mut framed = Vec::new();
    let mut batches = Vec::new();
    for record in records {
        let bytes: &[u8] = match state {
            None => {
                framed.clear();
                framed.extend_from_slice(&[MAGIC, 0, 0, 0, 0]);
                framed.extend_from_slice(record);
                &framed
            }
            Some(_) => {
                if schema_id(record).is_none() {
                    return Err("not in Confluent's wire format (no magic byte and schema id)".into());
                }
                record
            }
        };
        let mut at = 0;
        while at < bytes.len() {
            let used = decoder.decode(&bytes[at..]).map_err(bad)?;
            at += used;
            if at < bytes.len() {
                // A record of another writer schema waits for the rows before it.
                match decoder.flush().map_err(bad)? {
                    Some(batch) => batches.push(batch),
                    None if used == 0 => {
                        return Err(format!("a record ends early: {at} of its {} bytes read", bytes.len()))
                    }
                    None => {}
                }
            }
        }
    }
    batches.extend(decoder.flush().map_err(bad)?);
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows != records.len() {
        return Err(format!("{} of {} records are whole Avro values", rows, records.len()));
    }
    let typed =
        batches.iter().map(|b| cast_to(b, &view).and_then(|b| cast_to(&b, schema))).collect::<Result<Vec<_>, _>>()?;
    match typed.len() {
        0 => Ok(None),
        1 => Ok(typed.into_iter().next()),
        _ => arrow::compute::concat_batches(schema, &typed).map(Some).map_err(|e| e.to_string()),
    }
}

/// The codec of Avro files (`avro.codec`: `null`, `deflate`, `snappy` (Flink's default),
/// `zstandard`), or an error naming the choices.
pub fn file_codec(name: Option<&str>) -> Result<Option<CompressionCodec>, String> {
    Ok(match name.map(str::to_ascii_lowercase).as_deref() {
        None | Some("snappy") => Some(CompressionCodec::Snappy),
        Some("null") | Some("none") => None,
        Some("deflate") => Some(CompressionCodec::Deflate),
        Some("zstandard") | Some("zstd") => Some(CompressionCodec::ZStandard),
        Some(other) => {
            return Err(format!(
                "option 'avro.codec' = '{other}' is not a codec; use null, deflate, snappy or zstandard"
            ))
        }
    })
}

/// An Avro object container file being written with the table's file `schema`.
pub struct FileWriter {
    writer: AvroWriter<std::fs::File>,
    view: SchemaRef,
}

impl FileWriter {
    /// Starts a file (its header) on `file`.
    pub fn new(file: std::fs::File, schema: &SchemaRef, codec: Option<CompressionCodec>) -> Result<Self, String> {
        let view = avro_view(schema);
        let writer = WriterBuilder::new(view.as_ref().clone())
            .with_compression(codec)
            .build::<_, AvroOcfFormat>(file)
            .map_err(|e| format!("cannot start an Avro file: {e}"))?;
        Ok(FileWriter { writer, view })
    }

    /// Appends `batch`'s rows.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), String> {
        let batch = cast_to(batch, &self.view)?;
        self.writer.write(&batch).map_err(|e| format!("cannot write Avro: {e}"))
    }

    /// Writes what is buffered and returns the file.
    pub fn finish(mut self) -> Result<std::fs::File, String> {
        self.writer.finish().map_err(|e| format!("cannot complete the Avro file: {e}"))?;
        Ok(self.writer.into_inner())
    }
}

/// Opens an Avro object container file, reading its records into `schema`'s columns by
/// Avro's schema resolution (the file's writer schema to the table's).
pub fn file_reader(
    file: std::fs::File,
    schema: &SchemaRef,
    batch_rows: usize,
) -> Result<arrow_avro::reader::Reader<std::io::BufReader<std::fs::File>>, String> {
    use std::io::Seek;
    let bad = |e: ArrowError| format!("not an Avro file of the table's columns: {e}");
    let mut file = file;
    let writer = {
        let probe = ReaderBuilder::new().build(std::io::BufReader::new(&mut file)).map_err(bad)?;
        probe.avro_header().get(SCHEMA_METADATA_KEY).map(|s| String::from_utf8_lossy(s).into_owned())
    };
    file.rewind().map_err(|e| format!("cannot read the Avro file again: {e}"))?;
    let reader = reader_schema(schema, writer.as_deref())?;
    ReaderBuilder::new()
        .with_reader_schema(AvroSchema::new(reader.clone()))
        .with_batch_size(batch_rows.max(1))
        .build(std::io::BufReader::new(file))
        .map_err(|e| resolution_error(e, &writer.into_iter().collect::<Vec<_>>(), &reader))
}

#[cfg(feature = "runtime")]
fn http_registry(options: &RegistryOptions) -> Result<Arc<dyn SchemaRegistry>, String> {
    Ok(Arc::new(HttpSchemaRegistry::new(options)?))
}

#[cfg(not(feature = "runtime"))]
fn http_registry(_options: &RegistryOptions) -> Result<Arc<dyn SchemaRegistry>, String> {
    Err("the schema registry client is part of the runtime".into())
}

/// A Confluent Schema Registry (or compatible: Karapace, Apicurio's ccompat API) over its
/// REST API.
#[cfg(feature = "runtime")]
pub struct HttpSchemaRegistry {
    url: String,
    client: reqwest::Client,
    user_info: Option<String>,
    bearer_token: Option<String>,
}

#[cfg(feature = "runtime")]
impl HttpSchemaRegistry {
    /// A client of the registry at `options.url`.
    pub fn new(options: &RegistryOptions) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot start a schema registry client: {e}"))?;
        Ok(HttpSchemaRegistry {
            url: options.url.trim_end_matches('/').to_string(),
            client,
            user_info: options.user_info.clone(),
            bearer_token: options.bearer_token.clone(),
        })
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let request = request.header("Accept", "application/vnd.schemaregistry.v1+json, application/json");
        match (&self.user_info, &self.bearer_token) {
            (_, Some(token)) => request.bearer_auth(token),
            (Some(info), None) => {
                let (user, password) = info.split_once(':').unwrap_or((info, ""));
                request.basic_auth(user, Some(password))
            }
            (None, None) => request,
        }
    }

    async fn call(&self, request: reqwest::RequestBuilder, what: &str) -> Result<serde_json::Value, String> {
        let response = self
            .authorized(request)
            .send()
            .await
            .map_err(|e| format!("cannot reach the schema registry at {} to {what}: {e}", self.url))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
        if !status.is_success() {
            let message = body.get("message").and_then(|m| m.as_str()).unwrap_or("no message");
            return Err(format!("the schema registry at {} refused to {what}: {status}: {message}", self.url));
        }
        Ok(body)
    }
}

#[cfg(feature = "runtime")]
#[async_trait::async_trait]
impl SchemaRegistry for HttpSchemaRegistry {
    async fn schema(&self, id: u32) -> Result<String, String> {
        let what = format!("give schema id {id}");
        let body = self.call(self.client.get(format!("{}/schemas/ids/{id}", self.url)), &what).await?;
        body.get("schema")
            .and_then(|s| s.as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("no schema in its answer to {what}"))
    }

    async fn register(&self, subject: &str, schema: &str) -> Result<u32, String> {
        let what = format!("register a schema under subject '{subject}'");
        let request = self
            .client
            .post(format!("{}/subjects/{subject}/versions", self.url))
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .body(serde_json::json!({ "schema": schema }).to_string());
        let body = self.call(request, &what).await?;
        body.get("id")
            .and_then(|i| i.as_u64())
            .map(|i| i as u32)
            .ok_or_else(|| format!("no id in its answer to {what}"))
    }
}

#[cfg(test)]
mod tests;

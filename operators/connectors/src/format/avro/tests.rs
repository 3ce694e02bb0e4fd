//! Avro records: every SQL type through both formats, schema resolution of an older writer
//! schema, and errors for records that are not the table's.

use super::*;
use arrow::array::{
    BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array, ListArray, StringArray,
    StructArray, TimestampMillisecondArray,
};
use arrow::datatypes::{Fields, Int64Type};

fn table() -> SchemaRef {
    let point = Fields::from(vec![Field::new("x", DataType::Float64, true), Field::new("label", DataType::Utf8, true)]);
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("flag", DataType::Boolean, true),
        Field::new("n", DataType::Int32, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("price", DataType::Decimal128(10, 2), true),
        Field::new("day", DataType::Date32, true),
        Field::new("at", DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None), true),
        Field::new("tags", DataType::List(Arc::new(Field::new("item", DataType::Int64, true))), true),
        Field::new("point", DataType::Struct(point), true),
    ]))
}

fn rows() -> RecordBatch {
    let schema = table();
    let DataType::Struct(point_fields) = schema.field(8).data_type().clone() else { unreachable!() };
    let point = StructArray::new(
        point_fields,
        vec![
            Arc::new(Float64Array::from(vec![Some(1.5), None, Some(-2.0)])),
            Arc::new(StringArray::from(vec![Some("a"), Some("b"), None])),
        ],
        Some(vec![true, true, false].into()),
    );
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
            Arc::new(Int32Array::from(vec![Some(-7), Some(0), None])),
            Arc::new(StringArray::from(vec![Some("héllo"), None, Some("")])),
            Arc::new(Decimal128Array::from(vec![Some(12345), None, Some(-1)]).with_precision_and_scale(10, 2).unwrap()),
            Arc::new(Date32Array::from(vec![Some(20_426), None, Some(0)])),
            Arc::new(TimestampMillisecondArray::from(vec![Some(1_764_892_800_123), None, Some(-1)])),
            Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
                Some(vec![Some(1), None, Some(3)]),
                None,
                Some(vec![]),
            ])),
            Arc::new(point),
        ],
    )
    .unwrap()
}

#[test]
fn every_type_round_trips_through_plain_avro() {
    let encoded = encode_rows(&table(), &rows(), None).unwrap();
    assert_eq!(encoded.len(), 3);
    let records: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
    let decoded = decode_rows(&table(), &records, None).unwrap().unwrap();
    assert_eq!(decoded, rows());
}

#[test]
fn the_derived_schema_is_flinks() {
    let json: serde_json::Value = serde_json::from_str(&derived_schema(&table()).unwrap()).unwrap();
    assert_eq!(json["name"], "record");
    assert_eq!(json["namespace"], "org.apache.flink.avro.generated");
    let fields = json["fields"].as_array().unwrap();
    assert_eq!(fields[0]["type"], "long", "NOT NULL is no union");
    assert_eq!(fields[1]["type"][0], "null", "a nullable column is a union with null first");
    assert_eq!(fields[6]["type"][1]["logicalType"], "timestamp-millis");
    assert_eq!(fields[4]["type"][1]["logicalType"], "decimal");
}

struct FixedRegistry(BTreeMap<u32, String>);

#[async_trait::async_trait]
impl SchemaRegistry for FixedRegistry {
    async fn schema(&self, id: u32) -> Result<String, String> {
        self.0.get(&id).cloned().ok_or_else(|| format!("schema {id} not found"))
    }
    async fn register(&self, _subject: &str, schema: &str) -> Result<u32, String> {
        self.0.iter().find(|(_, s)| s.as_str() == schema).map(|(id, _)| *id).ok_or_else(|| "not registered".into())
    }
}

/// A record written with an older schema (id 7: `id` and `name` only) is read into the
/// table's columns by schema resolution, the rest NULL; the table's own schema is id 8.
#[tokio::test]
async fn confluent_records_are_resolved_from_their_writer_schema() {
    let old =
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("name", DataType::Utf8, true)]));
    let registry = Arc::new(FixedRegistry(BTreeMap::from([
        (7, derived_schema(&old).unwrap()),
        (8, derived_schema(&table()).unwrap()),
    ])));
    let options = RegistryOptions { url: "http://unused".into(), subject: None, user_info: None, bearer_token: None };
    let state = AvroState::default();
    state.set_registry(registry);
    assert_eq!(state.register(&options, "t-value", &table()).await.unwrap(), 8);

    let old_rows = RecordBatch::try_new(
        old.clone(),
        vec![Arc::new(Int64Array::from(vec![9])), Arc::new(StringArray::from(vec!["old"]))],
    )
    .unwrap();
    let old_record = encode_rows(&old, &old_rows, Some(7)).unwrap().remove(0);
    assert_eq!(&old_record[..5], &[0, 0, 0, 0, 7], "magic byte and big-endian id");
    let new_records = encode_rows(&table(), &rows(), state.write_id()).unwrap();

    let mut records: Vec<&[u8]> = vec![old_record.as_slice()];
    records.extend(new_records.iter().map(Vec::as_slice));
    state.fetch_writers(&options, &records).await.unwrap();
    let decoded = decode_rows(&table(), &records, Some(&state)).unwrap().unwrap();
    assert_eq!(decoded.num_rows(), 4);
    assert_eq!(decoded.slice(1, 3), rows());
    let ids = decoded.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(ids.value(0), 9);
    assert!(decoded.column(2).is_null(0), "a column the old writer lacked is NULL");

    let unknown = [0u8, 0, 0, 0, 99, 2];
    let err = state.fetch_writers(&options, &[&unknown]).await.unwrap_err();
    assert!(err.contains("schema 99 not found"), "{err}");
}

#[test]
fn bytes_that_are_not_a_record_are_an_error_not_a_panic() {
    for bad in [&b""[..], &[0xff, 0xff, 0xff][..], &[2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..]] {
        assert!(decode_rows(&table(), &[bad], None).is_err(), "{bad:?}");
    }
    assert!(decode_rows(&table(), &[&[1, 2, 3]], Some(&AvroState::default())).is_err());
}

/// A writer whose field has a type that cannot become the table's is refused naming the
/// field; a column type Avro has no form for is refused when the table is declared.
#[test]
fn types_that_do_not_map_are_named() {
    let writer = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
    let rows = RecordBatch::try_new(writer.clone(), vec![Arc::new(StringArray::from(vec!["not a number"]))]).unwrap();
    let record = encode_rows(&writer, &rows, Some(3)).unwrap().remove(0);
    let state = AvroState::default();
    state.writers.lock().unwrap().insert(3, derived_schema(&writer).unwrap());
    let reader = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let err = decode_rows(&reader, &[&record], Some(&state)).unwrap_err();
    assert!(err.contains("'id' (string in the writer, long in the table)"), "{err}");

    let keyed_by_number = Arc::new(Schema::new(vec![Field::new(
        "m",
        DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(
                    vec![Field::new("key", DataType::Int64, false), Field::new("value", DataType::Utf8, true)].into(),
                ),
                false,
            )),
            false,
        ),
        true,
    )]));
    let err = derived_schema(&keyed_by_number).unwrap_err();
    assert!(err.contains("column 'm': an Avro map's keys are strings"), "{err}");
}

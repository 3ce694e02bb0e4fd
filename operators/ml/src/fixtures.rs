//! The committed fraud model's schemas and options, shared by the crate's tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// The fraud model's INPUT and OUTPUT columns.
pub fn fraud_schemas() -> (SchemaRef, SchemaRef) {
    let input = Arc::new(Schema::new(vec![
        Field::new("amount", DataType::Float64, true),
        Field::new("hour_of_day", DataType::Int32, true),
        Field::new("merchant_category", DataType::Int32, true),
        Field::new("user_age", DataType::Int32, true),
        Field::new("user_country", DataType::Utf8, true),
        Field::new("txn_velocity_24h", DataType::Int32, true),
    ]));
    (input, Arc::new(Schema::new(vec![Field::new("fraud_score", DataType::Float64, true)])))
}

/// The `local` provider's options for `file` under `models/`.
pub fn model_options(file: &str) -> BTreeMap<String, String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models").join(file);
    [("model-path".to_string(), path.display().to_string()), ("task".to_string(), "classification".to_string())].into()
}

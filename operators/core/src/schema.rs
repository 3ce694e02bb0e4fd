//! Arrow schemas travel inside protobuf messages as Arrow IPC stream bytes.

use std::io::Cursor;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

use crate::{OperatorError, Result};

/// Encodes a schema as an Arrow IPC stream holding no batch.
pub fn encode_schema(schema: &Schema) -> Vec<u8> {
    let mut writer =
        StreamWriter::try_new(Vec::new(), schema).expect("writing an IPC schema message into memory cannot fail");
    writer.finish().expect("finishing an in-memory IPC stream cannot fail");
    writer.into_inner().expect("an in-memory IPC stream has no pending I/O")
}

/// Decodes a schema written by [`encode_schema`].
pub fn decode_schema(bytes: &[u8]) -> Result<SchemaRef> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None)
        .map_err(|e| OperatorError::InvalidPlan(format!("undecodable schema: {e}")))?;
    Ok(reader.schema())
}

/// An empty schema, for operators that emit nothing.
pub fn empty_schema() -> SchemaRef {
    Arc::new(Schema::empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field};

    #[test]
    fn schema_round_trips() {
        let schema =
            Schema::new(vec![Field::new("k", DataType::Int64, false), Field::new("name", DataType::Utf8, true)]);
        let decoded = decode_schema(&encode_schema(&schema)).unwrap();
        assert_eq!(decoded.as_ref(), &schema);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_schema(b"not arrow").is_err());
    }
}

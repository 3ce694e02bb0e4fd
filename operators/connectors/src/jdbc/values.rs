//! Values between Arrow and PostgreSQL, as text: statements read every column as `::text`
//! and bind parameters as text cast to the column's type on the server, so every type
//! both sides can write as text (numbers, decimals, strings, booleans, dates, timestamps)
//! maps without a per-type client codec, and PostgreSQL's own parser checks the values.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::util::display::FormatOptions;

use sluice_core::lookup::LookupFailure;

/// A column's values as text in PostgreSQL's input syntax, NULL as `None`.
pub fn texts(array: &ArrayRef) -> Result<Vec<Option<String>>, String> {
    let text = match array.data_type() {
        DataType::Utf8 => array.clone(),
        _ => {
            let options = CastOptions { safe: false, format_options: FormatOptions::default() };
            cast_with_options(array, &DataType::Utf8, &options).map_err(|e| e.to_string())?
        }
    };
    let strings = text.as_any().downcast_ref::<StringArray>().ok_or("a text column is not UTF-8")?;
    Ok((0..strings.len()).map(|i| strings.is_valid(i).then(|| strings.value(i).to_string())).collect())
}

/// Rows read as text (one `Option<&str>` per column of `schema`, in order) as a batch of
/// `schema`; a value that does not read as its column's type names the column.
pub fn decode(schema: &SchemaRef, rows: &[tokio_postgres::Row], context: &str) -> Result<RecordBatch, LookupFailure> {
    let not_retriable = |message: String| LookupFailure { message, retriable: false };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let mut values: Vec<Option<&str>> = Vec::with_capacity(rows.len());
        for row in rows {
            values.push(
                row.try_get::<_, Option<&str>>(i)
                    .map_err(|e| not_retriable(format!("{context}: column '{}': {e}", field.name())))?,
            );
        }
        let text: ArrayRef = Arc::new(StringArray::from(values));
        let options = CastOptions { safe: false, format_options: FormatOptions::default() };
        let typed = cast_with_options(&text, field.data_type(), &options).map_err(|e| {
            not_retriable(format!(
                "{context}: column '{}' holds a value that does not read as its declared type ({}): {e} (declare the \
                 column with the type PostgreSQL stores)",
                field.name(),
                field.data_type()
            ))
        })?;
        if !field.is_nullable() && typed.null_count() > 0 {
            return Err(not_retriable(format!(
                "{context}: column '{}' is declared NOT NULL but PostgreSQL returned NULL (declare it nullable)",
                field.name()
            )));
        }
        columns.push(typed);
    }
    let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows.len()));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options)
        .map_err(|e| not_retriable(format!("{context}: {e}")))
}

//! From rows to prompts and from answers to OUTPUT columns.
//!
//! A single STRING INPUT column is the user message; several INPUT columns fill
//! `prompt-template`'s `{column}` placeholders. Answers fill the OUTPUT columns: the text
//! (or embedding) goes to the single answer column, or with `response-format` =
//! `json_object` each OUTPUT column takes the answer's JSON field of its name. OUTPUT
//! columns named `error_message` (STRING) and `http_status` (INT) are error metadata:
//! NULL for answered rows, set for failed rows that `on-error` keeps.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float32Builder, ListBuilder};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Map, Value};

use super::api::Answer;
use super::client::Failure;

/// The OUTPUT column for a failed row's error message.
pub const ERROR_MESSAGE_COLUMN: &str = "error_message";
/// The OUTPUT column for a failed row's HTTP status.
pub const HTTP_STATUS_COLUMN: &str = "http_status";

/// Builds prompts from a model's INPUT columns.
#[derive(Debug, Clone)]
pub struct Prompter {
    names: Vec<String>,
    template: Option<String>,
}

impl Prompter {
    /// A prompter for the INPUT schema `input`, with an optional template.
    pub fn new(input: &SchemaRef, template: Option<String>) -> Result<Self, String> {
        let names: Vec<String> = input.fields().iter().map(|f| f.name().clone()).collect();
        match &template {
            Some(t) => {
                for name in placeholders(t) {
                    if !names.iter().any(|n| n == name) {
                        return Err(format!(
                            "'prompt_template' uses {{{name}}}, which is not an INPUT column (INPUT columns: {})",
                            names.join(", ")
                        ));
                    }
                }
            }
            None if names.len() != 1 => {
                return Err(format!(
                    "the model has {} INPUT columns ({}); set 'prompt_template' with {{column}} placeholders to build the prompt",
                    names.len(),
                    names.join(", ")
                ))
            }
            None => {}
        }
        Ok(Prompter { names, template })
    }

    /// One prompt per row of `features` (the INPUT columns in order); a row with a NULL
    /// input gets an error instead.
    pub fn prompts(&self, features: &RecordBatch) -> Vec<Result<String, String>> {
        let options = FormatOptions::default();
        let formatters: Vec<_> =
            features.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options)).collect();
        (0..features.num_rows())
            .map(|row| {
                let mut values = Vec::with_capacity(self.names.len());
                for (i, column) in features.columns().iter().enumerate() {
                    if column.is_null(row) {
                        return Err(format!("INPUT column '{}' is NULL", self.names[i]));
                    }
                    let value = match &formatters[i] {
                        Ok(f) => f.value(row).to_string(),
                        Err(e) => return Err(format!("INPUT column '{}' cannot be shown as text: {e}", self.names[i])),
                    };
                    values.push(value);
                }
                Ok(match &self.template {
                    None => values.pop().unwrap_or_default(),
                    Some(t) => fill(t, &self.names, &values),
                })
            })
            .collect()
    }
}

fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|part| part.split_once('}').map(|(name, _)| name))
        .filter(|n| !n.is_empty() && !n.contains(' '))
}

fn fill(template: &str, names: &[String], values: &[String]) -> String {
    let mut out = template.to_string();
    for (name, value) in names.iter().zip(values) {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// The OUTPUT values of one row.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputValues {
    /// Values by OUTPUT column name (a text or JSON answer, or a failed row's error).
    Fields(Map<String, Value>),
    /// An embedding for the single answer column.
    Embedding(Vec<f32>),
}

/// Turns answers into OUTPUT columns.
#[derive(Debug, Clone)]
pub struct Shaper {
    schema: SchemaRef,
    answer_column: Option<String>,
    has_error_columns: bool,
}

impl Shaper {
    /// A shaper for the OUTPUT schema `output`.
    pub fn new(output: &SchemaRef, json_output: bool, embeddings: bool) -> Result<Self, String> {
        let answers: Vec<_> = output
            .fields()
            .iter()
            .filter(|f| f.name() != ERROR_MESSAGE_COLUMN && f.name() != HTTP_STATUS_COLUMN)
            .collect();
        let has_error_columns = answers.len() < output.fields().len();
        let answer_column = if json_output {
            None
        } else {
            let [field] = answers.as_slice() else {
                return Err(format!(
                    "the model has {} OUTPUT columns besides error metadata; give it one, or set 'response_format' = 'json_object' to fill several from the answer's JSON fields",
                    answers.len()
                ));
            };
            let fits = if embeddings {
                matches!(field.data_type(), DataType::List(item) | DataType::LargeList(item) if item.data_type().is_floating())
            } else {
                matches!(field.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
            };
            if !fits {
                let wanted = if embeddings { "ARRAY<FLOAT>" } else { "STRING" };
                return Err(format!(
                    "OUTPUT column '{}' is {}, but the answer is {wanted}",
                    field.name(),
                    field.data_type()
                ));
            }
            Some(field.name().clone())
        };
        Ok(Shaper { schema: output.clone(), answer_column, has_error_columns })
    }

    /// Whether failed rows can be kept with their error in the OUTPUT columns.
    pub fn has_error_columns(&self) -> bool {
        self.has_error_columns
    }

    /// The OUTPUT values of an answer, or why the answer does not fit.
    pub fn answer_row(&self, answer: Answer) -> Result<OutputValues, String> {
        let mut row = Map::new();
        match (answer, &self.answer_column) {
            (Answer::Text(text), None) => {
                let parsed: Value =
                    serde_json::from_str(&text).map_err(|e| format!("the answer is not valid JSON: {e}"))?;
                let Value::Object(fields) = parsed else {
                    return Err("the answer is JSON but not an object".to_string());
                };
                for field in self.schema.fields() {
                    if let Some(v) = fields.get(field.name()) {
                        row.insert(field.name().clone(), coerce(v, field.data_type()));
                    }
                }
            }
            (Answer::Text(text), Some(column)) => {
                row.insert(column.clone(), Value::String(text));
            }
            (Answer::Embedding(vector), Some(_)) => return Ok(OutputValues::Embedding(vector)),
            (Answer::Embedding(_), None) => return Err("an embedding cannot fill JSON fields".to_string()),
        }
        Ok(OutputValues::Fields(row))
    }

    /// The OUTPUT values of a failed row: only the error columns.
    pub fn failure_row(&self, failure: &Failure) -> OutputValues {
        let mut row = Map::new();
        row.insert(ERROR_MESSAGE_COLUMN.into(), Value::String(failure.message.clone()));
        if let Some(status) = failure.status {
            row.insert(HTTP_STATUS_COLUMN.into(), status.into());
        }
        OutputValues::Fields(row)
    }

    /// The OUTPUT columns of `rows`. Rows that are all embeddings of the only OUTPUT column
    /// are built into a list column directly; otherwise the rows go through Arrow's JSON
    /// decoder.
    pub fn columns(&self, rows: Vec<OutputValues>) -> Result<Vec<ArrayRef>, String> {
        if let Some(vectors) = self.only_embeddings(&rows) {
            return Ok(vec![embedding_column(&vectors, self.schema.field(0).data_type())?]);
        }
        let maps: Vec<Map<String, Value>> = rows
            .into_iter()
            .map(|r| match r {
                OutputValues::Fields(map) => map,
                OutputValues::Embedding(vector) => {
                    let column = self.answer_column.clone().unwrap_or_default();
                    let values = Value::from(vector.iter().map(|v| f64::from(*v)).collect::<Vec<_>>());
                    Map::from_iter([(column, values)])
                }
            })
            .collect();
        let mut decoder = arrow::json::ReaderBuilder::new(self.schema.clone())
            .with_coerce_primitive(true)
            .build_decoder()
            .map_err(|e| e.to_string())?;
        decoder.serialize(&maps).map_err(|e| format!("the answer does not fit the OUTPUT columns: {e}"))?;
        let batch = decoder.flush().map_err(|e| e.to_string())?.ok_or("no rows")?;
        Ok(batch.columns().to_vec())
    }

    /// The embeddings of `rows` when each is one and the answer column is the only OUTPUT column.
    fn only_embeddings<'a>(&self, rows: &'a [OutputValues]) -> Option<Vec<&'a [f32]>> {
        if self.answer_column.is_none() || self.schema.fields().len() != 1 {
            return None;
        }
        rows.iter()
            .map(|r| match r {
                OutputValues::Embedding(vector) => Some(vector.as_slice()),
                OutputValues::Fields(_) => None,
            })
            .collect()
    }
}

/// A list column of `vectors`, of the OUTPUT column's list type `data_type`.
fn embedding_column(vectors: &[&[f32]], data_type: &DataType) -> Result<ArrayRef, String> {
    let total = vectors.iter().map(|v| v.len()).sum();
    let mut builder = ListBuilder::with_capacity(Float32Builder::with_capacity(total), vectors.len());
    for vector in vectors {
        builder.values().append_slice(vector);
        builder.append(true);
    }
    let list: ArrayRef = Arc::new(builder.finish());
    if list.data_type() == data_type {
        return Ok(list);
    }
    arrow::compute::cast(&list, data_type).map_err(|e| format!("the embeddings do not fit the OUTPUT column: {e}"))
}

/// A JSON value made to fit a column type where JSON is looser than SQL (objects or
/// numbers in a STRING column become their JSON text).
fn coerce(value: &Value, data_type: &DataType) -> Value {
    match (value, data_type) {
        (Value::String(_) | Value::Null, _) => value.clone(),
        (_, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => Value::String(value.to_string()),
        _ => value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    #[test]
    fn prompts_come_from_one_column_or_a_template() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("age", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec![Some("ann"), None])), Arc::new(Int64Array::from(vec![30, 40]))],
        )
        .unwrap();
        assert!(Prompter::new(&schema, None).unwrap_err().contains("prompt_template"));
        assert!(Prompter::new(&schema, Some("{nope}".into())).unwrap_err().contains("{nope}"));
        let p = Prompter::new(&schema, Some("{name} is {age}".into())).unwrap();
        let prompts = p.prompts(&batch);
        assert_eq!(prompts[0], Ok("ann is 30".to_string()));
        assert_eq!(prompts[1], Err("INPUT column 'name' is NULL".to_string()));
    }

    #[test]
    fn answers_fill_columns() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("label", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
            Field::new(ERROR_MESSAGE_COLUMN, DataType::Utf8, true),
            Field::new(HTTP_STATUS_COLUMN, DataType::Int32, true),
        ]));
        assert!(Shaper::new(&schema, false, false).unwrap_err().contains("json_object"));
        let s = Shaper::new(&schema, true, false).unwrap();
        assert!(s.has_error_columns());
        let ok = s.answer_row(Answer::Text(r#"{"label": "fraud", "score": 0.9, "extra": 1}"#.into())).unwrap();
        assert!(s.answer_row(Answer::Text("not json".into())).unwrap_err().contains("not valid JSON"));
        let failed = s.failure_row(&Failure { message: "HTTP 400: bad".into(), status: Some(400), attempts: 1 });
        let columns = s.columns(vec![ok, failed]).unwrap();
        let labels = columns[0].as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!((labels.value(0), labels.is_null(1)), ("fraud", true));
        assert_eq!(columns[1].as_any().downcast_ref::<Float64Array>().unwrap().value(0), 0.9);
        let errors = columns[2].as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!((errors.is_null(0), errors.value(1)), (true, "HTTP 400: bad"));
    }

    /// Embeddings become the list column directly, of the declared element type; beside a
    /// failed row kept with its error, through the JSON path, with the same values.
    #[test]
    fn embeddings_fill_a_list_column_of_the_declared_type() {
        use arrow::array::{AsArray, ListArray};
        use arrow::datatypes::{Float32Type, Float64Type};
        let values = |list: &ListArray, row: usize| -> Vec<f64> {
            let item = list.value(row);
            match item.data_type() {
                DataType::Float32 => {
                    item.as_primitive::<Float32Type>().values().iter().map(|v| f64::from(*v)).collect()
                }
                _ => item.as_primitive::<Float64Type>().values().to_vec(),
            }
        };
        for element in [DataType::Float32, DataType::Float64] {
            let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::new_list(element.clone(), true), true)]));
            let s = Shaper::new(&schema, false, true).unwrap();
            let rows = [vec![0.5, 1.0], vec![], vec![-2.25]].map(|v| s.answer_row(Answer::Embedding(v)).unwrap());
            let columns = s.columns(rows.into()).unwrap();
            assert_eq!(columns[0].data_type(), schema.field(0).data_type());
            let list = columns[0].as_list::<i32>();
            assert_eq!((values(list, 0), values(list, 1), values(list, 2)), (vec![0.5, 1.0], vec![], vec![-2.25]));
        }
        let with_errors = Arc::new(Schema::new(vec![
            Field::new("v", DataType::new_list(DataType::Float32, true), true),
            Field::new(ERROR_MESSAGE_COLUMN, DataType::Utf8, true),
        ]));
        let s = Shaper::new(&with_errors, false, true).unwrap();
        let failed = s.failure_row(&Failure { message: "HTTP 500".into(), status: Some(500), attempts: 3 });
        let columns = s.columns(vec![s.answer_row(Answer::Embedding(vec![0.5, 1.0])).unwrap(), failed]).unwrap();
        let list = columns[0].as_list::<i32>();
        assert_eq!((values(list, 0), list.is_null(1)), (vec![0.5, 1.0], true));
        assert_eq!(columns[1].as_any().downcast_ref::<StringArray>().unwrap().value(1), "HTTP 500");
    }
}

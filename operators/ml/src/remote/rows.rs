//! From rows to prompts and from answers to OUTPUT columns.
//!
//! A single STRING INPUT column is the user message; several INPUT columns fill
//! `prompt-template`'s `{column}` placeholders. Answers fill the OUTPUT columns: the text
//! (or embedding) goes to the single answer column, or with `response-format` =
//! `json_object` each OUTPUT column takes the answer's JSON field of its name. OUTPUT
//! columns named `error_message` (STRING) and `http_status` (INT) are error metadata:
//! NULL for answered rows, set for failed rows that `on-error` keeps.

use arrow::array::{Array, ArrayRef};
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

    /// The OUTPUT values of an answer as a JSON object, or why the answer does not fit.
    pub fn answer_row(&self, answer: &Answer) -> Result<Map<String, Value>, String> {
        let mut row = Map::new();
        match (answer, &self.answer_column) {
            (Answer::Text(text), None) => {
                let parsed: Value =
                    serde_json::from_str(text).map_err(|e| format!("the answer is not valid JSON: {e}"))?;
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
                row.insert(column.clone(), Value::String(text.clone()));
            }
            (Answer::Embedding(vector), Some(column)) => {
                row.insert(column.clone(), Value::from(vector.iter().map(|v| f64::from(*v)).collect::<Vec<_>>()));
            }
            (Answer::Embedding(_), None) => return Err("an embedding cannot fill JSON fields".to_string()),
        }
        Ok(row)
    }

    /// The OUTPUT values of a failed row: only the error columns.
    pub fn failure_row(&self, failure: &Failure) -> Map<String, Value> {
        let mut row = Map::new();
        row.insert(ERROR_MESSAGE_COLUMN.into(), Value::String(failure.message.clone()));
        if let Some(status) = failure.status {
            row.insert(HTTP_STATUS_COLUMN.into(), status.into());
        }
        row
    }

    /// The OUTPUT columns of `rows`.
    pub fn columns(&self, rows: &[Map<String, Value>]) -> Result<Vec<ArrayRef>, String> {
        let mut decoder = arrow::json::ReaderBuilder::new(self.schema.clone())
            .with_coerce_primitive(true)
            .build_decoder()
            .map_err(|e| e.to_string())?;
        decoder.serialize(rows).map_err(|e| format!("the answer does not fit the OUTPUT columns: {e}"))?;
        let batch = decoder.flush().map_err(|e| e.to_string())?.ok_or("no rows")?;
        Ok(batch.columns().to_vec())
    }
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
        let ok = s.answer_row(&Answer::Text(r#"{"label": "fraud", "score": 0.9, "extra": 1}"#.into())).unwrap();
        assert!(s.answer_row(&Answer::Text("not json".into())).unwrap_err().contains("not valid JSON"));
        let failed = s.failure_row(&Failure { message: "HTTP 400: bad".into(), status: Some(400), attempts: 1 });
        let columns = s.columns(&[ok, failed]).unwrap();
        let labels = columns[0].as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!((labels.value(0), labels.is_null(1)), ("fraud", true));
        assert_eq!(columns[1].as_any().downcast_ref::<Float64Array>().unwrap().value(0), 0.9);
        let errors = columns[2].as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!((errors.is_null(0), errors.value(1)), (true, "HTTP 400: bad"));

        let embedding = Arc::new(Schema::new(vec![Field::new("v", DataType::new_list(DataType::Float32, true), true)]));
        let s = Shaper::new(&embedding, false, true).unwrap();
        let columns = s.columns(&[s.answer_row(&Answer::Embedding(vec![0.5, 1.0])).unwrap()]).unwrap();
        assert_eq!(columns[0].len(), 1);
    }
}

//! Declared models: input and output schemas, provider and validated options.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use sluice_core::models::{merge_model_options, validate_model_options, ModelOptionError};
use sqlparser::tokenizer::Location;

use crate::error::{Result, SqlError};
use crate::parser::{ColumnDef, CreateModel, Name, WithOption};

/// A declared model.
#[derive(Debug, Clone)]
pub struct Model {
    /// The name as declared.
    pub name: String,
    /// Where the name is in its CREATE MODEL.
    pub location: Location,
    /// Declared `TEMPORARY`.
    pub temporary: bool,
    /// The `INPUT (...)` columns.
    pub input: SchemaRef,
    /// The `OUTPUT (...)` columns.
    pub output: SchemaRef,
    /// The `COMMENT` of each input column.
    pub input_comments: Vec<Option<String>>,
    /// The `COMMENT` of each output column.
    pub output_comments: Vec<Option<String>>,
    /// `COMMENT '...'`.
    pub comment: Option<String>,
    /// The provider (`openai`, `anthropic`, `local` or `generic-python`).
    pub provider: String,
    /// The options other than `provider`, under their canonical keys; values as written,
    /// so secret references stay unresolved.
    pub options: BTreeMap<String, String>,
}

impl Model {
    /// Builds a model from its CREATE MODEL statement, validating its options against its
    /// provider's schema.
    pub fn from_statement(create: &CreateModel) -> Result<Self> {
        let (input, input_comments) = schema(&create.name, "INPUT", &create.input)?;
        let (output, output_comments) = schema(&create.name, "OUTPUT", &create.output)?;
        let Some(provider) = create.options.iter().find(|o| o.key == "provider") else {
            return Err(SqlError::new(
                create.with_location,
                format!("model '{}' has no 'provider' option", create.name),
            ));
        };
        let raw: BTreeMap<String, String> = create.options.iter().map(|o| (o.key.clone(), o.value.clone())).collect();
        let options = validate_model_options(&provider.value, &raw)
            .map_err(|e| option_error(&e, &create.options, create.location))?;
        Ok(Model {
            name: create.name.clone(),
            location: create.location,
            temporary: create.temporary,
            input,
            output,
            input_comments,
            output_comments,
            comment: create.comment.clone(),
            provider: provider.value.trim().to_ascii_lowercase(),
            options,
        })
    }

    /// Applies `ALTER MODEL ... SET (changes)`: each change replaces the option it names
    /// (under any spelling; `provider` changes the provider), and the whole is validated
    /// again. Errors point at the changed option, else at `name`.
    pub(super) fn set_options(&mut self, changes: &[WithOption], name: &Name) -> Result<()> {
        let provider =
            changes.iter().find(|o| o.key == "provider").map_or(self.provider.as_str(), |o| o.value.as_str());
        let raw: BTreeMap<String, String> =
            changes.iter().filter(|o| o.key != "provider").map(|o| (o.key.clone(), o.value.clone())).collect();
        let options =
            merge_model_options(provider, &self.options, &raw).map_err(|e| option_error(&e, changes, name.location))?;
        self.provider = provider.trim().to_ascii_lowercase();
        self.options = options;
        Ok(())
    }
}

/// The Arrow schema and the comments of a model's INPUT or OUTPUT columns.
fn schema(model: &str, clause: &str, columns: &[ColumnDef]) -> Result<(SchemaRef, Vec<Option<String>>)> {
    let mut fields: Vec<Field> = Vec::with_capacity(columns.len());
    for column in columns {
        if fields.iter().any(|f| f.name().eq_ignore_ascii_case(&column.name)) {
            return Err(SqlError::new(
                column.location,
                format!("duplicate column '{}' in the {clause} of model '{model}'", column.name),
            )
            .with_hint("rename one of them"));
        }
        fields.push(Field::new(column.name.clone(), column.data_type.clone(), column.nullable));
    }
    Ok((Arc::new(Schema::new(fields)), columns.iter().map(|c| c.comment.clone()).collect()))
}

/// A model option error located at the option it names (the provider's value for an
/// unknown provider), else at `fallback`.
fn option_error(error: &ModelOptionError, options: &[WithOption], fallback: Location) -> SqlError {
    let location = error.key.as_deref().and_then(|key| options.iter().find(|o| o.key == key)).map_or(fallback, |o| {
        if o.key == "provider" {
            o.value_location
        } else {
            o.key_location
        }
    });
    let sql = SqlError::new(location, error.message.clone());
    match &error.hint {
        Some(hint) => sql.with_hint(hint.clone()),
        None => sql,
    }
}

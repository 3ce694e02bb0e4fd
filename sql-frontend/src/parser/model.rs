//! `CREATE MODEL` and `ALTER MODEL`.

use sqlparser::tokenizer::Token;

use super::ast::{AlterModel, AlterModelAction, ColumnDef, ColumnKind, CreateModel};
use super::column_type::column_type;
use super::cursor::Cursor;
use crate::error::{Result, SqlError};

/// `CREATE [TEMPORARY] MODEL [IF NOT EXISTS] name INPUT (...) OUTPUT (...) [COMMENT '...']
/// WITH (...)`, after `MODEL`.
pub(super) fn create_model(c: &mut Cursor, temporary: bool) -> Result<CreateModel> {
    let if_not_exists = c.eat_words(&["IF", "NOT", "EXISTS"]);
    let name = c.name("a model name")?;
    let input = columns(c, &name.value, "INPUT")?;
    let output = columns(c, &name.value, "OUTPUT")?;
    let comment = c.comment()?;
    let with_location = c.location();
    if !c.eat_word("WITH") {
        return Err(SqlError::new(
            with_location,
            format!("CREATE MODEL {} needs a WITH (...) clause, found: {}", name.value, c.found()),
        )
        .with_hint("add WITH ('provider' = '...', ...) after OUTPUT (...)"));
    }
    let options = c.option_list()?;
    if options.is_empty() {
        return Err(SqlError::new(with_location, format!("CREATE MODEL {} has an empty WITH clause", name.value))
            .with_hint("name the provider at least: WITH ('provider' = 'openai', ...)"));
    }
    if !options.iter().any(|o| o.key == "provider") {
        return Err(SqlError::new(with_location, format!("CREATE MODEL {} has no 'provider' option", name.value))
            .with_hint(format!("add 'provider' = '...', one of {}", quoted_providers())));
    }
    Ok(CreateModel {
        name: name.value,
        location: name.location,
        temporary,
        if_not_exists,
        input,
        output,
        comment,
        options,
        with_location,
    })
}

fn quoted_providers() -> String {
    let names: Vec<String> = sluice_core::models::provider_names().iter().map(|p| format!("'{p}'")).collect();
    names.join(", ")
}

/// `INPUT (col TYPE [NOT NULL] [COMMENT '...'], ...)` or the same for `OUTPUT`.
fn columns(c: &mut Cursor, model: &str, clause: &str) -> Result<Vec<ColumnDef>> {
    let location = c.location();
    if !c.eat_word(clause) {
        return Err(SqlError::new(
            location,
            format!("CREATE MODEL {model} needs an {clause} (...) clause, found: {}", c.found()),
        )
        .with_hint(format!("declare the model's {} columns: {clause} (name TYPE, ...)", clause.to_ascii_lowercase())));
    }
    c.expect(&Token::LParen)?;
    if c.peek().token == Token::RParen {
        return Err(SqlError::new(location, format!("the {clause} of model {model} has no columns"))
            .with_hint(format!("declare at least one: {clause} (name TYPE)")));
    }
    let mut columns = Vec::new();
    loop {
        let name = c.name("a column name")?;
        let data_type = column_type(c)?;
        let nullable = !c.eat_words(&["NOT", "NULL"]);
        let comment = c.comment()?;
        columns.push(ColumnDef {
            name: name.value,
            location: name.location,
            data_type,
            nullable,
            kind: ColumnKind::Physical,
            comment,
        });
        if c.eat(&Token::RParen) {
            return Ok(columns);
        }
        if !c.eat(&Token::Comma) {
            return Err(c.unexpected("',' or ')'"));
        }
    }
}

/// `ALTER MODEL [IF EXISTS] name SET (...) | RENAME TO new_name`.
pub(super) fn alter_model(c: &mut Cursor) -> Result<AlterModel> {
    let location = c.location();
    c.expect_word("ALTER")?;
    c.expect_word("MODEL")?;
    let if_exists = c.eat_words(&["IF", "EXISTS"]);
    let name = c.name("a model name")?;
    let action = if c.eat_word("SET") {
        let set_location = c.location();
        let options = c.option_list()?;
        if options.is_empty() {
            return Err(SqlError::new(set_location, format!("ALTER MODEL {} SET () changes nothing", name.value))
                .with_hint("list the options to change: SET ('key' = 'value', ...)"));
        }
        AlterModelAction::Set(options)
    } else if c.eat_words(&["RENAME", "TO"]) {
        AlterModelAction::RenameTo(c.name("the new model name")?)
    } else {
        return Err(c.unexpected("SET (...) or RENAME TO"));
    };
    Ok(AlterModel { location, name, if_exists, action })
}

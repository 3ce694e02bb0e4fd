//! `CREATE TABLE` (physical, computed and metadata columns, `WATERMARK`, `PRIMARY KEY`,
//! `COMMENT`, `PARTITIONED BY`, `WITH`) and `CREATE VIEW`.

use arrow::datatypes::DataType;
use sqlparser::tokenizer::{Location, Token};

use super::ast::{ColumnDef, ColumnKind, CreateTable, CreateView, Name, PrimaryKeyDef, TableCalls, WatermarkDef};
use super::column_type::column_type;
use super::cursor::Cursor;
use crate::error::{Result, SqlError};

/// `CREATE [TEMPORARY] TABLE`, after `TABLE`.
pub(super) fn create_table(c: &mut Cursor, temporary: bool) -> Result<CreateTable> {
    let if_not_exists = c.eat_words(&["IF", "NOT", "EXISTS"]);
    let name = c.name("a table name")?;
    let mut table = CreateTable {
        name: name.value,
        location: name.location,
        temporary,
        if_not_exists,
        columns: Vec::new(),
        watermark: None,
        primary_key: None,
        partitioned_by: Vec::new(),
        comment: None,
        options: Vec::new(),
    };
    if c.peek_word("AS") || c.peek_word("LIKE") {
        return Err(SqlError::new(c.location(), format!("CREATE TABLE ... {} is not supported yet", c.found()))
            .with_hint("declare the columns: CREATE TABLE t (col TYPE, ...) WITH (...)"));
    }
    if c.peek().token != Token::LParen {
        return Err(c.unexpected("'(' and the columns of the table"));
    }
    c.next();
    loop {
        table_element(c, &mut table)?;
        if c.eat(&Token::RParen) {
            break;
        }
        if !c.eat(&Token::Comma) {
            return Err(c.unexpected("',' or ')'"));
        }
    }
    table.comment = c.comment()?;
    if c.eat_words(&["PARTITIONED", "BY"]) {
        table.partitioned_by = c.name_list("a column name")?;
    }
    if c.eat_word("WITH") {
        table.options = c.option_list()?;
    }
    if c.peek_word("LIKE") {
        return Err(SqlError::new(c.location(), "CREATE TABLE ... LIKE is not supported yet"));
    }
    Ok(table)
}

/// One entry of the column list: a column, a watermark or a primary key.
fn table_element(c: &mut Cursor, table: &mut CreateTable) -> Result<()> {
    let location = c.location();
    if c.eat_word("WATERMARK") {
        c.expect_word("FOR")?;
        let column = c.name("the event-time column")?;
        c.expect_word("AS")?;
        let expr = c.sql(|p| p.parse_expr())?;
        if let Some(previous) = &table.watermark {
            return Err(SqlError::new(location, format!("table '{}' declares two watermarks", table.name))
                .with_hint(format!("keep one; the other is on '{}'", previous.column.value)));
        }
        let text = expr.to_string();
        table.watermark = Some(WatermarkDef { column, expr, text, location });
        return Ok(());
    }
    if c.peek_word("CONSTRAINT") || c.peek_word("PRIMARY") {
        let name = constraint_name(c)?;
        c.expect_word("PRIMARY")?;
        c.expect_word("KEY")?;
        let columns = c.name_list("a column name")?;
        return set_primary_key(c, table, PrimaryKeyDef { name, columns, location });
    }
    let column = column(c, table)?;
    table.columns.push(column);
    Ok(())
}

/// A physical, computed or metadata column, with an inline primary key.
fn column(c: &mut Cursor, table: &mut CreateTable) -> Result<ColumnDef> {
    let name = c.name("a column name, WATERMARK or PRIMARY KEY")?;
    if c.eat_word("AS") {
        let expr = c.sql(|p| p.parse_expr())?;
        let text = expr.to_string();
        let comment = c.comment()?;
        return Ok(ColumnDef {
            name: name.value,
            location: name.location,
            data_type: DataType::Null,
            nullable: true,
            kind: ColumnKind::Computed { expr, text },
            comment,
        });
    }
    let data_type = column_type(c)?;
    let mut column = ColumnDef {
        name: name.value,
        location: name.location,
        data_type,
        nullable: true,
        kind: ColumnKind::Physical,
        comment: None,
    };
    loop {
        let location = c.location();
        if c.eat_words(&["NOT", "NULL"]) {
            column.nullable = false;
        } else if c.eat_word("NULL") {
            column.nullable = true;
        } else if c.eat_word("METADATA") {
            let key = if c.eat_word("FROM") { Some(c.string("the metadata key in quotes")?.0) } else { None };
            column.kind = ColumnKind::Metadata { key, virtual_: c.eat_word("VIRTUAL") };
        } else if c.peek_word("CONSTRAINT") || c.peek_word("PRIMARY") {
            let constraint = constraint_name(c)?;
            c.expect_word("PRIMARY")?;
            c.expect_word("KEY")?;
            let key = PrimaryKeyDef {
                name: constraint,
                columns: vec![Name { value: column.name.clone(), location: column.location }],
                location,
            };
            set_primary_key(c, table, key)?;
        } else if c.peek_word("COMMENT") {
            column.comment = c.comment()?;
        } else {
            return Ok(column);
        }
    }
}

/// `CONSTRAINT name`, if next.
fn constraint_name(c: &mut Cursor) -> Result<Option<String>> {
    if c.eat_word("CONSTRAINT") {
        Ok(Some(c.name("a constraint name")?.value))
    } else {
        Ok(None)
    }
}

/// Reads `NOT ENFORCED` after a primary key and records the key.
fn set_primary_key(c: &mut Cursor, table: &mut CreateTable, key: PrimaryKeyDef) -> Result<()> {
    if !c.eat_words(&["NOT", "ENFORCED"]) {
        return Err(SqlError::new(key.location, format!("the primary key of table '{}' must be NOT ENFORCED", table.name))
            .with_hint(
                "Sluice, like Flink, does not own the data and cannot enforce the key; write PRIMARY KEY (...) NOT ENFORCED",
            ));
    }
    if let Some(previous) = &table.primary_key {
        return Err(SqlError::new(key.location, format!("table '{}' declares two primary keys", table.name))
            .with_hint(format!(
                "the first is at line {}, column {}; list all key columns in one PRIMARY KEY (...)",
                previous.location.line, previous.location.column
            )));
    }
    table.primary_key = Some(key);
    Ok(())
}

/// `CREATE [TEMPORARY] VIEW`, after `VIEW`.
pub(super) fn create_view(c: &mut Cursor, temporary: bool, mut calls: TableCalls) -> Result<CreateView> {
    let if_not_exists = c.eat_words(&["IF", "NOT", "EXISTS"]);
    let name = c.name("a view name")?;
    let columns = if c.peek().token == Token::LParen { c.name_list("a column name")? } else { Vec::new() };
    let comment = c.comment()?;
    c.expect_word("AS")?;
    let start: Location = c.location();
    let query = super::query::windowed_query(c, &mut calls)?;
    let text = c.source_from(start);
    Ok(CreateView {
        name: name.value,
        location: name.location,
        temporary,
        if_not_exists,
        columns,
        comment,
        query,
        calls,
        text,
    })
}

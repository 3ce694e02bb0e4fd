//! Column types: Flink's `MAP<K, V>`, `ARRAY<T>`, `TIMESTAMP_LTZ(p)` and
//! `TIMESTAMP(p) WITH LOCAL TIME ZONE` are read here; every other type is read by
//! sqlparser and mapped by [`arrow_type`].

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use sqlparser::tokenizer::{Location, Token};

use super::cursor::Cursor;
use crate::error::{Result, SqlError};
use crate::types::{arrow_type, list_of, TIMESTAMP_LTZ_ZONE};

/// Reads one column type and returns its Arrow type.
pub(crate) fn column_type(c: &mut Cursor) -> Result<DataType> {
    let mut pending_closes = 0;
    let data_type = nested_type(c, &mut pending_closes)?;
    if pending_closes > 0 {
        return Err(c.unexpected("a type before '>'"));
    }
    Ok(data_type)
}

/// A type that may be nested in `<...>`; `pending_closes` counts the `>` of a `>>` token
/// that still has to close an outer type.
fn nested_type(c: &mut Cursor, pending_closes: &mut usize) -> Result<DataType> {
    let location = c.location();
    let angle = c.peek_nth(1).token == Token::Lt;
    if angle && c.peek_word("ARRAY") {
        c.next();
        c.next();
        let element = nested_type(c, pending_closes)?;
        close_angle(c, pending_closes)?;
        return Ok(list_of(element));
    }
    if angle && c.peek_word("MAP") {
        c.next();
        c.next();
        let key = nested_type(c, pending_closes)?;
        c.expect(&Token::Comma)?;
        let value = nested_type(c, pending_closes)?;
        close_angle(c, pending_closes)?;
        let entries = Fields::from(vec![Field::new("key", key, false), Field::new("value", value, true)]);
        return Ok(DataType::Map(Arc::new(Field::new("entries", DataType::Struct(entries), false)), false));
    }
    for word in ["ROW", "MULTISET", "STRUCT", "RAW"] {
        if c.peek_word(word) {
            return Err(SqlError::new(location, format!("column type {word} is not supported yet")));
        }
    }
    if c.eat_word("TIMESTAMP_LTZ") {
        let precision = precision(c)?;
        return timestamp(location, precision, true);
    }
    if c.eat_word("TIMESTAMP") {
        let precision = precision(c)?;
        if c.eat_words(&["WITH", "LOCAL", "TIME", "ZONE"]) {
            return timestamp(location, precision, true);
        }
        if c.eat_words(&["WITH", "TIME", "ZONE"]) {
            return Err(SqlError::new(location, "TIMESTAMP WITH TIME ZONE is not supported")
                .with_hint("use TIMESTAMP_LTZ(3) (TIMESTAMP(3) WITH LOCAL TIME ZONE) for instants"));
        }
        c.eat_words(&["WITHOUT", "TIME", "ZONE"]);
        return timestamp(location, precision, false);
    }
    let sql_type = c.sql(|p| p.parse_data_type())?;
    arrow_type(&sql_type).map_err(|message| SqlError::new(location, message))
}

/// Consumes one `>`, or half of a `>>`.
fn close_angle(c: &mut Cursor, pending_closes: &mut usize) -> Result<()> {
    if *pending_closes > 0 {
        *pending_closes -= 1;
        return Ok(());
    }
    if c.eat(&Token::Gt) {
        return Ok(());
    }
    if c.eat(&Token::ShiftRight) {
        *pending_closes += 1;
        return Ok(());
    }
    Err(c.unexpected("'>'"))
}

/// An optional `(p)` after a type name.
fn precision(c: &mut Cursor) -> Result<Option<u64>> {
    if !c.eat(&Token::LParen) {
        return Ok(None);
    }
    let location = c.location();
    let Token::Number(digits, _) = c.next().token else {
        return Err(SqlError::new(location, "expected a precision such as 3"));
    };
    let precision =
        digits.parse::<u64>().map_err(|_| SqlError::new(location, format!("'{digits}' is not a precision")))?;
    c.expect(&Token::RParen)?;
    Ok(Some(precision))
}

fn timestamp(location: Location, precision: Option<u64>, local_zone: bool) -> Result<DataType> {
    let name = if local_zone { "TIMESTAMP_LTZ" } else { "TIMESTAMP" };
    match precision {
        None | Some(0..=3) => {
            Ok(DataType::Timestamp(TimeUnit::Millisecond, local_zone.then(|| TIMESTAMP_LTZ_ZONE.into())))
        }
        Some(p) => Err(SqlError::new(
            location,
            format!("column type {name}({p}) is not supported yet: timestamps have millisecond precision"),
        )
        .with_hint(format!("use {name}(3)"))),
    }
}

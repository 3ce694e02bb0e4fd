//! `DROP`, `SHOW`, `DESCRIBE`, `SET` and `RESET`.

use sqlparser::tokenizer::{Location, Token};

use super::ast::{DropObject, ObjectKind, ObjectReference, ResetOption, ScriptStatement, SetOption, ShowObjects};
use super::cursor::Cursor;
use crate::error::{Result, SqlError};

/// `TABLE`, `VIEW` or `MODEL`, if next.
fn object_kind(c: &mut Cursor) -> Option<ObjectKind> {
    [ObjectKind::Table, ObjectKind::View, ObjectKind::Model].into_iter().find(|kind| c.eat_word(kind.keyword()))
}

/// `DROP [TEMPORARY] TABLE|VIEW|MODEL [IF EXISTS] name`.
pub(super) fn drop(c: &mut Cursor) -> Result<ScriptStatement> {
    let location = c.location();
    c.expect_word("DROP")?;
    c.eat_word("TEMPORARY");
    let Some(kind) = object_kind(c) else {
        return Err(SqlError::new(location, format!("DROP {} statements are not supported", c.found()))
            .with_hint("Sluice can DROP TABLE, DROP VIEW and DROP MODEL"));
    };
    let if_exists = c.eat_words(&["IF", "EXISTS"]);
    let name = c.name(&format!("a {} name", kind.word()))?;
    Ok(ScriptStatement::Drop(DropObject { location, kind, name, if_exists }))
}

/// `SHOW TABLES|VIEWS|MODELS` or `SHOW CREATE TABLE|VIEW|MODEL name`.
pub(super) fn show(c: &mut Cursor) -> Result<ScriptStatement> {
    let location = c.location();
    c.expect_word("SHOW")?;
    for (word, kind) in [("TABLES", ObjectKind::Table), ("VIEWS", ObjectKind::View), ("MODELS", ObjectKind::Model)] {
        if c.eat_word(word) {
            return Ok(ScriptStatement::Show(ShowObjects { location, kind }));
        }
    }
    if c.eat_word("CREATE") {
        let Some(kind) = object_kind(c) else {
            return Err(c.unexpected("TABLE, VIEW or MODEL"));
        };
        let name = c.name(&format!("a {} name", kind.word()))?;
        return Ok(ScriptStatement::ShowCreate(ObjectReference { location, kind: Some(kind), name }));
    }
    Err(SqlError::new(location, format!("SHOW {} is not supported", c.found()))
        .with_hint("Sluice has SHOW TABLES, SHOW VIEWS, SHOW MODELS and SHOW CREATE TABLE|VIEW|MODEL name"))
}

/// `DESCRIBE|DESC [EXTENDED] [TABLE|VIEW|MODEL] name`.
pub(super) fn describe(c: &mut Cursor) -> Result<ScriptStatement> {
    let location = c.location();
    c.next();
    c.eat_word("EXTENDED");
    // `DESCRIBE model` describes an object called "model".
    let kind = if matches!(c.peek_nth(1).token, Token::Word(_)) { object_kind(c) } else { None };
    let what = kind.map_or("a table, view or model name".to_string(), |k| format!("a {} name", k.word()));
    let name = c.name(&what)?;
    Ok(ScriptStatement::Describe(ObjectReference { location, kind, name }))
}

/// `SET 'key' = 'value'`, where the key and the value are quoted strings or bare text.
pub(super) fn set(c: &mut Cursor) -> Result<SetOption> {
    let location = c.location();
    c.expect_word("SET")?;
    let usage = "SET needs a key and a value, as in SET 'parallelism.default' = '4'";
    let Some((key, key_location)) = set_part(c, true) else {
        return Err(SqlError::new(location, usage));
    };
    let eq = c.location();
    if !c.eat(&Token::Eq) {
        return Err(SqlError::new(location, usage));
    }
    let (value, value_location) =
        set_part(c, false).ok_or_else(|| SqlError::new(eq, format!("missing value for '{key}'; {usage}")))?;
    Ok(SetOption { key, value, location: key_location, value_location })
}

/// `RESET 'key'` or `RESET` (every key).
pub(super) fn reset(c: &mut Cursor) -> Result<ResetOption> {
    let location = c.location();
    c.expect_word("RESET")?;
    let key = set_part(c, false).map(|(key, _)| key);
    Ok(ResetOption { location, key })
}

/// The text of a SET key (up to `=`) or value (to the end): a lone quoted string or word
/// unquoted, else the tokens as written without spaces.
fn set_part(c: &mut Cursor, stop_at_eq: bool) -> Option<(String, Location)> {
    let location = c.location();
    let mut parts = Vec::new();
    while !(c.at_end() || stop_at_eq && c.peek().token == Token::Eq) {
        parts.push(c.next().token);
    }
    let text = match parts.as_slice() {
        [] => return None,
        [Token::SingleQuotedString(s) | Token::DoubleQuotedString(s)] => s.clone(),
        [Token::Word(w)] => w.value.clone(),
        _ => parts.iter().map(Token::to_string).collect(),
    };
    Some((text, location))
}

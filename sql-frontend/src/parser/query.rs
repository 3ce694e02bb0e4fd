//! `INSERT INTO`, queries on their own, and `EXPLAIN`.

use sqlparser::tokenizer::Token;

use super::ast::{Explain, Insert, QueryStatement, ScriptStatement, TableCalls};
use super::cursor::{is_word, Cursor};
use crate::error::{Result, SqlError};

/// The query at the cursor, its group windows rewritten onto windowing calls (added to
/// `calls`).
pub(super) fn windowed_query(c: &mut Cursor, calls: &mut TableCalls) -> Result<Box<sqlparser::ast::Query>> {
    let mut query = c.sql(|p| p.parse_query())?;
    super::group_window::rewrite(&mut query, calls)?;
    Ok(query)
}

/// `INSERT INTO table [(columns)] query`.
pub(super) fn insert(c: &mut Cursor, mut calls: TableCalls) -> Result<Insert> {
    let location = c.location();
    c.expect_word("INSERT")?;
    if c.peek_word("OVERWRITE") {
        return Err(SqlError::new(c.location(), "INSERT OVERWRITE is not supported yet")
            .with_hint("streaming jobs append: write INSERT INTO"));
    }
    c.expect_word("INTO")?;
    let target = c.name("a table name")?;
    let starts_query =
        |token: &Token| *token == Token::LParen || ["SELECT", "WITH", "VALUES"].iter().any(|w| is_word(token, w));
    let columns = if c.peek().token == Token::LParen && !starts_query(&c.peek_nth(1).token) {
        c.name_list("a column name")?.into_iter().map(|n| (n.value, n.location)).collect()
    } else {
        Vec::new()
    };
    if c.at_end() {
        return Err(SqlError::new(c.end(), format!("INSERT INTO {} needs a query", target.value))
            .with_hint(format!("write INSERT INTO {} SELECT ... FROM ...", target.value)));
    }
    let query = windowed_query(c, &mut calls)?;
    Ok(Insert { location, target: target.value, target_location: target.location, columns, query, calls })
}

/// A statement starting with `WITH`: a query, or the lesson's form of an INSERT with its
/// common table expressions first (`WITH t AS (...) INSERT INTO sink SELECT ... FROM t`),
/// which means Flink's `INSERT INTO sink WITH t AS (...) SELECT ... FROM t`.
pub(super) fn with_statement(c: &mut Cursor, mut calls: TableCalls) -> Result<ScriptStatement> {
    use sqlparser::ast::{SetExpr, Spanned, Statement, TableObject};
    let location = c.location();
    let mut query = c.sql(|p| p.parse_query())?;
    let SetExpr::Insert(Statement::Insert(insert)) = query.body.as_ref() else {
        super::group_window::rewrite(&mut query, &mut calls)?;
        return Ok(ScriptStatement::Query(QueryStatement { location, query, calls }));
    };
    let TableObject::TableName(target) = &insert.table else {
        return Err(SqlError::new(location, "INSERT INTO a table function is not supported")
            .with_hint("write INSERT INTO a table declared with CREATE TABLE"));
    };
    let name = |n: &sqlparser::ast::ObjectName| {
        let part = n.0.last().and_then(|p| p.as_ident()).map(|i| i.value.clone()).unwrap_or_else(|| n.to_string());
        (part, n.span().start)
    };
    let Some(source) = &insert.source else {
        return Err(SqlError::new(location, format!("INSERT INTO {target} needs a query"))
            .with_hint(format!("write WITH t AS (...) INSERT INTO {target} SELECT ... FROM t")));
    };
    if insert.overwrite {
        return Err(SqlError::new(location, "INSERT OVERWRITE is not supported yet")
            .with_hint("streaming jobs append: write INSERT INTO"));
    }
    let mut source = source.clone();
    // The expressions written before INSERT come first, then the query's own.
    let mut with = query.with.take();
    if let (Some(outer), Some(inner)) = (&mut with, source.with.take()) {
        outer.cte_tables.extend(inner.cte_tables);
    }
    source.with = with.or(source.with.take());
    super::group_window::rewrite(&mut source, &mut calls)?;
    let (target, target_location) = name(target);
    let columns = insert.columns.iter().map(name).collect();
    Ok(ScriptStatement::Insert(Insert { location, target, target_location, columns, query: source, calls }))
}

/// A query on its own.
pub(super) fn query(c: &mut Cursor, mut calls: TableCalls) -> Result<QueryStatement> {
    let location = c.location();
    let query = windowed_query(c, &mut calls)?;
    Ok(QueryStatement { location, query, calls })
}

/// `EXPLAIN [PLAN FOR] statement` of an INSERT or a query (statement sets are assembled by
/// the script parser).
pub(super) fn explain(c: &mut Cursor, calls: &mut TableCalls) -> Result<ScriptStatement> {
    let location = c.location();
    c.expect_word("EXPLAIN")?;
    // Flink's details, comma-separated: `EXPLAIN CHANGELOG_MODE, ESTIMATED_COST ...`.
    let mut changelog_mode = false;
    loop {
        if c.peek_word("CHANGELOG_MODE") {
            changelog_mode = true;
            c.next();
        } else if let Some(detail) =
            ["ESTIMATED_COST", "JSON_EXECUTION_PLAN", "PLAN_ADVICE"].into_iter().find(|d| c.peek_word(d))
        {
            return Err(SqlError::new(c.location(), format!("EXPLAIN {detail} is not supported yet"))
                .with_hint("write EXPLAIN [CHANGELOG_MODE] followed by the statement"));
        } else {
            break;
        }
        if c.peek().token == Token::Comma {
            c.next();
        }
    }
    c.eat_words(&["PLAN", "FOR"]);
    let inner_location = c.location();
    let statement = if c.peek_word("INSERT") {
        ScriptStatement::Insert(insert(c, std::mem::take(calls))?)
    } else if c.peek().token == Token::LParen || ["SELECT", "WITH", "VALUES"].iter().any(|w| c.peek_word(w)) {
        ScriptStatement::Query(query(c, std::mem::take(calls))?)
    } else {
        return Err(SqlError::new(inner_location, format!("EXPLAIN of {} is not supported", c.found()))
            .with_hint("EXPLAIN an INSERT INTO, a SELECT or a statement set (EXPLAIN STATEMENT SET BEGIN ... END)"));
    };
    Ok(ScriptStatement::Explain(Explain { location, changelog_mode, statement: Box::new(statement) }))
}

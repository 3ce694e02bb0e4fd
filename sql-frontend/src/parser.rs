//! Parsing a SQL script into Sluice's statements.
//!
//! The script is tokenized once with sqlparser (so every token keeps its line and column)
//! and split at `;`. Statement sets (`EXECUTE STATEMENT SET BEGIN ...; END;`,
//! `BEGIN STATEMENT SET; ...; END;`, and both after `EXPLAIN`) span several pieces and are
//! assembled here. In each statement, every `ML_PREDICT(...)` and windowing table-function
//! call is first replaced by a placeholder table ([`MlPredictCall`], [`WindowTvfCall`]); then Flink's own syntax (CREATE
//! TABLE columns, watermarks and keys, CREATE MODEL, SHOW, DESCRIBE, ...) is read by this
//! module, and the standard parts (types, expressions, queries) by sqlparser.

mod apply;
mod ast;
mod column_type;
mod cursor;
mod ddl;
mod group_window;
mod lookup;
mod ml_evaluate;
mod ml_predict;
mod model;
mod query;
mod table_call;
mod utility;
mod vector_search;
mod window_tvf;

use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

pub use ast::*;
use cursor::Cursor;
pub use window_tvf::is_placeholder as is_window_placeholder;

use crate::error::{Result, SqlError};

/// Parses a whole script into its statements.
pub fn parse_script(script: &str) -> Result<Vec<ScriptStatement>> {
    let tokens = Tokenizer::new(&GenericDialect {}, script)
        .tokenize_with_location()
        .map_err(|e| SqlError::from_tokenizer(&e))?;
    let mut statements = Vec::new();
    let mut open_set: Option<OpenSet> = None;
    for chunk in split_statements(tokens) {
        let start = chunk[0].span.start;
        let words = leading_words(&chunk, 5);
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let body = if let Some((keywords, explain)) = set_opening(&words) {
            if let Some(open) = &open_set {
                return Err(SqlError::new(start, "statement sets cannot be nested").with_hint(format!(
                    "close the statement set opened at line {}, column {} with END first",
                    open.location.line, open.location.column
                )));
            }
            open_set = Some(OpenSet { location: start, explain: explain.then_some(start), inserts: Vec::new() });
            let rest = skip_words(&chunk, keywords);
            if rest.is_empty() {
                continue;
            }
            rest
        } else if words == ["END"] && significant(&chunk).count() == 1 {
            let Some(set) = open_set.take() else {
                return Err(SqlError::new(start, "END without an open statement set")
                    .with_hint("open one with EXECUTE STATEMENT SET BEGIN"));
            };
            statements.push(set.close()?);
            continue;
        } else {
            chunk
        };
        let statement = parse_statement(body)?;
        match (&mut open_set, statement) {
            (Some(set), ScriptStatement::Insert(insert)) => set.inserts.push(insert),
            (Some(_), other) => {
                return Err(SqlError::new(other.location(), "a statement set may only contain INSERT INTO statements")
                    .with_hint("move other statements before EXECUTE STATEMENT SET"))
            }
            (None, statement) => statements.push(statement),
        }
    }
    if let Some(open) = open_set {
        return Err(SqlError::new(open.location, "the statement set is never closed").with_hint("end it with END;"));
    }
    Ok(statements)
}

/// A statement set whose END has not been read yet.
struct OpenSet {
    location: Location,
    /// Where `EXPLAIN` is, for `EXPLAIN STATEMENT SET BEGIN ...`.
    explain: Option<Location>,
    inserts: Vec<Insert>,
}

impl OpenSet {
    fn close(self) -> Result<ScriptStatement> {
        if self.inserts.is_empty() {
            return Err(SqlError::new(self.location, "the statement set has no INSERT INTO statement")
                .with_hint("put one or more INSERT INTO ... statements between BEGIN and END"));
        }
        let set = ScriptStatement::StatementSet(StatementSet { location: self.location, inserts: self.inserts });
        Ok(match self.explain {
            Some(location) => {
                ScriptStatement::Explain(Explain { location, changelog_mode: false, statement: Box::new(set) })
            }
            None => set,
        })
    }
}

/// How many leading words open a statement set, and whether it is explained.
fn set_opening(words: &[&str]) -> Option<(usize, bool)> {
    match words {
        ["EXECUTE", "STATEMENT", "SET", "BEGIN", ..] => Some((4, false)),
        ["BEGIN", "STATEMENT", "SET", ..] => Some((3, false)),
        ["EXPLAIN", "STATEMENT", "SET", "BEGIN", ..] | ["EXPLAIN", "BEGIN", "STATEMENT", "SET", ..] => Some((4, true)),
        ["EXPLAIN", "EXECUTE", "STATEMENT", "SET", "BEGIN"] => Some((5, true)),
        _ => None,
    }
}

/// Splits tokens at semicolons into statements of at least one significant token, each
/// starting at its first significant token.
fn split_statements(tokens: Vec<TokenWithSpan>) -> Vec<Vec<TokenWithSpan>> {
    let mut chunks = Vec::new();
    let mut current: Vec<TokenWithSpan> = Vec::new();
    for token in tokens {
        match token.token {
            Token::SemiColon | Token::EOF => {
                if !current.is_empty() {
                    chunks.push(std::mem::take(&mut current));
                }
            }
            Token::Whitespace(_) if current.is_empty() => {}
            _ => current.push(token),
        }
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// The tokens that are not whitespace or comments.
fn significant(tokens: &[TokenWithSpan]) -> impl Iterator<Item = &TokenWithSpan> {
    tokens.iter().filter(|t| !matches!(t.token, Token::Whitespace(_)))
}

/// Up to `n` leading unquoted words of a statement, upper-cased; stops at the first other token.
fn leading_words(tokens: &[TokenWithSpan], n: usize) -> Vec<String> {
    significant(tokens)
        .map_while(|t| match &t.token {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
            _ => None,
        })
        .take(n)
        .collect()
}

/// The tokens after the first `n` significant ones, starting at a significant token.
fn skip_words(tokens: &[TokenWithSpan], n: usize) -> Vec<TokenWithSpan> {
    let mut seen = 0;
    let mut rest = Vec::new();
    for t in tokens {
        let is_significant = !matches!(t.token, Token::Whitespace(_));
        if seen < n {
            seen += usize::from(is_significant);
        } else if is_significant || !rest.is_empty() {
            rest.push(t.clone());
        }
    }
    rest
}

/// Parses one statement (tokens without the `;`, starting at a significant token).
fn parse_statement(tokens: Vec<TokenWithSpan>) -> Result<ScriptStatement> {
    let (windowed, windows) = window_tvf::rewrite(&tokens)?;
    let (rewritten, found) = ml_predict::rewrite(&windowed)?;
    let (rewritten, vector_searches) = vector_search::rewrite(&rewritten)?;
    let (rewritten, evaluations) = ml_evaluate::rewrite(&rewritten)?;
    let rewritten = apply::rewrite(&rewritten, &found.applies)?;
    let (rewritten, lookups) = lookup::rewrite(&rewritten)?;
    let mut calls =
        TableCalls { ml_predicts: found.tables, windows, lookups, ml_calls: found.calls, vector_searches, evaluations };
    let mut c = Cursor::new(rewritten, tokens);
    let statement = statement(&mut c, &mut calls)?;
    if let Some((function, location)) = calls.first() {
        let usage = match function {
            "ML_PREDICT" => "SELECT ... FROM TABLE(ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR(...)))".to_string(),
            "ML_EVALUATE" => {
                "SELECT * FROM ML_EVALUATE(TABLE t, MODEL m, DESCRIPTOR(label), DESCRIPTOR(f1, ...))".to_string()
            }
            "VECTOR_SEARCH" => {
                "SELECT ... FROM t, LATERAL TABLE(VECTOR_SEARCH(TABLE items, t.v, DESCRIPTOR(v), 5))".to_string()
            }
            "FOR SYSTEM_TIME AS OF" => {
                "SELECT ... FROM e JOIN dim FOR SYSTEM_TIME AS OF e.proc_time AS d ON e.k = d.k".to_string()
            }
            window => format!("SELECT ... FROM TABLE({window}(TABLE t, DESCRIPTOR(ts), ...))"),
        };
        return Err(SqlError::new(location, format!("{function} can only be used in the FROM clause of a query"))
            .with_hint(format!("write {usage}")));
    }
    c.finish()?;
    Ok(statement)
}

/// Parses the statement at the cursor; query-bearing statements take the `calls`.
fn statement(c: &mut Cursor, calls: &mut TableCalls) -> Result<ScriptStatement> {
    let start = c.location();
    let first = match c.peek().token {
        Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
        Token::LParen => "(".to_string(),
        _ => String::new(),
    };
    match first.as_str() {
        "CREATE" => {
            c.next();
            create(c, start, calls)
        }
        "ALTER" if c.peek_nth_word(1, "MODEL") => model::alter_model(c).map(ScriptStatement::AlterModel),
        "DROP" => utility::drop(c),
        "SHOW" => utility::show(c),
        "DESCRIBE" | "DESC" => utility::describe(c),
        "SET" => utility::set(c).map(ScriptStatement::Set),
        "RESET" => utility::reset(c).map(ScriptStatement::Reset),
        "EXPLAIN" => query::explain(c, calls),
        "INSERT" => query::insert(c, std::mem::take(calls)).map(ScriptStatement::Insert),
        "WITH" => query::with_statement(c, std::mem::take(calls)),
        "SELECT" | "VALUES" | "(" => query::query(c, std::mem::take(calls)).map(ScriptStatement::Query),
        _ => Err(unsupported_statement(c, start)),
    }
}

/// `CREATE [TEMPORARY] TABLE|VIEW|MODEL ...`, after `CREATE`.
fn create(c: &mut Cursor, start: Location, calls: &mut TableCalls) -> Result<ScriptStatement> {
    if c.peek_word("OR") {
        return Err(SqlError::new(start, "CREATE OR REPLACE is not supported yet")
            .with_hint("DROP the object first, then CREATE it"));
    }
    let temporary = c.eat_word("TEMPORARY");
    if c.eat_word("TABLE") {
        ddl::create_table(c, temporary).map(ScriptStatement::CreateTable)
    } else if c.eat_word("VIEW") {
        ddl::create_view(c, temporary, std::mem::take(calls)).map(ScriptStatement::CreateView)
    } else if c.eat_word("MODEL") {
        model::create_model(c, temporary).map(ScriptStatement::CreateModel)
    } else {
        Err(unsupported_statement(c, start))
    }
}

/// "CREATE FUNCTION statements are not supported", naming the statement's first words.
fn unsupported_statement(c: &Cursor, start: Location) -> SqlError {
    let words = c.leading_words(6);
    let mut words = words.iter().map(String::as_str);
    let kind = match words.next() {
        None => "such".to_string(),
        Some(first @ ("CREATE" | "DROP" | "ALTER" | "SHOW" | "DESCRIBE" | "USE")) => {
            let skip = ["OR", "REPLACE", "TEMPORARY", "TEMP", "IF", "NOT", "EXISTS"];
            match words.find(|w| !skip.contains(w)) {
                Some(object) => format!("{first} {object}"),
                None => first.to_string(),
            }
        }
        Some(other) => other.to_string(),
    };
    SqlError::new(start, format!("{kind} statements are not supported")).with_hint(
        "a script holds CREATE TABLE|VIEW|MODEL, ALTER MODEL, DROP, SHOW, DESCRIBE, SET, RESET, EXPLAIN, \
         INSERT INTO and SELECT statements",
    )
}

#[cfg(test)]
mod tests;

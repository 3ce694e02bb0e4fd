//! Parsing a SQL script into Sluice's statements.
//!
//! The script is tokenized once with sqlparser (so every token keeps its line and column),
//! split at top-level `;`, and each statement is parsed on its own. Flink's statement sets
//! (`EXECUTE STATEMENT SET BEGIN ...; END;` and `BEGIN STATEMENT SET; ...; END;`) and
//! `SET 'key' = 'value'` are recognized at the token level; everything else goes through
//! sqlparser's [`GenericDialect`] and is then narrowed to what Sluice supports.
//!
//! The result keeps the sqlparser AST of each INSERT's query, so that planners can work on
//! it without re-parsing.

use arrow::datatypes::DataType;
use sqlparser::ast::{
    ColumnOption, CreateTableOptions, Expr, ObjectName, ObjectNamePart, Query, SqlOption, Statement,
    TableObject, Value,
};
use sqlparser::ast::Spanned;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use crate::error::{Result, SqlError};
use crate::types::arrow_type;

/// One statement of a script.
#[derive(Debug, Clone)]
pub enum ScriptStatement {
    /// `CREATE TABLE ...`
    CreateTable(CreateTable),
    /// `SET 'key' = 'value'`
    Set(SetOption),
    /// `INSERT INTO sink SELECT ...`
    Insert(Insert),
}

/// A `CREATE [TEMPORARY] TABLE [IF NOT EXISTS]` statement.
#[derive(Debug, Clone)]
pub struct CreateTable {
    /// The table name as written.
    pub name: String,
    /// Where the table name is.
    pub location: Location,
    /// `TEMPORARY` was given (it changes nothing: every table lives as long as the script).
    pub temporary: bool,
    /// `IF NOT EXISTS` was given.
    pub if_not_exists: bool,
    /// The columns, in order.
    pub columns: Vec<ColumnDef>,
    /// The `WITH (...)` options, in order.
    pub options: Vec<TableOption>,
}

/// One column of a `CREATE TABLE`.
#[derive(Debug, Clone)]
pub struct ColumnDef {
    /// The column name as written.
    pub name: String,
    /// Where the column name is.
    pub location: Location,
    /// The Arrow type of the declared SQL type.
    pub data_type: DataType,
    /// False when declared `NOT NULL`.
    pub nullable: bool,
}

/// One `'key' = 'value'` entry of a `WITH` clause.
#[derive(Debug, Clone)]
pub struct TableOption {
    /// The option key.
    pub key: String,
    /// The option value, as text.
    pub value: String,
    /// Where the key is.
    pub key_location: Location,
    /// Where the value is.
    pub value_location: Location,
}

/// A `SET 'key' = 'value'` statement.
#[derive(Debug, Clone)]
pub struct SetOption {
    /// The configuration key.
    pub key: String,
    /// The value, unquoted.
    pub value: String,
    /// Where the key is.
    pub location: Location,
    /// Where the value is.
    pub value_location: Location,
}

/// An `INSERT INTO table SELECT ...` statement.
#[derive(Debug, Clone)]
pub struct Insert {
    /// Where the `INSERT` keyword is.
    pub location: Location,
    /// The target table name as written.
    pub table: String,
    /// Where the target table name is.
    pub table_location: Location,
    /// The query whose rows are inserted.
    pub query: Box<Query>,
}

/// Parses a whole script into its statements.
pub fn parse_script(script: &str) -> Result<Vec<ScriptStatement>> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, script)
        .tokenize_with_location()
        .map_err(|e| SqlError::from_tokenizer(&e))?;
    let mut statements = Vec::new();
    // Where the open statement set began, if one is open.
    let mut statement_set: Option<Location> = None;
    for chunk in split_statements(tokens) {
        let words = leading_words(&chunk, 4);
        let start = chunk[0].span.start;
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let body: Vec<TokenWithSpan> = match words.as_slice() {
            ["EXECUTE", "STATEMENT", "SET", "BEGIN", ..] | ["BEGIN", "STATEMENT", "SET", ..] => {
                let keywords = if words[0] == "EXECUTE" { 4 } else { 3 };
                if let Some(open) = statement_set {
                    return Err(SqlError::new(start, "statement sets cannot be nested").with_hint(format!(
                        "close the statement set opened at line {}, column {} with END first",
                        open.line, open.column
                    )));
                }
                statement_set = Some(start);
                let rest = skip_words(&chunk, keywords);
                if rest.is_empty() {
                    continue;
                }
                rest
            }
            ["END"] if significant(&chunk).count() == 1 => {
                if statement_set.take().is_none() {
                    return Err(SqlError::new(start, "END without an open statement set")
                        .with_hint("open one with EXECUTE STATEMENT SET BEGIN"));
                }
                continue;
            }
            _ => chunk,
        };
        let statement = parse_statement(&dialect, &body)?;
        if statement_set.is_some() && !matches!(statement, ScriptStatement::Insert(_)) {
            return Err(SqlError::new(body[0].span.start, "a statement set may only contain INSERT INTO statements")
                .with_hint("move CREATE TABLE and SET statements before EXECUTE STATEMENT SET"));
        }
        statements.push(statement);
    }
    if let Some(open) = statement_set {
        return Err(SqlError::new(open, "the statement set is never closed").with_hint("end it with END;"));
    }
    Ok(statements)
}

/// Splits tokens at top-level semicolons into statements of at least one significant token,
/// each starting at its first significant token.
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
fn parse_statement(dialect: &GenericDialect, tokens: &[TokenWithSpan]) -> Result<ScriptStatement> {
    let start = tokens[0].span.start;
    let end = significant(tokens).last().map_or(start, |t| t.span.end);
    let words = leading_words(tokens, 6);
    if words.first().map(String::as_str) == Some("SET") {
        return parse_set(tokens).map(ScriptStatement::Set);
    }
    if words.first().map(String::as_str) == Some("CREATE") && words.iter().any(|w| w == "TABLE") {
        check_table_features(tokens)?;
    }
    let mut parser = Parser::new(dialect).with_tokens_with_locations(tokens.to_vec());
    let statement = parser.parse_statement().map_err(|e| SqlError::from_parser(&e, end))?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(SqlError::new(next.span.start, format!("syntax error: expected the end of the statement, found: {next}"))
            .with_hint("separate statements with ';'"));
    }
    match statement {
        Statement::CreateTable(create) => convert_create_table(create, tokens, start).map(ScriptStatement::CreateTable),
        Statement::Insert(insert) => convert_insert(insert, start).map(ScriptStatement::Insert),
        Statement::Query(_) => Err(SqlError::new(start, "a SELECT on its own is not supported yet: a Sluice job writes its rows to a table")
            .with_hint("write INSERT INTO <sink table> SELECT ...")),
        _ => Err(SqlError::new(start, format!("{} statements are not supported", statement_kind(&words)))
            .with_hint("a script holds CREATE TABLE, SET and INSERT INTO statements")),
    }
}

/// A statement's kind from its leading words ("CREATE VIEW", "DROP TABLE", "SELECT", ...).
fn statement_kind(words: &[String]) -> String {
    let mut words = words.iter().map(String::as_str);
    let Some(first) = words.next() else {
        return "such".to_string();
    };
    match first {
        "CREATE" | "DROP" | "ALTER" | "SHOW" | "DESCRIBE" | "USE" => {
            let skip = ["OR", "REPLACE", "TEMPORARY", "TEMP", "EXTERNAL", "IF", "NOT", "EXISTS"];
            match words.find(|w| !skip.contains(w)) {
                Some(object) => format!("{first} {object}"),
                None => first.to_string(),
            }
        }
        other => other.to_string(),
    }
}

/// `SET key = value`, where the key and the value are quoted strings or bare text.
fn parse_set(tokens: &[TokenWithSpan]) -> Result<SetOption> {
    let set_location = tokens[0].span.start;
    let rest: Vec<&TokenWithSpan> = tokens.iter().skip(1).collect();
    let usage = "SET needs a key and a value, as in SET 'parallelism.default' = '4'";
    let Some(eq) = rest.iter().position(|t| t.token == Token::Eq) else {
        return Err(SqlError::new(set_location, usage));
    };
    let (key, location) = set_part(&rest[..eq]).ok_or_else(|| SqlError::new(set_location, usage))?;
    let (value, value_location) =
        set_part(&rest[eq + 1..]).ok_or_else(|| SqlError::new(rest[eq].span.end, format!("missing value for '{key}'; {usage}")))?;
    Ok(SetOption { key, value, location, value_location })
}

/// The text of a SET key or value: a lone quoted string unquoted, else the tokens as written.
fn set_part(tokens: &[&TokenWithSpan]) -> Option<(String, Location)> {
    let first = tokens.iter().position(|t| !matches!(t.token, Token::Whitespace(_)))?;
    let last = tokens.iter().rposition(|t| !matches!(t.token, Token::Whitespace(_)))?;
    let part = &tokens[first..=last];
    let text = match part {
        [t] => match &t.token {
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => s.clone(),
            Token::Word(w) => w.value.clone(),
            other => other.to_string(),
        },
        _ => part.iter().map(|t| t.token.to_string()).collect(),
    };
    Some((text, part[0].span.start))
}

/// Rejects Flink table features that sqlparser cannot parse, with a clear message:
/// computed columns, `METADATA` columns, `WATERMARK` and `PRIMARY KEY` declarations.
fn check_table_features(tokens: &[TokenWithSpan]) -> Result<()> {
    let mut depth = 0usize;
    // Significant tokens of the current column-list element.
    let mut element: Vec<&TokenWithSpan> = Vec::new();
    for t in significant(tokens) {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    // The column list ends: nothing after it is a column.
                    return Ok(());
                }
            }
            Token::Comma if depth == 1 => {
                element.clear();
                continue;
            }
            _ => {}
        }
        if depth == 1 && t.token != Token::LParen {
            element.push(t);
            let word = |i: usize| match element.get(i).map(|t| &t.token) {
                Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
                _ => None,
            };
            let column = || element.first().map_or_else(String::new, |t| match &t.token {
                Token::Word(w) => w.value.clone(),
                other => other.to_string(),
            });
            let n = element.len();
            let unsupported = match word(n - 1).as_deref() {
                Some("WATERMARK") if n == 1 => Some("WATERMARK declarations are not supported yet".to_string()),
                Some("PRIMARY") | Some("CONSTRAINT") if n == 1 || word(n - 1).as_deref() == Some("PRIMARY") => {
                    Some("PRIMARY KEY constraints are not supported yet".to_string())
                }
                Some("AS") if n == 2 => Some(format!("computed column '{}' is not supported yet", column())),
                Some("METADATA") => Some(format!("METADATA column '{}' is not supported yet", column())),
                _ => None,
            };
            if let Some(message) = unsupported {
                return Err(SqlError::new(t.span.start, message));
            }
        }
    }
    Ok(())
}

/// The single identifier of a table name (qualified names are not supported yet).
fn table_name(name: &ObjectName, fallback: Location) -> Result<(String, Location)> {
    let location = located(name.span().start, fallback);
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(ident)] => Ok((ident.value.clone(), location)),
        _ => Err(SqlError::new(location, format!("qualified table name '{name}' is not supported yet"))
            .with_hint("use the table name alone")),
    }
}

/// `location` unless sqlparser left it empty.
pub(crate) fn located(location: Location, fallback: Location) -> Location {
    if location.line == 0 {
        fallback
    } else {
        location
    }
}

fn not_supported(location: Location, what: &str) -> SqlError {
    SqlError::new(location, format!("{what} is not supported yet"))
}

fn convert_create_table(
    create: sqlparser::ast::CreateTable,
    tokens: &[TokenWithSpan],
    start: Location,
) -> Result<CreateTable> {
    let (name, location) = table_name(&create.name, start)?;
    let reject = |present: bool, what: &str| if present { Err(not_supported(location, what)) } else { Ok(()) };
    reject(create.or_replace, "CREATE OR REPLACE TABLE")?;
    reject(create.external, "CREATE EXTERNAL TABLE")?;
    reject(create.query.is_some(), "CREATE TABLE ... AS SELECT")?;
    reject(create.like.is_some() || create.clone.is_some(), "CREATE TABLE ... LIKE")?;
    reject(create.partition_by.is_some(), "PARTITIONED BY")?;
    if let Some(constraint) = create.constraints.first() {
        return Err(not_supported(located(constraint.span().start, location), "a table constraint such as PRIMARY KEY"));
    }
    if create.columns.is_empty() {
        return Err(SqlError::new(location, format!("table '{name}' has no columns")));
    }
    let mut columns = Vec::with_capacity(create.columns.len());
    for column in &create.columns {
        let column_location = located(column.name.span.start, location);
        let data_type = arrow_type(&column.data_type).map_err(|message| {
            SqlError::new(token_after(tokens, column.name.span.end).unwrap_or(column_location), message)
        })?;
        let mut nullable = true;
        for option in &column.options {
            match &option.option {
                ColumnOption::NotNull => nullable = false,
                ColumnOption::Null | ColumnOption::Comment(_) => {}
                other => {
                    return Err(not_supported(
                        located(option.span().start, column_location),
                        &format!("column option '{other}' on column '{}'", column.name.value),
                    ))
                }
            }
        }
        columns.push(ColumnDef { name: column.name.value.clone(), location: column_location, data_type, nullable });
    }
    let sql_options = match create.table_options {
        CreateTableOptions::None => Vec::new(),
        CreateTableOptions::With(options) => options,
        other => {
            return Err(not_supported(located(other.span().start, location), "table options outside WITH (...)")
                .with_hint("write WITH ('connector' = '...', ...)"))
        }
    };
    let mut options = Vec::with_capacity(sql_options.len());
    let mut pair_locations = with_pair_locations(tokens).into_iter();
    for option in sql_options {
        let SqlOption::KeyValue { key, value } = &option else {
            return Err(SqlError::new(located(option.span().start, location), format!("unsupported table option '{option}'"))
                .with_hint("write options as 'key' = 'value'"));
        };
        // sqlparser leaves quoted option keys without a span: take them from the tokens.
        let (key_location, value_location) = pair_locations.next().unwrap_or((location, location));
        let key_location = located(key.span.start, key_location);
        let value_location = located(value.span().start, value_location);
        let text = match value {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
                Value::Number(n, _) => Some(n.to_string()),
                Value::Boolean(b) => Some(b.to_string()),
                _ => None,
            },
            _ => None,
        };
        let Some(text) = text else {
            return Err(SqlError::new(value_location, format!("the value of option '{}' must be a string literal", key.value))
                .with_hint(format!("write '{}' = '...'", key.value)));
        };
        options.push(TableOption { key: key.value.clone(), value: text, key_location, value_location });
    }
    Ok(CreateTable { name, location, temporary: create.temporary, if_not_exists: create.if_not_exists, columns, options })
}

/// The locations of the keys and values of `key = value` pairs after a top-level `WITH`.
fn with_pair_locations(tokens: &[TokenWithSpan]) -> Vec<(Location, Location)> {
    let tokens: Vec<&TokenWithSpan> = significant(tokens).collect();
    let mut depth = 0usize;
    let mut with_at = None;
    for (i, t) in tokens.iter().enumerate() {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Word(w) if depth == 0 && w.quote_style.is_none() && w.value.eq_ignore_ascii_case("WITH") => {
                with_at = Some(i);
                break;
            }
            _ => {}
        }
    }
    let Some(start) = with_at else {
        return Vec::new();
    };
    let rest = &tokens[start..];
    rest.windows(3)
        .filter(|w| w[1].token == Token::Eq)
        .map(|w| (w[0].span.start, w[2].span.start))
        .collect()
}

/// The start of the first significant token after `location` (sqlparser keeps no span for
/// column types, so a type is found as the token after its column's name).
fn token_after(tokens: &[TokenWithSpan], location: Location) -> Option<Location> {
    significant(tokens)
        .map(|t| t.span.start)
        .find(|s| (s.line, s.column) >= (location.line, location.column))
}

fn convert_insert(insert: sqlparser::ast::Insert, start: Location) -> Result<Insert> {
    let location = located(insert.insert_token.0.span.start, start);
    let TableObject::TableName(name) = &insert.table else {
        return Err(not_supported(location, "INSERT INTO a table function"));
    };
    let (table, table_location) = table_name(name, location)?;
    let reject = |present: bool, what: &str| if present { Err(not_supported(location, what)) } else { Ok(()) };
    reject(insert.overwrite, "INSERT OVERWRITE")?;
    reject(!insert.into, "INSERT without INTO")?;
    reject(insert.partitioned.is_some(), "INSERT ... PARTITION")?;
    reject(insert.on.is_some(), "INSERT ... ON CONFLICT")?;
    reject(insert.returning.is_some(), "INSERT ... RETURNING")?;
    if let Some(column) = insert.columns.first() {
        return Err(not_supported(located(column.span().start, table_location), "an INSERT column list")
            .with_hint("select the sink's columns in order instead"));
    }
    let Some(query) = insert.source else {
        return Err(SqlError::new(table_location, "INSERT INTO needs a SELECT query"));
    };
    Ok(Insert { location, table, table_location, query })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sql: &str) -> Vec<ScriptStatement> {
        match parse_script(sql) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    fn error(sql: &str) -> SqlError {
        match parse_script(sql) {
            Ok(s) => panic!("expected an error, got {s:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn create_table_with_types_nullability_and_commented_options() {
        let statements = parse(
            "-- a table\nCREATE TEMPORARY TABLE IF NOT EXISTS t (\n  a INT NOT NULL,\n  b VARCHAR(10),\n  c TIMESTAMP(3)\n) WITH (\n  -- the connector\n  'connector' = 'datagen', -- trailing\n  'number-of-rows' = '10'\n);",
        );
        let [ScriptStatement::CreateTable(t)] = statements.as_slice() else { panic!("{statements:?}") };
        assert_eq!(t.name, "t");
        assert_eq!((t.location.line, t.location.column), (2, 38));
        assert!(t.temporary && t.if_not_exists);
        assert_eq!(t.columns.len(), 3);
        assert!(!t.columns[0].nullable && t.columns[1].nullable);
        assert_eq!(t.columns[1].data_type, DataType::Utf8);
        assert_eq!((t.columns[1].location.line, t.columns[1].location.column), (4, 3));
        let keys: Vec<&str> = t.options.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["connector", "number-of-rows"]);
        assert_eq!(t.options[1].value, "10");
        assert_eq!((t.options[1].key_location.line, t.options[1].key_location.column), (9, 3));
    }

    #[test]
    fn set_forms() {
        let statements = parse("SET 'parallelism.default' = '4'; SET pipeline.name = my-job;\nSET `a.b`=7");
        let sets: Vec<(String, String)> = statements
            .iter()
            .map(|s| match s {
                ScriptStatement::Set(s) => (s.key.clone(), s.value.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            sets,
            [("parallelism.default".into(), "4".into()), ("pipeline.name".into(), "my-job".into()), ("a.b".into(), "7".into())]
        );
        let e = error("SET 'x'");
        assert!(e.message.contains("SET needs a key and a value"), "{e}");
        assert_eq!((e.line, e.column), (1, 1));
    }

    #[test]
    fn statement_sets_in_both_spellings() {
        for sql in [
            "EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT * FROM b; INSERT INTO c SELECT * FROM b; END;",
            "BEGIN STATEMENT SET;\nINSERT INTO a SELECT * FROM b;\nINSERT INTO c SELECT * FROM b;\nEND;",
        ] {
            let statements = parse(sql);
            assert_eq!(statements.len(), 2, "{sql}");
            assert!(statements.iter().all(|s| matches!(s, ScriptStatement::Insert(_))));
        }
        let e = error("BEGIN STATEMENT SET;\nINSERT INTO a SELECT * FROM b;");
        assert!(e.message.contains("never closed"), "{e}");
        assert_eq!((e.line, e.column), (1, 1));
        let e = error("INSERT INTO a SELECT * FROM b;\n  END;");
        assert!(e.message.contains("END without an open statement set"), "{e}");
        assert_eq!((e.line, e.column), (2, 3));
        let e = error("BEGIN STATEMENT SET;\nSET 'a' = 'b';\nEND;");
        assert!(e.message.contains("only contain INSERT INTO"), "{e}");
        assert_eq!((e.line, e.column), (2, 1));
    }

    #[test]
    fn flink_table_features_are_rejected_clearly() {
        let cases = [
            ("CREATE TABLE t (a INT, b AS a + 1) WITH ()", "computed column 'b' is not supported yet", (1, 26)),
            ("CREATE TABLE t (a INT,\n  ts TIMESTAMP(3) METADATA FROM 'timestamp')", "METADATA column 'ts'", (2, 19)),
            ("CREATE TABLE t (ts TIMESTAMP(3),\n WATERMARK FOR ts AS ts)", "WATERMARK declarations", (2, 2)),
            ("CREATE TABLE t (a INT, PRIMARY KEY (a) NOT ENFORCED)", "PRIMARY KEY constraints", (1, 24)),
        ];
        for (sql, message, (line, column)) in cases {
            let e = error(sql);
            assert!(e.message.contains(message), "{sql}: {e}");
            assert_eq!((e.line, e.column), (line, column), "{sql}: {e}");
        }
    }

    #[test]
    fn statement_kinds_in_errors() {
        let e = error("CREATE TABLE t (a INT);\n\nDROP TABLE t");
        assert_eq!(e.message, "DROP TABLE statements are not supported");
        assert_eq!((e.line, e.column), (3, 1));
        let e = error("  SELECT 1");
        assert!(e.message.contains("SELECT on its own"), "{e}");
        assert_eq!((e.line, e.column), (1, 3));
    }

    #[test]
    fn tokenizer_errors_are_located() {
        let e = error("CREATE TABLE t (a INT)\nWITH ('connector' = 'datagen)");
        assert!(e.message.contains("Unterminated string"), "{e}");
        assert_eq!(e.line, 2);
    }
}

//! Tables read `FOR SYSTEM_TIME AS OF time` (lookup joins), found and replaced at the
//! token level: sqlparser reads the clause only in some dialects, and DataFusion ignores
//! it.
//!
//! `JOIN dim FOR SYSTEM_TIME AS OF e.proc_time [AS] d` becomes `JOIN __lookup_dim [AS] d`;
//! without an alias the placeholder takes the table's name as its alias, so `dim.k` still
//! resolves. The placeholder is named after the table alone: every lookup of a table means
//! the same thing (its current rows), so a view and the query reading it share it.

use sqlparser::tokenizer::{Span, Token, TokenWithSpan, Whitespace};

use super::ast::LookupCall;
use super::cursor::is_word;
use super::table_call::significant;
use crate::error::{Result, SqlError};

/// The placeholder table of a lookup of `table`.
pub fn placeholder(table: &str) -> String {
    format!("__lookup_{table}")
}

/// Words that may follow a table reference and are not its alias.
const NOT_ALIASES: &[&str] = &[
    "ON",
    "WHERE",
    "JOIN",
    "LEFT",
    "RIGHT",
    "INNER",
    "FULL",
    "CROSS",
    "OUTER",
    "NATURAL",
    "GROUP",
    "ORDER",
    "UNION",
    "LIMIT",
    "WINDOW",
    "HAVING",
    "USING",
    "EXCEPT",
    "INTERSECT",
];

/// The statement's tokens with each `table FOR SYSTEM_TIME AS OF time` replaced by its
/// placeholder, and the lookups.
pub(super) fn rewrite(tokens: &[TokenWithSpan]) -> Result<(Vec<TokenWithSpan>, Vec<LookupCall>)> {
    let sig = significant(tokens);
    let token = |k: usize| sig.get(k).map(|&i| &tokens[i].token);
    let word = |k: usize, w: &str| token(k).is_some_and(|t| is_word(t, w));
    let mut out = Vec::with_capacity(tokens.len());
    let mut calls = Vec::new();
    let mut copied = 0;
    let mut k = 0;
    while k < sig.len() {
        if !(word(k, "FOR") && word(k + 1, "SYSTEM_TIME")) {
            k += 1;
            continue;
        }
        let location = tokens[sig[k]].span.start;
        if !(word(k + 2, "AS") && word(k + 3, "OF")) {
            return Err(SqlError::new(location, "expected FOR SYSTEM_TIME AS OF <time column>")
                .with_hint("write JOIN dim FOR SYSTEM_TIME AS OF e.proc_time AS d ON e.k = d.k"));
        }
        // The table name before FOR (its last part when qualified).
        let Some(Token::Word(table)) = k.checked_sub(1).and_then(token) else {
            return Err(SqlError::new(location, "FOR SYSTEM_TIME AS OF must follow a table name")
                .with_hint("write JOIN dim FOR SYSTEM_TIME AS OF e.proc_time AS d ON e.k = d.k"));
        };
        let mut start = k - 1;
        while start >= 2 && token(start - 1) == Some(&Token::Period) && matches!(token(start - 2), Some(Token::Word(_)))
        {
            start -= 2;
        }
        // The time: a column, qualified or not, or a call without arguments (PROCTIME()).
        let mut end = k + 4;
        let mut time = String::new();
        loop {
            match token(end) {
                Some(Token::Word(w)) if !NOT_ALIASES.iter().any(|n| w.value.eq_ignore_ascii_case(n)) => {
                    time.push_str(&w.value)
                }
                _ => {
                    let at = sig.get(end).map_or(tokens[sig[end - 1]].span.end, |&i| tokens[i].span.start);
                    return Err(SqlError::new(at, "expected the time column after FOR SYSTEM_TIME AS OF")
                        .with_hint("name the probe side's time attribute: FOR SYSTEM_TIME AS OF e.proc_time"));
                }
            }
            if token(end + 1) == Some(&Token::Period) {
                time.push('.');
                end += 2;
                continue;
            }
            if token(end + 1) == Some(&Token::LParen) && token(end + 2) == Some(&Token::RParen) {
                time.push_str("()");
                end += 2;
            }
            break;
        }
        let has_alias = match token(end + 1) {
            Some(Token::Word(w)) => {
                w.quote_style.is_some() || !NOT_ALIASES.iter().any(|n| w.value.eq_ignore_ascii_case(n))
            }
            _ => false,
        };
        let call = LookupCall {
            placeholder: placeholder(&table.value),
            table: table.value.clone(),
            table_location: tokens[sig[k - 1]].span.start,
            time,
            location,
        };
        out.extend_from_slice(&tokens[copied..sig[start]]);
        let span = Span::new(tokens[sig[start]].span.start, tokens[sig[end]].span.end);
        out.push(TokenWithSpan::new(Token::make_word(&call.placeholder, None), span));
        if !has_alias {
            let space = TokenWithSpan::new(Token::Whitespace(Whitespace::Space), span);
            out.push(space.clone());
            out.push(TokenWithSpan::new(Token::make_keyword("AS"), span));
            out.push(space);
            out.push(TokenWithSpan::new(Token::make_word(&table.value, table.quote_style), span));
        }
        copied = sig[end] + 1;
        calls.push(call);
        k = end + 1;
    }
    out.extend_from_slice(&tokens[copied..]);
    Ok((out, calls))
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::GenericDialect;
    use sqlparser::tokenizer::Tokenizer;

    use super::*;

    fn rewritten(sql: &str) -> (String, Vec<LookupCall>) {
        let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location().unwrap();
        let (out, calls) = rewrite(&tokens).unwrap();
        (out.iter().map(|t| t.token.to_string()).collect(), calls)
    }

    #[test]
    fn the_clause_becomes_a_placeholder_keeping_or_adding_the_alias() {
        let (sql, calls) = rewritten("SELECT * FROM e JOIN dim FOR SYSTEM_TIME AS OF e.proc_time AS d ON e.k = d.k");
        assert_eq!(sql, "SELECT * FROM e JOIN __lookup_dim AS d ON e.k = d.k");
        assert_eq!((calls[0].table.as_str(), calls[0].time.as_str()), ("dim", "e.proc_time"));
        assert_eq!((calls[0].location.line, calls[0].location.column), (1, 26));

        let (sql, _) = rewritten("SELECT * FROM e LEFT JOIN db.dim FOR SYSTEM_TIME AS OF PROCTIME() ON e.k = dim.k");
        assert_eq!(sql, "SELECT * FROM e LEFT JOIN __lookup_dim AS dim ON e.k = dim.k");
        let (sql, _) = rewritten("SELECT * FROM e JOIN dim FOR SYSTEM_TIME AS OF e.ts d ON e.k = d.k");
        assert_eq!(sql, "SELECT * FROM e JOIN __lookup_dim d ON e.k = d.k");
    }

    #[test]
    fn a_clause_without_a_table_or_time_is_located() {
        let tokens = Tokenizer::new(&GenericDialect {}, "SELECT * FROM e JOIN dim FOR SYSTEM_TIME AS OF ON x")
            .tokenize_with_location()
            .unwrap();
        let err = rewrite(&tokens).unwrap_err();
        assert!(err.message.contains("expected the time column"), "{err:?}");
        assert_eq!((err.line, err.column), (1, 48));
    }
}

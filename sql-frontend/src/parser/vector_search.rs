//! `VECTOR_SEARCH` calls, found and replaced at the token level (DataFusion plans no
//! lateral table function).
//!
//! Two shapes are read:
//!
//! - Flink's, a lateral table joined to the rows that search:
//!   `FROM events e, LATERAL TABLE(VECTOR_SEARCH(SEARCH_TABLE => TABLE items,
//!   COLUMN_TO_QUERY => e.embedding, COLUMN_TO_SEARCH => DESCRIPTOR(embedding), TOP_K => 5
//!   [, CONFIG => MAP[...]])) AS v` (also after `CROSS JOIN` or `[LEFT] JOIN ... ON TRUE`,
//!   and with positional arguments). The call, with its `LATERAL TABLE(` `)`, becomes a
//!   placeholder table (`__vector_search_0`) holding the matched row's columns and `score`;
//!   the alias stays.
//! - The lesson's, aggregates over the matches of each row:
//!   `CROSS APPLY (SELECT ARRAY_AGG(item) AS similar_items FROM VECTOR_SEARCH(TABLE items,
//!   'embedding', e.embedding, TOP_K => 5))`. The whole APPLY becomes
//!   `CROSS JOIN __vector_search_0`, a placeholder holding the aggregates.
//!
//! Positional arguments are told apart by their form: `TABLE t` is the searched table,
//! `DESCRIPTOR(c)` or `'c'` the searched column, a column reference the query column, a
//! number `TOP_K` and `MAP[...]` the config.

use std::collections::BTreeMap;

use sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Whitespace};

use super::ast::{SearchAggregate, VectorSearchCall};
use super::cursor::is_word;
use super::ml_predict::{config, descriptor, word};
use super::table_call::{
    call_at, matching_paren, named_argument, significant, splice, split_args, with_lateral, wrapped_in_table,
};
use crate::error::{Result, SqlError};

/// The placeholder table of the VECTOR_SEARCH at `location`: unique in a script, so the
/// calls of a view and of the query reading it never share a name.
fn placeholder(location: Location) -> String {
    format!("__vector_search_{}_{}", location.line, location.column)
}

/// The most matches a row may ask for.
const MAX_TOP_K: u32 = 10_000;

const USAGE: &str = "write FROM t, LATERAL TABLE(VECTOR_SEARCH(SEARCH_TABLE => TABLE items, COLUMN_TO_QUERY => \
                     t.embedding, COLUMN_TO_SEARCH => DESCRIPTOR(embedding), TOP_K => 5)) AS v";

/// The aggregates the lesson's form may compute over a row's matches.
const AGGREGATES: [&str; 6] = ["ARRAY_AGG", "COUNT", "SUM", "AVG", "MIN", "MAX"];

/// The statement's tokens with each VECTOR_SEARCH replaced, and the calls.
pub(super) fn rewrite(tokens: &[TokenWithSpan]) -> Result<(Vec<TokenWithSpan>, Vec<VectorSearchCall>)> {
    let sig = significant(tokens);
    let token = |k: usize| &tokens[sig[k]].token;
    let mut out = Vec::with_capacity(tokens.len());
    let mut calls = Vec::new();
    let mut copied = 0;
    let mut k = 0;
    while k < sig.len() {
        let Some((location, close)) = call_at(tokens, &sig, k, "VECTOR_SEARCH")? else {
            k += 1;
            continue;
        };
        let wrapped = wrapped_in_table(tokens, &sig, k);
        let end = if wrapped {
            if sig.get(close + 1).map(|&i| &tokens[i].token) != Some(&Token::RParen) {
                return Err(SqlError::new(
                    tokens[sig[close]].span.end,
                    "expected ')' closing TABLE( after VECTOR_SEARCH(...)",
                ));
            }
            close + 1
        } else {
            close
        };
        let start = with_lateral(tokens, &sig, if wrapped { k - 2 } else { k });
        let args: Vec<&TokenWithSpan> = sig[k + 2..close].iter().map(|&i| &tokens[i]).collect();
        let mut call = parse_args(&args, location, placeholder(location))?;
        let before = start.checked_sub(1).map(token);
        if let Some(apply) =
            before.filter(|t| is_word(t, "FROM")).and_then(|_| enclosing_apply(tokens, &sig, start - 1))
        {
            // CROSS APPLY (SELECT aggregates FROM VECTOR_SEARCH(...) [alias]) [alias]
            let list: Vec<&TokenWithSpan> = sig[apply.open + 2..start - 1].iter().map(|&i| &tokens[i]).collect();
            call.aggregates = Some(aggregates(&list, location)?);
            let inner: Vec<&TokenWithSpan> = sig[end + 1..apply.close].iter().map(|&i| &tokens[i]).collect();
            match inner.as_slice() {
                [] | [_] => {}
                [as_word, _] if is_word(&as_word.token, "AS") => {}
                [_, extra, ..] => {
                    return Err(SqlError::new(extra.span.start, format!("unexpected {} after VECTOR_SEARCH(...)", extra.token))
                        .with_hint("the subquery reads only VECTOR_SEARCH: CROSS APPLY (SELECT ARRAY_AGG(item) AS similar FROM VECTOR_SEARCH(...))"));
                }
            }
            out.extend_from_slice(&tokens[copied..sig[apply.keyword]]);
            let span = Span::new(tokens[sig[apply.keyword]].span.start, tokens[sig[apply.close]].span.end);
            for (i, w) in ["CROSS", "JOIN", call.placeholder.as_str()].into_iter().enumerate() {
                if i > 0 {
                    out.push(TokenWithSpan::new(Token::Whitespace(Whitespace::Space), span));
                }
                out.push(TokenWithSpan::new(Token::make_word(w, None), span));
            }
            copied = sig[apply.close] + 1;
            k = apply.close + 1;
        } else {
            let joined = before.is_some_and(|t| *t == Token::Comma || is_word(t, "JOIN"));
            if !joined {
                return Err(SqlError::new(
                    location,
                    "VECTOR_SEARCH needs the rows that search: join it LATERAL after them",
                )
                .with_hint(USAGE));
            }
            copied = splice(tokens, &sig, copied, (start, end), &call.placeholder, &mut out);
            k = end + 1;
        }
        calls.push(call);
    }
    out.extend_from_slice(&tokens[copied..]);
    Ok((out, calls))
}

/// An `[CROSS | OUTER] APPLY (SELECT ...` around a FROM: where its first word, its `(`
/// and its `)` are (significant positions).
struct Apply {
    keyword: usize,
    open: usize,
    close: usize,
}

/// The APPLY whose subquery's FROM is at `from`, if the FROM is in one.
fn enclosing_apply(tokens: &[TokenWithSpan], sig: &[usize], from: usize) -> Option<Apply> {
    let token = |k: usize| &tokens[sig[k]].token;
    let mut depth = 0usize;
    let mut j = from;
    let open = loop {
        j = j.checked_sub(1)?;
        match token(j) {
            Token::RParen => depth += 1,
            Token::LParen if depth == 0 => break j,
            Token::LParen => depth -= 1,
            _ => {}
        }
    };
    if !(is_word(token(open + 1), "SELECT") && open >= 2 && is_word(token(open - 1), "APPLY")) {
        return None;
    }
    let keyword =
        if is_word(token(open - 2), "CROSS") || is_word(token(open - 2), "OUTER") { open - 2 } else { open - 1 };
    Some(Apply { keyword, open, close: matching_paren(tokens, sig, open)? })
}

/// A column reference: `c` or `alias.c`.
fn column_reference(tokens: &[&TokenWithSpan]) -> Option<String> {
    let mut parts = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        match (&t.token, i % 2) {
            (Token::Word(w), 0) => parts.push(w.value.clone()),
            (Token::Period, 1) => {}
            _ => return None,
        }
    }
    (tokens.len() % 2 == 1).then(|| parts.join("."))
}

/// Reads the call's arguments.
fn parse_args(args: &[&TokenWithSpan], location: Location, placeholder: String) -> Result<VectorSearchCall> {
    let mut table = None;
    let mut query = None;
    let mut search = None;
    let mut top_k = None;
    let mut settings = None;
    for arg in split_args(args) {
        let (name, value, first) = named_argument(&arg, "VECTOR_SEARCH", location)?;
        let at = first.span.start;
        let slot = match name.as_deref() {
            Some("SEARCH_TABLE") => "table",
            Some("COLUMN_TO_QUERY") => "query",
            Some("COLUMN_TO_SEARCH") => "search",
            Some("TOP_K") => "top_k",
            Some("CONFIG") => "config",
            Some(other) => {
                return Err(SqlError::new(arg[0].span.start, format!("unknown VECTOR_SEARCH argument name '{other}'"))
                    .with_hint("the names are SEARCH_TABLE, COLUMN_TO_QUERY, COLUMN_TO_SEARCH, TOP_K and CONFIG"))
            }
            None if is_word(&first.token, "TABLE") => "table",
            None if is_word(&first.token, "DESCRIPTOR") || matches!(first.token, Token::SingleQuotedString(_)) => {
                "search"
            }
            None if matches!(first.token, Token::Number(..)) => "top_k",
            None if is_word(&first.token, "MAP") => "config",
            None => "query",
        };
        let twice = || SqlError::new(at, format!("VECTOR_SEARCH gets its {slot} argument twice"));
        match slot {
            "table" => {
                let name = match value {
                    [t, name] if is_word(&t.token, "TABLE") => word(name, "a table name after TABLE")?,
                    [t, open, name, close]
                        if is_word(&t.token, "TABLE")
                            && open.token == Token::LParen
                            && close.token == Token::RParen =>
                    {
                        word(name, "a table name in TABLE(...)")?
                    }
                    _ => return Err(SqlError::new(at, "the searched table is written TABLE name").with_hint(USAGE)),
                };
                table.replace(name).map_or(Ok(()), |_| Err(twice()))?;
            }
            "query" => {
                let column = column_reference(value).ok_or_else(|| {
                    SqlError::new(at, "COLUMN_TO_QUERY must be a column of the rows that search, such as e.embedding")
                        .with_hint(
                            "compute the vector in a view or CTE first (e.g. with ML_EMBED), then pass its column",
                        )
                })?;
                query.replace((column, at)).map_or(Ok(()), |_| Err(twice()))?;
            }
            "search" => {
                let column = match &first.token {
                    Token::SingleQuotedString(s) if value.len() == 1 => (s.clone(), at),
                    _ if is_word(&first.token, "DESCRIPTOR") => match descriptor(value)?.as_slice() {
                        [one] => one.clone(),
                        _ => return Err(SqlError::new(at, "COLUMN_TO_SEARCH names one column: DESCRIPTOR(embedding)")),
                    },
                    _ => {
                        return Err(SqlError::new(at, "COLUMN_TO_SEARCH is written DESCRIPTOR(column) or 'column'")
                            .with_hint(USAGE))
                    }
                };
                search.replace(column).map_or(Ok(()), |_| Err(twice()))?;
            }
            "top_k" => {
                let n = match value {
                    [t] => match &t.token {
                        Token::Number(n, _) => n.parse::<u32>().ok().filter(|&n| n > 0 && n <= MAX_TOP_K),
                        _ => None,
                    },
                    _ => None,
                }
                .ok_or_else(|| {
                    SqlError::new(at, format!("TOP_K must be a whole number from 1 to {MAX_TOP_K}"))
                        .with_hint("write TOP_K => 5")
                })?;
                top_k.replace((n, at)).map_or(Ok(()), |_| Err(twice()))?;
            }
            _ => {
                let map = config(value)?;
                settings.replace((map, at)).map_or(Ok(()), |_| Err(twice()))?;
            }
        }
    }
    let missing = |what: &str| SqlError::new(location, format!("VECTOR_SEARCH needs {what}")).with_hint(USAGE);
    let (table, table_location) = table.ok_or_else(|| missing("the searched table (TABLE items)"))?;
    let (query_column, query_location) =
        query.ok_or_else(|| missing("the query column (COLUMN_TO_QUERY => e.embedding)"))?;
    let (search_column, search_location) =
        search.ok_or_else(|| missing("the searched column (COLUMN_TO_SEARCH => DESCRIPTOR(embedding))"))?;
    let (top_k, _) = top_k.ok_or_else(|| missing("TOP_K (TOP_K => 5)"))?;
    let (config, config_location) = settings.unwrap_or((BTreeMap::new(), location));
    Ok(VectorSearchCall {
        placeholder,
        table,
        table_location,
        query_column,
        query_location,
        search_column,
        search_location,
        top_k,
        config,
        config_location,
        aggregates: None,
        location,
    })
}

/// The select list of the lesson's form: `ARRAY_AGG(item) AS similar, COUNT(*) AS n, ...`.
fn aggregates(list: &[&TokenWithSpan], location: Location) -> Result<Vec<SearchAggregate>> {
    let hint = "aggregate the matches: SELECT ARRAY_AGG(item) AS similar_items (also COUNT, SUM, AVG, MIN, MAX of a \
                column or of score)";
    let mut found = Vec::new();
    for (i, item) in split_args(list).into_iter().enumerate() {
        let Some(head) = item.first() else {
            return Err(SqlError::new(location, "the APPLY's select list is empty").with_hint(hint));
        };
        let at = head.span.start;
        let function = match &head.token {
            Token::Word(w) if AGGREGATES.iter().any(|a| w.value.eq_ignore_ascii_case(a)) => {
                w.value.to_ascii_lowercase()
            }
            other => {
                return Err(SqlError::new(
                    at,
                    format!("only aggregates of the matches can be selected here, found: {other}"),
                )
                .with_hint(hint))
            }
        };
        let close = match item.get(1).map(|t| &t.token) {
            Some(Token::LParen) => item.iter().position(|t| t.token == Token::RParen),
            _ => None,
        }
        .ok_or_else(|| SqlError::new(at, format!("{} needs its argument in parentheses", function.to_uppercase())))?;
        let argument = &item[2..close];
        let column = match argument {
            [star] if star.token == Token::Mul && function == "count" => None,
            _ => {
                let reference = column_reference(argument).ok_or_else(|| {
                    SqlError::new(
                        argument.first().map_or(at, |t| t.span.start),
                        "expected a column of the searched table or score",
                    )
                    .with_hint(hint)
                })?;
                Some(reference.rsplit('.').next().unwrap_or(&reference).to_string())
            }
        };
        let name = match &item[close + 1..] {
            [] => format!("EXPR${i}"),
            [alias] | [_, alias] => word(alias, "an alias")?.0,
            [_, _, extra, ..] => {
                return Err(SqlError::new(extra.span.start, format!("unexpected {} in the select list", extra.token)))
            }
        };
        found.push(SearchAggregate { function, column, name, location: at });
    }
    Ok(found)
}

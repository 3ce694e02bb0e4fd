//! `CROSS APPLY` and `LATERAL` over a model called on VALUES, rewritten at the token level
//! into calls in the outer query (sqlparser reads `CROSS APPLY`, but DataFusion plans no
//! lateral join):
//!
//! ```sql
//! SELECT e.id, p.fraud_score FROM events e
//! CROSS APPLY (SELECT * FROM TABLE(ML_PREDICT(VALUES (e.amount, e.age), MODEL m,
//!                                              DESCRIPTOR(amount, age)))) p
//! WHERE p.fraud_score > 0.8
//! ```
//!
//! loses its APPLY clause, and each `p.fraud_score` becomes
//! `get_field(__ml_m_1_48(e.amount, e.age), 'fraud_score')`; `p.amount` (a DESCRIPTOR name)
//! becomes the value itself. Every reference calls the same function with the same
//! arguments, so the planner runs the model once per row. The forms read: `CROSS APPLY` /
//! `OUTER APPLY`, `[CROSS | LEFT | INNER] JOIN LATERAL ... [ON TRUE]` and `, LATERAL ...`,
//! each over `(SELECT cols FROM TABLE(ML_PREDICT(VALUES ...)))` or over the call itself.

use std::collections::HashMap;

use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Whitespace};

use super::cursor::is_word;
use super::ml_predict::ApplyCall;
use super::table_call::significant;
use crate::error::{Result, SqlError};

const USAGE: &str = "write CROSS APPLY (SELECT * FROM TABLE(ML_PREDICT(VALUES (expr, ...), MODEL m, \
                     DESCRIPTOR(name, ...)))) alias, then read alias.<output column>";

/// One APPLY clause: where it is (significant positions, inclusive) and its alias's columns.
struct Clause<'a> {
    span: (usize, usize),
    alias: String,
    /// Selected names (lower-cased) → the output field they read; `None`: `*`.
    selected: Option<HashMap<String, String>>,
    call: &'a ApplyCall,
}

/// The statement's tokens with every APPLY clause over a model call removed and its
/// alias's columns replaced by calls.
pub(super) fn rewrite(tokens: &[TokenWithSpan], applies: &[ApplyCall]) -> Result<Vec<TokenWithSpan>> {
    let sig = significant(tokens);
    let mut clauses = Vec::new();
    for call in applies {
        let p = (0..sig.len())
            .find(|&k| matches!(&tokens[sig[k]].token, Token::Word(w) if w.value == call.placeholder))
            .expect("the placeholder is in the statement");
        clauses.push(clause(tokens, &sig, p, call)?);
    }
    // An APPLY over a subquery must be one of ours (DataFusion plans no other).
    let stray = (0..sig.len()).find(|&k| {
        is_word(&tokens[sig[k]].token, "APPLY")
            && sig.get(k + 1).is_some_and(|&i| tokens[i].token == Token::LParen)
            && !clauses.iter().any(|c| c.span.0 <= k && k <= c.span.1)
    });
    if let Some(k) = stray {
        return Err(
            SqlError::new(tokens[sig[k]].span.start, "CROSS APPLY is supported over ML_PREDICT only").with_hint(USAGE)
        );
    }
    if applies.is_empty() {
        return Ok(tokens.to_vec());
    }
    let mut out = Vec::with_capacity(tokens.len());
    let mut k = 0;
    while k < sig.len() {
        if let Some(c) = clauses.iter().find(|c| c.span.0 == k) {
            let at = tokens[sig[c.span.0]].span;
            out.push(TokenWithSpan::new(Token::Whitespace(Whitespace::Space), at));
            k = c.span.1 + 1;
            continue;
        }
        // Whitespace before this significant token.
        let from = if k == 0 { 0 } else { sig[k - 1] + 1 };
        out.extend_from_slice(&tokens[from..sig[k]]);
        let reference = match (&tokens[sig[k]].token, sig.get(k + 1).map(|&i| &tokens[i].token), sig.get(k + 2)) {
            (Token::Word(alias), Some(Token::Period), Some(&column)) => {
                clauses.iter().find(|c| c.alias.eq_ignore_ascii_case(&alias.value)).map(|c| (c, column))
            }
            _ => None,
        };
        match reference {
            Some((c, column)) => {
                out.extend(replacement(c, &tokens[column])?);
                k += 3;
            }
            None => {
                out.push(tokens[sig[k]].clone());
                k += 1;
            }
        }
    }
    out.extend_from_slice(&tokens[sig.last().map_or(0, |&l| l + 1)..]);
    Ok(out)
}

/// The clause around the placeholder at significant position `p`.
fn clause<'a>(tokens: &[TokenWithSpan], sig: &[usize], p: usize, call: &'a ApplyCall) -> Result<Clause<'a>> {
    let at = |k: usize| tokens[sig[k]].span.start;
    let token = |k: usize| sig.get(k).map(|&i| &tokens[i].token);
    let word = |k: usize, w: &str| token(k).is_some_and(|t| is_word(t, w));
    // Over a subquery: ( SELECT cols FROM placeholder [alias] ) or the call itself.
    let (open, selected, after) = if p >= 3 && word(p - 1, "FROM") {
        let select =
            (0..p - 1).rev().find(|&k| word(k, "SELECT")).filter(|&k| k >= 1 && token(k - 1) == Some(&Token::LParen));
        let Some(select) = select else {
            return Err(
                SqlError::new(call_location(call), "ML_PREDICT over VALUES needs a table on its left").with_hint(USAGE)
            );
        };
        let selected = selection(tokens, sig, select + 1, p - 1)?;
        let mut close = p + 1;
        if matches!(token(close), Some(Token::Word(_))) {
            close += 1;
        }
        if token(close) != Some(&Token::RParen) {
            let where_ = close.min(sig.len() - 1);
            return Err(SqlError::new(at(where_), "CROSS APPLY's subquery may only select from the ML_PREDICT call")
                .with_hint(USAGE));
        }
        (select - 1, selected, close + 1)
    } else {
        (p, None, p + 1)
    };
    // What opens the clause (LATERAL before a subquery belongs to it).
    let before = open.checked_sub(1).map(|b| if word(b, "LATERAL") && b >= 1 { b - 1 } else { b });
    let start = match before {
        Some(b) if word(b, "APPLY") && b >= 1 && (word(b - 1, "CROSS") || word(b - 1, "OUTER")) => b - 1,
        Some(b) if word(b, "JOIN") => {
            let mut s = b;
            if s >= 1 && word(s - 1, "OUTER") {
                s -= 1;
            }
            if s >= 1 && (word(s - 1, "CROSS") || word(s - 1, "LEFT") || word(s - 1, "INNER")) {
                s -= 1;
            }
            s
        }
        Some(b) if token(b) == Some(&Token::Comma) => b,
        _ => {
            return Err(
                SqlError::new(call_location(call), "ML_PREDICT over VALUES needs a table on its left").with_hint(USAGE)
            )
        }
    };
    // The alias, then an optional ON TRUE.
    let mut end = after;
    if word(end, "AS") {
        end += 1;
    }
    let alias = match token(end) {
        Some(Token::Word(w))
            if !["ON", "WHERE", "GROUP", "JOIN", "CROSS"].iter().any(|k| w.value.eq_ignore_ascii_case(k)) =>
        {
            w.value.clone()
        }
        _ => {
            let where_ = end.min(sig.len() - 1);
            return Err(
                SqlError::new(at(where_), "the CROSS APPLY needs an alias to read its columns by").with_hint(USAGE)
            );
        }
    };
    if word(end + 1, "ON") {
        if !word(end + 2, "TRUE") {
            return Err(
                SqlError::new(at(end + 1), "a lateral join over ML_PREDICT takes ON TRUE only").with_hint(USAGE)
            );
        }
        end += 2;
    }
    Ok(Clause { span: (start, end), alias, selected, call })
}

fn call_location(call: &ApplyCall) -> Location {
    call.values.first().map_or(Location { line: 1, column: 1 }, |t| t.span.start)
}

/// The columns a subquery selects between significant positions `from..to`: `*`, or
/// names with optional aliases.
fn selection(
    tokens: &[TokenWithSpan],
    sig: &[usize],
    from: usize,
    to: usize,
) -> Result<Option<HashMap<String, String>>> {
    let items: Vec<&TokenWithSpan> = sig[from..to].iter().map(|&i| &tokens[i]).collect();
    if items.len() == 1 && items[0].token == Token::Mul {
        return Ok(None);
    }
    let mut selected = HashMap::new();
    for item in items.split(|t| t.token == Token::Comma) {
        let names: Vec<&str> = item
            .iter()
            .filter(|t| !is_word(&t.token, "AS"))
            .filter_map(|t| if let Token::Word(w) = &t.token { Some(w.value.as_str()) } else { None })
            .collect();
        let plain = item.iter().all(|t| matches!(t.token, Token::Word(_)));
        match (plain, names.as_slice()) {
            (true, [name]) => selected.insert(name.to_ascii_lowercase(), name.to_string()),
            (true, [name, alias]) => selected.insert(alias.to_ascii_lowercase(), name.to_string()),
            _ => {
                let at = item.first().map_or(tokens[sig[from]].span.start, |t| t.span.start);
                return Err(SqlError::new(at, "CROSS APPLY's subquery may select the model's columns only").with_hint(
                    "select * or output columns by name (with AS for a new name), and compute in the outer query",
                ));
            }
        };
    }
    Ok(Some(selected))
}

/// The tokens replacing `alias.column`: a VALUES expression for a DESCRIPTOR name, else
/// the model output field it selects.
fn replacement(clause: &Clause<'_>, column: &TokenWithSpan) -> Result<Vec<TokenWithSpan>> {
    let span = column.span;
    let Token::Word(name) = &column.token else {
        return Err(SqlError::new(span.start, format!("read one column of '{}' at a time", clause.alias))
            .with_hint(format!("name the columns: {}.<output column>", clause.alias)));
    };
    let make = |t: Token| TokenWithSpan::new(t, span);
    let values = split_raw(&clause.call.values);
    if let Some(i) = clause.call.descriptor.iter().position(|(d, _)| d.eq_ignore_ascii_case(&name.value)) {
        let mut out = vec![make(Token::LParen)];
        out.extend(values[i].iter().cloned());
        out.push(make(Token::RParen));
        return Ok(out);
    }
    let field = match &clause.selected {
        None => name.value.clone(),
        Some(selected) => selected.get(&name.value.to_ascii_lowercase()).cloned().ok_or_else(|| {
            SqlError::new(span.start, format!("'{}' selects no column '{}'", clause.alias, name.value))
                .with_hint(format!("its columns are {}", selected.keys().cloned().collect::<Vec<_>>().join(", ")))
        })?,
    };
    let mut out = vec![make(Token::make_word("get_field", None)), make(Token::LParen)];
    out.push(make(Token::make_word(&clause.call.function, None)));
    out.push(make(Token::LParen));
    out.extend(clause.call.values.iter().cloned());
    out.push(make(Token::RParen));
    out.push(make(Token::Comma));
    out.push(make(Token::SingleQuotedString(field)));
    out.push(make(Token::RParen));
    Ok(out)
}

/// Raw tokens split at top-level commas.
fn split_raw(tokens: &[TokenWithSpan]) -> Vec<Vec<TokenWithSpan>> {
    let mut parts = vec![Vec::new()];
    let mut depth = 0usize;
    for t in tokens {
        match t.token {
            Token::LParen | Token::LBracket => depth += 1,
            Token::RParen | Token::RBracket => depth = depth.saturating_sub(1),
            Token::Comma if depth == 0 => {
                parts.push(Vec::new());
                continue;
            }
            _ => {}
        }
        parts.last_mut().expect("one part at least").push(t.clone());
    }
    parts
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::GenericDialect;
    use sqlparser::tokenizer::Tokenizer;

    fn rewritten(sql: &str) -> Result<String, String> {
        let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location().unwrap();
        let (tokens, found) = super::super::ml_predict::rewrite(&tokens).map_err(|e| e.message)?;
        let out =
            super::rewrite(&tokens, &found.applies).map_err(|e| format!("{} at {}:{}", e.message, e.line, e.column))?;
        Ok(out.iter().map(|t| t.token.to_string()).collect::<String>().split_whitespace().collect::<Vec<_>>().join(" "))
    }

    #[test]
    fn the_lessons_cross_apply_becomes_calls_in_the_outer_query() {
        let sql = "SELECT e.id, p.fraud_score FROM e JOIN c ON e.k = c.k
            CROSS APPLY (SELECT * FROM TABLE(ML_PREDICT(VALUES (e.amount, c.age), MODEL fraud, DESCRIPTOR(amount, age)))) p
            WHERE p.fraud_score > 0.8 AND p.age > 1";
        assert_eq!(
            rewritten(sql).unwrap(),
            "SELECT e.id, get_field(__ml_fraud_2_46(e.amount, c.age),'fraud_score') FROM e JOIN c ON e.k = c.k \
             WHERE get_field(__ml_fraud_2_46(e.amount, c.age),'fraud_score') > 0.8 AND ( c.age) > 1"
        );
    }

    #[test]
    fn lateral_forms_and_renamed_columns() {
        let sql = "SELECT p.s FROM e CROSS JOIN LATERAL (SELECT score AS s FROM TABLE(ML_PREDICT(VALUES (e.x), MODEL m, DESCRIPTOR(x)))) AS p";
        assert_eq!(rewritten(sql).unwrap(), "SELECT get_field(__ml_m_1_68(e.x),'score') FROM e");
        let sql = "SELECT p.score FROM e, LATERAL TABLE(ML_PREDICT(VALUES (e.x), MODEL m, DESCRIPTOR(x))) AS p";
        assert_eq!(rewritten(sql).unwrap(), "SELECT get_field(__ml_m_1_38(e.x),'score') FROM e");
        let sql =
            "SELECT p.score FROM e LEFT JOIN LATERAL TABLE(ML_PREDICT(VALUES (e.x), MODEL m, DESCRIPTOR(x))) p ON TRUE";
        assert_eq!(rewritten(sql).unwrap(), "SELECT get_field(__ml_m_1_47(e.x),'score') FROM e");
    }

    #[test]
    fn apply_over_anything_else_is_refused_with_its_location() {
        let err = rewritten("SELECT * FROM e CROSS APPLY (SELECT x FROM other) o").unwrap_err();
        assert_eq!(err, "CROSS APPLY is supported over ML_PREDICT only at 1:23");
        let err = rewritten(
            "SELECT p.nope FROM e CROSS APPLY (SELECT score FROM TABLE(ML_PREDICT(VALUES (e.x), MODEL m, DESCRIPTOR(x)))) p",
        )
        .unwrap_err();
        assert!(err.starts_with("'p' selects no column 'nope' at 1:10"), "{err}");
        let err = rewritten(
            "SELECT 1 FROM e CROSS APPLY (SELECT score + 1 FROM TABLE(ML_PREDICT(VALUES (e.x), MODEL m, DESCRIPTOR(x)))) p",
        )
        .unwrap_err();
        assert!(err.starts_with("CROSS APPLY's subquery may select the model's columns only"), "{err}");
    }
}

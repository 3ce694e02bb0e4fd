//! Windowing table-function calls (`TUMBLE`, `HOP`, `CUMULATE`, `SESSION`), found and
//! replaced at the token level as `ML_PREDICT` calls are: sqlparser reads neither `TABLE t`
//! nor `DESCRIPTOR(...)` as function arguments.
//!
//! A call is one of those names followed by `(` whose first argument is `TABLE name` (or
//! `DATA => TABLE name`); with its `TABLE(` `)` wrapper and a `LATERAL` before it, it is
//! replaced by one placeholder table name (`__window_0`, ...), keeping an alias after it.
//! The same names with other arguments (the legacy `GROUP BY TUMBLE(ts, ...)`) are left as
//! they are. Arguments are Flink's, positional or named:
//!
//! - `TUMBLE(TABLE t, DESCRIPTOR(ts), size [, offset])`
//! - `HOP(TABLE t, DESCRIPTOR(ts), slide, size [, offset])`
//! - `CUMULATE(TABLE t, DESCRIPTOR(ts), step, size [, offset])`
//! - named: `DATA =>`, `TIMECOL =>`, `SIZE =>`, `SLIDE =>` / `STEP =>`, `OFFSET =>`
//!
//! Sizes are interval literals: `INTERVAL '10' MINUTES`, with units from SECOND to DAY.

use sqlparser::tokenizer::{Location, Token, TokenWithSpan};

use super::ast::{WindowFunction, WindowTvfCall};
use super::cursor::is_word;
use super::table_call::{matching_paren, significant, splice, split_args, with_lateral, wrapped_in_table};
use crate::error::{Result, SqlError};

/// The prefix of window placeholder table names.
const PLACEHOLDER_PREFIX: &str = "__window_";

/// The name of the `n`th window placeholder table of a statement.
pub(super) fn placeholder(n: usize) -> String {
    format!("{PLACEHOLDER_PREFIX}{n}")
}

/// True when `table` is the placeholder of a windowing call.
pub fn is_placeholder(table: &str) -> bool {
    table.strip_prefix(PLACEHOLDER_PREFIX).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The statement's tokens with each windowing call replaced by its placeholder, and the calls.
pub(super) fn rewrite(tokens: &[TokenWithSpan]) -> Result<(Vec<TokenWithSpan>, Vec<WindowTvfCall>)> {
    let sig = significant(tokens);
    let token = |k: usize| &tokens[sig[k]].token;
    let mut out = Vec::with_capacity(tokens.len());
    let mut calls = Vec::new();
    let (mut copied, mut k) = (0, 0);
    while k < sig.len() {
        let function = ["TUMBLE", "HOP", "CUMULATE", "SESSION"].into_iter().find(|f| is_word(token(k), f));
        let opens = sig.get(k + 1).is_some_and(|&i| tokens[i].token == Token::LParen);
        let table_argument = sig.get(k + 2).is_some_and(|&i| is_word(&tokens[i].token, "TABLE"))
            || (sig.get(k + 2).is_some_and(|&i| is_word(&tokens[i].token, "DATA"))
                && sig.get(k + 3).is_some_and(|&i| tokens[i].token == Token::RArrow));
        let Some(function) = function.filter(|_| opens && table_argument) else {
            k += 1;
            continue;
        };
        let location = tokens[sig[k]].span.start;
        let close = matching_paren(tokens, &sig, k + 1).ok_or_else(|| {
            SqlError::new(location, format!("{function}( is never closed")).with_hint("add the missing ')'")
        })?;
        if !wrapped_in_table(tokens, &sig, k) || sig.get(close + 1).map(|&i| &tokens[i].token) != Some(&Token::RParen) {
            return Err(SqlError::new(
                location,
                format!("a {function} window is a table: write it in FROM as TABLE({function}(...))"),
            )
            .with_hint(format!("SELECT ... FROM TABLE({function}(TABLE t, DESCRIPTOR(ts), INTERVAL '10' MINUTES))")));
        }
        let (start, end) = (with_lateral(tokens, &sig, k - 2), close + 1);
        let args: Vec<&TokenWithSpan> = sig[k + 2..close].iter().map(|&i| &tokens[i]).collect();
        let call = parse_call(function, &args, location, placeholder(calls.len()))?;
        copied = splice(tokens, &sig, copied, (start, end), &call.placeholder, &mut out);
        calls.push(call);
        k = end + 1;
    }
    out.extend_from_slice(&tokens[copied..]);
    Ok((out, calls))
}

/// The argument names of a windowing function, in positional order.
fn parameters(function: WindowFunction) -> &'static [&'static str] {
    match function {
        WindowFunction::Tumble => &["DATA", "TIMECOL", "SIZE", "OFFSET"],
        WindowFunction::Hop => &["DATA", "TIMECOL", "SLIDE", "SIZE", "OFFSET"],
        WindowFunction::Cumulate => &["DATA", "TIMECOL", "STEP", "SIZE", "OFFSET"],
        WindowFunction::Session => &["DATA", "TIMECOL", "GAP"],
    }
}

fn parse_call(name: &str, args: &[&TokenWithSpan], location: Location, placeholder: String) -> Result<WindowTvfCall> {
    let function = match name {
        "TUMBLE" => WindowFunction::Tumble,
        "HOP" => WindowFunction::Hop,
        "CUMULATE" => WindowFunction::Cumulate,
        _ => WindowFunction::Session,
    };
    let names = parameters(function);
    let usage = format!("{name}({})", names.join(", "));
    let mut values: Vec<Option<(&[&TokenWithSpan], Location)>> = vec![None; names.len()];
    let mut seen_named = false;
    let split = split_args(args);
    for (position, arg) in split.iter().enumerate() {
        let Some(head) = arg.first() else {
            return Err(SqlError::new(location, format!("{name}'s argument {} is empty", position + 1)));
        };
        let (index, value) = if arg.get(1).is_some_and(|t| t.token == Token::RArrow) {
            seen_named = true;
            let given = head.token.to_string().to_ascii_uppercase();
            let index = names.iter().position(|n| *n == given).ok_or_else(|| {
                SqlError::new(head.span.start, format!("{name} has no argument named {given}"))
                    .with_hint(format!("its arguments are {}", names.join(", ")))
            })?;
            (index, &arg[2..])
        } else {
            if seen_named {
                return Err(SqlError::new(
                    head.span.start,
                    format!("a positional {name} argument follows a named one"),
                )
                .with_hint("name every argument or none"));
            }
            if position >= names.len() {
                return Err(SqlError::new(head.span.start, format!("{name} takes at most {} arguments", names.len()))
                    .with_hint(usage));
            }
            (position, &arg[..])
        };
        if values[index].is_some() {
            return Err(SqlError::new(head.span.start, format!("{name} gets its {} argument twice", names[index])));
        }
        let at = value.first().map_or(head.span.end, |t| t.span.start);
        values[index] = Some((value, at));
    }
    let required = |index: usize| {
        values[index].ok_or_else(|| {
            SqlError::new(location, format!("{name} needs its {} argument", names[index])).with_hint(usage.clone())
        })
    };
    let (data, data_at) = required(0)?;
    let (data, partition_by) = partitioned(data, function)?;
    let (input, input_location) = table((data, data_at))?;
    let (time_column, time_location) = time_column(required(1)?)?;
    // TUMBLE's size and SESSION's gap come third; HOP's and CUMULATE's size after their
    // slide or step.
    let fixed = matches!(function, WindowFunction::Tumble | WindowFunction::Session);
    let size_index = if fixed { 2 } else { 3 };
    let size = interval(required(size_index)?)?;
    let step = if fixed { 0 } else { interval(required(2)?)? };
    let offset = match function {
        WindowFunction::Session => 0,
        _ => values[names.len() - 1].map(interval).transpose()?.unwrap_or(0),
    };
    let mut positive = vec![(size_index, size)];
    if !fixed {
        positive.push((2, step));
    }
    for (index, value) in positive {
        if value <= 0 {
            let at = values[index].map_or(location, |(_, at)| at);
            return Err(SqlError::new(at, format!("{name}'s {} must be positive", names[index])));
        }
    }
    Ok(WindowTvfCall {
        placeholder,
        function,
        input,
        input_location,
        time_column,
        time_location,
        size_ms: size,
        step_ms: step,
        offset_ms: offset,
        location,
        partition_by,
        legacy: false,
    })
}

/// Splits `TABLE t PARTITION BY k` (or `PARTITION BY (k1, k2)`, SESSION only) into the
/// table part and the partition columns.
#[allow(clippy::type_complexity)]
fn partitioned<'a, 't>(
    tokens: &'a [&'t TokenWithSpan],
    function: WindowFunction,
) -> Result<(&'a [&'t TokenWithSpan], Vec<(String, Location)>)> {
    let Some(at) = tokens.iter().position(|t| is_word(&t.token, "PARTITION")) else { return Ok((tokens, Vec::new())) };
    if function != WindowFunction::Session {
        return Err(SqlError::new(tokens[at].span.start, format!("{} takes no PARTITION BY", function.name()))
            .with_hint("only SESSION windows are partitioned"));
    }
    let rest = &tokens[at + 1..];
    if !rest.first().is_some_and(|t| is_word(&t.token, "BY")) {
        return Err(SqlError::new(tokens[at].span.start, "expected PARTITION BY column"));
    }
    let mut columns = Vec::new();
    for token in &rest[1..] {
        match &token.token {
            Token::Word(w) => columns.push((w.value.clone(), token.span.start)),
            Token::LParen | Token::RParen | Token::Comma => {}
            other => {
                return Err(SqlError::new(token.span.start, format!("expected a column name, found: {other}"))
                    .with_hint("write PARTITION BY k or PARTITION BY (k1, k2)"))
            }
        }
    }
    if columns.is_empty() {
        return Err(SqlError::new(tokens[at].span.start, "PARTITION BY names no column"));
    }
    Ok((&tokens[..at], columns))
}

/// `TABLE name` (also `TABLE(name)`).
fn table((tokens, at): (&[&TokenWithSpan], Location)) -> Result<(String, Location)> {
    let name = match tokens {
        [head, name] if is_word(&head.token, "TABLE") => name,
        [head, open, name, close]
            if is_word(&head.token, "TABLE") && open.token == Token::LParen && close.token == Token::RParen =>
        {
            name
        }
        [head, _, extra, ..] if is_word(&head.token, "TABLE") => {
            return Err(SqlError::new(extra.span.start, "a window's input must be a table or view name")
                .with_hint("a query can be made a view: CREATE VIEW v AS SELECT ...; then TABLE v"))
        }
        _ => return Err(SqlError::new(at, "a window's DATA argument is written TABLE name")),
    };
    match &name.token {
        Token::Word(w) => Ok((w.value.clone(), name.span.start)),
        other => Err(SqlError::new(name.span.start, format!("expected a table or view name, found: {other}"))),
    }
}

/// `DESCRIPTOR(column)`.
fn time_column((tokens, at): (&[&TokenWithSpan], Location)) -> Result<(String, Location)> {
    match tokens {
        [head, open, column, close]
            if is_word(&head.token, "DESCRIPTOR") && open.token == Token::LParen && close.token == Token::RParen =>
        {
            match &column.token {
                Token::Word(w) => Ok((w.value.clone(), column.span.start)),
                other => Err(SqlError::new(column.span.start, format!("expected a column name, found: {other}"))),
            }
        }
        _ => Err(SqlError::new(at, "a window's time column is written DESCRIPTOR(column)")
            .with_hint("name one time attribute column, e.g. DESCRIPTOR(order_time)")),
    }
}

/// An interval literal in milliseconds: `INTERVAL '10' MINUTES`, `INTERVAL '-1.5' SECOND`.
pub(super) fn interval((tokens, at): (&[&TokenWithSpan], Location)) -> Result<i64> {
    let usage = "write an interval such as INTERVAL '10' MINUTES (units SECOND, MINUTE, HOUR or DAY)";
    let (negated, rest) = match tokens {
        [head, rest @ ..] if is_word(&head.token, "INTERVAL") => (false, rest),
        [sign, head, rest @ ..] if sign.token == Token::Minus && is_word(&head.token, "INTERVAL") => (true, rest),
        _ => return Err(SqlError::new(at, "expected an interval").with_hint(usage)),
    };
    let (negated, rest) = match rest {
        [sign, rest @ ..] if sign.token == Token::Minus => (!negated, rest),
        _ => (negated, rest),
    };
    let [value, unit] = rest else {
        let at = rest.get(2).map_or(at, |t| t.span.start);
        return Err(SqlError::new(at, "expected a quoted number and a unit after INTERVAL").with_hint(usage));
    };
    let Token::SingleQuotedString(text) = &value.token else {
        return Err(SqlError::new(value.span.start, "an interval's amount is quoted: INTERVAL '10' MINUTES"));
    };
    let unit_ms = match unit.token.to_string().to_ascii_uppercase().as_str() {
        "SECOND" | "SECONDS" => 1_000.0,
        "MINUTE" | "MINUTES" => 60_000.0,
        "HOUR" | "HOURS" => 3_600_000.0,
        "DAY" | "DAYS" => 86_400_000.0,
        other => {
            return Err(SqlError::new(unit.span.start, format!("'{other}' is not a window interval unit"))
                .with_hint("use SECOND, MINUTE, HOUR or DAY (months and years have no fixed length)"))
        }
    };
    let amount: f64 = text.trim().parse().map_err(|_| {
        SqlError::new(value.span.start, format!("'{text}' is not a number")).with_hint("write INTERVAL '10' MINUTES")
    })?;
    let ms = amount * unit_ms;
    if ms.fract() != 0.0 || !ms.is_finite() || ms.abs() > 1e15 {
        return Err(SqlError::new(
            value.span.start,
            format!("INTERVAL '{text}' is not a whole number of milliseconds"),
        ));
    }
    Ok(if negated { -(ms as i64) } else { ms as i64 })
}

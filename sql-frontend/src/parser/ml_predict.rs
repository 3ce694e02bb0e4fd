//! `ML_PREDICT` table-function calls, found and replaced at the token level.
//!
//! Every `ML_PREDICT(...)` used as a table — after FROM, JOIN, LATERAL or APPLY, or inside
//! `TABLE(...)` — is replaced, together with its `TABLE(` `)` wrapper and a `LATERAL`
//! before it, by one placeholder table name (`__ml_predict_0`, `__ml_predict_1`, ...); an
//! alias after the call stays. The arguments are read into an [`MlPredictCall`]:
//! positional `TABLE t`, `MODEL m`, `DESCRIPTOR(c1, ...)` and an optional
//! `MAP['k', 'v', ...]`, or Flink's named `INPUT =>`, `MODEL =>`, `ARGS =>` and
//! `CONFIG =>` in any order.

use std::collections::BTreeMap;

use sqlparser::tokenizer::{Location, Token, TokenWithSpan};

use super::ast::MlPredictCall;
use super::cursor::is_word;
use super::table_call::{matching_paren, significant, splice, split_args, with_lateral, wrapped_in_table};
use crate::error::{Result, SqlError};

/// The name of the `n`th placeholder table of a statement.
fn placeholder(n: usize) -> String {
    format!("__ml_predict_{n}")
}

/// The statement's tokens with each ML_PREDICT call replaced by its placeholder, and the calls.
pub(super) fn rewrite(tokens: &[TokenWithSpan]) -> Result<(Vec<TokenWithSpan>, Vec<MlPredictCall>)> {
    let sig = significant(tokens);
    let token = |k: usize| &tokens[sig[k]].token;
    let mut out = Vec::with_capacity(tokens.len());
    let mut calls = Vec::new();
    let mut copied = 0;
    let mut k = 0;
    while k < sig.len() {
        if !(is_word(token(k), "ML_PREDICT") && sig.get(k + 1).is_some_and(|&i| tokens[i].token == Token::LParen)) {
            k += 1;
            continue;
        }
        let location = tokens[sig[k]].span.start;
        let close = matching_paren(tokens, &sig, k + 1)
            .ok_or_else(|| SqlError::new(location, "ML_PREDICT( is never closed").with_hint("add the missing ')'"))?;
        let wrapped = wrapped_in_table(tokens, &sig, k);
        let start = if wrapped { k - 2 } else { k };
        let end = if wrapped {
            if sig.get(close + 1).map(|&i| &tokens[i].token) != Some(&Token::RParen) {
                let at = sig.get(close + 1).map_or(tokens[sig[close]].span.end, |&i| tokens[i].span.start);
                return Err(SqlError::new(at, "expected ')' closing TABLE( right after ML_PREDICT(...)"));
            }
            close + 1
        } else {
            close
        };
        let start = with_lateral(tokens, &sig, start);
        let before = start.checked_sub(1).map(token);
        let table_position =
            wrapped || before.is_some_and(|t| ["FROM", "JOIN", "APPLY", "LATERAL"].iter().any(|w| is_word(t, w)));
        let args: Vec<&TokenWithSpan> = sig[k + 2..close].iter().map(|&i| &tokens[i]).collect();
        let call = parse_call(&args, location, placeholder(calls.len()), table_position)?;
        copied = splice(tokens, &sig, copied, (start, end), &call.placeholder, &mut out);
        calls.push(call);
        k = end + 1;
    }
    out.extend_from_slice(&tokens[copied..]);
    Ok((out, calls))
}

/// What an argument is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Input,
    Model,
    Args,
    Config,
}

impl Slot {
    const POSITIONAL: [Slot; 4] = [Slot::Input, Slot::Model, Slot::Args, Slot::Config];

    fn describe(self) -> &'static str {
        match self {
            Slot::Input => "the input table (TABLE name)",
            Slot::Model => "the model (MODEL name)",
            Slot::Args => "the input columns (DESCRIPTOR(column, ...))",
            Slot::Config => "the config (MAP['key', 'value', ...])",
        }
    }

    fn named(name: &str) -> Option<Slot> {
        match name.to_ascii_uppercase().as_str() {
            "INPUT" => Some(Slot::Input),
            "MODEL" => Some(Slot::Model),
            "ARGS" => Some(Slot::Args),
            "CONFIG" => Some(Slot::Config),
            _ => None,
        }
    }
}

/// A read argument.
enum Value {
    Input(String, Location),
    Model(String, Location),
    Args(Vec<(String, Location)>),
    Config(BTreeMap<String, String>),
}

impl Value {
    fn slot(&self) -> Slot {
        match self {
            Value::Input(..) => Slot::Input,
            Value::Model(..) => Slot::Model,
            Value::Args(_) => Slot::Args,
            Value::Config(_) => Slot::Config,
        }
    }
}

const ORDINALS: [&str; 4] = ["first", "second", "third", "fourth"];
const USAGE: &str = "use TABLE(ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR(c1, ...))) in FROM";

fn parse_call(
    args: &[&TokenWithSpan],
    location: Location,
    placeholder: String,
    table_position: bool,
) -> Result<MlPredictCall> {
    let args = split_args(args);
    let first = args.first().and_then(|a| a.first());
    if let Some(values) = first.filter(|t| is_word(&t.token, "VALUES")) {
        return Err(SqlError::new(values.span.start, "ML_PREDICT over VALUES (...) is not supported yet")
            .with_hint(format!("{USAGE}, over a table or view holding those columns")));
    }
    let named = args.iter().any(|a| a.get(1).is_some_and(|t| t.token == Token::RArrow));
    if !table_position && !named && !first.is_some_and(|t| is_word(&t.token, "TABLE")) {
        return Err(SqlError::new(location, "ML_PREDICT as a scalar function is not supported yet").with_hint(USAGE));
    }
    let mut slots: [Option<Value>; 4] = [None, None, None, None];
    let mut seen_named = false;
    for (position, arg) in args.iter().enumerate() {
        let Some(head) = arg.first() else {
            return Err(SqlError::new(location, format!("ML_PREDICT's {} argument is empty", ordinal(position))));
        };
        let (slot, value) = if arg.get(1).is_some_and(|t| t.token == Token::RArrow) {
            seen_named = true;
            let name = head.token.to_string();
            let slot = Slot::named(&name).ok_or_else(|| {
                SqlError::new(head.span.start, format!("unknown ML_PREDICT argument name '{name}'"))
                    .with_hint("the names are INPUT, MODEL, ARGS and CONFIG")
            })?;
            let value = value(&arg[2..], arg[1].span.end)?;
            if value.slot() != slot {
                return Err(SqlError::new(
                    arg[2].span.start,
                    format!("ML_PREDICT argument {} must be {}", name.to_ascii_uppercase(), slot.describe()),
                ));
            }
            (slot, value)
        } else {
            if seen_named {
                return Err(SqlError::new(head.span.start, "a positional ML_PREDICT argument follows a named one")
                    .with_hint("name every argument (INPUT =>, MODEL =>, ARGS =>, CONFIG =>) or none"));
            }
            let Some(&slot) = Slot::POSITIONAL.get(position) else {
                return Err(SqlError::new(head.span.start, "ML_PREDICT takes at most 4 arguments")
                    .with_hint("TABLE t, MODEL m, DESCRIPTOR(...) and an optional MAP[...] config"));
            };
            let value = value(arg, head.span.start)?;
            if value.slot() != slot {
                return Err(SqlError::new(
                    head.span.start,
                    format!("ML_PREDICT's {} argument must be {}", ordinal(position), slot.describe()),
                )
                .with_hint(
                    "the arguments are TABLE t, MODEL m, DESCRIPTOR(...) and an optional MAP[...], in this order",
                ));
            }
            (slot, value)
        };
        let index = slot as usize;
        if slots[index].is_some() {
            return Err(SqlError::new(head.span.start, format!("ML_PREDICT gets {} twice", slot.describe())));
        }
        slots[index] = Some(value);
    }
    let [input, model, descriptor, config] = slots;
    let missing =
        |slot: Slot| SqlError::new(location, format!("ML_PREDICT needs {}", slot.describe())).with_hint(USAGE);
    let Some(Value::Input(input, input_location)) = input else { return Err(missing(Slot::Input)) };
    let Some(Value::Model(model, model_location)) = model else { return Err(missing(Slot::Model)) };
    let Some(Value::Args(descriptor)) = descriptor else { return Err(missing(Slot::Args)) };
    let config = match config {
        Some(Value::Config(config)) => config,
        _ => BTreeMap::new(),
    };
    Ok(MlPredictCall { placeholder, input, input_location, model, model_location, descriptor, config, location })
}

fn ordinal(position: usize) -> &'static str {
    ORDINALS.get(position).copied().unwrap_or("last")
}

/// Reads one argument value; `fallback` locates errors about an empty value.
fn value(tokens: &[&TokenWithSpan], fallback: Location) -> Result<Value> {
    let Some(head) = tokens.first() else {
        return Err(SqlError::new(fallback, "an ML_PREDICT argument has no value"));
    };
    let at = head.span.start;
    if is_word(&head.token, "TABLE") {
        let (name, location) = match &tokens[1..] {
            [name] => word(name, "a table or view name after TABLE")?,
            [open, name, close] if open.token == Token::LParen && close.token == Token::RParen => {
                word(name, "a table or view name in TABLE(...)")?
            }
            [] => return Err(SqlError::new(at, "TABLE needs a table or view name")),
            [name, rest @ ..] => {
                let location = rest.first().map_or(name.span.start, |t| t.span.start);
                return Err(SqlError::new(location, "ML_PREDICT's input must be a table or view name")
                    .with_hint("a query can be made a view: CREATE VIEW v AS SELECT ...; then TABLE v"));
            }
        };
        return Ok(Value::Input(name, location));
    }
    if is_word(&head.token, "MODEL") {
        return match &tokens[1..] {
            [name] => word(name, "a model name after MODEL").map(|(n, l)| Value::Model(n, l)),
            [] => Err(SqlError::new(at, "MODEL needs a model name")),
            [_, extra, ..] => {
                Err(SqlError::new(extra.span.start, format!("unexpected {} after the model name", extra.token)))
            }
        };
    }
    if is_word(&head.token, "DESCRIPTOR") {
        return descriptor(tokens).map(Value::Args);
    }
    if is_word(&head.token, "MAP") {
        return config(tokens).map(Value::Config);
    }
    Err(SqlError::new(at, format!("unexpected {} in ML_PREDICT", head.token))
        .with_hint("its arguments are TABLE t, MODEL m, DESCRIPTOR(c1, ...) and an optional MAP['key', 'value', ...]"))
}

/// A name token (quoted or not).
fn word(token: &TokenWithSpan, what: &str) -> Result<(String, Location)> {
    match &token.token {
        Token::Word(w) => Ok((w.value.clone(), token.span.start)),
        other => Err(SqlError::new(token.span.start, format!("expected {what}, found: {other}"))),
    }
}

/// `DESCRIPTOR(c1, c2, ...)`.
fn descriptor(tokens: &[&TokenWithSpan]) -> Result<Vec<(String, Location)>> {
    let at = tokens[0].span.start;
    let inner = match &tokens[1..] {
        [open, inner @ .., close] if open.token == Token::LParen && close.token == Token::RParen => inner,
        _ => return Err(SqlError::new(at, "DESCRIPTOR needs its columns in parentheses: DESCRIPTOR(c1, c2, ...)")),
    };
    if inner.is_empty() {
        return Err(SqlError::new(at, "DESCRIPTOR() names no columns")
            .with_hint("list the input columns passed to the model: DESCRIPTOR(c1, c2, ...)"));
    }
    let mut columns = Vec::new();
    for (i, t) in inner.iter().enumerate() {
        if i % 2 == 1 {
            if t.token != Token::Comma {
                return Err(SqlError::new(
                    t.span.start,
                    format!("expected ',' or ')' in DESCRIPTOR, found: {}", t.token),
                ));
            }
            continue;
        }
        columns.push(word(t, "a column name in DESCRIPTOR(...)")?);
    }
    if inner.len() % 2 == 0 {
        let last = inner[inner.len() - 1];
        return Err(SqlError::new(last.span.start, "expected a column name after ',' in DESCRIPTOR"));
    }
    Ok(columns)
}

/// `MAP['key', 'value', ...]`.
fn config(tokens: &[&TokenWithSpan]) -> Result<BTreeMap<String, String>> {
    let at = tokens[0].span.start;
    let inner = match &tokens[1..] {
        [open, inner @ .., close] if open.token == Token::LBracket && close.token == Token::RBracket => inner,
        _ => return Err(SqlError::new(at, "the ML_PREDICT config is written MAP['key', 'value', ...]")),
    };
    let mut strings = Vec::new();
    for (i, t) in inner.iter().enumerate() {
        match (&t.token, i % 2) {
            (Token::Comma, 1) => {}
            (Token::SingleQuotedString(s), 0) => strings.push((s.clone(), t.span.start)),
            (other, 0) => {
                return Err(SqlError::new(
                    t.span.start,
                    format!("MAP[...] keys and values must be quoted strings, found: {other}"),
                ))
            }
            (other, _) => {
                return Err(SqlError::new(t.span.start, format!("expected ',' or ']' in MAP[...], found: {other}")))
            }
        }
    }
    if let Some(comma) = inner.last().filter(|t| t.token == Token::Comma) {
        return Err(SqlError::new(comma.span.start, "expected a quoted string after ',' in MAP[...]"));
    }
    if strings.len() % 2 == 1 {
        return Err(SqlError::new(
            at,
            format!("MAP[...] needs key-value pairs, but it has {} value(s)", strings.len()),
        )
        .with_hint("write MAP['key', 'value', ...]"));
    }
    let mut config = BTreeMap::new();
    for pair in strings.chunks(2) {
        if let [(key, key_location), (value, _)] = pair {
            if config.insert(key.clone(), value.clone()).is_some() {
                return Err(SqlError::new(*key_location, format!("config key '{key}' is set twice in MAP[...]")));
            }
        }
    }
    Ok(config)
}

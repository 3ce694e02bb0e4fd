//! `ML_PREDICT` calls, found and replaced at the token level.
//!
//! Every `ML_PREDICT(...)` used as a table — after FROM, JOIN, LATERAL or APPLY, or inside
//! `TABLE(...)` — is replaced, together with its `TABLE(` `)` wrapper and a `LATERAL`
//! before it, by one placeholder table name (`__ml_predict_0`, `__ml_predict_1`, ...); an
//! alias after the call stays. The arguments are read into an [`MlPredictCall`]:
//! positional `TABLE t`, `MODEL m`, `DESCRIPTOR(c1, ...)` and an optional
//! `MAP['k', 'v', ...]`, or Flink's named `INPUT =>`, `MODEL =>`, `ARGS =>` and
//! `CONFIG =>` in any order.
//!
//! Two more forms become calls of a model on expressions ([`MlCall`]): the scalar
//! `ML_PREDICT(MODEL m, arg, ...)` (and `ML_EMBED(MODEL m, text)`, the same call of a model
//! that returns one ARRAY column) becomes `__ml_<m>_<line>_<column>(arg, ...)`, and a table-position
//! `ML_PREDICT(VALUES (arg, ...), MODEL m, DESCRIPTOR(...))` becomes the placeholder
//! `__ml_apply_N`, which the `CROSS APPLY` rewrite ([`super::apply`]) removes.

use std::collections::BTreeMap;

use sqlparser::tokenizer::{Location, Token, TokenWithSpan};

use super::ast::{MlCall, MlPredictCall};
use super::cursor::is_word;
use super::table_call::{matching_paren, significant, splice, split_args, with_lateral, wrapped_in_table};
use crate::error::{Result, SqlError};

/// The name of the `n`th placeholder table of a statement.
fn placeholder(n: usize) -> String {
    format!("__ml_predict_{n}")
}

/// The function standing for a call of `model` at `location`: unique in a script, so the
/// calls of a view and of the query reading it never share a name.
fn call_function(model: &str, location: Location) -> String {
    format!("__ml_{model}_{}_{}", location.line, location.column)
}

/// The placeholder table of the `n`th model call over VALUES (a CROSS APPLY's).
pub(super) fn apply_placeholder(n: usize) -> String {
    format!("__ml_apply_{n}")
}

/// A model call over VALUES, waiting for its CROSS APPLY to be rewritten.
#[derive(Debug, Clone)]
pub(super) struct ApplyCall {
    /// Its placeholder table.
    pub placeholder: String,
    /// The function the query calls for it.
    pub function: String,
    /// The tokens of the VALUES expressions, as written (`a.x, b.y`).
    pub values: Vec<TokenWithSpan>,
    /// The names DESCRIPTOR gives the values.
    pub descriptor: Vec<(String, Location)>,
}

/// What the rewrite found.
#[derive(Default)]
pub(super) struct Found {
    /// Table-function calls.
    pub tables: Vec<MlPredictCall>,
    /// Model calls on expressions.
    pub calls: Vec<MlCall>,
    /// The model calls over VALUES, by placeholder.
    pub applies: Vec<ApplyCall>,
}

/// The statement's tokens with each ML_PREDICT call replaced, and what was found.
pub(super) fn rewrite(tokens: &[TokenWithSpan]) -> Result<(Vec<TokenWithSpan>, Found)> {
    let mut found = Found::default();
    let out = rewrite_into(tokens, &mut found)?;
    Ok((out, found))
}

fn rewrite_into(tokens: &[TokenWithSpan], found: &mut Found) -> Result<Vec<TokenWithSpan>> {
    let sig = significant(tokens);
    let token = |k: usize| &tokens[sig[k]].token;
    let mut out = Vec::with_capacity(tokens.len());
    let mut copied = 0;
    let mut k = 0;
    while k < sig.len() {
        let embed = is_word(token(k), "ML_EMBED");
        if !((embed || is_word(token(k), "ML_PREDICT"))
            && sig.get(k + 1).is_some_and(|&i| tokens[i].token == Token::LParen))
        {
            k += 1;
            continue;
        }
        let location = tokens[sig[k]].span.start;
        if embed {
            let close = matching_paren(tokens, &sig, k + 1)
                .ok_or_else(|| SqlError::new(location, "ML_EMBED( is never closed").with_hint("add the missing ')'"))?;
            let before = k.checked_sub(1).map(token);
            let table_position =
                before.is_some_and(|t| ["FROM", "JOIN", "APPLY", "LATERAL", "TABLE"].iter().any(|w| is_word(t, w)));
            let first = sig.get(k + 2).filter(|&&i| i < sig[close]).map(|&i| &tokens[i].token);
            if table_position || !first.is_some_and(|t| is_word(t, "MODEL")) {
                return Err(SqlError::new(location, "ML_EMBED is a scalar function on a model and a text")
                    .with_hint(EMBED_USAGE));
            }
            let call = ScalarCall::read(tokens, &sig, (k, close), found, "ML_EMBED")?;
            copied = call.splice(tokens, &sig, copied, (k, close), &mut out);
            found.calls.push(call.into_call(true, location));
            k = close + 1;
            continue;
        }
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
        let first = args.first().map(|t| &t.token);
        if first.is_some_and(|t| is_word(t, "VALUES")) {
            if !table_position {
                return Err(SqlError::new(location, "ML_PREDICT over VALUES (...) is a table function")
                    .with_hint(format!("write CROSS APPLY (SELECT ... FROM TABLE(ML_PREDICT(VALUES (...), MODEL m, DESCRIPTOR(...)))) alias, or {SCALAR_USAGE}")));
            }
            let n = found.calls.len();
            let (call, apply) = values_call(tokens, &sig, (k, close), n, location)?;
            copied = splice(tokens, &sig, copied, (start, end), &apply.placeholder, &mut out);
            found.calls.push(call);
            found.applies.push(apply);
            k = end + 1;
            continue;
        }
        let named = args.iter().any(|a| a.token == Token::RArrow);
        if !table_position && !named && first.is_some_and(|t| is_word(t, "MODEL")) {
            // A scalar call: ML_PREDICT(MODEL m, arg, ...) becomes __ml_call_N(arg, ...).
            let call = ScalarCall::read(tokens, &sig, (k, close), found, "ML_PREDICT")?;
            copied = call.splice(tokens, &sig, copied, (k, close), &mut out);
            found.calls.push(call.into_call(false, location));
            k = close + 1;
            continue;
        }
        let call = parse_call(&args, location, placeholder(found.tables.len()), table_position)?;
        copied = splice(tokens, &sig, copied, (start, end), &call.placeholder, &mut out);
        found.tables.push(call);
        k = end + 1;
    }
    out.extend_from_slice(&tokens[copied..]);
    Ok(out)
}

/// The significant tokens of `tokens`, by reference.
/// A scalar call `NAME(MODEL m, arg, ...)`, read.
struct ScalarCall {
    /// The function standing for it.
    function: String,
    model: String,
    model_location: Location,
    /// How many arguments it passes.
    arguments: usize,
    /// Its arguments' tokens, with their own calls rewritten.
    inner: Vec<TokenWithSpan>,
}

impl ScalarCall {
    /// Reads the call between significant tokens `k` (its name) and `close` (its `)`).
    fn read(
        tokens: &[TokenWithSpan],
        sig: &[usize],
        (k, close): (usize, usize),
        found: &mut Found,
        name: &str,
    ) -> Result<ScalarCall> {
        let location = tokens[sig[k]].span.start;
        let usage = if name == "ML_EMBED" { EMBED_USAGE } else { SCALAR_USAGE };
        let (model, model_location) = match sig.get(k + 3).map(|&i| &tokens[i]) {
            Some(TokenWithSpan { token: Token::Word(w), span }) if k + 3 < close => (w.value.clone(), span.start),
            _ => return Err(SqlError::new(location, "MODEL needs a model name").with_hint(usage)),
        };
        if k + 4 >= close || tokens[sig[k + 4]].token != Token::Comma {
            let at = if k + 4 < close { tokens[sig[k + 4]].span.start } else { tokens[sig[close]].span.start };
            return Err(SqlError::new(
                at,
                format!("{name}(MODEL {model}, ...) needs the model's inputs as arguments after the model"),
            )
            .with_hint(usage));
        }
        let inner = rewrite_into(&tokens[sig[k + 4] + 1..sig[close]], found)?;
        let arguments = split_args(&significant_refs(&inner)).len();
        Ok(ScalarCall { function: call_function(&model, location), model, model_location, arguments, inner })
    }

    /// Writes the tokens from `copied` to the call at `k`, then `function(arguments)` in
    /// the call's place; returns the next token to copy.
    fn splice(
        &self,
        tokens: &[TokenWithSpan],
        sig: &[usize],
        copied: usize,
        (k, close): (usize, usize),
        out: &mut Vec<TokenWithSpan>,
    ) -> usize {
        out.extend_from_slice(&tokens[copied..sig[k]]);
        out.push(TokenWithSpan::new(Token::make_word(&self.function, None), tokens[sig[k]].span));
        out.push(tokens[sig[k + 1]].clone());
        out.extend(self.inner.iter().cloned());
        out.push(tokens[sig[close]].clone());
        sig[close] + 1
    }

    /// The call, found at `location`.
    fn into_call(self, embed: bool, location: Location) -> MlCall {
        MlCall {
            function: self.function,
            model: self.model,
            model_location: self.model_location,
            arguments: self.arguments,
            row: false,
            config: BTreeMap::new(),
            embed,
            location,
        }
    }
}

fn significant_refs(tokens: &[TokenWithSpan]) -> Vec<&TokenWithSpan> {
    tokens.iter().filter(|t| !matches!(t.token, Token::Whitespace(_))).collect()
}

const SCALAR_USAGE: &str = "call a model on values with ML_PREDICT(MODEL m, arg, ...) in a SELECT list";
const EMBED_USAGE: &str =
    "write ML_EMBED(MODEL m, text) in a SELECT list, for a model whose OUTPUT is one ARRAY<FLOAT> column";

/// Reads `ML_PREDICT(VALUES (arg, ...), MODEL m, DESCRIPTOR(name, ...) [, MAP[...]])`
/// spanning the significant tokens `k..=close`: the `n`th model call.
fn values_call(
    tokens: &[TokenWithSpan],
    sig: &[usize],
    (k, close): (usize, usize),
    n: usize,
    location: Location,
) -> Result<(MlCall, ApplyCall)> {
    let usage = "write ML_PREDICT(VALUES (expr, ...), MODEL m, DESCRIPTOR(name, ...))";
    let open = k + 3;
    if sig.get(open).map(|&i| &tokens[i].token) != Some(&Token::LParen) {
        return Err(
            SqlError::new(tokens[sig[k + 2]].span.end, "VALUES needs its expressions in parentheses").with_hint(usage)
        );
    }
    let values_close = matching_paren(tokens, sig, open)
        .filter(|&c| c < close)
        .ok_or_else(|| SqlError::new(tokens[sig[open]].span.start, "VALUES ( is never closed"))?;
    let values: Vec<TokenWithSpan> = tokens[sig[open] + 1..sig[values_close]].to_vec();
    let value_count = split_args(&significant_refs(&values)).len();
    if value_count == 0 {
        return Err(
            SqlError::new(tokens[sig[open]].span.start, "VALUES () passes nothing to the model").with_hint(usage)
        );
    }
    let rest: Vec<&TokenWithSpan> = sig[values_close + 1..close].iter().map(|&i| &tokens[i]).collect();
    let rest = match rest.split_first() {
        Some((comma, rest)) if comma.token == Token::Comma => rest.to_vec(),
        _ => {
            return Err(SqlError::new(tokens[sig[values_close]].span.end, "expected ', MODEL m' after VALUES (...)")
                .with_hint(usage))
        }
    };
    let (mut model, mut descriptor, mut config) = (None, None, BTreeMap::new());
    for arg in split_args(&rest) {
        let Some(head) = arg.first() else {
            return Err(SqlError::new(location, "an ML_PREDICT argument is empty").with_hint(usage));
        };
        match value(&arg, head.span.start)? {
            Value::Model(name, at) if model.is_none() => model = Some((name, at)),
            Value::Args(names) if descriptor.is_none() => descriptor = Some(names),
            Value::Config(map) => config = map,
            _ => {
                return Err(SqlError::new(
                    head.span.start,
                    format!("unexpected {} in ML_PREDICT over VALUES", head.token),
                )
                .with_hint(usage))
            }
        }
    }
    let Some((model, model_location)) = model else {
        return Err(SqlError::new(location, "ML_PREDICT needs the model (MODEL name)").with_hint(usage));
    };
    let Some(descriptor) = descriptor else {
        return Err(SqlError::new(location, "ML_PREDICT over VALUES needs DESCRIPTOR(name, ...) naming the values")
            .with_hint(usage));
    };
    if descriptor.len() != value_count {
        return Err(SqlError::new(
            descriptor[0].1,
            format!("DESCRIPTOR names {} column(s) but VALUES holds {value_count} expression(s)", descriptor.len()),
        )
        .with_hint("name each value once, in order"));
    }
    let function = call_function(&model, location);
    let call = MlCall {
        function: function.clone(),
        model,
        model_location,
        arguments: value_count,
        row: true,
        config,
        embed: false,
        location,
    };
    Ok((call, ApplyCall { placeholder: apply_placeholder(n), function, values, descriptor }))
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
    let named = args.iter().any(|a| a.get(1).is_some_and(|t| t.token == Token::RArrow));
    if !table_position && !named && !first.is_some_and(|t| is_word(&t.token, "TABLE")) {
        return Err(SqlError::new(location, "ML_PREDICT here must be a scalar call on a model")
            .with_hint(format!("{SCALAR_USAGE}, or {USAGE}")));
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
pub(super) fn word(token: &TokenWithSpan, what: &str) -> Result<(String, Location)> {
    match &token.token {
        Token::Word(w) => Ok((w.value.clone(), token.span.start)),
        other => Err(SqlError::new(token.span.start, format!("expected {what}, found: {other}"))),
    }
}

/// `DESCRIPTOR(c1, c2, ...)`.
pub(super) fn descriptor(tokens: &[&TokenWithSpan]) -> Result<Vec<(String, Location)>> {
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
pub(super) fn config(tokens: &[&TokenWithSpan]) -> Result<BTreeMap<String, String>> {
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

//! `ML_EVALUATE` calls (FLIP-525), found and replaced at the token level: each call in a
//! FROM clause (optionally inside `TABLE(...)`) becomes a placeholder table
//! (`__ml_evaluate_0`) holding one row of metrics. Arguments are positional —
//! `TABLE t, MODEL m, DESCRIPTOR(label), DESCRIPTOR(f1, ...)`, then an optional task
//! (`'classification'` or `'regression'`) and `MAP[...]` config — or named with
//! `INPUT =>`, `MODEL =>`, `LABEL =>`, `ARGS =>`, `TASK =>` and `CONFIG =>`.

use std::collections::BTreeMap;

use sqlparser::tokenizer::{Location, Token, TokenWithSpan};

use super::ast::MlEvaluateCall;
use super::cursor::is_word;
use super::ml_predict::{config, descriptor, word};
use super::table_call::{call_at, named_argument, significant, splice, split_args, wrapped_in_table};
use crate::error::{Result, SqlError};

const USAGE: &str = "write SELECT * FROM ML_EVALUATE(TABLE t, MODEL m, DESCRIPTOR(label), DESCRIPTOR(f1, f2), \
                     TASK => 'classification')";

/// The statement's tokens with each ML_EVALUATE replaced by its placeholder, and the calls.
pub(super) fn rewrite(tokens: &[TokenWithSpan]) -> Result<(Vec<TokenWithSpan>, Vec<MlEvaluateCall>)> {
    let sig = significant(tokens);
    let token = |k: usize| &tokens[sig[k]].token;
    let mut out = Vec::with_capacity(tokens.len());
    let mut calls = Vec::new();
    let mut copied = 0;
    let mut k = 0;
    while k < sig.len() {
        let Some((location, close)) = call_at(tokens, &sig, k, "ML_EVALUATE")? else {
            k += 1;
            continue;
        };
        let wrapped = wrapped_in_table(tokens, &sig, k);
        let (start, end) = if wrapped && sig.get(close + 1).is_some_and(|&i| tokens[i].token == Token::RParen) {
            (k - 2, close + 1)
        } else {
            (k, close)
        };
        let from = start.checked_sub(1).is_some_and(|b| is_word(token(b), "FROM") || is_word(token(b), "JOIN"));
        if !from {
            return Err(SqlError::new(location, "ML_EVALUATE is a table function: read it in FROM").with_hint(USAGE));
        }
        let args: Vec<&TokenWithSpan> = sig[k + 2..close].iter().map(|&i| &tokens[i]).collect();
        let placeholder = format!("__ml_evaluate_{}_{}", location.line, location.column);
        let call = parse_args(&args, location, placeholder)?;
        copied = splice(tokens, &sig, copied, (start, end), &call.placeholder, &mut out);
        k = end + 1;
        calls.push(call);
    }
    out.extend_from_slice(&tokens[copied..]);
    Ok((out, calls))
}

fn parse_args(args: &[&TokenWithSpan], location: Location, placeholder: String) -> Result<MlEvaluateCall> {
    let mut input = None;
    let mut model = None;
    let mut label = None;
    let mut features = None;
    let mut task = None;
    let mut settings = BTreeMap::new();
    let mut descriptors = 0;
    for arg in split_args(args) {
        let (name, value, first) = named_argument(&arg, "ML_EVALUATE", location)?;
        let at = first.span.start;
        let slot = match name.as_deref() {
            Some(n @ ("INPUT" | "MODEL" | "LABEL" | "ARGS" | "TASK" | "CONFIG")) => n.to_string(),
            Some(other) => {
                return Err(SqlError::new(arg[0].span.start, format!("unknown ML_EVALUATE argument name '{other}'"))
                    .with_hint("the names are INPUT, MODEL, LABEL, ARGS, TASK and CONFIG"))
            }
            None if is_word(&first.token, "TABLE") => "INPUT".into(),
            None if is_word(&first.token, "MODEL") => "MODEL".into(),
            None if is_word(&first.token, "DESCRIPTOR") => {
                descriptors += 1;
                if descriptors == 1 { "LABEL" } else { "ARGS" }.into()
            }
            None if matches!(first.token, Token::SingleQuotedString(_)) => "TASK".into(),
            None if is_word(&first.token, "MAP") => "CONFIG".into(),
            None => {
                return Err(SqlError::new(at, format!("unexpected {} in ML_EVALUATE", first.token)).with_hint(USAGE))
            }
        };
        match slot.as_str() {
            "INPUT" => {
                let name = match value {
                    [t, name] if is_word(&t.token, "TABLE") => word(name, "a table name after TABLE")?,
                    _ => return Err(SqlError::new(at, "the evaluated table is written TABLE name").with_hint(USAGE)),
                };
                input = Some(name);
            }
            "MODEL" => {
                let name = match value {
                    [t, name] if is_word(&t.token, "MODEL") => word(name, "a model name after MODEL")?,
                    _ => return Err(SqlError::new(at, "the model is written MODEL name").with_hint(USAGE)),
                };
                model = Some(name);
            }
            "LABEL" => match descriptor(value)?.as_slice() {
                [one] => label = Some(one.clone()),
                _ => return Err(SqlError::new(at, "the label is one column: DESCRIPTOR(label)").with_hint(USAGE)),
            },
            "ARGS" => features = Some(descriptor(value)?),
            "TASK" => match value {
                [t] => match &t.token {
                    Token::SingleQuotedString(s)
                        if ["classification", "regression"].contains(&s.to_ascii_lowercase().as_str()) =>
                    {
                        task = Some(s.to_ascii_lowercase())
                    }
                    other => {
                        return Err(SqlError::new(at, format!("unknown ML_EVALUATE task {other}"))
                            .with_hint("the tasks are 'classification' and 'regression'"))
                    }
                },
                _ => return Err(SqlError::new(at, "the task is a quoted string: TASK => 'classification'")),
            },
            _ => settings = config(value)?,
        }
    }
    let missing = |what: &str| SqlError::new(location, format!("ML_EVALUATE needs {what}")).with_hint(USAGE);
    let (input, input_location) = input.ok_or_else(|| missing("the evaluated table (TABLE t)"))?;
    let (model, model_location) = model.ok_or_else(|| missing("the model (MODEL m)"))?;
    let label = label.ok_or_else(|| missing("the label column (DESCRIPTOR(label))"))?;
    let descriptor = features.ok_or_else(|| missing("the feature columns (DESCRIPTOR(f1, ...))"))?;
    Ok(MlEvaluateCall {
        placeholder,
        input,
        input_location,
        model,
        model_location,
        label,
        descriptor,
        task,
        config: settings,
        location,
    })
}

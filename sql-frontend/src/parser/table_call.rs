//! Token-level helpers shared by the table-function rewrites (`ML_PREDICT`, windows): the
//! significant tokens of a statement, a call's parentheses, its `TABLE(...)` wrapper and a
//! `LATERAL` before it, its top-level arguments, and its replacement by a placeholder.

use sqlparser::tokenizer::{Span, Token, TokenWithSpan};

use super::cursor::is_word;

/// The positions of the statement's significant (non-whitespace) tokens.
pub(super) fn significant(tokens: &[TokenWithSpan]) -> Vec<usize> {
    (0..tokens.len()).filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_))).collect()
}

/// True when the call named at significant position `k` is written inside `TABLE(`.
pub(super) fn wrapped_in_table(tokens: &[TokenWithSpan], sig: &[usize], k: usize) -> bool {
    k >= 2 && tokens[sig[k - 1]].token == Token::LParen && is_word(&tokens[sig[k - 2]].token, "TABLE")
}

/// Where a call starting at significant position `start` begins, with a `LATERAL` before it.
pub(super) fn with_lateral(tokens: &[TokenWithSpan], sig: &[usize], start: usize) -> usize {
    if start >= 1 && is_word(&tokens[sig[start - 1]].token, "LATERAL") {
        start - 1
    } else {
        start
    }
}

/// Copies `tokens` from `copied` up to a call spanning the significant tokens
/// `start..=end`, then one placeholder word spanning the call in its place; returns where
/// copying goes on.
pub(super) fn splice(
    tokens: &[TokenWithSpan],
    sig: &[usize],
    copied: usize,
    (start, end): (usize, usize),
    placeholder: &str,
    out: &mut Vec<TokenWithSpan>,
) -> usize {
    out.extend_from_slice(&tokens[copied..sig[start]]);
    out.push(TokenWithSpan::new(
        Token::make_word(placeholder, None),
        Span::new(tokens[sig[start]].span.start, tokens[sig[end]].span.end),
    ));
    sig[end] + 1
}

/// The position in `sig` of the `)` matching the `(` at `open`.
pub(super) fn matching_paren(tokens: &[TokenWithSpan], sig: &[usize], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, &i) in sig.iter().enumerate().skip(open) {
        match tokens[i].token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits argument tokens at top-level commas.
pub(super) fn split_args<'t>(tokens: &[&'t TokenWithSpan]) -> Vec<Vec<&'t TokenWithSpan>> {
    if tokens.is_empty() {
        return Vec::new();
    }
    let mut args = vec![Vec::new()];
    let mut depth = 0usize;
    for &t in tokens {
        match t.token {
            Token::LParen | Token::LBracket => depth += 1,
            Token::RParen | Token::RBracket => depth = depth.saturating_sub(1),
            Token::Comma if depth == 0 => {
                args.push(Vec::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = args.last_mut() {
            last.push(t);
        }
    }
    args
}

/// One argument of a table function: its name when written `NAME => value` (upper-cased),
/// its value's tokens and its first token; `function` names the call in errors.
pub(super) fn named_argument<'a, 't>(
    arg: &'a [&'t TokenWithSpan],
    function: &str,
    fallback: sqlparser::tokenizer::Location,
) -> crate::error::Result<(Option<String>, &'a [&'t TokenWithSpan], &'t TokenWithSpan)> {
    use crate::error::SqlError;
    let Some(head) = arg.first() else {
        return Err(SqlError::new(fallback, format!("a {function} argument is empty")));
    };
    let (name, value) = if arg.get(1).is_some_and(|t| t.token == Token::RArrow) {
        (Some(head.token.to_string().to_ascii_uppercase()), &arg[2..])
    } else {
        (None, arg)
    };
    let first =
        value.first().ok_or_else(|| SqlError::new(head.span.start, format!("a {function} argument has no value")))?;
    Ok((name, value, first))
}

/// When significant token `k` starts a call of `function` (`NAME(`): where the name is and
/// the position in `sig` of the call's closing `)`.
pub(super) fn call_at(
    tokens: &[TokenWithSpan],
    sig: &[usize],
    k: usize,
    function: &str,
) -> crate::error::Result<Option<(sqlparser::tokenizer::Location, usize)>> {
    if !(is_word(&tokens[sig[k]].token, function) && sig.get(k + 1).is_some_and(|&i| tokens[i].token == Token::LParen))
    {
        return Ok(None);
    }
    let location = tokens[sig[k]].span.start;
    let close = matching_paren(tokens, sig, k + 1).ok_or_else(|| {
        crate::error::SqlError::new(location, format!("{function}( is never closed")).with_hint("add the missing ')'")
    })?;
    Ok(Some((location, close)))
}

//! Errors of the SQL front end: every one names the line and column of the offending
//! token or identifier, what is wrong, and often a hint on how to fix it.

use std::fmt;

use sluice_core::OperatorError;
use sqlparser::parser::ParserError;
use sqlparser::tokenizer::{Location, TokenizerError};

/// Result alias for the SQL front end.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;

/// A parse, validation or planning error located in the script (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}{}", HintSuffix(.hint))]
pub struct SqlError {
    /// 1-based line of the offending token.
    pub line: u64,
    /// 1-based column of the offending token.
    pub column: u64,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is an obvious fix.
    pub hint: Option<String>,
}

/// Formats an optional hint as ` (hint: ...)`.
struct HintSuffix<'a>(&'a Option<String>);

impl fmt::Display for HintSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(hint) => write!(f, " (hint: {hint})"),
            None => Ok(()),
        }
    }
}

impl SqlError {
    /// An error at `location`.
    pub fn new(location: Location, message: impl Into<String>) -> Self {
        SqlError { line: location.line, column: location.column, message: message.into(), hint: None }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The location of the error.
    pub fn location(&self) -> Location {
        Location { line: self.line, column: self.column }
    }

    /// Wraps an operator (connector option) error at `location`; the message is the
    /// operator error's own text, which names the table and the option.
    pub fn from_operator(error: &OperatorError, location: Location) -> Self {
        SqlError::new(location, error.to_string())
    }

    /// Converts a tokenizer error, which carries its own location.
    pub fn from_tokenizer(error: &TokenizerError) -> Self {
        SqlError::new(error.location, error.message.clone())
    }

    /// Converts a sqlparser error. Its message usually ends in "at Line: X, Column: Y",
    /// which becomes the location; otherwise (an unexpected end of the statement)
    /// `fallback` is used.
    pub fn from_parser(error: &ParserError, fallback: Location) -> Self {
        let text = match error {
            ParserError::TokenizerError(s) | ParserError::ParserError(s) => s.as_str(),
            ParserError::RecursionLimitExceeded => "the statement is nested too deeply",
        };
        let (message, location) = split_location(text);
        let mut message = message.trim().to_string();
        if let Some(rest) = message.strip_prefix("Expected: ") {
            message = format!("syntax error: expected {rest}");
        }
        if message.ends_with("found: EOF") {
            message = format!("{}the end of the statement", message.trim_end_matches("EOF"));
        }
        SqlError::new(location.unwrap_or(fallback), message)
    }

    /// The error followed by the offending line of `script` and a caret under the column,
    /// for terminals.
    pub fn render(&self, script: &str) -> String {
        let mut out = self.to_string();
        let line = usize::try_from(self.line).ok().and_then(|l| l.checked_sub(1)).and_then(|l| script.lines().nth(l));
        if let Some(text) = line {
            let number = self.line.to_string();
            let pad = " ".repeat(number.len());
            let caret = " ".repeat(usize::try_from(self.column.saturating_sub(1)).unwrap_or(0));
            out.push_str(&format!("\n{pad} |\n{number} | {text}\n{pad} | {caret}^"));
        }
        out
    }
}

/// Splits "message at Line: X, Column: Y" into the message and the location.
fn split_location(text: &str) -> (&str, Option<Location>) {
    let Some(at) = text.rfind(" at Line: ") else {
        return (text, None);
    };
    let tail = &text[at + " at Line: ".len()..];
    let mut parts = tail.splitn(2, ", Column: ");
    let line = parts.next().and_then(|l| l.trim().parse::<u64>().ok());
    let column = parts.next().and_then(|c| {
        let digits: String = c.trim().chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u64>().ok()
    });
    match (line, column) {
        (Some(line), Some(column)) if line > 0 => (&text[..at], Some(Location { line, column })),
        _ => (text, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_hint() {
        let e = SqlError::new(Location { line: 3, column: 14 }, "unknown table 'ordrs'");
        assert_eq!(e.to_string(), "line 3, column 14: unknown table 'ordrs'");
        let e = e.with_hint("did you mean 'orders'?");
        assert_eq!(e.to_string(), "line 3, column 14: unknown table 'ordrs' (hint: did you mean 'orders'?)");
    }

    #[test]
    fn parser_locations_are_extracted() {
        let err = ParserError::ParserError("Expected: ')', found: x at Line: 2, Column: 7".into());
        let e = SqlError::from_parser(&err, Location { line: 9, column: 9 });
        assert_eq!((e.line, e.column), (2, 7));
        assert_eq!(e.message, "syntax error: expected ')', found: x");
        let err = ParserError::ParserError("Expected: an expression, found: EOF".into());
        let e = SqlError::from_parser(&err, Location { line: 9, column: 4 });
        assert_eq!((e.line, e.column), (9, 4));
        assert_eq!(e.message, "syntax error: expected an expression, found: the end of the statement");
    }

    #[test]
    fn render_points_at_the_column() {
        let e = SqlError::new(Location { line: 2, column: 3 }, "bad");
        assert_eq!(e.render("a\nxxyy\n"), "line 2, column 3: bad\n  |\n2 | xxyy\n  |   ^");
    }
}

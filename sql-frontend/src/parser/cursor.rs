//! A cursor over the tokens of one statement: sqlparser's [`Parser`] for the standard
//! parts (names, types, expressions, queries), plus the small steps Sluice's own syntax
//! needs, each reporting a located [`SqlError`].

use std::collections::BTreeSet;

use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token, TokenWithSpan};

use super::ast::{Name, WithOption};
use crate::error::{Result, SqlError};

/// The dialect every statement is parsed with.
static DIALECT: GenericDialect = GenericDialect {};

/// Tokens of one statement being parsed.
pub(crate) struct Cursor {
    parser: Parser<'static>,
    /// The statement's tokens as written (before ML_PREDICT calls were replaced).
    original: Vec<TokenWithSpan>,
    /// Where the statement's last significant token ends.
    end: Location,
}

impl Cursor {
    /// A cursor over `tokens`; `original` are the tokens as written, for source text.
    pub(crate) fn new(tokens: Vec<TokenWithSpan>, original: Vec<TokenWithSpan>) -> Self {
        let end = original
            .iter()
            .rev()
            .find(|t| !matches!(t.token, Token::Whitespace(_)))
            .map_or(Location { line: 1, column: 1 }, |t| t.span.end);
        Cursor { parser: Parser::new(&DIALECT).with_tokens_with_locations(tokens), original, end }
    }

    /// The next significant token (EOF at the end).
    pub(crate) fn peek(&self) -> TokenWithSpan {
        self.parser.peek_token()
    }

    /// The significant token `n` places ahead (0 is the next one).
    pub(crate) fn peek_nth(&self, n: usize) -> TokenWithSpan {
        self.parser.peek_nth_token(n)
    }

    /// Consumes and returns the next significant token.
    pub(crate) fn next(&mut self) -> TokenWithSpan {
        self.parser.next_token()
    }

    /// Where the next token is, or the end of the statement.
    pub(crate) fn location(&self) -> Location {
        let next = self.peek();
        if next.token == Token::EOF {
            self.end
        } else {
            next.span.start
        }
    }

    /// Where the statement ends.
    pub(crate) fn end(&self) -> Location {
        self.end
    }

    /// Whether the statement has no more tokens.
    pub(crate) fn at_end(&self) -> bool {
        self.peek().token == Token::EOF
    }

    /// Whether the significant token `n` places ahead is the unquoted word `word`.
    pub(crate) fn peek_nth_word(&self, n: usize, word: &str) -> bool {
        is_word(&self.peek_nth(n).token, word)
    }

    /// Whether the next token is the unquoted word `word` (case-insensitive).
    pub(crate) fn peek_word(&self, word: &str) -> bool {
        self.peek_nth_word(0, word)
    }

    /// Consumes the word `word` if it is next.
    pub(crate) fn eat_word(&mut self, word: &str) -> bool {
        let found = self.peek_word(word);
        if found {
            self.next();
        }
        found
    }

    /// Consumes `words` if they are all next, else nothing.
    pub(crate) fn eat_words(&mut self, words: &[&str]) -> bool {
        let found = words.iter().enumerate().all(|(i, w)| self.peek_nth_word(i, w));
        if found {
            for _ in words {
                self.next();
            }
        }
        found
    }

    /// Consumes the word `word`, or fails saying it was expected.
    pub(crate) fn expect_word(&mut self, word: &str) -> Result<Location> {
        let location = self.location();
        if self.eat_word(word) {
            Ok(location)
        } else {
            Err(self.unexpected(word))
        }
    }

    /// Consumes `token` if it is next.
    pub(crate) fn eat(&mut self, token: &Token) -> bool {
        self.parser.consume_token(token)
    }

    /// Consumes `token`, or fails saying it was expected.
    pub(crate) fn expect(&mut self, token: &Token) -> Result<Location> {
        let location = self.location();
        if self.eat(token) {
            Ok(location)
        } else {
            Err(self.unexpected(&format!("'{token}'")))
        }
    }

    /// "syntax error: expected X, found: Y" at the next token.
    pub(crate) fn unexpected(&self, expected: &str) -> SqlError {
        SqlError::new(self.location(), format!("syntax error: expected {expected}, found: {}", self.found()))
    }

    /// The next token for messages ("the end of the statement" at the end).
    pub(crate) fn found(&self) -> String {
        match self.peek().token {
            Token::EOF => "the end of the statement".to_string(),
            token => token.to_string(),
        }
    }

    /// A single-part name (a table, view, model or column); `what` describes it in errors.
    pub(crate) fn name(&mut self, what: &str) -> Result<Name> {
        let next = self.peek();
        let Token::Word(word) = &next.token else {
            return Err(self.unexpected(what));
        };
        self.next();
        if self.peek().token == Token::Period {
            let mut qualified = word.value.clone();
            while self.eat(&Token::Period) {
                qualified.push('.');
                qualified.push_str(&self.next().token.to_string());
            }
            return Err(SqlError::new(next.span.start, format!("qualified name '{qualified}' is not supported yet"))
                .with_hint("use the name alone: Sluice has one catalog and one database"));
        }
        Ok(Name { value: word.value.clone(), location: next.span.start })
    }

    /// A quoted string; `what` describes it in errors.
    pub(crate) fn string(&mut self, what: &str) -> Result<(String, Location)> {
        let next = self.peek();
        match next.token {
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => {
                self.next();
                Ok((s, next.span.start))
            }
            _ => Err(self.unexpected(what)),
        }
    }

    /// `COMMENT 'text'`, if next.
    pub(crate) fn comment(&mut self) -> Result<Option<String>> {
        if self.eat_word("COMMENT") {
            Ok(Some(self.string("a comment in quotes")?.0))
        } else {
            Ok(None)
        }
    }

    /// A comma-separated list of names in parentheses, `(a, b, ...)`, at least one.
    pub(crate) fn name_list(&mut self, what: &str) -> Result<Vec<Name>> {
        self.expect(&Token::LParen)?;
        let mut names = vec![self.name(what)?];
        while self.eat(&Token::Comma) {
            names.push(self.name(what)?);
        }
        self.expect(&Token::RParen)?;
        Ok(names)
    }

    /// `('key' = 'value', ...)`: keys are quoted strings; values are quoted strings,
    /// numbers or TRUE/FALSE. A key given twice is an error.
    pub(crate) fn option_list(&mut self) -> Result<Vec<WithOption>> {
        self.expect(&Token::LParen)?;
        let mut options: Vec<WithOption> = Vec::new();
        let mut keys = BTreeSet::new();
        if self.eat(&Token::RParen) {
            return Ok(options);
        }
        loop {
            let (key, key_location) = self.string("an option key in quotes, such as 'connector'")?;
            self.expect(&Token::Eq)?;
            let value_token = self.peek();
            let value = match &value_token.token {
                Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => s.clone(),
                Token::Number(n, _) => n.clone(),
                Token::Word(w)
                    if w.quote_style.is_none()
                        && ["TRUE", "FALSE"].contains(&w.value.to_ascii_uppercase().as_str()) =>
                {
                    w.value.to_ascii_lowercase()
                }
                _ => {
                    return Err(SqlError::new(
                        self.location(),
                        format!("the value of option '{key}' must be a quoted string, found: {}", self.found()),
                    )
                    .with_hint(format!("write '{key}' = '...'")))
                }
            };
            self.next();
            if !keys.insert(key.clone()) {
                return Err(
                    SqlError::new(key_location, format!("option '{key}' is set twice")).with_hint("remove one of them")
                );
            }
            options.push(WithOption { key, value, key_location, value_location: value_token.span.start });
            if self.eat(&Token::RParen) {
                return Ok(options);
            }
            if !self.eat(&Token::Comma) {
                return Err(self.unexpected("',' or ')'"));
            }
        }
    }

    /// Runs a sqlparser step, turning its error into a located [`SqlError`].
    pub(crate) fn sql<T>(&mut self, step: impl FnOnce(&mut Parser<'static>) -> Result<T, ParserError>) -> Result<T> {
        let end = self.end;
        step(&mut self.parser).map_err(|e| SqlError::from_parser(&e, end))
    }

    /// Fails unless the statement has no more tokens.
    pub(crate) fn finish(&self) -> Result<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.unexpected("the end of the statement").with_hint("separate statements with ';'"))
        }
    }

    /// Up to `n` leading unquoted words of the statement as written, upper-cased.
    pub(crate) fn leading_words(&self, n: usize) -> Vec<String> {
        super::leading_words(&self.original, n)
    }

    /// The statement's text as written from `start` to its end.
    pub(crate) fn source_from(&self, start: Location) -> String {
        self.original
            .iter()
            .filter(|t| (t.span.start.line, t.span.start.column) >= (start.line, start.column))
            .map(|t| t.token.to_string())
            .collect::<String>()
            .trim()
            .to_string()
    }
}

/// Whether `token` is the unquoted word `word` (case-insensitive).
pub(crate) fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

//! Typed access to connector options (`WITH ('key' = 'value', ...)`), with errors that name
//! the option, the table and the closest valid key.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::Duration;

use crate::{OperatorError, Result};

/// Options of one table or model, read with typed getters. Every key that is read is
/// remembered, so [`Options::finish`] can reject the keys nobody asked for.
#[derive(Debug)]
pub struct Options<'a> {
    context: String,
    values: &'a BTreeMap<String, String>,
    known: BTreeSet<String>,
    /// Prefixes under which any key is accepted (such as `fields.`).
    open_prefixes: Vec<String>,
}

impl<'a> Options<'a> {
    /// Wraps `values`; `context` names the owner in errors, e.g. "table 'orders'".
    pub fn new(context: impl Into<String>, values: &'a BTreeMap<String, String>) -> Self {
        Options { context: context.into(), values, known: BTreeSet::new(), open_prefixes: Vec::new() }
    }

    /// The context string used in errors.
    pub fn context(&self) -> &str {
        &self.context
    }

    /// A configuration error in this context.
    pub fn error(&self, message: impl Into<String>) -> OperatorError {
        OperatorError::config(self.context.clone(), message)
    }

    /// Declares that keys starting with `prefix` are read dynamically (e.g. `fields.`).
    /// Every option as given.
    pub fn all(&self) -> &'a BTreeMap<String, String> {
        self.values
    }

    /// Accepts every option under `prefix` (e.g. `properties.`, passed through to a client).
    pub fn accept_prefix(&mut self, prefix: &str) {
        self.open_prefixes.push(prefix.to_string());
    }

    /// Marks `key` as a valid option without reading it.
    pub fn declare(&mut self, key: &str) {
        self.known.insert(key.to_string());
    }

    /// The raw value of `key`, if set.
    pub fn get(&mut self, key: &str) -> Option<&'a str> {
        self.known.insert(key.to_string());
        self.values.get(key).map(String::as_str)
    }

    /// The value of `key`, or an error saying it is required.
    pub fn required(&mut self, key: &str) -> Result<&'a str> {
        self.get(key).ok_or_else(|| self.error(format!("missing required option '{key}'")))
    }

    /// The value of `key` parsed as `T`; `expected` describes valid values in the error.
    pub fn parse<T: FromStr>(&mut self, key: &str, expected: &str) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => raw
                .trim()
                .parse::<T>()
                .map(Some)
                .map_err(|_| self.error(format!("option '{key}' = '{raw}' is not {expected}"))),
        }
    }

    /// A non-negative integer option.
    pub fn u64(&mut self, key: &str) -> Result<Option<u64>> {
        self.parse(key, "a non-negative integer")
    }

    /// A boolean option (`true` or `false`).
    pub fn bool(&mut self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => match raw.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(self.error(format!("option '{key}' = '{raw}' is not 'true' or 'false'"))),
            },
        }
    }

    /// A duration option such as `500 ms`, `5s`, `1 min`, `2h`.
    pub fn duration(&mut self, key: &str) -> Result<Option<Duration>> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => {
                parse_duration(raw).map(Some).map_err(|why| self.error(format!("option '{key}' = '{raw}': {why}")))
            }
        }
    }

    /// A memory size option such as `128MB`, `64 kb`, `1024`.
    pub fn bytes(&mut self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => {
                parse_memory_size(raw).map(Some).map_err(|why| self.error(format!("option '{key}' = '{raw}': {why}")))
            }
        }
    }

    /// One of `choices` (case-insensitive), returned lower-cased.
    pub fn choice(&mut self, key: &str, choices: &[&str]) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => {
                let lower = raw.trim().to_ascii_lowercase();
                if choices.contains(&lower.as_str()) {
                    Ok(Some(lower))
                } else {
                    Err(self.error(format!("option '{key}' = '{raw}' is not one of {}", quoted_list(choices))))
                }
            }
        }
    }

    /// Fails on the first option that was never read or declared, naming the closest valid key.
    pub fn finish(&self) -> Result<()> {
        for key in self.values.keys() {
            if self.known.contains(key) || self.open_prefixes.iter().any(|p| key.starts_with(p)) {
                continue;
            }
            let mut message = format!("unknown option '{key}'");
            if let Some(close) = closest(key, self.known.iter().map(String::as_str)) {
                message.push_str(&format!("; did you mean '{close}'?"));
            } else {
                message.push_str(&format!("; valid options are {}", quoted_list_iter(self.known.iter())));
            }
            return Err(self.error(message));
        }
        Ok(())
    }
}

/// The candidate closest to `word` by edit distance, if it is plausibly a misspelling.
pub fn closest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= (word.chars().count() / 3).clamp(1, 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn quoted_list(items: &[&str]) -> String {
    quoted_list_iter(items.iter())
}

fn quoted_list_iter<S: AsRef<str>>(items: impl Iterator<Item = S>) -> String {
    items.map(|s| format!("'{}'", s.as_ref())).collect::<Vec<_>>().join(", ")
}

/// Parses Flink-style durations: a number followed by an optional unit
/// (`ms`, `s`, `min`, `h`, `d` and their long forms); a bare number is milliseconds.
pub fn parse_duration(raw: &str) -> std::result::Result<Duration, String> {
    let text = raw.trim().to_ascii_lowercase();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| "expected a number followed by a unit, such as '500 ms', '30s' or '1 min'".to_string())?;
    let millis = match unit.trim() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1.0,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000.0,
        "h" | "hour" | "hours" => 3_600_000.0,
        "d" | "day" | "days" => 86_400_000.0,
        other => return Err(format!("unknown time unit '{other}'; use ms, s, min, h or d (for example '30 s')")),
    };
    Ok(Duration::from_secs_f64(value * millis / 1_000.0))
}

/// Parses memory sizes such as `128mb`, `64 KiB` or `1048576` (bytes).
pub fn parse_memory_size(raw: &str) -> std::result::Result<u64, String> {
    let text = raw.trim().to_ascii_lowercase();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number.parse().map_err(|_| "expected a size such as '128mb', '64kb' or '1048576'".to_string())?;
    let factor: u64 = match unit.trim() {
        "" | "b" | "bytes" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit '{other}'; use b, kb, mb or gb")),
    };
    value.checked_mul(factor).ok_or_else(|| "size is too large".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn durations_in_flink_syntax() {
        assert_eq!(parse_duration("500 ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1 min").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("250").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("30 parsecs").unwrap_err().contains("unknown time unit 'parsecs'"));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory_size("128MB").unwrap(), 128 << 20);
        assert_eq!(parse_memory_size("64 kb").unwrap(), 64 << 10);
        assert!(parse_memory_size("lots").is_err());
    }

    #[test]
    fn unknown_option_names_the_closest_key() {
        let values = map(&[("number-of-row", "10")]);
        let mut options = Options::new("table 't'", &values);
        let _ = options.u64("number-of-rows");
        let _ = options.u64("rows-per-second");
        let err = options.finish().unwrap_err().to_string();
        assert!(err.contains("unknown option 'number-of-row'"), "{err}");
        assert!(err.contains("did you mean 'number-of-rows'"), "{err}");
    }

    #[test]
    fn typed_getters_explain_bad_values() {
        let values = map(&[("n", "-3"), ("b", "yes"), ("c", "xml")]);
        let mut options = Options::new("table 't'", &values);
        assert!(options.u64("n").unwrap_err().to_string().contains("'n' = '-3' is not a non-negative integer"));
        assert!(options.bool("b").is_err());
        let err = options.choice("c", &["json", "csv"]).unwrap_err().to_string();
        assert!(err.contains("not one of 'json', 'csv'"), "{err}");
    }
}

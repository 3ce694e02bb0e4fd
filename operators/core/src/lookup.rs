//! Lookup tables: what a lookup join asks of a connector (the rows of a table whose lookup
//! columns equal given keys), and the table options every lookup table shares (its cache
//! and retries), with both of Flink's option styles.

use std::time::Duration;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use crate::options::Options;
use crate::Result;

/// Why a lookup failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupFailure {
    /// What went wrong, for the user.
    pub message: String,
    /// True when asking again may succeed (a lost connection, a server shutting down);
    /// false for errors of the query itself (a missing column, a type mismatch).
    pub retriable: bool,
}

/// A table that answers lookups by key, shared by the requests of one lookup-join subtask.
#[async_trait]
pub trait LookupSource: Send + Sync {
    /// For each row of `keys` (the lookup columns, typed as the table declares them), the
    /// table's rows whose lookup columns equal it, as one batch of the table's physical
    /// schema per key row (empty when nothing matches).
    async fn lookup(&self, keys: &RecordBatch) -> std::result::Result<Vec<RecordBatch>, LookupFailure>;
}

/// A lookup table's cache (`lookup.cache` = `PARTIAL`, or the legacy `lookup.cache.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupCacheOptions {
    /// Keys kept at most; the least recently used goes first.
    pub max_rows: u64,
    /// An entry is dropped this long after it was looked up.
    pub expire_after_write: Option<Duration>,
    /// An entry is dropped this long after it was last read.
    pub expire_after_access: Option<Duration>,
    /// Keys with no row are cached too.
    pub cache_missing_key: bool,
}

/// The options every lookup table takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupOptions {
    /// The cache, if any.
    pub cache: Option<LookupCacheOptions>,
    /// Retries of a failed lookup (`lookup.max-retries`), with a doubling backoff.
    pub max_retries: u32,
}

/// Flink's default of `lookup.max-retries`.
pub const DEFAULT_MAX_RETRIES: u32 = 3;

impl LookupOptions {
    /// Reads the cache and retry options: Flink's `lookup.cache` = `NONE` | `PARTIAL` with
    /// `lookup.partial-cache.max-rows`, `.expire-after-write`, `.expire-after-access` and
    /// `.cache-missing-key`, or the legacy `lookup.cache.max-rows` with `lookup.cache.ttl`
    /// (expire after write) and `lookup.cache.caching-missing-key`; and `lookup.max-retries`.
    pub fn parse(options: &mut Options<'_>) -> Result<Self> {
        let max_retries =
            options.parse::<u32>("lookup.max-retries", "a number of retries")?.unwrap_or(DEFAULT_MAX_RETRIES);
        let mode = options.choice("lookup.cache", &["none", "partial"])?;
        let partial = Self::partial(options)?;
        let legacy = Self::legacy(options)?;
        let cache = match (mode.as_deref(), partial, legacy) {
            (_, Some(_), Some(_)) => return Err(options.error(
                "both 'lookup.partial-cache.*' and the legacy 'lookup.cache.max-rows' / 'lookup.cache.ttl' are set; \
                     keep one style",
            )),
            (Some("partial"), None, None) => {
                return Err(options.error(
                    "'lookup.cache' = 'PARTIAL' needs 'lookup.partial-cache.max-rows' (and usually an expiry: \
                     'lookup.partial-cache.expire-after-write' or '.expire-after-access')",
                ))
            }
            (Some("partial"), cache, None) => cache,
            (Some("none"), Some(_), _) => return Err(options.error(
                "'lookup.partial-cache.*' options are set but 'lookup.cache' is 'NONE'; set 'lookup.cache' = 'PARTIAL'",
            )),
            (Some("none"), _, _) => None,
            (None, Some(_), _) => {
                return Err(options.error("'lookup.partial-cache.*' options need 'lookup.cache' = 'PARTIAL'"))
            }
            (_, partial, legacy) => partial.or(legacy),
        };
        Ok(LookupOptions { cache, max_retries })
    }

    /// `lookup.partial-cache.*`, when any is set.
    fn partial(options: &mut Options<'_>) -> Result<Option<LookupCacheOptions>> {
        let max_rows = options.u64("lookup.partial-cache.max-rows")?;
        let write = options.duration("lookup.partial-cache.expire-after-write")?;
        let access = options.duration("lookup.partial-cache.expire-after-access")?;
        let missing = options.bool("lookup.partial-cache.cache-missing-key")?;
        if max_rows.is_none() && write.is_none() && access.is_none() && missing.is_none() {
            return Ok(None);
        }
        let Some(max_rows) = max_rows.filter(|&m| m > 0) else {
            return Err(options.error("'lookup.partial-cache.max-rows' must be set to a positive number of keys"));
        };
        Ok(Some(LookupCacheOptions {
            max_rows,
            expire_after_write: write,
            expire_after_access: access,
            cache_missing_key: missing.unwrap_or(true),
        }))
    }

    /// The legacy `lookup.cache.max-rows` and `lookup.cache.ttl`, when set (both or neither).
    fn legacy(options: &mut Options<'_>) -> Result<Option<LookupCacheOptions>> {
        let max_rows = options.u64("lookup.cache.max-rows")?;
        let ttl = options.duration("lookup.cache.ttl")?;
        let missing = options.bool("lookup.cache.caching-missing-key")?;
        match (max_rows, ttl) {
            (None, None) => Ok(None),
            (Some(max_rows), Some(ttl)) if max_rows > 0 && !ttl.is_zero() => Ok(Some(LookupCacheOptions {
                max_rows,
                expire_after_write: Some(ttl),
                expire_after_access: None,
                cache_missing_key: missing.unwrap_or(true),
            })),
            (Some(_), Some(_)) => Ok(None),
            _ => Err(options.error("the legacy cache needs both 'lookup.cache.max-rows' and 'lookup.cache.ttl'")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> std::result::Result<LookupOptions, String> {
        let values: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut options = Options::new("table 'dim'", &values);
        let parsed = LookupOptions::parse(&mut options).map_err(|e| e.to_string())?;
        options.finish().map_err(|e| e.to_string())?;
        Ok(parsed)
    }

    #[test]
    fn both_option_styles_give_the_same_cache() {
        let legacy = parse(&[("lookup.cache.max-rows", "1000"), ("lookup.cache.ttl", "1 h")]).unwrap();
        let partial = parse(&[
            ("lookup.cache", "PARTIAL"),
            ("lookup.partial-cache.max-rows", "1000"),
            ("lookup.partial-cache.expire-after-write", "1h"),
        ])
        .unwrap();
        assert_eq!(legacy, partial);
        let cache = legacy.cache.unwrap();
        assert_eq!((cache.max_rows, cache.expire_after_write), (1000, Some(Duration::from_secs(3600))));
        assert!(cache.cache_missing_key);
        assert_eq!(legacy.max_retries, DEFAULT_MAX_RETRIES);
    }

    #[test]
    fn no_cache_unless_asked_and_contradictions_are_refused() {
        assert_eq!(parse(&[]).unwrap().cache, None);
        assert_eq!(parse(&[("lookup.cache", "NONE"), ("lookup.max-retries", "7")]).unwrap().max_retries, 7);
        let access = parse(&[
            ("lookup.cache", "partial"),
            ("lookup.partial-cache.max-rows", "10"),
            ("lookup.partial-cache.expire-after-access", "5 s"),
            ("lookup.partial-cache.cache-missing-key", "false"),
        ])
        .unwrap()
        .cache
        .unwrap();
        assert_eq!((access.expire_after_access, access.cache_missing_key), (Some(Duration::from_secs(5)), false));
        assert!(parse(&[("lookup.cache", "PARTIAL")]).unwrap_err().contains("needs 'lookup.partial-cache.max-rows'"));
        assert!(parse(&[("lookup.partial-cache.max-rows", "5")])
            .unwrap_err()
            .contains("need 'lookup.cache' = 'PARTIAL'"));
        assert!(parse(&[("lookup.cache.max-rows", "5")]).unwrap_err().contains("needs both"));
        assert!(parse(&[("lookup.cache", "FULL")]).is_err());
    }
}

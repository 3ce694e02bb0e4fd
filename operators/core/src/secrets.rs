//! Secret references in model options: `'api_key' = '{{ secret.openai_api_key }}'`.
//!
//! A reference is stored as written (in the catalog, the plan and the job graph) and
//! resolved only in the task manager, by [`resolve`], from
//!
//! 1. the environment variable `SLUICE_SECRET_<NAME upper-cased>`
//!    (`SLUICE_SECRET_OPENAI_API_KEY`), then
//! 2. the secrets file given to the task manager, if any: lines `NAME=value`, where blank
//!    lines and lines starting with `#` are skipped, the name is matched case-insensitively,
//!    whitespace around the name and the value is trimmed and one pair of double quotes
//!    around the value is removed.
//!
//! Whatever shows options to people (DESCRIBE, SHOW CREATE, EXPLAIN, logs, errors) shows
//! secret-bearing values as [`MASK`] ([`mask`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a secret-bearing value is shown as.
pub const MASK: &str = "****";

/// The prefix of the environment variables secrets are read from.
pub const ENV_PREFIX: &str = "SLUICE_SECRET_";

/// A secret reference that is malformed, or a secret that cannot be found.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// A value starts like a reference but is not one.
    #[error("'{value}' is not a valid secret reference; write '{{{{ secret.NAME }}}}', where NAME is letters, digits and '_'")]
    Malformed {
        /// The value as written.
        value: String,
    },
    /// No source has the secret.
    #[error("secret '{name}' is not set; set the environment variable {env_var} on the task manager{}", file_hint(.file))]
    Missing {
        /// The secret's name as written in the reference.
        name: String,
        /// The environment variable that was looked up.
        env_var: String,
        /// The secrets file that was searched, if one was given.
        file: Option<PathBuf>,
    },
    /// The secrets file cannot be read.
    #[error("cannot read the secrets file '{}': {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line of the secrets file is malformed.
    #[error("secrets file '{}', line {line}: {message}", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

fn file_hint(file: &Option<PathBuf>) -> String {
    match file {
        Some(path) => format!(", or add a line NAME=value to the secrets file '{}'", path.display()),
        None => ", or give the task manager a secrets file with a line NAME=value".to_string(),
    }
}

/// The name a value refers to: `Ok(Some(name))` for a reference `{{ secret.NAME }}`
/// (whitespace-tolerant), `Ok(None)` for a plain value, and an error for a value that
/// starts with `{{` but is not a well-formed reference.
pub fn parse_reference(value: &str) -> Result<Option<&str>, SecretError> {
    let text = value.trim();
    let Some(inner) = text.strip_prefix("{{") else {
        return Ok(None);
    };
    let malformed = || SecretError::Malformed { value: value.to_string() };
    let inner = inner.strip_suffix("}}").ok_or_else(malformed)?.trim();
    let name = inner.strip_prefix("secret.").ok_or_else(malformed)?;
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(Some(name))
    } else {
        Err(malformed())
    }
}

/// Whether `value` is a well-formed secret reference.
pub fn is_secret_reference(value: &str) -> bool {
    matches!(parse_reference(value), Ok(Some(_)))
}

/// Whether option `key` holds a credential: one of the words of the key (split at `-`,
/// `_` and `.`) is `key`, `apikey`, `secret`, `token`, `password`, `passwd` or
/// `credential(s)`. So `api-key`, `api_key` and `properties.hf_token` do, `max-tokens`
/// does not.
pub fn is_secret_key(key: &str) -> bool {
    const WORDS: &[&str] = &["key", "apikey", "secret", "token", "password", "passwd", "credential", "credentials"];
    key.split(['-', '_', '.']).any(|word| WORDS.iter().any(|w| w.eq_ignore_ascii_case(word)))
}

/// `value` as it may be shown: [`MASK`] for a credential or a secret reference.
pub fn mask(key: &str, value: &str) -> String {
    if is_secret_key(key) || is_secret_reference(value) {
        MASK.to_string()
    } else {
        value.to_string()
    }
}

/// Where secrets are looked up: the environment, then an optional secrets file.
#[derive(Debug, Clone, Default)]
pub struct SecretSources {
    file: Option<SecretFile>,
}

#[derive(Debug, Clone)]
struct SecretFile {
    path: PathBuf,
    /// Values by upper-cased name.
    values: BTreeMap<String, String>,
}

impl SecretSources {
    /// Secrets from the environment only.
    pub fn environment() -> Self {
        SecretSources { file: None }
    }

    /// Secrets from the environment, then from the secrets file at `path` (read now).
    pub fn with_file(path: &Path) -> Result<Self, SecretError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| SecretError::Io { path: path.to_path_buf(), source })?;
        let mut values = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |message: String| SecretError::File { path: path.to_path_buf(), line: index + 1, message };
            let Some((name, value)) = line.split_once('=') else {
                return Err(error("expected NAME=value".to_string()));
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(error("the secret has no name; expected NAME=value".to_string()));
            }
            let value = value.trim();
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
            if values.insert(name.to_ascii_uppercase(), value.to_string()).is_some() {
                return Err(error(format!("secret '{name}' is set twice")));
            }
        }
        Ok(SecretSources { file: Some(SecretFile { path: path.to_path_buf(), values }) })
    }

    fn lookup(&self, name: &str) -> Option<String> {
        let upper = name.to_ascii_uppercase();
        std::env::var(format!("{ENV_PREFIX}{upper}"))
            .ok()
            .or_else(|| self.file.as_ref().and_then(|f| f.values.get(&upper).cloned()))
    }
}

/// The value to use for an option value: a secret reference is replaced by the secret,
/// anything else is returned as is. The error names the secret and how to provide it; the
/// caller adds which model needs it.
pub fn resolve(value: &str, sources: &SecretSources) -> Result<String, SecretError> {
    match parse_reference(value)? {
        None => Ok(value.to_string()),
        Some(name) => sources.lookup(name).ok_or_else(|| SecretError::Missing {
            name: name.to_string(),
            env_var: format!("{ENV_PREFIX}{}", name.to_ascii_uppercase()),
            file: sources.file.as_ref().map(|f| f.path.clone()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_whitespace_tolerant() {
        assert_eq!(parse_reference("{{ secret.openai_api_key }}").unwrap(), Some("openai_api_key"));
        assert_eq!(parse_reference("  {{secret.KEY_2}}  ").unwrap(), Some("KEY_2"));
        assert_eq!(parse_reference("sk-123").unwrap(), None);
        for bad in
            ["{{ secret.openai_api_key", "{{ secrets.x }}", "{{ secret. }}", "{{ secret.a-b }}", "{{ secret.1x }}"]
        {
            let e = parse_reference(bad).unwrap_err().to_string();
            assert!(e.contains("is not a valid secret reference; write '{{ secret.NAME }}'"), "{bad}: {e}");
        }
        assert!(is_secret_reference("{{secret.x}}"));
        assert!(!is_secret_reference("{{secret.}}"));
    }

    #[test]
    fn masking() {
        assert_eq!(mask("api_key", "sk-live-123"), MASK);
        assert_eq!(mask("api-key", "sk-live-123"), MASK);
        assert_eq!(mask("properties.hf_token", "x"), MASK);
        assert_eq!(mask("db.password", "x"), MASK);
        assert_eq!(mask("system-prompt", "{{ secret.prompt }}"), MASK);
        assert_eq!(mask("max-tokens", "500"), "500");
        assert_eq!(mask("model", "gpt-4"), "gpt-4");
    }

    #[test]
    fn resolution_from_the_environment() {
        std::env::set_var("SLUICE_SECRET_SECRETS_TEST_ENV_A", "sk-from-env");
        let sources = SecretSources::environment();
        assert_eq!(resolve("{{ secret.secrets_test_env_a }}", &sources).unwrap(), "sk-from-env");
        assert_eq!(resolve("literal", &sources).unwrap(), "literal");
    }

    #[test]
    fn missing_secret_says_how_to_provide_it() {
        let e = resolve("{{ secret.secrets_test_never_set }}", &SecretSources::environment()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "secret 'secrets_test_never_set' is not set; set the environment variable \
             SLUICE_SECRET_SECRETS_TEST_NEVER_SET on the task manager, or give the task manager a secrets file \
             with a line NAME=value"
        );
    }

    #[test]
    fn resolution_from_a_file_after_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets");
        std::fs::write(&path, "# keys\n\nSECRETS_TEST_FILE_A = \"sk-from-file\"\nsecrets_test_file_b=plain\n").unwrap();
        std::env::set_var("SLUICE_SECRET_SECRETS_TEST_FILE_B", "env-wins");
        let sources = SecretSources::with_file(&path).unwrap();
        assert_eq!(resolve("{{ secret.secrets_test_file_a }}", &sources).unwrap(), "sk-from-file");
        assert_eq!(resolve("{{ secret.SECRETS_TEST_FILE_B }}", &sources).unwrap(), "env-wins");
        let e = resolve("{{ secret.secrets_test_file_c }}", &sources).unwrap_err().to_string();
        assert!(e.contains(&format!("or add a line NAME=value to the secrets file '{}'", path.display())), "{e}");
        assert!(e.contains("SLUICE_SECRET_SECRETS_TEST_FILE_C"), "{e}");
    }

    #[test]
    fn malformed_secrets_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets");
        std::fs::write(&path, "A=1\njust a line\n").unwrap();
        let e = SecretSources::with_file(&path).unwrap_err().to_string();
        assert!(e.ends_with("line 2: expected NAME=value"), "{e}");
        std::fs::write(&path, "A=1\na=2\n").unwrap();
        let e = SecretSources::with_file(&path).unwrap_err().to_string();
        assert!(e.ends_with("line 2: secret 'a' is set twice"), "{e}");
        let e = SecretSources::with_file(&dir.path().join("absent")).unwrap_err().to_string();
        assert!(e.starts_with("cannot read the secrets file"), "{e}");
    }
}

//! The PostgreSQL client of the jdbc connector (tokio-postgres): one connection per
//! subtask, shared by its concurrent statements (the protocol pipelines them), opened on
//! first use and again after it is lost; identifiers quoted; errors sorted into retriable
//! (the server went away or is starting) and not (the statement is wrong).

use std::sync::Arc;
use std::time::Duration;

use sluice_core::lookup::LookupFailure;
use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

use super::JdbcConnection;

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `name` as a PostgreSQL identifier. A plain name (letters, digits, `_`) is lower-cased
/// first, as PostgreSQL folds an unquoted name, and quoted so that reserved words work;
/// any other name is quoted as written.
pub fn identifier(name: &str) -> String {
    let plain = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    let name = if plain { name.to_ascii_lowercase() } else { name.to_string() };
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A table name as written (`name` or `schema.name`), each part an identifier.
pub fn table_identifier(name: &str) -> String {
    name.split('.').map(identifier).collect::<Vec<_>>().join(".")
}

/// One error as a failure: retriable when the connection is gone or the server cannot
/// serve now (SQLSTATE classes 08, 53, 57 and serialization failures), not when the
/// statement itself is at fault.
pub fn failure(error: &tokio_postgres::Error) -> LookupFailure {
    let retriable = match error.as_db_error() {
        None => true,
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57")
                || code == "40001"
                || code == "40P01"
        }
    };
    let message = match error.as_db_error() {
        Some(db) => format!(
            "{}: {}{}",
            db.severity(),
            db.message(),
            db.hint().map(|h| format!(" (hint: {h})")).unwrap_or_default()
        ),
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        }
    };
    LookupFailure { message, retriable }
}

/// The server's type of each of `columns` of the target's table (`bigint`,
/// `character varying(20)`, ...), to cast text parameters to.
pub async fn column_types(
    client: &Client,
    target: &JdbcConnection,
    columns: &[&str],
) -> Result<Vec<String>, LookupFailure> {
    let table = &target.table_name;
    let mut types = Vec::with_capacity(columns.len());
    for name in columns {
        let stored = identifier(name).trim_matches('"').replace("\"\"", "\"");
        let row = client
            .query_opt(
                "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
                &[&table_identifier(table), &stored],
            )
            .await
            .map_err(|e| failure(&e))?;
        let Some(row) = row else {
            return Err(LookupFailure {
                message: format!(
                    "{}: PostgreSQL has no table '{table}' with a column '{stored}' (check 'table-name' and the declared \
                     columns)",
                    target.context()
                ),
                retriable: false,
            });
        };
        types.push(row.get::<_, String>(0));
    }
    Ok(types)
}

/// Opens a connection to the database of `target`; its messages are read by a spawned task
/// that ends when the client is dropped.
pub async fn connect(target: &JdbcConnection) -> Result<Client, LookupFailure> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&target.host)
        .port(target.port)
        .dbname(&target.database)
        .application_name("sluice")
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(user) = &target.username {
        config.user(user);
    }
    if let Some(password) = &target.password {
        config.password(password);
    }
    let (client, connection) = config.connect(NoTls).await.map_err(|e| failure(&e))?;
    let table = target.table.clone();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(table = %table, error = %e, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

/// A connection to the table's database, opened when first needed and again once lost.
pub struct Connection {
    target: JdbcConnection,
    client: Mutex<Option<Arc<Client>>>,
}

impl Connection {
    /// A connection to `target`, not opened yet.
    pub fn new(target: JdbcConnection) -> Self {
        Connection { target, client: Mutex::new(None) }
    }

    /// The database and table.
    pub fn target(&self) -> &JdbcConnection {
        &self.target
    }

    /// The open client, connecting first when there is none or it was closed.
    pub async fn client(&self) -> Result<Arc<Client>, LookupFailure> {
        let mut guard = self.client.lock().await;
        if let Some(client) = guard.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        *guard = None;
        let client = Arc::new(connect(&self.target).await?);
        *guard = Some(client.clone());
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_fold_plain_names_and_quote_everything() {
        assert_eq!(identifier("CustomerId"), "\"customerid\"");
        assert_eq!(identifier("user"), "\"user\"");
        assert_eq!(identifier("odd name"), "\"odd name\"");
        assert_eq!(identifier("a\"b"), "\"a\"\"b\"");
        assert_eq!(table_identifier("public.Customers"), "\"public\".\"customers\"");
    }
}

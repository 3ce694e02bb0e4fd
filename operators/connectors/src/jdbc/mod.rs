//! The `jdbc` connector, for PostgreSQL, with Flink's option names: `url`
//! (`jdbc:postgresql://host[:port]/database`), `table-name`, `username`, `password` (a
//! secret reference is resolved when the job starts) and `driver` (accepted, unused: the
//! client is native). A table is a lookup table (lookup joins), a bounded source (read in
//! parallel by ranges of a column, see [`partition`]), or a sink that appends, or upserts
//! on its PRIMARY KEY.
//!
//! Every role accepts every option of the connector, as Flink's does, so one table can be
//! looked up and written by the same script.

#[cfg(feature = "runtime")]
mod lookup;
pub mod partition;
#[cfg(feature = "runtime")]
mod postgres;
#[cfg(feature = "runtime")]
mod scan;
#[cfg(feature = "runtime")]
mod sink;
#[cfg(feature = "runtime")]
mod values;

use std::time::Duration;

use arrow::datatypes::SchemaRef;
use sluice_core::lookup::LookupOptions;
use sluice_core::options::Options;
use sluice_core::Result;
use sluice_proto::ConnectorSpec;

use crate::registry::{Connector, LookupFactory, SinkFactory, SourceFactory};
use crate::Role;
use partition::JdbcScanOptions;

/// Where a PostgreSQL database is and who logs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JdbcConnection {
    /// The server's host name or address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The database.
    pub database: String,
    /// The table, as written (`name` or `schema.name`).
    pub table_name: String,
    /// The user, if any.
    pub username: Option<String>,
    /// The password (resolved by the task manager before the table is opened).
    pub password: Option<String>,
    /// The Sluice table, for messages.
    pub table: String,
}

impl JdbcConnection {
    /// Where errors about this table are reported.
    pub fn context(&self) -> String {
        format!(
            "table '{}' (jdbc postgresql://{}:{}/{}, table {})",
            self.table, self.host, self.port, self.database, self.table_name
        )
    }
}

/// How a jdbc sink writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JdbcSinkOptions {
    /// Rows buffered before a write (`sink.buffer-flush.max-rows`).
    pub max_rows: usize,
    /// Longest a buffered row waits (`sink.buffer-flush.interval`).
    pub interval: Duration,
    /// Retries of a failed write (`sink.max-retries`).
    pub max_retries: u32,
}

/// A jdbc table's checked options.
#[derive(Debug, Clone)]
pub struct JdbcTable {
    /// The database and table.
    pub connection: JdbcConnection,
    /// The table's physical columns.
    pub schema: SchemaRef,
    /// Its PRIMARY KEY columns (a sink upserts on them).
    pub primary_key: Vec<String>,
    /// How it is read by a source.
    pub scan: JdbcScanOptions,
    /// How it is written.
    pub sink: JdbcSinkOptions,
}

/// Reads `jdbc:postgresql://host[:port]/database[?...]`.
fn parse_url(url: &str, options: &Options<'_>) -> Result<(String, u16, String)> {
    let usage = "use 'jdbc:postgresql://host:port/database'";
    let Some(rest) = url.trim().strip_prefix("jdbc:") else {
        return Err(options.error(format!("option 'url' = '{url}' is not a JDBC URL; {usage}")));
    };
    let Some(rest) = rest.strip_prefix("postgresql://") else {
        let scheme = rest.split(':').next().unwrap_or(rest);
        return Err(options.error(format!(
            "option 'url': the '{scheme}' database is not supported; Sluice's jdbc connector speaks PostgreSQL ({usage})"
        )));
    };
    let rest = rest.split('?').next().unwrap_or(rest);
    let (address, database) = rest.split_once('/').unwrap_or((rest, ""));
    if database.is_empty() || address.is_empty() {
        return Err(options.error(format!("option 'url' = '{url}' names no host or no database; {usage}")));
    }
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) => {
            let port =
                port.parse::<u16>().map_err(|_| options.error(format!("option 'url': '{port}' is not a port")))?;
            (host.to_string(), port)
        }
        None => (address.to_string(), 5432),
    };
    Ok((host, port, database.to_string()))
}

/// Parses every option of a jdbc table (whatever its role).
pub fn parse(spec: &ConnectorSpec, options: &mut Options<'_>, schema: SchemaRef) -> Result<JdbcTable> {
    let url = options.required("url")?;
    let (host, port, database) = parse_url(url, options)?;
    let table_name = options.required("table-name")?.to_string();
    let username = options.get("username").map(str::to_string);
    let password = options.get("password").map(str::to_string);
    options.declare("driver");
    options.declare("scan.parallelism");
    options.declare("sink.parallelism");
    LookupOptions::parse(options)?;
    let scan = JdbcScanOptions::parse(options, &schema)?;
    let sink = JdbcSinkOptions {
        max_rows: options.u64("sink.buffer-flush.max-rows")?.unwrap_or(100).max(1) as usize,
        interval: options.duration("sink.buffer-flush.interval")?.unwrap_or(Duration::from_secs(1)),
        max_retries: options.parse::<u32>("sink.max-retries", "a number of retries")?.unwrap_or(3),
    };
    Ok(JdbcTable {
        connection: JdbcConnection { host, port, database, table_name, username, password, table: spec.table.clone() },
        schema,
        primary_key: spec.primary_key.clone(),
        scan,
        sink,
    })
}

/// The `jdbc` connector.
pub struct Jdbc;

impl Connector for Jdbc {
    fn name(&self) -> &'static str {
        "jdbc"
    }

    fn bounded(&self, _spec: &ConnectorSpec) -> bool {
        true
    }

    fn roles(&self) -> &'static [Role] {
        &[Role::Source, Role::Sink, Role::Lookup]
    }

    fn source(
        &self,
        spec: &ConnectorSpec,
        options: &mut Options<'_>,
        schema: SchemaRef,
    ) -> Result<Box<dyn SourceFactory>> {
        Ok(Box::new(parse(spec, options, schema)?))
    }

    fn sink(&self, spec: &ConnectorSpec, options: &mut Options<'_>, schema: SchemaRef) -> Result<Box<dyn SinkFactory>> {
        Ok(Box::new(parse(spec, options, schema)?))
    }

    fn lookup(
        &self,
        spec: &ConnectorSpec,
        options: &mut Options<'_>,
        schema: SchemaRef,
    ) -> Result<Box<dyn LookupFactory>> {
        Ok(Box::new(parse(spec, options, schema)?))
    }
}

impl SourceFactory for JdbcTable {
    #[cfg(feature = "runtime")]
    fn build(self: Box<Self>, batch_rows: usize) -> Box<dyn sluice_core::Source> {
        Box::new(scan::JdbcSource::new(*self, batch_rows))
    }
}

impl SinkFactory for JdbcTable {
    #[cfg(feature = "runtime")]
    fn build(self: Box<Self>) -> Box<dyn sluice_core::Operator> {
        Box::new(sink::JdbcSink::new(*self))
    }
}

impl LookupFactory for JdbcTable {
    #[cfg(feature = "runtime")]
    fn build(
        self: Box<Self>,
        lookup_columns: &[String],
    ) -> Result<std::sync::Arc<dyn sluice_core::lookup::LookupSource>> {
        Ok(std::sync::Arc::new(lookup::JdbcLookup::new(*self, lookup_columns)?))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn table(pairs: &[(&str, &str)]) -> std::result::Result<JdbcTable, String> {
        let values: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let spec = ConnectorSpec { table: "customers".into(), connector: "jdbc".into(), ..Default::default() };
        let mut options = Options::new("table 'customers'", &values);
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let parsed = parse(&spec, &mut options, schema).map_err(|e| e.to_string())?;
        options.finish().map_err(|e| e.to_string())?;
        Ok(parsed)
    }

    #[test]
    fn flink_options_are_read_and_the_url_parsed() {
        let t = table(&[
            ("url", "jdbc:postgresql://db.local:6543/shop?sslmode=disable"),
            ("table-name", "public.customers"),
            ("username", "app"),
            ("password", "{{ secret.PG }}"),
            ("driver", "org.postgresql.Driver"),
            ("lookup.cache.max-rows", "5000"),
            ("lookup.cache.ttl", "1 h"),
            ("sink.buffer-flush.max-rows", "500"),
        ])
        .unwrap();
        let c = &t.connection;
        assert_eq!((c.host.as_str(), c.port, c.database.as_str()), ("db.local", 6543, "shop"));
        assert_eq!(c.table_name, "public.customers");
        assert_eq!(c.password.as_deref(), Some("{{ secret.PG }}"));
        assert_eq!(t.sink.max_rows, 500);
        assert_eq!(table(&[("url", "jdbc:postgresql://h/db"), ("table-name", "t")]).unwrap().connection.port, 5432);
    }

    #[test]
    fn bad_urls_and_other_databases_are_refused() {
        let err = table(&[("url", "jdbc:mysql://h:3306/db"), ("table-name", "t")]).unwrap_err();
        assert!(err.contains("the 'mysql' database is not supported"), "{err}");
        let err = table(&[("url", "postgresql://h/db"), ("table-name", "t")]).unwrap_err();
        assert!(err.contains("is not a JDBC URL"), "{err}");
        let err = table(&[("url", "jdbc:postgresql://h:5432"), ("table-name", "t")]).unwrap_err();
        assert!(err.contains("names no host or no database"), "{err}");
        let err = table(&[("url", "jdbc:postgresql://h/db")]).unwrap_err();
        assert!(err.contains("table-name"), "{err}");
    }
}

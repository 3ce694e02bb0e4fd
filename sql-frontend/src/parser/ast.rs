//! The statements of a script, as [`parse_script`](super::parse_script) returns
//! them. Every statement and most of its parts keep their [`Location`] in the script, so
//! later stages can report errors where the user wrote the offending text.

use std::collections::BTreeMap;

use arrow::datatypes::DataType;
use sqlparser::ast::{Expr, Query};
use sqlparser::tokenizer::Location;

/// One statement of a script.
// Statements are few and short-lived; boxing the large variants would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ScriptStatement {
    /// `CREATE [TEMPORARY] TABLE ...`
    CreateTable(CreateTable),
    /// `CREATE [TEMPORARY] VIEW ...`
    CreateView(CreateView),
    /// `CREATE [TEMPORARY] MODEL ...`
    CreateModel(CreateModel),
    /// `ALTER MODEL ...`
    AlterModel(AlterModel),
    /// `DROP TABLE|VIEW|MODEL ...`
    Drop(DropObject),
    /// `SHOW TABLES|VIEWS|MODELS`
    Show(ShowObjects),
    /// `SHOW CREATE TABLE|VIEW|MODEL name`
    ShowCreate(ObjectReference),
    /// `DESCRIBE [TABLE|VIEW|MODEL] name` (also `DESC`)
    Describe(ObjectReference),
    /// `SET 'key' = 'value'`
    Set(SetOption),
    /// `RESET ['key']`
    Reset(ResetOption),
    /// `INSERT INTO table [(columns)] query`
    Insert(Insert),
    /// A query on its own (`SELECT ...`, `WITH ...`, `VALUES ...`).
    Query(QueryStatement),
    /// `EXECUTE STATEMENT SET BEGIN ...; END` or `BEGIN STATEMENT SET; ...; END`.
    StatementSet(StatementSet),
    /// `EXPLAIN [PLAN FOR] statement`, of an INSERT, a query or a statement set.
    Explain(Explain),
}

impl ScriptStatement {
    /// Where the statement begins (for SET, where its key is).
    pub fn location(&self) -> Location {
        match self {
            ScriptStatement::CreateTable(s) => s.location,
            ScriptStatement::CreateView(s) => s.location,
            ScriptStatement::CreateModel(s) => s.location,
            ScriptStatement::AlterModel(s) => s.location,
            ScriptStatement::Drop(s) => s.location,
            ScriptStatement::Show(s) => s.location,
            ScriptStatement::ShowCreate(s) | ScriptStatement::Describe(s) => s.location,
            ScriptStatement::Set(s) => s.location,
            ScriptStatement::Reset(s) => s.location,
            ScriptStatement::Insert(s) => s.location,
            ScriptStatement::Query(s) => s.location,
            ScriptStatement::StatementSet(s) => s.location,
            ScriptStatement::Explain(s) => s.location,
        }
    }
}

/// The kinds of catalog objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A table.
    Table,
    /// A view.
    View,
    /// A model.
    Model,
}

impl ObjectKind {
    /// The lower-case word for messages ("table", "view", "model").
    pub fn word(self) -> &'static str {
        match self {
            ObjectKind::Table => "table",
            ObjectKind::View => "view",
            ObjectKind::Model => "model",
        }
    }

    /// The SQL keyword ("TABLE", "VIEW", "MODEL").
    pub fn keyword(self) -> &'static str {
        match self {
            ObjectKind::Table => "TABLE",
            ObjectKind::View => "VIEW",
            ObjectKind::Model => "MODEL",
        }
    }
}

/// A name as written and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// The name, unquoted, in its original spelling.
    pub value: String,
    /// Where it is.
    pub location: Location,
}

/// One `'key' = 'value'` entry of a `WITH (...)` or `SET (...)` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithOption {
    /// The option key.
    pub key: String,
    /// The option value, unquoted.
    pub value: String,
    /// Where the key is.
    pub key_location: Location,
    /// Where the value is.
    pub value_location: Location,
}

/// What a column of a table holds.
// A table has few columns; keeping the expression unboxed keeps matching on it simple.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnKind {
    /// Read from and written to the connector.
    Physical,
    /// `name AS expr`: computed from other columns when read.
    Computed {
        /// The expression.
        expr: Expr,
        /// The expression as SQL text.
        text: String,
    },
    /// `name TYPE METADATA [FROM 'key'] [VIRTUAL]`: connector metadata such as a Kafka
    /// timestamp.
    Metadata {
        /// The metadata key (`FROM 'key'`); the column name when absent.
        key: Option<String>,
        /// `VIRTUAL`: read-only, not written by sinks.
        virtual_: bool,
    },
}

/// One column of a `CREATE TABLE` or of a model's `INPUT (...)` / `OUTPUT (...)`.
#[derive(Debug, Clone)]
pub struct ColumnDef {
    /// The column name as written.
    pub name: String,
    /// Where the column name is.
    pub location: Location,
    /// The Arrow type of the declared SQL type; [`DataType::Null`] for a computed column,
    /// whose type comes from its expression when it is planned.
    pub data_type: DataType,
    /// False when declared `NOT NULL` (or part of the primary key).
    pub nullable: bool,
    /// What the column holds.
    pub kind: ColumnKind,
    /// `COMMENT '...'`.
    pub comment: Option<String>,
}

/// `WATERMARK FOR column AS expr`.
#[derive(Debug, Clone)]
pub struct WatermarkDef {
    /// The event-time column.
    pub column: Name,
    /// The watermark expression.
    pub expr: Expr,
    /// The expression as SQL text.
    pub text: String,
    /// Where `WATERMARK` is.
    pub location: Location,
}

/// `[CONSTRAINT name] PRIMARY KEY (columns) NOT ENFORCED`, or inline on a column.
#[derive(Debug, Clone)]
pub struct PrimaryKeyDef {
    /// The constraint name, if given.
    pub name: Option<String>,
    /// The key columns.
    pub columns: Vec<Name>,
    /// Where `PRIMARY` (or `CONSTRAINT`) is.
    pub location: Location,
}

/// A `CREATE [TEMPORARY] TABLE [IF NOT EXISTS]` statement.
#[derive(Debug, Clone)]
pub struct CreateTable {
    /// The table name as written.
    pub name: String,
    /// Where the table name is.
    pub location: Location,
    /// `TEMPORARY` was given.
    pub temporary: bool,
    /// `IF NOT EXISTS` was given.
    pub if_not_exists: bool,
    /// The columns, in order.
    pub columns: Vec<ColumnDef>,
    /// The watermark declaration.
    pub watermark: Option<WatermarkDef>,
    /// The primary key.
    pub primary_key: Option<PrimaryKeyDef>,
    /// `PARTITIONED BY (columns)`.
    pub partitioned_by: Vec<Name>,
    /// `COMMENT '...'`.
    pub comment: Option<String>,
    /// The `WITH (...)` options, in order.
    pub options: Vec<WithOption>,
}

/// A `CREATE [TEMPORARY] VIEW [IF NOT EXISTS] name [(columns)] AS query` statement.
#[derive(Debug, Clone)]
pub struct CreateView {
    /// The view name as written.
    pub name: String,
    /// Where the view name is.
    pub location: Location,
    /// `TEMPORARY` was given.
    pub temporary: bool,
    /// `IF NOT EXISTS` was given.
    pub if_not_exists: bool,
    /// The column names given after the view name (empty: the query's names).
    pub columns: Vec<Name>,
    /// `COMMENT '...'`.
    pub comment: Option<String>,
    /// The query, with table-function calls replaced by placeholder tables.
    pub query: Box<Query>,
    /// The table-function calls of the query.
    pub calls: TableCalls,
    /// The query as written.
    pub text: String,
}

/// A `CREATE [TEMPORARY] MODEL [IF NOT EXISTS] name INPUT (...) OUTPUT (...) WITH (...)`
/// statement.
#[derive(Debug, Clone)]
pub struct CreateModel {
    /// The model name as written.
    pub name: String,
    /// Where the model name is.
    pub location: Location,
    /// `TEMPORARY` was given.
    pub temporary: bool,
    /// `IF NOT EXISTS` was given.
    pub if_not_exists: bool,
    /// The `INPUT (...)` columns.
    pub input: Vec<ColumnDef>,
    /// The `OUTPUT (...)` columns.
    pub output: Vec<ColumnDef>,
    /// `COMMENT '...'`.
    pub comment: Option<String>,
    /// The `WITH (...)` options, in order (never empty).
    pub options: Vec<WithOption>,
    /// Where `WITH` is.
    pub with_location: Location,
}

/// What an `ALTER MODEL` does.
#[derive(Debug, Clone)]
pub enum AlterModelAction {
    /// `SET ('key' = 'value', ...)`: adds or replaces options.
    Set(Vec<WithOption>),
    /// `RENAME TO new_name`.
    RenameTo(Name),
}

/// An `ALTER MODEL [IF EXISTS] name ...` statement.
#[derive(Debug, Clone)]
pub struct AlterModel {
    /// Where `ALTER` is.
    pub location: Location,
    /// The model.
    pub name: Name,
    /// `IF EXISTS` was given.
    pub if_exists: bool,
    /// What changes.
    pub action: AlterModelAction,
}

/// A `DROP [TEMPORARY] TABLE|VIEW|MODEL [IF EXISTS] name` statement.
#[derive(Debug, Clone)]
pub struct DropObject {
    /// Where `DROP` is.
    pub location: Location,
    /// What is dropped.
    pub kind: ObjectKind,
    /// The name.
    pub name: Name,
    /// `IF EXISTS` was given.
    pub if_exists: bool,
}

/// `SHOW TABLES`, `SHOW VIEWS` or `SHOW MODELS`.
#[derive(Debug, Clone)]
pub struct ShowObjects {
    /// Where `SHOW` is.
    pub location: Location,
    /// What is listed.
    pub kind: ObjectKind,
}

/// The object of a `DESCRIBE` or `SHOW CREATE` statement.
#[derive(Debug, Clone)]
pub struct ObjectReference {
    /// Where the statement begins.
    pub location: Location,
    /// The kind written (`DESCRIBE MODEL m`), or `None` (`DESCRIBE m`: any kind).
    pub kind: Option<ObjectKind>,
    /// The name.
    pub name: Name,
}

/// A `SET 'key' = 'value'` statement.
#[derive(Debug, Clone)]
pub struct SetOption {
    /// The configuration key.
    pub key: String,
    /// The value, unquoted.
    pub value: String,
    /// Where the key is.
    pub location: Location,
    /// Where the value is.
    pub value_location: Location,
}

/// A `RESET ['key']` statement.
#[derive(Debug, Clone)]
pub struct ResetOption {
    /// Where `RESET` is.
    pub location: Location,
    /// The key to reset, or `None` for all of them.
    pub key: Option<String>,
}

/// The table-function calls of a query (`ML_PREDICT`, windows), each replaced in the
/// query by a placeholder table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableCalls {
    /// `ML_PREDICT(...)` calls.
    pub ml_predicts: Vec<MlPredictCall>,
    /// `TUMBLE(...)`, `HOP(...)` and `CUMULATE(...)` calls.
    pub windows: Vec<WindowTvfCall>,
    /// Tables read `FOR SYSTEM_TIME AS OF` (lookup joins).
    pub lookups: Vec<LookupCall>,
    /// Scalar `ML_PREDICT(MODEL m, ...)` calls and the model calls of `CROSS APPLY`s.
    pub ml_calls: Vec<MlCall>,
    /// `VECTOR_SEARCH(...)` calls.
    pub vector_searches: Vec<VectorSearchCall>,
    /// `ML_EVALUATE(...)` calls.
    pub evaluations: Vec<MlEvaluateCall>,
}

impl TableCalls {
    /// The first call, if there is one: its function's name and where it is.
    pub fn first(&self) -> Option<(&'static str, Location)> {
        let ml = self.ml_predicts.iter().map(|c| ("ML_PREDICT", c.location));
        let windows = self.windows.iter().map(|c| (c.function.name(), c.location));
        let lookups = self.lookups.iter().map(|c| ("FOR SYSTEM_TIME AS OF", c.location));
        let calls = self.ml_calls.iter().map(|c| ("ML_PREDICT", c.location));
        let searches = self.vector_searches.iter().map(|c| ("VECTOR_SEARCH", c.location));
        let evaluations = self.evaluations.iter().map(|c| ("ML_EVALUATE", c.location));
        ml.chain(windows)
            .chain(lookups)
            .chain(calls)
            .chain(searches)
            .chain(evaluations)
            .min_by_key(|(_, l)| (l.line, l.column))
    }
}

/// A model called on expressions of each row: a scalar `ML_PREDICT(MODEL m, arg, ...)`, or
/// the call behind a `CROSS APPLY` / `LATERAL` over `ML_PREDICT(VALUES (arg, ...), MODEL m,
/// DESCRIPTOR(...))`. The query calls a function named `function` with the arguments in
/// its place; the planner runs the model as its own operator.
#[derive(Debug, Clone, PartialEq)]
pub struct MlCall {
    /// The function standing for the call (`__ml_call_0`, ...).
    pub function: String,
    /// The model.
    pub model: String,
    /// Where the model name is.
    pub model_location: Location,
    /// How many arguments the call passes.
    pub arguments: usize,
    /// The call returns a ROW of the model's outputs (a CROSS APPLY reads its fields);
    /// otherwise the model's single OUTPUT column (a ROW when it has several).
    pub row: bool,
    /// The call's runtime config (`MAP[...]` of the VALUES form).
    pub config: BTreeMap<String, String>,
    /// Written `ML_EMBED(MODEL m, text)`: the model must return one `ARRAY` column.
    pub embed: bool,
    /// Where `ML_PREDICT` (or `ML_EMBED`) is.
    pub location: Location,
}

impl MlCall {
    /// The function as written: `ML_EMBED` or `ML_PREDICT`.
    pub fn written(&self) -> &'static str {
        if self.embed {
            "ML_EMBED"
        } else {
            "ML_PREDICT"
        }
    }
}

/// A `VECTOR_SEARCH(...)` call, replaced in its query by a placeholder table joined to
/// the rows that search.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSearchCall {
    /// The placeholder table name (`__vector_search_0`, ...).
    pub placeholder: String,
    /// The searched table (`TABLE items`).
    pub table: String,
    /// Where the searched table's name is.
    pub table_location: Location,
    /// The query column as written (`e.embedding`).
    pub query_column: String,
    /// Where the query column is.
    pub query_location: Location,
    /// The searched column of the table.
    pub search_column: String,
    /// Where the searched column is.
    pub search_location: Location,
    /// How many matches each row gets at most.
    pub top_k: u32,
    /// `CONFIG => MAP[...]`, keys and values as written.
    pub config: BTreeMap<String, String>,
    /// Where the config is (the call when there is none).
    pub config_location: Location,
    /// The lesson's form (`CROSS APPLY (SELECT ARRAY_AGG(item) ... FROM VECTOR_SEARCH(...))`):
    /// the aggregates over each row's matches; `None` for Flink's form (a row per match).
    pub aggregates: Option<Vec<SearchAggregate>>,
    /// Where `VECTOR_SEARCH` is.
    pub location: Location,
}

/// An `ML_EVALUATE(...)` call (FLIP-525): the model run over a bounded table, its
/// predictions compared with a label column; replaced by a placeholder table of metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct MlEvaluateCall {
    /// The placeholder table name (`__ml_evaluate_0`, ...).
    pub placeholder: String,
    /// The evaluated table or view.
    pub input: String,
    /// Where its name is.
    pub input_location: Location,
    /// The model.
    pub model: String,
    /// Where the model name is.
    pub model_location: Location,
    /// The label column and where it is named.
    pub label: (String, Location),
    /// The feature columns passed to the model, with their locations.
    pub descriptor: Vec<(String, Location)>,
    /// `classification` or `regression`; `None`: from the label's type.
    pub task: Option<String>,
    /// The call's runtime config (`MAP[...]`), passed to the model's calls.
    pub config: BTreeMap<String, String>,
    /// Where `ML_EVALUATE` is.
    pub location: Location,
}

/// One aggregate over a row's VECTOR_SEARCH matches.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchAggregate {
    /// `array_agg`, `count`, `sum`, `avg`, `min` or `max`.
    pub function: String,
    /// The column of the searched table it reads (`score` for the score); `None` for `COUNT(*)`.
    pub column: Option<String>,
    /// Its output column's name.
    pub name: String,
    /// Where it is.
    pub location: Location,
}

/// A table read `FOR SYSTEM_TIME AS OF time` (the dimension side of a lookup join),
/// replaced in its query by a placeholder table named after it.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupCall {
    /// The placeholder table name standing for the table's looked-up rows.
    pub placeholder: String,
    /// The table as written.
    pub table: String,
    /// Where the table name is.
    pub table_location: Location,
    /// The time expression after `AS OF`, as written (`e.proc_time`).
    pub time: String,
    /// Where `FOR` is.
    pub location: Location,
}

/// A windowing table function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowFunction {
    /// `TUMBLE`: windows of a size, one after another.
    Tumble,
    /// `HOP`: windows of a size starting every slide.
    Hop,
    /// `CUMULATE`: windows from one start growing by a step up to a size.
    Cumulate,
    /// `SESSION`: rows closer than a gap share a window.
    Session,
}

impl WindowFunction {
    /// The function's SQL name.
    pub fn name(self) -> &'static str {
        match self {
            WindowFunction::Tumble => "TUMBLE",
            WindowFunction::Hop => "HOP",
            WindowFunction::Cumulate => "CUMULATE",
            WindowFunction::Session => "SESSION",
        }
    }
}

/// One `TUMBLE(...)`, `HOP(...)` or `CUMULATE(...)` table-function call, replaced in its
/// query by a placeholder table. Durations are in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowTvfCall {
    /// The placeholder table name standing for the call's result (`__window_0`, ...).
    pub placeholder: String,
    /// Which function.
    pub function: WindowFunction,
    /// The input table or view (`TABLE t`).
    pub input: String,
    /// Where the input name is.
    pub input_location: Location,
    /// The time column (`DESCRIPTOR(ts)`).
    pub time_column: String,
    /// Where the time column's name is.
    pub time_location: Location,
    /// The window size (SESSION: the gap).
    pub size_ms: i64,
    /// HOP's slide or CUMULATE's step (0 for TUMBLE).
    pub step_ms: i64,
    /// The shift of window boundaries from the epoch.
    pub offset_ms: i64,
    /// Where the function's name is.
    pub location: Location,
    /// SESSION's `PARTITION BY` columns, with where each is written.
    pub partition_by: Vec<(String, Location)>,
    /// Written in the group-window syntax (`GROUP BY TUMBLE(ts, size)`), which Flink does
    /// not hold to the window table functions' rules (a HOP's size need not be a multiple
    /// of its slide).
    pub legacy: bool,
}

/// One `ML_PREDICT(...)` table-function call, replaced in its query by a placeholder table.
#[derive(Debug, Clone, PartialEq)]
pub struct MlPredictCall {
    /// The placeholder table name standing for the call's result (`__ml_predict_0`, ...).
    pub placeholder: String,
    /// The input table or view (`TABLE t`).
    pub input: String,
    /// Where the input name is.
    pub input_location: Location,
    /// The model (`MODEL m`).
    pub model: String,
    /// Where the model name is.
    pub model_location: Location,
    /// The input columns passed to the model (`DESCRIPTOR(c1, ...)`), with their locations.
    pub descriptor: Vec<(String, Location)>,
    /// The call's runtime config (`MAP['k', 'v', ...]`), keys and values as written.
    pub config: BTreeMap<String, String>,
    /// Where `ML_PREDICT` is.
    pub location: Location,
}

/// An `INSERT INTO table [(columns)] query` statement.
#[derive(Debug, Clone)]
pub struct Insert {
    /// Where the `INSERT` keyword is.
    pub location: Location,
    /// The target table name as written.
    pub target: String,
    /// Where the target table name is.
    pub target_location: Location,
    /// The target columns, if listed.
    pub columns: Vec<(String, Location)>,
    /// The query whose rows are inserted, with table-function calls replaced by placeholders.
    pub query: Box<Query>,
    /// The table-function calls of the query.
    pub calls: TableCalls,
}

/// A query on its own.
#[derive(Debug, Clone)]
pub struct QueryStatement {
    /// Where the query begins.
    pub location: Location,
    /// The query, with table-function calls replaced by placeholders.
    pub query: Box<Query>,
    /// The table-function calls of the query.
    pub calls: TableCalls,
}

/// A statement set: several INSERTs run as one job.
#[derive(Debug, Clone)]
pub struct StatementSet {
    /// Where the statement set begins.
    pub location: Location,
    /// The INSERTs, in order.
    pub inserts: Vec<Insert>,
}

/// An `EXPLAIN` statement.
#[derive(Debug, Clone)]
pub struct Explain {
    /// Where `EXPLAIN` is.
    pub location: Location,
    /// `EXPLAIN CHANGELOG_MODE`: each operator's kinds of rows are shown.
    pub changelog_mode: bool,
    /// The explained statement: an INSERT, a query or a statement set.
    pub statement: Box<ScriptStatement>,
}

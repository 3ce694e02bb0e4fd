//! Declared views.

use sqlparser::ast::Query;
use sqlparser::tokenizer::Location;

use crate::parser::{CreateView, TableCalls};

/// A declared view: a named query, planned where it is used.
#[derive(Debug, Clone)]
pub struct View {
    /// The name as declared.
    pub name: String,
    /// Where the name is in its CREATE VIEW.
    pub location: Location,
    /// Declared `TEMPORARY`.
    pub temporary: bool,
    /// The column names given after the view name (empty: the query's own names).
    pub columns: Vec<String>,
    /// `COMMENT '...'`.
    pub comment: Option<String>,
    /// The query, with table-function calls replaced by placeholder tables.
    pub query: Box<Query>,
    /// The query's table-function calls.
    pub calls: TableCalls,
    /// The query as written.
    pub text: String,
}

impl View {
    /// The view of a CREATE VIEW statement.
    pub fn from_statement(create: &CreateView) -> Self {
        View {
            name: create.name.clone(),
            location: create.location,
            temporary: create.temporary,
            columns: create.columns.iter().map(|c| c.value.clone()).collect(),
            comment: create.comment.clone(),
            query: create.query.clone(),
            calls: create.calls.clone(),
            text: create.text.clone(),
        }
    }
}

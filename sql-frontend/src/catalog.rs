//! The tables, views and models a script declares.
//!
//! Names are looked up case-insensitively and keep their original spelling. Tables and
//! views share one namespace, models have their own. A table's connector options are
//! validated when the planner uses it, for the role it is used in ([`Table::validate`]);
//! a model's options are validated when it is created ([`Model::from_statement`]), with
//! errors located at the option they name. [`render`] turns catalog objects into the text
//! of SHOW, DESCRIBE and SHOW CREATE.

mod model;
pub mod render;
mod table;
mod view;

use sluice_core::options::closest;
use sqlparser::tokenizer::Location;

use crate::error::{Result, SqlError};
pub use crate::parser::ColumnKind;
use crate::parser::{
    AlterModel, AlterModelAction, CreateModel, CreateTable, CreateView, DropObject, Name, ObjectKind, ObjectReference,
};
pub use model::Model;
pub use table::{Table, TableColumn, Watermark};
pub use view::View;

/// A table, view or model found by name.
#[derive(Debug, Clone, Copy)]
pub enum CatalogObject<'a> {
    /// A table.
    Table(&'a Table),
    /// A view.
    View(&'a View),
    /// A model.
    Model(&'a Model),
}

/// The tables, views and models of a script or session.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    tables: Vec<Table>,
    views: Vec<View>,
    models: Vec<Model>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the table of a CREATE TABLE statement. Creating an existing table or view
    /// is an error unless `IF NOT EXISTS` was given (then the statement does nothing).
    pub fn create_table(&mut self, create: &CreateTable) -> Result<()> {
        if self.relation_exists(&create.name, create.location, create.if_not_exists, ObjectKind::Table)? {
            return Ok(());
        }
        let table = Table::from_statement(create)?;
        table.validate_options(create.location)?;
        self.tables.push(table);
        Ok(())
    }

    /// Registers the view of a CREATE VIEW statement, as [`Catalog::create_table`] does.
    pub fn create_view(&mut self, create: &CreateView) -> Result<()> {
        if self.relation_exists(&create.name, create.location, create.if_not_exists, ObjectKind::View)? {
            return Ok(());
        }
        for (i, column) in create.columns.iter().enumerate() {
            if create.columns[..i].iter().any(|c| c.value.eq_ignore_ascii_case(&column.value)) {
                return Err(SqlError::new(
                    column.location,
                    format!("duplicate column '{}' in view '{}'", column.value, create.name),
                ));
            }
        }
        self.views.push(View::from_statement(create));
        Ok(())
    }

    /// Registers the model of a CREATE MODEL statement, validating its options. Creating an
    /// existing model is an error unless `IF NOT EXISTS` was given.
    pub fn create_model(&mut self, create: &CreateModel) -> Result<()> {
        if let Some(existing) = self.find_model(&create.name) {
            if create.if_not_exists {
                return Ok(());
            }
            return Err(already_exists(ObjectKind::Model, &create.name, create.location, existing.location));
        }
        self.models.push(Model::from_statement(create)?);
        Ok(())
    }

    /// Applies an ALTER MODEL statement. A missing model is an error unless `IF EXISTS`
    /// was given.
    pub fn alter_model(&mut self, alter: &AlterModel) -> Result<()> {
        let Some(index) = position(&self.models, &alter.name.value, |m| &m.name) else {
            if alter.if_exists {
                return Ok(());
            }
            return Err(self.unknown(ObjectKind::Model, &alter.name));
        };
        match &alter.action {
            AlterModelAction::Set(changes) => self.models[index].set_options(changes, &alter.name),
            AlterModelAction::RenameTo(new_name) => {
                if let Some(other) =
                    self.find_model(&new_name.value).filter(|m| !m.name.eq_ignore_ascii_case(&alter.name.value))
                {
                    return Err(already_exists(ObjectKind::Model, &new_name.value, new_name.location, other.location));
                }
                self.models[index].name = new_name.value.clone();
                Ok(())
            }
        }
    }

    /// Applies a DROP statement. A missing object is an error unless `IF EXISTS` was given.
    pub fn drop(&mut self, drop: &DropObject) -> Result<()> {
        let name = &drop.name.value;
        let removed = match drop.kind {
            ObjectKind::Table => position(&self.tables, name, |t| &t.name).map(|i| self.tables.remove(i)).is_some(),
            ObjectKind::View => position(&self.views, name, |v| &v.name).map(|i| self.views.remove(i)).is_some(),
            ObjectKind::Model => position(&self.models, name, |m| &m.name).map(|i| self.models.remove(i)).is_some(),
        };
        if removed || drop.if_exists {
            Ok(())
        } else {
            Err(self.unknown(drop.kind, &drop.name).with_hint(match drop.kind {
                ObjectKind::Table => "use DROP TABLE IF EXISTS to ignore a missing table",
                ObjectKind::View => "use DROP VIEW IF EXISTS to ignore a missing view",
                ObjectKind::Model => "use DROP MODEL IF EXISTS to ignore a missing model",
            }))
        }
    }

    /// Removes the table or view called `name`, undoing a CREATE that a later check rejected.
    pub fn remove(&mut self, name: &str) {
        if let Some(i) = position(&self.tables, name, |t| &t.name) {
            self.tables.remove(i);
        } else if let Some(i) = position(&self.views, name, |v| &v.name) {
            self.views.remove(i);
        }
    }

    /// The table called `name` (case-insensitive), if any.
    pub fn find_table(&self, name: &str) -> Option<&Table> {
        position(&self.tables, name, |t| &t.name).map(|i| &self.tables[i])
    }

    /// The view called `name` (case-insensitive), if any.
    pub fn find_view(&self, name: &str) -> Option<&View> {
        position(&self.views, name, |v| &v.name).map(|i| &self.views[i])
    }

    /// The model called `name` (case-insensitive), if any.
    pub fn find_model(&self, name: &str) -> Option<&Model> {
        position(&self.models, name, |m| &m.name).map(|i| &self.models[i])
    }

    /// The table called `name`, or an error at `location` naming the closest table.
    pub fn table(&self, name: &str, location: Location) -> Result<&Table> {
        self.find_table(name)
            .ok_or_else(|| self.unknown(ObjectKind::Table, &Name { value: name.to_string(), location }))
    }

    /// The model called `name`, or an error at `location` naming the closest model.
    pub fn model(&self, name: &str, location: Location) -> Result<&Model> {
        self.find_model(name)
            .ok_or_else(|| self.unknown(ObjectKind::Model, &Name { value: name.to_string(), location }))
    }

    /// The object a DESCRIBE or SHOW CREATE names: of the kind written, or (`DESCRIBE x`)
    /// a table, a view or a model, looked up in that order.
    pub fn object(&self, reference: &ObjectReference) -> Result<CatalogObject<'_>> {
        let name = &reference.name.value;
        let table = || self.find_table(name).map(CatalogObject::Table);
        let view = || self.find_view(name).map(CatalogObject::View);
        let model = || self.find_model(name).map(CatalogObject::Model);
        let found = match reference.kind {
            Some(ObjectKind::Table) => table(),
            Some(ObjectKind::View) => view(),
            Some(ObjectKind::Model) => model(),
            None => table().or_else(view).or_else(model),
        };
        found.ok_or_else(|| match reference.kind {
            Some(kind) => self.unknown(kind, &reference.name),
            None => {
                let mut names = self.relation_names();
                names.extend(self.model_names());
                with_suggestion(
                    SqlError::new(reference.name.location, format!("no table, view or model is called '{name}'")),
                    name,
                    &names,
                    "SHOW TABLES and SHOW MODELS list them",
                )
            }
        })
    }

    /// The declared tables, in declaration order.
    pub fn tables(&self) -> &[Table] {
        &self.tables
    }

    /// The declared views, in declaration order.
    pub fn views(&self) -> &[View] {
        &self.views
    }

    /// The declared models, in declaration order.
    pub fn models(&self) -> &[Model] {
        &self.models
    }

    /// The names of the tables and views.
    pub fn relation_names(&self) -> Vec<String> {
        self.tables.iter().map(|t| t.name.clone()).chain(self.views.iter().map(|v| v.name.clone())).collect()
    }

    /// The names of the models.
    pub fn model_names(&self) -> Vec<String> {
        self.models.iter().map(|m| m.name.clone()).collect()
    }

    /// Whether a table or view called `name` exists; an error if it does and
    /// `if_not_exists` is false.
    fn relation_exists(&self, name: &str, location: Location, if_not_exists: bool, kind: ObjectKind) -> Result<bool> {
        let existing = match (self.find_table(name), self.find_view(name)) {
            (Some(t), _) => Some((ObjectKind::Table, t.location)),
            (None, Some(v)) => Some((ObjectKind::View, v.location)),
            (None, None) => None,
        };
        match existing {
            None => Ok(false),
            Some(_) if if_not_exists => Ok(true),
            Some((existing_kind, at)) if existing_kind == kind => Err(already_exists(kind, name, location, at)),
            Some((existing_kind, at)) => {
                Err(SqlError::new(location, format!("a {} called '{name}' already exists", existing_kind.word()))
                    .with_hint(format!(
                        "it was created at line {}, column {}; tables and views share their names",
                        at.line, at.column
                    )))
            }
        }
    }

    /// "unknown model 'm'" with the closest name of that kind.
    fn unknown(&self, kind: ObjectKind, name: &Name) -> SqlError {
        let names = match kind {
            ObjectKind::Table => self.tables.iter().map(|t| t.name.clone()).collect(),
            ObjectKind::View => self.views.iter().map(|v| v.name.clone()).collect(),
            ObjectKind::Model => self.model_names(),
        };
        let error = SqlError::new(name.location, format!("unknown {} '{}'", kind.word(), name.value));
        with_suggestion(error, &name.value, &names, &format!("declare it with CREATE {} first", kind.keyword()))
    }
}

/// `error` with "did you mean ...?", the declared names, or `otherwise` when there are none.
fn with_suggestion(error: SqlError, name: &str, names: &[String], otherwise: &str) -> SqlError {
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    match closest(name, refs.iter().copied()) {
        Some(close) => error.with_hint(format!("did you mean '{close}'?")),
        None if refs.is_empty() => error.with_hint(otherwise.to_string()),
        None => error.with_hint(format!("declared names are {}", quoted(&refs))),
    }
}

fn already_exists(kind: ObjectKind, name: &str, location: Location, existing: Location) -> SqlError {
    SqlError::new(location, format!("{} '{name}' already exists", kind.word())).with_hint(format!(
        "it was created at line {}, column {}; use CREATE {} IF NOT EXISTS to keep the first one",
        existing.line,
        existing.column,
        kind.keyword()
    ))
}

/// The index of the item called `name`: an exact match first, then a case-insensitive one.
fn position<T>(items: &[T], name: &str, item_name: impl Fn(&T) -> &String) -> Option<usize> {
    items
        .iter()
        .position(|i| item_name(i) == name)
        .or_else(|| items.iter().position(|i| item_name(i).eq_ignore_ascii_case(name)))
}

/// `'a', 'b'`.
pub(crate) fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests;

//! The text of SHOW, DESCRIBE and SHOW CREATE, laid out like Flink's SQL client:
//! bordered tables with right-aligned cells and an "N rows in set" line. Credentials and
//! secret references are shown as `****` ([`mask`]).

use arrow::datatypes::{DataType, Schema};
use sluice_core::secrets::mask;

use super::{Catalog, Model, Table, View};
use crate::parser::{ColumnKind, ObjectKind};
use crate::types::sql_name;

/// `SHOW TABLES` (tables and views, as in Flink), `SHOW VIEWS` or `SHOW MODELS`: the
/// names, sorted.
pub fn show_objects(catalog: &Catalog, kind: ObjectKind) -> String {
    let (header, mut names) = match kind {
        ObjectKind::Table => ("table name", catalog.relation_names()),
        ObjectKind::View => ("view name", catalog.views().iter().map(|v| v.name.clone()).collect()),
        ObjectKind::Model => ("model name", catalog.model_names()),
    };
    names.sort_by_key(|n| n.to_lowercase());
    grid(&[header], &names.into_iter().map(|n| vec![n]).collect::<Vec<_>>())
}

/// `DESCRIBE TABLE t`: one row per column with its type, nullability, key, extras
/// (computed expression, metadata) and watermark.
pub fn describe_table(table: &Table) -> String {
    let key =
        if table.primary_key.is_empty() { String::new() } else { format!("PRI({})", table.primary_key.join(", ")) };
    let rows: Vec<Vec<String>> = table
        .columns
        .iter()
        .map(|c| {
            let watermark = table.watermark.as_ref().filter(|w| w.column == c.name);
            let mut data_type = match (&c.kind, &c.data_type) {
                (ColumnKind::Computed { .. }, DataType::Null) => "(computed)".to_string(),
                (_, t) => sql_name(t),
            };
            if watermark.is_some() {
                data_type.push_str(" *ROWTIME*");
            }
            let extras = match &c.kind {
                ColumnKind::Physical => String::new(),
                ColumnKind::Computed { text, .. } => format!("AS {text}"),
                ColumnKind::Metadata { key, virtual_ } => metadata(key.as_deref(), *virtual_),
            };
            vec![
                c.name.clone(),
                data_type,
                bool_cell(c.nullable),
                if table.primary_key.contains(&c.name) { key.clone() } else { String::new() },
                extras,
                watermark.map_or_else(String::new, |w| w.text.clone()),
            ]
        })
        .collect();
    grid(&["name", "type", "null", "key", "extras", "watermark"], &rows)
}

/// The columns of a schema (a view's, once planned): name, type and nullability.
pub fn describe_columns(schema: &Schema) -> String {
    let rows: Vec<Vec<String>> = schema
        .fields()
        .iter()
        .map(|f| vec![f.name().clone(), sql_name(f.data_type()), bool_cell(f.is_nullable())])
        .collect();
    grid(&["name", "type", "null"], &rows)
}

/// `DESCRIBE MODEL m`: its input and output columns, then its provider and options.
pub fn describe_model(model: &Model) -> String {
    let columns = [(&model.input, true), (&model.output, false)].into_iter().flat_map(|(schema, is_input)| {
        schema.fields().iter().map(move |f| {
            vec![f.name().clone(), sql_name(f.data_type()), bool_cell(f.is_nullable()), bool_cell(is_input)]
        })
    });
    let mut out = grid(&["name", "type", "null", "is input"], &columns.collect::<Vec<_>>());
    let options = std::iter::once(vec!["provider".to_string(), model.provider.clone()])
        .chain(model.options.iter().map(|(k, v)| vec![k.clone(), mask(k, v)]));
    out.push_str(&grid(&["option", "value"], &options.collect::<Vec<_>>()));
    out
}

/// `SHOW CREATE TABLE t`: a CREATE TABLE statement that re-creates the table.
pub fn show_create_table(table: &Table) -> String {
    let mut elements: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            let mut line = format!("  {}", identifier(&c.name));
            match &c.kind {
                ColumnKind::Computed { text, .. } => line.push_str(&format!(" AS {text}")),
                kind => {
                    line.push_str(&format!(" {}", sql_name(&c.data_type)));
                    if !c.nullable {
                        line.push_str(" NOT NULL");
                    }
                    if let ColumnKind::Metadata { key, virtual_ } = kind {
                        line.push_str(&format!(" {}", metadata(key.as_deref(), *virtual_)));
                    }
                }
            }
            if let Some(comment) = &c.comment {
                line.push_str(&format!(" COMMENT {}", string(comment)));
            }
            line
        })
        .collect();
    if let Some(w) = &table.watermark {
        elements.push(format!("  WATERMARK FOR {} AS {}", identifier(&w.column), w.text));
    }
    if !table.primary_key.is_empty() {
        let name =
            table.primary_key_name.as_ref().map_or_else(String::new, |n| format!("CONSTRAINT {} ", identifier(n)));
        elements.push(format!("  {name}PRIMARY KEY ({}) NOT ENFORCED", identifiers(&table.primary_key)));
    }
    let mut out = format!(
        "CREATE {}TABLE {} (\n{}\n)",
        temporary(table.temporary),
        identifier(&table.name),
        elements.join(",\n")
    );
    if let Some(comment) = &table.comment {
        out.push_str(&format!(" COMMENT {}", string(comment)));
    }
    if !table.partitioned_by.is_empty() {
        out.push_str(&format!("\nPARTITIONED BY ({})", identifiers(&table.partitioned_by)));
    }
    let options: Vec<(&String, &String)> = table.options.iter().collect();
    out.push_str(&with_clause(&options));
    out
}

/// `SHOW CREATE VIEW v`: a CREATE VIEW statement that re-creates the view.
pub fn show_create_view(view: &View) -> String {
    let mut out = format!("CREATE {}VIEW {}", temporary(view.temporary), identifier(&view.name));
    if !view.columns.is_empty() {
        out.push_str(&format!(" ({})", identifiers(&view.columns)));
    }
    if let Some(comment) = &view.comment {
        out.push_str(&format!("\nCOMMENT {}", string(comment)));
    }
    out.push_str(&format!("\nAS {}\n", view.text));
    out
}

/// `SHOW CREATE MODEL m`: a CREATE MODEL statement that re-creates the model, with its
/// options under their canonical keys and credentials masked.
pub fn show_create_model(model: &Model) -> String {
    let columns = |schema: &Schema, comments: &[Option<String>]| {
        let columns: Vec<String> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut column = format!("{} {}", identifier(f.name()), sql_name(f.data_type()));
                if !f.is_nullable() {
                    column.push_str(" NOT NULL");
                }
                if let Some(Some(comment)) = comments.get(i) {
                    column.push_str(&format!(" COMMENT {}", string(comment)));
                }
                column
            })
            .collect();
        columns.join(", ")
    };
    let mut out = format!(
        "CREATE {}MODEL {}\nINPUT ({})\nOUTPUT ({})",
        temporary(model.temporary),
        identifier(&model.name),
        columns(&model.input, &model.input_comments),
        columns(&model.output, &model.output_comments)
    );
    if let Some(comment) = &model.comment {
        out.push_str(&format!("\nCOMMENT {}", string(comment)));
    }
    let provider = ("provider".to_string(), model.provider.clone());
    let options: Vec<(&String, &String)> =
        std::iter::once((&provider.0, &provider.1)).chain(model.options.iter()).collect();
    out.push_str(&with_clause(&options));
    out
}

/// `\nWITH (\n  'k' = 'v',\n  ...\n)\n`, values masked.
fn with_clause(options: &[(&String, &String)]) -> String {
    let lines: Vec<String> =
        options.iter().map(|(k, v)| format!("  {} = {}", string(k), string(&mask(k, v)))).collect();
    format!("\nWITH (\n{}\n)\n", lines.join(",\n"))
}

fn metadata(key: Option<&str>, virtual_: bool) -> String {
    let mut text = "METADATA".to_string();
    if let Some(key) = key {
        text.push_str(&format!(" FROM {}", string(key)));
    }
    if virtual_ {
        text.push_str(" VIRTUAL");
    }
    text
}

fn temporary(temporary: bool) -> &'static str {
    if temporary {
        "TEMPORARY "
    } else {
        ""
    }
}

fn bool_cell(value: bool) -> String {
    if value { "TRUE" } else { "FALSE" }.to_string()
}

/// A quoted identifier: `` `name` ``.
fn identifier(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn identifiers(names: &[String]) -> String {
    names.iter().map(|n| identifier(n)).collect::<Vec<_>>().join(", ")
}

/// A quoted string literal: `'text'`.
fn string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A bordered table with right-aligned cells, then "N rows in set" (or "Empty set").
fn grid(headers: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "Empty set\n".to_string();
    }
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| rows.iter().map(|r| r.get(i).map_or(0, |c| c.chars().count())).max().unwrap_or(0).max(h.len()))
        .collect();
    let border = format!("+{}+\n", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+"));
    let line = |cells: Vec<&str>| {
        let cells: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!(" {c:>w$} ")).collect();
        format!("|{}|\n", cells.join("|"))
    };
    let mut out = border.clone();
    out.push_str(&line(headers.to_vec()));
    out.push_str(&border);
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out.push_str(&border);
    out.push_str(&format!("{} {} in set\n", rows.len(), if rows.len() == 1 { "row" } else { "rows" }));
    out
}

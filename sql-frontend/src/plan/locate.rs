//! Where things are in a query's text. DataFusion's logical plan keeps no positions, so
//! errors found while planning or lowering it are placed with the spans sqlparser kept in
//! the query's syntax tree: the first call of a function, the first reference to a table,
//! a select item.

use std::collections::HashMap;
use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions, visit_relations, Expr, OrderBy, OrderByKind, Query, SelectItem, SetExpr, Spanned,
};
use sqlparser::tokenizer::Location;

/// Positions found in one query.
#[derive(Debug, Clone, Default)]
pub struct QueryLocations {
    /// The first call of each function, by lower-case name.
    functions: HashMap<String, Location>,
    /// The first reference to each table, view or placeholder, by lower-case last name part.
    relations: HashMap<String, Location>,
    /// The top-level select items: the column an item names (if it names one), where the
    /// item is (line 0 when unknown), and whether it is a wildcard.
    items: Vec<(Option<String>, Location, bool)>,
    /// The top-level WHERE condition.
    condition: Option<Location>,
    /// The top-level ORDER BY keys.
    order_by: Vec<Location>,
}

/// Where an error goes: `found` (its place in the query) when the error only knew the
/// start of the `statement`, else where it already pointed.
pub fn prefer(location: Location, statement: Location, found: Option<Location>) -> Location {
    match found {
        Some(found) if location == statement => found,
        _ => location,
    }
}

/// A location sqlparser knows (spans of synthesized nodes are empty: line 0).
fn known(location: Location) -> Option<Location> {
    (location.line > 0).then_some(location)
}

impl QueryLocations {
    /// The positions in `query`.
    pub fn of(query: &Query) -> Self {
        let mut found = QueryLocations::default();
        let _ = visit_expressions(query, |expr| {
            if let Expr::Function(f) = expr {
                if let Some(at) = known(f.name.span().start) {
                    found.functions.entry(f.name.to_string().to_ascii_lowercase()).or_insert(at);
                }
            }
            ControlFlow::<()>::Continue(())
        });
        let _ = visit_relations(query, |name| {
            let last = name.0.last().map(|part| part.to_string()).unwrap_or_default();
            if let Some(at) = known(name.span().start) {
                found.relations.entry(last.trim_matches('`').to_ascii_lowercase()).or_insert(at);
            }
            ControlFlow::<()>::Continue(())
        });
        if let Some(OrderBy { kind: OrderByKind::Expressions(keys), .. }) = &query.order_by {
            found.order_by = keys.iter().filter_map(|k| known(k.expr.span().start)).collect();
        }
        if let SetExpr::Select(select) = query.body.as_ref() {
            found.condition = select.selection.as_ref().and_then(|c| known(c.span().start));
            for item in &select.projection {
                let column = match item {
                    SelectItem::UnnamedExpr(Expr::Identifier(id)) => Some(id.value.clone()),
                    SelectItem::UnnamedExpr(Expr::CompoundIdentifier(ids)) => ids.last().map(|id| id.value.clone()),
                    SelectItem::ExprWithAlias { expr: Expr::Identifier(id), .. } => Some(id.value.clone()),
                    _ => None,
                };
                let wildcard = matches!(item, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..));
                found.items.push((column, item.span().start, wildcard));
            }
        }
        found
    }

    /// Where function `name` is first called.
    pub fn function(&self, name: &str) -> Option<Location> {
        self.functions.get(&name.to_ascii_lowercase()).copied()
    }

    /// Where relation `name` is first read.
    pub fn relation(&self, name: &str) -> Option<Location> {
        self.relations.get(&name.to_ascii_lowercase()).copied()
    }

    /// The select item that names `column`, or else the first wildcard (which brings it in).
    pub fn column_or_wildcard(&self, column: &str) -> Option<Location> {
        let named = self.items.iter().find(|(c, _, _)| c.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(column)));
        named.or_else(|| self.items.iter().find(|(_, _, wildcard)| *wildcard)).and_then(|(_, at, _)| known(*at))
    }

    /// Where the top-level ORDER BY's key `index` is.
    pub fn order_by(&self, index: usize) -> Option<Location> {
        self.order_by.get(index).copied()
    }

    /// Where the top-level WHERE condition is.
    pub fn condition(&self) -> Option<Location> {
        self.condition
    }

    /// Where the select item producing output column `index` is (unknown after a
    /// wildcard, which makes several columns).
    pub fn item(&self, index: usize) -> Option<Location> {
        if self.items.iter().any(|(_, _, wildcard)| *wildcard) {
            return None;
        }
        self.items.get(index).and_then(|(_, at, _)| known(*at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    fn query(sql: &str) -> Query {
        let statement = Parser::parse_sql(&GenericDialect {}, sql).unwrap().remove(0);
        let sqlparser::ast::Statement::Query(query) = statement else { panic!() };
        *query
    }

    fn at(line: u64, column: u64) -> Option<Location> {
        Some(Location { line, column })
    }

    #[test]
    fn functions_relations_and_items_are_found_where_written() {
        let q = query("SELECT a, *, STDDEV(b)\nFROM t JOIN `U` ON t.a = U.a\nWHERE UPPER(c) = 'X' AND stddev(d) > 1");
        let found = QueryLocations::of(&q);
        assert_eq!(found.function("stddev"), at(1, 14), "the first call");
        assert_eq!(found.function("upper"), at(3, 7));
        assert_eq!(found.condition(), at(3, 7));
        assert_eq!(found.function("lower"), None);
        assert_eq!(found.relation("t"), at(2, 6));
        assert_eq!(found.relation("u"), at(2, 13));
        assert_eq!(found.column_or_wildcard("a"), at(1, 8));
        assert_eq!(found.column_or_wildcard("b"), at(1, 11), "a wildcard brings in the other columns");
        assert_eq!(found.item(0), None, "positions are unknown after a wildcard");
        let plain = QueryLocations::of(&query("SELECT a,\n  b + 1 AS c FROM t"));
        assert_eq!((plain.item(0), plain.item(1), plain.item(2)), (at(1, 8), at(2, 3), None));
    }
}

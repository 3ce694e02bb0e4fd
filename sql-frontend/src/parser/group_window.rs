//! Flink's group-window syntax, `GROUP BY k, TUMBLE(ts, INTERVAL '1' HOUR)` with
//! `TUMBLE_START(...)`, `TUMBLE_END(...)` and `TUMBLE_ROWTIME(...)` in the select list (and
//! the same for `HOP(ts, slide, size)`), rewritten onto a windowing table function as Flink
//! plans it: the select's table becomes a `TUMBLE`/`HOP` placeholder (keeping the table's
//! name or alias, so qualified columns still resolve), the group window becomes
//! `window_start, window_end` (and `window_time` when `_ROWTIME` is used), and each
//! auxiliary function becomes the window column it names. The query then plans as a window
//! aggregate.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, ObjectName, Query, Select, SetExpr,
    Spanned, TableAlias, TableFactor,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Location, Token, Tokenizer};

use super::ast::{TableCalls, WindowFunction, WindowTvfCall};
use super::window_tvf::{interval, placeholder};
use crate::error::{Result, SqlError};

/// Rewrites the group windows of `query` (and of its subqueries) onto windowing calls,
/// which are added to `calls`.
pub(super) fn rewrite(query: &mut Query, calls: &mut TableCalls) -> Result<()> {
    if let Some(with) = &mut query.with {
        for cte in &mut with.cte_tables {
            rewrite(&mut cte.query, calls)?;
        }
    }
    rewrite_set(&mut query.body, calls)
}

fn rewrite_set(body: &mut SetExpr, calls: &mut TableCalls) -> Result<()> {
    match body {
        SetExpr::Select(select) => {
            for from in &mut select.from {
                if let TableFactor::Derived { subquery, .. } = &mut from.relation {
                    rewrite(subquery, calls)?;
                }
            }
            rewrite_select(select, calls)
        }
        SetExpr::Query(query) => rewrite(query, calls),
        SetExpr::SetOperation { left, right, .. } => {
            rewrite_set(left, calls)?;
            rewrite_set(right, calls)
        }
        _ => Ok(()),
    }
}

/// The upper-case name of a function call, if `expr` is one.
fn function_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Function(f) => f.name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.to_ascii_uppercase()),
        _ => None,
    }
}

/// A function call's plain arguments.
fn arguments(expr: &Expr) -> Vec<&Expr> {
    let Expr::Function(f) = expr else { return Vec::new() };
    let FunctionArguments::List(list) = &f.args else { return Vec::new() };
    list.args
        .iter()
        .filter_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect()
}

fn location(expr: &Expr) -> Location {
    let start = expr.span().start;
    Location { line: start.line, column: start.column }
}

/// The milliseconds of an interval argument.
fn interval_ms(expr: &Expr) -> Result<i64> {
    let at = location(expr);
    let tokens = Tokenizer::new(&GenericDialect {}, &expr.to_string())
        .tokenize_with_location()
        .map_err(|e| SqlError::new(at, format!("cannot read the interval: {e}")))?;
    let tokens: Vec<_> = tokens
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .map(|mut t| {
            // Errors point into the query, not into the interval's own text.
            t.span.start = at;
            t
        })
        .collect();
    let refs: Vec<_> = tokens.iter().collect();
    interval((&refs, at))
}

/// A group window's auxiliary functions and the window column each one stands for.
fn auxiliary(function: &str, name: &str) -> Option<&'static str> {
    let suffix = name.strip_prefix(function)?.strip_prefix('_')?;
    match suffix {
        "START" => Some("window_start"),
        "END" => Some("window_end"),
        "ROWTIME" => Some("window_time"),
        _ => None,
    }
}

const GROUP_WINDOWS: [&str; 3] = ["TUMBLE", "HOP", "SESSION"];

fn rewrite_select(select: &mut Select, calls: &mut TableCalls) -> Result<()> {
    let group = match &mut select.group_by {
        GroupByExpr::Expressions(exprs, _) => exprs,
        GroupByExpr::All(_) => return check_no_auxiliary(select),
    };
    let windows: Vec<usize> = (0..group.len())
        .filter(|&i| function_name(&group[i]).is_some_and(|n| GROUP_WINDOWS.contains(&n.as_str())))
        .collect();
    let Some(&index) = windows.first() else { return check_no_auxiliary(select) };
    if let Some(&second) = windows.get(1) {
        return Err(SqlError::new(location(&group[second]), "a GROUP BY can have one group window only")
            .with_hint("group by one TUMBLE, HOP or SESSION window"));
    }
    let window = group[index].clone();
    let name = function_name(&window).unwrap_or_default();
    let at = location(&window);
    let args = arguments(&window);
    let function = match name.as_str() {
        "TUMBLE" => WindowFunction::Tumble,
        "HOP" => WindowFunction::Hop,
        _ => WindowFunction::Session,
    };
    let expected = if function == WindowFunction::Hop { 3 } else { 2 };
    if args.len() != expected {
        let usage = match function {
            WindowFunction::Tumble => "TUMBLE(time_column, INTERVAL '1' HOUR)",
            WindowFunction::Session => "SESSION(time_column, INTERVAL '10' MINUTES), the gap between sessions",
            _ => "HOP(time_column, slide, size), e.g. HOP(ts, INTERVAL '5' MINUTES, INTERVAL '1' HOUR)",
        };
        return Err(SqlError::new(at, format!("{name} takes {expected} arguments, {} given", args.len()))
            .with_hint(format!("write {usage}")));
    }
    let time_column = match args[0] {
        Expr::Identifier(id) => id.value.clone(),
        Expr::CompoundIdentifier(parts) => parts.last().map(|p| p.value.clone()).unwrap_or_default(),
        other => {
            return Err(SqlError::new(location(other), format!("{name}'s first argument must be a time column"))
                .with_hint("name the table's event-time column, e.g. TUMBLE(order_time, INTERVAL '1' HOUR)"))
        }
    };
    let (size_ms, step_ms) = match function {
        WindowFunction::Hop => (interval_ms(args[2])?, interval_ms(args[1])?),
        _ => (interval_ms(args[1])?, 0),
    };
    if size_ms <= 0 || (function == WindowFunction::Hop && step_ms <= 0) {
        return Err(SqlError::new(at, format!("{name}'s intervals must be positive")));
    }
    let [from] = select.from.as_mut_slice() else {
        return Err(SqlError::new(at, format!("a {name} group window needs one table in FROM")).with_hint(format!(
            "write SELECT ... FROM table GROUP BY ..., {name}(...), or use the window table function"
        )));
    };
    let TableFactor::Table { name: table, alias, args: None, .. } = &mut from.relation else {
        return Err(SqlError::new(at, format!("a {name} group window over a subquery is not supported yet"))
            .with_hint("declare the subquery as a view, or use the window table function"));
    };
    if !from.joins.is_empty() {
        return Err(SqlError::new(at, format!("a {name} group window over a join is not supported yet")));
    }
    let input = table.to_string();
    let input_location = {
        let start = table.span().start;
        Location { line: start.line, column: start.column }
    };
    let placeholder = placeholder(calls.windows.len());
    let shown = table.0.last().and_then(|p| p.as_ident()).cloned().unwrap_or_else(|| Ident::new(&input));
    if alias.is_none() {
        *alias = Some(TableAlias { explicit: false, name: shown, columns: Vec::new(), at: None });
    }
    *table = ObjectName::from(vec![Ident::new(&placeholder)]);
    calls.windows.push(WindowTvfCall {
        placeholder,
        function,
        input,
        input_location,
        time_column,
        time_location: location(args[0]),
        size_ms,
        step_ms,
        offset_ms: 0,
        location: at,
        partition_by: Vec::new(),
        legacy: true,
    });
    // The auxiliary functions become window columns; they must repeat the window's arguments.
    let signature: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let mut rowtime = false;
    replace_auxiliary(select, &name, &signature, &mut rowtime)?;
    let group = match &mut select.group_by {
        GroupByExpr::Expressions(exprs, _) => exprs,
        GroupByExpr::All(_) => unreachable!("checked above"),
    };
    group.remove(index);
    let mut columns = vec!["window_start", "window_end"];
    if rowtime {
        columns.push("window_time");
    }
    for (offset, column) in columns.into_iter().enumerate() {
        group.insert(index + offset, Expr::Identifier(Ident::new(column)));
    }
    Ok(())
}

/// Replaces `{window}_START(...)` and the like by their window columns.
fn replace_auxiliary(select: &mut Select, window: &str, signature: &[String], rowtime: &mut bool) -> Result<()> {
    let flow = sqlparser::ast::visit_expressions_mut(select, |expr| {
        let Some(name) = function_name(expr) else { return ControlFlow::Continue(()) };
        let Some(column) = GROUP_WINDOWS.iter().find_map(|w| auxiliary(w, &name).map(|c| (w, c))) else {
            return ControlFlow::Continue(());
        };
        let (function, column) = column;
        let args: Vec<String> = arguments(expr).iter().map(|a| a.to_string()).collect();
        if *function != window || args != signature {
            return ControlFlow::Break(mismatch(expr, &name, function));
        }
        *rowtime |= column == "window_time";
        *expr = Expr::Identifier(Ident::new(column));
        ControlFlow::Continue(())
    });
    match flow {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn mismatch(expr: &Expr, name: &str, function: &str) -> SqlError {
    SqlError::new(
        location(expr),
        format!("Call to auxiliary group function '{name}' must have matching call to group function '${function}' in GROUP BY clause"),
    )
    .with_hint(format!("give {name} the same arguments as the {function}(...) of the GROUP BY"))
}

/// A select without a group window must not use its auxiliary functions.
fn check_no_auxiliary(select: &mut Select) -> Result<()> {
    let flow = sqlparser::ast::visit_expressions_mut(select, |expr| {
        let Some(name) = function_name(expr) else { return ControlFlow::Continue(()) };
        match GROUP_WINDOWS.iter().find(|w| auxiliary(w, &name).is_some()) {
            Some(function) => ControlFlow::Break(mismatch(expr, &name, function)),
            None => ControlFlow::Continue(()),
        }
    });
    match flow {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

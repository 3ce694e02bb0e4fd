//! DataFusion's view of our catalog: tables, views and ML_PREDICT placeholders as table
//! sources, and DataFusion's built-in functions.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{DataFusionError, TableReference};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::planner::{ContextProvider, ExprPlanner, TypePlanner};
use datafusion::logical_expr::{AggregateUDF, HigherOrderUDF, LogicalTableSource, ScalarUDF, TableSource, WindowUDF};
use datafusion::sql::planner::ParserOptions;

use crate::catalog::Catalog;

/// A DataFusion session holding the built-in functions, built once per process.
pub fn session() -> &'static SessionState {
    static SESSION: OnceLock<SessionState> = OnceLock::new();
    SESSION.get_or_init(|| SessionStateBuilder::new().with_default_features().build())
}

/// How SQL text is planned: identifiers are case-sensitive as in Flink, strings are `Utf8`,
/// and NULL sorts as the smallest value (ASC NULLS FIRST, DESC NULLS LAST), as in Flink.
pub fn parser_options() -> ParserOptions {
    ParserOptions {
        enable_ident_normalization: false,
        default_null_ordering: datafusion::sql::planner::NullOrdering::NullsMin,
        map_string_types_to_utf8view: false,
        collect_spans: true,
        ..ParserOptions::new()
    }
}

/// Resolves relation names for DataFusion's SQL planner: ML_PREDICT placeholders of the
/// statement being planned, then tables and views of the catalog.
pub struct CatalogProvider<'a> {
    catalog: &'a Catalog,
    placeholders: HashMap<String, SchemaRef>,
    functions: HashMap<String, Arc<ScalarUDF>>,
    resolved: RefCell<HashMap<String, SchemaRef>>,
}

impl<'a> CatalogProvider<'a> {
    /// A provider over `catalog`.
    pub fn new(catalog: &'a Catalog) -> Self {
        CatalogProvider {
            catalog,
            placeholders: HashMap::new(),
            functions: HashMap::new(),
            resolved: RefCell::new(HashMap::new()),
        }
    }

    /// Declares an ML_PREDICT placeholder table.
    pub fn add_placeholder(&mut self, name: &str, schema: SchemaRef) {
        self.placeholders.insert(name.to_string(), schema);
    }

    /// Declares a function of the statement being planned (a model call).
    pub fn add_function(&mut self, udf: Arc<ScalarUDF>) {
        self.functions.insert(udf.name().to_string(), udf);
    }

    /// The schema of a table (all columns) or view, planning it on first use.
    pub fn relation_schema(&self, name: &str) -> Result<SchemaRef, crate::error::SqlError> {
        let key = name.to_ascii_lowercase();
        if let Some(schema) = self.resolved.borrow().get(&key) {
            return Ok(schema.clone());
        }
        let schema = if let Some(table) = self.catalog.find_table(name) {
            crate::plan::tables::resolve_table(table, self)?.schema
        } else if let Some(view) = self.catalog.find_view(name) {
            crate::plan::view_schema(self.catalog, view)?
        } else {
            return Err(crate::plan::unknown_relation(self.catalog, name, None));
        };
        self.resolved.borrow_mut().insert(key, schema.clone());
        Ok(schema)
    }
}

impl ContextProvider for CatalogProvider<'_> {
    fn get_table_source(&self, name: TableReference) -> datafusion::common::Result<Arc<dyn TableSource>> {
        let table = name.table();
        let schema = match self.placeholders.get(table) {
            Some(schema) => schema.clone(),
            // Our error travels through DataFusion whole, hint and all.
            None => self.relation_schema(table).map_err(|e| DataFusionError::External(Box::new(e)))?,
        };
        Ok(Arc::new(LogicalTableSource::new(schema)))
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        session().expr_planners()
    }

    fn get_type_planner(&self) -> Option<Arc<dyn TypePlanner>> {
        None
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        if let Some(udf) = self.functions.get(name) {
            return Some(udf.clone());
        }
        // Sluice's functions first: a few (DATE_FORMAT) have Flink's meaning where
        // DataFusion's function of that name has another.
        crate::plan::functions::scalar(name).or_else(|| session().scalar_functions().get(name).cloned())
    }

    fn get_higher_order_meta(&self, name: &str) -> Option<Arc<HigherOrderUDF>> {
        session().higher_order_functions().get(name).cloned()
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        session().aggregate_functions().get(name).cloned().or_else(|| crate::plan::functions::aggregate(name))
    }

    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        session().window_functions().get(name).cloned()
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        session().config_options()
    }

    fn udf_names(&self) -> Vec<String> {
        session()
            .scalar_functions()
            .keys()
            .cloned()
            .chain([crate::plan::functions::CURRENT_WATERMARK.to_string()])
            .chain(self.functions.keys().cloned())
            .collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        session().higher_order_functions().keys().cloned().collect()
    }

    fn udaf_names(&self) -> Vec<String> {
        session().aggregate_functions().keys().cloned().chain(["listagg".to_string()]).collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        session().window_functions().keys().cloned().collect()
    }
}

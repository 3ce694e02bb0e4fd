//! Model calls inside expressions: a scalar `ML_PREDICT(MODEL m, arg, ...)` or
//! `ML_EMBED(MODEL m, text)` (a model with one ARRAY OUTPUT column) and the calls a
//! `CROSS APPLY` over `ML_PREDICT(VALUES ...)` leaves in its query (`__ml_call_N(...)`).
//! A Calc whose expressions call a model is split: a Calc computing the call's arguments
//! (cast to the model's INPUT types), the model's own ML_PREDICT operator (with its own
//! concurrency, batching and cache), then the original Calc reading the model's outputs
//! instead of the call. Several calls become several operators, one after another; a call
//! whose arguments use another call's result comes after it.
//!
//! **Lazy CASE.** A call inside a CASE branch runs only for the rows that take the branch:
//! the rows are split on the branch's condition, those that take it go through the model,
//! the others get NULL outputs without a request, and both meet again (a UNION ALL). So in
//! `CASE WHEN local_score > 0.5 THEN ML_PREDICT(MODEL llm, text) ELSE NULL END` the LLM is
//! asked only for rows scored above 0.5.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use sqlparser::tokenizer::Location;

use super::{internal, resolve_columns, Lowering, Result, Stream};
use crate::catalog::Model;
use crate::error::SqlError;
use crate::parser::MlCall;
use crate::plan::tables::ResolvedMl;

/// A model call on expressions, resolved against its model.
#[derive(Debug, Clone)]
pub struct ResolvedMlCall {
    /// The call as written.
    pub call: MlCall,
    /// The model.
    pub model: Model,
    /// The call's config, validated.
    pub config: BTreeMap<String, String>,
}

impl ResolvedMlCall {
    /// Checks `call` against `model`: one argument per model input.
    pub fn new(call: &MlCall, model: &Model) -> Result<Self> {
        let inputs = model.input.fields();
        let name = call.written();
        if call.arguments != inputs.len() {
            return Err(SqlError::new(
                call.location,
                format!(
                    "{name} passes {} argument(s) to model '{}', which takes {} input(s): ({})",
                    call.arguments,
                    model.name,
                    inputs.len(),
                    crate::plan::columns(&model.input)
                ),
            )
            .with_hint(format!("pass one value per model INPUT column, in order: {name}(MODEL m, a, b, ...)")));
        }
        let outputs = model.output.fields();
        let one_array = outputs.len() == 1
            && matches!(
                outputs[0].data_type(),
                DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
            );
        if call.embed && !one_array {
            return Err(SqlError::new(
                call.model_location,
                format!(
                    "ML_EMBED needs a model whose OUTPUT is one ARRAY column (an embedding); model '{}' has OUTPUT ({})",
                    model.name,
                    crate::plan::columns(&model.output)
                ),
            )
            .with_hint("declare the model with OUTPUT (embedding ARRAY<FLOAT>), or call it with ML_PREDICT(MODEL m, ...)"));
        }
        let config = sluice_core::models::validate_predict_config(&call.config).map_err(|e| {
            let mut error = SqlError::new(call.location, format!("{name} config: {}", e.message));
            if let Some(hint) = &e.hint {
                error = error.with_hint(hint.clone());
            }
            error
        })?;
        Ok(ResolvedMlCall { call: call.clone(), model: model.clone(), config })
    }

    /// True when the call returns a ROW of the model's outputs.
    fn returns_row(&self) -> bool {
        self.call.row || self.model.output.fields().len() > 1
    }

    /// The function DataFusion plans the query with.
    pub fn udf(&self) -> Arc<ScalarUDF> {
        let outputs = self.model.output.fields();
        let returns = if self.returns_row() {
            let fields: Vec<Field> = outputs.iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
            DataType::Struct(fields.into())
        } else {
            outputs[0].data_type().clone()
        };
        let inputs: Vec<DataType> = self.model.input.fields().iter().map(|f| f.data_type().clone()).collect();
        Arc::new(ScalarUDF::new_from_impl(ModelCall {
            name: self.call.function.clone(),
            signature: Signature::exact(inputs, Volatility::Volatile),
            returns,
        }))
    }
}

/// A model call as DataFusion sees it while planning; the lowering replaces every call by
/// the model's operator, so it is never evaluated.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ModelCall {
    name: String,
    signature: Signature,
    returns: DataType,
}

impl ScalarUDFImpl for ModelCall {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> datafusion::common::Result<ColumnarValue> {
        datafusion::common::internal_err!("the model call {} was not planned as an operator", self.name)
    }
}

/// One place a model is called, with the condition under which it must run (`None`:
/// always).
struct Site {
    function: String,
    args: Vec<Expr>,
    guard: Option<Expr>,
}

fn and(a: Option<Expr>, b: Expr) -> Option<Expr> {
    Some(match a {
        Some(a) => a.and(b),
        None => b,
    })
}

/// Every model call in `expr`, outermost first, each with its guard.
fn sites(expr: &Expr, guard: &Option<Expr>, calls: &HashMap<String, ResolvedMlCall>, out: &mut Vec<Site>) {
    match expr {
        Expr::ScalarFunction(f) if calls.contains_key(f.func.name()) => {
            out.push(Site { function: f.func.name().to_string(), args: f.args.clone(), guard: guard.clone() });
            for arg in &f.args {
                sites(arg, guard, calls, out);
            }
        }
        Expr::Case(case) => {
            if let Some(base) = &case.expr {
                sites(base, guard, calls, out);
            }
            // A branch runs when its condition is true and no earlier one was.
            let mut not_before: Option<Expr> = guard.clone();
            for (when, then) in &case.when_then_expr {
                sites(when, &not_before, calls, out);
                let condition = match &case.expr {
                    Some(base) => base.as_ref().clone().eq(when.as_ref().clone()),
                    None => when.as_ref().clone(),
                };
                sites(then, &and(not_before.clone(), Expr::IsTrue(Box::new(condition.clone()))), calls, out);
                not_before = and(not_before, Expr::IsNotTrue(Box::new(condition)));
            }
            if let Some(otherwise) = &case.else_expr {
                sites(otherwise, &not_before, calls, out);
            }
        }
        other => {
            let _ = other.apply_children(|child| {
                sites(child, guard, calls, out);
                Ok(TreeNodeRecursion::Continue)
            });
        }
    }
}

/// True when `expr` calls a model.
pub fn calls_model(expr: &Expr, calls: &HashMap<String, ResolvedMlCall>) -> bool {
    !calls.is_empty()
        && expr
            .exists(|e| Ok(matches!(e, Expr::ScalarFunction(f) if calls.contains_key(f.func.name()))))
            .unwrap_or(false)
}

impl Lowering {
    /// Runs the model calls of `exprs` as operators after `input`: returns the stream with
    /// every model's outputs appended and `exprs` reading them instead of calling.
    /// `filtered` says whether the last expression is the Calc's filter: the projections
    /// are computed only for the rows it keeps, so their calls run only for those.
    pub(super) fn expand_ml_calls(
        &mut self,
        input: &Stream,
        exprs: Vec<Expr>,
        filtered: bool,
        location: Location,
    ) -> Result<(Stream, Vec<Expr>)> {
        let mut stream = input.clone();
        let mut exprs: Vec<Expr> = exprs.into_iter().map(|e| resolve_columns(e, &input.schema)).collect();
        loop {
            let mut found = Vec::new();
            let (projections, filter) = match exprs.split_last() {
                Some((filter, projections)) if filtered => (projections, Some(filter)),
                _ => (exprs.as_slice(), None),
            };
            let kept = filter.map(|f| Expr::IsTrue(Box::new(f.clone())));
            if let Some(filter) = filter {
                sites(filter, &None, &self.ml_calls, &mut found);
            }
            for e in projections {
                sites(e, &kept, &self.ml_calls, &mut found);
            }
            if found.is_empty() {
                return Ok((stream, exprs));
            }
            // The first call whose arguments and guard call no model, with the guards of
            // all its sites (it runs where any of them needs it).
            let ready = found
                .iter()
                .find(|s| !s.args.iter().chain(&s.guard).any(|e| calls_model(e, &self.ml_calls)))
                .ok_or_else(|| internal(location, "model calls depend on each other"))?;
            let function = ready.function.clone();
            let same: Vec<&Site> = found.iter().filter(|s| s.function == function).collect();
            let guard = if same.iter().any(|s| s.guard.is_none()) {
                None
            } else {
                same.iter().filter_map(|s| s.guard.clone()).reduce(|a, b| a.or(b))
            };
            let call = self.ml_calls[&function].clone();
            let args = ready.args.clone();
            let (next, result) = self.run_model_call(&stream, &call, &args, guard, location)?;
            stream = next;
            exprs = exprs
                .into_iter()
                .map(|e| {
                    e.transform_up(|e| {
                        Ok(match e {
                            Expr::ScalarFunction(f) if f.func.name() == function => Transformed::yes(result.clone()),
                            other => Transformed::no(other),
                        })
                    })
                    .map(|t| t.data)
                    .map_err(|e| internal(location, e))
                })
                .collect::<Result<Vec<_>>>()?;
        }
    }

    /// One model call's operators: its arguments (and guard) computed, the model (for the
    /// guarded rows only), the outputs appended as `__ml<N>_<output>`. Returns the stream
    /// and the expression that stands for the call's result.
    fn run_model_call(
        &mut self,
        input: &Stream,
        call: &ResolvedMlCall,
        args: &[Expr],
        guard: Option<Expr>,
        location: Location,
    ) -> Result<(Stream, Expr)> {
        let at = call.call.location;
        self.append_only(input, "ML_PREDICT", at)?;
        let prefix = format!("__ml{}", self.ml_models.len());
        let df = DFSchema::try_from(input.schema.as_ref().clone()).map_err(|e| internal(at, e))?;
        let mut exprs: Vec<Expr> =
            input.schema.fields().iter().map(|f| Expr::Column(Column::new_unqualified(f.name()))).collect();
        let mut fields: Vec<Field> = input.schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut descriptor = Vec::new();
        for (i, (arg, target)) in args.iter().zip(call.model.input.fields()).enumerate() {
            let arg_type = arg.get_type(&df).map_err(|e| internal(at, e))?;
            let arg = if &arg_type == target.data_type() {
                arg.clone()
            } else {
                datafusion::logical_expr::cast(arg.clone(), target.data_type().clone())
            };
            let name = format!("{prefix}_arg{i}");
            descriptor.push(fields.len());
            exprs.push(arg.alias(&name));
            fields.push(Field::new(name, target.data_type().clone(), true));
        }
        let guard_name = format!("{prefix}_guard");
        if let Some(g) = &guard {
            exprs.push(g.clone().alias(&guard_name));
            fields.push(Field::new(&guard_name, DataType::Boolean, false));
        }
        let pre_schema: SchemaRef = Arc::new(Schema::new(fields.clone()));
        let pre = self.calc(input, None, &exprs, pre_schema.clone(), location)?;
        let outputs: Vec<Field> = call
            .model
            .output
            .fields()
            .iter()
            .map(|f| Field::new(format!("{prefix}_{}", f.name()), f.data_type().clone(), true))
            .collect();
        let mut out_fields = fields.clone();
        out_fields.extend(outputs.iter().cloned());
        let output_schema: SchemaRef = Arc::new(Schema::new(out_fields));
        let resolved = ResolvedMl {
            input: String::new(),
            input_location: at,
            model: call.model.name.clone(),
            provider: call.model.provider.clone(),
            options: call.model.options.clone(),
            config: call.config.clone(),
            descriptor,
            model_input: call.model.input.clone(),
            model_output: call.model.output.clone(),
            output_schema: output_schema.clone(),
        };
        self.ml_models.push(resolved.clone());
        let stream = match &guard {
            None => self.ml_predict(&pre, &resolved),
            Some(_) => {
                let column = || Expr::Column(Column::new_unqualified(&guard_name));
                let keep: Vec<Expr> =
                    pre_schema.fields().iter().map(|f| Expr::Column(Column::new_unqualified(f.name()))).collect();
                let asked = self.calc(&pre, Some(&column()), &keep, pre_schema.clone(), location)?;
                let predicted = self.ml_predict(&asked, &resolved);
                let mut skipped_exprs = keep.clone();
                for f in &outputs {
                    let null = ScalarValue::try_from(f.data_type()).map_err(|e| internal(at, e))?;
                    skipped_exprs.push(Expr::Literal(null, None).alias(f.name()));
                }
                let not_asked = Expr::Not(Box::new(column()));
                let skipped = self.calc(&pre, Some(&not_asked), &skipped_exprs, output_schema.clone(), location)?;
                self.merge(&[predicted, skipped], &format!("ml_predict {} (asked or not)", call.model.name), &[])
            }
        };
        let result = if call.returns_row() {
            let named_struct = crate::plan::provider::session()
                .scalar_functions()
                .get("named_struct")
                .cloned()
                .ok_or_else(|| internal(at, "DataFusion has no named_struct"))?;
            let mut args = Vec::new();
            for (field, out) in call.model.output.fields().iter().zip(&outputs) {
                args.push(Expr::Literal(ScalarValue::Utf8(Some(field.name().clone())), None));
                args.push(Expr::Column(Column::new_unqualified(out.name())));
            }
            Expr::ScalarFunction(datafusion::logical_expr::expr::ScalarFunction::new_udf(named_struct, args))
        } else {
            Expr::Column(Column::new_unqualified(outputs[0].name()))
        };
        Ok((stream, result))
    }
}

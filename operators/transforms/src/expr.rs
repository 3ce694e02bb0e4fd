//! SQL expressions between planner and tasks: the planner serializes DataFusion logical
//! expressions with datafusion-proto; a task decodes them and turns them into physical
//! expressions against its input schema.

use std::sync::{Arc, OnceLock};

use arrow::datatypes::SchemaRef;
use datafusion::common::DFSchema;
use datafusion::execution::context::ExecutionProps;
use datafusion::execution::context::SessionContext;
use datafusion::execution::TaskContext as DataFusionTaskContext;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use datafusion_proto::logical_plan::from_proto::parse_expr;
use datafusion_proto::logical_plan::to_proto::serialize_expr;
use datafusion_proto::logical_plan::DefaultLogicalExtensionCodec;
use datafusion_proto::protobuf::LogicalExprNode;
use prost::Message;

use sluice_core::{OperatorError, Result};

/// DataFusion's function registry (built-in scalar functions and Sluice's own), built once
/// per process.
fn registry() -> &'static Arc<DataFusionTaskContext> {
    static REGISTRY: OnceLock<Arc<DataFusionTaskContext>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let context = SessionContext::new();
        for udf in crate::functions::all() {
            context.register_udf(udf.as_ref().clone());
        }
        context.task_ctx()
    })
}

/// Serializes a logical expression.
pub fn encode_expr(expr: &Expr) -> Result<Vec<u8>> {
    let node = serialize_expr(expr, &DefaultLogicalExtensionCodec {})
        .map_err(|e| OperatorError::InvalidPlan(format!("cannot serialize expression {expr}: {e}")))?;
    Ok(node.encode_to_vec())
}

/// Decodes an expression written by [`encode_expr`] and plans it against `input`.
pub fn decode_physical(bytes: &[u8], input: &SchemaRef) -> Result<Arc<dyn PhysicalExpr>> {
    let node = LogicalExprNode::decode(bytes)
        .map_err(|e| OperatorError::InvalidPlan(format!("undecodable expression: {e}")))?;
    let expr = parse_expr(&node, registry(), &DefaultLogicalExtensionCodec {})
        .map_err(|e| OperatorError::InvalidPlan(format!("unreadable expression: {e}")))?;
    physical(&expr, input)
}

/// Plans a logical expression against `input`.
pub fn physical(expr: &Expr, input: &SchemaRef) -> Result<Arc<dyn PhysicalExpr>> {
    let schema = DFSchema::try_from(input.as_ref().clone())
        .map_err(|e| OperatorError::InvalidPlan(format!("input schema: {e}")))?;
    create_physical_expr(expr, &schema, &ExecutionProps::new(), &PhysicalPlanningContext::default())
        .map_err(|e| OperatorError::InvalidPlan(format!("cannot plan expression {expr}: {e}")))
}

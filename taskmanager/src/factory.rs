//! Builds running operators from their protobuf descriptions.

use sluice_proto::operator_spec::Kind;
use sluice_proto::{ConnectorSpec, OperatorSpec};

use sluice_connectors::{create_lookup, create_sink, create_source};
use sluice_core::schema::decode_schema;
use sluice_core::secrets::{resolve, SecretSources};
use sluice_core::{Operator, OperatorError, Result, Source};
use sluice_transforms::calc::Calc;
use sluice_transforms::join::Join;
use sluice_transforms::keyed_aggregate::KeyedAggregate;
use sluice_transforms::lookup_join::LookupJoin;
use sluice_transforms::project::Project;
use sluice_transforms::temporal_sort::TemporalSort;
use sluice_transforms::top_n::TopN;
use sluice_transforms::vector_search::VectorSearch;
use sluice_transforms::watermark::WatermarkGenerator;
use sluice_transforms::window_aggregate::WindowAggregate;
use sluice_transforms::window_tvf::WindowTvf;

/// What a task manager provides to the operators it builds.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// Rows per batch that sources emit.
    pub batch_rows: usize,
    /// Where `{{ secret.NAME }}` references in model options are resolved.
    pub secrets: SecretSources,
}

/// `spec` with `{{ secret.NAME }}` references in its options resolved (when the job
/// starts, never in the plan).
fn with_secrets(spec: &ConnectorSpec, ctx: &BuildContext) -> Result<ConnectorSpec> {
    let mut resolved = spec.clone();
    for (key, value) in resolved.options.iter_mut() {
        *value = resolve(value, &ctx.secrets)
            .map_err(|e| OperatorError::config(format!("table '{}' option '{key}'", spec.table), e.to_string()))?;
    }
    Ok(resolved)
}

/// Builds the source at the head of a source chain.
pub fn build_source(spec: &OperatorSpec, ctx: &BuildContext) -> Result<Box<dyn Source>> {
    match &spec.kind {
        Some(Kind::Source(connector)) => create_source(&with_secrets(connector, ctx)?, ctx.batch_rows),
        _ => Err(OperatorError::InvalidPlan(format!("operator '{}' is not a source", spec.name))),
    }
}

/// Builds a transform or sink.
pub fn build_operator(spec: &OperatorSpec, ctx: &BuildContext) -> Result<Box<dyn Operator>> {
    let batch_rows = ctx.batch_rows;
    match &spec.kind {
        Some(Kind::Sink(connector)) => create_sink(&with_secrets(connector, ctx)?),
        Some(Kind::LookupJoin(spec)) => {
            let table = spec
                .table
                .as_ref()
                .ok_or_else(|| OperatorError::InvalidPlan("a lookup join without a table".into()))?;
            let (source, options) = create_lookup(&with_secrets(table, ctx)?, &spec.lookup_columns)?;
            Ok(Box::new(LookupJoin::from_spec(spec, source, options)?))
        }
        Some(Kind::Project(project)) => Ok(Box::new(Project::new(
            project.columns.iter().map(|&c| c as usize).collect(),
            decode_schema(&project.output_schema)?,
        ))),
        Some(Kind::KeyedAggregate(agg)) => Ok(Box::new(KeyedAggregate::from_spec(agg, batch_rows)?)),
        Some(Kind::Calc(calc)) => Ok(Box::new(Calc::from_spec(calc)?)),
        Some(Kind::Watermark(spec)) => Ok(Box::new(WatermarkGenerator::from_spec(spec)?)),
        Some(Kind::WindowTvf(spec)) => Ok(Box::new(WindowTvf::from_spec(spec)?)),
        Some(Kind::WindowAggregate(spec)) => Ok(Box::new(WindowAggregate::from_spec(spec, batch_rows)?)),
        Some(Kind::TopN(spec)) => Ok(Box::new(TopN::from_spec(spec, batch_rows)?)),
        Some(Kind::TemporalSort(spec)) => Ok(Box::new(TemporalSort::from_spec(spec, batch_rows)?)),
        Some(Kind::Join(spec)) => Ok(Box::new(Join::from_spec(spec, batch_rows)?)),
        Some(Kind::VectorSearch(spec)) => Ok(Box::new(VectorSearch::from_spec(spec)?)),
        Some(Kind::MlEvaluate(spec)) => Ok(Box::new(sluice_ml::evaluate::MlEvaluate::from_spec(spec)?)),
        Some(Kind::MlPredict(spec)) => {
            let context = format!("model '{}'", spec.model);
            // Secrets resolve when the job starts, never in the plan.
            let mut options = std::collections::BTreeMap::new();
            for (key, value) in &spec.options {
                let resolved =
                    resolve(value, &ctx.secrets).map_err(|e| OperatorError::config(context.clone(), e.to_string()))?;
                options.insert(key.clone(), resolved);
            }
            // The ML_PREDICT call's own settings win over the model's.
            options.extend(spec.config.clone());
            sluice_ml::build_predict(spec, options)
        }
        Some(Kind::Source(_)) => {
            Err(OperatorError::InvalidPlan(format!("source '{}' in the middle of a chain", spec.name)))
        }
        None => Err(OperatorError::InvalidPlan(format!("operator '{}' has no kind", spec.name))),
    }
}

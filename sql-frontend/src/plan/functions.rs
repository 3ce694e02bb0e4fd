//! Functions Flink SQL has and DataFusion lacks, declared for planning only: Sluice's
//! operators evaluate them (DataFusion never runs them).

use std::sync::{Arc, OnceLock};

use arrow::datatypes::DataType;
use datafusion::common::{not_impl_err, Result};
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, TypeSignature, Volatility,
};

/// `LISTAGG(expr [, separator])`: the non-null strings of a group joined by the separator
/// (`,` by default), in arrival order. The aggregate operators evaluate it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Listagg {
    signature: Signature,
}

impl AggregateUDFImpl for Listagg {
    fn name(&self) -> &str {
        "listagg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        not_impl_err!("LISTAGG is evaluated by Sluice's aggregate operators")
    }
}

/// The aggregate function `name` (any case) that Sluice adds to DataFusion's, if any.
pub fn aggregate(name: &str) -> Option<Arc<AggregateUDF>> {
    static LISTAGG: OnceLock<Arc<AggregateUDF>> = OnceLock::new();
    name.eq_ignore_ascii_case("listagg").then(|| {
        LISTAGG
            .get_or_init(|| {
                let signature =
                    Signature::one_of(vec![TypeSignature::String(1), TypeSignature::String(2)], Volatility::Immutable);
                Arc::new(AggregateUDF::new_from_impl(Listagg { signature }))
            })
            .clone()
    })
}

/// The name of Flink's `CURRENT_WATERMARK(rowtime)`.
pub const CURRENT_WATERMARK: &str = "current_watermark";

/// `CURRENT_WATERMARK(ts)`: the operator's current input watermark, in `ts`'s type, NULL
/// before the first. Lowering replaces it by a column the Calc fills.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentWatermark {
    signature: Signature,
}

impl ScalarUDFImpl for CurrentWatermark {
    fn name(&self) -> &str {
        CURRENT_WATERMARK
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types.first().cloned().unwrap_or(DataType::Null))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        not_impl_err!("CURRENT_WATERMARK is evaluated by Sluice's Calc operator")
    }
}

/// The scalar function `name` (any case) that Sluice adds to DataFusion's, if any.
pub fn scalar(name: &str) -> Option<Arc<ScalarUDF>> {
    if let Some(udf) = sluice_transforms::functions::all().into_iter().find(|f| f.name().eq_ignore_ascii_case(name)) {
        return Some(udf);
    }
    static CURRENT: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    name.eq_ignore_ascii_case(CURRENT_WATERMARK).then(|| {
        CURRENT
            .get_or_init(|| {
                let signature = Signature::any(1, Volatility::Volatile);
                Arc::new(ScalarUDF::new_from_impl(CurrentWatermark { signature }))
            })
            .clone()
    })
}

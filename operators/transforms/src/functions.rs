//! SQL functions Flink has and DataFusion lacks that run in Sluice's operators; the planner
//! and the tasks' expression decoder both know them.

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

/// The zone of `PROCTIME()`'s `TIMESTAMP_LTZ(3)` values.
const UTC: &str = "UTC";

/// `PROCTIME()`: the wall-clock time a row is processed, as `TIMESTAMP_LTZ(3)`, read for
/// each batch (Flink's processing-time attribute).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Proctime {
    signature: Signature,
}

impl ScalarUDFImpl for Proctime {
    fn name(&self) -> &str {
        "proctime"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Millisecond, Some(UTC.into())))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        Ok(ColumnarValue::Scalar(ScalarValue::TimestampMillisecond(Some(now), Some(UTC.into()))))
    }
}

/// `PROCTIME()`.
pub fn proctime() -> Arc<ScalarUDF> {
    static PROCTIME: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    PROCTIME
        .get_or_init(|| {
            Arc::new(ScalarUDF::new_from_impl(Proctime { signature: Signature::nullary(Volatility::Volatile) }))
        })
        .clone()
}

/// The scalar functions of this module, by name.
pub fn all() -> Vec<Arc<ScalarUDF>> {
    vec![proctime()]
}

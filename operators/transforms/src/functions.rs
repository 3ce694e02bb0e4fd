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

/// `MOD(a, b)`: the remainder of integer division, with the sign of `a` (NULL when either
/// is NULL; an error for `b` = 0).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Mod {
    signature: Signature,
}

impl ScalarUDFImpl for Mod {
    fn name(&self) -> &str {
        "mod"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [a, b] = args.args.as_slice() else {
            return datafusion::common::exec_err!("MOD takes two arguments");
        };
        let remainder = arrow::compute::kernels::numeric::rem(&a.to_array(rows)?, &b.to_array(rows)?)?;
        Ok(ColumnarValue::Array(remainder))
    }
}

/// `MOD(a, b)`.
pub fn modulo() -> Arc<ScalarUDF> {
    static MOD: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    MOD.get_or_init(|| {
        let signature = Signature::uniform(2, vec![DataType::Int64], Volatility::Immutable);
        Arc::new(ScalarUDF::new_from_impl(Mod { signature }))
    })
    .clone()
}

/// The scalar functions of this module, by name.
pub fn all() -> Vec<Arc<ScalarUDF>> {
    vec![proctime(), modulo()]
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray, Int64Array};
    use arrow::datatypes::{Field, Int64Type};

    use super::*;

    #[test]
    fn mod_keeps_the_sign_of_the_dividend_and_passes_nulls() {
        let a = ColumnarValue::Array(Arc::new(Int64Array::from(vec![Some(7), Some(-7), None, Some(246)])));
        let b = ColumnarValue::Scalar(ScalarValue::Int64(Some(3)));
        let field = Arc::new(Field::new("a", DataType::Int64, true));
        let args = ScalarFunctionArgs {
            args: vec![a, b],
            arg_fields: vec![field.clone(), field.clone()],
            number_rows: 4,
            return_field: field,
            config_options: Arc::new(Default::default()),
        };
        let ColumnarValue::Array(out) = modulo().invoke_with_args(args).unwrap() else { panic!("an array") };
        let out = out.as_primitive::<Int64Type>();
        assert_eq!((out.value(0), out.value(1), out.is_null(2), out.value(3)), (1, -1, true, 0));
    }
}

//! SQL column types and their Arrow counterparts.

use arrow::datatypes::{DataType, TimeUnit};
use sqlparser::ast::{DataType as SqlType, ExactNumberInfo, TimezoneInfo};

/// The SQL types a column may have, as listed in errors.
pub const SUPPORTED_TYPES: &str = "STRING, VARCHAR(n), CHAR(n), BOOLEAN, TINYINT, SMALLINT, INT, INTEGER, \
     BIGINT, FLOAT, REAL, DOUBLE, DOUBLE PRECISION, DATE, TIMESTAMP, TIMESTAMP(3)";

/// The Arrow type of a SQL column type, or an error message naming the type.
pub fn arrow_type(sql: &SqlType) -> Result<DataType, String> {
    let unsupported = || format!("unsupported column type {sql}; supported types are {SUPPORTED_TYPES}");
    Ok(match sql {
        SqlType::String(_)
        | SqlType::Varchar(_)
        | SqlType::CharVarying(_)
        | SqlType::CharacterVarying(_)
        | SqlType::Char(_)
        | SqlType::Character(_) => DataType::Utf8,
        SqlType::Boolean | SqlType::Bool => DataType::Boolean,
        SqlType::TinyInt(_) => DataType::Int8,
        SqlType::SmallInt(_) => DataType::Int16,
        SqlType::Int(_) | SqlType::Integer(_) => DataType::Int32,
        SqlType::BigInt(_) => DataType::Int64,
        SqlType::Float(ExactNumberInfo::None) | SqlType::Real => DataType::Float32,
        SqlType::Double(ExactNumberInfo::None) | SqlType::DoublePrecision => DataType::Float64,
        SqlType::Date => DataType::Date32,
        SqlType::Timestamp(precision, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => match precision {
            None | Some(0..=3) => DataType::Timestamp(TimeUnit::Millisecond, None),
            Some(_) => {
                return Err(format!(
                    "column type {sql} is not supported yet: timestamps have millisecond precision; use TIMESTAMP(3)"
                ))
            }
        },
        _ => return Err(unsupported()),
    })
}

/// The SQL name of an Arrow type, for messages (`BIGINT` for Int64, ...).
pub fn sql_name(arrow: &DataType) -> String {
    match arrow {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Date32 => "DATE".into(),
        DataType::Timestamp(TimeUnit::Millisecond, None) => "TIMESTAMP(3)".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::ast::CharacterLength;

    #[test]
    fn types_map_to_arrow() {
        let varchar = SqlType::Varchar(Some(CharacterLength::IntegerLength { length: 10, unit: None }));
        assert_eq!(arrow_type(&varchar), Ok(DataType::Utf8));
        assert_eq!(arrow_type(&SqlType::BigInt(None)), Ok(DataType::Int64));
        assert_eq!(
            arrow_type(&SqlType::Timestamp(Some(3), TimezoneInfo::None)),
            Ok(DataType::Timestamp(TimeUnit::Millisecond, None))
        );
        assert!(arrow_type(&SqlType::Timestamp(Some(9), TimezoneInfo::None)).is_err_and(|e| e.contains("TIMESTAMP(3)")));
        let err = arrow_type(&SqlType::Decimal(ExactNumberInfo::PrecisionAndScale(10, 2))).unwrap_err();
        assert!(err.contains("unsupported column type DECIMAL(10,2)") && err.contains("BIGINT"), "{err}");
    }

    #[test]
    fn sql_names_round_trip_for_supported_types() {
        for (sql, name) in [(SqlType::Int(None), "INT"), (SqlType::Double(ExactNumberInfo::None), "DOUBLE"), (SqlType::Date, "DATE")] {
            assert_eq!(sql_name(&arrow_type(&sql).unwrap()), name);
        }
    }
}

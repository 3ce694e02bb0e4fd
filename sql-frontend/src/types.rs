//! SQL column types and their Arrow counterparts.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, TimeUnit};
use sqlparser::ast::{ArrayElemTypeDef, DataType as SqlType, ExactNumberInfo};

/// The SQL types a column may have, as listed in errors.
pub const SUPPORTED_TYPES: &str = "STRING, VARCHAR(n), CHAR(n), BOOLEAN, TINYINT, SMALLINT, INT, INTEGER, \
     BIGINT, FLOAT, REAL, DOUBLE, DOUBLE PRECISION, DECIMAL(p, s), DATE, TIMESTAMP(3), TIMESTAMP_LTZ(3), BYTES, \
     VARBINARY(n), ARRAY<T>, MAP<K, V>";

/// The time zone of `TIMESTAMP_LTZ` values (instants, shown in UTC).
pub const TIMESTAMP_LTZ_ZONE: &str = "UTC";

/// Flink's precision of a `DECIMAL` written without one.
const DEFAULT_DECIMAL_PRECISION: u64 = 10;

/// The Arrow type of a list of `element`s.
pub fn list_of(element: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(element, true)))
}

/// The Arrow type of a SQL column type, or an error message naming the type.
/// (`TIMESTAMP`, `TIMESTAMP_LTZ` and `MAP<K, V>` are read by the parser itself.)
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
        SqlType::Decimal(info) | SqlType::Dec(info) | SqlType::Numeric(info) => decimal(sql, info)?,
        SqlType::Date => DataType::Date32,
        SqlType::Bytes(_) | SqlType::Varbinary(_) | SqlType::Binary(_) => DataType::Binary,
        SqlType::Array(ArrayElemTypeDef::AngleBracket(element) | ArrayElemTypeDef::SquareBracket(element, None)) => {
            list_of(arrow_type(element)?)
        }
        SqlType::Time(..) => return Err(format!("column type {sql} is not supported yet")),
        _ => return Err(unsupported()),
    })
}

fn decimal(sql: &SqlType, info: &ExactNumberInfo) -> Result<DataType, String> {
    let (precision, scale) = match *info {
        ExactNumberInfo::None => (DEFAULT_DECIMAL_PRECISION, 0),
        ExactNumberInfo::Precision(p) => (p, 0),
        ExactNumberInfo::PrecisionAndScale(p, s) => (p, s),
    };
    match (u8::try_from(precision), i8::try_from(scale)) {
        (Ok(p @ 1..=38), Ok(s)) if s >= 0 && i64::from(s) <= i64::from(p) => Ok(DataType::Decimal128(p, s)),
        _ => Err(format!("column type {sql} is not valid: DECIMAL(p, s) needs 1 <= p <= 38 and 0 <= s <= p")),
    }
}

/// The SQL name of an Arrow type, for messages and DDL (`BIGINT` for Int64, ...).
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
        DataType::Decimal128(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Date32 => "DATE".into(),
        DataType::Timestamp(TimeUnit::Millisecond, None) => "TIMESTAMP(3)".into(),
        DataType::Timestamp(TimeUnit::Millisecond, Some(zone)) if zone.as_ref() == TIMESTAMP_LTZ_ZONE => {
            "TIMESTAMP_LTZ(3)".into()
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BYTES".into(),
        DataType::List(element) | DataType::LargeList(element) => format!("ARRAY<{}>", sql_name(element.data_type())),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(fields) if fields.len() == 2 => {
                format!("MAP<{}, {}>", sql_name(fields[0].data_type()), sql_name(fields[1].data_type()))
            }
            other => other.to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::ast::{CharacterLength, TimezoneInfo};

    #[test]
    fn types_map_to_arrow() {
        let varchar = SqlType::Varchar(Some(CharacterLength::IntegerLength { length: 10, unit: None }));
        assert_eq!(arrow_type(&varchar), Ok(DataType::Utf8));
        assert_eq!(arrow_type(&SqlType::BigInt(None)), Ok(DataType::Int64));
        assert_eq!(
            arrow_type(&SqlType::Decimal(ExactNumberInfo::PrecisionAndScale(10, 2))),
            Ok(DataType::Decimal128(10, 2))
        );
        assert_eq!(arrow_type(&SqlType::Decimal(ExactNumberInfo::None)), Ok(DataType::Decimal128(10, 0)));
        let err = arrow_type(&SqlType::Decimal(ExactNumberInfo::PrecisionAndScale(50, 2))).unwrap_err();
        assert!(err.contains("needs 1 <= p <= 38"), "{err}");
        assert_eq!(arrow_type(&SqlType::Bytes(None)), Ok(DataType::Binary));
        let err = arrow_type(&SqlType::Time(None, TimezoneInfo::None)).unwrap_err();
        assert_eq!(err, "column type TIME is not supported yet");
        let err = arrow_type(&SqlType::JSON).unwrap_err();
        assert!(err.contains("unsupported column type JSON") && err.contains("BIGINT"), "{err}");
    }

    #[test]
    fn sql_names_round_trip() {
        for (sql, name) in [
            (SqlType::Int(None), "INT"),
            (SqlType::Double(ExactNumberInfo::None), "DOUBLE"),
            (SqlType::Date, "DATE"),
            (SqlType::Decimal(ExactNumberInfo::PrecisionAndScale(12, 4)), "DECIMAL(12, 4)"),
            (SqlType::Array(ArrayElemTypeDef::AngleBracket(Box::new(SqlType::BigInt(None)))), "ARRAY<BIGINT>"),
        ] {
            assert_eq!(sql_name(&arrow_type(&sql).unwrap()), name);
        }
        assert_eq!(sql_name(&DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))), "TIMESTAMP_LTZ(3)");
    }
}

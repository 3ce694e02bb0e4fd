//! SQL functions Flink has and DataFusion lacks that run in Sluice's operators; the planner
//! and the tasks' expression decoder both know them.

use std::sync::{Arc, OnceLock};

use arrow::array::temporal_conversions::as_datetime;
use arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringBuilder};
use arrow::compute::kernels::temporal::{date_part, DatePart};
use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMillisecondType};
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

/// Milliseconds since the epoch, now.
fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// `CURRENT_DATE`: today's date (UTC), read for each batch.
fn current_date_value(_args: &[ColumnarValue], _rows: usize) -> Result<ColumnarValue> {
    Ok(ColumnarValue::Scalar(ScalarValue::Date32(Some(now_millis().div_euclid(86_400_000) as i32))))
}

/// `CURRENT_TIMESTAMP` and `NOW()`: the wall-clock time as `TIMESTAMP_LTZ(3)`, read for
/// each batch.
fn current_timestamp_value(_args: &[ColumnarValue], _rows: usize) -> Result<ColumnarValue> {
    Ok(ColumnarValue::Scalar(ScalarValue::TimestampMillisecond(Some(now_millis()), Some(UTC.into()))))
}

/// `CURRENT_DATE`, `CURRENT_TIMESTAMP` and `NOW()` as Flink's streaming mode evaluates them:
/// when rows are processed (DataFusion's own replace them by constants at planning, which a
/// long-running job cannot use, and cannot run them in an operator at all).
fn clock_functions() -> Vec<Arc<ScalarUDF>> {
    static CLOCK: OnceLock<Vec<Arc<ScalarUDF>>> = OnceLock::new();
    CLOCK
        .get_or_init(|| {
            let nullary = || Signature::nullary(Volatility::Volatile);
            let timestamp = DataType::Timestamp(TimeUnit::Millisecond, Some(UTC.into()));
            vec![
                function("current_date", nullary(), DataType::Date32, current_date_value),
                function("current_timestamp", nullary(), timestamp.clone(), current_timestamp_value),
                function("now", nullary(), timestamp, current_timestamp_value),
            ]
        })
        .clone()
}

/// `MOD(a, b)`: the remainder of integer division, with the sign of `a` (NULL when either
/// is NULL; an error for `b` = 0).
fn remainder(args: &[ColumnarValue], rows: usize) -> Result<ColumnarValue> {
    let [a, b] = args else {
        return datafusion::common::exec_err!("MOD takes two arguments");
    };
    let remainder = arrow::compute::kernels::numeric::rem(&a.to_array(rows)?, &b.to_array(rows)?)?;
    Ok(ColumnarValue::Array(remainder))
}

/// A function of fixed result type whose work is a plain Rust function of the arguments
/// and the number of rows.
#[derive(Debug)]
struct Function {
    name: &'static str,
    signature: Signature,
    returns: DataType,
    invoke: fn(&[ColumnarValue], usize) -> Result<ColumnarValue>,
}

// Functions are told apart by their names (comparing `fn` pointers is unreliable).
impl PartialEq for Function {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Function {}

impl std::hash::Hash for Function {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for Function {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        (self.invoke)(&args.args, args.number_rows)
    }
}

/// A [`Function`] as DataFusion's scalar function.
fn function(
    name: &'static str,
    signature: Signature,
    returns: DataType,
    invoke: fn(&[ColumnarValue], usize) -> Result<ColumnarValue>,
) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(Function { name, signature, returns, invoke }))
}

/// `MOD(a, b)`.
pub fn modulo() -> Arc<ScalarUDF> {
    static MOD: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    MOD.get_or_init(|| {
        let signature = Signature::uniform(2, vec![DataType::Int64], Volatility::Immutable);
        function("mod", signature, DataType::Int64, remainder)
    })
    .clone()
}

/// Flink's functions reading one field of a date or timestamp (`HOUR(ts)`, ...), as BIGINT.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TimeField {
    name: &'static str,
    signature: Signature,
}

/// Each time-field function's name, the field it reads and what is added to it.
const TIME_FIELDS: &[(&str, DatePart, i64)] = &[
    ("year", DatePart::Year, 0),
    ("quarter", DatePart::Quarter, 0),
    ("month", DatePart::Month, 0),
    ("week", DatePart::Week, 0),
    ("dayofyear", DatePart::DayOfYear, 0),
    ("dayofmonth", DatePart::Day, 0),
    // Flink's DAYOFWEEK counts from 1 for Sunday.
    ("dayofweek", DatePart::DayOfWeekSunday0, 1),
    ("hour", DatePart::Hour, 0),
    ("minute", DatePart::Minute, 0),
    ("second", DatePart::Second, 0),
];

impl ScalarUDFImpl for TimeField {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value] = args.args.as_slice() else {
            return datafusion::common::exec_err!("{} takes one argument", self.name.to_uppercase());
        };
        let Some(&(_, part, offset)) = TIME_FIELDS.iter().find(|(name, ..)| *name == self.name) else {
            return datafusion::common::exec_err!("unknown time field function {}", self.name);
        };
        let fields = date_part(&value.to_array(args.number_rows)?, part)?;
        let fields = arrow::compute::cast(&fields, &DataType::Int64)?;
        let fields: Int64Array = fields.as_primitive::<Int64Type>().unary(|v| v + offset);
        Ok(ColumnarValue::Array(Arc::new(fields)))
    }
}

/// `HOUR(ts)`, `MINUTE(ts)`, ... (every name of [`TIME_FIELDS`]).
fn time_fields() -> Vec<Arc<ScalarUDF>> {
    static FUNCTIONS: OnceLock<Vec<Arc<ScalarUDF>>> = OnceLock::new();
    FUNCTIONS
        .get_or_init(|| {
            TIME_FIELDS
                .iter()
                .map(|&(name, ..)| {
                    let signature = Signature::any(1, Volatility::Immutable);
                    Arc::new(ScalarUDF::new_from_impl(TimeField { name, signature }))
                })
                .collect()
        })
        .clone()
}

/// The string arguments of a call, as arrays of `rows` rows.
fn strings(args: &[ColumnarValue], rows: usize) -> Result<Vec<ArrayRef>> {
    args.iter().map(|a| Ok(arrow::compute::cast(&a.to_array(rows)?, &DataType::Utf8)?)).collect()
}

/// `REGEXP_EXTRACT(s, regex [, group])`: the text `group` (default 0: the whole match) of
/// the first match of `regex` in `s`; NULL when it does not match, when the group does not
/// exist or took no part in the match, or when the regex is not valid (as Flink's).
fn regexp_extract(args: &[ColumnarValue], rows: usize) -> Result<ColumnarValue> {
    let (texts, rest) = match args {
        [s, regex] => (strings(&[s.clone(), regex.clone()], rows)?, None),
        [s, regex, group] => (
            strings(&[s.clone(), regex.clone()], rows)?,
            Some(arrow::compute::cast(&group.to_array(rows)?, &DataType::Int64)?),
        ),
        _ => return datafusion::common::exec_err!("REGEXP_EXTRACT takes two or three arguments"),
    };
    let (values, patterns) = (texts[0].as_string::<i32>(), texts[1].as_string::<i32>());
    let groups = rest.as_ref().map(|g| g.as_primitive::<Int64Type>());
    let mut compiled: Option<(String, Option<regex::Regex>)> = None;
    let mut out = StringBuilder::with_capacity(rows, rows * 8);
    for row in 0..rows {
        let group = match groups {
            Some(g) if g.is_null(row) => None,
            Some(g) => usize::try_from(g.value(row)).ok(),
            None => Some(0),
        };
        if values.is_null(row) || patterns.is_null(row) || group.is_none() {
            out.append_null();
            continue;
        }
        let pattern = patterns.value(row);
        if compiled.as_ref().is_none_or(|(p, _)| p != pattern) {
            compiled = Some((pattern.to_string(), regex::Regex::new(pattern).ok()));
        }
        let regex = compiled.as_ref().and_then(|(_, r)| r.as_ref());
        let found = regex
            .and_then(|r| r.captures(values.value(row)))
            .and_then(|c| group.and_then(|g| c.get(g)).map(|m| m.as_str().to_string()));
        out.append_option(found);
    }
    Ok(ColumnarValue::Array(Arc::new(out.finish())))
}

/// `SPLIT_INDEX(s, separator, index)`: the `index`-th (from 0) part of `s` split at each
/// `separator`; NULL when there is no such part or an argument is NULL (as Flink's).
fn split_index(args: &[ColumnarValue], rows: usize) -> Result<ColumnarValue> {
    let [s, separator, index] = args else {
        return datafusion::common::exec_err!("SPLIT_INDEX takes three arguments");
    };
    let texts = strings(&[s.clone(), separator.clone()], rows)?;
    let (values, separators) = (texts[0].as_string::<i32>(), texts[1].as_string::<i32>());
    let indices = arrow::compute::cast(&index.to_array(rows)?, &DataType::Int64)?;
    let indices = indices.as_primitive::<Int64Type>();
    let mut out = StringBuilder::with_capacity(rows, rows * 8);
    for row in 0..rows {
        let part = (!values.is_null(row) && !separators.is_null(row) && !indices.is_null(row))
            .then(|| usize::try_from(indices.value(row)).ok())
            .flatten()
            .filter(|_| !separators.value(row).is_empty())
            .and_then(|i| values.value(row).split(separators.value(row)).nth(i));
        out.append_option(part);
    }
    Ok(ColumnarValue::Array(Arc::new(out.finish())))
}

/// Appends `c` to a chrono pattern as literal text.
fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

/// The chrono pattern of a Java date-time pattern: runs of a pattern letter become the
/// chrono field (`yyyy` → `%Y`, `MM` → `%m`, `dd` → `%d`, `HH` → `%H`, `mm` → `%M`, `ss` →
/// `%S`, `SSS` → `%3f`, ...), text in single quotes and other characters are literal.
fn chrono_pattern(java: &str) -> String {
    let chars: Vec<char> = java.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                push_literal(&mut out, chars[i]);
                i += 1;
            }
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&d| d == c).count();
        let field = match (c, run) {
            ('y' | 'u', 2) => "%y",
            ('y' | 'u', _) => "%Y",
            ('M' | 'L', 1) => "%-m",
            ('M' | 'L', 2) => "%m",
            ('M' | 'L', 3) => "%b",
            ('M' | 'L', _) => "%B",
            ('d', 1) => "%-d",
            ('d', _) => "%d",
            ('D', _) => "%j",
            ('H', 1) => "%-H",
            ('H', _) => "%H",
            ('h', 1) => "%-I",
            ('h', _) => "%I",
            ('m', 1) => "%-M",
            ('m', _) => "%M",
            ('s', 1) => "%-S",
            ('s', _) => "%S",
            ('S', 1..=3) => "%3f",
            ('S', 4..=6) => "%6f",
            ('S', _) => "%9f",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('a', _) => "%p",
            _ => {
                for _ in 0..run {
                    push_literal(&mut out, c);
                }
                i += run;
                continue;
            }
        };
        out.push_str(field);
        i += run;
    }
    out
}

/// `DATE_FORMAT(ts, pattern)`: `ts` (a timestamp, or a string read as one) written with a
/// Java date-time pattern, as Flink's (`'yyyy-MM-dd HH:mm:ss'`); NULL when an argument is.
/// DataFusion's own `date_format` (an alias of `to_char`) takes chrono's `%Y-%m-%d`
/// patterns instead, and would write a Flink pattern out literally.
fn date_format(args: &[ColumnarValue], rows: usize) -> Result<ColumnarValue> {
    let [value, pattern] = args else {
        return datafusion::common::exec_err!("DATE_FORMAT takes a timestamp and a pattern");
    };
    let mut times = value.to_array(rows)?;
    if let DataType::Timestamp(unit, Some(_)) = times.data_type() {
        // A TIMESTAMP_LTZ is written in the session's zone, UTC.
        times = arrow::compute::cast(&times, &DataType::Timestamp(*unit, None))?;
    }
    let times = arrow::compute::cast(&times, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
    let times = times.as_primitive::<TimestampMillisecondType>();
    let patterns = strings(std::slice::from_ref(pattern), rows)?;
    let patterns = patterns[0].as_string::<i32>();
    let mut translated: Option<(String, String)> = None;
    let mut out = StringBuilder::with_capacity(rows, rows * 16);
    for row in 0..rows {
        if times.is_null(row) || patterns.is_null(row) {
            out.append_null();
            continue;
        }
        let java = patterns.value(row);
        if translated.as_ref().is_none_or(|(j, _)| j != java) {
            translated = Some((java.to_string(), chrono_pattern(java)));
        }
        let chrono = translated.as_ref().map_or("", |(_, c)| c.as_str());
        out.append_option(
            as_datetime::<TimestampMillisecondType>(times.value(row)).map(|t| t.format(chrono).to_string()),
        );
    }
    Ok(ColumnarValue::Array(Arc::new(out.finish())))
}

/// `REGEXP_EXTRACT`, `SPLIT_INDEX` and `DATE_FORMAT`.
fn string_functions() -> Vec<Arc<ScalarUDF>> {
    static FUNCTIONS: OnceLock<Vec<Arc<ScalarUDF>>> = OnceLock::new();
    FUNCTIONS
        .get_or_init(|| {
            let any = |n| Signature::any(n, Volatility::Immutable);
            vec![
                function(
                    "regexp_extract",
                    Signature::variadic_any(Volatility::Immutable),
                    DataType::Utf8,
                    regexp_extract,
                ),
                function("split_index", any(3), DataType::Utf8, split_index),
                function("date_format", any(2), DataType::Utf8, date_format),
            ]
        })
        .clone()
}

/// The scalar functions of this module, by name. They take precedence over DataFusion's
/// functions of the same name, whose meaning differs from Flink's.
pub fn all() -> Vec<Arc<ScalarUDF>> {
    let mut functions = vec![proctime(), modulo()];
    functions.extend(clock_functions());
    functions.extend(time_fields());
    functions.extend(string_functions());
    functions
}

#[cfg(test)]
mod tests {
    use arrow::array::{StringArray, TimestampMillisecondArray};
    use arrow::datatypes::Field;

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

    /// CURRENT_DATE, CURRENT_TIMESTAMP and NOW() read the clock when they run.
    #[test]
    fn clock_functions_read_the_time_when_they_run() {
        let millis = || now_millis();
        for name in ["current_date", "current_timestamp", "now"] {
            let before = millis();
            let function = all().into_iter().find(|f| f.name() == name).unwrap();
            let field = Arc::new(Field::new("t", function.return_type(&[]).unwrap(), true));
            let args = ScalarFunctionArgs {
                args: vec![],
                arg_fields: vec![],
                number_rows: 1,
                return_field: field,
                config_options: Arc::new(Default::default()),
            };
            let ColumnarValue::Scalar(value) = function.invoke_with_args(args).unwrap() else { panic!("a scalar") };
            let after = millis();
            match value {
                ScalarValue::Date32(Some(day)) => {
                    assert!((before / 86_400_000..=after / 86_400_000).contains(&i64::from(day)), "{name}: {day}")
                }
                ScalarValue::TimestampMillisecond(Some(t), Some(zone)) => {
                    assert!((before..=after).contains(&t) && zone.as_ref() == UTC, "{name}: {t}")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    /// Calls the function `name` of [`all`] over `args` (arrays of `rows` rows).
    fn call(name: &str, args: Vec<ArrayRef>, rows: usize) -> ArrayRef {
        let function = all().into_iter().find(|f| f.name() == name).expect("a function of all()");
        let arg_fields = args.iter().map(|a| Arc::new(Field::new("a", a.data_type().clone(), true))).collect();
        let types: Vec<DataType> = args.iter().map(|a| a.data_type().clone()).collect();
        let returns = function.return_type(&types).unwrap();
        let args = ScalarFunctionArgs {
            args: args.into_iter().map(ColumnarValue::Array).collect(),
            arg_fields,
            number_rows: rows,
            return_field: Arc::new(Field::new("out", returns, true)),
            config_options: Arc::new(Default::default()),
        };
        match function.invoke_with_args(args).unwrap() {
            ColumnarValue::Array(out) => out,
            ColumnarValue::Scalar(_) => panic!("an array"),
        }
    }

    fn texts(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    #[test]
    fn time_fields_read_the_timestamp_in_flinks_numbering() {
        // 2026-03-01 (a Sunday) 23:45:06.789 UTC, as milliseconds since the epoch.
        let ts: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![Some(1_772_408_706_789), None]));
        let field = |name: &str| call(name, vec![ts.clone()], 2).as_primitive::<Int64Type>().value(0);
        let got: Vec<i64> =
            ["year", "quarter", "month", "dayofmonth", "dayofyear", "dayofweek", "hour", "minute", "second"]
                .iter()
                .map(|name| field(name))
                .collect();
        assert_eq!(got, vec![2026, 1, 3, 1, 60, 1, 23, 45, 6]);
        assert!(call("hour", vec![ts.clone()], 2).is_null(1));
    }

    #[test]
    fn date_format_reads_java_patterns() {
        let ts: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![Some(1_772_408_706_789), None]));
        let format = |pattern: &str| {
            let out = call("date_format", vec![ts.clone(), texts(&[Some(pattern), Some(pattern)])], 2);
            out.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect::<Vec<_>>()
        };
        assert_eq!(format("yyyy-MM-dd"), vec![Some("2026-03-01".to_string()), None]);
        assert_eq!(format("yyyy-MM-dd HH:mm:ss.SSS")[0].as_deref(), Some("2026-03-01 23:45:06.789"));
        assert_eq!(format("HH:mm")[0].as_deref(), Some("23:45"));
        assert_eq!(format("yyyyMMdd'T'H '%' ''x''")[0].as_deref(), Some("20260301T23 % 'x'"));
        assert_eq!(format("EEE, d MMM yy")[0].as_deref(), Some("Sun, 1 Mar 26"));
    }

    #[test]
    fn regexp_extract_returns_the_group_or_null() {
        let urls = texts(&[
            Some("https://x.com/a?channel_id=7&x=1"),
            Some("channel_id=42"),
            Some("https://x.com/b?x=1"),
            None,
        ]);
        let pattern = texts(&[Some("(&|^)channel_id=([^&]*)"); 4]);
        let group: ArrayRef = Arc::new(Int64Array::from(vec![2; 4]));
        let out = call("regexp_extract", vec![urls.clone(), pattern.clone(), group], 4);
        let out = out.as_string::<i32>();
        assert_eq!(out.iter().collect::<Vec<_>>(), vec![None, Some("42"), None, None]);
        // The first URL's channel_id follows '?', which the pattern does not accept.
        let whole = call("regexp_extract", vec![urls, texts(&[Some("id=[0-9]+"); 4])], 4);
        let whole = whole.as_string::<i32>();
        assert_eq!(whole.iter().collect::<Vec<_>>(), vec![Some("id=7"), Some("id=42"), None, None]);
        let invalid = call("regexp_extract", vec![texts(&[Some("abc")]), texts(&[Some("(")])], 1);
        assert!(invalid.is_null(0));
    }

    #[test]
    fn split_index_counts_parts_from_zero() {
        let urls = texts(&[Some("https://www.nexmark.com/a/b/item.htm"), Some("a//b"), None]);
        let sep = texts(&[Some("/"); 3]);
        let part = |i: i64| {
            let index: ArrayRef = Arc::new(Int64Array::from(vec![i; 3]));
            let out = call("split_index", vec![urls.clone(), sep.clone(), index], 3);
            out.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect::<Vec<_>>()
        };
        let owned = |v: &[Option<&str>]| v.iter().map(|s| s.map(str::to_string)).collect::<Vec<_>>();
        assert_eq!(part(3), owned(&[Some("a"), None, None]));
        assert_eq!(part(1), owned(&[Some(""), Some(""), None]));
        assert_eq!(part(-1), owned(&[None, None, None]));
        assert_eq!(part(9), owned(&[None, None, None]));
    }
}

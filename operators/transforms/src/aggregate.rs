//! Aggregate functions shared by the keyed and the window aggregation: COUNT(*), COUNT,
//! SUM, MIN, MAX, AVG, FIRST_VALUE, LAST_VALUE, ARRAY_AGG and LISTAGG, each optionally over
//! DISTINCT values and with a `FILTER (WHERE ...)` column. [`Aggregates`] accumulates the
//! rows of a batch into one group's [`Acc`]umulators and turns many groups' accumulators
//! into output columns; [`Accumulators`] is how a group is kept in keyed state.
//!
//! Over an updating input ([`Aggregates::retracting`]) rows are also taken out again
//! (module `retract`): sums keep their count of values, MIN, MAX and DISTINCT keep a
//! multiset of values, FIRST_VALUE and LAST_VALUE keep the list, and a last hidden
//! accumulator counts the group's rows, so a group whose rows are all retracted is deleted.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListArray, StringArray, UInt64Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, Rows, SortField};
use sluice_proto::AggregateFunction;

use sluice_core::state::{put_bytes, Reader, StateValue};
use sluice_core::{OperatorError, Result};

/// LISTAGG's separator when the query names none (Flink's default).
pub const DEFAULT_SEPARATOR: &str = ",";

/// The result type of `function` over an input of `input` type; `None` if unsupported.
pub fn output_type(function: AggregateFunction, input: Option<&DataType>) -> Option<DataType> {
    use AggregateFunction as F;
    match (function, input) {
        (F::CountStar, _) | (F::Count, Some(_)) => Some(DataType::Int64),
        (F::Sum, Some(t)) if t.is_integer() => Some(DataType::Int64),
        (F::Sum, Some(t)) if t.is_floating() => Some(DataType::Float64),
        (F::Avg, Some(t)) if t.is_integer() || t.is_floating() => Some(DataType::Float64),
        (F::Min | F::Max | F::FirstValue | F::LastValue, Some(t)) => Some(t.clone()),
        (F::ArrayAgg, Some(t)) => Some(DataType::List(Arc::new(Field::new_list_field(t.clone(), true)))),
        (F::Listagg, Some(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)) => Some(DataType::Utf8),
        _ => None,
    }
}

/// One aggregate call with its resolved input columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The aggregate function.
    pub function: AggregateFunction,
    /// Its input column; `None` for COUNT(*).
    pub column: Option<usize>,
    /// Over the distinct non-null input values only.
    pub distinct: bool,
    /// A BOOLEAN column: only rows where it is TRUE count.
    pub filter: Option<usize>,
    /// LISTAGG's separator.
    pub separator: Option<String>,
}

impl Call {
    /// A call of `function` over `column`, without DISTINCT or FILTER.
    pub fn new(function: AggregateFunction, column: Option<usize>) -> Self {
        Call { function, column, distinct: false, filter: None, separator: None }
    }

    /// The call a plan describes.
    pub fn from_proto(call: &sluice_proto::AggregateCall) -> Result<Self> {
        let function = AggregateFunction::try_from(call.function)
            .map_err(|_| OperatorError::InvalidPlan(format!("unknown aggregate function {}", call.function)))?;
        Ok(Call {
            function,
            column: call.column.map(|c| c as usize),
            distinct: call.distinct,
            filter: call.filter_column.map(|c| c as usize),
            separator: call.separator.clone(),
        })
    }
}

/// The running state of one aggregate call in one group.
#[derive(Clone, Debug, PartialEq)]
pub enum Acc {
    /// COUNT(*) and COUNT(x).
    Count(i64),
    /// SUM over integers (`None`: no non-null input yet).
    SumInt(Option<i64>),
    /// SUM over floating-point numbers.
    SumFloat(Option<f64>),
    /// AVG: the sum and count of the non-null inputs.
    Avg {
        /// Sum of the inputs.
        sum: f64,
        /// Number of inputs.
        count: i64,
    },
    /// MIN, MAX, FIRST_VALUE, LAST_VALUE: one value in Arrow's order-preserving row encoding.
    Value(Option<Vec<u8>>),
    /// ARRAY_AGG: every input in arrival order, NULLs included.
    Values(Vec<Option<Vec<u8>>>),
    /// LISTAGG: the non-null inputs joined by the separator.
    Text(Option<String>),
    /// A DISTINCT call: the set of distinct non-null inputs, aggregated when emitted.
    Distinct(BTreeSet<Vec<u8>>),
    /// Retracting SUM over integers: the sum and the number of non-null inputs.
    IntSum {
        /// Sum of the inputs.
        sum: i64,
        /// Number of inputs.
        count: i64,
    },
    /// Retracting SUM over floating-point numbers: the sum and the number of inputs.
    FloatSum {
        /// Sum of the inputs.
        sum: f64,
        /// Number of inputs.
        count: i64,
    },
    /// Retracting MIN, MAX and DISTINCT: each non-null input value (row-encoded) with how
    /// many times it is in the group.
    Multiset(BTreeMap<Vec<u8>, u64>),
}

/// The accumulators of one group, one per call, as kept in keyed state.
#[derive(Debug, Clone, PartialEq)]
pub struct Accumulators(pub Vec<Acc>);

impl StateValue for Accumulators {
    const VERSION: u8 = 1;
    fn encode(&self, out: &mut Vec<u8>) {
        for acc in &self.0 {
            acc.encode(out);
        }
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "aggregate");
        let mut accs = Vec::new();
        while !r.is_empty() {
            accs.push(Acc::decode(&mut r)?);
        }
        Ok(Accumulators(accs))
    }
}

impl Acc {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Acc::Count(n) => {
                out.push(0);
                out.extend_from_slice(&n.to_le_bytes());
            }
            Acc::SumInt(v) => {
                out.push(if v.is_some() { 1 } else { 2 });
                out.extend_from_slice(&v.unwrap_or(0).to_le_bytes());
            }
            Acc::SumFloat(v) => {
                out.push(if v.is_some() { 3 } else { 4 });
                out.extend_from_slice(&v.unwrap_or(0.0).to_le_bytes());
            }
            Acc::Avg { sum, count } => {
                out.push(5);
                out.extend_from_slice(&sum.to_le_bytes());
                out.extend_from_slice(&count.to_le_bytes());
            }
            Acc::Value(v) => {
                out.push(if v.is_some() { 6 } else { 7 });
                put_bytes(out, v.as_deref().unwrap_or_default());
            }
            Acc::Values(values) => {
                out.push(8);
                out.extend_from_slice(&(values.len() as u64).to_le_bytes());
                for v in values {
                    out.push(v.is_some() as u8);
                    put_bytes(out, v.as_deref().unwrap_or_default());
                }
            }
            Acc::Text(v) => {
                out.push(if v.is_some() { 9 } else { 10 });
                put_bytes(out, v.as_deref().unwrap_or_default().as_bytes());
            }
            Acc::Distinct(set) => {
                out.push(11);
                out.extend_from_slice(&(set.len() as u64).to_le_bytes());
                for v in set {
                    put_bytes(out, v);
                }
            }
            Acc::IntSum { sum, count } => {
                out.push(12);
                out.extend_from_slice(&sum.to_le_bytes());
                out.extend_from_slice(&count.to_le_bytes());
            }
            Acc::FloatSum { sum, count } => {
                out.push(13);
                out.extend_from_slice(&sum.to_le_bytes());
                out.extend_from_slice(&count.to_le_bytes());
            }
            Acc::Multiset(values) => {
                out.push(14);
                out.extend_from_slice(&(values.len() as u64).to_le_bytes());
                for (v, n) in values {
                    put_bytes(out, v);
                    out.extend_from_slice(&n.to_le_bytes());
                }
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Acc> {
        Ok(match r.u8()? {
            0 => Acc::Count(r.u64()? as i64),
            1 => Acc::SumInt(Some(r.u64()? as i64)),
            2 => Acc::SumInt(r.u64().map(|_| None)?),
            3 => Acc::SumFloat(Some(f64::from_bits(r.u64()?))),
            4 => Acc::SumFloat(r.u64().map(|_| None)?),
            5 => Acc::Avg { sum: f64::from_bits(r.u64()?), count: r.u64()? as i64 },
            6 => Acc::Value(Some(r.bytes()?.to_vec())),
            7 => Acc::Value(r.bytes().map(|_| None)?),
            8 => {
                let n = r.u64()?;
                let mut values = Vec::new();
                for _ in 0..n {
                    let present = r.u8()? != 0;
                    let bytes = r.bytes()?;
                    values.push(present.then(|| bytes.to_vec()));
                }
                Acc::Values(values)
            }
            9 => Acc::Text(Some(r.string()?)),
            10 => Acc::Text(r.bytes().map(|_| None)?),
            11 => {
                let n = r.u64()?;
                let mut set = BTreeSet::new();
                for _ in 0..n {
                    set.insert(r.bytes()?.to_vec());
                }
                Acc::Distinct(set)
            }
            12 => Acc::IntSum { sum: r.u64()? as i64, count: r.u64()? as i64 },
            13 => Acc::FloatSum { sum: f64::from_bits(r.u64()?), count: r.u64()? as i64 },
            14 => {
                let n = r.u64()?;
                let mut values = BTreeMap::new();
                for _ in 0..n {
                    let value = r.bytes()?.to_vec();
                    values.insert(value, r.u64()?);
                }
                Acc::Multiset(values)
            }
            tag => return Err(OperatorError::State(format!("unknown aggregate accumulator tag {tag}"))),
        })
    }
}

/// One call's input column, prepared for fast access.
enum Input {
    /// COUNT(*): no input.
    None,
    /// COUNT(x): only whether the value is null matters.
    Valid(ArrayRef),
    /// SUM over integers.
    Int(Int64Array),
    /// SUM over floating-point numbers, and AVG.
    Float(Float64Array),
    /// Values compared or kept (MIN, MAX, FIRST/LAST_VALUE, ARRAY_AGG, DISTINCT), row-encoded.
    Rows(Rows, ArrayRef),
    /// LISTAGG's strings.
    Text(StringArray),
}

/// The inputs of every call for one batch.
pub struct Inputs {
    inputs: Vec<Input>,
    filters: Vec<Option<BooleanArray>>,
}

/// The aggregate calls of one operator: how to accumulate rows and emit results.
pub struct Aggregates {
    calls: Vec<Call>,
    /// Row converters of the calls that keep values (None for the others).
    converters: Vec<Option<RowConverter>>,
    /// Result type of each call.
    output_types: Vec<DataType>,
    initial: Vec<Acc>,
    /// Rows are also retracted (an updating input): the accumulators can take rows out,
    /// and a last one counts the group's rows.
    retracting: bool,
}

fn keeps_values(call: &Call) -> bool {
    use AggregateFunction as F;
    call.distinct || matches!(call.function, F::Min | F::Max | F::FirstValue | F::LastValue | F::ArrayAgg)
}

/// The accumulator of a group that saw no row yet, for a call without DISTINCT.
fn initial_acc(function: AggregateFunction, output: &DataType) -> Acc {
    use AggregateFunction as F;
    match function {
        F::CountStar | F::Count => Acc::Count(0),
        F::Sum if output.is_floating() => Acc::SumFloat(None),
        F::Sum => Acc::SumInt(None),
        F::Avg => Acc::Avg { sum: 0.0, count: 0 },
        F::Min | F::Max | F::FirstValue | F::LastValue => Acc::Value(None),
        F::ArrayAgg => Acc::Values(Vec::new()),
        F::Listagg => Acc::Text(None),
    }
}

impl Aggregates {
    /// The calls over `input_schema`, producing `output_types` (one per call).
    pub fn new(input_schema: &Schema, calls: Vec<Call>, output_types: Vec<DataType>) -> Result<Self> {
        if calls.len() != output_types.len() {
            return Err(OperatorError::InvalidPlan(format!(
                "{} aggregate calls but {} result columns",
                calls.len(),
                output_types.len()
            )));
        }
        let field_type = |c: usize| {
            input_schema
                .fields()
                .get(c)
                .map(|f| f.data_type().clone())
                .ok_or_else(|| OperatorError::InvalidPlan(format!("aggregate column {c} is out of range")))
        };
        let mut converters = Vec::new();
        for (call, output) in calls.iter().zip(&output_types) {
            let input = call.column.map(field_type).transpose()?;
            if output_type(call.function, input.as_ref()).as_ref() != Some(output) {
                return Err(OperatorError::InvalidPlan(format!(
                    "{:?} over {input:?} does not return {output}",
                    call.function
                )));
            }
            if let Some(f) = call.filter {
                if field_type(f)? != DataType::Boolean {
                    return Err(OperatorError::InvalidPlan(format!("aggregate filter column {f} is not BOOLEAN")));
                }
            }
            converters.push(match input {
                Some(t) if keeps_values(call) => {
                    Some(RowConverter::new(vec![SortField::new(t)]).map_err(|e| OperatorError::arrow("aggregate", e))?)
                }
                _ => None,
            });
        }
        let initial = calls
            .iter()
            .zip(&output_types)
            .map(
                |(call, output)| {
                    if call.distinct {
                        Acc::Distinct(BTreeSet::new())
                    } else {
                        initial_acc(call.function, output)
                    }
                },
            )
            .collect();
        Ok(Aggregates { calls, converters, output_types, initial, retracting: false })
    }

    /// The calls a plan describes, over `input_schema`, with result types taken from
    /// `output_schema` starting at column `first_output`.
    pub fn from_proto(
        calls: &[sluice_proto::AggregateCall],
        input_schema: &Schema,
        output_schema: &Schema,
        first_output: usize,
    ) -> Result<Self> {
        let calls = calls.iter().map(Call::from_proto).collect::<Result<Vec<_>>>()?;
        let output_types = (0..calls.len())
            .map(|i| {
                output_schema.fields().get(first_output + i).map(|f| f.data_type().clone()).ok_or_else(|| {
                    OperatorError::InvalidPlan("the aggregate's output schema lacks a result column".into())
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Aggregates::new(input_schema, calls, output_types)
    }

    /// The accumulators of a new group, one per call.
    pub fn initial(&self) -> Vec<Acc> {
        self.initial.clone()
    }

    /// How many calls there are.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// True when there is no call (SELECT DISTINCT).
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Checks that stored accumulators belong to these calls.
    pub fn check(&self, accs: &[Acc]) -> Result<()> {
        if accs.len() != self.calls.len() + usize::from(self.retracting) {
            return Err(OperatorError::State(format!(
                "a group's state holds {} accumulators where the query has {}",
                accs.len(),
                self.calls.len()
            )));
        }
        Ok(())
    }

    fn prepare_column(&self, i: usize, column: Option<ArrayRef>, distinct: bool) -> Result<Input> {
        use AggregateFunction as F;
        let function = self.calls[i].function;
        let Some(c) = column else { return Ok(Input::None) };
        if distinct || keeps_values(&Call::new(function, None)) {
            let conv = self.converters[i].as_ref().ok_or_else(|| OperatorError::InvalidPlan("no converter".into()))?;
            let rows =
                conv.convert_columns(std::slice::from_ref(&c)).map_err(|e| OperatorError::arrow("aggregate", e))?;
            return Ok(Input::Rows(rows, c));
        }
        Ok(match function {
            F::Count => Input::Valid(c),
            F::Sum if !self.output_types[i].is_floating() => Input::Int(
                cast(&c, &DataType::Int64)
                    .map_err(|e| OperatorError::arrow("SUM", e))?
                    .as_primitive::<Int64Type>()
                    .clone(),
            ),
            F::Sum | F::Avg => Input::Float(
                cast(&c, &DataType::Float64)
                    .map_err(|e| OperatorError::arrow("SUM/AVG", e))?
                    .as_primitive::<Float64Type>()
                    .clone(),
            ),
            F::Listagg => Input::Text(
                cast(&c, &DataType::Utf8).map_err(|e| OperatorError::arrow("LISTAGG", e))?.as_string::<i32>().clone(),
            ),
            _ => Input::None,
        })
    }

    /// Prepares the calls' input columns of `batch`.
    pub fn prepare(&self, batch: &RecordBatch) -> Result<Inputs> {
        let mut inputs = Vec::with_capacity(self.calls.len());
        let mut filters = Vec::with_capacity(self.calls.len());
        for (i, call) in self.calls.iter().enumerate() {
            inputs.push(self.prepare_column(i, call.column.map(|c| batch.column(c).clone()), call.distinct)?);
            filters.push(call.filter.map(|f| batch.column(f).as_boolean().clone()));
        }
        Ok(Inputs { inputs, filters })
    }

    /// Adds row `row` of the prepared batch to one group's accumulators.
    pub fn accumulate(&self, accs: &mut [Acc], inputs: &Inputs, row: usize) -> Result<()> {
        if self.retracting {
            return retract::add(self, accs, inputs, row);
        }
        for (i, acc) in accs.iter_mut().enumerate() {
            if let Some(filter) = &inputs.filters[i] {
                if !(filter.is_valid(row) && filter.value(row)) {
                    continue;
                }
            }
            accumulate_one(&self.calls[i], acc, &inputs.inputs[i], row)?;
        }
        Ok(())
    }

    /// Merges the accumulators of a group's later part (`later`, e.g. a session that began
    /// later) into those of its earlier part (`earlier`), as if one group saw both parts'
    /// rows, the earlier part's first.
    pub fn merge(&self, earlier: &mut [Acc], later: &[Acc]) -> Result<()> {
        use AggregateFunction as F;
        for ((call, into), from) in self.calls.iter().zip(earlier.iter_mut()).zip(later) {
            match (into, from) {
                (Acc::Count(a), Acc::Count(b)) => *a += b,
                (Acc::SumInt(a), Acc::SumInt(Some(b))) => {
                    *a = Some(a.unwrap_or(0).checked_add(*b).ok_or_else(|| {
                        OperatorError::InvalidPlan("SUM overflowed BIGINT; cast its input to DOUBLE".into())
                    })?)
                }
                (Acc::SumFloat(a), Acc::SumFloat(Some(b))) => *a = Some(a.unwrap_or(0.0) + b),
                (Acc::Avg { sum, count }, Acc::Avg { sum: s, count: c }) => {
                    *sum += s;
                    *count += c;
                }
                (Acc::Value(a), Acc::Value(Some(b))) => {
                    let replace = match (call.function, a.as_deref()) {
                        (_, None) => true,
                        (F::Min, Some(cur)) => b.as_slice() < cur,
                        (F::Max, Some(cur)) => b.as_slice() > cur,
                        (F::LastValue, Some(_)) => true,
                        _ => false,
                    };
                    if replace {
                        *a = Some(b.clone());
                    }
                }
                (Acc::Values(a), Acc::Values(b)) => a.extend(b.iter().cloned()),
                (Acc::Text(a), Acc::Text(Some(b))) => match a {
                    Some(text) => {
                        text.push_str(call.separator.as_deref().unwrap_or(DEFAULT_SEPARATOR));
                        text.push_str(b);
                    }
                    None => *a = Some(b.clone()),
                },
                (Acc::Distinct(a), Acc::Distinct(b)) => a.extend(b.iter().cloned()),
                (_, Acc::SumInt(None) | Acc::SumFloat(None) | Acc::Value(None) | Acc::Text(None)) => {}
                (into, from) => {
                    return Err(OperatorError::State(format!("cannot merge aggregate state {from:?} into {into:?}")))
                }
            }
        }
        Ok(())
    }

    /// The aggregate of a DISTINCT call's value set, as a plain accumulator.
    fn over_distinct(&self, i: usize, set: &BTreeSet<Vec<u8>>) -> Result<Acc> {
        let mut acc = initial_acc(self.calls[i].function, &self.output_types[i]);
        if set.is_empty() {
            return Ok(acc);
        }
        let conv = self.converters[i].as_ref().ok_or_else(|| OperatorError::InvalidPlan("no converter".into()))?;
        let parser = conv.parser();
        let values = conv
            .convert_rows(set.iter().map(|v| parser.parse(v)))
            .map_err(|e| OperatorError::arrow("DISTINCT", e))?
            .remove(0);
        let input = self.prepare_column(i, Some(values), false)?;
        for row in 0..set.len() {
            accumulate_one(&self.calls[i], &mut acc, &input, row)?;
        }
        Ok(acc)
    }

    /// One output column per call, one row per group.
    pub fn columns(&self, groups: &[&[Acc]]) -> Result<Vec<ArrayRef>> {
        use AggregateFunction as F;
        let mut columns = Vec::with_capacity(self.calls.len());
        for (i, call) in self.calls.iter().enumerate() {
            let accs: Vec<Cow<'_, Acc>> = groups
                .iter()
                .map(|g| match &g[i] {
                    Acc::Distinct(set) => self.over_distinct(i, set).map(Cow::Owned),
                    Acc::Multiset(values) if call.distinct => {
                        let set: BTreeSet<Vec<u8>> = values.keys().cloned().collect();
                        self.over_distinct(i, &set).map(Cow::Owned)
                    }
                    other => Ok(retract::settled(call.function, other).map_or(Cow::Borrowed(other), Cow::Owned)),
                })
                .collect::<Result<_>>()?;
            let output = &self.output_types[i];
            let column: ArrayRef = match call.function {
                F::CountStar | F::Count => Arc::new(Int64Array::from_iter_values(accs.iter().map(|a| match **a {
                    Acc::Count(n) => n,
                    _ => 0,
                }))),
                F::Sum if output.is_floating() => Arc::new(Float64Array::from_iter(accs.iter().map(|a| match **a {
                    Acc::SumFloat(v) => v,
                    _ => None,
                }))),
                F::Sum => Arc::new(Int64Array::from_iter(accs.iter().map(|a| match **a {
                    Acc::SumInt(v) => v,
                    _ => None,
                }))),
                F::Avg => Arc::new(Float64Array::from_iter(accs.iter().map(|a| match **a {
                    Acc::Avg { sum, count } if count > 0 => Some(sum / count as f64),
                    _ => None,
                }))),
                F::Min | F::Max | F::FirstValue | F::LastValue => decode_values(
                    self.converter(i)?,
                    accs.iter().map(|a| match &**a {
                        Acc::Value(v) => v.as_deref(),
                        _ => None,
                    }),
                    output,
                )?,
                F::ArrayAgg => self.lists(i, &accs)?,
                F::Listagg => Arc::new(StringArray::from_iter(accs.iter().map(|a| match &**a {
                    Acc::Text(v) => v.clone(),
                    _ => None,
                }))),
            };
            columns.push(column);
        }
        Ok(columns)
    }

    fn converter(&self, i: usize) -> Result<&RowConverter> {
        self.converters[i].as_ref().ok_or_else(|| OperatorError::InvalidPlan("no converter".into()))
    }

    /// ARRAY_AGG's lists: NULL for a group that saw no row.
    fn lists(&self, i: usize, accs: &[Cow<'_, Acc>]) -> Result<ArrayRef> {
        let DataType::List(field) = &self.output_types[i] else {
            return Err(OperatorError::InvalidPlan("ARRAY_AGG must return a list".into()));
        };
        let empty = Vec::new();
        let lists: Vec<&Vec<Option<Vec<u8>>>> = accs
            .iter()
            .map(|a| match &**a {
                Acc::Values(v) => v,
                _ => &empty,
            })
            .collect();
        let values = decode_values(
            self.converter(i)?,
            lists.iter().flat_map(|l| l.iter().map(|v| v.as_deref())),
            field.data_type(),
        )?;
        let offsets = OffsetBuffer::from_lengths(lists.iter().map(|l| l.len()));
        let nulls = NullBuffer::from_iter(lists.iter().map(|l| !l.is_empty()));
        Ok(Arc::new(
            ListArray::try_new(field.clone(), offsets, values, Some(nulls))
                .map_err(|e| OperatorError::arrow("ARRAY_AGG", e))?,
        ))
    }
}

fn accumulate_one(call: &Call, acc: &mut Acc, input: &Input, row: usize) -> Result<()> {
    use AggregateFunction as F;
    match (acc, input) {
        (Acc::Count(n), Input::None) if call.function == F::CountStar => *n += 1,
        (Acc::Count(n), Input::Valid(c)) if c.is_valid(row) => *n += 1,
        (Acc::SumInt(s), Input::Int(c)) if c.is_valid(row) => {
            *s =
                Some(s.unwrap_or(0).checked_add(c.value(row)).ok_or_else(|| {
                    OperatorError::InvalidPlan("SUM overflowed BIGINT; cast its input to DOUBLE".into())
                })?);
        }
        (Acc::SumFloat(s), Input::Float(c)) if c.is_valid(row) => *s = Some(s.unwrap_or(0.0) + c.value(row)),
        (Acc::Avg { sum, count }, Input::Float(c)) if c.is_valid(row) => {
            *sum += c.value(row);
            *count += 1;
        }
        (Acc::Value(current), Input::Rows(rows, c)) if c.is_valid(row) => {
            let candidate = rows.row(row);
            let replace = match (call.function, current.as_deref()) {
                (_, None) => true,
                (F::Min, Some(cur)) => candidate.as_ref() < cur,
                (F::Max, Some(cur)) => candidate.as_ref() > cur,
                (F::LastValue, Some(_)) => true,
                _ => false,
            };
            if replace {
                *current = Some(candidate.as_ref().to_vec());
            }
        }
        (Acc::Values(values), Input::Rows(rows, c)) => {
            values.push(c.is_valid(row).then(|| rows.row(row).as_ref().to_vec()));
        }
        (Acc::Text(text), Input::Text(c)) if c.is_valid(row) => {
            let value = c.value(row);
            match text {
                Some(t) => {
                    t.push_str(call.separator.as_deref().unwrap_or(DEFAULT_SEPARATOR));
                    t.push_str(value);
                }
                None => *text = Some(value.to_string()),
            }
        }
        (Acc::Distinct(set), Input::Rows(rows, c)) if c.is_valid(row) => {
            set.insert(rows.row(row).as_ref().to_vec());
        }
        _ => {}
    }
    Ok(())
}

/// Decodes row-encoded values (`None` = NULL) into an array of `data_type`.
fn decode_values<'a>(
    conv: &RowConverter,
    values: impl Iterator<Item = Option<&'a [u8]>>,
    data_type: &DataType,
) -> Result<ArrayRef> {
    let values: Vec<Option<&[u8]>> = values.collect();
    let parser = conv.parser();
    let decoded = conv
        .convert_rows(values.iter().flatten().map(|v| parser.parse(v)))
        .map_err(|e| OperatorError::arrow("aggregate values", e))?
        .remove(0);
    // Scatter the decoded values back, with NULLs where there was none.
    let mut next = 0u64;
    let indices: UInt64Array = values
        .iter()
        .map(|v| {
            v.map(|_| {
                next += 1;
                next - 1
            })
        })
        .collect();
    let taken = arrow::compute::take(decoded.as_ref(), &indices, None)
        .map_err(|e| OperatorError::arrow("aggregate values", e))?;
    if taken.data_type() != data_type {
        return cast(&taken, data_type).map_err(|e| OperatorError::arrow("aggregate values", e));
    }
    Ok(taken)
}

mod retract;

#[cfg(test)]
mod tests;

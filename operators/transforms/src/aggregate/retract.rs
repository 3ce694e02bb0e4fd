//! Aggregates over an updating input: rows come in (`+I`, `+U`) and go out again (`-U`,
//! `-D`), so every accumulator can take a row out, as Flink's retractable aggregate
//! functions do.

use std::collections::BTreeMap;

use arrow::array::Array;

use super::{Acc, Aggregates, Call, Input, Inputs};
use sluice_core::{OperatorError, Result};
use sluice_proto::AggregateFunction as F;

impl Aggregates {
    /// These calls over an updating input: their accumulators can take rows out, and a last
    /// one counts the group's rows. LISTAGG cannot yet.
    pub fn retracting(mut self) -> Result<Self> {
        if let Some(call) = self.calls.iter().find(|c| c.function == F::Listagg) {
            return Err(OperatorError::InvalidPlan(format!("{:?} over updates is not supported yet", call.function)));
        }
        let mut initial: Vec<Acc> =
            self.calls.iter().zip(&self.output_types).map(|(c, t)| initial(c, t.is_floating())).collect();
        initial.push(Acc::Count(0));
        self.initial = initial;
        self.retracting = true;
        Ok(self)
    }

    /// True when rows can be taken out again.
    pub fn is_retracting(&self) -> bool {
        self.retracting
    }

    /// Takes row `row` of the prepared batch out of one group's accumulators.
    pub fn retract(&self, accs: &mut [Acc], inputs: &Inputs, row: usize) -> Result<()> {
        change(self, accs, inputs, row, -1)
    }

    /// How many rows a group holds (0 when it can be deleted); for retracting calls only.
    pub fn rows(&self, accs: &[Acc]) -> i64 {
        match accs.get(self.calls.len()) {
            Some(Acc::Count(n)) => *n,
            _ => 0,
        }
    }
}

/// The accumulator of an empty group, for a call over an updating input.
fn initial(call: &Call, floating: bool) -> Acc {
    if call.distinct {
        return Acc::Multiset(BTreeMap::new());
    }
    match call.function {
        F::CountStar | F::Count => Acc::Count(0),
        F::Sum if floating => Acc::FloatSum { sum: 0.0, count: 0 },
        F::Sum => Acc::IntSum { sum: 0, count: 0 },
        F::Avg => Acc::Avg { sum: 0.0, count: 0 },
        F::Min | F::Max => Acc::Multiset(BTreeMap::new()),
        F::FirstValue | F::LastValue | F::ArrayAgg => Acc::Values(Vec::new()),
        F::Listagg => Acc::Text(None),
    }
}

/// Adds row `row` to a group's accumulators (retracting calls).
pub(super) fn add(aggregates: &Aggregates, accs: &mut [Acc], inputs: &Inputs, row: usize) -> Result<()> {
    change(aggregates, accs, inputs, row, 1)
}

/// Adds (`sign` 1) or takes out (`sign` -1) row `row`.
fn change(aggregates: &Aggregates, accs: &mut [Acc], inputs: &Inputs, row: usize, sign: i64) -> Result<()> {
    let calls = aggregates.calls.len();
    for (i, acc) in accs.iter_mut().take(calls).enumerate() {
        if let Some(filter) = &inputs.filters[i] {
            if !(filter.is_valid(row) && filter.value(row)) {
                continue;
            }
        }
        change_one(&aggregates.calls[i], acc, &inputs.inputs[i], row, sign)?;
    }
    if let Some(Acc::Count(rows)) = accs.get_mut(calls) {
        *rows += sign;
    }
    Ok(())
}

fn change_one(call: &Call, acc: &mut Acc, input: &Input, row: usize, sign: i64) -> Result<()> {
    match (acc, input) {
        (Acc::Count(n), Input::None) if call.function == F::CountStar => *n += sign,
        (Acc::Count(n), Input::Valid(c)) if c.is_valid(row) => *n += sign,
        (Acc::IntSum { sum, count }, Input::Int(c)) if c.is_valid(row) => {
            *sum =
                c.value(row).checked_mul(sign).and_then(|v| sum.checked_add(v)).ok_or_else(|| {
                    OperatorError::InvalidPlan("SUM overflowed BIGINT; cast its input to DOUBLE".into())
                })?;
            *count += sign;
        }
        (Acc::FloatSum { sum, count } | Acc::Avg { sum, count }, Input::Float(c)) if c.is_valid(row) => {
            *sum += sign as f64 * c.value(row);
            *count += sign;
        }
        (Acc::Multiset(values), Input::Rows(rows, c)) if c.is_valid(row) => {
            let value = rows.row(row).as_ref().to_vec();
            if sign > 0 {
                *values.entry(value).or_default() += 1;
            } else if let Some(n) = values.get_mut(&value) {
                *n -= 1;
                if *n == 0 {
                    values.remove(&value);
                }
            }
        }
        (Acc::Values(values), Input::Rows(rows, c)) => {
            let value = c.is_valid(row).then(|| rows.row(row).as_ref().to_vec());
            if sign > 0 {
                values.push(value);
            } else if let Some(at) = values.iter().position(|v| *v == value) {
                values.remove(at);
            }
        }
        _ => {}
    }
    Ok(())
}

/// A retracting call's accumulator as the plain one its result is read from (`None`: it is
/// one already).
pub(super) fn settled(function: F, acc: &Acc) -> Option<Acc> {
    Some(match (function, acc) {
        (_, Acc::IntSum { sum, count }) => Acc::SumInt((*count > 0).then_some(*sum)),
        (_, Acc::FloatSum { sum, count }) => Acc::SumFloat((*count > 0).then_some(*sum)),
        (F::Min, Acc::Multiset(values)) => Acc::Value(values.keys().next().cloned()),
        (F::Max, Acc::Multiset(values)) => Acc::Value(values.keys().next_back().cloned()),
        (F::FirstValue, Acc::Values(values)) => Acc::Value(values.iter().flatten().next().cloned()),
        (F::LastValue, Acc::Values(values)) => Acc::Value(values.iter().flatten().next_back().cloned()),
        _ => return None,
    })
}

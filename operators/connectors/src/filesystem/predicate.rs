//! The conditions the planner pushed into a scan ([`ScanPredicate`]), decided on what is
//! known before reading rows: a partition's values, or a Parquet row group's minimum,
//! maximum and null count. The answer is "may match" (read it) or "cannot match" (skip
//! it); anything unknown (no statistics, a literal of another type) reads.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Scalar, StringArray, UInt64Array};
use arrow::compute::kernels::cmp;
use arrow::datatypes::DataType;
use sluice_proto::scan_predicate::Op;
use sluice_proto::ScanPredicate;

/// What is known of one column over a set of units (partitions or row groups), one entry
/// per unit.
pub struct ColumnBounds {
    /// Smallest value per unit (null: unknown).
    pub min: ArrayRef,
    /// Largest value per unit (null: unknown).
    pub max: ArrayRef,
    /// NULLs per unit (null: unknown); `None`: unknown for every unit.
    pub null_counts: Option<UInt64Array>,
    /// Rows per unit.
    pub rows: Vec<u64>,
}

/// Narrows `keep` (one flag per unit) to the units where `predicate` may hold, given the
/// column's `bounds`.
pub fn narrow(keep: &mut [bool], predicate: &ScanPredicate, bounds: &ColumnBounds) {
    let Some(may) = may_match(predicate, bounds) else { return };
    for (k, m) in keep.iter_mut().zip(may) {
        *k &= m;
    }
}

fn may_match(predicate: &ScanPredicate, bounds: &ColumnBounds) -> Option<Vec<bool>> {
    let units = bounds.rows.len();
    let op = Op::try_from(predicate.op).ok()?;
    match op {
        Op::IsNull => {
            let counts = bounds.null_counts.as_ref()?;
            return Some((0..units).map(|i| counts.is_null(i) || counts.value(i) > 0).collect());
        }
        Op::IsNotNull => {
            let counts = bounds.null_counts.as_ref()?;
            return Some((0..units).map(|i| counts.is_null(i) || counts.value(i) < bounds.rows[i]).collect());
        }
        _ => {}
    }
    let mut any = vec![false; units];
    for value in &predicate.values {
        let literal = literal(value, bounds.min.data_type())?;
        let literal = Scalar::new(literal);
        let (min, max) = (&bounds.min, &bounds.max);
        // For each unit: may some value v in [min, max] satisfy `v op literal`?
        let may: BooleanArray = match op {
            Op::Eq | Op::In => {
                let low_ok = cmp::lt_eq(min, &literal).ok()?;
                let high_ok = cmp::gt_eq(max, &literal).ok()?;
                arrow::compute::and_kleene(&low_ok, &high_ok).ok()?
            }
            Op::NotEq => {
                let single =
                    arrow::compute::and_kleene(&cmp::eq(min, &literal).ok()?, &cmp::eq(max, &literal).ok()?).ok()?;
                arrow::compute::not(&single).ok()?
            }
            Op::Lt => cmp::lt(min, &literal).ok()?,
            Op::LtEq => cmp::lt_eq(min, &literal).ok()?,
            Op::Gt => cmp::gt(max, &literal).ok()?,
            Op::GtEq => cmp::gt_eq(max, &literal).ok()?,
            Op::IsNull | Op::IsNotNull => return None,
        };
        for (i, a) in any.iter_mut().enumerate() {
            // Unknown (null) bounds may match.
            *a |= may.is_null(i) || may.value(i);
        }
        if op != Op::In {
            break;
        }
    }
    Some(any)
}

/// `text` as a one-element array of `data_type`; `None` when it is not such a value.
fn literal(text: &str, data_type: &DataType) -> Option<ArrayRef> {
    let one: ArrayRef = Arc::new(StringArray::from(vec![text]));
    let options = arrow::compute::CastOptions { safe: false, ..Default::default() };
    let typed = arrow::compute::cast_with_options(&one, data_type, &options).ok()?;
    typed.is_valid(0).then_some(typed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    fn pred(column: &str, op: Op, values: &[&str]) -> ScanPredicate {
        ScanPredicate { column: column.into(), op: op as i32, values: values.iter().map(|v| v.to_string()).collect() }
    }

    /// Three row groups: [0, 9], [10, 19] and unknown bounds; nulls 0, 10 (all), unknown.
    fn bounds() -> ColumnBounds {
        ColumnBounds {
            min: Arc::new(Int64Array::from(vec![Some(0), Some(10), None])),
            max: Arc::new(Int64Array::from(vec![Some(9), Some(19), None])),
            null_counts: Some(UInt64Array::from(vec![Some(0), Some(10), None])),
            rows: vec![10, 10, 10],
        }
    }

    fn kept(p: ScanPredicate) -> Vec<bool> {
        let mut keep = vec![true; 3];
        narrow(&mut keep, &p, &bounds());
        keep
    }

    #[test]
    fn ranges_decide_which_units_may_match() {
        assert_eq!(kept(pred("x", Op::Eq, &["5"])), [true, false, true]);
        assert_eq!(kept(pred("x", Op::Eq, &["20"])), [false, false, true]);
        assert_eq!(kept(pred("x", Op::Gt, &["9"])), [false, true, true]);
        assert_eq!(kept(pred("x", Op::GtEq, &["9"])), [true, true, true]);
        assert_eq!(kept(pred("x", Op::Lt, &["10"])), [true, false, true]);
        assert_eq!(kept(pred("x", Op::LtEq, &["10"])), [true, true, true]);
        assert_eq!(kept(pred("x", Op::In, &["15", "30"])), [false, true, true]);
        assert_eq!(kept(pred("x", Op::IsNull, &[])), [false, true, true]);
        assert_eq!(kept(pred("x", Op::IsNotNull, &[])), [true, false, true]);
        // A literal that is not a number of the column's type decides nothing.
        assert_eq!(kept(pred("x", Op::Eq, &["five"])), [true, true, true]);
    }

    #[test]
    fn a_single_valued_unit_is_ruled_out_by_not_equal() {
        let single = ColumnBounds {
            min: Arc::new(StringArray::from(vec!["2026-12-04", "2026-12-05"])),
            max: Arc::new(StringArray::from(vec!["2026-12-04", "2026-12-05"])),
            null_counts: None,
            rows: vec![1, 1],
        };
        let mut keep = vec![true; 2];
        narrow(&mut keep, &pred("dt", Op::NotEq, &["2026-12-04"]), &single);
        assert_eq!(keep, [false, true]);
    }
}

//! The metrics ML_EVALUATE reports, defined as scikit-learn defines them (binary
//! classification with 1 as the positive label; precision, recall and F1 are 0 when
//! their denominator is, as `zero_division=0` gives).

/// Classification metrics of predicted labels (and, when the model gives them,
/// positive-class probabilities) against true labels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Classification {
    /// Fraction of rows whose predicted label is the true one.
    pub accuracy: f64,
    /// TP / (TP + FP).
    pub precision: f64,
    /// TP / (TP + FN).
    pub recall: f64,
    /// 2·TP / (2·TP + FP + FN).
    pub f1: f64,
    /// Mean cross-entropy of the probabilities (clipped to [ε, 1 − ε], ε the f64
    /// machine epsilon); `None` without probabilities.
    pub log_loss: Option<f64>,
    /// Area under the ROC curve (ties counted half); `None` without probabilities or
    /// when only one class occurs.
    pub auc: Option<f64>,
}

/// Regression metrics of predictions against true values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Regression {
    /// Mean absolute error.
    pub mae: f64,
    /// Mean squared error.
    pub mse: f64,
    /// Root of the mean squared error.
    pub rmse: f64,
    /// Coefficient of determination (1 − SS_res / SS_tot; 1 for a perfect fit of a
    /// constant target, 0 for an imperfect one, as scikit-learn gives); `None` for fewer
    /// than two rows, where scikit-learn gives NaN.
    pub r2: Option<f64>,
}

/// The classification metrics of `labels` (true) against `predicted` labels and
/// optional `probabilities` of the positive class, row by row. The positive class is 1
/// (scikit-learn's `pos_label`); accuracy compares the labels as they are.
pub fn classification(labels: &[f64], predicted: &[f64], probabilities: Option<&[f64]>) -> Classification {
    let n = labels.len() as f64;
    let (mut tp, mut fp, mut fn_, mut correct) = (0.0, 0.0, 0.0, 0.0);
    for (&y, &p) in labels.iter().zip(predicted) {
        match (y == 1.0, p == 1.0) {
            (true, true) => tp += 1.0,
            (false, true) => fp += 1.0,
            (true, false) => fn_ += 1.0,
            (false, false) => {}
        }
        if y == p {
            correct += 1.0;
        }
    }
    let ratio = |a: f64, b: f64| if b == 0.0 { 0.0 } else { a / b };
    Classification {
        accuracy: ratio(correct, n),
        precision: ratio(tp, tp + fp),
        recall: ratio(tp, tp + fn_),
        f1: ratio(2.0 * tp, 2.0 * tp + fp + fn_),
        log_loss: probabilities.map(|p| log_loss(labels, p)),
        auc: probabilities.and_then(|p| auc(labels, p)),
    }
}

fn log_loss(labels: &[f64], probabilities: &[f64]) -> f64 {
    let eps = f64::EPSILON;
    let total: f64 = labels
        .iter()
        .zip(probabilities)
        .map(|(&y, &p)| {
            let p = p.clamp(eps, 1.0 - eps);
            // scikit-learn normalizes the clipped pair (1 − p, p) to sum to one.
            let (negative, positive) = (1.0 - p, p);
            let sum = negative + positive;
            -(if y == 1.0 { positive / sum } else { negative / sum }).ln()
        })
        .sum();
    total / labels.len() as f64
}

/// The Mann–Whitney form of the ROC AUC: the chance a positive row scores above a negative
/// one, ties counted half (what the trapezoids of the ROC curve add up to).
fn auc(labels: &[f64], scores: &[f64]) -> Option<f64> {
    let positives = labels.iter().filter(|&&y| y == 1.0).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Rows i..=j tie: each gets the average of ranks i+1..=j+1.
        let average = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += order[i..=j].iter().filter(|&&r| labels[r] == 1.0).count() as f64 * average;
        i = j + 1;
    }
    Some((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

/// The regression metrics of `predicted` against `actual`, row by row.
pub fn regression(actual: &[f64], predicted: &[f64]) -> Regression {
    let n = actual.len() as f64;
    let mae = actual.iter().zip(predicted).map(|(y, p)| (y - p).abs()).sum::<f64>() / n;
    let residual: f64 = actual.iter().zip(predicted).map(|(y, p)| (y - p) * (y - p)).sum();
    let mse = residual / n;
    let mean = actual.iter().sum::<f64>() / n;
    let total: f64 = actual.iter().map(|y| (y - mean) * (y - mean)).sum();
    let r2 = match (actual.len() < 2, total == 0.0, residual == 0.0) {
        (true, ..) => None,
        (false, true, true) => Some(1.0),
        (false, true, false) => Some(0.0),
        _ => Some(1.0 - residual / total),
    };
    Regression { mae, mse, rmse: mse.sqrt(), r2 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_counts_as_scikit_learn_does() {
        let labels = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0];
        let probabilities = [0.9, 0.4, 0.4, 0.7, 0.2, 0.6];
        let predicted: Vec<f64> = probabilities.iter().map(|&p| if p >= 0.5 { 1.0 } else { 0.0 }).collect();
        let m = classification(&labels, &predicted, Some(&probabilities));
        // TP 2, FP 1, FN 1, TN 2.
        assert_eq!((m.accuracy, m.precision, m.recall), (4.0 / 6.0, 2.0 / 3.0, 2.0 / 3.0));
        assert!((m.f1 - 2.0 / 3.0).abs() < 1e-15);
        // Positive scores 0.9, 0.4, 0.7 against negatives 0.4, 0.2, 0.6: 7.5 of 9 pairs.
        assert!((m.auc.unwrap() - 7.5 / 9.0).abs() < 1e-15);
        let want = -[0.9f64, 0.6, 0.4, 0.7, 0.8, 0.4].iter().map(|p| p.ln()).sum::<f64>() / 6.0;
        assert!((m.log_loss.unwrap() - want).abs() < 1e-12);
        let none = classification(&[0.0, 0.0], &[0.0, 0.0], Some(&[0.1, 0.2]));
        assert_eq!((none.precision, none.recall, none.f1, none.auc), (0.0, 0.0, 0.0, None));
        // Only 1 is positive, and accuracy compares the labels themselves (-1 is no 0).
        let signed = classification(&[-1.0, 1.0, -1.0], &[-1.0, 1.0, 1.0], None);
        assert_eq!((signed.accuracy, signed.precision, signed.recall), (2.0 / 3.0, 0.5, 1.0));
    }

    #[test]
    fn regression_metrics() {
        let m = regression(&[3.0, -0.5, 2.0, 7.0], &[2.5, 0.0, 2.0, 8.0]);
        assert_eq!((m.mae, m.mse), (0.5, 0.375));
        assert!((m.r2.unwrap() - 0.948_608_137_044_967_9).abs() < 1e-12, "{:?}", m.r2);
        assert_eq!(regression(&[1.0, 1.0], &[1.0, 1.0]).r2, Some(1.0));
        assert_eq!(regression(&[1.0], &[2.0]).r2, None);
    }
}

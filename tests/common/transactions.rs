//! Card transactions for the fraud models of `models/make_torch_model.py`,
//! `models/make_tensorflow_model.py` and `examples/python-models/fraud_sklearn`: four
//! numeric features, spread so that both classes occur (large night-time amounts and bursts
//! of transactions are fraud).

use std::path::{Path, PathBuf};

/// The columns of a transaction, as CREATE TABLE declares them (after `id BIGINT`).
pub const COLUMNS: &str = "amount DOUBLE, hour_of_day INT, user_age INT, txn_velocity_24h INT";

/// The feature columns' names, in the models' order.
pub const FEATURES: [&str; 4] = ["amount", "hour_of_day", "user_age", "txn_velocity_24h"];

/// Writes `n` transactions as JSON lines `{id, amount, hour_of_day, user_age,
/// txn_velocity_24h}` to `dir/transactions.jsonl` and returns its path.
pub fn write(dir: &Path, n: u64) -> PathBuf {
    let path = dir.join("transactions.jsonl");
    let lines: Vec<String> = (0..n)
        .map(|i| {
            serde_json::json!({
                "id": i,
                "amount": ((i * 7919) % 1000) as f64 * 1.37 + 0.25,
                "hour_of_day": (i * 13) % 24,
                "user_age": 18 + (i * 31) % 70,
                "txn_velocity_24h": (i * 17) % 12,
            })
            .to_string()
        })
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

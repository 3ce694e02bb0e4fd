"""The synthetic card transactions that the fraud models of ``make_torch_model.py``,
``make_tensorflow_model.py`` and ``examples/python-models/fraud_sklearn`` learn from, with
a known pattern: large night-time amounts, or a burst of transactions in 24 hours, make
fraud likely (3% of labels are flipped). Needs numpy only."""

import numpy as np

FEATURES = ["amount", "hour_of_day", "user_age", "txn_velocity_24h"]
"""The feature columns, in the models' order."""


def synthetic(rows: int, seed: int) -> tuple:
    """Features (float32 [rows, 4], in ``FEATURES`` order) and labels (int64 [rows])."""
    rng = np.random.default_rng(seed)
    amount = rng.gamma(2.0, 150.0, rows)
    hour = rng.integers(0, 24, rows)
    age = rng.integers(18, 90, rows)
    velocity = rng.poisson(3.0, rows)
    risk = (amount > 600) & ((hour < 5) | (hour > 22)) | (velocity > 8)
    labels = (risk ^ (rng.random(rows) < 0.03)).astype(np.int64)
    return np.stack([amount, hour, age, velocity], axis=1).astype(np.float32), labels

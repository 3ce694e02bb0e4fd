"""Trains the scikit-learn fraud model of ``models.py`` and saves it with joblib.

A gradient-boosted classifier learns the synthetic fraud pattern of
``models/fraud_data.py`` (large night-time amounts, or a burst of transactions in 24
hours) from four numeric features: amount, hour_of_day, user_age, txn_velocity_24h.

Run: python3 examples/python-models/fraud_sklearn/train.py [OUT_FILE]
     (default: fraud.joblib next to this script; needs scikit-learn)
"""

import os
import sys

import joblib
from sklearn.ensemble import GradientBoostingClassifier

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "models"))
from fraud_data import synthetic  # noqa: E402 - the repository's synthetic transactions

def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "fraud.joblib")
    features, labels = synthetic(4000, seed=11)
    model = GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=7).fit(features, labels)
    joblib.dump(model, out)
    test, truth = synthetic(1000, seed=12)
    print(f"wrote {out} (accuracy {(model.predict(test) == truth).mean():.3f})")


if __name__ == "__main__":
    main()

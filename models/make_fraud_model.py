"""Trains the test and example fraud classifier and exports it to ONNX.

The model scores card transactions from the six features of the seed's `fraud_classifier`
(amount, hour_of_day, merchant_category, user_age, user_country, txn_velocity_24h) and was
trained on synthetic data with a known pattern: large night-time amounts, a burst of
transactions in 24 hours, or two "risky" countries make fraud likely.

It writes, next to this script:
  fraud_classifier.onnx        the skl2onnx default: a label and a ZipMap of probabilities
  fraud_classifier_probs.onnx  the same model with a probability tensor instead of ZipMap
Each has one named input per column: amount float32, the INT columns int64, user_country
a string tensor (one-hot encoded inside the model).

Run: python3 models/make_fraud_model.py  (needs numpy, scikit-learn, skl2onnx, onnx)
"""

import os

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType

COUNTRIES = ["US", "DE", "FR", "GB", "BR", "IN", "XX", "ZZ"]
NUMERIC = ["amount", "hour_of_day", "user_age", "txn_velocity_24h"]


def synthetic(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 150.0, rows).astype(np.float32),
            "hour_of_day": rng.integers(0, 24, rows).astype(np.int64),
            "merchant_category": rng.integers(0, 20, rows).astype(np.int64),
            "user_age": rng.integers(18, 90, rows).astype(np.int64),
            "user_country": rng.choice(COUNTRIES, rows),
            "txn_velocity_24h": rng.poisson(4, rows).astype(np.int64),
        }
    )
    risk = (
        2.5 * ((frame.amount > 700) & (frame.hour_of_day < 6))
        + 2.0 * (frame.txn_velocity_24h > 9)
        + 1.5 * frame.user_country.isin(["XX", "ZZ"])
        + 0.8 * (frame.merchant_category == 13)
        - 2.5
    )
    frame["is_fraud"] = rng.random(rows) < 1.0 / (1.0 + np.exp(-2.0 * risk))
    return frame


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    data = synthetic(20_000, seed=7)
    features = data.drop(columns=["is_fraud"])
    model = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        ("numeric", StandardScaler(), NUMERIC),
                        ("categories", OneHotEncoder(handle_unknown="ignore"), ["merchant_category", "user_country"]),
                    ]
                ),
            ),
            ("classifier", GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=7)),
        ]
    )
    model.fit(features, data.is_fraud)
    inputs = [
        ("amount", FloatTensorType([None, 1])),
        ("hour_of_day", Int64TensorType([None, 1])),
        ("merchant_category", Int64TensorType([None, 1])),
        ("user_age", Int64TensorType([None, 1])),
        ("user_country", StringTensorType([None, 1])),
        ("txn_velocity_24h", Int64TensorType([None, 1])),
    ]
    for name, options in [
        ("fraud_classifier.onnx", None),
        ("fraud_classifier_probs.onnx", {id(model.steps[-1][1]): {"zipmap": False}}),
    ]:
        onnx_model = convert_sklearn(model, initial_types=inputs, options=options, target_opset=17)
        with open(os.path.join(here, name), "wb") as f:
            f.write(onnx_model.SerializeToString())
    accuracy = (model.predict(features) == data.is_fraud).mean()
    print(f"trained on {len(data)} rows, fraud rate {data.is_fraud.mean():.3f}, training accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()

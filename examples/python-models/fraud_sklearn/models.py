"""A scikit-learn fraud classifier as a ``generic-python`` model (trained by
``train.py`` in this directory, saved with joblib).

``FraudClassifier`` reads the INPUT columns (amount, hour_of_day, user_age,
txn_velocity_24h, in that order) of a whole batch as one matrix and returns the
probability of fraud and the predicted label: ``OUTPUT (fraud_probability DOUBLE,
is_fraud BOOLEAN)``. ``properties.model_file`` names the joblib file (default
``fraud.joblib`` in the model directory); ``properties.threshold`` (default 0.5) sets
the label's cut-off.
"""

import os

import joblib
import numpy as np
import pyarrow as pa
from sluice import PredictFunction


class FraudClassifier(PredictFunction):
    """Scores a batch of transactions with the saved classifier."""

    def open(self, context):
        """Loads the model file."""
        super().open(context)
        path = os.path.join(context.model_directory, context.get_property("model_file", "fraud.joblib"))
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} does not exist: train it with python3 {os.path.dirname(__file__)}/train.py {path}")
        self.model = joblib.load(path)
        self.threshold = float(context.get_property("threshold", "0.5"))

    def predict_batch(self, batch: pa.RecordBatch):
        """Probability and label of each row."""
        features = np.stack([c.to_numpy(zero_copy_only=False) for c in batch.columns], axis=1).astype(np.float64)
        probability = self.model.predict_proba(features)[:, 1]
        return {"fraud_probability": probability, "is_fraud": probability >= self.threshold}

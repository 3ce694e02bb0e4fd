"""Trains a small fraud classifier in TensorFlow and saves it for ``'runtime' = 'tensorflow'``.

The same network and synthetic data as ``make_torch_model.py`` (4 → 16 → 2, softmax, on
amount, hour_of_day, user_age and txn_velocity_24h). It writes, into the directory given
as the first argument:

  fraud_savedmodel/        a SavedModel whose ``serving_default`` signature takes
                           ``features`` [rows, 4] float32 and returns ``probabilities``
                           [rows, 2] and ``label`` [rows] int64
  fraud_named_savedmodel/  the same network taking four inputs named as the columns
                           (each [rows] float32), returning ``fraud_probability`` [rows]
  fraud.tflite             the first SavedModel converted to TensorFlow Lite

Run: python3 models/make_tensorflow_model.py OUT_DIR   (needs tensorflow-cpu and numpy)
"""

import os
import sys

import numpy as np
import tensorflow as tf

from fraud_data import FEATURES, synthetic


class FraudMlp(tf.Module):
    """Scales the raw features, then two dense layers and a softmax."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        rng = np.random.default_rng(7)
        self.mean = tf.constant(mean, dtype=tf.float32)
        self.std = tf.constant(std, dtype=tf.float32)
        self.w1 = tf.Variable(rng.normal(0, 0.5, (4, 16)).astype(np.float32))
        self.b1 = tf.Variable(np.zeros(16, np.float32))
        self.w2 = tf.Variable(rng.normal(0, 0.5, (16, 2)).astype(np.float32))
        self.b2 = tf.Variable(np.zeros(2, np.float32))

    def probabilities(self, features: tf.Tensor) -> tf.Tensor:
        x = (features - self.mean) / self.std
        return tf.nn.softmax(tf.nn.relu(x @ self.w1 + self.b1) @ self.w2 + self.b2)

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="features")])
    def serve(self, features: tf.Tensor) -> dict:
        p = self.probabilities(features)
        return {"probabilities": p, "label": tf.argmax(p, axis=1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name=n) for n in FEATURES])
    def serve_named(self, amount: tf.Tensor, hour_of_day: tf.Tensor, user_age: tf.Tensor, txn_velocity_24h: tf.Tensor) -> dict:
        p = self.probabilities(tf.stack([amount, hour_of_day, user_age, txn_velocity_24h], axis=1))
        return {"fraud_probability": p[:, 1]}


def train() -> FraudMlp:
    """A deterministic training run of a few hundred full-batch steps."""
    features, labels = synthetic(4000, seed=11)
    model = FraudMlp(features.mean(axis=0), features.std(axis=0))
    optimizer = tf.keras.optimizers.Adam(learning_rate=0.05)
    x, y = tf.constant(features), tf.constant(labels)
    variables = [model.w1, model.b1, model.w2, model.b2]
    for _ in range(300):
        with tf.GradientTape() as tape:
            p = model.probabilities(x)
            loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y, p))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return model


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    os.makedirs(out, exist_ok=True)
    model = train()
    saved = os.path.join(out, "fraud_savedmodel")
    tf.saved_model.save(model, saved, signatures={"serving_default": model.serve})
    tf.saved_model.save(
        model, os.path.join(out, "fraud_named_savedmodel"), signatures={"serving_default": model.serve_named}
    )
    lite = tf.lite.TFLiteConverter.from_saved_model(saved).convert()
    with open(os.path.join(out, "fraud.tflite"), "wb") as f:
        f.write(lite)
    features, labels = synthetic(1000, seed=12)
    accuracy = (model.serve(tf.constant(features))["label"].numpy() == labels).mean()
    print(f"wrote fraud_savedmodel, fraud_named_savedmodel and fraud.tflite to {out} (accuracy {accuracy:.3f})")


if __name__ == "__main__":
    main()

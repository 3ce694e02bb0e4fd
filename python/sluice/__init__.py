"""The Python side of Sluice's ``generic-python`` model provider.

A model is a class in a model directory that subclasses :class:`PredictFunction` (the
API of Flink's FLIP for Python model providers) and implements ``predict(row)``, called
once per row, or ``predict_batch(batch)``, called with a ``pyarrow.RecordBatch`` of the
model's INPUT columns and returning one with its OUTPUT columns::

    from sluice import PredictFunction, Row

    class Sentiment(PredictFunction):
        def open(self, context):
            self.threshold = float(context.get_property("threshold", "0.05"))

        def predict(self, data: Row):
            score = len(data.text) % 3 - 1
            return [Row(sentiment="positive" if score > 0 else "negative", confidence=0.5)]

Sluice runs the class in a worker process per subtask (``sluice._worker``); this package
is put on that process's path by the task manager, so models need not install it.
"""

from .predict import ModelContext, PredictFunction, PyPredictFunction
from .row import Row

__all__ = ["ModelContext", "PredictFunction", "PyPredictFunction", "Row"]

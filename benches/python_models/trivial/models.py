"""Models for the generic-python benchmark: trivial ones (the cost is Sluice's and the
process boundary's) and a CPU-bound pure-Python one (for scaling with parallelism)."""

import pyarrow as pa
import pyarrow.compute as pc

from sluice import PredictFunction, Row


class LengthBatch(PredictFunction):
    """The text's length, for a whole batch at once."""

    def predict_batch(self, batch):
        return pa.record_batch({"length": pc.utf8_length(batch.column(0)).cast(pa.int64())})


class LengthRow(PredictFunction):
    """The text's length, row by row."""

    def predict(self, data):
        return [Row(length=len(data[0]))]


class Busy(PredictFunction):
    """A pure-Python loop of ``properties.work`` steps per row (holds the GIL)."""

    def open(self, context):
        super().open(context)
        self.work = int(context.get_property("work", "20000"))

    def predict(self, data):
        total = 0
        for i in range(self.work):
            total += i * i % 7
        return [Row(length=len(data[0]) + total % 2)]

"""A test model that scores a text by its length and misbehaves on one row as told.

Properties: ``fault`` (none, raise, hang, segfault, exit, arity, type, null, hang-open,
raise-open, crash-open), ``trigger`` (the text that makes it fail) or ``trigger_row``
(the worker's n-th row, from 1, makes it fail), ``once`` (a file: the
fault fires only while the file does not exist, and creates it), ``delay`` (seconds each
row takes) and ``noise`` ('true': print a line per row).
"""

import ctypes
import os
import time

import pyarrow as pa
import pyarrow.compute as pc

from sluice import PredictFunction, Row


class Faulty(PredictFunction):
    def open(self, context):
        super().open(context)
        self.fault = context.get_property("fault", "none")
        self.trigger = context.get_property("trigger", "")
        self.trigger_row = int(context.get_property("trigger_row", "0"))
        self.seen = 0
        self.once = context.get_property("once")
        self.delay = float(context.get_property("delay", "0"))
        self.noise = context.get_property("noise") == "true"
        if self.fault == "hang-open":
            time.sleep(3600)
        if self.fault == "raise-open":
            raise ValueError("the weights file is corrupt")
        if self.fault == "crash-open":
            os._exit(3)

    def fires(self, text):
        self.seen += 1
        if text != self.trigger and self.seen != self.trigger_row:
            return False
        if not self.once:
            return True
        if os.path.exists(self.once):
            return False
        open(self.once, "w").close()
        return True

    def predict(self, data):
        text = data.text
        if self.noise:
            print(f"scoring {text}")
        if self.delay:
            time.sleep(self.delay)
        if self.fires(text):
            if self.fault == "raise":
                raise ValueError(f"cannot score {text!r}")
            if self.fault == "hang":
                time.sleep(3600)
            if self.fault == "segfault":
                ctypes.string_at(0)
            if self.fault == "exit":
                os._exit(1)
            if self.fault == "arity":
                return [Row(len(text), text.upper()), Row(len(text), text.upper())]
            if self.fault == "type":
                return [Row(length="many", upper=text.upper())]
            if self.fault == "null":
                return [Row(length=None, upper=text.upper())]
        return [Row(length=len(text), upper=text.upper())]


class Vectorized(Faulty):
    """The same scores through predict_batch (a whole batch fails when one row would)."""

    def predict_batch(self, batch):
        texts = batch.column("text")
        if self.noise:
            print(f"scoring {batch.num_rows} rows")
        if self.delay:
            time.sleep(self.delay * batch.num_rows)
        for text in texts.to_pylist():
            if self.fires(text) and self.fault == "raise":
                raise ValueError(f"cannot score {text!r}")
        return pa.record_batch({"length": pc.utf8_length(texts).cast(pa.int64()), "upper": pc.utf8_upper(texts)})

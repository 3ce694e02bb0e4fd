"""``'runtime' = 'tensorflow'``: a TensorFlow SavedModel (a directory, called through its
``serving_default`` signature, or the one named by ``properties.signature``) or a
TensorFlow Lite flat buffer (a ``.tflite`` file, run by the LiteRT interpreter of
``ai-edge-litert``, or TensorFlow's own). ``inference_threads`` sets TensorFlow's intra-op
threads (the interpreter's threads for ``.tflite``); ``'gpu' = 'true'`` needs a GPU that
TensorFlow sees, and is refused for ``.tflite``.
"""

import os
from typing import Any, Dict, List, Tuple

import numpy as np
import pyarrow as pa

from ..predict import ModelContext, PredictFunction
from ._tensors import InputPlan, ModelInput, need, output_columns, threads, wants_gpu


def _input_name(name: str) -> str:
    """A TensorFlow Lite tensor's name as the SavedModel called it
    (``serving_default_features:0`` → ``features``)."""
    name = name.split(":")[0]
    return name[len("serving_default_"):] if name.startswith("serving_default_") else name


class _SavedModel:
    """A SavedModel's signature."""

    def __init__(self, tf: Any, path: str, signature: str) -> None:
        self.tf = tf
        loaded = tf.saved_model.load(path)
        if signature not in loaded.signatures:
            raise ValueError(
                f"the SavedModel at '{path}' has no signature '{signature}' "
                f"(it has {', '.join(loaded.signatures.keys()) or 'none'}); set properties.signature"
            )
        self.loaded = loaded  # keeps the signature's variables alive
        self.function = loaded.signatures[signature]
        _, specs = self.function.structured_input_signature
        self.inputs = [
            ModelInput(name, np.dtype(spec.dtype.as_numpy_dtype) if spec.dtype != tf.string else None, spec.shape.rank)
            for name, spec in specs.items()
        ]

    def run(self, arrays: List[np.ndarray]) -> List[Tuple[str, np.ndarray]]:
        feed = {i.name: self.tf.constant(a) for i, a in zip(self.inputs, arrays)}
        result = self.function(**feed)
        return [(name, value.numpy()) for name, value in result.items()]


class _Lite:
    """A TensorFlow Lite interpreter, resized to each batch's rows."""

    def __init__(self, path: str, num_threads: Any) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            Interpreter = need("tensorflow", "tensorflow", "ai-edge-litert").lite.Interpreter
        self.interpreter = Interpreter(model_path=path, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.details = self.interpreter.get_input_details()
        self.inputs = [ModelInput(_input_name(d["name"]), np.dtype(d["dtype"]), len(d["shape"])) for d in self.details]
        self.rows = None

    def run(self, arrays: List[np.ndarray]) -> List[Tuple[str, np.ndarray]]:
        n = arrays[0].shape[0]
        if n != self.rows:
            for detail, array in zip(self.details, arrays):
                self.interpreter.resize_tensor_input(detail["index"], list(array.shape))
            self.interpreter.allocate_tensors()
            self.rows = n
        for detail, array in zip(self.details, arrays):
            self.interpreter.set_tensor(detail["index"], array)
        self.interpreter.invoke()
        return [
            (_input_name(d["name"]), self.interpreter.get_tensor(d["index"]))
            for d in self.interpreter.get_output_details()
        ]


class TensorFlowPredictFunction(PredictFunction):
    """Runs a TensorFlow model (``model_path``) on batches of rows."""

    def open(self, context: ModelContext) -> None:
        """Loads the model and plans how INPUT columns feed it."""
        super().open(context)
        properties: Dict[str, str] = context.properties
        path = properties["model_path"]
        n = threads(properties)
        lite = path.endswith(".tflite")
        tf = None if lite else need("tensorflow", "tensorflow", "tensorflow-cpu")
        if not os.path.exists(path):
            raise FileNotFoundError(f"model '{path}' does not exist (check 'model-path')")
        if lite:
            if wants_gpu(properties):
                raise ValueError("'gpu' = 'true' is not supported for a .tflite model; set 'gpu' = 'false'")
            self.model: Any = _Lite(path, n)
        else:
            if n:
                tf.config.threading.set_intra_op_parallelism_threads(n)
            gpus = tf.config.list_physical_devices("GPU")
            if wants_gpu(properties) and not gpus:
                raise RuntimeError(
                    f"'gpu' = 'true' but TensorFlow {tf.__version__} sees no GPU; "
                    "set 'gpu' = 'false' or install a GPU build of TensorFlow on a machine with a GPU"
                )
            if gpus and not wants_gpu(properties):
                tf.config.set_visible_devices([], "GPU")
            self.model = _SavedModel(tf, path, properties.get("signature", "serving_default"))
        columns = [c["name"] for c in context.input_schema]
        self.plan = InputPlan(columns, self.model.inputs, np.dtype(np.float32))
        self.task = properties.get("task")
        self.output_fields: List[pa.Field] = list(context.output_arrow_schema)

    def predict_batch(self, batch: pa.RecordBatch) -> Any:
        """The OUTPUT columns for a batch of INPUT columns."""
        outputs = self.model.run(self.plan.feed(batch))
        return output_columns(outputs, self.output_fields, batch.num_rows, self.task)

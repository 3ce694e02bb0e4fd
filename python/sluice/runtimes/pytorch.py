"""``'runtime' = 'pytorch'``: a ``torch.export`` program (``.pt2``, saved with
``torch.export.save``) or a TorchScript file (anything else, saved with
``torch.jit.save``), run under ``torch.inference_mode`` on the CPU, or on the first CUDA
device with ``'gpu' = 'true'``. ``inference_threads`` sets torch's intra-op threads.
"""

import os
from typing import Any, List, Tuple

import numpy as np
import pyarrow as pa

from ..predict import ModelContext, PredictFunction
from ._tensors import InputPlan, ModelInput, need, output_columns, threads, wants_gpu

_DTYPES = {
    "torch.float32": np.float32, "torch.float64": np.float64, "torch.float16": np.float16,
    "torch.int64": np.int64, "torch.int32": np.int32, "torch.int16": np.int16, "torch.int8": np.int8,
    "torch.uint8": np.uint8, "torch.bool": np.bool_,
}


def _exported_inputs(program: Any) -> List[ModelInput]:
    """The user inputs of an exported program, with the dtype and rank of their example."""
    placeholders = {node.name: node for node in program.graph.nodes if node.op == "placeholder"}
    inputs = []
    for name in program.graph_signature.user_inputs:
        example = placeholders[name].meta.get("val") if name in placeholders else None
        dtype = _DTYPES.get(str(getattr(example, "dtype", "")))
        rank = len(example.shape) if hasattr(example, "shape") else None
        inputs.append(ModelInput(name, None if dtype is None else np.dtype(dtype), rank))
    return inputs


def _script_inputs(module: Any) -> List[ModelInput]:
    """The arguments of a TorchScript module's ``forward`` (after ``self``); their dtype and
    rank are not recorded, so numeric inputs are float32."""
    arguments = module.forward.schema.arguments[1:]
    return [ModelInput(a.name) for a in arguments]


class TorchPredictFunction(PredictFunction):
    """Runs a PyTorch model file (``model_path``) on batches of rows."""

    def open(self, context: ModelContext) -> None:
        """Loads the model and plans how INPUT columns feed it."""
        super().open(context)
        torch = need("torch", "pytorch", "torch")
        self.torch = torch
        properties = context.properties
        path = properties["model_path"]
        if not os.path.exists(path):
            raise FileNotFoundError(f"model file '{path}' does not exist (check 'model-path')")
        n = threads(properties)
        if n:
            torch.set_num_threads(n)
        if wants_gpu(properties):
            if not torch.cuda.is_available():
                raise RuntimeError(
                    f"'gpu' = 'true' but PyTorch {torch.__version__} sees no CUDA device "
                    f"(built for CUDA {torch.version.cuda}); set 'gpu' = 'false' or run on a machine with a GPU"
                )
            self.device = torch.device("cuda")
        else:
            self.device = torch.device("cpu")
        if path.endswith(".pt2"):
            program = torch.export.load(path)
            inputs = _exported_inputs(program)
            self.module = program.module().to(self.device)
        else:
            self.module = torch.jit.load(path, map_location=self.device)
            self.module.eval()
            inputs = _script_inputs(self.module)
        columns = [c["name"] for c in context.input_schema]
        self.plan = InputPlan(columns, inputs, np.dtype(np.float32))
        self.task = properties.get("task")
        self.output_fields = list(context.output_arrow_schema)

    def _outputs(self, result: Any) -> List[Tuple[str, np.ndarray]]:
        if isinstance(result, dict):
            items = list(result.items())
        elif isinstance(result, (list, tuple)):
            items = [(f"output_{i}", r) for i, r in enumerate(result)]
        else:
            items = [("output_0", result)]
        return [(str(name), value.detach().cpu().numpy()) for name, value in items]

    def predict_batch(self, batch: pa.RecordBatch) -> Any:
        """The OUTPUT columns for a batch of INPUT columns."""
        arrays = self.plan.feed(batch)
        tensors = [self.torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in arrays]
        with self.torch.inference_mode():
            result = self.module(*tensors)
        return output_columns(self._outputs(result), self.output_fields, batch.num_rows, self.task)

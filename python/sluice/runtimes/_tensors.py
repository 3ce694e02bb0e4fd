"""How INPUT columns become a model's input arrays, and its output arrays the OUTPUT
columns, for the Python runtimes of the ``local`` provider (the rules of the ONNX runtime).

Inputs, decided at open from the model's signature:

- one model input per INPUT column, matched by name (case-insensitive), else by position
  when the counts are equal; a scalar column is ``[rows]`` (``[rows, 1]`` for an input of
  rank 2), an ``ARRAY`` column is ``[rows, width]``;
- a model with a single input and several INPUT columns (or a single input of unknown
  rank): every column side by side in one ``[rows, columns]`` array.

Outputs, per batch: by name when every OUTPUT column names an output, else by position
when the counts are equal; one OUTPUT column takes the first output of its kind (floating,
integer, string, or two-dimensional for an ARRAY); a single ``[rows, n]`` output fills
``n`` OUTPUT columns; an
``ARRAY`` column takes a whole row of its output (an embedding). A scalar column fed a
``[rows, k]`` output takes the positive-class probability (column 1) when ``k`` is 2 and
the column is FLOAT or DOUBLE (unless ``task`` is ``regression``), or the index of the
largest value when the column is an integer (a class id).
"""

import importlib
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def need(module: str, runtime: str, pip_name: str) -> Any:
    """Imports ``module``, or raises ``ImportError`` naming the pip command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"'runtime' = '{runtime}' needs the {pip_name} package, which {sys.executable} cannot import ({e}): "
            f"install it with {sys.executable} -m pip install {pip_name}, "
            "or set 'python.executable' to an interpreter that has it"
        ) from None


class ModelInput:
    """One input of a model's signature: its name, element type and rank, where known."""

    def __init__(self, name: str, dtype: Optional[np.dtype] = None, rank: Optional[int] = None) -> None:
        self.name = name
        self.dtype = dtype
        self.rank = rank

    def describe(self) -> str:
        """The input as messages show it."""
        dtype = "?" if self.dtype is None else str(self.dtype)
        rank = "?" if self.rank is None else str(self.rank)
        return f"{self.name} ({dtype}, rank {rank})"


def column_values(column: pa.Array, name: str) -> np.ndarray:
    """The values of an INPUT column: ``[rows]``, or ``[rows, width]`` for an ARRAY column.
    A NULL, or arrays of different lengths in one column, raise ``ValueError``."""
    if column.null_count:
        raise ValueError(f"INPUT column '{name}' is NULL in {column.null_count} of {len(column)} rows; the model needs a value")
    t = column.type
    n = len(column)
    if pa.types.is_fixed_size_list(t):
        return column.flatten().to_numpy(zero_copy_only=False).reshape(n, t.list_size)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        widths = set(lengths.tolist())
        if len(widths) > 1:
            raise ValueError(f"INPUT column '{name}' holds arrays of lengths {sorted(widths)}; the model needs one width")
        width = widths.pop() if widths else 0
        return column.flatten().to_numpy(zero_copy_only=False).reshape(n, width)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return np.array(column.to_pylist(), dtype=object)
    return column.to_numpy(zero_copy_only=False)


class InputPlan:
    """Which INPUT columns feed which model input, decided once at open."""

    def __init__(self, columns: Sequence[str], inputs: Sequence[ModelInput], default_dtype: np.dtype) -> None:
        self.columns = list(columns)
        self.inputs = list(inputs)
        self.default_dtype = default_dtype
        self.stacked = len(self.inputs) == 1 and (len(self.columns) > 1 or self.inputs[0].rank is None)
        self.sources: List[int] = []
        if self.stacked:
            return
        lower = [c.lower() for c in self.columns]
        for position, model_input in enumerate(self.inputs):
            if model_input.name.lower() in lower:
                self.sources.append(lower.index(model_input.name.lower()))
            elif len(self.inputs) == len(self.columns):
                self.sources.append(position)
            else:
                raise ValueError(self.mismatch(f"no INPUT column is called '{model_input.name}'"))
        if len(self.inputs) != len(self.columns):
            raise ValueError(self.mismatch("the model needs a different number of inputs"))

    def mismatch(self, why: str) -> str:
        """The message of an INPUT clause that does not fit the model."""
        return (
            f"INPUT ({', '.join(self.columns)}) does not match the model's inputs "
            f"({', '.join(i.describe() for i in self.inputs)}): {why}"
        )

    def _typed(self, values: np.ndarray, model_input: ModelInput) -> np.ndarray:
        if values.dtype == object:
            return values
        return values.astype(model_input.dtype or self.default_dtype, copy=False)

    def feed(self, batch: pa.RecordBatch) -> List[np.ndarray]:
        """The model's input arrays for ``batch`` (whose columns are the INPUT columns), in
        the model's input order."""
        n = batch.num_rows
        if self.stacked:
            parts = [column_values(batch.column(i), name).reshape(n, -1) for i, name in enumerate(self.columns)]
            if any(p.dtype == object for p in parts):
                raise ValueError(self.mismatch("STRING columns cannot be stacked into one numeric input"))
            return [self._typed(np.concatenate(parts, axis=1), self.inputs[0])]
        arrays = []
        for source, model_input in zip(self.sources, self.inputs):
            values = column_values(batch.column(source), self.columns[source])
            if model_input.rank == 2 and values.ndim == 1:
                values = values.reshape(n, 1)
            arrays.append(self._typed(values, model_input))
        return arrays


def _as_arrow(values: np.ndarray) -> pa.Array:
    if values.dtype == object:
        return pa.array([v.decode() if isinstance(v, bytes) else v for v in values.tolist()])
    if values.dtype.kind == "S":
        return pa.array([v.decode() for v in values.tolist()])
    return pa.array(values)


def _column(values: np.ndarray, field: pa.Field, output: str, n: int, task: Optional[str]) -> pa.Array:
    if values.ndim == 0 or values.shape[0] != n:
        rows = "a scalar" if values.ndim == 0 else f"{values.shape[0]} rows"
        raise ValueError(f"model output '{output}' has {rows} for {n} input rows")
    t = field.type
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        flat = values.reshape(n, -1)
        return pa.FixedSizeListArray.from_arrays(_as_arrow(flat.reshape(-1)), flat.shape[1])
    if values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1):
        return _as_arrow(values.reshape(n))
    if values.ndim == 2 and values.shape[1] == 2 and pa.types.is_floating(t) and task != "regression":
        return _as_arrow(values[:, 1])
    if values.ndim == 2 and pa.types.is_integer(t):
        return _as_arrow(values.argmax(axis=1))
    raise ValueError(
        f"model output '{output}' has shape {list(values.shape)}, which does not fit OUTPUT column "
        f"'{field.name}' (declare it as ARRAY<FLOAT> for a vector per row, or one column per value)"
    )


def _fits(values: np.ndarray, field: pa.Field) -> bool:
    """Whether an output's element kind is that of an OUTPUT column."""
    t = field.type
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return values.ndim == 2
    if pa.types.is_floating(t):
        return values.dtype.kind == "f"
    if pa.types.is_integer(t):
        return values.dtype.kind in "iu"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return values.dtype.kind in "OSU"
    return True


def output_columns(
    outputs: List[Tuple[str, np.ndarray]], fields: Sequence[pa.Field], n: int, task: Optional[str]
) -> Dict[str, pa.Array]:
    """The OUTPUT columns from the model's ``(name, array)`` outputs for ``n`` rows, as a
    dict that the output contract then checks and casts."""
    by_name = {name.lower(): (name, values) for name, values in outputs}
    if all(f.name.lower() in by_name for f in fields):
        chosen = [by_name[f.name.lower()] for f in fields]
    elif len(outputs) == len(fields):
        chosen = list(outputs)
    else:
        if len(fields) == 1:
            # Of several outputs, the first whose kind fits the one column (a classifier's
            # probabilities for a DOUBLE, its label for an INT).
            outputs = sorted(outputs, key=lambda o: not _fits(o[1], fields[0]))
        name, values = outputs[0]
        if len(fields) > 1 and values.ndim == 2 and values.shape[1] == len(fields):
            return {f.name: _column(values[:, i], f, name, n, task) for i, f in enumerate(fields)}
        if len(fields) > 1:
            shapes = ", ".join(f"{o} {list(v.shape)}" for o, v in outputs)
            raise ValueError(
                f"the model's outputs ({shapes}) do not fit OUTPUT ({', '.join(f.name for f in fields)}): name the "
                "OUTPUT columns as the outputs, declare one column per output, or one per value of a [rows, n] output"
            )
        chosen = [outputs[0]]
    return {f.name: _column(values, f, name, n, task) for f, (name, values) in zip(fields, chosen)}


def threads(properties: Dict[str, str]) -> Optional[int]:
    """``inference_threads``, if set."""
    value = properties.get("inference_threads")
    return int(value) if value else None


def wants_gpu(properties: Dict[str, str]) -> bool:
    """Whether ``gpu`` = ``true``."""
    return properties.get("gpu", "false").lower() == "true"

"""Turns a model's answers into the OUTPUT columns, checking the output contract: one
output row per input row, every OUTPUT column present, each value of its column's type,
no NULL in a NOT NULL column. A breach is an error of that row, naming the column, what
was expected and what came."""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import pyarrow as pa

from .row import Row

RowError = Dict[str, Any]
"""A row's error: ``type``, ``message`` and ``traceback`` (and ``column`` when it has one)."""

_CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError, OverflowError)


def sql_type(t: pa.DataType) -> str:
    """The SQL name of an Arrow type, as CREATE MODEL writes it."""
    simple = {
        pa.string(): "STRING", pa.large_string(): "STRING", pa.bool_(): "BOOLEAN",
        pa.int8(): "TINYINT", pa.int16(): "SMALLINT", pa.int32(): "INT", pa.int64(): "BIGINT",
        pa.float32(): "FLOAT", pa.float64(): "DOUBLE", pa.date32(): "DATE", pa.binary(): "BYTES",
    }
    if t in simple:
        return simple[t]
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return f"ARRAY<{sql_type(t.value_type)}>"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP(3)"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision}, {t.scale})"
    return str(t).upper()


def error(kind: str, message: str, column: Optional[str] = None, tb: str = "") -> RowError:
    """A row error that is not a Python exception of the model."""
    e: RowError = {"type": kind, "message": message, "traceback": tb}
    if column is not None:
        e["column"] = column
    return e


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def column(values: List[Any], field: pa.Field, errors: Dict[int, RowError], rows: Sequence[int]) -> pa.Array:
    """The array of ``field`` from Python ``values`` (of input rows ``rows``); a value that
    does not convert, or a NULL in a NOT NULL column, is an error of its row (and NULL)."""
    try:
        array = pa.array(values, type=field.type)
    except _CONVERSION_ERRORS:
        for i, value in enumerate(values):
            if value is None:
                continue
            try:
                pa.array([value], type=field.type)
            except _CONVERSION_ERRORS:
                errors.setdefault(rows[i], error(
                    "OutputTypeError",
                    f"OUTPUT column '{field.name}' expects {sql_type(field.type)}, "
                    f"got {type(value).__name__} {_shown(value)}",
                    field.name,
                ))
                values[i] = None
        array = pa.array(values, type=field.type)
    if not field.nullable and array.null_count:
        for i, value in enumerate(values):
            if value is None:
                errors.setdefault(rows[i], error(
                    "OutputNullError",
                    f"OUTPUT column '{field.name}' is NOT NULL ({sql_type(field.type)}), got NULL",
                    field.name,
                ))
    return array


def row_values(result: Any, schema: pa.Schema, names: Optional[Tuple[str, ...]] = None) -> List[Any]:
    """The OUTPUT values of one ``predict`` result (a list holding one row); raises
    ``ValueError`` naming what is wrong. ``names`` (the schema's names as a tuple, given by
    a caller that converts many rows) speeds up the common case."""
    if names is not None and type(result) is list and len(result) == 1:
        row = result[0]
        # A row of the OUTPUT columns in their order, named or not: its values as they are.
        if type(row) is Row and len(row._values) == len(names) and (row._names is None or row._names == names):
            return list(row._values)
    names = schema.names
    if isinstance(result, (list, tuple)) and not isinstance(result, Row):
        if len(result) != 1:
            raise ValueError(f"predict returned {len(result)} rows for one input row; exactly one is expected")
        result = result[0]
    if isinstance(result, dict):
        named = result
    elif isinstance(result, Row) and result.names is not None:
        named = result.as_dict()
    elif isinstance(result, (Row, list, tuple)):
        values = list(result)
        if len(values) != len(names):
            raise ValueError(
                f"the output row has {len(values)} values for {len(names)} OUTPUT columns ({', '.join(names)})"
            )
        return values
    elif len(names) == 1:
        return [result]
    else:
        raise ValueError(f"predict returned {type(result).__name__}, not a list holding one Row")
    missing = [n for n in names if n not in named]
    if missing:
        raise ValueError(f"the output row has no OUTPUT column {', '.join(repr(m) for m in missing)} "
                         f"(it has {', '.join(repr(k) for k in named)})")
    extra = [k for k in named if k not in names]
    if extra:
        raise ValueError(f"the output row has columns that are not OUTPUT columns: {', '.join(repr(e) for e in extra)}")
    return [named[n] for n in names]


def from_rows(values: List[Optional[List[Any]]], schema: pa.Schema, errors: Dict[int, RowError]) -> List[pa.Array]:
    """The OUTPUT columns of per-row values (None for a row that failed, whose error is
    already in ``errors``)."""
    rows = list(range(len(values)))
    return [column([None if v is None else v[c] for v in values], field, errors, rows) for c, field in enumerate(schema)]


def as_batch(result: Any) -> Any:
    """A ``predict_batch`` result as something with named columns (a RecordBatch or Table)."""
    if isinstance(result, (pa.RecordBatch, pa.Table)):
        return result
    if isinstance(result, dict):
        return result
    if hasattr(result, "__arrow_c_array__") or hasattr(result, "__arrow_c_stream__"):
        return pa.record_batch(result) if hasattr(result, "__arrow_c_array__") else pa.table(result)
    raise TypeError(
        f"predict_batch returned {type(result).__name__}; return a pyarrow.RecordBatch (or a Table, a dict of "
        "columns, or anything with __arrow_c_array__)"
    )


def from_batch(result: Any, n: int, schema: pa.Schema, errors: Dict[int, RowError]) -> List[pa.Array]:
    """The OUTPUT columns of a ``predict_batch`` result for ``n`` input rows; a breach of
    the contract that concerns every row is an error of every row."""
    batch = as_batch(result)
    names = list(batch.keys()) if isinstance(batch, dict) else batch.schema.names
    rows = batch_rows(batch)
    if rows != n:
        for i in range(n):
            errors.setdefault(i, error(
                "OutputArityError",
                f"predict_batch returned {rows} rows for {n} input rows; exactly one output row per input row is expected",
            ))
        return nulls(schema, n)
    missing = [f.name for f in schema if f.name not in names]
    if missing:
        for i in range(n):
            errors.setdefault(i, error(
                "OutputColumnError",
                f"the result of predict_batch has no OUTPUT column {', '.join(repr(m) for m in missing)} "
                f"(it has {', '.join(repr(x) for x in names)})",
                missing[0],
            ))
        return nulls(schema, n)
    columns = []
    for field in schema:
        raw = batch[field.name]
        if isinstance(raw, pa.ChunkedArray):
            raw = raw.combine_chunks()
        if isinstance(raw, pa.Array) and raw.type == field.type:
            array = raw
            if not field.nullable and array.null_count:
                column(array.to_pylist(), field, errors, list(range(n)))
        else:
            if isinstance(raw, pa.Array):
                try:
                    array = raw.cast(field.type)
                    if not field.nullable and array.null_count:
                        column(array.to_pylist(), field, errors, list(range(n)))
                    columns.append(array)
                    continue
                except _CONVERSION_ERRORS:
                    raw = raw.to_pylist()
            array = column(list(raw), field, errors, list(range(n)))
        columns.append(array)
    return columns


def batch_rows(batch: Any) -> int:
    """The number of rows of a result."""
    if isinstance(batch, dict):
        lengths = {len(v) for v in batch.values()}
        return lengths.pop() if len(lengths) == 1 else -1
    return batch.num_rows


def nulls(schema: pa.Schema, n: int) -> List[pa.Array]:
    """``n`` NULLs of every OUTPUT column."""
    return [pa.nulls(n, type=f.type) for f in schema]


def input_rows(batch: pa.RecordBatch) -> List[Row]:
    """The rows of an input batch, named by the INPUT columns."""
    names = tuple(batch.schema.names)
    columns = [c.to_pylist() for c in batch.columns]
    if not columns:
        return [Row.of(names, ()) for _ in range(batch.num_rows)]
    make = Row._named
    return [make(names, values) for values in zip(*columns)]


def merge(parts: List[List[pa.Array]], schema: pa.Schema) -> List[pa.Array]:
    """The OUTPUT columns of consecutive parts, each a list of columns."""
    return [pa.concat_arrays([p[c] for p in parts]) if parts else pa.nulls(0, f.type) for c, f in enumerate(schema)]

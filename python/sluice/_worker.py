"""The worker process of the ``generic-python`` provider: one per ML_PREDICT subtask,
started by the task manager as ``python -m sluice._worker``.

It talks to the task manager over its standard input and output, in frames of a JSON
header and an optional Arrow IPC stream::

    u32 header length (little-endian) | u64 payload length | header JSON | payload

Requests are ``open`` (the model's configuration and the subtask's context), ``predict``
(a batch of INPUT columns) and ``close``; each gets one reply (``opened``, ``result`` with
the OUTPUT columns and the errors of single rows, or ``failed``). Standard output is taken
for the replies before the model is imported: the model's ``print()`` and anything written
to file descriptor 1 go to standard error, which the task manager logs. The worker exits
when its input ends, and within a second of its task manager dying.

A request that outlives its time limit gets SIGUSR1 from the task manager, on which
faulthandler prints every thread's Python stack to standard error (from the signal
handler, so even a model stuck in C code holding the GIL shows where it is); the task
manager then kills the worker and starts another.
"""

import faulthandler
import importlib
import importlib.metadata
import json
import os
import re
import signal
import struct
import sys
import threading
import time
import traceback
from typing import Any, Dict, List, Optional

_HEAD = struct.Struct("<IQ")


def _describe(e: BaseException) -> Dict[str, Any]:
    kind = type(e)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return {"type": name, "message": str(e), "traceback": "".join(traceback.format_exception(kind, e, e.__traceback__))}


class _Channel:
    """Frames in and out."""

    def __init__(self, rd: Any, wr: Any) -> None:
        self.rd = rd
        self.wr = wr

    def read(self) -> Optional[tuple]:
        head = self.rd.read(_HEAD.size)
        if len(head) < _HEAD.size:
            return None
        header_len, payload_len = _HEAD.unpack(head)
        header = json.loads(self.rd.read(header_len))
        payload = self.rd.read(payload_len) if payload_len else b""
        return header, payload

    def write(self, header: Dict[str, Any], payload: Any = b"") -> None:
        encoded = json.dumps(header).encode()
        self.wr.write(_HEAD.pack(len(encoded), len(payload)))
        self.wr.write(encoded)
        if len(payload):
            self.wr.write(payload)
        self.wr.flush()


def _watch_parent() -> None:
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="sluice-parent-watch", daemon=True).start()


_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*$")


def check_requirements(requirements: List[str]) -> None:
    """Raises naming every requirement that is not installed (or not at a matching version)."""
    problems = []
    for requirement in requirements:
        m = _REQUIREMENT.match(requirement)
        if not m:
            problems.append(f"'{requirement}' is not a requirement such as 'numpy>=1.24'")
            continue
        name, _, spec = m.groups()
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed")
            continue
        if spec:
            try:
                from packaging.specifiers import SpecifierSet
            except ImportError:
                continue
            if not SpecifierSet(spec).contains(version, prereleases=True):
                problems.append(f"{name} {version} is installed, {spec} is required")
    if problems:
        wanted = " ".join(f"'{r.strip()}'" for r in requirements)
        raise ImportError(
            f"python.requirements are not met for {sys.executable}: {'; '.join(problems)} "
            f"(install them with: {sys.executable} -m pip install {wanted})"
        )


def _load(config: Dict[str, Any]) -> Any:
    directory = config["model_directory"]
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"'model-directory-path' = '{directory}' is not a directory")
    sys.path.insert(0, os.path.abspath(directory))
    check_requirements(config.get("requirements", []))
    path = config["python_predict_class"]
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise ValueError(f"'python-predict-class' = '{path}' must be module.Class (a module in the model directory)")
    module = importlib.import_module(module_name)
    try:
        cls = getattr(module, class_name)
    except AttributeError:
        raise AttributeError(f"module '{module_name}' ({getattr(module, '__file__', '?')}) has no class '{class_name}'") from None
    return cls()


class _Model:
    """The user's model and how to call it."""

    def __init__(self, header: Dict[str, Any], output_schema: Any) -> None:
        from .predict import ModelContext, PredictFunction

        config_json = header["config"]
        config = json.loads(config_json)
        self.output = output_schema
        self.output_names = tuple(output_schema.names)
        self.function = _load(config)
        cls = type(self.function)
        self.batched = callable(getattr(self.function, "predict_batch", None))
        predict = getattr(cls, "predict", None)
        own_predict = callable(predict) and predict is not PredictFunction.predict
        if not self.batched and not own_predict:
            raise TypeError(f"{config['python_predict_class']} defines neither predict(row) nor predict_batch(batch)")
        if hasattr(self.function, "set_model_config"):
            self.function.set_model_config(config_json)
        context = ModelContext(config, header["subtask_index"], header["parallelism"], header["attempt_number"], output_schema)
        if hasattr(self.function, "open"):
            self.function.open(context)

    def predict(self, batch: Any) -> tuple:
        from . import _convert

        errors: Dict[int, Dict[str, Any]] = {}
        n = batch.num_rows
        if self.batched:
            try:
                columns = _convert.from_batch(self.function.predict_batch(batch), n, self.output, errors)
            except Exception as e:
                if n == 1:
                    errors[0] = _describe(e)
                    columns = _convert.nulls(self.output, 1)
                else:
                    # Row by row, to find the rows that fail.
                    parts = []
                    for i in range(n):
                        one: Dict[int, Dict[str, Any]] = {}
                        try:
                            parts.append(_convert.from_batch(self.function.predict_batch(batch.slice(i, 1)), 1, self.output, one))
                        except Exception as row_error:
                            one[0] = _describe(row_error)
                            parts.append(_convert.nulls(self.output, 1))
                        if 0 in one:
                            errors[i] = one[0]
                    columns = _convert.merge(parts, self.output)
        else:
            values: List[Optional[List[Any]]] = []
            for i, row in enumerate(_convert.input_rows(batch)):
                try:
                    result = self.function.predict(row)
                except Exception as e:
                    errors[i] = _describe(e)
                    values.append(None)
                    continue
                try:
                    values.append(_convert.row_values(result, self.output, self.output_names))
                except ValueError as e:
                    errors[i] = _convert.error("OutputArityError", str(e))
                    values.append(None)
            columns = _convert.from_rows(values, self.output, errors)
        return columns, errors

    def close(self) -> None:
        if hasattr(self.function, "close"):
            self.function.close()


def main() -> None:
    """Serves requests until the input ends or ``close`` arrives."""
    channel = _Channel(os.fdopen(os.dup(0), "rb", buffering=1 << 16), os.fdopen(os.dup(1), "wb", buffering=1 << 16))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # anything written to stdout, from Python or C, goes to the log
    sys.stdout = sys.stderr
    sys.stdin = open(os.devnull)
    faulthandler.enable(file=sys.stderr, all_threads=True)
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    _watch_parent()

    try:
        import pyarrow as pa
    except ImportError as e:
        print(f"pyarrow is not installed for {sys.executable} ({e}): install it with "
              f"{sys.executable} -m pip install pyarrow, or set 'python.executable' to an interpreter that has it",
              file=sys.stderr)
        sys.exit(2)

    model: Optional[_Model] = None
    while True:
        request = channel.read()
        if request is None:
            break
        header, payload = request
        op = header["op"]
        if op == "open":
            schema = pa.ipc.open_stream(pa.py_buffer(payload)).schema
            try:
                model = _Model(header, schema)
            except BaseException as e:  # noqa: B902 - any failure of the user's open is reported
                channel.write({"op": "failed", **_describe(e)})
                continue
            channel.write({"op": "opened", "batched": model.batched})
        elif op == "predict":
            if model is None:
                channel.write({"op": "failed", "type": "RuntimeError", "message": "predict before open", "traceback": ""})
                continue
            batch = pa.ipc.open_stream(pa.py_buffer(payload)).read_next_batch()
            columns, errors = model.predict(batch)
            out = pa.RecordBatch.from_arrays(columns, schema=model.output)
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, model.output) as writer:
                writer.write_batch(out)
            channel.write({"op": "result", "id": header["id"], "errors": [[i, e] for i, e in sorted(errors.items())]},
                          sink.getvalue())
        elif op == "close":
            if model is not None:
                model.close()
            channel.write({"op": "closed"})
            break


if __name__ == "__main__":
    main()

"""The base class of Python models and the context they are opened with."""

import json
from typing import Any, Dict, List, Optional

from .row import Row


class ModelContext:
    """What a model is opened with: its properties (the model's ``properties.*``
    options, without the prefix), directory and schemas, and where it runs."""

    def __init__(
        self,
        config: Dict[str, Any],
        subtask_index: int,
        parallelism: int,
        attempt_number: int,
        output_arrow_schema: Any = None,
    ) -> None:
        self.config = config
        self.model_name: str = config["model"]
        self.model_directory: str = config["model_directory"]
        self.properties: Dict[str, str] = dict(config.get("properties", {}))
        self.input_schema: List[Dict[str, Any]] = config["input_schema"]
        self.output_schema: List[Dict[str, Any]] = config["output_schema"]
        self.subtask_index = subtask_index
        self.parallelism = parallelism
        self.attempt_number = attempt_number
        self.output_arrow_schema = output_arrow_schema
        """The OUTPUT columns as a ``pyarrow.Schema`` (the types results are cast to)."""

    def get_property(self, key: str, default: Optional[str] = None) -> Optional[str]:
        """The model property ``key`` (``'properties.<key>'`` in CREATE MODEL)."""
        return self.properties.get(key, default)

    def get_index_of_this_subtask(self) -> int:
        """This subtask's index, from 0."""
        return self.subtask_index

    def get_number_of_parallel_subtasks(self) -> int:
        """The parallelism of the ML_PREDICT operator."""
        return self.parallelism

    def get_attempt_number(self) -> int:
        """How many times the job was restarted before this run (0 for the first)."""
        return self.attempt_number


class PredictFunction:
    """The base class of a ``generic-python`` model (FLIP: "Python model providers").

    Sluice calls ``set_model_config`` with the model's configuration as JSON, then
    ``open(context)`` once per worker, then ``predict_batch`` for each batch of rows when
    the class defines it, else ``predict`` for each row, and ``close()`` at the end.
    After ``set_model_config`` the instance has ``model_config`` (the parsed JSON),
    ``properties``, ``model_directory``, ``input_schema`` and ``output_schema``.
    """

    model_config_json: Optional[str] = None

    def set_model_config(self, model_config_json: str) -> None:
        """Receives the model's configuration as JSON (called before ``open``)."""
        self.model_config_json = model_config_json
        config = json.loads(model_config_json)
        self.model_config: Dict[str, Any] = config
        self.properties: Dict[str, str] = dict(config.get("properties", {}))
        self.model_directory: str = config["model_directory"]
        self.input_schema: List[Dict[str, Any]] = config["input_schema"]
        self.output_schema: List[Dict[str, Any]] = config["output_schema"]

    def open(self, context: ModelContext) -> None:
        """One-time setup (load the model); the default only checks the configuration."""
        if self.model_config_json is None:
            raise RuntimeError("Model config not set")

    def predict(self, data: Row) -> List[Row]:
        """The prediction for one input row: a list holding exactly one output row."""
        raise NotImplementedError(f"{type(self).__name__} implements neither predict nor predict_batch")

    def close(self) -> None:
        """Releases what ``open`` acquired (called when the worker stops)."""


PyPredictFunction = PredictFunction
"""The name the FLIP's example subclasses; the same class as :class:`PredictFunction`."""

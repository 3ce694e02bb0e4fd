"""Rows with positional and named access, as PyFlink's ``Row``."""

from typing import Any, Dict, Iterator, Optional, Sequence, Tuple


class Row:
    """A row of values, read by position (``row[0]``) or by name (``row["text"]``,
    ``row.text``).

    ``Row("a", 1)`` makes a positional row and ``Row(text="a", n=1)`` a named one;
    a prediction's output row may be either (a positional row lists the OUTPUT columns
    in their declared order).
    """

    __slots__ = ("_values", "_names")

    def __init__(self, *values: Any, **named: Any) -> None:
        if values and named:
            raise TypeError("a Row takes positional values or named values, not both")
        self._names: Optional[Tuple[str, ...]] = tuple(named) if named else None
        self._values: Tuple[Any, ...] = tuple(named.values()) if named else tuple(values)

    @classmethod
    def of(cls, names: Sequence[str], values: Sequence[Any]) -> "Row":
        """A named row of ``values`` under ``names`` (in the same order)."""
        row = cls(*values)
        row._names = tuple(names)
        return row

    @classmethod
    def _named(cls, names: Tuple[str, ...], values: Tuple[Any, ...]) -> "Row":
        """``Row.of`` for a tuple of names and a tuple of values, without copying them."""
        row = cls.__new__(cls)
        row._names = names
        row._values = values
        return row

    @property
    def names(self) -> Optional[Tuple[str, ...]]:
        """The field names, or None for a positional row."""
        return self._names

    def as_dict(self) -> Dict[str, Any]:
        """The named fields as a dict (a positional row has none)."""
        if self._names is None:
            raise TypeError("a positional Row has no field names")
        return dict(zip(self._names, self._values))

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            if self._names is not None and key in self._names:
                return self._values[self._names.index(key)]
            raise KeyError(f"the row has no field {key!r} (fields: {self._names})")
        return self._values[key]

    def __getattr__(self, name: str) -> Any:
        names = object.__getattribute__(self, "_names")
        if names is not None and name in names:
            return object.__getattribute__(self, "_values")[names.index(name)]
        raise AttributeError(f"the row has no field {name!r} (fields: {names})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Row):
            return self._values == other._values and (
                self._names is None or other._names is None or self._names == other._names
            )
        if isinstance(other, (tuple, list)):
            return self._values == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        if self._names is None:
            return "Row(" + ", ".join(repr(v) for v in self._values) + ")"
        return "Row(" + ", ".join(f"{n}={v!r}" for n, v in zip(self._names, self._values)) + ")"

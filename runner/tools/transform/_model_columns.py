"""Arrow columns from a pydantic model's fields: the shape valid rows leave ``validate`` in.

Part of :mod:`runner.tools.transform.validate`; worked out once per model, at declaration.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

if TYPE_CHECKING:
    import pyarrow as pa
    from pydantic import BaseModel


__all__ = ["DEFAULT_DECIMAL", "ModelColumn", "model_columns"]

Converter = Callable[[Any], Any]

DEFAULT_DECIMAL = (38, 9)


@dataclass(frozen=True)
class ModelColumn:
    """How one model field becomes one Arrow column."""

    name: str
    type: pa.DataType
    nullable: bool
    convert: Converter | None = None


def _json_text(value: Any) -> Any:
    """Fields without a direct Arrow type travel as text: strings as is, the rest as JSON."""
    import pydantic_core

    if value is None:
        return None
    plain = pydantic_core.to_jsonable_python(value)
    if isinstance(plain, str):
        return plain
    return json.dumps(plain, ensure_ascii=False, separators=(",", ":"))


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """Strip ``Annotated[...]`` layers, keeping their metadata (decimal places live there)."""
    metadata: list[Any] = []
    while get_origin(annotation) is typing.Annotated:
        annotation, *extra = get_args(annotation)
        metadata.extend(extra)
    flat: list[Any] = []
    for item in metadata:
        flat.append(item)
        flat.extend(getattr(item, "metadata", None) or [])  # a FieldInfo inside Annotated
    return annotation, flat


def _decimal_type(metadata: Sequence[Any]) -> pa.DataType:
    import pyarrow as pa

    digits = next((m.max_digits for m in metadata if getattr(m, "max_digits", None)), None)
    places = next(
        (m.decimal_places for m in metadata if getattr(m, "decimal_places", None) is not None),
        None,
    )
    if digits is not None and places is not None:
        precision, scale = digits, places
    else:
        precision, scale = DEFAULT_DECIMAL[0], places if places is not None else DEFAULT_DECIMAL[1]
    return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)


def _class_types() -> list[tuple[tuple[type, ...], pa.DataType]]:
    """Annotation classes and their Arrow types, most specific first (bool before int).

    Pydantic's constrained date/datetime classes do not subclass date/datetime, so they
    are listed as well.
    """
    import pyarrow as pa
    import pydantic

    datetimes: tuple[type, ...] = (datetime, pydantic.AwareDatetime, pydantic.NaiveDatetime)
    datetimes += (pydantic.PastDatetime, pydantic.FutureDatetime)
    return [
        ((bool,), pa.bool_()),
        ((int,), pa.int64()),
        ((float,), pa.float64()),
        ((str,), pa.string()),
        (datetimes, pa.timestamp("us", tz="UTC")),  # naive values are taken as UTC by Arrow
        ((date, pydantic.PastDate, pydantic.FutureDate), pa.date32()),
    ]


def _literal_type(values: Sequence[Any]) -> tuple[pa.DataType, Converter | None]:
    import pyarrow as pa

    if all(isinstance(v, str) for v in values):
        return pa.string(), _enum_value
    if all(isinstance(v, bool) for v in values):
        return pa.bool_(), None
    if all(isinstance(v, int) for v in values):
        return pa.int64(), _enum_value
    return pa.string(), _json_text


def _enum_type(annotation: type[Enum]) -> tuple[pa.DataType, Converter | None]:
    import pyarrow as pa

    if issubclass(annotation, int):
        return pa.int64(), _enum_value
    if issubclass(annotation, str):
        return pa.string(), _enum_value
    return pa.string(), _json_text


def _scalar_type(annotation: Any, metadata: Sequence[Any]) -> tuple[pa.DataType, Converter | None]:
    """The Arrow type of a non-optional annotation, and how to convert dumped values."""
    import pyarrow as pa

    if get_origin(annotation) is Literal:
        return _literal_type(get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return _enum_type(annotation)
    if isinstance(annotation, type) and issubclass(annotation, Decimal):
        return _decimal_type(metadata), None
    if isinstance(annotation, type):
        for kinds, arrow_type in _class_types():
            if issubclass(annotation, kinds):
                return arrow_type, None
    return pa.string(), _json_text


def _column(name: str, annotation: Any, metadata: Sequence[Any]) -> ModelColumn:
    annotation, extra = _unwrap(annotation)
    metadata = [*metadata, *extra]
    nullable = False
    if get_origin(annotation) in (Union, types.UnionType):
        args = get_args(annotation)
        rest = [a for a in args if a is not type(None)]
        nullable = len(rest) < len(args)
        if len(rest) != 1:
            import pyarrow as pa

            return ModelColumn(name, pa.string(), nullable, _json_text)
        annotation, extra = _unwrap(rest[0])
        metadata = [*metadata, *extra]
    if annotation is Any or annotation is type(None):
        import pyarrow as pa

        return ModelColumn(name, pa.string(), True, _json_text)
    arrow_type, convert = _scalar_type(annotation, metadata)
    return ModelColumn(name, arrow_type, nullable, convert)


def model_columns(model: type[BaseModel]) -> list[ModelColumn]:
    """The output columns of a model: its fields in order, then its computed fields."""
    columns = [
        _column(name, field.annotation, field.metadata)
        for name, field in model.model_fields.items()
        if not field.exclude
    ]
    for name, computed in model.model_computed_fields.items():
        columns.append(_column(name, computed.return_type, []))
    return columns

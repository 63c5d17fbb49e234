"""Row validation against a pydantic model, with quarantine and a failure budget.

Valid rows leave in the model's shape (its fields, in order, with Arrow types derived
from the annotations once, at declaration); invalid rows are either fatal or stored in
the quarantine table with a one-line reason, and the run fails when more of them than
``max_invalid`` allows have been seen.

Each batch is first validated in one call through ``TypeAdapter(list[model])``, and only
a batch that holds invalid rows is validated again row by row (to keep the valid ones).
Measured on 100k rows of six fields: 251 ms in bulk against 293 ms row by row for a
clean batch; a batch with invalid rows costs about both together.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

from runner.errors import ConfigError, FatalError, ValidationFailedError
from runner.pipeline.context import QUARANTINE_TABLE
from runner.pipeline.steps import Transformer
from runner.tools.transform._python_values import batch_rows

if TYPE_CHECKING:
    import pyarrow as pa
    from pydantic import BaseModel, ValidationError

    from runner.pipeline.context import RunContext

OnError = Literal["fail", "skip"]
Converter = Callable[[Any], Any]

DEFAULT_DECIMAL = (38, 9)


@dataclass
class _Counts:
    """Rows seen and rejected so far in one run."""

    seen: int = 0
    invalid: int = 0


@dataclass(frozen=True)
class _Column:
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


def _column(name: str, annotation: Any, metadata: Sequence[Any]) -> _Column:
    annotation, extra = _unwrap(annotation)
    metadata = [*metadata, *extra]
    nullable = False
    if get_origin(annotation) in (Union, types.UnionType):
        args = get_args(annotation)
        rest = [a for a in args if a is not type(None)]
        nullable = len(rest) < len(args)
        if len(rest) != 1:
            import pyarrow as pa

            return _Column(name, pa.string(), nullable, _json_text)
        annotation, extra = _unwrap(rest[0])
        metadata = [*metadata, *extra]
    if annotation is Any or annotation is type(None):
        import pyarrow as pa

        return _Column(name, pa.string(), True, _json_text)
    arrow_type, convert = _scalar_type(annotation, metadata)
    return _Column(name, arrow_type, nullable, convert)


def model_columns(model: type[BaseModel]) -> list[_Column]:
    """The output columns of a model: its fields in order, then its computed fields."""
    columns = [
        _column(name, field.annotation, field.metadata)
        for name, field in model.model_fields.items()
        if not field.exclude
    ]
    for name, computed in model.model_computed_fields.items():
        columns.append(_column(name, computed.return_type, []))
    return columns


def _error_lines(errors: Sequence[Any], skip: int) -> str:
    """Pydantic's errors for one row as ``field: message; field: message`` on one line."""
    parts = []
    for error in errors:
        path = ".".join(str(p) for p in error["loc"][skip:]) or "(row)"
        message = " ".join(str(error["msg"]).split())
        parts.append(f"{path}: {message}")
    return "; ".join(parts)


class Validate(Transformer):
    """Validates each row against a pydantic v2 model; see :func:`validate`."""

    name = "validate"

    def __init__(
        self,
        model: type[BaseModel],
        *,
        on_error: OnError = "fail",
        max_invalid: int | float | None = None,
    ) -> None:
        import pyarrow as pa
        from pydantic import BaseModel, TypeAdapter

        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigError(f"validate needs a pydantic model class, not {model!r}")
        if on_error not in ("fail", "skip"):
            raise ConfigError(f"validate: on_error must be 'fail' or 'skip', not {on_error!r}")
        if max_invalid is not None:
            if on_error != "skip":
                raise ConfigError(
                    "validate: max_invalid needs on_error='skip' (with 'fail' the first "
                    "invalid row already stops the run)"
                )
            if isinstance(max_invalid, bool) or not isinstance(max_invalid, int | float):
                raise ConfigError(f"validate: max_invalid must be a number, not {max_invalid!r}")
            if isinstance(max_invalid, int) and max_invalid < 0:
                raise ConfigError(f"validate: max_invalid must be 0 or more, not {max_invalid}")
            if isinstance(max_invalid, float) and not 0 < max_invalid < 1:
                raise ConfigError(
                    "validate: a fractional max_invalid must be between 0 and 1 "
                    f"(exclusive), not {max_invalid}"
                )
        self.model = model
        self.on_error = on_error
        self.max_invalid = max_invalid
        self.columns = model_columns(model)
        self.schema = pa.schema([pa.field(c.name, c.type, c.nullable) for c in self.columns])
        self._converted = [(c.name, f) for c in self.columns if (f := c.convert) is not None]
        self._adapter = TypeAdapter(list[model])  # type: ignore[valid-type]

    def describe(self) -> str:
        """E.g. ``validate(Order, on_error=skip, max_invalid=0.01)``."""
        policy = f", on_error={self.on_error}"
        if self.max_invalid is not None:
            policy += f", max_invalid={self.max_invalid}"
        return f"{self.step_name}({self.model.__name__}{policy})"

    def _counts(self, ctx: RunContext) -> _Counts:
        """Counters of this run, in its step state (the step serves every run at once)."""
        counts: _Counts = ctx.step_state(self).setdefault("counts", _Counts())
        return counts

    def transform(self, batch: pa.RecordBatch, ctx: RunContext) -> pa.RecordBatch | None:
        """Validate the batch; pass the valid rows on, quarantine or fail on the others."""
        from pydantic import ValidationError

        counts = self._counts(ctx)
        rows = batch_rows(batch)
        try:
            models = self._adapter.validate_python(rows)
            invalid: list[tuple[int, str]] = []
        except ValidationError as exc:
            if self.on_error == "fail":
                raise self._first_invalid(exc, counts.seen) from None
            models, invalid = self._one_by_one(rows)
        counts.seen += len(rows)
        counts.invalid += len(invalid)
        if invalid:
            records, reasons = self._as_read(batch, rows, invalid, ctx)
            ctx.quarantine(records, reasons, step=self.step_name)
        self._check_budget(counts)
        return self._to_batch(models) if models else None

    def _as_read(
        self,
        batch: pa.RecordBatch,
        rows: list[dict[str, Any]],
        invalid: list[tuple[int, str]],
        ctx: RunContext,
    ) -> tuple[list[Mapping[str, Any]], list[str]]:
        """The invalid rows as the source wrote them, where it can say, with their reasons.

        A batch holds a key a JSON record lacked as null; the source's own record has
        only the keys it had, and validating it names the real fault ("Field required"
        rather than "Input should be a valid string").
        """
        from pydantic import ValidationError

        originals = ctx.source_records(batch, [i for i, _ in invalid])
        records: list[Mapping[str, Any]] = []
        reasons: list[str] = []
        for (index, reason), original in zip(invalid, originals, strict=True):
            records.append(rows[index] if original is None else original)
            why = reason
            if original is not None:
                try:
                    self.model.model_validate(original)
                except ValidationError as exc:
                    errors = exc.errors(
                        include_url=False, include_context=False, include_input=False
                    )
                    why = _error_lines(errors, skip=0)
            reasons.append(why)
        return records, reasons

    @property
    def takes_rejected(self) -> bool:
        """With ``on_error="skip"`` rows a reader rejects are quarantined like invalid ones."""
        return self.on_error == "skip"

    def take_rejected(
        self, ctx: RunContext, rows: list[dict[str, Any]], reasons: list[str], step: str
    ) -> None:
        """Quarantine rows an earlier step rejected; they count toward ``max_invalid``.

        A count budget is checked at once; a fraction when this step next sees rows, or
        when the extraction ends (the rows kept beside the rejected ones come later).
        """
        counts = self._counts(ctx)
        counts.seen += len(rows)
        counts.invalid += len(rows)
        ctx.quarantine(rows, reasons, step=step)
        if not isinstance(self.max_invalid, float):
            self._check_budget(counts)

    def check_rejected(self, ctx: RunContext) -> None:
        """Check the budget once the extraction is over."""
        self._check_budget(self._counts(ctx))

    def _first_invalid(self, exc: ValidationError, seen: int) -> FatalError:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        index = min(int(e["loc"][0]) for e in errors)
        reason = _error_lines([e for e in errors if e["loc"][0] == index], skip=1)
        return FatalError(
            f"{self.describe()}: row {seen + index + 1} of the run (index {index} of its batch) "
            f"is invalid: {reason}"
        )

    def _one_by_one(
        self, rows: list[dict[str, Any]]
    ) -> tuple[list[BaseModel], list[tuple[int, str]]]:
        from pydantic import ValidationError

        validate = self.model.model_validate
        models: list[BaseModel] = []
        invalid: list[tuple[int, str]] = []
        for index, row in enumerate(rows):
            try:
                models.append(validate(row))
            except ValidationError as exc:
                errors = exc.errors(include_url=False, include_context=False, include_input=False)
                invalid.append((index, _error_lines(errors, skip=0)))
        return models, invalid

    def _check_budget(self, counts: _Counts) -> None:
        limit = self.max_invalid
        if limit is None or not counts.invalid:
            return
        if isinstance(limit, float):
            exceeded = counts.invalid / counts.seen > limit
            allowed = f"{limit:.2%} of the rows"
        else:
            exceeded = counts.invalid > limit
            allowed = f"{limit} rows"
        if exceeded:
            raise ValidationFailedError(
                f"{self.describe()}: {counts.invalid} of {counts.seen} rows seen so far are "
                f"invalid, more than max_invalid allows ({allowed}); the invalid rows are in "
                f"{QUARANTINE_TABLE}"
            )

    def _to_batch(self, models: list[BaseModel]) -> pa.RecordBatch:
        """Build the output from the models' dumps (``model_dump()``), typed by the schema."""
        import pyarrow as pa

        dumped: list[dict[str, Any]] = self._adapter.dump_python(models)
        for name, convert in self._converted:
            for row in dumped:
                row[name] = convert(row.get(name))
        try:
            return pa.RecordBatch.from_pylist(dumped, schema=self.schema)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            pass
        for field in self.schema:  # the slow path only names the column that does not fit
            try:
                pa.array([row.get(field.name) for row in dumped], field.type)
            except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
                hint = (
                    " (declare max_digits/decimal_places on the field)"
                    if pa.types.is_decimal(field.type)
                    else ""
                )
                raise FatalError(
                    f"{self.describe()}: validated values of {field.name!r} do not fit "
                    f"{field.type}{hint}: {exc}"
                ) from None
        raise FatalError(f"{self.describe()}: validated rows cannot be converted to Arrow")


def validate(
    model: type[BaseModel],
    *,
    on_error: OnError = "fail",
    max_invalid: int | float | None = None,
) -> Validate:
    """Validate every row against ``model``, a pydantic v2 model class.

    Valid rows continue as the model dumps them (its fields, in order; Arrow types from
    the annotations: int→int64, float→float64, str→string, bool→bool,
    datetime→timestamp[us, UTC] (naive taken as UTC), date→date32, Decimal→decimal128
    (38, 9) or the field's max_digits/decimal_places, ``X | None``→nullable, anything
    else→string (JSON text)).  Input columns the model does not declare are dropped.

    ``on_error="fail"`` stops the run at the first invalid row; ``"skip"`` stores invalid
    rows in the quarantine table with their reasons and goes on.  ``max_invalid`` (with
    ``"skip"``) fails the run with ValidationFailedError once more rows are invalid than
    allowed: an int is a count for the whole run, a float in (0, 1) a fraction of the
    rows seen so far, checked after each batch (so a small first batch weighs a lot).
    """
    return Validate(model, on_error=on_error, max_invalid=max_invalid)

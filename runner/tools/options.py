"""Declared options of a tool, validated by pydantic when the pipeline module is imported.

A tool's options are a frozen, strict model (no coercion of ``"5"`` to 5, no ``True`` for
an integer, no unknown names), so a typo in a pipeline file fails ``runner list`` with one
line naming the tool and the option, not a run at 3 a.m.  Validation errors leave as
:class:`~runner.errors.ConfigError` (exit 3) without pydantic's echo of the input, since
options such as headers hold secrets.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from runner.errors import ConfigError


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a non-empty string")
    return value


NonBlank = Annotated[str, AfterValidator(_non_blank)]
"""A string with something other than white space in it."""


def _dotted(value: str) -> str:
    if not value or any(not part for part in value.split(".")):
        raise ValueError(f"must be a dotted path such as 'data.items', not {value!r}")
    return value


DottedPath = Annotated[str, AfterValidator(_dotted)]
"""A path into a JSON document such as ``data.items`` (no empty segments)."""


def first_problem(label: str, exc: ValidationError) -> str:
    """The first validation error of ``exc`` as one line: ``label: field: message``."""
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return f"{label}: {where}: {message}" if where else f"{label}: {message}"


class ToolOptions(BaseModel):
    """Base of every tool's option model: strict, frozen, unknown names refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    label: ClassVar[str] = ""
    """How errors name the tool (the class name when empty)."""

    def __init__(self, /, **data: Any) -> None:
        """Validate ``data``; a problem is one ConfigError line, not a ValidationError."""
        try:
            super().__init__(**data)
        except ValidationError as exc:
            label = type(self).label or type(self).__name__
            raise ConfigError(first_problem(label, exc)) from None


M = TypeVar("M", bound=ToolOptions)


def parse_options(model: type[M], label: str, **values: Any) -> M:
    """``model(**values)``, its one-line error naming the tool as ``label`` instead.

    For tools whose label depends on an argument (``append(events)``: the table a loader
    writes).  A validator that raises a ConfigError of its own (a glob's or an
    identifier's grammar) gets the label too.
    """
    try:
        return model(**values)
    except ConfigError as exc:
        text = str(exc).removeprefix(f"{model.label or model.__name__}: ")
        raise type(exc)(f"{label}: {text}") from None

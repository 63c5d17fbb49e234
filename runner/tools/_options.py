"""Tool options checked by pydantic models, refused in one line that names tool and field.

A tool's factory hands its keyword arguments to a :class:`ToolOptions` model once, at
declaration; the first problem becomes a :class:`~runner.errors.ConfigError` such as
``read_csv: block_size: input should be greater than 0, not 0``.  Checks that pydantic
cannot express (a glob's syntax, a pyarrow type) are validators on the model raising
``ValueError``; a :class:`~runner.errors.ConfigError` raised by one passes unchanged.
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from runner.errors import ConfigError

__all__ = ["ToolOptions", "parse_options"]

_SHOWN = reprlib.Repr()  # (Python 3.11 takes no keywords)
_SHOWN.maxstring = _SHOWN.maxother = 60


class ToolOptions(BaseModel):
    """Options of one tool: strict types (no "3" for 3), unknown names refused."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, arbitrary_types_allowed=True
    )


M = TypeVar("M", bound=ToolOptions)


def parse_options(model: type[M], tool: str, **values: Any) -> M:
    """``values`` checked by ``model``; a ConfigError naming ``tool`` and the field if not."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(f"{tool}: {_first_problem(exc)}") from None
    except ConfigError as exc:  # a validator with its own complete words (e.g. a glob's)
        raise type(exc)(f"{tool}: {exc}") from None


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = _field_path(error["loc"])
    message = str(error["msg"])
    if error["type"] == "value_error":  # our validators' own words, which show the value
        message = message.removeprefix("Value error, ")
    else:
        message = f"{message[:1].lower()}{message[1:]}, not {_SHOWN.repr(error['input'])}"
    return f"{field}: {message}" if field else message


def _field_path(loc: Sequence[int | str]) -> str:
    """``column_types['a']`` for the location ``("column_types", "a")``."""
    if not loc:
        return ""
    head, *rest = loc
    return str(head) + "".join(f"[{part!r}]" for part in rest)

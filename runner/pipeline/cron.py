"""Checking cron schedules the way a Kubernetes CronJob reads them, with precise messages.

croniter alone says only valid or not, and accepts more than Kubernetes does (``L``,
``W``, ``#``, day-of-week 7, backwards ranges).  This module checks each of the five
fields against what the CronJob controller accepts and names the first problem:
``day-of-month 32 out of range (1-31)``.  croniter's own validation stays as a backstop,
and a schedule that never fires (``0 0 30 2 *``) is refused too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

MACROS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
_PROBE = datetime(2000, 1, 1)  # a leap year's start: Feb 29 schedules fire soon after
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@dataclass(frozen=True)
class _Field:
    label: str
    low: int
    high: int
    names: dict[str, int] = field(default_factory=dict)
    note: str = ""


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, {name: i + 1 for i, name in enumerate(_MONTHS)}),
    _Field("day-of-week", 0, 6, {name: i for i, name in enumerate(_DAYS)}, ", Sunday is 0"),
)


class CronError(ValueError):
    """A schedule Kubernetes would refuse or that never fires; the message says why."""


def check_cron(expression: str) -> str:
    """The normalised schedule (single spaces), or a CronError naming the bad field."""
    from croniter import CroniterBadDateError, croniter

    text = " ".join(expression.split())
    if text.startswith("@"):
        if text in MACROS:
            return text
        raise CronError(
            f"invalid cron schedule {expression!r}: unknown macro {text!r} "
            f"(use one of {', '.join(sorted(MACROS))})"
        )
    parts = text.split(" ") if text else []
    if len(parts) != len(_FIELDS):
        raise CronError(
            f"invalid cron schedule {expression!r}: expected five fields "
            f"'minute hour day-of-month month day-of-week' (e.g. '*/15 * * * *') or a macro "
            f"such as @daily, got {len(parts)}"
        )
    for spec, part in zip(_FIELDS, parts, strict=True):
        problem = _field_problem(spec, part)
        if problem:
            raise CronError(f"invalid cron schedule {expression!r}: {problem}")
    if not croniter.is_valid(text):  # pragma: no cover - the field check is stricter
        raise CronError(f"invalid cron schedule {expression!r}: not understood by croniter")
    try:  # '0 0 30 2 *' is valid syntax, but a run would find no window
        croniter(text, _PROBE).get_next(datetime)
    except CroniterBadDateError:
        raise CronError(
            f"cron schedule {expression!r} never fires (a day the month never has?); "
            "leave schedule unset for a manual-only pipeline"
        ) from None
    return text


def _field_problem(spec: _Field, text: str) -> str | None:
    """What is wrong with one field (a list of items: *, N, N-M, each with an optional /S)."""
    for item in text.split(","):
        problem = (
            _item_problem(spec, item) if item else f"{spec.label} {text!r} has an empty list item"
        )
        if problem:
            return problem
    return None


def _item_problem(spec: _Field, item: str) -> str | None:
    base, slash, step = item.partition("/")
    if slash and not step.isdigit():
        return f"{spec.label} step {step!r} is not a number"
    if slash and int(step) == 0:
        return f"{spec.label} step must be at least 1, not {step}"
    if base == "*" or (base == "?" and spec.label.startswith("day-of")):
        return None
    first, dash, last = base.partition("-")
    low, problem = _value(spec, first)
    high, last_problem = _value(spec, last) if dash else (low, None)
    if problem or last_problem:
        return problem or last_problem
    if low > high:
        return f"{spec.label} range {base!r} runs backwards ({first} is after {last})"
    return None


def _value(spec: _Field, token: str) -> tuple[int, str | None]:
    """One number or name of a field, with what is wrong with it."""
    if token.isdigit():
        number = int(token)
        if not spec.low <= number <= spec.high:
            return number, (
                f"{spec.label} {number} out of range ({spec.low}-{spec.high}{spec.note})"
            )
        return number, None
    if token.lower() in spec.names:
        return spec.names[token.lower()], None
    names = list(spec.names)
    or_name = f" or a name ({names[0]}-{names[-1]})" if names else ""
    return 0, f"{spec.label} {token!r} is not a number ({spec.low}-{spec.high}){or_name}"

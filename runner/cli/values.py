"""Command-line values turned into domain objects once, at the edge, with the flag named.

The domain raises UsageError naming the value (``'tomorrow' is not an ISO 8601 date``);
only here is it known which flag carried it, so only here is the flag's name added.
Services and backfills then take Window and Step objects, never strings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from runner.pipeline.backfill import Step
    from runner.pipeline.windows import Window


def _instant(text: str, flag: str) -> datetime:
    from runner.pipeline.windows import parse_instant

    try:
        return parse_instant(text)
    except UsageError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def window_option(start: str | None, end: str | None) -> Window | None:
    """``--start``/``--end`` as one Window, or None when neither is given."""
    from runner.pipeline.windows import Window

    if start is None and end is None:
        return None
    if start is None or end is None:
        given, missing = ("--start", "--end") if end is None else ("--end", "--start")
        raise UsageError(f"{given} needs {missing}: a window is [start, end)")
    first, last = _instant(start, "--start"), _instant(end, "--end")
    try:
        return Window(first, last)
    except UsageError as exc:
        raise UsageError(f"--start/--end: {exc}") from None


def range_option(start: str, end: str) -> Window:
    """The required ``--start``/``--end`` of a backfill."""
    window = window_option(start, end)
    assert window is not None  # noqa: S101 - both were given
    return window


def step_option(text: str) -> Step:
    """``--step`` as a Step."""
    from runner.pipeline.backfill import parse_step

    try:
        return parse_step(text)
    except UsageError as exc:
        raise UsageError(f"--step: {exc}") from None


def params_option(values: Iterable[str]) -> dict[str, str]:
    """Repeated ``--param KEY=VALUE`` as a dict (a later KEY wins)."""
    params: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param {value!r}: expected KEY=VALUE")
        params[key.strip()] = val
    return params


def window_from_pair(pair: tuple[str, str], where: str) -> Window:
    """A window read from configuration (a backfill pod's env), named ``where``."""
    from runner.pipeline.windows import Window, parse_instant

    try:
        return Window(parse_instant(pair[0]), parse_instant(pair[1]))
    except UsageError as exc:
        raise ConfigError(f"{where}: {exc}") from None

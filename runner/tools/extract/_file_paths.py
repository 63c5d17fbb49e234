"""Which files a file source reads for one run: patterns, globs and window templates.

A pattern is a path or a glob (``data/*.csv``, ``data/**/*.jsonl.gz``), relative to the
working directory at run time.  A pattern holding ``{window_start:FORMAT}`` is a window
template: it is expanded over every period of the run's window at the granularity of
its finest strftime directive (``%d`` a day, ``%H`` an hour, ``%m`` a month ...), so a
run opens only its window's files.  Periods are taken in UTC unless a time zone is given.

A pattern (or a period of a template) that matches no file is an error by default: a
window whose file has not arrived must not be recorded as a successful empty run, or a
backfill of missing windows would never redo it.  ``missing_files="skip"`` allows gaps.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias

from runner.errors import ConfigError, FatalError

if TYPE_CHECKING:
    from runner.pipeline.windows import Window

Paths: TypeAlias = "str | os.PathLike[str] | Sequence[str | os.PathLike[str]]"
MissingFiles = Literal["fail", "skip"]

#: The one placeholder of a window template: the start of each period of the window.
PLACEHOLDER = "window_start"

#: More periods than this in one window is almost certainly a template finer than meant.
MAX_PERIODS = 100_000

_GLOB_CHARS = frozenset("*?[")
_PLACEHOLDER_LIKE = re.compile(r"(?<!\{)\{[A-Za-z_]\w*[:!}]")


class Unit(IntEnum):
    """Granularity of a template, finest first."""

    SECOND = 1
    MINUTE = 2
    HOUR = 3
    DAY = 4
    WEEK = 5
    MONTH = 6
    YEAR = 7


# strftime directives and the period they name; zone names and '%%' name none
_DIRECTIVES: dict[str, Unit | None] = {
    **dict.fromkeys("ScXTr", Unit.SECOND),
    **dict.fromkeys("MR", Unit.MINUTE),
    **dict.fromkeys("HIpkl", Unit.HOUR),
    **dict.fromkeys("djaAwueDFx", Unit.DAY),
    **dict.fromkeys("UWV", Unit.WEEK),
    **dict.fromkeys("mbBh", Unit.MONTH),
    **dict.fromkeys("YyGC", Unit.YEAR),
    **dict.fromkeys("zZ%n t", None),
}
_DIRECTIVE = re.compile(r"%[-_0^#]?(.)")
_STEPS = {
    Unit.SECOND: timedelta(seconds=1),
    Unit.MINUTE: timedelta(minutes=1),
    Unit.HOUR: timedelta(hours=1),
}


def is_glob(pattern: str) -> bool:
    """Whether ``pattern`` holds glob wildcards."""
    return any(ch in _GLOB_CHARS for ch in pattern)


def is_template(pattern: str) -> bool:
    """Whether ``pattern`` holds a placeholder (``{name}``, ``{name:...}``): a window template.

    Any placeholder counts, so a misspelt or unsupported one is refused at declaration
    instead of being looked for as a literal file name.
    """
    return _PLACEHOLDER_LIKE.search(pattern) is not None


@dataclass(frozen=True)
class Template:
    """A checked window template and the granularity of its periods."""

    text: str
    unit: Unit

    @classmethod
    def parse(cls, text: str) -> Template:
        """Check the placeholders at declaration; find the finest directive."""
        units: list[Unit] = []
        try:
            fields = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise ConfigError(
                f"paths: {text!r}: {exc} (write a literal brace as '{{{{' or '}}}}')"
            ) from None
        for _, name, spec, conversion in fields:
            if name is None:
                continue
            if name != PLACEHOLDER or conversion:
                raise ConfigError(
                    f"paths: {text!r}: only {{{PLACEHOLDER}:FORMAT}} may be used in a path "
                    f"(found {{{name}}}; write a literal brace as '{{{{' or '}}}}')"
                )
            for directive in _DIRECTIVE.findall(spec or ""):
                if directive not in _DIRECTIVES:
                    raise ConfigError(
                        f"paths: {text!r}: %{directive} is not a supported strftime "
                        "directive (use %Y %m %d %H %M %S %j %V ...)"
                    )
                unit = _DIRECTIVES[directive]
                if unit is not None:
                    units.append(unit)
        if not units:
            raise ConfigError(
                f"paths: {text!r}: give {{{PLACEHOLDER}}} a strftime format naming its "
                f"period, e.g. {{{PLACEHOLDER}:%Y/%m/%d}}"
            )
        return cls(text, min(units))

    def render(self, period: datetime) -> str:
        """The pattern of one period."""
        return self.text.format(**{PLACEHOLDER: period})

    def patterns(self, window: Window, zone: tzinfo) -> list[tuple[str, datetime]]:
        """One pattern per period overlapping the window, in time order, without repeats."""
        seen: set[str] = set()
        result: list[tuple[str, datetime]] = []
        for period in periods(window, self.unit, zone):
            pattern = self.render(period)
            if pattern not in seen:
                seen.add(pattern)
                result.append((pattern, period))
        return result


def _too_many(window: Window, count: int, unit: Unit) -> FatalError:
    return FatalError(
        f"the window {window} spans {count} periods of a {unit.name.lower()}, more than "
        f"{MAX_PERIODS}: a path template that fine is not meant for a window that long"
    )


def periods(window: Window, unit: Unit, zone: tzinfo) -> list[datetime]:
    """Starts of the periods of ``unit`` (wall clock of ``zone``) overlapping the window.

    Hours and finer are stepped in absolute time, so a clock change neither invents an
    hour that does not exist nor (rendered twice) reads one twice; days and longer follow
    the zone's calendar.
    """
    start, end = window.start, window.end
    last_instant = end - timedelta(microseconds=1)
    if unit in _STEPS:
        step = _STEPS[unit]
        local = start.astimezone(zone)
        floor = {
            Unit.SECOND: local.replace(microsecond=0),
            Unit.MINUTE: local.replace(second=0, microsecond=0),
            Unit.HOUR: local.replace(minute=0, second=0, microsecond=0),
        }[unit].astimezone(UTC)
        count = -((floor - end) // step)
        if count > MAX_PERIODS:
            raise _too_many(window, count, unit)
        return [(floor + i * step).astimezone(zone) for i in range(count)]
    first = start.astimezone(zone).date()
    last = last_instant.astimezone(zone).date()
    days: list[date] = []
    if unit in (Unit.DAY, Unit.WEEK):
        count = (last - first).days + 1
        if count > MAX_PERIODS:
            raise _too_many(window, count, unit)
        days = [first + timedelta(days=i) for i in range(count)]
    else:
        year, month = first.year, first.month if unit is Unit.MONTH else 1
        while (year, month) <= (last.year, last.month if unit is Unit.MONTH else 1):
            days.append(date(year, month, 1))
            if unit is Unit.YEAR:
                year += 1
            else:
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return [datetime.combine(day, time(), tzinfo=zone) for day in days]


def check_patterns(paths: Paths) -> tuple[str, ...]:
    """Validate ``paths`` at declaration: non-empty strings, ``**`` only as a whole part."""
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    if not items:
        raise ConfigError("paths: give at least one file path or glob pattern")
    patterns: list[str] = []
    for item in items:
        if not isinstance(item, str | os.PathLike):
            raise ConfigError(f"paths: {item!r} is not a path or glob pattern")
        pattern = os.fspath(item)
        if not pattern.strip():
            raise ConfigError("paths: an empty string is not a path")
        for part in Path(pattern).parts:
            if "**" in part and part != "**":
                raise ConfigError(
                    f"paths: {pattern!r}: '**' must be a whole path part, as in 'data/**/*.csv'"
                )
        if is_template(pattern):
            Template.parse(pattern)
        patterns.append(pattern)
    return tuple(patterns)


def _shown(path: Path, cwd: Path, relative: bool) -> str:
    """How a file is named in logs, errors and the file-name column."""
    if relative:
        try:
            return str(path.relative_to(cwd))
        except ValueError:  # a pattern with '..' leaves the working directory
            pass
    return str(path)


def _matches(pattern: str, cwd: Path) -> tuple[list[Path], bool]:
    """Existing files of one (rendered) pattern, sorted; and whether it was relative."""
    given = Path(pattern).expanduser()
    relative = not given.is_absolute()
    if is_glob(pattern):
        # split the pattern itself (not cwd, which may hold '[' or '*') at its first wildcard
        parts = given.parts
        first = next(i for i, part in enumerate(parts) if is_glob(part))
        base = (cwd if relative else Path()) / Path(*parts[:first])
        return sorted(p for p in base.glob(str(Path(*parts[first:]))) if p.is_file()), relative
    full = cwd / given if relative else given
    if full.exists() and not full.is_file():
        raise FatalError(f"{pattern} is not a file")
    return ([full] if full.exists() else []), relative


@dataclass(frozen=True)
class Resolved:
    """The files of one run, and the patterns (or periods) that matched none."""

    files: list[tuple[Path, str]]
    missing: list[str]


def resolve_paths(
    patterns: Sequence[str],
    cwd: Path,
    *,
    window: Window | None = None,
    zone: tzinfo = UTC,
    missing_files: MissingFiles = "fail",
) -> Resolved:
    """Expand patterns (and window templates) into existing files, each with its shown name.

    Relative patterns are taken from ``cwd``.  With ``missing_files="fail"`` a pattern or
    a period matching no file fails the run before anything is read, naming every one.
    """
    seen: set[Path] = set()
    files: list[tuple[Path, str]] = []
    missing: list[str] = []
    for pattern in patterns:
        if is_template(pattern):
            if window is None:
                raise FatalError(f"{pattern!r} is a window template but the run has no window")
            expanded = [p for p, _ in Template.parse(pattern).patterns(window, zone)]
        else:
            expanded = [pattern]
        for concrete in expanded:
            matches, relative = _matches(concrete, cwd)
            if not matches:
                missing.append(concrete)
            for match in matches:
                if match not in seen:
                    seen.add(match)
                    files.append((match, _shown(match, cwd, relative)))
    if missing and missing_files == "fail":
        raise FatalError(_missing_message(patterns, missing, cwd, window))
    return Resolved(files, missing)


def _missing_message(
    patterns: Sequence[str], missing: list[str], cwd: Path, window: Window | None
) -> str:
    where = f" (relative to {cwd})" if any(not Path(m).is_absolute() for m in missing) else ""
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    if any(is_template(p) for p in patterns) and window is not None:
        return (
            f"no file for {len(missing)} of the window's periods: {shown}{where}; "
            "pass missing_files='skip' if periods without files are expected"
        )
    if len(missing) == 1 and not is_glob(missing[0]):
        return f"file {missing[0]} does not exist{where}"
    return f"no file matches {', '.join(repr(m) for m in missing[:5])}{where}"

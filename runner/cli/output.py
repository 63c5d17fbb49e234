"""How commands print: aligned tables, indented trees, and a backfill's progress.

Tables and trees go to stdout.  Progress goes to a terminal as a bar (stderr), or as one
JSON line per finished window on stdout when no one is watching.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import typer

from runner.errors import printable

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner.pipeline.windows import Window


def print_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    titles: Sequence[str] | None = None,
    empty: str = "-",
) -> None:
    """Columns padded to their widest cell, under ``titles`` (default: the keys in upper case).

    A missing or empty cell shows as ``empty``; control characters are escaped.
    """
    heads = [printable(t) for t in titles] if titles is not None else [c.upper() for c in columns]
    cells = [[printable(_cell(r.get(c), empty)) for c in columns] for r in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(heads)]
    typer.echo("  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)).rstrip())
    for row in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any, empty: str) -> str:
    return empty if value is None or value == "" else str(value)


def print_tree(node: Any, depth: int = 0) -> None:
    """Nested dicts and lists, two spaces per level; empty values left out."""
    pad = "  " * depth
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, dict | list) and value:
                typer.echo(f"{pad}{key}:")
                print_tree(value, depth + 1)
            elif value not in (None, [], {}, ""):
                typer.echo(f"{pad}{key}: {value}")
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict):
                typer.echo(f"{pad}-")
                print_tree(item, depth + 1)
            else:
                typer.echo(f"{pad}- {item}")


def span(window: Window) -> str:
    """``start .. end`` in ISO 8601."""
    return f"{window.start.isoformat()} .. {window.end.isoformat()}"


class Progress:
    """A tqdm bar on a terminal (stderr), one JSON line per finished window otherwise."""

    def __init__(self, name: str, total: int, *, bar: bool | None = None) -> None:
        self.name = name
        self.total = total
        self.finished = 0
        self.failures: list[tuple[Window, str]] = []
        self.bar: Any = None
        if sys.stderr.isatty() if bar is None else bar:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=f"backfill {name}", unit="window", file=sys.stderr)

    def __call__(self, window: Window, status: str, steps: dict[str, Any]) -> None:
        """Report one finished window (any status)."""
        self.finished += 1
        if status.startswith("failed"):
            self.failures.append((window, status))
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{window.start:%Y-%m-%d %H:%M} {status[:40]}")
            return
        rows = sum(int(s.get("rows_loaded", 0)) for s in steps.values())
        line = {
            "event": "backfill window finished",
            "pipeline": self.name,
            "window_start": window.start.isoformat(),
            "window_end": window.end.isoformat(),
            "status": status,
            "rows_loaded": rows,
            "done": self.finished,
            "total": self.total,
        }
        typer.echo(json.dumps(line))

    def close(self) -> None:
        """Remove the bar; on a terminal, list the failed windows below it."""
        if self.bar is None:
            return
        self.bar.close()
        for window, status in self.failures:
            typer.echo(f"  {span(window)}  {printable(status)}", err=True)

"""The ``runner`` command line: parse options, build settings, call one service, exit.

One module per command group (``pipelines``: list/show/run, ``migrate``, ``operations``:
status/health/state, ``backfill``, ``deploy``: render/check, ``query``), the options and
the error guard they share (``shared``), value parsing at the edge (``values``), and
printing (``output``).  ``app`` wires them into one root.  Every framework error becomes
one line on stderr and the exit code its class documents (see runner.errors).
"""

from __future__ import annotations

from runner.cli.app import app, main

__all__ = ["app", "main"]

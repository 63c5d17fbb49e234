"""Fault rules of the loopback server: answer with a status, reset the connection, or wait.

A test sets them through ``POST /__loopback__/faults`` (see clickhouse_http_server); each
rule matches a substring of the statement in one phase of a request and fires ``times``
times.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

#: Longest wait a delay rule may ask for: a fault never holds a test for long.
MAX_DELAY = 30.0


@dataclass
class Rule:
    """One fault rule (see the module docstring)."""

    match: str
    phase: str
    action: str
    times: int = 1
    status: int = 503
    body: str = "Service Unavailable"
    seconds: float = 0.0
    hits: int = 0

    def public(self) -> dict[str, Any]:
        """The rule as JSON."""
        return dict(self.__dict__)


class Faults:
    """Fault rules, shared by the request threads."""

    def __init__(self) -> None:
        self._rules: list[Rule] = []
        self._lock = threading.Lock()

    def replace(self, rules: list[dict[str, Any]]) -> None:
        """Install a new list of rules (validated: a typo must not pass as 'no fault')."""
        parsed = []
        for raw in rules:
            rule = Rule(**raw)
            if rule.phase not in {"body", "before", "after"}:
                raise ValueError(f"unknown phase {rule.phase!r}")
            if rule.action not in {"status", "reset", "delay"}:
                raise ValueError(f"unknown action {rule.action!r}")
            rule.seconds = min(float(rule.seconds), MAX_DELAY)
            parsed.append(rule)
        with self._lock:
            self._rules = parsed

    def listing(self) -> list[dict[str, Any]]:
        """Every rule with its hit count."""
        with self._lock:
            return [rule.public() for rule in self._rules]

    def take(self, phase: str, text: str) -> Rule | None:
        """The first rule of ``phase`` matching ``text`` that still has hits left."""
        lowered = text.lower()
        with self._lock:
            for rule in self._rules:
                if rule.phase != phase or rule.match.lower() not in lowered:
                    continue
                if rule.times == 0:
                    continue
                rule.times -= 1 if rule.times > 0 else 0
                rule.hits += 1
                return rule
        return None

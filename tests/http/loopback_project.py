"""A project on a loopback server, and how a test runs `runner` on it over HTTP(S)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopback_process import Loopback

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class HttpProject:
    """A project directory, its databases on the HTTPS server, and how to run `runner` on it."""

    root: Path
    database: str
    server: Loopback

    @property
    def state_database(self) -> str:
        """The framework's own database for this project."""
        return f"{self.database}_state"

    def env(self, **overrides: str | None) -> dict[str, str]:
        """The environment of a `runner` process on this project, over HTTPS."""
        env = {
            **os.environ,
            "RUNNER_PROJECT_DIR": str(self.root),
            "RUNNER_WAREHOUSE_URL": self.server.url(self.database),
            "RUNNER_CLICKHOUSE_PASSWORD": self.server.password,
            "RUNNER_STATE_DATABASE": self.state_database,
            "RUNNER_LOG_FORMAT": "json",
            "RUNNER_LOCK_BACKEND": "file",
            "RUNNER_LOCK_DIR": str(self.root / "locks"),
            "NO_PROXY": "127.0.0.1,localhost",
        }
        if self.server.ca_cert:
            env["RUNNER_TLS_CA_CERT"] = str(self.server.ca_cert)
        for name, value in overrides.items():  # None removes a variable
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def runner(
        self, *args: str, check: bool = True, timeout: float = 180, **env: str | None
    ) -> subprocess.CompletedProcess[str]:
        """Run `runner ARGS` in a subprocess; with ``check`` it must exit 0."""
        result = subprocess.run(
            [sys.executable, "-m", "runner", *args],
            env=self.env(**env),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check:
            assert result.returncode == 0, (args, result.returncode, result.stderr[-3000:])
        return result

    def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a query on the project's database, straight through clickhouse-connect."""
        client = self.server.client(database=self.database)
        try:
            return [tuple(r) for r in client.query(sql, parameters=parameters).result_rows]
        finally:
            client.close()

    def scalar(self, sql: str) -> Any:
        """The single value of a query."""
        return self.rows(sql)[0][0]

    def drop(self) -> None:
        """Drop the project's databases."""
        client = self.server.client()
        try:
            client.command(f"DROP DATABASE IF EXISTS `{self.database}`")
            client.command(f"DROP DATABASE IF EXISTS `{self.state_database}`")
        finally:
            client.close()


def make_project(
    root: Path,
    server: Loopback,
    *,
    pipelines: dict[str, str] | None = None,
    migrations: dict[str, str] | None = None,
    examples: bool = False,
) -> HttpProject:
    """A project directory at ``root`` with a fresh database name on ``server``.

    ``pipelines``/``migrations`` map file names to source text; ``examples`` copies the
    shipped pipelines/ and migrations/ first.
    """
    root.mkdir(parents=True)
    if examples:
        shutil.copytree(
            ROOT / "pipelines", root / "pipelines", ignore=shutil.ignore_patterns("__pycache__")
        )
        shutil.copytree(ROOT / "migrations", root / "migrations")
    for folder, files in (("pipelines", pipelines), ("migrations", migrations)):
        (root / folder).mkdir(exist_ok=True)
        for name, text in (files or {}).items():
            (root / folder / name).write_text(text)
    return HttpProject(root, f"http_{secrets.token_hex(5)}", server)

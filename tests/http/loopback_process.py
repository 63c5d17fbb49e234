"""Start, drive and stop a loopback ClickHouse server in its own process (tests, benchmarks).

chDB admits one database path per process, and a test process already has its own
embedded warehouse, so every server runs in a subprocess with its own chDB directory.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SERVER = HERE / "clickhouse_http_server.py"
START_TIMEOUT = 60.0


@dataclass
class Loopback:
    """A running server: where it listens, its credentials, and its control endpoints."""

    process: subprocess.Popen[str]
    port: int
    user: str
    password: str
    ca_cert: Path | None
    log: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def scheme(self) -> str:
        """``https`` when the server speaks TLS."""
        return "https" if self.ca_cert else "http"

    def url(self, database: str = "analytics", *, host: str = "127.0.0.1") -> str:
        """A warehouse URL for the runner (the user named, never the password)."""
        return f"{self.scheme}://{self.user}@{host}:{self.port}/{database}"

    def _control(self, path: str, method: str = "GET", body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.scheme}://127.0.0.1:{self.port}/__loopback__/{path}", data=data, method=method
        )
        context = None
        if self.ca_cert:
            import ssl

            context = ssl.create_default_context(cafile=str(self.ca_cert))
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return json.loads(response.read())

    def set_faults(self, *rules: dict[str, Any]) -> None:
        """Replace the server's fault rules (see clickhouse_http_server's docstring)."""
        self._control("faults", "POST", list(rules))

    def faults(self) -> list[dict[str, Any]]:
        """The fault rules with their hit counts."""
        return list(self._control("faults"))

    def requests(self) -> list[dict[str, Any]]:
        """The requests the server received since the last clear."""
        return list(self._control("requests"))

    def clear_requests(self) -> None:
        """Forget the requests received so far."""
        self._control("requests", "DELETE")

    def client(self, **options: Any) -> Any:
        """A clickhouse-connect client on this server (for checks from the test side)."""
        import clickhouse_connect

        if self.ca_cert:
            options.setdefault("ca_cert", str(self.ca_cert))
        options.setdefault("username", self.user)
        options.setdefault("password", self.password)
        return clickhouse_connect.get_client(
            host="127.0.0.1",
            port=self.port,
            secure=self.ca_cert is not None,
            autogenerate_session_id=False,
            **options,
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not go."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        if self.process.stdout:
            self.process.stdout.close()


def start_loopback(
    workdir: Path,
    *,
    user: str = "etl",
    password: str = "",
    tls: Any = None,
    extra_env: dict[str, str] | None = None,
) -> Loopback:
    """Start a server on 127.0.0.1 with its own chDB directory under ``workdir``.

    ``tls`` is a loopback_certs.TlsFiles (HTTPS) or None (plain HTTP).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "server.log"
    command = [sys.executable, str(SERVER), "--path", str(workdir / "chdb"), "--user", user]
    command += ["--password", password]
    if tls is not None:
        command += ["--tls-cert", str(tls.server_cert), "--tls-key", str(tls.server_key)]
    env = {**os.environ, **(extra_env or {})}
    with log.open("w") as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=HERE, env=env
        )
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    line = ""
    # a selector, not select.select: chDB keeps files open per pool thread, so by now this
    # process may hold descriptors above select()'s limit of 1024
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline and process.poll() is None:
            if selector.select(timeout=0.5):
                line = process.stdout.readline()
                break
    if not line.startswith("LISTENING "):
        process.kill()
        process.wait(timeout=15)
        raise RuntimeError(f"loopback server did not start: {log.read_text()[-2000:]}")
    return Loopback(
        process=process,
        port=int(line.split()[1]),
        user=user,
        password=password,
        ca_cert=tls.ca_cert if tls is not None else None,
        log=log,
    )

"""Attacks on secrecy through real `runner` processes: canary secrets pushed into every
channel a message can take (a step's exception, a traceback, log lines with nested
headers, a library's stdlib log record, `--param api_token=...`, a ClickHouse error that
echoes the URL and the request headers) must come out nowhere: not on stdout, stderr,
the per-run log file, `runner status`/`health`, nor the run history's error_message."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

PASSWORD = f"canary-pw-{secrets.token_hex(6)}/+@x"  # characters that URL-encode differently
TOKEN = f"canary-param-{secrets.token_hex(6)}"
SHAPED = f"canary-shape-{secrets.token_hex(6)}"  # never registered: only its shape hides it

LEAKY = """
    import logging
    import os
    from runner import el

    def extract(ctx):
        password = ctx.settings.clickhouse_password.get_secret_value()
        token = ctx.params["api_token"]
        shaped = os.environ["LEAKY_VALUE"]
        ctx.log.info(
            "calling the api",
            url=f"https://api.example/x?sessionid={shaped}&api_key={shaped}&page=1",
            request={"headers": {"Authorization": f"Bearer {shaped}"}, "body": [{"password": shaped}]},
        )
        ctx.log.info(f"password is {password}, token is {token}")
        logging.getLogger("some.library").warning(
            "GET /x?access_token=%s&signature=%s&token=%s", shaped, shaped, shaped
        )
        yield [{"i": 1}]
        raise RuntimeError(
            {
                "headers": {"Authorization": f"Bearer {shaped}"},
                "dsn": f"http://etl:{password}@clickhouse:8123/db",
                "why": f"bad {password} and {token}",
            }
        )

    pipeline = el("leaky", extract=extract, load=lambda batch: None)
"""


def forms(*values: str) -> list[str]:
    """Each secret as written, URL-encoded both ways, and as HTTP Basic credentials."""
    out = []
    for value in values:
        out += [value, quote(value, safe=""), quote_plus(value)]
        out.append(base64.b64encode(f"etl:{value}".encode()).decode())
    return out


def assert_hidden(texts: dict[str, str], *values: str) -> None:
    for where, text in texts.items():
        for form in forms(*values):
            assert form not in text, f"{form!r} leaked into {where}: {text[:3000]}"


def runner(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def history(env: dict[str, str], pipeline: str) -> list[dict[str, Any]]:
    """The run history rows of ``pipeline`` as stored (read by a separate process)."""
    code = (
        "import sys, json; from runner.settings import load_settings; "
        "from runner.warehouse.client import Warehouse; "
        "w = Warehouse.connect(load_settings()); "
        "rows = w.query_rows('SELECT status, error_class, error_message, steps FROM "
        "pipeline_runner.runs FINAL WHERE pipeline = {p:String}', {'p': sys.argv[1]}); "
        "print(json.dumps([dict(zip(['status', 'error_class', 'error_message', 'steps'], r)) "
        "for r in rows]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, pipeline],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "migrations").mkdir()
    (tmp_path / "pipelines" / "leaky_pipeline.py").write_text(textwrap.dedent(LEAKY))
    return tmp_path


@pytest.mark.slow
def test_secrets_pushed_into_every_channel_of_a_run_come_out_nowhere(project, tmp_path):
    env = {
        **os.environ,
        "RUNNER_PROJECT_DIR": str(project),
        "RUNNER_WAREHOUSE_URL": f"chdb://{tmp_path / 'wh'}",
        "RUNNER_CLICKHOUSE_PASSWORD": PASSWORD,
        "RUNNER_LOG_FORMAT": "json",
        "RUNNER_LOG_LEVEL": "debug",
        "RUNNER_LOG_DIR": str(tmp_path / "logs"),
        "RUNNER_LOCK_DIR": str(tmp_path / "locks"),
        "LEAKY_VALUE": SHAPED,
    }
    assert runner(env, "migrate").returncode == 0
    run = runner(env, "run", "leaky", "--param", f"api_token={TOKEN}")
    assert run.returncode == 1, run.stderr
    [log_file] = (tmp_path / "logs" / "leaky").glob("*.jsonl")
    status = runner(env, "status", "leaky", "-o", "json")
    table = runner(env, "status")
    health = runner(env, "health", "-o", "json")
    rows = history(env, "leaky")
    outputs = {
        "run stdout": run.stdout,
        "run stderr": run.stderr,
        "log file": log_file.read_text(),
        "status json": status.stdout + status.stderr,
        "status table": table.stdout + table.stderr,
        "health": health.stdout + health.stderr,
        "history": json.dumps(rows),
    }
    assert_hidden(outputs, PASSWORD, TOKEN, SHAPED)
    # the attacks really went through each channel (so this test can fail)
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("error: RuntimeError:")
    assert "'Authorization': 'REDACTED'" in line
    assert "bad REDACTED and REDACTED" in line
    events = [json.loads(x) for x in run.stdout.splitlines()]
    calling = next(e for e in events if e["event"] == "calling the api")
    assert calling["url"] == "https://api.example/x?sessionid=REDACTED&api_key=REDACTED&page=1"
    assert calling["request"] == {
        "headers": {"Authorization": "REDACTED"},
        "body": [{"password": "REDACTED"}],
    }
    assert any(e["event"] == "password is REDACTED, token is REDACTED" for e in events)
    library = next(e for e in events if e.get("logger") == "some.library")
    assert library["event"] == ("GET /x?access_token=REDACTED&signature=REDACTED&token=REDACTED")
    failed = next(e for e in events if e["event"] == "run failed")
    assert "Traceback" in failed["exception"]  # the traceback went to the log, scrubbed
    started = next(e for e in events if e["event"] == "run started")
    assert started["params"] == {"api_token": "REDACTED"}
    [row] = rows
    assert (row["status"], row["error_class"]) == ("failed", "FatalError")
    assert "bad REDACTED and REDACTED" in row["error_message"]
    assert json.loads(status.stdout)[0]["error_message"] == row["error_message"]


class EchoingClickHouse:
    """A local 'ClickHouse' whose every answer is an error echoing the URL and headers."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                server_self.seen.append(dict(self.headers.items()))
                host = self.headers.get("Host")
                dumped = "; ".join(f"{k}: {v}" for k, v in self.headers.items())
                body = (
                    f"Code: 516. DB::Exception: etl: Authentication failed for "
                    f"http://etl:{quote(PASSWORD, safe='')}@{host}{self.path} "
                    f"(password={PASSWORD}) request headers: {dumped}. (AUTHENTICATION_FAILED)"
                ).encode()
                self.send_response(500)
                self.send_header("Content-Type", "text/plain")
                self.send_header("X-ClickHouse-Exception-Code", "516")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _reply  # noqa: N815 - http.server's names

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def echoing_clickhouse() -> Iterator[EchoingClickHouse]:
    server = EchoingClickHouse()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.mark.slow
@pytest.mark.parametrize("where", ["setting", "url"])
def test_a_clickhouse_error_echoing_the_url_and_headers_shows_no_password(
    project, tmp_path, echoing_clickhouse, where
):
    env = {
        **os.environ,
        "RUNNER_PROJECT_DIR": str(project),
        "RUNNER_LOG_FORMAT": "json",
        "RUNNER_LOG_LEVEL": "debug",
        "RUNNER_LOG_DIR": str(tmp_path / "logs"),
        "RUNNER_LOCK_DIR": str(tmp_path / "locks"),
        "RUNNER_RETRY_ATTEMPTS": "1",
        "LEAKY_VALUE": SHAPED,
    }
    host = echoing_clickhouse.host
    if where == "setting":
        env |= {
            "RUNNER_WAREHOUSE_URL": f"http://etl@{host}/analytics",
            "RUNNER_CLICKHOUSE_PASSWORD": PASSWORD,
        }
    else:
        env["RUNNER_WAREHOUSE_URL"] = f"http://etl:{quote(PASSWORD, safe='')}@{host}/analytics"
    outputs = {}
    for command in (
        ["migrate"],
        ["run", "leaky", "--param", f"api_token={TOKEN}"],
        ["status"],
        ["health"],
        ["check"],
    ):
        result = runner(env, *command)
        assert result.returncode != 0, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        if command[0] in {"migrate", "run"}:  # the echo reached the user, scrubbed
            assert "password=REDACTED" in result.stderr, (command, result.stderr)
        outputs[f"{command[0]} stdout"] = result.stdout
        outputs[f"{command[0]} stderr"] = result.stderr
    for log in (tmp_path / "logs").rglob("*.jsonl"):
        outputs[str(log)] = log.read_text()
    # the password really reached the server, as HTTP Basic credentials
    basic = "Basic " + base64.b64encode(f"etl:{PASSWORD}".encode()).decode()
    assert any(h.get("Authorization") == basic for h in echoing_clickhouse.seen)
    assert_hidden(outputs, PASSWORD, TOKEN)

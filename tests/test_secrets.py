"""A canary secret - the ClickHouse password, a password inside the warehouse URL, an HTTP
bearer token - is used where it must be and shows up nowhere else: not in log lines, error
messages, `runner show/list/status/health` output, the per-run log file, `runner render`
output or a rendered manifest."""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from runner.cli import app

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "pipeline-runner"
CANARY = f"canary-{secrets.token_hex(8)}"


class Recorder:
    """A local HTTP server answering every GET/POST with one fixed reply; keeps headers."""

    def __init__(self, status: int, body: Any, echo_headers: bool = False) -> None:
        self.headers: list[dict[str, str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                seen = {k.lower(): v for k, v in self.headers.items()}
                recorder.headers.append(seen)
                payload = dict(body, headers=seen) if echo_headers else body
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _reply  # noqa: N815 - http.server's names

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def received_canary(self) -> bool:
        """Whether the secret was sent (plainly or in Basic auth) at least once."""
        for headers in self.headers:
            for value in headers.values():
                decoded = ""
                if value.startswith("Basic "):
                    decoded = base64.b64decode(value[6:]).decode(errors="replace")
                if CANARY in value or CANARY in decoded:
                    return True
        return False


@pytest.fixture
def serve() -> Iterator[Any]:
    started: list[Recorder] = []

    def start(status: int, body: Any, echo_headers: bool = False) -> Recorder:
        recorder = Recorder(status, body, echo_headers)
        threading.Thread(target=recorder.server.serve_forever, daemon=True).start()
        started.append(recorder)
        return recorder

    yield start
    for recorder in started:
        recorder.server.shutdown()
        recorder.server.server_close()


PIPELINE = """
    from runner import clickhouse_append, el
    from runner.tools.extract.http import http_json

    pipeline = el(
        "api",
        schedule="0 * * * *",
        description="pulls the API",
        extract=http_json(
            "{url}/items?api_key={canary}&page_size=10",
            auth_token_env="API_TOKEN",
            headers={{"X-Api-Key": "{canary}"}},
            max_retries=1,
            backoff_factor=0.001,
            timeout=2,
        ),
        load=clickhouse_append("items"),
    )
"""
MIGRATION = (
    "CREATE TABLE IF NOT EXISTS {{database}}.items (id Int64) ENGINE = MergeTree ORDER BY id;\n"
)


@pytest.fixture
def project(tmp_path):
    def make(api_url: str) -> Path:
        (tmp_path / "pipelines").mkdir(exist_ok=True)
        (tmp_path / "pipelines" / "api_pipeline.py").write_text(
            textwrap.dedent(PIPELINE).format(url=api_url, canary=CANARY)
        )
        (tmp_path / "migrations").mkdir(exist_ok=True)
        (tmp_path / "migrations" / "0001_items.sql").write_text(MIGRATION)
        return tmp_path

    return make


def invoke(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


def assert_hidden(*texts: str) -> None:
    for text in texts:
        assert CANARY not in text, text[:2000]


def test_the_token_reaches_the_api_and_nothing_else(serve, project, warehouse_path, tmp_path):
    # The API fails and echoes every request header (Authorization included) in its body.
    api = serve(500, {"error": "boom"}, echo_headers=True)
    root = project(api.url)
    database = f"secrets_{secrets.token_hex(4)}"
    env = {
        "RUNNER_PROJECT_DIR": str(root),
        "RUNNER_WAREHOUSE_URL": f"chdb://{warehouse_path}",
        "RUNNER_DATABASE": database,
        "RUNNER_STATE_DATABASE": f"{database}_state",
        "RUNNER_LOG_FORMAT": "json",
        "RUNNER_LOG_LEVEL": "debug",
        "RUNNER_LOG_DIR": str(tmp_path / "logs"),
        "RUNNER_CLICKHOUSE_PASSWORD": CANARY,
        "API_TOKEN": CANARY,
    }
    assert invoke(env, "migrate").exit_code == 0
    run = invoke(env, "run", "api")
    assert run.exit_code == 75, run.output
    assert api.received_canary()  # the secret was really used: this test can fail
    outputs = [run.stdout, run.stderr]
    for command in (
        ["list"],
        ["list", "-o", "json"],
        ["show", "api"],
        ["show", "api", "-o", "json"],
    ):
        result = invoke(env, *command)
        assert result.exit_code == 0, result.output
        outputs += [result.stdout, result.stderr]
    for command in (
        ["status"],
        ["status", "api", "-o", "json"],
        ["health"],
        ["health", "-o", "json"],
    ):
        result = invoke(env, *command)
        assert result.exit_code in (0, 1), result.output
        assert "REDACTED" in result.stdout or "api" in result.stdout
        outputs += [result.stdout, result.stderr]
    [log_file] = (tmp_path / "logs" / "api").glob("*.jsonl")
    outputs.append(log_file.read_text())
    assert_hidden(*outputs)
    assert "api_key=REDACTED" in run.stderr  # the URL is named, its key masked
    assert "REDACTED" in log_file.read_text()


@pytest.mark.parametrize("where", ["setting", "url"])
def test_the_clickhouse_password_reaches_the_server_and_nothing_else(
    serve, project, where, tmp_path
):
    clickhouse = serve(
        516,
        b"Code: 516. DB::Exception: etl: Authentication failed: password is incorrect, or "
        b"there is no user with such name. (AUTHENTICATION_FAILED) (version 25.8.1.1)",
    )
    root = project("http://127.0.0.1:9")
    host = clickhouse.url.removeprefix("http://")
    env = {
        "RUNNER_PROJECT_DIR": str(root),
        "RUNNER_LOG_FORMAT": "json",
        "RUNNER_LOG_LEVEL": "debug",
        "RUNNER_LOG_DIR": str(tmp_path / "logs"),
        "RUNNER_RETRY_ATTEMPTS": "1",
        "RUNNER_LOCK_DIR": str(tmp_path / "locks"),
    }
    if where == "setting":
        env |= {
            "RUNNER_WAREHOUSE_URL": f"http://etl@{host}/analytics",
            "RUNNER_CLICKHOUSE_PASSWORD": CANARY,
        }
    else:
        env["RUNNER_WAREHOUSE_URL"] = f"http://etl:{CANARY}@{host}/analytics"
    outputs = []
    for command in (["migrate"], ["run", "api"], ["status"], ["health"], ["check"]):
        result = invoke(env, *command)
        assert result.exit_code != 0, (command, result.output)
        assert (result.stderr + result.stdout).strip(), command
        outputs += [result.stdout, result.stderr]
    assert clickhouse.received_canary()
    assert_hidden(*outputs)
    for log in (tmp_path / "logs").rglob("*.jsonl"):
        assert_hidden(log.read_text())


@pytest.mark.parametrize(
    "url",
    [
        f"http://etl:{CANARY}@127.0.0.1:notaport/analytics",
        f"http://etl:{CANARY}@[::1/analytics",
        f"chdb://etl:{CANARY}@somewhere/analytics",
        f"mysql://etl:{CANARY}@127.0.0.1/analytics",
        f"http://etl:{CANARY}@127.0.0.1/bad-database-name",
    ],
    # fixed ids: the canary is random per process, and xdist workers must collect alike
    ids=["bad-port", "unclosed-ipv6", "chdb-with-user", "unknown-scheme", "bad-database"],
)
def test_a_bad_warehouse_url_is_refused_without_its_password(project, url):
    root = project("http://127.0.0.1:9")
    result = invoke({"RUNNER_PROJECT_DIR": str(root), "RUNNER_WAREHOUSE_URL": url}, "migrate")
    assert result.exit_code == 3, result.output
    assert "invalid" in result.stderr
    assert_hidden(result.stdout, result.stderr)


def test_runner_render_output_holds_no_secret(project, tmp_path):
    root = project("http://127.0.0.1:9")
    shutil.copytree(CHART, root / "chart")
    values = root / "chart" / "values.yaml"  # configures the example pipelines only
    values.write_text(yaml.safe_dump(yaml.safe_load(values.read_text()) | {"pipelines": {}}))
    env = {
        "RUNNER_PROJECT_DIR": str(root),
        "RUNNER_CLICKHOUSE_PASSWORD": CANARY,
        "RUNNER_WAREHOUSE_URL": f"http://etl:{CANARY}@127.0.0.1:1/analytics",
        "API_TOKEN": CANARY,
    }
    result = invoke(env, "render", "--chart", "chart")
    assert result.exit_code == 0, result.output
    rendered = root / "chart" / "templates" / "pipelines" / "api.yaml"
    assert rendered.is_file()
    assert_hidden(result.stdout, result.stderr, rendered.read_text())


@pytest.fixture(scope="module")
def helm3() -> Path:
    """The pinned Helm 3 (as tests/deploy/conftest.py fetches it; a failure fails)."""
    fetched = subprocess.run(
        [sys.executable, str(ROOT / "k8s" / "tools" / "get_helm.py"), "--print", "3"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if fetched.returncode != 0:
        pytest.fail(f"could not fetch Helm 3: {fetched.stderr.strip()}", pytrace=False)
    return Path(fetched.stdout.strip())


def helm_template(helm3: Path, *sets: str) -> subprocess.CompletedProcess[str]:
    args = [str(helm3), "template", "pipelines", str(CHART), "--namespace", "etl"]
    for value in sets:
        args += ["--set-string", value]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def test_the_chart_takes_the_password_from_a_secret_only(helm3):
    rendered = helm_template(helm3, "clickhouse.existingSecret=ch-prod")
    assert rendered.returncode == 0, rendered.stderr
    assert "secretKeyRef" in rendered.stdout
    assert "RUNNER_CLICKHOUSE_PASSWORD" in rendered.stdout
    for attempt in (
        f"clickhouse.password={CANARY}",
        f"clickhouse.url=http://etl:{CANARY}@clickhouse:8123/analytics",
        f"settings.RUNNER_CLICKHOUSE_PASSWORD={CANARY}",
        f"settings.RUNNER_API_TOKEN={CANARY}",
        f"settings.RUNNER_WAREHOUSE_URL=http://etl:{CANARY}@clickhouse:8123/analytics",
    ):
        refused = helm_template(helm3, attempt)
        assert refused.returncode != 0, f"{attempt} was accepted into a manifest"
        assert_hidden(refused.stdout, refused.stderr)

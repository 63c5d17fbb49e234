import io
import json

import structlog
from pydantic import SecretStr

from runner.log import REDACTED, configure_logging, get_logger
from runner.settings import Settings


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_json_lines_when_not_a_tty_with_bound_context_and_redaction(tmp_path):
    out = io.StringIO()
    tee = configure_logging(Settings(log_level="info"), stream=out)
    tee.open(tmp_path / "run.jsonl")
    with structlog.contextvars.bound_contextvars(pipeline="orders", run_id="r1"):
        log = get_logger(step="load")
        log.debug("hidden at info level")
        log.info(
            "loaded", rows=3, password="hunter2", api_token=SecretStr("t0k"), dsn=SecretStr("x")
        )
    tee.close()
    log.info("after close")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["loaded", "after close"]
    first = lines[0]
    assert first["pipeline"] == "orders"
    assert first["run_id"] == "r1"
    assert first["step"] == "load"
    assert first["level"] == "info"
    assert first["ts"].endswith("Z")
    assert first["password"] == first["api_token"] == first["dsn"] == REDACTED
    assert "hunter2" not in out.getvalue()
    copied = (tmp_path / "run.jsonl").read_text().splitlines()
    assert len(copied) == 1
    assert json.loads(copied[0])["event"] == "loaded"


def test_console_renderer_on_a_tty():
    out = FakeTTY()
    configure_logging(Settings(), stream=out)
    get_logger().info("hello", rows=1)
    text = out.getvalue()
    assert "hello" in text
    assert not text.lstrip().startswith("{")

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


def test_tracebacks_nested_values_and_messages_are_scrubbed_in_stdout_and_the_file(tmp_path):
    from runner.redaction import register_secret

    secret = "canary-log-0f9e8d7c"
    register_secret(secret)
    out = io.StringIO()
    tee = configure_logging(Settings(log_level="info"), stream=out)
    tee.open(tmp_path / "run.jsonl")
    log = get_logger()

    def fail() -> None:
        raise ValueError(f"bad {secret}")

    try:
        fail()
    except ValueError:
        log.exception("step failed", url=f"https://api/x?sessionid={secret}&page=1")
    log.info(
        f"echo {secret}",
        request={"headers": {"Authorization": "Bearer abc.def"}, "retries": [secret]},
    )
    tee.close()
    written = [out.getvalue(), (tmp_path / "run.jsonl").read_text()]
    for text in written:
        assert secret not in text
        assert "abc.def" not in text
    failed, echoed = (json.loads(line) for line in out.getvalue().splitlines())
    assert "ValueError: bad REDACTED" in failed["exception"]
    assert failed["url"] == "https://api/x?sessionid=REDACTED&page=1"
    assert echoed["event"] == "echo REDACTED"
    assert echoed["request"] == {"headers": {"Authorization": REDACTED}, "retries": [REDACTED]}


def test_standard_logging_records_go_through_the_same_pipeline(capsys):
    import logging

    out = io.StringIO()
    configure_logging(Settings(log_level="info"), stream=out)
    logging.getLogger("urllib3.connectionpool").warning(
        "retrying GET /items?api_key=%s", "k3y-from-a-library"
    )
    # a library's formatting bug, handed to our handler only (pytest's own would raise)
    bad_record = logging.LogRecord(
        "bad.library", logging.WARNING, "x", 1, "two %s %s", ("a",), None
    )
    [ours] = [h for h in logging.getLogger().handlers if type(h).__name__ == "_ToStructlog"]
    ours.emit(bad_record)
    line, bad = [json.loads(line) for line in out.getvalue().splitlines()]
    assert line["event"] == "retrying GET /items?api_key=REDACTED"
    assert line["logger"] == "urllib3.connectionpool"
    assert line["level"] == "warning"
    assert (bad["event"], bad["template"]) == ("unformattable log record", "two %s %s")
    assert capsys.readouterr().err == ""  # no "--- Logging error ---" traceback


def test_an_unusable_log_dir_is_a_config_error_naming_the_setting(tmp_path):
    import pytest

    from runner.errors import ConfigError

    (tmp_path / "a-file").write_text("")
    tee = configure_logging(Settings(), stream=io.StringIO())
    with pytest.raises(ConfigError, match=r"RUNNER_LOG_DIR: cannot write the run log .*a-file"):
        tee.open(tmp_path / "a-file" / "orders" / "r1.jsonl")


def test_an_uncaught_exception_is_one_scrubbed_line_on_stderr_and_a_logged_traceback(
    monkeypatch, capsys
):
    import sys
    import threading

    from runner.redaction import register_secret

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    secret = "canary-uncaught-5a4b3c"
    register_secret(secret)
    out = io.StringIO()
    configure_logging(Settings(), stream=out)

    def fail() -> None:
        raise OSError(f"cannot reach {secret}")

    try:
        fail()
    except OSError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    assert capsys.readouterr().err == "error: internal error: OSError: cannot reach REDACTED\n"
    [line] = [json.loads(x) for x in out.getvalue().splitlines()]
    assert line["event"] == "unexpected error"
    assert "Traceback" in line["exception"]
    assert secret not in out.getvalue()

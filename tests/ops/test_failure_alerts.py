"""A failed run sends one webhook; a receiver that hangs cannot hold the process up."""

import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime

import pytest
from http_receiver import running_receiver

from runner.ops.alerts import alert_body, send_failure_alert
from runner.ops.delivery import DeliveryError
from runner.ops.outcome import RunOutcome
from runner.ops.run_finished import JOIN_MARGIN_SECONDS, on_run_finished
from runner.redaction import REDACTED

PIPELINES = {
    "failing": """
        from runner import FatalError, el

        def load(batch, ctx):
            raise FatalError(f"the API refused token {ctx.params['api_token']}")

        pipeline = el("failing", extract=[{"i": 1}], load=load)
    """,
    "fine": """
        from runner import el

        pipeline = el("fine", extract=[{"i": 1}], load=lambda batch: None)
    """,
}
SECRET = "s3cr3t-t0ken-value"
WINDOW = ["--start", "2026-01-01", "--end", "2026-01-02"]


@pytest.fixture
def process_env(tmp_path):
    (tmp_path / "pipelines").mkdir()
    for name, body in PIPELINES.items():
        (tmp_path / "pipelines" / f"{name}_pipeline.py").write_text(textwrap.dedent(body))
    env = {
        "RUNNER_PROJECT_DIR": str(tmp_path),
        "RUNNER_WAREHOUSE_URL": f"chdb://{tmp_path / 'warehouse'}",
        "RUNNER_LOG_FORMAT": "json",
    }
    assert runner(env, "migrate").returncode == 0
    return env


def runner(env, *args):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def last_run(stdout):
    return [json.loads(line) for line in stdout.splitlines() if '"run finished"' in line][-1]


def test_a_failed_run_sends_exactly_one_webhook_without_secrets(process_env):
    with running_receiver() as hook:
        env = {**process_env, "RUNNER_ALERT_WEBHOOK_URL": f"{hook.url}/services/T0/B0/hooktoken1"}
        failed = runner(env, "run", "failing", *WINDOW, "--param", f"api_token={SECRET}")
        succeeded = runner(env, "run", "fine", *WINDOW)
    assert failed.returncode == 1, failed.stderr
    assert succeeded.returncode == 0, succeeded.stderr
    [alert] = hook.requests  # one for the failure, none for the success
    assert (alert.method, alert.path) == ("POST", "/services/T0/B0/hooktoken1")
    assert alert.headers["Content-Type"] == "application/json"
    body = json.loads(alert.body)
    run = last_run(failed.stdout)
    assert body["pipeline"] == "failing"
    assert body["run_id"] == run["run_id"]
    assert (body["window_start"], body["window_end"]) == (
        "2026-01-01T00:00:00+00:00",
        "2026-01-02T00:00:00+00:00",
    )
    assert body["exit_code"] == 1
    assert body["status"] == "failed"
    assert body["error"].startswith(f"the API refused token {REDACTED} [pipeline=failing")
    assert body["text"].startswith(f"pipeline-runner: failing run {run['run_id']} failed")
    assert SECRET not in alert.body.decode()
    assert "hooktoken1" not in failed.stdout + failed.stderr  # the URL is a secret too


def exit_delay(env):
    """Run the failing pipeline; seconds from its `run finished` line to the process's exit."""
    result = runner(env, "run", "failing", *WINDOW, "--param", "api_token=x")
    exited = time.time()
    finished = datetime.fromisoformat(last_run(result.stdout)["ts"]).timestamp()
    return result, exited - finished


def test_a_hanging_receiver_delays_the_exit_by_its_timeout_at_most(process_env):
    baseline, baseline_delay = exit_delay(process_env)
    with running_receiver(mode="hang") as hook:
        env = {
            **process_env,
            "RUNNER_ALERT_WEBHOOK_URL": hook.url,
            "RUNNER_ALERT_TIMEOUT_SECONDS": "2",
        }
        hung, hung_delay = exit_delay(env)
        assert hook.requests  # it was reached, and never answered
    assert (baseline.returncode, hung.returncode) == (1, 1)
    assert hung.stderr == baseline.stderr.replace(
        last_run(baseline.stdout)["run_id"], last_run(hung.stdout)["run_id"]
    )
    warnings = [json.loads(line) for line in hung.stdout.splitlines() if "alert not sent" in line]
    assert warnings, hung.stdout[-2000:]
    # waited for the budget (every attempt hung), then no longer than the join margin
    # plus what interpreter shutdown and a busy machine add to the baseline
    assert 2 <= hung_delay < 2 + JOIN_MARGIN_SECONDS + baseline_delay + 1.5


def outcome(**overrides):
    fields = {
        "pipeline": "orders",
        "run_id": "20260101T000000Z-abcd",
        "trigger": "schedule",
        "status": "failed",
        "finished_at": datetime(2026, 1, 1, 1, tzinfo=UTC),
        "duration_seconds": 1.5,
        "window_start": datetime(2026, 1, 1, tzinfo=UTC),
        "window_end": datetime(2026, 1, 1, 1, tzinfo=UTC),
        "exit_code": 75,
        "error_class": "RetriableError",
        "error": "GET https://api.example.com/x?api_key=abcdef123 timed out",
    }
    return RunOutcome(**{**fields, **overrides})


def alerting(runner_settings, url, **extra):
    return runner_settings.model_copy(update={"alert_webhook_url": url, **extra})


def test_server_errors_are_retried_and_client_errors_are_not(runner_settings):
    from pydantic import SecretStr

    with running_receiver(statuses=[503, 502, 200]) as hook:
        settings = alerting(runner_settings, SecretStr(hook.url))
        assert send_failure_alert(settings, outcome()) == 3
    with running_receiver(statuses=[404]) as hook:
        settings = alerting(runner_settings, SecretStr(hook.url))
        with pytest.raises(DeliveryError, match="HTTP 404"):
            send_failure_alert(settings, outcome())
        assert len(hook.requests) == 1
    with running_receiver(statuses=[500]) as hook:
        settings = alerting(runner_settings, SecretStr(hook.url), alert_attempts=2)
        with pytest.raises(DeliveryError, match="HTTP 500"):
            send_failure_alert(settings, outcome())
        assert len(hook.requests) == 2


def test_a_trickling_receiver_is_left_behind_at_the_deadline(runner_settings):
    from pydantic import SecretStr

    # one header byte every 0.1 s: no socket timeout ever fires
    with running_receiver(mode="trickle") as hook:
        settings = alerting(runner_settings, SecretStr(hook.url), alert_timeout_seconds=1.0)
        started = time.monotonic()
        on_run_finished(settings, outcome())
        waited = time.monotonic() - started
        assert len(hook.requests) == 1
    assert 1.0 <= waited < 1.0 + JOIN_MARGIN_SECONDS + 0.5


def test_nothing_is_sent_for_a_success_or_a_cancellation(runner_settings):
    from pydantic import SecretStr

    with running_receiver() as hook:
        settings = alerting(runner_settings, SecretStr(hook.url))
        on_run_finished(settings, outcome(status="succeeded", exit_code=0, error=""))
        on_run_finished(settings, outcome(status="cancelled", exit_code=130))
    assert hook.requests == []


def test_the_body_is_scrubbed_and_cut():
    body = alert_body(outcome())
    assert "abcdef123" not in json.dumps(body)
    assert body["exit_code"] == 75
    long = alert_body(outcome(error="x" * 5000))
    assert len(long["error"]) < 1100
    assert long["text"].endswith("...")


def test_a_run_without_urls_imports_no_metrics_code(process_env):
    probe = (
        "import sys\n"
        "from runner.cli.app import app\n"
        "try:\n"
        "    app(['run', 'fine', '--start', '2026-01-01', '--end', '2026-01-02'])\n"
        "except SystemExit as done:\n"
        "    assert done.code in (0, None), done.code\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('prometheus_client', 'runner.ops.m', 'runner.ops.a')))\n"
        "print('LOADED', loaded)\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={**clean, **process_env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout

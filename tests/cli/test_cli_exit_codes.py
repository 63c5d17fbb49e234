"""The one table of exit codes: README, `runner --help` and the error tree agree with
runner.errors.EXIT_CODES, and every row is what a real `runner` process exits with."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from runner import errors
from runner.errors import EXIT_CODES, ExitCode, RunnerError

README = Path(__file__).resolve().parents[2] / "README.md"

PIPELINES = {
    "numbers": """
        from runner import el

        pipeline = el("numbers", schedule="0 * * * *", extract=[{"i": 1}], load=lambda b: None)
    """,
    "failing": """
        from runner import FatalError, RetriableError, el

        def load(batch, ctx):
            if ctx.params.get("transient"):
                raise RetriableError("upstream timed out")
            raise FatalError("row 3 has no id")

        pipeline = el("failing", extract=[{"i": 1}], load=load)
    """,
    "slow": """
        import time
        from runner import el

        def extract():
            for i in range(600):
                time.sleep(0.05)
                yield [{"i": i}]

        pipeline = el("slow", extract=extract, load=lambda batch: None)
    """,
    "badcron": """
        from runner import el

        pipeline = el("badcron", schedule="0 0 32 * *", extract=[], load=print)
    """,
}


def readme_exit_codes():
    text = README.read_text()
    section = text[text.index("### Exit codes") :]
    section = section[: section.index("\n## ")]
    rows = re.findall(r"^\| (\d+) \| (.+?) \| (.+?) \|$", section, flags=re.MULTILINE)
    return {int(code): (meaning, kubernetes) for code, meaning, kubernetes in rows}


def test_the_readme_table_is_the_code_table():
    documented = readme_exit_codes()
    assert documented == {
        int(code): (doc.meaning, doc.kubernetes) for code, doc in EXIT_CODES.items()
    }


def error_classes():
    seen, todo = [], [RunnerError]
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return [c for c in seen if c.__module__ == errors.__name__]


def test_every_exit_code_is_described_and_every_error_class_uses_one():
    assert set(EXIT_CODES) == set(ExitCode)
    classes = error_classes()
    assert errors.UsageError in classes
    used = {cls.exit_code for cls in classes}
    assert used <= set(EXIT_CODES)
    assert used | {ExitCode.OK} == set(ExitCode)  # every code but 0 comes from an error class
    # the tree drawn in the module docstring names every class with its code
    for cls in classes:
        assert re.search(rf"{cls.__name__}\s+exit {int(cls.exit_code)}\b", errors.__doc__ or ""), (
            cls.__name__
        )


def test_help_prints_the_exit_codes_one_per_line():
    shown = subprocess.run(
        [sys.executable, "-m", "runner", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "\\b" not in shown
    assert "\b" not in shown
    lines = shown[shown.index("Exit codes:") :].splitlines()[1:]
    listed = [line.split(None, 1) for line in lines if line.strip()]
    assert [int(code) for code, _ in listed] == [int(code) for code in EXIT_CODES]
    assert [text for _, text in listed] == [doc.short for doc in EXIT_CODES.values()]


@pytest.fixture
def project(tmp_path):
    (tmp_path / "pipelines").mkdir()
    for name, body in PIPELINES.items():
        (tmp_path / "pipelines" / f"{name}_pipeline.py").write_text(textwrap.dedent(body))
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_t.sql").write_text(
        "CREATE TABLE IF NOT EXISTS {{database}}.t (i UInt8) ENGINE = MergeTree ORDER BY i"
    )
    return tmp_path


@pytest.fixture
def env(project, tmp_path):
    return {
        **os.environ,
        "RUNNER_PROJECT_DIR": str(project),
        "RUNNER_WAREHOUSE_URL": f"chdb://{tmp_path / 'warehouse'}",
        "RUNNER_LOG_FORMAT": "json",
        "RUNNER_LOCK_BACKEND": "file",
        "RUNNER_LOCK_DIR": str(tmp_path / "locks"),
    }


def runner(env, *args):
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_line(stderr):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.slow
def test_every_row_of_the_table_is_what_a_runner_process_exits_with(env, tmp_path):
    seen = {}
    # 4: the database is not there yet
    result = runner(env, "run", "numbers")
    seen[result.returncode] = one_line(result.stderr)
    # 2: a usage error, before anything else is looked at
    result = runner(env, "run", "numbers", "--start", "2026-01-02", "--end", "2026-01-01")
    seen[result.returncode] = one_line(result.stderr)
    # 3: a schedule no CronJob accepts
    result = runner(env, "list")
    assert "badcron" in result.stderr
    seen[result.returncode] = one_line(result.stderr)
    # 0
    assert runner(env, "migrate").returncode == 0
    result = runner(env, "run", "numbers", "--start", "2026-01-01", "--end", "2026-01-02")
    seen[result.returncode] = result.stderr
    # 1 and 75
    result = runner(env, "run", "failing")
    seen[result.returncode] = one_line(result.stderr)
    result = runner(env, "run", "failing", "-p", "transient=1")
    seen[result.returncode] = one_line(result.stderr)
    # 5: the pipeline's lock is held (here by this test process)
    from runner.settings import Settings
    from runner.state.locks import make_lock

    lock = make_lock(
        Settings(lock_backend="file", lock_dir=tmp_path / "locks", identity="holder-pod"),
        "run:numbers",
    )
    lock.acquire()
    try:
        result = runner(env, "run", "numbers")
    finally:
        lock.release()
    seen[result.returncode] = one_line(result.stderr)
    # 130: SIGTERM in the middle of a run
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", "slow"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        if '"run started"' in line or time.monotonic() > deadline:
            break
    time.sleep(0.5)  # the handlers go in just after "run started" is logged
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    seen[proc.returncode] = err

    assert set(seen) == {int(code) for code in EXIT_CODES}
    assert "run `runner migrate` first" in seen[4]
    assert "--start/--end: start 2026-01-02" in seen[2]
    assert "day-of-month 32 out of range (1-31)" in seen[3]
    assert "row 3 has no id" in seen[1]
    assert "upstream timed out" in seen[75]
    assert "holder-pod" in seen[5]
    assert "interrupted" in seen[130]

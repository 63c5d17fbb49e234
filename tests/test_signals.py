"""SIGTERM in every phase of a command: real `runner` subprocesses, real signals.

Kubernetes sends SIGTERM and, 30 s later, SIGKILL.  Whatever the command is waiting for
(ClickHouse, the database, the schema, a lock, a slow import), it must exit 130 well
before that, releasing what it holds: a Lease left behind would block the next run for its
TTL.  Each command below is given a wait of 10 minutes, so only the signal can end it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from k8s_apiserver import running_api

from runner.errors import ExitCode
from runner.signals import SignalStop, interrupt_on_signals, shielded, stop_on_signals
from runner.state.locks import lock_key

NS = "etl"
LONG_WAIT = "600"
EXIT_WITHIN = 60  # seconds: a bound for a hung process, far below every wait given


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "p_pipeline.py").write_text(
        "from runner import el\npipeline = el('p', extract=[], load=print)\n"
    )
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_t.sql").write_text(
        "CREATE TABLE {{database}}.t (a UInt8) ENGINE = MergeTree ORDER BY a"
    )
    return tmp_path


@pytest.fixture
def env(project: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RUNNER_", "KUBE"))}
    return base | {
        "RUNNER_PROJECT_DIR": str(project),
        "RUNNER_LOG_FORMAT": "json",
        "RUNNER_LOCK_BACKEND": "file",
        "RUNNER_IDENTITY": "signal-test",
    }


def lease_env(project: Path, url: str) -> dict[str, str]:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "users": [{"name": "runner", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "runner"}}],
        "current-context": "fake",
    }
    path = project / "kubeconfig"
    path.write_text(json.dumps(config))
    return {
        "KUBECONFIG": str(path),
        "RUNNER_LOCK_BACKEND": "lease",
        "RUNNER_LEASE_NAMESPACE": NS,
        "RUNNER_LOCK_TTL_SECONDS": "60",
    }


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "runner", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(proc: subprocess.Popen[str], event: str) -> list[str]:
    """Read stdout until a log line with ``event`` (the process is then waiting)."""
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if f'"event": "{event}"' in line:
            return seen
    _, err = proc.communicate(timeout=EXIT_WITHIN)
    pytest.fail(f"never logged {event!r}; exit {proc.returncode}: {err}\n{''.join(seen)}")


def terminate(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM, then the rest of the output; fails (and kills) a process that hangs."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=EXIT_WITHIN)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"still running {EXIT_WITHIN}s after SIGTERM:\n{err}\n{out}")


def assert_interrupted(proc: subprocess.Popen[str], err: str) -> None:
    assert proc.returncode == ExitCode.INTERRUPTED == 130, err
    # (clickhouse-connect itself warns "Unexpected Http Driver Exception" on stderr for
    # each refused connection; the runner's own words are one line, last)
    assert err.strip().splitlines()[-1] == "error: interrupted by SIGTERM"
    assert "Traceback" not in err


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_sigterm_while_migrate_waits_for_clickhouse(env):
    url = f"http://127.0.0.1:{closed_port()}/analytics"
    proc = start(env | {"RUNNER_WAREHOUSE_URL": url}, "migrate", "--wait-ready", LONG_WAIT)
    wait_for(proc, "warehouse not ready; retrying")
    out, err = terminate(proc)
    assert_interrupted(proc, err)
    assert "Traceback" not in out + err


def foreign_lease(name: str) -> dict:
    """A live Lease held by another pod (renewed just now, for ten minutes)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    spec = {"holderIdentity": "other-pod/1", "acquireTime": now, "renewTime": now}
    spec |= {"leaseDurationSeconds": 600, "leaseTransitions": 0}
    return {"metadata": {"name": lock_key(name)}, "spec": spec}


def test_sigterm_while_migrate_waits_for_the_migration_lease(env, project):
    with running_api() as kube:
        kube.put(NS, foreign_lease("migrate:analytics"))
        proc = start(env | lease_env(project, kube.url), "migrate", "--lock-timeout", LONG_WAIT)
        wait_for(proc, "lock busy; waiting")
        _, err = terminate(proc)
        assert_interrupted(proc, err)
        assert kube.get(NS, lock_key("migrate:analytics"))["spec"]["holderIdentity"] == (
            "other-pod/1"
        )
        assert kube.requests["POST"] == kube.requests["PUT"] == kube.requests["DELETE"] == 0


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from runner.state.locks import FileLock
lock = FileLock("migrate:analytics", Path(sys.argv[1]), identity="other/1")
lock.acquire()
print("locked", flush=True)
time.sleep(600)
"""


def test_sigterm_while_migrate_waits_for_the_migration_file_lock(env, project):
    lock_dir = project / ".warehouse" / "locks"
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(lock_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        lines = (holder.stdout.readline() for _ in range(20))
        assert "locked\n" in lines  # (a debug log line may come first)
        proc = start(env, "migrate", "--lock-timeout", LONG_WAIT)
        wait_for(proc, "lock busy; waiting")
        _, err = terminate(proc)
        assert_interrupted(proc, err)
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_sigterm_while_a_run_waits_for_the_database_releases_its_lease(env, project):
    """First install with migrations.hook=false: no database; the run holds its Lease."""
    with running_api() as kube:
        run_env = env | lease_env(project, kube.url) | {"RUNNER_SCHEMA_WAIT_SECONDS": LONG_WAIT}
        proc = start(run_env, "run", "p")
        wait_for(proc, "waiting for the database")
        assert kube.get(NS, lock_key("run:p")) is not None  # held while it waits
        out, err = terminate(proc)
        assert_interrupted(proc, err)
        assert kube.leases == {}  # deleted on the way out, not left for its 60 s TTL
        assert kube.requests["DELETE"] >= 2  # the pipeline's and the window's Lease
        assert '"event": "stopped by a signal; what was held is released"' in out


@pytest.mark.slow
def test_sigterm_while_a_run_waits_for_the_schema(env):
    assert start(env, "migrate", "--to", "0").wait(timeout=120) == 0  # database, no table
    proc = start(env | {"RUNNER_SCHEMA_WAIT_SECONDS": LONG_WAIT}, "run", "p")
    wait_for(proc, "waiting for migrations")
    _, err = terminate(proc)
    assert_interrupted(proc, err)
    again = subprocess.run(  # the file lock went with the process
        [sys.executable, "-m", "runner", "run", "p"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 4, again.stderr  # schema behind, not "already running"


def test_sigterm_while_a_pipeline_module_imports_is_not_a_broken_module(env, project):
    (project / "pipelines" / "slow_pipeline.py").write_text(
        "import structlog, time\n"
        "structlog.get_logger().info('slow import')\n"
        "time.sleep(600)\n"
        "from runner import el\n"
        "pipeline = el('slow', extract=[], load=print)\n"
    )
    proc = start(env, "run", "slow")
    wait_for(proc, "slow import")
    _, err = terminate(proc)
    assert_interrupted(proc, err)  # not exit 3, which would fail the Job for good


# -- the helpers, in this process ------------------------------------------------------


@pytest.fixture
def handlers():
    """Restore this process's handlers after a test installs its own."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_a_shielded_block_finishes_before_the_signal_is_raised(handlers):
    interrupt_on_signals()
    steps: list[str] = []

    def block() -> None:
        with shielded():
            os.kill(os.getpid(), signal.SIGTERM)
            steps.append("statement")
            with shielded():  # nested: still held
                steps.append("history row")
            steps.append("end of block")

    with pytest.raises(SignalStop, match="interrupted by SIGTERM"):
        block()
    assert steps == ["statement", "history row", "end of block"]
    os.kill(os.getpid(), signal.SIGTERM)  # already stopping: ignored, nothing raised
    steps.append("cleanup")
    assert steps[-1] == "cleanup"


def test_the_first_signal_raises_where_the_main_thread_waits(handlers):
    interrupt_on_signals()
    threading.Timer(0.2, os.kill, args=(os.getpid(), signal.SIGTERM)).start()
    with pytest.raises(SignalStop):
        time.sleep(600)


class Log:
    def __init__(self) -> None:
        self.events: list[str] = []

    def warning(self, event: str, **_: object) -> None:
        self.events.append(event)


def test_a_second_signal_ends_a_runs_grace_period_at_once(handlers):
    cancel, ended = threading.Event(), threading.Event()
    log = Log()
    with stop_on_signals(cancel, log, grace_seconds=600, on_deadline=ended.set):
        os.kill(os.getpid(), signal.SIGTERM)
        assert cancel.wait(5)
        assert not ended.wait(0.2)  # the run gets its grace period
        os.kill(os.getpid(), signal.SIGTERM)
        assert ended.wait(5)
    deadline = time.monotonic() + 5
    while len(log.events) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # logged from a helper thread, never inside the handler
    assert log.events == [
        "stop requested; finishing the current batch",
        "second stop request; ending the grace period now",
    ]


def test_outside_the_main_thread_the_helpers_do_nothing():
    outcome: list[object] = []

    def worker() -> None:
        interrupt_on_signals()
        with shielded(), stop_on_signals(threading.Event(), Log(), grace_seconds=1,
                                          on_deadline=lambda: None):  # fmt: skip
            outcome.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(10)
    assert outcome == [before]


def test_a_migration_statement_cut_by_sigterm_is_finished_and_recorded_first(
    handlers, runner_settings, warehouse, tmp_path
):
    """The signal lands while statement 1 runs: it is recorded, statement 2 never starts,
    and the next `runner migrate` resumes at statement 2 (without the shield, statement 1
    would have run unrecorded and run again)."""
    from runner.migrate.apply import FileState, Migrator

    (tmp_path / "0001_two.sql").write_text(
        "SELECT sleep(1);\nCREATE TABLE {{database}}.after (a UInt8) ENGINE = Memory;\n"
    )
    migrator = Migrator(warehouse, tmp_path, state_database=runner_settings.state_database)
    run_statement = warehouse.command

    def command(sql, *args, **kwargs):
        if "sleep(" in sql:  # the signal comes while the statement is on the server
            threading.Timer(0.2, os.kill, args=(os.getpid(), signal.SIGTERM)).start()
        return run_statement(sql, *args, **kwargs)

    warehouse.command = command
    interrupt_on_signals()
    with pytest.raises(SignalStop):
        migrator.apply()
    [status] = migrator.status()
    assert (status.state, status.applied_statements) == (FileState.PARTIAL, 1)
    tables = "SELECT count() FROM system.tables WHERE database = {db:String} AND name = 'after'"
    assert warehouse.query_rows(tables, {"db": warehouse.database}) == [(0,)]
    warehouse.command = run_statement
    [applied] = migrator.apply()
    assert applied.resumed_at == 2

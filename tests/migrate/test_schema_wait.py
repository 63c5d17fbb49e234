"""The schema gate waits, boundedly, for a migration that runs elsewhere (RUNNER_SCHEMA_WAIT_SECONDS).

With `migrations.hook=false` a GitOps tool starts the migration Job alongside the new
CronJobs; a run that comes first must wait for the schema (and, on a first install, for
the database itself) rather than fail its window.
The clock and the pauses are the test's, so nothing here depends on timing.
"""

import pytest

from runner.errors import DatabaseMissingError, NotReadyError
from runner.migrate.gate import LONGEST_PAUSE_SECONDS, open_when_ready, schema_gate
from runner.services.migrate import migrate


class FakeTime:
    """A monotonic clock that only moves when the gate pauses; runs ``on_pause`` each time."""

    def __init__(self, on_pause=None):
        self.now = 1000.0
        self.pauses = []
        self.on_pause = on_pause

    def clock(self):
        return self.now

    def sleep(self, seconds):
        assert seconds > 0
        self.pauses.append(seconds)
        self.now += seconds
        if self.on_pause:
            self.on_pause(len(self.pauses))


@pytest.fixture
def behind(runner_settings, warehouse, tmp_path):
    """Settings whose code needs migration 1, on a database at migration 0."""
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_t.sql").write_text(
        "CREATE TABLE {{database}}.t (a UInt8) ENGINE = MergeTree ORDER BY a"
    )
    return runner_settings.model_copy(update={"migrations_dir": directory})


def test_a_run_waits_for_a_migration_that_finishes_meanwhile(behind, warehouse):
    def migrate_on_third_pause(count):
        if count == 3:  # the migration Job finishes while the run waits
            migrate(behind)

    time = FakeTime(migrate_on_third_pause)
    settings = behind.model_copy(update={"schema_wait_seconds": 300})
    schema_gate(settings, warehouse, sleep=time.sleep, clock=time.clock)
    assert time.pauses == [1.0, 2.0, 4.0]  # growing pauses, re-reading the history each time


def test_the_wait_is_bounded_and_then_refused_with_exit_4(behind, warehouse):
    time = FakeTime()
    settings = behind.model_copy(update={"schema_wait_seconds": 100})
    with pytest.raises(NotReadyError) as caught:
        schema_gate(settings, warehouse, sleep=time.sleep, clock=time.clock)
    assert str(caught.value) == (
        "database schema is at migration 0, this code needs 1 after waiting 100s: "
        "run `runner migrate`"
    )
    assert caught.value.exit_code == 4
    assert sum(time.pauses) == pytest.approx(100)  # never past the budget
    assert max(time.pauses) <= LONGEST_PAUSE_SECONDS


def test_no_wait_by_default_and_for_runner_check(behind, warehouse):
    time = FakeTime()
    with pytest.raises(NotReadyError, match="this code needs 1: run"):
        schema_gate(behind, warehouse, sleep=time.sleep, clock=time.clock)
    waiting = behind.model_copy(update={"schema_wait_seconds": 300})
    with pytest.raises(NotReadyError):
        schema_gate(waiting, warehouse, wait_seconds=0, sleep=time.sleep, clock=time.clock)
    assert time.pauses == []


def test_the_setting_comes_from_the_environment(monkeypatch):
    from runner.errors import ConfigError
    from runner.settings import load_settings

    monkeypatch.setenv("RUNNER_SCHEMA_WAIT_SECONDS", "300")
    assert load_settings().schema_wait_seconds == 300
    monkeypatch.setenv("RUNNER_SCHEMA_WAIT_SECONDS", "-1")
    with pytest.raises(ConfigError, match="RUNNER_SCHEMA_WAIT_SECONDS"):
        load_settings()


@pytest.mark.slow
def test_runner_run_waits_then_exits_4_as_one_line(tmp_path):
    """A real `runner run` subprocess on its own embedded warehouse, schema behind."""
    import os
    import subprocess
    import sys

    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "p_pipeline.py").write_text(
        "from runner import el\npipeline = el('p', extract=[], load=print)\n"
    )
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_t.sql").write_text(
        "CREATE TABLE {{database}}.t (a UInt8) ENGINE = MergeTree ORDER BY a"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    env |= {"RUNNER_PROJECT_DIR": str(tmp_path), "RUNNER_LOG_FORMAT": "json"}

    def runner(*args, **extra):
        return subprocess.run(
            [sys.executable, "-m", "runner", *args],
            env=env | extra,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert runner("migrate", "--to", "0").returncode == 0  # the database, no table yet
    waited = runner("run", "p", RUNNER_SCHEMA_WAIT_SECONDS="2")
    assert waited.returncode == 4, waited.stderr
    [line] = waited.stderr.strip().splitlines()
    assert "this code needs 1 after waiting 2s" in line
    assert "waiting for migrations" in waited.stdout  # logged once, as JSON


# -- the database itself is missing (first install with migrations.hook=false) ----------


@pytest.fixture
def no_database(runner_settings, tmp_path):
    """Settings on the session warehouse whose database and state database do not exist."""
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_t.sql").write_text(
        "CREATE TABLE {{database}}.t (a UInt8) ENGINE = MergeTree ORDER BY a"
    )
    settings = runner_settings.model_copy(update={"migrations_dir": directory})
    yield settings
    from runner.warehouse.client import Warehouse

    cleanup = Warehouse.connect(settings, ensure_database=True)
    cleanup.command(f"DROP DATABASE IF EXISTS `{settings.state_database}`")
    cleanup.command(f"DROP DATABASE IF EXISTS `{settings.database}`")
    cleanup.close()


def connector(settings):
    from runner.warehouse.client import Warehouse

    attempts = []

    def connect():
        attempts.append(1)
        return Warehouse.connect(settings)

    return connect, attempts


def test_a_run_waits_for_the_database_and_then_its_schema(no_database):
    def migrate_on_second_pause(count):
        if count == 2:  # the migration Job creates the database and applies everything
            migrate(no_database)

    time = FakeTime(migrate_on_second_pause)
    settings = no_database.model_copy(update={"schema_wait_seconds": 300})
    connect, attempts = connector(settings)
    warehouse = open_when_ready(settings, connect, sleep=time.sleep, clock=time.clock)
    try:
        assert warehouse.database == settings.database
        assert warehouse.query_rows("SELECT count() FROM t") == [(0,)]
    finally:
        warehouse.close()
    assert len(attempts) == 3  # missing, missing, there
    assert time.pauses == [1.0, 2.0]


def test_a_database_created_before_its_migrations_waits_on_in_one_budget(no_database):
    from runner.warehouse.client import Warehouse

    def on_pause(count):
        if count == 1:  # the migration Job has created the database, not yet its tables
            Warehouse.connect(no_database, ensure_database=True).close()
        if count == 3:
            migrate(no_database)

    time = FakeTime(on_pause)
    settings = no_database.model_copy(update={"schema_wait_seconds": 300})
    connect, _ = connector(settings)
    open_when_ready(settings, connect, sleep=time.sleep, clock=time.clock).close()
    assert time.pauses == [1.0, 1.0, 2.0]  # the database wait, then the schema wait


def test_the_database_wait_is_bounded_by_the_same_setting(no_database):
    time = FakeTime()
    settings = no_database.model_copy(update={"schema_wait_seconds": 100})
    connect, _ = connector(settings)
    with pytest.raises(DatabaseMissingError) as caught:
        open_when_ready(settings, connect, sleep=time.sleep, clock=time.clock)
    assert caught.value.exit_code == 4
    message = str(caught.value)
    assert message.startswith(f"database {settings.database!r} does not exist in ")
    assert message.endswith("run `runner migrate` first (waited 100s)")
    assert sum(time.pauses) == pytest.approx(100)
    assert max(time.pauses) <= LONGEST_PAUSE_SECONDS


def test_without_a_wait_a_missing_database_fails_at_once(no_database):
    time = FakeTime()
    connect, attempts = connector(no_database)
    with pytest.raises(DatabaseMissingError, match=r"run `runner migrate` first$"):
        open_when_ready(no_database, connect, sleep=time.sleep, clock=time.clock)
    assert time.pauses == []
    assert len(attempts) == 1


def test_an_unreachable_warehouse_is_not_waited_for(no_database):
    """The wait is for migrations; ClickHouse being down is the Job's retry (exit 4)."""
    time = FakeTime()
    settings = no_database.model_copy(
        update={"schema_wait_seconds": 300, "warehouse_url": "http://127.0.0.1:9/analytics"}
    )
    connect, attempts = connector(settings)
    with pytest.raises(NotReadyError) as caught:
        open_when_ready(settings, connect, sleep=time.sleep, clock=time.clock)
    assert not isinstance(caught.value, DatabaseMissingError)
    assert len(attempts) == 1
    assert time.pauses == []


def test_runner_run_on_a_first_install_waits_for_the_database_then_exits_4(tmp_path):
    """`migrations.hook=false`: no database yet; a real `runner run` waits, then exits 4."""
    import os
    import subprocess
    import sys

    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "p_pipeline.py").write_text(
        "from runner import el\npipeline = el('p', extract=[], load=print)\n"
    )
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_t.sql").write_text(
        "CREATE TABLE {{database}}.t (a UInt8) ENGINE = MergeTree ORDER BY a"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    env |= {"RUNNER_PROJECT_DIR": str(tmp_path), "RUNNER_LOG_FORMAT": "json"}
    result = subprocess.run(
        [sys.executable, "-m", "runner", "run", "p"],
        env=env | {"RUNNER_SCHEMA_WAIT_SECONDS": "2"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 4, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "database 'analytics' does not exist" in line
    assert line.endswith("(waited 2s)")
    assert '"event": "waiting for the database"' in result.stdout

import json
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runner.cli import app
from runner.errors import ConfigError, FatalError, NotReadyError
from runner.migrate.apply import FileState, Migrator
from runner.migrate.files import discover, head_version, split_statements
from runner.migrate.gate import schema_gate
from runner.migrate.history import history_ddl
from runner.services.migrate import migrate, status

REPO_MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def test_statements_split_outside_quotes_and_comments():
    text = (
        "-- a comment; not a statement\n"
        "CREATE TABLE a (s String DEFAULT ';') ENGINE = Memory;\n"
        "/* block; comment */ INSERT INTO a VALUES ('it''s; fine'), ('x\\';y');\n"
        "\n"
        "SELECT `weird;name` FROM a"
    )
    statements = split_statements(text)
    assert [s.line for s in statements] == [2, 3, 5]
    assert statements[0].sql.endswith("DEFAULT ';') ENGINE = Memory")
    assert "'it''s; fine'" in statements[1].sql
    assert statements[2].sql == "SELECT `weird;name` FROM a"


def test_file_names_versions_and_placeholders(tmp_path):
    (tmp_path / "0002_second.sql").write_text("SELECT 2")
    (tmp_path / "0010_tenth.sql").write_text(
        "CREATE TABLE {{ database }}.t {{on_cluster}} (a UInt8)"
    )
    files = discover(tmp_path)
    assert [(f.version, f.name) for f in files] == [(2, "second"), (10, "tenth")]
    assert head_version(tmp_path) == 10
    [stmt] = files[1].statements({"database": "`db`", "on_cluster": ""})
    assert stmt.sql == "CREATE TABLE `db`.t  (a UInt8)"
    (tmp_path / "0011_bad.sql").write_text("SELECT 1;\nSELECT {{nope}}")
    with pytest.raises(ConfigError, match=r"0011_bad.sql:2: unknown placeholder \{\{nope\}\}"):
        discover(tmp_path)[-1].statements({"database": "d"})
    (tmp_path / "0002_again.sql").write_text("SELECT 1")
    with pytest.raises(ConfigError, match=r"version 2 is also used by"):
        discover(tmp_path)
    (tmp_path / "0002_again.sql").unlink()
    (tmp_path / "V3__flyway.sql").write_text("SELECT 1")
    with pytest.raises(ConfigError, match=r"V3__flyway\.sql: migration files are named NNNN_"):
        discover(tmp_path)
    assert discover(tmp_path / "missing") == []
    assert head_version(tmp_path / "missing") == 0


def test_checksums_ignore_trailing_blanks_but_not_content(tmp_path):
    (tmp_path / "0001_a.sql").write_text("SELECT 1;  \r\n\n")
    (tmp_path / "0002_a.sql").write_text("SELECT 1;")
    (tmp_path / "0003_a.sql").write_text("SELECT 2;")
    a, b, c = discover(tmp_path)
    assert a.checksum == b.checksum != c.checksum


@pytest.fixture
def migrations(tmp_path):
    directory = tmp_path / "migrations"
    directory.mkdir()
    return directory


@pytest.fixture
def migrator(warehouse, runner_settings, migrations):
    return Migrator(
        warehouse, migrations, state_database=runner_settings.state_database, applied_by="test"
    )


def states(migrator):
    return {s.version: (s.state.value, s.applied_statements) for s in migrator.status()}


def test_apply_from_empty_rerun_and_a_new_file(migrator, migrations, warehouse):
    (migrations / "0001_t.sql").write_text(
        "CREATE TABLE {{database}}.t (a UInt8) ENGINE = MergeTree ORDER BY a;\n"
        "INSERT INTO {{database}}.t VALUES (1);\n"
    )
    applied = migrator.apply()
    assert [(a.version, a.statements, a.resumed_at) for a in applied] == [(1, 2, 1)]
    assert migrator.apply() == []
    assert warehouse.query_rows("SELECT count() FROM t") == [(1,)]
    (migrations / "0005_more.sql").write_text("INSERT INTO {{database}}.t VALUES (5)")
    assert [a.version for a in migrator.apply()] == [5]
    assert warehouse.query_rows("SELECT count() FROM t") == [(2,)]
    assert states(migrator) == {1: ("applied", 2), 5: ("applied", 1)}
    assert migrator.history.current_version() == 5


def test_an_edited_file_is_refused_with_both_checksums_then_repaired(migrator, migrations):
    path = migrations / "0001_t.sql"
    path.write_text("CREATE TABLE {{database}}.t (a UInt8) ENGINE = Memory;")
    migrator.apply()
    old = discover(migrations)[0].checksum
    path.write_text("-- documented\nCREATE TABLE {{database}}.t (a UInt8) ENGINE = Memory;")
    new = discover(migrations)[0].checksum
    with pytest.raises(ConfigError) as info:
        migrator.apply()
    assert (
        f"0001_t.sql: changed after it was applied (recorded checksum {old}, file now {new})"
        in str(info.value)
    )
    assert "runner migrate repair" in str(info.value)
    assert [s.version for s in migrator.repair()] == [1]
    assert states(migrator) == {1: ("applied", 1)}
    assert migrator.apply() == []


def test_a_failing_statement_resumes_there_after_the_fix(migrator, migrations, warehouse):
    path = migrations / "0001_three.sql"
    body = (
        "CREATE TABLE {{database}}.a (x UInt8) ENGINE = MergeTree ORDER BY x;\n"
        "INSERT INTO {{database}}.a VALUES (1);\n"
        "INSERT INTO {{database}}.TARGET_TBL VALUES (2);\n"
    )
    path.write_text(body.replace("TARGET_TBL", "missing"))
    with pytest.raises(FatalError) as info:
        migrator.apply()
    message = str(info.value)
    assert "0001_three.sql:3: statement 3 of 3 failed" in message
    assert "UNKNOWN_TABLE" in message
    assert "resumes at statement 3" in message
    assert states(migrator) == {1: ("partial", 2)}
    path.write_text(body.replace("TARGET_TBL", "a"))  # the fix touches only statement 3
    [applied] = migrator.apply()
    assert (applied.resumed_at, applied.statements) == (3, 1)
    # statements 1 and 2 ran exactly once
    assert warehouse.query_rows("SELECT x FROM a ORDER BY x") == [(1,), (2,)]
    assert states(migrator) == {1: ("applied", 3)}


def test_a_partial_file_whose_applied_statements_changed_is_refused(migrator, migrations):
    path = migrations / "0001_p.sql"
    path.write_text("SELECT 1;\nSELECT * FROM nowhere;\n")
    with pytest.raises(FatalError):
        migrator.apply()
    path.write_text("SELECT 11;\nSELECT 2;\n")
    with pytest.raises(
        ConfigError, match=r"0001_p.sql:1: statement 1 changed after it was applied"
    ):
        migrator.apply()
    migrator.repair()
    [applied] = migrator.apply()
    assert applied.resumed_at == 2


def test_to_and_dry_run(runner_settings, warehouse, tmp_path):
    directory = tmp_path / "migrations"
    directory.mkdir()
    for version in (1, 2, 3):
        (directory / f"000{version}_v{version}.sql").write_text(
            f"CREATE TABLE {{{{database}}}}.t{version} (a UInt8) ENGINE = Memory"
        )
    report = migrate(runner_settings, dry_run=True, to=2)
    assert list(report.rendered) == [1, 2]
    assert report.rendered[1] == [
        f"CREATE TABLE `{warehouse.database}`.t1 (a UInt8) ENGINE = Memory"
    ]
    assert status(runner_settings).current == 0  # nothing changed
    report = migrate(runner_settings, to=2)
    assert [a.version for a in report.applied] == [1, 2]
    assert (report.current, report.head, report.at_head) == (2, 3, False)
    with pytest.raises(NotReadyError, match="schema is at migration 2, this code needs 3"):
        schema_gate(runner_settings, warehouse)
    migrate(runner_settings)
    schema_gate(runner_settings, warehouse)


def test_concurrent_migrators_apply_each_file_once(runner_settings, tmp_path, warehouse):
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_counter.sql").write_text(
        "CREATE TABLE {{database}}.applied (n UInt8) ENGINE = MergeTree ORDER BY n;\n"
        "INSERT INTO {{database}}.applied VALUES (1);\n"
    )
    errors = []

    def run():
        try:
            migrate(runner_settings, lock_wait=30)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert warehouse.query_rows("SELECT count() FROM applied") == [(1,)]


def test_the_cluster_variant_renders_on_cluster_and_a_replicated_history(warehouse, migrations):
    ddl = history_ddl("pipeline_runner", "main")
    assert ddl[0] == "CREATE DATABASE IF NOT EXISTS `pipeline_runner` ON CLUSTER `main`"
    assert "`pipeline_runner`.`schema_migrations` ON CLUSTER `main` (" in ddl[1]
    assert (
        "ENGINE = ReplicatedMergeTree('/clickhouse/pipeline_runner/pipeline_runner/schema_migrations', '{replica}')"
        in ddl[1]
    )
    assert "ENGINE = MergeTree ORDER BY" in history_ddl("pipeline_runner", None)[1]
    (migrations / "0001_t.sql").write_text(
        "CREATE TABLE {{database}}.t {{on_cluster}} (a UInt8) ENGINE = Memory"
    )
    clustered = Migrator(warehouse, migrations, state_database="s", cluster="main")
    [status_] = clustered.status()
    assert (
        clustered.rendered(status_)[0].sql
        == f"CREATE TABLE `{warehouse.database}`.t ON CLUSTER `main` (a UInt8) ENGINE = Memory"
    )


def test_the_projects_migrations_apply_cleanly(warehouse, runner_settings):
    Migrator(warehouse, REPO_MIGRATIONS, state_database=runner_settings.state_database).apply()
    tables = {
        r[0]
        for r in warehouse.query_rows(
            "SELECT name FROM system.tables WHERE database = {d:String}", {"d": warehouse.database}
        )
    }
    assert {"events", "customers", "daily_revenue", "_quarantine"} <= tables


def test_cli_status_json_and_exit_codes(runner_settings, tmp_path):
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_a.sql").write_text("CREATE TABLE {{database}}.a (x UInt8) ENGINE = Memory")
    env = {
        "RUNNER_PROJECT_DIR": str(tmp_path),
        "RUNNER_WAREHOUSE_URL": runner_settings.warehouse_url,
        "RUNNER_DATABASE": runner_settings.database,
        "RUNNER_STATE_DATABASE": runner_settings.state_database,
        "RUNNER_LOG_FORMAT": "json",
    }
    runner = CliRunner()
    pending = runner.invoke(app, ["migrate", "status", "-o", "json"], env=env)
    assert pending.exit_code == 4
    assert json.loads(pending.stdout)["files"][0]["state"] == "pending"
    dry = runner.invoke(app, ["migrate", "--dry-run"], env=env)
    assert dry.exit_code == 0
    assert "-- 0001_a.sql from statement 1" in dry.stdout
    assert runner.invoke(app, ["migrate"], env=env).exit_code == 0
    done = runner.invoke(app, ["migrate", "status"], env=env)
    assert done.exit_code == 0
    assert "0001     a     applied  1/1" in done.stdout
    (directory / "0001_a.sql").write_text("CREATE TABLE {{database}}.a (x UInt16) ENGINE = Memory")
    changed = runner.invoke(app, ["migrate", "status"], env=env)
    assert changed.exit_code == 3
    assert "changed after it was applied" in changed.stderr
    assert runner.invoke(app, ["migrate"], env=env).exit_code == 3
    assert runner.invoke(app, ["migrate", "repair"], env=env).exit_code == 0
    assert runner.invoke(app, ["migrate", "status"], env=env).exit_code == 0
    assert FileState.APPLIED.value == "applied"


def test_a_held_migration_lock_refuses_with_the_holder(runner_settings, tmp_path, warehouse):
    from runner.errors import AlreadyRunningError
    from runner.state.locks import make_lock

    settings = runner_settings.model_copy(update={"lock_backend": "file"})
    other = make_lock(
        settings.model_copy(update={"identity": "hook-job-7"}), f"migrate:{warehouse.database}"
    )
    other.acquire()
    try:
        with pytest.raises(AlreadyRunningError, match="hook-job-7"):
            migrate(settings, lock_wait=0.2)
    finally:
        other.release()
    migrate(settings, lock_wait=0.2)


def test_wait_ready_retries_then_gives_up_clearly(tmp_path):
    import socket
    import time

    from runner.services.migrate import connect_when_ready
    from runner.settings import Settings

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings(
        project_dir=tmp_path, warehouse_url=f"http://127.0.0.1:{port}/db", connect_timeout=1
    )
    started = time.monotonic()
    with pytest.raises(NotReadyError, match=f"cannot connect to http://127.0.0.1:{port}/db"):
        connect_when_ready(settings, wait_seconds=1.5)
    assert 1.0 <= time.monotonic() - started < 15


def test_state_tables_are_replicated_on_a_cluster():
    from runner.state.runs import runs_ddl
    from runner.state.watermarks import state_ddl

    for ddl, table in ((runs_ddl("meta", "main"), "runs"), (state_ddl("meta", "main"), "state")):
        assert f"`meta`.`{table}` ON CLUSTER `main`" in ddl
        assert (
            f"ReplicatedReplacingMergeTree('/clickhouse/pipeline_runner/meta/{table}', '{{replica}}', updated_at)"
            in ddl
        )
    assert "ENGINE = ReplacingMergeTree(updated_at)" in runs_ddl("meta", None)

"""Attacks on migrations: kills at any point, near-miss file names, placeholders in strings,
a busy or read-only embedded warehouse.

The exact states a kill can leave are written into the history by hand (fast, in-process);
the random-kill test then kills real `runner migrate` processes with SIGKILL.
"""

import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runner.cli import app
from runner.migrate.apply import FileState, Migrator
from runner.migrate.files import discover
from runner.migrate.history import History

# ---------------------------------------------------------------- exact post-kill states


@pytest.fixture
def project(tmp_path, runner_settings, warehouse):
    """A project dir on the session warehouse, and the env that points the CLI at it."""
    (tmp_path / "migrations").mkdir()
    env = {
        "RUNNER_PROJECT_DIR": str(tmp_path),
        "RUNNER_WAREHOUSE_URL": runner_settings.warehouse_url,
        "RUNNER_DATABASE": runner_settings.database,
        "RUNNER_STATE_DATABASE": runner_settings.state_database,
        "RUNNER_LOG_FORMAT": "json",
        "RUNNER_LOCK_BACKEND": "file",
    }
    return tmp_path, env


def cli(env, *args):
    return CliRunner().invoke(app, list(args), env=env)


def write(project_dir, name, sql):
    path = project_dir / "migrations" / name
    path.write_text(sql)
    return path


def history(runner_settings, warehouse):
    h = History(warehouse, runner_settings.state_database, None)
    h.ensure()
    return h


def record(h, migration, number, kind, attempt=""):
    """Write one history row as the migrator would have before it was killed."""
    raw = migration.raw_statements
    h.record(
        version=migration.version,
        name=migration.name,
        checksum=migration.checksum,
        statement=number,
        statements=len(raw),
        statement_checksum=raw[number - 1].checksum,
        kind=kind,
        duration_ms=1,
        applied_by="killed-pod-1",
        attempt=attempt,
    )


def ran(h, migration, number):
    """Statement ``number`` ran and was recorded (as the migrator records it)."""
    attempt = secrets.token_hex(8)
    record(h, migration, number, "started", attempt)
    record(h, migration, number, "statement", attempt)


def columns(warehouse, table):
    return [
        r[0]
        for r in warehouse.query_rows(
            "SELECT name FROM system.columns WHERE database = {d:String} AND table = {t:String} "
            "ORDER BY position",
            {"d": warehouse.database, "t": table},
        )
    ]


def history_kinds(warehouse, runner_settings, version):
    return [
        (r[0], r[1])
        for r in warehouse.query_rows(
            f"SELECT statement, kind FROM `{runner_settings.state_database}`.schema_migrations "
            "WHERE version = {v:UInt32} ORDER BY applied_at, statement",
            {"v": version},
        )
    ]


TWO = (
    "CREATE TABLE {{database}}.t (a UInt8) ENGINE = MergeTree ORDER BY a;\n"
    "ALTER TABLE {{database}}.t ADD COLUMN b String;\n"
)


@pytest.mark.parametrize("old_format", [True, False], ids=["rows-before-attempts", "attempts"])
def test_killed_before_the_completion_row_the_file_completes_instead_of_changed(
    project, runner_settings, warehouse, old_format
):
    """Attack 1a: every statement recorded, no completion row (kill between the two)."""
    project_dir, env = project
    write(project_dir, "0001_two.sql", TWO)
    [migration] = discover(project_dir / "migrations")
    h = history(runner_settings, warehouse)
    for number, statement in enumerate(
        migration.statements({"database": f"`{warehouse.database}`"}), 1
    ):
        warehouse.command(statement.sql)
        if old_format:  # what the migrator before attempts wrote
            record(h, migration, number, "statement")
        else:
            ran(h, migration, number)

    status = cli(env, "migrate", "status")
    assert status.exit_code == 4, status.output  # behind, not "changed" (3)
    assert "changed" not in status.output
    assert re.search(r"0001\s+two\s+partial\s+2/2", status.stdout)
    applied = cli(env, "migrate")
    assert applied.exit_code == 0, applied.output
    assert cli(env, "migrate", "status").exit_code == 0
    assert columns(warehouse, "t") == ["a", "b"]  # nothing ran twice
    assert history_kinds(warehouse, runner_settings, 1)[-1] == (0, "complete")


CHECKABLE = [
    # (file, statement applied by hand when the cut-off run "took effect", table, columns after)
    (
        "CREATE TABLE {{database}}.t (a UInt8) ENGINE = MergeTree ORDER BY a;\n"
        "ALTER TABLE {{database}}.t ADD COLUMN b String;\n",
        "t",
        ["a", "b"],
    ),
    (
        "CREATE TABLE {{database}}.t (a UInt8, old UInt8) ENGINE = MergeTree ORDER BY a;\n"
        "ALTER TABLE {{database}}.t RENAME COLUMN old TO new;\n",
        "t",
        ["a", "new"],
    ),
    (
        "CREATE TABLE {{database}}.t (a UInt8, gone UInt8) ENGINE = MergeTree ORDER BY a;\n"
        "ALTER TABLE {{database}}.t DROP COLUMN gone;\n",
        "t",
        ["a"],
    ),
    (
        "CREATE TABLE {{database}}.s (a UInt8) ENGINE = MergeTree ORDER BY a;\n"
        "CREATE TABLE {{database}}.t (a UInt8) ENGINE = MergeTree ORDER BY a;\n",
        "t",
        ["a"],
    ),
]


@pytest.mark.parametrize("took_effect", [True, False], ids=["ran", "never-sent"])
@pytest.mark.parametrize("body", [c[0] for c in CHECKABLE], ids=["add", "rename", "drop", "create"])
def test_a_cut_off_checkable_statement_is_looked_up_never_run_twice(
    project, runner_settings, warehouse, body, took_effect
):
    """Attack 1b: killed between sending statement 2 and recording it (or before sending)."""
    project_dir, env = project
    _, table, expected = next(c for c in CHECKABLE if c[0] == body)
    write(project_dir, "0001_x.sql", body)
    [migration] = discover(project_dir / "migrations")
    first, second = migration.statements({"database": f"`{warehouse.database}`"})
    h = history(runner_settings, warehouse)
    warehouse.command(first.sql)
    ran(h, migration, 1)
    record(h, migration, 2, "started", "cut-off")
    if took_effect:
        warehouse.command(second.sql)

    status = cli(env, "migrate", "status")
    assert status.exit_code == 4, status.output  # the next migrate settles it by itself
    result = cli(env, "migrate")
    assert result.exit_code == 0, result.output  # before: DUPLICATE_COLUMN etc. forever
    assert columns(warehouse, table) == expected
    kinds = history_kinds(warehouse, runner_settings, 1)
    settled = "verified-done" if took_effect else "verified-not-done"
    assert (2, settled) in kinds
    assert kinds.count((2, "statement")) == (0 if took_effect else 1)
    assert cli(env, "migrate", "status").exit_code == 0


SEED = (
    "CREATE TABLE {{database}}.seed (k String) ENGINE = MergeTree ORDER BY k;\n"
    "\n"
    "INSERT INTO {{database}}.seed VALUES ('a'), ('b');\n"
)


@pytest.mark.parametrize("took_effect", [True, False], ids=["ran", "never-sent"])
def test_a_cut_off_insert_is_never_rerun_by_itself_and_the_operator_resolves_it(
    project, runner_settings, warehouse, took_effect
):
    """Attack 1b: an INSERT cut off before its outcome was recorded."""
    project_dir, env = project
    write(project_dir, "0007_seed.sql", SEED)
    [migration] = discover(project_dir / "migrations")
    create, insert = migration.statements({"database": f"`{warehouse.database}`"})
    h = history(runner_settings, warehouse)
    warehouse.command(create.sql)
    ran(h, migration, 1)
    record(h, migration, 2, "started", "cut-off")
    if took_effect:
        warehouse.command(insert.sql)

    for args in (("migrate",), ("migrate", "status")):
        refused = cli(env, *args)
        assert refused.exit_code == 3, refused.output
        [line] = refused.stderr.strip().splitlines()
        assert "0007_seed.sql:3: statement 2 of 2 (INSERT) was started by killed-pod-1" in line
        assert "runner migrate resolve 7 2 --done" in line
        assert "--not-done" in line
    assert re.search(r"0007\s+seed\s+unresolved", cli(env, "migrate", "status").stdout)
    rows = warehouse.query_rows("SELECT count() FROM seed")[0][0]
    assert rows == (2 if took_effect else 0)  # the refusal ran nothing

    # the operator counted the rows and says what happened
    answer = "--done" if took_effect else "--not-done"
    assert cli(env, "migrate", "resolve", "7", "2", answer).exit_code == 0
    result = cli(env, "migrate")
    assert result.exit_code == 0, result.output
    assert warehouse.query_rows("SELECT k, count() FROM seed GROUP BY k ORDER BY k") == [
        ("a", 1),
        ("b", 1),
    ]
    assert cli(env, "migrate", "status").exit_code == 0
    # a statement that is not in doubt cannot be resolved
    again = cli(env, "migrate", "resolve", "7", "2", "--done")
    assert again.exit_code == 3
    assert "no run of unknown outcome" in again.stderr


def test_a_timed_out_insert_select_is_not_retried_and_goes_to_the_operator(
    project, runner_settings, warehouse
):
    """A transient error hides whether a statement ran: retrying it used to insert again."""
    project_dir, env = project
    write(
        project_dir,
        "0001_copy.sql",
        "CREATE TABLE {{database}}.t (n UInt64) ENGINE = MergeTree ORDER BY n;\n"
        "INSERT INTO {{database}}.t SELECT number + sleepEachRow(0.2) FROM numbers(20) "
        "SETTINGS max_execution_time = 1, max_block_size = 1, min_insert_block_size_rows = 1, "
        "max_threads = 1;\n",
    )
    timed_out = cli(env, "migrate")
    assert timed_out.exit_code == 75, timed_out.output  # transient: a retry of the Job is fine
    assert "TIMEOUT_EXCEEDED" in timed_out.stderr
    assert "settles it first (by asking you to check" in timed_out.stderr
    [[partial]] = warehouse.query_rows("SELECT count() FROM t")
    assert 0 < partial < 20  # some blocks landed before the timeout, once (not retried)
    assert history_kinds(warehouse, runner_settings, 1).count((2, "started")) == 1
    refused = cli(env, "migrate")
    assert refused.exit_code == 3
    assert "statement 2 of 2 (INSERT) was started by" in refused.stderr
    assert warehouse.query_rows("SELECT count() FROM t") == [(partial,)]


def test_status_does_not_call_a_statement_running_in_another_migrator_cut_off(
    project, runner_settings, warehouse
):
    """While a migrator holds the lock, its open INSERT is running, not cut off."""
    from runner.state.locks import make_lock

    project_dir, env = project
    write(project_dir, "0007_seed.sql", SEED)
    [migration] = discover(project_dir / "migrations")
    h = history(runner_settings, warehouse)
    warehouse.command(migration.statements({"database": f"`{warehouse.database}`"})[0].sql)
    ran(h, migration, 1)
    record(h, migration, 2, "started", "in-flight")
    settings = runner_settings.model_copy(
        update={"project_dir": project_dir, "lock_backend": "file", "identity": "hook-job-3"}
    )
    lock = make_lock(settings, f"migrate:{warehouse.database}")
    lock.acquire()
    try:
        busy = cli(env, "migrate", "status", "-o", "json")
        assert busy.exit_code == 4, busy.output  # behind, nothing to resolve
        [item] = json.loads(busy.stdout)["files"]
        assert (item["state"], item["in_doubt_statement"]) == ("partial", 2)
        assert item["running_by"].startswith("hook-job-3/")
    finally:
        lock.release()
    assert cli(env, "migrate", "status").exit_code == 3  # nobody at work: cut off


def test_an_unclear_lookup_and_an_edited_cut_off_statement_go_to_the_operator(
    project, runner_settings, warehouse
):
    project_dir, env = project
    path = write(
        project_dir,
        "0001_r.sql",
        "CREATE TABLE {{database}}.t (a UInt8, old UInt8) ENGINE = MergeTree ORDER BY a;\n"
        "ALTER TABLE {{database}}.t RENAME COLUMN old TO new;\n",
    )
    [migration] = discover(project_dir / "migrations")
    h = history(runner_settings, warehouse)
    warehouse.command(migration.statements({"database": f"`{warehouse.database}`"})[0].sql)
    ran(h, migration, 1)
    record(h, migration, 2, "started", "cut-off")
    warehouse.command("ALTER TABLE t ADD COLUMN new UInt8")  # both names exist: unclear
    refused = cli(env, "migrate")
    assert refused.exit_code == 3
    assert "the lookup is not conclusive: column new of" in refused.stderr
    assert "column old of" in refused.stderr

    path.write_text(path.read_text().replace("TO new", "TO newer"))
    refused = cli(env, "migrate")
    assert refused.exit_code == 3
    assert "the file's statement changed since that run" in refused.stderr
    assert cli(env, "migrate", "resolve", "1", "2", "--not-done").exit_code == 0
    assert cli(env, "migrate").exit_code == 0
    assert columns(warehouse, "t") == ["a", "newer", "new"]  # renamed in place


def test_a_rejected_statement_is_recorded_failed_and_runs_again_after_the_fix(
    project, runner_settings, warehouse
):
    project_dir, env = project
    path = write(
        project_dir,
        "0001_f.sql",
        "CREATE TABLE {{database}}.t (a UInt8) ENGINE = MergeTree ORDER BY a;\n"
        "INSERT INTO {{database}}.missing VALUES (1);\n",
    )
    failed = cli(env, "migrate")
    assert failed.exit_code == 1
    assert "resumes at statement 2" in failed.stderr
    assert (2, "failed") in history_kinds(warehouse, runner_settings, 1)
    path.write_text(path.read_text().replace(".missing", ".t"))
    assert cli(env, "migrate").exit_code == 0  # not "in doubt": ClickHouse said no
    assert warehouse.query_rows("SELECT count() FROM t") == [(1,)]


def test_status_and_gate_read_a_history_table_from_before_attempts(
    runner_settings, warehouse, tmp_path
):
    """An upgraded image reads the old table (no attempt column) before migrate adds it."""
    table = f"`{runner_settings.state_database}`.schema_migrations"
    warehouse.command(f"CREATE DATABASE IF NOT EXISTS `{runner_settings.state_database}`")
    warehouse.command(
        f"CREATE TABLE {table} (version UInt32, name String, checksum String, statement UInt32,"
        " statements UInt32, statement_checksum String, kind LowCardinality(String),"
        " applied_at DateTime64(3, 'UTC'), duration_ms UInt64, applied_by String)"
        " ENGINE = MergeTree ORDER BY (version, statement, applied_at)"
    )
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "0001_a.sql").write_text("SELECT 1")
    [migration] = discover(tmp_path / "m")
    warehouse.command(
        f"INSERT INTO {table} VALUES (1, 'a', {{c:String}}, 0, 1, '', 'complete', now64(3), 1, 'x')",
        {"c": migration.checksum},
    )
    migrator = Migrator(warehouse, tmp_path / "m", state_database=runner_settings.state_database)
    assert [s.state for s in migrator.status()] == [FileState.APPLIED]
    migrator.apply()  # adds the column
    assert "attempt" in [
        r[0]
        for r in warehouse.query_rows(
            "SELECT name FROM system.columns WHERE database = {d:String} "
            "AND table = 'schema_migrations'",
            {"d": runner_settings.state_database},
        )
    ]


# ---------------------------------------------------------------- names and placeholders


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("0005_x.SQL", "the suffix must be '.sql' in lower case"),
        ("0005_x.Sql", "the suffix must be '.sql' in lower case"),
        ("5_x.sql", "the version needs at least 4 digits (0005)"),
        ("0005-x.sql", "the version must be followed by '_'"),
        ("0005_Add_Col.sql", "the description must be lower-case words"),
        ("0005_x.sql.txt", "'.sql.txt' is not a migration suffix"),
        ("0005_x", "the suffix '.sql' is missing"),
        ("create_users.sql", "no version number in front"),
    ],
)
def test_a_near_miss_file_name_is_an_error_naming_the_file(project, name, reason):
    project_dir, env = project
    write(project_dir, "0001_a.sql", "SELECT 1")
    write(project_dir, name, "CREATE TABLE {{database}}.never (a UInt8) ENGINE = Memory")
    for args in (("migrate",), ("migrate", "status")):
        result = cli(env, *args)
        assert result.exit_code == 3, result.output
        [line] = result.stderr.strip().splitlines()
        assert f"{project_dir / 'migrations' / name}: migration files are named" in line
        assert reason in line


@pytest.mark.parametrize(
    "name",
    [
        "README.md",
        "0005_x.sql.bak",
        "0005_x.sql~",
        ".0005_x.sql.swp",
        "#0005_x.sql#",
        "2024-notes.md",
    ],
)
def test_leftovers_and_docs_beside_migrations_are_ignored(project, name):
    project_dir, env = project
    write(project_dir, "0001_a.sql", "SELECT 1")
    write(project_dir, name, "not sql at all ;;; '")
    assert cli(env, "migrate").exit_code == 0
    assert cli(env, "migrate", "status").exit_code == 0


def test_placeholders_inside_strings_and_comments_are_left_alone(project, warehouse):
    """Attack 3: ``{{database}}`` in a literal used to be replaced by the quoted name."""
    project_dir, env = project
    write(
        project_dir,
        "0001_notes.sql",
        "-- a comment naming {{database}} and {{not_a_placeholder}}; with a ' quote\n"
        "# it's another comment; {{nope}}\n"
        "CREATE TABLE {{database}}.notes (k String, v String) ENGINE = MergeTree ORDER BY k;\n"
        "// don't; split here\n"
        "INSERT INTO {{database}}.notes VALUES ('lit', '{{database}}'), ('esc', 'it\\'s {{nope}}'),"
        " /* {{nope}} /* nested; */ still comment */ ('here', $tag${{database}}; {{x}}$tag$),"
        " ('dq', 'say \"{{cluster}}\"');\n",
    )
    result = cli(env, "migrate")
    assert result.exit_code == 0, result.output
    assert dict(warehouse.query_rows("SELECT k, v FROM notes")) == {
        "lit": "{{database}}",
        "esc": "it's {{nope}}",
        "here": "{{database}}; {{x}}",
        "dq": 'say "{{cluster}}"',
    }


# ---------------------------------------------------------------- real processes


def env_for(root, **extra):
    return {
        **os.environ,
        "RUNNER_PROJECT_DIR": str(root),
        "RUNNER_LOG_FORMAT": "json",
        "RUNNER_LOCK_BACKEND": "file",
        **extra,
    }


def runner(root, *args, **extra):
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        env=env_for(root, **extra),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def query(root, sql):
    code = (
        "import sys, json; from runner.settings import load_settings; "
        "from runner.warehouse.client import Warehouse; "
        "w = Warehouse.connect(load_settings()); "
        "print(json.dumps(w.query_rows(sys.argv[1]), default=str))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, sql],
        env=env_for(root),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout)


def kill_file(version):
    """One migration file of every statement kind the migrator settles differently."""
    t = f"{{{{database}}}}.t{version:03d}"
    return ";\n".join(
        [
            f"CREATE TABLE {t} (id UInt32, old String) ENGINE = MergeTree ORDER BY id",
            f"ALTER TABLE {t} ADD COLUMN c1 UInt8",
            f"ALTER TABLE {t} ADD COLUMN c2 String DEFAULT 'x', ADD COLUMN c3 Float64",
            f"ALTER TABLE {t} RENAME COLUMN old TO renamed",
            f"ALTER TABLE {t} MODIFY COLUMN c1 UInt16",
            f"INSERT INTO {{{{database}}}}.seed VALUES ({version}, 'a'), ({version}, 'b')",
            f"ALTER TABLE {t} DROP COLUMN c3",
            f"CREATE VIEW {t}_v AS SELECT id, c1 FROM {t}",
            f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS c4 Date",
            f"DROP TABLE {t}_v",
        ]
    )


FILES = 30
KILLS = 12


def settle_as_operator(root, error):
    """What the operator does with an INSERT of unknown outcome: count its rows, say so."""
    match = re.search(r"runner migrate resolve (\d+) (\d+) --done", error)
    assert match, error
    assert "(INSERT)" in error  # every other kind here is settled by the migrator itself
    version, number = int(match.group(1)), int(match.group(2))
    [[rows]] = query(root, f"SELECT count() FROM analytics.seed WHERE v = {version}")
    answer = "--done" if rows else "--not-done"
    assert runner(root, "migrate", "resolve", str(version), str(number), answer).returncode == 0
    return version, answer


@pytest.mark.slow
def test_sigkill_at_random_points_of_migrate_then_resume_gives_the_exact_schema(tmp_path):
    """Attack 1: kill `runner migrate` at random points, resume, compare with a clean run."""
    for root in (tmp_path / "killed", tmp_path / "clean"):
        (root / "migrations").mkdir(parents=True)
        (root / "migrations" / "0001_seed.sql").write_text(
            "CREATE TABLE {{database}}.seed (v UInt32, k String) ENGINE = MergeTree ORDER BY v"
        )
        for version in range(2, FILES + 2):
            (root / "migrations" / f"{version:04d}_f.sql").write_text(kill_file(version))
    assert runner(tmp_path / "clean", "migrate").returncode == 0

    root = tmp_path / "killed"
    rng = random.Random(20261202)
    killed, resolved = 0, []
    for _ in range(KILLS * 3):
        if killed == KILLS:
            break
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner", "migrate"],
            env=env_for(root, PYTHONUNBUFFERED="1"),  # each log line as it happens
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:  # once it is applying, kill it anywhere in the next files
            if '"migration applied"' in line:
                time.sleep(rng.uniform(0.0, 0.4))
                proc.send_signal(signal.SIGKILL)
                break
        _, err = proc.communicate(timeout=60)
        if proc.returncode == -signal.SIGKILL:
            killed += 1
            continue
        assert proc.returncode == 3, err  # not finished: the kills must land inside the work
        resolved.append(settle_as_operator(root, err))
    assert killed == KILLS
    while (result := runner(root, "migrate")).returncode == 3:
        resolved.append(settle_as_operator(root, result.stderr))
    assert result.returncode == 0, result.stderr

    schema = (
        "SELECT table, name, type, position FROM system.columns WHERE database = 'analytics' "
        "ORDER BY table, position"
    )
    assert query(root, schema) == query(tmp_path / "clean", schema)
    seed = "SELECT v, k, count() FROM analytics.seed GROUP BY v, k ORDER BY v, k"
    assert query(root, seed) == query(tmp_path / "clean", seed)  # every seed row once
    assert runner(root, "migrate", "status").returncode == 0
    # the kills landed inside the work: each killed run recorded something of its own
    [[runs, cut_off]] = query(
        root,
        "SELECT uniqExact(applied_by), countIf(kind IN ('verified-done', 'verified-not-done',"
        " 'superseded', 'resolved-done', 'resolved-not-done')) "
        "FROM pipeline_runner.schema_migrations",
    )
    assert runs >= KILLS  # every killed run applied at least one file
    print(f"kills={killed} cut-off statements settled={cut_off} resolved by operator={resolved}")


SLOW_MIGRATION = "SELECT sleep(2);\nSELECT sleep(2);\nSELECT sleep(2);\n"


def _hold_warehouse(tmp_path: Path, migration: str) -> tuple[Path, subprocess.Popen[str]]:
    """Start a `runner migrate` of `migration` and return once it holds the embedded warehouse."""
    root = tmp_path / "p"
    (root / "migrations").mkdir(parents=True)
    (root / "pipelines").mkdir()
    (root / "migrations" / "0001_slow.sql").write_text(migration)
    first = subprocess.Popen(
        [sys.executable, "-m", "runner", "migrate"],
        env=env_for(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    holder = root / ".warehouse" / "locks"
    deadline = time.monotonic() + 60
    while not any(holder.glob("*.holder.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # past opening the engine (about a second after the lock)
    assert first.poll() is None, "the first migrator finished too early for the test"
    return root, first


@pytest.fixture
def busy(tmp_path):
    """A `runner migrate` holding the embedded warehouse for about six seconds."""
    root, first = _hold_warehouse(tmp_path, SLOW_MIGRATION)
    yield root, first
    first.kill()
    first.wait(timeout=30)


@pytest.fixture
def held(tmp_path):
    """A `runner migrate` holding the embedded warehouse until the test ends (killed then).

    Several commands run one after another against it; on a loaded machine each one's start-up
    can take seconds, so a holder of fixed length could finish before the last one asks.
    """
    root, first = _hold_warehouse(tmp_path, "SELECT sleep(3);\n" * 40)
    yield root, first
    first.kill()
    first.wait(timeout=30)


@pytest.mark.slow
def test_a_second_migrate_waits_for_the_first_instead_of_failing(busy):
    """Attack 4: the second migrate used to open the busy engine first and exit 4."""
    root, first = busy
    second = runner(root, "migrate", "--lock-timeout", "60")
    _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert second.returncode == 0, second.stderr
    assert second.stderr == ""
    [done] = [json.loads(x) for x in second.stdout.splitlines() if "migrations done" in x]
    assert done["applied"] == 0  # the first applied it; the second found nothing to do


@pytest.mark.slow
def test_commands_on_a_busy_embedded_warehouse_print_one_clean_line(held):
    root, first = held
    for args in (("status",), ("health",), ("migrate", "status")):
        result = runner(root, *args)
        assert first.poll() is None, "the holder finished before the command ended: no test"
        assert result.returncode == 5, (args, result.stderr)
        [line] = result.stderr.strip().splitlines()  # chDB's own diagnostic is gone
        assert line == (
            f"error: the embedded warehouse {root / '.warehouse' / 'chdb'} is in use by another "
            "runner process (chDB lets one process open a warehouse directory at a time); "
            "wait for it to finish"
        )


@pytest.mark.slow
def test_a_read_only_embedded_warehouse_is_not_called_busy(tmp_path):
    """Attack 4: a read-only directory used to get the 'another runner' hint."""
    root = tmp_path / "p"
    (root / "migrations").mkdir(parents=True)
    (root / "migrations" / "0001_a.sql").write_text("SELECT 1")
    assert runner(root, "migrate").returncode == 0
    warehouse = root / ".warehouse" / "chdb"
    if os.geteuid() != 0:
        warehouse.chmod(0o555)
        prefix: list[str] = []
    elif shutil.which("unshare") and shutil.which("mount"):
        # root ignores permission bits: make the directory a read-only mount of itself
        script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
        prefix = ["unshare", "-m", "sh", "-c", script, str(warehouse)]
    else:
        pytest.skip("needs a non-root user or unshare/mount to make a read-only directory")
    for args in (("status",), ("migrate", "status"), ("migrate",)):
        result = subprocess.run(
            [*prefix, sys.executable, "-m", "runner", *args],
            env=env_for(root),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 3, (args, result.stderr)
        [line] = result.stderr.strip().splitlines()
        assert f"the embedded warehouse {warehouse} is not writable" in line
        assert "another runner" not in line


def test_a_read_only_server_user_gets_its_own_message(tmp_path):
    """The server's readonly setting (Code 164), on the real engine in a subprocess."""
    code = (
        "from runner.settings import Settings; from runner.warehouse.client import Warehouse; "
        "from runner.errors import RunnerError; "
        f"s = Settings(project_dir={str(tmp_path)!r}); "
        "w = Warehouse.connect(s, ensure_database=True); w.command('SET readonly = 1'); "
        'exec(\'try:\\n w.command("CREATE TABLE t (a UInt8) ENGINE = Memory")\\n'
        "except RunnerError as e:\\n print(type(e).__name__, e)')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.startswith("FatalError statement failed: the ClickHouse user may only read")
    assert "another runner" not in out.stdout

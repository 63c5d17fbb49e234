from pathlib import Path

import pytest

from runner.errors import ConfigError, FatalError
from runner.migrate.apply import apply_pending
from runner.migrate.files import discover, split_statements

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


def test_apply_is_idempotent_and_refuses_edited_files(warehouse, tmp_path):
    first = tmp_path / "0001_t.sql"
    first.write_text(
        "CREATE TABLE {{database}}.t (a UInt8) ENGINE = MergeTree ORDER BY a;\n"
        "INSERT INTO {{database}}.t VALUES (1);\n"
    )
    applied = apply_pending(warehouse, tmp_path)
    assert [(a.version, a.statements) for a in applied] == [(1, 2)]
    assert apply_pending(warehouse, tmp_path) == []
    assert warehouse.query_rows("SELECT count() FROM t") == [(1,)]
    first.write_text(first.read_text() + "-- edited\n")
    with pytest.raises(ConfigError, match=r"0001_t.sql: changed after it was applied"):
        apply_pending(warehouse, tmp_path)


def test_a_failing_statement_names_file_line_and_number(warehouse, tmp_path):
    (tmp_path / "0001_bad.sql").write_text("SELECT 1;\n\nSELECT * FROM missing_table;\n")
    with pytest.raises(FatalError, match=r"0001_bad.sql:3: statement 2 failed: .*UNKNOWN_TABLE"):
        apply_pending(warehouse, tmp_path)


def test_the_projects_migrations_apply_cleanly(warehouse):
    applied = apply_pending(warehouse, REPO_MIGRATIONS)
    assert applied
    tables = {
        r[0]
        for r in warehouse.query_rows(
            "SELECT name FROM system.tables WHERE database = {d:String}", {"d": warehouse.database}
        )
    }
    assert {"events", "customers", "daily_revenue", "_migrations", "_quarantine"} <= tables

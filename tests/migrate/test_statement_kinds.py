"""How each statement kind is settled after a cut-off run, and how SQL text is read."""

import pytest

from runner.migrate.kinds import Effect, Safety, classify
from runner.warehouse.sqltext import Part, scan, split_statements, substitute_code

RERUN = [
    "CREATE TABLE IF NOT EXISTS `db`.t (a UInt8) ENGINE = Memory",
    "CREATE OR REPLACE TABLE db.t ENGINE = MergeTree ORDER BY a AS SELECT 1 AS a",
    "CREATE OR REPLACE VIEW v AS SELECT 1",
    "CREATE DATABASE IF NOT EXISTS x ON CLUSTER main",
    "DROP TABLE IF EXISTS db.t SYNC",
    "ALTER TABLE db.t ADD COLUMN IF NOT EXISTS c UInt8",
    "ALTER TABLE db.t DROP COLUMN IF EXISTS c, DROP INDEX IF EXISTS ix",
    "ALTER TABLE db.t RENAME COLUMN IF EXISTS a TO b",
    "ALTER TABLE db.t MODIFY COLUMN a UInt16, COMMENT COLUMN a 'x, y'",
    "ALTER TABLE db.t MODIFY TTL ts + INTERVAL 1 DAY",
    "ALTER TABLE db.t DROP PARTITION 202601",
    "ALTER TABLE db.t MATERIALIZE INDEX ix",
    "SELECT 1",
    "OPTIMIZE TABLE db.t FINAL",
    "TRUNCATE TABLE db.t",
]
ASK = [
    ("INSERT INTO db.t VALUES (1)", "INSERT", False),
    ("INSERT INTO db.t SELECT * FROM db.s", "INSERT", True),
    ("ALTER TABLE db.t UPDATE a = a + 1 WHERE 1", "ALTER TABLE … UPDATE (a mutation)", True),
    ("ALTER TABLE db.t DELETE WHERE a = 1", "ALTER TABLE … DELETE (a mutation)", True),
    ("ALTER TABLE db.t ADD COLUMN e UInt8, UPDATE a = 1 WHERE 1", "ALTER TABLE … UPDATE", True),
    ("DELETE FROM db.t WHERE a = 1", "DELETE (a mutation)", True),
    ("CREATE TABLE db.t ENGINE = MergeTree ORDER BY a AS SELECT 1 AS a", "CREATE TABLE", True),
    ("CREATE TABLE IF NOT EXISTS db.t ENGINE = Log AS SELECT 1 AS a", "CREATE TABLE", True),
    ("CREATE MATERIALIZED VIEW mv ENGINE = Memory POPULATE AS SELECT 1", "CREATE VIEW", True),
    ("ALTER TABLE db.t MOVE PARTITION 1 TO TABLE db.u", "ALTER TABLE … MOVE PARTITION", False),
    ("EXCHANGE TABLES a AND b", "EXCHANGE", False),
    ("SYSTEM RELOAD DICTIONARIES", "SYSTEM", False),
    ("CREATE FUNCTION f AS (x) -> x + 1", "CREATE FUNCTION", False),
]


@pytest.mark.parametrize("sql", RERUN)
def test_statements_harmless_to_run_again(sql):
    assert classify(sql).safety is Safety.RERUN


@pytest.mark.parametrize(("sql", "label", "partial"), ASK)
def test_statements_only_the_operator_can_settle(sql, label, partial):
    kind = classify(sql)
    assert kind.safety is Safety.ASK
    assert kind.label.startswith(label)
    assert kind.partial_on_error is partial
    assert kind.check_hint


@pytest.mark.parametrize(
    ("sql", "effects"),
    [
        (
            "CREATE TABLE `my db`.`t``x` (a UInt8) ENGINE = Memory",
            [Effect("table", "my db", "t`x")],
        ),
        ("CREATE TABLE t EMPTY AS SELECT 1 AS a", [Effect("table", None, "t")]),
        ("CREATE MATERIALIZED VIEW db.mv TO db.t AS SELECT 1", [Effect("table", "db", "mv")]),
        ("CREATE DATABASE x", [Effect("database", None, "x")]),
        (
            "DROP TABLE a, db.b",
            [Effect("table", None, "a", present=False), Effect("table", "db", "b", present=False)],
        ),
        ("DROP DATABASE x", [Effect("database", None, "x", present=False)]),
        (
            "RENAME TABLE db.a TO db.b",
            [Effect("table", "db", "b"), Effect("table", "db", "a", present=False)],
        ),
        (
            "ALTER TABLE db.t ON CLUSTER `main` ADD COLUMN c UInt8 DEFAULT (1, 2).1, "
            "ADD COLUMN d String",
            [Effect("column", "db", "t", "c"), Effect("column", "db", "t", "d")],
        ),
        (
            "ALTER TABLE t RENAME COLUMN a TO b",
            [Effect("column", None, "t", "b"), Effect("column", None, "t", "a", present=False)],
        ),
        ("ALTER TABLE t DROP COLUMN c", [Effect("column", None, "t", "c", present=False)]),
        (
            "ALTER TABLE t ADD INDEX ix b TYPE bloom_filter GRANULARITY 1, MODIFY SETTING x = 1",
            [Effect("index", None, "t", "ix")],
        ),
        ("ALTER TABLE t DROP PROJECTION p", [Effect("projection", None, "t", "p", present=False)]),
    ],
)
def test_statements_whose_effect_is_looked_up(sql, effects):
    kind = classify(sql)
    assert kind.safety is Safety.CHECK
    assert list(kind.effects) == effects


def test_the_scanner_knows_every_comment_and_quote_clickhouse_does():
    text = (
        "SELECT 'a;b' -- c;'\n"
        "// d;'\n"
        "#! e;'\n"
        "# f;'\n"
        '/* g; /* nested; */ still; */ `h;i` "j;k" $$l;\'$$ $t$m;$$;$t$ 6 / 2 #x'
    )
    parts = [(p.part, p.text) for p in scan(text) if p.part is not Part.CODE]
    assert parts == [
        (Part.QUOTED, "'a;b'"),
        (Part.COMMENT, "-- c;'"),
        (Part.COMMENT, "// d;'"),
        (Part.COMMENT, "#! e;'"),
        (Part.COMMENT, "# f;'"),
        (Part.COMMENT, "/* g; /* nested; */ still; */"),
        (Part.QUOTED, "`h;i`"),
        (Part.QUOTED, '"j;k"'),
        (Part.QUOTED, "$$l;'$$"),
        (Part.QUOTED, "$t$m;$$;$t$"),
    ]
    assert "".join(p.text for p in scan(text)) == text  # nothing lost
    [statement] = split_statements(text)
    assert statement.sql.endswith("6 / 2 #x")


def test_statements_keep_their_lines_and_lose_their_comments():
    text = "-- head; note\n\nSELECT 1; /* x;\n y */ SELECT\n  'a\nb';\n\n# it's; fine\nSELECT 3"
    statements = split_statements(text)
    assert [(s.sql, s.line) for s in statements] == [
        ("SELECT 1", 3),
        ("SELECT\n  'a\nb'", 4),
        ("SELECT 3", 9),
    ]


def test_substitution_touches_code_only():
    sql = "SELECT {x}, '{x}', `{x}`, $${x}$$ /* {x} */"
    assert substitute_code(sql, lambda code: code.replace("{x}", "1")) == (
        "SELECT 1, '{x}', `{x}`, $${x}$$ /* {x} */"
    )

import socket
from pathlib import Path

import pyarrow as pa
import pytest

from runner.errors import ConfigError, FatalError, NotReadyError, WarehouseUnavailableError
from runner.settings import Settings
from runner.warehouse.client import Warehouse, embedded_directory, parse_url, translate_error
from runner.warehouse.sql import qualified_table, quote_identifier


def test_urls_choose_the_engine():
    target, password = parse_url("chdb:///var/lib/wh")
    assert target.embedded
    assert target.path == Path("/var/lib/wh")
    assert password is None
    target, password = parse_url("https://etl:s%40cret@ch.example.com/shop")
    assert (target.host, target.port, target.secure, target.username) == (
        "ch.example.com",
        8443,
        True,
        "etl",
    )
    assert target.database == "shop"
    assert password == "s@cret"
    assert "s@cret" not in target.describe()
    assert parse_url("http://h:9000", "other")[0].database == "other"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("chdb://relative/path", "three slashes"),
        ("postgres://h/db", "scheme must be chdb, http or https"),
        ("http:///db", "no host"),
        ("http://h:notaport/db", "bad port"),
        ("http://h/bad-name", "invalid database"),
        ("chdb:///tmp/wh?mode=ro", "no query or fragment"),
        ("chdb:///tmp/wh#x", "no query or fragment"),
    ],
)
def test_bad_urls_are_config_errors_naming_the_url(url, message):
    with pytest.raises(ConfigError, match=message):
        parse_url(url)


def test_identifiers_are_checked_and_quoted():
    assert quote_identifier("events") == "`events`"
    assert qualified_table("events", "shop") == "`shop`.`events`"
    assert qualified_table("raw.events", "shop") == "`raw`.`events`"
    with pytest.raises(ConfigError, match="invalid table"):
        qualified_table("events`; DROP TABLE x", "shop")


def test_missing_database_means_not_ready(runner_settings):
    with pytest.raises(NotReadyError, match="run `runner migrate` first"):
        Warehouse.connect(runner_settings)


def test_unreachable_server_means_not_ready(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings(
        project_dir=tmp_path, warehouse_url=f"http://127.0.0.1:{port}/db", connect_timeout=1
    )
    with pytest.raises(NotReadyError, match=f"cannot connect to http://127.0.0.1:{port}/db"):
        Warehouse.connect(settings)


def test_round_trip_and_streaming(warehouse):
    warehouse.command(
        f"CREATE TABLE {warehouse.table('t')} (id UInt32, s String) ENGINE = MergeTree ORDER BY id"
    )
    warehouse.insert_arrow(
        "t", pa.record_batch({"id": pa.array(range(1000), pa.uint32()), "s": ["x"] * 1000})
    )
    assert warehouse.query_rows("SELECT count() FROM t WHERE id >= {n:UInt32}", {"n": 500}) == [
        (500,)
    ]
    with warehouse.stream_arrow("SELECT id FROM t ORDER BY id", max_rows=100) as batches:
        sizes = [b.num_rows for b in batches]
    assert sum(sizes) == 1000
    assert max(sizes) <= 100
    assert warehouse.query_arrow("SELECT max(id) AS m FROM t").column("m")[0].as_py() == 999


def test_clickhouse_errors_are_translated_with_the_servers_message(warehouse):
    with pytest.raises(FatalError, match=r"query failed: Code: 60.*UNKNOWN_TABLE"):
        warehouse.query_rows("SELECT * FROM no_such_table")
    with pytest.raises(FatalError, match="statement failed: Code: 62"):
        warehouse.command("CREATE TABLE oops (")
    with pytest.raises(FatalError, match="insert into missing failed"):
        warehouse.insert_arrow("missing", pa.record_batch({"a": [1]}))


def test_retriable_codes_become_retriable_errors():
    from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

    assert isinstance(
        translate_error(DatabaseError("Code: 252. DB::Exception: Too many parts"), "insert"),
        WarehouseUnavailableError,
    )
    assert isinstance(
        translate_error(OperationalError("connection reset"), "q"), WarehouseUnavailableError
    )
    assert type(translate_error(DatabaseError("Code: 62. Syntax error"), "q")) is FatalError


def test_the_embedded_warehouse_is_never_a_filesystem_root(monkeypatch):
    made = []
    monkeypatch.setattr(Path, "mkdir", lambda self, **kw: made.append(self))
    with pytest.raises(ConfigError, match=r"RUNNER_WAREHOUSE_URL chdb:///: .*its own directory"):
        embedded_directory(Path("/"))
    assert made == []  # refused before anything is created


def test_the_embedded_warehouse_may_be_new_empty_or_a_warehouse(tmp_path):
    assert embedded_directory(tmp_path / "new" / "wh") == tmp_path / "new" / "wh"
    (tmp_path / "empty").mkdir()
    assert embedded_directory(tmp_path / "empty") == tmp_path / "empty"
    (tmp_path / "old" / "metadata").mkdir(parents=True)
    (tmp_path / "old" / "notes.txt").write_text("")
    assert embedded_directory(tmp_path / "old") == tmp_path / "old"
    with pytest.raises(ConfigError, match="holds other files and no chDB warehouse"):
        embedded_directory(tmp_path / "new")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is not a directory"):
        embedded_directory(tmp_path / "file")

"""The loopback server's own tests: it speaks ClickHouse's HTTP interface as clickhouse-connect
uses it, runs every statement on the engine, and refuses what it does not implement."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import ssl
import threading
import time
import zlib
from urllib.parse import urlencode

import lz4.frame
import pyarrow as pa
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError, StreamFailureError
from loopback_codecs import negotiate
from loopback_sql import StatementError, shape

try:
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd

pytestmark = pytest.mark.http


def raw(server, method="POST", *, params=None, body=b"", headers=None, auth=("etl", "pw")):
    """One request with http.client; returns (status, headers, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    all_headers = dict(headers or {})
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        all_headers["Authorization"] = f"Basic {token}"
    try:
        connection.request(method, "/?" + urlencode(params or {}), body=body, headers=all_headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.fixture
def client(plain_loopback):
    c = plain_loopback.client()
    c.command("CREATE DATABASE IF NOT EXISTS proto")
    yield c
    c.close()


def test_statement_shapes():
    text = "INSERT INTO t (a, `format`) FORMAT Arrow\n\x00\x01ARROW"
    insert = shape(text)
    assert (insert.insert_format, insert.data_start) == ("Arrow", text.index("\x00"))
    assert shape("INSERT INTO t VALUES (1)").insert_format == "Values"
    assert shape("INSERT INTO t SELECT 1 FORMAT Native").insert_format is None
    assert shape("SELECT ';' -- ;\n FORMAT JSON").output_format == "JSON"
    assert shape("select 1;").returns_rows
    assert not shape("CREATE TABLE t (format UInt8) ENGINE = Memory").returns_rows
    for bad in ("SELECT 1; DROP TABLE t", "", "  -- nothing", "SELECT 'open"):
        with pytest.raises(StatementError):
            shape(bad)


def test_response_coding_follows_the_servers_preference_and_q_values():
    assert negotiate("lz4,zstd,gzip,deflate") == "zstd"
    assert negotiate("gzip, lz4") == "lz4"
    assert negotiate("zstd;q=0, gzip") == "gzip"
    assert negotiate("br") is None
    assert negotiate("*") == "zstd"
    assert negotiate("") is None


def test_ping_and_the_query_in_url_body_or_both(plain_loopback):
    status, _, body = raw(plain_loopback, "GET", auth=None)
    assert (status, body) == (200, b"Ok.\n")
    assert raw(plain_loopback, "GET", params={"query": "SELECT 1"})[2] == b"1\n"
    assert raw(plain_loopback, body=b"SELECT 2")[2] == b"2\n"
    status, headers, body = raw(plain_loopback, params={"query": "SELECT 3 +"}, body=b"4")
    assert (status, body) == (200, b"7\n")
    assert headers["X-ClickHouse-Format"] == "TabSeparated"
    assert headers["X-ClickHouse-Server-Display-Name"] == "loopback"
    assert headers["X-ClickHouse-Timezone"]
    summary = raw(plain_loopback, params={"wait_end_of_query": "1"}, body=b"SELECT 1")[1]
    assert json.loads(summary["X-ClickHouse-Summary"])["read_rows"] == "1"


def test_database_settings_and_bound_parameters_come_from_the_url(client, plain_loopback):
    client.command("CREATE TABLE IF NOT EXISTS proto.kv (k String) ENGINE = Memory")
    status, _, body = raw(
        plain_loopback,
        params={
            "database": "proto",
            "max_threads": "3",
            "param_word": "it's",
            "query": "SELECT currentDatabase(), getSetting('max_threads'), {word:String}",
        },
    )
    assert (status, body) == (200, b"proto\t3\tit\\'s\n")
    # settings are per request: the next one has the default again
    assert (
        raw(plain_loopback, params={"query": "SELECT getSetting('max_threads') = 3"})[2] == b"0\n"
    )
    status, headers, body = raw(plain_loopback, params={"no_such_setting": "1"}, body=b"SELECT 1")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "115")
    assert b"UNKNOWN_SETTING" in body


def test_one_statement_per_request_as_the_real_interface(client, plain_loopback):
    status, headers, body = raw(
        plain_loopback, body=b"CREATE TABLE proto.two (a UInt8) ENGINE = Memory; SELECT 1"
    )
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (400, "62")
    assert b"Multi-statements are not allowed" in body
    assert client.command("EXISTS TABLE proto.two") == 0  # nothing ran


def test_engine_errors_keep_their_code_name_and_http_status(plain_loopback):
    status, headers, body = raw(plain_loopback, body=b"SELECT * FROM proto.missing")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "60")
    assert body.startswith(b"Code: 60. DB::Exception: ")
    assert b"(UNKNOWN_TABLE) (version " in body
    status, headers, _ = raw(plain_loopback, body=b"SELEC 1")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (400, "62")
    status, headers, _ = raw(plain_loopback, body=b"SELECT throwIf(1)")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (500, "395")


def test_get_requests_are_read_only(plain_loopback):
    status, headers, body = raw(
        plain_loopback, "GET", params={"query": "CREATE TABLE proto.ro (a UInt8) ENGINE = Memory"}
    )
    assert headers["X-ClickHouse-Exception-Code"] == "164"
    assert b"READONLY" in body
    assert status == 500


@pytest.mark.parametrize("coding", ["zstd", "lz4", "gzip", "deflate"])
def test_request_bodies_in_each_content_encoding(client, plain_loopback, coding):
    table = f"proto.enc_{coding}"
    client.command(f"CREATE TABLE IF NOT EXISTS {table} (a UInt32) ENGINE = Memory")
    data = b"".join(b"%d\n" % i for i in range(1000))
    packed = {
        "zstd": zstd.compress,
        "lz4": lz4.frame.compress,
        "gzip": gzip.compress,
        "deflate": zlib.compress,
    }[coding](data)
    status, _, body = raw(
        plain_loopback,
        params={"query": f"INSERT INTO {table} FORMAT TSV"},
        body=packed,
        headers={"Content-Encoding": coding},
    )
    assert status == 200, body
    assert client.command(f"SELECT sum(a) FROM {table}") == sum(range(1000))


@pytest.mark.parametrize(
    ("accept", "expected"), [("lz4,zstd,gzip,deflate", "zstd"), ("gzip", "gzip"), ("lz4", "lz4")]
)
def test_responses_are_compressed_as_negotiated(plain_loopback, accept, expected):
    query = {
        "query": "SELECT number FROM numbers(10000) FORMAT TSV",
        "enable_http_compression": "1",
    }
    for wait in ("0", "1"):  # streamed and buffered
        status, headers, body = raw(
            plain_loopback,
            params={**query, "wait_end_of_query": wait},
            headers={"Accept-Encoding": accept},
        )
        assert (status, headers.get("Content-Encoding")) == (200, expected)
        plain = {"zstd": zstd.decompress, "lz4": lz4.frame.decompress, "gzip": gzip.decompress}[
            expected
        ](body)
        assert plain.splitlines()[-1] == b"9999"
    off = {**query, "enable_http_compression": "0"}
    assert (
        "Content-Encoding"
        not in raw(plain_loopback, params=off, headers={"Accept-Encoding": accept})[1]
    )


def test_clickhouse_connect_reads_and_writes_every_way_it_can(client):
    client.command(
        "CREATE TABLE IF NOT EXISTS proto.rw (id UInt32, s String, lc LowCardinality(String), "
        "ts DateTime64(3, 'UTC'), n Nullable(Float64)) ENGINE = MergeTree ORDER BY id"
    )
    table = pa.table(
        {
            "id": pa.array(range(5000), pa.uint32()),
            "s": [f"s{i}" for i in range(5000)],
            "lc": ["a", "b"] * 2500,
            "ts": pa.array([i * 1000 for i in range(5000)], pa.timestamp("ms", tz="UTC")),
            "n": [None if i % 7 == 0 else i / 2 for i in range(5000)],
        }
    )
    client.insert_arrow("rw", table, database="proto")  # Arrow, IPC-compressed
    client.insert(  # Native, lz4 Content-Encoding, chunked
        "rw",
        [[9000 + i, "n", "c", 0, None] for i in range(10)],
        database="proto",
        column_names=["id", "s", "lc", "ts", "n"],
    )
    client.command(
        "INSERT INTO proto.rw (id, s, lc, ts) FORMAT CSV", data="9999,x,d,2026-01-01 00:00:00\n"
    )
    assert client.query("SELECT count(), uniqExact(lc) FROM proto.rw").result_rows == [(5011, 4)]
    got = client.query_arrow("SELECT id, s, n FROM proto.rw WHERE id < 5000 ORDER BY id")
    assert got.column("s").to_pylist() == table.column("s").to_pylist()
    assert got.column("n").to_pylist() == table.column("n").to_pylist()
    with client.query_arrow_stream(
        "SELECT number FROM numbers(100000)", settings={"max_block_size": 1000}
    ) as stream:
        sizes = [batch.num_rows for batch in stream]
    assert (sum(sizes), len(sizes)) == (100000, 100)  # one Arrow stream, many batches
    rows = client.query(
        "SELECT id FROM proto.rw WHERE lc = {lc:String} ORDER BY id LIMIT 2", parameters={"lc": "b"}
    ).result_rows
    assert rows == [(1,), (3,)]


def test_an_error_after_the_first_block_reaches_the_client_tagged(client):
    sql = "SELECT throwIf(number = 50000) FROM numbers(100000)"
    with (
        pytest.raises(StreamFailureError, match="Code: 395"),
        client.query_row_block_stream(sql, settings={"max_block_size": 1000}) as stream,
    ):
        for _ in stream:
            pass


def test_deduplication_is_the_engines(client):
    client.command(
        "CREATE TABLE IF NOT EXISTS proto.dedup (a UInt32) ENGINE = MergeTree ORDER BY a "
        "SETTINGS non_replicated_deduplication_window = 100"
    )
    batch = pa.table({"a": pa.array(range(100), pa.uint32())})
    for token in ("one", "one", "two"):
        client.insert_arrow(
            "dedup", batch, database="proto", settings={"insert_deduplication_token": token}
        )
    assert client.command("SELECT count() FROM proto.dedup") == 200


def test_sessions_keep_settings_and_temporary_tables(plain_loopback):
    session = {"session_id": "s-1"}
    raw(plain_loopback, params=session, body=b"SET max_threads = 5")
    raw(plain_loopback, params=session, body=b"CREATE TEMPORARY TABLE tmp (a UInt8)")
    raw(plain_loopback, params=session, body=b"INSERT INTO tmp VALUES (7)")
    assert (
        raw(
            plain_loopback,
            params=session,
            body=b"SELECT getSetting('max_threads'), (SELECT a FROM tmp)",
        )[2]
        == b"5\t7\n"
    )
    assert raw(plain_loopback, body=b"SELECT getSetting('max_threads') = 5")[2] == b"0\n"
    status, headers, _ = raw(
        plain_loopback, params={"session_id": "never-made", "session_check": "1"}, body=b"SELECT 1"
    )
    assert headers["X-ClickHouse-Exception-Code"] == "372"
    assert status == 500


def test_a_session_serves_one_request_at_a_time(plain_loopback):
    plain_loopback.set_faults(
        {"match": "SELECT 'slow'", "phase": "before", "action": "delay", "seconds": 3}
    )
    session = {"session_id": "s-busy"}
    slow = threading.Thread(
        target=raw, args=(plain_loopback,), kwargs={"params": session, "body": b"SELECT 'slow'"}
    )
    slow.start()
    for _ in range(100):  # until the slow request holds the session (bounded: 10 s)
        if plain_loopback.faults()[0]["hits"]:
            break
        time.sleep(0.1)
    _, headers, _ = raw(plain_loopback, params=session, body=b"SELECT 1")
    slow.join()
    assert headers["X-ClickHouse-Exception-Code"] == "373"


@pytest.mark.parametrize(
    "headers",
    [{"X-ClickHouse-User": "etl", "X-ClickHouse-Key": "pw"}, {}],
    ids=["headers", "basic"],
)
def test_authentication_by_basic_auth_or_clickhouse_headers(plain_loopback, headers):
    auth = None if headers else ("etl", "pw")
    assert raw(plain_loopback, body=b"SELECT 1", headers=headers, auth=auth)[0] == 200


@pytest.mark.parametrize("auth", [("etl", "wrong"), ("nobody", "pw"), None])
def test_wrong_or_missing_credentials_are_authentication_failed(plain_loopback, auth):
    status, headers, body = raw(plain_loopback, body=b"SELECT 1", auth=auth)
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "516")
    assert b"Authentication failed" in body
    assert b"wrong" not in body


@pytest.mark.parametrize(
    ("params", "headers", "expected"),
    [
        ({"compress": "1"}, {}, b"block compression"),
        ({"decompress": "1"}, {}, b"block compression"),
        ({"client_protocol_version": "54405"}, {}, b"client_protocol_version"),
        ({"role": "admin"}, {}, b"roles"),
        ({}, {"Content-Type": "multipart/form-data; boundary=x"}, b"multipart"),
        ({}, {"Content-Encoding": "br"}, b"Content-Encoding"),
    ],
)
def test_what_it_does_not_implement_is_refused_not_guessed(
    plain_loopback, params, headers, expected
):
    status, answer_headers, body = raw(
        plain_loopback, params=params, body=b"SELECT 1", headers=headers
    )
    assert (status, answer_headers["X-ClickHouse-Exception-Code"]) == (501, "48")
    assert expected in body


def test_unknown_paths_and_methods(plain_loopback):
    connection = http.client.HTTPConnection("127.0.0.1", plain_loopback.port, timeout=10)
    connection.request("GET", "/play")
    assert connection.getresponse().status == 404
    connection.close()
    connection = http.client.HTTPConnection("127.0.0.1", plain_loopback.port, timeout=10)
    connection.request("PUT", "/", body=b"SELECT 1")
    assert connection.getresponse().status == 501
    connection.close()


def test_a_503_fault_is_answered_once_and_a_read_is_retried_by_the_client(client, plain_loopback):
    plain_loopback.set_faults(
        {"match": "SELECT 42", "phase": "before", "action": "status", "status": 503}
    )
    assert client.query("SELECT 42").result_rows == [(42,)]  # queries are retried on 503
    [rule] = plain_loopback.faults()
    assert rule["hits"] == 1


def test_a_reset_fault_cuts_the_connection(client, plain_loopback):
    plain_loopback.set_faults(
        {"match": "SELECT 43", "phase": "before", "action": "reset", "times": -1}
    )
    with pytest.raises(OperationalError):
        client.command("SELECT 43")
    assert plain_loopback.faults()[0]["hits"] >= 1


def test_tls_needs_the_ca_or_verification_off(loopback):
    assert loopback.client().command("SELECT 1") == 1
    with pytest.raises(OperationalError, match="CERTIFICATE_VERIFY_FAILED"):
        loopback.client(ca_cert=None, verify=True)
    assert loopback.client(verify=False, ca_cert=None).command("SELECT 2") == 2
    context = ssl.create_default_context(cafile=str(loopback.ca_cert))
    with pytest.raises(ssl.SSLCertVerificationError):
        context.wrap_socket(
            __import__("socket").create_connection(("127.0.0.1", loopback.port)),
            server_hostname="clickhouse.example.com",
        )


def test_wrong_password_over_tls_is_a_database_error(loopback):
    with pytest.raises(DatabaseError, match="AUTHENTICATION_FAILED"):
        loopback.client(password="not-it")


def test_malformed_numbers_are_bad_arguments_not_a_dropped_connection(plain_loopback):
    status, headers, body = raw(
        plain_loopback, params={"session_id": "x", "session_timeout": "soon"}, body=b"SELECT 1"
    )
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (400, "36")
    assert b"BAD_ARGUMENTS" in body
    assert raw(plain_loopback, body=b"SELECT 1")[2] == b"1\n"  # the server goes on


def test_rowbinary_inserts_as_clickhouse_connect_sends_them(client):
    import struct

    client.command("CREATE TABLE IF NOT EXISTS proto.rb (a UInt32, s String) ENGINE = Memory")
    rows = b"".join(struct.pack("<I", i) + bytes([1]) + b"x" for i in range(100))
    client.raw_insert("proto.rb", ["a", "s"], insert_block=rows, fmt="RowBinary")
    assert client.query("SELECT count(), sum(a) FROM proto.rb").result_rows == [(100, 4950)]

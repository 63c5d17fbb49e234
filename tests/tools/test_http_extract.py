"""http_json against a real local HTTP server: pagination, retries, errors, secrets."""

# the tokens here are fakes, and auth_token_env names a variable, not a secret

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pyarrow as pa
import pytest

from runner.errors import ConfigError, FatalError, InterruptedRunError, RetriableError
from runner.pipeline.factory import el
from runner.tools.extract.http import (
    Cursor,
    HttpJsonSource,
    NextLink,
    NoPagination,
    OffsetLimit,
    PageNumber,
    http_json,
    next_link,
    redact_url,
)

ITEMS = [{"id": i, "name": f"item-{i}"} for i in range(7)]
FAST = {"backoff_factor": 0.001, "timeout": 5.0}


@dataclass
class Seen:
    """One request as the fake API received it."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]


Reply = tuple[int, dict[str, str], Any]


class FakeApi:
    """Routes path -> function(request) -> (status, headers, body); records every request."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[Seen], Reply]] = {}
        self.requests: list[Seen] = []
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                seen = Seen(
                    parts.path,
                    dict(parse_qsl(parts.query, keep_blank_values=True)),
                    {k.lower(): v for k, v in self.headers.items()},
                )
                with api.lock:
                    api.requests.append(seen)
                route = api.routes.get(parts.path)
                status, headers, body = (
                    route(seen) if route else (404, {}, {"error": f"no route {parts.path}"})
                )
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()
    thread = threading.Thread(
        target=fake.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def ctx(make_context):
    return make_context()


def run(source: HttpJsonSource, ctx) -> list[Any]:
    return list(source.extract(ctx))


def rows(pages: list[Any]) -> list[dict[str, Any]]:
    return [row for page in pages for row in page]


def ok(body: Any, headers: dict[str, str] | None = None) -> Reply:
    return 200, headers or {}, body


# ------------------------------------------------------------------------- pagination


def test_single_request_with_records_path_and_params(api, ctx):
    api.routes["/items"] = lambda _: ok({"data": {"items": ITEMS[:3]}, "meta": {}})
    source = http_json(api.url("/items"), records_path="data.items", params={"status": "open"})

    pages = run(source, ctx)

    assert pages == [ITEMS[:3]]
    assert len(api.requests) == 1
    assert api.requests[0].query == {"status": "open"}
    assert api.requests[0].headers["accept"] == "application/json"


def test_body_itself_is_the_list(api, ctx):
    api.routes["/items"] = lambda _: ok(ITEMS)
    assert rows(run(http_json(api.url("/items")), ctx)) == ITEMS


def page_number_route(per_page_default: int) -> Callable[[Seen], Reply]:
    def route(r: Seen) -> Reply:
        size = int(r.query.get("per_page", per_page_default))
        page = int(r.query["page"])
        return ok({"results": ITEMS[(page - 1) * size : page * size]})

    return route


def test_page_number_stops_on_short_page(api, ctx):
    api.routes["/items"] = page_number_route(3)
    source = http_json(
        api.url("/items"),
        records_path="results",
        pagination=PageNumber(page_size=3),
        params={"q": "x"},
        max_pages=10,
    )

    pages = run(source, ctx)

    assert [len(p) for p in pages] == [3, 3, 1]
    assert rows(pages) == ITEMS
    assert [r.query for r in api.requests] == [
        {"q": "x", "page": str(n), "per_page": "3"} for n in (1, 2, 3)
    ]


def test_page_number_without_size_stops_on_empty_page(api, ctx):
    api.routes["/items"] = page_number_route(4)
    source = http_json(
        api.url("/items"), records_path="results", pagination=PageNumber(), max_pages=10
    )

    assert rows(run(source, ctx)) == ITEMS
    assert [r.query["page"] for r in api.requests] == ["1", "2", "3"]
    assert all("per_page" not in r.query for r in api.requests)


def test_offset_limit_stops_on_short_page(api, ctx):
    def route(r: Seen) -> Reply:
        offset, limit = int(r.query["skip"]), int(r.query["take"])
        return ok(ITEMS[offset : offset + limit])

    api.routes["/items"] = route
    source = http_json(
        api.url("/items"),
        pagination=OffsetLimit(limit=2, offset_param="skip", limit_param="take"),
        max_pages=10,
    )

    pages = run(source, ctx)

    assert [len(p) for p in pages] == [2, 2, 2, 1]
    assert [r.query["skip"] for r in api.requests] == ["0", "2", "4", "6"]


def test_cursor_follows_until_cursor_is_null(api, ctx):
    def route(r: Seen) -> Reply:
        start = int(r.query.get("after", "0"))
        nxt = start + 3 if start + 3 < len(ITEMS) else None
        return ok({"items": ITEMS[start : start + 3], "meta": {"next": nxt}})

    api.routes["/items"] = route
    source = http_json(
        api.url("/items"),
        records_path="items",
        pagination=Cursor(cursor_param="after", cursor_path="meta.next"),
        max_pages=10,
    )

    assert rows(run(source, ctx)) == ITEMS
    assert [r.query.get("after") for r in api.requests] == [None, "3", "6"]


@pytest.mark.parametrize("last_meta", [{}, {"next": ""}, {"next": None}])
def test_cursor_missing_or_empty_stops(api, ctx, last_meta):
    def route(r: Seen) -> Reply:
        if "after" in r.query:
            return ok({"items": ITEMS[3:], "meta": last_meta})
        return ok({"items": ITEMS[:3], "meta": {"next": "abc"}})

    api.routes["/items"] = route
    source = http_json(
        api.url("/items"),
        records_path="items",
        pagination=Cursor(cursor_param="after", cursor_path="meta.next"),
        max_pages=10,
    )

    assert rows(run(source, ctx)) == ITEMS
    assert len(api.requests) == 2


def test_repeated_cursor_is_fatal(api, ctx):
    api.routes["/items"] = lambda _: ok({"items": [{"id": len(api.requests)}], "next": "same"})
    source = http_json(
        api.url("/items"),
        records_path="items",
        pagination=Cursor(cursor_param="c", cursor_path="next"),
        max_pages=10,
    )

    with pytest.raises(FatalError, match="cursor it was sent"):
        run(source, ctx)
    assert len(api.requests) == 2


def test_max_pages_bounds_an_endless_cursor(api, ctx):
    api.routes["/items"] = lambda _: ok(
        {"items": [{"id": len(api.requests)}], "next": f"c{len(api.requests)}"}
    )
    source = http_json(
        api.url("/items"),
        records_path="items",
        pagination=Cursor(cursor_param="c", cursor_path="next"),
        max_pages=3,
        on_max_pages="stop",
    )

    assert [r["id"] for r in rows(run(source, ctx))] == [1, 2, 3]
    assert len(api.requests) == 3


def test_max_pages_reached_fails_by_default(api, ctx):
    api.routes["/items"] = lambda _: ok(
        {"items": [{"id": len(api.requests)}], "next": f"c{len(api.requests)}"}
    )
    source = http_json(
        api.url("/items"),
        records_path="items",
        pagination=Cursor(cursor_param="c", cursor_path="next"),
        max_pages=3,
    )

    with pytest.raises(FatalError, match="more pages remain after max_pages=3"):
        run(source, ctx)
    assert len(api.requests) == 3


def test_api_ignoring_the_page_parameter_is_fatal(api, ctx):
    api.routes["/items"] = lambda _: ok(ITEMS[:3])
    source = http_json(api.url("/items"), pagination=PageNumber(page_size=3), max_pages=10)

    with pytest.raises(FatalError, match="same page came back twice"):
        run(source, ctx)
    assert len(api.requests) == 2


def test_next_link_in_body_relative_and_absolute(api, ctx):
    api.routes["/items"] = lambda _: ok({"data": ITEMS[:2], "links": {"next": "/items/2?x=1"}})
    api.routes["/items/2"] = lambda _: ok(
        {"data": ITEMS[2:4], "links": {"next": api.url("/items/3")}}
    )
    api.routes["/items/3"] = lambda _: ok({"data": ITEMS[4:], "links": {}})
    source = http_json(
        api.url("/items"),
        records_path="data",
        pagination=NextLink(next_path="links.next"),
        max_pages=10,
    )

    assert rows(run(source, ctx)) == ITEMS
    assert api.paths() == ["/items", "/items/2", "/items/3"]
    assert api.requests[1].query == {"x": "1"}


def test_next_link_from_link_header(api, ctx):
    def route(r: Seen) -> Reply:
        page = int(r.query.get("page", "1"))
        links = f'<{api.url("/items")}?page=4>; rel="last"'
        if page < 3:
            links = f'<{api.url("/items")}?page={page + 1}>; rel="next", ' + links
        return ok(ITEMS[(page - 1) * 3 : page * 3], {"Link": links})

    api.routes["/items"] = route
    source = http_json(api.url("/items"), pagination=NextLink(), max_pages=10)

    assert rows(run(source, ctx)) == ITEMS
    assert [r.query.get("page") for r in api.requests] == [None, "2", "3"]


def test_next_link_to_another_host_is_refused(api, ctx, monkeypatch):
    monkeypatch.setenv("HTTP_TEST_TOKEN", "tok-cross-host-1")
    api.routes["/items"] = lambda _: ok({"data": ITEMS[:2], "next": api.url("/x", "localhost")})
    source = http_json(
        api.url("/items"),
        records_path="data",
        pagination=NextLink(next_path="next"),
        auth_token_env="HTTP_TEST_TOKEN",
        max_pages=10,
    )

    gen = iter(source.extract(ctx))
    assert next(gen) == ITEMS[:2]
    with pytest.raises(FatalError, match="allow_cross_host") as err:
        next(gen)
    assert "localhost" in str(err.value)
    assert api.paths() == ["/items"]


def test_cross_host_next_link_allowed_is_followed_without_credentials(api, ctx, monkeypatch):
    monkeypatch.setenv("HTTP_TEST_TOKEN", "tok-cross-host-2")
    api.routes["/items"] = lambda _: ok({"data": ITEMS[:2], "next": api.url("/x", "localhost")})
    api.routes["/x"] = lambda _: ok({"data": ITEMS[2:]})
    source = http_json(
        api.url("/items"),
        records_path="data",
        pagination=NextLink(next_path="next", allow_cross_host=True),
        headers={"X-Api-Key": "custom-secret"},
        auth_token_env="HTTP_TEST_TOKEN",
        max_pages=10,
    )

    assert rows(run(source, ctx)) == ITEMS
    first, second = api.requests
    assert first.headers["authorization"] == "Bearer tok-cross-host-2"
    assert first.headers["x-api-key"] == "custom-secret"
    assert second.headers["host"].startswith("localhost")
    assert "authorization" not in second.headers
    assert "x-api-key" not in second.headers


def test_next_link_to_itself_is_fatal(api, ctx):
    api.routes["/items"] = lambda _: ok(ITEMS[:1], {"Link": f'<{api.url("/items")}>; rel="next"'})
    source = http_json(api.url("/items"), pagination=NextLink(), max_pages=10)

    with pytest.raises(FatalError, match="same page"):
        run(source, ctx)
    assert len(api.requests) == 1


# ---------------------------------------------------------------------------- window


def test_window_params_send_the_run_window(api, ctx):
    api.routes["/events"] = lambda _: ok([])
    run(http_json(api.url("/events"), window_params={"since": "start", "until": "end"}), ctx)
    run(
        http_json(api.url("/events"), window_params={"from": "start"}, window_format="unix"),
        ctx,
    )

    assert api.requests[0].query == {
        "since": "2026-01-01T00:00:00+00:00",
        "until": "2026-01-02T00:00:00+00:00",
    }
    assert api.requests[1].query == {"from": "1767225600"}


# --------------------------------------------------------------------- retries, errors


def test_503_then_200_is_retried(api, ctx):
    def route(r: Seen) -> Reply:
        return (503, {}, {"error": "busy"}) if len(api.requests) == 1 else ok(ITEMS)

    api.routes["/items"] = route
    assert rows(run(http_json(api.url("/items"), **FAST), ctx)) == ITEMS
    assert len(api.requests) == 2


def test_429_with_retry_after_zero_is_retried(api, ctx):
    def route(r: Seen) -> Reply:
        if len(api.requests) == 1:
            return 429, {"Retry-After": "0"}, {"error": "slow down"}
        return ok(ITEMS)

    api.routes["/items"] = route
    started = time.monotonic()
    assert rows(run(http_json(api.url("/items"), **FAST), ctx)) == ITEMS
    assert len(api.requests) == 2
    assert time.monotonic() - started < 2


def test_persistent_500_becomes_retriable_after_max_retries(api, ctx):
    api.routes["/items"] = lambda _: (500, {}, {"error": "database on fire"})
    source = http_json(api.url("/items"), max_retries=2, **FAST)

    with pytest.raises(RetriableError) as err:
        run(source, ctx)
    message = str(err.value)
    assert "HTTP 500" in message
    assert api.url("/items") in message
    assert "database on fire" in message
    assert len(api.requests) == 3


def test_404_is_fatal_with_status_url_and_body_and_no_secret(api, ctx):
    api.routes["/missing"] = lambda _: (404, {}, b"not here\nat all")
    source = http_json(
        api.url("/missing"), params={"api_key": "hunter2", "page_kind": "all"}, **FAST
    )

    with pytest.raises(FatalError) as err:
        run(source, ctx)
    message = str(err.value)
    assert "HTTP 404" in message
    assert api.url("/missing") in message
    assert "not here at all" in message
    assert "\n" not in message
    assert "hunter2" not in message
    assert "api_key=REDACTED" in message
    assert "page_kind=all" in message
    assert len(api.requests) == 1  # a 404 is not retried
    assert api.requests[0].query["api_key"] == "hunter2"


def test_connection_refused_is_retriable(ctx):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = http_json(f"http://127.0.0.1:{port}/items", max_retries=1, **FAST)

    with pytest.raises(RetriableError, match=f"GET http://127.0.0.1:{port}/items failed"):
        run(source, ctx)


def test_read_timeout_is_retried_then_retriable(api, ctx):
    def slow(r: Seen) -> Reply:
        time.sleep(0.3)
        return ok(ITEMS)

    api.routes["/slow"] = slow
    source = http_json(api.url("/slow"), timeout=0.05, max_retries=1, backoff_factor=0.001)

    with pytest.raises(RetriableError, match="timed out"):
        run(source, ctx)
    assert len(api.requests) == 2


def test_invalid_json_is_fatal(api, ctx):
    api.routes["/items"] = lambda _: ok(b"<html>oops</html>")
    with pytest.raises(FatalError, match="not JSON") as err:
        run(http_json(api.url("/items")), ctx)
    assert api.url("/items") in str(err.value)
    assert "<html>oops</html>" in str(err.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"data": {"rows": []}}, "'data.items' not found"),
        ({"data": {"items": {"id": 1}}}, "'data.items' is a dict, expected a list"),
        ({"data": {"items": [1, 2]}}, "record 0 at records_path 'data.items' is a int"),
    ],
)
def test_bad_records_path_is_fatal(api, ctx, body, expected):
    api.routes["/items"] = lambda _: ok(body)
    with pytest.raises(FatalError, match=expected) as err:
        run(http_json(api.url("/items"), records_path="data.items"), ctx)
    assert api.url("/items") in str(err.value)


def test_redirect_to_another_origin_is_followed_without_credentials(api, ctx, monkeypatch):
    monkeypatch.setenv("HTTP_TEST_TOKEN", "tok-redirect-1")
    api.routes["/old"] = lambda _: (302, {"Location": api.url("/new", "localhost")}, b"")
    api.routes["/new"] = lambda _: ok(ITEMS[:2])
    source = http_json(
        api.url("/old"), auth_token_env="HTTP_TEST_TOKEN", headers={"X-Api-Key": "k-secret"}
    )

    assert rows(run(source, ctx)) == ITEMS[:2]
    first, second = api.requests
    assert first.headers["authorization"] == "Bearer tok-redirect-1"
    assert second.headers["host"].startswith("localhost")
    assert "authorization" not in second.headers
    assert "x-api-key" not in second.headers


def test_redirect_to_a_non_http_scheme_is_fatal(api, ctx):
    api.routes["/old"] = lambda _: (301, {"Location": "file:///etc/passwd"}, b"")

    with pytest.raises(FatalError, match=r"redirects to file:///etc/passwd, not http\(s\)"):
        run(http_json(api.url("/old")), ctx)


# ----------------------------------------------------------------------------- auth


def test_bearer_token_is_sent_and_kept_out_of_errors_and_logs(api, ctx, monkeypatch, capsys):
    token = "tok-s3cr3t-value"
    monkeypatch.setenv("HTTP_TEST_TOKEN", token)

    def route(r: Seen) -> Reply:
        if len(api.requests) == 1:
            return ok([{"id": 1}], {"Link": f'<{api.url("/items")}?page=2>; rel="next"'})
        return 403, {}, f"token {r.headers['authorization']} lacks scope".encode()

    api.routes["/items"] = route
    source = http_json(
        api.url("/items"), pagination=NextLink(), auth_token_env="HTTP_TEST_TOKEN", max_pages=5
    )

    with pytest.raises(FatalError) as err:
        run(source, ctx)
    assert [r.headers["authorization"] for r in api.requests] == [f"Bearer {token}"] * 2
    assert "HTTP 403" in str(err.value)
    assert "lacks scope" in str(err.value)
    assert token not in str(err.value)
    assert token not in str(err.value.args)
    captured = capsys.readouterr()
    assert token not in captured.out + captured.err
    assert token not in source.describe()


def test_missing_token_variable_is_config_error_at_run_time_only(api, ctx, monkeypatch):
    monkeypatch.delenv("HTTP_TEST_NO_SUCH_TOKEN", raising=False)
    source = http_json(api.url("/items"), auth_token_env="HTTP_TEST_NO_SUCH_TOKEN")

    with pytest.raises(ConfigError, match="HTTP_TEST_NO_SUCH_TOKEN"):
        run(source, ctx)
    assert api.requests == []


# --------------------------------------------------------------------- cancellation


def test_cancellation_between_pages(api, ctx):
    api.routes["/items"] = lambda r: ok([{"page": int(r.query["page"])}] * 2)
    source = http_json(api.url("/items"), pagination=PageNumber(page_size=2), max_pages=50)

    gen = iter(source.extract(ctx))
    assert next(gen) == [{"page": 1}] * 2
    ctx.cancel.set()
    with pytest.raises(InterruptedRunError):
        next(gen)
    assert len(api.requests) == 1


# ----------------------------------------------------------------- output and flows


def test_schema_fixes_types_of_each_page(api, ctx):
    api.routes["/items"] = lambda _: ok([{"id": 1, "name": None, "extra": True}])
    schema = pa.schema([("id", pa.int32()), ("name", pa.string())])

    (batch,) = run(http_json(api.url("/items"), schema=schema), ctx)

    assert isinstance(batch, pa.RecordBatch)
    assert batch.schema == schema
    assert batch.to_pylist() == [{"id": 1, "name": None}]


def test_runs_in_an_el_pipeline_with_bounded_batches(api, make_context, runner_settings):
    api.routes["/items"] = page_number_route(3)
    loaded: list[pa.RecordBatch] = []

    def load(batch):
        loaded.append(batch)

    source = http_json(
        api.url("/items"),
        records_path="results",
        pagination=PageNumber(page_size=3),
        max_pages=10,
    )
    pipeline = el("http_items", extract=source, load=load)
    ctx = make_context(
        pipeline="http_items", settings=runner_settings.model_copy(update={"batch_rows": 2})
    )

    pipeline.run(ctx)

    assert pa.Table.from_batches(loaded).to_pylist() == ITEMS
    assert max(b.num_rows for b in loaded) <= 2
    assert ctx.node_stats.rows_loaded == len(ITEMS)
    assert ctx.node_stats.status == "succeeded"


# ------------------------------------------------------------------- declaration


@pytest.mark.parametrize(
    ("declare", "expected"),
    [
        (lambda: http_json("ftp://example.com/x"), "absolute http"),
        (lambda: http_json("/relative"), "absolute http"),
        (lambda: http_json("https://e.com", records_path="a..b"), "dotted path"),
        (lambda: http_json("https://e.com", max_pages=0), "max_pages"),
        (lambda: http_json("https://e.com", max_retries=-1), "max_retries"),
        (lambda: http_json("https://e.com", timeout=0), "timeout"),
        (lambda: http_json("https://e.com", pagination="page"), "pagination must be"),
        (lambda: http_json("https://e.com", window_params={"s": "middle"}), "'start' or 'end'"),
        (lambda: http_json("https://e.com", params={"a": [1]}), "params"),
        (
            lambda: http_json("https://e.com", params={"page": 2}, pagination=PageNumber()),
            "set by both params and pagination",
        ),
        (
            lambda: http_json(
                "https://e.com",
                auth_token_env="T",
                headers={"authorization": "Basic x"},
            ),
            "not both",
        ),
        (lambda: http_json("https://e.com", verify=False, ca_cert="/x.pem"), "ca_cert"),
        (lambda: PageNumber(page_size=0), "page_size"),
        (lambda: PageNumber(page_param=""), "page_param"),
        (lambda: OffsetLimit(limit=0), "limit"),
        (lambda: OffsetLimit(offset_param="n", limit_param="n"), "differ"),
        (lambda: Cursor(cursor_param="after", cursor_path=""), "cursor_path"),
        (lambda: Cursor(cursor_param=" ", cursor_path="next"), "cursor_param"),
        (lambda: NextLink(next_path=".next"), "dotted path"),
        (lambda: http_json("https://e.com", timeout="5"), "timeout: Input should be"),
        (lambda: http_json("https://e.com", max_response_bytes=1.5), "max_response_bytes"),
        (lambda: HttpJsonSource("https://e.com", bogus=1), "bogus: Extra inputs"),
        (lambda: PageNumber(page_size=True), "page_size"),
        (lambda: http_json("https://e.com", headers={"X-Key": "s3cr3t\r\nX: y"}), "one-line"),
    ],
)
def test_bad_declarations_are_config_errors(declare, expected):
    with pytest.raises(ConfigError, match=expected) as err:
        declare()
    assert "\n" not in str(err.value)
    assert "s3cr3t" not in str(err.value)  # a header value is never shown


def test_describe_and_defaults():
    source = http_json("https://user:pw@api.example.com/v1/items?token=abc&kind=a")
    assert isinstance(source.pagination, NoPagination)
    assert source.describe() == (
        "http_json(GET https://api.example.com/v1/items?token=REDACTED&kind=a, NoPagination)"
    )


def test_redact_url_hides_secret_values_and_user_info():
    url = "https://u:p@h.example/p?access_token=1&apiKey=2&client_secret=3&password=4&n=5#frag"
    assert redact_url(url) == (
        "https://h.example/p?access_token=REDACTED&apiKey=REDACTED"
        "&client_secret=REDACTED&password=REDACTED&n=5"
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('<https://a/x?p=2>; rel="next", <https://a/x?p=9>; rel="last"', "https://a/x?p=2"),
        ('<https://a/x?p=1>; rel="prev", <https://a/x?p=3>; rel=next', "https://a/x?p=3"),
        ('<https://a/x?a=1,2>; title="a, b"; rel="prev next"', "https://a/x?a=1,2"),
        ('<https://a/x?p=9>; rel="last"', None),
        (None, None),
    ],
)
def test_link_header_parsing(header, expected):
    assert next_link(header) == expected

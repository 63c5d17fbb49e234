"""A hostile HTTP API at the tool level: retried where a retry can help, otherwise one
clear line naming the URL; bounded in time, never another exception."""

from __future__ import annotations

import re
import time

import pytest
from hostile_server import RECORDS, STALL_SECONDS

from runner.errors import FatalError, RetriableError
from runner.tools.extract.http import NextLink, http_json

FAST = {"backoff_factor": 0.001, "timeout": 0.3, "max_retries": 2}


@pytest.fixture
def ctx(make_context):
    return make_context()


def fetch(url, ctx, **options):
    return [row for page in http_json(url, **(FAST | options)).extract(ctx) for row in page]


@pytest.mark.parametrize(
    ("path", "hits"),
    [("/flaky/2", 3), ("/throttled/2", 3)],
    ids=["500-then-ok", "429-then-ok"],
)
def test_transient_statuses_are_retried_until_they_pass(hostile_api, ctx, path, hits):
    assert fetch(hostile_api.url(path), ctx) == RECORDS
    assert hostile_api.hits[path] == hits


@pytest.mark.parametrize(
    ("path", "error", "pattern"),
    [
        ("/status/500", RetriableError, r"still returned HTTP 500 after 2 retries"),
        ("/status/503", RetriableError, r"still returned HTTP 503 after 2 retries"),
        ("/throttled/99", RetriableError, r"still returned HTTP 429 after 2 retries"),
        ("/stall", RetriableError, r"failed after 2 retries: ReadTimeoutError"),
        ("/truncated", RetriableError, r"(?i)incomplete|protocol|connection"),
        ("/status/404", FatalError, r"returned HTTP 404"),
        ("/status/401", FatalError, r"returned HTTP 401"),
        ("/cut-json", FatalError, r"the response is not JSON"),
        ("/html", FatalError, r"the response is not JSON .*502 Bad Gateway"),
        ("/invalid-utf8", FatalError, r"the response is not JSON"),
        ("/nested", FatalError, r"the response is not JSON|nested too deeply"),
        ("/scalars", FatalError, r"record 0 at the body is a int, expected an object"),
        ("/loop/a", FatalError, r"(?i)redirect"),
        ("/self", FatalError, r"(?i)redirect"),
    ],
)
def test_a_failing_api_is_one_line_naming_the_url(hostile_api, ctx, path, error, pattern):
    url = hostile_api.url(path)
    started = time.monotonic()
    with pytest.raises(error) as info:
        fetch(url, ctx)
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert url in message, message
    assert "\n" not in message
    assert len(message) < 1000
    assert re.search(pattern, message), message
    assert elapsed < STALL_SECONDS * 3  # bounded: timeouts and retries, no hang
    if path.startswith(("/loop", "/self")):
        assert sum(hostile_api.hits.values()) <= 12  # the redirect limit holds


def test_a_redirect_loop_through_next_links_stops(hostile_api, ctx):
    hostile_api_url = hostile_api.url("/ok")
    # /ok has no Link header: NextLink stops after one page, as it must
    assert fetch(hostile_api_url, ctx, pagination=NextLink()) == RECORDS

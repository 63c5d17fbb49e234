"""http_json against a hostile API on 127.0.0.1: it never hangs and never blows memory.

Each test reproduces one attack on a real local server (``tests/hostile/hostile_server.py``).
Time is never measured; each attack runs on a thread that must end within ``HANG``, a
generous bound that only says "it did not hang" (without the defences each attack holds a
client for a minute, or forever), so a regression fails the test instead of holding CI.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading

import pytest
from hostile.hostile_server import (
    BOMB_BYTES,
    RECORDS,
    TRICKLE_BYTES,
    TRICKLE_SECONDS,
    gzip_bomb,
    page_records,
    serving,
)
from structlog.testing import capture_logs

from runner.errors import ConfigError, ExitCode, FatalError, InterruptedRunError, RetriableError
from runner.tools.extract.http import Cursor, NextLink, PageNumber, http_json

HANG = 30.0
FAST = {"backoff_factor": 0.001, "timeout": 2.0, "max_retries": 1}
MiB = 1 << 20


@pytest.fixture
def ctx(make_context):
    return make_context()


@pytest.fixture
def bomb():
    """Builds the gzip bomb before the test (a few seconds, once per session)."""
    gzip_bomb()


def bounded(work, ctx=None):
    """``work()`` on a daemon thread: its result or error, or a failure if it hangs.

    A regression then fails the test after ``HANG`` seconds instead of holding CI; the
    run is cancelled so a hung extractor stops at its next check.
    """
    outcome = {}

    def target():
        try:
            outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed over to the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG)
    if thread.is_alive():
        if ctx is not None:
            ctx.cancel.set()
        pytest.fail(f"the extractor hung on the attack for more than {HANG:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def fetch(url, ctx, **options):
    source = http_json(url, **(FAST | options))
    return bounded(lambda: [row for page in source.extract(ctx) for row in page], ctx)


def failure(error, url, ctx, **options) -> str:
    """The one-line message of the error the attack ends in, checked for shape."""
    with pytest.raises(error) as info:
        fetch(url, ctx, **options)
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < 1000
    return message


# ------------------------------------------------------------------ 1. Retry-After


def test_a_huge_retry_after_fails_at_once_naming_the_url_and_the_wait(hostile_api, ctx):
    url = hostile_api.url("/retry-after/100000")

    message = failure(RetriableError, url, ctx)

    assert url in message
    assert "asking to wait 100000 s (Retry-After)" in message
    assert "retry_after_max=60 s" in message
    assert hostile_api.hits["/retry-after/100000"] == 1  # not slept on, not retried
    assert RetriableError.exit_code == ExitCode.TEMPFAIL


def test_a_retry_after_date_far_ahead_is_capped_the_same_way(hostile_api, ctx):
    url = hostile_api.url("/retry-after/Wed,%2021%20Oct%202099%2007:28:00%20GMT")

    message = failure(RetriableError, url, ctx)

    assert "(Retry-After), more than retry_after_max=60 s" in message


def test_a_retry_after_within_the_cap_is_honoured(hostile_api, ctx):
    with capture_logs() as logs:
        assert fetch(hostile_api.url("/retry-after-once/1"), ctx) == RECORDS

    (retry,) = [entry for entry in logs if entry["event"] == "http request retried"]
    assert retry["wait_seconds"] == 1.0
    assert hostile_api.hits["/retry-after-once/1"] == 2


def test_the_retry_after_cap_is_configurable(hostile_api, ctx):
    message = failure(
        RetriableError, hostile_api.url("/retry-after-once/1"), ctx, retry_after_max=0.5
    )

    assert "asking to wait 1 s (Retry-After), more than retry_after_max=0.5 s" in message


def test_a_wait_past_the_extract_deadline_fails_before_sleeping(hostile_api, ctx):
    url = hostile_api.url("/retry-after/20")

    message = failure(RetriableError, url, ctx, retry_after_max=100, extract_deadline=5)

    assert "waiting 20 s before retry 1 would pass the extract_deadline=5 s" in message
    assert hostile_api.hits["/retry-after/20"] == 1


def test_a_cancelled_run_stops_waiting_for_a_retry(hostile_api, ctx):
    source = http_json(hostile_api.url("/retry-after/20"), retry_after_max=100)
    threading.Timer(0.5, ctx.cancel.set).start()

    with pytest.raises(InterruptedRunError, match="waiting to retry"):
        bounded(lambda: list(source.extract(ctx)))


# ---------------------------------------------------------------------- 2. deadlines


@pytest.mark.parametrize("path", ["/trickle-body", "/trickle-headers"])
def test_a_server_trickling_bytes_hits_the_request_deadline(hostile_api, ctx, path):
    # a byte every 0.2 s never trips the 1 s read timeout; the deadline counts the total
    assert TRICKLE_SECONDS < 1
    assert TRICKLE_BYTES * TRICKLE_SECONDS > HANG
    url = hostile_api.url(path)

    message = failure(RetriableError, url, ctx, timeout=1.0, request_deadline=1.0)

    assert url in message
    assert "failed after 1 retries: no complete response within request_deadline=1 s" in message
    assert hostile_api.hits[path] == 2  # retried once: a slow server may recover


def test_the_extract_deadline_bounds_a_slow_endless_api(hostile_api, ctx):
    url = hostile_api.url("/slow-pages")

    message = failure(
        RetriableError,
        url,
        ctx,
        pagination=PageNumber(),
        max_pages=None,
        extract_deadline=1.5,
        request_deadline=60,
    )

    assert url in message
    assert "passed its extract_deadline=1.5 s" in message
    assert 1 <= hostile_api.hits["/slow-pages"] <= 6


def test_the_deadlines_are_validated_at_declaration():
    for options in (
        {"request_deadline": 0},
        {"extract_deadline": -1},
        {"retry_after_max": -1},
        {"request_deadline": float("inf")},
    ):
        with pytest.raises(ConfigError, match=next(iter(options))):
            http_json("https://api.example.com/x", **options)


@pytest.fixture
def tls_files(tmp_path):
    """A self-signed certificate for 127.0.0.1 and its key (made by the openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_the_request_deadline_holds_over_tls_too(tls_files, ctx):
    cert = str(tls_files[0])
    with serving(tls=tls_files) as api:
        assert fetch(api.url("/ok"), ctx, ca_cert=cert) == RECORDS
        untrusted = failure(FatalError, api.url("/ok"), ctx)
        message = failure(
            RetriableError, api.url("/trickle-body"), ctx, ca_cert=cert, request_deadline=1.0
        )
        hits = api.hits["/trickle-body"]

    assert "TLS failed" in untrusted
    assert api.url("/trickle-body") in message
    assert "no complete response within request_deadline=1 s" in message
    assert hits == 2


# ---------------------------------------------------------------- 3. decompression


def test_a_gzip_bomb_stops_at_the_size_cap(hostile_api, ctx, bomb):
    url = hostile_api.url("/gzip-bomb")

    message = failure(FatalError, url, ctx)

    assert url in message
    assert "larger than max_response_bytes=64 MiB once decompressed (gzip)" in message


def test_the_size_cap_is_configurable_and_a_genuine_gzip_page_passes(hostile_api, ctx):
    assert len(fetch(hostile_api.url("/gzip-page/20000"), ctx)) == 20000

    message = failure(FatalError, hostile_api.url("/gzip-page/20000"), ctx, max_response_bytes=MiB)
    assert "larger than max_response_bytes=1 MiB" in message


def test_an_announced_body_over_the_cap_is_refused_unread(hostile_api, ctx):
    message = failure(FatalError, hostile_api.url("/ok"), ctx, max_response_bytes=10)

    assert "larger than max_response_bytes=10 bytes;" in message


RSS_PROBE = """
import json, sys
from datetime import UTC, datetime
from runner.errors import RunnerError
from runner.log import get_logger
from runner.pipeline.context import RunContext, RunResources
from runner.pipeline.windows import Window
from runner.settings import Settings
from runner.tools.extract.http import http_json

window = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
ctx = RunContext(pipeline="probe", run_id="probe", window=window, settings=Settings(),
                 resources=RunResources(connect=lambda: None), log=get_logger())
rows, error = 0, None
try:
    for page in http_json(sys.argv[1]).extract(ctx):
        rows += len(page)
except RunnerError as exc:
    error = str(exc)
# VmHWM, not ru_maxrss: after fork and exec, ru_maxrss still counts the parent's pages
status = open("/proc/self/status").read()
peak = int(status.split("VmHWM:")[1].split()[0]) * 1024
print(json.dumps({"rows": rows, "error": error, "peak_rss": peak}))
"""


def test_a_gzip_bomb_keeps_peak_memory_near_the_cap(hostile_api, tmp_path, bomb):
    """Measured in a fresh process: before the cap this attack peaked at 2.4 GB."""
    url = hostile_api.url("/gzip-bomb")
    done = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, url],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=HANG,  # it did not hang
        check=True,
    )
    outcome = json.loads(done.stdout.strip().splitlines()[-1])

    assert "max_response_bytes=64 MiB" in outcome["error"]
    assert outcome["peak_rss"] < 384 * MiB < BOMB_BYTES, outcome


# ----------------------------------------------------------------- 4. endless paging


def test_an_api_ignoring_the_page_parameter_is_caught_despite_a_changing_envelope(hostile_api, ctx):
    url = hostile_api.url("/ignore-page")

    message = failure(
        FatalError, url, ctx, records_path="items", pagination=PageNumber(), max_pages=None
    )

    assert "same page came back twice (page 2 has the records of page 1)" in message
    assert "PageNumber" in message
    assert hostile_api.hits["/ignore-page"] == 2


def test_an_api_wrapping_around_to_the_first_page_is_caught(hostile_api, ctx):
    source = http_json(hostile_api.url("/wrap/3"), pagination=PageNumber(), **FAST)
    pages = source.extract(ctx)

    assert bounded(lambda: [next(pages) for _ in range(3)]) == [page_records(n) for n in (1, 2, 3)]
    with pytest.raises(FatalError, match=r"page 4 has the records of page 1"):
        bounded(lambda: next(pages))
    assert hostile_api.hits["/wrap/3"] == 4


def test_a_cursor_cycle_is_caught_before_the_repeated_request(hostile_api, ctx):
    message = failure(
        FatalError,
        hostile_api.url("/cursor-cycle"),
        ctx,
        records_path="items",
        pagination=Cursor(cursor_param="c", cursor_path="next"),
    )

    assert "page 4 would request the same URL as page 2" in message
    assert hostile_api.hits["/cursor-cycle"] == 3


def test_a_next_link_cycle_is_caught_before_the_repeated_request(hostile_api, ctx):
    message = failure(FatalError, hostile_api.url("/link-cycle/a"), ctx, pagination=NextLink())

    assert "page 3 would request the same URL as page 1" in message
    assert hostile_api.hits["/link-cycle/a"] == 1
    assert hostile_api.hits["/link-cycle/b"] == 1


def test_an_endless_api_fails_at_max_pages(hostile_api, ctx):
    url = hostile_api.url("/endless")

    message = failure(FatalError, url, ctx, pagination=PageNumber(), max_pages=5)

    assert "more pages remain after max_pages=5" in message
    assert hostile_api.hits["/endless"] == 5


def test_every_limit_has_its_documented_default_and_max_pages_none_is_explicit():
    default = http_json("https://api.example.com/x").options
    assert (default.max_pages, default.on_max_pages) == (10_000, "fail")
    assert (default.timeout, default.request_deadline, default.extract_deadline) == (30, 120, None)
    assert (default.retry_after_max, default.max_response_bytes) == (60, 64 * MiB)
    assert http_json("https://api.example.com/x", max_pages=None).options.max_pages is None
    with pytest.raises(ConfigError, match="max_pages"):
        http_json("https://api.example.com/x", max_pages=True)
    with pytest.raises(ConfigError, match="on_max_pages"):
        http_json("https://api.example.com/x", on_max_pages="maybe")


# ------------------------------------------------------------------------ secrets

SECRETS = {"api_key": "k-9f8e7d6c", "sessionid": "s-1a2b3c4d", "token": "t-5e6f7a8b"}


@pytest.mark.usefixtures("bomb")
@pytest.mark.parametrize(
    "attack",
    [
        ("/retry-after/100000", RetriableError, {}),
        ("/trickle-body", RetriableError, {"timeout": 1.0, "request_deadline": 0.5}),
        ("/gzip-bomb", FatalError, {"max_response_bytes": MiB}),
        ("/ignore-page", FatalError, {"records_path": "items", "pagination": PageNumber()}),
        ("/endless", FatalError, {"pagination": PageNumber(), "max_pages": 2}),
        ("/slow-pages", RetriableError, {"pagination": PageNumber(), "extract_deadline": 0.5}),
    ],
    ids=["retry-after", "trickle", "gzip-bomb", "ignore-page", "max-pages", "extract-deadline"],
)
def test_no_attack_gets_a_secret_query_value_into_errors_or_logs(hostile_api, ctx, capsys, attack):
    path, error, options = attack
    query = "&".join(f"{name}={value}" for name, value in SECRETS.items())
    url = hostile_api.url(f"{path}?{query}&kind=all")

    with capture_logs() as logs:
        message = failure(error, url, ctx, **options)

    assert hostile_api.url(path) in message
    assert "api_key=REDACTED&sessionid=REDACTED&token=REDACTED&kind=all" in message
    seen = message + json.dumps(logs, default=str) + "".join(capsys.readouterr())
    for secret in SECRETS.values():
        assert secret not in seen
    assert hostile_api.queries[0]["sessionid"] == SECRETS["sessionid"]  # sent, not shown

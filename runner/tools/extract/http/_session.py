"""One run's HTTP session: GET with retries, redirects, deadlines and secret-free errors.

urllib3 does the connections, TLS and HTTP/1.1; this module decides everything a hostile
server could abuse, so each decision has a bound:

* retries (tenacity): connection errors, timeouts, truncated bodies, a blown request
  deadline, HTTP 429 and 5xx; ``max_retries`` of them, with exponential back-off, or the
  wait the server asks for in ``Retry-After`` when longer.  A ``Retry-After`` above
  ``retry_after_max`` fails the request at once (retriable: a later run tries again)
  instead of sleeping for as long as the server likes; so does a wait that would pass
  the extraction's deadline.  Waits end early when the run is cancelled.
* deadlines (:mod:`._deadlines`): each attempt, redirects included, has ``request_deadline``
  seconds, and no more than what is left of ``extract_deadline``.
* redirects: at most five, to http(s) only; credentials only to the start URL's origin.
* bodies (:mod:`._body`): at most ``max_response_bytes`` once decompressed.

Whatever still fails becomes a one-line RetriableError (exit 75) or FatalError naming the
redacted URL.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential
from urllib3 import BaseHTTPResponse, PoolManager, Timeout
from urllib3.exceptions import HTTPError, LocationValueError, SSLError

from runner.errors import FatalError, InterruptedRunError, RetriableError
from runner.ops.retries import note_retry
from runner.tools.extract.http._body import read_capped, read_snippet
from runner.tools.extract.http._deadlines import Watch
from runner.tools.extract.http._redaction import Scrubber, one_line, redact_url
from runner.tools.extract.http._urls import origin

if TYPE_CHECKING:
    from runner.tools.extract.http._options import HttpJsonOptions

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
BACKOFF_MAX = 60.0
_OBJECT_REPR = re.compile(r"<[^>]* object at 0x[0-9a-f]+>: ")


@dataclass(frozen=True)
class Fetched:
    """A complete 2xx response: where it finally came from, its headers, its body."""

    url: str
    headers: Mapping[str, str]
    body: bytearray


class _Transient(Exception):  # noqa: N818 - internal signal, never leaves this module
    """An attempt that failed in a way a retry may fix: ``what`` happened, and details."""

    def __init__(self, what: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(f"{what}: {detail}")
        self.what = what
        self.detail = detail
        self.retry_after = retry_after


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds asked for by ``Retry-After`` (delay or HTTP date); None when absent or bad.

    Parsed here rather than by urllib3, which clips the value: the error must name what
    the server asked for.
    """
    text = (value or "").strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _cause(exc: BaseException, url: str, shown: str) -> str:
    """An exception as ``Type: message``, without object reprs or the unredacted URL."""
    text = _OBJECT_REPR.sub("", str(exc))
    return f"{type(exc).__name__}: {text}".replace(url, shown)


class HttpSession:
    """GETs for one run of an ``http_json`` source."""

    def __init__(
        self,
        options: HttpJsonOptions,
        *,
        pool: PoolManager,
        headers: Mapping[str, str],
        public_headers: Mapping[str, str],
        scrubber: Scrubber,
        cancel: threading.Event,
        log: Any,
    ) -> None:
        self.options = options
        self.pool = pool
        self.headers = dict(headers)
        self.public_headers = dict(public_headers)
        self.scrubber = scrubber
        self.cancel = cancel
        self.log = log
        self.started = time.monotonic()
        self.extract_end = (
            None if options.extract_deadline is None else self.started + options.extract_deadline
        )
        self._backoff = wait_exponential(multiplier=options.backoff_factor, max=BACKOFF_MAX)

    # -- deadlines ----------------------------------------------------------------------

    def _extract_left(self) -> float | None:
        return None if self.extract_end is None else self.extract_end - time.monotonic()

    def _extract_expired(self, shown: str, when: str) -> RetriableError:
        return RetriableError(
            f"GET {shown}: the extraction passed its extract_deadline="
            f"{self.options.extract_deadline:g} s {when}; a later run retries"
        )

    def check_extract_deadline(self, url: str) -> None:
        """Before a page: refuse to start once the extraction's deadline has passed."""
        left = self._extract_left()
        if left is not None and left <= 0:
            raise self._extract_expired(redact_url(url), "before this page")

    # -- retries ------------------------------------------------------------------------

    def get(self, url: str) -> Fetched:
        """One page: retried while retrying may help; errors name the redacted URL."""
        shown = redact_url(url)
        retrying = Retrying(
            stop=stop_after_attempt(self.options.max_retries + 1),
            wait=lambda state: self._wait(state, shown),
            retry=retry_if_exception_type(_Transient),
            sleep=lambda seconds: self._sleep(seconds, shown),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._attempt(url, shown)
        except _Transient as exc:
            raise RetriableError(
                f"GET {shown} {exc.what} after {self.options.max_retries} retries: {exc.detail}"
            ) from None
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def _wait(self, state: RetryCallState, shown: str) -> float:
        """Back-off, or the server's ``Retry-After`` when longer; refused past the deadline."""
        delay = float(self._backoff(state))
        failure = state.outcome.exception() if state.outcome is not None else None
        if isinstance(failure, _Transient) and failure.retry_after is not None:
            delay = max(delay, failure.retry_after)
        left = self._extract_left()
        if left is not None and delay >= left:
            raise RetriableError(
                f"GET {shown}: waiting {delay:g} s before retry {state.attempt_number} would "
                f"pass the extract_deadline={self.options.extract_deadline:g} s; a later run "
                "retries"
            )
        note_retry()
        self.log.warning(
            "http request retried",
            url=shown,
            attempt=state.attempt_number,
            wait_seconds=round(delay, 3),
            cause=self.scrubber.scrub(str(failure)),
        )
        return delay

    def _sleep(self, seconds: float, shown: str) -> None:
        """Wait before a retry, but not past a cancellation (SIGTERM)."""
        if self.cancel.wait(seconds):
            raise InterruptedRunError(f"interrupted while waiting to retry GET {shown}")

    # -- one attempt --------------------------------------------------------------------

    def _attempt(self, url: str, shown: str) -> Fetched:
        """One attempt, redirects included, under one deadline."""
        seconds = self.options.request_deadline
        left = self._extract_left()
        binding = "request"
        if left is not None and left < seconds:
            if left <= 0:
                raise self._extract_expired(shown, "before this page")
            seconds, binding = left, "extract"
        with Watch(seconds) as watch:
            try:
                fetched = self._follow(url, shown)
            except (HTTPError, OSError, http.client.HTTPException) as exc:
                if watch.expired:
                    raise self._deadline_passed(shown, binding) from None
                if isinstance(exc, SSLError):
                    raise FatalError(
                        f"GET {shown}: TLS failed ({_cause(exc, url, shown)}); check the server "
                        "certificate or ca_cert"
                    ) from None
                if isinstance(exc, LocationValueError):
                    raise FatalError(f"GET {shown}: {_cause(exc, url, shown)}") from None
                raise _Transient("failed", _cause(exc, url, shown)) from None
            if watch.expired:  # the read ended because the watch cut it: it may be short
                raise self._deadline_passed(shown, binding)
            return fetched

    def _deadline_passed(self, shown: str, binding: str) -> Exception:
        if binding == "extract":
            return self._extract_expired(shown, "while this page was in flight")
        return _Transient(
            "failed",
            f"no complete response within request_deadline={self.options.request_deadline:g} s "
            "(the server stalls or sends too slowly)",
        )

    def _follow(self, url: str, shown: str) -> Fetched:
        """GET ``url``, following redirects; a 2xx body, or the error it deserves."""
        start_origin = origin(self.options.url)
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            self.scrubber.learn_url(current)
            headers = self.headers if origin(current) == start_origin else self.public_headers
            response = self.pool.request(
                "GET",
                current,
                headers=headers,
                retries=False,
                redirect=False,
                preload_content=False,
                decode_content=True,
                timeout=Timeout(connect=self.options.timeout, read=self.options.timeout),
            )
            try:
                target = self._judge(response, current, shown)
                if target is None:
                    body = read_capped(response, limit=self.options.max_response_bytes, shown=shown)
                    return Fetched(url=current, headers=response.headers, body=body)
            finally:
                response.close()  # unread rest (an error body, a redirect's) is not drained
                response.release_conn()
            current = target
        raise FatalError(
            f"GET {shown} still redirects (HTTP {response.status} to {redact_url(current)}) "
            f"after {MAX_REDIRECTS} redirects; a redirect loop?"
        )

    def _judge(self, response: BaseHTTPResponse, url: str, shown: str) -> str | None:
        """None for a 2xx, the target of a redirect, else the error for the status."""
        status = response.status
        if 200 <= status < 300:
            return None
        location = response.headers.get("Location")
        if status in REDIRECT_STATUSES and location:
            target = urljoin(url, location.strip())
            if urlsplit(target).scheme.lower() not in ("http", "https"):
                raise FatalError(f"GET {shown} redirects to {redact_url(target)}, not http(s)")
            return target
        try:
            snippet = one_line(read_snippet(response))
        except (HTTPError, OSError, http.client.HTTPException):
            snippet = ""  # the status is what matters; a broken error body is no news
        if status not in RETRY_STATUSES:
            raise FatalError(f"GET {shown} returned HTTP {status}: {snippet}")
        asked = _parse_retry_after(response.headers.get("Retry-After"))
        cap = self.options.retry_after_max
        if asked is not None and asked > cap:
            raise RetriableError(
                f"GET {shown} returned HTTP {status} asking to wait {asked:g} s (Retry-After), "
                f"more than retry_after_max={cap:g} s; giving up so a later run retries: "
                f"{snippet}"
            )
        raise _Transient(f"still returned HTTP {status}", snippet, asked)

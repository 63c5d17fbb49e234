"""A paginated HTTP JSON API as a source.

One GET per page, one page in memory at a time; each page's records are yielded as a
list of row dicts (or one Arrow batch when a schema is given) and the run loop bounds
batch sizes.  Retries, back-off and ``Retry-After`` are urllib3's, so a flaky API costs
a few seconds, not a failed run; what is still failing afterwards becomes a
RetriableError so the Job retries later, and client errors become FatalError.

Credentials are read when the run starts, sent only to the start URL's origin, and kept
out of logs and error messages (query values whose names look secret are redacted).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from runner.batches import Row, from_rows
from runner.errors import ConfigError, FatalError, PipelineError, RetriableError
from runner.pipeline.steps import Extractor

if TYPE_CHECKING:
    import pyarrow as pa
    import urllib3

    from runner.pipeline.context import RunContext

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDACTED = "REDACTED"
_SECRET_WORDS = ("token", "key", "secret", "password", "passwd", "signature", "sig", "auth")
_SNIPPET_CHARS = 200
_MAX_REDIRECTS = 5
_MISSING: Any = object()

ParamValue: TypeAlias = str | int | float | bool
NextRequest: TypeAlias = "dict[str, str] | str | None"
"""What a pagination style asks for next: query params on the start URL, a URL, or stop."""


# --------------------------------------------------------------------------- helpers


def redact_url(url: str) -> str:
    """``url`` safe for logs: no user info, no fragment, secret-looking query values hidden."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    pairs = [
        (name, REDACTED if _looks_secret(name) else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(pairs), ""))


def _looks_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _with_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` set in its query string (replacing same-named ones)."""
    parts = urlsplit(url)
    pairs = [
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if name not in params
    ]
    pairs.extend(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(pairs), ""))


def _origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and effective port: what must match for credentials to be sent."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def _check_path(option: str, path: str | None) -> tuple[str, ...]:
    """Split a dotted path, refusing empty segments such as ``a..b``."""
    if path is None or path == "":
        return ()
    if not isinstance(path, str) or any(not part for part in path.split(".")):
        raise ConfigError(f"{option} must be a dotted path such as 'data.items', not {path!r}")
    return tuple(path.split("."))


def _lookup(body: Any, path: tuple[str, ...]) -> Any:
    """Follow a dotted path through objects (and list indices); _MISSING when absent."""
    current = body
    for part in path:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _check_name(option: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{option} must be a non-empty string, not {value!r}")
    return value


def _check_int(option: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{option} must be an integer >= {minimum}, not {value!r}")
    return value


def _one_line(data: bytes) -> str:
    """The start of a response body, on one line, for error messages."""
    text = data[: _SNIPPET_CHARS * 4].decode("utf-8", "replace")
    return " ".join(text.split())[:_SNIPPET_CHARS]


_LINK = re.compile(r'<([^>]*)>((?:\s*;\s*[^\s=;,]+\s*(?:=\s*(?:"[^"]*"|[^\s;,]*))?)*)')
_LINK_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*(?:"([^"]*)"|([^\s;]*))')


def next_link(header: str | None) -> str | None:
    """The ``rel="next"`` target of an RFC 8288 ``Link`` header, if any."""
    for target, params in _LINK.findall(header or ""):
        for name, quoted, bare in _LINK_PARAM.findall(params):
            if name.lower() == "rel" and "next" in (quoted or bare).lower().split():
                return str(target).strip()
    return None


# ----------------------------------------------------------------- pagination styles


@dataclass(frozen=True)
class Page:
    """One fetched page, as pagination styles see it."""

    url: str
    sent: Mapping[str, str]
    records: list[Any]
    body: Any
    link_header: str | None


class Pagination(ABC):
    """How to get from one page to the next; declared once, stateless across runs."""

    def first_params(self) -> dict[str, str]:
        """Query parameters of the first request."""
        return {}

    def query_names(self) -> frozenset[str]:
        """Query parameter names this style sets (to catch clashes at declaration)."""
        return frozenset()

    @abstractmethod
    def next_request(self, page: Page) -> NextRequest:
        """Query params for the next request, an absolute URL, or None to stop."""


@dataclass(frozen=True, kw_only=True)
class NoPagination(Pagination):
    """A single request: the whole result is in one response."""

    def next_request(self, page: Page) -> NextRequest:  # noqa: ARG002 - the interface
        """Never a next page."""
        return None


@dataclass(frozen=True, kw_only=True)
class PageNumber(Pagination):
    """``?page=1&per_page=100``, ``?page=2...``; stops on an empty or short page.

    Without ``page_size`` nothing is sent for the size and only an empty page stops.
    """

    page_param: str = "page"
    start_page: int = 1
    page_size_param: str | None = "per_page"
    page_size: int | None = None

    def __post_init__(self) -> None:
        _check_name("PageNumber.page_param", self.page_param)
        _check_int("PageNumber.start_page", self.start_page, 0)
        if self.page_size is not None:
            _check_int("PageNumber.page_size", self.page_size, 1)
        if self.page_size_param is not None:
            _check_name("PageNumber.page_size_param", self.page_size_param)
            if self.page_size_param == self.page_param:
                raise ConfigError("PageNumber: page_param and page_size_param must differ")

    def _params(self, page: int) -> dict[str, str]:
        params = {self.page_param: str(page)}
        if self.page_size is not None and self.page_size_param is not None:
            params[self.page_size_param] = str(self.page_size)
        return params

    def first_params(self) -> dict[str, str]:
        """The start page (and size)."""
        return self._params(self.start_page)

    def query_names(self) -> frozenset[str]:
        """Page and size parameter names."""
        return frozenset(n for n in (self.page_param, self.page_size_param) if n is not None)

    def next_request(self, page: Page) -> NextRequest:
        """The following page number, unless this page was empty or short."""
        if not page.records or (self.page_size is not None and len(page.records) < self.page_size):
            return None
        return self._params(int(page.sent[self.page_param]) + 1)


@dataclass(frozen=True, kw_only=True)
class OffsetLimit(Pagination):
    """``?offset=0&limit=100``, ``?offset=100...``; stops on a short page."""

    limit: int = 100
    offset_param: str = "offset"
    limit_param: str = "limit"
    start_offset: int = 0

    def __post_init__(self) -> None:
        _check_int("OffsetLimit.limit", self.limit, 1)
        _check_int("OffsetLimit.start_offset", self.start_offset, 0)
        _check_name("OffsetLimit.offset_param", self.offset_param)
        _check_name("OffsetLimit.limit_param", self.limit_param)
        if self.offset_param == self.limit_param:
            raise ConfigError("OffsetLimit: offset_param and limit_param must differ")

    def _params(self, offset: int) -> dict[str, str]:
        return {self.offset_param: str(offset), self.limit_param: str(self.limit)}

    def first_params(self) -> dict[str, str]:
        """The start offset and the limit."""
        return self._params(self.start_offset)

    def query_names(self) -> frozenset[str]:
        """Offset and limit parameter names."""
        return frozenset({self.offset_param, self.limit_param})

    def next_request(self, page: Page) -> NextRequest:
        """The offset after this page's records, unless the page was short."""
        if len(page.records) < self.limit:
            return None
        return self._params(int(page.sent[self.offset_param]) + len(page.records))


@dataclass(frozen=True, kw_only=True)
class Cursor(Pagination):
    """Sends the cursor found at ``cursor_path`` in each body as ``cursor_param``.

    Stops when the cursor is missing, null or empty; a cursor equal to the one just sent
    is an error (the API would loop forever).
    """

    cursor_param: str
    cursor_path: str

    def __post_init__(self) -> None:
        _check_name("Cursor.cursor_param", self.cursor_param)
        if not _check_path("Cursor.cursor_path", self.cursor_path):
            raise ConfigError("Cursor.cursor_path must name where the next cursor is")

    def query_names(self) -> frozenset[str]:
        """The cursor parameter name."""
        return frozenset({self.cursor_param})

    def next_request(self, page: Page) -> NextRequest:
        """The next cursor, or stop."""
        value = _lookup(page.body, _check_path("Cursor.cursor_path", self.cursor_path))
        if value is _MISSING or value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise FatalError(
                f"GET {redact_url(page.url)}: the cursor at {self.cursor_path!r} is a "
                f"{type(value).__name__}, expected a string or number"
            )
        cursor = str(value)
        if cursor == page.sent.get(self.cursor_param):
            raise FatalError(
                f"GET {redact_url(page.url)}: the API returned the cursor it was sent at "
                f"{self.cursor_path!r}; stopping instead of looping forever"
            )
        return {self.cursor_param: cursor}


@dataclass(frozen=True, kw_only=True)
class NextLink(Pagination):
    """Follows the next page's URL: at ``next_path`` in the body, else the ``Link`` header.

    A link to another scheme, host or port is refused unless ``allow_cross_host`` is
    set; even then the auth token and custom headers are not sent there.
    """

    next_path: str | None = None
    allow_cross_host: bool = False

    def __post_init__(self) -> None:
        _check_path("NextLink.next_path", self.next_path)
        if not isinstance(self.allow_cross_host, bool):
            raise ConfigError("NextLink.allow_cross_host must be True or False")

    def next_request(self, page: Page) -> NextRequest:
        """The next URL resolved against this page's URL, or stop."""
        if self.next_path:
            value = _lookup(page.body, _check_path("NextLink.next_path", self.next_path))
            if value is _MISSING or value is None or value == "":
                return None
            if not isinstance(value, str):
                raise FatalError(
                    f"GET {redact_url(page.url)}: the next link at {self.next_path!r} is a "
                    f"{type(value).__name__}, expected a URL string"
                )
            target = value
        else:
            found = next_link(page.link_header)
            if not found:
                return None
            target = found
        return urljoin(page.url, target.strip())


# ----------------------------------------------------------------------------- source


@dataclass
class _Run:
    """What one run holds: the connection pool and the secrets to keep out of messages."""

    pool: urllib3.PoolManager
    headers: dict[str, str]
    public_headers: dict[str, str]
    secrets: tuple[str, ...]

    def scrub(self, text: str) -> str:
        """``text`` with every secret value of this run replaced."""
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


class HttpJsonSource(Extractor):
    """GETs a JSON API page by page and yields each page's records."""

    name = "http_json"

    def __init__(
        self,
        url: str,
        *,
        records_path: str | None = None,
        pagination: Pagination | None = None,
        params: Mapping[str, ParamValue] | None = None,
        headers: Mapping[str, str] | None = None,
        auth_token_env: str | None = None,
        window_params: Mapping[str, Literal["start", "end"]] | None = None,
        window_format: Literal["iso", "unix"] = "iso",
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff_factor: float = 0.5,
        max_pages: int | None = None,
        verify: bool = True,
        ca_cert: str | None = None,
        schema: pa.Schema | None = None,
    ) -> None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"http_json: url must be an absolute http(s) URL, not {url!r}")
        self.url = url
        self.records_path = records_path or ""
        self._records_path = _check_path("http_json: records_path", records_path)
        self.pagination = pagination if pagination is not None else NoPagination()
        if not isinstance(self.pagination, Pagination):
            raise ConfigError(
                "http_json: pagination must be PageNumber(...), OffsetLimit(...), Cursor(...), "
                f"NextLink(...) or NoPagination(), not {type(pagination).__name__}"
            )
        self.params = self._check_params(params)
        self.window_params = dict(window_params or {})
        for name, bound in self.window_params.items():
            _check_name("http_json: window_params key", name)
            if bound not in ("start", "end"):
                raise ConfigError(
                    f"http_json: window_params[{name!r}] must be 'start' or 'end', not {bound!r}"
                )
        if window_format not in ("iso", "unix"):
            raise ConfigError(
                f"http_json: window_format must be 'iso' or 'unix', not {window_format!r}"
            )
        self.window_format = window_format
        self._check_clashes()
        self.headers = self._check_headers(headers)
        if auth_token_env is not None:
            _check_name("http_json: auth_token_env", auth_token_env)
            if any(h.lower() == "authorization" for h in self.headers):
                raise ConfigError(
                    "http_json: give auth_token_env or an Authorization header, not both"
                )
        self.auth_token_env = auth_token_env
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError(
                f"http_json: timeout must be a positive number of seconds, not {timeout!r}"
            )
        if (
            isinstance(backoff_factor, bool)
            or not isinstance(backoff_factor, int | float)
            or backoff_factor < 0
        ):
            raise ConfigError(f"http_json: backoff_factor must be >= 0, not {backoff_factor!r}")
        self.timeout = float(timeout)
        self.backoff_factor = float(backoff_factor)
        self.max_retries = _check_int("http_json: max_retries", max_retries, 0)
        self.max_pages = (
            None if max_pages is None else _check_int("http_json: max_pages", max_pages, 1)
        )
        if not isinstance(verify, bool):
            raise ConfigError("http_json: verify must be True or False")
        if ca_cert is not None:
            _check_name("http_json: ca_cert", ca_cert)
            if not verify:
                raise ConfigError("http_json: ca_cert is pointless with verify=False")
        self.verify = verify
        self.ca_cert = ca_cert
        self.schema = schema

    @staticmethod
    def _check_params(params: Mapping[str, ParamValue] | None) -> dict[str, str]:
        checked: dict[str, str] = {}
        for name, value in (params or {}).items():
            _check_name("http_json: a params key", name)
            if isinstance(value, bool):
                checked[name] = "true" if value else "false"
            elif isinstance(value, str | int | float):
                checked[name] = str(value)
            else:
                raise ConfigError(
                    f"http_json: params[{name!r}] must be a string, number or bool, "
                    f"not {type(value).__name__}"
                )
        return checked

    @staticmethod
    def _check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
        checked: dict[str, str] = {}
        for name, value in (headers or {}).items():
            _check_name("http_json: a header name", name)
            if not isinstance(value, str) or any(c in value for c in "\r\n"):
                # the value is not shown: headers are where secrets live
                raise ConfigError(f"http_json: header {name!r} must be a one-line string")
            checked[name] = value
        return checked

    def _check_clashes(self) -> None:
        owners = [
            ("params", set(self.params)),
            ("window_params", set(self.window_params)),
            ("pagination", set(self.pagination.query_names())),
        ]
        for i, (first, names) in enumerate(owners):
            for second, other in owners[i + 1 :]:
                if names & other:
                    raise ConfigError(
                        f"http_json: query parameters {sorted(names & other)} are set by both "
                        f"{first} and {second}"
                    )

    def describe(self) -> str:
        """Method, redacted URL and pagination style."""
        return f"{self.step_name}(GET {redact_url(self.url)}, {type(self.pagination).__name__})"

    # -- run ------------------------------------------------------------------------

    def _open(self) -> _Run:
        """Read the token and open the pool; done when the run starts, never at import."""
        import urllib3

        headers = {"Accept": "application/json", "User-Agent": "pipeline-runner", **self.headers}
        public = dict(headers)
        for name in self.headers:
            public.pop(name, None)
        secrets = [v for v in self.headers.values() if len(v) >= 4]
        if self.auth_token_env is not None:
            token = os.environ.get(self.auth_token_env, "").strip()
            if not token:
                raise ConfigError(
                    f"http_json: environment variable {self.auth_token_env} (auth_token_env) "
                    "is not set or empty"
                )
            if any(c in token for c in "\r\n"):
                raise ConfigError(
                    f"http_json: environment variable {self.auth_token_env} holds several lines"
                )
            headers["Authorization"] = f"Bearer {token}"
            secrets.append(token)
        if self.ca_cert is not None and not Path(self.ca_cert).is_file():
            raise ConfigError(f"http_json: ca_cert {self.ca_cert} is not a readable file")
        pool = urllib3.PoolManager(
            cert_reqs="CERT_REQUIRED" if self.verify else "CERT_NONE",
            ca_certs=self.ca_cert,
        )
        return _Run(pool=pool, headers=headers, public_headers=public, secrets=tuple(secrets))

    def _retry(self) -> urllib3.util.Retry:
        from urllib3.util import Retry

        return Retry(
            total=None,
            connect=self.max_retries,
            read=self.max_retries,
            status=self.max_retries,
            other=self.max_retries,
            redirect=_MAX_REDIRECTS,
            allowed_methods=frozenset({"GET"}),
            status_forcelist=RETRY_STATUSES,
            backoff_factor=self.backoff_factor,
            respect_retry_after_header=True,
            # hand back the last response: its status and body go into the error
            raise_on_status=False,
            raise_on_redirect=False,
            remove_headers_on_redirect=Retry.DEFAULT_REMOVE_HEADERS_ON_REDIRECT | set(self.headers),
        )

    def _get(self, run: _Run, url: str, headers: Mapping[str, str]) -> urllib3.BaseHTTPResponse:
        """One page, retried by urllib3; a non-2xx outcome becomes a one-line error."""
        import urllib3
        from urllib3.exceptions import HTTPError, MaxRetryError, SSLError

        shown = redact_url(url)
        try:
            response = run.pool.request(
                "GET",
                url,
                headers=dict(headers),
                retries=self._retry(),
                timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout),
            )
        except MaxRetryError as exc:
            reason = exc.reason
            cause = re.sub(r"<[^>]* object at 0x[0-9a-f]+>: ", "", str(reason))
            cause = f"{type(reason).__name__}: {cause}".replace(url, shown)
            if isinstance(reason, SSLError):
                raise FatalError(
                    f"GET {shown}: TLS failed ({cause}); check the server certificate or ca_cert"
                ) from None
            raise RetriableError(
                f"GET {shown} failed after {self.max_retries} retries: {cause}"
            ) from None
        except HTTPError as exc:
            raise RetriableError(f"GET {shown} failed: {type(exc).__name__}: {exc}") from None
        status = response.status
        if 200 <= status < 300:
            return response
        if 300 <= status < 400:  # urllib3 hands back the last redirect once it gives up
            target = redact_url(urljoin(url, response.headers.get("Location") or ""))
            raise FatalError(
                f"GET {shown} still redirects (HTTP {status} to {target}) after "
                f"{_MAX_REDIRECTS} redirects; a redirect loop?"
            )
        snippet = _one_line(response.data)
        if status in RETRY_STATUSES:
            raise RetriableError(
                f"GET {shown} still returned HTTP {status} after {self.max_retries} retries: "
                f"{snippet}"
            )
        raise FatalError(f"GET {shown} returned HTTP {status}: {snippet}")

    def _records(self, url: str, data: bytes) -> tuple[Any, list[Row]]:
        """The parsed body and its records, checked to be a list of objects."""
        try:
            body = json.loads(data)
        except RecursionError:
            raise FatalError(
                f"GET {redact_url(url)}: the response is not JSON this reader accepts "
                "(nested too deeply)"
            ) from None
        except ValueError as exc:
            raise FatalError(
                f"GET {redact_url(url)}: the response is not JSON ({exc}): {_one_line(data)}"
            ) from None
        records = _lookup(body, self._records_path)
        where = f"records_path {self.records_path!r}" if self.records_path else "the body"
        if records is _MISSING:
            raise FatalError(f"GET {redact_url(url)}: {where} not found in the response")
        if not isinstance(records, list):
            raise FatalError(
                f"GET {redact_url(url)}: {where} is a {type(records).__name__}, expected a list"
            )
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                raise FatalError(
                    f"GET {redact_url(url)}: record {index} at {where} is a "
                    f"{type(record).__name__}, expected an object"
                )
        return body, records

    def _window_query(self, ctx: RunContext) -> dict[str, str]:
        bounds = {"start": ctx.window.start, "end": ctx.window.end}
        return {
            name: (
                bounds[bound].isoformat()
                if self.window_format == "iso"
                else str(int(bounds[bound].timestamp()))
            )
            for name, bound in self.window_params.items()
        }

    def _follow(self, current: str, target: str) -> str:
        """Check a next link: http(s), not the page just fetched, same origin unless allowed."""
        shown = redact_url(current)
        if urlsplit(target).scheme.lower() not in ("http", "https"):
            raise FatalError(f"GET {shown}: the next link {redact_url(target)} is not http(s)")
        if target == current:
            raise FatalError(
                f"GET {shown}: the next link points to the same page; stopping instead of "
                "looping forever"
            )
        try:
            same = _origin(target) == _origin(self.url)
        except ValueError:
            raise FatalError(
                f"GET {shown}: the next link {redact_url(target)} is malformed"
            ) from None
        allowed = isinstance(self.pagination, NextLink) and self.pagination.allow_cross_host
        if not same and not allowed:
            raise FatalError(
                f"GET {shown}: the next link {redact_url(target)} leaves "
                f"{'://'.join(_origin(self.url)[:2])}; refusing to send credentials there "
                "(NextLink(allow_cross_host=True) follows it without them)"
            )
        return target

    def extract(self, ctx: RunContext) -> Iterator[Any]:
        """Fetch page after page, checking for cancellation between pages."""
        run = self._open()
        try:
            yield from self._pages(ctx, run)
        except PipelineError as exc:
            exc.message = run.scrub(exc.message)
            exc.args = (exc.message,)
            raise
        finally:
            run.pool.clear()

    def _pages(self, ctx: RunContext, run: _Run) -> Iterator[Any]:
        fixed = {**self.params, **self._window_query(ctx)}
        sent = self.pagination.first_params()
        url = _with_query(self.url, {**fixed, **sent})
        pages = records_total = 0
        previous_digest = b""
        while True:
            ctx.check_cancelled()
            headers = run.headers if _origin(url) == _origin(self.url) else run.public_headers
            response = self._get(run, url, headers)
            pages += 1
            data = response.data
            body, records = self._records(url, data)
            digest = hashlib.sha256(data).digest()
            if digest == previous_digest and records:
                raise FatalError(
                    f"GET {redact_url(url)}: the same page came back twice; the API ignores "
                    f"the {type(self.pagination).__name__} parameters, stopping instead of "
                    "looping forever"
                )
            previous_digest = digest
            ctx.log.debug(
                "http page fetched",
                step=self.step_name,
                page=pages,
                records=len(records),
                url=redact_url(url),
            )
            if records:
                records_total += len(records)
                if self.schema is not None:
                    yield from_rows(records, self.schema)
                else:
                    yield records
            following = self.pagination.next_request(
                Page(
                    url=url,
                    sent=sent,
                    records=records,
                    body=body,
                    link_header=response.headers.get("Link"),
                )
            )
            if following is None:
                break
            if self.max_pages is not None and pages >= self.max_pages:
                ctx.log.warning(
                    "http max_pages reached; more pages remain",
                    step=self.step_name,
                    max_pages=self.max_pages,
                    url=redact_url(self.url),
                )
                break
            if isinstance(following, str):
                url, sent = self._follow(url, following), {}
            else:
                url, sent = _with_query(self.url, {**fixed, **following}), following
        ctx.log.info(
            "http extract finished",
            step=self.step_name,
            url=redact_url(self.url),
            pages=pages,
            records=records_total,
        )


def http_json(
    url: str,
    *,
    records_path: str | None = None,
    pagination: Pagination | None = None,
    params: Mapping[str, ParamValue] | None = None,
    headers: Mapping[str, str] | None = None,
    auth_token_env: str | None = None,
    window_params: Mapping[str, Literal["start", "end"]] | None = None,
    window_format: Literal["iso", "unix"] = "iso",
    timeout: float = 30.0,
    max_retries: int = 5,
    backoff_factor: float = 0.5,
    max_pages: int | None = None,
    verify: bool = True,
    ca_cert: str | None = None,
    schema: pa.Schema | None = None,
) -> HttpJsonSource:
    """A source reading the records of a JSON API, page by page.

    ``records_path`` is the dotted path to the list of records in each body (None: the
    body is the list); ``pagination`` one of PageNumber, OffsetLimit, Cursor, NextLink
    (default: one request).  ``window_params={"since": "start", "until": "end"}`` sends
    the run window's bounds (ISO 8601, or epoch seconds with ``window_format="unix"``).
    ``auth_token_env`` names the environment variable holding a bearer token.  ``schema``
    (a pyarrow schema) fixes column types, so every page yields the same columns.
    """
    return HttpJsonSource(
        url,
        records_path=records_path,
        pagination=pagination,
        params=params,
        headers=headers,
        auth_token_env=auth_token_env,
        window_params=window_params,
        window_format=window_format,
        timeout=timeout,
        max_retries=max_retries,
        backoff_factor=backoff_factor,
        max_pages=max_pages,
        verify=verify,
        ca_cert=ca_cert,
        schema=schema,
    )

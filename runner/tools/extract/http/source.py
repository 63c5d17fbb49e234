"""The ``http_json`` extractor: a paginated JSON API as a source.

One GET per page, one page in memory at a time; each page's records are yielded as a
list of row dicts (or one Arrow batch when a schema is given) and the run loop bounds
batch sizes.  How a request is made, retried and bounded lives in :mod:`._session`; what
comes next in :mod:`.pagination`; loops are caught by :mod:`._repeats`.

Credentials are read when the run starts, sent only to the start URL's origin, and kept
out of logs and error messages (see :mod:`._redaction`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from runner.batches import Row, from_rows
from runner.errors import ConfigError, FatalError, PipelineError
from runner.pipeline.steps import Extractor
from runner.tools.extract.http._options import (
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_REQUEST_DEADLINE,
    DEFAULT_RETRY_AFTER_MAX,
    HttpJsonOptions,
    ParamValue,
)
from runner.tools.extract.http._redaction import Scrubber, one_line, redact_url
from runner.tools.extract.http._repeats import RepeatGuard
from runner.tools.extract.http._urls import origin, with_query
from runner.tools.extract.http.pagination import MISSING, NextLink, Page, Pagination, lookup

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.pipeline.context import RunContext
    from runner.tools.extract.http._session import HttpSession


__all__ = ["HttpJsonSource", "http_json"]


class HttpJsonSource(Extractor):
    """GETs a JSON API page by page and yields each page's records."""

    name = "http_json"

    def __init__(self, url: str, *, schema: pa.Schema | None = None, **options: Any) -> None:
        self.options = HttpJsonOptions(url=url, **options)
        self.schema = schema

    @property
    def url(self) -> str:
        """The start URL."""
        return self.options.url

    @property
    def pagination(self) -> Pagination:
        """The pagination style."""
        return self.options.pagination

    def describe(self) -> str:
        """Method, redacted URL and pagination style."""
        return f"{self.step_name}(GET {redact_url(self.url)}, {type(self.pagination).__name__})"

    # -- run ------------------------------------------------------------------------

    def _open(self, ctx: RunContext) -> HttpSession:
        """Read the token and open the pool; done when the run starts, never at import."""
        from runner.tools.extract.http._deadlines import open_pool
        from runner.tools.extract.http._session import HttpSession

        options = self.options
        headers = {
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
            "User-Agent": "pipeline-runner",
            **options.headers,
        }
        public = {k: v for k, v in headers.items() if k not in options.headers}
        scrubber = Scrubber(list(options.headers.values()))
        scrubber.learn_url(options.url)
        for name, value in options.params.items():
            scrubber.learn_url(with_query("http://x/", {name: value}))
        if options.auth_token_env is not None:
            token = os.environ.get(options.auth_token_env, "").strip()
            if not token:
                raise ConfigError(
                    f"http_json: environment variable {options.auth_token_env} "
                    "(auth_token_env) is not set or empty"
                )
            if any(c in token for c in "\r\n"):
                raise ConfigError(
                    f"http_json: environment variable {options.auth_token_env} holds several lines"
                )
            headers["Authorization"] = f"Bearer {token}"
            scrubber.add(token)
        if options.ca_cert is not None and not Path(options.ca_cert).is_file():
            raise ConfigError(f"http_json: ca_cert {options.ca_cert} is not a readable file")
        return HttpSession(
            options,
            pool=open_pool(verify=options.verify, ca_cert=options.ca_cert),
            headers=headers,
            public_headers=public,
            scrubber=scrubber,
            cancel=ctx.cancel,
            log=ctx.log,
        )

    def _records(self, url: str, data: bytearray) -> tuple[Any, list[Row]]:
        """The parsed body and its records, checked to be a list of objects.

        The raw bytes are released once decoded, so a large page is held as text and
        then as objects, not as all three at once.
        """
        shown = redact_url(url)
        try:
            text = data.decode(json.detect_encoding(data), "surrogatepass")
        except UnicodeDecodeError as exc:
            raise FatalError(
                f"GET {shown}: the response is not JSON ({exc}): {one_line(bytes(data[:800]))}"
            ) from None
        snippet = data[:800]
        data.clear()
        try:
            body = json.loads(text)
        except RecursionError:
            raise FatalError(
                f"GET {shown}: the response is not JSON this reader accepts (nested too deeply)"
            ) from None
        except ValueError as exc:
            raise FatalError(
                f"GET {shown}: the response is not JSON ({exc}): {one_line(bytes(snippet))}"
            ) from None
        del text
        path = self.options.records_path
        records = lookup(body, path)
        where = f"records_path {path!r}" if path else "the body"
        if records is MISSING:
            raise FatalError(f"GET {shown}: {where} not found in the response")
        if not isinstance(records, list):
            raise FatalError(f"GET {shown}: {where} is a {type(records).__name__}, expected a list")
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                raise FatalError(
                    f"GET {shown}: record {index} at {where} is a {type(record).__name__}, "
                    "expected an object"
                )
        return body, records

    def _window_query(self, ctx: RunContext) -> dict[str, str]:
        bounds = {"start": ctx.window.start, "end": ctx.window.end}
        iso = self.options.window_format == "iso"
        return {
            name: bounds[bound].isoformat() if iso else str(int(bounds[bound].timestamp()))
            for name, bound in self.options.window_params.items()
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
            same = origin(target) == origin(self.url)
        except ValueError:
            raise FatalError(
                f"GET {shown}: the next link {redact_url(target)} is malformed"
            ) from None
        allowed = isinstance(self.pagination, NextLink) and self.pagination.allow_cross_host
        if not same and not allowed:
            raise FatalError(
                f"GET {shown}: the next link {redact_url(target)} leaves "
                f"{'://'.join(origin(self.url)[:2])}; refusing to send credentials there "
                "(NextLink(allow_cross_host=True) follows it without them)"
            )
        return target

    def extract(self, ctx: RunContext) -> Iterator[Any]:
        """Fetch page after page, checking for cancellation between pages."""
        session = self._open(ctx)
        try:
            yield from self._pages(ctx, session)
        except PipelineError as exc:
            exc.message = session.scrubber.scrub(exc.message)
            exc.args = (exc.message,)
            raise
        finally:
            session.pool.clear()

    def _out_of_pages(self, ctx: RunContext, url: str) -> None:
        """More pages remain after ``max_pages``: fail (the default), or stop and warn."""
        limit = self.options.max_pages
        if self.options.on_max_pages == "stop":
            ctx.log.warning(
                "http max_pages reached; more pages remain",
                step=self.step_name,
                max_pages=limit,
                url=redact_url(self.url),
            )
            return
        raise FatalError(
            f"GET {redact_url(url)}: more pages remain after max_pages={limit}; raise "
            "max_pages (None for no limit), or set on_max_pages='stop' to load only the "
            "first pages"
        )

    def _pages(self, ctx: RunContext, session: HttpSession) -> Iterator[Any]:
        fixed = {**self.options.params, **self._window_query(ctx)}
        sent = self.pagination.first_params()
        url = with_query(self.url, {**fixed, **sent})
        guard = RepeatGuard(type(self.pagination).__name__)
        pages = records_total = 0
        while True:
            ctx.check_cancelled()
            session.check_extract_deadline(url)
            guard.request(url, pages + 1)
            fetched = session.get(url)
            pages += 1
            body, records = self._records(url, fetched.body)
            guard.records(url, records, pages)
            ctx.log.debug(
                "http page fetched",
                step=self.step_name,
                page=pages,
                records=len(records),
                url=redact_url(url),
            )
            if records:
                records_total += len(records)
                yield records if self.schema is None else from_rows(records, self.schema)
            following = self.pagination.next_request(
                Page(
                    url=fetched.url,
                    sent=sent,
                    records=records,
                    body=body,
                    link_header=fetched.headers.get("Link"),
                )
            )
            del body, records
            if following is None:
                break
            if self.options.max_pages is not None and pages >= self.options.max_pages:
                self._out_of_pages(ctx, url)
                break
            if isinstance(following, str):
                url, sent = self._follow(url, following), {}
            else:
                url, sent = with_query(self.url, {**fixed, **following}), following
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
    request_deadline: float = DEFAULT_REQUEST_DEADLINE,
    extract_deadline: float | None = None,
    max_retries: int = 5,
    backoff_factor: float = 0.5,
    retry_after_max: float = DEFAULT_RETRY_AFTER_MAX,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    max_pages: int | None = DEFAULT_MAX_PAGES,
    on_max_pages: Literal["fail", "stop"] = "fail",
    verify: bool = True,
    ca_cert: str | None = None,
    schema: pa.Schema | None = None,
) -> HttpJsonSource:
    """A source reading the records of a JSON API, page by page.

    ``url`` is the first page's address (``http`` or ``https``); ``params`` are added to its
    query (values may be str, int, float or bool); ``headers`` are sent with every request
    (never to another origin after a redirect).  ``records_path`` is the dotted path to the
    list of records in each body (None: the body is the list); ``pagination`` one of
    PageNumber, OffsetLimit, Cursor, NextLink (default: one request).
    ``window_params={"since": "start", "until": "end"}`` sends the run window's bounds
    (ISO 8601, or epoch seconds with ``window_format="unix"``).  ``auth_token_env``
    names the environment variable holding a bearer token.  ``schema`` (a pyarrow
    schema) fixes column types, so every page yields the same columns.

    Limits (see the README's HTTP section): ``timeout`` per connect and per read;
    ``request_deadline`` for a whole request, however slowly the server sends;
    ``extract_deadline`` for the whole extraction (None: none); ``retry_after_max`` for
    the longest ``Retry-After`` honoured (longer fails, retriable); ``max_response_bytes``
    per decompressed body; ``max_pages`` (None: no limit), past which the run fails, or
    stops with a warning when ``on_max_pages="stop"``.  Transient failures (connection
    errors, 429, 5xx) are retried ``max_retries`` times with exponential back-off from
    ``backoff_factor`` seconds.  ``verify=False`` skips TLS certificate checks;
    ``ca_cert`` is a CA bundle file to verify against.
    """
    return HttpJsonSource(
        url,
        schema=schema,
        records_path=records_path,
        pagination=pagination,
        params=params,
        headers=headers,
        auth_token_env=auth_token_env,
        window_params=window_params,
        window_format=window_format,
        timeout=timeout,
        request_deadline=request_deadline,
        extract_deadline=extract_deadline,
        max_retries=max_retries,
        backoff_factor=backoff_factor,
        retry_after_max=retry_after_max,
        max_response_bytes=max_response_bytes,
        max_pages=max_pages,
        on_max_pages=on_max_pages,
        verify=verify,
        ca_cert=ca_cert,
    )

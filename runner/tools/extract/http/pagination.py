"""Pagination styles: how an HTTP JSON source gets from one page to the next.

Each style is a frozen pydantic model (declared once in a pipeline module, shared by every
run) that names the query parameters it owns and, given a fetched page, says what to ask
for next: query parameters on the start URL, an absolute URL, or nothing (the last page).
What they cannot see, the extractor checks: a request or a page seen before
(:mod:`._repeats`) and the page budget.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeAlias
from urllib.parse import urljoin

from pydantic import Field, field_validator, model_validator

from runner.errors import FatalError
from runner.tools.extract.http._redaction import redact_url
from runner.tools.options import DottedPath, NonBlank, ToolOptions

__all__ = [
    "Cursor",
    "NextLink",
    "NoPagination",
    "OffsetLimit",
    "Page",
    "PageNumber",
    "Pagination",
    "next_link",
]


NextRequest: TypeAlias = "dict[str, str] | str | None"
"""What a pagination style asks for next: query params on the start URL, a URL, or stop."""

MISSING: Any = object()
"""What :func:`lookup` returns for a path that is not in the document."""


def lookup(body: Any, path: str | None) -> Any:
    """Follow a dotted path through objects (and list indices); MISSING when absent."""
    current = body
    for part in path.split(".") if path else ():
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return MISSING
    return current


_LINK = re.compile(r'<([^>]*)>((?:\s*;\s*[^\s=;,]+\s*(?:=\s*(?:"[^"]*"|[^\s;,]*))?)*)')
_LINK_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*(?:"([^"]*)"|([^\s;]*))')


def next_link(header: str | None) -> str | None:
    """The ``rel="next"`` target of an RFC 8288 ``Link`` header, if any."""
    for target, params in _LINK.findall(header or ""):
        for name, quoted, bare in _LINK_PARAM.findall(params):
            if name.lower() == "rel" and "next" in (quoted or bare).lower().split():
                return str(target).strip()
    return None


@dataclass(frozen=True)
class Page:
    """One fetched page, as pagination styles see it."""

    url: str
    sent: Mapping[str, str]
    records: list[Any]
    body: Any
    link_header: str | None


class Pagination(ToolOptions):
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


class NoPagination(Pagination):
    """A single request: the whole result is in one response."""

    def next_request(self, page: Page) -> NextRequest:  # noqa: ARG002 - the interface
        """Never a next page."""
        return None


class PageNumber(Pagination):
    """``?page=1&per_page=100``, ``?page=2...``; stops on an empty or short page.

    ``page_param`` names the page number's query parameter, counted from
    ``start_page``; ``page_size`` rows per page are asked for in ``page_size_param``.
    Without ``page_size`` nothing is sent for the size and only an empty page stops.
    """

    page_param: NonBlank = "page"
    start_page: Annotated[int, Field(ge=0)] = 1
    page_size_param: NonBlank | None = "per_page"
    page_size: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _distinct(self) -> PageNumber:
        if self.page_size_param == self.page_param:
            raise ValueError("page_param and page_size_param must differ")
        return self

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


class OffsetLimit(Pagination):
    """``?offset=0&limit=100``, ``?offset=100...``; stops on a short page.

    ``limit`` rows per page go in ``limit_param``; the offset, from ``start_offset``,
    in ``offset_param``.
    """

    limit: Annotated[int, Field(ge=1)] = 100
    offset_param: NonBlank = "offset"
    limit_param: NonBlank = "limit"
    start_offset: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _distinct(self) -> OffsetLimit:
        if self.offset_param == self.limit_param:
            raise ValueError("offset_param and limit_param must differ")
        return self

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


class Cursor(Pagination):
    """Sends the cursor found at ``cursor_path`` in each body as ``cursor_param``.

    Stops when the cursor is missing, null or empty.  A cursor sent before is an error
    (the extractor checks every request against the ones it made).
    """

    cursor_param: NonBlank
    cursor_path: DottedPath

    def query_names(self) -> frozenset[str]:
        """The cursor parameter name."""
        return frozenset({self.cursor_param})

    def next_request(self, page: Page) -> NextRequest:
        """The next cursor, or stop."""
        value = lookup(page.body, self.cursor_path)
        if value is MISSING or value is None or value == "":
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


class NextLink(Pagination):
    """Follows the next page's URL: at ``next_path`` in the body, else the ``Link`` header.

    A link to another scheme, host or port is refused unless ``allow_cross_host`` is
    set; even then the auth token and custom headers are not sent there.
    """

    next_path: DottedPath | None = None
    allow_cross_host: bool = False

    @field_validator("next_path", mode="before")
    @classmethod
    def _empty_is_header(cls, value: Any) -> Any:
        return None if value == "" else value

    def next_request(self, page: Page) -> NextRequest:
        """The next URL resolved against this page's URL, or stop."""
        if self.next_path:
            value = lookup(page.body, self.next_path)
            if value is MISSING or value is None or value == "":
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

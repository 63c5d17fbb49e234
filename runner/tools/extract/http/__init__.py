"""HTTP JSON APIs as a source: ``http_json`` and its pagination styles.

The package is split by concern: :mod:`.pagination` (the styles), :mod:`._session`,
:mod:`._deadlines` and :mod:`._body` (requests, retries and the limits that keep a hostile
server from hanging a run or exhausting its memory), :mod:`._redaction` (secrets out of
messages), :mod:`._repeats` (APIs that page forever) and :mod:`.source` (the extractor).
"""

from runner.tools.extract.http._redaction import REDACTED, redact_url
from runner.tools.extract.http.pagination import (
    Cursor,
    NextLink,
    NoPagination,
    OffsetLimit,
    Page,
    PageNumber,
    Pagination,
    next_link,
)
from runner.tools.extract.http.source import HttpJsonSource, http_json

__all__ = [
    "REDACTED",
    "Cursor",
    "HttpJsonSource",
    "NextLink",
    "NoPagination",
    "OffsetLimit",
    "Page",
    "PageNumber",
    "Pagination",
    "http_json",
    "next_link",
    "redact_url",
]

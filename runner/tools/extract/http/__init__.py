"""HTTP JSON APIs as a source: ``http_json`` and its pagination styles.

The package is split by concern: :mod:`.pagination` (the styles), :mod:`.session`,
:mod:`.deadlines` and :mod:`.body` (requests, retries and the limits that keep a hostile
server from hanging a run or exhausting its memory), :mod:`.redaction` (secrets out of
messages), :mod:`.repeats` (APIs that page forever) and :mod:`.source` (the extractor).
"""

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
from runner.tools.extract.http.redaction import REDACTED, redact_url
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

"""Catching an API that pages forever: the same request, or the same records, twice.

An API that ignores the page parameter answers every page with the first one; one that
wraps around answers page 11 with page 1; a broken cursor or next link leads back to a
page already fetched.  Each would page until ``max_pages``.  The guard remembers digests
of the requests made and of the records of every non-empty page (the records, not the
body: an envelope with a timestamp differs on every request), so the second sight of
either stops the run with one line.  A page's digest covers its record count and up to
``SAMPLED`` records spread over it, first and last included: serialising every record
again cost more than parsing the page, and two genuine pages agreeing on all of those
is not a thing real data does.  The most recent digests are kept, so memory stays
bounded with ``max_pages=None``.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any

from runner.errors import FatalError
from runner.tools.extract.http._redaction import redact_url

RECENT = 10_000
"""Digests remembered per kind: a cycle longer than this is left to ``max_pages``."""
SAMPLED = 16
"""Records of a page that go into its digest."""


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


class RepeatGuard:
    """Remembers the requests and pages of one run; raises on the first repeat."""

    def __init__(self, style: str) -> None:
        self._style = style
        self._requests: OrderedDict[bytes, int] = OrderedDict()
        self._pages: OrderedDict[bytes, int] = OrderedDict()

    @staticmethod
    def _remember(seen: OrderedDict[bytes, int], key: bytes, page: int) -> int | None:
        """The page that had ``key`` already, else None after remembering it."""
        earlier = seen.get(key)
        if earlier is not None:
            return earlier
        seen[key] = page
        if len(seen) > RECENT:
            seen.popitem(last=False)
        return None

    def request(self, url: str, page: int) -> None:
        """Before page ``page`` is requested from ``url``: refuse a URL requested before."""
        earlier = self._remember(self._requests, _digest(url.encode()), page)
        if earlier is not None:
            raise FatalError(
                f"GET {redact_url(url)}: page {page} would request the same URL as page "
                f"{earlier}; the API's {self._style} pagination loops, stopping instead of "
                "paging forever"
            )

    def records(self, url: str, records: list[Any], page: int) -> None:
        """After page ``page`` arrived: refuse records equal to an earlier page's."""
        if not records:
            return
        last = len(records) - 1
        picks = sorted({last * i // (SAMPLED - 1) for i in range(SAMPLED)})
        sample = [len(records), *(records[i] for i in picks)]
        text = json.dumps(sample, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
        earlier = self._remember(self._pages, _digest(text.encode("utf-8", "surrogatepass")), page)
        if earlier is not None:
            raise FatalError(
                f"GET {redact_url(url)}: the same page came back twice (page {page} has the "
                f"records of page {earlier}); the API ignores the {self._style} parameters or "
                "wraps around, stopping instead of paging forever"
            )

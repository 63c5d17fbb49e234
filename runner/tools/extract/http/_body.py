"""Reading a response body without letting it exhaust memory.

The body is read in chunks and decompressed as it arrives (urllib3 >= 2.6 bounds what one
chunk of gzip, deflate, brotli or zstd may expand to), and the decompressed size is
counted against a cap: a 1 MB gzip body that expands to 1 GiB stops at the cap with one
line, having held no more than the cap in memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.errors import FatalError

if TYPE_CHECKING:
    from urllib3 import BaseHTTPResponse

CHUNK_BYTES = 64 * 1024
SNIPPET_BYTES = 4096
MiB = 1 << 20


def describe_bytes(count: int) -> str:
    """``count`` bytes as people read it: ``64 MiB`` when whole, else the exact count."""
    if count >= MiB and count % MiB == 0:
        return f"{count // MiB} MiB"
    return f"{count} bytes"


def _too_large(shown: str, limit: int, encoding: str) -> FatalError:
    decoded = f" once decompressed ({encoding})" if encoding else ""
    return FatalError(
        f"GET {shown}: the response is larger than max_response_bytes="
        f"{describe_bytes(limit)}{decoded}; ask the API for smaller pages or raise "
        "max_response_bytes"
    )


def read_capped(response: BaseHTTPResponse, *, limit: int, shown: str) -> bytearray:
    """The whole decompressed body, or FatalError once it grows past ``limit`` bytes."""
    encoding = (response.headers.get("Content-Encoding") or "").strip().lower()
    encoding = "" if encoding == "identity" else encoding
    announced = (response.headers.get("Content-Length") or "").strip()
    if not encoding and announced.isdigit() and int(announced) > limit:
        raise _too_large(shown, limit, encoding)  # refused before reading a byte
    body = bytearray()
    for chunk in response.stream(CHUNK_BYTES, decode_content=True):
        body += chunk
        if len(body) > limit:
            raise _too_large(shown, limit, encoding)
    return body


def read_snippet(response: BaseHTTPResponse) -> bytes:
    """The start of an error response's body, for the message (never the whole body)."""
    return response.read(SNIPPET_BYTES, decode_content=True)

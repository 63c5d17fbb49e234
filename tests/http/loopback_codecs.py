"""HTTP content codings of the loopback server: request bodies in, response bodies out.

ClickHouse decompresses a request body named by ``Content-Encoding`` and, when the
``enable_http_compression`` setting is on, compresses its response with the coding it
prefers among the request's ``Accept-Encoding`` (zstd, then br, lz4, snappy, gzip,
deflate, xz, bz2; ``q=0`` excludes one).  The loopback server implements the codings
clickhouse-connect can send or accept with the packages it depends on: zstd, lz4 (frame
format), gzip and deflate.  A request body in any other coding is refused (HTTP 501),
never guessed at; an ``Accept-Encoding`` that names only others gets an identity body.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from typing import Any

import lz4.frame

try:  # Python 3.14 has it in the standard library; clickhouse-connect depends on the backport
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd

#: Response codings in the server's order of preference (those it can produce).
PREFERENCE = ("zstd", "lz4", "gzip", "deflate")


class UnsupportedCodingError(ValueError):
    """A request body in a coding the server does not implement."""


def decode_body(body: bytes, coding: str | None) -> bytes:
    """The request body with its ``Content-Encoding`` undone."""
    name = (coding or "").strip().lower()
    if name in {"", "identity"}:
        return body
    if name == "zstd":
        return zstd.decompress(body)
    if name == "lz4":
        return lz4.frame.decompress(body)
    if name == "gzip":
        return gzip.decompress(body)
    if name == "deflate":
        return zlib.decompress(body)
    raise UnsupportedCodingError(f"request Content-Encoding {coding!r} is not supported")


def negotiate(accept_encoding: str | None) -> str | None:
    """The coding to answer with, from ``Accept-Encoding`` (q-values honoured), or None."""
    if not accept_encoding:
        return None
    offered: dict[str, float] = {}
    for part in accept_encoding.split(","):
        name, _, params = part.strip().partition(";")
        quality = 1.0
        key, _, value = params.strip().partition("=")
        if key.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                quality = 0.0
        offered[name.strip().lower()] = quality
    wildcard = offered.get("*", 0.0)
    for coding in PREFERENCE:
        if offered.get(coding, wildcard) > 0:
            return coding
    return None


class StreamEncoder:
    """Compresses a response body piece by piece in one coding."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._compress: Callable[[bytes], bytes]
        self._flush: Callable[[], bytes]
        if coding == "zstd":
            compressor: Any = zstd.ZstdCompressor()
            self._compress = compressor.compress
            self._flush = lambda: compressor.flush(zstd.ZstdCompressor.FLUSH_FRAME)
        elif coding == "lz4":
            frame = lz4.frame.LZ4FrameCompressor()
            header = frame.begin()
            self._compress = frame.compress
            self._flush = frame.flush
            self._pending = header
        elif coding in {"gzip", "deflate"}:
            codec = zlib.compressobj(wbits=31 if coding == "gzip" else 15)
            self._compress = codec.compress
            self._flush = codec.flush
        else:  # pragma: no cover - negotiate() only picks the ones above
            raise UnsupportedCodingError(coding)
        if coding != "lz4":
            self._pending = b""

    def compress(self, data: bytes) -> bytes:
        """Compressed bytes for ``data`` (may be empty until enough is gathered)."""
        out = self._pending + self._compress(data)
        self._pending = b""
        return out

    def finish(self) -> bytes:
        """The rest of the compressed stream."""
        out = self._pending + self._flush()
        self._pending = b""
        return out


def encode_whole(data: bytes, coding: str | None) -> bytes:
    """``data`` compressed in one piece (identity when ``coding`` is None)."""
    if coding is None:
        return data
    encoder = StreamEncoder(coding)
    return encoder.compress(data) + encoder.finish()

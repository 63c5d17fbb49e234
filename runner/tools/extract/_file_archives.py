"""Compressed files and zip archives, recognised by their first bytes, not by their names.

A file source reads plain files, gzip, bzip2, zstd and xz streams, and zip archives
(each member in name order, as if it were a file of its own, named ``archive.zip!member``
in logs, errors and the file-name column; directories and ``__MACOSX/`` / dot-file
entries are skipped).  What a file holds is decided by its magic bytes: a gzip file
named ``.csv`` is read as gzip, and a name that claims another compression is logged.
A kind that cannot be read (7z, rar, tar, lz4, Unix compress, an archive inside a
compressed file) is one clear line naming the file and the supported kinds, instead of
a parse error full of binary garbage.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

if TYPE_CHECKING:
    import pyarrow as pa

#: What the readers accept, for messages.
SUPPORTED = "plain files, gzip (.gz), bzip2 (.bz2), zstd (.zst), xz (.xz) and zip (.zip)"

#: Compression codecs: magic bytes -> name (pyarrow's codec name where pyarrow has one).
_CODECS: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
)
_SUFFIX_CODECS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".xz": "xz"}
_ZIP = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
#: Kinds recognised only to be refused with a clear message.
_UNSUPPORTED: tuple[tuple[bytes, str], ...] = (
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x04\x22\x4d\x18", "an LZ4 stream"),
    (b"\x1f\x9d", "a Unix compress (.Z) stream"),
    (b"LZIP", "an lzip stream"),
    (b"MSCF", "a CAB archive"),
    (b"\x89PNG", "a PNG image"),
    (b"%PDF", "a PDF document"),
)
_TAR_MAGIC_AT = 257
_SNIFF_BYTES = 512
_COPY_CHUNK = 1 << 20


class UnreadableFile(Exception):  # noqa: N818 - a message carrier, caught by the readers
    """A file whose kind cannot be read; the message is the tail of the user's error."""


@dataclass(frozen=True)
class Entry:
    """One readable unit: a file, or a member of a zip archive.

    ``codec`` is the compression found by magic bytes (None: plain); ``note`` says when
    the name promised something else.
    """

    path: Path
    shown: str
    codec: str | None = None
    member: str | None = None
    note: str | None = None

    @property
    def plain_file(self) -> bool:
        """Whether the bytes on disk are the data itself (no archive, no compression)."""
        return self.codec is None and self.member is None


def _codec_of(head: bytes) -> str | None:
    return next((name for magic, name in _CODECS if head.startswith(magic)), None)


def _refusal(head: bytes) -> str | None:
    """What ``head`` is, when it is something no reader here can read."""
    for magic, kind in _UNSUPPORTED:
        if head.startswith(magic):
            return kind
    if head[_TAR_MAGIC_AT : _TAR_MAGIC_AT + 5] == b"ustar":
        return "a tar archive"
    return None


def _unsupported(kind: str, inside: str | None = None) -> UnreadableFile:
    where = f" inside {inside}" if inside else ""
    return UnreadableFile(f"is {kind}{where}, which cannot be read; supported: {SUPPORTED}")


def _check_inner(head: bytes, codec: str) -> None:
    """Refuse an archive or a second compression inside a compressed stream."""
    kind = _refusal(head)
    if kind is None and head.startswith(_ZIP):
        kind = "a zip archive"
    if kind is None and (inner := _codec_of(head)) is not None:
        kind = f"a {inner} stream"
    if kind is not None:
        raise _unsupported(kind, inside=codec)


def _note(name: str, codec: str | None) -> str | None:
    claimed = _SUFFIX_CODECS.get(Path(name).suffix.lower())
    if claimed == codec:
        return None
    if claimed is None:
        return f"holds {codec} data; read as {codec}"
    found = codec or "uncompressed data"
    return f"is named {Path(name).suffix} but holds {found}; read as {codec or 'plain'}"


def entries(path: Path, shown: str) -> list[Entry]:
    """What ``path`` holds, as units to read; raises UnreadableFile for unsupported kinds."""
    with path.open("rb") as raw:
        head = raw.read(_SNIFF_BYTES)
    if head.startswith(_ZIP):
        return _zip_entries(path, shown)
    kind = _refusal(head)
    if kind is not None:
        raise _unsupported(kind)
    codec = _codec_of(head)
    entry = Entry(path, shown, codec, note=_note(path.name, codec))
    if codec is not None:
        with ExitStack() as stack:
            _check_inner(open_stream(entry, stack).read(_SNIFF_BYTES), codec)
    return [entry]


def _zip_entries(path: Path, shown: str) -> list[Entry]:
    import zipfile

    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnreadableFile(f"is not a readable zip archive ({exc})") from None
    found: list[Entry] = []
    with archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            name = info.filename
            base = name.rstrip("/").rsplit("/", 1)[-1]
            if info.is_dir() or name.startswith("__MACOSX/") or base.startswith("."):
                continue
            try:
                with archive.open(info) as member:
                    head = member.read(_SNIFF_BYTES)
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError) as exc:
                raise UnreadableFile(f"member {name}: cannot be read ({exc})") from None
            if head.startswith(_ZIP) or (kind := _refusal(head)) is not None:
                kind = "a zip archive" if head.startswith(_ZIP) else kind
                raise UnreadableFile(
                    f"member {name} is {kind}, which cannot be read; supported: {SUPPORTED}"
                )
            codec = _codec_of(head)
            found.append(Entry(path, f"{shown}!{name}", codec, member=name))
    if not found:
        raise UnreadableFile("is a zip archive without files")
    return found


def _decompress(stream: IO[bytes], codec: str) -> IO[bytes]:
    """A Python file object decompressing ``stream`` (for members and xz)."""
    import bz2
    import gzip
    import lzma

    openers: dict[str, Callable[[IO[bytes]], object]] = {
        "gzip": lambda s: gzip.GzipFile(fileobj=s, mode="rb"),
        "bz2": lambda s: bz2.BZ2File(s, mode="rb"),
        "xz": lambda s: lzma.LZMAFile(s, mode="rb"),  # noqa: SIM115 - the caller's stack closes
    }
    return cast("IO[bytes]", openers[codec](stream))


def open_stream(entry: Entry, stack: ExitStack) -> pa.NativeFile:
    """The entry's bytes, decompressed, as a pyarrow input stream closed with ``stack``.

    Plain, gzip, bzip2 and zstd files use pyarrow's native streams (no Python in the
    loop); xz and zip members go through Python's decompressors.
    """
    import pyarrow as pa

    if entry.member is None and entry.codec != "xz":
        return stack.enter_context(pa.input_stream(str(entry.path), compression=entry.codec))
    if entry.member is not None:
        import zipfile

        archive = stack.enter_context(zipfile.ZipFile(entry.path))
        raw: IO[bytes] = stack.enter_context(archive.open(entry.member))
    else:
        raw = stack.enter_context(entry.path.open("rb"))
    if entry.codec is None:
        return stack.enter_context(pa.PythonFile(raw, mode="r"))
    if entry.codec == "zstd":
        inner = stack.enter_context(pa.PythonFile(raw, mode="r"))
        return stack.enter_context(pa.CompressedInputStream(inner, "zstd"))
    decompressed = stack.enter_context(_decompress(raw, entry.codec))
    return stack.enter_context(pa.PythonFile(decompressed, mode="r"))


def local_file(entry: Entry, stack: ExitStack) -> Path:
    """A file on disk holding the entry's plain bytes (for readers needing random access).

    Parquet keeps its index at the end of the file, so a compressed or archived Parquet
    file is first decompressed into a temporary file, removed when ``stack`` closes.
    """
    if entry.plain_file:
        return entry.path
    copy = stack.enter_context(
        tempfile.NamedTemporaryFile(prefix="runner-", suffix=".parquet")  # noqa: SIM115 - stack
    )
    with ExitStack() as reading:
        source = open_stream(entry, reading)
        while chunk := source.read(_COPY_CHUNK):
            copy.write(chunk)
    copy.flush()
    return Path(copy.name)

"""Compressed files and archives, recognised by magic bytes: real files in a temporary dir."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import tarfile
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runner.errors import FatalError
from runner.tools.extract._file_archives import SUPPORTED
from runner.tools.extract.files import read_csv, read_jsonl, read_parquet

CSV = b"id,name\n1,a\n2,b\n"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def rows(source, ctx) -> list[dict]:
    return [row for batch in source.extract(ctx) for row in batch.to_pylist()]


def zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize(
    ("name", "pack"),
    [
        ("a.csv.gz", gzip.compress),
        ("a.csv.bz2", bz2.compress),
        ("a.csv.zst", zstd),
        ("a.csv.xz", lzma.compress),
        ("a.csv", gzip.compress),  # a misleading name: the bytes decide
        ("a.csv.gz", lambda data: data),  # plain text named .gz
        ("a.csv.bz2", lzma.compress),  # another compression than the name says
    ],
)
def test_compressed_files_are_read_by_their_magic_bytes(workdir, make_context, name, pack):
    (workdir / name).write_bytes(pack(CSV))
    assert rows(read_csv(name), make_context()) == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def test_a_zip_archive_reads_every_member_in_name_order(workdir, make_context):
    with zipfile.ZipFile(workdir / "in.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("b.csv", b"id,name\n3,c\n")
        archive.writestr("a.csv", CSV)
        archive.writestr("sub/", b"")  # a directory
        archive.writestr("sub/c.csv.gz", gzip.compress(b"id,name\n4,d\n"))
        archive.writestr("__MACOSX/._a.csv", b"\x00\x05\x16\x07 resource fork")
        archive.writestr(".DS_Store", b"\x00\x00\x00\x01Bud1")
    found = rows(read_csv("in.zip", filename_column="file"), make_context())
    assert [(r["id"], r["file"]) for r in found] == [
        (1, "in.zip!a.csv"),
        (2, "in.zip!a.csv"),
        (3, "in.zip!b.csv"),
        (4, "in.zip!sub/c.csv.gz"),
    ]


def test_an_error_inside_a_zip_member_names_archive_member_and_line(workdir, make_context):
    with zipfile.ZipFile(workdir / "in.zip", "w") as archive:
        archive.writestr("day.jsonl", b'{"n": 1}\n{"n": 2}\n{"n": "three"}\n')
    with pytest.raises(FatalError) as info:
        rows(read_jsonl("in.zip"), make_context())
    assert str(info.value) == (
        "JSONL file in.zip!day.jsonl: line 3: field 'n': 'three' is a string, not int64"
    )


@pytest.mark.parametrize("pack", ["zip", "gzip", "xz"])
def test_parquet_inside_a_zip_or_compressed(workdir, make_context, pack):
    buffer = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2, 3]}), buffer)
    data = buffer.getvalue()
    if pack == "zip":
        with zipfile.ZipFile(workdir / "p.zip", "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("p.parquet", data)
        name = "p.zip"
    else:
        name = "p.parquet." + {"gzip": "gz", "xz": "xz"}[pack]
        (workdir / name).write_bytes(gzip.compress(data) if pack == "gzip" else lzma.compress(data))
    assert [r["id"] for r in rows(read_parquet(name), make_context())] == [1, 2, 3]


def tar_bytes() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("a.csv")
        info.size = len(CSV)
        tar.addfile(info, io.BytesIO(CSV))
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("a.7z", b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(range(200)), "a 7z archive"),
        ("a.rar", b"Rar!\x1a\x07\x01\x00" + bytes(range(200)), "a RAR archive"),
        ("a.tar", tar_bytes(), "a tar archive"),
        ("a.tar.gz", gzip.compress(tar_bytes()), "a tar archive inside gzip"),
        ("a.csv", lzma.compress(tar_bytes()), "a tar archive inside xz"),
        ("a.csv.lz4", b"\x04\x22\x4d\x18\x64\x40\xa7" + bytes(100), "an LZ4 stream"),
        ("a.csv.Z", b"\x1f\x9d\x90" + bytes(100), r"a Unix compress \(\.Z\) stream"),
        ("a.csv.gz", gzip.compress(gzip.compress(CSV)), "a gzip stream inside gzip"),
        ("a.zip", zip_bytes({"inner.zip": zip_bytes({"a.csv": CSV})}), "member inner.zip is a zip"),
        ("a.zip", zip_bytes({}), "a zip archive without files"),
    ],
    # named ids: archives carry the time they were made, and xdist workers must collect alike
    ids=["7z", "rar", "tar", "tar-gz", "tar-xz", "lz4", "unix-z", "gz-gz", "zip-zip", "zip-empty"],
)
def test_unsupported_kinds_are_one_line_naming_file_and_supported_kinds(
    workdir, make_context, name, content, kind
):
    (workdir / name).write_bytes(content)
    with pytest.raises(FatalError) as info:
        rows(read_csv(name), make_context())
    message = str(info.value)
    assert message.startswith(f"CSV file {name}: ")
    assert re.search(kind, message), message
    if "without files" not in kind:
        assert message.endswith(f"supported: {SUPPORTED}")
    assert "\n" not in message
    assert message.isprintable()
    assert len(message) < 300

"""Line numbering of the record reader, against a plain reference, across read chunks."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from runner.tools.extract._file_lines import (
    is_blank_line,
    is_empty_line,
    numbered_lines,
)


def sample(seed: int) -> bytes:
    """About 3 MiB of lines of random length (some blank, some longer than a read chunk)."""
    rng = random.Random(seed)
    lines = []
    size = 0
    while size < 3 << 20:
        kind = rng.random()
        if kind < 0.1:
            line = b""
        elif kind < 0.15:
            line = b"  \r" if rng.random() < 0.5 else b"\r"
        elif kind < 0.16:
            line = b"y" * rng.randint(1 << 20, 2 << 20)
        else:
            line = b"x" * rng.randint(1, 300_000)
        lines.append(line)
        size += len(line) + 1
    return b"\n".join(lines) + (b"\n" if seed % 2 else b"")


def reference(data: bytes, blank) -> list[tuple[int, bytes]]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [(n, text.removesuffix(b"\r")) for n, text in enumerate(lines, 1) if not blank(text)]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("blank", [is_blank_line, is_empty_line])
def test_numbered_lines_match_a_plain_split(seed, blank):
    data = sample(seed)
    expected = reference(data, blank)
    skip = len(expected) // 3

    found = list(numbered_lines(pa.BufferReader(data), skip=skip, blank=blank))

    assert [(line.number, line.text) for line in found] == expected[skip:]
    assert [line.record for line in found] == list(range(skip, len(expected)))


def test_numbered_lines_drop_a_byte_order_mark_at_the_start_only():
    data = b'\xef\xbb\xbf{"a": 1}\n\xef\xbb\xbf{"a": 2}\n'

    found = list(numbered_lines(pa.BufferReader(data), skip=0, blank=is_blank_line))

    assert [line.text for line in found] == [b'{"a": 1}', b'\xef\xbb\xbf{"a": 2}']

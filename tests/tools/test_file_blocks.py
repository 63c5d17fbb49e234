"""Blocks of whole lines, and the proof that a block's rows are one per line."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.tools.extract._file_blocks import (
    LineTooLong,
    csv_layout,
    cut_blocks,
    json_layout,
    line_breaks,
)

pieces = st.lists(
    st.sampled_from(
        [
            b'{"a": 1}',
            b'{"a": {"b": 2}}',
            b'  {"a": 3} ',
            b'{"a": 1} {"a": 2}',
            b'{"a": 1}{"a": 2}',
            b'{"a":',
            b"1}",
            b'{"a": {"b": 1}',
            b"}",
            b"",
            b" \t",
            b"\r",
        ]
    ),
    min_size=1,
    max_size=30,
)


def one_object(text: bytes) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


@settings(max_examples=300, deadline=None)
@given(lines=pieces, crlf=st.booleans(), final=st.booleans())
def test_json_layout_says_one_object_per_line_exactly_when_it_is(lines, crlf, final):
    data = (b"\r\n" if crlf else b"\n").join(lines) + (b"\n" if final else b"")
    try:
        rows = pjson.read_json(pa.BufferReader(data)).num_rows
    except pa.ArrowInvalid:
        return  # a block that does not parse is read line by line anyway
    texts = [t for t in data.split(b"\n") if t.strip(b" \t\r")]
    expected = all(one_object(t) for t in texts)

    found = json_layout(data, rows)

    assert (found is not None) == expected, (data, rows)
    if found is not None:
        assert found.records == len(texts) == rows
        assert found.lines == data.count(b"\n")


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.sampled_from([b"1,a", b'2,"b"', b'3,"c', b'd"', b"", b"4,e"]), max_size=30),
    eol=st.sampled_from([b"\n", b"\r\n", b"\r"]),
)
def test_csv_layout_says_one_row_per_line_exactly_when_it_is(lines, eol):
    data = eol.join(lines) + eol
    try:
        table = pcsv.read_csv(
            pa.BufferReader(data), read_options=pcsv.ReadOptions(column_names=["i", "v"])
        )
    except pa.ArrowInvalid:
        return
    records = [t for t in data.splitlines() if t]

    found = csv_layout(data, table.num_rows)

    assert (found is not None) == (table.num_rows == len(records)), (data, table.num_rows)
    if found is not None:
        assert found.lines == len(data.splitlines())


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b)),
    eol=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    block_size=st.integers(41, 200),
    bom=st.booleans(),
)
def test_cut_blocks_keep_every_byte_and_end_at_line_breaks(lines, eol, block_size, bom):
    data = (b"\xef\xbb\xbf" if bom else b"") + eol.join(lines)
    universal = eol == b"\r"

    blocks = list(cut_blocks(pa.BufferReader(data), block_size, universal=universal))

    assert b"".join(blocks) == data.removeprefix(b"\xef\xbb\xbf")
    for block in blocks[:-1]:
        assert block.endswith(b"\r" if universal else b"\n")
    assert sum(line_breaks(b, universal=True) for b in blocks) == line_breaks(
        b"".join(blocks), universal=True
    )  # no CRLF cut in two


def test_a_line_longer_than_the_block_is_refused():
    data = b"short\n" + b"x" * 300 + b"\nshort\n"

    with pytest.raises(LineTooLong):
        list(cut_blocks(pa.BufferReader(data), 100, universal=False))

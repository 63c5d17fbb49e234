"""JSON Lines rows that do not fit: parsing whole lines and saying which field is wrong.

JSON Lines holds one value per line.  pyarrow's JSON reader also takes two objects on
one line, or one object spread over several lines; this parser does not: lines that
parse together into another number of rows than there are lines fail, so the line-by-
line reader finds the lines at fault and rejects them (see ``_file_blocks``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runner.tools.extract._file_blocks import json_layout
from runner.tools.extract._file_lines import Why, short

if TYPE_CHECKING:
    import pyarrow as pa

_COLUMN = re.compile(r"Column\(/([^)/]*)[^)]*\) changed from (\w+) to (\w+)")

#: pyarrow's message about a value longer than its block (a block is one part here).
STRADDLING = "straddl"

#: Messages of pyarrow's JSON reader that concern one row (others concern the file).
ROW_ERRORS = ("JSON parse error", "Failed to convert JSON", "Failed of conversion of JSON")


def is_row_error(exc: Exception) -> bool:
    """Whether pyarrow failed on a row (not on the stream, nor on the block size)."""
    text = str(exc)
    return text.startswith(ROW_ERRORS) and STRADDLING not in text


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    return "an object"


def _not_one_value(text: str, error: json.JSONDecodeError) -> str:
    """Why ``text`` is not one JSON value: several values, or not (all of) one."""
    if error.msg == "Extra data":
        rest = text[error.pos :].lstrip(" \t\r")
        try:
            json.JSONDecoder().raw_decode(rest)
        except json.JSONDecodeError:
            pass
        else:
            return "holds more than one JSON value (JSON Lines has one value per line)"
    if error.pos >= len(text.rstrip(" \t\r")) and text.lstrip(" \t\r")[:1] in ("{", "["):
        return (
            f"is not JSON ({error.msg} at column {error.colno}: the line ends inside a "
            "value; JSON Lines has one value per line)"
        )
    return f"is not JSON ({error.msg} at column {error.colno})"


class JsonLineParser:
    """Parses JSON lines into the run's schema (or infers one), naming a bad line's field."""

    def __init__(self, target: pa.Schema | None, *, ignore_unexpected: bool) -> None:
        self.target = target
        self.ignore_unexpected = ignore_unexpected

    @property
    def fixed(self) -> object | None:
        """The schema, once fixed (given, or inferred from the first block)."""
        return self.target

    def parse_block(self, data: bytes, *, first: bool) -> pa.Table:
        """Parse a block of whole lines as pyarrow's streaming reader would.

        The first block of a file takes keys beyond a known schema (for the reader to
        name them as columns that do not match); later blocks refuse them.  Text that is
        not UTF-8 is left to the reader's ``check_batch`` (one check per block).
        """
        return self._read(data, self.target, infer=first, validate=False)

    def _read(
        self,
        data: bytes,
        schema: pa.Schema | None,
        *,
        infer: bool = False,
        validate: bool = True,
    ) -> pa.Table:
        import pyarrow as pa
        import pyarrow.json as pjson

        behaviour = (
            "ignore"
            if self.ignore_unexpected
            else "error"
            if schema is not None and not infer
            else "infer"
        )
        table = pjson.read_json(
            pa.BufferReader(data),
            read_options=pjson.ReadOptions(use_threads=False, block_size=len(data) + 1),
            parse_options=pjson.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior=behaviour
            ),
        )
        if validate:
            table.validate(full=True)  # the JSON reader does not check UTF-8
        return table

    def parse(self, lines: Sequence[bytes]) -> pa.Table:
        """Parse non-blank lines into the target schema (or inferred types until fixed).

        Fails unless each line holds exactly one JSON object.
        """
        data = b"\n".join(lines) + b"\n"
        table = self._read(data, self.target)
        if json_layout(data, table.num_rows) is None:
            raise ValueError("the lines do not hold one JSON object each")
        return table

    def fix(self, table: pa.Table) -> None:
        """The first block parsed with inferred types fixes them for the rest."""
        if self.target is None:
            self.target = table.schema

    def settle(self, lines: Sequence[bytes]) -> None:
        """Take each field's most frequent type among lines that parse alone.

        Integers and decimals count together as float64 when both occur (as pyarrow's
        own inference promotes them); the rows of a minority type are then rejected.
        """
        import pyarrow as pa

        seen: dict[str, Counter[pa.DataType]] = {}
        for line in lines:
            for field in self._read(line + b"\n", None).schema:
                counts = seen.setdefault(field.name, Counter())
                if not pa.types.is_null(field.type):
                    counts[field.type] += 1
        fields = []
        for name, counts in seen.items():
            numbers = [t for t in counts if pa.types.is_integer(t) or pa.types.is_floating(t)]
            if any(pa.types.is_floating(t) for t in numbers):
                merged = sum(counts.pop(t) for t in numbers)
                counts[pa.float64()] += merged
            fields.append((name, counts.most_common(1)[0][0] if counts else pa.string()))
        self.target = pa.schema(fields)

    def reject(self, line: bytes, error: Exception) -> Why:
        """The reason a line does not fit, and the record to quarantine."""
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            byte = exc.object[exc.start : exc.start + 1].hex()
            record = {"text": line.decode("utf-8", "replace")}
            return Why(f"is not valid UTF-8 (byte 0x{byte}: {exc.reason})", record)
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            return Why(_not_one_value(text, exc), {"text": text})
        if not isinstance(row, dict):
            return Why(f"is {_json_kind(row)}, not a JSON object", {"text": text})
        return Why(self._field_reason(row, error), row)

    def _field_reason(self, row: dict[str, Any], error: Exception) -> str:
        """Which field does not fit, found from pyarrow's message or field by field."""
        import pyarrow as pa

        message = str(error)
        target = self.target
        if "unexpected field" in message and target is not None:
            extra = [key for key in row if key not in target.names]
            if extra:
                return f"unexpected field {extra[0]!r}"
        found = _COLUMN.search(message)
        if found and found.group(1) in row:
            name = found.group(1)
            expected = (
                str(target.field(name).type)
                if target is not None and name in target.names
                else f"{found.group(2)} (as in earlier rows)"
            )
            return f"field {name!r}: {short(row[name])} is {_json_kind(row[name])}, not {expected}"
        if target is not None:
            for field in target:
                if field.name not in row:
                    continue
                single = json.dumps({field.name: row[field.name]}).encode() + b"\n"
                try:
                    self._read(single, pa.schema([field]))
                except (pa.ArrowException, ValueError):
                    return f"field {field.name!r}: {short(row[field.name])} is not {field.type}"
        return " ".join(message.split()).removesuffix(" in row 0")

"""JSON Lines rows that do not fit: parsing whole lines and saying which field is wrong."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runner.tools.extract.file_lines import Why, short

if TYPE_CHECKING:
    import pyarrow as pa

_COLUMN = re.compile(r"Column\(/([^)/]*)[^)]*\) changed from (\w+) to (\w+)")

#: Messages of pyarrow's JSON reader that concern one row (others concern the file).
ROW_ERRORS = ("JSON parse error", "Failed to convert JSON", "Failed of conversion of JSON")


def is_row_error(exc: Exception) -> bool:
    """Whether pyarrow failed on a row (not on the stream, nor on the block size)."""
    text = str(exc)
    return text.startswith(ROW_ERRORS) and "straddl" not in text


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


class JsonLineParser:
    """Parses JSON lines into the run's schema (or infers one), naming a bad line's field."""

    def __init__(self, target: pa.Schema | None, *, ignore_unexpected: bool) -> None:
        self.target = target
        self.ignore_unexpected = ignore_unexpected

    def _read(self, data: bytes, schema: pa.Schema | None) -> pa.Table:
        import pyarrow as pa
        import pyarrow.json as pjson

        behaviour = "ignore" if self.ignore_unexpected else "error" if schema else "infer"
        table = pjson.read_json(
            pa.BufferReader(data),
            read_options=pjson.ReadOptions(use_threads=False, block_size=len(data) + 1),
            parse_options=pjson.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior=behaviour
            ),
        )
        table.validate(full=True)  # the JSON reader does not check UTF-8
        return table

    def parse(self, lines: Sequence[bytes]) -> pa.Table:
        """Parse lines into the target schema (or with inferred types until one is fixed)."""
        return self._read(b"\n".join(lines) + b"\n", self.target)

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
            return Why(f"is not JSON ({exc.msg} at column {exc.colno})", {"text": text})
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

"""The records read_jsonl read, found again for the quarantine (runner.tools.extract.source_records)."""

import gzip
import json

import pyarrow as pa

from runner.tools.extract.files import read_jsonl


def test_records_are_found_across_files_forward_and_backward(tmp_path, make_context):
    first = [{"id": i, "note": "x"} if i % 2 else {"id": i} for i in range(5)]
    second = [{"id": 10 + i, "note": None} for i in range(4)]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in first) + "\n\n")
    with gzip.open(tmp_path / "b.jsonl.gz", "wt") as out:
        out.write("\n" + "\n\n".join(json.dumps(r) for r in second))  # no final newline
    source = read_jsonl(str(tmp_path / "*.jsonl*"), filename_column="file")
    ctx = make_context()
    table = pa.Table.from_batches(list(source.extract(ctx)))
    assert table.num_rows == 9
    shown = {name: str(tmp_path / name) for name in ("a.jsonl", "b.jsonl.gz")}
    assert source.source_records(ctx, [1, 3]) == {
        1: {"id": 1, "note": "x", "file": shown["a.jsonl"]},
        3: {"id": 3, "note": "x", "file": shown["a.jsonl"]},
    }
    later = source.source_records(ctx, [4, 5, 8])  # forward, into the second file
    assert later == {
        4: {"id": 4, "file": shown["a.jsonl"]},
        5: {"id": 10, "note": None, "file": shown["b.jsonl.gz"]},
        8: {"id": 13, "note": None, "file": shown["b.jsonl.gz"]},
    }
    assert source.source_records(ctx, [0, 6]) == {  # backward: the files are read again
        0: {"id": 0, "file": shown["a.jsonl"]},
        6: {"id": 11, "note": None, "file": shown["b.jsonl.gz"]},
    }
    assert source.source_records(ctx, [9, 100]) == {}  # beyond the run's rows

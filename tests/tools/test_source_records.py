"""The records read_jsonl read, found again for the quarantine (runner.tools.extract.source_records)."""

import gzip
import json

import pyarrow as pa

from runner.tools.extract.files import read_jsonl


def held(table: pa.Table, rows: list[int]) -> pa.RecordBatch:
    """The rows as the reader yielded them, in the order asked."""
    return table.take(pa.array(rows, pa.int64())).combine_chunks().to_batches()[0]


def test_records_are_found_across_files_forward_and_backward(tmp_path, make_context):
    first = [{"id": i, "note": "x"} if i % 2 else {"id": i} for i in range(5)]
    second = [{"id": 10 + i, "note": None} for i in range(4)]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in first) + "\n\n")
    with gzip.open(tmp_path / "b.jsonl.gz", "wt") as out:
        out.write("\n" + "\n\n".join(json.dumps(r) for r in second))  # no final newline
    source = read_jsonl(str(tmp_path / "*.jsonl*"), filename_column="file")
    ctx = make_context()
    batches = list(source.extract(ctx))  # held: the reader remembers rows of live batches
    table = pa.Table.from_batches(batches)
    assert table.num_rows == 9

    def records(rows: list[int]) -> dict:
        return dict(source.source_records(ctx, rows, held(table, rows)))

    shown = {name: str(tmp_path / name) for name in ("a.jsonl", "b.jsonl.gz")}
    assert records([1, 3]) == {
        1: {"id": 1, "note": "x", "file": shown["a.jsonl"]},
        3: {"id": 3, "note": "x", "file": shown["a.jsonl"]},
    }
    assert records([4, 5, 8]) == {  # forward, into the second file
        4: {"id": 4, "file": shown["a.jsonl"]},
        5: {"id": 10, "note": None, "file": shown["b.jsonl.gz"]},
        8: {"id": 13, "note": None, "file": shown["b.jsonl.gz"]},
    }
    assert records([0, 6]) == {  # backward: the files are read again
        0: {"id": 0, "file": shown["a.jsonl"]},
        6: {"id": 11, "note": None, "file": shown["b.jsonl.gz"]},
    }
    assert source.source_records(ctx, [9, 100], held(table, [0, 1])) == {}  # beyond the run


def test_a_record_that_is_not_the_held_row_is_never_given(tmp_path, make_context):
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps({"id": i, "v": i * 10}) + "\n" for i in range(4)))
    source = read_jsonl(str(path))
    ctx = make_context()
    batches = list(source.extract(ctx))
    table = pa.Table.from_batches(batches)

    assert source.source_records(ctx, [2], held(table, [2])) == {2: {"id": 2, "v": 20}}
    # the same line, asked with another row's values (a file rewritten in place): refused
    assert source.source_records(ctx, [2], held(table, [3])) == {}


def test_rows_are_forgotten_once_no_batch_holds_them(tmp_path, make_context, runner_settings):
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps({"id": i}) + "\n" for i in range(1000)))
    ctx = make_context(settings=runner_settings.model_copy(update={"batch_rows": 100}))
    source = read_jsonl(str(path), block_size=1000)  # blocks of about 80 rows
    kept = None
    for number, batch in enumerate(source.extract(ctx)):
        if number == 9:
            kept = batch  # the batches before are gone, and their rows' numbers with them
    origins = source.source_rows(ctx)
    assert origins is not None
    assert kept is not None
    assert source.source_records(ctx, [950], kept.slice(50, 1)) == {950: {"id": 950}}
    five = pa.RecordBatch.from_pylist([{"id": 5}], schema=kept.schema)
    assert source.source_records(ctx, [5], five) == {}
    assert len(origins._pieces) <= 3  # the memory bound is the point

"""File extractors: CSV, JSON Lines and Parquet read from real files in a temporary directory."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runner.errors import ConfigError, FatalError
from runner.tools.extract.files import read_csv, read_jsonl, read_parquet


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Relative paths resolve against the working directory at run time: use tmp_path."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def small_ctx(make_context, runner_settings):
    """A context whose batches hold at most 100 rows."""
    return make_context(settings=runner_settings.model_copy(update={"batch_rows": 100}))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def read_all(source, ctx) -> tuple[list[pa.RecordBatch], pa.Table]:
    batches = list(source.extract(ctx))
    assert all(isinstance(b, pa.RecordBatch) for b in batches)
    schemas = {b.schema for b in batches}
    assert len(schemas) <= 1, f"batches of several schemas: {schemas}"
    return batches, pa.Table.from_batches(batches) if batches else pa.table({})


# --- CSV ---------------------------------------------------------------------------------


def test_csv_glob_reads_files_in_sorted_order_including_gzip(workdir, make_context):
    write(workdir / "data/b.csv", "name,id\nc,3\n")  # columns in another order
    write(workdir / "data/a.csv", "id,name\n1,a\n2,b\n")
    write(workdir / "data/c.csv.gz", "id,name\n4,d\n")
    write(workdir / "data/notes.txt", "not,csv\n")

    source = read_csv("data/*.csv*", filename_column="source_file")
    _, table = read_all(source, make_context())

    assert table.schema == pa.schema(
        [("id", pa.int64()), ("name", pa.string()), ("source_file", pa.string())]
    )
    assert table.to_pylist() == [
        {"id": 1, "name": "a", "source_file": "data/a.csv"},
        {"id": 2, "name": "b", "source_file": "data/a.csv"},
        {"id": 3, "name": "c", "source_file": "data/b.csv"},
        {"id": 4, "name": "d", "source_file": "data/c.csv.gz"},
    ]
    assert source.describe() == "read_csv(data/*.csv*)"


def test_csv_recursive_glob_and_several_patterns_read_each_file_once(workdir, make_context):
    write(workdir / "in/x/1.csv", "id\n1\n")
    write(workdir / "in/x/y/2.csv", "id\n2\n")
    write(workdir / "in/0.csv", "id\n0\n")

    source = read_csv(["in/**/*.csv", workdir / "in/x/1.csv"], filename_column="f")
    _, table = read_all(source, make_context())

    assert table.column("f").to_pylist() == ["in/0.csv", "in/x/1.csv", "in/x/y/2.csv"]
    assert table.column("id").to_pylist() == [0, 1, 2]


def test_relative_paths_resolve_against_the_working_directory_at_run_time(
    tmp_path, monkeypatch, make_context
):
    write(tmp_path / "one/data.csv", "v\n1\n")
    write(tmp_path / "two/data.csv", "v\n2\n")
    monkeypatch.chdir(tmp_path / "one")
    source = read_csv("data.csv")  # declared here ...
    monkeypatch.chdir(tmp_path / "two")  # ... run there
    _, table = read_all(source, make_context())
    assert table.column("v").to_pylist() == [2]


def test_csv_options_schema_without_header_delimiter_and_null_values(workdir, make_context):
    write(workdir / "p.csv", "007;x;-\n8;;y\n")
    schema = pa.schema([("zip", pa.string()), ("a", pa.string()), ("b", pa.string())])

    source = read_csv("p.csv", schema=schema, header=False, delimiter=";", null_values=["-", ""])
    _, table = read_all(source, make_context())

    assert table.schema == schema
    assert table.to_pylist() == [
        {"zip": "007", "a": "x", "b": None},
        {"zip": "8", "a": None, "b": "y"},
    ]


def test_csv_column_types_keep_text_that_looks_like_numbers(workdir, make_context):
    write(workdir / "a.csv", "zip,n\n00123,1\n")
    write(workdir / "b.csv", "zip,n\n99,2\n")
    _, table = read_all(read_csv("*.csv", column_types={"zip": pa.string()}), make_context())
    assert table.schema.field("n").type == pa.int64()
    assert table.column("zip").to_pylist() == ["00123", "99"]


def test_csv_later_files_are_parsed_with_the_first_files_types(workdir, make_context):
    # inferred alone, b.csv's column would be int64 and lose its leading zeros
    write(workdir / "a.csv", "code\nA1\n")
    write(workdir / "b.csv", "code\n007\n")
    _, table = read_all(read_csv("*.csv"), make_context())
    assert table.column("code").to_pylist() == ["A1", "007"]


def test_csv_given_schema_selects_columns_and_skips_others(workdir, make_context):
    write(workdir / "a.csv", "id,extra,name\n1,zz,a\n")
    schema = pa.schema([("name", pa.string()), ("id", pa.int32())])
    _, table = read_all(read_csv("a.csv", schema=schema), make_context())
    assert table.schema == schema
    assert table.to_pylist() == [{"name": "a", "id": 1}]


def test_csv_file_lacking_a_column_of_the_given_schema_fails_naming_it(workdir, make_context):
    write(workdir / "a.csv", "id\n1\n")
    schema = pa.schema([("id", pa.int64()), ("name", pa.string())])
    with pytest.raises(FatalError, match=r"CSV file a\.csv: has no column 'name'"):
        list(read_csv("a.csv", schema=schema).extract(make_context()))


def test_csv_bad_row_names_the_file_and_row(workdir, make_context):
    write(workdir / "good.csv", "a,b\n1,2\n")
    rows = "".join(f"{i},{i}\n" for i in range(2000))
    write(workdir / "z_bad.csv", f"a,b\n{rows}oops\n1,2\n")
    source = read_csv("*.csv", block_size=4096)  # the bad row is in a later block
    with pytest.raises(FatalError) as info:
        list(source.extract(make_context()))
    message = str(info.value)
    assert message == "CSV file z_bad.csv: line 2002: expected 2 columns, got 1"


def test_csv_value_of_a_given_type_names_line_column_value_and_no_given_option(
    workdir, make_context
):
    write(workdir / "a.csv", "n,s\n1,a\n\n2,b\nnot-a-number,c\n")  # a blank line: line 5
    with pytest.raises(FatalError) as info:
        list(read_csv("a.csv", column_types={"n": pa.int64()}).extract(make_context()))
    message = str(info.value)
    assert message.startswith(
        "CSV file a.csv: line 5: column 'n': cannot read 'not-a-number' as int64"
    )
    assert "pass column_types=" not in message
    assert "column_types= sets the type of 'n'" in message


def test_csv_value_of_an_inferred_type_hints_at_column_types(workdir, make_context):
    rows = "".join(f"{i},x\n" for i in range(2000))
    write(workdir / "a.csv", f"n,s\n{rows}oops,y\n")
    with pytest.raises(FatalError) as info:
        list(read_csv("a.csv", block_size=4096).extract(make_context()))
    assert str(info.value) == (
        "CSV file a.csv: line 2002: column 'n': cannot read 'oops' as int64 (the type of 'n' "
        "was inferred from the first block; pass column_types={'n': pa.string()} or schema= "
        "to choose it)"
    )


def test_csv_marker_like_value_hints_at_null_values_unless_given(workdir, make_context):
    write(workdir / "a.csv", "n\n1\n-\n")
    source = read_csv("a.csv", column_types={"n": pa.int64()})
    with pytest.raises(FatalError, match=r"line 3: .*'-' marks a missing value, pass null_values="):
        list(source.extract(make_context()))
    given = read_csv("a.csv", schema=pa.schema([("n", pa.int64())]), null_values=["NULL"])
    with pytest.raises(FatalError) as info:
        list(given.extract(make_context()))
    assert "schema= sets the type of 'n'" in str(info.value)
    assert "add it to null_values=" in str(info.value)
    assert "pass " not in str(info.value)


def test_csv_later_file_with_other_columns_fails_naming_the_file(workdir, make_context):
    write(workdir / "a.csv", "id,name\n1,a\n")
    write(workdir / "b.csv", "id,label\n2,b\n")
    with pytest.raises(FatalError) as info:
        list(read_csv("*.csv").extract(make_context()))
    assert str(info.value) == (
        "CSV file b.csv: columns do not match the first file (a.csv): "
        "missing name; unexpected label (missing_columns='null' reads missing columns as null)"
    )


def test_csv_later_file_whose_values_do_not_fit_the_types_fails(workdir, make_context):
    write(workdir / "a.csv", "n\n1\n")
    write(workdir / "b.csv", "n\n1.5\n")
    with pytest.raises(FatalError, match=r"CSV file b\.csv: .*int64"):
        list(read_csv("*.csv").extract(make_context()))


def test_empty_and_header_only_files_are_skipped_without_fixing_the_schema(workdir, make_context):
    write(workdir / "a.csv", "")
    write(workdir / "b.csv", "n,s\n")  # header only: its column types would be null
    write(workdir / "c.csv", "n,s\n1,x\n")
    _, table = read_all(read_csv("*.csv"), make_context())
    assert table.schema == pa.schema([("n", pa.int64()), ("s", pa.string())])
    assert table.num_rows == 1


def test_csv_null_markers_by_default_in_typed_columns_and_backslash_n_in_text(
    workdir, make_context
):
    write(
        workdir / "a.csv",
        "n,x,ts,s\n"
        "1,1.5,2026-01-01 00:00:00,a\n"
        ",,,\n"
        "NA,NA,NA,NA\n"
        "NULL,NULL,NULL,NULL\n"
        "\\N,\\N,\\N,\\N\n",
    )
    types = {"n": pa.int64(), "x": pa.float64(), "ts": pa.timestamp("s"), "s": pa.string()}
    _, table = read_all(read_csv("a.csv", column_types=types), make_context())
    assert table.column("n").to_pylist() == [1, None, None, None, None]
    assert table.column("x").to_pylist() == [1.5, None, None, None, None]
    assert table.column("ts").null_count == 4
    # text: an empty field and 'NA' (Namibia) are values; only ClickHouse's \N is null
    assert table.column("s").to_pylist() == ["a", "", "NA", "NULL", None]

    inferred = read_all(read_csv("a.csv"), make_context())[1]
    assert inferred.column("n").to_pylist() == [1, None, None, None, None]


def test_csv_given_null_values_replace_the_markers_in_every_column(workdir, make_context):
    write(workdir / "a.csv", "n,s\n1,a\n-,-\nNA,NA\n")
    source = read_csv("a.csv", column_types={"n": pa.int64()}, null_values=["-"])
    with pytest.raises(FatalError, match=r"line 4: column 'n': cannot read 'NA' as int64"):
        list(source.extract(make_context()))
    write(workdir / "a.csv", "n,s\n1,a\n-,-\n")
    _, table = read_all(source, make_context())
    assert table.to_pylist() == [{"n": 1, "s": "a"}, {"n": None, "s": None}]


# --- JSON Lines ----------------------------------------------------------------------------


def test_jsonl_plain_and_gzip_with_missing_keys_as_null(workdir, make_context):
    write(workdir / "e/1.jsonl", '{"id": 1, "tag": "a"}\n{"id": 2, "tag": "b"}\n')
    write(workdir / "e/2.jsonl.gz", '{"id": 3}\n\n{"tag": "d", "id": 4}\n')

    source = read_jsonl("e/*", filename_column="file")
    _, table = read_all(source, make_context())

    assert table.to_pylist() == [
        {"id": 1, "tag": "a", "file": "e/1.jsonl"},
        {"id": 2, "tag": "b", "file": "e/1.jsonl"},
        {"id": 3, "tag": None, "file": "e/2.jsonl.gz"},
        {"id": 4, "tag": "d", "file": "e/2.jsonl.gz"},
    ]


@pytest.mark.parametrize(("suffix", "codec"), [(".bz2", "bz2"), (".zst", "zstd")])
def test_jsonl_other_compressions(workdir, make_context, suffix, codec):
    with pa.output_stream(str(workdir / f"x.jsonl{suffix}"), compression=codec) as out:
        out.write(b'{"v": 1}\n{"v": 2}\n')
    _, table = read_all(read_jsonl(f"x.jsonl{suffix}"), make_context())
    assert table.column("v").to_pylist() == [1, 2]


def test_jsonl_given_schema_types_and_selects_fields(workdir, make_context):
    write(workdir / "a.jsonl", '{"at": "2026-01-01T10:00:00", "n": 1, "skip": true}\n')
    schema = pa.schema([("n", pa.int32()), ("at", pa.timestamp("s"))])
    _, table = read_all(read_jsonl("a.jsonl", schema=schema), make_context())
    assert table.schema == schema
    assert table.column("n").to_pylist() == [1]


def test_jsonl_bad_line_names_the_file_and_line_counting_blank_lines(workdir, make_context):
    body = "".join(f'{{"n": {i}}}\n' for i in range(300))
    write(workdir / "a.jsonl", '{"n": -1}\n\n\n' + body + '{"n": oops}\n')
    source = read_jsonl("a.jsonl", block_size=1024)  # error in a later block
    with pytest.raises(FatalError) as info:
        list(source.extract(make_context()))
    message = str(info.value)
    assert message == "JSONL file a.jsonl: line 304: is not JSON (Expecting value at column 7)"


def test_jsonl_later_file_with_an_extra_key_fails_naming_it(workdir, make_context):
    write(workdir / "a.jsonl", '{"id": 1}\n')
    write(workdir / "b.jsonl", '{"id": 2, "surprise": 1}\n')
    with pytest.raises(FatalError, match=r"JSONL file b\.jsonl: .*unexpected surprise"):
        list(read_jsonl("*.jsonl").extract(make_context()))


def test_jsonl_later_file_with_values_of_another_type_fails(workdir, make_context):
    write(workdir / "a.jsonl", '{"id": 1}\n')
    write(workdir / "b.jsonl", '{"id": "two"}\n')
    with pytest.raises(FatalError, match=r"JSONL file b\.jsonl: "):
        list(read_jsonl("*.jsonl").extract(make_context()))


# --- Parquet -------------------------------------------------------------------------------


def test_parquet_multiple_row_groups_and_files_cast_to_the_first(workdir, small_ctx):
    first = pa.table({"id": pa.array(range(250), pa.int64()), "s": [str(i) for i in range(250)]})
    pq.write_table(first, workdir / "p1.parquet", row_group_size=60)
    second = pa.table({"s": ["x"], "id": pa.array([999], pa.int32())})  # other order and type
    pq.write_table(second, workdir / "p2.parquet")
    assert pq.ParquetFile(workdir / "p1.parquet").num_row_groups == 5

    batches, table = read_all(read_parquet("p*.parquet"), small_ctx)

    assert table.schema == first.schema
    assert table.column("id").to_pylist() == [*range(250), 999]
    assert all(b.num_rows <= 100 for b in batches)


def test_parquet_columns_selects_and_requires_them(workdir, make_context):
    pq.write_table(pa.table({"a": [1], "b": [2], "c": [3]}), workdir / "1.parquet")
    pq.write_table(pa.table({"c": [30], "a": [10], "d": [0]}), workdir / "2.parquet")
    _, table = read_all(read_parquet("*.parquet", columns=["c", "a"]), make_context())
    assert table.to_pylist() == [{"c": 3, "a": 1}, {"c": 30, "a": 10}]

    pq.write_table(pa.table({"a": [1]}), workdir / "3.parquet")
    with pytest.raises(FatalError, match=r"Parquet file 3\.parquet: .*missing c"):
        list(read_parquet("*.parquet", columns=["c", "a"]).extract(make_context()))


def test_parquet_type_mismatch_names_the_file(workdir, make_context):
    pq.write_table(pa.table({"id": [1, 2]}), workdir / "1.parquet")
    pq.write_table(pa.table({"id": ["x"]}), workdir / "2.parquet")
    with pytest.raises(FatalError, match=r"Parquet file 2\.parquet: does not fit the first file"):
        list(read_parquet("*.parquet").extract(make_context()))


def test_not_a_parquet_file_fails_naming_it(workdir, make_context):
    write(workdir / "x.parquet", "id\n1\n")
    with pytest.raises(FatalError, match=r"Parquet file x\.parquet: "):
        list(read_parquet("x.parquet").extract(make_context()))


# --- shared behaviour ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_large_files_come_in_batches_of_at_most_batch_rows(workdir, small_ctx, kind):
    rows = [{"id": i, "name": f"n{i}"} for i in range(1050)]
    if kind == "csv":
        write(workdir / "big.csv", "id,name\n" + "".join(f"{r['id']},{r['name']}\n" for r in rows))
        source = read_csv("big.csv")
    elif kind == "jsonl":
        write(workdir / "big.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        source = read_jsonl("big.jsonl")
    else:
        pq.write_table(pa.Table.from_pylist(rows), workdir / "big.parquet")
        source = read_parquet("big.parquet")

    batches, table = read_all(source, small_ctx)

    assert len(batches) >= 11
    assert max(b.num_rows for b in batches) <= 100
    assert table.to_pylist() == rows


@pytest.mark.parametrize("factory", [read_csv, read_jsonl, read_parquet])
def test_glob_matching_nothing_fails_at_run_time_naming_the_pattern(workdir, make_context, factory):
    source = factory("missing/*.dat")  # declaring is fine: files may appear before the run
    with pytest.raises(FatalError, match=r"no file matches 'missing/\*\.dat'"):
        list(source.extract(make_context()))


@pytest.mark.parametrize("factory", [read_csv, read_jsonl, read_parquet])
def test_missing_explicit_file_fails_at_run_time_naming_it(workdir, make_context, factory):
    write(workdir / "here.dat", "a\n1\n")
    source = factory(["here.dat", "gone.dat"])
    with pytest.raises(FatalError, match=r"file gone\.dat does not exist"):
        list(source.extract(make_context()))


def test_filename_column_clashing_with_a_file_column_fails(workdir, make_context):
    write(workdir / "a.csv", "file\n1\n")
    with pytest.raises(FatalError, match="filename_column 'file'"):
        list(read_csv("a.csv", filename_column="file").extract(make_context()))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: read_csv([]), "at least one"),
        (lambda: read_csv(""), "empty string"),
        (lambda: read_csv([1]), "not a path"),
        (lambda: read_csv("data/**.csv"), "whole path part"),
        (lambda: read_csv("a.csv", delimiter=";;"), "delimiter"),
        (lambda: read_csv("a.csv", schema={"a": "int"}), "pyarrow.Schema"),
        (
            lambda: read_csv("a.csv", column_types={"a": "int"}),
            r"read_csv: column_types\.a: must be a pyarrow type",
        ),
        (lambda: read_csv("a.csv", null_values="NULL"), "null_values"),
        (
            lambda: read_csv(
                "a.csv",
                schema=pa.schema([("a", pa.int8())]),
                column_types={"a": pa.int16()},
            ),
            "either schema= or column_types=",
        ),
        (lambda: read_jsonl("a.jsonl", block_size=0), "block_size"),
        (
            lambda: read_jsonl(
                "a.jsonl", schema=pa.schema([("f", pa.int8())]), filename_column="f"
            ),
            "already a column",
        ),
        (lambda: read_parquet("a.parquet", columns=[]), "non-empty list"),
        (lambda: read_parquet("a.parquet", columns=["a", "a"]), "twice"),
        (lambda: read_parquet("a.parquet", filename_column=""), "filename_column"),
    ],
)
def test_bad_arguments_are_config_errors_at_declaration(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_working_directory_with_glob_characters_and_absolute_patterns(
    tmp_path, monkeypatch, make_context
):
    odd = tmp_path / "odd[dir]*"
    write(odd / "in/a.csv", "v\n1\n")
    monkeypatch.chdir(odd)
    _, table = read_all(read_csv("in/*.csv", filename_column="f"), make_context())
    assert table.column("f").to_pylist() == ["in/a.csv"]

    write(tmp_path / "abs/b.csv", "v\n2\n")
    _, table = read_all(read_csv(str(tmp_path / "abs/*.csv"), filename_column="f"), make_context())
    assert table.column("f").to_pylist() == [str(tmp_path / "abs/b.csv")]

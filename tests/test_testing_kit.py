"""The testing kit as a pipeline author uses it: the README's example, run here as written.

The block between the markers is the README's example test module, character for
character (checked below); the fixture override above it is what the README's
``conftest.py`` does.
"""

from __future__ import annotations

# --- the README's example (Testing your pipelines) ---
from datetime import UTC, datetime

from runner import Window
from runner.testing import collect

WEEK = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 8, tzinfo=UTC))


def test_a_week_of_customers_lands_clean(run):
    result = run("customers", window=WEEK)
    assert result.status == "succeeded"
    customers = result.rows("customers", final=True, order_by=["customer_id"])
    assert len(customers) == result.steps["customers"].rows_loaded > 0
    assert all(row["email"] == row["email"].strip().lower() for row in customers)


def test_normalise_tidies_emails_and_names(make_context):
    from customers_pipeline import normalise  # pipelines/ is on sys.path: see conftest.py

    rows = [{"email": " Ann@Example.COM", "name": "Ann   Lee"}]
    tidy = collect(normalise, make_context(), rows=rows)
    assert tidy.to_pylist() == [{"email": "ann@example.com", "name": "Ann Lee"}]


# --- end of the README's example ---

import re  # noqa: E402 - after the example, which a README shows whole
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
START = "# --- the README's example (Testing your pipelines) ---\n"
END = "# --- end of the README's example ---\n"


@pytest.fixture
def runner_project(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "pipelines"))  # as the README's conftest.py
    return ROOT


def test_the_readme_shows_this_example_as_it_is_run_here():
    source = Path(__file__).read_text(encoding="utf-8")
    here = source[source.index(START) + len(START) : source.index(END)].rstrip("\n") + "\n"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(# tests/test_customers\.py\n.*?)```", readme, re.DOTALL)
    assert len(blocks) == 1, "the README has one example test module"
    shown = blocks[0].removeprefix("# tests/test_customers.py\n")
    assert shown == here


def test_a_step_that_never_touches_the_warehouse_creates_no_database(
    make_context, runner_database, runner_settings
):
    from runner.warehouse.client import Warehouse

    def double(batch):
        return [{"n": n * 2} for n in batch.column("n").to_pylist()]

    assert collect(double, make_context(), rows=[{"n": 1}, {"n": 2}]).to_pylist() == [
        {"n": 2},
        {"n": 4},
    ]
    assert not runner_database.created
    default = Warehouse.connect(runner_settings.model_copy(update={"database": "default"}))
    try:
        [[present]] = default.query_rows(
            "SELECT count() FROM system.databases WHERE name = {name:String}",
            {"name": runner_settings.database},
        )
    finally:
        default.close()
    assert present == 0
    ctx = make_context()
    ctx.warehouse.command("SELECT 1")  # the first touch creates it
    assert runner_database.created


def test_collect_gathers_an_extractors_batches_into_one_table(make_context):
    def extract(ctx):
        yield from ({"i": i} for i in range(5))
        yield [{"i": 5}, {"i": 6}]

    table = collect(extract, make_context())
    assert table.column("i").to_pylist() == list(range(7))
    assert collect([], make_context()).num_rows == 0


def test_run_takes_a_pipeline_object_and_raises_its_error(run):
    from runner import el
    from runner.errors import FatalError

    def broken():
        raise ValueError("source down")
        yield  # pragma: no cover

    with pytest.raises(FatalError, match="source down"):
        run(el("broken", extract=broken, load=lambda batch: None), window=WEEK)
    done = run(el("fine", extract=[{"a": 1}], load=lambda batch: None), window=WEEK)
    assert (done.status, done.steps["fine"].rows_loaded, done.window) == ("succeeded", 1, WEEK)

"""Python sources: a one-shot iterator cannot feed a second run."""

import pytest

from runner import el
from runner.errors import FatalError
from runner.tools.extract.python import from_iterable


def test_a_generator_read_by_one_run_refuses_the_next(make_context):
    loaded: list[dict] = []
    pipeline = el(
        "gen",
        extract=({"i": i} for i in range(3)),
        load=lambda batch: loaded.extend(batch.to_pylist()),
    )
    pipeline.run(make_context(pipeline="gen"))
    assert loaded == [{"i": 0}, {"i": 1}, {"i": 2}]
    # a second window of the same pipeline object used to load nothing and succeed
    with pytest.raises(FatalError, match=r"is an iterator that run test-\w+ already read"):
        pipeline.run(make_context(pipeline="gen"))


def test_a_function_gives_every_run_its_own_rows(make_context):
    loaded: list[dict] = []
    source = from_iterable(lambda: ({"i": i} for i in range(2)))
    pipeline = el("fn", extract=source, load=lambda batch: loaded.extend(batch.to_pylist()))
    pipeline.run(make_context(pipeline="fn"))
    pipeline.run(make_context(pipeline="fn"))
    assert loaded == [{"i": 0}, {"i": 1}] * 2

import threading

import pytest

from runner.errors import InterruptedRunError
from runner.pipeline.discovery import Registry
from runner.services.run import new_run_id, run_pipeline


@pytest.fixture
def registry(tmp_path):
    (tmp_path / "rows_pipeline.py").write_text(
        "from runner import el\n"
        "OUT = []\n"
        "def extract(ctx):\n"
        "    for i in range(int(ctx.params.get('n', '5'))):\n"
        "        yield {'i': i}\n"
        "pipeline = el('rows', schedule='*/10 * * * *', extract=extract, load=OUT.extend)\n"
    )
    return Registry(tmp_path)


def test_run_returns_a_result_with_stats(runner_settings, registry):
    result = run_pipeline(runner_settings, registry, "rows", params={"n": "7"})
    assert result.status == "succeeded"
    assert result.steps["rows"].rows_loaded == 7
    assert (result.window.end - result.window.start).total_seconds() == 600
    data = result.as_dict()
    assert data["steps"]["rows"]["rows_extracted"] == 7
    assert data["window_start"] < data["window_end"]


def test_a_cancelled_run_raises_interrupted(runner_settings, registry):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(InterruptedRunError):
        run_pipeline(runner_settings, registry, "rows", cancel=cancel)


def test_run_ids_sort_by_time_and_are_unique():
    ids = {new_run_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i.split("-")[0]) == 16 for i in ids)

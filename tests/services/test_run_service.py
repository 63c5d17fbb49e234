import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from runner.errors import AlreadyRunningError, ExitCode, FatalError, InterruptedRunError
from runner.pipeline.discovery import Registry
from runner.pipeline.windows import Window
from runner.services.run import new_run_id, run_pipeline
from runner.services.run_hooks import RunHook
from runner.state.locks import make_lock
from runner.state.runs import RunHistory, new_record
from runner.state.watermarks import WINDOW_END_KEY, StateStore

PIPELINES = {
    "rows": (
        "from runner import el\n"
        "OUT = []\n"
        "def extract(ctx):\n"
        "    for i in range(int(ctx.params.get('n', '5'))):\n"
        "        yield {'i': i}\n"
        "    if ctx.params.get('fail'):\n"
        "        raise ValueError('source broke')\n"
        "    ctx.state.set('cursor', int(ctx.params.get('n', '5')))\n"
        "pipeline = el('rows', schedule='*/10 * * * *', extract=extract, load=OUT.extend)\n"
    ),
    "inc": (
        "from runner import el\n"
        "SEEN = []\n"
        "def extract(ctx):\n"
        "    SEEN.append((ctx.window.start, ctx.window.end))\n"
        "    return []\n"
        "pipeline = el('inc', schedule='0 * * * *', incremental=True, extract=extract,"
        " load=lambda b: None)\n"
    ),
    "alive": (
        "import json\n"
        "from pathlib import Path\n"
        "from runner import el\n"
        "from runner.state.liveness import is_run_alive, liveness_path\n"
        "from runner.state.runs import new_record\n"
        "def extract(ctx):\n"
        "    me = new_record(run_id=ctx.run_id, pipeline='alive', trigger='manual',"
        " window=ctx.window, image_version='t')\n"
        "    me.heartbeat_at = me.heartbeat_at.replace(year=2000)\n"
        "    seen = [str(liveness_path(ctx.settings, ctx.run_id)), is_run_alive(ctx.settings, me)]\n"
        "    Path(ctx.params['out']).write_text(json.dumps(seen))\n"
        "    if ctx.params.get('fail'):\n"
        "        raise ValueError('broke')\n"
        "    return []\n"
        "pipeline = el('alive', extract=extract, load=lambda b: None)\n"
    ),
    "per_window": (
        "from runner import el\n"
        "pipeline = el('per_window', concurrent_windows=True, extract=[{'i': 1}],"
        " load=lambda b: None)\n"
    ),
}


def day(n):
    return Window(datetime(2026, 1, n, tzinfo=UTC), datetime(2026, 1, n + 1, tzinfo=UTC))


@pytest.fixture
def registry(tmp_path):
    directory = tmp_path / "pipelines"
    directory.mkdir()
    for name, body in PIPELINES.items():
        (directory / f"{name}_pipeline.py").write_text(body)
    return Registry(directory)


@pytest.fixture
def settings(runner_settings):
    return runner_settings.model_copy(update={"lock_backend": "file", "heartbeat_seconds": 0.05})


def test_run_is_recorded_with_stats_and_commits_state(settings, registry, warehouse):
    result = run_pipeline(settings, registry, "rows", params={"n": "7"})
    assert result.status == "succeeded"
    assert result.steps["rows"].rows_loaded == 7
    assert (result.window.end - result.window.start).total_seconds() == 600
    [record] = RunHistory(warehouse, settings.state_database).recent("rows")
    assert (record.run_id, record.status, record.rows_loaded) == (result.run_id, "succeeded", 7)
    assert record.trigger == "manual"
    assert record.window_end == result.window.end
    assert record.finished_at is not None
    assert record.steps["rows"]["rows_extracted"] == 7
    state = StateStore(warehouse, settings.state_database).load("rows")
    assert state == {"cursor": 7, WINDOW_END_KEY: result.window.end.isoformat()}


def test_state_advances_only_on_success(settings, registry, warehouse):
    run_pipeline(settings, registry, "rows", params={"n": "3"})
    with pytest.raises(FatalError, match="ValueError: source broke"):
        run_pipeline(settings, registry, "rows", params={"n": "9", "fail": "1"})
    assert StateStore(warehouse, settings.state_database).load("rows")["cursor"] == 3
    failed = RunHistory(warehouse, settings.state_database).recent("rows")[0]
    assert failed.status == "failed"
    assert failed.error_class == "FatalError"
    assert "source broke" in failed.error_message


def test_a_second_run_of_the_same_pipeline_is_refused_naming_the_holder(
    settings, registry, warehouse
):
    holder = make_lock(settings.model_copy(update={"identity": "cron-pod-1"}), "run:rows")
    holder.acquire()
    try:
        with pytest.raises(AlreadyRunningError, match="cron-pod-1"):
            run_pipeline(settings, registry, "rows")
    finally:
        holder.release()
    run_pipeline(settings, registry, "rows")


def test_concurrent_windows_lock_per_window(settings, registry, warehouse):
    held = make_lock(settings, "run:per_window:2026-01-01T00:00:00+00:00")
    held.acquire()
    try:
        with pytest.raises(AlreadyRunningError):
            run_pipeline(settings, registry, "per_window", window=day(1))
        other = run_pipeline(settings, registry, "per_window", window=day(2))
        assert other.status == "succeeded"
    finally:
        held.release()


def test_incremental_windows_start_at_the_watermark(settings, registry, warehouse):
    store = StateStore(warehouse, settings.state_database)
    mark = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    store.save("inc", {WINDOW_END_KEY: mark.isoformat()}, "seed")
    first = run_pipeline(settings, registry, "inc")
    assert first.window.start == mark
    assert first.window.end == mark + timedelta(hours=5)
    second = run_pipeline(settings, registry, "inc")
    assert second.status == "skipped"
    assert second.window is None


def test_a_dead_run_is_marked_failed_by_the_next_one(settings, registry, warehouse):
    history = RunHistory(warehouse, settings.state_database)
    ghost = new_record(
        run_id="ghost",
        pipeline="rows",
        trigger="schedule",
        window=run_pipeline(settings, registry, "rows", dry_run=True).window,
        image_version="x",
    )
    ghost.heartbeat_at = datetime.now(UTC) - timedelta(hours=1)
    ghost.started_at = ghost.heartbeat_at
    history.write(ghost)
    run_pipeline(settings, registry, "rows")
    records = {r.run_id: r for r in history.recent("rows")}
    assert records["ghost"].status == "failed"
    assert records["ghost"].error_class == "LostRun"


def test_a_cancelled_run_is_recorded_and_releases_its_lock(settings, registry, warehouse):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(InterruptedRunError):
        run_pipeline(settings, registry, "rows", cancel=cancel)
    assert RunHistory(warehouse, settings.state_database).recent("rows")[0].status == "cancelled"
    lock = make_lock(settings, "run:rows")
    lock.acquire()
    lock.release()


def test_heartbeats_are_written_while_running(settings, registry, warehouse, tmp_path):
    (tmp_path / "pipelines" / "slowish_pipeline.py").write_text(
        "import time\nfrom runner import el\n"
        "def extract():\n    for i in range(5):\n        time.sleep(0.06)\n        yield [{'i': i}]\n"
        "pipeline = el('slowish', extract=extract, load=lambda b: None)\n"
    )
    result = run_pipeline(settings, Registry(tmp_path / "pipelines"), "slowish")
    [record] = RunHistory(warehouse, settings.state_database).recent("slowish")
    assert record.run_id == result.run_id
    assert record.heartbeat_at - record.started_at >= timedelta(seconds=0.05)


def test_run_ids_sort_by_time_and_are_unique():
    ids = {new_run_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i.split("-")[0]) == 16 for i in ids)


@pytest.mark.parametrize("fail", [False, True])
def test_a_run_holds_its_liveness_lock_and_removes_it_once_recorded(
    settings, registry, warehouse, fail, tmp_path
):
    import json
    from pathlib import Path

    out = tmp_path / "seen.json"
    params = {"out": str(out), **({"fail": "1"} if fail else {})}
    if fail:
        with pytest.raises(FatalError, match="broke"):
            run_pipeline(settings, registry, "alive", params=params)
    else:
        run_pipeline(settings, registry, "alive", params=params)
    path, alive = json.loads(out.read_text())
    path = Path(path)
    assert alive  # held while running, although its heartbeat looked 26 years old
    assert path.parent == settings.lock_path / "runs"
    assert not path.exists()  # the outcome is recorded: the proof is not needed


def test_a_bad_log_dir_fails_before_the_run_is_recorded(settings, registry, warehouse, tmp_path):
    from runner.errors import ConfigError
    from runner.log import RunLogFile

    (tmp_path / "a-file").write_text("")
    bad = settings.model_copy(update={"log_dir": tmp_path / "a-file"})
    with pytest.raises(ConfigError, match="RUNNER_LOG_DIR"):
        run_pipeline(bad, registry, "rows", log_file=RunLogFile())
    assert RunHistory(warehouse, settings.state_database).recent("rows") == []


def test_a_session_hands_out_no_connection_its_schema_gate_closed(
    settings, registry, warehouse, tmp_path
):
    """A refused gate closes its connection: the session's pool must not lend it again."""
    from runner.errors import NotReadyError
    from runner.services.migrate import migrate
    from runner.services.session import RunSession
    from runner.warehouse.client import Warehouse

    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_t.sql").write_text(
        "CREATE TABLE {{database}}.t (a UInt8) ENGINE = MergeTree ORDER BY a"
    )
    behind = settings.model_copy(update={"migrations_dir": directory})
    closed = []

    def connect():
        opened = Warehouse.connect(behind)
        close = opened.close

        def noted_close():
            closed.append(opened)
            close()

        opened.close = noted_close
        return opened

    with RunSession(behind, connect) as session:
        with pytest.raises(NotReadyError, match="this code needs 1"):
            run_pipeline(behind, registry, "rows", session=session)
        assert len({id(w) for w in closed}) == 1
        lent = session.pool.acquire()
        assert lent not in closed
        session.pool.release(lent)
        migrate(behind)
        assert run_pipeline(behind, registry, "rows", session=session).status == "succeeded"
    assert len({id(w) for w in closed}) == 2  # the refused one; the good one at the end


# -- hooks: after the load, and on finish ------------------------------------------------


class Seen(RunHook):
    """Remembers what a run showed it; fails where told to."""

    def __init__(self, fail_check=None, fail_finish=None):
        self.loaded = []
        self.outcomes = []
        self.fail_check = fail_check
        self.fail_finish = fail_finish

    def after_load(self, pipeline, ctx):
        self.loaded.append((pipeline.name, ctx.stats[pipeline.name].rows_loaded))
        if self.fail_check is not None:
            raise self.fail_check

    def on_finish(self, outcome):
        self.outcomes.append(outcome)
        if self.fail_finish is not None:
            raise self.fail_finish


def test_hooks_see_the_load_and_the_outcome(settings, registry, warehouse):
    hook = Seen()
    result = run_pipeline(settings, registry, "rows", params={"n": "4"}, hooks=[hook])
    assert hook.loaded == [("rows", 4)]
    [outcome] = hook.outcomes
    assert (outcome.status, outcome.exit_code, outcome.error) == ("succeeded", 0, None)
    assert (outcome.run_id, outcome.window, outcome.rows_loaded) == (
        result.run_id,
        result.window,
        4,
    )
    assert outcome.recorded
    assert outcome.trigger == "manual"
    assert outcome.duration_seconds == result.duration_seconds > 0


def test_a_failing_after_load_hook_fails_the_run_and_commits_nothing(settings, registry, warehouse):
    hook = Seen(fail_check=ValueError("3 rows expected"))
    with pytest.raises(FatalError, match="after-load hook Seen: ValueError: 3 rows expected"):
        run_pipeline(settings, registry, "rows", params={"n": "4"}, hooks=[hook])
    [record] = RunHistory(warehouse, settings.state_database).recent("rows")
    assert (record.status, record.error_class) == ("failed", "FatalError")
    assert StateStore(warehouse, settings.state_database).load("rows") == {}  # no watermark
    [outcome] = hook.outcomes
    assert (outcome.status, outcome.exit_code) == ("failed", 1)
    assert isinstance(outcome.error, FatalError)


@pytest.mark.parametrize("fails", [False, True])
def test_an_on_finish_hook_that_raises_changes_nothing(settings, registry, warehouse, fails):
    """Neither a succeeded run's result nor a failed run's error (its exit code)."""
    broken, after = Seen(fail_finish=RuntimeError("webhook down")), Seen()
    params = {"n": "2", **({"fail": "1"} if fails else {})}
    if fails:
        with pytest.raises(FatalError, match="source broke") as caught:
            run_pipeline(settings, registry, "rows", params=params, hooks=[broken, after])
        assert caught.value.exit_code == ExitCode.FAILED
    else:
        assert run_pipeline(settings, registry, "rows", params=params, hooks=[broken, after])
    assert [o.status for o in broken.outcomes + after.outcomes] == 2 * [
        "failed" if fails else "succeeded"
    ]  # the next hook still heard it
    [record] = RunHistory(warehouse, settings.state_database).recent("rows")
    assert record.status == ("failed" if fails else "succeeded")


def test_a_run_refused_by_its_lock_is_an_unrecorded_outcome(settings, registry, warehouse):
    hook = Seen()
    holder = make_lock(settings, "run:rows")
    holder.acquire()
    try:
        with pytest.raises(AlreadyRunningError):
            run_pipeline(settings, registry, "rows", hooks=[hook])
    finally:
        holder.release()
    [outcome] = hook.outcomes
    assert (outcome.status, outcome.exit_code, outcome.recorded) == ("failed", 5, False)
    assert hook.loaded == []


def test_on_finish_hooks_are_not_waited_for_past_their_bound():
    from runner.services.run_hooks import notify_finished

    release = threading.Event()

    class Stuck(RunHook):
        def on_finish(self, outcome):
            release.wait(30)

    began = time.monotonic()
    notify_finished([Stuck()], outcome=None, timeout=0.2)
    assert time.monotonic() - began < 5  # the bound, not the hook's 30 s
    release.set()

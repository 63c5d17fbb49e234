"""Run liveness: a held liveness lock proves a run alive, a free one proves it dead at once;
without one (Lease, none, another machine) the heartbeat decides."""

import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from runner.pipeline.windows import Window
from runner.settings import Settings
from runner.state.liveness import (
    Liveness,
    LivenessLock,
    discard_proof,
    is_run_alive,
    liveness_path,
    run_liveness,
)
from runner.state.runs import RunHistory, new_record

WINDOW = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))


@pytest.fixture
def settings(tmp_path):
    return Settings(project_dir=tmp_path, lock_backend="file", lock_dir=tmp_path / "locks")


def record(run_id="20260101T000000Z-0a1b2c3d", *, age_seconds=0.0, pipeline="p"):
    made = new_record(
        run_id=run_id, pipeline=pipeline, trigger="manual", window=WINDOW, image_version="t"
    )
    made.heartbeat_at -= timedelta(seconds=age_seconds)
    return made


def hold(settings, run_id):
    path = liveness_path(settings, run_id)
    assert path is not None
    lock = LivenessLock(path, "test")
    lock.acquire()
    return lock


def test_a_held_liveness_lock_means_alive_even_with_an_old_heartbeat(settings):
    run = record(age_seconds=3600)
    lock = hold(settings, run.run_id)
    try:
        assert is_run_alive(settings, run)
        assert "is held" in run_liveness(settings, run).reason
    finally:
        lock.release(outcome_recorded=True)


def test_a_free_liveness_lock_means_dead_at_once_even_with_a_fresh_heartbeat(settings):
    run = record()
    hold(settings, run.run_id).release(outcome_recorded=False)  # the outcome never got written
    verdict = run_liveness(settings, run)
    assert verdict == Liveness(alive=False, reason=verdict.reason)
    assert "liveness lock" in verdict.reason
    assert "is free" in verdict.reason
    discard_proof(settings, run.run_id)
    assert not liveness_path(settings, run.run_id).exists()


def test_a_recorded_outcome_removes_the_file_and_the_heartbeat_decides(settings):
    run = record()
    path = liveness_path(settings, run.run_id)
    hold(settings, run.run_id).release(outcome_recorded=True)
    assert not path.exists()
    assert is_run_alive(settings, run)  # fresh heartbeat, no file: no proof either way
    assert not is_run_alive(settings, record(age_seconds=settings.stale_after_seconds + 1))


def test_a_sigkilled_holder_is_dead_the_moment_it_is_gone(settings):
    run = record()
    path = liveness_path(settings, run.run_id)
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from runner.state.liveness import LivenessLock
        LivenessLock(Path({str(path)!r}), "child").acquire()
        print("held", flush=True)
        sys.stdin.read()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "held"
        assert is_run_alive(settings, run)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert not is_run_alive(settings, run)


@pytest.mark.parametrize("backend", ["none", "lease"])
def test_without_file_locks_the_heartbeat_rule_stays(settings, backend):
    run = record()
    hold(settings, run.run_id).release(outcome_recorded=False)  # a free file is not looked at
    other = settings.model_copy(update={"lock_backend": backend})
    assert liveness_path(other, run.run_id) is None
    assert is_run_alive(other, run)
    stale = record(age_seconds=other.stale_after_seconds + 1)
    assert not is_run_alive(other, stale)
    assert "no heartbeat since" in run_liveness(other, stale).reason


def test_finished_runs_are_not_alive_and_odd_run_ids_are_never_paths(settings):
    done = record()
    done.status = "succeeded"
    assert not is_run_alive(settings, done)
    assert liveness_path(settings, "../../etc/passwd") is None
    assert liveness_path(settings, ".hidden") is None
    assert is_run_alive(settings, record("../../x"))  # heartbeat rule: fresh


def test_an_unusable_lock_dir_is_a_config_error_naming_the_setting(tmp_path):
    from runner.errors import ConfigError

    (tmp_path / "a-file").write_text("")
    settings = Settings(lock_backend="file", lock_dir=tmp_path / "a-file")
    with pytest.raises(ConfigError, match="RUNNER_LOCK_DIR: cannot create the run's liveness"):
        hold(settings, "20260101T000000Z-0a1b2c3d")


def test_mark_stale_marks_the_dead_and_spares_a_run_that_finished_meanwhile(
    settings, runner_settings, warehouse
):
    history = RunHistory(warehouse, runner_settings.state_database)
    dead, finishing, alive = (record(f"20260101T00000{i}Z-0a1b2c3d") for i in range(3))
    for run in (dead, finishing, alive):
        history.write(run)
    hold(settings, dead.run_id).release(outcome_recorded=False)
    keeper = hold(settings, alive.run_id)

    def liveness(candidate):
        verdict = run_liveness(settings, candidate)
        if candidate.run_id == finishing.run_id:  # it ends between the read and the verdict
            finishing.status = "succeeded"
            history.write(finishing)
            return Liveness(alive=False, reason="looked dead")
        return verdict

    try:
        marked = history.mark_stale("p", liveness)
    finally:
        keeper.release(outcome_recorded=True)
    assert [r.run_id for r in marked] == [dead.run_id]
    stored = {r.run_id: r for r in history.recent("p")}
    assert stored[dead.run_id].status == "failed"
    assert stored[dead.run_id].error_class == "LostRun"
    assert "liveness lock" in stored[dead.run_id].error_message
    assert stored[finishing.run_id].status == "succeeded"
    assert stored[alive.run_id].status == "running"

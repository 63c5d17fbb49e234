"""SIGKILL mid-insert over HTTPS: runs of one window killed while inserts are in flight to the
loopback server, then a re-run; the target must hold every source row exactly once."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import pytest
from http_pipelines import (
    ROWS,
    WINDOW,
    expected_sum,
    load_migrations,
    load_pipelines,
    small_batches,
)

pytestmark = [pytest.mark.http, pytest.mark.slow]  # a SIGKILL loop
KILLS = 6


def loader_inserts(project, mode):
    """The loader's inserts the server has seen (replace window: into its staging table)."""
    return [
        r
        for r in project.server.requests()
        if f"`t_{mode}" in (r["sql"] or "") and "FORMAT+Arrow" in r["url"]
    ]


@pytest.mark.parametrize("mode", ["append", "replace"])
def test_sigkill_mid_insert_then_rerun_is_exact(http_project, mode):
    project = http_project(pipelines=load_pipelines(), migrations=load_migrations())
    project.runner("migrate")
    env = project.env(
        **small_batches(), RUNNER_HEARTBEAT_SECONDS="0.2", RUNNER_STALE_AFTER_SECONDS="1"
    )
    rng = random.Random(f"http-crash-{mode}")
    killed_with_inserts = 0
    for _ in range(KILLS):
        project.server.clear_requests()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runner",
                "run",
                f"load_{mode}",
                *WINDOW,
                "--param",
                "pause=0.1",
            ],
            env=env,
            cwd=project.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            if '"run started"' in line:
                break
        for _ in range(300):  # until the loader's first insert reaches the server (<= 15 s)
            if loader_inserts(project, mode):
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.4))  # the rest of the load takes about 0.5 s: inside it
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
        killed_with_inserts += bool(loader_inserts(project, mode))
    assert killed_with_inserts == KILLS  # every kill landed while the load was being sent
    time.sleep(1.2)  # the killed runs' heartbeats are stale now
    project.runner(
        "run", f"load_{mode}", *WINDOW, RUNNER_STALE_AFTER_SECONDS="1", **small_batches()
    )
    assert project.rows(f"SELECT count(), uniqExact(id), sum(v) FROM t_{mode}") == [
        (ROWS, ROWS, expected_sum())
    ]
    statuses = project.rows(
        f"SELECT status, count() FROM `{project.state_database}`.runs FINAL "
        f"WHERE pipeline = 'load_{mode}' GROUP BY status ORDER BY status"
    )
    assert dict(statuses) == {"failed": KILLS, "succeeded": 1}

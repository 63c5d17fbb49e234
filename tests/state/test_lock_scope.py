"""Locks are scoped by Helm release: two releases in one namespace never block each other,
while a lock that guards something they share (a database's migrations) stays shared.

Leases go through the real kubernetes client to the stand-in API server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from k8s_apiserver import running_api

from runner.errors import AlreadyRunningError
from runner.settings import Settings
from runner.state.locks import lock_key, make_lock, scoped_name

NS = "etl"


@pytest.fixture
def kube(tmp_path, monkeypatch):
    with running_api() as fake:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": fake.url}}],
            "users": [{"name": "runner", "user": {"token": "t0ken"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "runner"}}],
            "current-context": "fake",
        }
        (tmp_path / "kubeconfig").write_text(json.dumps(config))
        monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
        yield fake


def release(tmp_path: Path, name: str | None, pod: str) -> Settings:
    return Settings(
        project_dir=tmp_path,
        identity=pod,
        release=name,
        lock_backend="lease",  # type: ignore[arg-type]
        lease_namespace=NS,
        lock_ttl_seconds=30,
    )


def test_two_releases_in_one_namespace_run_the_same_pipeline_at_once(kube, tmp_path):
    staging = make_lock(release(tmp_path, "staging", "staging-pod"), "run:events")
    prod = make_lock(release(tmp_path, "prod", "prod-pod"), "run:events")
    with staging, prod:  # neither blocks the other
        names = {name for (_, name) in kube.leases}
        assert names == {lock_key("staging/run:events"), lock_key("prod/run:events")}
        # the same release still excludes a second run of the pipeline
        again = make_lock(release(tmp_path, "prod", "other-pod"), "run:events")
        with pytest.raises(AlreadyRunningError, match="held by prod-pod"):
            again.acquire()
    assert kube.leases == {}


def test_the_migration_lock_is_shared_by_releases(kube, tmp_path):
    staging = make_lock(
        release(tmp_path, "staging", "staging-pod"), "migrate:analytics", per_release=False
    )
    prod = make_lock(release(tmp_path, "prod", "prod-pod"), "migrate:analytics", per_release=False)
    with staging, pytest.raises(AlreadyRunningError, match="held by staging-pod"):
        prod.acquire()


def test_outside_a_release_names_are_unchanged(tmp_path):
    assert scoped_name(release(tmp_path, None, "laptop"), "run:events") == "run:events"
    assert scoped_name(release(tmp_path, "prod", "pod"), "run:events") == "prod/run:events"

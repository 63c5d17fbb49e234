"""Locks: real flock files and subprocesses, and Leases through the real kubernetes client
against a stand-in API server (tests/k8s_apiserver.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from k8s_apiserver import FakeKubeApi, running_api
from kubernetes.client import ApiClient, Configuration, CoordinationV1Api, V1Lease, V1LeaseSpec
from kubernetes.client import V1ObjectMeta as Meta
from kubernetes.client.exceptions import ApiException
from structlog.testing import capture_logs

from runner.errors import AlreadyRunningError, ConfigError, ExitCode, NotReadyError
from runner.settings import Settings
from runner.state.locks import FileLock, Holder, LeaseLock, NullLock, lock_key, make_lock
from runner.state.locks import lease as lease_module

NS = "jobs"
NAME = "migrate:analytics"
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@pytest.fixture(autouse=True)
def logs():
    """Capture structlog output: keeps these tests quiet, and immune to a logging
    configuration another test left behind (e.g. printing to a closed capture stream)."""
    with capture_logs() as entries:
        yield entries


def micro(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- names and the factory -------------------------------------------------------------


def test_lock_key_is_a_valid_lease_name_and_never_collides():
    names = [
        NAME,
        "Migrate:analytics",
        "run:orders",
        "run:orders:2026-01-01T00:00:00+00:00",
        "run:orders:2026-01-02T00:00:00+00:00",
        "x" * 200,
        "x" * 200 + "y",
        "-run-",
        "::",
        "ünïcode/päth",
    ]
    keys = [lock_key(n) for n in names]
    assert len(set(keys)) == len(names)
    for key in keys:
        assert len(key) <= 63
        assert DNS_1123.match(key), key
    assert lock_key("run-orders") == "run-orders"  # already valid: kept as is
    assert lock_key(NAME).startswith("migrate-analytics-")
    assert lock_key(NAME) == lock_key(NAME)
    with pytest.raises(ConfigError, match="must not be empty"):
        lock_key(" ")


def settings_for(tmp_path: Path, **overrides) -> Settings:
    return Settings(project_dir=tmp_path, identity="test-host", **overrides)


def test_make_lock_honours_the_backend(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    auto = make_lock(settings_for(tmp_path), NAME)
    assert isinstance(auto, FileLock)
    assert auto.path.parent == tmp_path / ".warehouse" / "locks"
    assert auto.identity == f"test-host/{os.getpid()}"
    assert isinstance(make_lock(settings_for(tmp_path, lock_backend="file"), NAME), FileLock)
    null = make_lock(settings_for(tmp_path, lock_backend="none"), NAME)
    assert isinstance(null, NullLock)
    with null, null:  # excludes nothing, not even itself
        assert null.holder() is None


def kubeconfig(path: Path, server: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "runner", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "runner"}}],
        "current-context": "fake",
    }
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def test_auto_backend_in_kubernetes_uses_a_lease_from_the_kubeconfig(tmp_path, monkeypatch):
    with running_api() as kube:
        # KUBERNETES_SERVICE_HOST set but no service account token: falls back to kubeconfig
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "kubeconfig", kube.url)))
        lock = make_lock(settings_for(tmp_path, lease_namespace=NS, lock_ttl_seconds=5), NAME)
        assert isinstance(lock, LeaseLock)
        with lock:
            stored = kube.get(NS, lock_key(NAME))
            assert stored is not None
            assert stored["spec"]["holderIdentity"] == f"test-host/{os.getpid()}"
            assert stored["spec"]["leaseDurationSeconds"] == 5
        assert kube.get(NS, lock_key(NAME)) is None


def test_lease_backend_without_namespace_or_cluster_access_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setattr(lease_module, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "no-namespace")
    with pytest.raises(ConfigError, match="RUNNER_LEASE_NAMESPACE"):
        make_lock(settings_for(tmp_path, lock_backend="lease"), NAME)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    with pytest.raises(ConfigError, match="kubeconfig"):
        make_lock(settings_for(tmp_path, lock_backend="lease", lease_namespace=NS), NAME)


def test_waits_must_be_finite_and_not_negative(tmp_path):
    lock = FileLock(NAME, tmp_path, identity="a")
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="lock wait"):
            lock.acquire(wait_seconds=bad)


# -- file locks ------------------------------------------------------------------------


def test_file_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    first = FileLock(NAME, tmp_path, identity="alice/11")
    second = FileLock(NAME, tmp_path, identity="bob/22")
    first.acquire()
    sidecar = json.loads(first.holder_path.read_text())
    assert sidecar["identity"] == "alice/11"
    assert sidecar["name"] == NAME
    with pytest.raises(AlreadyRunningError) as refused:
        second.acquire()
    message = str(refused.value)
    assert refused.value.exit_code == ExitCode.ALREADY_RUNNING
    assert "\n" not in message
    assert "'migrate:analytics' is held by alice/11 since 20" in message
    assert str(first.path) in message
    seen = second.holder()
    assert seen is not None
    assert seen.identity == "alice/11"
    assert seen.expires_at is None
    assert first.holder() == seen
    with pytest.raises(RuntimeError, match="already held by this object"):
        first.acquire()
    first.release()
    first.release()  # idempotent
    assert not first.holder_path.exists()
    assert second.holder() is None
    with second:
        assert first.holder() is not None
        assert first.holder().identity == "bob/22"
    assert second.holder() is None


def test_file_lock_in_an_unusable_directory_is_a_config_error(tmp_path):
    (tmp_path / "occupied").write_text("a file, not a directory")
    lock = FileLock(NAME, tmp_path / "occupied" / "locks", identity="a")
    with pytest.raises(ConfigError, match=r"cannot lock .*occupied/locks"):
        lock.acquire()


def test_file_lock_wait_succeeds_once_the_holder_releases(tmp_path):
    first = FileLock(NAME, tmp_path, identity="alice/11")
    second = FileLock(NAME, tmp_path, identity="bob/22")
    first.acquire()
    releaser = threading.Timer(0.3, first.release)  # released from another thread
    started = time.monotonic()
    releaser.start()
    second.acquire(wait_seconds=5)
    waited = time.monotonic() - started
    releaser.join()
    assert 0.25 <= waited < 2.0
    assert second.holder().identity == "bob/22"
    second.release()


def test_file_lock_wait_gives_up_at_the_deadline(tmp_path):
    with FileLock(NAME, tmp_path, identity="alice/11"):
        started = time.monotonic()
        with pytest.raises(AlreadyRunningError, match=r"alice/11 .* after waiting 0.3s"):
            FileLock(NAME, tmp_path, identity="bob/22").acquire(wait_seconds=0.3)
        assert 0.25 <= time.monotonic() - started < 1.5


CHILD = """
import sys, time
from pathlib import Path
from runner.state.locks import FileLock
lock = FileLock(sys.argv[1], Path(sys.argv[2]), identity="child/" + sys.argv[3])
lock.acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_a_killed_holder_never_blocks_anyone(tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, NAME, str(tmp_path), "7"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        lines = (child.stdout.readline().strip() for _ in range(20))
        assert "locked" in lines  # (debug log lines may come first)
        lock = FileLock(NAME, tmp_path, identity="parent/1")
        with pytest.raises(AlreadyRunningError, match="held by child/7"):
            lock.acquire()
        assert lock.holder().identity == "child/7"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    started = time.monotonic()
    assert lock.holder() is None  # the stale sidecar is not mistaken for a holder
    lock.acquire()  # no wait, no TTL: the kernel dropped the dead process's flock
    assert time.monotonic() - started < 0.5
    assert json.loads(lock.holder_path.read_text())["identity"] == "parent/1"
    lock.release()


def test_lock_objects_in_threads_of_one_process_exclude_each_other(tmp_path):
    inside = 0
    most_inside = 0
    entries = 0
    counter = threading.Lock()
    errors: list[BaseException] = []

    def worker(identity: str) -> None:
        nonlocal inside, most_inside, entries
        lock = FileLock(NAME, tmp_path, identity=identity)
        try:
            for _ in range(5):
                lock.acquire(wait_seconds=10)
                with counter:
                    inside += 1
                    entries += 1
                    most_inside = max(most_inside, inside)
                time.sleep(0.01)
                with counter:
                    inside -= 1
                lock.release()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"thread-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert errors == []
    assert entries == 20
    assert most_inside == 1


def test_a_lock_held_by_another_thread_refuses_without_waiting(tmp_path):
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        with FileLock(NAME, tmp_path, identity="thread-a"):
            taken.set()
            done.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert taken.wait(5)
    try:
        with pytest.raises(AlreadyRunningError, match="thread-a"):
            FileLock(NAME, tmp_path, identity="thread-b").acquire()
    finally:
        done.set()
        holder.join(5)
    with FileLock(NAME, tmp_path, identity="thread-b") as lock:
        assert lock.holder().identity == "thread-b"


# -- lease locks -----------------------------------------------------------------------


@pytest.fixture
def kube():
    with running_api() as fake:
        yield fake


@pytest.fixture
def api(kube: FakeKubeApi):
    configuration = Configuration()
    configuration.host = kube.url
    client = ApiClient(configuration)
    yield CoordinationV1Api(client)
    client.close()


@pytest.fixture
def leases(api):
    """Builds LeaseLocks on the stand-in and releases them all afterwards."""
    made: list[LeaseLock] = []

    def make(identity: str, name: str = NAME, ttl: float = 1.5, **kwargs) -> LeaseLock:
        lock = LeaseLock(
            name, api=kwargs.pop("api", api), namespace=NS, identity=identity, ttl_seconds=ttl,
            **kwargs,
        )  # fmt: skip
        made.append(lock)
        return lock

    yield make
    for lock in made:
        lock.release()


def stored(kube: FakeKubeApi, name: str = NAME) -> dict:
    lease = kube.get(NS, lock_key(name))
    assert lease is not None
    return lease


def test_acquire_creates_the_lease(kube, leases):
    lock = leases("pod-a/1")
    started = time.perf_counter()
    lock.acquire()
    assert time.perf_counter() - started < 1.0
    lease = stored(kube)
    assert lease["metadata"]["name"] == lock_key(NAME) == lock.lease_name
    assert lease["metadata"]["annotations"] == {"pipeline-runner/lock-name": NAME}
    assert lease["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "pipeline-runner"}
    spec = lease["spec"]
    assert spec["holderIdentity"] == "pod-a/1"
    assert spec["leaseDurationSeconds"] == 2  # ceil(1.5)
    assert spec["leaseTransitions"] == 0
    assert spec["acquireTime"] == spec["renewTime"]
    seen = lock.holder()
    assert seen is not None
    assert seen.identity == "pod-a/1"
    assert seen.expires_at == seen.renewed_at + timedelta(seconds=2)
    assert kube.requests["POST"] == 1


def test_a_second_identity_is_refused_with_holder_and_expiry(kube, leases):
    leases("pod-a/1").acquire()
    with pytest.raises(AlreadyRunningError) as refused:
        leases("pod-b/2").acquire()
    message = str(refused.value)
    assert refused.value.exit_code == ExitCode.ALREADY_RUNNING
    assert "\n" not in message
    assert "'migrate:analytics' is held by pod-a/1 since 20" in message
    assert "expires at 20" in message
    assert f"Lease {NS}/{lock_key(NAME)}" in message
    assert stored(kube)["spec"]["holderIdentity"] == "pod-a/1"


def test_the_same_identity_in_another_lock_object_is_not_the_holder(leases):
    leases("pod-a/1").acquire()
    with pytest.raises(AlreadyRunningError, match="held by pod-a/1"):
        leases("pod-a/1").acquire()


def stale_lease(renewed_ago: float, duration: int = 1, transitions: int = 3) -> dict:
    when = micro(datetime.now(UTC) - timedelta(seconds=renewed_ago))
    spec = {"holderIdentity": "dead-pod/1", "acquireTime": when, "renewTime": when}
    spec |= {"leaseDurationSeconds": duration, "leaseTransitions": transitions}
    return {"metadata": {"name": lock_key(NAME)}, "spec": spec}


def test_a_stale_holder_is_taken_over_after_watching_it_for_a_duration(kube, leases):
    kube.put(NS, stale_lease(renewed_ago=10))  # expired by its holder's clock, 1 s duration
    before = stored(kube)["metadata"]
    lock = leases("pod-a/1")
    # Not believed on sight: the holder's clock may be behind ours.
    assert lock.holder().identity == "dead-pod/1"
    started = time.monotonic()
    lock.acquire()  # no wait asked, yet it watches the unchanged Lease for its duration
    assert time.monotonic() - started >= 0.9
    assert lock.holder().identity == "pod-a/1"
    after = stored(kube)
    assert after["spec"]["holderIdentity"] == "pod-a/1"
    assert after["spec"]["leaseTransitions"] == 4
    assert after["metadata"]["uid"] == before["uid"]
    assert int(after["metadata"]["resourceVersion"]) > int(before["resourceVersion"])


def test_a_live_foreign_holder_is_respected_until_it_expires(kube, leases):
    kube.put(NS, stale_lease(renewed_ago=0.0, duration=1))
    lock = leases("pod-a/1")
    with pytest.raises(AlreadyRunningError, match="held by dead-pod/1"):
        lock.acquire()
    started = time.monotonic()
    lock.acquire(wait_seconds=5)  # it stops renewing: ours after about one second
    assert 0.5 <= time.monotonic() - started < 3.0
    assert stored(kube)["spec"]["leaseTransitions"] == 4


class Sneaky:
    """Delegates to the real client, but lets a rival write just before our next write."""

    def __init__(self, api: CoordinationV1Api, before_write) -> None:
        self._api = api
        self._before_write = before_write

    def __getattr__(self, name: str):
        return getattr(self._api, name)

    def _sneak(self) -> None:
        hook, self._before_write = self._before_write, None
        if hook:
            hook()

    def create_namespaced_lease(self, *args, **kwargs):
        self._sneak()
        return self._api.create_namespaced_lease(*args, **kwargs)

    def replace_namespaced_lease(self, *args, **kwargs):
        self._sneak()
        return self._api.replace_namespaced_lease(*args, **kwargs)


def test_losing_the_create_race_refuses(kube, api, leases):
    rival = leases("pod-b/2")
    lock = leases("pod-a/1", api=Sneaky(api, rival.acquire))
    with pytest.raises(AlreadyRunningError, match="held by pod-b/2"):
        lock.acquire()  # its POST met 409 AlreadyExists, the re-read found pod-b
    assert kube.requests["POST"] == 2
    assert stored(kube)["spec"]["holderIdentity"] == "pod-b/2"


def test_losing_the_takeover_race_refuses(kube, api, leases):
    kube.put(NS, stale_lease(renewed_ago=10))
    rival = leases("pod-b/2")
    lock = leases("pod-a/1", api=Sneaky(api, rival.acquire))
    with pytest.raises(AlreadyRunningError, match="held by pod-b/2"):
        lock.acquire()  # its PUT carried a stale resourceVersion: 409 Conflict
    assert stored(kube)["spec"]["holderIdentity"] == "pod-b/2"
    assert stored(kube)["spec"]["leaseTransitions"] == 4  # only the winner's takeover


def test_an_injected_conflict_is_retried(kube, leases):
    kube.put(NS, stale_lease(renewed_ago=10))
    kube.conflicts_to_inject = 1
    lock = leases("pod-a/1")
    lock.acquire()
    assert kube.requests["PUT"] == 2
    assert stored(kube)["spec"]["holderIdentity"] == "pod-a/1"


def race(contenders: list[LeaseLock]) -> tuple[list[LeaseLock], list[AlreadyRunningError]]:
    """All contenders call acquire() at the same moment."""
    start = threading.Barrier(len(contenders))
    won: list[LeaseLock] = []
    refused: list[AlreadyRunningError] = []

    def contend(lock: LeaseLock) -> None:
        start.wait(5)
        try:
            lock.acquire()
            won.append(lock)
        except AlreadyRunningError as exc:
            refused.append(exc)

    threads = [threading.Thread(target=contend, args=(c,)) for c in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return won, refused


@pytest.mark.parametrize("stale", [False, True])
def test_racing_threads_exactly_one_wins(kube, leases, stale):
    for round_ in range(4 if stale else 8):  # a stale Lease is watched for 1 s each round
        if stale:
            kube.put(NS, stale_lease(renewed_ago=10))
        contenders = [leases(f"pod-{round_}-{i}/1") for i in range(4)]
        won, refused = race(contenders)
        assert len(won) == 1
        assert len(refused) == len(contenders) - 1
        assert stored(kube)["spec"]["holderIdentity"] == won[0].identity
        won[0].release()
        assert kube.get(NS, lock_key(NAME)) is None


def test_renewal_advances_renew_time(kube, leases):
    lock = leases("pod-a/1", ttl=1.5)  # renews every 0.5 s
    lock.acquire()
    first = stored(kube)["spec"]
    first_rv = int(stored(kube)["metadata"]["resourceVersion"])
    time.sleep(1.2)
    later = stored(kube)["spec"]
    assert later["renewTime"] > first["renewTime"]
    assert later["acquireTime"] == first["acquireTime"]
    assert later["holderIdentity"] == "pod-a/1"
    assert int(stored(kube)["metadata"]["resourceVersion"]) >= first_rv + 2
    assert kube.requests["PUT"] >= 2
    assert not lock.lost.is_set()
    # kept alive past its 2 s duration, so another pod is still refused
    time.sleep(1.0)
    with pytest.raises(AlreadyRunningError):
        leases("pod-b/2").acquire()


def test_a_renewal_that_finds_another_holder_marks_the_lock_lost(kube, leases, logs):
    lock = leases("pod-a/1", ttl=1.5)
    lock.acquire()
    thief = stale_lease(renewed_ago=0, duration=30)
    thief["spec"]["holderIdentity"] = "thief/9"
    kube.put(NS, thief)
    assert lock.lost.wait(3)
    lock.release()  # must not raise, must not delete the thief's lease
    assert stored(kube)["spec"]["holderIdentity"] == "thief/9"
    assert kube.requests["DELETE"] == 0
    levels = {(entry["log_level"], entry["event"]) for entry in logs}
    assert ("error", "lock lost; the run holding it should stop") in levels
    assert ("warning", "releasing a lock that was already lost; nothing to delete") in levels


def test_renewal_survives_a_short_api_outage(kube, leases, logs):
    lock = leases("pod-a/1", ttl=3)  # renews every 1 s, retries every 0.25 s, gives up at 2 s
    lock.acquire()
    kube.fail_with = 500
    time.sleep(1.3)  # the first renewal fails
    kube.fail_with = None
    time.sleep(1.2)  # the retry succeeds
    assert not lock.lost.is_set()
    assert ("warning", "lease renewal failed; retrying") in {
        (entry["log_level"], entry["event"]) for entry in logs
    }
    assert lock.holder().identity == "pod-a/1"


def test_renewal_failing_for_two_thirds_of_the_ttl_gives_the_lock_up(kube, leases, logs):
    lock = leases("pod-a/1", ttl=1.5)
    told = threading.Event()
    lock.on_lost(told.set)
    lock.acquire()
    kube.fail_with = 500  # the API stays down
    assert lock.lost.wait(5)
    assert told.is_set()  # the run's callback (its cancel event) was called
    kube.fail_with = None
    lock.release()  # lost: leaves the Lease for whoever takes it over next
    assert kube.requests["DELETE"] == 0
    reasons = [entry.get("reason", "") for entry in logs if entry["event"].startswith("lock lost")]
    assert reasons == ["not renewed for 1s; given up before it expires"]


def test_lost_is_part_of_every_lock_and_each_watcher_hears_it_once(kube, leases, tmp_path):
    """The Lock interface: ``lost`` and ``on_lost`` on every backend; only a Lease loses."""
    file_lock = FileLock("run:a", tmp_path, identity="me")
    for lock in (file_lock, NullLock("run:a")):
        lock.acquire()
        lock.on_lost(lambda: pytest.fail("a flock is held until released"))
        assert not lock.lost.is_set()
        lock.release()
    lease = leases("pod-a/1", ttl=1.5)
    calls = []
    lease.on_lost(lambda: calls.append("before"))
    lease.acquire()
    kube.fail_with = 500  # renewals fail until it gives up
    assert lease.lost.wait(5)
    lease.on_lost(lambda: calls.append("after"))  # at once: it is lost already
    lease._hold_lost()  # a second report of the same loss tells nobody again
    assert calls == ["before", "after"]
    kube.fail_with = None
    lease.release()


def test_release_retries_a_delete_whose_precondition_went_stale(kube, leases):
    lock = leases("pod-a/1", ttl=30)
    lock.acquire()
    touched = json.loads(json.dumps(stored(kube)))
    touched["metadata"]["labels"]["team"] = "data"  # someone edits the Lease: new resourceVersion
    kube.put(NS, touched)
    lock.release()
    assert kube.get(NS, lock_key(NAME)) is None
    assert kube.requests["DELETE"] == 2


def test_release_leaves_a_lease_taken_over_meanwhile(kube, leases, logs):
    lock = leases("pod-a/1", ttl=30)  # no renewal before the release
    lock.acquire()
    thief = stale_lease(renewed_ago=0, duration=30)
    thief["spec"]["holderIdentity"] = "thief/9"
    kube.put(NS, thief)
    lock.release()
    assert stored(kube)["spec"]["holderIdentity"] == "thief/9"
    assert ("warning", "lease was taken over before release; left alone") in {
        (entry["log_level"], entry["event"]) for entry in logs
    }


def test_release_deletes_the_lease_and_another_identity_can_acquire(kube, leases):
    first = leases("pod-a/1")
    first.acquire()
    first.release()
    assert kube.get(NS, lock_key(NAME)) is None
    assert first.holder() is None
    first.release()  # idempotent: nothing more is sent
    assert kube.requests["DELETE"] == 1
    second = leases("pod-b/2")
    second.acquire()
    assert stored(kube)["spec"]["holderIdentity"] == "pod-b/2"
    assert second.holder().identity == "pod-b/2"


def test_acquire_after_release_on_the_same_object(kube, leases):
    lock = leases("pod-a/1")
    with lock:
        pass
    with lock:
        assert stored(kube)["spec"]["holderIdentity"] == "pod-a/1"


def test_whole_second_times_are_still_sent_as_micro_time(kube, api, leases):
    # The client renders datetimes with isoformat(): a whole second loses its ".000000",
    # which the real API server (and the stand-in) reject with 400.
    whole = datetime(2026, 1, 1, tzinfo=UTC)
    spec = V1LeaseSpec(holder_identity="x", acquire_time=whole, renew_time=whole)
    with pytest.raises(ApiException) as rejected:
        api.create_namespaced_lease(NS, V1Lease(metadata=Meta(name="raw"), spec=spec))
    assert rejected.value.status == 400
    lock = leases("pod-a/1", ttl=3600, clock=lambda: datetime.now(UTC).replace(microsecond=0))
    lock.acquire()
    assert stored(kube)["spec"]["renewTime"].endswith(".000001Z")


def test_forbidden_is_a_config_error_naming_rbac(kube, leases):
    kube.fail_with = 403
    with pytest.raises(ConfigError, match=r"RBAC: .* forbids verb 'get' on resource leases") as err:
        leases("pod-a/1").acquire()
    assert f"namespace {NS}" in str(err.value)
    assert "get, create, update and delete" in str(err.value)


def test_server_errors_and_unreachable_api_are_not_ready(kube, leases, api):
    kube.fail_with = 500
    with pytest.raises(NotReadyError, match=rf"{kube.url} failed to get .* HTTP 500 etcdserver"):
        leases("pod-a/1").acquire()
    configuration = Configuration()
    configuration.host = "http://127.0.0.1:9"  # discard port: connection refused
    unreachable = CoordinationV1Api(ApiClient(configuration))
    with pytest.raises(NotReadyError, match=r"http://127.0.0.1:9 unreachable"):
        leases("pod-a/1", api=unreachable).acquire()


def test_a_failing_release_only_logs(kube, leases, logs):
    lock = leases("pod-a/1", ttl=30)
    lock.acquire()
    kube.fail_with = 403
    lock.release()
    assert any(entry["log_level"] == "error" and "RBAC" in entry["error"] for entry in logs)
    kube.fail_with = None
    assert stored(kube)["spec"]["holderIdentity"] == "pod-a/1"  # left to expire


def test_lease_lock_rejects_bad_construction(api):
    with pytest.raises(ConfigError, match="namespace"):
        LeaseLock(NAME, api=api, namespace="", identity="a")
    with pytest.raises(ConfigError, match="TTL"):
        LeaseLock(NAME, api=api, namespace=NS, identity="a", ttl_seconds=0)


def test_holder_describes_itself():
    since = datetime(2026, 1, 1, 12, tzinfo=UTC)
    held = Holder("pod/1", since, since, since + timedelta(seconds=60))
    assert held.describe() == (
        "held by pod/1 since 2026-01-01T12:00:00+00:00, "
        "expires at 2026-01-01T12:01:00+00:00 unless renewed"
    )

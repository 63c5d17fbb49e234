"""Lease locks against skewed clocks, dead holders, a partitioned holder and a silent API.

Through the real ``kubernetes`` client and the API stand-in (tests/k8s_apiserver.py).
Expiry must be judged on the contender's own monotonic clock: a holder whose wall clock is
a minute behind writes ``renewTime`` values that look long expired, and one a minute ahead
writes values that look fresh long after it died.  Each holder below runs in its own
process with its clock shifted by 60 s either way, and is killed with SIGKILL to die.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from k8s_apiserver import FakeKubeApi, running_api
from kubernetes.client import ApiClient, Configuration, CoordinationV1Api
from structlog.testing import capture_logs

from runner.errors import AlreadyRunningError, NotReadyError
from runner.settings import Settings
from runner.state.locks import LeaseLock, lock_key, make_lock

NS = "jobs"
NAME = "run:events"
TTL = 1.5  # lease duration 2 s, renewed every 0.5 s
DURATION = 2
SKEWS = [-60, 60]

HOLDER = """
import sys, time
from datetime import UTC, datetime, timedelta
from kubernetes.client import ApiClient, Configuration, CoordinationV1Api
from runner.state.locks import LeaseLock
url, namespace, name, skew, ttl = sys.argv[1:6]
configuration = Configuration()
configuration.host = url
lock = LeaseLock(
    name,
    api=CoordinationV1Api(ApiClient(configuration)),
    namespace=namespace,
    identity="skewed/1",
    ttl_seconds=float(ttl),
    clock=lambda: datetime.now(UTC) + timedelta(seconds=float(skew)),
)
lock.acquire()
print("locked", flush=True)
time.sleep(600)
"""


@pytest.fixture
def kube():
    with running_api() as fake:
        yield fake


def client_for(url: str) -> CoordinationV1Api:
    configuration = Configuration()
    configuration.host = url
    configuration.retries = False  # as LeaseLock.from_settings builds it
    return CoordinationV1Api(ApiClient(configuration))


@pytest.fixture
def contender(kube: FakeKubeApi):
    made: list[LeaseLock] = []

    def make(identity: str = "contender/2", ttl: float = TTL, url: str | None = None) -> LeaseLock:
        lock = LeaseLock(
            NAME, api=client_for(url or kube.url), namespace=NS, identity=identity,
            ttl_seconds=ttl,
        )  # fmt: skip
        made.append(lock)
        return lock

    with capture_logs():
        yield make
    for lock in made:
        lock.release()


@pytest.fixture
def skewed_holder(kube: FakeKubeApi):
    """Start a holder process whose wall clock is off by ``skew`` seconds."""
    children: list[subprocess.Popen[str]] = []

    def start(skew: int) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, "-c", HOLDER, kube.url, NS, NAME, str(skew), str(TTL)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        children.append(child)
        assert child.stdout is not None
        for _ in range(50):  # log lines may come first
            line = child.stdout.readline()
            if "locked" in line or not line:
                break
        assert "locked" in line, "the holder process did not take the lock"
        return child

    yield start
    for child in children:
        child.kill()
        child.wait(timeout=10)


def stored(kube: FakeKubeApi) -> dict:
    lease = kube.get(NS, lock_key(NAME))
    assert lease is not None
    return lease


@pytest.mark.slow
@pytest.mark.parametrize("skew", SKEWS)
def test_a_live_holder_with_a_skewed_clock_is_never_taken_over(
    kube, contender, skewed_holder, skew
):
    holder = skewed_holder(skew)
    lock = contender()
    # With a clock 60 s behind, every renewTime it writes looks expired by ours: a contender
    # trusting it would take the Lease over at once.
    with pytest.raises(AlreadyRunningError, match="held by skewed/1"):
        lock.acquire()
    with pytest.raises(AlreadyRunningError, match=r"held by skewed/1 .* after waiting 5s"):
        lock.acquire(wait_seconds=5)  # 2.5 lease durations
    assert stored(kube)["spec"]["holderIdentity"] == "skewed/1"
    assert holder.poll() is None
    assert kube.requests["PUT"] >= 5  # the holder kept renewing all along


@pytest.mark.slow
@pytest.mark.parametrize("skew", SKEWS)
def test_a_dead_holder_is_taken_over_one_duration_after_it_was_first_seen(
    kube, contender, skewed_holder, skew
):
    holder = skewed_holder(skew)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    lock = contender()
    started = time.monotonic()
    # A clock 60 s ahead made its last renewTime look fresh for another minute: a contender
    # trusting it would wait that long.  Measured here, the record simply stops changing.
    lock.acquire(wait_seconds=10)
    waited = time.monotonic() - started
    assert waited >= DURATION  # not before the TTL as seen locally
    spec = stored(kube)["spec"]
    assert spec["holderIdentity"] == "contender/2"
    assert spec["leaseTransitions"] == 1


def test_a_run_without_wait_watches_a_stale_looking_lease_then_takes_it(
    kube, contender, skewed_holder
):
    """`runner run` asks for no wait: a Lease whose own clock says it expired is watched."""
    holder = skewed_holder(-60)  # its renewTime looks a minute old
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    started = time.monotonic()
    contender().acquire()
    assert time.monotonic() - started >= DURATION
    assert stored(kube)["spec"]["holderIdentity"] == "contender/2"


def test_a_run_without_wait_refuses_a_fresh_looking_lease_at_once(kube, contender, skewed_holder):
    """A Lease whose own clock says it is fresh is refused (exit 5); a waiter takes it later."""
    holder = skewed_holder(60)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    lock = contender()
    with pytest.raises(AlreadyRunningError, match=r"held by skewed/1 .*expires at"):
        lock.acquire()
    lock.acquire(wait_seconds=10)  # the same object keeps what it saw: one duration in all
    assert stored(kube)["spec"]["holderIdentity"] == "contender/2"


class Partition:
    """A TCP relay to the API that can be cut: then it swallows everything, answering nothing."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.cut = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.sockets: list[socket.socket] = [self.server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
                if not data:
                    return
                if not self.cut.is_set():
                    sink.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def test_a_partitioned_holder_gives_up_before_a_contender_takes_over(kube, contender):
    relay = Partition(kube.url)
    try:
        ttl = 3.0  # renews every 1 s, gives up 2 s after its last renewal was sent
        holder = contender("holder/1", ttl=ttl, url=relay.url)
        moments: dict[str, float] = {}
        holder.on_lost(lambda: moments.setdefault("holder gave up", time.monotonic()))
        with capture_logs() as logs:
            holder.acquire()
            relay.cut.set()  # the holder's requests now go unanswered
            rival = contender("rival/2", ttl=ttl)
            started = time.monotonic()
            rival.acquire(wait_seconds=15)
            moments["rival took over"] = time.monotonic()
        assert moments["rival took over"] - started >= 3  # one lease duration, seen here
        assert moments["holder gave up"] < moments["rival took over"]
        warnings = [e["error"] for e in logs if e["event"] == "lease renewal failed; retrying"]
        assert warnings
        assert all("did not answer within" in w for w in warnings), warnings
        assert stored(kube)["spec"]["holderIdentity"] == "rival/2"
    finally:
        relay.close()


def test_a_silent_api_fails_within_the_request_timeout(contender):
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        lock = contender(ttl=3.0, url=url)  # request timeout: 1 s
        with pytest.raises(NotReadyError, match=rf"{url} did not answer within 1s trying to get"):
            lock.acquire()
    finally:
        silent.close()


def test_leases_from_the_settings_do_not_retry_inside_urllib3(tmp_path, monkeypatch):
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    (tmp_path / "kubeconfig").write_text(json.dumps(config))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    settings = Settings(
        project_dir=Path(os.fspath(tmp_path)),
        identity="x",
        lock_backend="lease",
        lease_namespace=NS,
    )
    lock = make_lock(settings, NAME)
    assert isinstance(lock, LeaseLock)
    assert lock._api.api.api_client.configuration.retries is False
    with pytest.raises(NotReadyError, match="unreachable trying to get"):
        lock.acquire()


def test_a_write_that_commits_after_its_request_timed_out_is_not_left_behind(kube):
    """The create reaches etcd but its answer comes too late: the Lease is ours, unknown to
    us.  The failed acquire reads it back and deletes it, rather than leaving it to block
    every run for a TTL (a stop signal mid-write takes the same path)."""
    lock = LeaseLock(
        NAME, api=client_for(kube.url), namespace=NS, identity="pod-a/1", ttl_seconds=60,
        request_timeout=0.3,
    )  # fmt: skip
    kube.slow_writes, kube.reply_delay = 1, 1.0
    with capture_logs(), pytest.raises(NotReadyError, match=r"did not answer within 0\.3s"):
        lock.acquire()
    assert kube.requests["POST"] == 1  # it was created...
    assert kube.get(NS, lock_key(NAME)) is None  # ...and deleted again
    assert kube.requests["DELETE"] == 1

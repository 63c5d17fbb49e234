"""A small stand-in for the Kubernetes API server: Leases, reading CronJobs, creating Jobs.

Real semantics where the lock code depends on them: ``kind: Status`` error bodies, 404 on a
missing Lease, 409 AlreadyExists on create, 409 Conflict on a stale ``resourceVersion`` (PUT)
or a failed delete precondition, a ``resourceVersion`` bumped on every write, and MicroTime
fields (``acquireTime``/``renewTime``) that must carry exactly six fractional digits, as the
real server's Go parser insists.  Jobs: 409 AlreadyExists on a duplicate name, 422 Invalid on
a missing or too long (> 63) ``metadata.name``, server-filled uid/resourceVersion/timestamp.
Faults on demand: an error status for every call, injected conflicts, and Lease writes that
commit but are answered late (a client that timed out meanwhile).  Tests drive it with the
real ``kubernetes`` client.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_CRONJOBS = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/cronjobs$")
_BATCH = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/(cronjobs|jobs)(?:/([^/]+))?$")
_PATH = re.compile(r"^/apis/coordination\.k8s\.io/v1/namespaces/([^/]+)/leases(?:/([^/]+))?$")
_MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")
_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "DELETE": "delete"}
_REASONS = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 422: "Invalid"}
Reply = tuple[int, dict[str, Any]]


def _status(code: int, message: str, reason: str | None = None) -> Reply:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "code": code}
    body |= {"status": "Success" if code < 400 else "Failure", "message": message}
    default = _REASONS.get(code, "InternalError" if code >= 500 else "")
    return code, body | {"reason": default if reason is None else reason}


class FakeKubeApi:
    """Leases keyed by (namespace, name); ``fail_with`` forces an error status on every call."""

    def __init__(self) -> None:
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.cronjobs: dict[str, list[dict[str, Any]]] = {}  # namespace -> CronJob objects
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}  # (namespace, name) -> Job
        self.requests: Counter[str] = Counter()  # by HTTP method
        self.fail_with: int | None = None
        self.conflicts_to_inject = 0  # the next N PUTs answer 409 as if someone wrote first
        self.slow_writes = 0  # the next N Lease writes are done, then answered this late:
        self.reply_delay = 0.0  # (a write that commits while its client times out)
        self.hang = 0.0  # every answer waits this long first (a server that hangs)
        self._rv = 0
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def put(self, namespace: str, lease: dict[str, Any]) -> None:
        """Write a Lease directly (as another client would have), bumping resourceVersion."""
        with self._lock:
            self._store(namespace, lease["metadata"]["name"], lease)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self.leases.get((namespace, name))

    def _store(self, ns: str, name: str, lease: dict[str, Any], old: dict | None = None) -> Reply:
        self._rv += 1
        keep = old["metadata"] if old else {}
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        lease.setdefault("metadata", {}).update(
            namespace=ns,
            resourceVersion=str(self._rv),
            uid=keep.get("uid") or str(uuid.uuid4()),
            creationTimestamp=keep.get("creationTimestamp") or now,
        )
        spec = lease.get("spec") or {}
        for field in ("acquireTime", "renewTime"):  # stored and served as UTC with 'Z'
            if spec.get(field):
                when = datetime.fromisoformat(spec[field].replace("Z", "+00:00")).astimezone(UTC)
                spec[field] = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lease.update(apiVersion="coordination.k8s.io/v1", kind="Lease")
        self.leases[ns, name] = lease
        return (201 if old is None else 200), lease

    def handle(self, method: str, path: str, body: Any) -> Reply:  # noqa: PLR0911
        """One request -> (status, JSON body); atomic under one lock, like etcd's CAS."""
        listing = _CRONJOBS.match(path.split("?", 1)[0])
        if listing and method == "GET":
            return self._list_cronjobs(listing.group(1), path)
        batch = _BATCH.match(path.split("?", 1)[0])
        if batch:
            with self._lock:
                return self._batch(method, *batch.groups(), body)
        match = _PATH.match(path.split("?", 1)[0])
        if not match:
            return _status(404, f"no route for {path}")
        ns, name = match.groups()
        with self._lock:
            self.requests[method] += 1
            if self.fail_with == 403:
                return _status(403, f'leases.coordination.k8s.io "{name}" is forbidden: User '
                               f'"system:serviceaccount:{ns}:runner" cannot {_VERBS[method]} '
                               f'resource "leases" in API group "coordination.k8s.io"')  # fmt: skip
            if self.fail_with is not None:
                return _status(self.fail_with, "etcdserver: request timed out")
            for field, value in ((body or {}).get("spec") or {}).items():
                if field in {"acquireTime", "renewTime"} and not _MICRO.match(value):
                    return _status(400, f'Lease: parsing time "{value}" as MicroTime')
            if method == "POST":
                return self._create(ns, body)
            if name is None:
                items = [lease for (n, _), lease in self.leases.items() if n == ns]
                return 200, {"kind": "LeaseList", "apiVersion": "coordination.k8s.io/v1",
                             "metadata": {"resourceVersion": str(self._rv)}, "items": items}  # fmt: skip
            current = self.leases.get((ns, name))
            if current is None:
                return _status(404, f'leases.coordination.k8s.io "{name}" not found')
            if method == "GET":
                return 200, current
            return self._write(method, ns, name, current, body or {})

    def _list_cronjobs(self, ns: str, path: str) -> Reply:
        """GET .../cronjobs?labelSelector=a=b,c (equality and existence terms only)."""
        from urllib.parse import parse_qs, urlsplit

        if self.fail_with is not None:
            return _status(self.fail_with, "cronjobs.batch is forbidden")
        selector = parse_qs(urlsplit(path).query).get("labelSelector", [""])[0]
        terms = [t.partition("=") for t in selector.split(",") if t]

        def matches(item: dict[str, Any]) -> bool:
            labels = item["metadata"].get("labels", {})
            return all(k in labels and (not eq or labels[k] == v) for k, eq, v in terms)

        items = [i for i in self.cronjobs.get(ns, []) if matches(i)]
        return 200, {
            "kind": "CronJobList",
            "apiVersion": "batch/v1",
            "metadata": {},
            "items": items,
        }

    def _batch(self, method: str, ns: str, kind: str, name: str | None, body: Any) -> Reply:
        """GET one CronJob; POST a Job, GET one Job."""
        verb = "create" if method == "POST" else method.lower()
        if self.fail_with == 403:
            return _status(403, f'{kind}.batch "{name or ""}" is forbidden: User '
                           f'"system:serviceaccount:{ns}:runner" cannot {verb} resource '
                           f'"{kind}" in API group "batch" in the namespace "{ns}"')  # fmt: skip
        if self.fail_with is not None:
            return _status(self.fail_with, "etcdserver: request timed out")
        if kind == "cronjobs" and method == "GET" and name:
            found = [c for c in self.cronjobs.get(ns, []) if c["metadata"]["name"] == name]
            return (200, found[0]) if found else _status(404, f'cronjobs.batch "{name}" not found')
        if kind == "jobs" and method == "GET" and name:
            job = self.jobs.get((ns, name))
            return (200, job) if job else _status(404, f'jobs.batch "{name}" not found')
        if kind == "jobs" and method == "POST" and not name:
            return self._create_job(ns, body or {})
        return _status(405, f"{method} {kind} is not served by the stand-in", "MethodNotAllowed")

    def _create_job(self, ns: str, job: dict[str, Any]) -> Reply:
        meta = job.setdefault("metadata", {})
        name = meta.get("name") or ""
        if meta.get("namespace", ns) != ns:
            return _status(400, "the namespace of the provided object does not match the "
                           "namespace sent on the request")  # fmt: skip
        if not name or len(name) > 63:
            why = "Required value: name or generateName is required" if not name else (
                f"Invalid value: {name!r}: must be no more than 63 characters")  # fmt: skip
            return _status(422, f'Job.batch "{name}" is invalid: metadata.name: {why}')
        if (ns, name) in self.jobs:
            return _status(409, f'jobs.batch "{name}" already exists', "AlreadyExists")
        self._rv += 1
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        meta.update(namespace=ns, uid=str(uuid.uuid4()), resourceVersion=str(self._rv))
        meta["creationTimestamp"] = now
        self.jobs[ns, name] = job
        return 201, job

    def _create(self, ns: str, body: dict[str, Any]) -> Reply:
        name = body["metadata"]["name"]
        if (ns, name) in self.leases:
            msg = f'leases.coordination.k8s.io "{name}" already exists'
            return _status(409, msg, "AlreadyExists")
        return self._store(ns, name, body)

    def _write(self, method: str, ns: str, name: str, current: dict, body: dict) -> Reply:
        conflict = f'Operation cannot be fulfilled on leases.coordination.k8s.io "{name}"'
        have = current["metadata"]
        if method == "PUT":
            sent = body.get("metadata", {}).get("resourceVersion")
            if self.conflicts_to_inject or (sent and sent != have["resourceVersion"]):
                self.conflicts_to_inject = max(0, self.conflicts_to_inject - 1)
                return _status(409, f"{conflict}: the object has been modified", "Conflict")
            return self._store(ns, name, body, old=current)
        pre = body.get("preconditions") or {}
        for key in ("uid", "resourceVersion"):
            if pre.get(key) and pre[key] != have[key]:
                return _status(409, f"{conflict}: Precondition failed: {key}", "Conflict")
        del self.leases[ns, name]
        code, status = _status(200, "")
        return code, status | {"details": {"name": name, "kind": "leases", "uid": have["uid"]}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else 40 ms per reply (delayed ACK)

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                code, reply = api.handle(self.command, self.path, json.loads(raw) if raw else None)
                time.sleep(api.hang)
                if api.slow_writes and self.command in {"POST", "PUT"} and "/leases" in self.path:
                    api.slow_writes -= 1
                    time.sleep(api.reply_delay)
                data = json.dumps(reply).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up waiting

            do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@contextmanager
def running_api() -> Iterator[FakeKubeApi]:
    """Serve a fresh stand-in on an ephemeral port for the duration of the block."""
    api = FakeKubeApi()
    thread = threading.Thread(
        target=api.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield api
    finally:
        api.server.shutdown()
        api.server.server_close()
        thread.join(timeout=5)

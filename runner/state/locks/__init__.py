"""Named exclusive locks for migrations and runs, on the backend the environment calls for.

``make_lock(settings, name)`` picks it: a Kubernetes Lease inside a cluster (pods on many
nodes), an ``flock`` file elsewhere (one machine, the embedded warehouse), or nothing.

Locks are scoped by Helm release (``RUNNER_RELEASE``, set by the chart): ``run:events`` of
release ``prod`` is the lock ``prod/run:events``, so two releases in one namespace (say
staging and prod, each with its own database) never block each other's runs.  A lock that
guards something releases share, such as a database's migration history, asks for
``per_release=False``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from runner.settings import LockBackend
from runner.state.locks.base import Holder, Lock, NullLock, lock_key
from runner.state.locks.file import FileLock
from runner.state.locks.lease import LeaseLock

if TYPE_CHECKING:
    from runner.settings import Settings

__all__ = [
    "FileLock",
    "Holder",
    "LeaseLock",
    "Lock",
    "NullLock",
    "effective_backend",
    "lock_key",
    "make_lock",
    "scoped_name",
]


def effective_backend(settings: Settings) -> LockBackend:
    """``settings.lock_backend`` with ``auto`` decided.

    ``auto`` means a Lease when running in a pod (``KUBERNETES_SERVICE_HOST`` is set,
    as the kubelet does for every container) and a file lock otherwise.
    """
    if settings.lock_backend != LockBackend.AUTO:
        return settings.lock_backend
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    return LockBackend.LEASE if in_cluster else LockBackend.FILE


def make_lock(settings: Settings, name: str, *, per_release: bool = True) -> Lock:
    """The lock named ``name`` on the :func:`effective_backend`, scoped by release if asked.

    File locks live under ``lock_path``.
    """
    lock_key(name)  # reject an empty name whatever the backend
    name = scoped_name(settings, name) if per_release else name
    backend = effective_backend(settings)
    if backend == LockBackend.LEASE:
        return LeaseLock.from_settings(settings, name)
    if backend == LockBackend.FILE:
        return FileLock(name, settings.lock_path, identity=settings.holder_identity)
    return NullLock(name)


def scoped_name(settings: Settings, name: str) -> str:
    """``<release>/<name>`` inside a Helm release, else ``name`` unchanged."""
    return f"{settings.release}/{name}" if settings.release else name

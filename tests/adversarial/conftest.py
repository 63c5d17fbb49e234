"""Fixtures of the adversarial suite: the hostile API of ``tests/hostile`` on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hostile.hostile_server import HostileApi, serving


@pytest.fixture
def hostile_api() -> Iterator[HostileApi]:
    with serving() as api:
        yield api

"""Fixtures of the hostile-input suite: the misbehaving local HTTP API."""

from __future__ import annotations

import pytest
from hostile_server import serving


@pytest.fixture
def hostile_api():
    with serving() as api:
        yield api

"""Shared fixtures: the runner testing kit (one chDB warehouse per session, per xdist worker).

Hypothesis runs without its per-example deadline: under ``make check`` (one pytest-xdist
worker per core) and on a busy CI machine an example's time says more about the machine
than about the code; speed is measured by the benchmarks, not by timed asserts.
"""

from hypothesis import settings

pytest_plugins = ["runner.testing"]

settings.register_profile("runner", deadline=None)
settings.load_profile("runner")

"""Shared fixtures: the runner testing kit (one chDB warehouse per session)."""

pytest_plugins = ["runner.testing"]

"""Adversarial regression tests: each reproduces an attack against a real local server."""

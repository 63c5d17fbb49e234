"""The framework's coordination state: locks that keep migrations and runs from overlapping.

Submodules are imported where used (``runner.state.locks``), so importing this package
costs nothing.
"""

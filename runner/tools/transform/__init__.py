"""Transformers: batch-to-batch changes, row-level or vectorised."""

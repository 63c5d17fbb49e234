"""Loaders: where a pipeline's data goes."""

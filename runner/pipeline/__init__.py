"""The pipeline model: declarations, kinds, run context, windows and discovery."""

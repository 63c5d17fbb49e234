"""Ready-made steps: extractors, transformers and loaders, one module per connector family."""

"""Delivery to Kubernetes: rendering the chart's per-pipeline parts, deployment checks."""

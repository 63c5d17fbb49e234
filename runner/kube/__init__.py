"""Access to the Kubernetes API: one way to build a client, shared by locks and checks."""

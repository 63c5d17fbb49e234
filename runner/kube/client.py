"""Building a Kubernetes API client: the pod's service account, else the kubeconfig.

``kubernetes`` is imported only here, inside functions, so commands that never talk to the
API never pay for it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from runner.errors import ConfigError

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def pod_namespace() -> str | None:
    """The namespace of the pod this process runs in, if any."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def build_api_client(purpose: str, *, retries: bool | None = None) -> Any:
    """An ``ApiClient`` for ``purpose`` (named in the error when neither config works).

    ``retries=False`` turns off urllib3's own retries (three by default, each with a full
    request timeout), for callers whose deadlines must hold (Lease renewals).
    """
    from kubernetes import client, config

    configuration = client.Configuration()
    if retries is not None:
        configuration.retries = retries
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException as in_cluster:
        try:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                # read $KUBECONFIG now: the library captured it when first imported
                config_file=os.environ.get("KUBECONFIG") or None,
                client_configuration=configuration,
            )
        except (config.ConfigException, OSError, ValueError) as exc:
            raise ConfigError(
                f"{purpose} needs the Kubernetes API: no service account "
                f"({in_cluster}) and no usable kubeconfig ({exc})"
            ) from exc
    return client.ApiClient(configuration)

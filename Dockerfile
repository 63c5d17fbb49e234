# pipeline-runner: the runner plus this project's pipelines/ and migrations/, one image for
# every CronJob, the migration hook Job and the `helm test` pod.
#
#   docker build -t pipeline-runner:dev .
#   docker build --build-arg VERSION=1.2.3 -t registry.example.com/pipeline-runner:1.2.3 .
#   docker build --build-arg WITH_EMBEDDED=true -t pipeline-runner:embedded .   # + chDB
#
# Behind a TLS-intercepting proxy, put its CA certificate(s) into certs/*.crt: the build
# stage trusts them to download packages; the runtime image does not (certs/README.md).
#
# The runtime image runs as uid/gid 10001, needs no writable path but /tmp (mount an
# emptyDir there under readOnlyRootFilesystem) and contains no compiler, pip or caches.

ARG BASE_IMAGE=python:3.11-slim

# ---------------------------------------------------------------- build: wheel -> /opt/venv
FROM ${BASE_IMAGE} AS build

ARG WITH_EMBEDDED=false

# Locally added CA certificates (certs/*.crt) join the system bundle for this stage only.
COPY certs/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
COPY pyproject.toml README.md ./
COPY runner/ runner/

# The venv gets no pip of its own: the base image's pip installs into it (--python), so
# the runtime stage copies a venv with nothing to install or build with. pip compiles
# .pyc files at install time, which the read-only runtime could not write later.
RUN python -m pip wheel --no-deps --wheel-dir /dist . \
    && python -m venv --without-pip /opt/venv \
    && set -- /dist/pipeline_runner-*.whl \
    && if [ "${WITH_EMBEDDED}" = "true" ]; then requirement="$1[embedded]"; else requirement="$1"; fi \
    && python -m pip --python /opt/venv/bin/python install --no-cache-dir "${requirement}" \
    && /opt/venv/bin/runner --version

# ---------------------------------------------------------------- runtime
FROM ${BASE_IMAGE} AS runtime

ARG VERSION=dev

# CI sets the real source with `docker build --label org.opencontainers.image.source=<url>`.
LABEL org.opencontainers.image.title="pipeline-runner" \
      org.opencontainers.image.description="ETL/ELT pipelines into ClickHouse, one pipeline per Kubernetes Job" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://example.invalid/pipeline-runner" \
      org.opencontainers.image.licenses="Apache-2.0"

# Nothing to build or install with at run time: drop the base image's pip and setuptools.
RUN python -m pip uninstall --yes --quiet pip setuptools wheel \
    && rm -rf /root/.cache

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY pipelines/ pipelines/
COPY migrations/ migrations/

# Everything that may write goes to /tmp (HOME, file locks, temp files); no .pyc writes.
ENV PATH=/opt/venv/bin:${PATH} \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    RUNNER_PROJECT_DIR=/app \
    RUNNER_LOCK_DIR=/tmp/locks

USER 10001:10001

ENTRYPOINT ["runner"]
CMD ["--help"]

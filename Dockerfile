# pipeline-runner: the runner plus this project's pipelines/ and migrations/, one image for
# every CronJob, the migration hook Job and the `helm test` pod.
#
#   docker build -t pipeline-runner:dev .
#   docker build --build-arg VERSION=1.2.3 -t registry.example.com/pipeline-runner:1.2.3 .
#   docker build --build-arg WITH_EMBEDDED=true -t pipeline-runner:embedded .   # + chDB
#
# Reproducible inputs: pin the base image by digest, e.g.
#   --build-arg BASE_IMAGE=python:3.11-slim@sha256:<digest>
# (`docker buildx imagetools inspect python:3.11-slim` or, after a pull,
# `docker image inspect --format '{{index .RepoDigests 0}}' python:3.11-slim` prints it).
# Python packages come only from the hashed lock files in requirements/ (written by
# k8s/tools/image_lock.py, checked in CI), installed with pip --require-hashes.
#
# Behind a TLS-intercepting proxy, put its CA certificate(s) into certs/*.crt: the build
# stage trusts them to download packages; the runtime image does not (certs/README.md).
#
# The runtime image runs as uid/gid 10001, needs no writable path but /tmp (mount an
# emptyDir there under readOnlyRootFilesystem) and contains no compiler, pip or caches.
# PID 1 is tini (Debian's static build), which forwards SIGTERM to `runner` in every
# phase and reaps orphans; `runner` exits 130 on it, releasing its locks.

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

# An init for PID 1, from Debian: the static build is copied into the runtime stage, which
# then needs no package manager run at all.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends tini=0.19.* \
    && rm -rf /var/lib/apt/lists/* \
    && /usr/bin/tini-static --version

WORKDIR /src
COPY requirements/ requirements/
COPY pyproject.toml README.md ./
COPY runner/ runner/

# Every download is hash-checked: the build backend (requirements/build.txt) goes into a
# venv of its own that builds the runner's wheel without build isolation; the runtime venv
# gets the locked dependencies, then that wheel alone (--no-deps), then `pip check`.
# Wheels only: an sdist would build with unlocked tools. The venvs get no pip of their
# own: the base image's pip installs into them (--python), so the runtime stage copies a
# venv with nothing to install or build with. pip compiles .pyc files at install time,
# which the read-only runtime could not write later.
RUN python -m venv --without-pip /opt/build-tools \
    && python -m pip --python /opt/build-tools/bin/python install --no-cache-dir \
       --require-hashes --only-binary :all: -r requirements/build.txt \
    && python -m pip --python /opt/build-tools/bin/python wheel --no-cache-dir --no-deps \
       --no-build-isolation --wheel-dir /dist . \
    && python -m venv --without-pip /opt/venv \
    && if [ "${WITH_EMBEDDED}" = "true" ]; then lock=requirements/image-embedded.txt; else lock=requirements/image.txt; fi \
    && python -m pip --python /opt/venv/bin/python install --no-cache-dir \
       --require-hashes --only-binary :all: -r "${lock}" \
    && python -m pip --python /opt/venv/bin/python install --no-cache-dir --no-deps /dist/pipeline_runner-*.whl \
    && python -m pip --python /opt/venv/bin/python check \
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

COPY --from=build /usr/bin/tini-static /usr/bin/tini
COPY --from=build /usr/share/doc/tini/copyright /usr/share/doc/tini/copyright
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

# tini as PID 1: the kernel gives PID 1 no default signal actions, so without it a SIGTERM
# before Python installs its handlers would be lost; tini also reaps orphaned children.
ENTRYPOINT ["/usr/bin/tini", "--", "runner"]
CMD ["--help"]

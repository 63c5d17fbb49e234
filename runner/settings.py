"""Process settings, read from ``RUNNER_*`` environment variables (and an optional ``.env``).

Built once per process by the CLI (never at import) and passed down explicitly, so tests
and embedding code can construct their own.
"""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from runner.errors import ConfigError
from runner.redaction import register_environment, register_secret

ENV_PREFIX = "RUNNER_"


class LogFormat(StrEnum):
    """How log lines are rendered on stdout."""

    AUTO = "auto"  # console on a TTY, JSON otherwise
    JSON = "json"
    CONSOLE = "console"


class LockBackend(StrEnum):
    """Where run and migration locks live."""

    AUTO = "auto"  # a Lease inside Kubernetes, a file lock elsewhere
    FILE = "file"
    LEASE = "lease"
    NONE = "none"


class Settings(BaseSettings):
    """Everything a run needs to know about its environment.

    Every field is set through ``RUNNER_<FIELD>`` (upper case).
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    project_dir: Path = Field(
        default=Path(),
        description="Project root; relative paths below are resolved against it.",
    )
    warehouse_url: str | None = Field(
        default=None,
        description=(
            "chdb:///absolute/path for the embedded engine, or "
            "http(s)://user@host:port/database for a server. "
            "Default: chdb://<project_dir>/.warehouse/chdb"
        ),
    )
    database: str | None = Field(
        default=None,
        description="Database the pipelines write to; default: the URL's path, else 'analytics'.",
    )
    clickhouse_user: str | None = Field(
        default=None, description="User for a server URL; overrides one given in the URL."
    )
    clickhouse_password: SecretStr | None = Field(
        default=None, description="Password for a server URL; overrides one given in the URL."
    )
    tls_verify: bool = Field(default=True, description="Verify the server's TLS certificate.")
    tls_ca_cert: Path | None = Field(default=None, description="CA bundle for TLS verification.")
    connect_timeout: Annotated[int, Field(ge=1)] = Field(
        default=10, description="Whole seconds to wait for a server connection."
    )
    query_timeout: Annotated[int, Field(ge=1)] = Field(
        default=300, description="Whole seconds to wait for one query or insert."
    )
    pipelines_dir: Path = Field(default=Path("pipelines"), description="Where *_pipeline.py live.")
    migrations_dir: Path = Field(default=Path("migrations"), description="Where NNNN_*.sql live.")
    batch_rows: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        default=65_536, description="Upper bound on rows per Arrow batch."
    )
    insert_rows: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        default=524_288, description="ClickHouse loaders gather batches into inserts this large."
    )
    insert_threads: Annotated[int, Field(ge=1, le=16)] = Field(
        default=2,
        description="Inserts in flight at once for append and replace-window loaders.",
    )
    state_database: str = Field(
        default="pipeline_runner",
        description="Database of the framework's own tables (migration history, runs, state).",
    )
    runs_ttl_days: Annotated[int, Field(ge=0, le=36500)] = Field(
        default=365,
        description=(
            "Days run history and check results are kept (0: forever); applied by `runner migrate`."
        ),
    )
    quarantine_ttl_days: Annotated[int, Field(ge=0, le=36500)] = Field(
        default=90,
        description="Days quarantined rows are kept (0: forever); applied by `runner migrate`.",
    )
    cluster: str | None = Field(
        default=None,
        description="ClickHouse cluster name: DDL runs ON CLUSTER and history is replicated.",
    )
    lock_backend: LockBackend = Field(
        default=LockBackend.AUTO, description="auto, file, lease or none."
    )
    lock_dir: Path = Field(default=Path(".warehouse/locks"), description="Directory of file locks.")
    lock_ttl_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(
        default=60.0, description="A lock not renewed for this long is taken over (Lease)."
    )
    lease_namespace: str | None = Field(
        default=None,
        description="Namespace of lock Leases; default: the pod's own namespace.",
    )
    identity: str | None = Field(
        default=None,
        description="Who holds locks and applies migrations; default: $POD_NAME or the host name.",
    )
    heartbeat_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(
        default=30.0, description="How often a running run records that it is alive."
    )
    stale_after_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(
        default=300.0, description="A 'running' run without heartbeat this long is dead."
    )
    stop_grace_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(
        default=25.0,
        description="After SIGTERM, how long to wait for the current batch before exiting.",
    )
    retry_attempts: Annotated[int, Field(ge=1, le=20)] = Field(
        default=4, description="Attempts for a warehouse call that fails transiently."
    )
    retry_max_wait_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(
        default=30.0, description="Longest backoff between two attempts."
    )
    trigger: str = Field(
        default="manual", description="Recorded with each run: schedule, manual or backfill."
    )
    image_version: str | None = Field(
        default=None, description="Recorded with each run; default: the package version."
    )
    scheduled_time: datetime | None = Field(
        default=None,
        description=(
            "When a scheduler meant this run to start (ISO 8601, UTC without offset): a run "
            "without --start/--end covers the schedule's interval ending there."
        ),
    )
    cronjob_name: str | None = Field(
        default=None, description="The CronJob a scheduled pod belongs to (set by the chart)."
    )
    job_name: str | None = Field(
        default=None,
        description=(
            "The pod's Job (set by the chart); '<cronjob>-<minutes since the epoch>' for a "
            "Job the CronJob controller created, which gives the scheduled time."
        ),
    )
    backfill_max_windows: Annotated[int, Field(ge=1)] = Field(
        default=500, description="A backfill of more windows needs --yes."
    )
    release: str | None = Field(
        default=None, description="Helm release this pod belongs to (set by the chart)."
    )
    image: str | None = Field(
        default=None, description="Image of this pod (set by the chart; `runner check` compares)."
    )
    disabled_pipelines: list[str] = Field(
        default_factory=list,
        description=(
            "Pipelines the release renders no CronJob for (JSON list; set by the chart's "
            "`helm test` pod, so `runner check` judges what the chart intended)."
        ),
    )
    pipeline_images: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Pipelines whose CronJob runs another image than RUNNER_IMAGE (JSON object "
            "pipeline -> image; set by the chart's `helm test` pod)."
        ),
    )
    schema_wait_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        default=0.0,
        description=(
            "How long a run waits for the database to reach this code's migrations "
            "before it gives up (exit 4); 0 refuses at once."
        ),
    )
    log_format: LogFormat = Field(default=LogFormat.AUTO, description="auto, json or console.")
    log_level: str = Field(default="info", description="debug, info, warning or error.")
    log_dir: Path | None = Field(
        default=None,
        description="If set, each run also writes <log_dir>/<pipeline>/<run_id>.jsonl.",
    )
    pushgateway_url: str | None = Field(
        default=None,
        description=(
            "Prometheus Pushgateway (http(s)://host:port; host:port means http): each run "
            "pushes its metrics there when it ends. Unset: no push."
        ),
    )
    pushgateway_timeout_seconds: Annotated[float, Field(gt=0, le=300, allow_inf_nan=False)] = Field(
        default=5.0, description="Longest a run's metrics push may take, retries included."
    )
    pushgateway_attempts: Annotated[int, Field(ge=1, le=10)] = Field(
        default=2, description="Attempts of a metrics push within its timeout."
    )
    alert_webhook_url: SecretStr | None = Field(
        default=None,
        description=(
            "http(s) URL that gets a JSON POST (Slack-compatible 'text' field) once per "
            "failed run; a secret (a Slack URL is its own token). Unset: no alerts."
        ),
    )
    alert_timeout_seconds: Annotated[float, Field(gt=0, le=300, allow_inf_nan=False)] = Field(
        default=10.0, description="Longest a failure alert may take, retries included."
    )
    alert_attempts: Annotated[int, Field(ge=1, le=10)] = Field(
        default=3, description="Attempts of a failure alert within its timeout."
    )

    @field_validator("pushgateway_url", mode="before")
    @classmethod
    def _pushgateway(cls, value: object) -> object:
        """host:port means http://host:port (as prometheus_client reads it); no other scheme."""
        if isinstance(value, str):
            value = value.strip() or None
            if value is not None and "://" not in value:
                value = f"http://{value}"
            if value is not None:
                _check_http_url(value)
        return value

    @field_validator("alert_webhook_url")
    @classmethod
    def _webhook(cls, value: SecretStr | None) -> SecretStr | None:
        """An http(s) URL; the message never repeats it (it is a secret)."""
        if value is None or not value.get_secret_value().strip():
            return None
        _check_http_url(value.get_secret_value().strip())
        return SecretStr(value.get_secret_value().strip())

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.lower()
        if level not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be one of debug, info, warning, error")
        return level

    @field_validator("trigger")
    @classmethod
    def _known_trigger(cls, value: str) -> str:
        if value not in {"schedule", "manual", "backfill"}:
            raise ValueError("must be one of schedule, manual, backfill")
        return value

    @field_validator("scheduled_time", mode="before")
    @classmethod
    def _instant(cls, value: object) -> object:
        """Read like --start: ISO 8601, UTC without offset, within what the warehouse stores."""
        from runner.errors import UsageError
        from runner.instants import check_storable, parse_instant

        try:
            if isinstance(value, str):
                return parse_instant(value) if value.strip() else None
            if isinstance(value, datetime):
                return check_storable(value if value.tzinfo else value.replace(tzinfo=UTC))
        except UsageError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("database", "state_database", "cluster")
    @classmethod
    def _valid_database(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from runner.identifiers import check_identifier

        try:
            return check_identifier(value, what="database")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    def model_post_init(self, context: Any, /) -> None:  # noqa: ARG002 - pydantic's signature
        """Tell the scrubber this process's secrets, so no message can show them."""
        for secret in self._secrets():
            register_secret(secret)
        register_environment()

    def _secrets(self) -> Iterator[str]:
        """Every secret value: SecretStr fields, the URL's password, the Basic credentials."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                yield value.get_secret_value()
        user, written, password = _url_credentials(self.warehouse_url or "")
        yield from (written, password)
        if self.clickhouse_password:
            password = self.clickhouse_password.get_secret_value()
        if password:  # what the HTTP client sends as Authorization: Basic
            user = self.clickhouse_user or user or "default"
            yield b64encode(f"{user}:{password}".encode()).decode()

    def resolve(self, path: Path) -> Path:
        """Resolve a project-relative path."""
        return path if path.is_absolute() else (self.project_dir / path).resolve()

    @property
    def pipelines_path(self) -> Path:
        """Absolute pipelines directory."""
        return self.resolve(self.pipelines_dir)

    @property
    def migrations_path(self) -> Path:
        """Absolute migrations directory."""
        return self.resolve(self.migrations_dir)

    @property
    def lock_path(self) -> Path:
        """Absolute directory of file locks."""
        return self.resolve(self.lock_dir)

    @property
    def holder_identity(self) -> str:
        """The identity recorded for locks and migrations: pod name or host, and pid."""
        import os
        import socket

        base = self.identity or os.environ.get("POD_NAME") or socket.gethostname()
        return f"{base}/{os.getpid()}"

    @property
    def effective_warehouse_url(self) -> str:
        """The URL to connect to, defaulting to an embedded warehouse in the project."""
        if self.warehouse_url:
            return self.warehouse_url
        return f"chdb://{self.resolve(Path('.warehouse') / 'chdb')}"


def _check_http_url(url: str) -> None:
    """Refuse anything but an http(s) URL with a host (urllib would open file:// too)."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme in {"http", "https"} and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError("must be an http:// or https:// URL with a host")


def _url_credentials(url: str) -> tuple[str, str, str]:
    """User, password as written and password decoded, from a URL's user info ('' if none)."""
    try:
        parts = urlsplit(url)
        user, written = parts.username or "", parts.password or ""
    except ValueError:  # unparsable: the password runs from the first ':' to the last '@'
        user, _, written = url.partition("://")[2].rpartition("@")[0].partition(":")
    return unquote(user), written, unquote(written)


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, turning validation errors into one clear line."""
    from pydantic_settings import SettingsError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except SettingsError as exc:  # a list or mapping setting that is not JSON
        import re

        field = re.search(r'field "([a-z_]+)"', str(exc))
        name = f"{ENV_PREFIX}{field.group(1).upper()}" if field else "a setting"
        raise ConfigError(f"invalid settings: {name}: not valid JSON") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_PREFIX}{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None

"""What a pipeline declares about itself: name, schedule, ownership and runtime hints.

Validated when the pipeline is declared, so a bad cron string fails ``runner list`` and
``runner render`` with the file and field named, not a CronJob at 3 a.m.  (``check_cron``
lives in runner.pipeline.cron and is importable from here too.)
"""

from __future__ import annotations

import re
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from runner.errors import PipelineDefinitionError
from runner.pipeline.checks import DataCheck
from runner.pipeline.cron import check_cron

NAME_MAX_LENGTH = 48  # Kubernetes object names (63 at most) are built from it
_NAME_CHARS = re.compile(r"^[a-z][a-z0-9_]*$")
#: Earlier windows a scheduled run loads first by default (``catchup``), and the most it may.
CATCHUP_DEFAULT = 3
CATCHUP_MAX = 100
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")


class Resources(BaseModel):
    """CPU/memory requests and limits, as Kubernetes quantities."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None

    @field_validator("cpu_request", "cpu_limit", "memory_request", "memory_limit")
    @classmethod
    def _quantity(cls, value: str | None) -> str | None:
        if value is not None and not _QUANTITY.fullmatch(value):
            raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 1Gi)")
        return value


class Freshness(BaseModel):
    """A health expectation on a table the pipeline fills."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: Annotated[str, Field(pattern=r"^([A-Za-z_][A-Za-z0-9_]*\.)?[A-Za-z_][A-Za-z0-9_]*$")]
    column: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    max_age_seconds: Annotated[int, Field(gt=0)] | None = None
    min_rows: Annotated[int, Field(ge=0)] = 1


class Volume(BaseModel):
    """What ``runner health`` expects of the rows each window loads, against earlier windows.

    The latest finished window's ``rows_loaded`` is compared with the average of the
    ``windows`` succeeded windows before it: none at all is unhealthy unless
    ``allow_empty``, fewer than ``min_fraction`` of that average too when it is set.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_fraction: Annotated[float, Field(gt=0, le=1)] | None = None
    windows: Annotated[int, Field(ge=1, le=100, strict=True)] = 7
    allow_empty: bool = False


class PipelineSpec(BaseModel):
    """Declared metadata of one pipeline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    schedule: str | None = Field(default=None, description="Five-field cron; None = manual only.")
    timezone: str = Field(default="UTC", description="IANA zone the schedule is read in.")
    description: str = ""
    owner: str | None = None
    tags: tuple[str, ...] = ()
    timeout_seconds: Annotated[int, Field(gt=0)] | None = Field(
        default=None, description="Hard limit for one run (the Job's activeDeadlineSeconds)."
    )
    resources: Resources = Field(default_factory=Resources)
    freshness: tuple[Freshness, ...] = Field(
        default=(), description="Checks `runner health` runs on the tables this pipeline fills."
    )
    checks: tuple[DataCheck, ...] = Field(
        default=(), description="Data checks run on the window's rows after the load."
    )
    volume: Volume = Field(
        default_factory=Volume,
        description="How `runner health` judges a window's rows against earlier windows.",
    )
    incremental: bool = Field(
        default=False,
        description="Start each window where the last successful one ended (the watermark).",
    )
    concurrent_windows: bool = Field(
        default=False,
        description="Lock per window instead of per pipeline, so distinct windows may overlap.",
    )
    catchup: Annotated[int, Field(ge=0, le=CATCHUP_MAX, strict=True)] = Field(
        default=CATCHUP_DEFAULT,
        description=(
            "A scheduled run first loads, oldest first, those of this many scheduled "
            "windows before its own that never succeeded; 0 disables it (incremental "
            "pipelines follow their watermark instead)."
        ),
    )

    @field_validator("checks")
    @classmethod
    def _unique_check_names(cls, checks: tuple[DataCheck, ...]) -> tuple[DataCheck, ...]:
        seen: set[str] = set()
        for check in checks:
            if check.label in seen:
                raise ValueError(f"two checks are called {check.label!r}: give one a name")
            seen.add(check.label)
        return checks

    @model_validator(mode="after")
    def _lock_scope(self) -> PipelineSpec:
        if self.incremental and self.concurrent_windows:
            raise ValueError(
                "incremental pipelines cannot run windows concurrently (each window starts "
                "where the previous one ended)"
            )
        return self

    @field_validator("catchup")
    @classmethod
    def _catchup_applies(cls, value: int, info: ValidationInfo) -> int:
        """A ``catchup`` given explicitly that could never act is a mistake worth a message.

        (Runs only for a value given: defaults are not validated.)
        """
        if value and info.data.get("incremental"):
            raise ValueError(
                "incremental pipelines catch up through their watermark (each run starts "
                "where the last successful one ended); leave catchup unset"
            )
        if value and "schedule" in info.data and info.data["schedule"] is None:
            raise ValueError("a pipeline without a schedule has no scheduled windows to catch up")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if len(value) > NAME_MAX_LENGTH:
            raise ValueError(
                f"too long ({len(value)} characters, at most {NAME_MAX_LENGTH}: Kubernetes "
                "object names are built from it)"
            )
        if not _NAME_CHARS.fullmatch(value):
            raise ValueError("must be lower-case letters, digits and '_', starting with a letter")
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # 'Europe' is a directory
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The schedule's time zone."""
        return ZoneInfo(self.timezone)


def build_spec(**fields: object) -> PipelineSpec:
    """Validate declared fields, raising one clear line on the first problem."""
    try:
        return PipelineSpec(**fields)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "pipeline"
        message = err["msg"].removeprefix("Value error, ")
        name = fields.get("name", "?")
        raise PipelineDefinitionError(f"pipeline {name!r}: {field}: {message}") from None

"""What a pipeline declares about itself: name, schedule, ownership and runtime hints.

Validated when the pipeline is declared, so a bad cron string fails ``runner list`` and
``runner render`` with the file and field named, not a CronJob at 3 a.m.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from runner.errors import PipelineDefinitionError

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,47}$"
CRON_MACROS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
_CRON_PROBE = datetime(2000, 1, 1)  # a leap year's start: Feb 29 schedules fire soon after
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")


def check_cron(expression: str) -> str:
    """Accept the five-field cron syntax Kubernetes CronJobs understand, or a macro."""
    from croniter import CroniterBadDateError, croniter

    text = " ".join(expression.split())
    if text in CRON_MACROS:
        return text
    if len(text.split(" ")) != 5 or not croniter.is_valid(text):
        raise ValueError(
            f"invalid cron schedule {expression!r}: expected five fields "
            "'minute hour day-of-month month day-of-week' (e.g. '*/15 * * * *') or a macro "
            "such as @daily"
        )
    try:  # '0 0 30 2 *' is valid syntax, but a run would find no window
        croniter(text, _CRON_PROBE).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(
            f"cron schedule {expression!r} never fires (a day the month never has?); "
            "leave schedule unset for a manual-only pipeline"
        ) from None
    return text


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


class PipelineSpec(BaseModel):
    """Declared metadata of one pipeline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
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
    incremental: bool = Field(
        default=False,
        description="Start each window where the last successful one ended (the watermark).",
    )
    concurrent_windows: bool = Field(
        default=False,
        description="Lock per window instead of per pipeline, so distinct windows may overlap.",
    )

    @model_validator(mode="after")
    def _lock_scope(self) -> PipelineSpec:
        if self.incremental and self.concurrent_windows:
            raise ValueError(
                "incremental pipelines cannot run windows concurrently (each window starts "
                "where the previous one ended)"
            )
        return self

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
        if err["type"] == "string_pattern_mismatch":
            message = "must be lower-case letters, digits and '_', starting with a letter"
        name = fields.get("name", "?")
        raise PipelineDefinitionError(f"pipeline {name!r}: {field}: {message}") from None

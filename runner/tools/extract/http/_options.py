"""The declared options of ``http_json``, validated when the pipeline module is imported.

Besides what to fetch, the options carry the limits that keep a hostile or broken API
from hanging a run or exhausting its memory; every limit has a default, so an author who
sets none still gets them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeAlias
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from runner.tools.extract.http._redaction import redact_url
from runner.tools.extract.http.pagination import NoPagination, Pagination
from runner.tools.options import DottedPath, NonBlank, ToolOptions

ParamValue: TypeAlias = str | int | float | bool

MiB = 1 << 20
DEFAULT_MAX_PAGES = 10_000
DEFAULT_MAX_RESPONSE_BYTES = 64 * MiB
DEFAULT_RETRY_AFTER_MAX = 60.0
DEFAULT_REQUEST_DEADLINE = 120.0

Seconds = Annotated[float, Field(gt=0)]


class HttpJsonOptions(ToolOptions):
    """What ``http_json`` fetches, how it retries, and the limits of one run."""

    label = "http_json"

    url: str
    records_path: DottedPath | None = None
    pagination: Pagination = Field(default_factory=NoPagination)
    params: dict[NonBlank, str] = Field(default_factory=dict)
    headers: dict[NonBlank, str] = Field(default_factory=dict)
    auth_token_env: NonBlank | None = None
    window_params: dict[NonBlank, Literal["start", "end"]] = Field(default_factory=dict)
    window_format: Literal["iso", "unix"] = "iso"
    verify: bool = True
    ca_cert: NonBlank | None = None

    # Retrying.
    max_retries: Annotated[int, Field(ge=0)] = 5
    backoff_factor: Annotated[float, Field(ge=0)] = 0.5
    retry_after_max: Annotated[float, Field(ge=0)] = DEFAULT_RETRY_AFTER_MAX

    # Limits on time.
    timeout: Seconds = 30.0
    request_deadline: Seconds = DEFAULT_REQUEST_DEADLINE
    extract_deadline: Seconds | None = None

    # Limits on size and count.
    max_response_bytes: Annotated[int, Field(ge=1)] = DEFAULT_MAX_RESPONSE_BYTES
    max_pages: Annotated[int, Field(ge=1)] | None = DEFAULT_MAX_PAGES
    on_max_pages: Literal["fail", "stop"] = "fail"

    @field_validator("url")
    @classmethod
    def _absolute(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an absolute http(s) URL, not {redact_url(url)!r}")
        return url

    @field_validator("pagination", mode="before")
    @classmethod
    def _style(cls, value: Any) -> Any:
        if value is None:
            return NoPagination()
        if not isinstance(value, Pagination):
            raise ValueError(  # noqa: TRY004 - pydantic reports ValueError, not TypeError
                "pagination must be PageNumber(...), OffsetLimit(...), Cursor(...), "
                f"NextLink(...) or NoPagination(), not {type(value).__name__}"
            )
        return value

    @field_validator("records_path", mode="before")
    @classmethod
    def _empty_is_body(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("headers", "window_params", mode="before")
    @classmethod
    def _mapping(cls, value: Any) -> Any:
        if value is None:
            return {}
        return dict(value) if isinstance(value, Mapping) else value

    @field_validator("params", mode="before")
    @classmethod
    def _query_values(cls, params: Any) -> Any:
        """Numbers and booleans become the text an API expects (``true``, not ``True``)."""
        if params is None:
            return {}
        if not isinstance(params, Mapping):
            return params
        checked: dict[Any, str] = {}
        for name, value in params.items():
            if isinstance(value, bool):
                checked[name] = "true" if value else "false"
            elif isinstance(value, str | int | float):
                checked[name] = str(value)
            else:
                raise ValueError(  # noqa: TRY004 - pydantic reports ValueError only
                    f"{name!r} must be a string, number or bool, not {type(value).__name__}"
                )
        return checked

    @field_validator("headers")
    @classmethod
    def _one_line_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if any(c in name + value for c in "\r\n"):
                # the value is not shown: headers are where secrets live
                raise ValueError(f"header {name!r} must be a one-line string")
        return headers

    @model_validator(mode="after")
    def _consistent(self) -> HttpJsonOptions:
        owners = [
            ("params", set(self.params)),
            ("window_params", set(self.window_params)),
            ("pagination", set(self.pagination.query_names())),
        ]
        for i, (first, names) in enumerate(owners):
            for second, other in owners[i + 1 :]:
                if names & other:
                    raise ValueError(
                        f"query parameters {sorted(names & other)} are set by both "
                        f"{first} and {second}"
                    )
        if self.auth_token_env is not None and any(
            name.lower() == "authorization" for name in self.headers
        ):
            raise ValueError("give auth_token_env or an Authorization header, not both")
        if self.ca_cert is not None and not self.verify:
            raise ValueError("ca_cert is pointless with verify=False")
        return self

"""Where the warehouse is: parsing its URL, and preparing an embedded warehouse's directory.

``chdb:///abs/path`` is the embedded engine, ``http(s)://user@host:port/db`` a server; a
password in the URL is returned apart and never shown in messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from runner.errors import ConfigError
from runner.warehouse.sql import check_identifier

__all__ = ["DEFAULT_DATABASE", "WarehouseTarget", "embedded_directory", "parse_url"]

DEFAULT_DATABASE = "analytics"


@dataclass(frozen=True)
class WarehouseTarget:
    """Where to connect, parsed from the URL (the password is never part of it)."""

    embedded: bool
    path: Path | None = None
    host: str | None = None
    port: int | None = None
    username: str | None = None
    secure: bool = False
    database: str = DEFAULT_DATABASE

    def describe(self) -> str:
        """A loggable description, without credentials."""
        if self.embedded:
            return f"chdb://{self.path}"
        scheme = "https" if self.secure else "http"
        return f"{scheme}://{self.host}:{self.port}/{self.database}"


_URL_PASSWORD = re.compile(r"(//[^/?#@:]*:).*@")  # to the last @: rather too much than too little


def _without_password(url: str) -> str:
    """``url`` for error messages: a password in it is masked (it may not even parse)."""
    return _URL_PASSWORD.sub(r"\1***@", url)


def parse_url(url: str, database: str | None = None) -> tuple[WarehouseTarget, str | None]:
    """Parse a warehouse URL into a target and an optional password from the URL."""
    shown = _without_password(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise ConfigError(f"invalid warehouse URL {shown!r}: {exc}") from None
    if parts.scheme == "chdb":
        if parts.netloc or not parts.path.startswith("/"):
            raise ConfigError(
                f"invalid warehouse URL {shown!r}: use chdb:///absolute/path (three slashes)"
            )
        if parts.query or parts.fragment:
            raise ConfigError(
                f"invalid warehouse URL {shown!r}: a chdb:// URL takes no query or fragment"
            )
        target = WarehouseTarget(
            embedded=True, path=Path(unquote(parts.path)), database=database or DEFAULT_DATABASE
        )
        return target, None
    if parts.scheme in {"http", "https"}:
        if not parts.hostname:
            raise ConfigError(f"invalid warehouse URL {shown!r}: no host")
        try:
            port = parts.port or (8443 if parts.scheme == "https" else 8123)
        except ValueError:
            raise ConfigError(f"invalid warehouse URL {shown!r}: bad port") from None
        path_db = parts.path.strip("/") or None
        db = check_identifier(database or path_db or DEFAULT_DATABASE, what="database")
        target = WarehouseTarget(
            embedded=False,
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else "default",
            secure=parts.scheme == "https",
            database=db,
        )
        return target, unquote(parts.password) if parts.password else None
    raise ConfigError(f"invalid warehouse URL {shown!r}: scheme must be chdb, http or https")


# What chDB keeps in a warehouse directory (only tmp/ and status until a database exists);
# a non-empty directory with none of them is not one.
_CHDB_ENTRIES = ("metadata", "data", "store", "tmp", "status")


def embedded_directory(path: Path) -> Path:
    """``path`` made ready for the embedded engine, or a ConfigError naming the setting.

    chDB writes ``data/``, ``metadata/`` and ``store/`` into the directory it is given,
    so a filesystem root or a directory already holding other files is refused rather
    than littered.
    """
    where = f"RUNNER_WAREHOUSE_URL chdb://{path}"
    if path == Path(path.anchor):
        raise ConfigError(f"{where}: the embedded warehouse needs its own directory, not {path}")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{where}: {path} is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        entries = {entry.name for entry in path.iterdir()}
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"{where}: cannot use {path} as the warehouse directory: {reason}"
        ) from None
    if entries and not entries.intersection(_CHDB_ENTRIES):
        raise ConfigError(
            f"{where}: {path} holds other files and no chDB warehouse; "
            "point the URL at an empty or new directory"
        )
    return path

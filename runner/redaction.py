"""The one secret scrubber: log lines, log files, error lines and run history all go through it.

A secret is found two ways:

* by value: the process registers every secret it knows (``SecretStr`` settings, the
  password of the warehouse URL, ``--param`` values under secret-looking keys, environment
  variables with secret-looking names, any ``SecretStr`` that reaches a log line) and each
  occurrence, plain or URL-encoded, is replaced wherever it sits in a string: a step's
  ``f"bad {password}"``, a ClickHouse error echoing a URL, an exception's repr;
* by shape: values under secret-looking keys of mappings (at any depth), ``key=value``
  pairs (URL query parameters, connection strings, ``--param``), ``"key": "value"`` pairs
  (JSON, Python reprs), ``key: value`` headers, ``Authorization``/``Bearer`` credentials
  and the password of a URL's user info.

Registered values stay registered for the life of the process: once a secret, always a
secret.  This module imports only the standard library, so the error path stays light.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "REDACTED"

# A normalised name (lower case, letters and digits only) containing one of these is secret.
_SECRET_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "authorization",
    "credential",
    "signature",
    "sessionid",
    "sessid",
    "cookie",
)
# Short words that are secret only as the whole name (``lock_key`` is not, ``key`` is).
_SECRET_NAMES = frozenset({"key", "sig", "pass", "auth", "session", "sid", "jwt", "otp"})

MIN_SECRET_CHARS = 4  # shorter values would blank out ordinary words everywhere
MIN_ENV_SECRET_CHARS = 8  # environment variables are found by name alone: ask for more

_KEY = r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}"
# key=value, as in a URL query, a connection string or ``--param``; the value ends where a
# URL parameter, a sentence or a quoted string would.
_PAIR = re.compile(rf"(?<![A-Za-z0-9_.\-])(?P<key>{_KEY})(?P<sep>=)(?P<value>[^\s&#;,'\"<>)\]}}]+)")
# "key": "value" and 'key': 'value' (JSON bodies, Python reprs of dicts).
_QUOTED = re.compile(
    r"(?P<q>[\"'])(?P<key>[^\"'\\\s]{1,64})(?P=q)(?P<sep>\s*[:=]\s*)"
    r"(?P<vq>[\"'])(?P<value>(?:\\.|(?!(?P=vq)).)*)(?P=vq)"
)
# key: value, as in an HTTP header dump or a message "password: x".
_HEADER = re.compile(rf"(?<![A-Za-z0-9_.\-])(?P<key>{_KEY})(?P<sep>:[ \t]*)(?P<value>[^\s,;'\"]+)")
# Authorization: <scheme> <credentials>, and a bare Bearer token anywhere.
_AUTHORIZATION = re.compile(
    r"(?i)(?P<key>(?:proxy-)?authorization)(?P<sep>[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<value>(?:[A-Za-z]+[ \t]+)?[^\s\"',;]+)"
)
_BEARER = re.compile(r"(?i)\b(?P<key>bearer)(?P<sep>[ \t]+)(?P<value>[A-Za-z0-9._~+/=\-]+)")
# scheme://user:password@ - the password runs to the last @ before the path.
_USERINFO = re.compile(
    r"(?P<key>\b[A-Za-z][A-Za-z0-9+.\-]{0,31}://[^\s:/?#@]{0,256})(?P<sep>:)(?P<value>[^\s/?#]*)@"
)


def looks_secret(name: str) -> bool:
    """Whether a key, header, parameter or variable name suggests a secret value."""
    normal = re.sub(r"[^a-z0-9]", "", name.lower())
    return normal in _SECRET_NAMES or any(part in normal for part in _SECRET_PARTS)


class _Registry:
    """The secret values this process knows, and one pattern matching any of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str, minimum: int = MIN_SECRET_CHARS) -> None:
        if len(value) < minimum:
            return
        forms = {value, quote(value, safe=""), quote(value), quote_plus(value)}
        with self._lock:
            if forms <= self._values:
                return
            self._values |= forms
            ordered = sorted(self._values, key=len, reverse=True)  # longest first
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def sub(self, text: str) -> str:
        pattern = self._pattern
        return text if pattern is None else pattern.sub(REDACTED, text)


_REGISTRY = _Registry()


def register_secret(value: object) -> None:
    """Scrub ``value`` (a str or a ``SecretStr``) from every message from now on."""
    if value is None:
        return
    getter = getattr(value, "get_secret_value", None)
    secret = getter() if callable(getter) else value
    if isinstance(secret, bytes):
        secret = secret.decode("utf-8", "replace")
    if isinstance(secret, str):
        _REGISTRY.add(secret)


def register_environment(environ: Mapping[str, str] | None = None) -> None:
    """Register the values of environment variables whose names look secret (``API_TOKEN``)."""
    for name, value in (os.environ if environ is None else environ).items():
        if looks_secret(name):
            _REGISTRY.add(value, MIN_ENV_SECRET_CHARS)


def _mask_if_secret(match: re.Match[str]) -> str:
    """Mask the value of a secret-looking ``key=value`` or ``key: value`` in free text.

    The short names (``key``, ``sig``, ...) are too common in prose (``KEY=VALUE``) to be
    trusted there: in text they count only as URL query parameters (after ``?``/``&``).
    """
    key = match["key"]
    if not looks_secret(key) or match["value"] == REDACTED:
        return match[0]
    short = re.sub(r"[^a-z0-9]", "", key.lower()) in _SECRET_NAMES
    before = match.string[match.start() - 1 : match.start()]
    if short and not (match["sep"] == "=" and before in {"?", "&", ";"}):
        return match[0]
    return f"{key}{match['sep']}{REDACTED}"


def _mask(match: re.Match[str]) -> str:
    return f"{match['key']}{match['sep']}{REDACTED}"


def _mask_quoted(match: re.Match[str]) -> str:
    if not looks_secret(match["key"]) or match["value"] in {"", REDACTED}:
        return match[0]
    q, vq = match["q"], match["vq"]
    return f"{q}{match['key']}{q}{match['sep']}{vq}{REDACTED}{vq}"


def scrub_text(text: str) -> str:
    """``text`` with every known secret value and every secret-shaped value replaced."""
    text = _REGISTRY.sub(text)
    if ":" not in text and "=" not in text and "bearer" not in text.lower():
        return text  # no shape below can match: the common case of a plain message
    text = _USERINFO.sub(lambda m: f"{m['key']}:{REDACTED}@" if m["value"] else m[0], text)
    text = _AUTHORIZATION.sub(_mask, text)
    text = _BEARER.sub(_mask, text)
    text = _QUOTED.sub(_mask_quoted, text)
    text = _PAIR.sub(_mask_if_secret, text)
    return _HEADER.sub(_mask_if_secret, text)


def scrub(value: Any) -> Any:
    """``value`` fit to show: strings scrubbed, containers walked, secret-keyed values masked.

    Numbers, booleans and ``None`` pass unchanged; any other object is shown as its
    scrubbed ``str()`` (what a JSON renderer would print anyway).
    """
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return scrub_text(value)
    if callable(getattr(value, "get_secret_value", None)):  # pydantic SecretStr/SecretBytes
        register_secret(value)
        return REDACTED
    if isinstance(value, Mapping):
        return {
            key: _masked(item) if isinstance(key, str) and looks_secret(key) else scrub(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(item) for item in value]
    return scrub_text(str(value))


def _masked(value: Any) -> Any:
    """A value under a secret-looking key: hidden unless it cannot hold a secret."""
    if value is None or isinstance(value, bool | int | float) or value == "":
        return value
    return REDACTED

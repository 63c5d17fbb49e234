"""Keeping credentials of an HTTP source out of logs and error messages.

Two layers: :func:`redact_url` hides what a URL itself gives away (user info, fragment,
values of query parameters whose names look secret), and :class:`Scrubber` removes the
secret values a run knows (the bearer token, custom header values, secret query values of
the URLs it requested) from any text, such as a response body the server echoed them in.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "REDACTED"
# parts of query parameter names that hold credentials: api_key, access_token, sessionid, ...
_SECRET_PARTS = (
    "token",
    "key",
    "secret",
    "passw",
    "pwd",
    "signature",
    "sig",
    "auth",
    "session",
    "sessid",
    "cred",
    "jwt",
    "cookie",
    "private",
)
_SECRET_NAMES = frozenset({"sid"})  # too short to match inside other names
_MIN_SECRET_CHARS = 4  # shorter values would scrub ordinary words out of messages
_SNIPPET_CHARS = 200


def looks_secret(name: str) -> bool:
    """Whether a query parameter called ``name`` probably carries a credential."""
    lowered = name.lower()
    return lowered in _SECRET_NAMES or any(part in lowered for part in _SECRET_PARTS)


def redact_url(url: str) -> str:
    """``url`` safe for logs: no user info, no fragment, secret-looking query values hidden."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    pairs = [
        (name, REDACTED if looks_secret(name) else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(pairs), ""))


def secret_query_values(url: str) -> list[str]:
    """Values of the secret-looking query parameters of ``url`` (to scrub them elsewhere)."""
    return [
        value
        for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True)
        if looks_secret(name)
    ]


def one_line(data: bytes) -> str:
    """The start of a response body, on one line, for error messages."""
    text = data[: _SNIPPET_CHARS * 4].decode("utf-8", "replace")
    return " ".join(text.split())[:_SNIPPET_CHARS]


class Scrubber:
    """The secret values one run knows, and the means to remove them from text."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        self._secrets: set[str] = set()
        for secret in secrets or []:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Remember a value that must never appear in a message."""
        if len(secret) >= _MIN_SECRET_CHARS:
            self._secrets.add(secret)

    def learn_url(self, url: str) -> None:
        """Remember the secret query values of a URL the run is about to request."""
        for value in secret_query_values(url):
            self.add(value)

    def scrub(self, text: str) -> str:
        """``text`` with every remembered secret replaced, longest first."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

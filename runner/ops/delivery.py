"""Sending one message over HTTP within a fixed budget: a few attempts, never longer.

Both the Pushgateway push and the failure webhook go through here.  The budget covers
every attempt and every wait between them; each attempt's socket timeout is its share of
the budget (at most what is left), so a receiver that accepts and never answers costs
``budget`` in all, not ``attempts x timeout``.  Only failures a second attempt may fix are
retried: no answer, a refused connection, 429 and 5xx.  A 4xx says the URL or the body is
wrong, and repeating it would only repeat the refusal.
"""

from __future__ import annotations

import time
import urllib.error
from collections.abc import Callable

#: Longest wait between two attempts (backoff doubles from a quarter second).
MAX_WAIT_SECONDS = 2.0
#: An attempt with less time than this left is not started.
MIN_ATTEMPT_SECONDS = 0.1
_TOO_MANY_REQUESTS = 429
_SERVER_ERROR = 500


class DeliveryError(Exception):
    """A message was not delivered; ``retriable`` when another attempt may succeed."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


def http_failure(exc: BaseException) -> DeliveryError:
    """Classify what urllib (or a client built on it) raised."""
    if isinstance(exc, urllib.error.HTTPError):
        retriable = exc.code == _TOO_MANY_REQUESTS or exc.code >= _SERVER_ERROR
        return DeliveryError(f"HTTP {exc.code} {exc.reason}", retriable=retriable)
    if isinstance(exc, urllib.error.URLError):
        return DeliveryError(f"no answer: {exc.reason}", retriable=True)
    if isinstance(exc, TimeoutError):
        return DeliveryError("no answer: timed out", retriable=True)
    if isinstance(exc, OSError):  # resets, refused connections, prometheus_client's non-2xx
        return DeliveryError(str(exc) or type(exc).__name__, retriable=True)
    return DeliveryError(f"{type(exc).__name__}: {exc}", retriable=False)


def deliver(send: Callable[[float], None], *, attempts: int, budget: float) -> int:
    """Call ``send(timeout)`` until it returns, at most ``attempts`` times within ``budget``.

    Returns the number of attempts made; raises the last :class:`DeliveryError` when none
    succeeded.  tenacity (the project's retry library) decides retry, stop and wait.
    """
    from tenacity import (
        RetryCallState,
        Retrying,
        retry_if_exception,
        wait_exponential,
    )

    deadline = time.monotonic() + budget
    share = budget / attempts

    def attempt() -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeliveryError(f"no time left within {budget:g} s", retriable=False)
        try:
            send(min(share, left))
        except DeliveryError:
            raise
        except Exception as exc:
            raise http_failure(exc) from exc

    backoff = wait_exponential(multiplier=0.25, max=MAX_WAIT_SECONDS)

    def stop(state: RetryCallState) -> bool:  # attempts used up, or too little time left
        left = deadline - time.monotonic()
        return state.attempt_number >= attempts or left < MIN_ATTEMPT_SECONDS

    def wait(state: RetryCallState) -> float:  # never past the deadline
        return max(0.0, min(backoff(state), deadline - time.monotonic() - MIN_ATTEMPT_SECONDS))

    retrying = Retrying(
        stop=stop,
        wait=wait,
        retry=retry_if_exception(lambda exc: isinstance(exc, DeliveryError) and exc.retriable),
        reraise=True,
    )
    retrying(attempt)
    return int(retrying.statistics.get("attempt_number", 1))

"""``on_failure`` without a server: one JSON webhook per failed run.

The body carries the run's facts as fields (pipeline, run_id, window, error, exit code)
and a ``text`` line, which is all a Slack (or Mattermost, Teams workflow, Rocket.Chat)
incoming webhook needs.  Every string in it goes through the scrubber, so an error that
echoes a credential does not reach a chat channel.  The webhook URL itself is a secret
(a Slack URL is its own token): it is a ``SecretStr`` setting and never logged.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from runner.redaction import scrub

if TYPE_CHECKING:
    from runner.ops.outcome import RunOutcome
    from runner.settings import Settings

#: A chat line should stay readable: longer errors are cut (the log has them whole).
MAX_ERROR_CHARS = 1000


def alert_body(outcome: RunOutcome) -> dict[str, Any]:
    """The JSON body of the failure webhook, scrubbed of secrets."""
    start = outcome.window_start.isoformat() if outcome.window_start else None
    end = outcome.window_end.isoformat() if outcome.window_end else None
    error = (
        outcome.error
        if len(outcome.error) <= MAX_ERROR_CHARS
        else (outcome.error[:MAX_ERROR_CHARS] + "...")
    )
    window = f" for window {start} .. {end}" if start else ""
    text = (
        f"pipeline-runner: {outcome.pipeline} run {outcome.run_id} failed{window} "
        f"(exit {outcome.exit_code}): {error}"
    )
    body = {
        "text": text,
        "pipeline": outcome.pipeline,
        "run_id": outcome.run_id,
        "trigger": outcome.trigger,
        "status": outcome.status,
        "window_start": start,
        "window_end": end,
        "error_class": outcome.error_class,
        "error": error,
        "exit_code": outcome.exit_code,
        "finished_at": outcome.finished_at.isoformat(),
        "duration_seconds": round(outcome.duration_seconds, 3),
    }
    scrubbed: dict[str, Any] = scrub(body)
    return scrubbed


def send_failure_alert(settings: Settings, outcome: RunOutcome) -> int:
    """POST the failure of ``outcome`` to ``RUNNER_ALERT_WEBHOOK_URL``; returns attempts made.

    Raises :class:`runner.ops.delivery.DeliveryError` when every attempt failed.
    """
    import urllib.request

    from runner.ops.delivery import deliver

    if settings.alert_webhook_url is None or not outcome.failed:
        return 0
    url = settings.alert_webhook_url.get_secret_value()
    data = json.dumps(alert_body(outcome)).encode("utf-8")

    def send(timeout: float) -> None:
        request = urllib.request.Request(  # noqa: S310 - the operator's own URL, http(s) checked
            url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "pipeline-runner"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 # nosec B310
            response.read(65536)

    return deliver(send, attempts=settings.alert_attempts, budget=settings.alert_timeout_seconds)

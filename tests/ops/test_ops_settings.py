"""The metrics and alert settings: checked URLs, a secret webhook, one-line errors."""

import pytest

from runner.errors import ConfigError
from runner.redaction import REDACTED, scrub_text
from runner.settings import load_settings

HOOK = "https://hooks.example.com/services/T000/B000/XyZsecretpart"


def test_the_webhook_url_is_a_secret_everywhere():
    settings = load_settings(alert_webhook_url=HOOK)
    assert settings.alert_webhook_url.get_secret_value() == HOOK
    assert scrub_text(f"POST {HOOK} failed") == f"POST {REDACTED} failed"
    assert "XyZsecretpart" not in repr(settings)


def test_a_pushgateway_without_scheme_means_http():
    assert load_settings(pushgateway_url="pushgateway:9091").pushgateway_url == (
        "http://pushgateway:9091"
    )
    assert load_settings(pushgateway_url=" ").pushgateway_url is None
    assert load_settings(alert_webhook_url="").alert_webhook_url is None


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("alert_webhook_url", "file:///etc/passwd", "RUNNER_ALERT_WEBHOOK_URL"),
        ("alert_webhook_url", "hooks.example.com/XyZsecretpart", "RUNNER_ALERT_WEBHOOK_URL"),
        ("pushgateway_url", "ftp://pg:21", "RUNNER_PUSHGATEWAY_URL"),
        ("alert_timeout_seconds", "0", "RUNNER_ALERT_TIMEOUT_SECONDS"),
        ("pushgateway_attempts", "0", "RUNNER_PUSHGATEWAY_ATTEMPTS"),
    ],
)
def test_bad_values_are_one_line_naming_the_variable(field, value, variable):
    with pytest.raises(ConfigError) as caught:
        load_settings(**{field: value})
    message = str(caught.value)
    assert variable in message
    assert "\n" not in message
    assert "XyZsecretpart" not in message

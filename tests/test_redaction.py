"""The one scrubber: registered values anywhere in a string, secret shapes, nested data."""

import base64
import secrets

import pytest
from pydantic import SecretStr

from runner.errors import error_line, printable
from runner.redaction import (
    REDACTED,
    looks_secret,
    register_environment,
    register_secret,
    scrub,
    scrub_text,
)
from runner.settings import Settings


def canary() -> str:
    return f"canary-{secrets.token_hex(8)}"


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "RUNNER_CLICKHOUSE_PASSWORD",
        "api_key",
        "X-Api-Key",
        "apiKey",
        "access_token",
        "refresh-token",
        "client_secret",
        "Authorization",
        "sessionid",
        "JSESSIONID",
        "PHPSESSID",
        "signature",
        "X-Amz-Signature",
        "sig",
        "key",
        "Cookie",
    ],
)
def test_secret_looking_names(name):
    assert looks_secret(name)


@pytest.mark.parametrize(
    "name",
    ["rows", "lock_key", "primary_key", "author", "step", "error", "PWD", "OLDPWD", "XAUTHORITY"],
)
def test_ordinary_names(name):
    assert not looks_secret(name)


def test_a_registered_value_is_scrubbed_wherever_it_sits_plain_or_url_encoded():
    value = canary() + " p/w@x"
    register_secret(value)
    from urllib.parse import quote, quote_plus

    for text in (
        f"bad {value}",
        f"ValueError('{value}')",
        f"http://etl:{quote(value, safe='')}@host:8123/db",
        f"?q={quote_plus(value)}&x=1",
    ):
        scrubbed = scrub_text(text)
        assert "canary-" not in scrubbed, scrubbed
        assert REDACTED in scrubbed


def test_secret_str_values_are_registered_when_seen():
    value = canary()
    assert scrub({"dsn": SecretStr(value)}) == {"dsn": REDACTED}
    assert scrub_text(f"later: {value}") == f"later: {REDACTED}"


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("GET https://api/x?sessionid=s3ss10n&page=2", "s3ss10n"),
        ("GET https://api/x?page=2&api_key=k3y-v4lue#frag", "k3y-v4lue"),
        ("https://api/x?token=t0k3n", "t0k3n"),
        ("https://api/x?password=pa55w0rd&user=etl", "pa55w0rd"),
        ("https://api/x?access_token=acc3ss", "acc3ss"),
        ("https://s3/x?X-Amz-Signature=deadbeef&X-Amz-Date=1", "deadbeef"),
        ("https://maps/x?key=AIzaSyK3y&z=1", "AIzaSyK3y"),
        ("https://blob/x?sv=1&sig=s1gnatur3", "s1gnatur3"),
        ("connect: host=db user=etl password=hunt3r2 dbname=x", "hunt3r2"),
        ("--param api_token=tok-123", "tok-123"),
        ("{'headers': {'Authorization': 'Bearer abc.def.ghi'}}", "abc.def.ghi"),
        ('{"password": "p@ss w0rd", "user": "u"}', "p@ss w0rd"),
        ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ("curl -H 'Authorization: Bearer abc.def'", "abc.def"),
        ("X-Api-Key: k3y!, then", "k3y!"),
        ("http://etl:s3cr3t@clickhouse:8123/analytics", "s3cr3t"),
        ("http://etl:p@ss@clickhouse:8123/analytics", "p@ss"),
    ],
)
def test_secret_shapes_are_scrubbed_without_knowing_the_value(text, hidden):
    scrubbed = scrub_text(text)
    assert hidden not in scrubbed, scrubbed
    assert REDACTED in scrubbed


@pytest.mark.parametrize(
    "text",
    [
        "Code: 516. DB::Exception: etl: Authentication failed: password is incorrect",
        "GET https://api/x?page=2&size=10",
        "lock_key=run-a primary_key=id",
        "--param 'novalue': expected KEY=VALUE",
        "lock key: run:orders",
        "http://clickhouse:8123/analytics",
        "window 2026-01-01T00:00:00+00:00..2026-01-02T00:00:00+00:00",
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert scrub_text(text) == text


def test_nested_mappings_and_lists_are_walked():
    token = canary()
    register_secret(token)
    event = {
        "event": f"calling with {token}",
        "request": {"headers": {"Authorization": "Bearer xyz", "Accept": "json"}},
        "params": {"api_token": "plain", "n": "5"},
        "items": [{"password": "x1"}, f"t={token}"],
        "rows": 3,
        "token_count": 7,
        "ok": True,
        "none": None,
    }
    assert scrub(event) == {
        "event": f"calling with {REDACTED}",
        "request": {"headers": {"Authorization": REDACTED, "Accept": "json"}},
        "params": {"api_token": REDACTED, "n": "5"},
        "items": [{"password": REDACTED}, f"t={REDACTED}"],
        "rows": 3,
        "token_count": 7,
        "ok": True,
        "none": None,
    }


def test_other_objects_are_shown_as_their_scrubbed_text():
    token = canary()
    register_secret(token)
    assert scrub(ValueError(f"bad {token}")) == f"bad {REDACTED}"


def test_settings_register_the_password_the_url_password_and_secret_environment():
    password, in_url, in_env = canary(), canary() + "/x", canary()
    from urllib.parse import quote

    Settings(
        clickhouse_password=SecretStr(password),
        warehouse_url=f"http://etl:{quote(in_url, safe='')}@host:8123/db",
    )
    register_environment({"MY_API_TOKEN": in_env, "SHORT_TOKEN": "abc", "HOME": "/root"})
    for value in (password, in_url, in_env):
        assert scrub_text(f"x {value} y") == f"x {REDACTED} y"
    assert scrub_text("abc /root") == "abc /root"  # too short, or not secret by name


def test_the_cli_error_line_is_scrubbed_and_one_line():
    token = canary()
    register_secret(token)
    line = error_line(ValueError(f"bad {token}\nsecond line ?api_key=zzz"))
    assert line == f"error: bad {REDACTED}\\nsecond line ?api_key={REDACTED}"
    assert printable(token) == REDACTED


def test_basic_credentials_in_an_echoed_header_are_scrubbed():
    raw = base64.b64encode(f"etl:{canary()}".encode()).decode()
    assert raw not in scrub_text(f"request headers: authorization: Basic {raw}; host: x")

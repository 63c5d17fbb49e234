"""TLS and credentials, as a pod meets them: RUNNER_TLS_CA_CERT, RUNNER_TLS_VERIFY, a CA
that did not sign the server's certificate, a wrong password - through `runner` processes."""

from __future__ import annotations

import pytest
from loopback_certs import make_tls_files

pytestmark = pytest.mark.http
MIGRATION = {"0001_t.sql": "CREATE TABLE {{database}}.t (a UInt8) ENGINE = Memory;\n"}


@pytest.fixture
def project(http_project):
    return http_project(migrations=MIGRATION)


def test_the_ca_from_runner_tls_ca_cert_verifies_the_server(project):
    project.runner("migrate")
    check = project.runner("check")
    assert f"https://127.0.0.1:{project.server.port}/{project.database}" in check.stdout


def test_localhost_matches_the_certificate_too(project):
    url = project.server.url(project.database, host="localhost")
    project.runner("migrate", RUNNER_WAREHOUSE_URL=url)


def test_without_the_ca_the_server_is_refused_in_one_line(project):
    result = project.runner("migrate", check=False, RUNNER_TLS_CA_CERT=None)
    [line] = result.stderr.strip().splitlines()
    assert "certificate verify failed" in line
    assert f"https://127.0.0.1:{project.server.port}/{project.database}" in line
    assert "RUNNER_TLS_CA_CERT" in line
    assert result.returncode == 3


def test_a_ca_that_did_not_sign_the_certificate_is_refused(project, tmp_path):
    other = make_tls_files(tmp_path / "other-ca", common_name="someone-else")
    result = project.runner("migrate", check=False, RUNNER_TLS_CA_CERT=str(other.ca_cert))
    assert result.returncode == 3, result.stderr
    assert "certificate verify failed" in result.stderr


def test_runner_tls_verify_false_accepts_the_unknown_certificate(project):
    project.runner("migrate", RUNNER_TLS_CA_CERT=None, RUNNER_TLS_VERIFY="false")
    assert project.scalar("EXISTS TABLE t") == 1


def test_a_wrong_password_is_one_line_naming_the_server_without_the_password(project):
    result = project.runner("migrate", check=False, RUNNER_CLICKHOUSE_PASSWORD="not-the-password")
    [line] = result.stderr.strip().splitlines()
    assert "Authentication failed" in line
    assert f"127.0.0.1:{project.server.port}" in line
    assert "not-the-password" not in result.stderr + result.stdout
    assert result.returncode == 3


def test_a_password_in_the_url_works_and_stays_out_of_every_output(project):
    url = project.server.url(project.database).replace("etl@", f"etl:{project.server.password}@")
    migrate = project.runner("migrate", RUNNER_WAREHOUSE_URL=url, RUNNER_CLICKHOUSE_PASSWORD=None)
    status = project.runner("status", RUNNER_WAREHOUSE_URL=url, RUNNER_CLICKHOUSE_PASSWORD=None)
    for text in (migrate.stdout, migrate.stderr, status.stdout, status.stderr):
        assert project.server.password not in text

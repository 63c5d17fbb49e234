from pathlib import Path

import pytest

from runner.errors import ConfigError, ExitCode
from runner.settings import LogFormat, Settings, load_settings


def test_settings_read_the_runner_prefix(monkeypatch, tmp_path):
    monkeypatch.setenv("RUNNER_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("RUNNER_DATABASE", "shop")
    monkeypatch.setenv("RUNNER_BATCH_ROWS", "1000")
    monkeypatch.setenv("RUNNER_LOG_FORMAT", "json")
    settings = load_settings()
    assert settings.database == "shop"
    assert settings.batch_rows == 1000
    assert settings.log_format is LogFormat.JSON
    assert settings.pipelines_path == tmp_path / "pipelines"
    assert settings.effective_warehouse_url == f"chdb://{tmp_path / '.warehouse' / 'chdb'}"


def test_bad_setting_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("RUNNER_BATCH_ROWS", "lots")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "RUNNER_BATCH_ROWS" in message
    assert "\n" not in message
    assert info.value.exit_code == ExitCode.CONFIG


def test_bad_database_name_and_log_level_are_rejected():
    with pytest.raises(ConfigError, match="RUNNER_DATABASE"):
        load_settings(database="drop table; --")
    with pytest.raises(ConfigError, match="RUNNER_LOG_LEVEL"):
        load_settings(log_level="verbose")


def test_password_is_a_secret_and_never_printed(monkeypatch):
    monkeypatch.setenv("RUNNER_CLICKHOUSE_PASSWORD", "hunter2")
    settings = load_settings()
    assert settings.clickhouse_password is not None
    assert settings.clickhouse_password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())


def test_settings_are_not_built_at_import():
    import runner.settings as module

    assert not any(isinstance(v, Settings) for v in vars(module).values())


def test_relative_paths_resolve_against_the_project(tmp_path):
    settings = Settings(project_dir=tmp_path, migrations_dir=Path("sql"))
    assert settings.migrations_path == tmp_path / "sql"
    assert settings.resolve(Path("/abs")) == Path("/abs")

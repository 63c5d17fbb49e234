"""Usage errors exit 2 with one line naming the flag, from a real `runner` process, before
anything is imported or connected; an unknown pipeline exits 3."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONSOLE_SCRIPT = Path(sys.executable).with_name("runner")


@pytest.fixture
def env(tmp_path):
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "numbers_pipeline.py").write_text(
        "from runner import el\n"
        "pipeline = el('numbers', schedule='0 1 1 * *', extract=[{'i': 1}], load=print)\n"
    )
    return {
        **os.environ,
        "RUNNER_PROJECT_DIR": str(tmp_path),
        # never created: a usage error must come before any connection
        "RUNNER_WAREHOUSE_URL": f"chdb://{tmp_path / 'no-warehouse'}",
    }


def runner(env, *args):
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


RANGE = ["--start", "2026-01-01", "--end", "2026-02-01"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["run", "numbers", "--start", "yesterday", "--end", "2026-01-01"],
            "--start: 'yesterday' is not an ISO 8601 date or date-time",
        ),
        (
            ["run", "numbers", "--start", "2026-01-02", "--end", "2026-01-01"],
            "--start/--end: start 2026-01-02T00:00:00+00:00 is not before end",
        ),
        (["run", "numbers", "--start", "2026-01-01"], "--start needs --end"),
        (["run", "numbers", "--end", "2026-01-01"], "--end needs --start"),
        (
            ["run", "numbers", "--start", "0001-01-01", "--end", "2026-01-01"],
            "--start: 0001-01-01T00:00:00+00:00 is outside the range the warehouse stores "
            "(1900-01-01 to 2299-12-31 UTC",
        ),
        (
            ["run", "numbers", "--start", "2026-01-01", "--end", "2300-01-01"],
            "--end: 2300-01-01T00:00:00+00:00 is outside the range",
        ),
        (["run", "numbers", "--param", "novalue"], "--param 'novalue': expected KEY=VALUE"),
        (["run", "numbers", "-p", "=x"], "--param '=x': expected KEY=VALUE"),
        (
            ["backfill", "plan", "numbers", *RANGE, "--step", "1M"],
            "--step: '1M' is not a step: use 'schedule' or a count and a unit",
        ),
        (["backfill", "run", "numbers", *RANGE, "--step", "fortnight"], "--step: 'fortnight'"),
        (
            ["backfill", "status", "numbers", "--start", "2026-02-01", "--end", "2026-01-01"],
            "--start/--end: start",
        ),
        (["backfill", "run", "numbers", "--start", "2026-01-01"], "Missing option '--end'"),
        (["run", "numbers", "--no-such-option"], "No such option: --no-such-option"),
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
        (["status", "--limit", "0"], "Invalid value for '--limit'"),
        (["query", "SELECT 1; SELECT 2"], "one statement at a time: found 2"),
        (
            ["migrate", "resolve", "1", "2"],
            "runner migrate resolve: say --done (it took effect) or --not-done (it did not)",
        ),
    ],
)
def test_usage_errors_exit_2_with_one_line(env, args, message):
    result = runner(env, *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not (Path(env["RUNNER_PROJECT_DIR"]) / "no-warehouse").exists()


def test_a_usage_error_names_the_command_and_its_help(env):
    result = runner(env, "backfill", "run", "numbers", "--start", "2026-01-01")
    assert result.stderr.strip() == (
        "error: runner backfill run: Missing option '--end'. (see `runner backfill run --help`)"
    )


def test_an_unknown_pipeline_is_a_configuration_error(env):
    result = runner(env, "run", "numbrs")
    assert result.returncode == 3
    assert "no pipeline 'numbrs'" in result.stderr
    assert "did you mean 'numbers'?" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_pipeline_name_over_48_characters_says_so(env):
    name = "n" * 60
    (Path(env["RUNNER_PROJECT_DIR"]) / "pipelines" / f"{name}_pipeline.py").write_text(
        f"from runner import el\npipeline = el({name!r}, extract=[], load=print)\n"
    )
    result = runner(env, "show", name)
    assert result.returncode == 3
    assert f"pipeline {name!r}: name: too long (60 characters, at most 48" in result.stderr


def test_the_console_script_runs_the_package(env):
    result = runner(env, "--version")
    assert result.returncode == 0
    assert result.stdout.startswith("runner 0.")


def test_usage_errors_in_process_too(env):
    from typer.testing import CliRunner

    from runner.cli import app

    missing = CliRunner().invoke(app, ["backfill", "run", "numbers", "--start", "2026-01-01"])
    assert missing.exit_code == 2
    assert missing.stderr.strip().endswith("(see `runner backfill run --help`)")
    bare = CliRunner().invoke(app, ["backfill"])
    assert bare.exit_code == 2
    assert "Commands:" in bare.output  # a bare group shows its help
    assert CliRunner().invoke(app, ["--help"]).exit_code == 0

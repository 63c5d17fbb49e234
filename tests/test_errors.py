from runner.errors import (
    ConfigError,
    ExitCode,
    FatalError,
    InterruptedRunError,
    PipelineDefinitionError,
    RetriableError,
    RunnerError,
    WarehouseUnavailableError,
)


def test_every_error_maps_to_a_documented_exit_code():
    assert ConfigError("x").exit_code == ExitCode.CONFIG == 3
    assert PipelineDefinitionError("x").exit_code == ExitCode.CONFIG
    assert FatalError("x").exit_code == ExitCode.FAILED == 1
    assert RetriableError("x").exit_code == ExitCode.TEMPFAIL == 75
    assert WarehouseUnavailableError("x").retriable
    assert not FatalError("x").retriable
    assert InterruptedRunError("x").exit_code == ExitCode.INTERRUPTED == 130
    assert all(issubclass(e, RunnerError) for e in (ConfigError, FatalError, RetriableError))


def test_pipeline_errors_carry_where_they_happened():
    err = FatalError("bad row", step="validate")
    err.with_context(pipeline="orders", step="ignored", window="a/b")
    assert str(err) == "bad row [pipeline=orders step=validate window=a/b]"
    assert str(FatalError("plain")) == "plain"


def test_printable_keeps_a_message_on_one_harmless_line():
    from runner.errors import printable

    assert printable("bad row\n\x1b[2Jcleared\u2028x") == "bad row\\n\\x1b[2Jcleared\\u2028x"
    assert printable("naïve résumé: ok") == "naïve résumé: ok"

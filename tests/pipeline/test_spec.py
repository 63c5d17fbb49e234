import pytest

from runner.errors import PipelineDefinitionError
from runner.pipeline.factory import el
from runner.pipeline.spec import build_spec, check_cron


@pytest.mark.parametrize("cron", ["*/15 * * * *", "0 2 * * 1-5", "@daily", "  0   3 * * *  "])
def test_valid_schedules_are_normalised(cron):
    assert check_cron(cron) == " ".join(cron.split())


@pytest.mark.parametrize("cron", ["61 * * * *", "* * * *", "0 0 * * * *", "every day", "@often"])
def test_invalid_schedules_are_refused_at_declaration(cron):
    with pytest.raises(PipelineDefinitionError) as info:
        el("orders", schedule=cron, extract=[], load=lambda b: None)
    message = str(info.value)
    assert "orders" in message
    assert "schedule" in message
    assert "\n" not in message


def test_names_time_zones_and_resources_are_checked():
    with pytest.raises(PipelineDefinitionError, match="name: must be lower-case"):
        build_spec(name="Orders")
    with pytest.raises(PipelineDefinitionError, match="unknown time zone"):
        build_spec(name="orders", timezone="Mars/Olympus")
    with pytest.raises(PipelineDefinitionError, match="Kubernetes quantity"):
        build_spec(name="orders", resources={"memory_limit": "lots"})
    with pytest.raises(PipelineDefinitionError, match="timeout_seconds"):
        build_spec(name="orders", timeout_seconds=0)
    spec = build_spec(
        name="orders", timezone="Europe/Berlin", resources={"cpu_request": "500m"}, tags=("a",)
    )
    assert spec.zone.key == "Europe/Berlin"
    assert spec.resources.cpu_request == "500m"


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("0 0 32 * *", "day-of-month 32 out of range (1-31)"),
        ("61 * * * *", "minute 61 out of range (0-59)"),
        ("0 24 * * *", "hour 24 out of range (0-23)"),
        ("0 0 * 13 *", "month 13 out of range (1-12)"),
        ("0 0 * * 7", "day-of-week 7 out of range (0-6, Sunday is 0)"),
        ("0 0 0 * *", "day-of-month 0 out of range (1-31)"),
        ("5-1 * * * *", "minute range '5-1' runs backwards (5 is after 1)"),
        ("*/0 * * * *", "minute step must be at least 1, not 0"),
        ("*/x * * * *", "minute step 'x' is not a number"),
        ("0 0 * foo *", "month 'foo' is not a number (1-12) or a name (jan-dec)"),
        ("0 0 L * *", "day-of-month 'L' is not a number (1-31)"),
        ("0 0 * * 1#2", "day-of-week '1#2' is not a number (0-6) or a name (sun-sat)"),
        ("? * * * *", "minute '?' is not a number (0-59)"),
        ("1,,2 * * * *", "minute '1,,2' has an empty list item"),
        ("* * * *", "expected five fields 'minute hour day-of-month month day-of-week'"),
        ("0 0 * * * *", "got 6"),
        ("@often", "unknown macro '@often'"),
        ("@Daily", "unknown macro '@Daily'"),
    ],
)
def test_a_bad_cron_names_the_field_and_the_problem(cron, problem):
    with pytest.raises(PipelineDefinitionError) as info:
        el("orders", schedule=cron, extract=[], load=lambda b: None)
    assert str(info.value).startswith(
        f"pipeline 'orders': schedule: invalid cron schedule {cron!r}: "
    )
    assert problem in str(info.value)


@pytest.mark.parametrize(
    "cron", ["0 0 ? * mon-fri", "0 9 * JAN-mar SUN", "3/5 * * * *", "0 0,12 1-15/2 * *", "@weekly"]
)
def test_what_a_cronjob_accepts_is_accepted(cron):
    assert check_cron(cron) == cron


def test_a_name_over_48_characters_says_so_and_names_it():
    assert build_spec(name="n" * 48).name == "n" * 48
    with pytest.raises(PipelineDefinitionError) as info:
        build_spec(name="n" * 49)
    assert str(info.value) == (
        f"pipeline {'n' * 49!r}: name: too long (49 characters, at most 48: Kubernetes "
        "object names are built from it)"
    )


def test_catchup_defaults_to_three_and_is_checked_where_it_could_never_act():
    assert build_spec(name="x", schedule="0 * * * *").catchup == 3
    assert build_spec(name="x", schedule="0 * * * *", catchup=0).catchup == 0
    assert build_spec(name="x", incremental=True, schedule="0 * * * *").catchup == 3  # unused
    assert build_spec(name="x", incremental=True, catchup=0).catchup == 0
    for fields, problem in [
        ({"schedule": "0 * * * *", "catchup": -1}, "catchup: Input should be greater than"),
        ({"schedule": "0 * * * *", "catchup": 101}, "catchup: Input should be less than"),
        ({"schedule": "0 * * * *", "catchup": True}, "catchup: Input should be a valid integer"),
        ({"schedule": "0 * * * *", "catchup": "3"}, "catchup: Input should be a valid integer"),
        (
            {"schedule": "0 * * * *", "incremental": True, "catchup": 2},
            "catchup: incremental pipelines catch up through their watermark",
        ),
        ({"catchup": 2}, "catchup: a pipeline without a schedule has no scheduled windows"),
    ]:
        with pytest.raises(PipelineDefinitionError, match=problem):
            build_spec(name="x", **fields)

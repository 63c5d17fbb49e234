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

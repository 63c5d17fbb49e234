import threading
import time

import pyarrow as pa
import pytest

from runner import (
    ConfigError,
    FatalError,
    Loader,
    RetriableError,
    conditional,
    el,
    etl,
    parallel,
    sequential,
)
from runner.errors import InterruptedRunError, PipelineDefinitionError


def collect(store, key):
    def load(batch):
        store.setdefault(key, []).extend(batch.to_pylist())

    load.__name__ = f"load_{key}"
    return load


def rows(n, start=0):
    return [{"i": i} for i in range(start, start + n)]


def test_etl_runs_transforms_in_order_and_drops_empty_batches(make_context):
    out = {}

    def keep_even(batch):
        return batch.filter(pa.compute.equal(pa.compute.bit_wise_and(batch["i"], 1), 0))

    def nothing_above_5(batch, ctx):
        assert ctx.pipeline == "p"
        return batch.filter(pa.compute.less(batch["i"], 5))

    p = etl("p", extract=rows(20), transform=[keep_even, nothing_above_5], load=collect(out, "p"))
    ctx = make_context(
        pipeline="p", settings=make_context().settings.model_copy(update={"batch_rows": 4})
    )
    p.run(ctx)
    assert out["p"] == [{"i": 0}, {"i": 2}, {"i": 4}]
    stats = ctx.node_stats
    assert (stats.rows_extracted, stats.rows_loaded, stats.batches, stats.status) == (
        20,
        3,
        5,
        "succeeded",
    )


def test_step_errors_name_pipeline_step_and_window(make_context):
    def broken(batch):
        raise KeyError("amount")

    p = etl("p", extract=rows(3), transform=[broken], load=lambda b: None)
    with pytest.raises(FatalError) as info:
        p.run(make_context(pipeline="p"))
    message = str(info.value)
    assert "KeyError: 'amount'" in message
    assert "pipeline=p step=broken window=2026-01-01T00:00:00+00:00/2026-01-02" in message


def test_loader_is_told_whether_the_flow_succeeded(make_context):
    calls = []

    class Recording(Loader):
        def open(self, ctx):
            calls.append("open")

        def write(self, batch, ctx):
            calls.append("write")
            if batch.num_rows and batch["i"][0].as_py() >= 2:
                raise RetriableError("server busy")

        def close(self, ctx, *, success):
            calls.append(f"close:{success}")

    settings = make_context().settings.model_copy(update={"batch_rows": 2})
    p = el("p", extract=rows(6), load=Recording())
    with pytest.raises(RetriableError, match=r"server busy \[pipeline=p step=Recording"):
        p.run(make_context(pipeline="p", settings=settings))
    assert calls == ["open", "write", "write", "close:False"]


def test_cancellation_stops_between_batches(make_context):
    seen = []
    cancel = threading.Event()

    def extract():
        for i in range(10):
            if i == 3:
                cancel.set()
            yield {"i": i}

    settings = make_context().settings.model_copy(update={"batch_rows": 1})
    ctx = make_context(pipeline="p", cancel=cancel, settings=settings)
    with pytest.raises(InterruptedRunError):
        el("p", extract=extract, load=lambda b: seen.append(b.num_rows)).run(ctx)
    assert len(seen) == 3
    assert ctx.node_stats.status == "cancelled"


def test_sequential_stops_at_the_first_failure(make_context):
    out = {}

    def fail(batch):
        raise FatalError("no")

    p = sequential(
        "seq",
        steps=[
            el("a", extract=rows(1), load=collect(out, "a")),
            el("b", extract=rows(1), load=fail),
            el("c", extract=rows(1), load=collect(out, "c")),
        ],
    )
    ctx = make_context(pipeline="seq")
    with pytest.raises(FatalError, match=r"pipeline=b"):
        p.run(ctx)
    assert set(out) == {"a"}
    assert ctx.stats["b"].status == "failed"
    assert ctx.stats["c"].status == "skipped"
    assert ctx.stats["seq"].status == "failed"


def test_parallel_respects_its_bound_and_runs_everything(make_context):
    running = 0
    peak = 0
    lock = threading.Lock()

    def slow_load(batch):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    children = [el(f"c{i}", extract=rows(1), load=slow_load) for i in range(6)]
    ctx = make_context(pipeline="par")
    parallel("par", steps=children, max_workers=2).run(ctx)
    assert peak == 2
    assert all(ctx.stats[f"c{i}"].status == "succeeded" for i in range(6))


@pytest.mark.parametrize(
    ("policy", "ran_after_failure"), [("fail_fast", False), ("continue", True)]
)
def test_parallel_failure_policies(make_context, policy, ran_after_failure):
    out = {}

    def fail(batch):
        raise FatalError("bad input")

    children = [
        el("first", extract=rows(1), load=fail),
        el("second", extract=rows(1), load=collect(out, "second")),
    ]
    with pytest.raises(FatalError, match="bad input"):
        parallel("par", steps=children, max_workers=1, on_failure=policy).run(
            make_context(pipeline="par")
        )
    assert ("second" in out) is ran_after_failure


def test_parallel_aggregates_several_failures(make_context):
    def transient(batch):
        raise RetriableError("timeout")

    children = [el(f"c{i}", extract=rows(1), load=transient) for i in range(3)]
    with pytest.raises(RetriableError, match="3 of 3 parallel children failed"):
        parallel("par", steps=children, on_failure="continue").run(make_context(pipeline="par"))


def test_conditional_picks_a_branch_from_the_context(make_context):
    out = {}
    p = conditional(
        "cond",
        when=lambda ctx: ctx.params.get("mode") == "full",
        then=el("full", extract=rows(2), load=collect(out, "full")),
        otherwise=el("incremental", extract=rows(1), load=collect(out, "incremental")),
    )
    ctx = make_context(pipeline="cond", params={"mode": "full"})
    p.run(ctx)
    assert set(out) == {"full"}
    assert ctx.stats["cond"].branch == "full"
    p.run(make_context(pipeline="cond"))
    assert set(out) == {"full", "incremental"}

    keyed = conditional(
        "keyed",
        when=lambda ctx: ctx.params.get("region"),
        branches={"eu": el("eu", extract=rows(1), load=collect(out, "eu"))},
    )
    ctx = make_context(pipeline="keyed", params={"region": "us"})
    keyed.run(ctx)  # no branch, no default: nothing runs
    assert "eu" not in out
    assert ctx.stats["keyed"].branch is None


def test_conditional_predicate_errors_are_fatal(make_context):
    p = conditional("cond", when=lambda ctx: 1 / 0, then=el("x", extract=[], load=lambda b: None))
    with pytest.raises(FatalError, match="ZeroDivisionError"):
        p.run(make_context(pipeline="cond"))


def test_declaration_errors_are_clear():
    leaf = el("leaf", extract=[], load=lambda b: None)
    with pytest.raises(PipelineDefinitionError, match="used by more than one step"):
        sequential("seq", steps=[leaf, leaf])
    with pytest.raises(PipelineDefinitionError, match="needs steps"):
        parallel("par", steps=[])
    with pytest.raises(PipelineDefinitionError, match="on_failure must be one of"):
        parallel("par", steps=[leaf], on_failure="maybe")
    with pytest.raises(PipelineDefinitionError, match="max_workers"):
        parallel("par", steps=[leaf], max_workers=0)
    with pytest.raises(PipelineDefinitionError, match="not a pipeline"):
        sequential("seq", steps=[lambda: None])
    with pytest.raises(PipelineDefinitionError, match="takes 3 positional arguments"):
        el("x", extract=[], load=lambda a, b, c: None)
    with pytest.raises(PipelineDefinitionError, match="load must be a Loader or a function"):
        el("x", extract=[], load=42)
    with pytest.raises(PipelineDefinitionError, match="then="):
        conditional("c", when=lambda ctx: True)
    assert issubclass(PipelineDefinitionError, ConfigError)


def test_describe_shows_the_tree():
    p = sequential(
        "seq",
        schedule="0 * * * *",
        description="demo",
        steps=[el("a", extract=[], load=lambda b: None)],
    )
    described = p.describe()
    assert described["kind"] == "sequential"
    assert described["schedule"] == "0 * * * *"
    assert described["steps"][0]["extract"] == "iterable"
    assert described["steps"][0]["load"] == "<lambda>"

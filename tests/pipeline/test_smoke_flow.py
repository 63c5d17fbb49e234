import pyarrow as pa

from runner.pipeline.factory import etl


def test_function_steps_flow_through_bounded_batches(make_context):
    written = []

    def extract(ctx):
        for i in range(10):
            yield {"id": i, "x": i * 2}

    def double(batch):
        return batch.set_column(1, "x", pa.compute.multiply(batch.column("x"), 2))

    def load(batch, ctx):
        written.append(batch)

    p = etl("t", extract=extract, transform=[double], load=load)
    ctx = make_context(pipeline="t")
    ctx.settings  # noqa: B018
    p.run(ctx)
    rows = pa.Table.from_batches(written).to_pylist()
    assert [r["x"] for r in rows] == [i * 4 for i in range(10)]
    assert ctx.node_stats.rows_loaded == 10

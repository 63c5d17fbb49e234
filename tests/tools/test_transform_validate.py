import json
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum, IntEnum, StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

import pyarrow as pa
import pytest
from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
    PastDate,
    computed_field,
    create_model,
    field_validator,
)

from runner.errors import ConfigError, FatalError, ValidationFailedError
from runner.pipeline.factory import etl
from runner.tools.transform.validate import Validate, validate


class Order(BaseModel):
    id: int
    customer: str
    qty: int
    price: float
    paid: bool = False
    note: str | None = None


class Color(StrEnum):
    RED = "red"


class Line(BaseModel):
    sku: str


class Wide(BaseModel):
    at: datetime
    day: date
    amount: Decimal
    money: Annotated[Decimal, Field(max_digits=18, decimal_places=4)]
    maybe: int | None = None
    tags: list[str] = []
    line: Line | None = None
    color: Color = Color.RED
    kind: Literal["a", "b"] = "a"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def year(self) -> int:
        return self.at.year


def rows_batch(rows):
    return pa.RecordBatch.from_pylist(rows)


def good(i):
    """A row as a CSV source gives it: every value a string, to be coerced by the model."""
    return {"id": str(i), "customer": f"c{i}", "qty": str(i % 3), "price": "1.5", "x": "dropped"}


def quarantined(warehouse):
    return warehouse.query_rows(
        "SELECT step, reason, record, pipeline FROM _quarantine ORDER BY record"
    )


def test_schema_is_derived_from_the_model_at_declaration():
    assert validate(Order).schema == pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("customer", pa.string(), nullable=False),
            pa.field("qty", pa.int64(), nullable=False),
            pa.field("price", pa.float64(), nullable=False),
            pa.field("paid", pa.bool_(), nullable=False),
            pa.field("note", pa.string(), nullable=True),
        ]
    )
    wide = validate(Wide).schema
    assert wide.field("at").type == pa.timestamp("us", tz="UTC")
    assert wide.field("day").type == pa.date32()
    assert wide.field("amount").type == pa.decimal128(38, 9)
    assert wide.field("money").type == pa.decimal128(18, 4)
    assert wide.field("maybe").type == pa.int64()
    assert wide.field("maybe").nullable
    for name in ("tags", "line", "color", "kind"):
        assert wide.field(name).type == pa.string(), name
    assert wide.names[-1] == "year"


class Level(IntEnum):
    LOW = 1


class Shape(Enum):
    ROUND = (1, 2)


class Size(Enum):
    BIG = 3


@pytest.mark.parametrize(
    ("annotation", "arrow_type", "nullable"),
    [
        (int | None, pa.int64(), True),
        (Annotated[int, Field(gt=0)], pa.int64(), False),
        (
            Annotated[Decimal, Field(max_digits=12, decimal_places=3)] | None,
            pa.decimal128(12, 3),
            True,
        ),
        (Annotated[Decimal, Field(max_digits=50, decimal_places=3)], pa.decimal256(50, 3), False),
        (Annotated[Decimal, Field(decimal_places=2)], pa.decimal128(38, 2), False),
        (AwareDatetime, pa.timestamp("us", tz="UTC"), False),
        (PastDate, pa.date32(), False),
        (Level, pa.int64(), False),
        (Shape, pa.string(), False),
        (Literal[1, 2], pa.int64(), False),
        (Literal[True], pa.bool_(), False),
        (Literal["a", 1], pa.string(), False),
        (int | str, pa.string(), False),
        (int | str | None, pa.string(), True),
        (Any, pa.string(), True),
        (UUID, pa.string(), False),
        (dict[str, int], pa.string(), False),
    ],
)
def test_annotation_to_arrow_type(annotation, arrow_type, nullable):
    model = create_model("Dynamic", value=(annotation, ...))
    field = validate(model).schema.field("value")
    assert field.type == arrow_type
    assert field.nullable is nullable


def test_values_without_an_arrow_type_travel_as_text(make_context):
    class Loose(BaseModel):
        uid: UUID
        level: Level
        size: Size
        anything: Any = None
        mixed: int | str
        mapping: dict[str, int] | None = None

    uid = "12345678-1234-5678-1234-567812345678"
    batch = rows_batch([{"uid": uid, "level": 1, "size": 3, "anything": "x", "mixed": "7"}])
    row = validate(Loose).transform(batch, make_context()).to_pylist()[0]
    assert row == {
        "uid": uid,
        "level": 1,
        "size": "3",
        "anything": "x",
        "mixed": "7",
        "mapping": None,
    }


def test_valid_rows_leave_in_the_model_shape(make_context):
    batch = rows_batch([{"qty": "2", "customer": "x", "id": 7, "price": 3, "extra": 1}])
    assert batch.schema.field("qty").type == pa.string()
    out = validate(Order).transform(batch, make_context())
    assert out.schema == validate(Order).schema
    assert out.to_pylist() == [
        {"id": 7, "customer": "x", "qty": 2, "price": 3.0, "paid": False, "note": None}
    ]


def test_wide_model_values_are_converted(make_context):
    batch = rows_batch(
        [
            {
                "at": datetime(2026, 3, 1, 12, 30),  # naive: taken as UTC
                "day": "2026-03-01",
                "amount": "12.5",
                "money": Decimal("1.2345"),
                "tags": ["x", "y"],
                "line": {"sku": "S-1"},
            }
        ]
    )
    row = validate(Wide).transform(batch, make_context()).to_pylist()[0]
    assert row["at"] == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert row["day"] == date(2026, 3, 1)
    assert row["amount"] == Decimal("12.5")
    assert row["money"] == Decimal("1.2345")
    assert row["maybe"] is None
    assert json.loads(row["tags"]) == ["x", "y"]
    assert json.loads(row["line"]) == {"sku": "S-1"}
    assert row["color"] == "red"
    assert row["kind"] == "a"
    assert row["year"] == 2026


def test_aware_datetimes_are_stored_in_utc(make_context):
    class Event(BaseModel):
        at: datetime

    batch = rows_batch([{"at": "2026-03-01T12:00:00+02:00"}])
    out = validate(Event).transform(batch, make_context())
    assert out.column("at").to_pylist() == [datetime(2026, 3, 1, 10, 0, tzinfo=UTC)]


def test_decimal_that_does_not_fit_names_the_column(make_context):
    class Price(BaseModel):
        amount: Decimal

    batch = rows_batch([{"amount": "0.0000000001"}])
    with pytest.raises(
        FatalError, match=r"'amount' do not fit decimal128\(38, 9\).*decimal_places"
    ):
        validate(Price).transform(batch, make_context())


def test_fail_names_field_and_row_number_of_the_run(make_context):
    step = validate(Order)
    ctx = make_context()
    assert step.transform(rows_batch([good(1), good(2)]), ctx).num_rows == 2
    bad = rows_batch([good(3), {**good(4), "qty": "many"}, {**good(5), "customer": None}])
    assert bad.num_rows == 3
    with pytest.raises(FatalError) as info:
        step.transform(bad, ctx)
    message = str(info.value)
    assert "row 4 of the run (index 1 of its batch)" in message
    assert "qty: Input should be a valid integer" in message
    assert "customer" not in message  # only the first invalid row is reported
    assert not isinstance(info.value, ValidationFailedError)


def test_skip_quarantines_invalid_rows_with_reasons(make_context, warehouse):
    ctx = make_context(pipeline="orders")
    batch = rows_batch(
        [
            good(1),
            {"id": "2", "customer": "c2", "qty": "x", "price": "free"},
            good(3),
            {"id": "4", "qty": "1", "price": "1.0"},  # customer: null
        ]
    )
    out = validate(Order, on_error="skip").transform(batch, ctx)
    assert out.column("id").to_pylist() == [1, 3]
    rows = quarantined(warehouse)
    assert len(rows) == 2
    by_id = {json.loads(r[2])["id"]: r for r in rows}
    step, reason, record, pipeline = by_id["2"]
    assert step == "orders.validate"
    assert pipeline == "orders"
    assert reason.startswith("qty: Input should be a valid integer")
    assert "; price: Input should be a valid number" in reason
    assert "\n" not in reason
    assert json.loads(record) == {
        "id": "2",
        "customer": "c2",
        "qty": "x",
        "price": "free",
        "x": None,
    }
    assert by_id["4"][1] == "customer: Input should be a valid string"
    assert ctx.node_stats.rows_quarantined == 2


def test_absent_columns_take_defaults_or_are_reported_missing(make_context, warehouse):
    batch = rows_batch([{"id": "1", "qty": "2", "price": "1.0"}])  # no customer/paid/note
    assert validate(Order, on_error="skip").transform(batch, make_context()) is None
    assert quarantined(warehouse)[0][1] == "customer: Field required"
    batch = rows_batch([{"id": "1", "customer": "c", "qty": "2", "price": "1.0"}])
    out = validate(Order).transform(batch, make_context())
    assert out.to_pylist()[0]["paid"] is False


def test_skip_with_every_row_invalid_drops_the_batch(make_context, warehouse):
    batch = rows_batch([{"id": "a"}, {"id": "b"}])
    assert validate(Order, on_error="skip").transform(batch, make_context()) is None
    assert len(quarantined(warehouse)) == 2


def test_model_level_errors_are_reported(make_context, warehouse):
    class Positive(BaseModel):
        n: int

        @field_validator("n")
        @classmethod
        def positive(cls, value: int) -> int:
            if value <= 0:
                raise ValueError("must be positive")
            return value

    out = validate(Positive, on_error="skip").transform(
        rows_batch([{"n": 1}, {"n": -1}]), make_context()
    )
    assert out.column("n").to_pylist() == [1]
    assert quarantined(warehouse)[0][1] == "n: Value error, must be positive"


def test_max_invalid_count_is_for_the_whole_run(make_context, warehouse):
    step = validate(Order, on_error="skip", max_invalid=2)
    ctx = make_context()
    one_bad = rows_batch([good(1), {"id": "bad"}])
    step.transform(one_bad, ctx)
    step.transform(one_bad, ctx)  # 2 invalid: still allowed
    with pytest.raises(ValidationFailedError) as info:
        step.transform(one_bad, ctx)
    message = str(info.value)
    assert "3 of 6 rows seen so far are invalid" in message
    assert "(2 rows)" in message
    assert len(quarantined(warehouse)) == 3  # quarantined before failing
    # a new run starts from zero
    assert step.transform(one_bad, make_context()).num_rows == 1


def test_max_invalid_fraction_of_rows_seen(make_context, warehouse):
    step = validate(Order, on_error="skip", max_invalid=0.25)
    ctx = make_context()
    step.transform(rows_batch([good(i) for i in range(7)] + [{"id": "x"}]), ctx)  # 1/8
    step.transform(rows_batch([good(8), {"id": "y"}]), ctx)  # 2/10
    with pytest.raises(
        ValidationFailedError, match=r"3 of 11 rows seen so far .*25\.00% of the rows"
    ):
        step.transform(rows_batch([{"id": "z"}]), ctx)  # 3/11 > 25%


def test_max_invalid_zero_fails_on_any_invalid_row(make_context, warehouse):
    step = validate(Order, on_error="skip", max_invalid=0)
    ctx = make_context()
    assert step.transform(rows_batch([good(1)]), ctx).num_rows == 1
    with pytest.raises(ValidationFailedError, match="1 of 2 rows"):
        step.transform(rows_batch([{"id": "x"}]), ctx)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"on_error": "ignore"}, "on_error must be 'fail' or 'skip'"),
        ({"max_invalid": 3}, "max_invalid needs on_error='skip'"),
        ({"on_error": "skip", "max_invalid": 1.5}, "between 0 and 1"),
        ({"on_error": "skip", "max_invalid": 0.0}, "between 0 and 1"),
        ({"on_error": "skip", "max_invalid": -1}, "0 or more"),
        ({"on_error": "skip", "max_invalid": True}, "must be a number"),
        ({"on_error": "skip", "max_invalid": "5"}, "must be a number"),
    ],
)
def test_bad_declarations(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        validate(Order, **kwargs)


def test_model_must_be_a_pydantic_model():
    with pytest.raises(ConfigError, match="pydantic model class"):
        validate(dict)  # type: ignore[arg-type]


def test_describe():
    assert isinstance(validate(Order), Validate)
    assert validate(Order).describe() == "validate(Order, on_error=fail)"
    assert (
        validate(Order, on_error="skip", max_invalid=0.01).describe()
        == "validate(Order, on_error=skip, max_invalid=0.01)"
    )


def test_validate_in_a_flow_quarantines_into_the_warehouse(make_context, warehouse):
    loaded = []
    source = [good(i) if i % 5 else {**good(i), "price": "n/a"} for i in range(1, 21)]
    pipeline = etl(
        "validated",
        extract=source,
        transform=[validate(Order, on_error="skip", max_invalid=0.5)],
        load=loaded.append,
    )
    ctx = make_context(pipeline="validated")
    pipeline.run(ctx)
    ids = pa.Table.from_batches(loaded).column("id").to_pylist()
    assert ids == [i for i in range(1, 21) if i % 5]
    rows = quarantined(warehouse)
    assert sorted(int(json.loads(r[2])["id"]) for r in rows) == [5, 10, 15, 20]
    assert {r[0] for r in rows} == {"validated.validate"}
    assert ctx.node_stats.rows_quarantined == 4
    assert ctx.node_stats.rows_loaded == 16


def test_validation_failure_in_a_flow_fails_the_run(make_context, warehouse):
    pipeline = etl(
        "strict",
        extract=[good(1), {"id": "nope"}],
        transform=[validate(Order)],
        load=lambda batch: None,
    )
    ctx = make_context(pipeline="strict")
    with pytest.raises(FatalError, match=r"row 2 of the run .*id: Input should be a valid integer"):
        pipeline.run(ctx)
    assert ctx.node_stats.status == "failed"

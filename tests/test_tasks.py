"""TaskDef: Python call -> JSON payload (payload_from_call), payload -> handler arguments (call_arguments), the
payload check at enqueue (validate_payload) and its JSON Schema (payload_schema); due times (due_time_ms)."""

from __future__ import annotations

import asyncio
import enum
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pydantic
import pytest

from tickr.core.errors import Permanent, ValidationError
from tickr.store import codec
from tickr.tasks import TaskDef, TaskOptions, due_time_ms

# Each handler returns what it was called with; every signature exists as a sync and an async function.


def add(a, b=2):
    return (a, b)


async def add_async(a, b=2):
    return (a, b)


def gather(first, *rest):
    return (first, rest)


async def gather_async(first, *rest):
    return (first, rest)


def posonly(a, b=2, /, c=3):
    return (a, b, c)


async def posonly_async(a, b=2, /, c=3):
    return (a, b, c)


def kwonly(a, *, flag=False, limit):
    return (a, flag, limit)


async def kwonly_async(a, *, flag=False, limit):
    return (a, flag, limit)


def extra(a, **options):
    return (a, options)


async def extra_async(a, **options):
    return (a, options)


def everything(a, /, b, *args, c, d=4, **kw):
    return (a, b, args, c, d, kw)


async def everything_async(a, /, b, *args, c, d=4, **kw):
    return (a, b, args, c, d, kw)


def defaults_then_varargs(a=1, b=2, *args):
    return (a, b, args)


async def defaults_then_varargs_async(a=1, b=2, *args):
    return (a, b, args)


HANDLERS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "add": (add, add_async),
    "gather": (gather, gather_async),
    "posonly": (posonly, posonly_async),
    "kwonly": (kwonly, kwonly_async),
    "extra": (extra, extra_async),
    "everything": (everything, everything_async),
    "defaults_then_varargs": (defaults_then_varargs, defaults_then_varargs_async),
}


@pytest.fixture(params=["sync", "async"])
def flavor(request: pytest.FixtureRequest) -> str:
    return request.param


def make(name: str, flavor: str) -> TaskDef:
    sync_fn, async_fn = HANDLERS[name]
    return TaskDef(name=name, fn=async_fn if flavor == "async" else sync_fn, options=TaskOptions())


def call(task: TaskDef, *args: Any, **kwargs: Any) -> Any:
    result = task.fn(*args, **kwargs)
    return asyncio.run(result) if task.is_async else result


def run(task: TaskDef, payload: dict[str, Any]) -> Any:
    """What the worker does with a payload: build the arguments and call the handler."""
    args, kwargs = task.call_arguments(payload)
    return call(task, *args, **kwargs)


def test_is_async_detects_coroutine_functions(flavor: str) -> None:
    assert make("add", flavor).is_async is (flavor == "async")


# --------------------------------------------------------------------------- call -> payload -> call

ROUND_TRIPS = [
    ("add", (1,), {}, {"a": 1}),
    ("add", (1, 3), {}, {"a": 1, "b": 3}),
    ("add", (), {"b": 3, "a": 1}, {"a": 1, "b": 3}),
    ("gather", (1,), {}, {"first": 1}),
    ("gather", (1, 2, 3), {}, {"first": 1, "rest": [2, 3]}),
    ("posonly", (1,), {}, {"a": 1}),
    ("posonly", (1, 5, 6), {}, {"a": 1, "b": 5, "c": 6}),
    ("posonly", (1, 5), {"c": 6}, {"a": 1, "b": 5, "c": 6}),
    ("kwonly", (1,), {"limit": 10}, {"a": 1, "limit": 10}),
    ("kwonly", (), {"a": 1, "flag": True, "limit": 10}, {"a": 1, "flag": True, "limit": 10}),
    ("extra", (1,), {}, {"a": 1}),
    ("extra", (1,), {"x": 2, "y": [3]}, {"a": 1, "x": 2, "y": [3]}),
    ("everything", (1, 2), {"c": 5}, {"a": 1, "b": 2, "c": 5}),
    ("everything", (1, 2, 3, 4), {"c": 5, "d": 6, "z": 7}, {"a": 1, "b": 2, "args": [3, 4], "c": 5, "d": 6, "z": 7}),
    ("defaults_then_varargs", (), {}, {}),
    ("defaults_then_varargs", (7, 8, 9), {}, {"a": 7, "b": 8, "args": [9]}),
]


@pytest.mark.parametrize(("name", "args", "kwargs", "payload"), ROUND_TRIPS)
def test_payload_names_every_argument_and_runs_like_the_call(
    flavor: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], payload: dict[str, Any]
) -> None:
    task = make(name, flavor)
    built = task.payload_from_call(args, kwargs)
    assert built == payload
    assert codec.loads(codec.dumps(built)) == payload  # *args become a JSON list, not a tuple
    assert run(task, codec.loads(codec.dumps(built))) == call(task, *args, **kwargs)


# --------------------------------------------------------------------------- payload -> arguments


@pytest.mark.parametrize(
    ("name", "payload", "expected"),
    [
        ("add", {"a": 1}, ((), {"a": 1})),
        ("add", {"b": 3, "a": 1}, ((), {"a": 1, "b": 3})),
        # positional-only parameters named in the payload are passed by position
        ("posonly", {"a": 1, "b": 5, "c": 6}, ((1, 5), {"c": 6})),
        # parameters before *args are passed by position, the list is spread after them
        ("gather", {"first": 1, "rest": [2, 3]}, ((1, 2, 3), {})),
        ("kwonly", {"a": 1, "limit": 10}, ((), {"a": 1, "limit": 10})),
        # keys that name no parameter go to **kwargs
        ("extra", {"a": 1, "x": 2}, ((), {"a": 1, "x": 2})),
        ("everything", {"a": 1, "b": 2, "args": [3], "c": 5, "z": 7}, ((1, 2, 3), {"c": 5, "z": 7})),
    ],
)
def test_call_arguments_split(flavor: str, name: str, payload: dict[str, Any], expected: tuple[Any, Any]) -> None:
    task = make(name, flavor)
    assert task.call_arguments(payload) == expected


def test_call_arguments_does_not_change_the_payload(flavor: str) -> None:
    payload = {"a": 1, "b": 2, "args": [3], "c": 5, "z": 7}
    make("everything", flavor).call_arguments(payload)
    assert payload == {"a": 1, "b": 2, "args": [3], "c": 5, "z": 7}


def test_defaults_fill_absent_parameters(flavor: str) -> None:
    assert run(make("posonly", flavor), {"a": 1}) == (1, 2, 3)
    assert run(make("kwonly", flavor), {"a": 1, "limit": 0}) == (1, False, 0)
    assert run(make("everything", flavor), {"a": 1, "b": 2, "c": 3}) == (1, 2, (), 3, 4, {})


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("add", {}),  # missing required
        ("add", {"a": 1, "zzz": 2}),  # unknown key, no **kwargs
        ("add", {"a": 1, "args": [2]}),  # no *args to take a list
        ("posonly", {"c": 3}),  # missing positional-only, no default
        ("kwonly", {"a": 1}),  # missing keyword-only
        ("everything", {"a": 1, "b": 2}),  # missing keyword-only c
    ],
)
def test_payload_that_does_not_fit_is_permanent(flavor: str, name: str, payload: dict[str, Any]) -> None:
    with pytest.raises(Permanent, match=f"payload does not match task '{name}'"):
        make(name, flavor).call_arguments(payload)


# --------------------------------------------------------------------------- bad Python calls


@pytest.mark.parametrize(
    ("name", "args", "kwargs", "message"),
    [
        ("add", (1, 2, 3), {}, "too many positional arguments"),
        ("add", (1,), {"c": 3}, "unexpected keyword argument 'c'"),
        ("add", (), {}, "missing a required argument: 'a'"),
        ("add", (1,), {"a": 2}, "multiple values for argument 'a'"),
        ("posonly", (), {"a": 1}, "positional"),
        ("kwonly", (1, True, 10), {}, "too many positional arguments"),
        ("kwonly", (1,), {}, "missing a required argument: 'limit'"),
    ],
)
def test_bad_calls_raise_type_error_naming_the_task(
    flavor: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=f"task '{name}': .*{message}"):
        make(name, flavor).payload_from_call(args, kwargs)


# --------------------------------------------------------------------------- raw-payload handlers


def raw(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


def test_raw_payload_handler_takes_one_dict_copied() -> None:
    task = TaskDef(name="raw", fn=raw, options=TaskOptions(), raw_payload=True)
    original = {"x": 1}
    payload = task.payload_from_call((original,), {})
    assert payload == original and payload is not original
    assert task.call_arguments(payload) == ((payload,), {})


@pytest.mark.parametrize(("args", "kwargs"), [((), {}), (({"x": 1}, {}), {}), (("x",), {}), (({"x": 1},), {"y": 2})])
def test_raw_payload_handler_refuses_anything_else(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    task = TaskDef(name="raw", fn=raw, options=TaskOptions(), raw_payload=True)
    with pytest.raises(TypeError, match="task 'raw' takes one payload dict"):
        task.payload_from_call(args, kwargs)


# --------------------------------------------------------------------------- known bugs


def test_keyword_before_varargs_keeps_its_parameter(flavor: str) -> None:
    task = make("defaults_then_varargs", flavor)
    payload = task.payload_from_call((), {"b": 3})
    assert payload == {"b": 3}
    assert run(task, payload) == call(task, b=3) == (1, 3, ())


@pytest.mark.parametrize(
    ("name", "payload", "expected"),
    [
        ("posonly", {"b": 5}, (1, 5, 3)),  # a has a default: a=1, b=5 (or Permanent), never a=5
        ("gather", {"rest": [2, 3]}, None),  # first is required: Permanent, never first=2
    ],
)
def test_skipped_positional_parameter_does_not_shift_values(
    flavor: str, name: str, payload: dict[str, Any], expected: Any
) -> None:
    task = make(name, flavor)
    try:
        result = run(task, payload)
    except Permanent:
        return
    assert result == expected


@pytest.mark.parametrize("value", [5, None, "ab", {"k": 1}])
def test_varargs_value_must_be_a_list(flavor: str, value: Any) -> None:
    with pytest.raises(Permanent):
        make("gather", flavor).call_arguments({"first": 1, "rest": value})


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((1, 2), {"c": 3, "a": 9}), ((1, 2, 3), {"c": 4, "args": 7})],
)
def test_var_keyword_key_colliding_with_a_parameter(flavor: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    task = make("everything", flavor)
    expected = call(task, *args, **kwargs)  # legal Python: the key goes to **kw
    try:
        payload = task.payload_from_call(args, kwargs)
    except TypeError:
        return  # refusing the call at enqueue is fine too
    assert run(task, payload) == expected


# --------------------------------------------------------------------------- payload models: the signature


def test_payloads_from_legal_calls_fit_the_signature(flavor: str) -> None:
    for name, args, kwargs, _ in ROUND_TRIPS:
        task = make(name, flavor)
        task.validate_payload(task.payload_from_call(args, kwargs))


@pytest.mark.parametrize(
    ("name", "payload", "field"),
    [
        ("add", {}, "payload.a"),
        ("add", {"a": 1, "zzz": 2}, "payload.zzz"),
        ("add", {"a": 1, "args": [2]}, "payload.args"),
        ("posonly", {"c": 3}, "payload.a"),
        ("kwonly", {"a": 1}, "payload.limit"),
        ("everything", {"a": 1, "b": 2}, "payload.c"),
        ("gather", {"first": 1, "rest": 5}, "payload.rest"),
        ("gather", {"first": 1, "rest": "ab"}, "payload.rest"),
    ],
)
def test_what_would_not_run_is_refused_at_enqueue(flavor: str, name: str, payload: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        make(name, flavor).validate_payload(payload)
    assert field in info.value.errors
    assert str(info.value).startswith(f"invalid {name} payload: {field}: ")


class Color(enum.Enum):
    RED = "red"


class Order(pydantic.BaseModel):
    sku: str
    quantity: int = 1


class Connection:
    """Not something pydantic can check: a parameter annotated with it takes anything."""


def typed(
    to: str,
    count: int = 1,
    *tags: str,
    when: datetime | None = None,
    limit: int = None,  # type: ignore[assignment]  # noqa: RUF013 (a None default also accepts null)
    color: Color = Color.RED,
    order: Order | None = None,
    conn: Connection | None = None,
    loose=None,
    **extra: float,
) -> None: ...


def unresolvable(a: NotImportedAnywhere, b: int) -> None: ...  # type: ignore[name-defined]  # noqa: F821


TYPED_OK: list[dict[str, Any]] = [
    {"to": "a@example.com"},
    {"to": "a", "count": 3, "tags": ["x", "y"], "when": "2030-01-01T00:00:00Z", "limit": None},
    {"to": "a", "color": "red", "order": {"sku": "A1", "quantity": 2}, "conn": {"any": "thing"}, "loose": [1, {}]},
    {"to": "a", "ratio": 0.5, "weight": 3},  # **extra: float takes ints too, as JSON does
]

TYPED_BAD: list[tuple[dict[str, Any], str]] = [
    ({}, "payload.to"),
    ({"to": 1}, "payload.to"),
    ({"to": "a", "count": "3"}, "payload.count"),  # strict: a string is not an int
    ({"to": "a", "count": True}, "payload.count"),
    ({"to": "a", "count": 1.5}, "payload.count"),
    ({"to": "a", "tags": ["x", 2]}, "payload.tags.1"),
    ({"to": "a", "when": "next tuesday"}, "payload.when"),
    ({"to": "a", "color": "blue"}, "payload.color"),
    ({"to": "a", "order": {"quantity": 2}}, "payload.order.sku"),
    ({"to": "a", "order": {"sku": "A1", "quantity": "2"}}, "payload.order.quantity"),
    ({"to": "a", "ratio": "half"}, "payload.ratio"),
]


def typed_task() -> TaskDef:
    return TaskDef(name="typed", fn=typed, options=TaskOptions())


@pytest.mark.parametrize("payload", TYPED_OK)
def test_annotations_accept_their_json_forms(payload: dict[str, Any]) -> None:
    typed_task().validate_payload(payload)


@pytest.mark.parametrize(("payload", "field"), TYPED_BAD)
def test_annotations_are_checked_strictly_naming_the_field(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        typed_task().validate_payload(payload)
    assert set(info.value.errors) == {field}


def test_validation_does_not_change_the_payload() -> None:
    payload = {"to": "a", "when": "2030-01-01T00:00:00Z", "color": "red"}
    typed_task().validate_payload(payload)
    assert payload == {"to": "a", "when": "2030-01-01T00:00:00Z", "color": "red"}


def test_an_annotation_that_cannot_be_resolved_accepts_anything() -> None:
    task = TaskDef(name="unresolvable", fn=unresolvable, options=TaskOptions())
    task.validate_payload({"a": object.__name__, "b": 1})
    with pytest.raises(ValidationError) as info:
        task.validate_payload({"a": 1, "b": "1"})
    assert set(info.value.errors) == {"payload.b"}


def test_payloads_deeper_than_the_json_parser_goes_are_still_checked() -> None:
    deep: Any = []
    for _ in range(240):
        deep = [deep]
    typed_task().validate_payload({"to": "a", "loose": deep})
    with pytest.raises(ValidationError):
        typed_task().validate_payload({"to": 1, "loose": deep})


# --------------------------------------------------------------------------- payload models: explicit


class Resize(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    image_id: str
    width: int = pydantic.Field(gt=0, le=8192)


def resize(image_id, width):  # the model, not the signature, is the check
    return (image_id, width)


def test_an_explicit_model_is_the_check() -> None:
    task = TaskDef(name="resize", fn=resize, options=TaskOptions(), payload_model=Resize)
    task.validate_payload({"image_id": "i1", "width": 10})
    with pytest.raises(ValidationError) as info:
        task.validate_payload({"image_id": "i1", "width": 0, "height": 5})
    assert set(info.value.errors) == {"payload.width", "payload.height"}
    assert task.call_arguments({"image_id": "i1", "width": 10}) == ((), {"image_id": "i1", "width": 10})


def test_payload_model_must_be_a_pydantic_model() -> None:
    with pytest.raises(TypeError, match="pydantic BaseModel"):
        TaskDef(name="x", fn=resize, options=TaskOptions(), payload_model=dict)  # type: ignore[arg-type]


def test_a_raw_payload_handler_without_a_model_takes_any_object() -> None:
    task = TaskDef(name="raw", fn=raw, options=TaskOptions(), raw_payload=True)
    task.validate_payload({"anything": [1, {"x": None}]})
    assert task.payload_schema() == {"additionalProperties": True, "type": "object"}


# --------------------------------------------------------------------------- payload_schema


def test_schema_of_a_signature() -> None:
    schema = typed_task().payload_schema()
    assert schema["title"] == "typed"
    assert schema["type"] == "object"
    assert schema["required"] == ["to"]
    assert schema["additionalProperties"] == {"type": "number"}
    props = schema["properties"]
    assert set(props) == {"to", "count", "tags", "when", "limit", "color", "order", "conn", "loose"}
    assert props["to"]["type"] == "string"
    assert props["count"] == {"title": "Count", "type": "integer", "default": 1}
    assert props["tags"]["items"] == {"type": "string"} and props["tags"]["default"] == []
    assert props["limit"]["default"] is None
    assert "default" not in props["color"]  # an Enum member is not JSON
    assert props["conn"] == {"default": None, "title": "Conn"}  # accepts anything
    json.dumps(schema)  # publishable as it is


def test_schema_of_a_closed_signature_refuses_other_keys() -> None:
    schema = make("add", "sync").payload_schema()
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["a"]


def test_schema_of_an_explicit_model_is_the_models() -> None:
    task = TaskDef(name="resize", fn=resize, options=TaskOptions(), payload_model=Resize)
    assert task.payload_schema() == Resize.model_json_schema()


def test_the_schema_agrees_with_the_check() -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    task = typed_task()
    validator = jsonschema_rs.validator_for(task.payload_schema())
    cases = [*((p, True) for p in TYPED_OK), *((p, False) for p, _ in TYPED_BAD if "when" not in p)]
    for payload, ok in cases:  # JSON Schema does not check date-time formats by default
        assert validator.is_valid(payload) is ok, payload


# --------------------------------------------------------------------------- due times


NOW = 1_800_000_000_000
EPOCH_2030 = 1_893_456_000_000  # 2030-01-01T00:00:00Z in ms


@pytest.mark.parametrize(
    ("run_at", "due"),
    [
        (datetime(2030, 1, 1, tzinfo=UTC), EPOCH_2030),
        (datetime(2030, 1, 1, 0, 0, 0, 1, tzinfo=UTC), EPOCH_2030 + 1),  # 1 µs past a ms: the next ms
        (datetime(2030, 1, 1, 0, 0, 0, 999, tzinfo=UTC), EPOCH_2030 + 1),
        (datetime(2030, 1, 1, 0, 0, 0, 1000, tzinfo=UTC), EPOCH_2030 + 1),
        (datetime(2030, 1, 1, 0, 0, 0, 1500, tzinfo=UTC), EPOCH_2030 + 2),
        (datetime(2030, 1, 1, 5, 30, 0, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))), EPOCH_2030 + 1),
        (datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), 0),  # ceil of -0.001 ms
        (1_893_456_000, EPOCH_2030),  # epoch seconds, int
        (1_893_456_000.0005, EPOCH_2030 + 1),
        (1.001, 1001),  # 1.001 * 1000 == 1000.9999999999999: flooring gave 1000
        (1.1, 1100),  # 1.1 * 1000 == 1100.0000000000002: a naive ceil gives 1101
        (0.0015, 2),
    ],
)
def test_run_at_rounds_up_to_the_millisecond(run_at: datetime | float, due: int) -> None:
    assert due_time_ms(None, run_at, NOW) == due


@pytest.mark.parametrize(("delay", "due"), [(0.0015, NOW + 2), (1.1, NOW + 1100), (0.001, NOW + 1), (2, NOW + 2000)])
def test_delay_rounds_up_to_the_millisecond(delay: float, due: int) -> None:
    assert due_time_ms(delay, None, NOW) == due


def test_no_delay_is_now() -> None:
    assert due_time_ms(0, None, NOW) is None
    assert due_time_ms(None, None, NOW) is None


@pytest.mark.parametrize(
    ("delay", "run_at", "field"),
    [
        (-1, None, "delay"),
        (math.nan, None, "delay"),
        (math.inf, None, "delay"),
        (1, 5.0, "delay"),
        (None, datetime(2030, 1, 1), "run_at"),  # naive
        (None, math.inf, "run_at"),
    ],
)
def test_bad_due_times_are_refused(delay: float | None, run_at: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        due_time_ms(delay, run_at, NOW)
    assert field in info.value.errors

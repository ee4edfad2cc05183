"""TaskDef: Python call -> JSON payload (payload_from_call) and payload -> handler arguments (call_arguments)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tickr.core.errors import Permanent
from tickr.store import codec
from tickr.tasks import TaskDef, TaskOptions

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

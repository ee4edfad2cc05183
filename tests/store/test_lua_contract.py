"""The Lua scripts' headers are their contract: KEYS counts match the Python wrappers, one vocabulary."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import pytest

from tickr.core.job import JobState
from tickr.store.keys import QueueKeys
from tickr.store.scripts import SCRIPT_NAMES, Scripts, lua_source

LUA_DIR = resources.files("tickr.store") / "lua"
QUEUE_SCRIPTS = tuple(name for name in SCRIPT_NAMES if not name.startswith(("schedule_", "events_", "queue_")))


def header_keys(name: str) -> int:
    text = (LUA_DIR / f"{name}.lua").read_text()
    return len(set(re.findall(r"^\s*KEYS\[(\d+)\]", text, re.MULTILINE)))


class _Capture:
    def __init__(self) -> None:
        self.calls: dict[str, list[str]] = {}

    async def __call__(self, name: str, keys: list[str], args: list[Any], client: Any) -> None:
        self.calls[name] = keys


@pytest.mark.parametrize("name", QUEUE_SCRIPTS)
async def test_wrapper_passes_exactly_the_declared_keys(name: str) -> None:
    scripts = Scripts.__new__(Scripts)
    capture = _Capture()
    scripts._run = capture  # type: ignore[method-assign]
    k = QueueKeys("q1")
    method = getattr(scripts, name)
    if name in ("cancel", "replay", "update"):
        await method(k, "id1", [])
    elif name == "dequeue":
        await method(k, "worker-1", [])
    else:
        await method(k, [])
    keys = capture.calls[name]
    assert len(keys) == header_keys(name), (
        f"{name}: wrapper passes {len(keys)} keys, header declares {header_keys(name)}"
    )
    assert all(key.startswith("tickr:{q1}:") for key in keys), "every key carries the queue's hash tag"


async def test_event_stream_wrappers_pass_the_declared_keys() -> None:
    scripts = Scripts.__new__(Scripts)
    capture = _Capture()
    scripts._run = capture  # type: ignore[method-assign]
    k = QueueKeys("q1")
    await scripts.events_ack(k.events, [])
    await scripts.events_status(k.events, k.stats, [])
    assert len(capture.calls["events_ack"]) == header_keys("events_ack")
    assert len(capture.calls["events_status"]) == header_keys("events_status")
    await scripts.queue_gauges(k, [])
    assert len(capture.calls["queue_gauges"]) == header_keys("queue_gauges")


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_scripts_have_shebang_header_and_expand_includes(name: str) -> None:
    source = lua_source(name)
    assert source.split("\n", 1)[0] in ("#!lua", "#!lua flags=no-writes")
    assert "--- @include" not in source
    assert "Returns:" in source.split("]]", 1)[0]
    assert len((LUA_DIR / f"{name}.lua").read_text().splitlines()) <= 120


def test_lua_uses_only_job_state_values() -> None:
    states = {s.value for s in JobState}
    used: set[str] = set()
    for name in SCRIPT_NAMES:
        hset_lines = [line for line in lua_source(name).splitlines() if "'HSET'" in line]
        used |= set(re.findall(r"'status', '([a-z_]+)'", "\n".join(hset_lines)))
        used |= set(re.findall(r"status [=~]= '([a-z_]+)'", lua_source(name)))
    assert used, "no states found: the pattern is stale"
    assert used <= states, f"states in Lua but not in JobState: {used - states}"


def test_queue_names_that_break_hash_tags_are_refused() -> None:
    from tickr.core.errors import ValidationError

    for bad in ("a{b", "a}b", "a:b", "", "x" * 65):
        with pytest.raises(ValidationError):
            QueueKeys(bad)


CODES_RE = re.compile(r"^\s*Codes \((\w+)\): (.+)$", re.MULTILINE)


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_reply_codes_in_the_header_match_the_python_enum(name: str) -> None:
    from tickr.store import replies

    header = (LUA_DIR / f"{name}.lua").read_text().split("]]", 1)[0]
    found = CODES_RE.findall(header)
    expected = replies.SCRIPT_CODES.get(name)
    if expected is None:
        assert not found, f"{name} declares codes but tickr.store.replies.SCRIPT_CODES has no enum for it"
        return
    assert len(found) == 1, f"{name}: the header must declare its codes once, as 'Codes (EnumName): 1 NAME, ...'"
    enum_name, listing = found[0]
    assert enum_name == expected.__name__
    declared = {member.split()[1]: int(member.split()[0]) for member in listing.split(", ")}
    assert declared == {m.name: m.value for m in expected}, f"{name}: header and {enum_name} disagree"

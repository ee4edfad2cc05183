"""Built-in payloads are checked when they arrive: what a handler would refuse at run time, enqueue refuses
(SDK and API; the CLI in tests/cli), naming ``payload.<field>``; docs/job-types.md documents every field."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tickr import App, Settings, ValidationError
from tickr.api import create_app
from tickr.handlers import BUILTIN_PAYLOADS

from .test_demo import BAD_EMAIL, BAD_FAIL, BAD_FLAKY, BAD_REPORT, BAD_SLEEP, EMAIL
from .test_http import BAD_HTTP

BAD = [
    *(("http", payload, field) for payload, field in BAD_HTTP),
    *(("sleep", payload, field) for payload, field in BAD_SLEEP),
    *(("sleeper", payload, field) for payload, field in BAD_SLEEP[:3]),
    *(("flaky", payload, field) for payload, field in BAD_FLAKY),
    *(("fail", payload, field) for payload, field in BAD_FAIL),
    *(("always_fail", payload, field) for payload, field in BAD_FAIL),
    *(("email", payload, field) for payload, field in BAD_EMAIL),
    *(("report", payload, field) for payload, field in BAD_REPORT),
]

GOOD = [
    ("http", {"url": "https://example.com/hook", "method": "post", "body": {"a": [1, {"b": None}]}, "timeout": 5}),
    ("noop", {}),
    ("noop", {"anything": [1, 2, 3]}),
    ("sleep", {"ms": 0}),
    ("sleeper", {"sleep_ms": 3_600_000}),
    ("flaky", {}),
    ("flaky", {"fail_times": 2, "message": "boom"}),
    ("fail", {}),
    ("always_fail", {"message": "why"}),
    ("email", EMAIL),
    ("report", {"name": "daily"}),
    ("report", {"name": "sales", "rows": [{"region": "north", "total": 1}, {"total": 2.5, "nested": {"k": [1]}}]}),
]

# The smallest payload of each type that the docs' example values are added to.
BASE: dict[str, dict[str, Any]] = {
    "http": {"url": "https://example.com/hook"},
    "email": {"to": "a@example.com", "subject": "hi"},
    "report": {"name": "daily"},
}


def refusal(job_type: str, payload: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        App().build_job(job_type, payload)
    return info.value


def names_field(errors: dict[str, str], field: str) -> bool:
    """``payload.<field>`` (or below it) is named; a refusal of the whole object names ``payload`` and says it."""
    return any(name == f"payload.{field}" or name.startswith(f"payload.{field}.") for name in errors) or (
        field in errors.get("payload", "")
    )


@pytest.mark.parametrize(("job_type", "payload", "field"), BAD)
def test_what_a_handler_refuses_enqueue_refuses(job_type: str, payload: dict[str, Any], field: str) -> None:
    exc = refusal(job_type, payload)
    assert names_field(exc.errors, field), exc.errors
    assert str(exc).startswith(f"invalid {job_type} payload: payload")


@pytest.mark.parametrize(("job_type", "payload"), GOOD)
def test_good_payloads_are_accepted_unchanged(job_type: str, payload: dict[str, Any]) -> None:
    job = App().build_job(job_type, payload)
    assert job.payload == payload  # checked, not rewritten (the handler parses it again when it runs)


def test_sleep_with_negative_ms_is_refused_naming_payload_ms() -> None:
    exc = refusal("sleep", {"ms": -5})
    assert exc.errors == {"payload.ms": "Input should be greater than or equal to 0"}


def test_option_and_payload_errors_are_named_together() -> None:
    with pytest.raises(ValidationError) as info:
        App().build_job("sleep", {"ms": -5}, queue="a:b", priority="urgent")
    assert set(info.value.errors) == {"queue", "priority", "payload.ms"}


async def test_sdk_refuses_before_writing(app: App, queue: str) -> None:
    with pytest.raises(ValidationError) as info:
        await app.enqueue("sleep", {"ms": -5}, queue=queue)
    assert set(info.value.errors) == {"payload.ms"}
    with pytest.raises(ValidationError) as info:
        await app.enqueue_many([("noop", {}), {"type": "report", "payload": {"name": "a b"}, "queue": queue}])
    assert set(info.value.errors) == {"jobs[1].payload.name"}
    assert (await app.inspector.list_jobs(queue=queue)).jobs == []


@pytest.fixture
async def client(redis_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    api = create_app(Settings(redis_url=redis_url, data_dir=tmp_path))
    async with api.router.lifespan_context(api):
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://tickr.test") as http:
            yield http


def problem_fields(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {error["field"]: error["message"] for error in response.json()["errors"]}


async def test_api_answers_422_naming_the_payload_field(client: httpx.AsyncClient, queue: str) -> None:
    r = await client.post("/api/v1/jobs", json={"type": "sleep", "payload": {"ms": -5}, "queue": queue})
    assert problem_fields(r) == {"payload.ms": "Input should be greater than or equal to 0"}
    batch = {"jobs": [{"type": "noop", "queue": queue}, {"type": "email", "payload": {"to": "x"}, "queue": queue}]}
    fields = problem_fields(await client.post("/api/v1/jobs/batch", json=batch))
    assert set(fields) == {"jobs[1].payload.to", "jobs[1].payload.subject"}
    recurring = {"type": "sleep", "payload": {"ms": "1"}, "cron": "0 * * * *", "queue": queue}
    assert "payload.ms" in problem_fields(await client.post("/api/v1/jobs", json=recurring))
    ok = await client.post("/api/v1/jobs", json={"type": "sleep", "payload": {"ms": 5}, "queue": queue})
    assert ok.status_code == 201, ok.text


# --------------------------------------------------------------------------- docs/job-types.md

DOC = Path(__file__).parents[2] / "docs" / "job-types.md"


def doc_rows() -> list[dict[str, str]]:
    """The rows of the payload table: ``| job type | field | type | default | meaning | example |``."""
    rows = []
    for line in DOC.read_text().splitlines():
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) == 6 and cells[0].startswith("`"):
            keys = ("types", "field", "type", "default", "meaning", "example")
            rows.append(dict(zip(keys, (cell.replace("\\|", "|") for cell in cells), strict=True)))
    return rows


def code(cell: str) -> str:
    match = re.fullmatch(r"`(.*)`", cell)
    assert match, f"expected `code` in {cell!r}"
    return match.group(1)


def test_the_doc_table_lists_every_field_of_every_builtin_type() -> None:
    documented: dict[str, set[str]] = {}
    for row in doc_rows():
        for job_type in re.findall(r"`([a-z_]+)`", row["types"]):
            documented.setdefault(job_type, set()).add(code(row["field"]))
    expected = {name: set(model.model_fields) for name, model in BUILTIN_PAYLOADS.items()}
    expected["noop"] = {"(any)"}  # noop takes any object
    assert documented == expected


def test_the_doc_table_gives_each_default() -> None:
    for row in doc_rows():
        for job_type in re.findall(r"`([a-z_]+)`", row["types"]):
            if job_type == "noop":
                continue
            info = BUILTIN_PAYLOADS[job_type].model_fields[code(row["field"])]
            if row["default"] == "required":
                assert info.is_required(), row
            elif row["default"] != "-":
                assert json.loads(code(row["default"])) == info.get_default(call_default_factory=True), row


def test_every_example_in_the_doc_table_is_accepted() -> None:
    for row in doc_rows():
        field, example = code(row["field"]), json.loads(code(row["example"]))
        for job_type in re.findall(r"`([a-z_]+)`", row["types"]):
            payload = dict(BASE.get(job_type, {}))
            payload[field if field != "(any)" else "anything"] = example
            App().build_job(job_type, payload)

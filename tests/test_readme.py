"""The README is code: its Python snippets run as written against a real Redis, its shell blocks parse,
its ``tickr`` command lines are accepted by the CLI and its ``curl`` lines name real routes.

Conventions the README follows (and ``tests/e2e/test_newcomer.py`` reuses through these helpers): a block whose
first line is ``# NAME.py`` is that file; ``# in NAME.py`` adds the block to that file; a file other blocks
import is a module, any other Python block a script run with ``python NAME.py`` from the project directory.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import redis
from typer.testing import CliRunner

from tests.waiting import wait_until_sync
from tickr import App, JobState, Settings
from tickr.api import create_app
from tickr.cli.main import cli
from tickr.scheduler.manager import Schedules

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
FILE_HEADER = re.compile(r"#\s+(in\s+)?([\w-]+\.py)\b")
README_DB = 13  # the snippets use fixed queue names ("default", "emails"): they get a database of their own
SCRIPT_SECONDS = 60


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int  # of the opening fence, for messages

    def file_header(self) -> tuple[bool, str] | None:
        """``(extends, name)`` from a first line ``# name.py`` or ``# in name.py``; None without one."""
        first = self.code.splitlines()[0] if self.code else ""
        match = FILE_HEADER.match(first)
        return (bool(match.group(1)), match.group(2)) if match else None


def readme_blocks(lang: str, text: str | None = None) -> list[Block]:
    """The fenced blocks of ``lang`` in the README, in order."""
    text = README.read_text() if text is None else text
    return [
        Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in FENCE.finditer(text)
        if m.group(1) == lang
    ]


@dataclass
class Project:
    """The README's Python blocks as the files a newcomer would save."""

    files: dict[str, str] = field(default_factory=dict)  # name -> source
    scripts: list[str] = field(default_factory=list)  # the files run with ``python NAME``, in README order

    def write(self, directory: Path, replace: dict[str, str] | None = None) -> None:
        for name, source in self.files.items():
            for old, new in (replace or {}).items():
                source = source.replace(old, new)
            (directory / name).write_text(source)


def readme_project(blocks: list[Block] | None = None) -> Project:
    blocks = readme_blocks("python") if blocks is None else blocks
    project = Project()
    order: list[str] = []
    for block in blocks:
        header = block.file_header()
        extends, name = header if header else (False, f"readme_line_{block.line}.py")
        if extends:
            assert name in project.files, f"README line {block.line}: adds to {name}, which no earlier block defines"
            project.files[name] = project.files[name].rstrip("\n") + "\n\n\n" + block.code
        else:
            assert name not in project.files, f"README line {block.line}: {name} is defined twice"
            project.files[name] = block.code
            order.append(name)
    imported = {
        name
        for name in project.files
        for source in project.files.values()
        if re.search(rf"^\s*(from|import)\s+{re.escape(name.removesuffix('.py'))}\b", source, re.MULTILINE)
    }
    project.scripts = [name for name in order if name not in imported]
    return project


def shell_commands(block: Block) -> Iterator[list[str]]:
    """Each command of a shell block as argv words (comments dropped, line continuations joined, ``&&`` split)."""
    pending = ""
    for line in block.code.splitlines():
        pending += line + "\n"
        if pending.endswith("\\\n"):
            continue
        try:
            words = shlex.split(pending.replace("\\\n", " "), comments=True)
        except ValueError:  # an open quote: the command goes on on the next line
            continue
        pending = ""
        command: list[str] = []
        for word in [*words, "&&"]:
            if word == "&&":
                if command:
                    yield command
                command = []
            else:
                command.append(word)
    assert not pending.strip(), f"README line {block.line}: unterminated command {pending!r}"


def without_assignments(argv: list[str]) -> list[str]:
    """``argv`` less its leading ``NAME=value`` words."""
    start = 0
    while start < len(argv) and re.match(r"^[A-Za-z_]\w*=", argv[start]):
        start += 1
    return argv[start:]


@dataclass(frozen=True)
class Curl:
    method: str
    url: str
    headers: dict[str, str]
    body: str | None


def parse_curl(argv: list[str]) -> Curl:
    """The request a ``curl`` command line makes (the flags the README uses)."""
    assert argv[0] == "curl", argv
    method, url, body, headers = None, None, None, {}
    words = iter(argv[1:])
    for word in words:
        if word in ("-X", "--request"):
            method = next(words)
        elif word in ("-H", "--header"):
            name, _, value = next(words).partition(":")
            headers[name.strip().lower()] = value.strip()
        elif word in ("-d", "--data", "--data-raw"):
            body = next(words)
        elif word in ("-s", "--silent", "-S", "--show-error", "-f", "--fail"):
            continue
        else:
            assert not word.startswith("-"), f"curl flag {word} is not understood by the README tests"
            assert url is None, f"two URLs in {argv}"
            url = word
    assert url is not None, argv
    return Curl(method or ("POST" if body is not None else "GET"), url, headers, body)


def readme_curls() -> list[Curl]:
    return [
        parse_curl(argv)
        for block in readme_blocks("bash")
        for argv in shell_commands(block)
        if without_assignments(argv)[:1] == ["curl"]
    ]


def on_database(url: str, db: int) -> str:
    """``url`` with its database number set to ``db`` (``redis://…/N`` or ``unix://…?db=N``)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"] + [("db", str(db))]
        return urlunsplit(parts._replace(query=urlencode(query)))
    return urlunsplit(parts._replace(path=f"/{db}"))


# -- the shell blocks ----------------------------------------------------------------------------------


def test_shell_blocks_parse() -> None:
    blocks = readme_blocks("bash")
    assert blocks
    for block in blocks:
        checked = subprocess.run(["bash", "-n"], input=block.code, capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, f"README line {block.line}: {checked.stderr}"
        assert list(shell_commands(block)), f"README line {block.line}: no command"


def test_tickr_command_lines_are_accepted_by_the_cli() -> None:
    """Each ``tickr …`` line of a shell block, with ``--help`` added: an unknown command or option fails."""
    lines = [
        words
        for block in readme_blocks("bash")
        for argv in shell_commands(block)
        if (words := without_assignments(argv)) and Path(words[0]).name == "tickr"
    ]
    assert any(words[1:2] == ["worker"] for words in lines)
    for words in lines:
        result = CliRunner().invoke(cli, [*words[1:], "--help"])
        assert result.exit_code == 0, f"{shlex.join(words)}: {result.output[-2000:]}"


def test_curl_lines_name_real_routes_with_json_bodies() -> None:
    import json

    routes = create_app(Settings(redis_url="redis://unused")).openapi()["paths"]
    patterns = [
        (re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path)) + "$"), {m.upper() for m in methods})
        for path, methods in routes.items()
    ]
    curls = readme_curls()
    assert len(curls) >= 10
    for curl in curls:
        assert curl.url.startswith("localhost:8080/"), curl.url
        path = "/" + curl.url.split("/", 1)[1].replace("$ID", "0190a4c2-7d3e-7f00-8000-000000000000")
        allowed = set().union(*(methods for pattern, methods in patterns if pattern.match(path)))
        assert curl.method in allowed, f"{curl.method} {curl.url}: no such route"
        if curl.body is not None:
            assert curl.headers.get("content-type") == "application/json", curl
            assert isinstance(json.loads(curl.body), dict), curl


# -- the Python blocks, run for real ----------------------------------------------------------------


def test_readme_project_layout() -> None:
    project = readme_project()
    assert "myapp.py" in project.files and "myapp.py" not in project.scripts
    assert "reports.nightly" in project.files["myapp.py"]  # "# in myapp.py" joined the module
    assert {"enqueue.py", "schedule.py"} <= set(project.scripts)
    for name, source in project.files.items():
        compile(source, name, "exec")  # no top-level await, no syntax error


@pytest.fixture
def readme_redis(redis_url: str) -> Iterator[str]:
    """A database of the test Redis for the snippets alone, emptied of tickr keys when the test ends.

    A lock key serialises two runs of this test on one server (each empties the database at its end).
    """
    url = on_database(redis_url, README_DB)
    client = redis.Redis.from_url(url)
    token = uuid.uuid4().hex
    wait_until_sync(
        lambda: client.set("readme-test:lock", token, nx=True, px=SCRIPT_SECONDS * 4_000),
        timeout=SCRIPT_SECONDS * 4,
        message="another run of the README test to finish",
    )
    try:
        yield url
    finally:
        doomed = list(client.scan_iter(match="tickr:*", count=1_000))
        for start in range(0, len(doomed), 500):
            client.unlink(*doomed[start : start + 500])
        if client.get("readme-test:lock") == token.encode():
            client.delete("readme-test:lock")
        client.close()


def run_python(directory: Path, env: dict[str, str], *args: str) -> str:
    run = subprocess.run(
        [sys.executable, *args], cwd=directory, env=env, capture_output=True, text=True, timeout=SCRIPT_SECONDS
    )
    where = f"python {' '.join(args)} (README snippet)"
    assert run.returncode == 0, f"{where} failed:\n{run.stderr[-3000:]}"
    assert "Traceback" not in run.stderr and "Exception ignored" not in run.stderr, f"{where}:\n{run.stderr}"
    return run.stdout


def test_python_snippets_run_as_written(readme_redis: str, tmp_path: Path) -> None:
    project = readme_project()
    project.write(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKR_") and k != "PYTHONPATH"}
    env["TICKR_REDIS_URL"] = readme_redis
    run_python(tmp_path, env, "-c", "import myapp")
    outputs = {name: run_python(tmp_path, env, name) for name in project.scripts}

    job_id, status = outputs["enqueue.py"].split()
    assert status == JobState.QUEUED  # no worker runs in this test
    (schedule_id,) = outputs["schedule.py"].split()
    asyncio.run(_check_what_the_snippets_made(readme_redis, job_id, schedule_id))


async def _check_what_the_snippets_made(url: str, job_id: str, schedule_id: str) -> None:
    app = App(settings=Settings(redis_url=url))
    try:
        emails = (await app.inspector.list_jobs(queue="emails")).jobs
        assert sorted(job.payload["to"] for job in emails) == [f"{c}@example.com" for c in "abcde"]
        assert {job.status for job in emails} == {JobState.QUEUED}  # "later" was cancelled, then replayed
        assert job_id in {job.id for job in emails}
        noops = (await app.inspector.list_jobs(queue="default", job_type="noop")).jobs
        assert len(noops) == 2
        schedule = await Schedules(app).get(schedule_id)
        assert schedule is not None and schedule.cron == "*/5 * * * * *"
    finally:
        await app.close()

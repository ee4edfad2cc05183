"""A newcomer follows the README, for real: the wheel built and installed into a fresh virtualenv, ``tickr up``
in an empty directory, the README's ``myapp.py`` worker started as the README says, then every ``curl`` line
and Python snippet of the README; the test checks what they did.

The fresh virtualenv installs the wheel's dependencies from the package index (about 20 s here): slower than
reusing the project's site-packages, but it is the newcomer's path, and it is what catches a dependency
``pyproject.toml`` forgot. Nothing leaves loopback: the README's ``https://example.com`` is replaced by a
local HTTP server, and the worker may call it (``TICKR_HTTP_ALLOW_HOSTS``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_readme import (
    ROOT,
    Curl,
    parse_curl,
    readme_blocks,
    readme_project,
    shell_commands,
    without_assignments,
)
from tests.waiting import wait_until_sync

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

STOP_SECONDS = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Site:
    """A local stand-in for ``https://example.com``: answers 200 to everything and records each request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                site.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Site:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def hits(self, method: str, path: str) -> list[tuple[dict[str, str], bytes]]:
        return [(headers, body) for m, p, headers, body in list(self.requests) if (m, p) == (method, path)]


class Processes:
    """The long-running processes of the test, each in a session of its own (as a terminal runs them), its
    output in a log file; stopped like Ctrl+C (SIGINT to the group), then SIGKILL after ``STOP_SECONDS``."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.codes: dict[str, int | None] = {}  # exit codes, once stopped

    def start(self, name: str, argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.running.append((name, proc))
        return proc

    def check_alive(self) -> None:
        for name, proc in self.running:
            assert proc.poll() is None, f"{name} exited with {proc.returncode}:\n{self.tail(name)}"

    def tail(self, name: str, chars: int = 4000) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-chars:]

    def stop_all(self) -> None:
        """Stop in reverse start order (the worker before the ``tickr up`` it uses); exit codes in ``codes``.

        Then SIGKILL whatever of each process tree is still there: a supervisor's children run in sessions
        of their own, so a killed supervisor would leave them behind.
        """
        for name, proc in reversed(self.running):
            tree = process_tree(proc.pid)  # read first: once the parent is gone its children are re-parented
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(STOP_SECONDS)
            self.codes[name] = proc.returncode
            for pid, started in tree.items():
                if process_tree_entry(pid) == started:  # the same process, not a reused pid
                    os.kill(pid, signal.SIGKILL)


def process_tree_entry(pid: int) -> tuple[int, str] | None:
    """``(parent pid, start time)`` of ``pid`` from ``/proc``; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), fields[19]


def process_tree(root: int) -> dict[int, tuple[int, str]]:
    """The descendants of ``root`` (not ``root`` itself), each with its ``process_tree_entry``."""
    entries = {int(p.name): process_tree_entry(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()}
    children: dict[int, list[int]] = {}
    for pid, entry in entries.items():
        if entry is not None:
            children.setdefault(entry[0], []).append(pid)
    tree: dict[int, tuple[int, str]] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        entry = entries[pid]
        if entry is not None:
            tree[pid] = entry
            todo.extend(children.get(pid, []))
    return tree


@contextmanager
def processes(logs: Path) -> Iterator[Processes]:
    procs = Processes(logs)
    try:
        yield procs
    except BaseException:
        for name, _ in procs.running:
            print(f"----- {name} log (tail) -----\n{procs.tail(name)}")  # shown by pytest on failure
        raise
    finally:
        procs.stop_all()


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 180) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{shlex.join(argv)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def quick_start() -> list[list[str]]:
    """The README's first command line: make a venv, install tickr, run ``tickr up``."""
    commands = list(shell_commands(readme_blocks("bash")[0]))
    expected = [["python3", "-m", "venv", ".venv"], [".venv/bin/pip", "install", "."], [".venv/bin/tickr", "up"]]
    assert commands == expected, commands
    return commands


def readme_line(starts: str) -> str:
    """The one README shell line that starts with ``starts``, as written."""
    lines = [
        line.strip()
        for block in readme_blocks("bash")
        for line in block.code.splitlines()
        if line.strip().startswith(starts)
    ]
    assert len(lines) == 1, f"README lines starting with {starts!r}: {lines}"
    return lines[0]


def newcomer_env(project: Path, api_port: int) -> dict[str, str]:
    """The environment of a shell with the project's ``.venv`` activated, none of this session's tickr settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TICKR_") and k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    env["PATH"] = f"{project / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(project / ".venv")
    env["TICKR_API_PORT"] = str(api_port)
    env["TICKR_HTTP_ALLOW_PRIVATE"] = "true"  # the README's example.com is a local server here
    env["TICKR_HTTP_ALLOW_HOSTS"] = "127.0.0.1"
    return env


class Api:
    """The README's ``curl`` lines against this ``tickr up``: ``localhost:8080`` and example.com made local."""

    def __init__(self, port: int, site: Site) -> None:
        self.port = port
        self.site = site
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()

    def send(self, curl: Curl, job_id: str | None = None) -> httpx.Response:
        assert curl.url.startswith("localhost:8080/"), curl.url
        path = curl.url.removeprefix("localhost:8080")
        if "$ID" in path:
            assert job_id, f"no id for {curl.url}"
            path = path.replace("$ID", job_id)
        body = curl.body.replace("https://example.com", self.site.url) if curl.body is not None else None
        return self.http.request(curl.method, path, headers=curl.headers, content=body)

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def jobs(self, **params: Any) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/jobs", limit=200, **params)["jobs"])

    def answers(self) -> bool:
        try:
            return self.http.get("/health").status_code == 200
        except httpx.TransportError:
            return False


def test_a_newcomer_follows_the_readme(tmp_path: Path) -> None:
    began = time.monotonic()
    wheels, project = tmp_path / "wheel", tmp_path / "project"
    project.mkdir()
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(ROOT)], cwd=tmp_path)
    (wheel,) = wheels.glob("tickr-*.whl")
    make_venv, pip_install, tickr_up = quick_start()
    run([sys.executable, *make_venv[1:]], cwd=project)
    run([pip_install[0], *pip_install[1:-1], "--quiet", str(wheel)], cwd=project, timeout=240)
    installed = time.monotonic()

    readme = readme_project()
    api_port = free_port()
    env = newcomer_env(project, api_port)
    with Site() as site, processes(tmp_path) as procs, Api(api_port, site) as api:
        readme.write(project, replace={"https://example.com": site.url})
        procs.start("up", tickr_up, project, env)

        def up_answers() -> bool:
            procs.check_alive()
            return api.answers()

        wait_until_sync(up_answers, timeout=60, message="tickr up to answer on /health")

        worker = shlex.split(readme_line("tickr worker"), comments=True)
        procs.start("worker", worker, project, env)
        processes_wanted = int(worker[worker.index("--processes") + 1])

        def workers_run_myapp() -> bool:
            procs.check_alive()
            live = api.get("/api/v1/workers")["workers"]
            return sum("emails.send" in w["types"] for w in live) >= processes_wanted

        wait_until_sync(workers_run_myapp, timeout=90, message="the README's worker processes to register")

        # the Python snippets, run as the README runs enqueue.py
        run_script = readme_line("python enqueue.py")
        outputs = {
            name: run(["bash", "-c", run_script.replace("enqueue.py", name)], cwd=project, env=env, timeout=60)
            for name in readme.scripts
        }
        first_email, status = outputs["enqueue.py"].split()
        assert status in ("queued", "active", "succeeded")
        (schedule_id,) = outputs["schedule.py"].split()

        replies = send_every_curl(api)

        # the idempotent submit: the same key answers 200 with the first job
        keyed, first = next((curl, reply) for curl, reply in replies if "idempotencyKey" in (curl.body or ""))
        again = api.send(keyed)
        assert again.status_code == 200, again.text
        assert again.json()["id"] == first["id"]

        # the recurring job shows its next runs, and the schedule made in Python fires at the local site
        recurring = next(reply for curl, reply in replies if "cronExpression" in (curl.body or ""))
        upcoming = api.get(f"/api/v1/jobs/{recurring['id']}/schedule")["next_runs"]
        assert len(upcoming) >= 1 and all(fire["utc"] and fire["local"] for fire in upcoming)
        assert api.get(f"/api/v1/jobs/{schedule_id}/schedule")["next_runs"]
        scheduled_types = {s["type"] for s in api.get("/api/v1/schedules")["schedules"]}
        assert {"http", "reports.nightly"} <= scheduled_types  # reports.nightly: the cron task of myapp.py
        wait_until_sync(lambda: site.hits("POST", "/tick"), timeout=30, message="the */5 s schedule to call /tick")
        wide = {**env, "COLUMNS": "250"}  # a wide terminal: the table shows whole ids
        listed = run(shlex.split(readme_line("tickr schedules"), comments=True), cwd=project, env=wide, timeout=60)
        assert "reports.nightly" in listed and schedule_id in listed, listed

        # every emails.send job succeeds (the five of enqueue.py, the one of curl); none is dead
        def emails_done() -> bool:
            jobs = api.jobs(type="emails.send")
            for job in jobs:
                assert job["status"] not in ("dead", "lost"), f"emails.send job {job['id']} is {job['status']}: {job}"
            return len(jobs) == 6 and all(job["status"] == "succeeded" for job in jobs)

        wait_until_sync(emails_done, timeout=60, message="every emails.send job to succeed")
        assert first_email in {job["id"] for job in api.jobs(type="emails.send")}

        # the other README jobs end as they should
        expected = {
            "report": "succeeded",
            "sleep": "succeeded",
            "flaky": "succeeded",  # fails twice, then succeeds within its retries
        }

        def others_done() -> bool:
            for job_type, wanted in expected.items():
                jobs = api.jobs(type=job_type)
                for job in jobs:
                    assert job["status"] not in ("dead", "lost"), f"{job_type} job {job['id']} is {job['status']}"
                if not jobs or any(job["status"] != wanted for job in jobs):
                    return False
            return True

        wait_until_sync(others_done, timeout=60, message="the README's report, sleep and flaky jobs to succeed")
        wait_until_sync(lambda: site.hits("POST", "/hook"), timeout=30, message="the http callback to reach /hook")
        headers, body = site.hits("POST", "/hook")[0]
        assert headers.get("x-source") == "tickr" and json.loads(body) == {"event": "paid"}
        assert api.jobs(status="dead") == [] and api.jobs(status="lost") == []
        procs.check_alive()

    assert procs.codes == {"worker": 0, "up": 0}, procs.codes  # both stopped cleanly on Ctrl+C
    print(f"newcomer test: install {installed - began:.1f}s, total {time.monotonic() - began:.1f}s")
    shutil.rmtree(project / ".venv")  # 100+ MB; kept when the test fails, to look into


def send_every_curl(api: Api) -> list[tuple[Curl, dict[str, Any]]]:
    """Send each README ``curl`` line in order; ``$ID`` is the job the README's comment points at. Returns
    each submit with its reply body."""
    replies: list[tuple[Curl, dict[str, Any]]] = []
    for block in readme_blocks("bash"):
        block_replies: list[tuple[Curl, dict[str, Any]]] = []
        for argv in shell_commands(block):
            if without_assignments(argv)[:1] != ["curl"]:
                continue
            curl = parse_curl(argv)
            r = api.send(curl, job_id=pick_id(curl, block_replies))
            assert r.is_success, f"{curl.method} {curl.url}: {r.status_code} {r.text}"
            if curl.method == "POST" and curl.body is not None:
                assert r.status_code == 201, f"{curl.url} {curl.body}: {r.status_code} {r.text}"
                block_replies.append((curl, r.json()))
                replies.append((curl, r.json()))
    assert len(replies) >= 7
    return replies


def pick_id(curl: Curl, replies: list[tuple[Curl, dict[str, Any]]]) -> str | None:
    """The id ``$ID`` stands for: a job that has not started for ``/cancel`` (the delayed one), else the
    first job the block submitted (the recurring job in its section, the emails.send one in the API's)."""
    if "$ID" not in curl.url or not replies:
        return None
    if curl.url.endswith("/cancel"):
        return next(str(reply["id"]) for sent, reply in replies if sent.body and '"delay"' in sent.body)
    return str(replies[0][1]["id"])

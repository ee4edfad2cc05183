"""Finding the embedded server of a data directory, one ``tickr up`` per directory, the banner, several apps."""

from __future__ import annotations

import os
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tickr import App, ConfigError, Settings
from tickr.cli.main import cli
from tickr.config import discover_redis_url, embedded_url_file
from tickr.runtime.loader import load_app
from tickr.runtime.up import banner, start_embedded

runner = CliRunner()


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No TICKR_* from outside; TICKR_DATA_DIR is ``tmp_path``."""
    for name in [n for n in os.environ if n.startswith("TICKR_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TICKR_DATA_DIR", str(tmp_path))
    return tmp_path


def test_discovery_prefers_the_configured_url_then_the_url_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert discover_redis_url(settings) is None
    embedded_url_file(settings).write_text("redis://127.0.0.1:1/0\n")
    assert discover_redis_url(settings) == "redis://127.0.0.1:1/0"
    assert discover_redis_url(settings.model_copy(update={"redis_url": "redis://elsewhere/0"})) == "redis://elsewhere/0"
    sock = tmp_path / "valkey.sock"
    embedded_url_file(settings).write_text(f"unix://{sock}?db=0\n")
    assert discover_redis_url(settings) is None  # a killed tickr up left its file: its socket is gone
    sock.touch()
    assert discover_redis_url(settings) == f"unix://{sock}?db=0"


def test_one_embedded_server_per_data_directory(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    found, embedded = start_embedded(settings)
    assert embedded is not None
    try:
        assert found.redis_url == embedded.url == f"unix://{tmp_path / 'valkey.sock'}?db=0"
        assert discover_redis_url(settings) == embedded.url
        with pytest.raises(ConfigError, match="another `tickr up` runs on"):
            start_embedded(settings)
        with embedded.server.client() as client:  # the first server was left alone
            assert client.ping()
    finally:
        embedded.stop()
    assert discover_redis_url(settings) is None and not (tmp_path / "valkey.sock").exists()
    found, embedded = start_embedded(settings)  # the directory is free again, at the same address
    assert embedded is not None
    try:
        assert found.redis_url == f"unix://{tmp_path / 'valkey.sock'}?db=0"
    finally:
        embedded.stop()


def test_banner_says_where_everything_is_and_hides_passwords() -> None:
    settings = Settings(redis_url="redis://user:secret@db:6379/0", api_port=8081, queues="a,b", concurrency=5)
    text = banner(settings, App(settings=settings), [], processes=1, serve_api=True, embedded=False)
    assert "API      http://127.0.0.1:8081  (docs http://127.0.0.1:8081/docs)" in text
    assert "UI       http://127.0.0.1:8081/dashboard" in text
    assert "history  SQLite" in text and "history.db" in text
    assert "redis://***@db:6379/0  (TICKR_REDIS_URL)" in text and "secret" not in text
    assert "apps     built-ins only" in text and "built-ins: " in text and "noop" in text
    assert "workers  1 process x 5 concurrent jobs on a, b" in text and "Ctrl+C" in text


def _module(where: Path, task: str, body: str = "return 1") -> str:
    name = f"app_{uuid.uuid4().hex[:8]}"
    (where / f"{name}.py").write_text(
        textwrap.dedent(
            f"""
            from tickr import App

            app = App()


            @app.task(name={task!r}, cron="0 3 * * *")
            def run() -> int:
                {body}
            """
        )
    )
    return f"{name}:app"


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "mods"
    where.mkdir()
    monkeypatch.syspath_prepend(str(where))
    return where


def test_several_apps_merge_into_one(modules: Path) -> None:
    first, second = _module(modules, "a.run"), _module(modules, "b.run")
    settings = Settings(redis_url="redis://127.0.0.1:1/0")
    merged = load_app([first, second], settings)
    assert {"a.run", "b.run", "noop"} <= set(merged.registry) and set(merged.periodic) == {"a.run", "b.run"}
    assert merged.settings.redis_url == settings.redis_url
    one = load_app([first], settings)
    assert one is sys.modules[first.partition(":")[0]].app  # one app is used as it is
    assert load_app([first, first], settings).registry["a.run"] is one.registry["a.run"]


def test_two_apps_with_one_type_name_are_a_usage_error(modules: Path, bare_env: Path) -> None:
    first, second = _module(modules, "same.run"), _module(modules, "same.run", "return 2")
    with pytest.raises(ConfigError, match=r"'same\.run' is registered by both"):
        load_app([first, second], Settings())
    result = runner.invoke(cli, ["up", first, second, "--port", "0"])
    assert result.exit_code == 2, result.output
    assert "registered by both" in result.output
    assert not (bare_env / "valkey").exists()  # refused before the server started
    result = runner.invoke(cli, ["worker", first, second, "--redis-url", "redis://127.0.0.1:1/0"])
    assert result.exit_code == 2 and "registered by both" in result.output


async def test_app_without_a_url_finds_the_embedded_server(bare_env: Path) -> None:
    _, embedded = start_embedded(Settings(data_dir=bare_env))
    assert embedded is not None
    app = App()
    try:
        assert (await app.store.diagnostics.server())["server"]
    finally:
        await app.close()
        embedded.stop()

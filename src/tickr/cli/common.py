"""What every CLI command shares: exit codes, settings, the Redis lookup, and the one error-to-exit-code map."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer

from tickr.app import App
from tickr.config import Settings, discover_redis_url
from tickr.core.errors import StoreUnavailable, TickrError, ValidationError

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1  # a failed operation: unknown job, wrong state, Redis down
EXIT_USAGE = 2  # bad usage: arguments, settings, input that cannot be accepted

RedisOpt = Annotated[str | None, typer.Option("--redis-url", envvar="TICKR_REDIS_URL", help="Redis/Valkey URL")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
AppsArg = Annotated[
    list[str] | None,
    typer.Argument(help="module:attr of your tickr.App; several are merged (built-in job types only if omitted)"),
]
QueuesOpt = Annotated[str | None, typer.Option("--queues", "-q", help="comma-separated queues")]
ConcurrencyOpt = Annotated[int | None, typer.Option("--concurrency", "-c", min=1, help="jobs at once per process")]
PrefixOpt = Annotated[
    str | None, typer.Option("--prefix", envvar="TICKR_PREFIX", help="Redis key prefix (default tickr)")
]


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print a one-line error and return the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def fail_usage(message: str) -> typer.Exit:
    """Print a one-line usage error and return the exit to raise (code 2)."""
    return fail(message, EXIT_USAGE)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with command-line values that were given on top."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except Exception as exc:  # pydantic ValidationError: bad TICKR_* value
        raise fail_usage(f"bad configuration: {exc}") from None


def require_redis(settings: Settings) -> Settings:
    """``settings`` with a Redis URL: TICKR_REDIS_URL, --redis-url, or a ``tickr up`` in this data directory."""
    url = discover_redis_url(settings)
    if not url:
        raise fail_usage("no Redis: set TICKR_REDIS_URL, pass --redis-url, or start `tickr up` here")
    return settings.model_copy(update={"redis_url": url})


def try_uvloop() -> None:
    """Use uvloop when it is installed (a faster event loop)."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def exit_code_of(exc: BaseException) -> int | None:
    """The CLI exit code of an error, or None when it is not one the CLI reports (a bug: let it raise)."""
    if isinstance(exc, ValidationError | TypeError):
        return EXIT_USAGE
    if isinstance(exc, TickrError):  # JobNotFound, InvalidState, StoreUnavailable, ...
        return EXIT_FAILED
    return None


def describe(exc: BaseException) -> str:
    """The one-line message shown for ``exc``."""
    if isinstance(exc, StoreUnavailable):
        return f"Redis unavailable: {exc}"
    return str(exc)


def run_async(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main`` on a fresh event loop; map tickr's errors to exit codes (this is the one place that does)."""
    try:
        return asyncio.run(main())
    except Exception as exc:
        code = exit_code_of(exc)
        if code is None:
            raise
        raise fail(describe(exc), code) from None


def run_with_app(settings: Settings, action: Callable[[App], Awaitable[T]], prefix: str | None = None) -> T:
    """Run ``action`` with an App connected to the Redis of ``settings``; close it afterwards."""
    app = App(settings=require_redis(settings), prefix=prefix or "tickr")

    async def main() -> T:
        try:
            return await action(app)
        finally:
            await app.close()

    return run_async(main)

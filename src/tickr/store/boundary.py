"""The store's error edge: redis-py's exceptions become tickr's ``StoreUnavailable`` / ``StoreError`` here, once.

Every public coroutine method of a store class is wrapped by ``@store_boundary``; above the store nobody
names a redis-py exception.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from redis import exceptions as redis_errors

from tickr.core.errors import StoreError, StoreUnavailable

P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C", bound=type)

# Errors that say "the server cannot be reached or cannot take writes right now": retrying later may work.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # includes BusyLoadingError (LOADING)
    redis_errors.TimeoutError,
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    redis_errors.MasterDownError,
    redis_errors.ReadOnlyError,  # a failed-over primary that is now a replica
    OSError,
)


def closed_transport(exc: BaseException) -> bool:
    """uvloop's ``RuntimeError`` for a write on a transport the peer reset (``... the handler is closed``),
    which redis-py lets through where the standard loop raises ``ConnectionResetError``: a lost connection."""
    return isinstance(exc, RuntimeError) and "handler is closed" in str(exc)


def translate(exc: BaseException) -> StoreError:
    """The tickr error for a redis-py (or socket) error."""
    if isinstance(exc, UNAVAILABLE) or closed_transport(exc):
        return StoreUnavailable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    return StoreError(f"{type(exc).__name__}: {exc}")


def translated(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Wrap one coroutine function so that redis-py errors leave it as tickr errors."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except StoreError:
            raise
        except (redis_errors.RedisError, OSError) as exc:
            raise translate(exc) from exc
        except RuntimeError as exc:
            if not closed_transport(exc):
                raise
            raise translate(exc) from exc

    return wrapper


def store_boundary(cls: C) -> C:
    """Class decorator: every public ``async def`` of ``cls`` translates redis-py errors."""
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and inspect.iscoroutinefunction(member):
            setattr(cls, name, translated(member))
    return cls

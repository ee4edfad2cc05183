"""Loading the user's ``module:attr`` Apps for workers and ``tickr up`` (several are merged into one)."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from tickr.app import App
from tickr.config import Settings
from tickr.core.errors import ConfigError


def load_app(spec: str | Sequence[str] | None, settings: Settings) -> App:
    """Import ``module:attr`` (an ``App``), or several and merge them, or build a plain App with the built-in
    job types only.

    The loaded app takes the process's settings (Redis URL and the rest), so one code base runs against
    whatever the command line or environment points it at. Several apps merge into one App whose registry
    holds every app's tasks; two apps registering one type name with different functions is a
    ``ConfigError``.
    """
    specs = [spec] if isinstance(spec, str) else list(spec or [])
    if not specs:
        return App(settings=settings)
    apps = [_import_app(one, settings) for one in specs]
    return apps[0] if len(apps) == 1 else merge_apps(apps, specs)


def _import_app(spec: str, settings: Settings) -> App:
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}") from exc
    app = getattr(module, attr or "app", None)
    if not isinstance(app, App):
        raise ConfigError(f"{spec!r} is not a tickr.App (expected module:attribute)")
    if settings.redis_url:
        app.settings = app.settings.model_copy(update={"redis_url": settings.redis_url})
    return app


def merge_apps(apps: Sequence[App], specs: Sequence[str]) -> App:
    """One App running the tasks (and periodic definitions) of all ``apps``, with the first one's settings.

    Each original App keeps working for its own enqueues (its tasks' ``.enqueue`` go through it).
    """
    first = apps[0]
    prefixes = {app.prefix for app in apps}
    if len(prefixes) > 1:
        raise ConfigError(f"the apps {', '.join(specs)} use different key prefixes: {', '.join(sorted(prefixes))}")
    merged = App(settings=first.settings, prefix=first.prefix, builtins=False)
    owners: dict[str, str] = {}
    for app, spec in zip(apps, specs, strict=True):
        for name, definition in app.registry.items():
            known = merged.registry.get(name)
            if known is not None and known.fn is not definition.fn:
                raise ConfigError(f"task type {name!r} is registered by both {owners[name]} and {spec}")
            if known is None:
                merged.registry[name], owners[name] = definition, spec
        for name, periodic in app.periodic.items():
            merged.periodic.setdefault(name, periodic)
    return merged

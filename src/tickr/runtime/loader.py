"""Loading the user's ``module:attr`` App for workers and ``tickr up``."""

from __future__ import annotations

import importlib
import os
import sys

from tickr.app import App
from tickr.config import Settings
from tickr.core.errors import ConfigError


def load_app(spec: str | None, settings: Settings) -> App:
    """Import ``module:attr`` (an ``App``) or build a plain App with the built-in job types only.

    The loaded app takes the process's settings (Redis URL and the rest), so one code base
    runs against whatever the command line or environment points it at.
    """
    if not spec:
        return App(settings=settings)
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

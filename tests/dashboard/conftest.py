"""Fixtures of the dashboard tests: the API's in-process client (its fixtures, reused) and a dashboard page reader."""

from __future__ import annotations

from tests.api.conftest import api, api_settings, client, make_dead

__all__ = ["api", "api_settings", "client", "make_dead"]

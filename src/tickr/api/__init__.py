"""tickr's HTTP API (FastAPI): ``create_app`` builds it, ``serve`` runs it with uvicorn."""

from __future__ import annotations

from tickr.api.app import create_app
from tickr.api.server import check_bind, serve

__all__ = ["check_bind", "create_app", "serve"]

"""The web dashboard: server-rendered pages over the store facade and the SQL history, mounted by the API."""

from tickr.dashboard.pages import dashboard_router
from tickr.dashboard.web import PREFIX

__all__ = ["PREFIX", "dashboard_router"]

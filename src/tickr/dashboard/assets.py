"""The dashboard's own CSS and JavaScript, served under a content-hashed URL with long-lived cache headers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

MEDIA_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    body: bytes
    digest: str  # first 12 hex digits of its SHA-256

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.name[self.name.rindex(".") :]]


def load_assets() -> dict[str, Asset]:
    """Every file of ``tickr/dashboard/static``, read once (package data: works from a wheel)."""
    out: dict[str, Asset] = {}
    for entry in resources.files("tickr.dashboard").joinpath("static").iterdir():
        if entry.is_file() and entry.name[entry.name.rfind(".") :] in MEDIA_TYPES:
            body = entry.read_bytes()
            out[entry.name] = Asset(entry.name, body, hashlib.sha256(body).hexdigest()[:12])
    return out

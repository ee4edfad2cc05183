"""The dashboard loads nothing from another origin (no CDN); tests/test_packaging.py checks its files ship."""

from __future__ import annotations

import re
from importlib import resources

PACKAGE = resources.files("tickr.dashboard")


def test_no_page_loads_anything_from_another_origin() -> None:
    external = re.compile(r"""(src|href)=["']?(https?:)?//""")
    for template in PACKAGE.joinpath("templates").iterdir():
        assert not external.search(template.read_text()), template.name
    for asset in PACKAGE.joinpath("static").iterdir():
        assert "http://" not in asset.read_text() and "https://" not in asset.read_text(), asset.name

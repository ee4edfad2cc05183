"""The interactive docs work with no internet: every asset /docs and /redoc load is served by tickr itself."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from tickr.api import create_app
from tickr.config import Settings

BASE = "http://tickr.test"
CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
    ".json": ("application/json",),
}


class AssetLinks(HTMLParser):
    """Every URL a page makes the browser load: script src, link href, img src, ReDoc's spec-url."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src", "redoc": "spec-url"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


def asset_urls(html: str) -> list[str]:
    parser = AssetLinks()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize(("page", "expected"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")])
async def test_docs_pages_load_only_assets_served_by_tickr(client: httpx.AsyncClient, page: str, expected: str) -> None:
    r = await client.get(page)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    urls = asset_urls(r.text)
    assert any(url.endswith(expected) for url in urls), urls
    assert not re.search(r"https?://|//cdn|fonts\.googleapis", r.text), "the page names another host"
    for url in urls:
        absolute = urljoin(f"{BASE}{page}", url)
        assert urlsplit(absolute).netloc == urlsplit(BASE).netloc, f"{url} is not served by tickr"
        asset = await client.get(absolute)
        assert asset.status_code == 200, url
        suffix = next(s for s in CONTENT_TYPES if urlsplit(absolute).path.endswith(s))
        assert asset.headers["content-type"].startswith(CONTENT_TYPES[suffix]), (url, asset.headers["content-type"])
        assert len(asset.content) > 100, url


async def test_swagger_oauth2_redirect_page_is_served(client: httpx.AsyncClient) -> None:
    r = await client.get("/docs/oauth2-redirect")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")


async def test_unknown_asset_is_a_problem_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/docs/assets/nothing-here.js")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


@pytest.fixture
async def token_client(api_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    api = create_app(api_settings.model_copy(update={"api_token": SecretStr("s3cret-token")}))
    transport = httpx.ASGITransport(app=api)
    async with api.router.lifespan_context(api), httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        yield http


async def test_assets_need_the_token_like_the_docs_page(token_client: httpx.AsyncClient) -> None:
    auth = {"Authorization": "Bearer s3cret-token"}
    for path in ("/docs", "/redoc", "/docs/assets/swagger-ui.css", "/docs/assets/redoc.standalone.js"):
        assert (await token_client.get(path)).status_code == 401, path
        assert (await token_client.get(path, headers=auth)).status_code == 200, path

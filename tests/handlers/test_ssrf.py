"""The SSRF guard: internal addresses are refused before any connection; allow-lists and pinning work."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Any

import pytest

from tickr.core.errors import Permanent, Retry
from tickr.handlers import ssrf
from tickr.handlers.http import handler

from .conftest import FakeResolver, SendGuard, TestServer, make_settings, run_job


async def call(payload: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("settings", make_settings())
    return await run_job(handler, payload, job_type="http", **kwargs)


async def test_loopback_refused_by_default_before_connecting(http_server: TestServer) -> None:
    with pytest.raises(Permanent) as info:
        await call({"url": http_server.url("/ok")})

    assert "127.0.0.1" in str(info.value)
    assert "loopback" in str(info.value)
    assert http_server.connections == 0
    assert http_server.requests == []


async def test_localhost_name_refused_via_real_resolver(http_server: TestServer) -> None:
    with pytest.raises(Permanent) as info:
        await call({"url": http_server.url("/ok", host="localhost")})

    assert "loopback" in str(info.value)
    assert http_server.connections == 0


@pytest.mark.parametrize(
    ("host", "address", "kind"),
    [
        ("internal.example", "10.0.0.5", "private"),
        ("metadata.example", "169.254.169.254", "link-local"),
        ("cgnat.example", "100.64.1.2", "carrier-grade NAT"),
        ("v6.example", "fd00::1", "private"),
    ],
)
async def test_names_resolving_to_internal_addresses_are_refused(
    fake_resolver: FakeResolver, no_network: SendGuard, host: str, address: str, kind: str
) -> None:
    fake_resolver.table = {host: [address]}

    with pytest.raises(Permanent) as info:
        await call({"url": f"http://{host}/latest/meta-data/"})

    message = str(info.value)
    assert address in message
    assert host in message
    assert kind in message
    assert fake_resolver.calls == [(host, 80)]
    assert no_network.attempts == []


async def test_refused_if_any_address_is_internal(fake_resolver: FakeResolver, no_network: SendGuard) -> None:
    fake_resolver.table = {"mixed.example": ["93.184.215.14", "10.0.0.5"]}

    with pytest.raises(Permanent, match=r"10\.0\.0\.5"):
        await call({"url": "https://mixed.example/"})
    assert fake_resolver.calls == [("mixed.example", 443)]
    assert no_network.attempts == []


async def test_idn_host_is_resolved_in_punycode(fake_resolver: FakeResolver, no_network: SendGuard) -> None:
    fake_resolver.table = {"xn--bcher-kva.example": ["192.168.0.10"]}
    with pytest.raises(Permanent, match=r"192\.168\.0\.10, which is a private address"):
        await call({"url": "http://bücher.example/"})
    assert fake_resolver.calls == [("xn--bcher-kva.example", 80)]
    assert no_network.attempts == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://169.254.169.254/latest/meta-data/", "'169.254.169.254' is a link-local (cloud metadata endpoint)"),
        ("http://0.0.0.0:8080/", "'0.0.0.0' is an unspecified address"),
        ("http://[::ffff:127.0.0.1]/", "'::ffff:127.0.0.1' is a loopback (embedded IPv4 127.0.0.1) address"),
        ("http://[fe80::1]/", "'fe80::1' is a link-local address"),
    ],
)
async def test_internal_ip_literals_refused(no_network: SendGuard, url: str, expected: str) -> None:
    with pytest.raises(Permanent) as info:
        await call({"url": url})
    assert expected in str(info.value)
    assert no_network.attempts == []


async def test_allow_listed_host_is_let_through_with_its_host_header(
    http_server: TestServer, fake_resolver: FakeResolver
) -> None:
    fake_resolver.table = {"allowed.example": ["127.0.0.1"]}
    settings = make_settings(http_allow_hosts="other.example, Allowed.Example")

    result = await call({"url": http_server.url("/echo", host="allowed.example")}, settings=settings)

    assert result["status_code"] == 200
    (received,) = http_server.requests
    assert received.headers["host"] == f"allowed.example:{http_server.port}"
    assert fake_resolver.calls == [("allowed.example", http_server.port)]


async def test_allow_list_does_not_cover_other_hosts(fake_resolver: FakeResolver, no_network: SendGuard) -> None:
    fake_resolver.table = {"internal.example": ["10.0.0.5"]}
    settings = make_settings(http_allow_hosts="allowed.example")

    with pytest.raises(Permanent, match=r"10\.0\.0\.5"):
        await call({"url": "http://internal.example/"}, settings=settings)
    assert no_network.attempts == []


async def test_allow_listed_cidr_is_let_through(http_server: TestServer) -> None:
    settings = make_settings(http_allow_hosts="127.0.0.0/8")

    result = await call({"url": http_server.url("/ok")}, settings=settings)

    assert result["status_code"] == 200
    assert len(http_server.requests) == 1


async def test_resolves_once_and_connects_to_the_vetted_address(
    http_server: TestServer, fake_resolver: FakeResolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: a second lookup would give an internal address, but there is no second lookup."""
    answers = iter([["127.0.0.1"], ["10.0.0.5"]])

    async def rebinding(host: str, port: int) -> list[str]:
        fake_resolver.calls.append((host, port))
        return next(answers)

    monkeypatch.setattr(ssrf, "resolver", rebinding)
    settings = make_settings(http_allow_hosts="127.0.0.1/32")

    result = await call({"url": http_server.url("/ok", host="rebind.example")}, settings=settings)

    assert result["status_code"] == 200
    assert len(fake_resolver.calls) == 1
    assert http_server.requests[0].headers["host"] == f"rebind.example:{http_server.port}"


async def test_falls_back_to_the_next_vetted_address(http_server: TestServer, fake_resolver: FakeResolver) -> None:
    # 127.0.0.2 is loopback too but nothing listens on that port there (Linux routes all of 127/8).
    fake_resolver.table = {"multi.example": ["127.0.0.2", "127.0.0.1"]}
    settings = make_settings(http_allow_private=True)
    result = await call({"url": http_server.url("/ok", host="multi.example")}, settings=settings)
    assert result["status_code"] == 200


async def test_https_connects_to_pinned_ip_with_sni_and_certificate_of_the_name(
    https_server: TestServer,
    fake_resolver: FakeResolver,
    tls_cert: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_cert[0]))
    fake_resolver.table = {"secure.example": ["127.0.0.1"]}
    settings = make_settings(http_allow_hosts="secure.example")

    result = await call({"url": https_server.url("/ok", host="secure.example")}, settings=settings)

    assert result == {"status_code": 200, "duration_ms": result["duration_ms"], "response_excerpt": "hello"}
    assert https_server.sni_names == ["secure.example"]
    assert https_server.requests[0].headers["host"] == f"secure.example:{https_server.port}"


async def test_https_certificate_for_another_name_is_rejected(
    https_server: TestServer,
    fake_resolver: FakeResolver,
    tls_cert: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_cert[0]))
    fake_resolver.table = {"impostor.example": ["127.0.0.1"]}
    settings = make_settings(http_allow_hosts="impostor.example")

    with pytest.raises(Retry, match="cannot connect"):
        await call({"url": https_server.url("/ok", host="impostor.example")}, settings=settings)
    assert https_server.requests == []


async def test_unresolvable_name_retries(fake_resolver: FakeResolver, no_network: SendGuard) -> None:
    with pytest.raises(Retry, match="cannot resolve"):
        await call({"url": "http://nowhere.example/"})
    assert no_network.attempts == []


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local (cloud metadata endpoint)"),
        ("169.254.1.1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT (100.64.0.0/10)"),
        ("100.127.255.254", "carrier-grade NAT (100.64.0.0/10)"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "private"),
        ("192.0.2.1", "private"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("ff02::1", "multicast"),
        ("fec0::1", "site-local"),
        ("fd00:ec2::254", "link-local (cloud metadata endpoint)"),
        ("::ffff:127.0.0.1", "loopback (embedded IPv4 127.0.0.1)"),
        ("::ffff:169.254.169.254", "link-local (cloud metadata endpoint) (embedded IPv4 169.254.169.254)"),
        ("2002:a00:1::", "private (embedded IPv4 10.0.0.1)"),
        ("64:ff9b::a00:5", "private (embedded IPv4 10.0.0.5)"),
    ],
)
def test_refusal_reason_for_internal_addresses(ip: str, reason: str) -> None:
    assert ssrf.refusal_reason(ipaddress.ip_address(ip)) == reason


@pytest.mark.parametrize("ip", ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_refusal_reason_for_public_addresses(ip: str) -> None:
    assert ssrf.refusal_reason(ipaddress.ip_address(ip)) is None


async def test_resolve_and_check_public_literal_skips_the_resolver(fake_resolver: FakeResolver) -> None:
    assert await ssrf.resolve_and_check("8.8.8.8", 443, make_settings()) == ["8.8.8.8"]
    assert await ssrf.resolve_and_check("[2606:4700:4700::1111]", 443, make_settings()) == ["2606:4700:4700::1111"]
    assert fake_resolver.calls == []


async def test_resolve_and_check_returns_all_public_addresses(fake_resolver: FakeResolver) -> None:
    fake_resolver.table = {"public.example": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]}
    ips = await ssrf.resolve_and_check("Public.Example.", 80, make_settings())
    assert ips == ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]
    assert fake_resolver.calls == [("public.example", 80)]


async def test_resolve_and_check_allow_private(fake_resolver: FakeResolver) -> None:
    fake_resolver.table = {"internal.example": ["10.0.0.5"]}
    assert await ssrf.resolve_and_check("internal.example", 80, make_settings(http_allow_private=True)) == ["10.0.0.5"]


async def test_resolve_and_check_empty_answer_retries(fake_resolver: FakeResolver) -> None:
    fake_resolver.table = {"empty.example": []}
    with pytest.raises(Retry, match="no addresses"):
        await ssrf.resolve_and_check("empty.example", 80, make_settings())


async def test_default_resolver_uses_getaddrinfo() -> None:
    ips = await ssrf.default_resolver("localhost", 80)
    assert ips
    assert all(ipaddress.ip_address(ip).is_loopback for ip in ips)
    assert len(ips) == len(set(ips))
    with pytest.raises(socket.gaierror):
        await ssrf.default_resolver("no-such-host.invalid", 80)


def test_parse_allow_hosts() -> None:
    names, networks = ssrf.parse_allow_hosts(" Allowed.Example. , 10.0.0.0/8,[::1], 192.168.1.7 ,, ")
    assert names == {"allowed.example"}
    assert networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("192.168.1.7/32"),
    )

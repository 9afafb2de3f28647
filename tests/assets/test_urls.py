"""Image URLs typed by hand must point to public http(s) servers (no SSRF, no intranet)."""

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from service.assets.services import is_public_http_url

PRIVATE = "serveur local ou privé"


def _fake_dns(table: dict[str, list[str]]) -> Any:
    """A getaddrinfo answering from ``table`` (DNS is outside our system)."""

    def getaddrinfo(host: str, *_args: Any, **_kwargs: Any) -> list[Any]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, 0, 0, 0) if ":" in a else (a, 0),
            )
            for a in table[host]
        ]

    return getaddrinfo


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        _fake_dns(
            {
                "www.agence-urbanisme.example.org": ["93.184.216.34", "2606:2800:220:1::248"],
                "intranet.agence.example.org": ["127.0.0.1"],
                "mixte.example.org": ["93.184.216.34", "10.0.0.8"],
                "nas.example.org": ["fd12:3456:789a::1"],
            }
        ),
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://www.agence-urbanisme.example.org/images/atelier.jpg",
        "http://www.agence-urbanisme.example.org:8080/logo.png?v=2",
        "https://93.184.216.34/photo.png",
        "https://[2606:2800:220:1::248]/photo.png",
    ],
)
def test_public_addresses_are_accepted(dns: None, url: str) -> None:
    assert is_public_http_url(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/image.png",
        "http://127.0.0.1:5000/media/1/logo.png",
        "http://10.1.2.3/image.png",
        "http://172.16.5.4/image.png",
        "http://192.168.1.10/image.png",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata, link-local
        "http://100.64.0.1/image.png",  # carrier-grade NAT
        "http://0.0.0.0/image.png",
        "http://224.0.0.1/image.png",
        "http://[::1]/image.png",
        "http://[fe80::1]/image.png",
        "http://[::ffff:127.0.0.1]/image.png",
        "http://[2002:7f00:1::]/image.png",  # 6to4 wrapping 127.0.0.1
        "http://localhost/image.png",
        "http://LOCALHOST./image.png",
        "http://app.localhost/image.png",
        "http://intranet.agence.example.org/logo.png",  # resolves to 127.0.0.1
        "http://mixte.example.org/logo.png",  # one private address is enough
        "http://nas.example.org/logo.png",  # IPv6 unique local
    ],
)
def test_private_addresses_are_refused(dns: None, url: str) -> None:
    assert PRIVATE in (is_public_http_url(url) or "")


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f000001"])
def test_numeric_shorthands_resolve_to_loopback(host: str) -> None:
    """The real resolver reads these as 127.0.0.1; no DNS server is needed."""
    assert PRIVATE in (is_public_http_url(f"http://{host}/x.png") or "")


def test_hostname_resolving_to_loopback_with_the_real_resolver() -> None:
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo("localhost.localdomain", None)}
    except socket.gaierror:
        pytest.skip("localhost.localdomain does not resolve here (fake DNS tests cover it)")
    assert addresses <= {"127.0.0.1", "::1"}
    assert PRIVATE in (is_public_http_url("http://localhost.localdomain/x.png") or "")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://www.agence-urbanisme.example.org/logo.png", "http:// ou https://"),
        ("javascript:alert(1)", "http:// ou https://"),
        ("file:///etc/passwd", "http:// ou https://"),
        ("data:image/png;base64,AAAA", "http:// ou https://"),
        ("www.agence-urbanisme.example.org/logo.png", "http:// ou https://"),
        ("https://user:secret@www.agence-urbanisme.example.org/x.png", "identifiant"),
        ("https:///logo.png", "aucun serveur"),
        ("https://www.agence-urbanisme.example.org:http/x.png", "pas valide"),
        ("https://inconnu.example.org/logo.png", "« inconnu.example.org » est introuvable"),
    ],
)
def test_other_refusals(dns: None, url: str, message: str) -> None:
    assert message in (is_public_http_url(url) or "")


@pytest.fixture
def hanging_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    release = threading.Event()

    def getaddrinfo(*_args: Any, **_kwargs: Any) -> list[Any]:
        release.wait(5)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
    release.set()


def test_slow_resolver_is_a_refusal(hanging_dns: None) -> None:
    error = is_public_http_url("https://lent.example.org/logo.png", timeout=0.05)
    assert error == "Le serveur « lent.example.org » n'a pas répondu à temps ; réessayez."

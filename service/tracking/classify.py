"""Human or machine: the rules applied to each tracking hit (DESIGN.md §6).

Pure functions on plain values, so every rule has its own test. What a rule
cannot know at request time (several links of one delivery fetched in the same
second) is decided when the events are written, by ``bursts``.

Sources for the patterns, checked against public material rather than guessed:
- Apple Mail Privacy Protection fetches remote content through Apple's proxy with
  the bare user agent ``Mozilla/5.0`` (nothing else), as soon as the message
  reaches the device, whether or not it is read (ua-parser/uap-core#509).
- Gmail shows images through its image proxy when the message is opened, with
  ``… (via ggpht.com GoogleImageProxy)``; Yahoo does the same with
  ``YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html``
  (faisalman/ua-parser-js#494). Those are real opens: human.
- Desktop Outlook sends ``… ms-office; MSOffice 16)``: a person reading.
- Security gateways (Microsoft Safe Links / URL analyzer, Mimecast, Proofpoint,
  Barracuda…) and HTTP libraries fetch every link right after delivery, often
  with HEAD, or announce themselves in the user agent.
"""

import datetime as dt
import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

# A click this soon after our SMTP server handed the message over is a gateway
# scanning it on arrival; a person needs longer to receive, open, read and click.
SCANNER_CLICK_SECONDS = 10
# Image prefetchers on arrival (gateways that render the message) are faster still.
PREFETCH_OPEN_SECONDS = 2
# Distinct links of one delivery clicked within this window: a scanner following them all.
BURST_LINKS = 3
BURST_WINDOW = dt.timedelta(seconds=1)

APPLE_PRIVACY = "Apple Mail Privacy"


class Hit(NamedTuple):
    kind: str  # "open" or "click"
    method: str
    user_agent: str | None
    at: dt.datetime
    # When the message left (None: not yet). For a per-issue token, the start.
    sent_at: dt.datetime | None = None
    # Whether ``sent_at`` is known at all (False: the timing rules do not apply).
    timed: bool = False


class Verdict(NamedTuple):
    is_machine: bool
    family: str  # coarse user agent, at most 40 characters
    reason: str


# Webmail image proxies: they fetch when a person opens the message.
_WEBMAIL_PROXIES = (
    (re.compile(r"GoogleImageProxy", re.IGNORECASE), "Gmail"),
    (re.compile(r"YahooMailProxy", re.IGNORECASE), "Yahoo Mail"),
)

# Security scanners and automated clients, most specific first: (pattern, family).
_MACHINES = (
    (re.compile(r"safelinks|urlanalyzer|Microsoft Defender|O365LinkProtection", re.I), "Microsoft"),
    (re.compile(r"mimecast", re.I), "Mimecast"),
    (re.compile(r"proofpoint", re.I), "Proofpoint"),
    (re.compile(r"barracuda", re.I), "Barracuda"),
    (re.compile(r"symantec|broadcom|messagelabs", re.I), "Symantec"),
    (re.compile(r"forcepoint|sophos|trend ?micro|ironport|fortinet|zscaler", re.I), "Scanner"),
    (re.compile(r"headlesschrome|phantomjs|puppeteer|playwright|selenium", re.I), "Headless"),
    (
        re.compile(
            r"curl/|wget/|python-requests|python-urllib|aiohttp|httpx|go-http-client|okhttp|"
            r"java/|apache-httpclient|libwww-perl|node-fetch|axios/|postman",
            re.I,
        ),
        "HTTP library",
    ),
    (
        re.compile(
            r"facebookexternalhit|slackbot|twitterbot|linkedinbot|whatsapp|telegrambot", re.I
        ),
        "Link preview",
    ),
    (re.compile(r"bot\b|bot/|crawler|spider|scanner|preview|monitor|checker", re.I), "Bot"),
)

# Families of ordinary clients, for the statistics only (never a machine verdict).
_FAMILIES = (
    (re.compile(r"MSOffice|ms-office|Outlook", re.I), "Outlook"),
    (re.compile(r"Thunderbird", re.I), "Thunderbird"),
    (re.compile(r"Edg(e|A|iOS)?/", re.I), "Edge"),
    (re.compile(r"Firefox/", re.I), "Firefox"),
    (re.compile(r"Chrome/|CriOS/", re.I), "Chrome"),
    (re.compile(r"Version/[\d.]+.*Safari/", re.I), "Safari"),
    # Apple Mail (iOS and macOS) is WebKit without a Safari token.
    (re.compile(r"AppleWebKit/", re.I), "Apple Mail"),
)


def classify(hit: Hit) -> Verdict:
    """The verdict for one hit; the first rule that applies wins."""
    agent = (hit.user_agent or "").strip()
    machine, family, webmail = _agent(agent)
    if hit.method == "HEAD":
        return Verdict(True, family, "head-request")
    if not agent:
        return Verdict(True, family, "no-user-agent")
    if machine:
        return Verdict(
            True, family, "apple-privacy-proxy" if family == APPLE_PRIVACY else "known-robot"
        )
    if hit.timed:
        if hit.sent_at is None or hit.at < hit.sent_at:
            return Verdict(True, family, "before-sent")
        elapsed = (hit.at - hit.sent_at).total_seconds()
        limit = SCANNER_CLICK_SECONDS if hit.kind == "click" else PREFETCH_OPEN_SECONDS
        if elapsed < limit:
            return Verdict(True, family, "on-arrival")
    return Verdict(False, family, "webmail-proxy" if webmail else "person")


@functools.lru_cache(maxsize=4096)
def _agent(agent: str) -> tuple[bool, str, bool]:
    """(a machine by its user agent, family, a webmail proxy): the same few thousand
    user agents come back on every hit, so this is computed once for each."""
    if not agent:
        return False, "Inconnu", False
    if agent == "Mozilla/5.0":
        return True, APPLE_PRIVACY, False
    for pattern, family in _MACHINES:
        if pattern.search(agent):
            return True, family, False
    for pattern, family in _WEBMAIL_PROXIES:
        if pattern.search(agent):
            return False, family, True
    return False, next((f for pattern, f in _FAMILIES if pattern.search(agent)), "Autre"), False


@dataclass(frozen=True)
class Click:
    key: int  # the caller's identifier (an event id)
    delivery_id: int
    link_id: int | None
    at: dt.datetime


def bursts(clicks: Iterable[Click]) -> set[int]:
    """Keys of the clicks that belong to a burst: ``BURST_LINKS`` distinct links of
    one delivery within ``BURST_WINDOW`` — a scanner following every link."""
    by_delivery: dict[int, list[Click]] = {}
    for click in clicks:
        by_delivery.setdefault(click.delivery_id, []).append(click)
    found: set[int] = set()
    for group in by_delivery.values():
        group.sort(key=lambda c: c.at)
        start = 0
        for end, click in enumerate(group):
            while click.at - group[start].at > BURST_WINDOW:
                start += 1
            window = group[start : end + 1]
            if len({c.link_id for c in window}) >= BURST_LINKS:
                found.update(c.key for c in window)
    return found


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"({_OCTET}\.{_OCTET}\.{_OCTET}\.){_OCTET}")  # canonical form only


def truncate_ip(address: str | None) -> str | None:
    """The network only (/24 for IPv4, /48 for IPv6): never a person's address."""
    if not address:
        return None
    address = address.strip()
    if v4 := _IPV4.fullmatch(address):  # the common case, without ipaddress's cost
        return f"{v4[1]}0"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)

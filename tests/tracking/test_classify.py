"""Human or machine, one test per rule, with user agents seen in the wild."""

import datetime as dt

import pytest

from service.tracking.classify import Click, Hit, bursts, classify, truncate_ip

SENT = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
LATER = SENT + dt.timedelta(hours=3)

# People reading: browsers, mail apps, and webmail image proxies that fetch on a real open.
HUMANS = {
    "Firefox": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Chrome": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36"
    ),
    "Edge": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86"
    ),
    "Safari": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Safari/605.1.15"
    ),
    "Apple Mail": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148"
    ),
    "Outlook": (
        "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 10.0; WOW64; Trident/7.0; "
        "Microsoft Outlook 16.0.5422; ms-office; MSOffice 16)"
    ),
    "Thunderbird": ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.5.0"),
    "Gmail": (
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    ),
    "Yahoo Mail": "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
}

MACHINES = {
    "Microsoft": "Mozilla/5.0 (Windows NT; Microsoft Office SafeLinks)",
    "Mimecast": "Mimecast-URL-Protect/1.0",
    "Proofpoint": "Proofpoint URL Defense",
    "Barracuda": "Barracuda Sentinel (EE)",
    "Headless": (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/120.0.0.0 Safari/537.36"
    ),
    "HTTP library": "python-requests/2.32.3",
    "Link preview": "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Bot": "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
}


def _hit(
    agent: str | None, kind: str = "open", method: str = "GET", at: dt.datetime = LATER
) -> Hit:
    return Hit(kind, method, agent, at, sent_at=SENT, timed=True)


@pytest.mark.parametrize(("family", "agent"), HUMANS.items())
@pytest.mark.parametrize("kind", ["open", "click"])
def test_people_reading_are_human(family: str, agent: str, kind: str) -> None:
    verdict = classify(_hit(agent, kind))
    assert not verdict.is_machine
    assert verdict.family == family


def test_webmail_proxies_are_human_and_say_so() -> None:
    assert classify(_hit(HUMANS["Gmail"])).reason == "webmail-proxy"


@pytest.mark.parametrize(("family", "agent"), MACHINES.items())
def test_scanners_and_robots_are_machines(family: str, agent: str) -> None:
    verdict = classify(_hit(agent, "click"))
    assert verdict.is_machine
    assert verdict.family == family
    assert verdict.reason == "known-robot"


def test_apple_mail_privacy_protection_prefetch() -> None:
    verdict = classify(_hit("Mozilla/5.0"))
    assert verdict == classify(_hit(" Mozilla/5.0 "))
    assert verdict.is_machine
    assert verdict.family == "Apple Mail Privacy"


@pytest.mark.parametrize("agent", [None, "", "   "])
def test_missing_user_agent(agent: str | None) -> None:
    assert classify(_hit(agent)).reason == "no-user-agent"


def test_head_requests_are_scanners_checking_a_link() -> None:
    verdict = classify(_hit(HUMANS["Chrome"], "click", method="HEAD"))
    assert verdict.is_machine
    assert verdict.reason == "head-request"


def test_hits_before_the_message_left() -> None:
    before = Hit("open", "GET", HUMANS["Firefox"], SENT - dt.timedelta(minutes=1), SENT, True)
    unsent = Hit("click", "GET", HUMANS["Firefox"], LATER, None, True)
    assert classify(before).reason == classify(unsent).reason == "before-sent"


def test_clicks_seconds_after_sending_are_link_scanners() -> None:
    fast = classify(_hit(HUMANS["Chrome"], "click", at=SENT + dt.timedelta(seconds=4)))
    assert (fast.is_machine, fast.reason) == (True, "on-arrival")
    slow = classify(_hit(HUMANS["Chrome"], "click", at=SENT + dt.timedelta(seconds=40)))
    assert not slow.is_machine


def test_opens_on_arrival_are_prefetches() -> None:
    assert classify(_hit(HUMANS["Chrome"], at=SENT + dt.timedelta(seconds=1))).is_machine
    assert not classify(_hit(HUMANS["Chrome"], at=SENT + dt.timedelta(seconds=30))).is_machine


def test_timing_rules_need_a_known_send_time() -> None:
    hit = Hit("click", "GET", HUMANS["Chrome"], SENT, None, timed=False)
    assert not classify(hit).is_machine


def test_bursts_of_links_of_one_delivery() -> None:
    t = LATER
    ms = dt.timedelta(milliseconds=1)
    clicks = [
        # Delivery 1: three different links within a second → all three are a scanner.
        Click(1, 1, 10, t),
        Click(2, 1, 11, t + 300 * ms),
        Click(3, 1, 12, t + 900 * ms),
        # Delivery 2: the same link three times (a double click, a reload): a person.
        Click(4, 2, 10, t),
        Click(5, 2, 10, t + 100 * ms),
        Click(6, 2, 10, t + 200 * ms),
        # Delivery 3: three links over a minute: a person reading.
        Click(7, 3, 10, t),
        Click(8, 3, 11, t + 20_000 * ms),
        Click(9, 3, 12, t + 40_000 * ms),
    ]
    assert bursts(clicks) == {1, 2, 3}
    assert bursts(reversed(clicks)) == {1, 2, 3}  # order of arrival does not matter


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("10.1.2.3", "10.1.2.0"),
        ("2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::"),
        ("::ffff:198.51.100.20", "198.51.100.0"),
        ("not an address", None),
        ("", None),
        (None, None),
    ],
)
def test_addresses_are_cut_to_their_network(address: str | None, network: str | None) -> None:
    assert truncate_ip(address) == network

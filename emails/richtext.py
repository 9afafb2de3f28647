"""Rich text from the editor: sanitised with nh3 (on save and again on render),
and turned into plain text for the text part."""

import re
from collections.abc import Callable
from html import unescape
from html.parser import HTMLParser

import nh3

ALLOWED_TAGS = {
    "p",
    "br",
    "strong",
    "b",
    "em",
    "i",
    "u",
    "a",
    "ul",
    "ol",
    "li",
    "h3",
    "h4",
    "blockquote",
    "div",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
URL_SCHEMES = {"http", "https", "mailto"}


def sanitise(html: str) -> str:
    """Keep only the allow-listed tags, attributes and link schemes."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel=None,
        strip_comments=True,
    )


class _TextConverter(HTMLParser):
    """Paragraphs and list items become lines; links become « text [n] »."""

    def __init__(self, link_ref: "LinkRef") -> None:
        super().__init__(convert_charrefs=True)
        self.link_ref = link_ref
        self.out: list[str] = []
        self.href: str | None = None
        self.list_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"p", "div", "h3", "h4", "blockquote", "ul", "ol"}:
            self.out.append("\n\n")
        elif tag == "br":
            self.out.append("\n")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag == "a":
            self.href = dict(attrs).get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self.href:
            self.out.append(f" [{self.link_ref(self.href)}]")
            self.href = None
        elif tag in {"p", "div", "h3", "h4", "blockquote", "ul", "ol"}:
            self.out.append("\n\n")

    def handle_data(self, data: str) -> None:
        # Collapse whitespace like a browser, keeping one space at either edge.
        core = " ".join(data.split())
        if not core:
            self.out.append(" " if data else "")
            return
        lead = " " if data[:1].isspace() else ""
        trail = " " if data[-1:].isspace() else ""
        self.out.append(f"{lead}{core}{trail}")


class LinkRef:
    """Numbers links for the text part's list at the end."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, url: str) -> int:
        if url not in self.urls:
            self.urls.append(url)
        return self.urls.index(url) + 1


def to_paragraphs(html: str, link_ref: LinkRef) -> list[str]:
    """Sanitised rich text → plain paragraphs (lines inside kept with "\\n")."""
    converter = _TextConverter(link_ref)
    converter.feed(sanitise(html))
    converter.close()
    text = "".join(converter.out)
    paragraphs = []
    for chunk in text.split("\n\n"):
        lines = [" ".join(line.split()) for line in chunk.split("\n")]
        cleaned = "\n".join(line for line in lines if line)
        if cleaned:
            paragraphs.append(cleaned)
    return paragraphs


# Any attribute order: nh3 keeps the author's (<a title="…" href="…"> is valid).
_ANCHOR = re.compile(r'<a\s[^>]*?\bhref="([^"]*)"[^>]*>(.*?)</a>', re.S)
_TAG = re.compile(r"<[^>]+>")


def anchors(html: str) -> list[tuple[str, str]]:
    """(url, visible text) of each link in sanitised rich text."""
    return [
        (unescape(url), " ".join(unescape(_TAG.sub("", text)).split()))
        for url, text in _ANCHOR.findall(sanitise(html))
    ]


def rewrite_hrefs(html: str, replace: "Callable[[str], str]") -> str:
    """Swap each link's href for ``replace(url)`` (already HTML-safe)."""
    return _ANCHOR.sub(
        lambda m: m.group(0).replace(
            f'href="{m.group(1)}"', f'href="{replace(unescape(m.group(1)))}"', 1
        ),
        html,
    )

"""Issue → MJML (Jinja) → HTML (mjml-python), and the text part, once per
visibility variant. Per-recipient parts are left as markers that
``emails.mime`` turns into slots."""

import re
import secrets
import textwrap
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mjml
from jinja2 import (
    Environment,
    PackageLoader,
    StrictUndefined,
    TemplateError,
    TemplateSyntaxError,
    select_autoescape,
)
from markupsafe import Markup

from emails.blocks import get_kind
from emails.blocks.agenda import when
from emails.formatting import PARIS, format_label, french_date
from emails.model import BlockData, IssueData
from emails.richtext import LinkRef, rewrite_hrefs, sanitise
from emails.tokens import TokenSigner

WIDTH = 78
TEMPLATES = str(Path(__file__).resolve().parent / "templates") + "/"


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _one_line_ending(value: object) -> object:
    """Text areas arrive with CRLF; MJML and SMTP both choke on a lone CR, and control
    characters are never valid in HTML: normalise every value the templates print."""
    if isinstance(value, str):
        cleaned = _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))
        # Already-safe markup (sanitised rich text) must stay markup, not be escaped.
        return Markup(cleaned) if isinstance(value, Markup) else cleaned  # noqa: S704
    return value


_env = Environment(
    finalize=_one_line_ending,
    loader=PackageLoader("emails", "templates"),
    autoescape=select_autoescape(["html", "mjml", "xml"], default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


class RenderError(Exception):
    """The issue could not be rendered; says which template and line."""

    def __init__(self, message: str, template: str | None = None, line: int | None = None) -> None:
        where = (
            f" ({template}, ligne {line})"
            if template and line
            else f" ({template})"
            if template
            else ""
        )
        super().__init__(f"{message}{where}")
        self.template = template
        self.line = line


@dataclass(frozen=True)
class IssueLink:
    position: int
    block_id: int | None
    url: str  # as written in the block; "ics:UID" for calendar links
    kind: str
    label: str


@dataclass(frozen=True)
class RenderSettings:
    """Where public pages live and how tracked URLs look; the same for every variant."""

    base_url: str
    list_domain: str
    unsubscribe_mailbox: str
    signer: TokenSigner
    view_online_url: str
    calendar_url: Callable[[int, str], str]  # (block id, event uid) → public .ics URL


@dataclass(frozen=True)
class WebPage:
    """The public archive's rendering of an issue (``emails.web``): nobody to greet, no
    pixel, no personal links; the header leads to the archive and the footer to the
    subscription page instead of the preferences and unsubscribe links."""

    archive_url: str
    subscribe_url: str
    icon_url: str | None = None  # the site's icon, so browsers do not ask for /favicon.ico


@dataclass(frozen=True)
class CompiledVariant:
    """Rendered HTML and text with markers ``{nonce}<K><n>Z`` for per-recipient parts."""

    html: str
    text: str
    mjml: str  # the generated MJML source, for diagnostics and benchmarks
    nonce: str
    links: Sequence[IssueLink]
    block_ids: tuple[int, ...]


def collect_links(issue: IssueData) -> list[IssueLink]:
    """Every link of the issue, all variants included, in a stable order."""
    found: list[IssueLink] = []
    seen: set[tuple[int | None, str]] = set()
    for block in issue.blocks:
        for spec in get_kind(block.kind).links(block.data):
            key = (block.id, spec.url)
            if key not in seen:
                seen.add(key)
                found.append(IssueLink(len(found), block.id, spec.url, spec.kind, spec.label))
    website = issue.newsletter.website_url
    if website and (None, website) not in seen:
        found.append(IssueLink(len(found), None, website, "system", "Site de l'agence"))
    return found


def resolve(link: IssueLink, settings: RenderSettings) -> str:
    """The link's real target (calendar links point to our public .ics)."""
    if link.url.startswith("ics:") and link.block_id is not None:
        return settings.calendar_url(link.block_id, link.url[4:])
    return link.url


def visible_blocks(
    issue: IssueData, segments: Collection[str] | None, restricted: Collection[int] | None = None
) -> list[BlockData]:
    """Blocks shown to a reader of ``segments`` (None: a preview showing everything).

    ``restricted``, when given, names the segment-limited blocks to show instead
    (the variant recorded for a delivery at snapshot time).
    """
    if restricted is not None:
        shown = set(restricted)
        return [b for b in issue.blocks if not b.segments or b.id in shown]
    if segments is None:
        return list(issue.blocks)
    wanted = set(segments)
    return [b for b in issue.blocks if not b.segments or b.segments & wanted]


def variant_key(issue: IssueData, segments: Collection[str] | None) -> str:
    """Recipients whose segments show the same restricted blocks share a rendering."""
    restricted = [str(b.id) for b in visible_blocks(issue, segments) if b.segments]
    return ",".join(restricted) if restricted else "all"


def compile_variant(
    issue: IssueData,
    segments: Collection[str] | None,
    restricted: Collection[int] | None = None,
    *,
    web: WebPage | None = None,
) -> CompiledVariant:
    nonce = "x" + secrets.token_hex(6)
    links = collect_links(issue)
    by_key = {(link.block_id, link.url): link for link in links}
    blocks = visible_blocks(issue, segments, restricted)

    def marker(kind: str, arg: int | str = "") -> str:
        return f"{nonce}{kind}{arg}Z"

    def track(block_id: int | None, url: str) -> str:
        return marker("L", by_key[(block_id, url)].position)

    def rich(block_id: int, html: str) -> Markup:
        # Sanitised on save and again here, in case stored data bypassed the form.
        return Markup(rewrite_hrefs(sanitise(html), lambda url: track(block_id, url)))  # noqa: S704

    website = issue.newsletter.website_url
    context: dict[str, Any] = {
        "issue": issue,
        "newsletter": issue.newsletter,
        "color": issue.newsletter.main_color,
        "issue_date": (
            french_date(issue.scheduled_at.astimezone(PARIS).date()) if issue.scheduled_at else None
        ),
        "greeting": Markup(marker("N")),  # noqa: S704 - our own marker, no user data
        "blocks": [
            {"block": b, "data": b.data, "template": get_kind(b.kind).template} for b in blocks
        ],
        "track": track,
        "rich": rich,
        "when": when,
        "format_label": format_label,
        "view_online": marker("V"),
        "preferences": marker("P"),
        "unsubscribe": marker("U"),
        "pixel": marker("O") if issue.newsletter.tracking_mode != "off" and not web else None,
        "website": track(None, website) if website else None,
        "reason": issue.reason,
        "web": web,
    }
    try:
        source = _env.get_template("layout.mjml").render(context)
    except TemplateSyntaxError as error:
        raise RenderError(
            f"Erreur de gabarit : {error.message}", error.name, error.lineno
        ) from None
    except TemplateError as error:
        template, line = _template_position(error)
        raise RenderError(f"Erreur de gabarit : {error}", template, line) from None
    try:
        html = mjml.mjml2html(source, fonts={}, disable_comments=False)
    except ValueError as error:
        raise RenderError(f"MJML invalide : {error}", "layout.mjml") from None
    text = _text(issue, blocks, marker, by_key)
    return CompiledVariant(html, text, source, nonce, links, tuple(b.id for b in blocks))


def _template_position(error: BaseException) -> tuple[str | None, int | None]:
    """The innermost template frame of a runtime Jinja error.

    Jinja rewrites tracebacks so that template frames carry the template's file
    name and line number.
    """
    tb = error.__traceback__
    found: tuple[str | None, int | None] = (None, None)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith(TEMPLATES):
            found = (filename[len(TEMPLATES) :], tb.tb_lineno)
        tb = tb.tb_next
    return found


def _text(
    issue: IssueData,
    blocks: Sequence[BlockData],
    marker: Callable[..., str],
    by_key: dict[tuple[int | None, str], IssueLink],
) -> str:
    ref = LinkRef()
    owners: dict[str, int | None] = {}
    sections: list[str] = []
    header = f"{issue.newsletter.name} · n° {issue.number}"
    sections.append(_wrap(header.upper()))
    sections.append(_wrap(issue.title))
    sections.append(f"Voir cette lettre dans votre navigateur :\n{marker('V')}")
    sections.append(marker("N"))
    for block in blocks:
        before = len(ref.urls)
        for paragraph in get_kind(block.kind).text(block.data, ref):
            sections.append(_wrap(paragraph))
        for url in ref.urls[before:]:
            owners.setdefault(url, block.id)
        sections.append("")
    if ref.urls:
        lines = ["Liens :"]
        for number, url in enumerate(ref.urls, start=1):
            link = by_key.get((owners.get(url), url))
            if link is None:
                raise RenderError(f"Lien introuvable dans le texte : {url}")
            lines.append(f"[{number}] {marker('L', link.position)}")
        sections.append("\n".join(lines))
    footer = [
        "-- ",
        _wrap(issue.newsletter.legal_footer) if issue.newsletter.legal_footer else "",
        _wrap(issue.reason) if issue.reason else "",
        issue.newsletter.postal_address,
        f"Gérer mes préférences : {marker('P')}",
        f"Se désinscrire : {marker('U')}",
    ]
    sections.append("\n".join(line for line in footer if line))
    text = "\n\n".join(s for s in sections if s is not None)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def _wrap(paragraph: str) -> str:
    return "\n".join(
        textwrap.fill(
            line,
            WIDTH,
            break_long_words=False,
            break_on_hyphens=False,
            subsequent_indent="  " if line.startswith(("* ", "- ", "  ")) else "",
        )
        if len(line) > WIDTH
        else line
        for line in paragraph.split("\n")
    )

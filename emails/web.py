"""An issue as a public web page: the same MJML and HTML as the email, for nobody.

The public archive (and the « Voir en ligne » link of every email) shows the
rendering readers received, compiled once by ``compile_variant`` in its web form
(``WebPage``): no greeting, no open pixel, no preferences or unsubscribe link. The
only markers left are the links, filled here with their real targets: nothing is
tracked and nothing names a reader. Any other marker is a bug and raises, so a
per-recipient slot can never leak onto a public page as a half-filled URL.
"""

import html
import re

from emails.model import IssueData
from emails.render import RenderError, RenderSettings, WebPage, compile_variant, resolve

# Segment-limited blocks are left out: a public page shows what every reader saw.
EVERYONE: tuple[str, ...] = ()


def web_html(issue: IssueData, settings: RenderSettings, page: WebPage) -> str:
    """The issue's HTML document for the web, links untracked, blocks limited to
    segments left out."""
    variant = compile_variant(issue, EVERYONE, web=page)
    links = {link.position: link for link in variant.links}
    marker = re.compile(re.escape(variant.nonce) + r"([A-Z])(\d*)Z")

    def fill(match: re.Match[str]) -> str:
        kind, arg = match.group(1), match.group(2)
        if kind != "L":
            raise RenderError(f"Élément personnel « {kind} » dans la version publique")
        return html.escape(resolve(links[int(arg)], settings))

    document = marker.sub(fill, variant.html)
    if page.icon_url:
        head = f'<head><link rel="icon" href="{html.escape(page.icon_url)}">'
        document = document.replace("<head>", head, 1)
    return document

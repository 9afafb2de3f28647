"""The click map: the email as recipients saw it (every block), each link annotated with its
clicks. Shown in the same sandboxed iframe as the editor's preview."""

import html
import re
from collections.abc import Callable, Mapping

from emails import compile_variant
from emails.render import resolve
from service.config import Config
from service.issues.models import Issue
from service.issues.rendering import issue_data, render_settings

_ANCHOR = re.compile(r'(<a\b[^>]*?href=")(x[0-9a-f]{12})L(\d+)Z("[^>]*>)(.*?)(</a>)', re.S)
_MARKER = re.compile(r"(x[0-9a-f]{12})([LNOUPV])(\d*)Z")
BADGE = (
    "display:inline-block;margin:0 0 0 6px;padding:1px 7px;border-radius:10px;"
    "background:#ffd54f;color:#1a1a1a;font:bold 12px/1.6 Arial,sans-serif;"
    "text-decoration:none;vertical-align:middle;border:1px solid #b28704;"
)


def click_map(
    issue: Issue,
    config: Config,
    clicks: Mapping[int, tuple[int, int | None]],
    label: Callable[[int], str],
) -> str:
    """The issue's HTML with a badge after each link: ``clicks`` maps a link position to
    (human clicks, unique clickers or None); ``label`` words a count (« 1 clic »)."""
    data = issue_data(issue, config=config)
    settings = render_settings(config, issue.id)
    variant = compile_variant(data, None)
    links = {link.position: link for link in variant.links}
    nonce = variant.nonce

    def anchor(match: re.Match[str]) -> str:
        if match.group(2) != nonce:
            return match.group(0)
        position = int(match.group(3))
        link = links.get(position)
        url = resolve(link, settings) if link is not None else "#"
        total, _unique = clicks.get(position, (0, None))
        badge = (
            f'<span data-link-position="{position}" data-clicks="{total}" '
            f'style="{BADGE}">{html.escape(label(total))}</span>'
        )
        return (
            f"{match.group(1)}{html.escape(url)}{match.group(4)}{match.group(5)}"
            f"{match.group(6)}{badge}"
        )

    def other(match: re.Match[str]) -> str:
        if match.group(1) != nonce:
            return match.group(0)
        kind = match.group(2)
        if kind == "N":
            return "Bonjour,"
        if kind == "O":
            return "data:,"
        return "#"

    return _MARKER.sub(other, _ANCHOR.sub(anchor, variant.html))

"""Email rendering: plain data in (issue, blocks, newsletter), compiled message
template out. Never touches the database or the network (DESIGN.md §5).

    variant = compile_variant(issue, segments, settings)      # Jinja → MJML → HTML, text
    template = build_template(issue, variant, settings, individual=True)
    personaliser = Personaliser(issue, template, settings)
    raw = personaliser.render(recipient)                       # bytes for SMTP, ~µs
"""

from emails.mime import HeaderInjectionError, MessageTemplate, Personaliser, build_template
from emails.model import BlockData, IssueData, NewsletterData, Recipient
from emails.render import (
    CompiledVariant,
    IssueLink,
    RenderError,
    RenderSettings,
    collect_links,
    compile_variant,
    resolve,
    variant_key,
)
from emails.tokens import TokenSigner

__all__ = [
    "BlockData",
    "CompiledVariant",
    "HeaderInjectionError",
    "IssueData",
    "IssueLink",
    "MessageTemplate",
    "NewsletterData",
    "Personaliser",
    "Recipient",
    "RenderError",
    "RenderSettings",
    "TokenSigner",
    "build_template",
    "collect_links",
    "compile_variant",
    "resolve",
    "variant_key",
]

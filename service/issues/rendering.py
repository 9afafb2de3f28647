"""From stored issues to the plain data ``emails`` renders, and the settings it needs."""

import datetime as dt
import email
import email.policy
from email.message import EmailMessage
from urllib.parse import urlsplit

from itsdangerous import URLSafeSerializer
from sqlalchemy.orm import Session, object_session

from emails import (
    BlockData,
    IssueData,
    NewsletterData,
    Personaliser,
    Recipient,
    RenderSettings,
    TokenSigner,
    build_template,
    compile_variant,
)
from emails.checks import Finding, run_checks
from emails.dkim import DkimSigner
from service.assets.models import Asset
from service.assets.services import public_url
from service.config import Config, ConfigError
from service.db import utcnow
from service.issues.models import Issue

CALENDAR_SALT = "lettrine.calendar"


def issue_data(issue: Issue, *, reason: str = "", config: Config | None = None) -> IssueData:
    """Plain data for ``emails``; ``config`` gives public URLs (the logo) when known."""
    newsletter = issue.newsletter
    logo_url = None
    session = object_session(issue)
    if config is not None and newsletter.logo_asset_id and session is not None:
        logo = session.get(Asset, newsletter.logo_asset_id)
        logo_url = public_url(config, logo) if logo is not None else None
    return IssueData(
        id=issue.id,
        number=issue.number,
        title=issue.title,
        subject=issue.subject,
        preheader=issue.preheader,
        scheduled_at=issue.scheduled_at,
        audience=frozenset(segment.slug for segment in issue.segments),
        reason=reason
        or (
            "Vous recevez cette lettre parce que vous êtes inscrit à la liste de diffusion "
            f"« {newsletter.name} »."
        ),
        newsletter=NewsletterData(
            name=newsletter.name,
            slug=newsletter.slug,
            sender_name=newsletter.sender_name,
            sender_email=newsletter.sender_email,
            reply_to=newsletter.reply_to,
            legal_footer=newsletter.legal_footer,
            postal_address=newsletter.postal_address,
            main_color=newsletter.main_color,
            logo_url=logo_url,
            website_url=newsletter.website_url,
            tracking_mode=newsletter.tracking_mode.value,
        ),
        blocks=[
            BlockData(
                id=block.id,
                kind=block.kind,
                data=block.data,
                segments=frozenset(segment.slug for segment in block.segments),
            )
            for block in issue.blocks
        ],
    )


def calendar_serializer(config: Config) -> URLSafeSerializer:
    return URLSafeSerializer(config.secret_key, salt=CALENDAR_SALT)


def render_settings(config: Config, issue_id: int) -> RenderSettings:
    host = urlsplit(config.base_url).hostname or "localhost"
    serializer = calendar_serializer(config)
    base = config.base_url
    return RenderSettings(
        base_url=base,
        list_domain=host,
        unsubscribe_mailbox=f"desinscription@{host}",
        signer=TokenSigner(config.secret_key),
        view_online_url=f"{base}/archives/{issue_id}",
        calendar_url=lambda block_id, uid: f"{base}/agenda/{serializer.dumps([block_id, uid])}.ics",
    )


def load_issue(session: Session, issue_id: int) -> Issue | None:
    return session.get(Issue, issue_id)


def dkim_signer(config: Config) -> DkimSigner | None:
    """The configured DKIM signer, or None when signing is off."""
    parts = (config.dkim_domain, config.dkim_selector, config.dkim_key_path)
    if not any(parts):
        return None
    if not all(parts):
        raise ConfigError(
            "DKIM needs DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY_FILE together."
        )
    assert config.dkim_key_path is not None  # noqa: S101 - checked just above
    try:
        pem = config.dkim_key_path.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read the DKIM key {config.dkim_key_path}: {error}") from None
    return DkimSigner(str(config.dkim_domain), str(config.dkim_selector), pem)


def presend_checks(
    issue: Issue, config: Config, send_at: dt.datetime | None = None
) -> list[Finding]:
    """Render the fullest variant (every block) and check it as it would be sent."""
    data = issue_data(issue, config=config)
    send_at = send_at or issue.scheduled_at or utcnow()
    variant = compile_variant(data, None)
    settings = render_settings(config, issue.id)
    template = build_template(data, variant, settings)
    sample = Personaliser(data, template, settings).render(SAMPLE_RECIPIENT)
    findings = run_checks(data, [variant], send_at=send_at, html_sizes=[html_part_size(sample)])
    return findings + _dkim_alignment(config, issue.newsletter.sender_email)


def _dkim_alignment(config: Config, sender: str) -> list[Finding]:
    """DMARC passes on DKIM only when the signing domain matches the From domain."""
    domain = sender.rpartition("@")[2].lower()
    signing = (config.dkim_domain or "").lower()
    if not signing or domain == signing or domain.endswith("." + signing):
        return []
    message = (
        f"Les messages sont signés (DKIM) pour « {signing} » mais envoyés depuis "
        f"« {domain} » : les messageries qui appliquent DMARC risquent de les refuser. "
        "Alignez l'adresse d'expédition de la lettre et DKIM_DOMAIN."
    )
    return [Finding("warning", "dkim-alignment", message)]


SAMPLE_RECIPIENT = Recipient(
    delivery_id=2**40, email="prenom.nom@exemple.fr", first_name="Dominique", last_name="Exemple"
)


def html_part_size(message: bytes) -> int:
    """Decoded size of the HTML part: what Gmail weighs before clipping."""
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)  # noqa: S101 - guaranteed by policy.default
    body = parsed.get_body(("html",))
    return len(body.get_content().encode()) if body is not None else 0

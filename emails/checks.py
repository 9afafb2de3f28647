"""Pre-send checks: what would make the issue fail its readers, found before sending.

One function, ``run_checks``, returns findings with a severity, a French
message and the block concerned. Errors block sending; warnings are advice.
"""

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from emails.blocks import get_kind
from emails.formatting import parse_local
from emails.model import BlockData, IssueData
from emails.render import CompiledVariant
from emails.richtext import anchors

Severity = Literal["error", "warning"]

GMAIL_CLIP = 102 * 1024  # Gmail cuts the HTML past this size, and the open pixel with it
SUBJECT_MAX = 78
IMAGES_MAX = 1_000_000  # total image weight worth a warning (mobile data, slow loading)

# Link texts that say nothing out of context (screen readers list links alone).
VAGUE_LINK_TEXTS = {
    "cliquez ici",
    "cliquer ici",
    "ici",
    "lien",
    "ce lien",
    "en savoir plus",
    "lire la suite",
    "plus",
    "voir",
    "click here",
    "here",
    "link",
    "more",
    "read more",
}
PLACEHOLDER = re.compile(
    r"\{\{.*?\}\}|\{%.*?%\}|\[\[.*?\]\]|\*\|[A-Z_]+\|\*|%%[A-Za-z_]+%%|\bXXX+\b|\bTODO\b"
    r"|\b[Ll]orem ipsum\b|\[(?:PRÉNOM|NOM|DATE|LIEN|TITRE)\]",
)


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    message: str
    block_id: int | None = None


def run_checks(
    issue: IssueData,
    variants: Sequence[CompiledVariant],
    *,
    send_at: dt.datetime,
    html_sizes: Sequence[int] = (),
) -> list[Finding]:
    """Check ``issue`` as it would be sent at ``send_at``.

    ``variants`` are the compiled renderings; ``html_sizes`` the sizes in bytes of
    personalised HTML parts (a sample recipient per variant), when known.
    """
    findings: list[Finding] = []
    findings += _envelope(issue)
    findings += _audience(issue)
    findings += _blocks(issue, send_at)
    findings += _rendered(variants, html_sizes)
    order = {"error": 0, "warning": 1}
    return sorted(findings, key=lambda f: order[f.severity])


def _envelope(issue: IssueData) -> list[Finding]:
    found = []
    subject = issue.subject.strip()
    if not subject:
        found.append(Finding("error", "subject-empty", "L'objet du message est vide."))
    elif len(subject) > SUBJECT_MAX:
        found.append(
            Finding(
                "warning",
                "subject-long",
                f"L'objet fait {len(subject)} caractères : au-delà de {SUBJECT_MAX}, "
                "il sera coupé dans la plupart des boîtes de réception.",
            )
        )
    if not issue.preheader.strip():
        found.append(
            Finding(
                "warning",
                "preheader-missing",
                "Pas de texte d'aperçu : les messageries afficheront à la place le début du "
                "message (« Voir cette lettre dans votre navigateur »).",
            )
        )
    if not issue.newsletter.postal_address.strip():
        found.append(
            Finding(
                "error",
                "postal-address-missing",
                "L'adresse postale de l'expéditeur manque dans les réglages de la lettre "
                "(elle est obligatoire dans le pied de page).",
            )
        )
    for text, where in ((issue.subject, "l'objet"), (issue.preheader, "le texte d'aperçu")):
        match = PLACEHOLDER.search(text)
        if match:
            message = f"Un texte à remplacer reste dans {where} : « {match.group(0)} »."
            found.append(Finding("error", "placeholder", message))
    return found


def _audience(issue: IssueData) -> list[Finding]:
    found = []
    if not issue.blocks:
        found.append(Finding("error", "blocks-empty", "Le numéro n'a encore aucun bloc."))
    if not issue.audience:
        message = "Aucun destinataire : cochez au moins un segment dans les réglages."
        found.append(Finding("error", "audience-empty", message))
        return found
    for number, block in enumerate(issue.blocks, start=1):
        if block.segments and not block.segments & issue.audience:
            message = (
                f"Bloc {number} ({get_kind(block.kind).label.lower()}) : réservé à des segments "
                "qui ne reçoivent pas ce numéro, personne ne le verra."
            )
            found.append(Finding("warning", "block-unseen", message, block.id))
    return found


def _blocks(issue: IssueData, send_at: dt.datetime) -> list[Finding]:
    found: list[Finding] = []
    image_weight = 0
    for number, block in enumerate(issue.blocks, start=1):
        where = f"Bloc {number} ({get_kind(block.kind).label.lower()})"
        image_weight += sum(image.size or 0 for image in get_kind(block.kind).images(block.data))
        for check in (_images, _link_targets, _link_texts, _placeholders):
            found += check(block, where)
        if block.kind == "agenda":
            found += _past_events(block, where, send_at)
    if image_weight > IMAGES_MAX:
        weight = f"{image_weight / 1_000_000:.1f}".replace(".", ",")
        found.append(
            Finding(
                "warning",
                "images-heavy",
                f"Les images pèsent {weight} Mo au total : allégez-les (moins de 1 Mo conseillé).",
            )
        )
    return found


def _images(block: BlockData, where: str) -> list[Finding]:
    return [
        Finding(
            "warning", "image-alt", f"{where} : une image n'a pas de texte alternatif.", block.id
        )
        for image in get_kind(block.kind).images(block.data)
        if not image.alt.strip()
    ]


def _link_targets(block: BlockData, where: str) -> list[Finding]:
    found = []
    for link in get_kind(block.kind).links(block.data):
        if link.url.startswith("ics:"):
            continue
        if urlsplit(link.url).scheme.lower() not in {"http", "https", "mailto"}:
            message = f"{where} : le lien « {link.url} » n'est ni http(s) ni mailto."
            found.append(Finding("error", "link-scheme", message, block.id))
    return found


def _link_texts(block: BlockData, where: str) -> list[Finding]:
    data = block.data
    texts = [text for _url, text in anchors(data["html"])] if data.get("html") else []
    if data.get("link"):
        texts.append(data["link"].get("label") or "")
    found = []
    for text in texts:
        label = " ".join(text.lower().strip(" .!:…»«").split())
        if not label:
            message = f"{where} : un lien n'a pas de texte."
            found.append(Finding("warning", "link-text-empty", message, block.id))
        elif label in VAGUE_LINK_TEXTS:
            message = (
                f"{where} : le texte de lien « {text.strip()} » ne dit pas où il mène ; "
                "décrivez la destination."
            )
            found.append(Finding("warning", "link-text-vague", message, block.id))
    return found


def _placeholders(block: BlockData, where: str) -> list[Finding]:
    found = []
    for text in get_kind(block.kind).texts(block.data):
        match = PLACEHOLDER.search(text or "")
        if match:
            message = f"{where} : un texte à remplacer est resté : « {match.group(0)} »."
            found.append(Finding("error", "placeholder", message, block.id))
    return found


def _past_events(block: BlockData, where: str, send_at: dt.datetime) -> list[Finding]:
    found = []
    for event in block.data.get("events", []):
        if parse_local(event.get("end") or event["start"]) < send_at:
            message = f"{where} : « {event['title']} » sera déjà passé au moment de l'envoi."
            found.append(Finding("warning", "event-past", message, block.id))
    return found


def _rendered(variants: Sequence[CompiledVariant], html_sizes: Sequence[int]) -> list[Finding]:
    found = []
    for size in html_sizes:
        if size > GMAIL_CLIP:
            found.append(
                Finding(
                    "error",
                    "html-clipped",
                    f"Le message HTML pèse {size / 1024:.0f} Ko : Gmail le coupera au-delà de "
                    "102 Ko (et la mesure d'ouverture avec). Retirez ou raccourcissez des blocs.",
                )
            )
            break
    for variant in variants:
        if f"{variant.nonce}UZ" not in variant.html or f"{variant.nonce}UZ" not in variant.text:
            found.append(
                Finding(
                    "error",
                    "unsubscribe-missing",
                    "Le lien de désinscription manque dans le message.",
                )
            )
            break
    return found

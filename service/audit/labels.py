"""How the audit trail reads in the back office: a French phrase per action, and who.

The issue page's « Historique » shows « <who> <phrase> », e.g. « Claire Dumont a
approuvé le numéro » or, for what the system did on its own (a scheduled send
starting, the end of a sending, a pause after a relay error), « Lettrine a
terminé l'envoi ».
"""

from collections.abc import Mapping

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l

# Who did it when no person did: the service itself.
SYSTEM_ACTOR = _l("Lettrine")
# An actor id whose user no longer exists.
UNKNOWN_ACTOR = "—"

AUDIT_LABELS: Mapping[str, LazyString] = {
    # Composing and review.
    "issue.created": _l("a créé le numéro"),
    "issue.duplicated": _l("a créé ce numéro en dupliquant un autre"),
    "issue.settings_saved": _l("a modifié les réglages"),
    "issue.back_to_draft": _l("a modifié le numéro, qui repasse en brouillon"),
    "block.added": _l("a ajouté un bloc"),
    "block.saved": _l("a modifié un bloc"),
    "block.reordered": _l("a réordonné les blocs"),
    "block.deleted": _l("a supprimé un bloc"),
    "issue.test_sent": _l("a envoyé un test"),
    "issue.submitted": _l("a soumis le numéro pour relecture"),
    "issue.approved": _l("a approuvé le numéro"),
    "issue.sent_back": _l("a renvoyé le numéro au rédacteur"),
    "issue.deleted": _l("a supprimé le numéro"),
    # Sending.
    "issue.scheduled": _l("a programmé l'envoi"),
    "issue.schedule_failed": _l(
        "n'a pas pu lancer l'envoi programmé : le numéro repasse en « approuvé »"
    ),
    "issue.sending": _l("a lancé l'envoi"),
    "issue.paused": _l("a mis l'envoi en pause"),
    "issue.resumed": _l("a repris l'envoi"),
    "issue.cancelled": _l("a annulé l'envoi"),
    "issue.sent": _l("a terminé l'envoi"),
    "delivery.unknown_confirmed": _l(
        "a confirmé la remise des messages au sort inconnu (pas de renvoi)"
    ),
    "delivery.unknown_resent": _l("a fait renvoyer les messages au sort inconnu"),
    # Bounces.
    "bounce.malformed": _l("a mis de côté un rapport de retour illisible"),
}


def audit_label(action: str) -> str:
    """The phrase for an action; the raw key for an action nobody labelled yet."""
    label = AUDIT_LABELS.get(action)
    return str(label) if label is not None else action


def actor_name(actor_id: int | None, names: Mapping[int, str]) -> str:
    """Who did it: the user's name, or the service itself when no person did."""
    if actor_id is None:
        return str(SYSTEM_ACTOR)
    return names.get(actor_id, UNKNOWN_ACTOR)

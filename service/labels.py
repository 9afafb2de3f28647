"""French labels of enums shown to people, one map per enum, each complete.

Here rather than next to the enums because they are read across packages (the
subscriber page shows deliveries and tracking events; the statistics export link
kinds), and models stay free of Flask-Babel. Labels are lower case: they follow a
title or a date (« Lettre n° 3 — envoyé »); capitalise in the template if needed.
"""

from collections.abc import Mapping

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l

from service.delivery.models import DeliveryStatus
from service.tracking.models import EventKind, LinkKind

DELIVERY_STATUS_LABELS: Mapping[DeliveryStatus, LazyString] = {
    DeliveryStatus.QUEUED: _l("en attente d'envoi"),
    DeliveryStatus.LEASED: _l("en cours d'envoi"),
    DeliveryStatus.SENT: _l("envoyé"),
    DeliveryStatus.DEFERRED: _l("différé (nouvel essai prévu)"),
    DeliveryStatus.FAILED: _l("échec"),
    DeliveryStatus.BOUNCED: _l("rejeté (bounce)"),
    DeliveryStatus.UNKNOWN: _l("sort inconnu"),
    DeliveryStatus.CANCELLED: _l("annulé"),
}
EVENT_KIND_LABELS: Mapping[EventKind, LazyString] = {
    EventKind.OPEN: _l("ouverture"),
    EventKind.CLICK: _l("clic"),
    EventKind.UNSUBSCRIBE: _l("désinscription"),
    EventKind.BOUNCE: _l("retour en erreur (bounce)"),
    EventKind.COMPLAINT: _l("signalement comme indésirable"),
}
LINK_KIND_LABELS: Mapping[LinkKind, LazyString] = {
    LinkKind.LINK: _l("lien"),
    LinkKind.RESOURCE: _l("ressource"),
    LinkKind.CALENDAR: _l("ajout à l'agenda (.ics)"),
    LinkKind.SYSTEM: _l("lien de service"),
}


def delivery_status_label(status: str) -> str:
    return str(DELIVERY_STATUS_LABELS[DeliveryStatus(status)])


def event_kind_label(kind: str) -> str:
    return str(EVENT_KIND_LABELS[EventKind(kind)])


def link_kind_label(kind: str) -> str:
    return str(LINK_KIND_LABELS[LinkKind(kind)])

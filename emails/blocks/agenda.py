import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from wtforms import (
    DateTimeLocalField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from emails.blocks import BlockKind, LinkSpec, http_url, register
from emails.formatting import event_when, parse_local
from emails.richtext import LinkRef

LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
# Changing one of these is a change attendees must see: SEQUENCE goes up.
SIGNIFICANT = ("title", "start", "end", "place", "address")


class LocalDateTimeField(DateTimeLocalField):  # type: ignore[misc]
    """Wall-clock time in Europe/Paris, with a French error naming the format."""

    def __init__(self, label: str, **kwargs: Any) -> None:
        super().__init__(
            label,
            format=[
                LOCAL_FORMAT,
                "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%d %H:%M",
                "%d/%m/%Y %H:%M",
                "%d/%m/%Y %Hh%M",
                "%d/%m/%Y %H h %M",
            ],
            **kwargs,
        )

    def process_formdata(self, valuelist: list[str]) -> None:
        try:
            super().process_formdata(valuelist)
        except ValueError:
            self.data = None
            raise ValueError(
                f"Date et heure non reconnues : « {valuelist[0] if valuelist else ''} ». "
                "Indiquez le jour et l'heure, par exemple 16/01/2027 09:30."
            ) from None


class EventForm(Form):  # type: ignore[misc]
    uid = HiddenField()
    sequence = HiddenField()
    title = StringField(
        "Intitulé",
        validators=[
            DataRequired("Donnez un intitulé à l'événement."),
            Length(max=200, message="200 caractères au plus."),
        ],
    )
    # InputRequired, not DataRequired: DataRequired would erase the parse error.
    start = LocalDateTimeField(
        "Début", validators=[InputRequired("Indiquez la date et l'heure de début.")]
    )
    end = LocalDateTimeField("Fin", validators=[Optional()])
    place = StringField(
        "Lieu",
        validators=[
            DataRequired("Indiquez le lieu."),
            Length(max=200, message="200 caractères au plus."),
        ],
    )
    address = StringField(
        "Adresse", validators=[Optional(), Length(max=300, message="300 caractères au plus.")]
    )
    description = TextAreaField(
        "Description",
        validators=[Optional(), Length(max=2000, message="2 000 caractères au plus.")],
    )
    registration_url = StringField("Lien d'inscription", validators=[Optional(), http_url])

    def validate(self, extra_validators: Any = None) -> bool:
        ok = bool(super().validate(extra_validators))
        if self.start.data and self.end.data and self.end.data <= self.start.data:
            self.end.errors = [*self.end.errors, "La fin doit être après le début."]
            ok = False
        return ok


class AgendaForm(Form):  # type: ignore[misc]
    title = StringField(
        "Titre",
        default="Agenda",
        validators=[DataRequired("Donnez un titre au bloc."), Length(max=200)],
    )
    events = FieldList(FormField(EventForm), label="Événement", min_entries=1)

    def validate(self, extra_validators: Any = None) -> bool:
        ok = bool(super().validate(extra_validators))
        if not any(entry.title.data for entry in self.events):
            self.events.errors = ["Ajoutez au moins un événement."]
            ok = False
        return ok


def new_uid() -> str:
    """Globally unique (RFC 5545 §3.8.4.7): two issues, two installations never collide."""
    return f"{uuid.uuid4()}@lettrine"


def bump_sequences(old: Mapping[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Keep each event's SEQUENCE from the stored version, +1 if it changed (RFC 5545 §3.8.7.4)."""
    previous = {event["uid"]: event for event in (old or {}).get("events", [])}
    for event in new.get("events", []):
        before = previous.get(event["uid"])
        if before is None:
            event["sequence"] = 0
            continue
        changed = any(before.get(key) != event.get(key) for key in SIGNIFICANT)
        event["sequence"] = int(before.get("sequence") or 0) + (1 if changed else 0)
    return new


def _local(value: dt.datetime | None) -> str | None:
    return value.strftime(LOCAL_FORMAT) if value else None


@register
class AgendaBlock(BlockKind):
    name = "agenda"
    label = "Agenda"
    form = AgendaForm

    def clean(self, form_data: Mapping[str, Any]) -> dict[str, Any]:
        events = []
        for event in form_data["events"]:
            if not event.get("title"):
                continue  # an empty row left in the form
            start = _local(event["start"])
            assert start is not None  # noqa: S101 - required by the form
            events.append(
                {
                    "uid": event.get("uid") or new_uid(),
                    "sequence": int(event.get("sequence") or 0)
                    if str(event.get("sequence") or "0").isdigit()
                    else 0,
                    "title": event["title"].strip(),
                    "start": start,
                    "end": _local(event.get("end")),
                    "place": event["place"].strip(),
                    "address": (event.get("address") or "").strip(),
                    "description": (event.get("description") or "").strip(),
                    "registration_url": (event.get("registration_url") or "").strip() or None,
                }
            )
        events.sort(key=lambda e: e["start"])
        return {"title": form_data["title"].strip(), "events": events}

    def updated(self, previous: Mapping[str, Any] | None, data: dict[str, Any]) -> dict[str, Any]:
        return bump_sequences(previous, data)

    def duplicated(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """A copy's events are new events: fresh UIDs, SEQUENCE 0. A copied row edited
        into next month's event must not move the original in attendees' calendars;
        the archive's agenda feed merges a carried-over event by its start, title and
        place instead (``service.archive.services.agenda_events``)."""
        copy_ = super().duplicated(data)
        for event in copy_.get("events", []):
            event["uid"], event["sequence"] = new_uid(), 0
        return copy_

    def links(self, data: Mapping[str, Any]) -> Iterable[LinkSpec]:
        found = []
        for event in data["events"]:
            if event.get("registration_url"):
                found.append(
                    LinkSpec(event["registration_url"], "link", f"S'inscrire : {event['title']}")
                )
            found.append(
                LinkSpec(
                    f"ics:{event['uid']}", "calendar", f"Ajouter à mon agenda : {event['title']}"
                )
            )
        return found

    def texts(self, data: Mapping[str, Any]) -> Iterable[str]:
        return [
            data["title"],
            *(f"{e['title']} {e['place']} {e.get('description') or ''}" for e in data["events"]),
        ]

    def text(self, data: Mapping[str, Any], ref: LinkRef) -> list[str]:
        out = [f"== {data['title']} =="]
        for event in data["events"]:
            lines = [f"* {event['title']}", f"  {when(event)}", f"  Lieu : {event['place']}"]
            if event.get("address"):
                lines.append(f"  {event['address']}")
            if event.get("description"):
                lines.append(f"  {event['description']}")
            actions = []
            if event.get("registration_url"):
                actions.append(f"S'inscrire [{ref(event['registration_url'])}]")
            actions.append(f"Ajouter à mon agenda [{ref('ics:' + event['uid'])}]")
            lines.append("  " + " · ".join(actions))
            out.append("\n".join(lines))
        return out


def when(event: Mapping[str, Any]) -> str:
    start = parse_local(event["start"])
    end = parse_local(event["end"]) if event.get("end") else None
    return event_when(start, end)

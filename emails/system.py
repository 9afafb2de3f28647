"""System emails (invitations, password resets): named template folders, one renderer.

Each email is a folder under ``templates/system/<name>/`` holding ``subject.txt``,
``body.txt`` and optionally ``body.html``. The HTML is autoescaped, the text is not;
a missing variable is an error, never an empty string. Pure: plain data in, strings
or a message out; no database, no Flask, no network.

These are a few messages a day, so ``email.message.EmailMessage`` is fine here
(the bulletin hot path pre-encodes its messages instead, see ``emails.mime``).
"""

import datetime as dt
import email.policy
import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, NamedTuple

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)

SYSTEM_TEMPLATES = Path(__file__).resolve().parent / "templates" / "system"
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")

_env = Environment(
    loader=FileSystemLoader(SYSTEM_TEMPLATES),
    # HTML parts escape; subjects and text parts are plain text and must not.
    autoescape=select_autoescape(enabled_extensions=("html",), default=False),
    undefined=StrictUndefined,
    keep_trailing_newline=False,
)


class SystemEmail(NamedTuple):
    subject: str
    text: str
    html: str | None


def render_system_email(name: str, /, **context: Any) -> SystemEmail:
    """Render the subject, text and (when the folder has one) HTML of email ``name``."""
    if not _NAME.match(name):
        raise ValueError(f"not a system email name: {name!r}")
    subject = _env.get_template(f"{name}/subject.txt").render(context)
    text = _env.get_template(f"{name}/body.txt").render(context)
    try:
        html_template = _env.get_template(f"{name}/body.html")
    except TemplateNotFound:
        html = None
    else:
        html = html_template.render(context)
    # One line, whatever the template or the data: a subject is a header.
    return SystemEmail(" ".join(subject.split()), text.strip() + "\n", html)


def build_system_message(
    rendered: SystemEmail,
    *,
    sender: Address,
    recipient: Address,
    now: dt.datetime,
) -> EmailMessage:
    """A complete message: text part, HTML alternative when there is one.

    ``now`` is an aware datetime (the Date header). CR/LF cannot reach a header:
    ``Address`` refuses them in names and addresses, and the subject is one line.
    """
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=sender.domain or None)
    # RFC 3834: machine-sent, so auto-responders stay quiet.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text, cte="quoted-printable")
    if rendered.html is not None:
        message.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    return message

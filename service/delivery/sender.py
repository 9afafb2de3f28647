"""How messages leave: one interface, an SMTP implementation chosen by configuration.

In embedded mode the SMTP server is the dev outbox (127.0.0.1:1025); in production
it is the relay. One connection is opened per ``SmtpSender`` and reused.
"""

import re
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from service.config import Config

_DOT_STUFF = re.compile(rb"\r\n\.")


class SendError(Exception):
    """The message was not accepted. ``permanent``: a 5xx, retrying will not help."""

    def __init__(self, message: str, *, code: int | None = None, permanent: bool) -> None:
        super().__init__(message)
        self.code = code
        self.permanent = permanent


class UnknownOutcomeError(SendError):
    """The connection was lost after the final ".": the message may have been accepted.

    Never retried automatically (a retry could deliver it twice); an operator decides.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


class RelayError(SendError):
    """The relay itself is unusable (unreachable, refuses our login or TLS): no message
    was offered, so none is charged an attempt. ``needs_operator``: retrying will not
    help until someone fixes the configuration (the issue is paused)."""

    def __init__(self, message: str, *, needs_operator: bool) -> None:
        super().__init__(message, permanent=False)
        self.needs_operator = needs_operator


@dataclass(frozen=True)
class Accepted:
    code: int
    reply: str


class Sender(Protocol):
    def send(self, envelope_from: str, recipients: Sequence[str], message: bytes) -> Accepted: ...

    def close(self) -> None: ...


class SmtpSender:
    def __init__(self, config: Config, timeout: float = 30) -> None:
        self.config = config
        self.timeout = timeout
        self._smtp: smtplib.SMTP | None = None
        # True between MAIL and the final reply: if anything interrupted a message there,
        # the next one starts with RSET (else "503 nested MAIL command").
        self._in_transaction = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            self._smtp = self._open()
        return self._smtp

    def _open(self) -> smtplib.SMTP:
        relay = f"{self.config.smtp_host}:{self.config.smtp_port}"
        try:
            smtp = smtplib.SMTP(self.config.smtp_host, self.config.smtp_port, timeout=self.timeout)
        except (OSError, smtplib.SMTPException) as error:
            raise RelayError(
                f"Relais SMTP {relay} injoignable : {error}", needs_operator=False
            ) from None
        try:
            smtp.ehlo_or_helo_if_needed()
            if self.config.smtp_starttls:
                try:
                    smtp.starttls(context=ssl.create_default_context())
                except (ssl.SSLError, smtplib.SMTPNotSupportedError, ssl.CertificateError) as error:
                    raise RelayError(
                        f"Relais SMTP {relay} : TLS refusé ou certificat invalide ({error}). "
                        "Vérifiez SMTP_STARTTLS et le certificat du relais.",
                        needs_operator=True,
                    ) from None
                smtp.ehlo()
            if self.config.smtp_username:
                try:
                    smtp.login(self.config.smtp_username, self.config.smtp_password or "")
                except (smtplib.SMTPAuthenticationError, smtplib.SMTPNotSupportedError) as error:
                    raise RelayError(
                        f"Relais SMTP {relay} : identifiants refusés ({_describe(error)}). "
                        "Vérifiez SMTP_USERNAME et SMTP_PASSWORD.",
                        needs_operator=True,
                    ) from None
        except RelayError:
            smtp.close()
            raise
        except (OSError, smtplib.SMTPException) as error:
            smtp.close()
            raise RelayError(
                f"Relais SMTP {relay} injoignable : {error}", needs_operator=False
            ) from None
        return smtp

    def send(self, envelope_from: str, recipients: Sequence[str], message: bytes) -> Accepted:
        """MAIL, RCPT, DATA by hand, to know whether a failure came before or after the "."."""
        try:
            smtp = self._connection()
            if self._in_transaction:
                self._rset(smtp)
                smtp = self._connection()
            self._in_transaction = True
            try:
                code, reply = smtp.mail(envelope_from)
            except smtplib.SMTPServerDisconnected:
                # A reused connection the server closed while idle: reconnect once
                # (nothing of this message has been sent yet).
                self._reset()
                smtp = self._connection()
                code, reply = smtp.mail(envelope_from)
            if code != 250:
                self._rset(smtp)
                raise SendError(_text(reply), code=code, permanent=code >= 500)
            for recipient in recipients:
                code, reply = smtp.rcpt(recipient)
                if code not in {250, 251}:
                    self._rset(smtp)
                    raise SendError(_text(reply), code=code, permanent=code >= 500)
            code, reply = smtp.docmd("DATA")
            if code != 354:
                self._rset(smtp)
                raise SendError(_text(reply), code=code, permanent=code >= 500)
        except (OSError, smtplib.SMTPException) as error:
            self._reset()
            raise SendError(
                f"SMTP {self.config.smtp_host}:{self.config.smtp_port}: {error}", permanent=False
            ) from None
        try:
            payload = _DOT_STUFF.sub(b"\r\n..", message)
            if payload.startswith(b"."):
                payload = b"." + payload
            if not payload.endswith(b"\r\n"):
                payload += b"\r\n"
            smtp.send(payload + b".\r\n")
            code, reply = smtp.getreply()
        except (OSError, smtplib.SMTPException) as error:
            self._reset()
            message_lost = f"connexion perdue après l'envoi du message : {error}"
            raise UnknownOutcomeError(message_lost) from None
        self._in_transaction = False
        if code != 250:
            raise SendError(_text(reply), code=code, permanent=code >= 500)
        return Accepted(code, _text(reply))

    def _rset(self, smtp: smtplib.SMTP) -> None:
        self._in_transaction = False
        try:
            smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._reset()

    def _reset(self) -> None:
        self._in_transaction = False
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                self._smtp.close()
            self._smtp = None


def _describe(error: smtplib.SMTPException) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{error.smtp_code} {_text(error.smtp_error)}"
    return str(error)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def make_sender(config: Config) -> SmtpSender:
    return SmtpSender(config, timeout=config.smtp_timeout)

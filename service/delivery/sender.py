"""How messages leave: one interface, an SMTP implementation chosen by configuration.

In embedded mode the SMTP server is the dev outbox (127.0.0.1:1025); in production
it is the relay. One connection is opened per ``SmtpSender`` and reused.
"""

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from service.config import Config


class SendError(Exception):
    """The message was not accepted. ``permanent``: a 5xx, retrying will not help."""

    def __init__(self, message: str, *, code: int | None = None, permanent: bool) -> None:
        super().__init__(message)
        self.code = code
        self.permanent = permanent


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
            smtp = smtplib.SMTP(self.config.smtp_host, self.config.smtp_port, timeout=self.timeout)
            if self.config.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.config.smtp_username:
                smtp.login(self.config.smtp_username, self.config.smtp_password or "")
            self._smtp = smtp
        return self._smtp

    def send(self, envelope_from: str, recipients: Sequence[str], message: bytes) -> Accepted:
        try:
            smtp = self._connection()
            refused = smtp.sendmail(envelope_from, list(recipients), message)
        except smtplib.SMTPRecipientsRefused as error:
            code, reply = next(iter(error.recipients.values()))
            raise SendError(_text(reply), code=code, permanent=code >= 500) from None
        except smtplib.SMTPResponseException as error:
            self._reset()
            raise SendError(
                _text(error.smtp_error), code=error.smtp_code, permanent=error.smtp_code >= 500
            ) from None
        except (OSError, smtplib.SMTPException) as error:
            self._reset()
            raise SendError(
                f"SMTP {self.config.smtp_host}:{self.config.smtp_port}: {error}", permanent=False
            ) from None
        if refused:
            code, reply = next(iter(refused.values()))
            raise SendError(_text(reply), code=code, permanent=code >= 500)
        return Accepted(250, "OK")

    def _reset(self) -> None:
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


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def make_sender(config: Config) -> SmtpSender:
    return SmtpSender(config)

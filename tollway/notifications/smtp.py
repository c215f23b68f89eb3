"""Sending one email over SMTP (standard library ``smtplib``): one attempt, classified when it fails.

A ``Mailer`` sends a message or raises ``SendFailed``, which says whether another attempt could succeed
and whether the server as a whole failed (then the rest of a batch is not tried now). The caller keeps
the attempts in the database and spaces them (``model.next_attempt_in_seconds``), so retries survive a
restart.

Which failures are retried:
- the server cannot be reached, drops the connection or times out; it refuses the session (greeting,
  EHLO, STARTTLS, login): retried, and the batch stops, since every other email would fail the same way.
  A refused login or a missing STARTTLS is a configuration mistake that an operator can fix in time.
- the server answers a message's MAIL, RCPT or DATA with 4xx ("try again later"): retried.
- it answers them with 5xx (no such mailbox, sender refused, message rejected): failed at once,
  except 552 on RCPT, which RFC 5321 (4.5.3.1.10) says to treat as the temporary 452.
"""

from __future__ import annotations

import contextlib
import ipaddress
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import AddressHeader
from email.message import EmailMessage
from email.utils import format_datetime
from enum import StrEnum
from typing import Protocol

from tollway.config import Settings
from tollway.errors import TollwayError

PERMANENT_CODE_MIN = 500
RCPT_STORAGE_EXCEEDED = 552  # RFC 5321: on RCPT, a client treats it as the temporary 452
SERVICE_CLOSING = 421  # the server closes the session after saying it


class SendFailure(StrEnum):
    """Why an email was not accepted; stable, machine-readable codes."""

    CONNECTION_FAILED = "connection_failed"  # unreachable, dropped, timed out
    SESSION_REFUSED = "session_refused"  # greeting, EHLO, STARTTLS or login refused; or misconfigured
    TEMPORARY = "temporary"  # 4xx to the message
    PERMANENT = "permanent"  # 5xx to the message
    UNEXPECTED = "unexpected"


class SendFailed(TollwayError):
    def __init__(self, reason: SendFailure, message: str, *, retryable: bool, server_down: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retryable = retryable
        self.server_down = server_down  # the server, not this message, failed: try no more emails now

    def __str__(self) -> str:
        return f"{self.message} ({self.reason})"


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout_seconds: float = 10.0

    @classmethod
    def of(cls, settings: Settings) -> SmtpSettings:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            timeout_seconds=settings.smtp_timeout_seconds,
        )

    def __repr__(self) -> str:  # never the password, in logs or tracebacks
        return f"SmtpSettings(host={self.host!r}, port={self.port}, starttls={self.starttls}, user={self.username!r})"


class Mailer(Protocol):
    def send(self, message: EmailMessage, *, sender: str, recipient: str) -> None:
        """Return once the server accepted ``message`` for ``recipient``; raise ``SendFailed`` otherwise."""
        ...

    def close(self) -> None: ...


def compose(
    *, email_id: int, sender: str, recipient: str, subject: str, body: str, created_at: datetime, date: datetime
) -> tuple[EmailMessage, str]:
    """The message to send, and the envelope sender (the From address).

    Its Message-ID is the same on every attempt, so a receiver can tell a repeat from a new notice
    (an attempt whose answer was lost is sent again: delivery is at least once).
    """
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    header = message["From"]
    if not isinstance(header, AddressHeader) or len(header.addresses) != 1 or not header.addresses[0].domain:
        raise ValueError(f"the sender {sender!r} is not one address")
    address = header.addresses[0]
    message["Message-ID"] = f"<tollway.{email_id}.{created_at:%Y%m%d%H%M%S}@{address.domain}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies to a notice
    message.set_content(body, cte="quoted-printable")  # 7-bit safe: no server needs 8BITMIME for it
    return message, address.addr_spec


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _name(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class SmtpMailer:
    """One SMTP session, opened on the first send and reused for the next ones until closed or broken."""

    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings
        self._session: smtplib.SMTP | None = None
        self._where = f"{settings.host}:{settings.port}"

    def send(self, message: EmailMessage, *, sender: str, recipient: str) -> None:
        session = self._open()
        try:
            session.send_message(message, from_addr=sender, to_addrs=[recipient])
        except smtplib.SMTPRecipientsRefused as error:
            code, said = error.recipients.get(recipient, (0, b""))
            permanent = code >= PERMANENT_CODE_MIN and code != RCPT_STORAGE_EXCEEDED
            raise self._answered(code, said, f"refused {recipient}", permanent=permanent) from error
        except smtplib.SMTPResponseException as error:  # MAIL FROM (SMTPSenderRefused) or DATA refused
            code = error.smtp_code
            raise self._answered(
                code, error.smtp_error, "refused the message", permanent=code >= PERMANENT_CODE_MIN
            ) from error
        except smtplib.SMTPServerDisconnected as error:
            raise self._lost(error) from error
        except smtplib.SMTPException as error:  # e.g. the message needs an extension the server lacks
            refusal = f"the SMTP server at {self._where} cannot take the message: {_name(error)}"
            raise SendFailed(SendFailure.PERMANENT, refusal, retryable=False) from error
        except OSError as error:  # reset, timed out
            raise self._lost(error) from error
        except Exception as error:  # the contract: nothing but SendFailed reaches the caller
            self._drop()
            failure = f"sending to {recipient} through {self._where} failed unexpectedly: {_name(error)}"
            raise SendFailed(SendFailure.UNEXPECTED, failure, retryable=False) from error

    def close(self) -> None:
        if self._session is not None:
            with contextlib.suppress(OSError):  # the server went away first: nothing to close politely
                self._session.quit()
            self._drop()

    def _lost(self, error: BaseException) -> SendFailed:
        self._drop()
        message = f"the SMTP server at {self._where} dropped the connection: {_name(error)}"
        return SendFailed(SendFailure.CONNECTION_FAILED, message, retryable=True, server_down=True)

    def _answered(self, code: int, text: bytes | str, what: str, *, permanent: bool) -> SendFailed:
        if code == SERVICE_CLOSING:
            self._drop()  # smtplib has closed the session already: the next email opens a new one
        said = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        message = f"the SMTP server at {self._where} {what}: {code} {said}".strip()
        return SendFailed(
            SendFailure.PERMANENT if permanent else SendFailure.TEMPORARY, message, retryable=not permanent
        )

    def _open(self) -> smtplib.SMTP:
        if self._session is not None:
            return self._session
        settings = self._settings
        if settings.username and not settings.starttls and not _loopback(settings.host):
            message = f"refusing to send SMTP credentials to {self._where} in clear: set smtp_starttls"
            raise SendFailed(SendFailure.SESSION_REFUSED, message, retryable=True, server_down=True)
        session: smtplib.SMTP | None = None
        try:
            session = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds)
            session.ehlo()
            if settings.starttls:
                session.starttls(context=ssl.create_default_context())
                session.ehlo()
            if settings.username:
                session.login(settings.username, settings.password or "")
        except smtplib.SMTPServerDisconnected as error:
            raise self._unreachable(session, error) from error
        except smtplib.SMTPException as error:  # greeting, EHLO, STARTTLS or login refused (an OSError too)
            _quietly_close(session)
            message = f"the SMTP server at {self._where} refused the session: {_name(error)}"
            raise SendFailed(SendFailure.SESSION_REFUSED, message, retryable=True, server_down=True) from error
        except OSError as error:  # refused, unreachable, timed out, TLS failed
            raise self._unreachable(session, error) from error
        self._session = session
        return session

    def _unreachable(self, session: smtplib.SMTP | None, error: BaseException) -> SendFailed:
        _quietly_close(session)
        message = f"could not reach the SMTP server at {self._where}: {_name(error)}"
        return SendFailed(SendFailure.CONNECTION_FAILED, message, retryable=True, server_down=True)

    def _drop(self) -> None:
        _quietly_close(self._session)
        self._session = None


def _quietly_close(session: smtplib.SMTP | None) -> None:
    if session is not None:
        with contextlib.suppress(OSError):  # closing a broken socket: nothing to report
            session.close()

"""SMTP hook that sends a ready ``EmailMessage`` (inline images, alternatives, custom headers).

The provider's ``SmtpHook.send_email_smtp`` builds its own MIME tree and cannot carry ``cid:`` inline
images; the sweep's notices and the quarterly report build an ``EmailMessage`` and send it here.
The message is handed to the server exactly once per call (no resend loop). A failure before the data
phase means "not accepted"; a broken connection or a timeout after the data was sent means "maybe
accepted" (``SmtpOutcomeUnknown``): the caller never resends those (see ``closed_loop.pipeline.outbox``).
"""

from __future__ import annotations

import contextlib
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage

from airflow.providers.smtp.hooks.smtp import SmtpHook

from closed_loop.hooks.errors import SmtpOutcomeUnknown


class ClosedLoopSmtpHook(SmtpHook):
    """``SmtpHook`` (connection ``smtp_default``) plus ``send_message``.

    :param smtp_conn_id: SMTP connection; its extra ``from_email`` fills a missing ``From`` header.
    """

    _keep_open = False

    @contextlib.contextmanager
    def batch(self) -> Iterator[ClosedLoopSmtpHook]:
        """Send the messages of a batch over one connection: the first ``send_message`` opens it, the
        following ones reuse it (a dropped connection is reopened), and it is closed at the end."""
        self._keep_open = True
        try:
            yield self
        finally:
            self._keep_open = False
            self._drop_client()

    def send_message(self, msg: EmailMessage) -> dict[str, tuple[int, bytes]]:
        """Send ``msg`` to its To/Cc/Bcc recipients; opens (and then closes) a connection if needed.

        Returns the recipients the server refused while accepting the others ({address: (code, reply)});
        raises ``smtplib.SMTPRecipientsRefused`` when it refused all of them, ``SmtpOutcomeUnknown`` when
        the connection broke during the data phase. In a ``batch`` a reused connection found dropped
        before the data phase (nothing was accepted) is reopened and the message sent on the new one."""
        if self._smtp_client is None and not self._keep_open:
            with self:
                return self._send(msg)
        reused = self._smtp_client is not None
        if not reused:
            self.get_conn()
        try:
            return self._send(msg)
        except SmtpOutcomeUnknown:
            self._drop_client()  # the next message of the batch opens a fresh connection
            raise
        except OSError as exc:
            if not reused or not _dropped(exc):
                raise
            self._drop_client()
            self.get_conn()
            return self._send(msg)

    def _drop_client(self) -> None:
        client, self._smtp_client = self._smtp_client, None
        if client is not None:
            with contextlib.suppress(OSError):
                client.quit()
            with contextlib.suppress(OSError):
                client.close()

    def _send(self, msg: EmailMessage) -> dict[str, tuple[int, bytes]]:
        if msg["From"] is None:
            if not self.from_email:
                raise ValueError("the message has no From and the SMTP connection no from_email")
            msg["From"] = self.from_email
        client = self._smtp_client
        in_data = False
        plain_data = client.data

        def data(payload):
            nonlocal in_data
            in_data = True
            return plain_data(payload)

        client.data = data  # marks the phase: everything before it is safely "not accepted"
        try:
            return client.send_message(msg) or {}
        except smtplib.SMTPResponseException:
            raise  # the server answered with an error code: it did not accept the message
        except OSError as exc:  # disconnect / timeout (smtplib's errors are OSErrors too)
            if in_data:
                raise SmtpOutcomeUnknown(f"no reply after the message data ({type(exc).__name__})") from exc
            raise
        finally:
            del client.data


def _dropped(exc: OSError) -> bool:
    """A broken connection (not a reply of the server): the server closed an idle session, a reset."""
    return isinstance(exc, smtplib.SMTPServerDisconnected) or not isinstance(exc, smtplib.SMTPException)

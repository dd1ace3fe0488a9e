"""SMTP hook that sends a ready ``EmailMessage`` (inline images, alternatives, custom headers).

The provider's ``SmtpHook.send_email_smtp`` builds its own MIME tree and cannot carry ``cid:`` inline
images; the sweep's notices and the quarterly report build an ``EmailMessage`` and send it here.
The message is handed to the server exactly once per call (no resend loop). A failure before the data
phase means "not accepted"; a broken connection or a timeout after the data was sent means "maybe
accepted" (``SmtpOutcomeUnknown``): the caller never resends those (see ``closed_loop.pipeline.outbox``).
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from airflow.providers.smtp.hooks.smtp import SmtpHook

from closed_loop.hooks.errors import SmtpOutcomeUnknown


class ClosedLoopSmtpHook(SmtpHook):
    """``SmtpHook`` (connection ``smtp_default``) plus ``send_message``.

    :param smtp_conn_id: SMTP connection; its extra ``from_email`` fills a missing ``From`` header.
    """

    def send_message(self, msg: EmailMessage) -> dict[str, tuple[int, bytes]]:
        """Send ``msg`` to its To/Cc/Bcc recipients; opens (and then closes) a connection if needed.

        Returns the recipients the server refused while accepting the others ({address: (code, reply)});
        raises ``smtplib.SMTPRecipientsRefused`` when it refused all of them, ``SmtpOutcomeUnknown`` when
        the connection broke during the data phase."""
        if self._smtp_client is None:
            with self:
                return self._send(msg)
        return self._send(msg)

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

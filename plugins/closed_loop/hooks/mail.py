"""SMTP hook that sends a ready ``EmailMessage`` (inline images, alternatives, custom headers).

The provider's ``SmtpHook.send_email_smtp`` builds its own MIME tree and cannot carry ``cid:`` inline
images; the sweep's notices and the quarterly report build an ``EmailMessage`` and send it here.
The message is handed to the server exactly once per call (no resend loop): whether a failed call was
accepted is unknowable, so retries are the caller's decision (see ``closed_loop.pipeline.outbox``).
"""

from __future__ import annotations

from email.message import EmailMessage

from airflow.providers.smtp.hooks.smtp import SmtpHook


class ClosedLoopSmtpHook(SmtpHook):
    """``SmtpHook`` (connection ``smtp_default``) plus ``send_message``.

    :param smtp_conn_id: SMTP connection; its extra ``from_email`` fills a missing ``From`` header.
    """

    def send_message(self, msg: EmailMessage) -> None:
        """Send ``msg`` to its To/Cc/Bcc recipients; opens (and then closes) a connection if needed."""
        if self._smtp_client is None:
            with self:
                self._send(msg)
        else:
            self._send(msg)

    def _send(self, msg: EmailMessage) -> None:
        if msg["From"] is None:
            if not self.from_email:
                raise ValueError("the message has no From and the SMTP connection no from_email")
            msg["From"] = self.from_email
        self._smtp_client.send_message(msg)

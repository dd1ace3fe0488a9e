"""SurveyMonkey message texts (invite, reminder, recovery pulse): Jinja templates under include/templates/.

SurveyMonkey documents for ``body_text``/``body_html`` of ``POST /collectors/{id}/messages``: the message
"must include [SurveyLink], [OptOutLink], [PrivacyLink] and [FooterLink] and the opt-out and privacy links
must be clearly labeled" (v3 docs, Collectors and Invite Messages). Rendering checks exactly that, so a
broken template fails when the playbook and templates load, not at the first real send.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from closed_loop.templating import environment

MESSAGE_TEMPLATES = {
    "invite": "survey_invite.html",
    "reminder": "survey_reminder.html",
    "recovery_pulse": "recovery_pulse_invite.html",
}
REQUIRED_TAGS = ("[SurveyLink]", "[OptOutLink]", "[PrivacyLink]", "[FooterLink]")
MUST_BE_LABELLED = ("[OptOutLink]", "[PrivacyLink]")


class MessageTemplateError(ValueError):
    """A SurveyMonkey message template lacks a required merge tag or a link label."""


class _Links(HTMLParser):
    """Collect ``{href: visible text}`` of every ``<a>``."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: dict[str, str] = {}
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = (dict(attrs).get("href") or "").strip()
            self.labels.setdefault(self._href, "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._href = None

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self.labels[self._href] += data.strip()


def body_problems(body_html: str) -> list[str]:
    """Missing merge tags, and opt-out/privacy tags that are not the target of a labelled link."""
    problems = [f"missing {tag}" for tag in REQUIRED_TAGS if tag not in body_html]
    links = _Links()
    links.feed(body_html)
    problems += [
        f'{tag} is not a labelled link (<a href="{tag}">label</a>)'
        for tag in MUST_BE_LABELLED
        if tag in body_html and not links.labels.get(tag)
    ]
    return problems


def render_message(kind: str, playbook: Any) -> tuple[str, str]:
    """(subject, body_html) of message ``kind`` (invite, reminder, recovery_pulse) for ``playbook``.

    :raises MessageTemplateError: the rendered body breaks SurveyMonkey's documented rule.
    """
    name = MESSAGE_TEMPLATES[kind]
    module = (
        environment()
        .get_template(name)
        .make_module({"company": playbook.company.name, "team_name": playbook.company.team_name})
    )
    body = str(module).strip() + "\n"
    problems = body_problems(body)
    if problems:
        raise MessageTemplateError(f"template {name}: {'; '.join(problems)}")
    subject = str(getattr(module, "subject", "") or "").strip()
    if not subject:
        raise MessageTemplateError(f"template {name}: no {{% set subject = ... %}}")
    return subject, body


def check_messages(playbook: Any) -> dict[str, str | None]:
    """``{kind: problem or None}`` for every message template (the preflight and loaders use it)."""
    out: dict[str, str | None] = {}
    for kind in MESSAGE_TEMPLATES:
        try:
            render_message(kind, playbook)
            out[kind] = None
        except MessageTemplateError as exc:
            out[kind] = str(exc)
        except Exception as exc:  # a template that does not even render
            out[kind] = f"template {MESSAGE_TEMPLATES[kind]}: {type(exc).__name__}: {exc}"
    return out


def validate_messages(playbook: Any) -> None:
    """Raise MessageTemplateError naming every broken message template."""
    problems = [p for p in check_messages(playbook).values() if p]
    if problems:
        raise MessageTemplateError("; ".join(problems))

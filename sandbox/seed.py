"""Deterministic synthetic org (per seed): users, billers, contacts, and the two SurveyMonkey surveys."""

from __future__ import annotations

import hashlib
import random
import unicodedata
from datetime import timedelta
from typing import Any

from sandbox import records
from sandbox.state import DEFAULT_START, SandboxState, iso, parse_ts, sm_datetime

USERS = [  # username, first, last, title
    ("integration@closedloop.example", "Integration", "User", "API Integration User"),
    ("doi@closedloop.example", "Dana", "Okafor", "Director of Implementations"),
    ("ms@closedloop.example", "Mina", "Sato", "Marketing Specialist"),
    ("vp.cs@closedloop.example", "Victor", "Price", "VP Customer Success"),
    ("ops@closedloop.example", "Olga", "Petrov", "Revenue Operations"),
] + [(f"tsm{i}@closedloop.example", f"Tess{i}", "Manager", "Transition Success Manager") for i in range(1, 5)]

AGREE = ["Strongly Agree", "Agree", "Neither Agree nor Disagree", "Disagree", "Strongly Disagree"]
HELPFUL = ["Extremely helpful", "Very helpful", "Somewhat helpful", "Not very helpful", "Not helpful at all"]
MATRIX_ROWS = [
    "The implementation team understood our business needs.",
    "Go-live happened on the agreed timeline.",
    "Training prepared our team to use the product.",
    "Marketing launch materials met our expectations.",
    "The product works the way we were told it would.",
]
MAIN_TITLE = "Post-Implementation Feedback"
PULSE_TITLE = "Post-Implementation Follow-up Pulse"
RECOMMEND = "How likely are you to recommend us to a colleague?"
MAIN_QUESTIONS: list[tuple[str, str, str, list[str], list[str], str | None]] = [
    # heading, family, subtype, choices, rows, other text
    (
        "Please rate your agreement with each statement about your implementation.",
        "matrix",
        "rating",
        AGREE,
        MATRIX_ROWS,
        None,
    ),
    ("How helpful was your implementation project manager?", "single_choice", "vertical", HELPFUL, [], None),
    (
        "How helpful was the marketing onboarding?",
        "single_choice",
        "vertical",
        HELPFUL,
        [],
        "Other (please specify)",
    ),
    (RECOMMEND, "single_choice", "horiz", [str(i) for i in range(11)], [], None),
    (
        "Have all the issues you raised during implementation been resolved?",
        "single_choice",
        "vertical",
        ["Yes", "Partially", "No"],
        [],
        None,
    ),
    (
        "Would you like someone from our team to contact you about your feedback?",
        "single_choice",
        "vertical",
        ["Yes", "No"],
        [],
        None,
    ),
    ("Is there anything else you would like to share with us?", "open_ended", "essay", [], [], None),
]
PULSE_QUESTIONS = [
    (
        "How satisfied are you with how we handled your feedback?",
        "single_choice",
        "vertical",
        ["Very satisfied", "Satisfied", "Neutral", "Dissatisfied", "Very dissatisfied"],
        [],
        None,
    ),
    (RECOMMEND, "single_choice", "horiz", [str(i) for i in range(11)], [], None),
]
_WORDS_A = [
    "Acme",
    "Blue",
    "Cedar",
    "Delta",
    "Evergreen",
    "Fjord",
    "Granite",
    "Harbor",
    "Ion",
    "Juniper",
    "Kestrel",
    "Lumen",
    "Maple",
    "Nimbus",
    "Orbit",
    "Pioneer",
    "Quartz",
    "Redwood",
    "Summit",
    "Tidal",
]
_WORDS_B = [
    "Billing",
    "Utilities",
    "Telecom",
    "Health",
    "Logistics",
    "Media",
    "Energy",
    "Software",
    "Water",
    "Networks",
]
_FIRST = [
    "Alex",
    "Sam",
    "Jordan",
    "Priya",
    "Chen",
    "Maria",
    "Liam",
    "Aisha",
    "Noah",
    "Emma",
    "D'Angelo",
    "Zoë",
    "Tomás",
    "Grace",
    "Omar",
    "Hana",
]
_LAST = ["Smith", "Nguyen", "Garcia", "O'Neil", "Kowalski", "Haddad", "Müller", "Patel", "Brown", "Silva"]
HOSTILE_NAME = 'O\'Brien "Billing" \\ Co'


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower().replace("'", "")


def _token(seed: int, kind: str, size: int) -> str:
    return hashlib.sha256(f"{seed}:{kind}".encode()).hexdigest()[:size]


def build(seed: int, start_clock: str | None, accounts: int, config: dict[str, Any]) -> SandboxState:
    start = parse_ts(start_clock or DEFAULT_START)
    state = SandboxState(
        {
            "version": 1,
            "seed": seed,
            "clock": iso(start),
            "config": config,
            "tokens": {"sf": "00D8d000000SBOX!" + _token(seed, "sf", 48), "sm": _token(seed, "sm", 64)},
            "sf": {},
            "sm": {"collectors": {}, "messages": {}, "recipients": {}, "responses": {}},
            "faults": {},
            "sim": {"plans": {}, "log": [], "advanced_to": iso(start)},
            "seq": {},
        },
        None,
    )
    rng = random.Random(seed)
    state.set_now(start - timedelta(days=400))
    users = {}
    for username, first, last, title in USERS:
        user = records.create(
            state,
            "User",
            {
                "Username": username,
                "FirstName": first,
                "LastName": last,
                "Email": username,
                "Title": title,
                "IsActive": True,
            },
        )
        users[username] = user["Id"]
        state.data.setdefault("api_user_id", user["Id"])
    for user_id in users.values():
        state.data["sf"]["User"][user_id].update(CreatedById=state.data["api_user_id"])
    tsms = [users[f"tsm{i}@closedloop.example"] for i in range(1, 5)]
    _seed_accounts(state, rng, start, accounts, users, tsms)
    state.set_now(start)
    _seed_surveys(state, seed, start)
    return state


def _mrr_values(rng: random.Random, n: int) -> list[float | None]:
    fixed: list[float | None] = [3000.0, 3000.0, None, None, None, 2999.99, 3000.01]
    rest = [round(rng.choice([rng.uniform(400, 2999), rng.uniform(3001, 15000)]), 2) for _ in range(n)]
    values = (fixed + rest)[:n]
    rng.shuffle(values)
    return values


def _seed_accounts(state, rng, start, n, users, tsms) -> None:
    mrrs = _mrr_values(rng, n)
    emails = []
    for index in range(n):
        name = (
            HOSTILE_NAME
            if index == 3
            else (
                f"{_WORDS_A[index % 20]} {_WORDS_B[(index * 7 + index // 20) % 10]}"
                + (f" {index // 20 + 1}" if index >= 20 else "")
            )
        )
        go_live = start.date() + timedelta(days=rng.randint(-270, 42))
        mrr = mrrs[index]
        tsm = rng.choice(tsms) if mrr is not None and mrr > 3000 and rng.random() > 0.06 else None
        state.set_now(start - timedelta(days=300 - index))
        account = records.create(
            state,
            "Account",
            {
                "Name": name,
                "Go_Live_Date__c": go_live.isoformat(),
                "MRR__c": mrr,
                "Transition_Success_Manager__c": tsm,
                "At_Risk__c": rng.random() < 0.12,
                "OwnerId": users["doi@closedloop.example"],
            },
        )
        slug = "obrien-billing" if index == 3 else name.lower().replace(" ", "-")
        for position in range(rng.choice([1, 1, 2, 2, 3])):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            email = _ascii(f"{first}.{last}") + f".{index}{position}@{slug}.example"
            flagged = position < 2 and (position == 0 or rng.random() < 0.6)
            records.create(
                state,
                "Contact",
                {
                    "AccountId": account["Id"],
                    "FirstName": first,
                    "LastName": last,
                    "Email": email,
                    "Implementations_Project_Manager__c": flagged,
                    "HasOptedOutOfEmail": rng.random() < 0.04,
                    "OwnerId": users["doi@closedloop.example"],
                },
            )
            if flagged:
                emails.append(email)
    # at least one >3000 account without a TSM
    big = [a for a in state.data["sf"]["Account"].values() if (a["MRR__c"] or 0) > 3000]
    if big and all(a["Transition_Success_Manager__c"] for a in big):
        big[-1]["Transition_Success_Manager__c"] = None
    picked = rng.sample(emails, min(4, len(emails)))
    state.data["sm"]["opted_out"], state.data["sm"]["bounced"] = picked[:2], picked[2:]


def _seed_surveys(state: SandboxState, seed: int, start) -> None:
    created = sm_datetime(start - timedelta(days=500))
    state.data["sm"]["user"] = {
        "id": str(100000000 + seed),
        "username": "closedloop-cs",
        "first_name": "Customer",
        "last_name": "Success",
        "email": "surveys@closedloop.example",
        "email_verified": True,
        "account_type": "enterprise_platinum",
        "language": "en",
        "date_created": created,
        "date_last_login": sm_datetime(start),
        "sso_connections": [],
    }
    surveys = {}
    for title, questions in ((MAIN_TITLE, MAIN_QUESTIONS), (PULSE_TITLE, PULSE_QUESTIONS)):
        survey_id = state.new_sm_id("survey", 400000000)
        page_id = state.new_sm_id("page", 50000000)
        qs = []
        for position, (heading, family, subtype, choices, rows, other) in enumerate(questions, 1):
            answers: dict[str, Any] = {}
            if choices:
                answers["choices"] = [
                    {
                        "id": state.new_sm_id("choice", 3000000000),
                        "position": i,
                        "text": text,
                        "visible": True,
                        "is_na": False,
                        "weight": len(choices) - i,
                    }
                    for i, text in enumerate(choices, 1)
                ]
            if rows:
                answers["rows"] = [
                    {"id": state.new_sm_id("row", 3100000000), "position": i, "text": text, "visible": True}
                    for i, text in enumerate(rows, 1)
                ]
            if other:
                answers["other"] = {
                    "id": state.new_sm_id("other", 3200000000),
                    "text": other,
                    "visible": True,
                    "is_answer_choice": True,
                    "num_lines": 1,
                    "num_chars": 50,
                    "position": 0,
                    "apply_all_rows": False,
                    "error_text": "",
                }
            qs.append(
                {
                    "id": state.new_sm_id("question", 200000000),
                    "position": position,
                    "visible": True,
                    "family": family,
                    "subtype": subtype,
                    "layout": None,
                    "sorting": None,
                    "required": None,
                    "validation": None,
                    "forced_ranking": False,
                    "headings": [{"heading": heading}],
                    "answers": answers,
                }
            )
        surveys[survey_id] = {
            "id": survey_id,
            "title": title,
            "nickname": "",
            "language": "en",
            "category": "customer_feedback",
            "folder_id": "0",
            "is_owner": True,
            "footer": True,
            "date_created": created,
            "date_modified": created,
            "question_count": len(qs),
            "page_count": 1,
            "response_count": 0,
            "pages": [
                {
                    "id": page_id,
                    "title": "",
                    "description": "",
                    "position": 1,
                    "question_count": len(qs),
                    "questions": qs,
                }
            ],
        }
    state.data["sm"]["surveys"] = surveys

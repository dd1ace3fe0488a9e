"""The SOQL subset, in-process: strict parsing (MALFORMED_QUERY, never a wrong answer) and evaluation."""

from __future__ import annotations

from datetime import date

import pytest
from simple_salesforce import format_soql

from sandbox import seed, soql

STATE = seed.build(7, None, 60, {})
STORE = STATE.data["sf"]
TODAY = date(2026, 7, 1)


def run(text: str, include_deleted: bool = False) -> list[dict]:
    query = soql.parse(text)
    return [soql.shape(query, STORE, r, "61.0") for r in soql.execute(query, STORE, TODAY, include_deleted)]


def accounts() -> list[dict]:
    return list(STORE["Account"].values())


@pytest.mark.parametrize(
    "text",
    [
        "SELECT Id FROM",
        "SELECT FROM Account",
        "SELECT Id, FROM Account",
        "SELECT Id FROM Account WHERE",
        "SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'",
        "SELECT Id FROM Account GROUP BY Name",
        "SELECT MAX(MRR__c) FROM Account",
        "SELECT Id, (SELECT Id FROM Contacts) FROM Account",
        "SELECT Id FROM Account WHERE Name = :name",
        "SELECT Id, Id FROM Account",
        "SELECT Id FROM Account LIMIT x",
    ],
)
def test_unsupported_or_broken_queries_are_malformed(text):
    with pytest.raises(soql.SoqlError) as info:
        run(text)
    assert info.value.code == "MALFORMED_QUERY"


@pytest.mark.parametrize(
    "text, code",
    [
        ("SELECT Nope__c FROM Account", "INVALID_FIELD"),
        ("SELECT Owner.Nope FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Nope__c", "INVALID_TYPE"),
        ("SELECT Id FROM Account WHERE MRR__c = '3000'", "INVALID_QUERY_FILTER_OPERATOR"),
        (
            "SELECT Id FROM Account WHERE Go_Live_Date__c = 2026-07-01T00:00:00Z",
            "INVALID_QUERY_FILTER_OPERATOR",
        ),
        ("SELECT Id FROM Task WHERE Description LIKE '%x%'", "INVALID_FIELD"),
    ],
)
def test_type_and_name_errors(text, code):
    with pytest.raises(soql.SoqlError) as info:
        run(text)
    assert info.value.code == code


def test_where_operators_match_python_filtering():
    rows = run("SELECT Id, MRR__c FROM Account WHERE MRR__c >= 3000 AND (At_Risk__c = true OR MRR__c = null)")
    expected = {
        a["Id"] for a in accounts() if a["MRR__c"] is not None and a["MRR__c"] >= 3000 and a["At_Risk__c"]
    }
    assert {r["Id"] for r in rows} == expected
    nulls = run("SELECT Id FROM Account WHERE MRR__c = null")
    assert len(nulls) == sum(1 for a in accounts() if a["MRR__c"] is None) >= 1
    exactly = run("SELECT Id FROM Account WHERE MRR__c = 3000")
    assert len(exactly) == 2
    not_in = run("SELECT Id FROM Account WHERE NOT (MRR__c > 3000) AND MRR__c != null")
    assert all(STORE["Account"][r["Id"]]["MRR__c"] <= 3000 for r in not_in)


def test_in_like_and_escaped_hostile_name():
    hostile = seed.HOSTILE_NAME
    rows = run(format_soql("SELECT Id, Name FROM Account WHERE Name = {}", hostile))
    assert [r["Name"] for r in rows] == [hostile]
    assert run(format_soql("SELECT Id FROM Account WHERE Name IN {}", [hostile, "Acme Billing"]))
    like = run("SELECT Name FROM Account WHERE Name LIKE 'acme%'")
    assert sorted(r["Name"] for r in like) == sorted(
        a["Name"] for a in accounts() if a["Name"].startswith("Acme")
    )
    assert len(like) == 3
    assert run("SELECT Name FROM Account WHERE Name LIKE 'O\\'Brien%'")


def test_date_literals_and_ranges():
    def expect(predicate):
        return {
            a["Id"]
            for a in accounts()
            if a["Go_Live_Date__c"] and predicate(date.fromisoformat(a["Go_Live_Date__c"]))
        }

    last_90 = run("SELECT Id FROM Account WHERE Go_Live_Date__c = LAST_N_DAYS:90")
    assert {r["Id"] for r in last_90} == expect(lambda d: (TODAY - d).days <= 90 and d <= TODAY)
    future = run("SELECT Id FROM Account WHERE Go_Live_Date__c > TODAY")
    assert {r["Id"] for r in future} == expect(lambda d: d > TODAY)
    assert future
    before = run("SELECT Id FROM Account WHERE Go_Live_Date__c < 2026-04-01")
    assert {r["Id"] for r in before} == expect(lambda d: d < date(2026, 4, 1))
    quarter = run("SELECT Id FROM Account WHERE Go_Live_Date__c = LAST_QUARTER")
    assert {r["Id"] for r in quarter} == expect(lambda d: date(2026, 4, 1) <= d < date(2026, 7, 1))
    created = run("SELECT Id FROM Account WHERE CreatedDate < 2025-10-01T00:00:00Z")
    assert created and len(created) < len(accounts())


def test_relationships_order_limit_offset():
    rows = run(
        "SELECT Name, Owner.Email, Transition_Success_Manager__r.Username FROM Account "
        "WHERE MRR__c > 3000 ORDER BY MRR__c DESC NULLS LAST, Name LIMIT 5 OFFSET 1"
    )
    assert len(rows) == 5
    mrrs = [STORE["Account"][r["attributes"]["url"].rsplit("/", 1)[1]]["MRR__c"] for r in rows]
    assert mrrs == sorted(mrrs, reverse=True)
    assert rows[0]["Owner"]["Email"] == "doi@closedloop.example"
    assert rows[0]["Owner"]["attributes"]["type"] == "User"
    no_tsm = run(
        "SELECT Transition_Success_Manager__r.Username FROM Account WHERE MRR__c > 3000 "
        "AND Transition_Success_Manager__c = null"
    )
    assert no_tsm and all(r["Transition_Success_Manager__r"] is None for r in no_tsm)
    contacts = run(
        "SELECT Email, Account.MRR__c, Account.Owner.Email FROM Contact "
        "WHERE Implementations_Project_Manager__c = true ORDER BY Account.MRR__c NULLS FIRST"
    )
    assert contacts[0]["Account"]["MRR__c"] is None
    assert contacts[-1]["Account"]["Owner"]["Email"] == "doi@closedloop.example"


def test_count_and_15_char_ids():
    query = soql.parse("SELECT COUNT() FROM Contact WHERE Account.At_Risk__c = true")
    assert query.count
    first = accounts()[0]["Id"]
    assert [r["Id"] for r in run(f"SELECT Id FROM Account WHERE Id = '{first[:15]}'")] == [first]

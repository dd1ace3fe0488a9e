"""A strict SOQL subset: parse, type-check against the schema, evaluate. Anything else is MALFORMED_QUERY."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sandbox.sf_schema import SCHEMA, Field, field_of, relationship_of, sobject_name
from sandbox.state import PREFIX_TYPE, parse_ts

MAX_SOQL_CHARS = 100_000  # SOQL and SOSL Reference, "SOQL and SOSL Limits"


class SoqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.)*')
    | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
    | (?P<date>\d{4}-\d{2}-\d{2})
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<op>!=|<>|<=|>=|=|<|>)
    | (?P<punct>[(),:])
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)
_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "'": "'",
    '"': '"',
    "\\": "\\",
    "%": "\\%",
    "_": "\\_",
}
_RANGE_N = {"LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO", "LAST_N_WEEKS", "NEXT_N_WEEKS"}
_RANGE = {
    "TODAY",
    "YESTERDAY",
    "TOMORROW",
    "LAST_WEEK",
    "THIS_WEEK",
    "NEXT_WEEK",
    "LAST_MONTH",
    "THIS_MONTH",
    "NEXT_MONTH",
    "LAST_90_DAYS",
    "NEXT_90_DAYS",
    "THIS_QUARTER",
    "LAST_QUARTER",
    "NEXT_QUARTER",
    "THIS_YEAR",
    "LAST_YEAR",
    "NEXT_YEAR",
}
_KEYWORDS = {
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "ORDER",
    "BY",
    "ASC",
    "DESC",
    "NULLS",
    "FIRST",
    "LAST",
    "LIMIT",
    "OFFSET",
    "NULL",
    "TRUE",
    "FALSE",
    "COUNT",
}
_STRINGY = {"id", "string", "textarea", "email", "picklist", "reference", "autonumber"}


@dataclass
class Tok:
    kind: str
    text: str
    pos: int


@dataclass
class Path:
    """A resolved field path: relationship hops (lookup field names) then the final field."""

    text: str
    hops: list[str]
    names: list[str]  # canonical output names: relationship names then field name
    spec: Field


@dataclass
class Query:
    sobject: str
    fields: list[Path] = field(default_factory=list)
    count: bool = False
    where: Any = None
    order: list[tuple[Path, bool, bool]] = field(default_factory=list)  # path, descending, nulls_first
    limit: int | None = None
    offset: int = 0


def _tokenize(text: str) -> list[Tok]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise _malformed(text, pos, text[pos:].split()[0] if text[pos:].split() else text[pos:])
        kind = match.lastgroup or ""
        tokens.append(Tok(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    tokens.append(Tok("eof", "<EOF>", len(text)))
    return tokens


def _malformed(text: str, pos: int, token: str) -> SoqlError:
    return SoqlError(
        "MALFORMED_QUERY", f"\n{text}\n^\nERROR at Row:1:Column:{pos + 1}\nunexpected token: {token}"
    )


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self, offset: int = 0) -> Tok:
        return self.toks[min(self.i + offset, len(self.toks) - 1)]

    def kw(self, word: str) -> bool:
        tok = self.peek()
        if tok.kind == "ident" and tok.text.upper() == word:
            self.i += 1
            return True
        return False

    def expect_kw(self, word: str) -> None:
        if not self.kw(word):
            self.fail()

    def expect(self, text: str) -> Tok:
        tok = self.peek()
        if tok.text != text:
            self.fail()
        self.i += 1
        return tok

    def fail(self) -> None:
        tok = self.peek()
        raise _malformed(self.text, tok.pos, tok.text)

    # grammar -----------------------------------------------------------------
    def parse(self) -> Query:
        self.expect_kw("SELECT")
        raw_fields: list[Tok] = []
        count = False
        if self.peek().text.upper() == "COUNT" and self.peek(1).text == "(":
            self.i += 2
            self.expect(")")
            count = True
        else:
            while True:
                tok = self.peek()
                if tok.kind != "ident" or tok.text.upper() in _KEYWORDS - {"FIRST", "LAST"}:
                    self.fail()
                if self.peek(1).text == "(":
                    raise SoqlError(
                        "MALFORMED_QUERY", f"Function '{tok.text}' is not supported by this sandbox"
                    )
                raw_fields.append(tok)
                self.i += 1
                if self.peek().text != ",":
                    break
                self.i += 1
        self.expect_kw("FROM")
        obj_tok = self.peek()
        if obj_tok.kind != "ident":
            self.fail()
        self.i += 1
        sobject = sobject_name(obj_tok.text)
        if sobject is None:
            raise SoqlError(
                "INVALID_TYPE", f"\n{self.text}\n^\nsObject type '{obj_tok.text}' is not supported."
            )
        query = Query(sobject, count=count)
        seen = set()
        for tok in raw_fields:
            path = resolve(sobject, tok.text)
            if path.text.lower() in seen:
                raise SoqlError("MALFORMED_QUERY", f"duplicate field selected: {tok.text}")
            seen.add(path.text.lower())
            query.fields.append(path)
        if self.kw("WHERE"):
            query.where = self.expr()
        if self.kw("ORDER"):
            self.expect_kw("BY")
            while True:
                tok = self.peek()
                if tok.kind != "ident":
                    self.fail()
                self.i += 1
                path = resolve(sobject, tok.text)
                desc = self.kw("DESC") or (self.kw("ASC") and False)
                nulls_first = not desc
                if self.kw("NULLS"):
                    if self.kw("FIRST"):
                        nulls_first = True
                    else:
                        self.expect_kw("LAST")
                        nulls_first = False
                query.order.append((path, desc, nulls_first))
                if self.peek().text != ",":
                    break
                self.i += 1
        if self.kw("LIMIT"):
            query.limit = self.integer()
        if self.kw("OFFSET"):
            query.offset = self.integer()
            if query.offset > 2000:
                raise SoqlError("NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000")
        if self.peek().kind != "eof":
            self.fail()
        return query

    def integer(self) -> int:
        tok = self.peek()
        if tok.kind != "number" or not tok.text.isdigit():
            self.fail()
        self.i += 1
        return int(tok.text)

    def expr(self) -> Any:
        terms = [self.term()]
        joiner = None
        while self.peek().kind == "ident" and self.peek().text.upper() in ("AND", "OR"):
            word = self.peek().text.upper()
            if joiner and word != joiner:
                tok = self.peek()
                raise SoqlError(
                    "MALFORMED_QUERY",
                    f"\n{self.text}\nERROR at Row:1:Column:{tok.pos + 1}\n"
                    "unexpected token: " + tok.text + " (use parentheses to mix AND and OR)",
                )
            joiner = word
            self.i += 1
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else (joiner, terms)

    def term(self) -> Any:
        if self.kw("NOT"):
            return ("NOT", self.term())
        if self.peek().text == "(":
            self.i += 1
            inner = self.expr()
            self.expect(")")
            return inner
        return self.condition()

    def condition(self) -> Any:
        tok = self.peek()
        if tok.kind != "ident" or tok.text.upper() in _KEYWORDS:
            self.fail()
        self.i += 1
        path = resolve_filter(self.sobject_hint, tok.text)
        if self.kw("NOT"):
            self.expect_kw("IN")
            return ("NOT", ("IN", path, self.value_list(path)))
        if self.kw("IN"):
            return ("IN", path, self.value_list(path))
        if self.kw("LIKE"):
            value = self.value(path)
            if not isinstance(value, str) or path.spec.type not in _STRINGY:
                raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"invalid operator on field: {tok.text}")
            return ("LIKE", path, value)
        op = self.peek()
        if op.kind != "op":
            self.fail()
        self.i += 1
        return ({"<>": "!="}.get(op.text, op.text), path, self.value(path))

    def value_list(self, path: Path) -> list[Any]:
        self.expect("(")
        values = [self.value(path, allow_range=False)]
        while self.peek().text == ",":
            self.i += 1
            values.append(self.value(path, allow_range=False))
        self.expect(")")
        return values

    def value(self, path: Path, allow_range: bool = True) -> Any:
        tok = self.peek()
        self.i += 1
        kind, ftype = tok.kind, path.spec.type
        bad = SoqlError(
            "INVALID_QUERY_FILTER_OPERATOR",
            f"value of filter criterion for field '{path.text}' must be of type {ftype}",
        )
        if tok.kind == "ident" and tok.text.upper() == "NULL":
            return None
        if kind == "string":
            if ftype not in _STRINGY:
                raise bad
            return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), tok.text[1:-1])
        if kind == "number":
            if ftype != "currency":
                raise bad
            return float(tok.text)
        if kind == "ident" and tok.text.upper() in ("TRUE", "FALSE"):
            if ftype != "boolean":
                raise bad
            return tok.text.upper() == "TRUE"
        if kind == "date":
            if ftype != "date":
                raise bad
            return date.fromisoformat(tok.text)
        if kind == "datetime":
            if ftype != "datetime":
                raise bad
            return parse_ts(tok.text)
        if kind == "ident" and allow_range and ftype in ("date", "datetime"):
            name = tok.text.upper()
            if name in _RANGE_N:
                self.expect(":")
                return DateRange(name, self.integer())
            if name in _RANGE:
                return DateRange(name, 0)
        self.i -= 1
        self.fail()
        return None

    sobject_hint = ""


@dataclass(frozen=True)
class DateRange:
    name: str
    n: int

    def bounds(self, today: date) -> tuple[date, date]:
        n, name = self.n, self.name
        quarter_start = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
        month_start = today.replace(day=1)
        week_start = today - timedelta(days=(today.weekday() + 1) % 7)  # weeks start on Sunday (en_US)
        table = {
            "TODAY": (today, today + timedelta(1)),
            "YESTERDAY": (today - timedelta(1), today),
            "TOMORROW": (today + timedelta(1), today + timedelta(2)),
            "LAST_N_DAYS": (today - timedelta(n), today + timedelta(1)),
            "NEXT_N_DAYS": (today + timedelta(1), today + timedelta(n + 1)),
            "N_DAYS_AGO": (today - timedelta(n), today - timedelta(n - 1)),
            "LAST_N_WEEKS": (week_start - timedelta(7 * n), week_start),
            "NEXT_N_WEEKS": (week_start + timedelta(7), week_start + timedelta(7 * (n + 1))),
            "LAST_WEEK": (week_start - timedelta(7), week_start),
            "THIS_WEEK": (week_start, week_start + timedelta(7)),
            "NEXT_WEEK": (week_start + timedelta(7), week_start + timedelta(14)),
            "LAST_90_DAYS": (today - timedelta(90), today + timedelta(1)),
            "NEXT_90_DAYS": (today + timedelta(1), today + timedelta(91)),
            "THIS_MONTH": (month_start, _add_months(month_start, 1)),
            "LAST_MONTH": (_add_months(month_start, -1), month_start),
            "NEXT_MONTH": (_add_months(month_start, 1), _add_months(month_start, 2)),
            "THIS_QUARTER": (quarter_start, _add_months(quarter_start, 3)),
            "LAST_QUARTER": (_add_months(quarter_start, -3), quarter_start),
            "NEXT_QUARTER": (_add_months(quarter_start, 3), _add_months(quarter_start, 6)),
            "THIS_YEAR": (date(today.year, 1, 1), date(today.year + 1, 1, 1)),
            "LAST_YEAR": (date(today.year - 1, 1, 1), date(today.year, 1, 1)),
            "NEXT_YEAR": (date(today.year + 1, 1, 1), date(today.year + 2, 1, 1)),
        }
        return table[name]


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def resolve(sobject: str, text: str) -> Path:
    """Resolve `Owner.Email` style paths against the schema; unknown names raise INVALID_FIELD."""
    parts = text.split(".")
    if len(parts) > 1 and parts[0].lower() == sobject.lower() and relationship_of(sobject, parts[0]) is None:
        parts = parts[1:]
    hops, names, current = [], [], [sobject]
    for rel in parts[:-1]:
        found = next((relationship_of(t, rel) for t in current if relationship_of(t, rel)), None)
        if found is None:
            raise SoqlError(
                "INVALID_FIELD",
                f"Didn't understand relationship '{rel}' in field path. "
                f"No such column '{rel}' on entity '{current[0]}'.",
            )
        hops.append(found[0])
        names.append(found[1].rel)
        current = list(found[1].refs)
    found_field = next((field_of(t, parts[-1]) for t in current if field_of(t, parts[-1])), None)
    if found_field is None:
        raise SoqlError(
            "INVALID_FIELD",
            f"No such column '{parts[-1]}' on entity '{current[0]}'. If you are "
            "attempting to use a custom field, be sure to append the '__c' after the custom field name.",
        )
    names.append(found_field[0])
    return Path(".".join(names), hops, names, found_field[1])


def resolve_filter(sobject: str, text: str) -> Path:
    path = resolve(sobject, text)
    if path.spec.type == "textarea":
        raise SoqlError("INVALID_FIELD", f"field '{path.names[-1]}' can not be filtered in a query call")
    return path


def parse(text: str) -> Query:
    parser = _Parser(text)
    # the FROM object is needed to resolve WHERE fields: peek at it before parsing
    match = re.search(r"\bFROM\s+([A-Za-z_][A-Za-z0-9_]*)", text, re.IGNORECASE)
    parser.sobject_hint = (sobject_name(match.group(1)) if match else None) or "Account"
    return parser.parse()


# evaluation ------------------------------------------------------------------
def _type_of(record_id: str | None) -> str | None:
    return PREFIX_TYPE.get((record_id or "")[:3])


def get_value(store: dict[str, dict[str, dict]], sobject: str, record: dict, path: Path) -> Any:
    current = record
    for hop in path.hops:
        target_id = current.get(hop)
        target_type = _type_of(target_id)
        current = store.get(target_type or "", {}).get(target_id or "")
        if current is None:
            return None
    return current.get(path.names[-1])


def _coerce(value: Any, spec: Field) -> Any:
    if value is None:
        return None
    if spec.type == "date":
        return date.fromisoformat(value)
    if spec.type == "datetime":
        return parse_ts(value)
    if spec.type == "currency":
        return float(value)
    return value


def _compare_range(op: str, value: Any, rng: DateRange, spec: Field, today: date) -> bool:
    start, end = rng.bounds(today)
    if spec.type == "datetime":
        start, end = (datetime.combine(d, time(), UTC) for d in (start, end))
    return {
        "=": start <= value < end,
        "!=": not start <= value < end,
        "<": value < start,
        "<=": value < end,
        ">": value >= end,
        ">=": value >= start,
    }[op]


def _norm(value: Any, literal: Any, spec: Field) -> tuple[Any, Any]:
    if isinstance(value, str) and isinstance(literal, str):
        if spec.type in ("id", "reference") and len(literal) == 15:
            return value[:15], literal
        if spec.type in ("id", "reference"):
            return value, literal
        return value.lower(), literal.lower()
    return value, literal


def _like(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out += re.escape(pattern[i + 1])
            i += 2
            continue
        out += ".*" if ch == "%" else "." if ch == "_" else re.escape(ch)
        i += 1
    return re.compile(out, re.IGNORECASE | re.DOTALL)


def matches(node: Any, store: dict, sobject: str, record: dict, today: date) -> bool:
    head = node[0]
    if head == "NOT":
        return not matches(node[1], store, sobject, record, today)
    if head in ("AND", "OR"):
        results = (matches(n, store, sobject, record, today) for n in node[1])
        return all(results) if head == "AND" else any(results)
    op, path, literal = node
    value = _coerce(get_value(store, sobject, record, path), path.spec)
    if op == "IN":
        return any(_eq(value, lit, path.spec) for lit in literal)
    if op == "LIKE":
        return value is not None and bool(_like(literal).fullmatch(value))
    if literal is None:
        return (value is None) if op == "=" else (value is not None) if op == "!=" else False
    if value is None:
        return op == "!="
    if isinstance(literal, DateRange):
        return _compare_range(op, value, literal, path.spec, today)
    if op in ("=", "!="):
        return _eq(value, literal, path.spec) == (op == "=")
    left, right = _norm(value, literal, path.spec)
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


def _eq(value: Any, literal: Any, spec: Field) -> bool:
    if value is None or literal is None:
        return value is None and literal is None
    left, right = _norm(value, literal, spec)
    return left == right


def _id_in(node: Any) -> set[str] | None:
    """The 18-character ids of a top-level ``Id IN (...)`` condition (or one ANDed at the top), else None."""
    if node is None:
        return None
    if node[0] == "AND":
        found = [ids for n in node[1] if (ids := _id_in(n)) is not None]
        return found[0] if found else None
    op, path, literal = node if len(node) == 3 else (None, None, None)
    if op == "IN" and path is not None and not path.hops and path.names[-1] == "Id":
        if all(isinstance(v, str) and len(v) == 18 for v in literal):
            return set(literal)
    return None


def execute(query: Query, store: dict, today: date, include_deleted: bool) -> list[dict]:
    """Return the matching records (raw stored dicts), filtered, ordered, offset and limited."""
    rows = [r for r in store.get(query.sobject, {}).values() if include_deleted or not r.get("IsDeleted")]
    ids = _id_in(query.where)
    if ids is not None:  # `Id IN (...)` (alone or ANDed): a set pre-filter instead of O(rows x values)
        rows = [r for r in rows if r["Id"] in ids]
    if query.where is not None:
        rows = [r for r in rows if matches(query.where, store, query.sobject, r, today)]
    for path, desc, nulls_first in reversed(query.order):

        def key(rec: dict, path: Path = path, nulls_first: bool = nulls_first, desc: bool = desc) -> tuple:
            value = _coerce(get_value(store, query.sobject, rec, path), path.spec)
            if isinstance(value, str):
                value = value.lower()
            is_null = value is None
            return ((not is_null) if nulls_first != desc else is_null, value if not is_null else 0)

        rows.sort(key=key, reverse=desc)
    rows = rows[query.offset :]
    return rows[: query.limit] if query.limit is not None else rows


def shape(query: Query, store: dict, record: dict, version: str) -> dict:
    """Build the API record: attributes, selected fields, nested parent objects for relationship paths."""
    out: dict[str, Any] = {"attributes": _attributes(query.sobject, record["Id"], version)}
    for path in query.fields:
        node, current, dead = out, record, False
        for hop, rel in zip(path.hops, path.names, strict=False):
            target_id = None if dead else current.get(hop)
            target = store.get(_type_of(target_id) or "", {}).get(target_id or "") if target_id else None
            if target is None:
                node.setdefault(rel, None)
                dead = True
                break
            if node.get(rel) is None:
                node[rel] = {"attributes": _attributes(_type_of(target_id) or "", target_id, version)}
            node, current = node[rel], target
        if not dead:
            node[path.names[-1]] = current.get(path.names[-1])
    return out


def _attributes(sobject: str, record_id: str, version: str) -> dict:
    return {"type": sobject, "url": f"/services/data/v{version}/sobjects/{sobject}/{record_id}"}


__all__ = ["SCHEMA", "Query", "SoqlError", "execute", "parse", "shape"]

"""Salesforce REST subset under /services/data/vXX.X/: auth, API budget, query paging, sObjects, composite."""

from __future__ import annotations

import copy
import json
import re
from datetime import date, timedelta
from typing import Any

from sandbox import oauth, org, records, rules, sf_composite, simulation, soql
from sandbox.reply import Reply, Request
from sandbox.sf_schema import SCHEMA, Field, field_of, sobject_name
from sandbox.state import PREFIX_TYPE, SandboxState, parse_ts

DEFAULT_DAILY_LIMIT = 15000
_ID_RE = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "fields": [],
    "message": "Record rolled back because not all records were valid and the request was using "
    "AllOrNone header",
}


def error(status: int, code: str, message: str, fields: list[str] | None = None) -> Reply:
    item: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        item["fields"] = fields
    return Reply(status, [item])


NOT_FOUND = ("NOT_FOUND", "The requested resource does not exist")


# budget ------------------------------------------------------------------------
def usage(state: SandboxState) -> tuple[int, int]:
    """(calls in the rolling 24 h of sandbox time, daily max)."""
    buckets = state.data.setdefault("sf_usage", {})
    horizon = (state.now - timedelta(hours=24)).strftime("%Y-%m-%dT%H")
    for key in [k for k in buckets if k <= horizon]:
        del buckets[key]
    return sum(buckets.values()), int(state.data["config"].get("sf_daily_limit") or DEFAULT_DAILY_LIMIT)


def count_call(state: SandboxState) -> None:
    buckets = state.data.setdefault("sf_usage", {})
    key = state.now.strftime("%Y-%m-%dT%H")
    buckets[key] = buckets.get(key, 0) + 1


def limit_header(state: SandboxState) -> dict[str, str]:
    used, limit = usage(state)
    return {"Sforce-Limit-Info": f"api-usage={used}/{limit}"}


def authorize(state: SandboxState, req: Request) -> Reply | None:
    """401/403 checks; counts the call against the budget when it passes."""
    auth = req.headers.get("authorization", "")
    token = auth.split(" ", 1)[1].strip() if " " in auth else ""
    faults = state.data["faults"]
    expired = faults.get("sf_expire_session")
    if not oauth.valid_token(state, token) or expired:
        if isinstance(expired, int) and not isinstance(expired, bool) and expired > 0:
            faults["sf_expire_session"] = expired - 1 or None
        return error(401, "INVALID_SESSION_ID", "Session expired or invalid")
    used, limit = usage(state)
    if used >= limit or faults.get("sf_request_limit_exceeded"):
        return error(403, "REQUEST_LIMIT_EXCEEDED", f"TotalRequests Limit exceeded. Limit: {limit}")
    count_call(state)
    return None


# validation --------------------------------------------------------------------
def _resolve_id(state: SandboxState, value: str) -> tuple[str | None, dict | None]:
    sobject = PREFIX_TYPE.get(value[:3])
    table = state.data["sf"].get(sobject or "", {})
    if len(value) == 15:
        value = next((k for k in table if k.startswith(value)), value)
    return sobject, table.get(value)


def _check_value(
    state: SandboxState, sobject: str, name: str, spec: Field, value: Any
) -> tuple[Any, dict | None]:
    def err(code: str, message: str) -> tuple[Any, dict]:
        return value, {"statusCode": code, "message": message, "fields": [name]}

    if value is None:
        if spec.required:
            return err("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{name}]")
        if spec.type == "picklist" and spec.default is not None:
            return err(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{name}: bad value for restricted picklist field: null",
            )
        return None, None
    kind = spec.type
    if kind == "boolean" and not isinstance(value, bool):
        return err("JSON_PARSER_ERROR", f"Cannot deserialize instance of boolean from {value!r} for {name}")
    if kind == "currency":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return err("JSON_PARSER_ERROR", f"Cannot deserialize instance of currency from {value!r}")
        return float(value), None
    if kind in ("date", "datetime"):
        try:
            parsed = date.fromisoformat(value[:10]) if kind == "date" else parse_ts(value)
        except (TypeError, ValueError):
            return err(
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of {kind} from VALUE_STRING value "
                f"{value} or request may be missing a required field",
            )
        if kind == "date":
            return parsed.isoformat(), None
        return parsed.strftime("%Y-%m-%dT%H:%M:%S.000+0000"), None
    if kind in ("string", "textarea", "email", "picklist", "reference") and not isinstance(value, str):
        if isinstance(value, int | float) and kind != "reference" and not isinstance(value, bool):
            value = str(value)
        else:
            return err(
                "JSON_PARSER_ERROR", f"Cannot deserialize instance of string from {value!r} for {name}"
            )
    if kind == "reference":
        if not _ID_RE.match(value):
            return err("MALFORMED_ID", f"{name}: id value of incorrect type: {value}")
        target_type, target = _resolve_id(state, value)
        if target is None or target_type not in spec.refs or target.get("IsDeleted"):
            return err("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id ({name}: {value})")
        if name == "OwnerId" and not target.get("IsActive", True):
            return err(
                "INACTIVE_OWNER_OR_USER",
                f"operation performed with inactive user [{value}] as owner of {sobject.lower()}",
            )
        return target["Id"], None
    if kind == "picklist" and value not in spec.values:
        return err(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"{name}: bad value for restricted picklist field: {value}",
        )
    if spec.length and len(value) > spec.length:
        return err(
            "STRING_TOO_LONG", f"{name}: data value too large: {value[:40]}... (max length={spec.length})"
        )
    return value, None


def validate(
    state: SandboxState, sobject: str, body: dict, insert: bool, current: dict | None = None
) -> tuple[dict, list[dict]]:
    """Return (clean values keyed by canonical field names, errors)."""
    clean: dict[str, Any] = {}
    errors: list[dict] = []
    for key, value in body.items():
        if key == "attributes" or (key == "Id" and not insert):
            continue
        found = field_of(sobject, key)
        if found is None:
            errors.append(
                {
                    "statusCode": "INVALID_FIELD",
                    "message": f"No such column '{key}' on sobject of type {sobject}",
                    "fields": [],
                }
            )
            continue
        name, spec = found
        if spec.readonly:
            errors.append(
                {
                    "statusCode": "INVALID_FIELD_FOR_INSERT_UPDATE",
                    "fields": [name],
                    "message": f"Unable to create/update fields: {name}. Please check the security "
                    "settings of this field and verify that it is read/write for your profile "
                    "or permission set.",
                }
            )
            continue
        value, problem = _check_value(state, sobject, name, spec, value)
        if problem:
            errors.append(problem)
            continue
        clean[name] = value
        if spec.external_id and value is not None:
            other = records.find_by(state, sobject, name, value, exclude=current and current["Id"])
            if other:
                errors.append(
                    {
                        "statusCode": "DUPLICATE_VALUE",
                        "fields": [],
                        "message": f"duplicate value found: {name} duplicates value on record with id: "
                        f"{other['Id']}",
                    }
                )
    if insert:
        missing = [n for n, s in SCHEMA[sobject].items() if s.required and clean.get(n) is None]
        if missing:
            errors.append(
                {
                    "statusCode": "REQUIRED_FIELD_MISSING",
                    "fields": missing,
                    "message": f"Required fields are missing: [{', '.join(missing)}]",
                }
            )
    return clean, errors


def _insert(state: SandboxState, sobject: str, body: dict) -> tuple[dict | None, list[dict]]:
    clean, errors = validate(state, sobject, body, insert=True)
    if errors:
        return None, errors
    owner = rules.assignment_owner(state, sobject, state.request_headers)
    if owner:
        clean["OwnerId"] = owner
    record = records.create(state, sobject, clean)
    simulation.observe(state, sobject, record)
    return record, []


def _update(state: SandboxState, sobject: str, record: dict, body: dict) -> list[dict]:
    clean, errors = validate(state, sobject, body, insert=False, current=record)
    if not errors:
        owner = rules.assignment_owner(state, sobject, state.request_headers)
        if owner:
            clean["OwnerId"] = owner
        records.update(state, sobject, record, clean)
    return errors


def find(state: SandboxState, sobject: str, record_id: str) -> dict | None:
    kind, record = _resolve_id(state, record_id) if _ID_RE.match(record_id) else (None, None)
    return record if kind == sobject else None


def _find_by_field(state: SandboxState, sobject: str, name: str, value: str) -> dict | None:
    record = records.find_by(state, sobject, name, value)
    if record is not None and record.get("IsDeleted"):  # rare: fall back to the scan for a live twin
        return next(
            (
                r
                for r in state.data["sf"].get(sobject, {}).values()
                if r.get(name) == value and not r.get("IsDeleted")
            ),
            None,
        )
    return record


def _external_field(sobject: str, name: str) -> str | None:
    found = field_of(sobject, name)
    if found and (found[1].external_id or found[0] == "Id"):
        return found[0]
    return None


# serialization -----------------------------------------------------------------
def serialize(sobject: str, record: dict, version: str, fields: list[str] | None = None) -> dict:
    out: dict[str, Any] = {
        "attributes": {"type": sobject, "url": f"/services/data/v{version}/sobjects/{sobject}/{record['Id']}"}
    }
    for name in fields or list(SCHEMA[sobject]):
        found = field_of(sobject, name.strip())
        if found:
            out[found[0]] = record.get(found[0])
    return out


def describe(sobject: str, version: str) -> dict:
    fields = []
    for name, spec in SCHEMA[sobject].items():
        kind = {"autonumber": "string", "reference": "reference"}.get(spec.type, spec.type)
        fields.append(
            {
                "name": name,
                "label": name.replace("__c", "").replace("_", " "),
                "type": kind,
                "length": spec.length if spec.type not in ("boolean", "date", "datetime", "currency") else 0,
                "nillable": not spec.required and spec.type != "boolean",
                "createable": not spec.readonly,
                "updateable": not spec.readonly,
                "externalId": spec.external_id,
                "unique": spec.external_id,
                "custom": name.endswith("__c"),
                "calculated": False,
                "autoNumber": spec.type == "autonumber",
                "filterable": spec.type != "textarea",
                "referenceTo": list(spec.refs),
                "relationshipName": spec.rel or None,
                "restrictedPicklist": bool(spec.values),
                "defaultValue": spec.default if spec.type != "picklist" else None,
                "picklistValues": [
                    {
                        "value": v,
                        "label": v,
                        "active": True,
                        "defaultValue": v == spec.default,
                        "validFor": None,
                    }
                    for v in spec.values
                ],
                "soapType": "xsd:"
                + {
                    "boolean": "boolean",
                    "currency": "double",
                    "date": "date",
                    "datetime": "dateTime",
                    "reference": "ID",
                    "id": "ID",
                }.get(spec.type, "string"),
            }
        )
    return {
        **_sobject_summary(sobject, version),
        "fields": fields,
        "childRelationships": [],
        "recordTypeInfos": [],
    }


def _sobject_summary(sobject: str, version: str) -> dict:
    prefix = next(p for p, t in PREFIX_TYPE.items() if t == sobject)
    base = f"/services/data/v{version}/sobjects/{sobject}"
    return {
        "name": sobject,
        "label": sobject,
        "keyPrefix": prefix,
        "custom": False,
        "queryable": True,
        "createable": True,
        "updateable": True,
        "deletable": True,
        "retrieveable": True,
        "urls": {"sobject": base, "describe": base + "/describe", "rowTemplate": base + "/{ID}"},
    }


# handlers ----------------------------------------------------------------------
def handle(state: SandboxState, req: Request, version: str) -> tuple[str, Reply]:
    """Dispatch one request below /services/data/vXX.X; returns (endpoint template, reply)."""
    parts = [p for p in req.path.split("/") if p]
    method = req.method
    state.request_headers = req.headers  # write paths read Sforce-Auto-Assign from here
    if not parts:
        return "GET /", Reply(
            200,
            {
                k: f"/services/data/v{version}/{k}"
                for k in ("sobjects", "query", "queryAll", "limits", "composite")
            },
        )
    head = parts[0]
    if head == "limits" and len(parts) == 1 and method == "GET":
        used, limit = usage(state)
        return "GET limits", Reply(
            200,
            {
                "DailyApiRequests": {"Max": limit, "Remaining": max(limit - used, 0)},
                "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
                "DataStorageMB": {"Max": 1024, "Remaining": 1000},
            },
        )
    if head in ("query", "queryAll") and method == "GET":
        if len(parts) == 2:
            return f"GET {head}/{{locator}}", _query_more(state, parts[1])
        return f"GET {head}", _query(state, req, version, include_deleted=head == "queryAll")
    if head == "sobjects":
        return _sobjects(state, req, version, parts[1:])
    if head == "composite" and len(parts) == 1 and method == "POST":
        return "POST composite", sf_composite.handle(state, req, version, handle)
    if head == "composite" and len(parts) >= 2 and parts[1] == "sobjects":
        return _composite(state, req, version, parts[2:])
    return f"{method} {'/'.join(parts)}", error(404, *NOT_FOUND)


def _query(state: SandboxState, req: Request, version: str, include_deleted: bool) -> Reply:
    text = req.params.get("q")
    if not text:
        return error(400, "MALFORMED_QUERY", "unexpected token: <EOF>")
    if len(text) > soql.MAX_SOQL_CHARS:  # SOQL and SOSL Limits: statements up to 100,000 characters
        limit = soql.MAX_SOQL_CHARS
        return error(400, "MALFORMED_QUERY", f"SOQL statements cannot exceed {limit} characters")
    try:
        query = soql.parse(text)
        rows = soql.execute(query, state.data["sf"], state.today, include_deleted)
    except soql.SoqlError as exc:
        return error(400, exc.code, exc.message)
    if query.count:
        return Reply(200, {"totalSize": len(rows), "done": True, "records": []})
    shaped = [soql.shape(query, state.data["sf"], r, version) for r in rows]
    options = req.headers.get("sforce-query-options", "")
    match = re.search(r"batchSize\s*=\s*(\d+)", options)
    batch = min(max(int(match.group(1)), 200), 2000) if match else 2000
    return _page(state, version, shaped, 0, batch)


def _page(
    state: SandboxState, version: str, rows: list[dict], start: int, batch: int, locator: str | None = None
) -> Reply:
    end = start + batch
    body: dict[str, Any] = {"totalSize": len(rows), "done": end >= len(rows), "records": rows[start:end]}
    if end < len(rows):
        if locator is None:
            locator = f"01g8d{state._next('cursor'):010d}"
            state.cursors[locator] = {"rows": rows, "batch": batch, "version": version}
        body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{end}"
    return Reply(200, body)


def _query_more(state: SandboxState, token: str) -> Reply:
    locator, _, offset = token.rpartition("-")
    cursor = state.cursors.get(locator)
    if cursor is None or not offset.isdigit():
        return error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    return _page(state, cursor["version"], cursor["rows"], int(offset), cursor["batch"], locator)


def _body(req: Request) -> tuple[Any, Reply | None]:
    try:
        return req.json(), None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, error(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}")


def _first_error(errors: list[dict]) -> Reply:
    return Reply(
        400, [{"message": e["message"], "errorCode": e["statusCode"], "fields": e["fields"]} for e in errors]
    )


def _sobjects(state: SandboxState, req: Request, version: str, parts: list[str]) -> tuple[str, Reply]:
    method = req.method
    if not parts:
        return "GET sobjects", Reply(
            200,
            {
                "encoding": "UTF-8",
                "maxBatchSize": 200,
                "sobjects": [_sobject_summary(s, version) for s in SCHEMA],
            },
        )
    sobject = sobject_name(parts[0])
    tail = "/".join(
        [
            "{id}" if i == 1 and p != "describe" else "{field}/{value}" if i == 1 else p
            for i, p in enumerate(parts[1:2], 1)
        ]
    )
    template = f"{method} sobjects/{{type}}" + (f"/{tail}" if tail else "")
    if sobject is None:
        return template, error(404, "NOT_FOUND", f"The requested resource does not exist: {parts[0]}")
    if len(parts) == 1:
        if method == "GET":
            return template, Reply(
                200, {"objectDescribe": _sobject_summary(sobject, version), "recentItems": []}
            )
        if method == "POST":
            body, bad = _body(req)
            if bad or not isinstance(body, dict):
                return template, bad or error(400, "JSON_PARSER_ERROR", "Expected a JSON object")
            record, errors = _insert(state, sobject, body)
            if errors:
                return template, _first_error(errors)
            return template, Reply(201, {"id": record["Id"], "success": True, "errors": []})
    if len(parts) == 2 and parts[1] == "describe" and method == "GET":
        return template, Reply(200, org.apply_describe_overrides(state, sobject, describe(sobject, version)))
    if len(parts) == 2:
        return template, _one_record(state, req, version, sobject, parts[1])
    if len(parts) == 3:
        return template, _by_external_id(state, req, version, sobject, parts[1], parts[2])
    return template, error(404, *NOT_FOUND)


def _one_record(state: SandboxState, req: Request, version: str, sobject: str, record_id: str) -> Reply:
    record = find(state, sobject, record_id)
    if record is None:
        return error(404, *NOT_FOUND)
    if record.get("IsDeleted"):
        return error(404, "ENTITY_IS_DELETED", "entity is deleted")
    if req.method == "GET":
        fields = req.params.get("fields")
        return Reply(200, serialize(sobject, record, version, fields.split(",") if fields else None))
    if req.method == "PATCH":
        body, bad = _body(req)
        if bad or not isinstance(body, dict):
            return bad or error(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        errors = _update(state, sobject, record, body)
        return _first_error(errors) if errors else Reply(204)
    if req.method == "DELETE":
        records.update(state, sobject, record, {"IsDeleted": True})
        return Reply(204)
    return error(
        405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. Allowed are GET,PATCH,DELETE"
    )


def _by_external_id(
    state: SandboxState, req: Request, version: str, sobject: str, name: str, value: str
) -> Reply:
    ext = _external_field(sobject, name)
    if ext is None:
        return error(400, "INVALID_FIELD", f"Field {name} is not an External ID or the Id field of {sobject}")
    record = find(state, sobject, value) if ext == "Id" else _find_by_field(state, sobject, ext, value)
    if req.method == "GET":
        return Reply(200, serialize(sobject, record, version)) if record else error(404, *NOT_FOUND)
    if req.method != "PATCH":
        return error(
            405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. Allowed are GET,PATCH"
        )
    body, bad = _body(req)
    if bad or not isinstance(body, dict):
        return bad or error(400, "JSON_PARSER_ERROR", "Expected a JSON object")
    if record is None:
        if ext == "Id":
            return error(404, *NOT_FOUND)
        record, errors = _insert(state, sobject, {**body, ext: value})
        if errors:
            return _first_error(errors)
        return Reply(201, {"id": record["Id"], "success": True, "errors": [], "created": True})
    errors = _update(state, sobject, record, body)
    if errors:
        return _first_error(errors)
    return Reply(200, {"id": record["Id"], "success": True, "errors": [], "created": False})


def _composite(state: SandboxState, req: Request, version: str, parts: list[str]) -> tuple[str, Reply]:
    method = req.method
    if method == "GET" and len(parts) == 1:
        sobject = sobject_name(parts[0])
        if sobject is None:
            return "GET composite/sobjects/{type}", error(404, *NOT_FOUND)
        ids = [i for i in req.params.get("ids", "").split(",") if i]
        fields = [f for f in req.params.get("fields", "").split(",") if f] or None
        out = [
            serialize(sobject, r, version, fields) if (r := find(state, sobject, i)) else None for i in ids
        ]
        return "GET composite/sobjects/{type}", Reply(200, out)
    upsert = method == "PATCH" and len(parts) == 2
    template = f"{method} composite/sobjects" + ("/{type}/{field}" if upsert else "")
    if method not in ("POST", "PATCH") or (parts and not upsert):
        return template, error(404, *NOT_FOUND)
    body, bad = _body(req)
    if bad:
        return template, bad
    recs = (body or {}).get("records") if isinstance(body, dict) else None
    if not isinstance(recs, list):
        return template, error(400, "JSON_PARSER_ERROR", "Missing records")
    if len(recs) > 200:
        return template, error(
            400,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        )
    all_or_none = bool(body.get("allOrNone"))
    # only allOrNone needs a rollback copy (a deep copy of the whole org is seconds at 100x volume)
    snapshot = (
        copy.deepcopy({k: state.data[k] for k in ("sf", "seq", "sim")}) if body.get("allOrNone") else {}
    )
    fail_at = set(state.data["faults"].pop("sf_collection_fail_indexes", None) or [])
    ext_type = sobject_name(parts[0]) if upsert else None
    ext = _external_field(ext_type, parts[1]) if ext_type else None
    if upsert and ext is None:
        return template, error(400, "INVALID_FIELD", f"Field {parts[1]} is not an External ID field")
    ext_values = [r.get(ext) for r in recs if isinstance(r, dict)] if ext else []
    results = []
    for index, item in enumerate(recs):
        result = _composite_one(state, item, method, ext, ext_values, index in fail_at)
        results.append(result)
    if all_or_none and not all(r["success"] for r in results):
        state.data.update(snapshot)
        results = [
            r
            if not r["success"]
            else {"id": None if method == "POST" else r["id"], "success": False, "errors": [ROLLED_BACK]}
            for r in results
        ]
        if method == "POST" or upsert:
            for r in results:
                r.pop("created", None)
                r["id"] = None
    return template, Reply(200, results)


def _composite_one(state, item: Any, method: str, ext: str | None, ext_values: list, fail: bool) -> dict:
    def failed(
        code: str, message: str, fields: list[str] | None = None, record_id: str | None = None
    ) -> dict:
        return {
            "id": record_id,
            "success": False,
            "errors": [{"statusCode": code, "message": message, "fields": fields or []}],
        }

    if not isinstance(item, dict):
        return failed("JSON_PARSER_ERROR", "Expected a JSON object")
    sobject = sobject_name(str((item.get("attributes") or {}).get("type", "")))
    if sobject is None:
        return failed("INVALID_TYPE", "Must send a concrete entity type.")
    if fail:
        return failed(
            "UNABLE_TO_LOCK_ROW",
            "unable to obtain exclusive access to this record or 1 records",
            record_id=item.get("Id"),
        )
    if ext:
        value = item.get(ext)
        if value in (None, ""):
            return failed("MISSING_ARGUMENT", f"{ext} not specified")
        if ext_values.count(value) > 1:
            return failed("DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {value}", [ext])
        record = find(state, sobject, value) if ext == "Id" else _find_by_field(state, sobject, ext, value)
        if record is None:
            record, errors = _insert(state, sobject, item)
            return (
                {"id": record["Id"], "success": True, "errors": [], "created": True}
                if record
                else {"id": None, "success": False, "errors": errors}
            )
        errors = _update(state, sobject, record, item)
        return {"id": record["Id"], "success": not errors, "errors": errors, "created": False}
    if method == "POST":
        if item.get("Id"):
            return failed("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
        record, errors = _insert(state, sobject, item)
        return (
            {"id": record["Id"], "success": True, "errors": []}
            if record
            else {"id": None, "success": False, "errors": errors}
        )
    record_id = item.get("Id")
    if not record_id:
        return failed("MISSING_ARGUMENT", "Id not specified in an update call")
    record = find(state, sobject, str(record_id))
    if record is None or record.get("IsDeleted"):
        return failed(
            "ENTITY_IS_DELETED" if record else "INVALID_CROSS_REFERENCE_KEY",
            "entity is deleted" if record else "invalid cross reference id",
            record_id=record_id,
        )
    errors = _update(state, sobject, record, item)
    return {"id": record["Id"], "success": not errors, "errors": errors}

"""The service's OpenAPI 3.1 document, written by hand next to the routes it describes.

A test walks the app's routes and this document to keep the two in step.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from contacts_cli.service.ids import USER_ID_PATTERN

_PROBLEM = {"$ref": "#/components/responses/Problem"}
_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(schema: dict[str, Any], description: str = "OK",
        headers: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"description": description, "content": {_JSON: {"schema": schema}}}
    if headers:
        body["headers"] = headers
    return body


def _problems(*statuses: int) -> dict[str, Any]:
    return {str(s): _PROBLEM for s in statuses}


_ETAG = {"ETag": {"description": 'The contact\'s version, e.g. "3".',
                  "schema": {"type": "string"}}}
_USER = {"name": "user_id", "in": "path", "required": True,
         "schema": {"type": "string", "pattern": USER_ID_PATTERN}}
_ACCOUNT = {"name": "name", "in": "path", "required": True,
            "schema": {"type": "string", "pattern": USER_ID_PATTERN}}
_PASSWORD = {"type": "string", "minLength": 8, "description": "At most 1024 bytes of UTF-8, "
                                                              "no control characters."}
_CONTACT = {"name": "contact_id", "in": "path", "required": True, "schema": {"type": "string"}}
_IF_MATCH = {"name": "If-Match", "in": "header", "required": False,
             "description": 'Expected version, e.g. "3"; a stale one answers 412.',
             "schema": {"type": "string"}}
_IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
                "description": "Retrying with the same key returns the first result and creates "
                               "nothing new; the key is journaled with the contact.",
                "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"}}

_CONTACT_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "maxLength": 200},
    "emails": {"type": "array", "items": {"type": "string", "format": "email"}},
    "phones": {"type": "array", "items": {"type": "string"}},
    "company": {"type": ["string", "null"]},
    "title": {"type": ["string", "null"]},
    "address": {"type": ["string", "null"]},
    "birthday": {"type": ["string", "null"], "description": "YYYY-MM-DD or --MM-DD"},
    "notes": {"type": ["string", "null"]},
    "labels": {"type": "array", "items": {"type": "string"}},
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "contacts",
        "version": "1.0.0",
        "description": "Per-user contacts, each user served by one persistent actor that "
                       "journals every change to PostgreSQL before it answers.",
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "basic": {"type": "http", "scheme": "basic",
                      "description": "An account (`contacts user add`), for its own "
                                     "/api/{user_id} routes; HTTPS or loopback only."},
        },
        "responses": {
            "Problem": {
                "description": "An RFC 9457 problem document.",
                "content": {"application/problem+json": {"schema": _ref("Problem")}},
            }
        },
        "schemas": {
            "Problem": {
                "type": "object",
                "required": ["type", "title", "status", "detail"],
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "instance": {"type": "string"},
                    "errors": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["field", "message"],
                            "properties": {"field": {"type": "string"},
                                           "message": {"type": "string"}},
                        },
                    },
                },
            },
            "NewContact": {
                "type": "object", "required": ["name"], "properties": _CONTACT_FIELDS,
                "additionalProperties": False,
            },
            "ContactPatch": {
                "type": "object",
                "description": "A merge: only the given fields change; null clears one.",
                "properties": _CONTACT_FIELDS, "additionalProperties": False,
            },
            "Contact": {
                "type": "object",
                "required": ["id", "name", "version", "created_at", "updated_at"],
                "properties": {
                    "id": {"type": "string"},
                    **_CONTACT_FIELDS,
                    "created_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                    "version": {"type": "integer", "minimum": 1},
                },
            },
            "ContactPage": {
                "type": "object",
                "required": ["items", "next_cursor"],
                "properties": {
                    "items": {"type": "array", "items": _ref("Contact")},
                    "next_cursor": {"type": ["string", "null"]},
                    "as_of": {"type": "string", "format": "date-time"},
                },
            },
            "HistoryEntry": {
                "type": "object",
                "required": ["sequence_nr", "type", "timestamp"],
                "properties": {
                    "sequence_nr": {"type": "integer"},
                    "type": {"type": "string"},
                    "timestamp": {"type": "string", "format": "date-time"},
                },
                "additionalProperties": True,
            },
            "Account": {
                "type": "object",
                "required": ["name", "created_at", "password_changed_at"],
                "properties": {
                    "name": {"type": "string", "pattern": USER_ID_PATTERN},
                    "created_at": {"type": "string", "format": "date-time"},
                    "password_changed_at": {"type": "string", "format": "date-time"},
                },
            },
            "ImportOutcome": {
                "type": "object",
                "description": "One line per row, then a final {\"summary\": {...}} line; an "
                               "{\"error\": {...}} line reports a failure after streaming began.",
                "properties": {
                    "row": {"type": "integer"},
                    "outcome": {"enum": ["created", "updated", "skipped", "rejected"]},
                    "id": {"type": ["string", "null"]},
                    "errors": {"type": "array"},
                },
            },
        },
    },
    "security": [{"bearer": []}, {"basic": []}],
    "paths": {
        "/healthz": {"get": {
            "summary": "Liveness; with a challenge, proof that this is the server of server.json",
            "security": [],
            "parameters": [{
                "name": "challenge", "in": "query",
                "schema": {"type": "string", "pattern": "^[!-~]{1,128}$", "maxLength": 128},
                "description": "A fresh random string; a `contacts serve` answers "
                               "HMAC-SHA256(the nonce of its server.json, challenge) as proof."}],
            "responses": {"200": _ok({"type": "object", "required": ["status"], "properties": {
                "status": {"const": "ok"}, "proof": {"type": "string"}}}), **_problems(422)}}},
        "/readyz": {"get": {"summary": "Readiness: the database answers", "security": [],
                            "responses": {"200": _ok({"type": "object"}), **_problems(503)}}},
        "/metrics": {"get": {
            "summary": "Prometheus metrics", "security": [],
            "responses": {"200": {"description": "Prometheus text format",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}},
        }},
        "/openapi.json": {"get": {"summary": "This document", "security": [],
                                  "responses": {"200": _ok({"type": "object"})}}},
        "/admin/accounts": {"post": {
            "summary": "Create an account (HTTPS or loopback only: the body holds a password)",
            "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {_JSON: {"schema": {
                "type": "object", "required": ["name", "password"],
                "additionalProperties": False,
                "properties": {"name": {"type": "string", "pattern": USER_ID_PATTERN},
                               "password": _PASSWORD}}}}},
            "responses": {"201": _ok(_ref("Account"), "Created"),
                          **_problems(401, 403, 409, 413, 415, 422, 503)},
        }},
        "/admin/accounts/{name}": {
            "parameters": [_ACCOUNT],
            "delete": {"summary": "Remove an account (its contacts stay)",
                       "security": [{"bearer": []}],
                       "responses": {"200": _ok(_ref("Account")),
                                     **_problems(401, 403, 404, 422, 503)}},
        },
        "/admin/accounts/{name}/password": {
            "parameters": [_ACCOUNT],
            "put": {
                "summary": "Change an account's password (HTTPS or loopback only)",
                "security": [{"bearer": []}],
                "requestBody": {"required": True, "content": {_JSON: {"schema": {
                    "type": "object", "required": ["password"], "additionalProperties": False,
                    "properties": {"password": _PASSWORD}}}}},
                "responses": {"200": _ok(_ref("Account")),
                              **_problems(401, 403, 404, 413, 415, 422, 503)},
            },
        },
        "/api/stats": {"get": {"summary": "Service and journal statistics",
                               "responses": {"200": _ok({"type": "object"}),
                                             **_problems(401, 503, 504)}}},
        "/api/{user_id}/contacts": {
            "parameters": [_USER],
            "get": {
                "summary": "List contacts sorted by name, search them, or read them as of a time",
                "parameters": [
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 1000},
                     "description": "Terms that must all match, case-insensitive; "
                                    "field:term limits a term to one field."},
                    {"name": "as_of", "in": "query",
                     "schema": {"type": "string", "format": "date-time"},
                     "description": "Replay the journal up to this instant (UTC if no offset); "
                                    "not combinable with q or cursor."},
                ],
                "responses": {"200": _ok(_ref("ContactPage")), **_problems(401, 422, 503, 504)},
            },
            "post": {
                "summary": "Create a contact",
                "parameters": [_IDEMPOTENCY],
                "requestBody": {"required": True,
                                "content": {_JSON: {"schema": _ref("NewContact")}}},
                "responses": {
                    "201": _ok(_ref("Contact"), "Created", headers={
                        **_ETAG, "Location": {"schema": {"type": "string"}}}),
                    **_problems(400, 401, 413, 415, 422, 503, 504),
                },
            },
        },
        "/api/{user_id}/contacts/import": {
            "parameters": [_USER],
            "post": {
                "summary": "Import JSON Lines, one contact object per line (streamed)",
                "parameters": [
                    _IDEMPOTENCY,
                    {"name": "policy", "in": "query",
                     "schema": {"enum": ["skip", "update", "create"], "default": "skip"},
                     "description": "What to do with a row whose email matches a contact."},
                    {"name": "chunk_size", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 10000}},
                    {"name": "dry_run", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "more", "in": "query", "schema": {"type": "boolean"},
                     "description": "The next chunk of the same import follows at once."},
                    {"name": "first_row", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "default": 1},
                     "description": "The row number of the body's first line (an instance "
                                    "forwarding one chunk of a larger import)."},
                ],
                "requestBody": {"required": True, "content": {
                    "application/x-ndjson": {"schema": {"type": "string"}}}},
                "responses": {
                    "200": {"description": "One outcome per row as JSON Lines, then a summary",
                            "content": {"application/x-ndjson": {
                                "schema": _ref("ImportOutcome")}}},
                    **_problems(401, 415, 422, 503, 504),
                },
            },
        },
        "/api/{user_id}/contacts/{contact_id}": {
            "parameters": [_USER, _CONTACT],
            "get": {"summary": "Get a contact",
                    "responses": {"200": _ok(_ref("Contact"), headers=_ETAG),
                                  "304": {"description": "If-None-Match matched"},
                                  **_problems(401, 404, 422, 503, 504)}},
            "patch": {
                "summary": "Merge changes into a contact",
                "parameters": [_IF_MATCH],
                "requestBody": {"required": True, "content": {
                    _JSON: {"schema": _ref("ContactPatch")},
                    "application/merge-patch+json": {"schema": _ref("ContactPatch")}}},
                "responses": {"200": _ok(_ref("Contact"), headers=_ETAG),
                              **_problems(400, 401, 404, 412, 413, 415, 422, 503, 504)},
            },
            "delete": {
                "summary": "Remove a contact; answers with the removed contact",
                "parameters": [_IF_MATCH],
                "responses": {"200": _ok(_ref("Contact"), headers=_ETAG),
                              **_problems(400, 401, 404, 412, 422, 503, 504)},
            },
        },
        "/api/{user_id}/contacts/{contact_id}/history": {
            "parameters": [_USER, _CONTACT],
            "get": {"summary": "The contact's events with their timestamps",
                    "responses": {
                        "200": _ok({"type": "array", "items": _ref("HistoryEntry")}),
                        **_problems(401, 404, 422, 503, 504)}},
        },
    },
}


def _anonymous_allowed(node: Any) -> Any:
    """``DOCUMENT`` for a service without an API token: loopback clients need no
    credentials there, so every non-empty ``security`` list also allows none (``{}``)."""
    if isinstance(node, dict):
        return {
            key: [*value, {}] if key == "security" and value else _anonymous_allowed(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_anonymous_allowed(item) for item in node]
    return node


WITHOUT_TOKEN = _anonymous_allowed(DOCUMENT)


async def openapi_endpoint(request: Request) -> Response:
    token = request.app.state.service.settings.api_token
    return JSONResponse(DOCUMENT if token else WITHOUT_TOKEN)

"""Building HTTP responses: JSON bodies (orjson) and RFC 9457 problem details."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from flask import Response
from flask.json.provider import JSONProvider
from werkzeug.http import HTTP_STATUS_CODES

PROBLEM_TYPE_BASE = "urn:itemsapi:problem:"
JSON_OPTIONS = orjson.OPT_UTC_Z  # datetimes as RFC 3339 with a Z


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=JSON_OPTIONS)


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(dumps(body), status=status, headers=headers, mimetype="application/json")


def problem(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    """An application/problem+json response. `kind` names a problem type of this API; without
    it the type is about:blank and the title is the HTTP status phrase, as RFC 9457 says."""
    body = {
        "type": PROBLEM_TYPE_BASE + kind if kind else "about:blank",
        "title": title or HTTP_STATUS_CODES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }
    return Response(
        dumps(body), status=status, headers=headers, mimetype="application/problem+json"
    )


class OrjsonProvider(JSONProvider):
    """Makes flask.jsonify and request.get_json use orjson too, so there is one encoder."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return dumps(obj).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

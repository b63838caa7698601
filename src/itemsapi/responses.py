"""Building HTTP responses: JSON bodies (orjson) and RFC 9457 problem details."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from flask import Response
from flask.json.provider import JSONProvider
from pydantic import BaseModel
from werkzeug.http import HTTP_STATUS_CODES

from itemsapi.response_models import Problem

PROBLEM_TYPE_BASE = "urn:itemsapi:problem:"
JSON_OPTIONS = orjson.OPT_UTC_Z  # datetimes as RFC 3339 with a Z


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=JSON_OPTIONS)


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(dumps(body), status=status, headers=headers, mimetype="application/json")


def model_response(
    body: BaseModel,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    mimetype: str = "application/json",
) -> Response:
    """A body made from one of the published response models: the fields the view set, as set."""
    return Response(
        body.model_dump_json(exclude_unset=True), status=status, headers=headers, mimetype=mimetype
    )


def problem(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> Response:
    """An application/problem+json response. `kind` names a problem type of this API; without
    it the type is about:blank and the title is the HTTP status phrase, as RFC 9457 says.
    `errors` lists every bad field or parameter (given, even empty, it is in the body)."""
    body = Problem(
        type=PROBLEM_TYPE_BASE + kind if kind else "about:blank",
        title=title or HTTP_STATUS_CODES.get(status, "Error"),
        status=status,
        detail=detail,
        **({} if errors is None else {"errors": errors}),
    )
    return model_response(body, status, headers, mimetype="application/problem+json")


class OrjsonProvider(JSONProvider):
    """Makes flask.jsonify and request.get_json use orjson too, so there is one encoder."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return dumps(obj).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

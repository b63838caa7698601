"""Building HTTP responses: JSON bodies with orjson, and bodies from the published models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from flask import Response
from flask.json.provider import JSONProvider
from pydantic import BaseModel

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


class OrjsonProvider(JSONProvider):
    """Makes flask.jsonify and request.get_json use orjson too, so there is one encoder."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return dumps(obj).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

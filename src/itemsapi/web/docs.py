"""GET /openapi.json (the contract) and GET /docs (Swagger UI, served from its Python package:
the page works offline, nothing is fetched from a CDN)."""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from importlib import resources
from pathlib import Path

from flask import Blueprint, Response, send_from_directory

from itemsapi.web.deprecation import sunset_date
from itemsapi.web.deps import deps
from itemsapi.web.openapi import document
from itemsapi.web.responses import json_response

bp = Blueprint("docs", __name__)

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>itemsapi: API documentation</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script>{start}</script>
</body>
</html>
"""
START = """
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
                                 persistAuthorization: true});
"""
# The page's Content-Security-Policy (sent by web/headers.py): scripts are Swagger UI's bundle
# and the one inline starter above, by its hash; its requests go to this server only. Swagger
# UI sets style attributes and inline styles, and draws its icons from data: URLs.
_START_HASH = base64.b64encode(hashlib.sha256(START.encode()).digest()).decode()
DOCS_POLICY = "; ".join(
    [
        "default-src 'none'",
        f"script-src 'self' 'sha256-{_START_HASH}'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)


@cache
def _swagger_ui_assets() -> Path:
    return Path(str(resources.files("swagger_ui") / "static"))


@bp.get("/openapi.json")
def openapi() -> Response:
    settings = deps().settings
    return json_response(document(settings.unversioned, sunset_date(settings.unversioned_sunset)))


@bp.get("/docs")
def page() -> Response:
    return Response(PAGE.format(start=START), mimetype="text/html")


@bp.get("/docs/static/<path:filename>")
def assets(filename: str) -> Response:
    return send_from_directory(_swagger_ui_assets(), filename, max_age=86400)

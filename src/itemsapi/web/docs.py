"""GET /openapi.json (the contract) and GET /docs (Swagger UI, served from its Python package:
the page works offline, nothing is fetched from a CDN)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from flask import Blueprint, Response, send_from_directory

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
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
                                 persistAuthorization: true});
  </script>
</body>
</html>
"""


@cache
def _swagger_ui_assets() -> Path:
    return Path(str(resources.files("swagger_ui") / "static"))


@bp.get("/openapi.json")
def openapi() -> Response:
    return json_response(document())


@bp.get("/docs")
def page() -> Response:
    return Response(PAGE, mimetype="text/html")


@bp.get("/docs/static/<path:filename>")
def assets(filename: str) -> Response:
    return send_from_directory(_swagger_ui_assets(), filename, max_age=86400)

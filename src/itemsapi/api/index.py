"""GET /: where to go from the root. Clients get a small JSON index; a browser goes to /docs."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, request, url_for

from itemsapi import __version__
from itemsapi.response_models import Index, IndexLinks
from itemsapi.responses import model_response

bp = Blueprint("index", __name__)


@bp.get("/")
def index() -> Response:
    if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
        response = redirect(url_for("docs.page"), 302)
    else:
        links = IndexLinks(
            items=url_for("items.list_items"),
            docs=url_for("docs.page"),
            openapi=url_for("docs.openapi"),
            health=url_for("probes.health"),
        )
        response = model_response(Index(name="itemsapi", version=__version__, links=links))
    response.vary.add("Accept")  # the answer depends on it: caches must keep both
    return response

"""The operator's and the visitor's endpoints beside the items: GET / (where to go from the
root), GET /metrics (Prometheus text format) and POST /cache/clear. Each has its own blueprint,
as access control decides by blueprint (auth/scopes.py): `index` is open, `metrics` open or
admin by configuration, `cache` admin only."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, request, url_for

from itemsapi import __version__, metrics
from itemsapi.web.deps import deps
from itemsapi.web.models import Index, IndexLinks
from itemsapi.web.responses import model_response

index_bp = Blueprint("index", __name__)
metrics_bp = Blueprint("metrics", __name__)
cache_bp = Blueprint("cache", __name__)
BLUEPRINTS = (index_bp, metrics_bp, cache_bp)


@index_bp.get("/")
def index() -> Response:
    """Clients get a small JSON index; a browser goes to /docs."""
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


@metrics_bp.get("/metrics")
def scrape() -> Response:
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)


@cache_bp.post("/cache/clear")
def clear() -> Response:
    """Empty the read cache of every worker of every replica (through PostgreSQL's NOTIFY)."""
    deps().items.clear_everywhere()
    return Response(status=204)

"""The read cache's controls. Every endpoint of this blueprint is an operator's (access control
requires the admin scope for blueprint `cache`)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from itemsapi.cached_items import CACHED_KEY

bp = Blueprint("cache", __name__)


@bp.post("/cache/clear")
def clear() -> Response:
    """Empty the read cache of every worker of every replica (through PostgreSQL's NOTIFY)."""
    current_app.extensions[CACHED_KEY].clear_everywhere()
    return Response(status=204)

"""GET /metrics: Prometheus text format."""

from __future__ import annotations

from flask import Blueprint, Response

from itemsapi import metrics

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)

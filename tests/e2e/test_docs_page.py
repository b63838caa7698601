"""GET /docs in headless Chromium: Swagger UI, served by the app, renders every operation."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from itemsapi.web.openapi import document
from tests.helpers import http

pytestmark = pytest.mark.e2e

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail(
            "chromium is not installed: `make tools` installs it (apt-get install chromium)"
        )
    return found


def test_docs_page_renders_every_operation_offline(start_server, clean_db, tmp_path):
    server = start_server(clean_db)
    page = http("GET", f"{server.url}/docs")
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    # Every asset comes from this server: nothing to fetch from a CDN.
    assert not re.search(rb"(src|href)=\"https?:", page.body)
    for asset in re.findall(rb"(?:src|href)=\"(/docs/static/[^\"]+)\"", page.body):
        assert http("GET", server.url + asset.decode()).status == 200

    result = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=20000", "--dump-dom", f"{server.url}/docs"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    # The method from its label: a deprecated operation's block is classed by that, not it.
    summaries = re.findall(
        r'opblock-summary-method">(\w+)</span>'
        r'<div class="opblock-summary-path-description-wrapper">'
        r'<span class="opblock-summary-path(__deprecated)?" data-path="([^"]+)"',
        dom,
    )
    rendered = {(method.lower(), path) for method, _, path in summaries}
    struck_through = {path for _, deprecated, path in summaries if deprecated}
    assert struck_through == {"/items", "/items/{item_id}"}
    expected = {
        (method, path)
        for path, operations in document()["paths"].items()
        for method in operations
        if method != "parameters"
    }
    assert expected <= rendered, expected - rendered
    assert "OAS 3.1" in dom

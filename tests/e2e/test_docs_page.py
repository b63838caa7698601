"""GET /docs in headless Chromium: Swagger UI, served by the app, renders every operation."""

from __future__ import annotations

import re
import subprocess

import pytest

from itemsapi.web.openapi import document
from tests.e2e.browser import FLAGS, Browser, chromium
from tests.helpers import http

pytestmark = pytest.mark.e2e


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
        [chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
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


# Every Content-Security-Policy violation on the page, as the browser reports it to the page.
CSP_WATCH = """
window.violations = [];
document.addEventListener("securitypolicyviolation",
    (e) => window.violations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""
# Authorize with the key (the modal's first scheme), then try GET /v1/items from the page.
AUTHORIZE_AND_TRY = """
(async () => {
  const until = async (find) => {
    for (let i = 0; i < 200; i++) { const found = find(); if (found) return found;
      await new Promise((r) => setTimeout(r, 50)); }
    throw new Error("not found: " + find);
  };
  const type = (input, text) => {
    Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set.call(input, text);
    input.dispatchEvent(new Event("input", {bubbles: true}));
  };
  (await until(() => document.querySelector(".auth-wrapper .authorize"))).click();
  const form = await until(() => document.querySelector(".modal-ux .auth-container form"));
  type(form.querySelector("input"), TOKEN);
  form.querySelector("button[type=submit]").click();
  await until(() => form.querySelector(".btn-done, button.logout, .auth-btn-wrapper .btn"));
  document.querySelector(".modal-ux .close-modal").click();
  const operation = "#operations-items-listItems";
  (await until(() => document.querySelector(`${operation} .opblock-control-arrow`))).click();
  (await until(() => document.querySelector(`${operation} .try-out__btn`))).click();
  (await until(() => document.querySelector(`${operation} .execute`))).click();
  const status = await until(() => document.querySelector(
      `${operation} .live-responses-table tbody .response-col_status`));
  return status.textContent.trim();
})()
"""


def test_docs_page_runs_and_authorises_under_its_policy(start_server, clean_db, tmp_path):
    server = start_server(clean_db)
    policy = http("GET", f"{server.url}/docs").headers["content-security-policy"]
    assert "script-src 'self' 'sha256-" in policy
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(f"{server.url}/docs", before_load=CSP_WATCH)
        browser.wait_for("document.querySelectorAll('.opblock').length > 0")
        status = browser.evaluate(AUTHORIZE_AND_TRY.replace("TOKEN", repr(server.bearer())))
        assert status.startswith("200"), status  # 401 had the key not been sent
        assert browser.evaluate("window.violations") == []
    finally:
        browser.close()

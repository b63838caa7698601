"""CORS in a real browser: headless Chromium, driven through its DevTools protocol, opens a page
served from another origin whose script uses the API the way a web front end does (create,
read with If-None-Match, patch with If-Match from the ETag it read, page by the Link header,
delete). From an origin in ITEMSAPI_CORS_ORIGINS it succeeds; from one not listed the browser
refuses, and nothing is written."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import psycopg
import pytest

from tests.e2e.browser import Browser

pytestmark = pytest.mark.e2e

SCRIPT = """
window.done = (async () => {
  const api = API, auth = {Authorization: "Bearer " + TOKEN};
  const steps = [];
  const expect = (response, status, step) => {
    if (response.status !== status) throw new Error(`${step}: ${response.status}`);
    steps.push(step);
    return response;
  };
  const create = (name) => fetch(api + "/v1/items", {method: "POST",
      headers: {...auth, "Content-Type": "application/json"},
      body: JSON.stringify({name, price: 1.5, quantity: 2})});
  try {
    const created = expect(await create("from the browser"), 201, "create");
    const item = api + created.headers.get("Location");
    const read = expect(await fetch(item, {headers: auth}), 200, "read");
    const tag = read.headers.get("ETag");
    if (!tag || !read.headers.get("X-Request-ID")) throw new Error("headers not readable");
    expect(await fetch(item, {headers: {...auth, "If-None-Match": tag}}), 304, "not modified");
    const patched = expect(await fetch(item, {method: "PATCH", headers: {...auth,
        "Content-Type": "application/merge-patch+json", "If-Match": tag},
        body: JSON.stringify({price: 2.5})}), 200, "patch");
    expect(await fetch(item, {method: "PATCH", headers: {...auth,
        "Content-Type": "application/merge-patch+json", "If-Match": tag},
        body: JSON.stringify({price: 3.5})}), 412, "stale patch refused");
    await create("second");
    const first = expect(await fetch(api + "/v1/items?limit=1", {headers: auth}), 200, "page");
    const next = /<([^>]+)>; rel="next"/.exec(first.headers.get("Link") || "");
    if (!next) throw new Error("no Link to the next page");
    const second = expect(await fetch(api + next[1], {headers: auth}), 200, "next page");
    const names = (await second.json()).items.map((i) => i.name);
    expect(await fetch(item, {method: "DELETE",
        headers: {...auth, "If-Match": patched.headers.get("ETag")}}), 204, "delete");
    expect(await fetch(item, {headers: auth}), 404, "gone");
    return {ok: true, steps, names};
  } catch (error) {
    return {ok: false, steps, error: String(error)};
  }
})();
"""


@pytest.fixture
def page_origins() -> Iterator:
    """page_origins(html, count) -> that many origins (http://127.0.0.1:port) serving it."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def serve(html: str, count: int) -> list[str]:
        class Page(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        for _ in range(count):
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append(server)
        return [f"http://127.0.0.1:{server.server_address[1]}" for server in servers[-count:]]

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_page_on_a_listed_origin_does_crud_and_one_elsewhere_is_refused(
    start_server, clean_db, page_origins, tmp_path
):
    # The page's origins first: the server must list one of them. Its URL is not known yet, so
    # the page reads it (and the token) from its own query string.
    page = "<!doctype html><title>front end</title><script>" + (
        "const query = new URLSearchParams(location.search);"
        "const API = query.get('api'), TOKEN = query.get('token');"
    ) + SCRIPT + "</script>"  # fmt: skip
    allowed, elsewhere = page_origins(page, 2)
    server = start_server(clean_db, ITEMSAPI_CORS_ORIGINS=allowed)
    query = f"?api={server.url}&token={server.bearer()}"

    browser = Browser(tmp_path / "profile")
    try:
        browser.open(allowed + "/" + query)
        browser.wait_for("window.done !== undefined")
        result = browser.evaluate("window.done")
        assert result["ok"], result
        assert result["steps"][-1] == "gone"
        assert result["names"] == ["second"]

        with psycopg.connect(clean_db) as conn:
            before = conn.execute("SELECT count(*) FROM items").fetchone()[0]
        browser.open(elsewhere + "/" + query)
        browser.wait_for("window.done !== undefined")
        refused = browser.evaluate("window.done")
        assert not refused["ok"]
        assert refused["steps"] == []  # the very first call was refused
        assert "Failed to fetch" in refused["error"]
        blocked = [text for text in browser.log_texts() if "blocked by CORS policy" in text]
        assert blocked, json.dumps(browser.log_texts())
        assert f"from origin '{elsewhere}' has been blocked" in blocked[0]
        with psycopg.connect(clean_db) as conn:
            # The preflight failed, so the POST itself was never sent.
            assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == before
    finally:
        browser.close()

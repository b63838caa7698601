"""Keep a local copy of the items in sync with GET /v1/changes, resuming after a restart.

    ITEMSAPI_TOKEN=<a key with the read scope> python examples/follower.py BASE_URL COPY_FILE

The copy and the cursor it has reached are saved together (one file, replaced atomically), so a
restart resumes exactly where the copy stands: nothing missed, nothing applied twice. A 410
means the cursor is older than the server keeps changes: start again with a fresh copy.
Standard library only.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path


def fetch(base: str, token: str, cursor: str | None) -> dict:
    query = "wait=30&limit=1000" + (f"&after={cursor}" if cursor else "")
    url, headers = f"{base}/v1/changes?{query}", {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (http(s) checked)
    with urllib.request.urlopen(request, timeout=40) as response:  # noqa: S310
        return json.load(response)


def follow(base: str, token: str, path: Path) -> None:
    state = json.loads(path.read_text()) if path.exists() else {"cursor": None, "items": {}}
    while True:
        try:
            page = fetch(base, token, state["cursor"])
        except urllib.error.HTTPError as error:
            if error.code == 410:
                sys.exit("the cursor is older than the server keeps changes: copy afresh")
            raise
        for change in page["changes"]:  # in order: each item's changes as they happened
            if change["operation"] == "delete":
                state["items"].pop(str(change["id"]), None)
            else:
                state["items"][str(change["id"])] = change["item"]
        if page["changes"]:
            state["cursor"] = page["next_cursor"]
            saving = path.with_suffix(".saving")
            saving.write_text(json.dumps(state))
            os.replace(saving, path)  # the copy and its cursor, together
            print(f"{len(page['changes'])} changes; {len(state['items'])} items", flush=True)


if __name__ == "__main__":
    if not sys.argv[1].startswith(("http://", "https://")):
        sys.exit("BASE_URL must be an http:// or https:// URL")
    follow(sys.argv[1].rstrip("/"), os.environ["ITEMSAPI_TOKEN"], Path(sys.argv[2]))

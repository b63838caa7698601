"""Access control with API keys, the whole matrix: credentials (none, malformed, unknown,
revoked, read, write, admin) x actions (GET, POST, PUT, PATCH, DELETE, an admin action), each
with its exact status, problem type and WWW-Authenticate, through the Flask test client on the
real database."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from flask import Blueprint, Flask, Response

from itemsapi.app import close_app, create_app
from tests.helpers import create_key, revoke_key

CREDENTIALS = ["none", "malformed", "unknown", "revoked", "read", "write", "admin"]
ACTIONS = ["GET", "POST", "PUT", "PATCH", "DELETE", "ADMIN"]
NEEDED = {"GET": "read", "POST": "write", "PUT": "write", "PATCH": "write", "DELETE": "write",
          "ADMIN": "admin"}  # fmt: skip
SUCCESS = {"GET": 200, "POST": 201, "PUT": 200, "PATCH": 200, "DELETE": 204}
UNAUTHORIZED_BODY = {
    "type": "urn:itemsapi:problem:unauthorized",
    "title": "Unauthorized",
    "status": 401,
    "detail": "this request needs a valid bearer token (Authorization: Bearer <token>)",
}
ADMIN_PATH = "/cache/clear"


def add_admin_action(app: Flask) -> None:
    """POST /cache/clear in a blueprint named `cache` (every endpoint of which needs admin),
    unless the app has the real one."""
    if "cache" in app.blueprints:
        return
    cache = Blueprint("cache", __name__)
    cache.add_url_rule(ADMIN_PATH, "clear", lambda: Response(status=204), methods=["POST"])
    app.register_blueprint(cache)


@pytest.fixture
def auth_app(clean_db: str) -> Iterator[Flask]:
    app = create_app({"database_url": clean_db, "pool_min_size": 1, "pool_max_size": 4})
    add_admin_action(app)
    yield app
    close_app(app)


@pytest.fixture
def tokens(clean_db: str) -> dict[str, str]:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        made = {scope: create_key(conn, f"{scope} only", [scope])[1] for scope in NEEDED.values()}
        revoked_id, made["revoked"] = create_key(conn, "revoked", ["read", "write", "admin"])
        revoke_key(conn, revoked_id)
    made["unknown"] = "itemsapi_0123456789ab_" + "A" * 43  # well-formed, no such key
    made["malformed"] = "itemsapi-not-a-token"
    return made


def send(app: Flask, action: str, item_id: int, headers: dict[str, str]):
    client = app.test_client()
    path = f"/v1/items/{item_id}"
    if action == "ADMIN":
        return client.post(ADMIN_PATH, headers=headers)
    if action == "POST":
        return client.post("/v1/items", json={"name": "new"}, headers=headers)
    if action == "PUT":
        return client.put(path, json={"name": "replaced"}, headers=headers)
    if action == "PATCH":
        return client.patch(path, json={"quantity": 3}, headers=headers,
                            content_type="application/merge-patch+json")  # fmt: skip
    return client.open(path, method=action, headers=headers)


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("credential", CREDENTIALS)
def test_access_matrix(auth_app, tokens, sql, credential, action):
    item_id = sql.execute("INSERT INTO items (name) VALUES ('x') RETURNING id").fetchone()["id"]
    headers = {} if credential == "none" else {"Authorization": f"Bearer {tokens[credential]}"}
    response = send(auth_app, action, item_id, headers)

    if credential in ("none", "malformed", "unknown", "revoked"):
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        # The same body whatever the reason: it never says whether a key exists.
        assert response.get_json() == UNAUTHORIZED_BODY
        challenge = "Bearer" if credential == "none" else 'Bearer error="invalid_token"'
        assert response.headers["WWW-Authenticate"] == challenge
    elif NEEDED[action] == credential:
        assert 200 <= response.status_code < 300, response.get_data(as_text=True)
        if action in SUCCESS:
            assert response.status_code == SUCCESS[action]
        assert "WWW-Authenticate" not in response.headers
    else:
        scope = NEEDED[action]
        assert response.status_code == 403
        assert response.mimetype == "application/problem+json"
        body = response.get_json()
        assert body["type"] == "urn:itemsapi:problem:forbidden"
        assert body["status"] == 403
        assert body["detail"] == f"this request needs the '{scope}' scope"
        assert response.headers["WWW-Authenticate"] == (
            f'Bearer error="insufficient_scope", scope="{scope}"'
        )
    if response.status_code in (401, 403):  # refused: nothing changed
        rows = sql.execute("SELECT id, name, version FROM items").fetchall()
        assert rows == [{"id": item_id, "name": "x", "version": 1}]

"""Protocol-level errors: every one a problem+json, none a 500 that leaks internals."""

import io

import pytest

from tests.helpers import create_item

PROBLEM_KEYS = {"type", "title", "status", "detail"}


def assert_problem(response, status):
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status
    return body


@pytest.mark.parametrize(
    "body", [b"{", b"", b"{'name': 'x'}", b'{"name": NaN}', b'{"name": "x"} trailing']
)
def test_malformed_json_is_400(client, body):
    response = client.post("/v1/items", data=body, content_type="application/json")
    assert "not valid JSON" in assert_problem(response, 400)["detail"]


@pytest.mark.parametrize("body", [b"\xff\xfe", b'{"name": "caf\xe9"}', b'{"name": "\xed\xa0\x80"}'])
def test_a_body_that_is_not_utf8_is_400_saying_so(client, sql, body):
    response = client.post("/v1/items", data=body, content_type="application/json")
    assert "is not valid UTF-8 (at byte" in assert_problem(response, 400)["detail"]
    assert sql.execute("SELECT count(*) AS n FROM items").fetchone()["n"] == 0


@pytest.mark.parametrize(
    ("method", "body", "member"),
    [
        ("POST", b'{"name": "a", "name": "b"}', "name"),
        ("POST", b'{"name": "a", "attributes": {"k": 1, "k": 2}}', "k"),
        ("PATCH", b'{"quantity": 1, "quantity": 2}', "quantity"),
    ],
)
def test_a_member_named_twice_is_400_and_changes_nothing(client, sql, method, body, member):
    item = create_item(client)
    path = "/v1/items" if method == "POST" else f"/v1/items/{item['id']}"
    response = client.open(path, method=method, data=body, content_type="application/json")
    detail = assert_problem(response, 400)["detail"]
    assert detail == f"the body names the member {member!r} twice in one object"
    assert sql.execute("SELECT count(*) AS n, max(version) AS v FROM items").fetchone() == {
        "n": 1,
        "v": 1,
    }


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/merge-patch+json"],
)
def test_wrong_content_type_on_post_is_415(client, content_type):
    kwargs = {"content_type": content_type} if content_type else {}
    response = client.post("/v1/items", data=b'{"name": "x"}', **kwargs)
    assert_problem(response, 415)


def test_wrong_content_type_on_patch_is_415_with_accept_patch(client):
    item = create_item(client)
    response = client.patch(f"/v1/items/{item['id']}", data=b"{}", content_type="text/plain")
    assert_problem(response, 415)
    assert response.headers["Accept-Patch"] == "application/merge-patch+json"


def test_json_with_charset_parameter_is_accepted(client):
    response = client.post(
        "/v1/items", data=b'{"name": "x"}', content_type="application/json; charset=utf-8"
    )
    assert response.status_code == 201


def test_body_over_the_limit_is_413_and_stores_nothing(client, sql):
    big = b'{"name": "x", "description": "' + b"d" * (1024 * 1024) + b'"}'
    assert_problem(client.post("/v1/items", data=big, content_type="application/json"), 413)
    assert sql.execute("SELECT count(*) AS n FROM items").fetchone()["n"] == 0


def test_a_chunked_body_is_read_and_one_over_the_limit_is_413_and_stores_nothing(
    app, sql, api_token
):
    """Granian hands a chunked body over with no CONTENT_LENGTH, which werkzeug reads as empty:
    admission control reads it first, whole, up to the limit."""
    client = app.test_client()
    chunked = {
        "Transfer-Encoding": "chunked",
        "Content-Type": "application/json",
        "Authorization": f"Bearer {api_token}",
    }
    small = client.post("/v1/items", input_stream=io.BytesIO(b'{"name": "c"}'), headers=chunked)
    assert small.status_code == 201
    big = io.BytesIO(b'{"name": "x", "description": "' + b"d" * (1024 * 1024) + b'"}')
    response = client.post("/v1/items", input_stream=big, headers=chunked)
    assert_problem(response, 413)
    assert response.get_json()["type"] == "urn:itemsapi:problem:body-too-large"
    assert sql.execute("SELECT count(*) AS n FROM items").fetchone()["n"] == 1


def test_body_limit_is_configurable(clean_db, api_token):
    from itemsapi.app import close_app, create_app

    small = create_app({"database_url": clean_db, "max_body_bytes": 2048})
    try:
        body = b'{"name": "' + b"n" * 3000 + b'"}'
        response = small.test_client().post(
            "/v1/items", data=body, content_type="application/json",
            headers={"Authorization": f"Bearer {api_token}"},
        )  # fmt: skip
        assert_problem(response, 413)
    finally:
        close_app(small)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("put", "/v1/items", "GET, HEAD, OPTIONS, POST"),
        ("delete", "/v1/items", "GET, HEAD, OPTIONS, POST"),
        ("post", "/v1/items/1", "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"),
        ("post", "/live", "GET, HEAD, OPTIONS"),
    ],
)
def test_wrong_method_is_405_with_allow(client, method, path, allow):
    response = getattr(client, method)(path)
    assert_problem(response, 405)
    assert response.headers["Allow"] == allow


def test_nul_in_strings_is_422_not_a_database_error(client):
    response = client.post("/v1/items", json={"name": "a\u0000b", "attributes": {"k": "\u0000"}})
    body = assert_problem(response, 422)
    assert {e["field"] for e in body["errors"]} == {"name", "attributes.k"}


def test_huge_numbers_never_reach_the_database(client):
    response = client.post(
        "/v1/items",
        data=b'{"name": "x", "quantity": 1' + b"0" * 40 + b"}",
        content_type="application/json",
    )
    assert response.status_code in (400, 422)
    assert response.mimetype == "application/problem+json"


def test_request_id_is_echoed_when_sane_and_generated_otherwise(client):
    sane = "abc-123_X.y:z"
    assert client.get("/live", headers={"X-Request-ID": sane}).headers["X-Request-ID"] == sane
    for insane in ("", "has space", "x" * 129, "semi;colon", "ünï"):
        generated = client.get("/live", headers={"X-Request-ID": insane}).headers["X-Request-ID"]
        assert generated != insane
        assert len(generated) == 32
    problem = client.get("/v1/items/0")
    assert problem.headers["X-Request-ID"]


def test_unexpected_errors_are_a_bare_500_logged_with_the_request_id(app, client, caplog):
    @app.get("/boom")
    def boom():
        raise RuntimeError("SELECT secret FROM internals")

    response = client.get("/boom", headers={"X-Request-ID": "trace-1"})
    body = assert_problem(response, 500)
    assert "SELECT" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    assert body["detail"] == "an internal error occurred; it has been logged"
    records = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert records
    assert records[0].request_id == "trace-1"
    assert records[0].exc_info is not None

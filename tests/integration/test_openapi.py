"""GET /openapi.json: a valid OpenAPI 3.1 document that describes this app, all of it."""

from __future__ import annotations

import re
from decimal import Decimal

import jsonschema
import psycopg
import pytest
from openapi_spec_validator import validate

from itemsapi.app import services_of
from itemsapi.auth.scopes import SCOPES, Policy
from tests.helpers import create_key

UNDOCUMENTED = {"/docs", "/docs/static/<path:filename>", "/static/<path:filename>"}


def test_document_is_valid_openapi_3_1(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_route_and_method_is_documented(app, client):
    paths = client.get("/openapi.json").get_json()["paths"]
    for rule in app.url_map.iter_rules():
        if rule.rule in UNDOCUMENTED:
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        assert path in paths, path
        methods = {m.lower() for m in rule.methods} - {"head", "options"}
        assert methods <= set(paths[path]), (path, methods)


def test_each_operation_lists_the_statuses_it_can_return(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    expected = {
        ("/items", "post"): {"201", "400", "401", "403", "409", "413", "415", "422", "500", "503"},
        ("/items", "get"): {"200", "400", "401", "403", "500", "503"},
        ("/items/{item_id}", "get"): {"200", "304", "400", "401", "403", "404", "500", "503"},
        ("/items/{item_id}", "put"): {"200", "204", "400", "401", "403", "404", "409", "412", "413",
                                      "415", "422", "500", "503"},
        ("/items/{item_id}", "patch"): {"200", "204", "400", "401", "403", "404", "409", "412",
                                        "413", "415", "422", "500", "503"},
        ("/items/{item_id}", "delete"): {"204", "400", "401", "403", "404", "412", "500",
                                         "503"},
        ("/v1/items/export", "get"): {"200", "400", "401", "403", "406", "500", "503"},
        ("/v1/items/import", "post"): {"200", "400", "401", "403", "411", "413", "415", "422",
                                       "500", "503"},
        ("/ready", "get"): {"200", "503"},
        ("/health", "get"): {"200", "503"},
    }  # fmt: skip
    for (path, method), statuses in expected.items():
        assert set(paths[path][method]["responses"]) == statuses, (path, method)
        if path.startswith("/items"):  # the same operation, under /v1
            assert set(paths["/v1" + path][method]["responses"]) == statuses, (path, method)


def test_problem_405_and_headers_are_described(client):
    document = client.get("/openapi.json").get_json()
    components = document["components"]
    assert set(components["responses"]["MethodNotAllowed"]["headers"]) >= {"Allow"}
    assert {"ETag", "Location", "Link", "Retry-After", "X-Request-ID"} <= set(components["headers"])
    item_get = document["paths"]["/items/{item_id}"]["get"]
    assert {p["name"] for p in item_get["parameters"]} == {"If-None-Match", "fields"}
    put = document["paths"]["/items/{item_id}"]["put"]
    assert {p["name"] for p in put["parameters"]} == {"If-Match", "Prefer"}
    created = document["paths"]["/items"]["post"]["responses"]["201"]
    assert set(created["links"]) == {"GetItem", "ReplaceItem", "PatchItem", "DeleteItem"}


def test_request_schemas_are_the_validating_models(client):
    """One source of truth: the published body schemas are the pydantic models' own."""
    from pydantic.json_schema import models_json_schema

    from itemsapi.web.schemas import ItemPatch, ItemWrite

    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    _, generated = models_json_schema(
        [(ItemWrite, "validation"), (ItemPatch, "validation")],
        ref_template="#/components/schemas/{model}",
    )
    for name in ("ItemWrite", "ItemPatch"):
        published, model = schemas[name], generated["$defs"][name]
        assert published.get("required") == model.get("required"), name
        assert published["additionalProperties"] is False, name
        assert set(published["properties"]) == set(model["properties"]), name
        for field, schema in model["properties"].items():
            if field != "attributes":  # published as a reference to the Attributes component
                assert published["properties"][field] == schema, (name, field)


def _multiple_of_as_written(validator, step, instance, schema):
    # multipleOf decided on the decimal numbers as written (19.99 is a multiple of 0.01), as the
    # API decides it; jsonschema divides binary floats.
    if validator.is_type(instance, "number") and Decimal(str(instance)) % Decimal(str(step)):
        yield jsonschema.ValidationError(f"{instance} is not a multiple of {step}")


Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"multipleOf": _multiple_of_as_written}
)


def _validator(document: dict, schema: dict):
    # The schema is checked inside the document, so that its references resolve.
    return Validator({**document, **schema})


def _documented_examples(document: dict):
    for path, path_item in document["paths"].items():
        for method, operation in path_item.items():
            if method == "parameters":
                continue
            bodies = operation.get("requestBody", {}).get("content", {})
            for media_type, content in bodies.items():
                yield f"{method} {path} body {media_type}", content
            for status, response in operation["responses"].items():
                for media_type, content in response.get("content", {}).items():
                    yield f"{method} {path} {status} {media_type}", content
    for name, response in document["components"]["responses"].items():
        for media_type, content in response["content"].items():
            yield f"{name} {media_type}", content


def test_every_example_fits_its_schema(client):
    document = client.get("/openapi.json").get_json()
    checked = 0
    for where, content in _documented_examples(document):
        if "example" in content:
            errors = list(_validator(document, content["schema"]).iter_errors(content["example"]))
            assert not errors, (where, [e.message for e in errors])
            checked += 1
    assert checked >= 20


def _published(document: dict, path: str, status: str) -> dict:
    response = document["paths"][path]["get"]["responses"][status]
    if "$ref" in response:
        response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    (content,) = response["content"].values()
    return content["schema"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/live", "200"),
        ("/ready", "200"),
        ("/health", "200"),
        ("/items", "200"),
        ("/items?limit=0", "400"),
        ("/items/42", "404"),
    ],
)
def test_bodies_sent_fit_the_published_schema(client, path, status):
    document = client.get("/openapi.json").get_json()
    response = client.get(path)
    assert str(response.status_code) == status
    schema = _published(document, path.partition("?")[0].replace("/42", "/{item_id}"), status)
    errors = list(_validator(document, schema).iter_errors(response.get_json()))
    assert not errors, [e.message for e in errors]


def test_a_problem_lists_errors_only_when_there_are_some(client):
    not_found = client.get("/items/42").get_json()
    assert set(not_found) == {"type", "title", "status", "detail"}
    invalid = client.post("/items", json={"price": -1}).get_json()
    assert {e["field"] for e in invalid["errors"]} == {"name", "price"}


def test_the_bearer_schemes_are_declared(client):
    document = client.get("/openapi.json").get_json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "http", "scheme": "bearer"}
    assert schemes["openIdConnect"]["bearerFormat"] == "JWT"
    assert "WWW-Authenticate" in document["components"]["responses"]["Unauthorized"]["headers"]


def _operations(app, document):
    """(endpoint, method, path, operation) of every documented route and method."""
    for rule in app.url_map.iter_rules():
        if rule.rule in UNDOCUMENTED:
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, method, path, document["paths"][path][method.lower()]


def _declared_scope(operation) -> str | None:
    if "security" not in operation:
        return None
    ((scope,),) = {tuple(scopes) for option in operation["security"] for scopes in option.values()}
    return scope


def test_every_operation_declares_the_scope_it_is_enforced_with(app, client, clean_db):
    """Issue 28: POST /cache/clear needed admin while the document declared no security and no
    401 or 403. Each route's declared scope is the policy's (the default settings), and each is
    then enforced as declared: no token is 401 exactly where a scope is declared, and a key of
    each scope is 403 exactly where it is not the declared one."""
    document = client.get("/openapi.json").get_json()
    policy = Policy(services_of(app).settings)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        keys = {scope: create_key(conn, scope, [scope])[1] for scope in SCOPES}
    checked = 0
    for endpoint, method, path, operation in _operations(app, document):
        scope = _declared_scope(operation)
        assert scope == policy.required(endpoint, method), (method, path)
        if scope is not None:
            assert operation["security"] == [{"apiKey": [scope]}, {"openIdConnect": [scope]}]
        assert ({"401", "403"} <= set(operation["responses"])) == (scope is not None), path
        url = path.replace("{item_id}", "1")
        anonymous = app.test_client().open(url, method=method).status_code
        assert (anonymous == 401) == (scope is not None), (method, path, anonymous)
        for held, token in keys.items():
            status = (
                app.test_client()
                .open(url, method=method, headers={"Authorization": f"Bearer {token}"})
                .status_code
            )
            assert status not in (401, 503), (method, path, held, status)
            assert (status == 403) == (scope not in (None, held)), (method, path, held, status)
        checked += 1
    assert checked >= 15

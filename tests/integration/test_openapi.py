"""GET /openapi.json: a valid OpenAPI 3.1 document that describes this app, all of it."""

from __future__ import annotations

import re
from decimal import Decimal

import jsonschema
import pytest
from openapi_spec_validator import validate

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
        ("/items/{item_id}", "put"): {"200", "400", "401", "403", "404", "409", "412", "413",
                                      "415", "422", "500", "503"},
        ("/items/{item_id}", "patch"): {"200", "400", "401", "403", "404", "409", "412", "413",
                                        "415", "422", "500", "503"},
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
    assert {p["name"] for p in item_get["parameters"]} == {"If-None-Match"}
    put = document["paths"]["/items/{item_id}"]["put"]
    assert {p["name"] for p in put["parameters"]} == {"If-Match"}
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


def test_item_operations_declare_the_bearer_schemes_and_their_scope(client):
    document = client.get("/openapi.json").get_json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "http", "scheme": "bearer"}
    assert schemes["openIdConnect"]["bearerFormat"] == "JWT"
    for path, path_item in document["paths"].items():
        for method, operation in path_item.items():
            if method == "parameters":
                continue
            if "items" in path:
                scope = "read" if method == "get" else "write"
                assert operation["security"] == [{"apiKey": [scope]}, {"openIdConnect": [scope]}]
            else:  # probes, index, metrics, this document: open (by default)
                assert "security" not in operation, (path, method)
    assert "WWW-Authenticate" in document["components"]["responses"]["Unauthorized"]["headers"]

"""GET /openapi.json: a valid OpenAPI 3.1 document that describes this app, all of it."""

from __future__ import annotations

import re

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
        ("/items", "post"): {"201", "400", "409", "413", "415", "422", "500", "503"},
        ("/items", "get"): {"200", "400", "500", "503"},
        ("/items/{item_id}", "get"): {"200", "304", "404", "500", "503"},
        ("/items/{item_id}", "put"): {"200", "400", "404", "409", "412", "413", "415", "422",
                                      "500", "503"},
        ("/items/{item_id}", "patch"): {"200", "400", "404", "409", "412", "413", "415", "422",
                                        "500", "503"},
        ("/items/{item_id}", "delete"): {"204", "404", "412", "500", "503"},
        ("/ready", "get"): {"200", "503"},
        ("/health", "get"): {"200", "503"},
    }  # fmt: skip
    for (path, method), statuses in expected.items():
        assert set(paths[path][method]["responses"]) == statuses, (path, method)


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

    from itemsapi.schemas import ItemPatch, ItemWrite

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

"""requests.http, the hand-testing collection, replayed against the live server."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import HttpResponse, http

pytestmark = pytest.mark.e2e

COLLECTION = Path(__file__).resolve().parents[2] / "requests.http"
REFERENCE = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")


@dataclass
class Request:
    title: str
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    name: str | None = None
    expect: int | None = None


def parse(text: str) -> tuple[dict[str, str], list[Request]]:
    """The REST Client format this file uses: @variables, ### blocks, # @name, # @expect."""
    variables: dict[str, str] = {}
    requests: list[Request] = []
    for index, block in enumerate(re.split(r"^###", text, flags=re.M)):
        lines = block.splitlines()
        title = lines[0].strip() if index else ""
        meta: dict[str, str] = {}
        rest: list[str] = []
        for line in lines[1:] if index else lines:
            if match := re.match(r"^@(\w+)\s*=\s*(.*)$", line):
                variables[match[1]] = match[2].strip()
            elif match := re.match(r"^#\s*@(\w+)\s+(.*)$", line):
                meta[match[1]] = match[2].strip()
            elif not line.startswith("#") and (rest or line.strip()):
                rest.append(line)
        if not rest:
            continue
        method, url = rest[0].split()[:2]
        request = Request(title, method, url, name=meta.get("name"),
                          expect=int(meta["expect"]) if "expect" in meta else None)  # fmt: skip
        body_start = len(rest)
        for position, line in enumerate(rest[1:], start=1):
            if not line.strip():
                body_start = position + 1
                break
            header, _, value = line.partition(":")
            request.headers[header.strip()] = value.strip()
        request.body = "\n".join(rest[body_start:]).strip()
        requests.append(request)
    return variables, requests


def resolve(text: str, variables: dict[str, str], named: dict[str, HttpResponse]) -> str:
    def value(match: re.Match) -> str:
        reference = match[1]
        if reference in variables:
            return variables[reference]
        name, _, path = reference.partition(".response.")
        response = named[name]
        if path.startswith("headers."):
            return response.headers[path.removeprefix("headers.").lower()]
        found = response.json()
        for key in path.removeprefix("body.$.").split("."):
            found = found[key]
        return str(found)

    return REFERENCE.sub(value, text)


def test_collection_covers_every_documented_operation():
    from itemsapi.web.openapi import document

    def template(
        path: str,
    ) -> str:  # "/v1/items/{item_id}" and "/v1/items/{{create...}}" -> "/v1/items/{}"
        return re.sub(r"\{\{[^}]+\}\}|\{[^}]+\}", "{}", path)

    _, requests = parse(COLLECTION.read_text())
    covered = {
        (r.method.lower(), template(r.url.removeprefix("{{base}}").split("?")[0])) for r in requests
    }
    documented = {
        (method, template(path))
        for path, operations in document()["paths"].items()
        for method, operation in operations.items()
        if method != "parameters" and not operation.get("deprecated")
    }
    assert documented <= covered, documented - covered


def test_every_request_gets_its_expected_status(start_server, clean_db):
    server = start_server(clean_db)
    variables, requests = parse(COLLECTION.read_text())
    variables["base"] = server.url
    variables["token"] = server.token
    named: dict[str, HttpResponse] = {}
    assert len(requests) >= 15
    for request in requests:
        url = resolve(request.url, variables, named)
        headers = {k: resolve(v, variables, named) for k, v in request.headers.items()}
        body = resolve(request.body, variables, named).encode() if request.body else None
        if body is not None:
            json.loads(body)  # every body in the collection is valid JSON
        headers.setdefault("Authorization", None)  # only what the collection sends
        response = http(request.method, url, body, headers)
        assert response.status == request.expect, (request.title, response.status, response.body)
        if request.name:
            named[request.name] = response
    # The tokens went to the server, never into its log.
    assert server.token
    secret = server.token.split("_", 2)[2]
    assert not [line for line in server.log_lines() if secret in line]

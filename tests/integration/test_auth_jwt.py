"""OpenID Connect mode (ITEMSAPI_AUTH=jwt) against a JWKS served on 127.0.0.1 with keys made by
the test: valid tokens by scope, and every forgery or mismatch refused with 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask, request
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from itemsapi.web.context import of

ISSUER = "https://issuer.test/realms/main"
AUDIENCE = "itemsapi"
REFRESH_SECONDS = 0.5
HANG_SECONDS = 10.0  # how long a hanging JWKS endpoint holds a fetch at most
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def public_jwk(kid: str, key: Any) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}
    return {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig",
            "alg": "ES256"}  # fmt: skip


class Issuer:
    """The JWKS endpoint: the keys it publishes can change, and so can its `answer`: "json"
    (the keys), "html" (200 with a web page), "error" (500) or "hang" (no answer until
    `release` is set, at most HANG_SECONDS). It counts the fetches."""

    def __init__(self) -> None:
        self.keys = [public_jwk("rsa-1", RSA_KEY), public_jwk("ec-1", EC_KEY)]
        self.answer = "json"
        self.release = threading.Event()
        self.fetches = 0
        counting = threading.Lock()
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with counting:
                    issuer.fetches += 1
                answer = issuer.answer
                if answer == "hang":
                    issuer.release.wait(HANG_SECONDS)
                    return  # the connection closes with no response
                body, status, kind = b"<html><body>Sign in</body></html>", 200, "text/html"
                if answer == "error":
                    status = 500
                elif answer == "json":
                    body, kind = json.dumps({"keys": issuer.keys}).encode(), "application/json"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-42", "iat": now, "exp": now + 300,
            "scope": "read write", **changes}  # fmt: skip


def sign(key: Any = RSA_KEY, kid: str = "rsa-1", algorithm: str = "RS256", **changes: Any) -> str:
    return jwt.encode(claims(**changes), key, algorithm=algorithm, headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], secret: bytes | None = None) -> str:
    """A token assembled by hand: no signature (alg none) or an HMAC keyed with `secret`."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}"
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


HEADER_TEXT = json.dumps({"alg": "RS256", "kid": "rsa-1", "typ": "JWT"})
PAYLOAD_TEXT = json.dumps(
    {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-42", "exp": 4102444800, "scope": "read"}
)


def raw_signed(header_text: str, payload_text: str) -> str:
    """A token whose JSON text is exactly as given, validly signed with the issuer's RSA key."""
    signing_input = f"{b64(header_text.encode())}.{b64(payload_text.encode())}"
    signature = RSAAlgorithm(RSAAlgorithm.SHA256).sign(signing_input.encode(), RSA_KEY)
    return f"{signing_input}.{b64(signature)}"


def test_a_token_signed_from_its_json_text_passes(jwt_app):
    # The control of the duplicated-member cases: the same construction without a duplicate.
    assert get(jwt_app, raw_signed(HEADER_TEXT, PAYLOAD_TEXT)).status_code == 200


def get(app: Flask, token: str, path: str = "/v1/items"):
    return app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})


def test_valid_tokens_pass_by_their_scopes(jwt_app):
    client = jwt_app.test_client()
    reader = sign(scope="read")
    assert get(jwt_app, reader).status_code == 200
    assert get(jwt_app, sign(EC_KEY, "ec-1", "ES256")).status_code == 200
    created = client.post("/v1/items", json={"name": "x"},
                          headers={"Authorization": f"Bearer {sign()}"})  # fmt: skip
    assert created.status_code == 201
    refused = client.post("/v1/items", json={"name": "x"},
                          headers={"Authorization": f"Bearer {reader}"})  # fmt: skip
    assert refused.status_code == 403
    assert refused.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope", scope="write"'
    assert get(jwt_app, sign(scope=["read"])).status_code == 200  # a list, as some issuers send


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: sign(exp=int(time.time()) - 3600), id="expired"),
        pytest.param(lambda: sign(nbf=int(time.time()) + 3600), id="not-yet-valid"),
        pytest.param(lambda: sign(aud="another-api"), id="wrong-audience"),
        pytest.param(lambda: sign(iss="https://evil.test"), id="wrong-issuer"),
        pytest.param(lambda: sign(sub=None), id="no-subject"),
        pytest.param(lambda: sign(RSA_KEY, "ec-1"), id="key-of-another-kid"),
        pytest.param(
            lambda: unsigned({"alg": "none", "kid": "rsa-1", "typ": "JWT"}), id="alg-none"
        ),
        pytest.param(
            lambda: unsigned(
                {"alg": "HS256", "kid": "rsa-1", "typ": "JWT"},
                RSA_KEY.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
            ),
            id="hs256-with-the-public-key-as-secret",
        ),
        pytest.param(lambda: "not.a.jwt", id="garbage"),
        # PyJWT takes a NumericDate through int(), so a string of digits would pass.
        pytest.param(lambda: sign(exp=str(int(time.time()) + 300)), id="exp-a-string"),
        pytest.param(lambda: sign(nbf=str(int(time.time()) - 60)), id="nbf-a-string"),
        pytest.param(lambda: sign(iat=str(int(time.time()))), id="iat-a-string"),
        # Signed as they are: only the duplicated member name is wrong with them.
        pytest.param(
            lambda: raw_signed(HEADER_TEXT, PAYLOAD_TEXT[:-1] + ', "sub": "admin"}'),
            id="payload-member-twice",
        ),
        pytest.param(
            lambda: raw_signed(HEADER_TEXT[:-1] + ', "kid": "rsa-1"}', PAYLOAD_TEXT),
            id="header-member-twice",
        ),
        pytest.param(
            lambda: raw_signed(HEADER_TEXT, PAYLOAD_TEXT[:-1] + ', "x": {"a": 1, "a": 2}}'),
            id="nested-member-twice",
        ),
    ],
)
def test_invalid_tokens_are_401_invalid_token(jwt_app, token):
    response = get(jwt_app, token())
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert response.get_json()["type"] == "urn:itemsapi:problem:unauthorized"


def test_an_unknown_kid_refetches_the_jwks_at_a_bounded_rate(jwt_app, issuer):
    assert get(jwt_app, sign()).status_code == 200
    assert issuer.fetches == 1
    time.sleep(REFRESH_SECONDS + 0.1)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert get(jwt_app, sign(stranger, "rsa-unknown")).status_code == 401
    assert issuer.fetches == 2  # refreshed once, still unknown: 401
    for _ in range(5):
        assert get(jwt_app, sign(stranger, "rsa-unknown-2")).status_code == 401
    assert issuer.fetches == 2  # no more fetches within the refresh interval

    issuer.keys.append(public_jwk("rsa-2", stranger))  # the issuer rotates in a new key
    time.sleep(REFRESH_SECONDS + 0.1)
    assert get(jwt_app, sign(stranger, "rsa-2")).status_code == 200
    assert issuer.fetches == 3


def test_jwt_mode_names_the_subject_for_the_access_line(jwt_app):
    seen = []

    @jwt_app.after_request
    def note(response):
        seen.append(of(request.environ).principal)
        return response

    assert get(jwt_app, sign()).status_code == 200
    assert seen == ["user-42"]

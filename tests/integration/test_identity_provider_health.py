"""/health reports the identity provider's key set in JWT mode (issue 28, item 3): ok, stale
(kept through the provider's failure, tokens still verify: 200), unavailable (no set at all: no
token can be checked, 503), off in key mode. The probe also starts a fetch that is due, so an
idle server gets its set without a token asking."""

from __future__ import annotations

import time

from tests.helpers import wait_until
from tests.integration.test_auth_jwt import REFRESH_SECONDS, get, sign


def provider(response) -> dict:
    return response.get_json()["checks"]["identity_provider"]


def test_key_mode_reports_the_provider_off(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert provider(response) == {
        "status": "off",
        "key_set_age_seconds": None,
        "last_outcome": None,
        "consecutive_failures": 0,
    }


def test_without_a_key_set_health_is_503_and_fetches_it(jwt_app, issuer):
    client = jwt_app.test_client()
    first = client.get("/health")  # no token has asked yet: no set
    assert first.status_code == 503
    assert first.headers["Retry-After"]
    assert first.get_json()["status"] == "unavailable"
    assert first.get_json()["checks"]["database"]["status"] == "ok"
    assert provider(first)["status"] == "unavailable"
    assert provider(first)["key_set_age_seconds"] is None
    # That probe started the fetch: the set arrives without any token.
    wait_until(lambda: client.get("/health").status_code == 200, 5, "the key set")
    report = provider(client.get("/health"))
    assert report["status"] == "ok"
    assert report["last_outcome"] == "ok"
    assert report["consecutive_failures"] == 0
    assert 0 <= report["key_set_age_seconds"] < 5
    assert issuer.fetches == 1


def test_a_provider_answering_html_from_the_start_is_503_naming_the_outcome(
    jwt_app,
    issuer,
):
    issuer.answer = "html"
    client = jwt_app.test_client()
    client.get("/health")
    wait_until(lambda: provider(client.get("/health"))["last_outcome"] is not None, 5, "a fetch")
    response = client.get("/health")
    assert response.status_code == 503
    assert provider(response) == {
        "status": "unavailable",
        "key_set_age_seconds": None,
        "last_outcome": "malformed",
        "consecutive_failures": 1,
    }


def test_a_failing_provider_after_a_good_set_is_stale_and_health_stays_200(
    jwt_app,
    issuer,
):
    client = jwt_app.test_client()
    assert get(jwt_app, sign()).status_code == 200  # the set fetched for a token
    issuer.answer = "error"
    time.sleep(REFRESH_SECONDS + 0.1)
    get(jwt_app, sign(kid="rsa-rotated"))  # a key id the set lacks: one fetch, which fails
    wait_until(lambda: provider(client.get("/health"))["status"] == "stale", 5, "stale")
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"
    report = provider(response)
    assert report["last_outcome"] == "http_error"
    assert report["consecutive_failures"] >= 1
    assert report["key_set_age_seconds"] >= REFRESH_SECONDS
    assert get(jwt_app, sign()).status_code == 200  # the stale set still verifies

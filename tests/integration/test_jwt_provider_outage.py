"""JWT mode while the identity provider fails (issue 28, item 3): a JWKS endpoint that answers
HTML, answers 500 or hangs, and then recovers. The key set (auth/jwks.py) directly, with short
intervals, and through the app for the HTTP answers."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import REGISTRY

from itemsapi.auth.jwks import Jwks
from itemsapi.errors import IdentityProviderUnavailable, Unauthorized
from tests.helpers import wait_until
from tests.integration.test_auth_jwt import (
    EC_KEY,
    REFRESH_SECONDS,
    get,
    public_jwk,
    sign,
)

FORGED = 200  # the probe's count of anonymous requests with forged key ids


def outcome(jwks: Jwks, kid: str) -> type | str:
    """What looking `kid` up gives: the key's id, or the class of the error raised."""
    try:
        return jwks.key(kid).key_id
    except (IdentityProviderUnavailable, Unauthorized) as exc:
        return type(exc)


def fetches(outcome_label: str) -> float:
    value = REGISTRY.get_sample_value("itemsapi_jwks_fetches_total", {"outcome": outcome_label})
    return value or 0.0


def test_an_html_answer_is_unavailable_counted_and_recovered_from(issuer):
    issuer.answer = "html"
    malformed = fetches("malformed")
    jwks = Jwks(issuer.url, 0.2, timeout=2.0, wait=0.5)
    with pytest.raises(IdentityProviderUnavailable) as raised:
        jwks.key("rsa-1")
    assert raised.value.retry_after >= 1
    assert (issuer.fetches, fetches("malformed")) == (1, malformed + 1)
    issuer.answer = "json"
    wait_until(lambda: outcome(jwks, "rsa-1") == "rsa-1", 5, "the key set once it recovers")


def test_the_last_good_set_serves_through_an_outage_past_its_lifespan(issuer):
    jwks = Jwks(issuer.url, 0.2, timeout=2.0, wait=0.5, lifespan=0.2)
    assert outcome(jwks, "rsa-1") == "rsa-1"
    issuer.answer = "error"
    deadline = time.monotonic() + 10
    while issuer.fetches < 3:  # two failed refreshes of an expired set, at least
        assert outcome(jwks, "rsa-1") == "rsa-1"
        assert time.monotonic() < deadline, "no refresh was attempted"
        time.sleep(0.05)
    # Recovery with a rotation: the new set replaces the one kept through the outage.
    issuer.keys = [public_jwk("ec-1", EC_KEY)]
    issuer.answer = "json"
    wait_until(lambda: outcome(jwks, "rsa-1") is Unauthorized, 5, "the rotated set")
    assert outcome(jwks, "ec-1") == "ec-1"


def test_forged_kids_during_an_outage_fetch_once_per_backoff_interval(issuer):
    jwks = Jwks(issuer.url, 1.0, timeout=2.0, wait=0.5)
    assert outcome(jwks, "rsa-1") == "rsa-1"
    issuer.answer = "error"
    time.sleep(1.05)  # past the refresh interval: an unknown kid may fetch again

    def burst() -> set:
        with ThreadPoolExecutor(8) as pool:
            return set(pool.map(lambda i: outcome(jwks, f"forged-{i}"), range(FORGED)))

    assert burst() == {IdentityProviderUnavailable}
    assert issuer.fetches == 2  # one failed fetch, however many forged kids
    assert outcome(jwks, "rsa-1") == "rsa-1"  # the last good set still serves
    time.sleep(1.05)  # past the first backoff (one refresh interval)
    assert burst() == {IdentityProviderUnavailable}
    assert issuer.fetches == 3


def test_a_hanging_jwks_holds_each_request_only_for_its_wait(issuer):
    issuer.answer = "hang"
    jwks = Jwks(issuer.url, 0.2, timeout=3.0, wait=0.3)
    with ThreadPoolExecutor(8) as pool:
        looked_up = [pool.submit(outcome, jwks, "rsa-1") for _ in range(16)]
        # Queued one behind another for the fetch's 3 s, these would not all be done in time.
        answers = {future.result(timeout=2.5) for future in looked_up}
    assert answers == {IdentityProviderUnavailable}
    assert issuer.fetches == 1  # one fetch at a time
    issuer.answer = "json"
    issuer.release.set()
    wait_until(lambda: outcome(jwks, "rsa-1") == "rsa-1", 10, "the key set once it answers")


@pytest.mark.parametrize("answer", ["html", "error"])
def test_with_no_key_set_a_valid_token_is_503_with_retry_after(jwt_app, issuer, answer):
    issuer.answer = answer
    response = get(jwt_app, sign())
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert response.get_json()["type"] == "urn:itemsapi:problem:identity-provider-unavailable"


def test_during_an_outage_valid_tokens_pass_and_unknown_kids_are_503(jwt_app, issuer):
    assert get(jwt_app, sign()).status_code == 200
    issuer.answer = "error"
    time.sleep(REFRESH_SECONDS + 0.1)
    forged = sign(kid="rsa-forged")
    assert get(jwt_app, forged).status_code == 503  # it may be a key rotated in meanwhile
    assert get(jwt_app, sign()).status_code == 200
    issuer.answer = "json"
    wait_until(lambda: get(jwt_app, forged).status_code == 401, 10, "the issuer's recovery")


def test_a_hanging_jwks_answers_concurrent_requests_503_without_queueing(jwt_app, issuer):
    issuer.answer = "hang"
    with ThreadPoolExecutor(4) as pool:
        sent = [pool.submit(lambda: get(jwt_app, sign()).status_code) for _ in range(4)]
        # Each waits at most about 1 s for the fetch, which itself may take 3 s.
        statuses = [future.result(timeout=2.5) for future in sent]
    assert statuses == [503] * 4
    assert issuer.fetches == 1

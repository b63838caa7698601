"""JWT mode on the real server (Granian, two workers) while its identity provider fails: a JWKS
endpoint that hangs, answers HTML, answers 500, and recovers (issue 28, item 3)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import http, wait_until
from tests.integration.test_auth_jwt import AUDIENCE, ISSUER, Issuer, sign

pytestmark = pytest.mark.e2e

CLIENTS = 16
# The refresh interval, which is also the first backoff: long enough for a burst of forged key
# ids to end within it.
REFRESH_SECONDS = 3.0


def statuses(url: str, tokens: list[str]) -> list[tuple[int, str | None]]:
    """Each token sent once, eight at a time: (status, Retry-After) of each answer."""

    def send(token: str) -> tuple[int, str | None]:
        response = http("GET", url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        return response.status, response.headers.get("retry-after")

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(send, tokens))


@pytest.fixture
def issuer():
    issuer = Issuer()
    yield issuer
    issuer.release.set()
    issuer.server.shutdown()
    issuer.server.server_close()


def test_a_failing_identity_provider_gets_503s_then_the_last_good_key_set(
    start_server, clean_db, issuer
):
    issuer.answer = "hang"
    server = start_server(
        clean_db, "--workers", "2", ITEMSAPI_AUTH="jwt", ITEMSAPI_JWT_ISSUER=ISSUER,
        ITEMSAPI_JWT_AUDIENCE=AUDIENCE, ITEMSAPI_JWT_JWKS_URL=issuer.url,
        ITEMSAPI_JWT_JWKS_REFRESH_SECONDS=str(REFRESH_SECONDS),
    )  # fmt: skip
    items = f"{server.url}/v1/items"

    # Hanging, with no key set yet: every client answered 503 within its 10 s timeout, which
    # fetches run one after another would exceed, and at most one fetch per worker.
    answers = statuses(items, [sign() for _ in range(CLIENTS)])
    assert {status for status, _ in answers} == {503}
    assert all(retry_after and int(retry_after) >= 1 for _, retry_after in answers)
    assert issuer.fetches <= 2

    # A web page where the key set should be: 503, never 500.
    issuer.answer = "html"
    switched = issuer.fetches
    issuer.release.set()

    def fetched_html() -> bool:
        assert statuses(items, [sign()])[0][0] == 503
        return issuer.fetches > switched

    wait_until(fetched_html, 30, "a fetch of the HTML answer")
    assert {status for status, _ in statuses(items, [sign() for _ in range(CLIENTS)])} == {503}

    issuer.answer = "json"
    wait_until(
        lambda: {s for s, _ in statuses(items, [sign() for _ in range(CLIENTS)])} == {200},
        90, "both workers' recovery",
    )  # fmt: skip

    # Failing (500): valid tokens pass on the last good set; forged key ids are 503 and cost at
    # most one fetch per worker within the backoff.
    issuer.answer = "error"
    time.sleep(REFRESH_SECONDS + 0.2)  # past the refresh interval: unknown kids may fetch
    before = issuer.fetches
    forged = statuses(items, [sign(kid=f"forged-{i}") for i in range(200)])
    assert {status for status, _ in forged} == {503}
    assert issuer.fetches - before <= 2
    assert {status for status, _ in statuses(items, [sign() for _ in range(CLIENTS)])} == {200}

    metrics = http(
        "GET", f"{server.url}/metrics", headers={"Authorization": f"Bearer {sign(scope='admin')}"}
    ).body.decode()
    for outcome in ("ok", "malformed", "http_error"):
        assert f'itemsapi_jwks_fetches_total{{outcome="{outcome}"}}' in metrics, outcome
    # The hanging fetches ended by their timeout or by the release, whichever came first.
    assert 'outcome="timeout"' in metrics or 'outcome="connection"' in metrics

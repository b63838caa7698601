"""The production proxy (compose.prod.yaml's nginx, deploy/nginx/nginx.conf as it is) in front of
a real 2-worker `itemsapi serve`: what it adds that the bare server cannot do (docs/operations.md,
"Overload"). A body that does not arrive is cut off after `client_body_timeout` without the API
ever seeing the request; a body over the limit, declared or chunked, gets 413 unread; a client
address gets 429 past its rate; meanwhile the probes and other clients are served."""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest

from tests.deploy.conftest import NGINX_CONF
from tests.e2e.proxy import Nginx, client_address, connect, request
from tests.e2e.test_overload import LIVE_BOUND, port_of
from tests.helpers import item_payload

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BODY_TIMEOUT = float(re.search(r"client_body_timeout (\d+)s;", NGINX_CONF.read_text())[1])
STALLED = 200
RESET = -1  # a stalled connection's end: reset rather than closed


@pytest.fixture
def proxied(cluster, start_server, tmp_path):
    server = start_server(cluster.url, "--workers", "2")
    nginx = Nginx(tmp_path / "nginx", port_of(server)).start()
    yield server, nginx
    nginx.stop()


def api_posts(server) -> int:
    """POST requests the API itself answered, from its access lines."""
    lines = (json.loads(line) for line in server.log_lines() if line.startswith("{"))
    return sum(1 for line in lines if line.get("method") == "POST" and "status" in line)


def head(token: str, length: int | None = None) -> str:
    lines = f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
    return lines + (f"Content-Length: {length}\r\n" if length is not None else "")


def test_bodies_that_never_arrive_are_cut_off_by_the_proxy_and_never_reach_the_api(proxied):
    server, nginx = proxied
    token = server.bearer()
    payload = json.dumps(item_payload()).encode()

    async def stall(n: int) -> tuple[float, asyncio.StreamReader, asyncio.StreamWriter]:
        # Each from an address of its own: nginx allows 20 connections per client address.
        for attempt in range(3):
            try:
                reader, writer = await connect(nginx.tls_port, client_address(n))
                break
            except ConnectionResetError:
                # 200 TLS handshakes at once on a starved machine: one reset now and then is
                # the handshake's, not what this test is about; a third in a row fails it.
                if attempt == 2:
                    raise
        lines = f"POST /v1/items HTTP/1.1\r\nHost: localhost\r\n{head(token, 100)}\r\n"
        writer.write(lines.encode() + b'{"na')
        await writer.drain()
        return time.monotonic(), reader, writer

    async def ending(sent: float, reader: asyncio.StreamReader, writer) -> tuple[int, float]:
        """What the proxy did with a stalled request (0: closed it unanswered; RESET: the
        connection was reset, or broke under the TLS layer's own write), and when."""
        try:
            raw = await asyncio.wait_for(reader.read(), BODY_TIMEOUT + 20)
        except ConnectionError:
            return RESET, time.monotonic() - sent
        finally:
            writer.close()
        status = int(raw.split()[1]) if raw.startswith(b"HTTP/") else 0
        return status, time.monotonic() - sent

    async def scenario():
        stalled = await asyncio.gather(*(stall(n) for n in range(STALLED)))
        # Each stalled connection read from now on, so that its end is timed when it comes.
        endings = [asyncio.ensure_future(ending(*s)) for s in stalled]
        live, others = [], []
        until = time.monotonic() + BODY_TIMEOUT / 2
        while time.monotonic() < until:
            live.append(await request(nginx.tls_port, "GET", "/live"))
            post = request(
                nginx.tls_port, "POST", "/v1/items", head=head(token, len(payload)), body=payload
            )
            others.append(await post)
            await asyncio.sleep(0.1)
        ends = await asyncio.gather(*endings)
        return live, others, ends

    live, others, ends = asyncio.run(scenario())
    worst_live = max(a.seconds for a in live)
    statuses = sorted({status for status, _ in ends})
    cut_after = [seconds for status, seconds in ends if status != RESET]
    resets = [seconds for status, seconds in ends if status == RESET]
    print(
        f"\n{STALLED} stalled bodies behind nginx: /live max {worst_live:.3f} s over {len(live)}; "
        f"{len(others)} other POSTs {sorted({a.status for a in others})}; stalled ended with "
        f"{statuses} after {min(cut_after):.1f}-{max(cut_after):.1f} s; {len(resets)} reset after"
        f" {sorted(round(s, 1) for s in resets)}"
    )
    assert all(a.status == 200 for a in live)
    assert worst_live < LIVE_BOUND
    assert others
    assert all(a.status == 201 for a in others)
    # Every stalled request nginx read: cut off once the body timeout passed, unanswered or
    # with 408. Of 200 TLS connections opened at once this machine resets some within a second
    # of their request, before nginx logs anything of them (none on some runs, 13 to 37 of 200
    # on others): those never reach the API either, and at least half must reach nginx.
    assert set(statuses) <= {0, 408, RESET}, statuses
    assert all(BODY_TIMEOUT - 0.5 <= seconds <= BODY_TIMEOUT + 5 for seconds in cut_after)
    assert len(cut_after) >= STALLED // 2, f"{len(resets)} of {STALLED} reset"
    assert all(seconds <= BODY_TIMEOUT + 5 for seconds in resets)
    # The API saw only the other clients' POSTs: no stalled body ever held one of its threads.
    assert api_posts(server) == len(others)


def test_bodies_over_the_limit_get_413_from_the_proxy_declared_or_chunked(proxied):
    server, nginx = proxied
    token = server.bearer()

    async def chunked(chunks: int) -> int:
        reader, writer = await connect(nginx.tls_port)
        writer.write(
            f"POST /v1/items HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{head(token)}"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        piece = b"a" * 65536
        try:
            for _ in range(chunks):
                writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except ConnectionError:
            pass  # refused mid-body: the answer is already there
        raw = await reader.read()
        writer.close()
        return int(raw.split()[1])

    declared = asyncio.run(
        request(nginx.tls_port, "POST", "/v1/items", head=head(token, 2 << 20), body=b"{")
    )
    assert declared.status == 413
    assert asyncio.run(chunked(20)) == 413  # 1.25 MiB, over the 1 MiB limit
    assert api_posts(server) == 0


def test_each_client_address_is_limited_and_others_are_not(proxied):
    _, nginx = proxied

    async def burst(source: str, count: int) -> list[int]:
        answers = await asyncio.gather(
            *(request(nginx.tls_port, "GET", "/live", source=source) for _ in range(count))
        )
        return [answer.status for answer in answers]

    statuses = asyncio.run(burst(client_address(0), 100))
    assert set(statuses) == {200, 429}, sorted(set(statuses))
    assert statuses.count(429) >= 40  # at most 20 at once and 20/s with a burst of 40 pass
    assert asyncio.run(burst(client_address(1), 5)) == [200] * 5  # another client: untouched
    # Plain HTTP is only a redirect to HTTPS.
    redirect = asyncio.run(_plain(nginx.plain_port))
    assert redirect.startswith(b"HTTP/1.1 308")
    assert b"\r\nLocation: https://localhost/live\r\n" in redirect


async def _plain(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    raw = await reader.read()
    writer.close()
    return raw

"""Overload on the bare server: `itemsapi serve --workers 2` with its defaults, against a
PostgreSQL these tests lock, freeze and flood (loopback only, each within ~20 s). Each
scenario asserts what the probes answered and how fast, the statuses the clients saw (503s with
Retry-After, never a 500), and that full service returns at once when the cause goes. The
figures each prints are those in docs/operations.md ("Overload")."""

from __future__ import annotations

import asyncio
import json
import resource
import select
import socket
import time

import pytest
import yaml

from tests.deploy.conftest import ROOT
from tests.e2e.crowd import Answer, PeakRss, Probes, clients_until, p99, request
from tests.helpers import TOKENS, TableLock, http, item_payload, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

POOL_TIMEOUT = 2.0  # the defaults: ITEMSAPI_POOL_TIMEOUT, _STATEMENT_TIMEOUT_MS, _READY_TIMEOUT
STATEMENT_TIMEOUT = 5.0
READY_TIMEOUT = 1.0
WORKERS = 2
BODY_READS = 32  # the default ITEMSAPI_MAX_BODY_READS, per worker; one client holds half at most
RUN_SLOTS = 16
# /live must answer within the liveness probe's timeout that deploy/ gives Kubernetes: a slower
# answer under overload is a restart of a process that was serving.
DEPLOYMENT = yaml.safe_load((ROOT / "deploy/k8s/base/api-deployment.yaml").read_text())
(API,) = (c for c in DEPLOYMENT["spec"]["template"]["spec"]["containers"] if c["name"] == "api")
LIVE_BOUND = float(API["livenessProbe"]["timeoutSeconds"])
READY_BOUND = READY_TIMEOUT + 0.5
MEMORY_BOUND = 600 * 1024 * 1024  # all three processes together


@pytest.fixture
def server(cluster, start_server):
    server = start_server(cluster.url, "--workers", str(WORKERS))
    assert http("POST", f"{server.url}/v1/items", item_payload()).status == 201
    return server


def port_of(server) -> int:
    return int(server.url.rsplit(":", 1)[1])


async def observe(server, scenario) -> tuple[Probes, PeakRss, object]:
    """Run the scenario coroutine with the probes watched and the memory sampled."""
    probes, memory = Probes(port_of(server)), PeakRss(server.process.pid)
    probes.start()
    memory.start()
    try:
        result = await scenario
    finally:
        await probes.stop()
        await memory.stop()
    return probes, memory, result


def check_probes(probes: Probes, ready_may_fail: bool) -> tuple[float, float]:
    assert probes.live
    assert all(a.status == 200 for a in probes.live), [(a.status, a.seconds) for a in probes.live]
    assert all(a.status in ((200, 503) if ready_may_fail else (200,)) for a in probes.ready)
    live, ready = probes.worst()
    assert live < LIVE_BOUND, f"/live took {live:.3f}s"
    assert ready < READY_BOUND, f"/ready took {ready:.3f}s"
    return live, ready


def check_shed(answers: list[Answer]) -> dict:
    """Every answer a 200 or a 503 problem with Retry-After, and the figures of both."""
    statuses = {a.status for a in answers}
    assert statuses <= {200, 503}, sorted(statuses)
    refused = [a for a in answers if a.status == 503]
    for answer in refused:
        assert int(answer.headers["retry-after"]) >= 1
        assert answer.headers["content-type"] == "application/problem+json"
    kinds = {}
    for answer in refused:
        kind = json.loads(answer.body)["type"].rsplit(":", 1)[1]
        kinds.setdefault(kind, []).append(answer.seconds)
    accepted = [a.seconds for a in answers if a.status == 200]
    return {
        "requests": len(answers),
        "200": len(accepted),
        "p99_200_s": round(p99(accepted), 3),
        **{f"503_{k}": len(v) for k, v in kinds.items()},
        **{f"503_{k}_max_s": round(max(v), 3) for k, v in kinds.items()},
    }


def report(name: str, probes: Probes, memory: PeakRss, figures: dict) -> None:
    live, ready = probes.worst() if probes.live else (-1, -1)
    figures = {"live_max_s": round(live, 3), "ready_max_s": round(ready, 3), **figures}
    figures["peak_rss_mib"] = round(memory.peak_bytes / 2**20)
    print(f"\n[overload] {name}: {json.dumps(figures)}")
    assert memory.peak_bytes < MEMORY_BOUND


def assert_full_service(server) -> None:
    """Back at once: every request succeeds within a second or two of the cause going."""
    wait_until(lambda: http("GET", f"{server.url}/v1/items/1").status == 200, 3, "item served")
    statuses = [http("GET", f"{server.url}/v1/items/1").status for _ in range(20)]
    assert statuses == [200] * 20
    assert http("GET", f"{server.url}/ready").status == 200
    assert http("POST", f"{server.url}/v1/items", item_payload()).status == 201


def get_item(port: int) -> asyncio.Future:
    return request(port, "GET", "/v1/items/1", timeout=STATEMENT_TIMEOUT + 10)


@pytest.mark.parametrize("clients", [48, 200])
def test_a_locked_table_sheds_item_requests_and_the_probes_answer(server, cluster, clients):
    lock, port = TableLock(cluster.url), port_of(server)
    lock.hold()
    try:
        deadline = time.monotonic() + 7
        scenario = clients_until(clients, deadline, lambda: get_item(port))
        probes, memory, answers = asyncio.run(observe(server, scenario))
    finally:
        lock.release()
    figures = check_shed(answers)
    report(f"lock, {clients} clients", probes, memory, figures)
    check_probes(probes, ready_may_fail=True)
    assert figures["503_overloaded"] > 0
    # A request that found no free run slot waited at most the pool timeout; one that got a
    # slot in that time then ran into the statement timeout: never a queue of timeouts.
    assert figures["503_overloaded_max_s"] < POOL_TIMEOUT + 1
    assert figures["503_database-timeout_max_s"] < POOL_TIMEOUT + STATEMENT_TIMEOUT + 0.5
    assert_full_service(server)


def stall_bodies(port: int, count: int, token: str | None) -> list[socket.socket]:
    """`count` connections from 127.0.0.1, each starting a POST whose body never comes."""
    auth = f"Authorization: Bearer {token}\r\n".encode() if token else b""
    slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    for sock in slow:
        sock.sendall(
            b"POST /v1/items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            + auth + b"Content-Length: 100\r\n\r\n" + b'{"na'
        )  # fmt: skip
    return slow


def others_meanwhile(server, port: int) -> tuple[dict, dict, list[Answer], list[Answer]]:
    """Readers and writers from another address (127.0.0.2) for 4 s, the probes watched."""
    payload = json.dumps(item_payload()).encode()

    def write() -> asyncio.Future:
        return request(port, "POST", "/v1/items", payload, source="127.0.0.2")

    async def readers_and_writers() -> tuple[list[Answer], list[Answer]]:
        deadline = time.monotonic() + 4
        return await asyncio.gather(
            clients_until(8, deadline, lambda: get_item(port)), clients_until(2, deadline, write)
        )

    probes, memory, (answers, writes) = asyncio.run(observe(server, readers_and_writers()))
    return probes, memory, answers, writes


def slow_bodies_meanwhile(server, token: str | None) -> tuple[dict, dict, dict, list[int]]:
    """200 stalled bodies from 127.0.0.1 while others read and write: the probes, the memory,
    the others' figures, and what each stalled connection has been answered (0: nothing)."""
    port = port_of(server)
    slow = stall_bodies(port, 200, token)
    try:
        if token is None:
            # Refused from their headers before they take a run slot (no token to look up):
            # the others start once every one has been answered.
            _wait_answered(slow, 10)
        probes, memory, answers, writes = others_meanwhile(server, port)
        slow_statuses = [_status_of(sock) for sock in slow]
    finally:
        for sock in slow:
            sock.close()
    figures = check_shed(answers)
    figures["writes_201"] = sum(1 for a in writes if a.status == 201)
    check_probes(probes, ready_may_fail=False)
    check_others_served(figures, writes)
    return probes, memory, figures, slow_statuses


def check_others_served(figures: dict, writes: list[Answer]) -> None:
    assert figures["200"] == figures["requests"]  # the other clients: all served, at once
    # Half the pool timeout: a request queued behind the stalled bodies for a slot would wait
    # the whole of it and then be shed.
    assert figures["p99_200_s"] < POOL_TIMEOUT / 2
    assert writes
    assert figures["writes_201"] == len(writes), sorted({a.status for a in writes})


def test_two_hundred_slow_bodies_leave_the_probes_and_other_clients_served(server):
    # The client holds a valid write key: what remains once credentials come before bodies.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert max(soft, hard) >= 1200, "not enough file descriptors for the test"
    token = TOKENS[f"http://127.0.0.1:{port_of(server)}"]()
    probes, memory, figures, slow_statuses = slow_bodies_meanwhile(server, token)
    figures["slow_503"] = slow_statuses.count(503)
    figures["slow_still_reading"] = slow_statuses.count(0)
    report("200 slow bodies", probes, memory, figures)
    # A slow body holds one of its worker's body readers until the client sends or leaves, and
    # one client may hold half of them at most; every body beyond was refused at once, unread.
    assert set(slow_statuses) <= {0, 503}, sorted(set(slow_statuses))
    assert figures["slow_still_reading"] <= WORKERS * BODY_READS // 2
    assert figures["slow_503"] >= 200 - WORKERS * BODY_READS // 2


def test_anonymous_slow_bodies_are_refused_from_their_headers_and_hold_nothing(server):
    probes, memory, figures, slow_statuses = slow_bodies_meanwhile(server, None)
    figures["slow_401"] = slow_statuses.count(401)
    report("200 anonymous slow bodies", probes, memory, figures)
    assert slow_statuses == [401] * 200  # answered from the headers; no reader ever taken


def _wait_answered(slow: list[socket.socket], seconds: float) -> None:
    """Until each socket has something to read (its answer), at most `seconds`."""
    deadline = time.monotonic() + seconds
    waiting = list(slow)
    while waiting and time.monotonic() < deadline:
        readable, _, _ = select.select(waiting, [], [], max(0.0, deadline - time.monotonic()))
        waiting = [sock for sock in waiting if sock not in readable]


def _status_of(sock: socket.socket) -> int:
    """The status the server has answered on this socket by now; 0 for none."""
    sock.setblocking(False)
    try:
        return int(sock.recv(64).split()[1])
    except (OSError, IndexError):
        return 0


def test_a_burst_of_a_thousand_connections_is_served_or_shed(server):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    port = port_of(server)

    async def burst() -> list[Answer]:
        return list(await asyncio.gather(*(get_item(port) for _ in range(1000))))

    probes, memory, answers = asyncio.run(observe(server, _with_probe_time(burst())))
    figures = check_shed(answers)
    report("burst of 1,000", probes, memory, figures)
    assert figures["200"] >= 100
    assert figures["p99_200_s"] < POOL_TIMEOUT + 1
    check_probes(probes, ready_may_fail=False)
    assert_full_service(server)


async def _with_probe_time(scenario):
    await asyncio.sleep(0.3)  # the probes' first answers come from a server at rest
    result = await scenario
    await asyncio.sleep(0.3)
    return result


def test_a_frozen_database_sheds_load_and_service_returns_on_thaw(server, cluster):
    port = port_of(server)
    cluster.freeze()
    try:
        deadline = time.monotonic() + 6
        scenario = clients_until(48, deadline, lambda: get_item(port))
        probes, memory, answers = asyncio.run(observe(server, scenario))
    finally:
        cluster.thaw()
    # The requests running when the database froze wait for it (it answers nothing, not even
    # the statement timeout); at most one per run slot. The rest are shed.
    hung = [a for a in answers if a.status == 0]
    figures = check_shed([a for a in answers if a.status != 0])
    figures["hung_until_thaw"] = len(hung)
    report("frozen database", probes, memory, figures)
    check_probes(probes, ready_may_fail=True)
    assert any(a.status == 503 for a in probes.ready)
    assert len(hung) <= WORKERS * RUN_SLOTS
    assert figures["503_overloaded_max_s"] < POOL_TIMEOUT + 1
    assert_full_service(server)
